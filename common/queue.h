#ifndef DRV_QUEUE_H
#define DRV_QUEUE_H

/* The job queue in Redis: every read and write both programs make. Only the queue_*.c files,
 * conn.c and keys.c know key names or hiredis; coordinator/ and worker/ call these functions.
 *
 * Errors (hiredis's convention): every call that fails returns a drv_err and leaves its text,
 * and a call that succeeds clears the text. DRV_EIO means the connection broke (the caller
 * reconnects with backoff via drv_queue_reconnect and decides whether to repeat); DRV_EREPLY a
 * Redis error or a reply drover cannot use; DRV_EFULL a refusal for now (OOM, LOADING, ...);
 * DRV_ECORRUPT state drover did not write (the text names the key and field); DRV_ENOJOB,
 * DRV_EPAUSED, DRV_ECANCELLED, DRV_ECURSOR as named. drv_queue_strerror(q, e) is the message
 * to print for e. */

#include "err.h"
#include "job_state.h"
#include "spec.h"
#include "keys.h"
#include "url.h"

#include <stddef.h>
#include <stdint.h>

typedef struct drv_queue drv_queue;

/* 'prefix' is copied ("drover:" by default); it may not contain '{' or '}'. */
drv_err drv_queue_open(const drv_redis_cfg *cfg, const char *prefix, drv_queue **out, char *why,
                       size_t whylen);
void drv_queue_close(drv_queue *q); /* NULL is a no-op */
drv_err drv_queue_reconnect(drv_queue *q, char *why, size_t whylen);
int drv_queue_broken(const drv_queue *q);
/* The message for e, a failure this queue's last call returned: the queue's text when that
 * call left one (Redis's error, the key and field of corrupt state, the address of a lost
 * connection), else drv_strerror(e). Borrowed; valid until the next call on q. */
const char *drv_queue_strerror(const drv_queue *q, drv_err e);
/* The last call's error text, "" after a success. Borrowed. Prefer drv_queue_strerror. */
const char *drv_queue_errstr(const drv_queue *q);
const char *drv_queue_addr(const drv_queue *q); /* borrowed, without the password */
/* 1 if 'prefix' is usable (at most 64 bytes, no '{', '}' or white space). */
int drv_prefix_valid(const char *prefix);

/* ---- jobs ------------------------------------------------------------------------------------ */

typedef struct drv_job {
    char id[DRV_JOB_ID_MAX + 1];
    drv_job_state st; /* what code compares */
    char state[16];   /* its name as Redis holds it: running, paused, cancelled, done */
    int partitions;
    int64_t total; /* -1 until known */
    int64_t created_ms, finished_ms;
    int64_t rate_milli;      /* items/s x 1000 over the coordinator's last window; 0 if unknown */
    int64_t page;            /* http source: pages fed */
    char page_url[4096];     /* http source: the next page ("" before the first) */
    int64_t complete_sent;   /* Redis ms the on_complete callback was accepted, 0 if not */
    int64_t dead_alert_sent; /* Redis ms the on_dead alert was accepted, 0 if not */
    int64_t expires_ms;      /* Redis ms the job's keys expire (ttl_after_done), 0 if never */
    char halted[256];        /* why the coordinator paused the job (halt), "" if it did not */
    drv_spec spec;
} drv_job;

/* The starting point of one partition, written at submit. */
typedef struct drv_part_init {
    int64_t start, end; /* range: first and last id; file: byte range [start, end) */
    char cursor[32];    /* range: next id; file: byte offset; stdin: items fed */
    int exhausted;      /* an empty partition is exhausted from the start */
} drv_part_init;

/* Registers a job: partition state hashes first, then the job hash, and its entry in
 * PREFIXjobs last, so an interrupted submit leaves no visible half-made job. An existing job
 * is DRV_EEXIST unless 'replace' (its keys are deleted first). 'total' is -1 when unknown. */
drv_err drv_queue_job_create(drv_queue *q, const drv_spec *spec, int64_t total,
                             const drv_part_init *parts, int replace);
/* The same, with fields written into the job hash before it becomes visible ('kv': name,
 * value, ..., NULL; at most 15 pairs), so no reader ever sees the job without them. */
drv_err drv_queue_job_create_noted(drv_queue *q, const drv_spec *spec, int64_t total,
                                   const drv_part_init *parts, int replace, const char *const *kv);
