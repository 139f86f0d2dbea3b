/* The worker's event loop: claim in batches, run items, ack in batches, extend leases, drain
 * on a signal. One thread: children are watched with poll() on their pipes and a self-pipe
 * for signals, so a thousand items in flight cost no threads. */
#include "handlers.h"

#include "backoff.h"
#include "claimsize.h"
#include "clock.h"
#include "log.h"
#include "otlp.h"
#include "policy.h"
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- state ----------------------------------------------------------------------------------- */

typedef struct wjob {
    char id[DRV_JOB_ID_MAX + 1];
    int partitions;
    int64_t lease_ms;
    int active;            /* running and not skipped */
    int seen;              /* found by the last discovery */
    int64_t skip_until;    /* paused or cancelled: look again after this */
    int64_t *empty_until;  /* per partition: nothing to claim until then */
    int *empties;          /* per partition: claims in a row that found nothing */
    int64_t probe_at;      /* every partition idle: when their pending lists are asked next */
    int probes;            /* probes since the job went idle */
    drv_backoff *pbo;      /* per partition: a script error or corrupt state (said once) */
    int64_t *pbo_until;    /* per partition: send nothing before (its backoff) */
    drv_backoff bo;        /* the job's limits and cool-downs failing (said once) */
    drv_backoff read_bo;   /* the job hash unreadable (said once) */
    int64_t report_until;  /* report_limits: not before (its backoff) */
    char state[16];        /* as last read */
    int64_t missing_since; /* local ms discovery stopped finding it, 0 while found */
    int gone;              /* absent long enough: deleted (vanished, or expired after it ended) */
    int broken;            /* its hash cannot be read (said once per episode) */
    int stub;              /* never read whole: a broken job first seen broken */
    int64_t dropped;       /* results Redis had no job for (deleted under this worker) */
    int rr;                /* next partition to try */
    int64_t created_ms;    /* which version of the job (a replaced job is another) */
    int unusable;          /* this worker cannot serve it (said once in the log) */
    drv_http_cfg *http;    /* the spec's HTTP handler, NULL: the worker's command */
    int64_t backoff_ms, backoff_max_ms;
    int64_t cool_until; /* fleet cool-down: claim and start nothing before (local ms) */
    /* Fleet-wide limits (lua/admit.lua) and the share of this worker's capacity. */
    int limited;         /* the spec has a rate or max_in_flight: admit before claiming */
    int64_t weight;      /* share of this worker's slots beside other jobs with work */
    int64_t keep;        /* the spec's keep_results: bytes of a handler's result kept */
    int64_t admit_until; /* the limits said wait: no claim before this (local ms) */
    int64_t unused;      /* granted, not found by claims: refunded at the next admit */
    int64_t sig_bad;     /* throttled answers since the last admit (the adaptive limit) */
    int64_t sig_good;    /* ok answers since the last admit */
    int64_t reported;    /* what Redis was last told this worker may hold of the job */
    int64_t last_admit;  /* local ms of the last admit call */
    int stint;           /* claims in a row from one partition, carrying its acks */
} wjob;

typedef struct held {
    drv_lease l;
    int job, part;
    int started;      /* given to a handler (0: queued, claimed and not started) */
    uint64_t tag;     /* its name in the handler's take_done() */
    uint64_t seq;     /* claim order: the oldest queued item starts first (start_items) */
    int stale;        /* of a job since replaced: its result is dropped, never sent */
    trace_ctx tc;     /* the running attempt's trace context */
    int64_t start_ns; /* wall clock when it started, for its span */
} held;

static int64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int started(const held *h) {
    return h->started;
}

typedef struct result {
    drv_lease l;
    int job, part;
    drv_outcome out;
} result;

typedef struct wstate {
    const worker_cfg *cfg;
    drv_queue *q;
    wjob *jobs;
    int njobs, rr_job;
    policy_job *pjobs; /* claim_once's view of the jobs (njobs entries) */
    held *held;
    int nheld, cap_held, running;
    result *res;
    int nres, cap_res;
    int64_t oldest_res;
    int connected;
    int reconnecting;   /* sending what the outage kept: a failure is the same outage */
    int health_warned;  /* the health file could not be written (logged once) */
    int ack_log_warned; /* the ack log could not be written (logged once) */
    int64_t outage_since, next_reconnect;
    drv_backoff reconnect_bo; /* reconnect attempts in this outage (its start is said once) */
    drv_backoff full;         /* Redis refuses writes (OOM, MISCONF, ...): one episode, said once */
    int64_t full_until;       /* send no writes before */
    drv_backoff disc_bo, beat_bo; /* discovery, heartbeats failing (said once) */
    drv_backoff start_bo;         /* handlers that cannot be started (fork failing) */
    int64_t start_until;          /* start no item before */
    int stop_rc;  /* drain and exit with this: the served job vanished or is broken */
    int vanished; /* jobs that vanished while running */
    int64_t next_discover, next_extend, next_beat, next_stats, redis_now;
    int64_t n_ok, n_failed, n_lost;
    int discovered_any;
    int fatal;      /* exit code for a problem found after start (a job this worker cannot do) */
    handler *hs[2]; /* the worker's own handler and the specs' (those not NULL) */
    int nhs;
    uint64_t next_tag;
    uint64_t next_seq; /* held.seq of the next item claimed */
    claimsize cs;      /* how many items a claim asks for (claimsize.h) */
    int last_claim;    /* what the last claim asked for: results this many go at once */
    int64_t fair_cap;  /* the items the worker means to hold: jobs share it by weight */
    hitem *hitems;     /* start_items' scratch: cap_held entries */
    int *hidx;
    drv_http_cfg **retired; /* handlers of replaced jobs, freed at exit */
    int nretired;
} wstate;

static volatile sig_atomic_t signals_seen;
static int sig_pipe[2] = {-1, -1};

/* Local monotonic microseconds: a claim's round trip on loopback is well under a millisecond. */
static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_signal(int sig) {
    int saved = errno;
    if (sig != SIGCHLD) signals_seen++;
    char c = (char)sig;
    ssize_t w = write(sig_pipe[1], &c, 1);
    (void)w;
    errno = saved;
}

/* ---- Redis errors ---------------------------------------------------------------------------- */

/* A Redis call failed. A lost connection (DRV_EIO) is the outage: said once, the loop
 * reconnects with backoff. Writes refused for now (DRV_EFULL: OOM, MISCONF, LOADING, BUSY) are
 * one worker-wide episode, said once with the server's message: no writes until its backoff
 * is over, then the same writes again (nothing is dropped). Anything else (a script error,
 * corrupt state the message names) is the episode of 'b' (a partition's, a job's), said once
 * as "WHAT failing: ERR". '*until' (if given) is set to the next try. Returns 1 for a lost
 * connection or refused writes (stop sending for now), 0 otherwise. */
static int redis_failed(wstate *w, drv_err e, const char *what, drv_backoff *b, int64_t *until) {
    int64_t now = drv_now_ms();
    if (e == DRV_EFULL) {
        int say;
        w->full_until = now + drv_backoff_fail(&w->full, now, &say);
        if (say)
            drv_warn("redis at %s refuses writes (%s): %s (repeating, backing off; items keep "
                     "running and their results are kept until it takes writes again)",
                     drv_queue_addr(w->q), what, drv_queue_strerror(w->q, e));
        if (until) *until = w->full_until;
        return 1;
    }
    if (e != DRV_EIO) {
        char err[700];
        snprintf(err, sizeof err, "%s", drv_queue_strerror(w->q, e));
        int64_t ms = b ? drv_backoff_fail_log(b, now, what, err) : 1000;
        if (!b) drv_error("%s: %s", what, err);
        if (until) *until = now + ms;
        return 0;
    }
    {
        if (w->reconnecting) {
            w->connected = 0; /* still the outage try_reconnect is ending: said once */
            return 1;
        }
        if (w->connected) {
            w->connected = 0;
            w->outage_since = drv_now_ms();
            memset(&w->reconnect_bo, 0, sizeof w->reconnect_bo);
            w->next_reconnect = w->outage_since;
            drv_warn("redis lost at %s while %s (%s); items keep running, their results are "
                     "kept until it is back",
                     drv_queue_addr(w->q), what, drv_queue_strerror(w->q, e));
        }
        return 1;
    }
}

/* A write Redis took: ends the refusal episode (said once, with its count). */
static void writes_ok(wstate *w) {
    int64_t n, ms;
    if (w->full.fails && drv_backoff_ok(&w->full, drv_now_ms(), &n, &ms))
        drv_info("redis at %s takes writes again after %" PRId64 " refusals in %.1f s",
                 drv_queue_addr(w->q), n, (double)ms / 1000.0);
}

/* Partition p of job ji answered without an error: ends its episode, if any. */
static void part_ok(wstate *w, int ji, int p) {
    wjob *j = &w->jobs[ji];
    if (!j->pbo[p].fails) return;
    char what[160];
    snprintf(what, sizeof what, "job %s partition %d", j->id, p);
    drv_backoff_ok_log(&j->pbo[p], drv_now_ms(), what);
    j->pbo_until[p] = 0;
}

