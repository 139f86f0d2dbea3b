/* Every Lua script against a real redis-server, through the queue API, with its error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "keys.h"
#include "queue.h"
#include "redis_fixture.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static drv_test_redis server;
static drv_queue *q;
static redisContext *rc; /* for looking at keys directly, as an operator would */

static int group_setup(void **state) {
    (void)state;
    if (drv_test_redis_start(&server, NULL) != 0) return -1;
    drv_redis_cfg cfg;
    char why[256];
    if (drv_url_parse(server.url, &cfg, why, sizeof why) != DRV_OK) return -1;
    if (drv_queue_open(&cfg, "drover:", &q, why, sizeof why) != DRV_OK) return -1;
    rc = redisConnect("127.0.0.1", server.port);
    return rc && !rc->err ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    if (rc) redisFree(rc);
    drv_queue_close(q);
    drv_test_redis_stop(&server);
    return 0;
}

static int flush(void **state) {
    (void)state;
    return drv_test_redis_flush(&server);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static long long rint_(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                  : -1;
    freeReplyObject(r);
    return v;
}

static char *rstr(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    char *s =
        r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return s;
}

/* A job "j" with one partition (unless nparts) and items 1..n pending. */
static void make_job(const char *id, int nparts, int n, int64_t lease_ms, int64_t max_attempts) {
    drv_spec s;
    drv_spec_init(&s);
    snprintf(s.id, sizeof s.id, "%s", id);
    s.range_start = 1;
    s.range_end = n;
    s.partitions = nparts;
    s.lease_ms = lease_ms;
    s.max_attempts = max_attempts;
    s.backoff_ms = 100;
    s.backoff_max_ms = 400;
    drv_part_init parts[4] = {{0}};
    for (int p = 0; p < nparts; p++)
        strcpy(parts[p].cursor, "0");
    assert_int_equal(drv_queue_job_create(q, &s, n, parts, 0), DRV_OK);
    drv_feed_item items[1000];
    char ids[1000][16];
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%d", i + 1);
        items[i] = (drv_feed_item){ids[i], strlen(ids[i]), NULL, 0};
    }
    char next[16];
    snprintf(next, sizeof next, "%d", n);
    assert_int_equal(drv_queue_feed(q, id, 0, "0", next, 1, items, (size_t)n, NULL), DRV_OK);
}

static void claim(const char *job, int max, const char *worker, drv_claim *c) {
    assert_int_equal(drv_queue_claim(q, job, 0, worker, max, c), DRV_OK);
}

static void claim_free(drv_claim *c) {
    for (size_t i = 0; i < c->n; i++)
        drv_lease_clear(&c->items[i]);
    free(c->items);
    memset(c, 0, sizeof *c);
}

static drv_ref ref_of(const drv_lease *l) {
    return (drv_ref){l->id, l->idlen, l->token};
}

/* Polls claim until it returns an item (a lease expired or a retry came due), at most 5 s. */
static void claim_when_back(const char *job, const char *worker, drv_claim *c) {
    int64_t deadline = drv_now_ms() + 5000;
    for (;;) {
        claim(job, 10, worker, c);
        if (c->n > 0) return;
        free(c->items);
        if (drv_now_ms() > deadline) fail_msg("nothing came back within 5 s");
        drv_sleep_ms(20);
    }
}

/* ---- jobs ----------------------------------------------------------------------------------- */

