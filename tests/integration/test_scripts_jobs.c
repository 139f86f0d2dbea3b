/* Jobs, feed.lua, claim.lua and lease expiry against a real redis-server, through the queue
 * API, with their error paths. Keys are checked directly, as an operator would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

/* ---- jobs ------------------------------------------------------------------------------------ */

static void a_job_is_visible_only_once_its_entry_in_jobs_is_written(void **state) {
    (void)state;
    /* What an interrupted submit leaves: the job hash and a partition, no entry in jobs. */
    rint_("HSET drover:{j}:job state creating partitions 1 spec {}");
    rint_("HSET drover:{j.0}:state state running cursor 7");
    rint_("RPUSH drover:{j.0}:pending stale");
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_ENOJOB);
    char(*ids)[DRV_JOB_ID_MAX + 1];
    size_t n = 99;
    assert_int_equal(drv_queue_job_list(q, &ids, &n), DRV_OK);
    assert_int_equal(n, 0);
    free(ids);

    /* A new submit of the same id is not refused, and clears what was left. */
    int64_t before = redis_now();
    jobopt o = defaults();
    o.parts = 2;
    create_job("j", &o);
    int64_t after = redis_now();
    long long at = rint_("ZSCORE drover:jobs j");
    assert_in_range(at, before, after);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    assert_int_equal(rint_("HGET drover:{j.0}:state cursor"), 0);
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_string_equal(j.state, "running");
    assert_int_equal(j.partitions, 2);
    assert_int_equal(j.created_ms, at);
    assert_int_equal(j.total, -1);
    assert_int_equal(j.finished_ms, 0);
    assert_int_equal(j.spec.lease_ms, o.lease_ms);
    assert_int_equal(j.spec.max_attempts, o.max_attempts);
    assert_int_equal(j.spec.backoff_ms, o.backoff_ms);
    assert_int_equal(j.spec.backoff_max_ms, o.backoff_max_ms);
    /* Each partition's state hash carries the config the scripts read. */
    for (int p = 0; p < 2; p++) {
        assert_rstr("running", "HGET drover:{j.%d}:state state", p);
        assert_int_equal(counter("j", p, "lease_ms"), o.lease_ms);
        assert_int_equal(counter("j", p, "max_attempts"), o.max_attempts);
        assert_int_equal(counter("j", p, "backoff_ms"), o.backoff_ms);
        assert_int_equal(counter("j", p, "backoff_max_ms"), o.backoff_max_ms);
        assert_rstr("0", "HGET drover:{j.%d}:state payloads", p);
    }
}

static void creating_an_existing_job_is_eexist_and_changes_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3);
    long long created = rint_("ZSCORE drover:jobs j");
    drv_spec s = spec_of("j", &o);
    drv_part_init part = {0};
    assert_int_equal(drv_queue_job_create(q, &s, 5, &part, 0), DRV_EEXIST);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 3);
    assert_int_equal(rint_("ZSCORE drover:jobs j"), created);
    assert_int_equal(rint_("HGET drover:{j}:job total"), -1);
}

/* KEYS drover:* sorted, joined with ','. */
static void assert_keys(const char *want) {
    redisReply *r = redisCommand(rc, "KEYS drover:*");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    /* Sort with a tiny insertion sort: a handful of keys. */
    for (size_t i = 1; i < r->elements; i++)
        for (size_t k = i; k > 0 && strcmp(r->element[k - 1]->str, r->element[k]->str) > 0; k--) {
            redisReply *t = r->element[k];
            r->element[k] = r->element[k - 1];
            r->element[k - 1] = t;
        }
    char got[2048] = "";
    for (size_t i = 0; i < r->elements; i++) {
        if (i) strcat(got, ",");
        strncat(got, r->element[i]->str, sizeof got - strlen(got) - 1);
    }
    freeReplyObject(r);
    if (strcmp(got, want) != 0) fail_msg("keys: expected [%s], got [%s]", want, got);
}

