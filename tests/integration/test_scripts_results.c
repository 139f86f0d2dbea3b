/* What workers report back: ack.lua, fail.lua, extend.lua and release.lua against a real
 * redis-server, through the queue API, with their error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

static const char *const ERR = "{\"error\":\"HTTP 503\",\"status\":503}";

/* Polls claim until the one item of job "j" comes back (its lease expired or its retry came
 * due) and 'worker' holds it. */
static void take_over(const char *worker, drv_claim *c) {
    claim_when_back("j", 1, worker, c);
    assert_int_equal(c->n, 1);
}

/* ---- ack ------------------------------------------------------------------------------------- */

static void ack_marks_done_and_clears_the_lease(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    o.payloads = 1;
    create_job("j", &o);
    drv_feed_item it[2] = {{"1", 1, "one", 3}, {"2", 1, "two", 3}};
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "1", 0, &it[0], 1, NULL), DRV_OK);
    drv_claim a, b;
    claim("j", 1, "w", &a);
    take_over("w", &b); /* attempt 2: tries and errors now hold something */
    assert_int_equal(drv_queue_feed(q, "j", 0, "1", "2", 1, &it[1], 1, NULL), DRV_OK);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:errors 1"), 1);
    drv_ref r = ref_of(&b.items[0]);
    drv_ack_result res = {-1, -1, -1};
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(res.duplicates, 0);
    assert_int_equal(res.unknown, 0);
    assert_int_equal(is_done("j", 0, "1"), 1);
    assert_int_equal(lease_deadline("j", 0, "1"), -1);
    assert_int_equal(lease_deadline("j", 0, "1"), -1);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:tries 1"), 0);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:errors 1"), 0);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:items 1"), 0);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(counter("j", 0, "duplicates"), 0);
    /* The other item was untouched. */
    assert_int_equal(rint_("HEXISTS drover:{j.0}:items 2"), 1);
    claim_free(&a);
    claim_free(&b);
}

static void acking_the_same_lease_twice_marks_it_done_once(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_claim c;
    claim("j", 2, "w", &c);
    drv_ref r = ref_of(&c.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    /* A retried call (the reply was lost on the way back). */
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 0);
    assert_int_equal(res.unknown, 0);
    /* The same id twice in one call. */
    drv_ref twice[2] = {ref_of(&c.items[1]), ref_of(&c.items[1])};
    assert_int_equal(drv_queue_ack(q, "j", 0, twice, 2, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(counter("j", 0, "done"), 2);
    assert_int_equal(done_count("j", 0), 2);
    assert_int_equal(leased_count("j", 0), 0);
    claim_free(&c);
}

static void a_late_ack_after_expiry_counts_a_duplicate_and_marks_done_once(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 1);
    drv_claim a;
    claim("j", 1, "slow", &a);
    drv_part_stat st;
    reap_until("j", nothing_leased, &st); /* back in pending, not handed out yet */
    assert_int_equal(st.pending, 1);
    drv_ref r = ref_of(&a.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(res.duplicates, 1);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(counter("j", 0, "duplicates"), 1);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:errors 1"), 0);
    /* Done is final: the copy still in pending is dropped at claim time, not handed out. */
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(counter("j", 0, "skipped"), 1);
    assert_int_equal(counter("j", 0, "done"), 1);
    claim_free(&c);
    claim_free(&a);
}

static void a_late_ack_while_another_worker_holds_the_item_is_one_duplicate(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 1);
    drv_claim a, b;
    claim("j", 1, "A", &a);
    take_over("B", &b);
    drv_ref ra = ref_of(&a.items[0]), rb = ref_of(&b.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &ra, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(res.duplicates, 1);
    /* B's lease is B's until B reports. */
    assert_int_equal(leased_count("j", 0), 1);
    assert_int_equal(drv_queue_ack(q, "j", 0, &rb, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 0);
    assert_int_equal(res.duplicates, 0);
    assert_int_equal(res.unknown, 0);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(counter("j", 0, "duplicates"), 1);
    assert_int_equal(done_count("j", 0), 1);
    assert_int_equal(leased_count("j", 0), 0);
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 0);
    claim_free(&a);
    claim_free(&b);
}

static void a_done_item_whose_later_lease_expires_is_not_dead_lettered(void **state) {
    (void)state;
    /* A's lease expires, B takes the last attempt, A's late ack marks the item done, then B
     * dies without reporting: the item is done, not dead, and not pending. */
    jobopt o = defaults();
    o.lease_ms = 100;
    o.max_attempts = 2;
    job_with_items("j", &o, 1);
    drv_claim a, b;
    claim("j", 1, "A", &a);
    take_over("B", &b);
    assert_int_equal(b.items[0].attempt, 2);
    drv_ref ra = ref_of(&a.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &ra, 1, NULL), DRV_OK);
    drv_part_stat st;
    reap_until("j", nothing_leased, &st);
    assert_int_equal(st.dead, 0);
    assert_int_equal(st.pending, 0);
    assert_int_equal(counter("j", 0, "dead"), 0);
    assert_int_equal(counter("j", 0, "expired"), 2);
    /* No "lease expired" error is left behind for an item that is done. */
    assert_int_equal(rint_("EXISTS drover:{j.0}:dead drover:{j.0}:errors"), 0);
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 0);
    assert_int_equal(is_done("j", 0, "1"), 1);
    claim_free(&a);
    claim_free(&b);
}

