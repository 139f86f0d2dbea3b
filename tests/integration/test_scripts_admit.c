/* lua/admit.lua against a real redis-server: the fleet-wide token bucket (Redis TIME), its
 * burst and refunds, the in-flight cap across workers, lost workers' entries, and limits
 * changed while the job runs (drv_queue_limits_set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

/* Creates job 'id' (one partition) with the given limits. */
static drv_spec limited_job(const char *id, int64_t rate, int64_t burst, int64_t mif,
                            int64_t lease_ms) {
    jobopt o = defaults();
    o.lease_ms = lease_ms;
    drv_spec s = spec_of(id, &o);
    s.rate_per_s = rate;
    s.rate_burst = rate ? burst : 0;
    s.max_in_flight = mif;
    drv_part_init part;
    memset(&part, 0, sizeof part);
    snprintf(part.cursor, sizeof part.cursor, "0");
    assert_int_equal(drv_queue_job_create(q, &s, -1, &part, 0), DRV_OK);
    return s;
}

static drv_admit admit(const char *job, const char *worker, int64_t want, int64_t held,
                       int64_t unused) {
    drv_admit a;
    memset(&a, 0x5a, sizeof a);
    drv_err e = drv_queue_admit(q, job, worker, want, held, unused, &a);
    if (e) fail_msg("admit: %s (%s)", drv_strerror(e), drv_queue_errstr(q));
    return a;
}

static void admit_without_limits_grants_what_is_wanted(void **state) {
    (void)state;
    limited_job("free", 0, 0, 0, 10000);
    drv_admit a = admit("free", "w1", 1000, 5000, 0);
    assert_int_equal(a.granted, 1000);
    assert_int_equal(a.wait_ms, 0);
    /* A job made before limits existed has no limits hash: nothing is limited. */
    a = admit("old", "w1", 7, 0, 0);
    assert_int_equal(a.granted, 7);
    assert_int_equal(rint_("EXISTS drover:{old}:limits"), 0);
}

static void admit_bucket_starts_full_and_caps_the_burst(void **state) {
    (void)state;
    limited_job("r", 10, 5, 0, 10000);
    assert_rstr("10", "HGET drover:{r}:limits per_second");
    drv_admit a = admit("r", "w1", 100, 0, 0);
    assert_int_equal(a.granted, 5);
    a = admit("r", "w2", 100, 0, 0);
    assert_int_equal(a.granted, 0);
    /* At 10/s one token comes 100 ms after the last, less what has refilled since. */
    assert_true(a.wait_ms >= 1 && a.wait_ms <= 100);
}

static void admit_refills_by_redis_time_never_faster_than_the_rate(void **state) {
    (void)state;
    limited_job("r", 1000, 10, 0, 10000);
    int64_t t0 = redis_now();
    int64_t granted = 0, t1 = t0;
    /* Ask for as much as possible for 300 ms of Redis time. */
    while (t1 - t0 < 300) {
        drv_admit a = admit("r", "w1", 50, 0, 0);
        granted += a.granted;
        t1 = a.now_ms;
        if (!a.granted) assert_true(a.wait_ms > 0);
    }
    /* The bucket started full (10), then 1 per ms of Redis time. */
    int64_t most = 10 + (t1 - t0) + 1;
    if (granted > most) fail_msg("granted %" PRId64 " in %" PRId64 " ms", granted, t1 - t0);
    /* And the refill works: far more than the burst came out. */
    assert_true(granted > 100);
}

static void admit_refund_puts_unused_tokens_back_up_to_the_burst(void **state) {
    (void)state;
    limited_job("r", 1, 5, 0, 10000);
    assert_int_equal(admit("r", "w1", 5, 0, 0).granted, 5);
    assert_int_equal(admit("r", "w1", 5, 0, 0).granted, 0);
    /* Its claims found only 2 of the 5: 3 tokens go back and are granted again. */
    assert_int_equal(admit("r", "w1", 10, 2, 3).granted, 3);
    /* A refund never fills the bucket beyond its burst. */
    assert_int_equal(admit("r", "w1", 0, 0, 1000).granted, 0);
    assert_int_equal(admit("r", "w1", 100, 0, 0).granted, 5);
}

