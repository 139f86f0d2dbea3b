/* The worker's pure decisions (worker/policy.h): which job a claim goes to and how many items
 * it asks for (two jobs of weight 1 split a worker about evenly, a job without work holds no
 * slots), when buffered results are flushed, and when the fleet-wide limits are asked again or
 * told what the worker holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy.h"

/* ---- claim fairness -------------------------------------------------------------------------- */

static void the_job_holding_least_for_its_weight_goes_first(void **state) {
    (void)state;
    policy_job jobs[3] = {
        {1, 0, 1, 10}, {1, 0, 1, 4}, {1, 0, 3, 9}, /* 9 / 3 = 3: less than 4 / 1 */
    };
    assert_int_equal(policy_pick_job(jobs, 3, 0), 2);
    jobs[2].tried = 1; /* tried in this pass: the next best */
    assert_int_equal(policy_pick_job(jobs, 3, 0), 1);
    jobs[1].has_work = 0;
    assert_int_equal(policy_pick_job(jobs, 3, 0), 0);
    jobs[0].tried = 1;
    assert_int_equal(policy_pick_job(jobs, 3, 0), -1);
}

static void a_tie_goes_round_robin(void **state) {
    (void)state;
    policy_job jobs[3] = {{1, 0, 1, 5}, {1, 0, 1, 5}, {1, 0, 1, 5}};
    assert_int_equal(policy_pick_job(jobs, 3, 0), 0);
    assert_int_equal(policy_pick_job(jobs, 3, 1), 1);
    assert_int_equal(policy_pick_job(jobs, 3, 2), 2);
}

static void only_jobs_with_work_count_in_the_weights(void **state) {
    (void)state;
    policy_job jobs[3] = {{1, 0, 2, 0}, {0, 0, 5, 0}, {1, 0, 1, 0}};
    assert_int_equal(policy_weight_sum(jobs, 3), 3);
    jobs[0].has_work = jobs[2].has_work = 0;
    assert_int_equal(policy_weight_sum(jobs, 3), 0);
}

static void a_claim_stops_at_the_fair_share(void **state) {
    (void)state;
    /* 100 slots, two jobs of weight 1: 50 each. Holding 45, a claim asks for 5, not 32. */
    policy_job j = {1, 0, 1, 45};
    assert_int_equal(policy_claim_size(32, 100, &j, 2), 5);
    /* Far under its share: the whole want. */
    j.held = 0;
    assert_int_equal(policy_claim_size(32, 100, &j, 2), 32);
    /* At or over its share it is picked only when every job with less was tried (found
     * nothing, or has no work): then it takes the whole want, so slots are not left idle. */
    j.held = 50;
    assert_int_equal(policy_claim_size(32, 100, &j, 2), 32);
    j.held = 49;
    assert_int_equal(policy_claim_size(32, 100, &j, 2), 1);
    /* Weight 3 of 4: a share of 75. */
    j.weight = 3;
    j.held = 70;
    assert_int_equal(policy_claim_size(32, 100, &j, 4), 5);
}

/* Simulated claims from two jobs that always have work: each claim goes to the pick and takes
 * the claim size; they end holding the worker about evenly, by weight. */
static void two_jobs_split_the_worker_by_weight(void **state) {
    (void)state;
    policy_job jobs[2] = {{1, 0, 1, 0}, {1, 0, 3, 0}};
    int64_t cap = 400, total = 0, rr = 0;
    while (total < cap) {
        jobs[0].tried = jobs[1].tried = 0;
        int ji = policy_pick_job(jobs, 2, (int)rr);
        assert_true(ji >= 0);
        int64_t n = policy_claim_size(16, cap, &jobs[ji], policy_weight_sum(jobs, 2));
        if (n > cap - total) n = cap - total;
        jobs[ji].held += n;
        total += n;
        rr = (ji + 1) % 2;
    }
    assert_in_range(jobs[0].held, 90, 110);
    assert_in_range(jobs[1].held, 290, 310);
}

