/* The no-op handler (--handler noop): every item is done at once, nothing runs. For measuring
 * what the coordination costs alone. */
#include "handlers.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct noop_handler {
    handler base;
    uint64_t *done; /* tags started, their outcomes not yet taken */
    int n, cap, draining;
} noop_handler;

static int nh_capacity(const handler *h) {
    return ((const noop_handler *)h)->draining ? 0 : INT_MAX;
}

static int nh_start(handler *h, const char *job, const drv_http_cfg *http, const hitem *items,
                    int n, drv_outcome *out) {
    (void)job;
    (void)http;
    noop_handler *x = (noop_handler *)h;
    if (x->n + n > x->cap) {
        int cap = x->cap * 2 > x->n + n ? x->cap * 2 : x->n + n + 64;
        uint64_t *d = realloc(x->done, sizeof *d * (size_t)cap);
        if (!d) {
            memset(out, 0, sizeof *out);
            out->retryable_local = 1;
            snprintf(out->error, sizeof out->error, "{\"error\":\"out of memory\"}");
            return -1;
        }
        x->done = d;
        x->cap = cap;
    }
    for (int i = 0; i < n; i++)
        x->done[x->n++] = items[i].tag;
    return n;
}

static int nh_pollfds(handler *h, struct pollfd *fds, int cap) {
    (void)h;
    (void)fds;
    (void)cap;
    return 0;
}

static int64_t nh_next_deadline(const handler *h, int64_t now) {
    (void)now;
    return ((const noop_handler *)h)->n ? 0 : -1;
}

static void nh_service(handler *h, const struct pollfd *fds, int n, int64_t now) {
    (void)h;
    (void)fds;
    (void)n;
    (void)now;
}

static int nh_take_done(handler *h, int64_t now, uint64_t *tag, drv_outcome *out) {
    (void)now;
    noop_handler *x = (noop_handler *)h;
    if (!x->n) return 0;
    *tag = x->done[--x->n];
    memset(out, 0, sizeof *out);
    out->ok = 1;
    return 1;
}

static int nh_child_exited(handler *h, pid_t pid, int status) {
    (void)h;
    (void)pid;
    (void)status;
    return 0;
}

static void nh_abandon(handler *h) {
    ((noop_handler *)h)->n = 0;
}

static void nh_kill_all(handler *h) {
    (void)h;
}

static void nh_drain(handler *h) {
    ((noop_handler *)h)->draining = 1;
}

static void nh_free(handler *h) {
    noop_handler *x = (noop_handler *)h;
    if (!x) return;
    free(x->done);
    free(x);
}

static const handler_ops noop_ops = {
    .name = "no-op",
    .capacity = nh_capacity,
    .start = nh_start,
    .pollfds = nh_pollfds,
    .next_deadline = nh_next_deadline,
    .service = nh_service,
    .take_done = nh_take_done,
    .child_exited = nh_child_exited,
    .abandon = nh_abandon,
    .kill_all = nh_kill_all,
    .drain = nh_drain,
    .free = nh_free,
};

handler *noop_handler_new(void) {
    noop_handler *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->base.ops = &noop_ops;
    return &x->base;
}
