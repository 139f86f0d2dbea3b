/* The one interface every item handler of the worker implements (exec, stdin-batch, serve,
 * http, noop): the loop (loop.c) claims, acks and extends leases and hands items to a handler
 * through these operations only, so it knows no handler by name. Named handlers.h, not
 * handler.h: that would shadow common/handler.h (the spec's HTTP handler) on the include path. */
#ifndef DRV_WORKER_HANDLERS_H
#define DRV_WORKER_HANDLERS_H

#include "worker.h"

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

/* One item handed to a handler. 'l' and 'traceparent' are valid during start() only: a handler
 * copies what it keeps (the loop moves its leases around). 'tag' names the item in take_done().
 * 'keep': bytes of a result the handler reports (a --serve answer's "result") kept in the outcome's
 * response, from the job's spec (keep_results), 0 for none; a spec's HTTP handler keeps by
 * its own keep_response instead. */
typedef struct hitem {
    const drv_lease *l;
    uint64_t tag;
    int64_t keep;
    const char *traceparent; /* the attempt's W3C traceparent (trace.h), or NULL */
} hitem;

typedef struct handler handler;

typedef struct handler_ops {
    const char *name; /* for the log: "command", "HTTP handler", "no-op" */
    /* Items it could start now (0: full). */
    int (*capacity)(const handler *h);
    /* Starts items[0..n) (all of 'job'; 'http' the job's spec handler, or NULL). Returns how
     * many it took, a prefix of at least 1, or -1 with 'out' filled for items[0], which was
     * not started (retryable_local: a local failure, hand it back; else the item's). */
    int (*start)(handler *h, const char *job, const drv_http_cfg *http, const hitem *items, int n,
                 drv_outcome *out);
    /* Adds the fds it waits on to fds (at most cap); returns how many. */
    int (*pollfds)(handler *h, struct pollfd *fds, int cap);
    /* Milliseconds until it needs attention without I/O (a timeout, an outcome ready), or -1. */
    int64_t (*next_deadline)(const handler *h, int64_t now);
    /* Called after every wait: services its fds (the entries its pollfds added, in order; n 0
     * when the wait timed out or failed) and its timers. */
    void (*service)(handler *h, const struct pollfd *fds, int n, int64_t now);
    /* A finished item: returns 1 with its tag and outcome (out->response becomes the
     * caller's), 0 when none. */
    int (*take_done)(handler *h, int64_t now, uint64_t *tag, drv_outcome *out);
    /* waitpid() reported pid: returns 1 when it was this handler's child. */
    int (*child_exited)(handler *h, pid_t pid, int status);
    /* Gives up on every running item (the grace period is over): stops and reaps them and
     * forgets them, without outcomes (the loop hands them back). */
    void (*abandon)(handler *h);
    /* SIGKILLs every child at once (a second signal), without waiting. */
    void (*kill_all)(handler *h);
    /* No new items from now on; running ones finish. NULL: nothing to do. */
    void (*drain)(handler *h);
    /* Reaps what is left and frees the handler. */
    void (*free)(handler *h);
    /* Optional (NULL: poll()): waits like poll() on fds and its own sources together
     * (libcurl's multi handle). At most one handler of a worker has one. */
    int (*wait)(handler *h, struct pollfd *fds, int nfds, int timeout_ms);
    /* Optional: refuses a job's spec handler it may not serve (--http-allow). */
    int (*check_job)(const handler *h, const drv_http_cfg *c, char *why, size_t whylen);
} handler_ops;

struct handler {
    const handler_ops *ops;
};

/* The command handler: one process per item, or per --stdin-batch of items. 'procs' processes
 * at most at once (--concurrency). cfg and worker must outlive it. */
handler *exec_handler_new(const exec_cfg *cfg, const char *worker, int procs);
/* The spec's HTTP handler: 'concurrency' requests in flight. */
handler *http_handler_new(const char *worker, int concurrency, int max_host_conns,
                          const char *allow);
/* Does nothing and reports ok (for measuring the coordination alone). */
handler *noop_handler_new(void);
/* --serve N: N long-lived processes of the command, fed items over the line protocol
 * (serve.c, docs/handler-protocol.md). NULL with 'why' when they cannot be started. */
struct serve_cfg;
handler *serve_handler_new(const struct serve_cfg *cfg, const char *worker, char *why,
                           size_t whylen);

#endif