/* ---- the flush policy ------------------------------------------------------------------------ */

static void results_wait_to_share_a_call(void **state) {
    (void)state;
    policy_flush f = {3, 100, 5, 0, 1000, 1000};
    assert_false(policy_flush_now(&f, 1010)); /* items still running, the oldest 10 ms old */
    assert_int_equal(policy_flush_wait(&f, 1010), POLICY_FLUSH_LINGER_MS);
    assert_true(policy_flush_now(&f, 1000 + POLICY_FLUSH_LINGER_MS));
}

static void a_full_batch_a_drain_or_nothing_running_flushes_at_once(void **state) {
    (void)state;
    policy_flush f = {100, 100, 5, 0, 1000, 1000};
    assert_true(policy_flush_now(&f, 1001));
    assert_int_equal(policy_flush_wait(&f, 1001), 0);
    f.nres = 3;
    f.running = 0;
    assert_true(policy_flush_now(&f, 1001));
    assert_int_equal(policy_flush_wait(&f, 1001), 0);
    f.running = 5;
    f.draining = 1;
    assert_true(policy_flush_now(&f, 1001));
}

static void nothing_goes_before_redis_takes_writes(void **state) {
    (void)state;
    /* Refused writes or a partition's backoff until 2000: neither now nor within the linger. */
    policy_flush f = {100, 100, 0, 1, 1000, 2000};
    assert_false(policy_flush_now(&f, 1500));
    assert_int_equal(policy_flush_wait(&f, 1500), 500);
    assert_true(policy_flush_now(&f, 2000));
    f.at = -1; /* nothing to send */
    assert_false(policy_flush_now(&f, 5000));
    assert_int_equal(policy_flush_wait(&f, 5000), -1);
}

/* ---- fleet-wide limits ----------------------------------------------------------------------- */

static void the_limits_are_asked_again_when_they_say(void **state) {
    (void)state;
    assert_int_equal(policy_admit_retry_ms(250, 7), 250); /* the rate's next tokens */
    assert_int_equal(policy_admit_retry_ms(0, 7), 27);    /* a full cap: soon, jittered */
}

static void a_change_is_reported_after_100_ms_and_leases_every_third(void **state) {
    (void)state;
    policy_report r = {5, 3, 0, 1000, 30000};
    assert_false(policy_report_due(&r, 1050, 0)); /* changed, said 50 ms ago */
    assert_true(policy_report_due(&r, 1100, 0));
    assert_int_equal(policy_report_at(&r), 1100);
    r.held = 3; /* no change: only the refresh every lease_ms/3 */
    assert_false(policy_report_due(&r, 5000, 0));
    assert_true(policy_report_due(&r, 11000, 0));
    assert_int_equal(policy_report_at(&r), 11000);
    r.unused = 2; /* an unused grant goes back soon */
    assert_int_equal(policy_report_at(&r), 1100);
    /* Nothing reported and nothing held: never, unless something changes. */
    policy_report z = {0, 0, 0, 1000, 30000};
    assert_false(policy_report_due(&z, 99999, 0));
    assert_int_equal(policy_report_at(&z), -1);
    assert_false(policy_report_due(&z, 99999, 1));
    /* Exiting: whatever was reported is given back at once. */
    assert_true(policy_report_due(&r, 1001, 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_job_holding_least_for_its_weight_goes_first),
        cmocka_unit_test(a_tie_goes_round_robin),
        cmocka_unit_test(only_jobs_with_work_count_in_the_weights),
        cmocka_unit_test(a_claim_stops_at_the_fair_share),
        cmocka_unit_test(two_jobs_split_the_worker_by_weight),
        cmocka_unit_test(results_wait_to_share_a_call),
        cmocka_unit_test(a_full_batch_a_drain_or_nothing_running_flushes_at_once),
        cmocka_unit_test(nothing_goes_before_redis_takes_writes),
        cmocka_unit_test(the_limits_are_asked_again_when_they_say),
        cmocka_unit_test(a_change_is_reported_after_100_ms_and_leases_every_third),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