static void replace_leaves_only_the_new_jobs_keys(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 3;
    o.max_attempts = 1;
    job_with_items("j", &o, 4);
    feed_range("j", 2, 1, 2);
    drv_claim c;
    claim("j", 3, "w", &c);
    drv_ref r = ref_of(&c.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, NULL), DRV_OK);
    drv_failure f = failure_of(&c.items[1], 1, 0, "{}");
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    int held;
    assert_int_equal(drv_queue_lock(q, "j", "coord", 10000, &held), DRV_OK);

    jobopt o2 = defaults();
    drv_spec s = spec_of("j", &o2);
    drv_part_init part = {0};
    snprintf(part.cursor, sizeof part.cursor, "100");
    assert_int_equal(drv_queue_job_create(q, &s, 10, &part, 1), DRV_OK);
    assert_keys("drover:jobs,drover:{j.0}:state,drover:{j}:job,drover:{j}:limits");
    assert_int_equal(counter("j", 0, "cursor"), 100);
    assert_int_equal(counter("j", 0, "done"), 0);
    assert_int_equal(counter("j", 0, "dead"), 0);
    assert_int_equal(rint_("HGET drover:{j}:job total"), 10);
    assert_int_equal(rint_("HGET drover:{j}:job partitions"), 1);
    claim_free(&c);
}

static void getting_an_unknown_job_is_enojob(void **state) {
    (void)state;
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "nope", &j), DRV_ENOJOB);
    assert_int_equal(drv_queue_job_get(q, "", &j), DRV_ENOJOB);
    assert_int_equal(drv_queue_job_get(q, "a}b", &j), DRV_ENOJOB);
    /* In jobs but with no job hash (deleted under us): still no job, not garbage. */
    rint_("ZADD drover:jobs 1 ghost");
    assert_int_equal(drv_queue_job_get(q, "ghost", &j), DRV_ENOJOB);
}

static void jobs_are_listed_in_creation_order(void **state) {
    (void)state;
    jobopt o = defaults();
    const char *order[] = {"zeta", "alpha", "mid"};
    for (int i = 0; i < 3; i++) {
        create_job(order[i], &o);
        /* Distinct creation times: within one millisecond, ZRANGE orders by id. */
        wait_redis_past(rint_("ZSCORE drover:jobs %s", order[i]));
    }
    char(*ids)[DRV_JOB_ID_MAX + 1];
    size_t n = 0;
    assert_int_equal(drv_queue_job_list(q, &ids, &n), DRV_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(ids[i], order[i]);
    free(ids);
}

static void set_state_mirrors_into_every_partition_and_the_scripts_obey(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 4;
    create_job("j", &o);
    for (int p = 0; p < 4; p++)
        feed_range("j", p, 1, 2);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);

    assert_int_equal(drv_queue_job_set_state(q, &j, "paused"), DRV_OK);
    assert_rstr("paused", "HGET drover:{j}:job state");
    assert_int_equal(rint_("HEXISTS drover:{j}:job finished_ms"), 0);
    drv_claim c;
    for (int p = 0; p < 4; p++) {
        assert_rstr("paused", "HGET drover:{j.%d}:state state", p);
        assert_int_equal(drv_queue_claim(q, "j", p, "w", 1, &c), DRV_EPAUSED);
    }

    assert_int_equal(drv_queue_job_set_state(q, &j, "running"), DRV_OK);
    for (int p = 0; p < 4; p++) {
        assert_rstr("running", "HGET drover:{j.%d}:state state", p);
        assert_int_equal(drv_queue_claim(q, "j", p, "w", 1, &c), DRV_OK);
        assert_int_equal(c.n, 1);
        claim_free(&c);
    }

    int64_t before = redis_now();
    assert_int_equal(drv_queue_job_set_state(q, &j, "cancelled"), DRV_OK);
    assert_in_range(rint_("HGET drover:{j}:job finished_ms"), before, redis_now());
    for (int p = 0; p < 4; p++) {
        assert_rstr("cancelled", "HGET drover:{j.%d}:state state", p);
        assert_int_equal(drv_queue_claim(q, "j", p, "w", 1, &c), DRV_ECANCELLED);
    }
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_string_equal(j.state, "cancelled");
    assert_true(j.finished_ms > 0);
}