static void job_is_visible_only_once_complete_and_ids_are_unique(void **state) {
    (void)state;
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_ENOJOB);
    /* A half-made job (hash, no entry in drover:jobs) is invisible and gets cleaned up. */
    assert_int_equal(rint_("HSET drover:{j}:job state creating partitions 2"), 2);
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_ENOJOB);
    make_job("j", 2, 5, 1000, 3);
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_string_equal(j.state, "running");
    assert_int_equal(j.partitions, 2);
    assert_int_equal(j.total, 5);
    assert_true(rint_("ZSCORE drover:jobs j") > 0);
    drv_spec s = j.spec;
    drv_part_init parts[2] = {{0}};
    assert_int_equal(drv_queue_job_create(q, &s, 5, parts, 0), DRV_EEXIST);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 5);
    assert_int_equal(drv_queue_job_create(q, &s, 5, parts, 1), DRV_OK);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    char(*ids)[DRV_JOB_ID_MAX + 1];
    size_t n;
    assert_int_equal(drv_queue_job_list(q, &ids, &n), DRV_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "j");
    free(ids);
    assert_int_equal(drv_queue_job_delete(q, "j"), DRV_OK);
    assert_int_equal(rint_("DBSIZE"), 0);
}

static void set_state_mirrors_into_every_partition(void **state) {
    (void)state;
    make_job("j", 3, 3, 1000, 3);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_int_equal(drv_queue_job_set_state(q, &j, "paused"), DRV_OK);
    for (int p = 0; p < 3; p++) {
        char *st = rstr("HGET drover:{j.%d}:state state", p);
        assert_string_equal(st, "paused");
        free(st);
    }
    assert_int_equal(drv_queue_job_set_state(q, &j, "done"), DRV_OK);
    assert_true(rint_("HGET drover:{j}:job finished_ms") > 0);
}

/* ---- feed ------------------------------------------------------------------------------------ */

static void feed_appends_and_moves_the_cursor_atomically(void **state) {
    (void)state;
    make_job("j", 1, 3, 1000, 3);
    assert_int_equal(rint_("HGET drover:{j.0}:state cursor"), 3);
    assert_int_equal(rint_("HGET drover:{j.0}:state fed"), 3);
    assert_int_equal(rint_("HGET drover:{j.0}:state exhausted"), 1);
    char *first = rstr("LINDEX drover:{j.0}:pending 0");
    assert_string_equal(first, "1");
    free(first);
    /* A feeder that read an old cursor loses: nothing is pushed, the cursor stays. */
    drv_feed_item it = {"99", 2, NULL, 0};
    int64_t pending = -1;
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "1", 0, &it, 1, &pending), DRV_ECURSOR);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 3);
    assert_int_equal(rint_("HGET drover:{j.0}:state cursor"), 3);
    assert_int_equal(drv_queue_feed(q, "j", 0, "3", "4", 0, &it, 1, &pending), DRV_OK);
    assert_int_equal(pending, 4);
    assert_int_equal(drv_queue_feed(q, "nope", 0, "0", "1", 0, &it, 1, NULL), DRV_ENOJOB);
    assert_int_equal(rint_("HSET drover:{j.0}:state state cancelled"), 0);
    assert_int_equal(drv_queue_feed(q, "j", 0, "4", "5", 0, &it, 1, NULL), DRV_ECANCELLED);
}

static void feed_with_payloads_keeps_items_until_done(void **state) {
    (void)state;
    make_job("j", 1, 0, 1000, 3);
    assert_int_equal(rint_("HSET drover:{j.0}:state payloads 1"), 0);
    drv_feed_item it[2] = {{"a", 1, "{\"x\":1}", 7}, {"b", 1, "{\"x\":2}", 7}};
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "2", 1, it, 2, NULL), DRV_OK);
    drv_claim c;
    claim("j", 5, "w", &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.items[0].payload, "{\"x\":1}");
    drv_ref r = ref_of(&c.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, NULL), DRV_OK);
    assert_int_equal(rint_("HLEN drover:{j.0}:items"), 1); /* a's payload is gone */
    claim_free(&c);
}

/* ---- claim ------------------------------------------------------------------------------------
 */

