/* The coordinator's and operators' scripts (reap.lua, revive.lua, lock.lua, unlock.lua), the
 * script cache fallback, and the key layout, against a real redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts.h"
#include "scripts_support.h"

static const char *const ERR = "{\"error\":\"exit status 3\"}";

/* Dead-letters items 1..n of job "j" (created with max_attempts 1) by failing them. */
static void kill_items(int n) {
    while (n > 0) {
        drv_claim c;
        claim("j", n, "w", &c);
        assert_true(c.n > 0);
        drv_failure *f = calloc(c.n, sizeof *f);
        assert_non_null(f);
        for (size_t i = 0; i < c.n; i++)
            f[i] = failure_of(&c.items[i], 0, 0, ERR);
        drv_fail_result res;
        assert_int_equal(drv_queue_fail(q, "j", 0, f, c.n, &res), DRV_OK);
        assert_int_equal(res.dead, (int64_t)c.n);
        n -= (int)c.n;
        free(f);
        claim_free(&c);
    }
}

/* ---- reap ------------------------------------------------------------------------------------ */

static void reap_reports_every_size_of_the_partition_in_one_step(void **state) {
    (void)state;
    jobopt o = defaults();
    o.max_attempts = 1;
    o.backoff_ms = 60000;
    o.backoff_max_ms = 60000;
    job_with_items("j", &o, 10);
    drv_claim c;
    claim("j", 6, "w", &c); /* 4 pending, 6 leased */
    drv_failure f[2] = {failure_of(&c.items[0], 1, 0, ERR), failure_of(&c.items[1], 1, 0, ERR)};
    assert_int_equal(drv_queue_fail(q, "j", 0, f, 2, NULL), DRV_OK); /* 2 dead */
    rint_("HSET drover:{j.0}:state max_attempts 5");
    drv_failure g = failure_of(&c.items[2], 0, 60000, ERR);
    assert_int_equal(drv_queue_fail(q, "j", 0, &g, 1, NULL), DRV_OK); /* 1 retrying */
    drv_part_stat st;
    memset(&st, 0xff, sizeof st);
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.pending, 4);
    assert_int_equal(st.leased, 3);
    assert_int_equal(st.retrying, 1);
    assert_int_equal(st.dead, 2);
    assert_int_equal(st.recovered, 0);
    assert_false(st.exhausted);
    assert_int_equal(drv_queue_feed(q, "j", 0, "10", "10", 1, NULL, 0, NULL), DRV_OK);
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_true(st.exhausted);
    /* drv_queue_stats reads the same sizes and the counters, without changing anything. */
    drv_part_stat all;
    assert_int_equal(drv_queue_stats(q, "j", 1, &all), DRV_OK);
    assert_string_equal(all.state, "running");
    assert_int_equal(all.pending, 4);
    assert_int_equal(all.leased, 3);
    assert_int_equal(all.retrying, 1);
    assert_int_equal(all.dead, 2);
    assert_int_equal(all.fed, 10);
    assert_int_equal(all.failed, 3);
    claim_free(&c);
}

static void reap_recovers_expired_leases_when_no_worker_claims(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 3);
    drv_claim c;
    claim("j", 2, "gone", &c);
    drv_part_stat st;
    int64_t recovered = 0;
    int64_t deadline = drv_now_ms() + POLL_MS;
    for (;;) {
        assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
        recovered += st.recovered;
        if (st.leased == 0) break;
        if (drv_now_ms() > deadline) fail_msg("leases not recovered within %d ms", POLL_MS);
        drv_sleep_ms(10);
    }
    assert_int_equal(recovered, 2);
    assert_int_equal(st.pending, 3);
    assert_int_equal(counter("j", 0, "expired"), 2);
    assert_int_equal(rint_("EXISTS drover:{j.0}:owner"), 0);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 1); /* the delivery still counts */
    claim_free(&c);
}

static void reap_recovers_more_than_1000_expired_leases_over_several_calls(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 1500);
    drv_claim a, b;
    claim("j", 1000, "gone", &a);
    claim("j", 1000, "gone", &b);
    assert_int_equal(a.n + b.n, 1500);
    claim_free(&a);
    claim_free(&b);
    wait_redis_past(redis_now() + 100); /* every lease has expired now */
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.recovered, 1000); /* one call does at most 1000 */
    assert_int_equal(st.leased, 500);
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.recovered, 500);
    assert_int_equal(st.leased, 0);
    assert_int_equal(st.pending, 1500);
    assert_int_equal(counter("j", 0, "expired"), 1500);
}