/* Reads a visible job. DRV_ENOJOB if there is none; DRV_ECORRUPT when its hash lacks its spec
 * or state or the spec does not parse (drv_queue_errstr names the key and field). A PREFIXjobs
 * entry whose job hash is gone
 * (expired after ttl_after_done) is removed on the way. */
drv_err drv_queue_job_get(drv_queue *q, const char *job, drv_job *out);
/* Job ids by creation time. Caller frees (*ids) with free(); one block. */
drv_err drv_queue_job_list(drv_queue *q, char (**ids)[DRV_JOB_ID_MAX + 1], size_t *n);
/* Sets the job's state and mirrors it into every partition's state hash (where the scripts
 * read it). finished_ms is stamped (Redis time) for done and cancelled. With job->created_ms
 * set, the job hash is written only while it is that job (DRV_ENOJOB otherwise). */
drv_err drv_queue_job_set_state(drv_queue *q, const drv_job *job, const char *state);
/* Writes fields of the job hash only while it is the job created at created_ms
 * (lua/mark.lua): DRV_ENOJOB, nothing written, once it was deleted or replaced. */
drv_err drv_queue_job_note_if(drv_queue *q, const char *job, int64_t created_ms,
                              const char *const *kv);
/* The HTTP source's staged page, PREFIX{J}:page (a JSON string: the page number, the next
 * page's URL and the page's items), written before any partition takes an item of it, so a
 * restart feeds from it instead of fetching the page again. _staged: *text malloc'd, NULL
 * when there is none. _done: note_if's write and the page's deletion in one step. */
drv_err drv_queue_page_stage(drv_queue *q, const char *job, const char *text, size_t len);
drv_err drv_queue_page_staged(drv_queue *q, const char *job, char **text);
drv_err drv_queue_page_drop(drv_queue *q, const char *job);
drv_err drv_queue_page_done(drv_queue *q, const char *job, int64_t created_ms,
                            const char *const *kv);
/* A file job's repeated ids kept first-wins (submit --dedupe first): the byte offsets of the
 * records not to feed, PREFIX{J}:skip (a ZSET, score = member = the offset). _write adds n of
 * them; _range reads up to cap of those in [from, to) in order; _count says how many there are. */
drv_err drv_queue_skip_write(drv_queue *q, const char *job, const int64_t *at, int64_t n);
drv_err drv_queue_skip_range(drv_queue *q, const char *job, int64_t from, int64_t to, int64_t *out,
                             size_t cap, size_t *n);
drv_err drv_queue_skip_count(drv_queue *q, const char *job, int64_t *n);
/* The stdin feeder's heartbeat in the job hash: "feeder" (running or done) and
 * "feeder_beat_ms" (Redis time), written only while it is the job created at created_ms. */
drv_err drv_queue_feeder_beat(drv_queue *q, const char *job, int64_t created_ms, const char *state);
/* The feeder's state ("" when no feeder ever beat) and the age of its last beat (Redis time;
 * -1 without one). */
drv_err drv_queue_feeder_get(drv_queue *q, const char *job, char state[16], int64_t *age_ms);
/* One field of the job hash, as written: *out is malloc'd, NULL when the field is absent. */
drv_err drv_queue_job_field(drv_queue *q, const char *job, const char *field, char **out);
/* Writes 'state' into each partition's state hash that exists (lua/mirror.lua), not the job
 * hash: the coordinator mirroring a state an operator set there, which must not write back an
 * older state over a newer one. */
drv_err drv_queue_job_mirror_state(drv_queue *q, const drv_job *job, const char *state);
/* Writes plain fields of the job hash (rate, total). NULL-terminated name/value list. */
drv_err drv_queue_job_note(drv_queue *q, const char *job, const char *const *kv);
/* Unlinks whatever keys are left under the job's tags, found with SCAN MATCH in batches
 * (keys of an earlier partition count, anything written by hand). *unlinked counts them. */
drv_err drv_queue_job_sweep(drv_queue *q, const char *job, int64_t *unlinked);
/* Deletes every key of the job (UNLINK: freed in the background). */
drv_err drv_queue_job_delete(drv_queue *q, const char *job);
/* Records that a callback was accepted (lua/mark.lua): sets 'field' (complete_sent or
 * dead_alert_sent) of the job hash to Redis time, unless it is set already, and only while the
 * job hash is the one created at created_ms. *mark_ms: the mark now in Redis, 0 when the job
 * was deleted or replaced (nothing written). */
