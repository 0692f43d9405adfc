// Small OS calls that Swift cannot reach directly through Glibc (GNU-only declarations and
// constants that the Glibc module does not import).
#ifndef KEEL_SHIMS_H
#define KEEL_SHIMS_H
#include <stdint.h>
#include <poll.h>

/// Names the calling thread (at most 15 characters are kept). Returns 0 or an errno.
int keel_set_thread_name(const char *name);

/// The kernel's id of the calling thread (gettid).
int32_t keel_thread_id(void);

/// fallocate(fd, 0, offset, length): allocates blocks and extends the file's size if needed.
/// Returns 0 or an errno.
int keel_fallocate_allocate(int fd, int64_t offset, int64_t length);

/// fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length): zeroes a range
/// without changing the file's size. Returns 0 or an errno (EOPNOTSUPP where unsupported).
int keel_fallocate_zero_range(int fd, int64_t offset, int64_t length);

/// eventfd(0, EFD_CLOEXEC): a blocking eventfd (io_uring reads it without blocking the thread).
/// Returns the descriptor or -errno.
int keel_eventfd_create(void);

/// prctl(PR_SET_TIMERSLACK, nanos) for the calling thread (and threads it creates later): how late
/// the kernel may fire its timed sleeps (default 50 µs). Returns 0 or an errno.
int keel_set_timer_slack_nanos(unsigned long nanos);

/// ppoll(fds, count, timeout, NULL) with the timeout in nanoseconds (negative: wait forever):
/// poll(2) rounds its timeout up to whole milliseconds. Returns ppoll's result (-1 with errno set).
int keel_ppoll_nanos(struct pollfd *fds, unsigned long count, int64_t timeoutNanos);

/// A CPU hint for spin-wait loops (the x86 `pause` instruction); nothing elsewhere.
void keel_cpu_relax(void);

/// madvise advice values newer than some Glibc headers.
#define KEEL_MADV_POPULATE_READ 22
#define KEEL_MADV_POPULATE_WRITE 23

#endif
