#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include "keel_shims.h"

int keel_set_thread_name(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = 0;
    return pthread_setname_np(pthread_self(), truncated);
}

int32_t keel_thread_id(void) {
    return (int32_t)gettid();
}

int keel_fallocate_allocate(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, 0, (off_t)offset, (off_t)length) == 0 ? 0 : errno;
}

int keel_fallocate_zero_range(int fd, int64_t offset, int64_t length) {
    int mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    return fallocate(fd, mode, (off_t)offset, (off_t)length) == 0 ? 0 : errno;
}

int keel_eventfd_create(void) {
    int fd = eventfd(0, EFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

void keel_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

int keel_set_timer_slack_nanos(unsigned long nanos) {
    return prctl(PR_SET_TIMERSLACK, nanos, 0, 0, 0) == 0 ? 0 : errno;
}

int keel_ppoll_nanos(struct pollfd *fds, unsigned long count, int64_t timeoutNanos) {
    if (timeoutNanos < 0) return ppoll(fds, (nfds_t)count, NULL, NULL);
    struct timespec timeout = { .tv_sec = timeoutNanos / 1000000000, .tv_nsec = timeoutNanos % 1000000000 };
    return ppoll(fds, (nfds_t)count, &timeout, NULL);
}