static void reap_moves_due_retries_back_to_pending(void **state) {
    (void)state;
    jobopt o = defaults(); /* backoff 100, cap 400 */
    job_with_items("j", &o, 1);
    drv_claim c;
    claim("j", 1, "w", &c);
    drv_failure f = failure_of(&c.items[0], 0, 0, ERR);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    drv_part_stat st;
    int64_t deadline = drv_now_ms() + POLL_MS;
    for (;;) {
        assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
        if (st.retrying == 0) break;
        if (drv_now_ms() > deadline) fail_msg("retry not due within %d ms", POLL_MS);
        drv_sleep_ms(10);
    }
    assert_int_equal(st.recovered, 1);
    assert_int_equal(st.pending, 1);
    assert_rstr(ERR, "HGET drover:{j.0}:errors 1"); /* still says why, until done */
    claim_free(&c);
}

static void reap_leaves_a_cancelled_partition_alone(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 1);
    drv_claim c;
    claim("j", 1, "w", &c);
    rint_("HSET drover:{j.0}:state state cancelled");
    wait_redis_past(c.deadline_ms);
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.recovered, 0);
    assert_int_equal(st.leased, 1);
    assert_int_equal(st.pending, 0);
    claim_free(&c);
}

static void reap_of_an_unknown_job_is_enojob(void **state) {
    (void)state;
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "nope", 0, &st), DRV_ENOJOB);
    jobopt o = defaults();
    create_job("j", &o);
    assert_int_equal(drv_queue_reap(q, "j", 1, &st), DRV_ENOJOB);
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
}

/* ---- revive and dead items ------------------------------------------------------------------- */

struct seen {
    int n;
    char ids[8][8];
    char errs[8][64];
};

static void collect(const char *id, size_t idlen, const char *err, size_t errlen, void *ud) {
    struct seen *s = ud;
    assert_true(s->n < 8);
    snprintf(s->ids[s->n], sizeof s->ids[s->n], "%.*s", (int)idlen, id);
    snprintf(s->errs[s->n], sizeof s->errs[s->n], "%.*s", (int)errlen, err);
    s->n++;
}

static void dead_each_lists_every_dead_item_with_its_error(void **state) {
    (void)state;
    jobopt o = defaults();
    o.max_attempts = 1;
    job_with_items("j", &o, 3);
    kill_items(3);
    struct seen s = {0};
    assert_int_equal(drv_queue_dead_each(q, "j", 0, collect, &s), DRV_OK);
    assert_int_equal(s.n, 3);
    int mask = 0;
    for (int i = 0; i < 3; i++) {
        mask |= 1 << atoi(s.ids[i]);
        assert_string_equal(s.errs[i], ERR);
    }
    assert_int_equal(mask, 0xe);
}

static void revive_moves_dead_items_back_with_fresh_attempts(void **state) {
    (void)state;
    jobopt o = defaults();
    o.max_attempts = 1;
    job_with_items("j", &o, 3);
    kill_items(3);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_int_equal(drv_queue_job_set_state(q, &j, "done"), DRV_OK);
    int64_t n = -1;
    assert_int_equal(drv_queue_revive(q, "j", 0, &n), DRV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(rint_("EXISTS drover:{j.0}:dead drover:{j.0}:tries"), 0);
    assert_int_equal(counter("j", 0, "dead"), 0);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 3);
    /* The partition was done; with work again it runs. */
    assert_rstr("running", "HGET drover:{j.0}:state state");
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 3);
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(c.items[i].attempt, 1);
    claim_free(&c);
    /* Nothing dead: nothing to do, and a done partition stays done. */
    rint_("HSET drover:{j.0}:state state done");
    assert_int_equal(drv_queue_revive(q, "j", 0, &n), DRV_OK);
    assert_int_equal(n, 0);
    assert_rstr("done", "HGET drover:{j.0}:state state");
}