/* Partition p of job ji failed (doing 'op'): its episode, said once. Returns redis_failed's. */
static int part_failed(wstate *w, int ji, int p, drv_err e, const char *op) {
    wjob *j = &w->jobs[ji];
    char what[200];
    if (e == DRV_EFULL)
        snprintf(what, sizeof what, "%s job %s partition %d", op, j->id, p);
    else
        snprintf(what, sizeof what, "job %s partition %d: %s", j->id, p, op);
    return redis_failed(w, e, what, &j->pbo[p], &j->pbo_until[p]);
}

/* The job's limits (admit, cool-down) failed doing 'op'. */
static int job_failed(wstate *w, wjob *j, drv_err e, const char *op, int64_t *until) {
    char what[200];
    if (e == DRV_EFULL)
        snprintf(what, sizeof what, "%s job %s", op, j->id);
    else
        snprintf(what, sizeof what, "job %s limits: %s", j->id, op);
    return redis_failed(w, e, what, &j->bo, until);
}

static void job_ok(wjob *j) {
    if (!j->bo.fails) return;
    char what[160];
    snprintf(what, sizeof what, "job %s limits", j->id);
    drv_backoff_ok_log(&j->bo, drv_now_ms(), what);
}

static void flush_results(wstate *w);

/* Tries again once the backoff (common/backoff.h: 50 ms doubling to 5 s, with jitter) is over;
 * on success sends the results buffered during the outage at once. Logs once per outage, not
 * per attempt. */
static void try_reconnect(wstate *w, int64_t now) {
    char why[512];
    if (now < w->next_reconnect) return;
    if (drv_queue_reconnect(w->q, why, sizeof why) == DRV_OK) {
        w->connected = 1;
        w->next_discover = 0;
        w->next_extend = 0; /* leases held through the outage: extend them first */
        int before = w->nres;
        w->reconnecting = 1;
        flush_results(w);
        w->reconnecting = 0;
        if (w->connected) {
            int64_t tries, ms;
            drv_backoff_ok(&w->reconnect_bo, now, &tries, &ms);
            drv_info("redis reconnected after %" PRId64 " ms, flushed %d results",
                     now - w->outage_since, before - w->nres);
            return;
        }
        snprintf(why, sizeof why, "%s", drv_queue_strerror(w->q, DRV_EIO)); /* lost again */
    }
    drv_debug("redis still unreachable: %s", why);
    int say; /* the outage was said when it began */
    int64_t t = drv_now_ms();
    w->next_reconnect = t + drv_backoff_fail(&w->reconnect_bo, t, &say);
}

/* ---- jobs ------------------------------------------------------------------------------------ */

static int64_t job_held(const wstate *w, int ji);
static void drop_recorded(wstate *w);

/* Job ji was replaced (submit --replace): what this worker holds of the old job must not reach
 * the new one (its lease tokens start again at 1, so an old token could name a new lease).
 * Results and unstarted items are dropped now, running items when they end. */
static void drop_old_version(wstate *w, int ji) {
    int nres = 0, nheld = 0;
    for (int i = 0; i < w->nres; i++)
        if (w->res[i].job == ji) {
            w->res[i].job = -1;
            nres++;
        }
    drop_recorded(w);
    for (int i = 0; i < w->nheld; i++) {
        held *h = &w->held[i];
        if (h->job != ji || h->stale) continue;
        nheld++;
        if (h->started) {
            h->stale = 1;
            continue;
        }
        drv_lease_clear(&h->l);
        w->held[i--] = w->held[--w->nheld];
    }
    if (nres || nheld)
        drv_warn("job %s was replaced: %d results and %d items of the old job are dropped "
                 "(they belong to no lease of the new one)",
                 w->jobs[ji].id, nres, nheld);
}

/* The handler that runs job x's items: the spec's (HTTP) when its spec names one, else the
 * worker's own. */
static handler *handler_of(const wstate *w, const wjob *x) {
    return x->http ? w->cfg->spec : w->cfg->own;
}

static wjob *find_job(wstate *w, const char *id) {
    for (int i = 0; i < w->njobs; i++)
        if (strcmp(w->jobs[i].id, id) == 0) return &w->jobs[i];
    return NULL;
}

/* Sizes the per-partition arrays of x for n partitions (n >= 1): new partitions start
 * with no back-off, the others keep theirs. Returns 0 or -1 (x unchanged). */
static int resize_parts(wjob *x, int n) {
    int64_t *eu = calloc((size_t)n, sizeof *eu), *bu = calloc((size_t)n, sizeof *bu);
    drv_backoff *bo = calloc((size_t)n, sizeof *bo);
    int *em = calloc((size_t)n, sizeof *em);
    if (!eu || !bu || !bo || !em) {
        free(eu);
        free(bu);
        free(bo);
        free(em);
        return -1;
    }
    int keep = x->partitions < n ? x->partitions : n;
    if (keep > 0 && x->empty_until) {
        memcpy(eu, x->empty_until, sizeof *eu * (size_t)keep);
        memcpy(bu, x->pbo_until, sizeof *bu * (size_t)keep);
        memcpy(bo, x->pbo, sizeof *bo * (size_t)keep);
        memcpy(em, x->empties, sizeof *em * (size_t)keep);
    }
    free(x->empty_until);
    free(x->pbo_until);
    free(x->pbo);
    free(x->empties);
    x->empties = em;
    x->empty_until = eu;
    x->pbo_until = bu;
    x->pbo = bo;
    x->partitions = n;
    return 0;
}

static int add_job(wstate *w, const drv_job *j) {
    wjob *nj = realloc(w->jobs, sizeof *nj * (size_t)(w->njobs + 1));
    if (!nj) return -1;
    w->jobs = nj;
    wjob *x = &w->jobs[w->njobs];
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", j->id);
    x->lease_ms = j->spec.lease_ms ? j->spec.lease_ms : 30000;
    if (resize_parts(x, j->partitions > 0 ? j->partitions : 1) != 0) return -1;
    x->partitions = j->partitions > 0 ? j->partitions : 0; /* 0: a stub (never read whole) */
    x->rr = (int)drv_rand((uint64_t)(x->partitions ? x->partitions : 1)); /* spread out */
    w->njobs++;
    return 0;
}

static void free_http(wjob *x) {
    if (x->http) drv_http_cfg_free(x->http);
    free(x->http);
    x->http = NULL;
}

/* Works out how this worker runs the job's items; 0, or -1 when it cannot (said once). With
 * --job, a job it cannot serve stops the worker (exit 2): that is a configuration mistake. */
static int set_handler(wstate *w, wjob *x, const drv_job *j) {
    char why[512] = "";
    free_http(x);
    x->unusable = 0;
    x->backoff_ms = j->spec.backoff_ms;
    x->backoff_max_ms = j->spec.backoff_max_ms;
    if (!w->cfg->spec) return 0; /* specs' handlers ignored: the worker's own runs every job */
    if (j->spec.handler[0]) {
        drv_http_cfg *c = calloc(1, sizeof *c);
        drv_err e =
            c ? drv_http_cfg_parse(j->spec.handler, strlen(j->spec.handler), c, why, sizeof why)
              : DRV_ENOMEM;
        if (!e)
            x->http = c;
        else
            free(c);
        if (!e) e = drv_http_cfg_resolve_env(c, why, sizeof why);
        if (!e && w->cfg->spec->ops->check_job &&
            w->cfg->spec->ops->check_job(w->cfg->spec, c, why, sizeof why) != 0)
            e = DRV_EINVAL;
        if (e && !why[0]) snprintf(why, sizeof why, "%s", drv_strerror(e));
    } else if (!w->cfg->own) {
        snprintf(why, sizeof why,
                 "its spec has no \"handler\" and this worker was started "
                 "without a command (-- CMD ...)");
    }
    if (!why[0]) return 0;
    free_http(x);
    x->unusable = 1;
    drv_error("cannot serve job %s: %s", j->id, why);
    if (w->cfg->job) w->fatal = 2;
    return -1;
}

/* The job hash of 'id' cannot be read (DRV_ECORRUPT: the message names the key and field).
 * Serving every job, the worker skips it (said once per episode) and takes it up again once
 * it reads; with --job it stops (exit 1): it was asked to serve that job and cannot. */
static void job_broken(wstate *w, const char *id, const char *why, int64_t now) {
    wjob *x = find_job(w, id);
    if (!x) {
        drv_job stub;
        memset(&stub, 0, sizeof stub);
        snprintf(stub.id, sizeof stub.id, "%s", id);
        if (add_job(w, &stub) != 0) return;
        x = &w->jobs[w->njobs - 1];
        x->stub = 1;
    }
    x->seen = 1;
    x->missing_since = 0;
    x->active = 0;
    x->broken = 1;
    if (w->cfg->job) {
        if (!w->stop_rc) drv_error("job %s is broken, stopping this worker: %s", id, why);
        w->stop_rc = 1;
        return;
    }
    int say;
    drv_backoff_fail(&x->read_bo, now, &say);
    if (say)
        drv_warn("job %s is broken, skipping it until it reads again: %s (repeating)", id, why);
}