static void an_ack_for_an_item_never_handed_out_is_unknown_and_not_done(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_ref r[2] = {{"999", 3, 1}, {"2", 1, 1}}; /* 2 is pending, never claimed */
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, r, 2, &res), DRV_OK);
    assert_int_equal(res.acked, 0);
    assert_int_equal(res.duplicates, 0);
    assert_int_equal(res.unknown, 2);
    assert_int_equal(rint_("EXISTS drover:{j.0}:done"), 0);
    assert_int_equal(counter("j", 0, "done"), 0);
    assert_int_equal(counter("j", 0, "duplicates"), 0);
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 2); /* both still handed out */
    claim_free(&c);
}

static void a_late_ack_of_a_dead_lettered_item_brings_it_back_from_the_dead(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    o.max_attempts = 1;
    job_with_items("j", &o, 1);
    drv_claim a;
    claim("j", 1, "w", &a);
    drv_part_stat st;
    reap_until("j", something_dead, &st);
    assert_int_equal(counter("j", 0, "dead"), 1);
    drv_ref r = ref_of(&a.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(res.duplicates, 1);
    assert_int_equal(rint_("HLEN drover:{j.0}:dead"), 0);
    assert_int_equal(counter("j", 0, "dead"), 0);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.dead, 0);
    claim_free(&a);
}

static void a_late_ack_beats_a_scheduled_retry(void **state) {
    (void)state;
    jobopt o = defaults();
    o.backoff_ms = 60000;
    o.backoff_max_ms = 60000;
    job_with_items("j", &o, 1);
    drv_claim a;
    claim("j", 1, "w", &a);
    drv_failure f = failure_of(&a.items[0], 0, 60000, ERR);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    assert_int_equal(rint_("ZCARD drover:{j.0}:retry"), 1);
    drv_ref r = ref_of(&a.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(rint_("ZCARD drover:{j.0}:retry"), 0);
    assert_int_equal(rint_("HLEN drover:{j.0}:errors"), 0);
    claim_free(&a);
}

static void ack_of_an_unknown_job_is_enojob(void **state) {
    (void)state;
    drv_ref r = {"1", 1, 1};
    drv_ack_result res = {7, 7, 7};
    assert_int_equal(drv_queue_ack(q, "nope", 0, &r, 1, &res), DRV_ENOJOB);
    assert_int_equal(res.acked + res.duplicates + res.unknown, 21); /* untouched on failure */
    assert_int_equal(rint_("DBSIZE"), 0);                           /* nothing written for it */
}

static void ack_of_more_than_1000_items_goes_in_chunks(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 1500);
    drv_claim a, b;
    claim("j", 1000, "w", &a);
    claim("j", 1000, "w", &b);
    assert_int_equal(a.n + b.n, 1500);
    drv_ref *r = calloc(1500, sizeof *r);
    assert_non_null(r);
    for (size_t i = 0; i < 1500; i++)
        r[i] = ref_of(i < a.n ? &a.items[i] : &b.items[i - a.n]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, r, 1500, &res), DRV_OK);
    assert_int_equal(res.acked, 1500);
    assert_int_equal(counter("j", 0, "done"), 1500);
    assert_int_equal(leased_count("j", 0), 0);
    free(r);
    claim_free(&a);
    claim_free(&b);
}

/* ---- fail ------------------------------------------------------------------------------------ */

static void a_failure_schedules_a_retry_within_the_backoff_cap(void **state) {
    (void)state;
    jobopt o = defaults(); /* backoff 100, cap 400 */
    o.max_attempts = 3;
    job_with_items("j", &o, 1);
    drv_claim a, b;
    claim("j", 1, "w", &a);
    int64_t before = redis_now();
    drv_failure f = failure_of(&a.items[0], 0, 0, ERR);
    drv_fail_result res = {-1, -1, -1, -1};
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    int64_t after = redis_now();
    assert_int_equal(res.retrying, 1);
    assert_int_equal(res.dead, 0);
    assert_int_equal(res.stale, 0);
    /* Attempt 1: full jitter over min(cap, backoff) = 100 ms. */
    assert_in_range(rint_("ZSCORE drover:{j.0}:retry 1"), before, after + 100);
    assert_rstr(ERR, "HGET drover:{j.0}:errors 1");
    assert_int_equal(leased_count("j", 0), 0);
    assert_int_equal(lease_deadline("j", 0, "1"), -1);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 1);
    assert_int_equal(counter("j", 0, "failed"), 1);
    assert_int_equal(counter("j", 0, "dead"), 0);
    /* Once due, claim hands it out again as the next attempt. */
    take_over("w", &b);
    assert_string_equal(b.items[0].id, "1");
    assert_int_equal(b.items[0].attempt, 2);
    assert_int_equal(rint_("ZCARD drover:{j.0}:retry"), 0);
    /* Attempt 2 backs off over min(cap, 2 x backoff) = 200 ms. */
    before = redis_now();
    f = failure_of(&b.items[0], 0, 0, ERR);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    assert_in_range(rint_("ZSCORE drover:{j.0}:retry 1"), before, redis_now() + 200);
    claim_free(&a);
    claim_free(&b);
}

