/* Invariant 4 of docs/ARCHITECTURE.md (one script, one hash tag), proven by Redis itself rather
 * than by reading the scripts: every script call runs as an ACL user that may touch only the keys
 * of one hash tag (touching a key outside it fails the call, from inside a script too), on a
 * redis-server in cluster mode owning every slot (KEYS spanning two slots fail with CROSSSLOT). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

/* Makes the node own every slot and waits until the cluster state is ok. Returns 0 or -1. */
static int own_every_slot(void) {
    redisReply *r = redisCommand(rc, "CLUSTER ADDSLOTSRANGE 0 16383");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    if (!ok) return -1;
    /* The node takes its slots at once, but the cluster state turns ok a moment later. */
    int64_t deadline = drv_now_ms() + POLL_MS;
    for (;;) {
        r = redisCommand(rc, "CLUSTER INFO");
        ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
        if (r) freeReplyObject(r);
        if (ok) return 0;
        if (drv_now_ms() > deadline) return -1;
        drv_sleep_ms(10);
    }
}

static int cluster_setup(void **state) {
    static const char *const extra[] = {"--cluster-enabled", "yes", "--cluster-config-file",
                                        "nodes.conf", NULL};
    if (drv_test_redis_start(&server, extra) != 0) return -1;
    drv_redis_cfg cfg;
    char why[256];
    rc = redisConnect("127.0.0.1", server.port);
    if (!rc || rc->err || own_every_slot() != 0 ||
        drv_url_parse(server.url, &cfg, why, sizeof why) != DRV_OK ||
        drv_queue_open(&cfg, "drover:", &q, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "could not set up a one-node cluster\n");
        group_teardown(state); /* cmocka skips the group teardown when setup fails */
        return -1;
    }
    return 0;
}

static void keys_of_two_slots_in_one_script_are_refused(void **state) {
    (void)state;
    redisReply *r =
        redisCommand(rc, "EVAL %s 2 %s %s", "return 1", "drover:{j.0}:state", "drover:{j.1}:state");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "CROSSSLOT"));
    freeReplyObject(r);
}

/* Opens a queue as a new ACL user allowed every command but only keys matching 'pattern'. */
static drv_queue *open_as(const char *user, const char *pattern) {
    redisReply *r = redisCommand(rc, "ACL SETUSER %s reset on >pw %s +@all", user, pattern);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    char url[160], why[256];
    snprintf(url, sizeof url, "redis://%s:pw@127.0.0.1:%d/0", user, server.port);
    drv_redis_cfg cfg;
    assert_int_equal(drv_url_parse(url, &cfg, why, sizeof why), DRV_OK);
    drv_queue *uq = NULL;
    if (drv_queue_open(&cfg, "drover:", &uq, why, sizeof why) != DRV_OK) fail_msg("%s", why);
    return uq;
}

static void expect_ok(drv_queue *uq, drv_err e, const char *what) {
    if (e != DRV_OK) fail_msg("%s: %s (%s)", what, drv_strerror(e), drv_queue_errstr(uq));
}