/* Discovery did not find job x (deleted, or between the two halves of a submit --replace).
 * Absent for --vanish-ms, it is gone: quietly after it ended, otherwise it vanished under this
 * worker (FLUSHALL, drover purge), which is said, and with --job stops the worker (exit 1). */
static void job_missing(wstate *w, int ji, int64_t now) {
    wjob *x = &w->jobs[ji];
    x->active = 0;
    if (x->gone) return;
    if (x->stub) {
        x->gone = 1;
        return;
    }
    if (!x->missing_since) x->missing_since = now;
    if (now - x->missing_since < w->cfg->vanish_ms) {
        if (w->next_discover > now + 500) w->next_discover = now + 500;
        return;
    }
    x->gone = 1;
    if (drv_job_state_finished(drv_job_state_parse(x->state))) {
        drv_info("job %s is gone (deleted or expired after it was %s)", x->id, x->state);
        return;
    }
    w->vanished++;
    drv_error("job %s vanished while %s: its keys were deleted (FLUSHALL, or drover purge); "
              "%" PRId64 " results of this worker could not be recorded%s",
              x->id, x->state, x->dropped + job_held(w, ji),
              w->cfg->job ? "; stopping this worker (exit 1)" : "");
    if (w->cfg->job) w->stop_rc = 1;
}

static void update_job(wstate *w, const drv_job *j, int64_t now) {
    wjob *x = find_job(w, j->id);
    if (x && x->broken) {
        char what[160];
        snprintf(what, sizeof what, "job %s: reading it", j->id);
        drv_backoff_ok_log(&x->read_bo, now, what);
        x->broken = 0;
    }
    if (!x || x->stub) {
        if (!x && add_job(w, j) != 0) return;
        if (!x) x = &w->jobs[w->njobs - 1];
        x->stub = 0;
        x->created_ms = j->created_ms;
        if (set_handler(w, x, j) == 0)
            drv_info("serving job %s (%d partitions, %s)", j->id, j->partitions,
                     handler_of(w, x)->ops->name);
    } else if (x->created_ms != j->created_ms) {
        /* Replaced (drover submit --replace): its handler may be another. Requests in flight
         * keep the old one until they end. A --job worker follows the new job. */
        drv_info("job %s was replaced (submit --replace): serving the new one", j->id);
        drop_old_version(w, (int)(x - w->jobs));
        x->created_ms = j->created_ms;
        x->gone = 0;
        x->skip_until = 0;
        x->dropped = 0;
        for (int p = 0; p < x->partitions; p++) { /* the old partitions' troubles are gone */
            memset(&x->pbo[p], 0, sizeof x->pbo[p]);
            x->pbo_until[p] = x->empty_until[p] = 0;
            x->empties[p] = 0;
        }
        if (x->http) {
            drv_http_cfg **r = realloc(w->retired, sizeof *r * (size_t)(w->nretired + 1));
            if (!r) return;
            w->retired = r;
            w->retired[w->nretired++] = x->http;
            x->http = NULL;
        }
        set_handler(w, x, j);
    }
    if (x->partitions != j->partitions) {
        /* The job was replaced (drover submit --replace) with another partition count, or the
         * coordinator split a partition (rebalancing) and the same job grew: the new
         * partitions are tried at once, the others keep their back-off. */
        if (resize_parts(x, j->partitions) != 0) return;
        x->rr = x->rr % j->partitions;
    }
    snprintf(x->state, sizeof x->state, "%s", j->state);
    x->missing_since = 0;
    x->gone = 0;
    x->lease_ms = j->spec.lease_ms;
    /* An adaptive job (an HTTP handler's) admits too: its in-flight limit is in the limits. */
    x->limited = j->spec.rate_per_s > 0 || j->spec.max_in_flight > 0 ||
                 (j->spec.adaptive && j->spec.handler[0]);
    x->weight = j->spec.weight > 0 ? j->spec.weight : 1;
    x->keep = j->spec.keep_results;
    x->seen = 1;
    x->active = j->st == DRV_JOB_RUNNING && !x->unusable;
    if (x->active && x->skip_until > now) x->skip_until = 0;
}

static void discover(wstate *w, int64_t now) {
    w->next_discover = now + 1000;
    for (int i = 0; i < w->njobs; i++)
        w->jobs[i].seen = 0;
    drv_job j;
    drv_err e = DRV_OK;
    char(*ids)[DRV_JOB_ID_MAX + 1] = NULL;
    size_t n = 1;
    if (!w->cfg->job && (e = drv_queue_job_list(w->q, &ids, &n))) {
        int64_t until = 0;
        redis_failed(w, e, "listing jobs", &w->disc_bo, &until);
        if (until > w->next_discover) w->next_discover = until;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = ids ? ids[i] : w->cfg->job;
        e = drv_queue_job_get(w->q, id, &j);
        if (e == DRV_OK && j.partitions < 1) {
            char why[160];
            snprintf(why, sizeof why, "its job hash says partitions %d", j.partitions);
            job_broken(w, id, why, now);
        } else if (e == DRV_OK) {
            update_job(w, &j, now);
        } else if (e == DRV_ECORRUPT) {
            job_broken(w, id, drv_queue_strerror(w->q, e), now);
        } else if (e != DRV_ENOJOB) {
            int64_t until = 0;
            redis_failed(w, e, "reading a job", &w->disc_bo, &until);
            if (until > w->next_discover) w->next_discover = until;
            free(ids);
            return; /* what was not read is not taken for deleted */
        }
    }
    free(ids);
    if (w->disc_bo.fails) drv_backoff_ok_log(&w->disc_bo, now, "reading jobs");
    for (int i = 0; i < w->njobs; i++)
        if (!w->jobs[i].seen) job_missing(w, i, now);
    w->discovered_any = 1;
}

/* A job discovery does not find now but did before, not yet taken for gone. */
static int any_missing(const wstate *w) {
    for (int i = 0; i < w->njobs; i++)
        if (w->jobs[i].missing_since && !w->jobs[i].gone) return 1;
    return 0;
}

/* The shortest lease of the jobs served (30 s before any is known): the claim size keeps a
 * fraction of it queued. */
static int64_t shortest_lease(const wstate *w) {
    int64_t lease = 0;
    for (int i = 0; i < w->njobs; i++)
        if (w->jobs[i].active && (!lease || w->jobs[i].lease_ms < lease))
            lease = w->jobs[i].lease_ms;
    return lease ? lease : 30000;
}

/* Items that could start now: the free slots, or less when the handlers of the jobs served
 * take fewer (4 command processes in a worker whose slots also count 100 HTTP requests). */
static int room_to_run(const wstate *w) {
    int64_t room = 0, free = w->cfg->slots - w->running;
    for (int k = 0; k < w->nhs && room < free; k++) {
        int used = 0;
        for (int i = 0; i < w->njobs && !used; i++)
            used = w->jobs[i].active && handler_of(w, &w->jobs[i]) == w->hs[k];
        if (used) room += w->hs[k]->ops->capacity(w->hs[k]);
    }
    return (int)(room < free ? room : free);
}

static int any_active(const wstate *w) {
    for (int i = 0; i < w->njobs; i++)
        if (w->jobs[i].active) return 1;
    return 0;
}

/* ---- claiming -------------------------------------------------------------------------------- */

#define STINT 4 /* claims in a row from the partition whose acks they carry */

static drv_err ack_claim(wstate *w, int ji, int p, int n, drv_claim *c);
static int acks_waiting(const wstate *w, int ji, int64_t now);

/* Items this worker holds of job ji: claimed and not yet acknowledged (queued, running, or
 * finished with the result not yet sent): what its leases in Redis are. */
static int64_t job_held(const wstate *w, int ji) {
    int64_t n = 0;
    for (int i = 0; i < w->nheld; i++)
        n += w->held[i].job == ji;
    for (int i = 0; i < w->nres; i++)
        n += w->res[i].job == ji;
    return n;
}

/* May job j be claimed from now: running, not told to wait, and a partition not known empty. */
static int has_work(const wjob *j, int64_t now) {
    if (!j->active || j->skip_until > now || j->cool_until > now || j->admit_until > now) return 0;
    for (int p = 0; p < j->partitions; p++)
        if (j->empty_until[p] <= now) return 1;
    return 0;
}

/* Asks the job's fleet-wide limits for up to n items. Returns how many may be claimed (0:
 * not now, with admit_until set), or -1 on a lost connection. */
static int64_t admit(wstate *w, int ji, int64_t now, int64_t n) {
    wjob *j = &w->jobs[ji];
    int64_t mine = job_held(w, ji);
    drv_admit a;
    drv_err e = drv_queue_admit_answers(w->q, j->id, w->cfg->id, n, mine, j->unused, j->sig_bad,
                                        j->sig_good, &a);
    if (e) {
        if (job_failed(w, j, e, "asking the limits of", &j->admit_until)) return -1;
        return 0;
    }
    job_ok(j);
    j->unused = 0;
    j->sig_bad = j->sig_good = 0;
    j->reported = mine + a.granted;
    j->last_admit = now;
    if (a.granted > 0) return a.granted;
    j->admit_until = now + policy_admit_retry_ms(a.wait_ms, (int64_t)drv_rand(30));
    return 0;
}