static void the_backoff_never_exceeds_its_cap(void **state) {
    (void)state;
    jobopt o = defaults();
    o.backoff_ms = 100000;
    o.backoff_max_ms = 50;
    job_with_items("j", &o, 300);
    drv_claim c;
    claim("j", 300, "w", &c);
    drv_failure *f = calloc(c.n, sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < c.n; i++)
        f[i] = failure_of(&c.items[i], 0, 0, ERR);
    int64_t before = redis_now();
    drv_fail_result res;
    assert_int_equal(drv_queue_fail(q, "j", 0, f, c.n, &res), DRV_OK); /* 2 script calls */
    int64_t after = redis_now();
    assert_int_equal(res.retrying, 300);
    redisReply *r = redisCommand(rc, "ZRANGE drover:{j.0}:retry 0 -1 WITHSCORES");
    assert_non_null(r);
    assert_int_equal(r->elements, 600);
    for (size_t i = 1; i < r->elements; i += 2)
        assert_in_range(strtoll(r->element[i]->str, NULL, 10), before, after + 50);
    freeReplyObject(r);
    free(f);
    claim_free(&c);
}

static void workers_failing_at_the_same_moment_get_different_jitter(void **state) {
    (void)state;
    /* A downstream outage makes many workers fail at once; full jitter exists to spread
     * their retries. Forty workers (forty claims, forty tokens) report one failure each,
     * back to back, so many calls share a Redis millisecond: no two may land on the same
     * not-before time (with a 10^9 ms spread, a chance collision is about 10^-6). */
    enum { N = 40 };
    jobopt o = defaults();
    o.backoff_ms = 1000000000;
    o.backoff_max_ms = 1000000000;
    job_with_items("j", &o, N);
    drv_claim c[N];
    drv_failure f[N];
    for (int i = 0; i < N; i++) {
        char w[16];
        snprintf(w, sizeof w, "w%d", i);
        claim("j", 1, w, &c[i]);
        f[i] = failure_of(&c[i].items[0], 0, 0, ERR);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(drv_queue_fail(q, "j", 0, &f[i], 1, NULL), DRV_OK);
    redisReply *r = redisCommand(rc, "ZRANGE drover:{j.0}:retry 0 -1 WITHSCORES");
    assert_non_null(r);
    assert_int_equal(r->elements, 2 * N);
    for (size_t i = 3; i < r->elements; i += 2)
        if (strcmp(r->element[i]->str, r->element[i - 2]->str) == 0)
            fail_msg("items %s and %s both retry at %s", r->element[i - 3]->str,
                     r->element[i - 1]->str, r->element[i]->str);
    freeReplyObject(r);
    for (int i = 0; i < N; i++)
        claim_free(&c[i]);
}

static void retry_after_is_a_floor_for_the_delay_even_past_the_cap(void **state) {
    (void)state;
    jobopt o = defaults(); /* backoff 100, cap 400 */
    job_with_items("j", &o, 2);
    drv_claim a;
    claim("j", 2, "w", &a);
    int64_t before = redis_now();
    drv_failure f[2] = {failure_of(&a.items[0], 0, 300, ERR),
                        failure_of(&a.items[1], 0, 100000, ERR)};
    assert_int_equal(drv_queue_fail(q, "j", 0, f, 2, NULL), DRV_OK);
    int64_t after = redis_now();
    assert_in_range(rint_("ZSCORE drover:{j.0}:retry 1"), before + 300, after + 300);
    /* A Retry-After beyond the job's cap is honoured: the server said when to come back. */
    assert_in_range(rint_("ZSCORE drover:{j.0}:retry 2"), before + 100000, after + 100000);
    claim_free(&a);
}

static drv_failure throttle_of(const drv_lease *l, int64_t after) {
    drv_failure f = failure_of(l, 0, after, ERR);
    f.throttled = 1;
    return f;
}

/* A throttled answer counts no attempt: an item throttled many more times than max_attempts
 * is still retrying, on the attempt number it had, and the job counts the throttles. */
static void a_throttled_answer_uses_no_attempt(void **state) {
    (void)state;
    jobopt o = defaults(); /* max_attempts 3 */
    o.backoff_ms = 0;
    job_with_items("j", &o, 1);
    for (int k = 1; k <= 6; k++) {
        drv_claim a;
        claim_when_back("j", 1, "w", &a);
        assert_int_equal(a.items[0].attempt, 1);
        drv_failure f = throttle_of(&a.items[0], 0);
        drv_fail_result res;
        assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
        assert_int_equal(res.retrying, 1);
        assert_int_equal(res.throttled, 1);
        assert_int_equal(res.dead, 0);
        assert_int_equal(rint_("HEXISTS drover:{j.0}:tries 1"), 0);
        claim_free(&a);
    }
    assert_int_equal(counter("j", 0, "throttled"), 6);
    assert_int_equal(counter("j", 0, "failed"), 0);
    char *e = rstr("HGET drover:{j.0}:errors 1");
    assert_non_null(strstr(e, "\"throttled\":6"));
    free(e);
    /* A real failure after the throttles counts attempt 1 and keeps the throttle count. */
    drv_claim a;
    claim_when_back("j", 1, "w", &a);
    drv_failure f = failure_of(&a.items[0], 0, 0, ERR);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    assert_int_equal(counter("j", 0, "failed"), 1);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 1);
    e = rstr("HGET drover:{j.0}:errors 1");
    assert_non_null(strstr(e, "\"throttled\":6"));
    free(e);
    claim_free(&a);
}

