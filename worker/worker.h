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
    int cooldown;   /* the API asked the fleet to slow down (HTTP 429 or 503) */
    char *response; /* ok: the response kept for the job (keep_response), owned */
    size_t resplen;
    char error[2048]; /* JSON object text */
} drv_outcome;

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
/* Renders and starts one item's request. On failure returns -1 with 'o' filled (permanent for
 * an item that cannot be rendered or a host not allowed). 'c' must outlive the request. */
int http_start(http_engine *e, const drv_http_cfg *c, const drv_lease *l, http_req **out,
               drv_outcome *o);
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

typedef struct exec_proc exec_proc;

/* Checks that argv[0] can be run (on PATH or a path). Returns 0 or -1 with a message. */
int exec_check_cmd(const exec_cfg *cfg, char *why, size_t whylen);
/* Starts the command for one item in a new process group, never through a shell. On a
 * failure to start, returns -1 and fills 'out' (retryable_local for resource errors,
 * permanent for an item that cannot be passed in argv). */
int exec_start(const exec_cfg *cfg, const char *job, const drv_lease *l, exec_proc **proc,
               drv_outcome *out);
/* Starts the command once for ls[0..n) (--stdin-batch): the items go to its stdin one per
 * line, line N of its stdout is item N's result ("ok", or anything else: the failure's
 * message). No templates in argv; DROVER_JOB and DROVER_BATCH_SIZE are set. */
int exec_start_batch(const exec_cfg *cfg, const char *job, const drv_lease *const *ls, int n,
                     exec_proc **proc, drv_outcome *out);
/* The items of a batch process, 0 for a single item's. */
int exec_items(const exec_proc *p);
/* 1 when the process is finished (exited and its pipes drained, or timed out and killed). */
int exec_finished(exec_proc *p, int64_t now);
/* The outcome of a finished process: slot -1 for a single item (exit status), else item
 * 'slot' of a batch: its result line; without one, "no result" when the process exited 0,
 * else the exit status, signal or timeout (with the tail of stderr). */
void exec_outcome(exec_proc *p, int slot, const char *worker, int attempt, drv_outcome *out);
/* Adds the process's pipes to fds (at most 3 entries); returns how many. */
int exec_pollfds(exec_proc *p, struct pollfd *fds);
/* Services the pipes after poll() (the entries exec_pollfds added). */
void exec_service(exec_proc *p, const struct pollfd *fds, int n);
/* Records the exit status waitpid() reported for p. */
void exec_exited(exec_proc *p, int status);
pid_t exec_pid(const exec_proc *p);
/* 1 when the item is finished (exited and its stderr drained, or timed out and killed), with
 * the outcome filled in. 'now' is drv_now_ms(). */
int exec_done(exec_proc *p, int64_t now, const char *worker, int attempt, drv_outcome *out);
/* Milliseconds until this process needs attention without I/O (timeout), or -1. */
int64_t exec_next_deadline(const exec_proc *p, int64_t now);
/* SIGKILLs the process group (a hung handler, or a worker giving up). */
void exec_kill(exec_proc *p);
void exec_free(exec_proc *p);

/* ---- the loop (loop.c) ----------------------------------------------------------------------- */

typedef enum worker_handler { HANDLER_EXEC, HANDLER_NOOP } worker_handler;

typedef struct worker_cfg {
    const char *id;   /* worker id, "host:pid" by default */
    const char *job;  /* NULL: every running job */
    int concurrency;  /* items running at once */
    int batch;        /* items per claim call */
    int64_t grace_ms; /* drain time on SIGTERM */
    int exit_when_done;
    int64_t idle_ms;   /* longest wait when there is nothing to claim */
    int64_t stats_ms;  /* progress line interval, 0 for none */
    int64_t vanish_ms; /* a running job missing this long was deleted under the worker */
    worker_handler handler;
    exec_cfg exec;           /* argv NULL: no command (jobs need an HTTP handler in their spec) */
    int max_host_conns;      /* HTTP: connections per host, 0 for no cap beyond concurrency */
    const char *http_allow;  /* HTTP: "HOST[:PORT][,...]" requests may go to, NULL for any */
    const char *health_file; /* rewritten after each heartbeat Redis answered, NULL for none */
    int ack_log;             /* fd (O_APPEND) for "JOB ID" lines of recorded acks, -1 for none */
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