static void admit_in_flight_cap_holds_across_workers(void **state) {
    (void)state;
    limited_job("c", 0, 0, 5, 10000);
    assert_int_equal(admit("c", "w1", 3, 0, 0).granted, 3);
    assert_int_equal(admit("c", "w2", 8, 0, 0).granted, 2);
    drv_admit a = admit("c", "w2", 8, 2, 0);
    assert_int_equal(a.granted, 0);
    assert_int_equal(a.wait_ms, -1);
    assert_rstr("2", "EVAL %s 1 drover:{c}:limits",
                "return string.match(redis.call('HGET', KEYS[1], 'w:w2'), '^%d+')");
    /* w1 finished two of its three: reporting that frees two slots for w2. */
    assert_int_equal(admit("c", "w1", 0, 1, 0).granted, 0);
    assert_int_equal(admit("c", "w2", 8, 2, 0).granted, 2);
    assert_int_equal(admit("c", "w1", 8, 1, 0).granted, 0);
    /* A grant that claims did not use counts until the worker reports again. */
    assert_int_equal(admit("c", "w2", 0, 0, 4).granted, 0);
    assert_int_equal(admit("c", "w1", 8, 1, 0).granted, 4);
    drv_limits l;
    assert_int_equal(drv_queue_limits_get(q, "c", &l), DRV_OK);
    assert_int_equal(l.in_flight, 5);
    assert_int_equal(l.workers, 1);
    assert_int_equal(l.max_in_flight, 5);
}

static void admit_idle_worker_leaves_no_entry(void **state) {
    (void)state;
    limited_job("c", 0, 0, 5, 10000);
    assert_int_equal(admit("c", "w1", 3, 0, 0).granted, 3);
    assert_int_equal(rint_("HEXISTS drover:{c}:limits w:w1"), 1);
    admit("c", "w1", 0, 0, 3);
    assert_int_equal(rint_("HEXISTS drover:{c}:limits w:w1"), 0);
    assert_int_equal(admit("c", "w2", 9, 0, 0).granted, 5);
}

static void admit_ignores_a_lost_workers_entry_after_its_leases_expire(void **state) {
    (void)state;
    limited_job("c", 0, 0, 3, 100);
    drv_admit a = admit("c", "lost", 3, 0, 0);
    assert_int_equal(a.granted, 3);
    assert_int_equal(admit("c", "w2", 3, 0, 0).granted, 0);
    /* The lost worker's items' leases end by lease_ms after its last call; its entry counts
     * for a second beyond that. */
    int64_t deadline = drv_now_ms() + POLL_MS;
    int64_t got = 0, at = 0;
    while (!got) {
        drv_admit b = admit("c", "w2", 3, 0, 0);
        got = b.granted, at = b.now_ms;
        if (drv_now_ms() > deadline) fail_msg("the lost worker's slots never came back");
        if (!got) drv_sleep_ms(20);
    }
    assert_int_equal(got, 3);
    assert_true(at > a.now_ms + 100 + 1000);
    assert_int_equal(rint_("HEXISTS drover:{c}:limits w:lost"), 0);
}

static void limits_changed_live_apply_to_the_next_admit(void **state) {
    (void)state;
    drv_spec s = limited_job("j", 0, 0, 0, 10000);
    assert_int_equal(admit("j", "w1", 4, 0, 0).granted, 4);
    /* A cap below what is held: nothing more until the fleet is under it. */
    s.max_in_flight = 3;
    s.rate_per_s = 1;
    s.rate_burst = 2;
    s.weight = 7;
    assert_int_equal(drv_queue_limits_set(q, &s), DRV_OK);
    drv_admit a = admit("j", "w2", 4, 0, 0);
    assert_int_equal(a.granted, 0);
    assert_int_equal(a.wait_ms, -1);
    admit("j", "w1", 0, 0, 0);
    /* Under the cap, the new rate's burst is what comes out. */
    assert_int_equal(admit("j", "w2", 4, 0, 0).granted, 2);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_int_equal(j.spec.max_in_flight, 3);
    assert_int_equal(j.spec.rate_per_s, 1);
    assert_int_equal(j.spec.weight, 7);
    drv_limits l;
    assert_int_equal(drv_queue_limits_get(q, "j", &l), DRV_OK);
    assert_true(l.present);
    assert_int_equal(l.per_second, 1);
    assert_int_equal(l.burst, 2);
    assert_int_equal(l.weight, 7);
    /* rate 0 and max_in_flight 0 lift the limits. */
    s.max_in_flight = 0;
    s.rate_per_s = 0;
    s.rate_burst = 0;
    assert_int_equal(drv_queue_limits_set(q, &s), DRV_OK);
    assert_int_equal(admit("j", "w2", 400, 2, 0).granted, 400);
}

