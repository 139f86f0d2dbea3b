#ifndef DRV_SERVE_H
#define DRV_SERVE_H

/* Serve mode (--serve N): N long-lived copies of the handler command, fed items over the line
 * protocol of docs/handler-protocol.md. Each process runs in its own process group with
 * PR_SET_PDEATHSIG(SIGKILL), never through a shell; drover writes one JSON object per item on
 * its stdin and reads one JSON answer per item from its stdout, in any order.
 *
 * The pool never blocks and never reaps: the worker polls the fds serve_pollfds gives, calls
 * serve_service after EVERY poll (also when it timed out: timers run there), waits at most
 * serve_next_deadline ms, reaps children with waitpid(-1) and hands each status to
 * serve_child_exited. Outcomes come out of serve_take_done. */

#include "queue.h"
#include "worker.h"

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SERVE_PROTOCOL_VERSION 1

typedef struct serve_cfg {
    char **argv; /* the command after "--" (copied); argv[0] is looked up on PATH once */
    int argc;
    int procs;            /* N processes */
    int inflight;         /* items one process may hold at once; 0 means 1 */
    int64_t max_items;    /* a process is replaced after this many items; 0 never */
    int64_t timeout_ms;   /* an item not answered by then fails and its process is killed */
    const char *pass_env; /* drv_conn_env names the processes get anyway, or NULL */
} serve_cfg;

typedef struct serve_pool serve_pool;

/* Starts the N processes. Returns 0, or -1 with 'why' (the command cannot be found or run,
 * a setting is out of range) and nothing left running. */
int serve_pool_new(const serve_cfg *cfg, const char *worker_id, serve_pool **out, char *why,
                   size_t whylen);
/* Items the pool can take now: free inflight slots of processes that are up, not being
 * replaced, and not behind on their stdin. 0 while draining. */
int serve_capacity(const serve_pool *p);
/* Hands one item to the least busy process. 0: queued ('tag' comes back with its outcome);
 * -1 with 'out' filled (retryable_local: no process free) when it cannot be taken. 'keep':
 * bytes of its answer's "result" kept in the outcome's response (its job's keep_results,
 * at most DRV_KEEP_RESPONSE_MAX), 0 for none. */
int serve_start(serve_pool *p, const char *job, const drv_lease *l, int attempt,
                const char *traceparent, int64_t keep, void *tag, drv_outcome *out);
/* Writes what serve_start queued (as far as the pipes take it), then fills fds (at most cap)
 * with the pipes to wait on; returns how many. Call it before every poll. */
int serve_pollfds(serve_pool *p, struct pollfd *fds, int cap);
/* Services the pipes that poll() marked, then the timers (item timeouts, restarts, processes
 * that exited). 'now' is drv_now_ms(). Call it after every poll, with n 0 when none. */
void serve_service(serve_pool *p, const struct pollfd *fds, int n, int64_t now);
/* Returns 1 with the next finished item's tag and outcome (out->response becomes the
 * caller's), 0 when there is none. */
int serve_take_done(serve_pool *p, void **tag, drv_outcome *out);
/* Milliseconds until the pool needs serve_service without I/O, or -1. */
int64_t serve_next_deadline(const serve_pool *p, int64_t now);
/* Records an exit waitpid() reported. Returns 1 if pid was one of the pool's processes. */
int serve_child_exited(serve_pool *p, pid_t pid, int status);
/* No new items from now on and no restarts; answers are still collected, and a process's
 * stdin is closed once it holds no item (it should then exit). */
void serve_drain(serve_pool *p);
/* Items handed in whose outcome has not been taken yet. */
int serve_inflight(const serve_pool *p);
/* SIGKILLs every process group; the items they held fail once their exits are reported. */
void serve_kill_all(serve_pool *p);
/* Closes every process's stdin and gives the processes up to 1 s to exit (a handler that
 * finishes at EOF, closing its connection), then SIGKILLs every process group left, reaps the
 * processes the worker has not reaped (by their pids, never waitpid(-1)) and frees the pool.
 * Outcomes not taken are dropped. NULL is a no-op. */
void serve_free(serve_pool *p);

/* For tests and logs: processes up now, and processes started since the pool began (the
 * first N included). */
int serve_running(const serve_pool *p);
int64_t serve_spawned(const serve_pool *p);
/* The pid of process i, 0 when it has none. */
pid_t serve_pid(const serve_pool *p, int i);

#endif
