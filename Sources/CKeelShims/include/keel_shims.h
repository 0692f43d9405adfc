// Small OS calls that Swift cannot reach directly through Glibc.
#ifndef KEEL_SHIMS_H
#define KEEL_SHIMS_H
#include <stdint.h>

/// Names the calling thread (at most 15 characters are kept). Returns 0 or an errno.
int keel_set_thread_name(const char *name);
#endif