/* Claims from the job with work that holds the least of this worker's slots for its weight
 * (so two running jobs of weight 1 split the worker about evenly, and a job without work
 * holds no slots), at most up to its weighted share while it is under it. Returns items
 * claimed, 0 when no job had any, -1 on a lost connection. */
static int claim_once(wstate *w, int64_t now, int want) {
    if (!w->njobs) return 0;
    policy_job *pj = realloc(w->pjobs, sizeof *pj * (size_t)w->njobs);
    if (!pj) return 0;
    w->pjobs = pj;
    for (int i = 0; i < w->njobs; i++) {
        int work = has_work(&w->jobs[i], now);
        pj[i] = (policy_job){work, 0, w->jobs[i].weight, work ? job_held(w, i) : 0};
    }
    int64_t wsum = policy_weight_sum(pj, w->njobs);
    if (!wsum) return 0;
    for (int tried = 0; tried < w->njobs; tried++) {
        int ji = policy_pick_job(pj, w->njobs, w->rr_job);
        if (ji < 0) break;
        pj[ji].tried = 1;
        wjob *j = &w->jobs[ji];
        int64_t n = policy_claim_size(want, w->fair_cap, &pj[ji], wsum);
        if (j->limited) {
            n = admit(w, ji, now, n);
            if (n < 0) return -1;
            if (n == 0) continue;
        }
        /* A partition this worker has acks for goes first: they go with the claim. At most
         * STINT claims in a row, then the round robin moves on, so the partitions drain
         * evenly (a partition left far behind would be split by the coordinator). */
        int first = j->stint < STINT ? acks_waiting(w, ji, now) : -1;
        if (first < 0) j->stint = 0;
        for (int k = 0; k < j->partitions; k++) {
            int p = ((first >= 0 ? first : j->rr) + k) % j->partitions;
            if (j->empty_until[p] > now) continue;
            drv_claim c;
            int64_t t0 = now_us();
            drv_err e = ack_claim(w, ji, p, (int)n, &c);
            if (!e) claimsize_rtt(&w->cs, now_us() - t0);
            if (e == DRV_EPAUSED || e == DRV_ECANCELLED || e == DRV_ENOJOB) {
                j->skip_until = now + 500;
                w->next_discover = now; /* learn the new state soon */
                break;
            }
            if (e) {
                if (part_failed(w, ji, p, e, "claiming")) {
                    if (j->limited) j->unused += n;
                    return -1;
                }
                j->empty_until[p] = j->pbo_until[p];
                continue;
            }
            part_ok(w, ji, p);
            if (c.n > 0) writes_ok(w);
            w->redis_now = c.now_ms;
            if (c.cooldown_until > c.now_ms) {
                /* Another worker was told to slow down: this one honours it too. */
                j->cool_until = now + (c.cooldown_until - c.now_ms);
                break;
            }
            if (c.n == 0) {
                /* Back off this partition, longer with each empty claim in a row (up to
                 * IDLE_PROBE_MS); once all of the job's are idle, probe_idle asks for them. */
                j->empties[p]++;
                j->empty_until[p] = now + claimsize_idle_ms(w->cfg->idle_ms, j->empties[p],
                                                            (double)drv_rand(1000) / 1000.0);
                free(c.items);
                continue;
            }
            j->empties[p] = 0;
            for (size_t i = 0; i < c.n; i++) {
                held *h = &w->held[w->nheld++];
                h->l = c.items[i];
                h->job = ji;
                h->part = p;
                h->started = 0;
                h->tag = 0;
                h->seq = ++w->next_seq;
                h->stale = 0;
            }
            free(c.items);
            if (j->limited) j->unused += n - (int64_t)c.n;
            j->stint = p == first ? j->stint + 1 : 0;
            j->rr = (p + 1) % j->partitions;
            w->rr_job = (ji + 1) % w->njobs;
            return (int)c.n;
        }
        /* Nothing found: the grant goes back to the bucket with the next call. */
        if (j->limited) j->unused += n;
    }
    return 0;
}

/* A job whose every partition came up empty IDLE_PROBE_AFTER claims in a row is idle: instead
 * of a claim script per partition, this worker asks the lengths of their pending lists in one
 * round trip about every IDLE_PROBE_MS, and claims only from a partition that has items. Every
 * IDLE_CLAIM_EVERY-th time it claims from each anyway: a claim recovers expired leases and due
 * retries itself (invariant 1), which the coordinator's pass otherwise puts in pending. So 500
 * idle workers cost Redis little, and new items, retries come due and items handed back are
 * taken within about a second of reaching a pending list. */
static void probe_idle(wstate *w, int64_t now) {
    for (int i = 0; i < w->njobs && w->connected; i++) {
        wjob *j = &w->jobs[i];
        if (!j->active || now < j->probe_at || j->partitions < 1) continue;
        int idle = 1;
        for (int p = 0; p < j->partitions && idle; p++)
            idle = j->empties[p] >= IDLE_PROBE_AFTER;
        if (!idle) {
            j->probes = 0;
            continue;
        }
        j->probe_at = now + IDLE_PROBE_MS * 3 / 4 + (int64_t)drv_rand(IDLE_PROBE_MS / 2);
        int *parts = malloc(sizeof *parts * (size_t)j->partitions);
        int64_t *lens = malloc(sizeof *lens * (size_t)j->partitions);
        drv_err e = DRV_ENOMEM;
        if (parts && lens && ++j->probes % IDLE_CLAIM_EVERY) {
            for (int p = 0; p < j->partitions; p++)
                parts[p] = p;
            e = drv_queue_pending(w->q, j->id, parts, j->partitions, lens);
        }
        free(parts);
        if (e == DRV_EIO) {
            free(lens);
            redis_failed(w, e, "asking for pending items", NULL, NULL);
            return;
        }
        /* Not asked, or the answer failed: the claims go ahead (and say what fails). */
        for (int p = 0; p < j->partitions; p++)
            if (e || lens[p] > 0)
                j->empty_until[p] = 0;
            else if (j->empty_until[p] < j->probe_at)
                j->empty_until[p] = j->probe_at;
        free(lens);
    }
}

/* Tells the limits what this worker holds of each limited job when that changed (items
 * finished, a grant unused) and no claim said it for 100 ms, and at least every lease_ms/3
 * while it holds any, so its entry stays fresh as long as its leases do. */
static void report_limits(wstate *w, int64_t now, int force) {
    for (int i = 0; i < w->njobs && w->connected; i++) {
        wjob *j = &w->jobs[i];
        if ((!j->limited && !j->reported) || (!force && now < j->report_until)) continue;
        int64_t mine = job_held(w, i);
        policy_report r = {mine, j->reported, j->unused, j->last_admit, j->lease_ms};
        if (!policy_report_due(&r, now, force)) continue;
        drv_admit a;
        drv_err e = drv_queue_admit_answers(w->q, j->id, w->cfg->id, 0, mine, j->unused, j->sig_bad,
                                            j->sig_good, &a);
        if (e) {
            job_failed(w, j, e, "reporting to the limits of", &j->report_until);
            continue;
        }
        job_ok(j);
        j->unused = 0;
        j->sig_bad = j->sig_good = 0;
        j->reported = mine;
        j->last_admit = now;
    }
}

/* Milliseconds until report_limits has something to say, at most 'cap'. */
static int64_t report_due_in(const wstate *w, int64_t now, int64_t cap) {
    for (int i = 0; i < w->njobs; i++) {
        const wjob *j = &w->jobs[i];
        if (!j->limited && !j->reported) continue;
        policy_report r = {job_held(w, i), j->reported, j->unused, j->last_admit, j->lease_ms};
        int64_t at = policy_report_at(&r);
        if (at >= 0 && at < j->report_until) at = j->report_until;
        if (at >= 0 && at - now < cap) cap = at > now ? at - now : 0;
    }
    return cap;
}

/* ---- results --------------------------------------------------------------------------------- */

static void result_clear(result *r) {
    drv_lease_clear(&r->l);
    free(r->out.response);
    r->out.response = NULL;
}

static void add_result(wstate *w, held *h, const drv_outcome *out) {
    if (h->stale) { /* of a replaced job: nothing to record */
        drv_lease_clear(&h->l);
        free(out->response);
        return;
    }
    if (w->nres == w->cap_res) {
        int cap = w->cap_res ? w->cap_res * 2 : 64;
        result *r = realloc(w->res, sizeof *r * (size_t)cap);
        if (!r) {
            drv_error("out of memory buffering a result; the item's lease will expire");
            drv_lease_clear(&h->l);
            free(out->response);
            return;
        }
        w->res = r;
        w->cap_res = cap;
    }
    if (w->nres == 0) w->oldest_res = drv_now_ms();
    result *r = &w->res[w->nres++];
    r->l = h->l;
    r->job = h->job;
    r->part = h->part;
    r->out = *out;
    if (out->ok)
        w->n_ok++;
    else
        w->n_failed++;
}

