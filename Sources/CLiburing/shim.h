// liburing through Swift. The system headers below must come before <liburing.h>: with liburing
// alone a clean build can fail on a duplicate fd_set definition (see shared/PLATFORM-NOTES.md).
#ifndef KEEL_CLIBURING_SHIM_H
#define KEEL_CLIBURING_SHIM_H
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <signal.h>
#include <liburing.h>
#endif
