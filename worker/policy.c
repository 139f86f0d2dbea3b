/* The worker's pure decisions (policy.h). */
#include "policy.h"

int64_t policy_weight_sum(const policy_job *jobs, int n) {
    int64_t sum = 0;
    for (int i = 0; i < n; i++)
        if (jobs[i].has_work) sum += jobs[i].weight;
    return sum;
}

int policy_pick_job(const policy_job *jobs, int n, int rr) {
    int best = -1;
    for (int k = 0; k < n; k++) {
        int i = (rr + k) % n;
        const policy_job *x = &jobs[i];
        if (x->tried || !x->has_work) continue;
        /* x->held / x->weight < best's held / weight, without division. */
        if (best < 0 || x->held * jobs[best].weight < jobs[best].held * x->weight) best = i;
    }
    return best;
}

int64_t policy_claim_size(int64_t want, int64_t cap_held, const policy_job *j, int64_t wsum) {
    int64_t fair = wsum > 0 ? cap_held * j->weight / wsum : cap_held, n = want;
    if (j->held < fair && fair - j->held < n) n = fair - j->held;
    return n < 1 ? 1 : n;
}

int policy_flush_now(const policy_flush *f, int64_t now) {
    if (f->at < 0 || f->at > now) return 0;
    return f->nres >= f->batch || f->draining || f->running == 0 ||
           now - f->oldest_res >= POLICY_FLUSH_LINGER_MS;
}

int64_t policy_flush_wait(const policy_flush *f, int64_t now) {
    if (f->at < 0) return -1;
    /* At once in a batch or with nothing running, else within the linger time; not before
     * Redis takes writes again or their partition's backoff is over. */
    int64_t d = f->nres >= f->batch || f->running == 0 ? 0 : POLICY_FLUSH_LINGER_MS;
    if (f->at - now > d) d = f->at - now;
    return d;
}

int64_t policy_admit_retry_ms(int64_t wait_ms, int64_t jitter) {
    return wait_ms > 0 ? wait_ms : 20 + jitter;
}

int policy_report_due(const policy_report *r, int64_t now, int force) {
    if (force) return r->reported || r->unused;
    int64_t since = now - r->last_admit;
    return ((r->held != r->reported || r->unused) && since >= 100) ||
           (r->reported && since >= r->lease_ms / 3);
}

int64_t policy_report_at(const policy_report *r) {
    int64_t at = -1;
    if (r->unused || r->held != r->reported) at = r->last_admit + 100;
    if (r->reported && (at < 0 || r->last_admit + r->lease_ms / 3 < at))
        at = r->last_admit + r->lease_ms / 3;
    return at;
}