static void claim_leases_with_one_token_and_a_redis_time_deadline(void **state) {
    (void)state;
    make_job("j", 1, 5, 10000, 3);
    drv_claim c;
    claim("j", 3, "host:1", &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.items[0].id, "1");
    assert_int_equal(c.items[0].attempt, 1);
    assert_int_equal(c.items[0].token, c.items[2].token);
    assert_int_equal(c.deadline_ms, c.now_ms + 10000);
    assert_int_equal(rint_("ZSCORE drover:{j.0}:leased 2"), c.deadline_ms);
    char *owner = rstr("HGET drover:{j.0}:owner 2");
    char want[64];
    snprintf(want, sizeof want, "%" PRId64 ":host:1", c.items[0].token);
    assert_string_equal(owner, want);
    free(owner);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 3"), 1);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2);
    drv_claim d;
    claim("j", 10, "host:2", &d);
    assert_int_equal(d.n, 2);
    assert_true(d.items[0].token > c.items[0].token);
    drv_claim e;
    claim("j", 10, "host:2", &e);
    assert_int_equal(e.n, 0); /* empty partition */
    claim_free(&c);
    claim_free(&d);
    free(e.items);
}

static void claim_skips_items_already_done(void **state) {
    (void)state;
    make_job("j", 1, 4, 1000, 3);
    assert_int_equal(rint_("SADD drover:{j.0}:done 1 3"), 2);
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.items[0].id, "2");
    assert_string_equal(c.items[1].id, "4");
    assert_int_equal(rint_("HGET drover:{j.0}:state skipped"), 2);
    claim_free(&c);
}

static void claim_refuses_paused_cancelled_and_unknown_jobs(void **state) {
    (void)state;
    make_job("j", 1, 2, 1000, 3);
    drv_claim c;
    rint_("HSET drover:{j.0}:state state paused");
    assert_int_equal(drv_queue_claim(q, "j", 0, "w", 1, &c), DRV_EPAUSED);
    rint_("HSET drover:{j.0}:state state cancelled");
    assert_int_equal(drv_queue_claim(q, "j", 0, "w", 1, &c), DRV_ECANCELLED);
    assert_int_equal(drv_queue_claim(q, "nope", 0, "w", 1, &c), DRV_ENOJOB);
    assert_int_equal(drv_queue_claim(q, "j", 7, "w", 1, &c), DRV_ENOJOB);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2); /* nothing taken */
}

static void claim_takes_at_most_1000_a_call(void **state) {
    (void)state;
    make_job("j", 1, 1000, 1000, 3);
    drv_feed_item it = {"1001", 4, NULL, 0};
    assert_int_equal(drv_queue_feed(q, "j", 0, "1000", "1001", 1, &it, 1, NULL), DRV_OK);
    drv_claim c;
    claim("j", 5000, "w", &c);
    assert_int_equal(c.n, 1000);
    assert_int_equal(rint_("ZCARD drover:{j.0}:leased"), 1000);
    claim_free(&c);
}

/* ---- leases expire -------------------------------------------------------------------------- */

static void an_expired_lease_is_handed_out_again_as_the_next_attempt(void **state) {
    (void)state;
    make_job("j", 1, 1, 100, 3);
    drv_claim a, b;
    claim("j", 1, "dead-worker", &a);
    assert_int_equal(a.n, 1);
    claim_when_back("j", "w2", &b);
    assert_string_equal(b.items[0].id, "1");
    assert_int_equal(b.items[0].attempt, 2);
    assert_true(b.items[0].token != a.items[0].token);
    assert_int_equal(rint_("HGET drover:{j.0}:state expired"), 1);
    claim_free(&a);
    claim_free(&b);
}

static void an_item_whose_leases_keep_expiring_ends_dead(void **state) {
    (void)state;
    make_job("j", 1, 1, 100, 2);
    drv_claim a, b;
    claim("j", 1, "w", &a);
    claim_when_back("j", "w", &b); /* attempt 2, the last */
    assert_int_equal(b.items[0].attempt, 2);
    /* Let the last lease expire: the coordinator's reap dead-letters it. */
    int64_t deadline = drv_now_ms() + 5000;
    drv_part_stat st;
    do {
        assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
        if (st.dead) break;
        drv_sleep_ms(20);
    } while (drv_now_ms() < deadline);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.pending + st.leased, 0);
    char *err = rstr("HGET drover:{j.0}:dead 1");
    assert_non_null(strstr(err, "\"error\":\"lease expired\""));
    assert_non_null(strstr(err, "\"attempt\":2"));
    free(err);
    assert_int_equal(rint_("HGET drover:{j.0}:state dead"), 1);
    claim_free(&a);
    claim_free(&b);
}