static void delete_removes_every_key_of_the_job_and_only_those(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 2;
    o.max_attempts = 2;
    o.payloads = 1;
    create_job("j", &o);
    drv_feed_item it[4] = {{"a", 1, "A", 1}, {"b", 1, "B", 1}, {"c", 1, "C", 1}, {"d", 1, "D", 1}};
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "4", 1, it, 4, NULL), DRV_OK);
    assert_int_equal(drv_queue_feed(q, "j", 1, "0", "1", 1, it, 1, NULL), DRV_OK);
    drv_claim c;
    claim("j", 3, "w", &c);
    drv_ref r = ref_of(&c.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, NULL), DRV_OK);
    drv_failure f[2] = {failure_of(&c.items[1], 1, 0, "{}"), failure_of(&c.items[2], 0, 0, "{}")};
    assert_int_equal(drv_queue_fail(q, "j", 0, f, 2, NULL), DRV_OK);
    int held;
    assert_int_equal(drv_queue_lock(q, "j", "coord", 10000, &held), DRV_OK);
    jobopt other = defaults();
    job_with_items("keep", &other, 2);
    assert_true(rint_("DBSIZE") > 10);

    assert_int_equal(drv_queue_job_delete(q, "j"), DRV_OK);
    assert_keys("drover:jobs,drover:{keep.0}:pending,drover:{keep.0}:state,drover:{keep}:job,"
                "drover:{keep}:limits");
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_ENOJOB);
    assert_int_equal(drv_queue_job_delete(q, "keep"), DRV_OK);
    assert_keys("");
    /* Deleting what is not there is not an error (a retried delete). */
    assert_int_equal(drv_queue_job_delete(q, "keep"), DRV_OK);
    claim_free(&c);
}

/* ---- feed ------------------------------------------------------------------------------------ */

static void feed_appends_in_order_and_moves_the_cursor_in_the_same_step(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    drv_feed_item a[3] = {{"10", 2, NULL, 0}, {"11", 2, NULL, 0}, {"12", 2, NULL, 0}};
    drv_feed_item b[2] = {{"13", 2, NULL, 0}, {"14", 2, NULL, 0}};
    int64_t pending = -1;
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "13", 0, a, 3, &pending), DRV_OK);
    assert_int_equal(pending, 3);
    assert_int_equal(drv_queue_feed(q, "j", 0, "13", "15", 0, b, 2, &pending), DRV_OK);
    assert_int_equal(pending, 5);
    assert_rlist("10,11,12,13,14", "LRANGE drover:{j.0}:pending 0 -1");
    assert_rstr("15", "HGET drover:{j.0}:state cursor");
    assert_int_equal(counter("j", 0, "fed"), 5);
    assert_int_equal(counter("j", 0, "exhausted"), 0);
    /* The return value is the pending length after the push, claims included. */
    drv_claim c;
    claim("j", 4, "w", &c);
    drv_feed_item d = {"15", 2, NULL, 0};
    assert_int_equal(drv_queue_feed(q, "j", 0, "15", "16", 0, &d, 1, &pending), DRV_OK);
    assert_int_equal(pending, 2);
    claim_free(&c);
}

static void feed_with_a_stale_cursor_is_ecursor_and_pushes_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3); /* cursor 3 */
    drv_feed_item it = {"99", 2, NULL, 0};
    int64_t pending = -7;
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "1", 1, &it, 1, &pending), DRV_ECURSOR);
    assert_int_equal(pending, -7); /* untouched on failure */
    /* The error names the current cursor so the feeder can start again from there. */
    assert_string_equal(drv_queue_errstr(q), "DRV_CURSOR 3");
    assert_rlist("1,2,3", "LRANGE drover:{j.0}:pending 0 -1");
    assert_rstr("3", "HGET drover:{j.0}:state cursor");
    assert_int_equal(counter("j", 0, "fed"), 3);
    assert_int_equal(counter("j", 0, "exhausted"), 0);
    /* A cursor that is a prefix or an extension of the real one is just as wrong. */
    assert_int_equal(drv_queue_feed(q, "j", 0, "", "1", 0, &it, 1, NULL), DRV_ECURSOR);
    assert_int_equal(drv_queue_feed(q, "j", 0, "30", "31", 0, &it, 1, NULL), DRV_ECURSOR);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 3);
}

