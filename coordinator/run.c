/* drover run: the coordinator of one job. */
#include "coord.h"

#include "backoff.h"
#include "hook_retry.h"
#include "callback.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "rebalance.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const drv_cmd_doc doc = {
    "drover run JOB [OPTIONS]",
    "Coordinates JOB: streams its source into the partitions (keeping each pending list under\n"
    "the window), recovers expired leases and due retries, and marks the job done when the\n"
    "source is exhausted and nothing is pending, leased or retrying. A range partition with much\n"
    "left while another is drained is split into a new partition (README: Rebalancing).\n"
    "Exits 0 when done, 1 when done with dead items (see drover dead), 4 when the job is\n"
    "cancelled. Exits 1 without marking anything when it refuses the job: a file source changed\n"
    "since submit, a job or state field drover did not write (named), the job deleted under it,\n"
    "or a final check before done that finds fed and settled counts disagreeing (README:\n"
    "Semantics). Writes Redis refuses for now (OOM, MISCONF, LOADING, BUSY) are waited out.\n"
    "Safe to kill at any time: a restart resumes from the cursors in Redis. A\n"
    "second drover run for the same job waits as a standby and takes over when the first\n"
    "stops renewing its lock.\n"
    "--metrics-addr serves the job's Prometheus metrics (see drover metrics) at\n"
    "http://HOST:PORT/metrics from its own thread and Redis connection, standby or not;\n"
    "--metrics-linger S keeps serving S seconds after the job ends (or until a signal), so a\n"
    "scraper sees the final numbers.\n"
    "Callbacks (the spec's on_complete, on_dead): POSTed when the job ends (done or cancelled)\n"
    "or its dead count first exceeds alert_dead_over, retried with backoff until the endpoint\n"
    "answers 2xx (the exit code does not depend on them); a stop signal leaves an unsent one\n"
    "to the next drover run. ttl_after_done: once done (and its callback sent), every key of\n"
    "the job gets that TTL.",
    "  drover run backfill\n"
    "  drover run backfill --progress-ms 10000 --log-level warn\n"
    "  drover run backfill --metrics-addr 127.0.0.1:9464"};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
}

#define RATE_WINDOW_MS 60000
#define RATE_SAMPLES   64 /* > RATE_WINDOW_MS / 1000: one sample a second at most */

#define HALT_SAMPLES 512

typedef struct run_ctx {
    drv_queue *q;
    drv_job job;
    drv_feeder *feeder;
    drv_pager *pager; /* http sources */
    int64_t lock_renewed_ms;
    drv_part_stat *st;
    char owner[128];
    const char *prefix; /* of every key (named in messages) */
    long long lock_ttl_ms, progress_ms, history_ms;
    int quiet;
    int refresh;          /* re-read cursors from Redis before the next tick */
    int feeder_lost_said; /* stdin: "feeder lost" logged for this episode */
    int running;          /* the job's state is running (as last mirrored) */
    int remirror;         /* mirror the job's state into every partition again (a new one) */
    drv_backoff outage;   /* a lost connection: its reconnects back off (common/backoff.h) */
    /* A transient trouble on a live connection (a refused write, state that does not parse
     * while running): backed off, said once per episode. */
    drv_backoff trouble;
    int troubled; /* this pass met it */
    int started;  /* the first full pass read valid state: corrupt state is waited out now */
    /* rate: done counts sampled at most once a second over the last minute */
    int64_t sample_ms[RATE_SAMPLES], sample_done[RATE_SAMPLES];
    int64_t history_at; /* when the last history sample was written (drv_now_ms) */
    int nsamples;
    /* callbacks (callback.c): NULL when the spec has none */
    drv_hook *on_complete, *on_dead;
    long long cb_backoff_ms, cb_backoff_max_ms;
    drv_hook_retry dead_retry; /* the on_dead alert while the job runs */
    /* halt: (finished, failed) attempt counts sampled each pass, the newest last */
    int64_t halt_fin[HALT_SAMPLES], halt_bad[HALT_SAMPLES];
    int nhalt;
} run_ctx;

/* Sleeps up to ms, in slices, so a stop signal is answered within 50 ms even while waiting
 * out a reconnect backoff or a standby's poll. */
static void nap(int64_t ms) {
    while (ms > 0 && !stop_signal) {
        int64_t slice = ms < 50 ? ms : 50;
        drv_sleep_ms(slice);
        ms -= slice;
    }
}

/* Reconnects with capped exponential backoff and jitter (common/backoff.h); logs once per
 * outage. The first try is at once. Returns 0 when connected, -1 when a stop signal arrived
 * first. */
static int recover_connection(run_ctx *c) {
    char why[512];
    int say;
    /* The lost connection is the episode's first failure. */
    (void)drv_backoff_fail(&c->outage, drv_now_ms(), &say);
    if (say)
        drv_warn("redis lost at %s (%s); retrying with backoff", drv_queue_addr(c->q),
                 drv_queue_strerror(c->q, DRV_EIO));
    while (!stop_signal) {
        int64_t fails, ms;
        if (drv_queue_reconnect(c->q, why, sizeof why) == DRV_OK) {
            if (drv_backoff_ok(&c->outage, drv_now_ms(), &fails, &ms))
                drv_info("redis reconnected after %" PRId64 " ms (%s)", ms, drv_queue_addr(c->q));
            return 0;
        }
        nap(drv_backoff_fail(&c->outage, drv_now_ms(), &say));
    }
    return -1;
}

/* Waits out a transient trouble with capped exponential backoff and jitter (common/backoff.h).
 * Logs once per episode (trouble_cleared says how many tries it took). Returns 0 to go on, -1
 * on a stop signal. */
static int trouble(run_ctx *c, const char *what, const char *msg) {
    int say;
    c->troubled = 1;
    int64_t ms = drv_backoff_fail(&c->trouble, drv_now_ms(), &say);
    if (say)
        drv_warn("job %s: %s: %s; backing off and trying again (logged once until it clears)",
                 c->job.id, what, msg);
    nap(ms);
    return stop_signal ? -1 : 0;
}

static void trouble_cleared(run_ctx *c) {
    int64_t tries, ms;
    if (c->troubled || !drv_backoff_ok(&c->trouble, drv_now_ms(), &tries, &ms)) return;
    drv_info("job %s: cleared after %" PRId64 " tries over %" PRId64 " ms; going on", c->job.id,
             tries, ms);
}

/* A failed Redis call: reconnect on EIO, back off on a refused write (OOM, MISCONF, ...) or, once
 * running, on state that does not parse (an operator may repair it); returns 0 to go on. Anything
 * else, and corrupt state at the start, is fatal. */
