/* What the coordinator's callbacks and ttl_after_done rely on, against a real redis-server:
 * mark.lua (the "sent" marks), the expiry of a finished job's keys, the lazy removal of an
 * expired job's entry in jobs, and the first dead items for a callback's summary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

static const char *const ERR = "{\"error\":\"exit status 3\"}";

/* Dead-letters n items of job "j" (created with max_attempts 1, items pending in partition 0). */
static void kill_items(int n) {
    while (n > 0) {
        drv_claim c;
        claim("j", n, "w", &c);
        assert_true(c.n > 0);
        drv_failure *f = calloc(c.n, sizeof *f);
        assert_non_null(f);
        for (size_t i = 0; i < c.n; i++)
            f[i] = failure_of(&c.items[i], 0, 0, ERR);
        assert_int_equal(drv_queue_fail(q, "j", 0, f, c.n, NULL), DRV_OK);
        n -= (int)c.n;
        free(f);
        claim_free(&c);
    }
}

/* ---- mark.lua -------------------------------------------------------------------------------- */

static void mark_sets_the_field_once_to_redis_time(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_int_equal(j.complete_sent, 0);
    assert_int_equal(j.dead_alert_sent, 0);
    int64_t before = redis_now(), m = -1;
    assert_int_equal(drv_queue_job_mark(q, "j", j.created_ms, "complete_sent", &m), DRV_OK);
    int64_t after = redis_now();
    assert_in_range(m, before, after);
    assert_int_equal(rint_("HGET drover:{j}:job complete_sent"), m);
    /* A second mark (a coordinator that sent it again) keeps the first. */
    wait_redis_past(after);
    int64_t again = -1;
    assert_int_equal(drv_queue_job_mark(q, "j", j.created_ms, "complete_sent", &again), DRV_OK);
    assert_int_equal(again, m);
    assert_int_equal(drv_queue_job_mark(q, "j", j.created_ms, "dead_alert_sent", &again), DRV_OK);
    assert_true(again > m);
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_int_equal(j.complete_sent, m);
    assert_int_equal(j.dead_alert_sent, again);
}

static void mark_leaves_a_replaced_or_deleted_job_alone(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    int64_t m = -1;
    /* Another created_ms: the job was replaced (submit --replace) while the POST was out. */
    assert_int_equal(drv_queue_job_mark(q, "j", j.created_ms - 1, "complete_sent", &m), DRV_OK);
    assert_int_equal(m, 0);
    assert_rstr(NULL, "HGET drover:{j}:job complete_sent");
    /* Purged meanwhile: no job hash is made up. */
    assert_int_equal(drv_queue_job_delete(q, "j"), DRV_OK);
    m = -1;
    assert_int_equal(drv_queue_job_mark(q, "j", j.created_ms, "complete_sent", &m), DRV_OK);
    assert_int_equal(m, 0);
    assert_int_equal(rint_("EXISTS drover:{j}:job"), 0);
}

/* ---- expiry ---------------------------------------------------------------------------------- */

static void expire_gives_every_key_of_the_job_a_ttl_and_notes_when(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 3;
    o.max_attempts = 1;
    create_job("j", &o);
    create_job("other", &o);
    feed_range("j", 0, 1, 20);
    feed_range("j", 2, 21, 30);
    kill_items(4);
    drv_claim c;
    claim("j", 5, "w", &c);
    drv_ref refs[5];
    for (size_t i = 0; i < c.n; i++)
        refs[i] = ref_of(&c.items[i]);
    assert_int_equal(drv_queue_ack(q, "j", 0, refs, c.n, NULL), DRV_OK);
    claim_free(&c);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    int64_t before = redis_now(), at = 0;
    assert_int_equal(drv_queue_job_expire(q, &j, 60000, &at), DRV_OK);
    int64_t after = redis_now();
    assert_in_range(at, before + 60000, after + 60000);
    assert_int_equal(rint_("HGET drover:{j}:job expires_ms"), at);
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_int_equal(j.expires_ms, at);

    /* Every key under the job's tags now has a TTL of at most a minute; other jobs' none. */
    redisReply *r = redisCommand(rc, "KEYS drover:{*");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int seen = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const char *k = r->element[i]->str;
        long long ttl = rint_("PTTL %s", k);
        if (strncmp(k, "drover:{j}", 10) == 0 || strncmp(k, "drover:{j.", 10) == 0) {
            if (ttl <= 0 || ttl > 60000) fail_msg("%s: PTTL %lld", k, ttl);
            seen++;
        } else if (ttl != -1) {
            fail_msg("%s (another job) got PTTL %lld", k, ttl);
        }
    }
    freeReplyObject(r);
    /* job hash, 3 states, pending of 0 and 2, leased/owner/tries... of 0, done, dead */
    assert_true(seen >= 8);
}

static void a_listed_job_whose_hash_expired_is_unlisted_when_read(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    create_job("k", &o);
    rint_("DEL drover:{j}:job"); /* what its TTL does */
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_ENOJOB);
    assert_rstr(NULL, "ZSCORE drover:jobs j");
    assert_int_equal(drv_queue_job_get(q, "k", &j), DRV_OK);
    assert_true(rint_("ZSCORE drover:jobs k") > 0);
    /* An id can be submitted again once its hash is gone, read or not. */
    create_job("j", &o);
    rint_("DEL drover:{k}:job");
    create_job("k", &o);
    assert_int_equal(drv_queue_job_get(q, "k", &j), DRV_OK);
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
}

/* ---- the first dead items -------------------------------------------------------------------- */

typedef struct seen_dead {
    int n;
    char ids[64][16];
} seen_dead;

static void on_dead(const char *id, size_t idlen, const char *err, size_t errlen, void *ud) {
    seen_dead *s = ud;
    assert_true(s->n < 64);
    assert_int_equal(errlen, strlen(ERR));
    assert_memory_equal(err, ERR, errlen);
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%.*s", (int)idlen, id);
}

static void dead_first_gives_at_most_max_dead_items_with_their_errors(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 2;
    o.max_attempts = 1;
    create_job("j", &o);
    feed_range("j", 0, 1, 15);
    kill_items(15);
    seen_dead s = {0};
    assert_int_equal(drv_queue_dead_first(q, "j", 2, 10, on_dead, &s), DRV_OK);
    assert_int_equal(s.n, 10);
    for (int i = 0; i < s.n; i++) {
        int id = atoi(s.ids[i]);
        assert_in_range(id, 1, 15);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(s.ids[k], s.ids[i]);
    }
    memset(&s, 0, sizeof s);
    assert_int_equal(drv_queue_dead_first(q, "j", 2, 50, on_dead, &s), DRV_OK);
    assert_int_equal(s.n, 15);
    memset(&s, 0, sizeof s);
    assert_int_equal(drv_queue_dead_first(q, "nojob", 2, 10, on_dead, &s), DRV_OK);
    assert_int_equal(s.n, 0);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(mark_sets_the_field_once_to_redis_time),
        T(mark_leaves_a_replaced_or_deleted_job_alone),
        T(expire_gives_every_key_of_the_job_a_ttl_and_notes_when),
        T(a_listed_job_whose_hash_expired_is_unlisted_when_read),
        T(dead_first_gives_at_most_max_dead_items_with_their_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