/* Past max_throttled the item is dead, its error saying why. */
static void an_item_throttled_past_max_throttled_is_dead(void **state) {
    (void)state;
    jobopt o = defaults();
    o.backoff_ms = 0;
    job_with_items("j", &o, 1);
    rint_("HSET drover:{j.0}:state max_throttled 2");
    drv_fail_result res = {0};
    for (int k = 1; k <= 3; k++) {
        drv_claim a;
        claim_when_back("j", 1, "w", &a);
        drv_failure f = throttle_of(&a.items[0], 0);
        assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
        claim_free(&a);
    }
    assert_int_equal(res.dead, 1);
    assert_int_equal(counter("j", 0, "dead"), 1);
    assert_int_equal(counter("j", 0, "throttled"), 3);
    char *e = rstr("HGET drover:{j.0}:dead 1");
    assert_non_null(strstr(e, "\"reason\":\"max_throttled\""));
    assert_non_null(strstr(e, "\"throttled\":3"));
    assert_non_null(strstr(e, "HTTP 503"));
    free(e);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:errors 1"), 0);
}

/* A throttled item waits for its Retry-After, past backoff_max_ms too; a second delivery's
 * throttle takes its tries entry back down (the delivery did not count). */
static void a_throttled_item_waits_for_its_retry_after(void **state) {
    (void)state;
    jobopt o = defaults(); /* cap 400 */
    job_with_items("j", &o, 1);
    drv_claim a;
    claim("j", 1, "w", &a);
    drv_failure f = failure_of(&a.items[0], 0, 0, ERR);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    claim_free(&a);
    claim_when_back("j", 1, "w", &a);
    assert_int_equal(a.items[0].attempt, 2);
    int64_t before = redis_now();
    f = throttle_of(&a.items[0], 5000);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    int64_t after = redis_now();
    assert_in_range(rint_("ZSCORE drover:{j.0}:retry 1"), before + 5000, after + 5000);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 1);
    claim_free(&a);
}

static void a_permanent_failure_is_dead_at_once_with_its_error(void **state) {
    (void)state;
    jobopt o = defaults();
    o.max_attempts = 5;
    job_with_items("j", &o, 1);
    drv_claim a;
    claim("j", 1, "w", &a);
    drv_failure f = failure_of(&a.items[0], 1, 0, ERR);
    drv_fail_result res;
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    assert_int_equal(res.dead, 1);
    assert_int_equal(res.retrying, 0);
    assert_rstr(ERR, "HGET drover:{j.0}:dead 1");
    assert_int_equal(counter("j", 0, "dead"), 1);
    assert_int_equal(counter("j", 0, "failed"), 1);
    assert_int_equal(rint_("EXISTS drover:{j.0}:retry drover:{j.0}:errors"), 0);
    assert_int_equal(leased_count("j", 0), 0);
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 0);
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.pending + st.leased + st.retrying, 0);
    claim_free(&a);
}

static void a_failure_on_the_last_attempt_is_dead(void **state) {
    (void)state;
    jobopt o = defaults();
    o.max_attempts = 2;
    job_with_items("j", &o, 1);
    drv_claim a, b;
    claim("j", 1, "w", &a);
    drv_failure f = failure_of(&a.items[0], 0, 0, "{\"error\":\"first\"}");
    drv_fail_result res;
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    assert_int_equal(res.retrying, 1);
    take_over("w", &b);
    assert_int_equal(b.items[0].attempt, 2);
    f = failure_of(&b.items[0], 0, 0, "{\"error\":\"second\"}");
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    assert_int_equal(res.dead, 1);
    assert_int_equal(res.retrying, 0);
    assert_rstr("{\"error\":\"second\"}", "HGET drover:{j.0}:dead 1");
    assert_int_equal(rint_("HEXISTS drover:{j.0}:errors 1"), 0);
    assert_int_equal(counter("j", 0, "failed"), 2);
    assert_int_equal(counter("j", 0, "dead"), 1);
    claim_free(&a);
    claim_free(&b);
}