static int handle_err(run_ctx *c, drv_err e, const char *what) {
    if (e == DRV_EIO) return recover_connection(c);
    if (e == DRV_EFULL) return trouble(c, what, drv_queue_strerror(c->q, e));
    if (e == DRV_ECORRUPT && c->started) return trouble(c, what, drv_queue_strerror(c->q, e));
    drv_error("%s: %s", what, drv_queue_strerror(c->q, e));
    return -1;
}

/* Cursors and bounds a partition can have (feed.c reads them as numbers): anything else was
 * not written by drover. Returns 0, or -1 with the partition's key and field in 'why'. */
static int check_cursors(const run_ctx *c, char *why, size_t whylen) {
    for (int p = 0; p < c->job.partitions; p++) {
        const drv_part_stat *s = &c->st[p];
        long long cur;
        int64_t lo = 0, hi = INT64_MAX;
        if (c->job.spec.source == DRV_SRC_HTTP) continue; /* "K" or "K/n": feed_http.c */
        if (c->job.spec.source == DRV_SRC_PG) continue;   /* a key: feed_pg.c reads it */
        if (s->st == DRV_JOB_MISSING) continue;           /* a deleted job: the state check */
        /* Bounds first (submit keeps range ids within +-2^53, file offsets from 0). */
        const int64_t lim = (int64_t)1 << 53;
        int64_t blo = c->job.spec.source == DRV_SRC_RANGE ? -lim : 0;
        if (c->job.spec.source != DRV_SRC_STDIN &&
            (s->start < blo || s->start > lim || s->end < blo || s->end > lim)) {
            snprintf(why, whylen,
                     "%s{%s.%d}:state: fields start, end: %" PRId64 "..%" PRId64
                     " is outside %" PRId64 "..%" PRId64,
                     c->prefix, c->job.id, p, s->start, s->end, blo, lim);
            return -1;
        }
        if (c->job.spec.source == DRV_SRC_RANGE) lo = s->start, hi = s->end + 1;
        if (c->job.spec.source == DRV_SRC_FILE) lo = s->start, hi = s->end;
        /* stdin: "N" or "N:H", H the 16-hex-digit hash of the records fed (feed.c). */
        char num[32];
        size_t nl = strcspn(s->cursor, ":");
        const char *h = s->cursor + nl;
        int hash_ok = !*h || (c->job.spec.source == DRV_SRC_STDIN && strlen(h) == 17 &&
                              strspn(h + 1, "0123456789abcdef") == 16);
        snprintf(num, sizeof num, "%.*s", (int)(nl < sizeof num ? nl : sizeof num - 1), s->cursor);
        if (hi < lo || !hash_ok || drv_parse_ll(num, lo, hi, &cur) != 0) {
            snprintf(why, whylen,
                     "%s{%s.%d}:state: field cursor: expected a whole number from %" PRId64
                     " to %" PRId64 ", got \"%.40s\"",
                     c->prefix, c->job.id, p, lo, hi, s->cursor);
            return -1;
        }
    }
    return 0;
}

/* A stdin job whose feeder stopped without finishing: said once per episode (the job waits
 * for the rest of its input, which only a new feeder brings). */
static void feeder_check(run_ctx *c) {
    char state[16];
    int64_t age;
    if (c->job.spec.source != DRV_SRC_STDIN || c->job.total >= 0 ||
        drv_queue_feeder_get(c->q, c->job.id, state, &age) != DRV_OK)
        return;
    int lost = !strcmp(state, "running") && age >= FEEDER_LOST_MS;
    if (lost && !c->feeder_lost_said)
        drv_warn("job %s: feeder lost %" PRId64 " s ago: its standard input stopped before the "
                 "end; pipe the same input into drover submit --id %s --source - again to resume",
                 c->job.id, age / 1000, c->job.id);
    else if (!lost && c->feeder_lost_said)
        drv_info("job %s: a feeder is back", c->job.id);
    c->feeder_lost_said = lost;
}

static void report(run_ctx *c, int64_t now) {
    drv_part_stat t;
    if (drv_queue_stats(c->q, c->job.id, c->job.partitions, c->st) != DRV_OK) return;
    drv_part_stat_sum(c->st, c->job.partitions, &t);
    /* The rate is items/s over the last minute: samples at most a second apart, the oldest
     * dropped once a newer one is still a minute old. */
    int drop = 0;
    while (drop + 1 < c->nsamples && now - c->sample_ms[drop + 1] >= RATE_WINDOW_MS)
        drop++;
    if (c->nsamples - drop == RATE_SAMPLES) drop++;
    if (drop) {
        c->nsamples -= drop;
        memmove(c->sample_ms, c->sample_ms + drop, (size_t)c->nsamples * sizeof *c->sample_ms);
        memmove(c->sample_done, c->sample_done + drop,
                (size_t)c->nsamples * sizeof *c->sample_done);
    }
    if (c->nsamples == 0 || now - c->sample_ms[c->nsamples - 1] >= 1000) {
        c->sample_ms[c->nsamples] = now;
        c->sample_done[c->nsamples++] = t.done;
    }
    double rate = 0;
    if (now > c->sample_ms[0])
        rate = (double)(t.done - c->sample_done[0]) * 1000.0 / (double)(now - c->sample_ms[0]);
    char rs[32];
    snprintf(rs, sizeof rs, "%.1f", rate);
    const char *kv[] = {"rate", rs, NULL};
    (void)drv_queue_job_note_if(c->q, c->job.id, c->job.created_ms, kv);
    if (!c->history_at || now - c->history_at >= c->history_ms) {
        /* drover web's chart: a missed sample is a gap in it, nothing more. */
        drv_history_sample hs = {drv_wall_ms(), t.done, t.dead, (int64_t)(rate * 1000.0)};
        if (drv_queue_history_add(c->q, c->job.id, &hs) == DRV_OK) c->history_at = now;
    }
    feeder_check(c);
    if (c->quiet) return;
    char eta[32] = "?";
    int64_t total = c->job.total >= 0 ? c->job.total : -1;
    if (total >= 0 && rate > 0)
        snprintf(eta, sizeof eta, "%.0fs", (double)(total - t.done - t.dead) / rate);
    char tot[32] = "?";
    if (total >= 0) snprintf(tot, sizeof tot, "%" PRId64, total);
    /* Without a total there is no fraction: the counts and the rate say how it goes. */
    char pct[32] = "";
    if (total > 0) snprintf(pct, sizeof pct, " (%.1f%%)", 100.0 * (double)t.done / (double)total);
    drv_info("job %s: done %" PRId64 "/%s%s fed %" PRId64 " pending %" PRId64 " leased %" PRId64
             " retrying %" PRId64 " dead %" PRId64 " duplicates %" PRId64 " skipped %" PRId64
             " rate %.0f/s eta %s",
             c->job.id, t.done, tot, pct, t.fed, t.pending, t.leased, t.retrying, t.dead,
             t.duplicates, t.skipped, rate, eta);
}