drv_err drv_queue_job_mark(drv_queue *q, const char *job, int64_t created_ms, const char *field,
                           int64_t *mark_ms);
/* Gives every key of the job (partition keys and job hash; the lock keeps its own short TTL)
 * a time to live of ttl_ms, after writing expires_ms (Redis time) into the job hash. The job
 * hash gets its TTL last. *expires_ms: when they go. */
drv_err drv_queue_job_expire(drv_queue *q, const drv_job *job, int64_t ttl_ms, int64_t *expires_ms);

/* ---- the coordinator ------------------------------------------------------------------------- */

/* Takes or renews the job's coordinator lock for ttl_ms. *held = 1 if 'owner' holds it. */
drv_err drv_queue_lock(drv_queue *q, const char *job, const char *owner, int64_t ttl_ms, int *held);
/* The same, only while the job hash is the job created at created_ms (lua/lock.lua): DRV_ENOJOB,
 * and no lock written, once the job was deleted (FLUSHALL, purge) or replaced. */
drv_err drv_queue_lock_job(drv_queue *q, const char *job, int64_t created_ms, const char *owner,
                           int64_t ttl_ms, int *held);
drv_err drv_queue_unlock(drv_queue *q, const char *job, const char *owner);

/* The longest cursor a partition's state hash may hold, with its NUL: a postgres source's text
 * key (">" and the key itself, an id of at most DRV_ID_BYTES_MAX bytes). */
#define DRV_CURSOR_MAX (DRV_ID_BYTES_MAX + 2)

typedef struct drv_part_stat {
    drv_job_state st; /* the job's state mirrored here; DRV_JOB_MISSING without a state hash */
    char state[16];   /* its name ("missing" without a state hash) */
    int64_t pending, leased, retrying, dead;                           /* sizes now */
    int64_t fed, done, failed, duplicates, expired, skipped, released; /* counters */
    int64_t throttled; /* throttled answers (429, Retry-After): no attempt counted */
    int64_t copies;    /* held acks of an id done already (lua/lib/ack.lua ack_items) */
    int64_t start, end;
    char cursor[DRV_CURSOR_MAX]; /* a postgres text key's cursor holds a key */
    int exhausted;
    int64_t recovered;      /* reap only: expired leases and due retries moved to pending */
    int64_t cooldown_until; /* a fleet cool-down (Redis ms), 0 for none; the sum has the latest */
    int64_t cooldowns;      /* cool-downs started */
    int split_from;         /* the partition this one was split from (rebalancing), or -1 */
} drv_part_stat;

/* Adds up n partitions' sizes and counters into *out (strings and bounds are left empty). */
void drv_part_stat_sum(const drv_part_stat *st, int n, drv_part_stat *out);

/* Recovers expired leases and due retries of partition p (lua/reap.lua) and reports its sizes
 * (pending, leased, retrying, dead, exhausted, recovered) in one atomic step. */
drv_err drv_queue_reap(drv_queue *q, const char *job, int p, drv_part_stat *out);
/* A range partition's settled ids, exactly: *done the ids its done bitmap holds, *dead the ids
 * of start..end in its dead hash (anything else there is not counted). Both -1 for a partition
 * without a bitmap (not a range). Read-only; the dead hash is read with HSCAN. */
drv_err drv_queue_range_settled(drv_queue *q, const char *job, int p, int64_t start, int64_t end,
                                int64_t *done, int64_t *dead);
/* Reads every partition's state and sizes (read-only, pipelined). out has nparts entries. */
drv_err drv_queue_stats(drv_queue *q, const char *job, int nparts, drv_part_stat *out);
/* The length of the pending list of each of job's partitions parts[0..n), into lens[0..n), in
 * one pipelined round trip of LLENs: what an idle worker asks instead of claiming from every
 * partition (a claim is a script; an LLEN a fraction of it). */
drv_err drv_queue_pending(drv_queue *q, const char *job, const int *parts, int n, int64_t *lens);

typedef struct drv_feed_item {
    const char *id;
    size_t idlen;
    const char *payload; /* NULL when the id is the item */
    size_t plen;
} drv_feed_item;