static void a_failure_with_a_stale_token_is_ignored(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 1);
    drv_claim a, b;
    claim("j", 1, "A", &a);
    take_over("B", &b);
    /* A's lease was lost; B holds the item: A's failure, even a permanent one, is stale. */
    drv_failure f = failure_of(&a.items[0], 1, 0, ERR);
    drv_fail_result res;
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    assert_int_equal(res.stale, 1);
    assert_int_equal(res.dead + res.retrying, 0);
    char owner[64];
    snprintf(owner, sizeof owner, "%" PRId64 ":B", b.items[0].token);
    assert_holder(owner, "j", 0, "1");
    assert_int_equal(lease_deadline("j", 0, "1"), b.deadline_ms);
    assert_int_equal(rint_("EXISTS drover:{j.0}:dead drover:{j.0}:retry"), 0);
    assert_int_equal(counter("j", 0, "failed"), 0);
    /* An item never leased is stale too. */
    drv_failure g = {{"nope", 4, 1}, 1, 0, 0, ERR, strlen(ERR)};
    assert_int_equal(drv_queue_fail(q, "j", 0, &g, 1, &res), DRV_OK);
    assert_int_equal(res.stale, 1);
    claim_free(&a);
    claim_free(&b);
}

static void a_failure_of_an_item_already_done_does_not_dead_letter_it(void **state) {
    (void)state;
    /* A's lease expired, B took the last attempt, A's late ack marked it done, then B's
     * handler failed: the item stays done and is not reported dead. */
    jobopt o = defaults();
    o.lease_ms = 100;
    o.max_attempts = 2;
    job_with_items("j", &o, 1);
    drv_claim a, b;
    claim("j", 1, "A", &a);
    take_over("B", &b);
    drv_ref ra = ref_of(&a.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &ra, 1, NULL), DRV_OK);
    drv_failure f = failure_of(&b.items[0], 0, 0, ERR);
    drv_fail_result res;
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    assert_int_equal(res.dead, 0);
    assert_int_equal(res.retrying, 0);
    assert_int_equal(res.stale, 1);
    assert_int_equal(counter("j", 0, "dead"), 0);
    assert_int_equal(counter("j", 0, "failed"), 0);
    assert_int_equal(rint_("EXISTS drover:{j.0}:dead drover:{j.0}:retry drover:{j.0}:errors"), 0);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    assert_int_equal(leased_count("j", 0), 0); /* B's lease is released */
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 0);
    claim_free(&a);
    claim_free(&b);
}

static void fail_of_an_unknown_job_is_enojob(void **state) {
    (void)state;
    drv_failure f = {{"1", 1, 1}, 0, 0, 0, ERR, strlen(ERR)};
    drv_fail_result res = {7, 7, 7, 7};
    assert_int_equal(drv_queue_fail(q, "nope", 0, &f, 1, &res), DRV_ENOJOB);
    assert_int_equal(res.retrying, 7); /* untouched on failure */
    assert_int_equal(rint_("DBSIZE"), 0);
}

/* ---- extend ---------------------------------------------------------------------------------- */

static void extend_moves_the_deadline_of_held_leases_forward(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 5000;
    job_with_items("j", &o, 3);
    drv_claim a;
    claim("j", 3, "w", &a);
    wait_redis_past(a.deadline_ms - 5000); /* Redis time moves, so the deadline can */
    drv_ref r[3] = {ref_of(&a.items[0]), ref_of(&a.items[1]), ref_of(&a.items[2])};
    int64_t lost = -1;
    int64_t before = redis_now();
    assert_int_equal(drv_queue_extend(q, "j", 0, r, 3, &lost), DRV_OK);
    assert_int_equal(lost, 0);
    for (int i = 1; i <= 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "%d", i);
        long long d = lease_deadline("j", 0, id);
        assert_true(d > a.deadline_ms);
        assert_in_range(d, before + 5000, redis_now() + 5000);
    }
    claim_free(&a);
}

static void extend_counts_leases_lost_and_does_not_bring_them_back(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 2);
    drv_claim a;
    claim("j", 2, "w", &a);
    drv_part_stat st;
    reap_until("j", nothing_leased, &st); /* both expired and recovered */
    drv_ref r[3] = {ref_of(&a.items[0]), ref_of(&a.items[1]), {"never", 5, a.items[0].token}};
    int64_t lost = -1;
    assert_int_equal(drv_queue_extend(q, "j", 0, r, 3, &lost), DRV_OK);
    assert_int_equal(lost, 3);
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased"), 0);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2);

    /* One re-leased to another worker: the old token is lost, the new holder's extends. */
    drv_claim b;
    claim("j", 1, "w2", &b);
    const drv_lease *was = strcmp(b.items[0].id, a.items[0].id) == 0 ? &a.items[0] : &a.items[1];
    drv_ref mine = ref_of(&b.items[0]), old = ref_of(was);
    assert_int_equal(drv_queue_extend(q, "j", 0, &old, 1, &lost), DRV_OK);
    assert_int_equal(lost, 1);
    assert_int_equal(lease_deadline("j", 0, b.items[0].id), b.deadline_ms);
    assert_int_equal(drv_queue_extend(q, "j", 0, &mine, 1, &lost), DRV_OK);
    assert_int_equal(lost, 0);
    lost = -1;
    assert_int_equal(drv_queue_extend(q, "nope", 0, &mine, 1, &lost), DRV_ENOJOB);
    assert_int_equal(lost, -1);
    claim_free(&a);
    claim_free(&b);
}

/* ---- release --------------------------------------------------------------------------------- */