static void revive_of_an_unknown_job_is_enojob_or_nothing(void **state) {
    (void)state;
    int64_t n = -1;
    assert_int_equal(drv_queue_revive(q, "nope", 0, &n), DRV_OK); /* no dead hash: nothing */
    assert_int_equal(n, 0);
    /* A dead hash left without its partition (a half-deleted job): the script refuses. */
    rint_("HSET drover:{ghost.0}:dead 1 {}");
    n = -1;
    assert_int_equal(drv_queue_revive(q, "ghost", 0, &n), DRV_ENOJOB);
    assert_int_equal(n, -1); /* untouched on failure */
    assert_int_equal(rint_("EXISTS drover:{ghost.0}:pending"), 0);
}

static void revive_handles_more_dead_items_than_one_script_call(void **state) {
    (void)state;
    jobopt o = defaults();
    o.max_attempts = 1;
    job_with_items("j", &o, 1200);
    kill_items(1200);
    assert_int_equal(counter("j", 0, "dead"), 1200);
    int64_t n = 0;
    assert_int_equal(drv_queue_revive(q, "j", 0, &n), DRV_OK);
    assert_int_equal(n, 1200);
    assert_int_equal(counter("j", 0, "dead"), 0);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 1200);
    assert_int_equal(rint_("HLEN drover:{j.0}:dead"), 0);
}

/* Runs lua/NAME.lua (with its includes) by EVAL on the partition keys of job j, partition p,
 * as a hand-written redis-cli call would. Caller frees the reply. */
static redisReply *eval_part(const char *name, const char *job, int p, int nargs,
                             const char *const *args) {
    const drv_script_src *src = NULL;
    for (int i = 0; drv_script_sources[i].name; i++)
        if (strcmp(drv_script_sources[i].name, name) == 0) src = &drv_script_sources[i];
    assert_non_null(src);
    drv_part_keys k;
    drv_keys_part(&k, "drover:", job, p);
    const char *argv[3 + DRV_PART_NKEYS + 16];
    size_t lens[3 + DRV_PART_NKEYS + 16];
    assert_true(nargs <= 16);
    int argc = 0;
    char nk[8];
    snprintf(nk, sizeof nk, "%d", DRV_PART_NKEYS);
    argv[argc] = "EVAL", lens[argc++] = 4;
    argv[argc] = src->src, lens[argc++] = src->len;
    argv[argc] = nk, lens[argc++] = strlen(nk);
    for (int i = 0; i < DRV_PART_NKEYS; i++)
        argv[argc] = k.ptr[i], lens[argc++] = k.len[i];
    for (int i = 0; i < nargs; i++)
        argv[argc] = args[i], lens[argc++] = strlen(args[i]);
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    assert_non_null(r);
    return r;
}

static void revive_skips_ids_that_are_not_dead(void **state) {
    (void)state;
    jobopt o = defaults();
    o.max_attempts = 1;
    job_with_items("j", &o, 3);
    kill_items(1); /* item 1 dead; 2 and 3 pending */
    const char *ids[] = {"2", "1", "nope", "1"};
    redisReply *r = eval_part("revive", "j", 0, 4, ids);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_rlist("2,3,1", "LRANGE drover:{j.0}:pending 0 -1");
    assert_int_equal(counter("j", 0, "dead"), 0);
    r = eval_part("revive", "nope", 0, 1, ids);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_int_equal(strncmp(r->str, "DRV_NOJOB ", 10), 0);
    freeReplyObject(r);
}

static void scripts_given_no_items_change_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 1);
    long long size = rint_("DBSIZE");
    redisReply *r = eval_part("ack", "j", 0, 0, NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_int_equal(r->element[0]->integer + r->element[1]->integer + r->element[2]->integer, 0);
    freeReplyObject(r);
    r = eval_part("extend", "j", 0, 0, NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1); /* just the deadline */
    freeReplyObject(r);
    r = eval_part("release", "j", 0, 0, NULL);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = eval_part("fail", "j", 0, 0, NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 4); /* retrying, dead, stale, throttled */
    freeReplyObject(r);
    r = eval_part("revive", "j", 0, 0, NULL);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(rint_("DBSIZE"), size);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 1);
}

/* ---- the coordinator lock -------------------------------------------------------------------- */

