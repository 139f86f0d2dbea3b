/* The setup every handler process gets between fork/vfork and exec, shared by the command
 * handler (exec, --stdin-batch) and --serve, so the two cannot drift apart. */
#ifndef DRV_WORKER_CHILD_H
#define DRV_WORKER_CHILD_H

#include <sys/types.h>

/* Parent side, before forking: moves a pipe end off fds 0-2 (a worker started with one of
 * them closed gets its pipe ends there), close-on-exec. Returns 0, or -1 with errno set. */
int drv_fd_lift(int *fd);

/* Child side, after fork or vfork and before exec; async-signal-safe only (no malloc, no stdio)
 * since after vfork it shares the worker's memory. Makes the child its own process group, kills
 * it with the worker (PR_SET_PDEATHSIG, then getppid() against 'parent' for a worker that died
 * before the prctl), resets the signals the worker catches or ignores, puts in/out/err on fds
 * 0, 1 and 2 (in < 0: /dev/null; out < 0: the worker's stdout, or /dev/null when that is
 * closed) and marks every other fd close-on-exec: the Redis socket (hiredis does not set
 * FD_CLOEXEC) stays with the worker. Returns 0, or an errno value; the caller then execs or
 * reports and _exit()s. */
int drv_child_setup(pid_t parent, int in, int out, int err);

/* drv_child_setup's fallback where close_range(CLOSE_RANGE_CLOEXEC) fails (Linux before
 * 5.11): marks every fd from 'from' up close-on-exec, those /proc/self/fd lists (without
 * /proc: every fd up to RLIMIT_NOFILE, one fcntl each). */
void drv_fds_cloexec_scan(int from);

#endif