static void release_puts_items_back_at_the_front_in_claim_order(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 5);
    drv_claim a, b;
    claim("j", 3, "draining", &a);
    drv_ref r[3] = {ref_of(&a.items[0]), ref_of(&a.items[1]), ref_of(&a.items[2])};
    int64_t n = -1;
    assert_int_equal(drv_queue_release(q, "j", 0, r, 3, &n), DRV_OK);
    assert_int_equal(n, 3);
    assert_rlist("1,2,3,4,5", "LRANGE drover:{j.0}:pending 0 -1");
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased drover:{j.0}:owner"), 0);
    assert_int_equal(rint_("EXISTS drover:{j.0}:tries"), 0);
    assert_int_equal(counter("j", 0, "released"), 3);
    claim("j", 5, "w", &b);
    assert_int_equal(b.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(b.items[i].attempt, 1); /* the release was not an attempt */
    assert_string_equal(b.items[0].id, "1");
    claim_free(&a);
    claim_free(&b);
}

/* ---- the lease record ----------------------------------------------------------------------- */

/* One lease per claim: an ack, a fail and a release of some of its items shrink its list of
 * ids, the last one removes it; the state hash's 'leased' counter follows (leased_count checks
 * it against the lists). Another claim's lease is untouched. */
static void a_lease_shrinks_with_each_ack_fail_and_release_and_goes_with_the_last(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 6);
    drv_claim a, b;
    claim("j", 4, "w", &a);
    claim("j", 2, "v", &b);
    assert_int_equal(leased_count("j", 0), 6);
    assert_int_equal(rint_("ZCARD drover:{j.0}:leased"), 2);
    char wa[64], wb[64];
    snprintf(wa, sizeof wa, "%" PRId64 ":w", a.items[0].token);
    snprintf(wb, sizeof wb, "%" PRId64 ":v", b.items[0].token);
    assert_holder(wa, "j", 0, "1");
    assert_holder(wb, "j", 0, "6");

    drv_ref r0 = ref_of(&a.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r0, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_holder(NULL, "j", 0, "1");
    assert_holder(wa, "j", 0, "2");
    assert_int_equal(leased_count("j", 0), 5);

    drv_failure f = failure_of(&a.items[1], 0, 0, "{\"error\":\"x\"}");
    drv_fail_result fr;
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &fr), DRV_OK);
    assert_int_equal(fr.retrying, 1);
    assert_holder(NULL, "j", 0, "2");
    assert_int_equal(leased_count("j", 0), 4);

    drv_ref r2 = ref_of(&a.items[2]);
    int64_t n = -1;
    assert_int_equal(drv_queue_release(q, "j", 0, &r2, 1, &n), DRV_OK);
    assert_int_equal(n, 1);
    assert_holder(NULL, "j", 0, "3");
    assert_holder(wa, "j", 0, "4");
    assert_int_equal(leased_count("j", 0), 3);

    /* The lease's last item: the lease is gone, the other claim's is whole. */
    drv_ref r3 = ref_of(&a.items[3]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &r3, 1, &res), DRV_OK);
    assert_int_equal(rint_("ZCARD drover:{j.0}:leased"), 1);
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 1);
    assert_holder(wb, "j", 0, "5");
    assert_holder(wb, "j", 0, "6");
    assert_int_equal(leased_count("j", 0), 2);
    /* A second ack of an item its lease no longer holds is a duplicate, not a release. */
    assert_int_equal(drv_queue_ack(q, "j", 0, &r3, 1, &res), DRV_OK);
    assert_int_equal(res.duplicates, 1);
    assert_int_equal(leased_count("j", 0), 2);
    claim_free(&a);
    claim_free(&b);
}

/* One ack may cover several claims, in any order: each ref is checked against its own lease
 * (the tokens go as runs: here four runs of one). */
static void one_ack_of_interleaved_claims_checks_each_against_its_lease(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 5);
    drv_claim a, b;
    claim("j", 2, "w", &a);
    claim("j", 2, "w", &b);
    drv_ref r[5] = {ref_of(&a.items[0]),
                    ref_of(&b.items[0]),
                    ref_of(&a.items[1]),
                    ref_of(&b.items[1]),
                    {"5", 1, a.items[0].token}}; /* 5: never leased */
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, r, 5, &res), DRV_OK);
    assert_int_equal(res.acked, 4);
    assert_int_equal(res.duplicates, 0);
    assert_int_equal(res.unknown, 1);
    assert_int_equal(done_count("j", 0), 4);
    assert_int_equal(leased_count("j", 0), 0);
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased drover:{j.0}:owner"), 0);
    claim_free(&a);
    claim_free(&b);
}

/* Expired leases come back whole, at most 1000 items a call: three claims of 2500 items in
 * all are recovered over several reaps, each item once, with its first attempt counted. */