static void job_delete_removes_the_limits(void **state) {
    (void)state;
    limited_job("d", 5, 1, 2, 10000);
    admit("d", "w1", 1, 0, 0);
    assert_int_equal(drv_queue_job_delete(q, "d"), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{d}:limits"), 0);
}

/* ---- the adaptive in-flight limit (lua/lib/aimd.lua) ------------------------------------------
 */

/* An HTTP handler's job (adaptive by default) with the given max_in_flight and rate. */
static void adaptive_job(const char *id, int64_t mif, int64_t rate) {
    jobopt o = defaults();
    drv_spec s = spec_of(id, &o);
    snprintf(s.handler, sizeof s.handler, "{\"type\":\"http\",\"url\":\"http://127.0.0.1:1/\"}");
    s.max_in_flight = mif;
    s.rate_per_s = rate;
    s.rate_burst = rate ? rate : 0;
    drv_part_init part;
    memset(&part, 0, sizeof part);
    snprintf(part.cursor, sizeof part.cursor, "0");
    assert_int_equal(drv_queue_job_create(q, &s, -1, &part, 0), DRV_OK);
}

static drv_admit answers(const char *job, const char *worker, int64_t want, int64_t held,
                         int64_t bad, int64_t good) {
    drv_admit a;
    drv_err e = drv_queue_admit_answers(q, job, worker, want, held, 0, bad, good, &a);
    if (e) fail_msg("admit: %s (%s)", drv_strerror(e), drv_queue_errstr(q));
    return a;
}

static long long limit_of(const char *job) {
    return rint_("HGET drover:{%s}:limits a_limit", job);
}

/* The window of the last change is over (as if a second had passed). */
static void window_over(const char *job) {
    rint_("HSET drover:{%s}:limits a_changed_ms 0", job);
}

static void adaptive_limit_starts_at_adaptive_start_across_workers(void **state) {
    (void)state;
    adaptive_job("a", 0, 0);
    assert_rstr("1", "HGET drover:{a}:limits adaptive");
    assert_int_equal(answers("a", "w1", 100, 0, 0, 0).granted, 16);
    assert_int_equal(limit_of("a"), 16);
    /* The limit is the fleet's: a second worker gets nothing while the first holds 16. */
    drv_admit b = answers("a", "w2", 100, 0, 0, 0);
    assert_int_equal(b.granted, 0);
    assert_int_equal(b.wait_ms, -1);
    /* A job without an HTTP handler has no adaptive limit (its command says nothing). */
    limited_job("cmd", 0, 0, 0, 10000);
    assert_rstr("0", "HGET drover:{cmd}:limits adaptive");
    assert_int_equal(admit("cmd", "w1", 1000, 0, 0).granted, 1000);
}

/* However many throttled answers one burst brings, the limit halves once per window; after
 * the window the next signal halves it again. */
static void adaptive_limit_decreases_once_per_window(void **state) {
    (void)state;
    adaptive_job("a", 0, 0);
    answers("a", "w1", 1, 0, 0, 0);
    assert_int_equal(limit_of("a"), 16);
    answers("a", "w1", 0, 0, 12, 0);
    assert_int_equal(limit_of("a"), 8);
    long long at = rint_("HGET drover:{a}:limits a_changed_ms");
    answers("a", "w2", 0, 0, 30, 0);
    answers("a", "w1", 0, 0, 1, 5);
    assert_int_equal(limit_of("a"), 8);
    wait_redis_past(at + 1000);
    answers("a", "w2", 0, 0, 1, 0);
    assert_int_equal(limit_of("a"), 4);
}

/* Before the first decrease the limit doubles per window in which it was reached and
 * answers were good; after it, it grows by one. It does not grow while unused. */
static void adaptive_limit_grows_only_when_reached(void **state) {
    (void)state;
    adaptive_job("a", 0, 0);
    answers("a", "w1", 10, 0, 0, 0); /* under the limit */
    answers("a", "w1", 0, 10, 0, 10);
    assert_int_equal(limit_of("a"), 16);
    answers("a", "w1", 100, 10, 0, 0); /* wanted more than the limit left: reached */
    answers("a", "w1", 0, 16, 0, 10);
    assert_int_equal(limit_of("a"), 32);
    window_over("a");
    answers("a", "w1", 0, 16, 3, 0);
    assert_int_equal(limit_of("a"), 16);
    window_over("a");
    answers("a", "w1", 100, 0, 0, 0);
    answers("a", "w1", 0, 16, 0, 10);
    assert_int_equal(limit_of("a"), 17);
}

/* The limit stays within 1 and max_in_flight (or the rate, the lower of the two). */
static void adaptive_limit_stays_within_its_bounds(void **state) {
    (void)state;
    adaptive_job("m", 10, 0);
    assert_int_equal(answers("m", "w1", 100, 0, 0, 0).granted, 10);
    assert_int_equal(limit_of("m"), 10);
    for (int k = 0; k < 3; k++) {
        answers("m", "w1", 100, 10, 0, 50);
        window_over("m");
    }
    assert_int_equal(limit_of("m"), 10);
    adaptive_job("r", 0, 5);
    answers("r", "w1", 1, 0, 0, 0);
    assert_int_equal(limit_of("r"), 5);
    for (int k = 0; k < 5; k++) {
        window_over("r");
        answers("r", "w1", 0, 0, 100, 0);
    }
    assert_int_equal(limit_of("r"), 1);
    assert_int_equal(answers("r", "w1", 100, 0, 0, 0).granted, 1);
}

/* drover set: adaptive off lifts the limit, on brings it back; a lower max_in_flight bounds it
 * at once. */
static void adaptive_limit_changes_live(void **state) {
    (void)state;
    adaptive_job("a", 0, 0);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "a", &j), DRV_OK);
    assert_int_equal(answers("a", "w1", 100, 0, 0, 0).granted, 16);
    j.spec.adaptive = 0;
    assert_int_equal(drv_queue_limits_set(q, &j.spec), DRV_OK);
    assert_int_equal(answers("a", "w1", 100, 16, 0, 0).granted, 100);
    j.spec.adaptive = 1;
    j.spec.max_in_flight = 4;
    assert_int_equal(drv_queue_limits_set(q, &j.spec), DRV_OK);
    assert_int_equal(answers("a", "w2", 100, 0, 0, 0).granted, 0);
    assert_int_equal(limit_of("a"), 4);
    drv_limits l;
    assert_int_equal(drv_queue_limits_get(q, "a", &l), DRV_OK);
    assert_int_equal(l.adaptive, 1);
    assert_int_equal(l.limit, 4);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(admit_without_limits_grants_what_is_wanted),
        T(admit_bucket_starts_full_and_caps_the_burst),
        T(admit_refills_by_redis_time_never_faster_than_the_rate),
        T(admit_refund_puts_unused_tokens_back_up_to_the_burst),
        T(admit_in_flight_cap_holds_across_workers),
        T(admit_idle_worker_leaves_no_entry),
        T(admit_ignores_a_lost_workers_entry_after_its_leases_expire),
        T(limits_changed_live_apply_to_the_next_admit),
        T(adaptive_limit_starts_at_adaptive_start_across_workers),
        T(adaptive_limit_decreases_once_per_window),
        T(adaptive_limit_grows_only_when_reached),
        T(adaptive_limit_stays_within_its_bounds),
        T(adaptive_limit_changes_live),
        T(job_delete_removes_the_limits),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
