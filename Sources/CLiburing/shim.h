// liburing through Swift. The system headers below must come before <liburing.h>: with liburing
// alone a clean build can fail on a duplicate fd_set definition (see shared/PLATFORM-NOTES.md).
#ifndef KEEL_CLIBURING_SHIM_H
#define KEEL_CLIBURING_SHIM_H
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <signal.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <liburing.h>

/// io_uring_enable_rings is declared by liburing 2.3's header but missing from its shared library:
/// the register call it wraps, made directly. Returns 0 or -errno.
static inline int keel_io_uring_enable_rings(int ring_fd) {
    long result = syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_ENABLE_RINGS, (void *)0, 0);
    return result < 0 ? -errno : (int)result;
}
#endif