static void expired_leases_are_recovered_whole_in_calls_of_at_most_1000_items(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 2500);
    drv_claim c[3];
    for (int i = 0; i < 3; i++)
        claim("j", 1000, "w", &c[i]);
    assert_int_equal(c[0].n + c[1].n + c[2].n, 2500);
    assert_int_equal(leased_count("j", 0), 2500);
    wait_redis_past(c[2].deadline_ms);
    drv_part_stat st;
    int64_t recovered = 0;
    for (int i = 0; i < 10 && recovered < 2500; i++) {
        assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
        assert_true(st.recovered <= 1000);
        recovered += st.recovered;
    }
    assert_int_equal(recovered, 2500);
    assert_int_equal(leased_count("j", 0), 0);
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased drover:{j.0}:owner"), 0);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2500);
    assert_int_equal(rint_("HLEN drover:{j.0}:tries"), 2500);
    assert_int_equal(counter("j", 0, "expired"), 2500);
    for (int i = 0; i < 3; i++)
        claim_free(&c[i]);
}

/* A job leased by a drover from before leases were per claim (leased: id -> deadline, owner:
 * id -> "TOKEN:WORKER") loses nothing: each such lease comes back as its id when it expires. */
static void a_per_item_lease_of_an_older_drover_comes_back_when_it_expires(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3);
    drv_claim c;
    claim("j", 1, "w", &c); /* 1 under a lease of this layout */
    rint_("LREM drover:{j.0}:pending 1 2");
    rint_("ZADD drover:{j.0}:leased 1 2");
    rint_("HSET drover:{j.0}:owner 2 %s", "9:old-host:1");
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.recovered, 1);
    assert_rlist("2,3", "LRANGE drover:{j.0}:pending 0 -1");
    assert_int_equal(rint_("HEXISTS drover:{j.0}:owner 2"), 0);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 2"), 1);
    assert_int_equal(leased_count("j", 0), 1); /* this layout's lease is untouched */
    claim_free(&c);
}

static void release_keeps_the_attempt_count_of_an_earlier_delivery(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 1);
    drv_claim a, b, c;
    claim("j", 1, "w", &a);
    take_over("w", &b); /* attempt 2 */
    drv_ref r = ref_of(&b.items[0]);
    /* Handed back before starting: the next claim is attempt 2 again, not 3. */
    int64_t n = 0;
    assert_int_equal(drv_queue_release(q, "j", 0, &r, 1, &n), DRV_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 1);
    claim("j", 1, "w", &c);
    assert_int_equal(c.items[0].attempt, 2);
    claim_free(&a);
    claim_free(&b);
    claim_free(&c);
}

static void release_skips_leases_no_longer_held(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 2);
    drv_claim a, b;
    claim("j", 1, "A", &a);
    /* Item 1 expires and B takes it; A's release of it must not take it from B. */
    drv_part_stat st;
    reap_until("j", nothing_leased, &st);
    claim("j", 1, "B", &b);
    assert_string_equal(b.items[0].id, "1");
    drv_ref r[2] = {ref_of(&a.items[0]), {"2", 1, a.items[0].token}};
    int64_t n = -1;
    assert_int_equal(drv_queue_release(q, "j", 0, r, 2, &n), DRV_OK);
    assert_int_equal(n, 0);
    assert_rlist("2", "LRANGE drover:{j.0}:pending 0 -1");
    assert_int_equal(leased_count("j", 0), 1);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 2);
    assert_int_equal(counter("j", 0, "released"), 0);
    n = -1;
    assert_int_equal(drv_queue_release(q, "nope", 0, r, 1, &n), DRV_ENOJOB);
    assert_int_equal(n, -1);
    claim_free(&a);
    claim_free(&b);
}

#define T(name) cmocka_unit_test_setup(name, flush)

/* ---- kept responses (keep_response) ---------------------------------------------------------- */

static void collect(const char *id, size_t idlen, const char *resp, size_t rlen, void *ud) {
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%.*s=%.*s;", (int)idlen, id, (int)rlen, resp);
}

static void an_ack_keeps_responses_of_items_it_marks_done(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3);
    drv_claim c;
    claim("j", 3, "w", &c);
    assert_int_equal(c.n, 3);
    drv_ref r[3] = {ref_of(&c.items[0]), ref_of(&c.items[1]), ref_of(&c.items[2])};
    /* Binary, empty and NULL (nothing kept) responses. */
    drv_bytes resp[3] = {{"a\tb\0c", 5}, {"", 0}, {NULL, 0}};
    drv_ack_result res;
    assert_int_equal(drv_queue_ack_keep(q, "j", 0, r, resp, 3, &res), DRV_OK);
    assert_int_equal(res.acked, 3);
    assert_int_equal(rint_("HLEN drover:{j.0}:results"), 3);
    assert_int_equal(rint_("HSTRLEN drover:{j.0}:results %s", c.items[0].id), 5);
    assert_int_equal(rint_("HSTRLEN drover:{j.0}:results %s", c.items[1].id), 0);
    /* A second ack of the same items (a resend) does not overwrite what was kept. */
    drv_bytes other[3] = {{"zz", 2}, {"zz", 2}, {"zz", 2}};
    assert_int_equal(drv_queue_ack_keep(q, "j", 0, r, other, 3, &res), DRV_OK);
    assert_int_equal(res.acked, 0);
    assert_int_equal(rint_("HSTRLEN drover:{j.0}:results %s", c.items[0].id), 5);
    char got[256] = "";
    assert_int_equal(drv_queue_results_each(q, "j", 0, collect, got), DRV_OK);
    assert_non_null(strstr(got, "=;"));     /* the empty one */
    assert_non_null(strstr(got, "=a\tb;")); /* the binary one, cut at its NUL by %.*s */
    int n = 0;
    for (const char *x = got; *x; x++)
        n += *x == ';';
    assert_int_equal(n, 3);
    claim_free(&c);
}