/* ---- ack ----------------------------------------------------------------------------------------
 */

static void ack_marks_done_and_clears_the_lease(void **state) {
    (void)state;
    make_job("j", 1, 2, 1000, 3);
    drv_claim c;
    claim("j", 2, "w", &c);
    drv_ref r = ref_of(&c.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(res.duplicates, 0);
    assert_int_equal(rint_("SISMEMBER drover:{j.0}:done 1"), 1);
    assert_int_equal(rint_("ZSCORE drover:{j.0}:leased 1"), -1);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:owner 1"), 0);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:tries 1"), 0);
    assert_int_equal(rint_("HGET drover:{j.0}:state done"), 1);
    /* Acking the same lease twice (a retried call) marks it done once. */
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 0);
    assert_int_equal(rint_("HGET drover:{j.0}:state done"), 1);
    assert_int_equal(rint_("SCARD drover:{j.0}:done"), 1);
    claim_free(&c);
}

static void a_late_ack_after_expiry_counts_a_duplicate_and_marks_done_once(void **state) {
    (void)state;
    make_job("j", 1, 1, 100, 5);
    drv_claim a, b;
    claim("j", 1, "slow", &a);
    claim_when_back("j", "fast", &b); /* a's lease expired, b holds it now */
    drv_ref ra = ref_of(&a.items[0]), rb = ref_of(&b.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &ra, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(res.duplicates, 1);
    assert_int_equal(drv_queue_ack(q, "j", 0, &rb, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 0);
    assert_int_equal(res.duplicates, 0); /* one double run, one duplicate */
    assert_int_equal(rint_("HGET drover:{j.0}:state done"), 1);
    assert_int_equal(rint_("HGET drover:{j.0}:state duplicates"), 1);
    assert_int_equal(rint_("ZCARD drover:{j.0}:leased"), 0);
    claim_free(&a);
    claim_free(&b);
}

static void an_ack_for_an_item_never_handed_out_is_ignored(void **state) {
    (void)state;
    make_job("j", 1, 1, 1000, 3);
    drv_ref r = {"999", 3, 1};
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.unknown, 1);
    assert_int_equal(rint_("SCARD drover:{j.0}:done"), 0);
    assert_int_equal(drv_queue_ack(q, "nope", 0, &r, 1, &res), DRV_ENOJOB);
}

static void a_late_ack_of_a_dead_item_brings_it_back_from_the_dead(void **state) {
    (void)state;
    make_job("j", 1, 1, 100, 1);
    drv_claim a;
    claim("j", 1, "w", &a);
    drv_part_stat st;
    int64_t deadline = drv_now_ms() + 5000;
    do {
        assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    } while (!st.dead && drv_now_ms() < deadline && (drv_sleep_ms(20), 1));
    assert_int_equal(st.dead, 1);
    drv_ref r = ref_of(&a.items[0]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(rint_("HLEN drover:{j.0}:dead"), 0);
    assert_int_equal(rint_("HGET drover:{j.0}:state dead"), 0);
    claim_free(&a);
}

/* ---- fail
 * ----------------------------------------------------------------------------------------- */

static drv_failure failure(const drv_lease *l, int permanent, int64_t after) {
    static const char *err = "{\"error\":\"exit status 1\"}";
    return (drv_failure){ref_of(l), permanent, after, err, strlen(err)};
}

static void a_failure_is_retried_after_a_capped_jittered_backoff(void **state) {
    (void)state;
    make_job("j", 1, 1, 1000, 3);
    drv_claim a, b;
    claim("j", 1, "w", &a);
    drv_failure f = failure(&a.items[0], 0, 0);
    drv_fail_result res;
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    assert_int_equal(res.retrying, 1);
    long long at = rint_("ZSCORE drover:{j.0}:retry 1");
    assert_true(at >= a.now_ms && at <= a.now_ms + 400 + 1000); /* cap 400, clock slack */
    char *err = rstr("HGET drover:{j.0}:errors 1");
    assert_string_equal(err, "{\"error\":\"exit status 1\"}");
    free(err);
    assert_int_equal(rint_("ZCARD drover:{j.0}:leased"), 0);
    claim_when_back("j", "w", &b);
    assert_int_equal(b.items[0].attempt, 2);
    assert_int_equal(rint_("HGET drover:{j.0}:state failed"), 1);
    claim_free(&a);
    claim_free(&b);
}

static void retry_after_is_a_floor_for_the_delay(void **state) {
    (void)state;
    make_job("j", 1, 1, 1000, 3);
    drv_claim a;
    claim("j", 1, "w", &a);
    drv_failure f = failure(&a.items[0], 0, 300);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    assert_true(rint_("ZSCORE drover:{j.0}:retry 1") >= a.now_ms + 300);
    claim_free(&a);
}

static void a_permanent_failure_or_the_last_attempt_is_dead_at_once(void **state) {
    (void)state;
    make_job("j", 1, 2, 1000, 1);
    drv_claim a;
    claim("j", 2, "w", &a);
    drv_failure f[2] = {failure(&a.items[0], 1, 0), failure(&a.items[1], 0, 0)};
    drv_fail_result res;
    assert_int_equal(drv_queue_fail(q, "j", 0, f, 2, &res), DRV_OK);
    assert_int_equal(res.dead, 2); /* one permanent, one on its last (only) attempt */
    assert_int_equal(rint_("HLEN drover:{j.0}:dead"), 2);
    assert_int_equal(rint_("HGET drover:{j.0}:state dead"), 2);
    assert_int_equal(rint_("ZCARD drover:{j.0}:retry"), 0);
    claim_free(&a);
}

static void a_failure_from_a_stale_lease_is_ignored(void **state) {
    (void)state;
    make_job("j", 1, 1, 1000, 3);
    drv_claim a;
    claim("j", 1, "w", &a);
    drv_failure f = failure(&a.items[0], 1, 0);
    f.ref.token += 1000;
    drv_fail_result res;
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &res), DRV_OK);
    assert_int_equal(res.stale, 1);
    assert_int_equal(rint_("ZCARD drover:{j.0}:leased"), 1); /* the holder still holds it */
    assert_int_equal(rint_("HLEN drover:{j.0}:dead"), 0);
    claim_free(&a);
}

