#include "redis_fixture.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int ping(int port) {
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        /* Any answer means it is up: PONG, or NOAUTH from a server with a password. */
        ok = r && ((r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) ||
                   (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0));
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

/* Starts redis-server on 'port' in r->dir and waits for PING. Returns its pid, or -1. */
static pid_t spawn_on(const drv_test_redis *r, int port, const char *const *extra) {
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[64] = {
        "redis-server", "--port",    portstr,    "--bind", "127.0.0.1",   "--save", "",
        "--appendonly", "no",        "--dir",    r->dir,   "--daemonize", "no",     "--loglevel",
        "warning",      "--logfile", "redis.log"};
    int argc = 17;
    for (int i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return -1; /* exited: port taken? */
        if (ping(port)) return pid;
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int drv_test_redis_start(drv_test_redis *r, const char *const *extra) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/drover-test-XXXXXX");
    if (!mkdtemp(r->dir)) {
        perror("mkdtemp");
        return -1;
    }
    srand((unsigned)(getpid() ^ now_ms()));
    for (int attempt = 0; attempt < 20; attempt++) {
        int port = 20000 + rand() % 40000;
        pid_t pid = spawn_on(r, port, extra);
        if (pid > 0) {
            r->pid = pid;
            r->port = port;
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", port);
            return 0;
        }
    }
    fprintf(stderr, "could not start redis-server (is it installed?)\n");
    return -1;
}

static void stop_pid(pid_t pid) {
    kill(pid, SIGTERM);
    long deadline = now_ms() + 5000;
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    }
}

void drv_test_redis_kill(drv_test_redis *r) {
    if (r->pid > 0) stop_pid(r->pid);
    r->pid = 0;
}

int drv_test_redis_restart(drv_test_redis *r, const char *const *extra) {
    drv_test_redis_kill(r);
    /* The port was just freed; a few tries cover a slow release. */
    for (int attempt = 0; attempt < 50; attempt++) {
        pid_t pid = spawn_on(r, r->port, extra);
        if (pid > 0) {
            r->pid = pid;
            return 0;
        }
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    }
    return -1;
}

void drv_test_redis_stop(drv_test_redis *r) {
    drv_test_redis_kill(r);
    if (r->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
}

int drv_test_redis_flush(const drv_test_redis *r) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    int rc = -1;
    if (c && !c->err) {
        redisReply *rep = redisCommand(c, "FLUSHALL");
        rc = rep && rep->type == REDIS_REPLY_STATUS ? 0 : -1;
        if (rep) freeReplyObject(rep);
    }
    if (c) redisFree(c);
    return rc;
}