/* Appends items to partition p and moves its cursor from 'expect' to 'next' atomically
 * (lua/feed.lua); 'exhausted' marks the end of the partition's source. DRV_ECURSOR if the
 * cursor was not 'expect'. At most 1000 items a call. */
drv_err drv_queue_feed(drv_queue *q, const char *job, int p, const char *expect, const char *next,
                       int exhausted, const drv_feed_item *items, size_t n, int64_t *pending_after);

/* ---- rebalancing ----------------------------------------------------------------------------- */

/* Splitting the rest of a range partition 'from' at id 'cut' into a new partition 'to' (the
 * job's partition count) is three calls on three hash tags, in this order (README.md,
 * "Rebalancing"), each safe to be the last one a killed coordinator made:
 *   1. drv_queue_split_new: partition 'to' gets start = cursor = cut, end = the old end and
 *      split_from = 'from', nothing pending; invisible while the count is still 'to'.
 *   2. drv_queue_split_cut: partition 'from' ends at cut - 1 (CAS on its end and cursor).
 *   3. drv_queue_split_grow: the job's partition count goes from 'to' to 'to' + 1.
 * A coordinator that finds partition 'count' with split_from finishes the split with step 3
 * if step 2 landed (the source ends at that partition's start - 1), else drops it
 * (drv_queue_split_drop). */

/* Step 1. DRV_EEXIST when any key of partition 'to' exists. 'state' is the job's state. */
drv_err drv_queue_split_new(drv_queue *q, const drv_spec *spec, int from, int to, int64_t cut,
                            int64_t end, const char *state);
/* Step 2. DRV_ECURSOR when partition 'from' no longer ends at 'old_end' or its cursor is past
 * 'cut'. *exhausted = 1 when its cursor was at the cut (nothing left to feed). */
drv_err drv_queue_split_cut(drv_queue *q, const char *job, int from, int64_t old_end, int64_t cut,
                            int *exhausted);
/* Step 3: raises the partition count from 'to' to 'to' + 1 (a repeat is a no-op).
 * DRV_ECURSOR when the count is neither. */
drv_err drv_queue_split_grow(drv_queue *q, const char *job, int to);
/* Undoes step 1: unlinks every key of the invisible partition p. Only for p equal to the
 * job's partition count, whose split never reached step 2. */
drv_err drv_queue_split_drop(drv_queue *q, const char *job, int p);
/* The job's partition count as Redis has it now. */
drv_err drv_queue_job_partitions(drv_queue *q, const char *job, int *out);

/* ---- workers --------------------------------------------------------------------------------- */

typedef struct drv_lease {
    char *id; /* owned, NUL-terminated */
    size_t idlen;
    char *payload; /* owned; NULL when the id is the item */
    size_t plen;
    int attempt; /* 1 on the first delivery */
    int64_t token;
} drv_lease;

void drv_lease_clear(drv_lease *l);

typedef struct drv_claim {
    drv_lease *items; /* caller owns the array (free()) and each item (drv_lease_clear) */
    size_t n;
    int64_t now_ms, deadline_ms; /* Redis time */
    int64_t cooldown_until;      /* > 0: the job is cooling down until then; nothing leased */
} drv_claim;

/* Leases up to 'max' items of partition p to 'worker' (lua/claim.lua). */
drv_err drv_queue_claim(drv_queue *q, const char *job, int p, const char *worker, int max,
                        drv_claim *out);

typedef struct drv_ref {
    const char *id;
    size_t idlen;
    int64_t token;
} drv_ref;

typedef struct drv_ack_result {
    int64_t acked, duplicates, unknown;
} drv_ack_result;

drv_err drv_queue_ack(drv_queue *q, const char *job, int p, const drv_ref *refs, size_t n,
                      drv_ack_result *res);

typedef struct drv_bytes {
    const char *p; /* NULL: nothing */
    size_t n;
} drv_bytes;

/* Acks and keeps resp[i] (the handler's response) for each item this call marks done. */
drv_err drv_queue_ack_keep(drv_queue *q, const char *job, int p, const drv_ref *refs,
                           const drv_bytes *resp, size_t n, drv_ack_result *res);
