#ifndef DRV_WORKER_H
#define DRV_WORKER_H

#include "handler.h"
#include "queue.h"

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

/* What a handler says about one item. */
typedef struct drv_outcome {
    int ok;
    int permanent;       /* dead at once */
    int retryable_local; /* not the item's fault (spawn failed): hand it back, no attempt */
    int64_t retry_after_ms;
    int throttled;  /* the API pushed back (429, or a retry status with Retry-After): no attempt */
    int cooldown;   /* the API asked the fleet to pause for retry_after_ms (a Retry-After) */
    char *response; /* ok: the response kept for the job (keep_response), owned */
    size_t resplen;
    char error[2048]; /* JSON object text */
} drv_outcome;

/* Fills out->error with {"error": msg, "detail": detail} (detail NULL: left out). */
void drv_outcome_error(drv_outcome *out, const char *msg, const char *detail);

/* ---- the HTTP handler (handler_http.c) ------------------------------------------------------- */

typedef struct http_engine http_engine;
typedef struct http_req http_req;

/* max_host_conns 0: no cap beyond the concurrency. allow: "HOST[:PORT][,...]" (checked by
 * drv_host_rules_parse) or NULL for any. */
http_engine *http_engine_new(int concurrency, int max_host_conns, const char *allow);
void http_engine_free(http_engine *e);
/* Requests in flight. */
int http_active(const http_engine *e);
/* Refuses a job whose fixed URL host is not in --http-allow. Returns 0 or -1 with 'why'. */
int http_check_job(const http_engine *e, const drv_http_cfg *c, char *why, size_t whylen);
/* Renders and starts one item's request, with a traceparent header (unless NULL or the spec
 * sets one). On failure returns -1 with 'o' filled (permanent for
 * an item that cannot be rendered or a host not allowed). 'c' must outlive the request. */
int http_start(http_engine *e, const drv_http_cfg *c, const drv_lease *l, const char *traceparent,
               http_req **out, drv_outcome *o);
/* Waits like poll() on fds and the requests' sockets together, then drives the transfers.
 * Returns how many fds are ready, or -1. */
int http_wait(http_engine *e, struct pollfd *fds, int nfds, int timeout_ms);
/* A finished request (after http_wait), or NULL. */
http_req *http_take_done(http_engine *e);
/* The outcome of a finished request; 'out->response' becomes the caller's. */
void http_outcome(http_req *r, const char *worker, int attempt, drv_outcome *out);
/* Stops (if running) and frees a request; e is needed while it may still be in flight. */
void http_cancel(http_engine *e, http_req *r);
void http_req_free(http_engine *e, http_req *r);

/* ---- the command handler (handler_exec.c) ---------------------------------------------------- */

typedef struct exec_cfg {
    char **argv; /* the command after "--", with {id} and {item} templates */
    int argc;
    int64_t timeout_ms;   /* 0: none */
    int use_stdin;        /* write the item to the child's stdin */
    int stdin_batch;      /* > 0: up to this many items per process, one per stdin line, one
                           * result line each on stdout (--stdin-batch) */
    const char *pass_env; /* drv_conn_env names the child gets anyway (--pass-env), or NULL */
} exec_cfg;

/* Checks that argv[0] can be run (on PATH or a path). Returns 0 or -1 with a message. */
int exec_check_cmd(const exec_cfg *cfg, char *why, size_t whylen);

/* ---- the loop (loop.c) ----------------------------------------------------------------------- */

typedef struct handler handler; /* handlers.h */

typedef struct worker_cfg {
    const char *id;   /* worker id, "host:pid" by default */
    const char *job;  /* NULL: every running job */
    int concurrency;  /* handler processes (or HTTP requests) at once: --concurrency */
    int slots;        /* items running at once: concurrency x items per process */
    int batch;        /* items per claim call */
    int64_t grace_ms; /* drain time on SIGTERM */
    int exit_when_done;
    int64_t idle_ms;    /* longest wait when there is nothing to claim */
    int64_t stats_ms;   /* progress line interval, 0 for none */
    int64_t vanish_ms;  /* a running job missing this long was deleted under the worker */
    handler *own;       /* the worker's own handler (its command, or noop); NULL: no command (jobs
                         * need an HTTP handler in their spec) */
    handler *spec;      /* runs the handler a job's spec names (HTTP); NULL: specs' handlers are
                         * ignored, every job is the worker's own (--handler noop) */
    int max_host_conns; /* HTTP: connections per host, 0 for no cap beyond concurrency */
    const char *http_allow;  /* HTTP: "HOST[:PORT][,...]" requests may go to, NULL for any */
    const char *health_file; /* rewritten after each heartbeat Redis answered, NULL for none */
    int ack_log;             /* fd (O_APPEND) for "JOB ID" lines of recorded acks, -1 for none */
    struct otlp *otlp;       /* --otlp-endpoint: a span per attempt goes there; NULL for none */
} worker_cfg;

/* The health file: "<wall ms of the last Redis contact> <worker id>\n", replaced atomically.
 * Writes it; returns 0 or -1 (errno set). */
int worker_health_write(const char *path, int64_t wall_ms, const char *id);
/* Checks it: 0 when the last contact is at most max_age_s old, 1 when older or unreadable;
 * 'msg' says which. */
int worker_health_check(const char *path, int64_t max_age_s, int64_t now_wall_ms, char *msg,
                        size_t msglen);

/* Runs until drained by a signal (returns 0), asked to exit when done (0), or a fatal error
 * (1). A second signal exits at once (130). */
int worker_run(const worker_cfg *cfg, drv_queue *q);

#endif