static void every_script_call_touches_only_keys_of_its_own_tag(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 2;
    o.lease_ms = 100;
    o.max_attempts = 2;
    o.payloads = 1;
    create_job("j", &o);
    /* The check works: a partition-1 user may not run partition 0's scripts. */
    drv_queue *p1 = open_as("part1", "~drover:{j.1}:*");
    drv_claim c;
    assert_int_equal(drv_queue_claim(p1, "j", 0, "w", 1, &c), DRV_EREPLY);
    assert_non_null(strstr(drv_queue_errstr(p1), "NOPERM"));
    drv_queue_close(p1);

    drv_queue *uq = open_as("part0", "~drover:{j.0}:*");
    /* ... and that includes keys a script touches without declaring them. */
    redisContext *raw = redisConnect("127.0.0.1", server.port);
    assert_true(raw && !raw->err);
    redisReply *rr = redisCommand(raw, "AUTH part0 pw");
    assert_int_equal(rr->type, REDIS_REPLY_STATUS);
    freeReplyObject(rr);
    rr = redisCommand(raw, "EVAL %s 1 %s", "return redis.call('EXISTS', 'drover:{j.1}:state')",
                      "drover:{j.0}:state");
    assert_int_equal(rr->type, REDIS_REPLY_ERROR);
    if (!strstr(rr->str, "can't access")) fail_msg("%s", rr->str);
    freeReplyObject(rr);
    redisFree(raw);
    drv_feed_item it[4] = {{"a", 1, "A", 1}, {"b", 1, "B", 1}, {"c", 1, "C", 1}, {"d", 1, "D", 1}};
    expect_ok(uq, drv_queue_feed(uq, "j", 0, "0", "4", 1, it, 4, NULL), "feed");
    mark_done("j", 0, "d"); /* so claim's skip path runs too */
    expect_ok(uq, drv_queue_claim(uq, "j", 0, "w", 4, &c), "claim");
    assert_int_equal(c.n, 3);
    drv_ref r[3];
    for (int i = 0; i < 3; i++)
        r[i] = ref_of(&c.items[i]);
    int64_t n;
    expect_ok(uq, drv_queue_extend(uq, "j", 0, r, 3, &n), "extend");
    drv_ack_result a;
    expect_ok(uq, drv_queue_ack(uq, "j", 0, &r[0], 1, &a), "ack");
    expect_ok(uq, drv_queue_ack(uq, "j", 0, &r[0], 1, &a), "ack again");
    drv_failure f[2] = {failure_of(&c.items[1], 1, 0, "{}"), failure_of(&c.items[2], 0, 0, "{}")};
    expect_ok(uq, drv_queue_fail(uq, "j", 0, f, 2, NULL), "fail");
    /* b dead, c retrying: wait for the retry, lease it, let the lease expire, recover it. */
    drv_claim d;
    int64_t deadline = drv_now_ms() + POLL_MS;
    for (;;) {
        expect_ok(uq, drv_queue_claim(uq, "j", 0, "w", 1, &d), "claim retry");
        if (d.n) break;
        claim_free(&d);
        if (drv_now_ms() > deadline) fail_msg("the retry did not come due");
        drv_sleep_ms(10);
    }
    drv_ref rd = ref_of(&d.items[0]);
    expect_ok(uq, drv_queue_release(uq, "j", 0, &rd, 1, &n), "release");
    claim_free(&d);
    expect_ok(uq, drv_queue_claim(uq, "j", 0, "w", 1, &d), "claim again");
    assert_int_equal(d.n, 1);
    rd = ref_of(&d.items[0]);
    drv_part_stat st;
    deadline = drv_now_ms() + POLL_MS;
    for (;;) {
        expect_ok(uq, drv_queue_reap(uq, "j", 0, &st), "reap");
        if (st.dead == 2) break; /* c's last lease expired too */
        if (drv_now_ms() > deadline) fail_msg("the lease did not expire");
        drv_sleep_ms(10);
    }
    expect_ok(uq, drv_queue_ack(uq, "j", 0, &rd, 1, &a), "late ack of a dead item");
    expect_ok(uq, drv_queue_revive(uq, "j", 0, &n), "revive");
    assert_int_equal(n, 1);
    expect_ok(uq, drv_queue_stats(uq, "j", 1, &st), "stats");
    drv_queue_close(uq);
    claim_free(&c);
    claim_free(&d);

    /* The lock scripts keep to the job's own tag. */
    drv_queue *lq = open_as("coord", "~drover:{j}:*");
    int held = 0;
    expect_ok(lq, drv_queue_lock(lq, "j", "coord", 10000, &held), "lock");
    assert_true(held);
    expect_ok(lq, drv_queue_unlock(lq, "j", "coord"), "unlock");

    /* The three steps of a split keep to one tag each: the new partition's, the source
     * partition's, the job's. */
    rint_("HSET drover:{j.1}:state start 1 end 1000 cursor 1 exhausted 0");
    drv_queue *nq = open_as("part2", "~drover:{j.2}:*");
    drv_spec sp = spec_of("j", &o);
    expect_ok(nq, drv_queue_split_new(nq, &sp, 1, 2, 500, 1000, "running"), "split_new");
    drv_queue_close(nq);
    drv_queue *sq = open_as("part1b", "~drover:{j.1}:*");
    expect_ok(sq, drv_queue_split_cut(sq, "j", 1, 1000, 500, NULL), "split_cut");
    drv_queue_close(sq);
    expect_ok(lq, drv_queue_split_grow(lq, "j", 2), "split_grow");
    /* So does admit.lua, on the job's limits hash. */
    drv_admit ad;
    expect_ok(lq, drv_queue_admit(lq, "j", "w", 1, 0, 0, &ad), "admit");
    expect_ok(lq, drv_queue_admit(lq, "j", "w", 0, 0, 1, &ad), "admit refund");
    /* So does mark.lua (a callback's sent mark). */
    int64_t created = rint_("HGET drover:{j}:job created_ms"), mark = 0;
    expect_ok(lq, drv_queue_job_mark(lq, "j", created, "complete_sent", &mark), "mark");
    assert_true(mark > 0);
    drv_queue_close(lq);
}

