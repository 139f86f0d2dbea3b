/* The worker's decisions that are pure arithmetic over what it holds, kept apart from the loop
 * (loop.c) so that unit tests can call them (tests/unit/test_policy.c): which job to claim from
 * and how many (fairness between jobs), when buffered results are flushed, and when a job's
 * fleet-wide limits are asked again or told what this worker holds. No I/O, no clock: the
 * caller passes 'now'. */
#ifndef DRV_WORKER_POLICY_H
#define DRV_WORKER_POLICY_H

#include <stdint.h>

/* ---- claim fairness -------------------------------------------------------------------------- */

typedef struct policy_job {
    int has_work;   /* may be claimed from now (running, not told to wait, a partition not empty) */
    int tried;      /* already tried in this pass of claim_once */
    int64_t weight; /* its share of the worker's slots beside other jobs with work (>= 1) */
    int64_t held;   /* items this worker holds of it (queued, running, results unsent) */
} policy_job;

/* The job to claim from next: of those with work not yet tried, the one holding the least of
 * this worker's slots for its weight (held / weight, compared without division); a tie goes to
 * the first in round-robin order from 'rr'. -1 when none. */
int policy_pick_job(const policy_job *jobs, int n, int rr);

/* Sum of the weights of the jobs with work (0: nothing to claim). */
int64_t policy_weight_sum(const policy_job *jobs, int n);

/* How many items to ask job j for: 'want', but while it is under its fair share of cap_held
 * (cap_held * weight / wsum) no more than what takes it up to that share (at least 1). At or
 * over its share it takes 'want': it is picked then only when no job with less could claim. */
int64_t policy_claim_size(int64_t want, int64_t cap_held, const policy_job *j, int64_t wsum);

/* ---- the flush policy ------------------------------------------------------------------------ */

#define POLICY_FLUSH_LINGER_MS 20 /* results wait this long for more to share a call */

typedef struct policy_flush {
    int nres;           /* results waiting to be sent */
    int batch;          /* --batch: this many go at once */
    int running;        /* items still running */
    int draining;       /* the worker drains: send at once */
    int64_t oldest_res; /* local ms the oldest waiting result came in */
    int64_t at; /* when they may be sent (Redis taking writes, partition backoffs), -1: none */
} policy_flush;

/* Whether to send the results now: when they may be sent, and a batch is full, the worker
 * drains, nothing runs any more (no result is coming to share the call) or the oldest has
 * waited POLICY_FLUSH_LINGER_MS. */
int policy_flush_now(const policy_flush *f, int64_t now);

/* Milliseconds until the results should be sent (for the loop's wait), or -1 with none. */
int64_t policy_flush_wait(const policy_flush *f, int64_t now);

/* ---- fleet-wide limits (admission) ----------------------------------------------------------- */

/* After the limits granted nothing: how long until the job is asked again. 'wait_ms' is the
 * script's answer (the rate's next tokens), 0 when the in-flight cap is full (it frees up as the
 * fleet's items finish: 20 ms plus 'jitter' in [0, 30)). */
int64_t policy_admit_retry_ms(int64_t wait_ms, int64_t jitter);

typedef struct policy_report {
    int64_t held;       /* items this worker holds of the job now */
    int64_t reported;   /* what Redis was last told it may hold */
    int64_t unused;     /* granted, not found by claims */
    int64_t last_admit; /* local ms of the last admit call */
    int64_t lease_ms;
} policy_report;

/* Whether to tell the limits what this worker holds: when that changed (or a grant went unused)
 * and no call said it for 100 ms, and at least every lease_ms/3 while it holds any, so its entry
 * stays as fresh as its leases. 'force' (the worker exits): whenever anything was reported or
 * is unused. */
int policy_report_due(const policy_report *r, int64_t now, int force);

/* Local ms when policy_report_due turns true without a change, or -1 never. */
int64_t policy_report_at(const policy_report *r);

#endif
