/* The claim size (worker/claimsize.h): a worker held back by its claims grows them to the
 * script's maximum, one held back by its handler keeps about a horizon of work queued, the
 * size stays between 1 and the maximum, and --batch fixes it as before; an empty partition is
 * asked again later each time, up to IDLE_PROBE_MS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "claimsize.h"

#define LEASE 30000 /* ms: a horizon of 100 ms */

/* Feeds the sizer one window in which 'n' items finished, ending at *t (us). */
static void window(claimsize *s, int64_t *t, int64_t n) {
    *t += CLAIMSIZE_WINDOW_US;
    claimsize_finished(s, n, *t);
}

static void with_nothing_known_it_fills_the_free_slots(void **state) {
    (void)state;
    claimsize s;
    claimsize_init(&s, 1000, 0);
    assert_int_equal(claimsize_target(&s, LEASE), 0);
    assert_int_equal(claimsize_want(&s, 4, 0, 0, 1004, LEASE), 4);
    assert_int_equal(claimsize_want(&s, 4, 3, 0, 1004, LEASE), 1);
    /* Every slot taken, nothing known: no claim. */
    assert_int_equal(claimsize_want(&s, 4, 4, 0, 1004, LEASE), 0);
    assert_int_equal(claimsize_want(&s, 4, 2, 2, 1004, LEASE), 0);
}

static void a_worker_held_back_by_its_claims_grows_them_to_the_maximum(void **state) {
    (void)state;
    /* A no-op handler: whatever is claimed finishes at once, so each window's rate is what
     * the claims brought in: one claim of 'want' per 200 us round trip. */
    claimsize s;
    claimsize_init(&s, 1000, 0);
    int64_t t = 0;
    claimsize_finished(&s, 0, t);
    int want = claimsize_want(&s, 4, 0, 0, 1004, LEASE), windows = 0;
    while (want < 1000 && windows < 10) {
        claimsize_rtt(&s, 200);
        window(&s, &t, (int64_t)want * (CLAIMSIZE_WINDOW_US / 200));
        want = claimsize_want(&s, 4, 0, 0, 1004, LEASE);
        windows++;
    }
    assert_int_equal(want, 1000);
    assert_true(windows <= 3);
    /* Never past the maximum, nor past the room in the worker's held array. */
    window(&s, &t, 1000000);
    assert_int_equal(claimsize_want(&s, 4, 0, 0, 1004, LEASE), 1000);
    assert_int_equal(claimsize_want(&s, 4, 0, 0, 300, LEASE), 300);
    assert_int_equal(claimsize_want(&s, 4, 0, 0, 0, LEASE), 0);
}

static void a_worker_held_back_by_its_handler_queues_a_horizon_of_work(void **state) {
    (void)state;
    /* 4 slots of a 20 ms API: 200 items/s. With a 30 s lease the horizon is 100 ms: about 20
     * queued (21 with the 5 ms round trip), not the script's 1000. */
    claimsize s;
    claimsize_init(&s, 1000, 0);
    int64_t t = 0;
    claimsize_finished(&s, 0, t);
    for (int i = 0; i < 8; i++) {
        claimsize_rtt(&s, 5000);
        window(&s, &t, 4); /* 4 per 20 ms */
    }
    assert_int_equal(claimsize_target(&s, LEASE), 21);
    /* All 4 running, nothing queued: the target. */
    assert_int_equal(claimsize_want(&s, 4, 4, 0, 1004, LEASE), 21);
    /* Queued above half the target: wait. At half or less: top it up. */
    assert_int_equal(claimsize_want(&s, 4, 4, 11, 1004, LEASE), 0);
    assert_int_equal(claimsize_want(&s, 4, 4, 10, 1004, LEASE), 11);
    /* A shorter lease, a shorter horizon (10 ms at least): fewer stranded by a crash. */
    assert_int_equal(claimsize_target(&s, 1000), 3);
    assert_int_equal(claimsize_target(&s, 100), 3);
}

