/* The rebalancing scripts (split_new, split_cut, split_grow) and feed.lua's cursor_max guard,
 * against a real redis-server. The coordinator's use of them (and its recovery of a split
 * cut short) is tested end to end in tests/e2e/test_rebalance.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

/* Job "j": 2 partitions; partition 0 holds ids 1..1000 with its cursor at 'cursor'. */
static void job_with_range(long long cursor) {
    jobopt o = defaults();
    o.parts = 2;
    create_job("j", &o);
    rint_("HSET drover:{j.0}:state start 1 end 1000 cursor %lld", cursor);
    rint_("HSET drover:{j.1}:state start 1001 end 2000 cursor 1001");
}

static drv_spec job_spec(void) {
    jobopt o = defaults();
    o.parts = 2;
    return spec_of("j", &o);
}

static void split_new_creates_an_invisible_partition_with_split_from(void **state) {
    (void)state;
    job_with_range(100);
    drv_spec s = job_spec();
    assert_int_equal(drv_queue_split_new(q, &s, 0, 2, 550, 1000, "running"), DRV_OK);
    assert_rstr("550", "HGET drover:{j.2}:state start");
    assert_rstr("1000", "HGET drover:{j.2}:state end");
    assert_rstr("550", "HGET drover:{j.2}:state cursor");
    assert_rstr("0", "HGET drover:{j.2}:state exhausted");
    assert_rstr("0", "HGET drover:{j.2}:state split_from");
    assert_rstr("running", "HGET drover:{j.2}:state state");
    assert_rstr("10000", "HGET drover:{j.2}:state lease_ms");
    assert_rstr("0", "HGET drover:{j.2}:state fed");
    assert_int_equal(rint_("LLEN drover:{j.2}:pending"), 0);
    /* Invisible: the job still has 2 partitions, and the source partition is untouched. */
    assert_rstr("2", "HGET drover:{j}:job partitions");
    assert_rstr("1000", "HGET drover:{j.0}:state end");
}

static void split_new_refuses_when_any_key_of_the_partition_exists(void **state) {
    (void)state;
    job_with_range(100);
    drv_spec s = job_spec();
    /* A stray done set must never be adopted: its ids would be skipped as done. */
    rint_("SADD drover:{j.2}:done 600");
    assert_int_equal(drv_queue_split_new(q, &s, 0, 2, 550, 1000, "running"), DRV_EEXIST);
    assert_int_equal(rint_("EXISTS drover:{j.2}:state"), 0);
    rint_("DEL drover:{j.2}:done");
    assert_int_equal(drv_queue_split_new(q, &s, 0, 2, 550, 1000, "running"), DRV_OK);
    /* A second step 1 for the same partition is refused too. */
    assert_int_equal(drv_queue_split_new(q, &s, 1, 2, 1500, 2000, "running"), DRV_EEXIST);
    assert_rstr("0", "HGET drover:{j.2}:state split_from");
}

static void split_cut_shrinks_the_end_and_fixes_cursor_max(void **state) {
    (void)state;
    job_with_range(100);
    int ex = -1;
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 550, &ex), DRV_OK);
    assert_int_equal(ex, 0);
    assert_rstr("549", "HGET drover:{j.0}:state end");
    assert_rstr("550", "HGET drover:{j.0}:state cursor_max");
    assert_rstr("100", "HGET drover:{j.0}:state cursor");
    assert_rstr("0", "HGET drover:{j.0}:state exhausted");
}

static void split_cut_refuses_a_cursor_already_past_the_cut(void **state) {
    (void)state;
    job_with_range(600);
    int ex = -1;
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 550, &ex), DRV_ECURSOR);
    assert_int_equal(ex, -1);
    assert_rstr("1000", "HGET drover:{j.0}:state end");
    assert_rstr(NULL, "HGET drover:{j.0}:state cursor_max");
}

static void split_cut_refuses_an_end_that_changed_and_a_second_cut(void **state) {
    (void)state;
    job_with_range(100);
    int ex = -1;
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 999, 550, &ex), DRV_ECURSOR);
    assert_rstr("1000", "HGET drover:{j.0}:state end");
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 550, &ex), DRV_OK);
    /* The same cut again (a retried call) or another one on the old end: refused. */
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 550, &ex), DRV_ECURSOR);
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 300, &ex), DRV_ECURSOR);
    assert_rstr("549", "HGET drover:{j.0}:state end");
    assert_rstr("550", "HGET drover:{j.0}:state cursor_max");
}