/* Groups entries by (job, partition) and calls fn once per group with their indexes. */
typedef int (*group_fn)(wstate *w, int job, int part, int *idx, int n);

static int for_groups(wstate *w, int n, int (*job_of)(wstate *, int), int (*part_of)(wstate *, int),
                      group_fn fn) {
    int *idx = malloc(sizeof *idx * (size_t)(n ? n : 1));
    char *taken = calloc((size_t)(n ? n : 1), 1);
    int rc = 0;
    if (!idx || !taken) rc = -1;
    for (int i = 0; i < n && rc == 0; i++) {
        if (taken[i]) continue;
        int k = 0, job = job_of(w, i), part = part_of(w, i);
        for (int m = i; m < n; m++)
            if (!taken[m] && job_of(w, m) == job && part_of(w, m) == part) {
                idx[k++] = m;
                taken[m] = 1;
            }
        rc = fn(w, job, part, idx, k);
    }
    free(idx);
    free(taken);
    return rc;
}

static int res_job(wstate *w, int i) {
    return w->res[i].job;
}
static int res_part(wstate *w, int i) {
    return w->res[i].part;
}
static int held_job(wstate *w, int i) {
    return w->held[i].stale ? -1 : w->held[i].job; /* -1: not extended or handed back */
}
static int held_part(wstate *w, int i) {
    return w->held[i].part;
}

/* Marks results idx[0..n) as recorded, so they are not sent again. */
static void mark_recorded(wstate *w, const int *idx, int n) {
    for (int k = 0; k < n; k++)
        w->res[idx[k]].job = -1;
}

/* --ack-log: one "JOB ID" line per acked item, written with one write() per ack call (the
 * file is O_APPEND, so several workers can share it). A failed write is said once. */
static void write_ack_log(wstate *w, const char *jid, const drv_ref *acks, int n) {
    if (w->cfg->ack_log < 0 || n == 0) return;
    size_t cap = 0, jl = strlen(jid), len = 0;
    for (int k = 0; k < n; k++)
        cap += jl + acks[k].idlen + 2;
    char *buf = malloc(cap);
    if (!buf) return;
    for (int k = 0; k < n; k++) {
        memcpy(buf + len, jid, jl);
        len += jl;
        buf[len++] = ' ';
        memcpy(buf + len, acks[k].id, acks[k].idlen);
        len += acks[k].idlen;
        buf[len++] = '\n';
    }
    size_t off = 0;
    while (off < len) {
        ssize_t wr = write(w->cfg->ack_log, buf + off, len - off);
        if (wr < 0 && errno == EINTR) continue;
        if (wr <= 0) {
            if (!w->ack_log_warned) drv_warn("cannot write the ack log: %s", strerror(errno));
            w->ack_log_warned = 1;
            break;
        }
        off += (size_t)wr;
    }
    free(buf);
}

/* Drops the results marked recorded. */
static void drop_recorded(wstate *w) {
    int k = 0;
    for (int i = 0; i < w->nres; i++) {
        if (w->res[i].job < 0)
            result_clear(&w->res[i]);
        else
            w->res[k++] = w->res[i];
    }
    if (k && k != w->nres) w->oldest_res = drv_now_ms();
    w->nres = k;
}

/* A partition of job ji, not known empty, with ok results waiting to be acked; -1 if none. */
static int acks_waiting(const wstate *w, int ji, int64_t now) {
    for (int i = 0; i < w->nres; i++) {
        const result *r = &w->res[i];
        if (r->job == ji && r->out.ok && w->jobs[ji].empty_until[r->part] <= now) return r->part;
    }
    return -1;
}

/* The one ack path, for a flush and for a claim. Sends the acks of results ia[0..n) (all ok, of
 * job ji's partition p): with claim_n > 0 in one script call with a claim of up to claim_n
 * items (lua/ackclaim.lua, *c filled), else alone. Acks Redis recorded (the answer OK, or
 * PAUSED or CANCELLED from a claim: the acks went in before the claim was refused) are marked
 * recorded and written to the ack log. ENOJOB (the job was deleted under this worker): nothing
 * can be recorded, so they are marked recorded too, counted as dropped and not logged. Other
 * errors leave them for the next try. Returns the call's error. */
static drv_err send_acks(wstate *w, int ji, int p, const int *ia, int n, int claim_n,
                         drv_claim *c) {
    const char *jid = w->jobs[ji].id;
    drv_ref *acks = n ? malloc(sizeof *acks * (size_t)n) : NULL;
    drv_bytes *resp = n ? malloc(sizeof *resp * (size_t)n) : NULL;
    if (!acks || !resp) {
        free(acks);
        free(resp);
        /* Without acks (or the memory for them) a claim goes alone; the acks go with a flush. */
        return claim_n ? drv_queue_claim(w->q, jid, p, w->cfg->id, claim_n, c)
               : n     ? DRV_ENOMEM
                       : DRV_OK;
    }
    int keep = 0;
    for (int k = 0; k < n; k++) {
        const result *r = &w->res[ia[k]];
        resp[k] = (drv_bytes){r->out.response, r->out.resplen};
        keep |= r->out.response != NULL;
        acks[k] = (drv_ref){r->l.id, r->l.idlen, r->l.token};
    }
    drv_ack_result a = {0};
    drv_err e = claim_n ? drv_queue_ackclaim(w->q, jid, p, w->cfg->id, claim_n, acks,
                                             keep ? resp : NULL, (size_t)n, &a, c)
                        : drv_queue_ack_keep(w->q, jid, p, acks, keep ? resp : NULL, (size_t)n, &a);
    int recorded = e == DRV_OK || e == DRV_EPAUSED || e == DRV_ECANCELLED;
    if (recorded || e == DRV_ENOJOB) mark_recorded(w, ia, n);
    if (e == DRV_ENOJOB) w->jobs[ji].dropped += n;
    if (recorded) write_ack_log(w, jid, acks, n);
    if (recorded && a.duplicates)
        drv_warn("job %s partition %d: %" PRId64 " acks came after the lease was lost "
                 "(counted as duplicates)",
                 jid, p, a.duplicates);
    if (e == DRV_OK) writes_ok(w);
    free(acks);
    free(resp);
    return e;
}

/* Claims up to n items of job ji's partition p, sending the partition's waiting acks (up to
 * DRV_BATCH_MAX) in the same script call (lua/ackclaim.lua): one round trip per batch. Acks it
 * recorded leave the results; errors are those of drv_queue_claim. */
static drv_err ack_claim(wstate *w, int ji, int p, int n, drv_claim *c) {
    int *ia = malloc(sizeof *ia * (size_t)(w->nres ? w->nres : 1));
    if (!ia) return drv_queue_claim(w->q, w->jobs[ji].id, p, w->cfg->id, n, c);
    int na = 0;
    for (int i = 0; i < w->nres; i++)
        if (w->res[i].job == ji && w->res[i].part == p && w->res[i].out.ok) ia[na++] = i;
    if (na > DRV_BATCH_MAX) na = DRV_BATCH_MAX;
    drv_err e = send_acks(w, ji, p, ia, na, n, c);
    free(ia);
    if (na) drop_recorded(w);
    return e;
}

/* Sends one partition's results: acks, failures, and items handed back. Each kind is marked
 * recorded as soon as its call succeeds, so a connection lost between two calls does not send
 * the first kind again (a repeated ack would be miscounted as a duplicate). */
static int flush_group(wstate *w, int job, int part, int *idx, int n) {
    int64_t now = drv_now_ms();
    /* Refused writes, or the partition backing off: the results wait (nothing is dropped). */
    if (!w->connected || now < w->full_until || now < w->jobs[job].pbo_until[part]) return 0;
    drv_failure *fails = malloc(sizeof *fails * (size_t)n);
    drv_ref *back = malloc(sizeof *back * (size_t)n);
    int *ia = malloc(sizeof *ia * (size_t)n), *ifl = malloc(sizeof *ifl * (size_t)n),
        *ib = malloc(sizeof *ib * (size_t)n);
    int na = 0, nf = 0, nb = 0, rc = 0;
    if (!fails || !back || !ia || !ifl || !ib) {
        rc = -1;
        goto out;
    }
    for (int k = 0; k < n; k++) {
        result *r = &w->res[idx[k]];
        drv_ref ref = {r->l.id, r->l.idlen, r->l.token};
        if (r->out.ok) {
            ia[na++] = idx[k];
        } else if (r->out.retryable_local) {
            ib[nb] = idx[k];
            back[nb++] = ref;
        } else {
            ifl[nf] = idx[k];
            fails[nf++] = (drv_failure){
                ref,          r->out.permanent,    r->out.throttled, r->out.retry_after_ms,
                r->out.error, strlen(r->out.error)};
        }
    }
    const char *jid = w->jobs[job].id;
    drv_err e = na ? send_acks(w, job, part, ia, na, 0, NULL) : DRV_OK;
    if (!e && nf) {
        drv_fail_result f;
        e = drv_queue_fail(w->q, jid, part, fails, (size_t)nf, &f);
        if (!e) mark_recorded(w, ifl, nf);
        if (!e && f.dead)
            drv_warn("job %s partition %d: %" PRId64 " items dead-lettered (see drover dead %s)",
                     jid, part, f.dead, jid);
    }
    if (!e && nb) {
        e = drv_queue_release(w->q, jid, part, back, (size_t)nb, NULL);
        if (!e) mark_recorded(w, ib, nb);
    }
    if (e == DRV_ENOJOB) {
        /* The job was deleted under us: nothing to record (send_acks counted its own). */
        for (int k = 0; k < n; k++)
            if (w->res[idx[k]].job >= 0) {
                w->res[idx[k]].job = -1;
                w->jobs[job].dropped++;
            }
    } else if (e) {
        part_failed(w, job, part, e, "recording results"); /* the others' results go on */
    } else {
        part_ok(w, job, part);
        writes_ok(w);
    }
out:
    free(fails);
    free(back);
    free(ia);
    free(ifl);
    free(ib);
    return rc;
}