/* During a long page fetch: keeps the lock, and gives up on a stop signal or a lost lock. */
static int pager_alive(void *ud) {
    run_ctx *c = ud;
    if (stop_signal) return 1;
    int64_t now = drv_now_ms();
    if (now - c->lock_renewed_ms < c->lock_ttl_ms / 3) return 0;
    int held = 0;
    if (drv_queue_lock_job(c->q, c->job.id, c->job.created_ms, c->owner, c->lock_ttl_ms, &held) !=
            DRV_OK ||
        !held)
        return 1;
    c->lock_renewed_ms = now;
    return 0;
}

/* A file job's fingerprint from its job hash (submit.c writes it) into the feeder. A job
 * submitted before fingerprints has none and is fed unchecked (said once). */
static drv_err load_fingerprint(run_ctx *c, char *why, size_t whylen) {
    static const char *const names[] = {"src_size", "src_mtime_ns", "src_inode", "src_hashes"};
    char *v[4] = {NULL, NULL, NULL, NULL};
    long long n[3];
    uint64_t *h = NULL;
    int P = c->job.partitions;
    drv_err e = DRV_OK;
    for (int i = 0; i < 4 && !e; i++)
        e = drv_queue_job_field(c->q, c->job.id, names[i], &v[i]);
    if (e) {
        snprintf(why, whylen, "%s", drv_queue_strerror(c->q, e));
        goto out;
    }
    if (!v[0] && !v[1] && !v[2] && !v[3]) {
        drv_warn("job %s: no fingerprint of %s (submitted by an older drover): a change to the "
                 "file goes unnoticed",
                 c->job.id, c->job.spec.path);
        goto out;
    }
    e = DRV_ECORRUPT;
    for (int i = 0; i < 3; i++)
        if (!v[i] || drv_parse_ll(v[i], 0, INT64_MAX, &n[i]) != 0) {
            snprintf(why, whylen, "%s{%s}:job: field %s: expected a whole number, got \"%.40s\"",
                     c->prefix, c->job.id, names[i], v[i] ? v[i] : "(missing)");
            goto out;
        }
    if (!v[3] || strlen(v[3]) != (size_t)P * 17 - 1 || !(h = calloc((size_t)P, sizeof *h))) {
        snprintf(why, whylen, "%s{%s}:job: field src_hashes: expected %d hashes", c->prefix,
                 c->job.id, P);
        goto out;
    }
    for (int p = 0; p < P; p++) {
        char *endp;
        h[p] = strtoull(v[3] + 17 * p, &endp, 16);
        if (endp != v[3] + 17 * p + 16) {
            snprintf(why, whylen, "%s{%s}:job: field src_hashes: hash %d is not 16 hex digits",
                     c->prefix, c->job.id, p);
            goto out;
        }
    }
    e = drv_feeder_expect(c->feeder, n[0], n[1], n[2], h, P);
out:
    free(h);
    for (int i = 0; i < 4; i++)
        free(v[i]);
    return e;
}

/* Opens what feeds the job: a feeder (range, file), a pager (http), nothing (stdin). */
static drv_err open_source(run_ctx *c, char *why, size_t whylen) {
    if (c->job.spec.source == DRV_SRC_HTTP)
        return drv_pager_open(&c->job, pager_alive, c, &c->pager, why, whylen);
    drv_err e = drv_feeder_open(&c->job, &c->feeder, why, whylen);
    if (!e && c->job.spec.source == DRV_SRC_FILE) e = load_fingerprint(c, why, whylen);
    return e;
}

/* The job has n partitions now (a split): grows what is kept per partition. */
static drv_err grow_to(run_ctx *c, int n) {
    if (n <= c->job.partitions) return DRV_OK;
    drv_part_stat *st = realloc(c->st, sizeof *st * (size_t)n);
    if (!st) return DRV_ENOMEM;
    memset(st + c->job.partitions, 0, sizeof *st * (size_t)(n - c->job.partitions));
    c->st = st;
    drv_err e = c->feeder ? drv_feeder_grow(c->feeder, n) : DRV_OK;
    if (e) return e;
    c->job.partitions = n;
    c->remirror = 1;
    return DRV_OK;
}

/* Splits the partition with the most left when the rule says so (rebalance.h). */
static void maybe_split(run_ctx *c, int *fatal) {
    int64_t cut;
    int from = drv_rebalance_pick(&c->job, c->st, &cut);
    if (from < 0) return;
    /* Only while surely the active coordinator: a split is three calls on three tags. */
    int held = 0;
    drv_err e =
        drv_queue_lock_job(c->q, c->job.id, c->job.created_ms, c->owner, c->lock_ttl_ms, &held);
    if (!e && !held) {
        c->refresh = 1; /* the main loop notices the lost lock */
        return;
    }
    if (!e) {
        c->lock_renewed_ms = drv_now_ms();
        e = drv_rebalance_split(c->q, &c->job, c->st, from, cut, "running");
    }
    if (!e) e = grow_to(c, c->job.partitions + 1);
    if (e == DRV_OK) {
        c->refresh = 1; /* read the new partition's state */
        return;
    }
    c->refresh = 1; /* resume finishes or undoes whatever landed */
    if (e == DRV_ECURSOR || e == DRV_EEXIST) {
        drv_warn("job %s: splitting partition %d: %s; reading the partitions again", c->job.id,
                 from, e == DRV_EEXIST ? "the new partition's keys exist" : "it moved");
        return;
    }
    if (e != DRV_ENOJOB && e != DRV_ECANCELLED && handle_err(c, e, "splitting a partition"))
        *fatal = 1;
}