/* Acks refs[0..n) (n at most 1000; resp as for drv_queue_ack_keep, or NULL) and then leases
 * up to 'max' items of partition p to 'worker', in one script call (lua/ackclaim.lua). DRV_OK:
 * both done, *ack and *out filled. DRV_EPAUSED or DRV_ECANCELLED: the acks are recorded
 * (*ack), nothing is leased (*out empty). Any other error: nothing recorded that the caller
 * can rely on (DRV_ENOJOB: the partition does not exist; DRV_EIO: unknown, as for any call). */
drv_err drv_queue_ackclaim(drv_queue *q, const char *job, int p, const char *worker, int max,
                           const drv_ref *refs, const drv_bytes *resp, size_t n,
                           drv_ack_result *ack, drv_claim *out);
/* Starts a fleet cool-down of ms milliseconds (Redis time) on every partition of the job:
 * claims lease nothing until it ends (lua/cooldown.lua). *until: its end, Redis time. */
drv_err drv_queue_cooldown(drv_queue *q, const char *job, int nparts, int64_t ms, int64_t *until);

typedef struct drv_failure {
    drv_ref ref;
    int permanent;          /* dead at once, no retry */
    int throttled;          /* the API asked to slow down: no attempt counted (max_throttled) */
    int64_t retry_after_ms; /* floor for the backoff delay, 0 for none */
    const char *error;      /* JSON text */
    size_t errlen;
} drv_failure;

typedef struct drv_fail_result {
    int64_t retrying, dead, stale;
    int64_t throttled; /* of retrying + dead: throttled answers */
} drv_fail_result;

drv_err drv_queue_fail(drv_queue *q, const char *job, int p, const drv_failure *f, size_t n,
                       drv_fail_result *res);
/* Extends the leases still held; *lost counts those no longer held. */
drv_err drv_queue_extend(drv_queue *q, const char *job, int p, const drv_ref *refs, size_t n,
                         int64_t *lost);
/* Hands back items never started, without counting a delivery. */
drv_err drv_queue_release(drv_queue *q, const char *job, int p, const drv_ref *refs, size_t n,
                          int64_t *released);
/* The answer of the job's fleet-wide limits (lua/admit.lua). */
typedef struct drv_admit {
    int64_t granted; /* items the worker may claim now */
    int64_t wait_ms; /* granted 0: > 0 the rate allows more after this; -1 the in-flight cap */
    int64_t now_ms;  /* Redis time */
} drv_admit;

/* Asks for up to 'want' items of the job under its rate and in-flight cap. 'held' is what this
 * worker holds of the job now (claimed, not yet acknowledged); 'unused' the part of its last
 * grant its claims did not find (refunded). want 0 only reports held and unused. */
drv_err drv_queue_admit(drv_queue *q, const char *job, const char *worker, int64_t want,
                        int64_t held, int64_t unused, drv_admit *out);
/* The same, reporting the answers since this worker's last call for the adaptive limit
 * (lua/lib/aimd.lua): 'bad' overload signals (throttled answers), 'good' ok answers. */
drv_err drv_queue_admit_answers(drv_queue *q, const char *job, const char *worker, int64_t want,
                                int64_t held, int64_t unused, int64_t bad, int64_t good,
                                drv_admit *out);

/* What a worker reports with each heartbeat (drover workers shows it). */
typedef struct drv_worker_info {
    char id[160];
    char host[64];
    int64_t pid;
    char version[16];
    char jobs[512]; /* the jobs it serves, comma separated */
    char state[16]; /* running, draining */
    int64_t in_flight, queued, done, failed;
    int64_t spans_dropped;       /* --otlp-endpoint: spans the exporter could not send */
    int64_t lease_ms;            /* silent longer than this: lost */
    int64_t started_ms, beat_ms; /* Redis time */
} drv_worker_info;

/* Records a heartbeat (lua/beat.lua): PREFIX{workers} and PREFIX{workers}:ID. *drain = 1 once an
 * operator asked this worker to drain; *now_ms is Redis time. */
drv_err drv_queue_heartbeat(drv_queue *q, const drv_worker_info *w, int *drain, int64_t *now_ms);
/* Takes a worker out of the registry (a clean exit). */
drv_err drv_queue_worker_gone(drv_queue *q, const char *worker);
/* Every registered worker, by last heartbeat; *now_ms is Redis time. Entries whose hash
 * expired are dropped. Caller frees *out. */