/* When a buffered result may be sent next (local ms): now, or later while Redis refuses writes
 * or its partition backs off after an error; -1 with none. */
static int64_t flush_at(const wstate *w, int64_t now) {
    int64_t at = -1;
    for (int i = 0; i < w->nres && at != now; i++) {
        const result *r = &w->res[i];
        if (r->job < 0) continue;
        int64_t t = w->jobs[r->job].pbo_until[r->part];
        if (t < now) t = now;
        if (at < 0 || t < at) at = t;
    }
    if (at >= 0 && at < w->full_until) at = w->full_until;
    return at;
}

/* Sends every buffered result. Results that could not be sent stay for the next try. */
static void flush_results(wstate *w) {
    if (w->nres == 0) return;
    for_groups(w, w->nres, res_job, res_part, flush_group);
    drop_recorded(w);
    if (w->nres) w->oldest_res = drv_now_ms();
}

/* ---- leases ---------------------------------------------------------------------------------- */

/* The lease references of held[idx[0..n)]. Caller frees. */
static drv_ref *held_refs(const wstate *w, const int *idx, int n) {
    drv_ref *refs = malloc(sizeof *refs * (size_t)n);
    for (int k = 0; refs && k < n; k++) {
        const held *h = &w->held[idx[k]];
        refs[k] = (drv_ref){h->l.id, h->l.idlen, h->l.token};
    }
    return refs;
}

static int extend_group(wstate *w, int job, int part, int *idx, int n) {
    int64_t now = drv_now_ms();
    if (job < 0 || !w->connected || now < w->full_until || now < w->jobs[job].pbo_until[part])
        return 0;
    drv_ref *refs = held_refs(w, idx, n);
    if (!refs) return -1;
    int64_t lost = 0;
    drv_err e = drv_queue_extend(w->q, w->jobs[job].id, part, refs, (size_t)n, &lost);
    free(refs);
    if (e) {
        /* This partition backs off; the others' leases are extended all the same. */
        if (e != DRV_ENOJOB) part_failed(w, job, part, e, "extending leases");
        return 0;
    }
    part_ok(w, job, part);
    if (lost) {
        w->n_lost += lost;
        drv_warn("lease lost job=%s partition=%d items=%" PRId64
                 " (expired before this worker extended it; another worker may run them)",
                 w->jobs[job].id, part, lost);
    }
    return 0;
}

static void extend_leases(wstate *w, int64_t now) {
    int64_t lease = 0;
    for (int i = 0; i < w->njobs; i++)
        if (!lease || w->jobs[i].lease_ms < lease) lease = w->jobs[i].lease_ms;
    w->next_extend = now + (lease ? lease / 3 : 1000);
    /* Writes refused: try again as soon as the refusal's backoff is over. */
    if (now < w->full_until) w->next_extend = w->full_until;
    if (w->nheld) for_groups(w, w->nheld, held_job, held_part, extend_group);
}

/* Hands back queued (never started) items. */
static int release_group(wstate *w, int job, int part, int *idx, int n) {
    if (job < 0) return 0;
    drv_ref *refs = held_refs(w, idx, n);
    if (!refs) return -1;
    int64_t got = 0;
    drv_err e = drv_queue_release(w->q, w->jobs[job].id, part, refs, (size_t)n, &got);
    free(refs);
    if (e && e != DRV_ENOJOB) part_failed(w, job, part, e, "handing back items");
    return 0;
}

static void release_queued(wstate *w) {
    /* Move queued items to the front, release them as a group, then drop them. */
    int k = 0;
    for (int i = 0; i < w->nheld; i++)
        if (!started(&w->held[i])) {
            held t = w->held[k];
            w->held[k++] = w->held[i];
            w->held[i] = t;
        }
    if (k == 0) return;
    if (w->connected) {
        for_groups(w, k, held_job, held_part, release_group);
        drv_info("handed back %d items that had not started", k);
    } else {
        drv_warn("Redis is unreachable: %d unstarted items return when their leases expire", k);
    }
    for (int i = 0; i < k; i++)
        drv_lease_clear(&w->held[i].l);
    memmove(w->held, w->held + k, sizeof *w->held * (size_t)(w->nheld - k));
    w->nheld -= k;
}

/* ---- running items --------------------------------------------------------------------------- */

/* A handler could not be started for a local reason (fork failed, out of memory): the item
 * goes back, and starting waits for a backoff, said once per episode. */
static void start_failed(wstate *w, const wjob *j, const held *h, const drv_outcome *out,
                         int64_t now) {
    char err[2300];
    snprintf(err, sizeof err, "%s (job %s item %s handed back)", out->error, j->id, h->l.id);
    w->start_until = now + drv_backoff_fail_log(&w->start_bo, now, "starting items", err);
}

/* Starts held[i] and the next queued items of its job in one start() call (a --stdin-batch
 * process takes several), within --concurrency's items and what its handler takes now. An
 * item that cannot start gets its outcome at once and leaves the held array (*removed = 1).
 * Returns how many started. */
static int start_group(wstate *w, int i, int64_t now, int *removed) {
    held *h = &w->held[i];
    wjob *j = &w->jobs[h->job];
    *removed = 0;
    if (started(h) || j->cool_until > now) return 0;
    handler *hd = handler_of(w, j);
    int room = hd->ops->capacity(hd);
    if (room > w->cfg->slots - w->running) room = w->cfg->slots - w->running;
    if (room <= 0) return 0;
    int n = 0;
    for (int m = i; m < w->nheld && n < room; m++) {
        held *x = &w->held[m];
        if (started(x) || x->job != h->job) continue;
        x->tag = ++w->next_tag;
        trace_begin(&x->tc, x->l.payload ? x->l.payload : x->l.id,
                    x->l.payload ? x->l.plen : x->l.idlen);
        x->start_ns = wall_ns();
        w->hitems[n] = (hitem){&x->l, x->tag, j->keep, x->tc.traceparent};
        w->hidx[n++] = m;
    }
    drv_outcome out;
    int k = hd->ops->start(hd, j->id, j->http, w->hitems, n, &out);
    if (k > 0) {
        for (int m = 0; m < k; m++)
            w->held[w->hidx[m]].started = 1;
        w->running += k;
        if (w->start_bo.fails) drv_backoff_ok_log(&w->start_bo, now, "starting items");
        return k;
    }
    if (out.retryable_local) start_failed(w, j, h, &out, now);
    add_result(w, h, &out);
    w->held[i] = w->held[--w->nheld];
    *removed = 1;
    return 0;
}

/* Gives queued items to their handlers. The oldest queued item goes first: finish_item moves
 * the newest item into the place it frees, so array order alone could pass over an old item
 * for as long as a standing queue keeps being refilled (its lease extended all the while).
 * Returns how many started. */
static int start_items(wstate *w, int64_t now) {
    int total = 0, removed;
    if (now < w->start_until) return 0;
    int o = -1;
    for (int i = 0; i < w->nheld; i++) {
        const held *h = &w->held[i];
        if (!started(h) && w->jobs[h->job].cool_until <= now && (o < 0 || h->seq < w->held[o].seq))
            o = i;
    }
    if (o >= 0 && w->running < w->cfg->slots) total += start_group(w, o, now, &removed);
    for (int i = 0; i < w->nheld && w->running < w->cfg->slots && now >= w->start_until; i++) {
        total += start_group(w, i, now, &removed);
        if (removed) i--;
    }
    return total;
}

/* Children that exited go to the handler that started them. */
static void reap_children(wstate *w) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        for (int k = 0; k < w->nhs; k++)
            if (w->hs[k]->ops->child_exited(w->hs[k], pid, status)) break;
    }
}

/* Pauses the job's whole fleet for an API's Retry-After: for that long (at most
 * backoff_max_ms), once per episode. The answers that arrive while a pause runs are to
 * requests sent before it, so they say nothing new and start nothing: a burst of 64
 * Retry-After answers is one pause, not 64 (nor one that grows with their count). Answers
 * without a Retry-After never pause the fleet; the items they belong to back off alone. */