/* One pass over the partitions: reap, top up. Returns 1 if every partition is drained. */
static int tick(run_ctx *c, int64_t *fed_total, int *fatal) {
    int drained = 1;
    char why[1024];
    drv_err e;
    if (c->refresh) {
        /* First finish a split an earlier coordinator (or this one) left half-made. */
        int n = c->job.partitions;
        if ((e = drv_rebalance_resume(c->q, &c->job, &n)) || (e = grow_to(c, n))) {
            if (e != DRV_ENOJOB && handle_err(c, e, "resuming a split")) *fatal = 1;
            return 0;
        }
        /* Cursors and bounds come from Redis after a start, a lost race or an outage. */
        if ((e = drv_queue_stats(c->q, c->job.id, c->job.partitions, c->st))) {
            if (e != DRV_ENOJOB && handle_err(c, e, "reading partitions")) *fatal = 1;
            return 0;
        }
        if (check_cursors(c, why, sizeof why)) {
            if (!c->started) {
                drv_error("job %s: %s; not coordinating it", c->job.id, why);
                *fatal = 1;
            } else if (trouble(c, "reading partitions", why)) {
                *fatal = 1;
            }
            return 0;
        }
        c->refresh = 0;
    }
    if (c->pager) {
        e = drv_pager_step(c->pager, c->q, c->st, fed_total, why, sizeof why);
        if (e == DRV_EINVAL) {
            drv_error("job %s: %s", c->job.id, why);
            *fatal = 1;
            return 0;
        }
        if (e) {
            c->refresh = 1;
            if (e == DRV_ECURSOR)
                drv_warn("job %s: a cursor moved under this coordinator; reading it again",
                         c->job.id);
            else if (e != DRV_ECANCELLED && e != DRV_ENOJOB && handle_err(c, e, "feeding"))
                *fatal = 1;
            return 0;
        }
    }
    for (int p = 0; p < c->job.partitions; p++) {
        drv_part_stat *s = &c->st[p];
        for (int i = 0; i < 10; i++) { /* a partition with a backlog of expired leases */
            if ((e = drv_queue_reap(c->q, c->job.id, p, s))) {
                c->refresh = 1;
                /* ENOJOB: the job is being replaced or deleted; the state check decides. */
                if (e != DRV_ENOJOB && handle_err(c, e, "reaping")) *fatal = 1;
                return 0;
            }
            if (s->recovered < DRV_BATCH_MAX) break;
        }
        if (!s->exhausted && c->feeder && s->pending < c->job.spec.window * 3 / 4) {
            e = drv_feeder_fill(c->feeder, c->q, p, s, c->job.spec.window - s->pending, fed_total,
                                why, sizeof why);
            if (e == DRV_EINVAL) {
                drv_error("job %s partition %d: %s", c->job.id, p, why);
                *fatal = 1;
                return 0;
            }
            if (e == DRV_ECURSOR) {
                drv_warn("job %s partition %d: its cursor moved under this coordinator; reading "
                         "it again",
                         c->job.id, p);
                c->refresh = 1;
            } else if (e == DRV_ECANCELLED || e == DRV_ENOJOB) {
                c->refresh = 1;
                return 0; /* the state check notices */
            } else if (e) {
                c->refresh = 1;
                if (handle_err(c, e, "feeding")) *fatal = 1;
                return 0;
            }
        }
        if (!s->exhausted || s->pending || s->leased || s->retrying) drained = 0;
    }
    if (!drained && c->running && c->feeder) maybe_split(c, fatal);
    return drained;
}

/* ---- callbacks ------------------------------------------------------------------------------- */

/* Opens the spec's callbacks, resolving ${NAME} from this environment. */
static drv_err open_hooks(run_ctx *c, char *why, size_t whylen) {
    drv_hook_free(c->on_complete);
    drv_hook_free(c->on_dead);
    c->on_complete = c->on_dead = NULL;
    drv_err e = DRV_OK;
    if (c->job.spec.on_complete[0])
        e = drv_hook_open(c->job.spec.on_complete, "on_complete", &c->on_complete, why, whylen);
    if (!e && c->job.spec.on_dead[0])
        e = drv_hook_open(c->job.spec.on_dead, "on_dead", &c->on_dead, why, whylen);
    drv_hook_retry_init(&c->dead_retry, c->cb_backoff_ms, c->cb_backoff_max_ms);
    return e;
}

/* One attempt at a callback: re-reads the job (a mark already there, or a job deleted or
 * replaced, ends it), POSTs the summary, writes the mark after a 2xx. Returns 1 when the
 * callback needs nothing more (sent now or before, or no longer wanted), 0 to try again when
 * 'retry' says (hook_retry.h: backoff doubled, Retry-After honoured), -1 on a fatal error. */
static int hook_attempt(run_ctx *c, drv_hook *h, const char *event, const char *field,
                        drv_hook_retry *retry) {
    drv_job j;
    drv_err e = drv_queue_job_get(c->q, c->job.id, &j);
    int sent = !e && (strcmp(field, "complete_sent") == 0 ? j.complete_sent : j.dead_alert_sent);
    switch (drv_hook_next_step(e, e ? 0 : j.created_ms, c->job.created_ms, sent)) {
    case DRV_HOOK_GIVE_UP:
        drv_warn("job %s was deleted or replaced; its %s callback is not sent", c->job.id, event);
        return 1;
    case DRV_HOOK_ERROR:
        return handle_err(c, e, "reading the job") ? -1 : 0;
    case DRV_HOOK_DONE:
        return 1;
    case DRV_HOOK_POST:
        break;
    }
    char *body = drv_hook_summary(c->q, &j, event, &e);
    if (!body) return handle_err(c, e, "summing up the job") ? -1 : 0;
    char key[160], why[512];
    snprintf(key, sizeof key, "drover-%s-%" PRId64 "-%s", j.id, j.created_ms,
             strcmp(event, "complete") == 0 ? "complete" : "dead");
    int64_t retry_after = 0;
    e = drv_hook_post(h, body, key, pager_alive, c, &retry_after, why, sizeof why);
    free(body);
    if (e == DRV_OK) {
        int64_t mark = 0;
        /* Accepted: the mark may not be lost to an outage, or the next coordinator sends it
         * again (the Idempotency-Key is for that case). */
        while ((e = drv_queue_job_mark(c->q, j.id, j.created_ms, field, &mark)))
            if (handle_err(c, e, "marking the callback sent")) return -1;
        drv_info("job %s: %s callback accepted by the endpoint", j.id, event);
        return 1;
    }
    if (stop_signal) return 0;
    int64_t wait = drv_hook_retry_failed(retry, drv_now_ms(), retry_after, drv_rand(0));
    drv_warn("job %s: %s callback failed (%s); retrying in %.1f s", j.id, event, why,
             (double)wait / 1000.0);
    return 0;
}

/* Sends a callback, retrying until it is accepted, while keeping the lock. Returns 0 when
 * done with it, -1 on a stop signal, a lost lock or a fatal error. */
static int hook_deliver(run_ctx *c, drv_hook *h, const char *event, const char *field) {
    drv_hook_retry retry;
    drv_hook_retry_init(&retry, c->cb_backoff_ms, c->cb_backoff_max_ms);
    while (!stop_signal) {
        if (pager_alive(c)) {
            if (!stop_signal)
                drv_warn("job %s: lost the coordinator lock while sending its %s callback",
                         c->job.id, event);
            return -1;
        }
        int64_t wait = drv_hook_retry_wait(&retry, drv_now_ms());
        if (wait > 0) {
            nap(wait < 50 ? wait : 50);
            continue;
        }
        int r = hook_attempt(c, h, event, field, &retry);
        if (r) return r > 0 ? 0 : -1;
    }
    return -1;
}

/* The sum of the dead counts in c->st (as the last tick left them). */
static int64_t dead_now(const run_ctx *c) {
    int64_t n = 0;
    for (int p = 0; p < c->job.partitions; p++)
        n += c->st[p].dead;
    return n;
}

/* While the job runs: one attempt at the on_dead alert when it is due. Returns -1 on a fatal
 * error. */
