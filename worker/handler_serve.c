/* The serve handler (--serve N): the handlers.h interface on top of serve.c's pool of
 * long-lived handler processes (docs/handler-protocol.md). */
#include "handlers.h"
#include "serve.h"

#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

typedef struct serve_handler {
    handler base;
    serve_pool *pool;
    int procs;
} serve_handler;

static serve_pool *pool_of(const handler *h) {
    return ((const serve_handler *)h)->pool;
}

static int sh_capacity(const handler *h) {
    return serve_capacity(pool_of(h));
}

/* Every item it can take in one call (the loop hands over up to the capacity): the pool puts
 * each on its least busy process. A later item that does not fit is left to the loop. */
static int sh_start(handler *h, const char *job, const drv_http_cfg *http, const hitem *items,
                    int n, drv_outcome *out) {
    (void)http;
    serve_pool *p = pool_of(h);
    int room = serve_capacity(p);
    if (n > room) n = room > 0 ? room : 1; /* none free: items[0]'s refusal says why */
    for (int i = 0; i < n; i++) {
        void *tag = (void *)(uintptr_t)items[i].tag;
        if (serve_start(p, job, items[i].l, items[i].l->attempt, items[i].traceparent,
                        items[i].keep, tag, out) != 0)
            return i > 0 ? i : -1;
    }
    return n;
}

static int sh_pollfds(handler *h, struct pollfd *fds, int cap) {
    return serve_pollfds(pool_of(h), fds, cap);
}

static int64_t sh_next_deadline(const handler *h, int64_t now) {
    return serve_next_deadline(pool_of(h), now);
}

static void sh_service(handler *h, const struct pollfd *fds, int n, int64_t now) {
    serve_service(pool_of(h), fds, n, now);
}

static int sh_take_done(handler *h, int64_t now, uint64_t *tag, drv_outcome *out) {
    (void)now;
    void *t;
    if (!serve_take_done(pool_of(h), &t, out)) return 0;
    *tag = (uint64_t)(uintptr_t)t;
    return 1;
}

static int sh_child_exited(handler *h, pid_t pid, int status) {
    return serve_child_exited(pool_of(h), pid, status);
}

/* The grace period is over: the processes are killed and reaped here, and the outcomes their
 * exits give the items are dropped (the loop hands every running item back; answers already
 * written were collected by the loop's last non-blocking round just before). */
static void sh_abandon(handler *h) {
    serve_handler *x = (serve_handler *)h;
    serve_kill_all(x->pool);
    for (int i = 0; i < x->procs; i++) {
        pid_t pid = serve_pid(x->pool, i), r;
        int status = 0;
        if (pid <= 0) continue;
        while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
        }
        if (r == pid) serve_child_exited(x->pool, pid, status);
    }
    serve_service(x->pool, NULL, 0, drv_now_ms());
    void *t;
    drv_outcome out;
    while (serve_take_done(x->pool, &t, &out))
        free(out.response);
}

static void sh_kill_all(handler *h) {
    serve_kill_all(pool_of(h));
}

static void sh_drain(handler *h) {
    serve_drain(pool_of(h));
}

static void sh_free(handler *h) {
    if (!h) return;
    serve_free(pool_of(h));
    free(h);
}

static const handler_ops serve_ops = {
    .name = "serve",
    .capacity = sh_capacity,
    .start = sh_start,
    .pollfds = sh_pollfds,
    .next_deadline = sh_next_deadline,
    .service = sh_service,
    .take_done = sh_take_done,
    .child_exited = sh_child_exited,
    .abandon = sh_abandon,
    .kill_all = sh_kill_all,
    .drain = sh_drain,
    .free = sh_free,
};

handler *serve_handler_new(const serve_cfg *cfg, const char *worker, char *why, size_t whylen) {
    serve_handler *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (serve_pool_new(cfg, worker, &x->pool, why, whylen) != 0) {
        free(x);
        return NULL;
    }
    x->base.ops = &serve_ops;
    x->procs = cfg->procs;
    return &x->base;
}