static void start_cooldown(wstate *w, int ji, int64_t retry_after_ms, int64_t now) {
    wjob *j = &w->jobs[ji];
    if (retry_after_ms <= 0 || j->cool_until > now) return;
    int64_t ms = retry_after_ms < j->backoff_max_ms ? retry_after_ms : j->backoff_max_ms;
    if (ms <= 0) return;
    j->cool_until = now + ms;
    drv_warn("job %s: the API sent Retry-After; no worker claims or starts its items for %.1f s",
             j->id, (double)ms / 1000.0);
    if (!w->connected) return;
    drv_err e = drv_queue_cooldown(w->q, j->id, j->partitions, ms, NULL);
    if (e && e != DRV_ENOJOB) job_failed(w, j, e, "starting a cool-down of", NULL);
}

/* --otlp-endpoint: the span of a started attempt that ended with 'out'. */
static void export_span(wstate *w, const held *h, const drv_outcome *out) {
    if (!w->cfg->otlp) return;
    const char *outcome = out->ok                ? "ok"
                          : out->throttled       ? "throttled"
                          : out->retryable_local ? "handed_back"
                          : out->permanent       ? "dead"
                                                 : "failed";
    otlp_span(w->cfg->otlp, w->jobs[h->job].id, h->l.id, h->l.idlen, h->l.attempt, &h->tc,
              h->start_ns, wall_ns(), outcome, out->ok ? NULL : out->error);
}

/* Running item i finished with 'out': its result is buffered, it leaves the held array. */
static void finish_item(wstate *w, int i, drv_outcome *out, int64_t now) {
    held *h = &w->held[i];
    wjob *j = &w->jobs[h->job];
    export_span(w, h, out);
    if (out->throttled)
        j->sig_bad++;
    else if (out->ok)
        j->sig_good++;
    if (!out->ok)
        drv_info("job %s item %s attempt %d failed: %s", w->jobs[h->job].id, h->l.id, h->l.attempt,
                 out->error);
    if (out->cooldown) start_cooldown(w, h->job, out->retry_after_ms, now);
    w->running--;
    add_result(w, h, out);
    w->held[i] = w->held[--w->nheld];
}

/* Takes the handlers' finished items. Returns how many. */
static int collect(wstate *w, int64_t now) {
    int n = 0;
    for (int k = 0; k < w->nhs; k++) {
        handler *hd = w->hs[k];
        uint64_t tag;
        drv_outcome out;
        while (hd->ops->take_done(hd, now, &tag, &out)) {
            int i = 0;
            while (i < w->nheld && !(w->held[i].started && w->held[i].tag == tag))
                i++;
            if (i == w->nheld) { /* cannot happen: every item a handler runs is held */
                free(out.response);
                continue;
            }
            finish_item(w, i, &out, now);
            n++;
        }
    }
    if (n) claimsize_finished(&w->cs, n, now_us());
    return n;
}

/* One round that does not wait (poll with timeout 0): answers a handler has already written
 * (a --serve process that finished item A and hangs on B) are recorded, rather than read and
 * thrown away when the grace period ends and the processes are killed, which would hand A
 * back to run again. */
static void collect_answered(wstate *w, struct pollfd *fds, int fdcap, handler *waiter) {
    int nf = 0, first[2], count[2];
    for (int k = 0; k < w->nhs; k++) {
        first[k] = nf;
        count[k] = w->hs[k]->ops->pollfds(w->hs[k], &fds[nf], fdcap - nf);
        nf += count[k];
    }
    int pr = waiter ? waiter->ops->wait(waiter, fds, nf, 0) : poll(fds, (nfds_t)nf, 0);
    for (int k = 0; k < w->nhs; k++)
        w->hs[k]->ops->service(w->hs[k], &fds[first[k]], pr > 0 ? count[k] : 0, drv_now_ms());
    reap_children(w);
    collect(w, drv_now_ms());
}

/* Gives up on running items at the end of the grace period: the handlers stop them and the
 * items are handed back (it was not their fault). */
static void abandon_running(wstate *w) {
    for (int k = 0; k < w->nhs; k++)
        w->hs[k]->ops->abandon(w->hs[k]);
    for (int i = 0; i < w->nheld; i++) {
        held *h = &w->held[i];
        if (!started(h)) continue;
        w->running--;
        drv_outcome out;
        memset(&out, 0, sizeof out);
        out.retryable_local = 1;
        export_span(w, h, &out);
        add_result(w, h, &out);
        w->held[i--] = w->held[--w->nheld];
    }
}

static void kill_all(wstate *w) {
    for (int k = 0; k < w->nhs; k++)
        w->hs[k]->ops->kill_all(w->hs[k]);
}

/* ---- the loop
 * ------------------------------------------------------------------------------------- */