static int dead_alert_tick(run_ctx *c, int64_t now) {
    if (!c->on_dead || c->job.dead_alert_sent || !drv_hook_retry_due(&c->dead_retry, now)) return 0;
    if (dead_now(c) <= c->job.spec.alert_dead_over) return 0;
    int r = hook_attempt(c, c->on_dead, "dead_over", "dead_alert_sent", &c->dead_retry);
    if (r > 0) c->job.dead_alert_sent = 1;
    return r < 0 ? -1 : 0;
}

/* The halt threshold: once more than halt.failed_percent of the last halt.min_items finished
 * attempts (done items plus failed attempts, a dead-lettering one included) failed, the job
 * pauses itself, says why in its job hash (drover status) and the log. A handler broken for
 * every item stops after M items instead of dead-lettering them all. drover resume goes on:
 * the window starts again then, from the counts at the pause. Returns -1 on a fatal error. */
static int halt_tick(run_ctx *c) {
    int64_t pct = c->job.spec.halt_failed_percent, m = c->job.spec.halt_min_items;
    if (pct <= 0 || !c->running) {
        c->nhalt = 0;
        return 0;
    }
    int64_t fin = 0, bad = 0;
    for (int p = 0; p < c->job.partitions; p++) {
        fin += c->st[p].done + c->st[p].failed;
        bad += c->st[p].failed;
    }
    if (c->nhalt == HALT_SAMPLES) {
        memmove(c->halt_fin, c->halt_fin + 1, sizeof *c->halt_fin * (HALT_SAMPLES - 1));
        memmove(c->halt_bad, c->halt_bad + 1, sizeof *c->halt_bad * (HALT_SAMPLES - 1));
        c->nhalt--;
    }
    c->halt_fin[c->nhalt] = fin, c->halt_bad[c->nhalt] = bad;
    c->nhalt++;
    /* The newest sample at least M finished attempts back. */
    int k = c->nhalt - 1;
    while (k >= 0 && fin - c->halt_fin[k] < m)
        k--;
    if (k < 0) return 0;
    int64_t n = fin - c->halt_fin[k], f = bad - c->halt_bad[k];
    if (f * 100 <= pct * n) return 0;
    char why[256];
    snprintf(why, sizeof why,
             "halted: %" PRId64 " of the last %" PRId64 " finished attempts failed (%" PRId64
             "%%, more than halt.failed_percent %" PRId64 "%%); drover resume %s goes on",
             f, n, f * 100 / n, pct, c->job.id);
    const char *kv[] = {"halted", why, NULL};
    drv_err e = drv_queue_job_note(c->q, c->job.id, kv);
    if (!e) e = drv_queue_job_set_state(c->q, &c->job, "paused");
    if (e) return handle_err(c, e, "pausing the job (halt)") ? -1 : 0;
    drv_warn("job %s paused: %s", c->job.id, why);
    c->nhalt = 0;
    return 0;
}

/* The job ended ('state' done or cancelled): a pending dead alert, the completion callback,
 * then the expiry of a done job's keys. Returns 0, or -1 when stopped before the end (the
 * next drover run finishes it). */
static int finish_job(run_ctx *c, const char *state) {
    drv_job j;
    drv_err e;
    while ((e = drv_queue_job_get(c->q, c->job.id, &j)))
        if (e == DRV_ENOJOB || handle_err(c, e, "reading the job")) return e == DRV_ENOJOB ? 0 : -1;
    if (j.created_ms != c->job.created_ms) return 0;
    if (c->on_dead && !j.dead_alert_sent) {
        drv_part_stat *st = c->st;
        if ((e = drv_queue_stats(c->q, j.id, j.partitions, st)) == DRV_OK &&
            dead_now(c) > j.spec.alert_dead_over &&
            hook_deliver(c, c->on_dead, "dead_over", "dead_alert_sent"))
            return -1;
    }
    if (c->on_complete && !j.complete_sent &&
        hook_deliver(c, c->on_complete, "complete", "complete_sent"))
        return -1;
    if (drv_job_state_parse(state) == DRV_JOB_DONE && j.spec.ttl_after_done > 0 && !j.expires_ms) {
        int64_t at = 0;
        while ((e = drv_queue_job_expire(c->q, &j, j.spec.ttl_after_done * 1000, &at)))
            if (handle_err(c, e, "setting the job's keys to expire")) return -1;
        drv_info("job %s: its keys expire in %" PRId64 " s (ttl_after_done)", j.id,
                 j.spec.ttl_after_done);
    }
    return 0;
}

static drv_err reload_job(run_ctx *c, const drv_job *now);

/* Waits until this coordinator holds the job's lock. Returns 0, or -1 on a stop signal or a
 * fatal error. */
static int acquire_lock(run_ctx *c) {
    int said = 0;
    while (!stop_signal) {
        int held = 0;
        drv_err e =
            drv_queue_lock_job(c->q, c->job.id, c->job.created_ms, c->owner, c->lock_ttl_ms, &held);
        if (e == DRV_ENOJOB) {
            /* lock.lua writes no lock for a job whose hash is gone or another job's. */
            drv_job now;
            e = drv_queue_job_get(c->q, c->job.id, &now);
            if (e == DRV_OK && now.created_ms != c->job.created_ms) {
                if (reload_job(c, &now)) return -1;
                continue;
            }
            if (e == DRV_ENOJOB || e == DRV_OK) {
                drv_error("job %s was deleted (its job hash is gone: a purge or FLUSHALL?); "
                          "stopping without writing anything back",
                          c->job.id);
                return -1;
            }
        }
        if (e) {
            if (handle_err(c, e, "taking the job lock")) return -1;
            continue;
        }
        if (held) {
            if (said) drv_info("job %s: took over as the active coordinator", c->job.id);
            return 0;
        }
        if (!said) {
            drv_info("job %s: another coordinator is active; standing by to take over", c->job.id);
            said = 1;
        }
        nap(c->lock_ttl_ms / 4 > 0 ? c->lock_ttl_ms / 4 : 1);
    }
    return -1;
}

/* Starts over with a job that was replaced (drover submit --replace) under this coordinator:
 * new partitions, new source, new cursors. */
static drv_err reload_job(run_ctx *c, const drv_job *now) {
    char why[1024];
    drv_feeder_free(c->feeder);
    drv_pager_free(c->pager);
    free(c->st);
    c->feeder = NULL;
    c->pager = NULL;
    c->job = *now; /* the feeder keeps a pointer to c->job: open it on that copy */
    c->st = calloc((size_t)c->job.partitions, sizeof *c->st);
    if (!c->st) return DRV_ENOMEM;
    drv_err e = open_source(c, why, sizeof why);
    if (!e) e = open_hooks(c, why, sizeof why);
    if (e) {
        drv_error("job %s was replaced and cannot be loaded: %s", c->job.id, why);
        return e;
    }
    drv_info("job %s was replaced (%d partitions); coordinating the new one", c->job.id,
             c->job.partitions);
    c->refresh = 1;
    c->nsamples = 0;
    return DRV_OK;
}