drv_err drv_queue_workers(drv_queue *q, drv_worker_info **out, size_t *n, int64_t *now_ms);
/* Asks a worker to drain. DRV_ENOJOB if no such worker is registered. */
drv_err drv_queue_worker_drain(drv_queue *q, const char *worker);

/* ---- operators ------------------------------------------------------------------------------- */

/* Calls fn for each dead item of partition p with its last error (JSON). */
drv_err drv_queue_dead_each(drv_queue *q, const char *job, int p,
                            void (*fn)(const char *id, size_t idlen, const char *err, size_t errlen,
                                       void *ud),
                            void *ud);
/* Calls fn for up to 'max' dead items of the job, a few per partition from the first one on
 * (HSCAN with a small COUNT: never a walk of a large dead hash). */
drv_err drv_queue_dead_first(drv_queue *q, const char *job, int nparts, int max,
                             void (*fn)(const char *id, size_t idlen, const char *err,
                                        size_t errlen, void *ud),
                             void *ud);
/* One page of the job's dead items, from partition *p at HSCAN cursor 'cursor' ("0": its
 * start) on: fn is called for about 'max' items (HSCAN's COUNT is a hint: a small hash comes
 * whole), and *p and cursor are left where the next page starts (*p == nparts: the end). */
drv_err drv_queue_dead_page(
    drv_queue *q, const char *job, int nparts, int max, int *p, char cursor[32],
    void (*fn)(const char *id, size_t idlen, const char *err, size_t errlen, void *ud), void *ud);
/* Calls fn for each kept response of partition p (HSCAN, in batches). */
drv_err drv_queue_results_each(drv_queue *q, const char *job, int p,
                               void (*fn)(const char *id, size_t idlen, const char *resp,
                                          size_t rlen, void *ud),
                               void *ud);
/* A job's fleet-wide limits as Redis holds them (PREFIX{J}:limits). */
typedef struct drv_limits {
    int present; /* 0: the job has no limits hash (made before limits existed) */
    int64_t per_second, burst, max_in_flight, weight;
    int64_t tokens;    /* whole tokens in the bucket as of its last refill */
    int64_t in_flight; /* items the workers reported holding (fresh entries) */
    int64_t workers;   /* workers with a fresh entry */
    int64_t adaptive;  /* 1: the in-flight limit adapts (an HTTP handler's job) */
    int64_t limit;     /* the adaptive in-flight limit now, 0 before the first admit */
} drv_limits;

drv_err drv_queue_limits_get(drv_queue *q, const char *job, drv_limits *out);
/* Makes 'spec' (the job's spec with new limits) the job's: the spec in the job hash and the
 * limits hash are written in one MULTI/EXEC (both keys are under {J}). Workers see a new
 * rate or cap at their next admit call, a new weight at their next job discovery. */
drv_err drv_queue_limits_set(drv_queue *q, const drv_spec *spec);

/* ---- history --------------------------------------------------------------------------------- */

/* One point of a job's progress, as drover run samples it (PREFIX{J}:history). */
typedef struct drv_history_sample {
    int64_t at_ms; /* Redis-independent wall clock of the coordinator */
    int64_t done, dead;
    int64_t rate_milli; /* items/s x 1000 over the minute before */
} drv_history_sample;

#define DRV_HISTORY_MAX 8640 /* a day of samples at drover run's default, one per 10 s */

/* Adds a sample, newest first, keeping the last DRV_HISTORY_MAX (LPUSH, LTRIM). */
drv_err drv_queue_history_add(drv_queue *q, const char *job, const drv_history_sample *s);
/* The newest 'max' samples, oldest first. Caller frees *out. */
drv_err drv_queue_history(drv_queue *q, const char *job, int max, drv_history_sample **out,
                          size_t *n);

/* Moves every dead item of partition p back to pending with fresh attempts. */
drv_err drv_queue_revive(drv_queue *q, const char *job, int p, int64_t *revived);
/* The same for the dead items whose error record's "error" text holds 'match' only. */
drv_err drv_queue_revive_matching(drv_queue *q, const char *job, int p, const char *match,
                                  int64_t *revived);
/* The same for the ids named (those not dead in partition p are skipped). */
drv_err drv_queue_revive_ids(drv_queue *q, const char *job, int p, const char *const *ids, size_t n,
                             int64_t *revived);

#endif
