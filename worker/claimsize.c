/* The claim size (claimsize.h). */
#include "claimsize.h"

void claimsize_init(claimsize *s, int max, int fixed) {
    *s = (claimsize){.max = max < 1 ? 1 : max, .fixed = fixed, .win_start = -1};
}

void claimsize_finished(claimsize *s, int64_t n, int64_t now_us) {
    if (s->win_start < 0) s->win_start = now_us;
    s->win_done += n;
    int64_t dt = now_us - s->win_start;
    if (dt < CLAIMSIZE_WINDOW_US) return;
    /* Half the weight on the newest window: a claim-bound worker's rate doubles from one
     * window to the next, and this follows it in a few windows rather than lagging behind.
     * A long idle gap is one long window: the rate falls, and the next job starts small. */
    double sample = (double)s->win_done * 1e6 / (double)dt;
    s->rate = s->rate > 0 ? (s->rate + sample) / 2 : sample;
    s->win_start = now_us;
    s->win_done = 0;
}

void claimsize_rtt(claimsize *s, int64_t us) {
    if (us < 1) us = 1;
    s->rtt_us = s->rtt_us ? (3 * s->rtt_us + us) / 4 : us;
}

int64_t claimsize_target(const claimsize *s, int64_t lease_ms) {
    /* The horizon: a hundredth of the lease (300 ms of a 30 s lease) kept within 10-100 ms. */
    int64_t horizon_us = lease_ms * 10;
    if (horizon_us < 10000) horizon_us = 10000;
    if (horizon_us > 100000) horizon_us = 100000;
    double t = s->rate * (double)(s->rtt_us + horizon_us) / 1e6;
    return t >= (double)s->max ? s->max : (int64_t)t;
}

int claimsize_want(const claimsize *s, int slots, int running, int queued, int room,
                   int64_t lease_ms) {
    int64_t n;
    if (s->fixed) {
        if (queued >= slots || running + queued > slots) return 0;
        n = s->max;
    } else {
        int64_t target = claimsize_target(s, lease_ms);
        int free = slots - running - queued;
        /* Not every time a slot frees: a claim per item would spend a round trip on each. */
        if (queued > target / 2 || (target == 0 && free <= 0)) return 0;
        n = (int64_t)slots + target - running - queued;
        if (n > s->max) n = s->max;
    }
    if (n > room) n = room;
    return n < 1 ? 0 : (int)n;
}

int64_t claimsize_idle_ms(int64_t idle_ms, int empties, double jitter) {
    int64_t ms = idle_ms;
    for (int k = 1; k < empties && ms < IDLE_PROBE_MS; k++)
        ms *= 2;
    if (ms > IDLE_PROBE_MS && idle_ms <= IDLE_PROBE_MS) ms = IDLE_PROBE_MS;
    return ms / 2 + (int64_t)((double)(ms - ms / 2) * jitter);
}