/* Mirrors a state an operator set on the job hash (a plain HSET) into the partitions. */
static drv_err sync_state(run_ctx *c, char *mirrored, size_t len) {
    drv_job now;
    drv_err e = drv_queue_job_get(c->q, c->job.id, &now);
    if (e) return e;
    if (now.created_ms != c->job.created_ms) {
        if ((e = reload_job(c, &now))) return e;
        mirrored[0] = '\0';
    }
    if (c->remirror) {
        /* A partition was added by a split: it gets the job's state like the others (now has
         * the partition count Redis has). */
        mirrored[0] = '\0';
        c->remirror = 0;
    }
    if (strcmp(now.state, mirrored) != 0) {
        if (now.st == DRV_JOB_RUNNING || now.st == DRV_JOB_PAUSED || now.st == DRV_JOB_CANCELLED) {
            /* Only the partitions: the job hash has it, maybe newer than 'now' by now. */
            if ((e = drv_queue_job_mirror_state(c->q, &now, now.state))) return e;
            if (mirrored[0]) drv_info("job %s: %s", c->job.id, now.state);
        }
        snprintf(mirrored, len, "%s", now.state);
    }
    c->running = strcmp(mirrored, "running") == 0;
    c->job.total = now.total;
    /* drover set changes the halt threshold live. */
    c->job.spec.halt_failed_percent = now.spec.halt_failed_percent;
    c->job.spec.halt_min_items = now.spec.halt_min_items;
    return DRV_OK;
}

/* The last word before a job is marked done (c->st just read, every partition drained): per
 * partition the source is exhausted at its recorded end (range: the cursor is one past the end
 * and every id of start..end was fed; file: the cursor is at the end byte), and everything fed
 * is settled: done, dead, skipped at claim because it was done already, acked late (a
 * duplicate) or acked while done already (a copy). In all, what was fed
 * is the source's total. A range partition's ids are also matched one by one (its done bitmap
 * and dead hash); other sources are counted (README: Done).
 * Returns 0 to mark done, 1 to look again later (the total of a stdin or HTTP source not
 * noted yet, a state that moved), -1 when they disagree (logged). */
static int final_check(run_ctx *c) {
    drv_job j;
    drv_err e = drv_queue_job_get(c->q, c->job.id, &j);
    if (e || j.created_ms != c->job.created_ms || j.partitions != c->job.partitions) {
        if (e && e != DRV_ENOJOB && handle_err(c, e, "reading the job for its final check"))
            return -1;
        return 1;
    }
    int bad = 0;
    int64_t fed = 0;
    const char *src = drv_src_name(j.spec.source);
    for (int p = 0; p < j.partitions; p++) {
        const drv_part_stat *s = &c->st[p];
        if (!s->exhausted || s->pending || s->leased || s->retrying) return 1;
        long long cur = -1;
        (void)drv_parse_ll(s->cursor, INT64_MIN, INT64_MAX, &cur);
        fed += s->fed;
        if (j.spec.source == DRV_SRC_RANGE &&
            (cur != s->end + 1 || s->fed != s->end - s->start + 1)) {
            drv_error("job %s partition %d: the range %" PRId64 "..%" PRId64 " holds %" PRId64
                      " ids, but the cursor is at %s and %" PRId64 " were fed",
                      j.id, p, s->start, s->end, s->end - s->start + 1, s->cursor, s->fed);
            bad = 1;
        }
        if (j.spec.source == DRV_SRC_FILE && cur != s->end) {
            drv_error("job %s partition %d: the file's partition ends at byte %" PRId64
                      ", but its cursor is at %s",
                      j.id, p, s->end, s->cursor);
            bad = 1;
        }
        /* Every item fed settles as done, dead, skipped (popped when done already), a
         * duplicate (a late ack) or a copy (a held ack of an id done already: the second copy
         * of an id a file, stdin or HTTP source lists twice; lua/lib/ack.lua ack_items). */
        int64_t settled = s->done + s->dead + s->skipped + s->duplicates + s->copies;
        int64_t short_by = s->fed - settled;
        if (short_by > 0) {
            drv_error("job %s partition %d: %" PRId64 " items fed, but only %" PRId64
                      " settled (done %" PRId64 ", dead %" PRId64 ", skipped %" PRId64
                      ", duplicates %" PRId64 ", copies %" PRId64 "): %" PRId64
                      " neither done nor dead",
                      j.id, p, s->fed, settled, s->done, s->dead, s->skipped, s->duplicates,
                      s->copies, short_by);
            bad = 1;
        }
        if (j.spec.source == DRV_SRC_RANGE && !bad) {
            /* Id by id: each id of start..end is in the done bitmap or the dead hash. */
            int64_t nd, nx, want = s->end - s->start + 1;
            if ((e = drv_queue_range_settled(c->q, j.id, p, s->start, s->end, &nd, &nx))) {
                if (handle_err(c, e, "reading a partition's done record")) return -1;
                return 1;
            }
            if (nd >= 0 && nd + nx < want) {
                drv_error("job %s partition %d: of its %" PRId64 " ids (%" PRId64 "..%" PRId64
                          "), %" PRId64 " are in its done record and %" PRId64 " dead: %" PRId64
                          " neither done nor dead",
                          j.id, p, want, s->start, s->end, nd, nx, want - nd - nx);
                bad = 1;
            } else if (nd + nx > want) {
                drv_warn("job %s partition %d: of its %" PRId64 " ids, %" PRId64
                         " are in its done record and %" PRId64 " dead",
                         j.id, p, want, nd, nx);
            }
        }
        if (s->done + s->dead + s->skipped > s->fed) {
            drv_warn("job %s partition %d: %" PRId64 " items settled (done %" PRId64
                     ", dead %" PRId64 ", skipped %" PRId64 ") of %" PRId64 " fed",
                     j.id, p, s->done + s->dead + s->skipped, s->done, s->dead, s->skipped, s->fed);
        }
    }
    if (j.total < 0 && j.spec.source == DRV_SRC_PG && !bad) {
        /* A table's rows are counted as they are walked: every partition is exhausted and
         * settled, so what was fed is the total. */
        char t[24];
        snprintf(t, sizeof t, "%" PRId64, fed);
        const char *kv[] = {"total", t, NULL};
        if ((e = drv_queue_job_note_if(c->q, j.id, j.created_ms, kv)))
            return e != DRV_ENOJOB && handle_err(c, e, "noting the total") ? -1 : 1;
        j.total = c->job.total = fed;
    }
    if (j.total < 0) {
        /* stdin and HTTP note their total after the last chunk: it comes. */
        if (j.spec.source == DRV_SRC_STDIN || j.spec.source == DRV_SRC_HTTP) return bad ? -1 : 1;
    } else if (fed != j.total) {
        drv_error("job %s: its %s source holds %" PRId64 " items, but %" PRId64 " were fed", j.id,
                  src, j.total, fed);
        bad = 1;
    }
    return bad ? -1 : 0;
}