static void the_whole_queue_api_runs_on_a_cluster_node(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 3;
    o.lease_ms = 100;
    o.max_attempts = 2;
    o.payloads = 1;
    create_job("j", &o);
    drv_feed_item it[4] = {{"a", 1, "A", 1}, {"b", 1, "B", 1}, {"c", 1, "C", 1}, {"d", 1, "D", 1}};
    for (int p = 0; p < 3; p++)
        assert_int_equal(drv_queue_feed(q, "j", p, "0", "4", 1, it, 4, NULL), DRV_OK);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    int held = 0;
    assert_int_equal(drv_queue_lock(q, "j", "coord", 10000, &held), DRV_OK);
    assert_true(held);

    for (int p = 0; p < 3; p++) {
        drv_claim c;
        assert_int_equal(drv_queue_claim(q, "j", p, "w", 4, &c), DRV_OK);
        assert_int_equal(c.n, 4);
        drv_ref r[4];
        for (int i = 0; i < 4; i++)
            r[i] = ref_of(&c.items[i]);
        int64_t n;
        assert_int_equal(drv_queue_extend(q, "j", p, r, 4, &n), DRV_OK);
        assert_int_equal(n, 0);
        drv_ack_result a;
        assert_int_equal(drv_queue_ack(q, "j", p, &r[0], 1, &a), DRV_OK);
        assert_int_equal(a.acked, 1);
        drv_failure f[2] = {failure_of(&c.items[1], 1, 0, "{}"),
                            failure_of(&c.items[2], 0, 0, "{}")};
        drv_fail_result fr;
        assert_int_equal(drv_queue_fail(q, "j", p, f, 2, &fr), DRV_OK);
        assert_int_equal(fr.dead + fr.retrying, 2);
        assert_int_equal(drv_queue_release(q, "j", p, &r[3], 1, &n), DRV_OK);
        assert_int_equal(n, 1);
        /* Let a lease expire and be recovered by claim, then by reap. */
        drv_claim d;
        assert_int_equal(drv_queue_claim(q, "j", p, "w", 1, &d), DRV_OK);
        drv_part_stat st;
        int64_t deadline = drv_now_ms() + POLL_MS;
        do {
            assert_int_equal(drv_queue_reap(q, "j", p, &st), DRV_OK);
            if (st.leased == 0 && st.retrying == 0) break;
            drv_sleep_ms(10);
        } while (drv_now_ms() < deadline);
        assert_int_equal(st.leased + st.retrying, 0);
        int64_t revived = 0;
        assert_int_equal(drv_queue_revive(q, "j", p, &revived), DRV_OK);
        assert_true(revived >= 1);
        claim_free(&c);
        claim_free(&d);
    }
    drv_part_stat st[3];
    assert_int_equal(drv_queue_stats(q, "j", 3, st), DRV_OK);
    assert_int_equal(drv_queue_job_set_state(q, &j, "cancelled"), DRV_OK);
    assert_int_equal(drv_queue_unlock(q, "j", "coord"), DRV_OK);
    drv_admit ad;
    assert_int_equal(drv_queue_admit(q, "j", "w", 3, 0, 0, &ad), DRV_OK);
    assert_int_equal(ad.granted, 3);
    assert_int_equal(drv_queue_job_delete(q, "j"), DRV_OK);
    assert_int_equal(rint_("DBSIZE"), 0);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(keys_of_two_slots_in_one_script_are_refused),
        T(every_script_call_touches_only_keys_of_its_own_tag),
        T(the_whole_queue_api_runs_on_a_cluster_node),
    };
    return cmocka_run_group_tests(tests, cluster_setup, group_teardown);
}