static void a_plain_ack_keeps_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_claim c;
    claim("j", 2, "w", &c);
    drv_ref r[2] = {ref_of(&c.items[0]), ref_of(&c.items[1])};
    assert_int_equal(drv_queue_ack(q, "j", 0, r, 2, NULL), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{j.0}:results"), 0);
    assert_int_equal(counter("j", 0, "done"), 2);
    claim_free(&c);
}

/* ---- fleet cool-down ------------------------------------------------------------------------- */

static void a_cooldown_stops_every_claim_until_it_ends(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    feed_range("j", 0, 1, 4);
    int64_t until = 0;
    assert_int_equal(drv_queue_cooldown(q, "j", 1, 400, &until), DRV_OK);
    int64_t now = redis_now();
    assert_true(until > now && until <= now + 400);
    drv_claim c;
    /* Any worker: nothing leased, and the reply says until when. */
    assert_int_equal(drv_queue_claim(q, "j", 0, "other", 4, &c), DRV_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(c.cooldown_until, until);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 4);
    assert_int_equal(counter("j", 0, "cooldowns"), 1);
    /* A shorter one does not cut it short; a longer one extends it. */
    int64_t u2 = 0;
    assert_int_equal(drv_queue_cooldown(q, "j", 1, 10, &u2), DRV_OK);
    assert_int_equal(u2, until);
    assert_int_equal(counter("j", 0, "cooldowns"), 1);
    assert_int_equal(drv_queue_cooldown(q, "j", 1, 600, &u2), DRV_OK);
    assert_true(u2 > until);
    wait_redis_past(u2);
    claim("j", 4, "w", &c);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.cooldown_until, 0);
    claim_free(&c);
}

static void a_cooldown_covers_every_partition_of_the_job(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 3;
    create_job("j", &o);
    for (int p = 0; p < 3; p++)
        feed_range("j", p, 10 * p, 10 * p + 1);
    int64_t until;
    assert_int_equal(drv_queue_cooldown(q, "j", 3, 5000, &until), DRV_OK);
    for (int p = 0; p < 3; p++) {
        drv_claim c;
        assert_int_equal(drv_queue_claim(q, "j", p, "w", 10, &c), DRV_OK);
        assert_int_equal(c.n, 0);
        assert_int_equal(c.cooldown_until, until);
    }
    assert_int_equal(drv_queue_cooldown(q, "nope", 1, 100, &until), DRV_ENOJOB);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        T(ack_marks_done_and_clears_the_lease),
        T(acking_the_same_lease_twice_marks_it_done_once),
        T(a_late_ack_after_expiry_counts_a_duplicate_and_marks_done_once),
        T(a_late_ack_while_another_worker_holds_the_item_is_one_duplicate),
        T(a_done_item_whose_later_lease_expires_is_not_dead_lettered),
        T(an_ack_for_an_item_never_handed_out_is_unknown_and_not_done),
        T(a_late_ack_of_a_dead_lettered_item_brings_it_back_from_the_dead),
        T(a_late_ack_beats_a_scheduled_retry),
        T(ack_of_an_unknown_job_is_enojob),
        T(ack_of_more_than_1000_items_goes_in_chunks),
        T(a_failure_schedules_a_retry_within_the_backoff_cap),
        T(the_backoff_never_exceeds_its_cap),
        T(workers_failing_at_the_same_moment_get_different_jitter),
        T(retry_after_is_a_floor_for_the_delay_even_past_the_cap),
        T(a_throttled_answer_uses_no_attempt),
        T(an_item_throttled_past_max_throttled_is_dead),
        T(a_throttled_item_waits_for_its_retry_after),
        T(a_permanent_failure_is_dead_at_once_with_its_error),
        T(a_failure_on_the_last_attempt_is_dead),
        T(a_failure_with_a_stale_token_is_ignored),
        T(a_failure_of_an_item_already_done_does_not_dead_letter_it),
        T(fail_of_an_unknown_job_is_enojob),
        T(extend_moves_the_deadline_of_held_leases_forward),
        T(extend_counts_leases_lost_and_does_not_bring_them_back),
        T(release_puts_items_back_at_the_front_in_claim_order),
        T(release_keeps_the_attempt_count_of_an_earlier_delivery),
        T(a_lease_shrinks_with_each_ack_fail_and_release_and_goes_with_the_last),
        T(one_ack_of_interleaved_claims_checks_each_against_its_lease),
        T(expired_leases_are_recovered_whole_in_calls_of_at_most_1000_items),
        T(a_per_item_lease_of_an_older_drover_comes_back_when_it_expires),
        T(release_skips_leases_no_longer_held),
        T(an_ack_keeps_responses_of_items_it_marks_done),
        T(a_plain_ack_keeps_nothing),
        T(a_cooldown_stops_every_claim_until_it_ends),
        T(a_cooldown_covers_every_partition_of_the_job),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