/* ---- extend, release, reap, revive --------------------------------------------------------------
 */

static void extend_moves_held_deadlines_and_reports_lost_leases(void **state) {
    (void)state;
    make_job("j", 1, 2, 1000, 3);
    drv_claim a;
    claim("j", 2, "w", &a);
    long long before = rint_("ZSCORE drover:{j.0}:leased 1");
    drv_sleep_ms(20); /* Redis time must move for the deadline to move */
    drv_ref r[2] = {ref_of(&a.items[0]), ref_of(&a.items[1])};
    r[1].token += 1; /* not ours */
    int64_t lost = -1;
    assert_int_equal(drv_queue_extend(q, "j", 0, r, 2, &lost), DRV_OK);
    assert_int_equal(lost, 1);
    assert_true(rint_("ZSCORE drover:{j.0}:leased 1") > before);
    claim_free(&a);
}

static void release_puts_items_back_in_front_without_an_attempt(void **state) {
    (void)state;
    make_job("j", 1, 4, 1000, 3);
    drv_claim a, b;
    claim("j", 2, "w", &a);
    drv_ref r[2] = {ref_of(&a.items[0]), ref_of(&a.items[1])};
    int64_t n = 0;
    assert_int_equal(drv_queue_release(q, "j", 0, r, 2, &n), DRV_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rint_("ZCARD drover:{j.0}:leased"), 0);
    claim("j", 1, "w2", &b);
    assert_string_equal(b.items[0].id, "1"); /* claim order kept */
    assert_int_equal(b.items[0].attempt, 1);
    drv_ref stale = ref_of(&a.items[0]);
    assert_int_equal(drv_queue_release(q, "j", 0, &stale, 1, &n), DRV_OK);
    assert_int_equal(n, 0); /* b holds it now */
    claim_free(&a);
    claim_free(&b);
}

