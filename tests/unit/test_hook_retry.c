/* Callback retries (coordinator/hook_retry.h): when a failed on_complete or on_dead POST is
 * tried again, how the delay grows, what a Retry-After does, and when a callback is given up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hook_retry.h"

static void a_fresh_schedule_is_due_at_once(void **state) {
    (void)state;
    drv_hook_retry r;
    drv_hook_retry_init(&r, 1000, 60000);
    assert_true(drv_hook_retry_due(&r, 0));
    assert_int_equal(drv_hook_retry_wait(&r, 12345), 0);
}

static void a_max_below_the_first_delay_is_raised_to_it(void **state) {
    (void)state;
    drv_hook_retry r;
    drv_hook_retry_init(&r, 5000, 100);
    assert_int_equal(r.max_ms, 5000);
    assert_int_equal(drv_hook_retry_failed(&r, 0, 0, 2500), 5000);
    assert_int_equal(r.backoff_ms, 5000);
}

static void the_delay_doubles_up_to_the_max_with_jitter_over_the_upper_half(void **state) {
    (void)state;
    drv_hook_retry r;
    drv_hook_retry_init(&r, 1000, 6000);
    const int64_t tops[] = {1000, 2000, 4000, 6000, 6000};
    int64_t now = 100;
    for (size_t i = 0; i < sizeof tops / sizeof *tops; i++) {
        /* The draw picks the point: 0 the bottom of the range, its size - 1 the top. */
        drv_hook_retry low = r, high = r;
        assert_int_equal(drv_hook_retry_failed(&low, now, 0, 0), tops[i] / 2);
        assert_int_equal(drv_hook_retry_failed(&high, now, 0, (uint64_t)tops[i] / 2), tops[i]);
        int64_t wait = drv_hook_retry_failed(&r, now, 0, 12345 + i);
        assert_in_range(wait, tops[i] / 2, tops[i]);
        assert_int_equal(r.next_try_ms, now + wait);
        assert_false(drv_hook_retry_due(&r, now + wait - 1));
        assert_int_equal(drv_hook_retry_wait(&r, now + wait - 1), 1);
        assert_true(drv_hook_retry_due(&r, now + wait));
        now += wait;
    }
    assert_int_equal(r.backoff_ms, 6000);
}

static void a_longer_retry_after_is_honoured_up_to_an_hour(void **state) {
    (void)state;
    drv_hook_retry r;
    drv_hook_retry_init(&r, 1000, 60000);
    /* Shorter than the backoff: the backoff wins. */
    assert_int_equal(drv_hook_retry_failed(&r, 0, 10, 0), 500);
    /* Longer: the endpoint's word, and the backoff still doubles. */
    assert_int_equal(drv_hook_retry_failed(&r, 0, 30000, 0), 30000);
    assert_int_equal(r.backoff_ms, 4000);
    assert_int_equal(drv_hook_retry_failed(&r, 7, 86400000, 0), DRV_HOOK_RETRY_AFTER_MAX_MS);
    assert_int_equal(r.next_try_ms, 7 + DRV_HOOK_RETRY_AFTER_MAX_MS);
}

static void a_callback_is_given_up_only_when_its_job_is_gone_or_replaced(void **state) {
    (void)state;
    assert_int_equal(drv_hook_next_step(DRV_OK, 5, 5, 0), DRV_HOOK_POST);
    assert_int_equal(drv_hook_next_step(DRV_OK, 5, 5, 1), DRV_HOOK_DONE);
    assert_int_equal(drv_hook_next_step(DRV_ENOJOB, 0, 5, 0), DRV_HOOK_GIVE_UP);
    assert_int_equal(drv_hook_next_step(DRV_OK, 6, 5, 0), DRV_HOOK_GIVE_UP); /* replaced */
    assert_int_equal(drv_hook_next_step(DRV_OK, 6, 5, 1), DRV_HOOK_GIVE_UP);
    /* Redis trouble is not a reason to drop it: the error is handled and it is tried again. */
    assert_int_equal(drv_hook_next_step(DRV_EIO, 0, 5, 0), DRV_HOOK_ERROR);
    assert_int_equal(drv_hook_next_step(DRV_ECORRUPT, 0, 5, 0), DRV_HOOK_ERROR);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_fresh_schedule_is_due_at_once),
        cmocka_unit_test(a_max_below_the_first_delay_is_raised_to_it),
        cmocka_unit_test(the_delay_doubles_up_to_the_max_with_jitter_over_the_upper_half),
        cmocka_unit_test(a_longer_retry_after_is_honoured_up_to_an_hour),
        cmocka_unit_test(a_callback_is_given_up_only_when_its_job_is_gone_or_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