static void the_lock_is_exclusive_between_two_owners(void **state) {
    (void)state;
    int held = -1;
    assert_int_equal(drv_queue_lock(q, "j", "coord-a", 10000, &held), DRV_OK);
    assert_true(held);
    assert_rstr("coord-a", "GET drover:{j}:lock");
    assert_int_equal(drv_queue_lock(q, "j", "coord-b", 10000, &held), DRV_OK);
    assert_false(held);
    assert_rstr("coord-a", "GET drover:{j}:lock");
    /* Locks of different jobs are independent. */
    assert_int_equal(drv_queue_lock(q, "k", "coord-b", 10000, &held), DRV_OK);
    assert_true(held);
}

static void the_holder_renews_the_lock(void **state) {
    (void)state;
    int held = 0;
    assert_int_equal(drv_queue_lock(q, "j", "coord-a", 1000, &held), DRV_OK);
    assert_true(rint_("PTTL drover:{j}:lock") <= 1000);
    assert_int_equal(drv_queue_lock(q, "j", "coord-a", 60000, &held), DRV_OK);
    assert_true(held);
    assert_true(rint_("PTTL drover:{j}:lock") > 1000);
}

static void an_expired_lock_can_be_taken_by_another_owner(void **state) {
    (void)state;
    int held = 0;
    assert_int_equal(drv_queue_lock(q, "j", "coord-a", 100, &held), DRV_OK);
    assert_true(held);
    int64_t deadline = drv_now_ms() + POLL_MS;
    for (;;) {
        assert_int_equal(drv_queue_lock(q, "j", "coord-b", 10000, &held), DRV_OK);
        if (held) break;
        if (drv_now_ms() > deadline) fail_msg("the lock did not expire within %d ms", POLL_MS);
        drv_sleep_ms(10);
    }
    assert_rstr("coord-b", "GET drover:{j}:lock");
    /* The old holder does not get it back by renewing. */
    assert_int_equal(drv_queue_lock(q, "j", "coord-a", 10000, &held), DRV_OK);
    assert_false(held);
}