static void feed_marks_the_partition_exhausted_with_its_last_chunk(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_false(st.exhausted);
    /* An empty last chunk only moves the cursor and sets the flag. */
    assert_int_equal(drv_queue_feed(q, "j", 0, "2", "end", 1, NULL, 0, NULL), DRV_OK);
    assert_rstr("1", "HGET drover:{j.0}:state exhausted");
    assert_rstr("end", "HGET drover:{j.0}:state cursor");
    assert_int_equal(counter("j", 0, "fed"), 2);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2);
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_true(st.exhausted);
    drv_part_stat all;
    assert_int_equal(drv_queue_stats(q, "j", 1, &all), DRV_OK);
    assert_true(all.exhausted);
    assert_string_equal(all.cursor, "end");
}

static void feed_with_payloads_stores_them_and_claim_hands_them_out(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    create_job("j", &o);
    assert_rstr("1", "HGET drover:{j.0}:state payloads");
    /* Payloads are bytes: a NUL and a newline survive the round trip. */
    static const char bin[] = {'x', '\0', 'y', '\n', 'z'};
    drv_feed_item it[3] = {
        {"a", 1, "{\"id\":\"a\",\"n\":1}", 16}, {"b", 1, bin, sizeof bin}, {"c", 1, "", 0}};
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "48", 1, it, 3, NULL), DRV_OK);
    assert_rlist("a,b,c", "LRANGE drover:{j.0}:pending 0 -1");
    assert_int_equal(rint_("HLEN drover:{j.0}:items"), 3);
    assert_rstr("{\"id\":\"a\",\"n\":1}", "HGET drover:{j.0}:items a");
    assert_int_equal(counter("j", 0, "fed"), 3);

    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.items[0].id, "a");
    assert_int_equal(c.items[0].plen, 16);
    assert_memory_equal(c.items[0].payload, "{\"id\":\"a\",\"n\":1}", 16);
    assert_int_equal(c.items[1].plen, sizeof bin);
    assert_memory_equal(c.items[1].payload, bin, sizeof bin);
    assert_null(c.items[2].payload); /* an empty payload reads as "the id is the item" */
    /* The payload stays until the item is done. */
    drv_ref r = ref_of(&c.items[1]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, NULL), DRV_OK);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:items b"), 0);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:items a"), 1);
    claim_free(&c);
}

static void feed_on_a_cancelled_partition_is_ecancelled(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 2;
    create_job("j", &o);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_int_equal(drv_queue_job_set_state(q, &j, "cancelled"), DRV_OK);
    drv_feed_item it = {"1", 1, NULL, 0};
    assert_int_equal(drv_queue_feed(q, "j", 1, "0", "1", 0, &it, 1, NULL), DRV_ECANCELLED);
    assert_int_equal(rint_("EXISTS drover:{j.1}:pending"), 0);
    assert_rstr("0", "HGET drover:{j.1}:state cursor");
    /* A paused partition still takes items: pausing stops workers, not the feeder. */
    assert_int_equal(drv_queue_job_set_state(q, &j, "paused"), DRV_OK);
    assert_int_equal(drv_queue_feed(q, "j", 1, "0", "1", 0, &it, 1, NULL), DRV_OK);
}

static void feed_to_an_unknown_job_or_partition_is_enojob(void **state) {
    (void)state;
    drv_feed_item it = {"1", 1, NULL, 0};
    assert_int_equal(drv_queue_feed(q, "nope", 0, "0", "1", 0, &it, 1, NULL), DRV_ENOJOB);
    jobopt o = defaults();
    create_job("j", &o);
    assert_int_equal(drv_queue_feed(q, "j", 1, "0", "1", 0, &it, 1, NULL), DRV_ENOJOB);
    /* Nothing was created for the missing partition. */
    assert_int_equal(rint_("EXISTS drover:{j.1}:pending drover:{j.1}:state"), 0);
    assert_int_equal(rint_("EXISTS drover:{nope.0}:pending"), 0);
}