static void reap_reports_sizes_and_recovers_expired_leases(void **state) {
    (void)state;
    make_job("j", 1, 3, 100, 3);
    drv_claim a;
    claim("j", 2, "w", &a);
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.leased, 2);
    assert_true(st.exhausted);
    int64_t deadline = drv_now_ms() + 5000;
    do {
        assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    } while (st.pending < 3 && drv_now_ms() < deadline && (drv_sleep_ms(20), 1));
    assert_int_equal(st.pending, 3);
    assert_int_equal(st.leased, 0);
    assert_int_equal(drv_queue_reap(q, "nope", 0, &st), DRV_ENOJOB);
    claim_free(&a);
}

static void revive_moves_dead_items_back_with_fresh_attempts(void **state) {
    (void)state;
    make_job("j", 1, 2, 1000, 1);
    drv_claim a, b;
    claim("j", 2, "w", &a);
    drv_failure f[2] = {failure(&a.items[0], 0, 0), failure(&a.items[1], 0, 0)};
    assert_int_equal(drv_queue_fail(q, "j", 0, f, 2, NULL), DRV_OK);
    rint_("HSET drover:{j.0}:state state done");
    int64_t n = 0;
    assert_int_equal(drv_queue_revive(q, "j", 0, &n), DRV_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rint_("HLEN drover:{j.0}:dead"), 0);
    assert_int_equal(rint_("HGET drover:{j.0}:state dead"), 0);
    char *st = rstr("HGET drover:{j.0}:state state");
    assert_string_equal(st, "running");
    free(st);
    claim("j", 2, "w", &b);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.items[0].attempt, 1);
    claim_free(&a);
    claim_free(&b);
}

/* ---- lock, script cache, key layout
 * --------------------------------------------------------------- */