static void unlock_by_a_non_holder_does_nothing(void **state) {
    (void)state;
    int held = 0;
    assert_int_equal(drv_queue_lock(q, "j", "coord-a", 10000, &held), DRV_OK);
    assert_int_equal(drv_queue_unlock(q, "j", "coord-b"), DRV_OK);
    assert_rstr("coord-a", "GET drover:{j}:lock");
    assert_true(rint_("PTTL drover:{j}:lock") > 0);
    assert_int_equal(drv_queue_unlock(q, "j", "coord-a"), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{j}:lock"), 0);
    assert_int_equal(drv_queue_unlock(q, "j", "coord-a"), DRV_OK); /* twice is fine */
    assert_int_equal(drv_queue_lock(q, "j", "coord-b", 10000, &held), DRV_OK);
    assert_true(held);
}

/* ---- the script cache ------------------------------------------------------------------------ */

static void every_script_runs_again_after_the_script_cache_is_flushed(void **state) {
    (void)state;
    jobopt o = defaults();
    o.max_attempts = 1;
    job_with_items("j", &o, 4);
    free(rstr("SCRIPT FLUSH"));
    drv_claim c;
    claim("j", 4, "w", &c); /* the brief's case: claim reloads its script */
    assert_int_equal(c.n, 4);
    free(rstr("SCRIPT FLUSH"));
    drv_feed_item it = {"5", 1, NULL, 0};
    assert_int_equal(drv_queue_feed(q, "j", 0, "4", "5", 1, &it, 1, NULL), DRV_OK);
    free(rstr("SCRIPT FLUSH"));
    drv_ref r[4];
    for (int i = 0; i < 4; i++)
        r[i] = ref_of(&c.items[i]);
    int64_t n = 0;
    assert_int_equal(drv_queue_extend(q, "j", 0, r, 4, &n), DRV_OK);
    free(rstr("SCRIPT FLUSH"));
    drv_ack_result a;
    assert_int_equal(drv_queue_ack(q, "j", 0, &r[0], 1, &a), DRV_OK);
    assert_int_equal(a.acked, 1);
    free(rstr("SCRIPT FLUSH"));
    drv_failure f = failure_of(&c.items[1], 0, 0, ERR);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    free(rstr("SCRIPT FLUSH"));
    assert_int_equal(drv_queue_release(q, "j", 0, &r[2], 1, &n), DRV_OK);
    assert_int_equal(n, 1);
    free(rstr("SCRIPT FLUSH"));
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    free(rstr("SCRIPT FLUSH"));
    assert_int_equal(drv_queue_revive(q, "j", 0, &n), DRV_OK);
    assert_int_equal(n, 1);
    free(rstr("SCRIPT FLUSH"));
    int held = 0;
    assert_int_equal(drv_queue_lock(q, "j", "a", 1000, &held), DRV_OK);
    assert_true(held);
    free(rstr("SCRIPT FLUSH"));
    assert_int_equal(drv_queue_unlock(q, "j", "a"), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{j}:lock"), 0);
    claim_free(&c);
}

static void a_key_of_the_wrong_type_is_ecorrupt_naming_it(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 1);
    /* A partition key of the wrong type: the script refuses it, naming the key. */
    rint_("DEL drover:{j.0}:pending");
    rint_("SET drover:{j.0}:pending oops");
    drv_claim c;
    assert_int_equal(drv_queue_claim(q, "j", 0, "w", 1, &c), DRV_ECORRUPT);
    assert_non_null(strstr(drv_queue_errstr(q), "DRV_CORRUPT drover:{j.0}:pending: WRONGTYPE"));
    assert_false(drv_queue_broken(q)); /* the connection is fine */
    rint_("DEL drover:{j.0}:pending");
    claim("j", 1, "w", &c);
    assert_int_equal(c.n, 0);
    claim_free(&c);
}

/* ---- the key layout -------------------------------------------------------------------------- */

/* The part of 'key' Redis Cluster hashes (cluster.c keyHashSlot): what lies between the first
 * '{' and the first '}' after it, if that is not empty; else the whole key. */
static void hash_tag(const char *key, char *out, size_t len) {
    const char *open = strchr(key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (!open || !close || close == open + 1)
        snprintf(out, len, "%s", key);
    else
        snprintf(out, len, "%.*s", (int)(close - open - 1), open + 1);
}

static void every_partition_key_shares_one_hash_tag(void **state) {
    (void)state;
    static const char *const jobs[] = {"j", "job_with-dashes", "0123456789"};
    for (size_t jx = 0; jx < 3; jx++) {
        for (int p = 0; p < 3; p++) {
            drv_part_keys k;
            drv_keys_part(&k, "drover:", jobs[jx], p);
            char tag[96];
            snprintf(tag, sizeof tag, "%s.%d", jobs[jx], p);
            for (int i = 0; i < DRV_PART_NKEYS; i++) {
                char want[DRV_KEY_MAX], got[DRV_KEY_MAX];
                snprintf(want, sizeof want, "drover:{%s}:%s", tag, drv_part_key_names[i]);
                assert_string_equal(k.key[i], want);
                assert_int_equal(k.len[i], strlen(want));
                assert_ptr_equal(k.ptr[i], k.key[i]);
                hash_tag(k.key[i], got, sizeof got);
                assert_string_equal(got, tag);
            }
        }
    }
    /* The order the scripts take them in (common/shared.def). */
    static const char *const order[DRV_PART_NKEYS] = {
        "state", "pending", "leased", "owner", "done",    "tries",
        "retry", "dead",    "errors", "items", "results",
    };
    for (int i = 0; i < DRV_PART_NKEYS; i++)
        assert_string_equal(drv_part_key_names[i], order[i]);
    /* The lock script's key carries the job's tag. */
    char lk[DRV_KEY_MAX];
    drv_key_job(lk, sizeof lk, "drover:", "j", "lock");
    assert_string_equal(lk, "drover:{j}:lock");
    /* Every key of a worked job either is global or carries the job's or a partition's tag. */
    jobopt o = defaults();
    o.parts = 2;
    o.max_attempts = 1;
    create_job("j", &o);
    feed_range("j", 0, 1, 3);
    feed_range("j", 1, 1, 3);
    drv_claim c;
    claim("j", 3, "w", &c);
    drv_ref r = ref_of(&c.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, NULL), DRV_OK);
    drv_failure f = failure_of(&c.items[1], 0, 0, ERR);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    int held;
    assert_int_equal(drv_queue_lock(q, "j", "a", 10000, &held), DRV_OK);
    redisReply *keys = redisCommand(rc, "KEYS *");
    assert_non_null(keys);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *key = keys->element[i]->str;
        char tag[DRV_KEY_MAX];
        hash_tag(key, tag, sizeof tag);
        if (strcmp(key, "drover:jobs") != 0 && strcmp(tag, "j") != 0 && strcmp(tag, "j.0") != 0 &&
            strcmp(tag, "j.1") != 0)
            fail_msg("key %s has no tag of job j", key);
    }
    freeReplyObject(keys);
    claim_free(&c);
}