static void feeding_more_than_1000_items_a_call_is_refused(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    static drv_feed_item it[1001];
    for (int i = 0; i < 1001; i++)
        it[i] = (drv_feed_item){"x", 1, NULL, 0};
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "1001", 0, it, 1001, NULL), DRV_EINVAL);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "1000", 0, it, 1000, NULL), DRV_OK);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 1000);
}

/* ---- claim ----------------------------------------------------------------------------------- */

static void claim_leases_up_to_n_with_one_token_and_a_redis_time_deadline(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 7000;
    job_with_items("j", &o, 5);
    int64_t before = redis_now();
    drv_claim c;
    claim("j", 3, "host-1:42", &c);
    int64_t after = redis_now();
    assert_int_equal(c.n, 3);
    assert_in_range(c.now_ms, before, after);
    assert_int_equal(c.deadline_ms, c.now_ms + 7000);
    char owner[64];
    snprintf(owner, sizeof owner, "%" PRId64 ":host-1:42", c.items[0].token);
    for (size_t i = 0; i < 3; i++) {
        char want[8];
        snprintf(want, sizeof want, "%zu", i + 1);
        assert_string_equal(c.items[i].id, want);
        assert_int_equal(c.items[i].idlen, strlen(want));
        assert_null(c.items[i].payload);
        assert_int_equal(c.items[i].attempt, 1);
        assert_int_equal(c.items[i].token, c.items[0].token);
        assert_int_equal(lease_deadline("j", 0, want), c.deadline_ms);
        assert_holder(owner, "j", 0, want);
        /* The first delivery writes no tries entry: absent while leased reads as 1. */
        assert_int_equal(rint_("HEXISTS drover:{j.0}:tries %s", want), 0);
    }
    assert_true(c.items[0].token > 0);
    assert_int_equal(counter("j", 0, "token"), c.items[0].token);
    assert_rlist("4,5", "LRANGE drover:{j.0}:pending 0 -1");
    assert_int_equal(leased_count("j", 0), 3);
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 1); /* one lease for the claim */

    /* The next claim gets the rest under a new token. */
    drv_claim d;
    claim("j", 10, "host-2:7", &d);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.items[0].id, "4");
    assert_true(d.items[0].token > c.items[0].token);
    claim_free(&c);
    claim_free(&d);
}

static void claim_on_an_empty_partition_returns_no_items(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 0);
    assert_null(c.items);
    assert_true(c.now_ms > 0);
    assert_int_equal(counter("j", 0, "token"), 0); /* no lease, no token spent */
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased drover:{j.0}:owner"), 0);
    claim_free(&c);
}

/* A source that lists an id twice can put both copies in one claim: the id is leased and
 * delivered once, the other copy counts as skipped. */
static void an_id_popped_twice_in_one_claim_is_leased_once(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3);
    rint_("RPUSH drover:{j.0}:pending 2");
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.items[0].id, "1");
    assert_string_equal(c.items[1].id, "2");
    assert_string_equal(c.items[2].id, "3");
    assert_int_equal(counter("j", 0, "skipped"), 1);
    assert_int_equal(leased_count("j", 0), 3);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    claim_free(&c);
}