static void the_coordinator_lock_is_exclusive_renewable_and_expires(void **state) {
    (void)state;
    int held = 0;
    assert_int_equal(drv_queue_lock(q, "j", "a", 200, &held), DRV_OK);
    assert_true(held);
    assert_int_equal(drv_queue_lock(q, "j", "b", 200, &held), DRV_OK);
    assert_false(held);
    assert_int_equal(drv_queue_lock(q, "j", "a", 200, &held), DRV_OK); /* renew */
    assert_true(held);
    assert_int_equal(drv_queue_unlock(q, "j", "b"), DRV_OK); /* not b's to drop */
    assert_int_equal(rint_("EXISTS drover:{j}:lock"), 1);
    int64_t deadline = drv_now_ms() + 3000;
    do {
        assert_int_equal(drv_queue_lock(q, "j", "b", 200, &held), DRV_OK);
    } while (!held && drv_now_ms() < deadline && (drv_sleep_ms(20), 1));
    assert_true(held); /* a stopped renewing: b takes over */
    assert_int_equal(drv_queue_unlock(q, "j", "b"), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{j}:lock"), 0);
}

static void scripts_survive_an_emptied_script_cache(void **state) {
    (void)state;
    make_job("j", 1, 1, 1000, 3);
    char *ok = rstr("SCRIPT FLUSH");
    free(ok);
    drv_claim c;
    claim("j", 1, "w", &c);
    assert_int_equal(c.n, 1);
    claim_free(&c);
}

static void every_key_has_its_documented_type_and_one_hash_tag(void **state) {
    (void)state;
    make_job("j", 1, 4, 1000, 1);
    rint_("HSET drover:{j.0}:state payloads 1");
    drv_feed_item it = {"p", 1, "{}", 2};
    assert_int_equal(drv_queue_feed(q, "j", 0, "4", "5", 1, &it, 1, NULL), DRV_OK);
    drv_claim c;
    claim("j", 3, "w", &c);
    drv_ref r = ref_of(&c.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, NULL), DRV_OK);
    drv_failure f = failure(&c.items[1], 1, 0);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    make_job("k", 1, 1, 1000, 3);
    drv_claim d;
    claim("k", 1, "w", &d);
    drv_failure g = failure(&d.items[0], 0, 0);
    assert_int_equal(drv_queue_fail(q, "k", 0, &g, 1, NULL), DRV_OK);
    static const char *types[][2] = {
        {"drover:jobs", "zset"},         {"drover:{j}:job", "hash"},
        {"drover:{j.0}:state", "hash"},  {"drover:{j.0}:pending", "list"},
        {"drover:{j.0}:leased", "zset"}, {"drover:{j.0}:owner", "hash"},
        {"drover:{j.0}:done", "set"},    {"drover:{j.0}:tries", "hash"},
        {"drover:{j.0}:dead", "hash"},   {"drover:{j.0}:items", "hash"},
        {"drover:{k.0}:retry", "zset"},  {"drover:{k.0}:errors", "hash"},
    };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char *t = rstr("TYPE %s", types[i][0]);
        if (strcmp(t, types[i][1]) != 0)
            fail_msg("%s is %s, expected %s", types[i][0], t, types[i][1]);
        free(t);
    }
    /* Every partition key of a script call shares the tag {JOB.P}. */
    drv_part_keys k;
    drv_keys_part(&k, "drover:", "j", 0);
    for (int i = 0; i < DRV_PART_NKEYS; i++)
        assert_non_null(strstr(k.key[i], "{j.0}:"));
    assert_int_equal(rint_("CLUSTER KEYSLOT drover:{j.0}:state"),
                     rint_("CLUSTER KEYSLOT drover:{j.0}:items"));
    claim_free(&c);
    claim_free(&d);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(job_is_visible_only_once_complete_and_ids_are_unique),
        T(set_state_mirrors_into_every_partition),
        T(feed_appends_and_moves_the_cursor_atomically),
        T(feed_with_payloads_keeps_items_until_done),
        T(claim_leases_with_one_token_and_a_redis_time_deadline),
        T(claim_skips_items_already_done),
        T(claim_refuses_paused_cancelled_and_unknown_jobs),
        T(claim_takes_at_most_1000_a_call),
        T(an_expired_lease_is_handed_out_again_as_the_next_attempt),
        T(an_item_whose_leases_keep_expiring_ends_dead),
        T(ack_marks_done_and_clears_the_lease),
        T(a_late_ack_after_expiry_counts_a_duplicate_and_marks_done_once),
        T(an_ack_for_an_item_never_handed_out_is_ignored),
        T(a_late_ack_of_a_dead_item_brings_it_back_from_the_dead),
        T(a_failure_is_retried_after_a_capped_jittered_backoff),
        T(retry_after_is_a_floor_for_the_delay),
        T(a_permanent_failure_or_the_last_attempt_is_dead_at_once),
        T(a_failure_from_a_stale_lease_is_ignored),
        T(extend_moves_held_deadlines_and_reports_lost_leases),
        T(release_puts_items_back_in_front_without_an_attempt),
        T(reap_reports_sizes_and_recovers_expired_leases),
        T(revive_moves_dead_items_back_with_fresh_attempts),
        T(the_coordinator_lock_is_exclusive_renewable_and_expires),
        T(scripts_survive_an_emptied_script_cache),
        T(every_key_has_its_documented_type_and_one_hash_tag),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