static void every_key_has_its_documented_type(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    o.max_attempts = 2;
    o.payloads = 1;
    create_job("j", &o);
    drv_feed_item it[5] = {
        {"a", 1, "A", 1}, {"b", 1, "B", 1}, {"c", 1, "C", 1}, {"d", 1, "D", 1}, {"e", 1, "E", 1}};
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "5", 1, it, 5, NULL), DRV_OK);
    drv_claim c;
    claim("j", 3, "w", &c); /* a, b, c leased; d, e pending */
    drv_ref r = ref_of(&c.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, NULL), DRV_OK); /* done */
    drv_failure f[2] = {failure_of(&c.items[1], 1, 0, ERR), failure_of(&c.items[2], 0, 60000, ERR)};
    rint_("HSET drover:{j.0}:state backoff_max_ms 60000");
    assert_int_equal(drv_queue_fail(q, "j", 0, f, 2, NULL), DRV_OK); /* b dead, c retrying */
    drv_claim d;
    claim("j", 1, "w", &d); /* d leased with an owner and tries */
    int held;
    assert_int_equal(drv_queue_lock(q, "j", "coord", 10000, &held), DRV_OK);
    drv_worker_info wi = {.id = "w", .state = "running", .lease_ms = 1000};
    assert_int_equal(drv_queue_heartbeat(q, &wi, NULL, NULL), DRV_OK);
    static const char *const types[][2] = {
        {"drover:jobs", "zset"},          {"drover:{workers}", "zset"},
        {"drover:{workers}:w", "hash"},   {"drover:{j}:job", "hash"},
        {"drover:{j}:lock", "string"},    {"drover:{j.0}:state", "hash"},
        {"drover:{j.0}:pending", "list"}, {"drover:{j.0}:leased", "zset"},
        {"drover:{j.0}:owner", "hash"},   {"drover:{j.0}:done:0", "hash"},
        {"drover:{j.0}:tries", "hash"},   {"drover:{j.0}:retry", "zset"},
        {"drover:{j.0}:dead", "hash"},    {"drover:{j.0}:errors", "hash"},
        {"drover:{j.0}:items", "hash"},   {"drover:{j}:limits", "hash"},
    };
    size_t n = sizeof types / sizeof *types;
    for (size_t i = 0; i < n; i++) {
        char *t = rstr("TYPE %s", types[i][0]);
        if (strcmp(t, types[i][1]) != 0)
            fail_msg("%s is %s, expected %s", types[i][0], t, types[i][1]);
        free(t);
    }
    assert_int_equal(rint_("DBSIZE"), (long long)n); /* and there is nothing else */
    claim_free(&c);
    claim_free(&d);
    /* A range job's done record is a bitmap (a STRING), from the partition's done_base. */
    jobopt ro = defaults();
    job_with_items("r", &ro, 3);
    drv_claim e;
    claim("r", 1, "w", &e);
    drv_ref re = ref_of(&e.items[0]);
    assert_int_equal(drv_queue_ack(q, "r", 0, &re, 1, NULL), DRV_OK);
    assert_rstr("string", "TYPE drover:{r.0}:done");
    assert_rstr("0", "HGET drover:{r.0}:state done_base");
    assert_int_equal(rint_("GETBIT drover:{r.0}:done 1"), 1); /* id 1 */
    claim_free(&e);
}

#define T(name) cmocka_unit_test_setup(name, flush)

/* ---- the worker registry (beat.lua) ---------------------------------------------------------- */

