/* What the coordinator writes to a job's own keys (its lock, the job hash, the state mirrored
 * into the partitions) lands only while the job hash is the one it started with: a job deleted
 * under it (FLUSHALL, purge) or replaced is never written back (issue 15, item 8). And every
 * number read back from the job hash and the state hashes is checked, naming key and field
 * (item 3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

static drv_job the_job(const char *id) {
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, id, &j), DRV_OK);
    return j;
}

static void lock_is_written_only_for_the_job_it_was_started_with(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    drv_job j = the_job("j");
    int held = 0;
    assert_int_equal(drv_queue_lock_job(q, "j", j.created_ms, "coord", 10000, &held), DRV_OK);
    assert_int_equal(held, 1);
    assert_int_equal(rint_("EXISTS drover:{j}:lock"), 1);

    /* Replaced: another created_ms. Nothing taken, the lock left to expire as it is. */
    rint_("DEL drover:{j}:lock");
    assert_int_equal(drv_queue_lock_job(q, "j", j.created_ms + 1, "coord", 10000, &held),
                     DRV_ENOJOB);
    assert_int_equal(rint_("EXISTS drover:{j}:lock"), 0);

    /* Gone (FLUSHALL): no lock written back. */
    rint_("FLUSHALL");
    assert_int_equal(drv_queue_lock_job(q, "j", j.created_ms, "coord", 10000, &held), DRV_ENOJOB);
    assert_int_equal(rint_("DBSIZE"), 0);
}

static void job_hash_writes_need_the_same_job(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 2;
    create_job("j", &o);
    drv_job j = the_job("j");
    const char *kv[] = {"rate", "12.5", NULL};
    assert_int_equal(drv_queue_job_note_if(q, "j", j.created_ms, kv), DRV_OK);
    assert_rstr("12.5", "HGET drover:{j}:job rate");
    assert_int_equal(drv_queue_job_note_if(q, "j", j.created_ms + 1, kv), DRV_ENOJOB);
    assert_int_equal(drv_queue_job_set_state(q, &j, "paused"), DRV_OK);
    assert_rstr("paused", "HGET drover:{j}:job state");
    assert_rstr("paused", "HGET drover:{j.1}:state state");

    /* Deleted (a purge): neither the job hash nor a partition's state is written back. */
    assert_int_equal(drv_queue_job_delete(q, "j"), DRV_OK);
    assert_int_equal(drv_queue_job_note_if(q, "j", j.created_ms, kv), DRV_ENOJOB);
    assert_int_equal(drv_queue_job_set_state(q, &j, "done"), DRV_ENOJOB);
    int64_t mark = -1;
    assert_int_equal(drv_queue_job_mark(q, "j", j.created_ms, "complete_sent", &mark), DRV_OK);
    assert_int_equal(mark, 0);
    assert_int_equal(rint_("DBSIZE"), 0);
}

static void unlock_drops_only_the_callers_lock(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    drv_job j = the_job("j");
    int held = 0;
    assert_int_equal(drv_queue_lock_job(q, "j", j.created_ms, "a", 10000, &held), DRV_OK);
    assert_int_equal(drv_queue_unlock(q, "j", "b"), DRV_OK);
    assert_rstr("a", "GET drover:{j}:lock");
    assert_int_equal(drv_queue_unlock(q, "j", "a"), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{j}:lock"), 0);
}

static void corrupt_job_fields_are_refused_naming_the_field(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 2;
    create_job("j", &o);
    drv_job j;
    static const char *const bad[][2] = {
        {"partitions", "abc"}, {"partitions", "100000"}, {"partitions", "0"},
        {"partitions", "3"}, /* a range job only grows by splits, from the spec's count */
        {"total", "x"},        {"created_ms", "-5"},     {"state", "bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        redisReply *was = redisCommand(rc, "HGET drover:{j}:job %s", bad[i][0]);
        assert_non_null(was);
        char *keep = strdup(was->str);
        freeReplyObject(was);
        rint_("HSET drover:{j}:job %s %s", bad[i][0], bad[i][1]);
        drv_err e = drv_queue_job_get(q, "j", &j);
        if (strcmp(bad[i][1], "3") == 0) {
            /* 3 of a 2-partition range job: a split may have made it. */
            assert_int_equal(e, DRV_OK);
        } else {
            assert_int_equal(e, DRV_ECORRUPT);
            assert_non_null(strstr(drv_queue_errstr(q), "drover:{j}:job"));
            assert_non_null(strstr(drv_queue_errstr(q), bad[i][0]));
        }
        rint_("HSET drover:{j}:job %s %s", bad[i][0], keep);
        free(keep);
    }
    rint_("HSET drover:{j}:job partitions 1");
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_ECORRUPT);
    assert_non_null(strstr(drv_queue_errstr(q), "partitions"));
    rint_("HSET drover:{j}:job partitions 2");
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_int_equal(j.partitions, 2);
}

static void corrupt_state_fields_are_refused_naming_key_and_field(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 2;
    create_job("j", &o);
    drv_part_stat st[2];
    rint_("HSET drover:{j.1}:state fed abc");
    assert_int_equal(drv_queue_stats(q, "j", 2, st), DRV_ECORRUPT);
    assert_non_null(strstr(drv_queue_errstr(q), "drover:{j.1}:state: field fed"));
    rint_("HSET drover:{j.1}:state fed 0");
    rint_("HSET drover:{j.0}:state leased -3");
    assert_int_equal(drv_queue_stats(q, "j", 2, st), DRV_ECORRUPT);
    assert_non_null(strstr(drv_queue_errstr(q), "drover:{j.0}:state: field leased"));
    rint_("HDEL drover:{j.0}:state leased");
    rint_("DEL drover:{j.1}:state");
    rint_("SET drover:{j.1}:state x");
    assert_int_equal(drv_queue_stats(q, "j", 2, st), DRV_ECORRUPT);
    assert_non_null(strstr(drv_queue_errstr(q), "drover:{j.1}:state: WRONGTYPE"));
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(lock_is_written_only_for_the_job_it_was_started_with),
        T(job_hash_writes_need_the_same_job),
        T(unlock_drops_only_the_callers_lock),
        T(corrupt_job_fields_are_refused_naming_the_field),
        T(corrupt_state_fields_are_refused_naming_key_and_field),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
