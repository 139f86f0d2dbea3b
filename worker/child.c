/* Handler process setup between fork and exec (see child.h). */
#define _GNU_SOURCE /* close_range, F_DUPFD_CLOEXEC */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Fallback bound for a kernel without close_range (CLOSE_RANGE_CLOEXEC is Linux 5.11). */
#define FD_SCAN_MAX (1 << 20)

int drv_fd_lift(int *fd) {
    if (*fd < 0 || *fd > 2) return 0;
    int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (nfd < 0) return -1;
    close(*fd);
    *fd = nfd;
    return 0;
}

/* Child side of drv_fd_lift: the old fd stays (dup2 onto 0-2 replaces it, or the close-on-exec
 * sweep does not reach it but it is one of ours). */
static int lift_in_child(int *fd) {
    if (*fd < 0 || *fd > 2) return 0;
    int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (nfd < 0) return -1;
    *fd = nfd;
    return 0;
}

/* Puts fd on target without close-on-exec (dup2 of a different fd clears it). */
static int place(int fd, int target) {
    return dup2(fd, target) < 0 ? -1 : 0;
}

static void mark_cloexec(int fd) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

/* The open fds from /proc/self/fd, read with getdents64 into a stack buffer (no malloc, no
 * opendir). Returns 0, or -1 when /proc cannot be read. */
static int cloexec_listed(int from) {
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    char buf[4096];
    long n;
    while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            const char *name = buf + off + 19; /* d_ino 8, d_off 8, d_reclen 2, d_type 1 */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            off += reclen;
            int fd = 0, digits = 0;
            for (; *name >= '0' && *name <= '9'; name++, digits++)
                fd = fd * 10 + (*name - '0');
            if (digits && !*name && fd >= from && fd != dir) mark_cloexec(fd);
        }
    }
    close(dir);
    return n < 0 ? -1 : 0;
}

void drv_fds_cloexec_scan(int from) {
    if (cloexec_listed(from) == 0) return;
    struct rlimit rl;
    long max = FD_SCAN_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)FD_SCAN_MAX)
        max = (long)rl.rlim_cur;
    for (long fd = from; fd < max; fd++) /* no /proc: every fd up to the limit */
        mark_cloexec((int)fd);
}

static void cloexec_from_3(void) {
    if (close_range(3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
    /* Older kernels (before 5.11): every fd up to the limit. Closing instead would also close
     * the report pipe --serve uses to learn that exec failed. */
    drv_fds_cloexec_scan(3);
}

int drv_child_setup(pid_t parent, int in, int out, int err) {
    setpgid(0, 0); /* its own group: a kill reaches its children, a terminal's Ctrl-C does not */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) return ESRCH;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    int sigs[] = {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (in < 0 && (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) return errno;
    if (out < 0 && fcntl(1, F_GETFD) < 0 && (out = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
        return errno;
    /* Off 0-2 first, so that placing one cannot overwrite another still to be placed. */
    if (lift_in_child(&in) || lift_in_child(&out) || lift_in_child(&err)) return errno;
    if (place(in, 0) || (out >= 0 && place(out, 1)) || place(err, 2)) return errno;
    cloexec_from_3();
    return 0;
}
