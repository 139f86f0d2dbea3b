#ifndef DRV_TEST_REDIS_FIXTURE_H
#define DRV_TEST_REDIS_FIXTURE_H

#include <sys/types.h>

/* A real redis-server for one test binary: a free loopback port, a temp dir, no persistence,
 * stopped by its PID. */
typedef struct drv_test_redis {
    pid_t pid;
    int port;
    char dir[256];
    char url[96];
} drv_test_redis;

/* Starts redis-server on a random free port in 127.0.0.1 (retrying on a taken port) and waits
 * for PING, at most 10 s. 'extra' are more redis-server arguments (NULL-terminated, may be
 * NULL). Returns 0 or -1 with a message on stderr. */
int drv_test_redis_start(drv_test_redis *r, const char *const *extra);
void drv_test_redis_stop(drv_test_redis *r);
/* Stops the server by its PID but keeps its port and dir (a Redis outage). */
void drv_test_redis_kill(drv_test_redis *r);
/* Starts the server again on the same port and dir. Returns 0 or -1. */
int drv_test_redis_restart(drv_test_redis *r, const char *const *extra);
/* FLUSHALL, so each test starts from an empty database. Returns 0 or -1. */
int drv_test_redis_flush(const drv_test_redis *r);

#endif
