/* Job states: every name Redis holds maps to one value and back, anything else is unknown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "job_state.h"

static void every_state_round_trips_through_its_name(void **state) {
    (void)state;
    for (int s = DRV_JOB_CREATING; s <= DRV_JOB_MISSING; s++)
        assert_int_equal(drv_job_state_parse(drv_job_state_name((drv_job_state)s)), s);
    assert_string_equal(drv_job_state_name(DRV_JOB_RUNNING), "running");
    assert_string_equal(drv_job_state_name(DRV_JOB_PAUSED), "paused");
    assert_string_equal(drv_job_state_name(DRV_JOB_CANCELLED), "cancelled");
    assert_string_equal(drv_job_state_name(DRV_JOB_DONE), "done");
}

static void other_names_are_unknown(void **state) {
    (void)state;
    assert_int_equal(drv_job_state_parse(NULL), DRV_JOB_UNKNOWN);
    assert_int_equal(drv_job_state_parse(""), DRV_JOB_UNKNOWN);
    assert_int_equal(drv_job_state_parse("Running"), DRV_JOB_UNKNOWN);
    assert_int_equal(drv_job_state_parse("unknown"), DRV_JOB_UNKNOWN);
    assert_int_equal(drv_job_state_parse("done "), DRV_JOB_UNKNOWN);
    assert_string_equal(drv_job_state_name((drv_job_state)99), "unknown");
}

static void only_done_and_cancelled_are_finished(void **state) {
    (void)state;
    for (int s = DRV_JOB_UNKNOWN; s <= DRV_JOB_MISSING; s++)
        assert_int_equal(drv_job_state_finished((drv_job_state)s),
                         s == DRV_JOB_DONE || s == DRV_JOB_CANCELLED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_state_round_trips_through_its_name),
        cmocka_unit_test(other_names_are_unknown),
        cmocka_unit_test(only_done_and_cancelled_are_finished),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
