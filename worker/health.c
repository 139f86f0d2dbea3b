/* The worker's health file: a container health check (drover-worker --health) reads when the
 * worker last heard from Redis, without needing Redis itself. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int worker_health_write(const char *path, int64_t wall_ms, const char *id) {
    char tmp[4096], line[256];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    n = snprintf(line, sizeof line, "%" PRId64 " %.200s\n", wall_ms, id);
    if (n < 0 || (size_t)n >= sizeof line) n = (int)sizeof line - 1;
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (write(fd, line, (size_t)n) != (ssize_t)n) goto out;
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) goto out;
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
    }
    return rc;
}

int worker_health_check(const char *path, int64_t max_age_s, int64_t now_wall_ms, char *msg,
                        size_t msglen) {
    char buf[256];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msglen, "unhealthy: cannot read %s: %s (no Redis contact yet?)", path,
                 strerror(errno));
        return 1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long last = strtoll(buf, &end, 10);
    if (errno || end == buf || last <= 0 || (*end != ' ' && *end != '\n')) {
        snprintf(msg, msglen, "unhealthy: %s does not hold a worker's health line", path);
        return 1;
    }
    int64_t age = now_wall_ms - (int64_t)last;
    if (age < 0) age = 0;
    if (age > max_age_s * 1000) {
        snprintf(msg, msglen, "unhealthy: last Redis contact %.1f s ago (limit %" PRId64 " s)",
                 (double)age / 1000.0, max_age_s);
        return 1;
    }
    snprintf(msg, msglen, "healthy: last Redis contact %.1f s ago (limit %" PRId64 " s)",
             (double)age / 1000.0, max_age_s);
    return 0;
}