static void a_slow_round_trip_queues_more(void **state) {
    (void)state;
    /* 1000 items/s over a 50 ms round trip (Redis far away): 150 ms of work, 150 items. */
    claimsize s;
    claimsize_init(&s, 1000, 0);
    int64_t t = 0;
    claimsize_finished(&s, 0, t);
    for (int i = 0; i < 8; i++) {
        claimsize_rtt(&s, 50000);
        window(&s, &t, 20);
    }
    assert_int_equal(claimsize_target(&s, LEASE), 150);
}

static void an_idle_gap_lowers_the_rate(void **state) {
    (void)state;
    claimsize s;
    claimsize_init(&s, 1000, 0);
    int64_t t = 0;
    claimsize_finished(&s, 0, t);
    for (int i = 0; i < 4; i++)
        window(&s, &t, 10000);
    assert_int_equal(claimsize_target(&s, LEASE), 1000);
    /* 10 s without an item, then a few: one long window of almost nothing, and the rate halves
     * with each empty window after it. */
    double busy = s.rate;
    t += 10000000;
    claimsize_finished(&s, 4, t);
    window(&s, &t, 0);
    window(&s, &t, 0);
    window(&s, &t, 0);
    assert_true(s.rate < busy / 15);
    for (int i = 0; i < 20; i++)
        window(&s, &t, 0);
    assert_int_equal(claimsize_target(&s, LEASE), 0);
    /* Within one window's time nothing changes (the window is not over yet). */
    double r = s.rate;
    claimsize_finished(&s, 5, t + CLAIMSIZE_WINDOW_US - 1);
    assert_true(s.rate == r);
}

static void batch_fixes_the_size_as_before(void **state) {
    (void)state;
    claimsize s;
    claimsize_init(&s, 16, 1);
    int64_t t = 0;
    claimsize_finished(&s, 0, t);
    window(&s, &t, 100000); /* what it observes does not matter */
    assert_int_equal(claimsize_want(&s, 4, 0, 0, 20, LEASE), 16);
    assert_int_equal(claimsize_want(&s, 4, 3, 1, 16, LEASE), 16);
    /* Claims while fewer than the slots wait and no more than the slots are held. */
    assert_int_equal(claimsize_want(&s, 4, 0, 4, 16, LEASE), 0);
    assert_int_equal(claimsize_want(&s, 4, 4, 1, 15, LEASE), 0);
    /* A maximum under 1 is taken as 1. */
    claimsize_init(&s, 0, 1);
    assert_int_equal(claimsize_want(&s, 4, 0, 0, 5, LEASE), 1);
}

static void an_empty_partition_waits_longer_each_time_up_to_a_second(void **state) {
    (void)state;
    /* --idle-ms 100: 50-100 ms after the first empty claim, then 100-200, 200-400, ... */
    assert_int_equal(claimsize_idle_ms(100, 1, 0.0), 50);
    assert_int_equal(claimsize_idle_ms(100, 1, 0.999), 99);
    assert_int_equal(claimsize_idle_ms(100, 2, 0.0), 100);
    assert_int_equal(claimsize_idle_ms(100, 3, 0.0), 200);
    /* Never past IDLE_PROBE_MS (half of it to all of it), however long it stays empty. */
    assert_int_equal(claimsize_idle_ms(100, 5, 0.0), IDLE_PROBE_MS / 2);
    assert_int_equal(claimsize_idle_ms(100, 1000, 0.0), IDLE_PROBE_MS / 2);
    assert_true(claimsize_idle_ms(100, 1000, 0.999) < IDLE_PROBE_MS);
    /* An --idle-ms above it is kept as given. */
    assert_int_equal(claimsize_idle_ms(5000, 3, 0.0), 2500);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(with_nothing_known_it_fills_the_free_slots),
        cmocka_unit_test(a_worker_held_back_by_its_claims_grows_them_to_the_maximum),
        cmocka_unit_test(a_worker_held_back_by_its_handler_queues_a_horizon_of_work),
        cmocka_unit_test(a_slow_round_trip_queues_more),
        cmocka_unit_test(an_idle_gap_lowers_the_rate),
        cmocka_unit_test(batch_fixes_the_size_as_before),
        cmocka_unit_test(an_empty_partition_waits_longer_each_time_up_to_a_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