static void claim_skips_items_already_done_and_counts_them(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    create_job("j", &o);
    drv_feed_item it[4] = {
        {"1", 1, "p1", 2}, {"2", 1, "p2", 2}, {"3", 1, "p3", 2}, {"4", 1, "p4", 2}};
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "4", 1, it, 4, NULL), DRV_OK);
    mark_done("j", 0, "1"); /* done in an earlier run */
    mark_done("j", 0, "3");
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.items[0].id, "2");
    assert_string_equal(c.items[1].id, "4");
    assert_string_equal(c.items[1].payload, "p4");
    assert_int_equal(counter("j", 0, "skipped"), 2);
    assert_int_equal(lease_deadline("j", 0, "1"), -1);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:tries 3"), 0);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:items 1"), 0); /* payload of a done item */
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    claim_free(&c);

    /* Only done items left: nothing handed out, no token spent. */
    feed_range("j", 0, 1, 1);
    long long token = counter("j", 0, "token");
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(counter("j", 0, "skipped"), 3);
    assert_int_equal(counter("j", 0, "token"), token);
    claim_free(&c);
}

static void claim_refuses_a_paused_or_cancelled_partition_and_takes_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_claim c;
    memset(&c, 0, sizeof c);
    rint_("HSET drover:{j.0}:state state paused");
    assert_int_equal(drv_queue_claim(q, "j", 0, "w", 1, &c), DRV_EPAUSED);
    assert_null(c.items);
    assert_int_equal(strncmp(drv_queue_errstr(q), "DRV_PAUSED", 10), 0);
    rint_("HSET drover:{j.0}:state state cancelled");
    assert_int_equal(drv_queue_claim(q, "j", 0, "w", 1, &c), DRV_ECANCELLED);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2);
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased"), 0);
    assert_int_equal(counter("j", 0, "token"), 0);
}

static void claim_on_an_unknown_job_or_partition_is_enojob(void **state) {
    (void)state;
    drv_claim c;
    assert_int_equal(drv_queue_claim(q, "nope", 0, "w", 1, &c), DRV_ENOJOB);
    jobopt o = defaults();
    job_with_items("j", &o, 1);
    assert_int_equal(drv_queue_claim(q, "j", 1, "w", 1, &c), DRV_ENOJOB);
    assert_int_equal(rint_("EXISTS drover:{j.1}:leased drover:{j.1}:state"), 0);
}

static void claim_on_a_done_partition_hands_out_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    rint_("HSET drover:{j.0}:state state done");
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2);
    claim_free(&c);
}

static void claim_takes_at_most_1000_a_call_from_a_larger_batch(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2500);
    int64_t tokens[3];
    size_t sizes[3];
    int next = 1;
    for (int k = 0; k < 3; k++) {
        drv_claim c;
        claim("j", 5000, "w", &c);
        sizes[k] = c.n;
        tokens[k] = c.n ? c.items[0].token : 0;
        for (size_t i = 0; i < c.n; i++, next++) {
            if (atoi(c.items[i].id) != next)
                fail_msg("claim %d item %zu: expected %d, got %s", k, i, next, c.items[i].id);
            assert_int_equal(c.items[i].attempt, 1);
            assert_int_equal(c.items[i].token, tokens[k]);
        }
        claim_free(&c);
    }
    assert_int_equal(sizes[0], 1000);
    assert_int_equal(sizes[1], 1000);
    assert_int_equal(sizes[2], 500);
    assert_true(tokens[0] < tokens[1] && tokens[1] < tokens[2]);
    assert_int_equal(leased_count("j", 0), 2500);
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 3); /* a lease per call */
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
}

static void claim_asking_for_nothing_hands_out_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3);
    drv_claim c;
    claim("j", 0, "w", &c);
    assert_int_equal(c.n, 0);
    claim_free(&c);
    claim("j", -5, "w", &c);
    assert_int_equal(c.n, 0);
    claim_free(&c);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 3);
    assert_int_equal(counter("j", 0, "token"), 0);
}

/* ---- lease expiry ---------------------------------------------------------------------------- */