/* drover run's command line. */
typedef struct run_opts {
    drv_cli cli;
    drv_redis_cfg cfg;
    long long tick_ms, linger_s;
    const char *metrics_at;
    drv_metrics_addr maddr;
    char *id;
} run_opts;

/* Parses the command line into o and c's settings. -1 to go on, or the exit code. */
static int run_parse(run_ctx *c, run_opts *o, int argc, char **argv) {
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&o->cli),
        {"lock-ttl-ms", "DROVER_LOCK_TTL_MS", DRV_OPT_INT, "5000", "MS",
         "a standby takes over this long after the active coordinator dies", 200, 600000,
         &c->lock_ttl_ms},
        {"tick-ms", "DROVER_TICK_MS", DRV_OPT_INT, "20", "MS",
         "pause between passes over the partitions", 1, 10000, &o->tick_ms},
        {"progress-ms", "DROVER_PROGRESS_MS", DRV_OPT_INT, "2000", "MS",
         "log progress (and store the rate) this often", 100, 3600000, &c->progress_ms},
        {"history-ms", "DROVER_HISTORY_MS", DRV_OPT_INT, "10000", "MS",
         "add a sample to the job's history (drover web's chart; the last 8640 kept) at most "
         "this often; samples are taken with the progress",
         100, 3600000, &c->history_ms},
        {"quiet", NULL, DRV_OPT_BOOL, NULL, NULL, "no progress lines", 0, 0, &c->quiet},
        {"metrics-addr", "DROVER_METRICS_ADDR", DRV_OPT_STR, NULL, "HOST:PORT",
         "serve Prometheus metrics at http://HOST:PORT/metrics (default: none)", 0, 0,
         &o->metrics_at},
        {"metrics-linger", "DROVER_METRICS_LINGER", DRV_OPT_INT, "0", "S",
         "with --metrics-addr: keep serving this long after the job ends", 0, 86400, &o->linger_s},
        {"callback-backoff-ms", "DROVER_CALLBACK_BACKOFF_MS", DRV_OPT_INT, "1000", "MS",
         "first delay before a failed callback is sent again (doubles, with jitter)", 10, 600000,
         &c->cb_backoff_ms},
        {"callback-backoff-max-ms", "DROVER_CALLBACK_BACKOFF_MAX_MS", DRV_OPT_INT, "60000", "MS",
         "longest delay between callback attempts", 10, 3600000, &c->cb_backoff_max_ms},
        {0},
    };
    int rc = parse_job_args(opts, &doc, argc, argv, &o->id);
    if (rc != -1) return rc;
    char why[1024];
    if (o->metrics_at && *o->metrics_at &&
        drv_metrics_addr_parse(o->metrics_at, &o->maddr, why, sizeof why)) {
        fprintf(stderr, "error: --metrics-addr: %s\n", why);
        return EXIT_USAGE;
    }
    if ((rc = drv_cli_check(&o->cli, &o->cfg))) return rc;
    return -1;
}

/* Connects, reads the job, serves metrics, opens the source and the callbacks and takes the
 * job's lock. -1 to go on, or the exit code (c->q may be open: the teardown closes it). */
static int run_setup(run_ctx *c, run_opts *o, drv_metrics_srv **msrv) {
    char why[1024];
    int rc;
    if ((rc = drv_cli_connect(&o->cli, &o->cfg, &c->q))) return rc;
    c->prefix = o->cli.prefix;
    drv_err e = drv_queue_job_get(c->q, o->id, &c->job);
    if (e) {
        fprintf(stderr, "error: job %s: %s\n", o->id,
                e == DRV_ENOJOB ? "no such job (see drover list)" : drv_queue_strerror(c->q, e));
        return 1;
    }
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(c->owner, sizeof c->owner, "%s:%d:%04x", host, (int)getpid(),
             (unsigned)drv_rand(0x10000));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (o->metrics_at && *o->metrics_at) {
        /* Its own connection: the server thread never touches c->q. */
        drv_queue *mq;
        if (drv_cli_connect(&o->cli, &o->cfg, &mq)) return 1;
        if (drv_metrics_serve(&o->maddr, mq, &o->id, 1, msrv, why, sizeof why)) {
            fprintf(stderr, "error: --metrics-addr: %s\n", why);
            return 1;
        }
        drv_info("job %s: serving metrics at http://%s/metrics", o->id, o->maddr.text);
    }
    c->st = calloc((size_t)c->job.partitions, sizeof *c->st);
    if (!c->st) return 1;
    if ((e = open_source(c, why, sizeof why))) {
        fprintf(stderr, "error: job %s: %s\n", o->id, why);
        return 1;
    }
    if (c->cb_backoff_max_ms < c->cb_backoff_ms) c->cb_backoff_max_ms = c->cb_backoff_ms;
    if ((e = open_hooks(c, why, sizeof why))) {
        /* Like a worker missing a handler's ${NAME}: a configuration error of this host. */
        fprintf(stderr, "error: job %s: %s\n", o->id, why);
        return e == DRV_EINVAL ? EXIT_USAGE : 1;
    }
    if (acquire_lock(c)) return 1;
    drv_info("job %s: coordinating %d partitions as %s", o->id, c->job.partitions, c->owner);
    return -1;
}

/* The loop's clocks and what it last saw. */
typedef struct loop_state {
    char mirrored[16]; /* the job state last mirrored into the partitions */
    int64_t next_lock, next_state, next_report, sleep_ms, missing_since;
} loop_state;

/* What a step of the loop says: go on with this pass, start the next pass, or end with *rc. */
enum { STEP_ON, STEP_AGAIN, STEP_END };

/* Renews the job's lock when due; stands by when another coordinator took it. */
static int renew_lock(run_ctx *c, loop_state *ls, int64_t now) {
    if (now < ls->next_lock) return STEP_ON;
    int held = 0;
    drv_err e =
        drv_queue_lock_job(c->q, c->job.id, c->job.created_ms, c->owner, c->lock_ttl_ms, &held);
    if (e == DRV_ENOJOB) {
        /* Deleted or replaced: nothing written; the state check below decides. */
        ls->next_lock = now + 100;
        ls->next_state = now;
        held = 1;
        e = DRV_OK;
    }
    if (e) return handle_err(c, e, "renewing the job lock") ? STEP_END : STEP_AGAIN;
    if (!held) {
        drv_warn("job %s: lost the coordinator lock (paused too long?); standing by", c->job.id);
        if (acquire_lock(c)) return STEP_END;
        c->refresh = 1;
    }
    ls->next_lock = now + c->lock_ttl_ms / 3;
    c->lock_renewed_ms = now;
    return STEP_ON;
}