static void split_cut_refuses_an_exhausted_or_unknown_partition(void **state) {
    (void)state;
    job_with_range(100);
    rint_("HSET drover:{j.0}:state exhausted 1");
    int ex = -1;
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 550, &ex), DRV_ECURSOR);
    assert_int_equal(drv_queue_split_cut(q, "j", 7, 1000, 550, &ex), DRV_ENOJOB);
}

static void split_cut_at_the_cursor_leaves_the_partition_exhausted(void **state) {
    (void)state;
    job_with_range(550);
    int ex = -1;
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 550, &ex), DRV_OK);
    assert_int_equal(ex, 1);
    assert_rstr("549", "HGET drover:{j.0}:state end");
    assert_rstr("1", "HGET drover:{j.0}:state exhausted");
}

static void feed_never_moves_a_cut_partitions_cursor_past_cursor_max(void **state) {
    (void)state;
    job_with_range(1);
    int ex;
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 4, &ex), DRV_OK);
    drv_feed_item it[4] = {
        {"1", 1, NULL, 0}, {"2", 1, NULL, 0}, {"3", 1, NULL, 0}, {"4", 1, NULL, 0}};
    /* A feeder that still thinks the end is 1000 (a coordinator that lost its lock). */
    assert_int_equal(drv_queue_feed(q, "j", 0, "1", "5", 0, it, 4, NULL), DRV_ECURSOR);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    assert_rstr("1", "HGET drover:{j.0}:state cursor");
    assert_int_equal(drv_queue_feed(q, "j", 0, "1", "4", 1, it, 3, NULL), DRV_OK);
    assert_rlist("1,2,3", "LRANGE drover:{j.0}:pending 0 -1");
    assert_rstr("4", "HGET drover:{j.0}:state cursor");
}

static void split_grow_raises_the_count_once(void **state) {
    (void)state;
    job_with_range(100);
    assert_int_equal(drv_queue_split_grow(q, "j", 2), DRV_OK);
    assert_rstr("3", "HGET drover:{j}:job partitions");
    assert_rstr("1", "HGET drover:{j}:job splits");
    /* Repeated (its reply was lost): no change. */
    assert_int_equal(drv_queue_split_grow(q, "j", 2), DRV_OK);
    assert_rstr("3", "HGET drover:{j}:job partitions");
    assert_rstr("1", "HGET drover:{j}:job splits");
    /* A count read long ago: refused. */
    assert_int_equal(drv_queue_split_grow(q, "j", 1), DRV_ECURSOR);
    assert_int_equal(drv_queue_split_grow(q, "j", 5), DRV_ECURSOR);
    assert_rstr("3", "HGET drover:{j}:job partitions");
    assert_int_equal(drv_queue_split_grow(q, "nosuch", 2), DRV_ENOJOB);
    int n = 0;
    assert_int_equal(drv_queue_job_partitions(q, "j", &n), DRV_OK);
    assert_int_equal(n, 3);
}

static void split_drop_removes_every_key_of_the_new_partition(void **state) {
    (void)state;
    job_with_range(100);
    drv_spec s = job_spec();
    assert_int_equal(drv_queue_split_new(q, &s, 0, 2, 550, 1000, "running"), DRV_OK);
    assert_int_equal(drv_queue_split_drop(q, "j", 2), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{j.2}:state"), 0);
    assert_int_equal(rint_("EXISTS drover:{j.0}:state drover:{j.1}:state"), 2);
}

static void stats_report_split_from(void **state) {
    (void)state;
    job_with_range(100);
    drv_spec s = job_spec();
    assert_int_equal(drv_queue_split_new(q, &s, 0, 2, 550, 1000, "running"), DRV_OK);
    drv_part_stat st[3];
    assert_int_equal(drv_queue_stats(q, "j", 3, st), DRV_OK);
    assert_int_equal(st[0].split_from, -1);
    assert_int_equal(st[2].split_from, 0);
    assert_int_equal(st[2].start, 550);
    assert_int_equal(st[2].end, 1000);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(split_new_creates_an_invisible_partition_with_split_from),
        T(split_new_refuses_when_any_key_of_the_partition_exists),
        T(split_cut_shrinks_the_end_and_fixes_cursor_max),
        T(split_cut_refuses_a_cursor_already_past_the_cut),
        T(split_cut_refuses_an_end_that_changed_and_a_second_cut),
        T(split_cut_refuses_an_exhausted_or_unknown_partition),
        T(split_cut_at_the_cursor_leaves_the_partition_exhausted),
        T(feed_never_moves_a_cut_partitions_cursor_past_cursor_max),
        T(split_grow_raises_the_count_once),
        T(split_drop_removes_every_key_of_the_new_partition),
        T(stats_report_split_from),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
