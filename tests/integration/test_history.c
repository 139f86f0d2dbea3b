/* A job's history (PREFIX{J}:history, drover web's chart): samples come back oldest first, the
 * list keeps the newest DRV_HISTORY_MAX, a sample that does not parse is skipped, and the key
 * goes with the job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

static void samples_come_back_oldest_first(void **state) {
    (void)state;
    for (int i = 1; i <= 3; i++) {
        drv_history_sample s = {1000 * i, 10 * i, i, 500 * i};
        assert_int_equal(drv_queue_history_add(q, "h", &s), DRV_OK);
    }
    rint_("LPUSH drover:{h}:history %s", "not a sample"); /* skipped, not an error */
    drv_history_sample *h;
    size_t n;
    assert_int_equal(drv_queue_history(q, "h", 100, &h, &n), DRV_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h[i].at_ms, 1000 * (i + 1));
        assert_int_equal(h[i].done, 10 * (i + 1));
        assert_int_equal(h[i].dead, i + 1);
        assert_int_equal(h[i].rate_milli, 500 * (i + 1));
    }
    free(h);
    assert_int_equal(drv_queue_history(q, "none", 100, &h, &n), DRV_OK);
    assert_int_equal(n, 0);
    free(h);
}

static void the_list_is_capped_at_a_day(void **state) {
    (void)state;
    for (int i = 0; i < DRV_HISTORY_MAX + 50; i++) {
        drv_history_sample s = {i, i, 0, 0};
        assert_int_equal(drv_queue_history_add(q, "cap", &s), DRV_OK);
    }
    assert_int_equal(rint_("LLEN drover:{cap}:history"), DRV_HISTORY_MAX);
    drv_history_sample *h;
    size_t n;
    assert_int_equal(drv_queue_history(q, "cap", DRV_HISTORY_MAX, &h, &n), DRV_OK);
    assert_int_equal(n, DRV_HISTORY_MAX);
    assert_int_equal(h[0].at_ms, 50); /* the oldest 50 were trimmed */
    assert_int_equal(h[n - 1].at_ms, DRV_HISTORY_MAX + 49);
    free(h);
}

static void the_history_goes_with_the_job(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    drv_history_sample s = {1, 2, 3, 4};
    assert_int_equal(drv_queue_history_add(q, "j", &s), DRV_OK);
    assert_int_equal(drv_queue_job_delete(q, "j"), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{j}:history"), 0);
}

static void a_wrong_type_key_is_named(void **state) {
    (void)state;
    rint_("SET drover:{w}:history x");
    drv_history_sample *h;
    size_t n;
    assert_int_equal(drv_queue_history(q, "w", 10, &h, &n), DRV_ECORRUPT);
    assert_non_null(strstr(drv_queue_strerror(q, DRV_ECORRUPT), "drover:{w}:history"));
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(samples_come_back_oldest_first),
        T(the_list_is_capped_at_a_day),
        T(the_history_goes_with_the_job),
        T(a_wrong_type_key_is_named),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