static int setup_signals(void) {
    if (pipe(sig_pipe) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(sig_pipe[i], F_SETFL, fcntl(sig_pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Reports this worker to the registry (drover workers); *drain is set once an operator asked
 * it to drain (drover drain). */
static drv_err heartbeat(wstate *w, int draining, int *drain) {
    drv_worker_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.id, sizeof info.id, "%s", w->cfg->id);
    gethostname(info.host, sizeof info.host - 1);
    info.pid = (int64_t)getpid();
    snprintf(info.version, sizeof info.version, "%s", DROVER_VERSION);
    snprintf(info.state, sizeof info.state, "%s", draining ? "draining" : "running");
    size_t off = 0;
    info.lease_ms = 0;
    for (int i = 0; i < w->njobs; i++) {
        const wjob *j = &w->jobs[i];
        if (!j->active) continue;
        int n = snprintf(info.jobs + off, sizeof info.jobs - off, "%s%s", off ? "," : "", j->id);
        if (n > 0 && (size_t)n < sizeof info.jobs - off) off += (size_t)n;
        if (j->lease_ms > info.lease_ms) info.lease_ms = j->lease_ms;
    }
    if (!info.lease_ms) info.lease_ms = 30000;
    info.in_flight = w->running;
    info.queued = w->nheld - w->running;
    info.done = w->n_ok;
    info.failed = w->n_failed;
    info.spans_dropped = w->cfg->otlp ? otlp_dropped(w->cfg->otlp) : 0;
    return drv_queue_heartbeat(w->q, &info, drain, NULL);
}

static void log_stats(wstate *w) {
    drv_info("worker %s: %" PRId64 " done, %" PRId64 " failed, %d running, %d queued", w->cfg->id,
             w->n_ok, w->n_failed, w->running, w->nheld - w->running);
}

int worker_run(const worker_cfg *cfg, drv_queue *q) {
    wstate w;
    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    w.q = q;
    w.connected = 1;
    /* --batch K: every claim asks for K; else the size adapts, up to what a script takes. */
    claimsize_init(&w.cs, cfg->batch ? cfg->batch : DRV_BATCH_MAX, cfg->batch > 0);
    w.last_claim = cfg->batch ? cfg->batch : cfg->slots;
    w.cap_held = cfg->slots + w.cs.max;
    w.held = calloc((size_t)w.cap_held, sizeof *w.held);
    w.hitems = calloc((size_t)w.cap_held, sizeof *w.hitems);
    w.hidx = calloc((size_t)w.cap_held, sizeof *w.hidx);
    /* Handler processes have up to 3 pipes each; the first entry is the signal pipe. */
    int fdcap = cfg->concurrency * 3 + 1;
    struct pollfd *fds = calloc((size_t)fdcap, sizeof *fds);
    if (cfg->own) w.hs[w.nhs++] = cfg->own;
    if (cfg->spec) w.hs[w.nhs++] = cfg->spec;
    handler *waiter = NULL; /* the handler that waits on the fds (libcurl), or poll() */
    for (int k = 0; k < w.nhs; k++)
        if (w.hs[k]->ops->wait) waiter = w.hs[k];
    if (!w.held || !w.hitems || !w.hidx || !fds || setup_signals() != 0) {
        drv_error("cannot set up the worker: %s", strerror(errno));
        free(w.held);
        free(w.hitems);
        free(w.hidx);
        free(fds);
        return 1;
    }
    int rc = 0, draining = 0, seen_signals = 0, drain_asked = 0;
    int64_t grace_end = 0;
    drv_info("worker %s: serving %s with %d at a time (--concurrency %d), %s%d per claim", cfg->id,
             cfg->job ? cfg->job : "every running job", cfg->slots, cfg->concurrency,
             cfg->batch ? "" : "up to ", w.cs.max);
    for (;;) {
        int64_t now = drv_now_ms();
        int start_drain = drain_asked == 1;
        if (start_drain) drain_asked = 2;
        if (w.stop_rc && !draining) start_drain = 1; /* said why when it was set */
        if (signals_seen != seen_signals) {
            seen_signals = signals_seen;
            if (seen_signals >= 2) {
                drv_warn("second signal: exiting now; held items return when their leases expire");
                kill_all(&w);
                rc = 130;
                break;
            }
            start_drain = 1;
        }
        if (start_drain && !draining) {
            draining = 1;
            grace_end = now + cfg->grace_ms;
            drv_info("draining: no more claims; %d running items get %.1f s to finish", w.running,
                     (double)cfg->grace_ms / 1000.0);
            release_queued(&w);
            for (int k = 0; k < w.nhs; k++)
                if (w.hs[k]->ops->drain) w.hs[k]->ops->drain(w.hs[k]);
        }
        if (!w.connected) try_reconnect(&w, now);
        if (w.connected) {
            if (!draining && now >= w.next_discover) discover(&w, now);
            if (w.fatal) {
                rc = w.fatal;
                break;
            }
            if (w.connected && now >= w.next_extend) extend_leases(&w, now);
            if (w.connected && now >= w.next_beat) {
                w.next_beat = now + 1000;
                int drain = 0;
                drv_err e = heartbeat(&w, draining, &drain);
                int64_t until = 0;
                if (e) redis_failed(&w, e, "sending a heartbeat", &w.beat_bo, &until);
                if (until > w.next_beat) w.next_beat = until;
                if (!e) {
                    if (w.beat_bo.fails) drv_backoff_ok_log(&w.beat_bo, now, "sending a heartbeat");
                    writes_ok(&w);
                }
                if (!e && cfg->health_file &&
                    worker_health_write(cfg->health_file, drv_wall_ms(), cfg->id) != 0 &&
                    !w.health_warned) {
                    w.health_warned = 1;
                    drv_warn("cannot write the health file %s: %s", cfg->health_file,
                             strerror(errno));
                }
                if (!e && drain && !draining) {
                    drv_info("drover drain asked this worker to finish and exit");
                    drain_asked = 1; /* drained like a SIGTERM, at the top of the loop */
                    continue;
                }
            }
            /* Claims first: a claim from a partition carries its waiting acks (ackclaim).
             * Results that could not be sent (an outage) hold leases too: with as many
             * unsent as the worker may hold, it claims nothing until they are recorded. */
            if (!draining && now >= w.full_until) probe_idle(&w, now);
            while (w.connected && now >= w.full_until && !draining && w.nres < w.cap_held) {
                int64_t lease = shortest_lease(&w);
                int want = claimsize_want(&w.cs, w.running + room_to_run(&w), w.running,
                                          w.nheld - w.running, w.cap_held - w.nheld, lease);
                if (want <= 0) break;
                w.fair_cap = cfg->batch ? w.cap_held : cfg->slots + claimsize_target(&w.cs, lease);
                w.last_claim = want;
                int got = claim_once(&w, now, want);
                if (got <= 0) break;
            }
            policy_flush f = {w.nres,   w.last_claim, w.running,
                              draining, w.oldest_res, flush_at(&w, now)};
            if (w.connected && policy_flush_now(&f, now)) flush_results(&w);
            if (w.connected) report_limits(&w, now, 0);
        }
        /* Handlers that finish at once (noop) make room for more in the same turn. */
        while (start_items(&w, now) > 0 && collect(&w, now) > 0) {
        }
        if (cfg->stats_ms && now >= w.next_stats) {
            if (w.next_stats) log_stats(&w);
            w.next_stats = now + cfg->stats_ms;
        }
        if (draining) {
            if (w.nheld == 0 && (w.nres == 0 || !w.connected)) {
                if (w.nres)
                    drv_warn("Redis is unreachable: %d results not recorded; their "
                             "items return when the leases expire",
                             w.nres);
                break;
            }
            if (now >= grace_end && w.running) {
                collect_answered(&w, fds, fdcap, waiter);
                if (w.running) {
                    drv_warn("grace period over: stopping %d running items and handing them "
                             "back",
                             w.running);
                    abandon_running(&w);
                }
                flush_results(&w);
                grace_end = now + 2000; /* last chance for the flush */
            } else if (now >= grace_end && w.nres) {
                drv_warn("could not record %d results before the grace period ended", w.nres);
                break;
            }
        }
        if (cfg->exit_when_done && !draining && !w.stop_rc && w.discovered_any && !any_active(&w) &&
            !any_missing(&w) && w.nheld == 0 && w.nres == 0) {
            wjob *x = cfg->job ? find_job(&w, cfg->job) : NULL;
            if (!cfg->job)
                drv_info("no running job left to serve; exiting");
            else if (!x || x->stub)
                drv_info("job %s does not exist (not yet submitted?); exiting", cfg->job);
            else
                drv_info("job %s is %s; exiting", cfg->job, x->state);
            if (w.vanished) {
                drv_error("%d jobs vanished while this worker served them (see above)", w.vanished);
                rc = 1;
            }
            int broken = 0;
            for (int i = 0; i < w.njobs; i++)
                broken += w.jobs[i].broken && !w.jobs[i].gone;
            if (broken) {
                drv_error("%d jobs could not be read and were not served (see above)", broken);
                rc = 1;
            }
            break;
        }
        /* Wait for a child, a signal, or the next thing due. */
        int nf = 0, first[2], count[2];
        fds[nf++] = (struct pollfd){sig_pipe[0], POLLIN, 0};
        int64_t timeout = cfg->idle_ms;
        for (int k = 0; k < w.nhs; k++) {
            first[k] = nf;
            count[k] = w.hs[k]->ops->pollfds(w.hs[k], &fds[nf], fdcap - nf);
            nf += count[k];
            int64_t d = w.hs[k]->ops->next_deadline(w.hs[k], now);
            if (d >= 0 && d < timeout) timeout = d;
        }
        int idle_claims =
            w.nheld - w.running >= cfg->slots || draining || !w.connected || now < w.full_until;
        if (w.connected && now < w.full_until && w.full_until - now < timeout)
            timeout = w.full_until - now; /* writes refused: try again after the backoff */
        if (w.nres && !w.connected) timeout = timeout < 20 ? timeout : 20;
        policy_flush f = {w.nres,   w.last_claim, w.running,
                          draining, w.oldest_res, w.nres && w.connected ? flush_at(&w, now) : -1};
        int64_t fd = policy_flush_wait(&f, now);
        if (fd >= 0 && fd < timeout) timeout = fd;
        if (!idle_claims && w.nheld < cfg->slots && any_active(&w)) {
            /* Something may be claimable soon: the earliest partition back-off. */
            int64_t soonest = now + cfg->idle_ms;
            for (int j = 0; j < w.njobs; j++) {
                if (w.jobs[j].cool_until > now) {
                    if (w.jobs[j].cool_until < soonest) soonest = w.jobs[j].cool_until;
                    continue;
                }
                if (w.jobs[j].admit_until > now) { /* the job's limits said when */
                    if (w.jobs[j].admit_until < soonest) soonest = w.jobs[j].admit_until;
                    continue;
                }
                for (int p = 0; w.jobs[j].active && p < w.jobs[j].partitions; p++)
                    if (w.jobs[j].empty_until[p] < soonest) soonest = w.jobs[j].empty_until[p];
            }
            if (soonest - now < timeout) timeout = soonest > now ? soonest - now : 0;
        }
        for (int j = 0; j < w.njobs; j++) /* queued items wait for their job's cool-down */
            if (w.jobs[j].cool_until > now && w.jobs[j].cool_until - now < timeout &&
                w.nheld > w.running)
                timeout = w.jobs[j].cool_until - now;
        if (w.connected) timeout = report_due_in(&w, now, timeout);
        if (!w.connected && w.next_reconnect - now < timeout)
            timeout = w.next_reconnect > now ? w.next_reconnect - now : 0;
        if (draining && grace_end - now < timeout) timeout = grace_end > now ? grace_end - now : 0;
        int pr = waiter ? waiter->ops->wait(waiter, fds, nf, (int)timeout)
                        : poll(fds, (nfds_t)nf, (int)timeout);
        if (pr > 0 && fds[0].revents) {
            char buf[64];
            while (read(sig_pipe[0], buf, sizeof buf) > 0) {
            }
        }
        for (int k = 0; k < w.nhs; k++) /* also after a timeout: a handler's timers run there */
            w.hs[k]->ops->service(w.hs[k], &fds[first[k]], pr > 0 ? count[k] : 0, drv_now_ms());
        reap_children(&w);
        collect(&w, drv_now_ms());
    }
    if (w.connected && w.nres) flush_results(&w);
    if (w.connected) report_limits(&w, drv_now_ms(), 1); /* its slots go back at once */
    if (rc == 0 && w.stop_rc) rc = w.stop_rc;
    log_stats(&w);
    /* A clean exit leaves the registry; a crashed worker stays and shows as lost. */
    if (w.connected && rc != 130) (void)drv_queue_worker_gone(q, cfg->id);
    for (int i = 0; i < w.nheld; i++) /* the handlers (main's) reap what still runs */
        drv_lease_clear(&w.held[i].l);
    for (int i = 0; i < w.nres; i++)
        result_clear(&w.res[i]);
    for (int i = 0; i < w.njobs; i++) {
        free(w.jobs[i].empty_until);
        free(w.jobs[i].empties);
        free(w.jobs[i].pbo);
        free(w.jobs[i].pbo_until);
        free_http(&w.jobs[i]);
    }
    for (int i = 0; i < w.nretired; i++) {
        drv_http_cfg_free(w.retired[i]);
        free(w.retired[i]);
    }
    free(w.retired);
    free(w.jobs);
    free(w.pjobs);
    free(w.held);
    free(w.hitems);
    free(w.hidx);
    free(w.res);
    free(fds);
    return rc;
}