static void an_expired_lease_is_handed_out_again_with_attempt_2_and_a_new_token(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 3);
    drv_claim a, b;
    claim("j", 1, "crashed", &a);
    assert_string_equal(a.items[0].id, "1");
    /* Nobody claims while the lease runs out; the coordinator's reap recovers it. */
    drv_part_stat st;
    reap_until("j", nothing_leased, &st);
    assert_int_equal(st.recovered, 1);
    /* The expired item went back to the front, ahead of items never handed out. */
    assert_rlist("1,2,3", "LRANGE drover:{j.0}:pending 0 -1");
    assert_int_equal(lease_deadline("j", 0, "1"), -1);
    claim("j", 1, "w2", &b);
    assert_string_equal(b.items[0].id, "1");
    assert_int_equal(b.items[0].attempt, 2);
    assert_true(b.items[0].token > a.items[0].token);
    char owner[64];
    snprintf(owner, sizeof owner, "%" PRId64 ":w2", b.items[0].token);
    assert_holder(owner, "j", 0, "1");
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 2);
    assert_int_equal(counter("j", 0, "expired"), 1);
    /* While it waited, the errors hash said why it was back. */
    char *err = rstr("HGET drover:{j.0}:errors 1");
    assert_non_null(err);
    assert_non_null(strstr(err, "\"error\":\"lease expired\""));
    assert_non_null(strstr(err, "\"attempt\":1"));
    free(err);
    assert_rlist("2,3", "LRANGE drover:{j.0}:pending 0 -1");
    claim_free(&a);
    claim_free(&b);
}

static void an_item_whose_lease_expires_max_attempts_times_is_dead_lettered(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    o.max_attempts = 3;
    job_with_items("j", &o, 1);
    drv_claim c;
    claim("j", 1, "w", &c);
    for (int attempt = 2; attempt <= 3; attempt++) {
        claim_free(&c);
        claim_when_back("j", 1, "w", &c);
        assert_int_equal(c.items[0].attempt, attempt);
    }
    claim_free(&c);
    /* No worker claims any more: the coordinator's reap sees the third expiry. */
    drv_part_stat st;
    reap_until("j", something_dead, &st);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.leased, 0);
    assert_int_equal(st.retrying, 0);
    char *err = rstr("HGET drover:{j.0}:dead 1");
    assert_non_null(err);
    assert_non_null(strstr(err, "\"error\":\"lease expired\""));
    assert_non_null(strstr(err, "\"attempt\":3"));
    free(err);
    assert_int_equal(counter("j", 0, "dead"), 1);
    assert_int_equal(counter("j", 0, "expired"), 3);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:errors 1"), 0);
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 0);
    /* And it is never handed out again. */
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 0);
    claim_free(&c);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(a_job_is_visible_only_once_its_entry_in_jobs_is_written),
        T(creating_an_existing_job_is_eexist_and_changes_nothing),
        T(replace_leaves_only_the_new_jobs_keys),
        T(getting_an_unknown_job_is_enojob),
        T(jobs_are_listed_in_creation_order),
        T(set_state_mirrors_into_every_partition_and_the_scripts_obey),
        T(delete_removes_every_key_of_the_job_and_only_those),
        T(feed_appends_in_order_and_moves_the_cursor_in_the_same_step),
        T(feed_with_a_stale_cursor_is_ecursor_and_pushes_nothing),
        T(feed_marks_the_partition_exhausted_with_its_last_chunk),
        T(feed_with_payloads_stores_them_and_claim_hands_them_out),
        T(feed_on_a_cancelled_partition_is_ecancelled),
        T(feed_to_an_unknown_job_or_partition_is_enojob),
        T(feeding_more_than_1000_items_a_call_is_refused),
        T(claim_leases_up_to_n_with_one_token_and_a_redis_time_deadline),
        T(claim_on_an_empty_partition_returns_no_items),
        T(claim_skips_items_already_done_and_counts_them),
        T(an_id_popped_twice_in_one_claim_is_leased_once),
        T(claim_refuses_a_paused_or_cancelled_partition_and_takes_nothing),
        T(claim_on_an_unknown_job_or_partition_is_enojob),
        T(claim_on_a_done_partition_hands_out_nothing),
        T(claim_takes_at_most_1000_a_call_from_a_larger_batch),
        T(claim_asking_for_nothing_hands_out_nothing),
        T(an_expired_lease_is_handed_out_again_with_attempt_2_and_a_new_token),
        T(an_item_whose_lease_expires_max_attempts_times_is_dead_lettered),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