static void a_heartbeat_registers_the_worker_and_carries_a_drain_request(void **state) {
    (void)state;
    drv_worker_info a = {.id = "host-a:1",
                         .host = "host-a",
                         .pid = 1,
                         .version = "9.9",
                         .jobs = "j1,j2",
                         .state = "running",
                         .in_flight = 3,
                         .queued = 1,
                         .done = 40,
                         .failed = 2,
                         .lease_ms = 5000};
    int drain = -1;
    int64_t now = 0;
    assert_int_equal(drv_queue_heartbeat(q, &a, &drain, &now), DRV_OK);
    assert_int_equal(drain, 0);
    assert_true(now > 0 && now <= redis_now());
    drv_worker_info b = {.id = "host-b:2", .state = "running", .lease_ms = 5000};
    assert_int_equal(drv_queue_heartbeat(q, &b, NULL, NULL), DRV_OK);
    assert_true(rint_("TTL drover:{workers}:host-a:1") > 3600); /* forgotten a day after */

    drv_worker_info *w;
    size_t n;
    int64_t t;
    assert_int_equal(drv_queue_workers(q, &w, &n, &t), DRV_OK);
    assert_int_equal(n, 2);
    assert_string_equal(w[0].id, "host-a:1"); /* by last heartbeat */
    assert_string_equal(w[0].host, "host-a");
    assert_string_equal(w[0].jobs, "j1,j2");
    assert_string_equal(w[0].version, "9.9");
    assert_int_equal(w[0].in_flight, 3);
    assert_int_equal(w[0].queued, 1);
    assert_int_equal(w[0].done, 40);
    assert_int_equal(w[0].failed, 2);
    assert_int_equal(w[0].lease_ms, 5000);
    assert_int_equal(w[0].beat_ms, now);
    assert_int_equal(w[0].started_ms, now);
    assert_true(t >= now);
    free(w);

    /* drain: unknown workers are refused; a known one hears it at its next heartbeat. */
    assert_int_equal(drv_queue_worker_drain(q, "nobody:0"), DRV_ENOJOB);
    assert_int_equal(drv_queue_worker_drain(q, "host-a:1"), DRV_OK);
    assert_int_equal(drv_queue_heartbeat(q, &a, &drain, NULL), DRV_OK);
    assert_int_equal(drain, 1);
    assert_int_equal(drv_queue_workers(q, &w, &n, NULL), DRV_OK);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(w[i].id, "host-a:1") == 0) {
            found = 1;
            assert_string_equal(w[i].state, "draining");
            assert_int_equal(w[i].started_ms, now); /* kept from the first heartbeat */
        }
    assert_true(found);
    free(w);

    /* A clean exit leaves; an entry whose hash expired is dropped from the list. */
    assert_int_equal(drv_queue_worker_gone(q, "host-a:1"), DRV_OK);
    assert_int_equal(rint_("EXISTS drover:{workers}:host-a:1"), 0);
    rint_("DEL drover:{workers}:host-b:2");
    assert_int_equal(drv_queue_workers(q, &w, &n, NULL), DRV_OK);
    assert_int_equal(n, 0);
    free(w);
    assert_int_equal(rint_("ZCARD drover:{workers}"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        T(reap_reports_every_size_of_the_partition_in_one_step),
        T(reap_recovers_expired_leases_when_no_worker_claims),
        T(reap_recovers_more_than_1000_expired_leases_over_several_calls),
        T(reap_moves_due_retries_back_to_pending),
        T(reap_leaves_a_cancelled_partition_alone),
        T(reap_of_an_unknown_job_is_enojob),
        T(dead_each_lists_every_dead_item_with_its_error),
        T(revive_moves_dead_items_back_with_fresh_attempts),
        T(revive_of_an_unknown_job_is_enojob_or_nothing),
        T(revive_handles_more_dead_items_than_one_script_call),
        T(revive_skips_ids_that_are_not_dead),
        T(scripts_given_no_items_change_nothing),
        T(the_lock_is_exclusive_between_two_owners),
        T(the_holder_renews_the_lock),
        T(an_expired_lock_can_be_taken_by_another_owner),
        T(unlock_by_a_non_holder_does_nothing),
        T(every_script_runs_again_after_the_script_cache_is_flushed),
        T(a_key_of_the_wrong_type_is_ecorrupt_naming_it),
        T(every_partition_key_shares_one_hash_tag),
        T(every_key_has_its_documented_type),
        T(a_heartbeat_registers_the_worker_and_carries_a_drain_request),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