/* Mirrors the job's state when due; a cancelled or done job ends the loop (*rc set). */
static int check_state(run_ctx *c, loop_state *ls, int64_t now, int *rc) {
    if (now < ls->next_state) return STEP_ON;
    drv_err e = sync_state(c, ls->mirrored, sizeof ls->mirrored);
    if (e) {
        /* A --replace deletes the old keys before it writes the new ones: give it a moment
         * before concluding the job is gone. */
        if (e == DRV_ENOJOB && !ls->missing_since) ls->missing_since = now;
        if (e == DRV_ENOJOB && now - ls->missing_since < 2000) {
            ls->next_state = now + 100;
            drv_sleep_ms(20);
            return STEP_AGAIN;
        }
        if (e == DRV_ENOJOB) {
            drv_error("job %s was deleted (its job hash is gone: a purge or FLUSHALL?); "
                      "stopping without writing anything back",
                      c->job.id);
            return STEP_END;
        }
        return handle_err(c, e, "reading the job state") ? STEP_END : STEP_AGAIN;
    }
    ls->missing_since = 0;
    if (strcmp(ls->mirrored, "cancelled") == 0) {
        drv_info("job %s is cancelled; stopping", c->job.id);
        *rc = finish_job(c, "cancelled") ? 1 : EXIT_CANCELLED;
        return STEP_END;
    }
    if (strcmp(ls->mirrored, "done") == 0) {
        drv_info("job %s is already done", c->job.id);
        *rc = finish_job(c, "done") ? 1 : 0;
        return STEP_END;
    }
    ls->next_state = now + 500;
    return STEP_ON;
}

/* Every partition looks drained: the final counts, the final check, then done (*rc set). */
static int settle_drained(run_ctx *c, loop_state *ls, int *rc) {
    drv_part_stat t;
    drv_err e;
    if ((e = drv_queue_stats(c->q, c->job.id, c->job.partitions, c->st))) {
        if (e != DRV_ENOJOB && handle_err(c, e, "reading the final counts")) return STEP_END;
        return STEP_AGAIN;
    }
    char bad_why[512];
    if (check_cursors(c, bad_why, sizeof bad_why)) {
        if (trouble(c, "reading the final counts", bad_why)) return STEP_END;
        c->refresh = 1;
        return STEP_AGAIN;
    }
    int v = final_check(c);
    if (v < 0) {
        drv_error("job %s: not marking it done: what it was fed and what is settled "
                  "disagree (above)",
                  c->job.id);
        return STEP_END;
    }
    if (v > 0) {
        c->refresh = 1;
        nap(ls->sleep_ms);
        return STEP_AGAIN;
    }
    drv_part_stat_sum(c->st, c->job.partitions, &t);
    if ((e = drv_queue_job_set_state(c->q, &c->job, "done"))) {
        if (e == DRV_ENOJOB) {
            ls->next_state = 0; /* deleted or replaced meanwhile: the state check decides */
            return STEP_AGAIN;
        }
        return handle_err(c, e, "marking the job done") ? STEP_END : STEP_AGAIN;
    }
    c->history_at = 0; /* the history's last sample is the job's end */
    report(c, drv_now_ms());
    drv_info("job %s: done: %" PRId64 " processed, %" PRId64 " dead, %" PRId64 " duplicates",
             c->job.id, t.done, t.dead, t.duplicates);
    *rc = t.dead > 0 ? 1 : 0;
    if (finish_job(c, "done")) *rc = 1; /* stopped first: 128+N in the teardown */
    return STEP_END;
}

/* Passes over the partitions until the job ends or a signal stops it. Returns the exit code. */
static int run_loop(run_ctx *c, const run_opts *o) {
    loop_state ls;
    memset(&ls, 0, sizeof ls);
    ls.sleep_ms = o->tick_ms;
    c->refresh = 1;
    int rc = 1, step;
    while (!stop_signal) {
        int64_t now = drv_now_ms();
        if ((step = renew_lock(c, &ls, now)) == STEP_END) return rc;
        if (step == STEP_AGAIN) continue;
        if ((step = check_state(c, &ls, now, &rc)) == STEP_END) return rc;
        if (step == STEP_AGAIN) continue;
        int64_t fed = 0;
        int fatal = 0;
        c->troubled = 0;
        int drained = tick(c, &fed, &fatal);
        if (fatal) return rc;
        if (!c->refresh) c->started = 1;
        trouble_cleared(c);
        if (drained && !c->refresh) {
            if (settle_drained(c, &ls, &rc) == STEP_END) return rc;
            continue;
        }
        if (!c->refresh && dead_alert_tick(c, now)) return rc;
        if (!c->refresh && halt_tick(c)) return rc;
        if (now >= ls.next_report) {
            report(c, now);
            ls.next_report = now + c->progress_ms;
        }
        /* Feeding means workers are draining: come back soon. Idle: back off to 10 ticks. */
        ls.sleep_ms = fed > 0
                          ? o->tick_ms
                          : (ls.sleep_ms * 2 > o->tick_ms * 10 ? o->tick_ms * 10 : ls.sleep_ms * 2);
        nap(ls.sleep_ms);
    }
    return rc;
}

/* Releases the lock, lingers for a last scrape, frees everything. Returns the exit code. */
static int run_teardown(run_ctx *c, const run_opts *o, drv_metrics_srv *msrv, int rc) {
    /* A stop signal ends the loop, or a wait inside it (a reconnect, a standby): either way it
     * is not a failure of the job. */
    if (stop_signal && rc == 1) {
        drv_info("job %s: stopped by signal %d; the job goes on when a coordinator runs again",
                 o->id, (int)stop_signal);
        rc = 128 + (int)stop_signal;
    }
    if (c->q && c->owner[0] && !drv_queue_broken(c->q))
        (void)drv_queue_unlock(c->q, o->id, c->owner);
    if (msrv && o->linger_s > 0 && !stop_signal) {
        /* The lock is released already: a standby need not wait for this. */
        drv_info("job %s: serving metrics for %lld s more (a signal stops it)", o->id, o->linger_s);
        nap(o->linger_s * 1000);
    }
    drv_metrics_stop(msrv);
    drv_feeder_free(c->feeder);
    drv_pager_free(c->pager);
    drv_hook_free(c->on_complete);
    drv_hook_free(c->on_dead);
    free(c->st);
    drv_queue_close(c->q);
    return rc;
}

int cmd_run(int argc, char **argv) {
    run_ctx c;
    run_opts o;
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    int rc = run_parse(&c, &o, argc, argv);
    if (rc != -1) return rc;
    drv_metrics_srv *msrv = NULL;
    rc = run_setup(&c, &o, &msrv);
    if (rc == -1) rc = run_loop(&c, &o);
    return run_teardown(&c, &o, msrv, rc);
}
