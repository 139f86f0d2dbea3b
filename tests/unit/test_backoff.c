/* The backoff of things that keep failing: delays double with jitter from 50 ms to 5 s, an
 * episode is said once when it starts and once when it ends, with its count and length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

#include <string.h>

static void backoff_says_once_per_episode(void **state) {
    (void)state;
    drv_backoff b;
    memset(&b, 0, sizeof b);
    int64_t n, ms;
    assert_int_equal(drv_backoff_ok(&b, 0, &n, &ms), 0); /* nothing was failing */
    int say, said = 0;
    for (int i = 0; i < 100; i++) {
        drv_backoff_fail(&b, 1000 + i, &say);
        said += say;
        if (i == 0) assert_int_equal(say, 1);
    }
    assert_int_equal(said, 1);
    assert_int_equal(drv_backoff_ok(&b, 4000, &n, &ms), 1);
    assert_int_equal(n, 100);
    assert_int_equal(ms, 3000);
    assert_int_equal(drv_backoff_ok(&b, 4001, &n, &ms), 0); /* said once */
    drv_backoff_fail(&b, 5000, &say);
    assert_int_equal(say, 1); /* a new episode */
}

static void backoff_doubles_with_jitter_up_to_the_cap(void **state) {
    (void)state;
    drv_backoff b;
    memset(&b, 0, sizeof b);
    int say;
    int64_t cap = DRV_BACKOFF_MIN_MS;
    for (int i = 0; i < 40; i++) {
        int64_t d = drv_backoff_fail(&b, 0, &say);
        /* In the upper half of the current step: never 0, never over the cap. */
        if (d < cap / 2 || d > cap)
            fail_msg("try %d: delay %lld outside [%lld, %lld]", i, (long long)d, (long long)cap / 2,
                     (long long)cap);
        cap = cap * 2 > DRV_BACKOFF_MAX_MS ? DRV_BACKOFF_MAX_MS : cap * 2;
    }
    assert_int_equal(b.delay_ms, DRV_BACKOFF_MAX_MS);
    int64_t n, ms;
    drv_backoff_ok(&b, 0, &n, &ms);
    assert_true(drv_backoff_fail(&b, 0, &say) <= DRV_BACKOFF_MIN_MS); /* starts over */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_says_once_per_episode),
        cmocka_unit_test(backoff_doubles_with_jitter_up_to_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
