/* Damaged state (issue 15): every script reads and checks what it uses before its first write,
 * so a key of the wrong type, a field that is not a number or a lease record that is not JSON
 * is refused as DRV_CORRUPT KEY: WHAT (DRV_ECORRUPT) with Redis left exactly as it was; and
 * an id no handler could take is dead-lettered at claim, never handed out, never blocking the
 * rest. Against a real redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

/* ---- a snapshot of every key of partition 0 ------------------------------------------------ */

/* Every key of drover:{JOB.0} (done buckets included) with its DUMP, sorted by name, as one
 * string of "name=hex;" (caller frees): equal snapshots mean nothing was written. */
static char *snapshot(const char *job) {
    redisReply *r = redisCommand(rc, "EVAL %s 0 %s",
                                 "local ks = redis.call('KEYS', 'drover:{' .. ARGV[1] .. '.0}*') "
                                 "table.sort(ks) local out = {} "
                                 "for _, k in ipairs(ks) do local d = redis.call('DUMP', k) "
                                 "out[#out + 1] = k .. '=' .. (d:gsub('.', function(c) "
                                 "return string.format('%02x', c:byte()) end)) end "
                                 "return table.concat(out, ';')",
                                 job);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("snapshot: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *s = strndup(r->str, r->len);
    freeReplyObject(r);
    return s;
}

static void assert_unchanged(const char *before, const char *job) {
    char *after = snapshot(job);
    if (strcmp(before, after) != 0) fail_msg("a refused script changed the keys of %s.0", job);
    free(after);
}

/* Asserts that e is DRV_ECORRUPT and the error text has 'want' (KEY: WHAT). */
#define ASSERT_REFUSED(e, want)                                                                    \
    do {                                                                                           \
        assert_int_equal((e), DRV_ECORRUPT);                                                       \
        if (!strstr(drv_queue_errstr(q), (want)))                                                  \
            fail_msg("expected \"%s\" in \"%s\"", (want), drv_queue_errstr(q));                    \
    } while (0)

/* Replaces key with a string: a key of the wrong type. */
static void make_wrong(const char *key) {
    rint_("DEL %s", key);
    rint_("SET %s oops", key);
}

/* ---- wrong types ------------------------------------------------------------------------------
 */

static void an_owner_key_of_another_type_fails_claim_and_changes_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 150);
    make_wrong("drover:{j.0}:owner");
    char *before = snapshot("j");
    drv_claim c;
    for (int i = 0; i < 3; i++)
        ASSERT_REFUSED(drv_queue_claim(q, "j", 0, "w", 50, &c),
                       "DRV_CORRUPT drover:{j.0}:owner: WRONGTYPE");
    assert_unchanged(before, "j");
    drv_ack_result a;
    ASSERT_REFUSED(drv_queue_ackclaim(q, "j", 0, "w", 50, NULL, NULL, 0, &a, &c),
                   "DRV_CORRUPT drover:{j.0}:owner: WRONGTYPE");
    assert_unchanged(before, "j");
    free(before);
    /* Repaired, everything is there. */
    rint_("DEL drover:{j.0}:owner");
    claim("j", 1000, "w", &c);
    assert_int_equal(c.n, 150);
    assert_int_equal(leased_count("j", 0), 150);
    claim_free(&c);
}

static void a_corrupt_done_bucket_makes_claim_put_its_ids_back(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    create_job("j", &o);
    feed_ids_as("j", 0, "u", 1, 20);
    /* The bucket of the 5th id a claim pops: the LPOP has happened when it is read. */
    char *bucket = done_bucket_of("j", 0, "u-00005");
    make_wrong(bucket);
    char *before = snapshot("j");
    drv_claim c;
    char want[160];
    snprintf(want, sizeof want, "DRV_CORRUPT %s: WRONGTYPE", bucket);
    ASSERT_REFUSED(drv_queue_claim(q, "j", 0, "w", 10, &c), want);
    assert_unchanged(before, "j"); /* the popped ids are back, in their order */
    assert_rlist("u-00001,u-00002,u-00003", "LRANGE drover:{j.0}:pending 0 2");
    free(before);
    rint_("DEL %s", bucket);
    free(bucket);
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 10);
    assert_string_equal(c.items[0].id, "u-00001");
    assert_string_equal(c.items[9].id, "u-00010");
    claim_free(&c);
}

static void an_ackclaim_with_a_damaged_pending_list_records_no_ack(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 10);
    drv_claim c;
    claim("j", 4, "w", &c);
    make_wrong("drover:{j.0}:pending");
    char *before = snapshot("j");
    drv_ref r[4];
    for (size_t i = 0; i < 4; i++)
        r[i] = ref_of(&c.items[i]);
    drv_ack_result a;
    drv_claim d;
    ASSERT_REFUSED(drv_queue_ackclaim(q, "j", 0, "w", 5, r, NULL, 4, &a, &d),
                   "DRV_CORRUPT drover:{j.0}:pending: WRONGTYPE");
    assert_unchanged(before, "j");
    free(before);
    assert_int_equal(done_count("j", 0), 0);
    assert_int_equal(leased_count("j", 0), 4);
    claim_free(&c);
}

static void a_fail_with_a_damaged_dead_hash_changes_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3);
    drv_claim c;
    claim("j", 3, "w", &c);
    make_wrong("drover:{j.0}:dead");
    char *before = snapshot("j");
    drv_failure f[2] = {failure_of(&c.items[0], 0, 0, "{\"error\":\"e\"}"),
                        failure_of(&c.items[1], 1, 0, "{\"error\":\"e\"}")};
    ASSERT_REFUSED(drv_queue_fail(q, "j", 0, f, 2, NULL),
                   "DRV_CORRUPT drover:{j.0}:dead: WRONGTYPE");
    assert_unchanged(before, "j");
    free(before);
    claim_free(&c);
}

/* ---- lease records ------------------------------------------------------------------------------
 */

static void bad_json_in_an_owner_entry_fails_ack_release_extend_fail_and_reap(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 5);
    drv_claim c;
    claim("j", 3, "w", &c);
    char tok[32];
    snprintf(tok, sizeof tok, "%" PRId64, c.items[0].token);
    static const char *const bad[] = {"{not json", "{\"worker\":\"w\",\"ids\":5}",
                                      "{\"worker\":\"w\",\"ids\":[1,2,3]}", "[\"1\"]"};
    char want[96];
    snprintf(want, sizeof want, "DRV_CORRUPT drover:{j.0}:owner: %s: not a lease record", tok);
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
        redisReply *r = redisCommand(rc, "HSET drover:{j.0}:owner %s %s", tok, bad[b]);
        freeReplyObject(r);
        char *before = snapshot("j");
        drv_ref refs[3];
        for (size_t i = 0; i < 3; i++)
            refs[i] = ref_of(&c.items[i]);
        drv_ack_result a;
        int64_t n;
        ASSERT_REFUSED(drv_queue_ack(q, "j", 0, refs, 3, &a), want);
        ASSERT_REFUSED(drv_queue_release(q, "j", 0, refs, 3, &n), want);
        ASSERT_REFUSED(drv_queue_extend(q, "j", 0, refs, 3, &n), want);
        drv_failure f = failure_of(&c.items[0], 0, 0, "{\"error\":\"e\"}");
        ASSERT_REFUSED(drv_queue_fail(q, "j", 0, &f, 1, NULL), want);
        assert_unchanged(before, "j");
        /* Once the lease has expired, reap and claim read it to recover it: refused too. */
        wait_redis_past(c.deadline_ms);
        drv_part_stat st;
        ASSERT_REFUSED(drv_queue_reap(q, "j", 0, &st), want);
        drv_claim d;
        ASSERT_REFUSED(drv_queue_claim(q, "j", 0, "w", 5, &d), want);
        assert_unchanged(before, "j");
        assert_int_equal(counter("j", 0, "leased"), 3);
        free(before);
    }
    claim_free(&c);
}

/* ---- numeric fields
 * ------------------------------------------------------------------------------ */

static void a_state_field_that_is_not_a_number_is_refused_naming_it(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 5);
    drv_claim c;
    claim("j", 2, "w", &c);
    drv_ref refs[2] = {ref_of(&c.items[0]), ref_of(&c.items[1])};
    rint_("HSET drover:{j.0}:state lease_ms abc");
    char *before = snapshot("j");
    drv_claim d;
    int64_t n;
    ASSERT_REFUSED(drv_queue_claim(q, "j", 0, "w", 5, &d),
                   "DRV_CORRUPT drover:{j.0}:state: lease_ms is not a whole number >= 1: abc");
    ASSERT_REFUSED(drv_queue_extend(q, "j", 0, refs, 2, &n),
                   "DRV_CORRUPT drover:{j.0}:state: lease_ms");
    assert_unchanged(before, "j");
    free(before);
    rint_("HSET drover:{j.0}:state lease_ms 10000");

    /* A counter a script adds to: refused before anything else is written. */
    rint_("HSET drover:{j.0}:state leased 1.5");
    before = snapshot("j");
    drv_ack_result a;
    ASSERT_REFUSED(drv_queue_ack(q, "j", 0, refs, 2, &a),
                   "DRV_CORRUPT drover:{j.0}:state: leased is not a whole number: 1.5");
    ASSERT_REFUSED(drv_queue_claim(q, "j", 0, "w", 5, &d), "drover:{j.0}:state: leased");
    assert_unchanged(before, "j");
    free(before);
    /* Forms tonumber takes and Redis's HINCRBY refuses: refused before any write too. */
    static const char *const odd[] = {
        "05", "1e3", "0x10", " 5", "-0", "5.0", "18446744073709551616"};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        rint_("HSET drover:{j.0}:state leased %s", odd[i]);
        before = snapshot("j");
        ASSERT_REFUSED(drv_queue_ack(q, "j", 0, refs, 2, &a), "drover:{j.0}:state: leased");
        ASSERT_REFUSED(drv_queue_release(q, "j", 0, refs, 2, &n), "drover:{j.0}:state: leased");
        ASSERT_REFUSED(drv_queue_claim(q, "j", 0, "w", 5, &d), "drover:{j.0}:state: leased");
        assert_unchanged(before, "j");
        free(before);
    }
    rint_("HSET drover:{j.0}:state leased 2 done_base x");
    ASSERT_REFUSED(drv_queue_ack(q, "j", 0, refs, 2, &a),
                   "DRV_CORRUPT drover:{j.0}:state: done_base is not a whole number: x");
    rint_("HSET drover:{j.0}:state done_base 0");
    assert_int_equal(drv_queue_ack(q, "j", 0, refs, 2, &a), DRV_OK);
    assert_int_equal(a.acked, 2);
    claim_free(&c);
}

static void a_limits_field_that_is_not_a_number_is_refused_naming_it(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    rint_("HSET drover:{j}:limits lease_ms 30000 per_second abc");
    drv_admit ad;
    ASSERT_REFUSED(drv_queue_admit(q, "j", "w", 5, 0, 0, &ad),
                   "DRV_CORRUPT drover:{j}:limits: per_second is not a number: abc");
    assert_int_equal(rint_("HEXISTS drover:{j}:limits w:w"), 0);
}

/* ---- ids no handler can take ------------------------------------------------------------------
 */

static void ids_a_range_partition_cannot_hold_are_dead_at_claim_and_the_rest_leased(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o); /* partition 0 spans 0..1000000 */
    size_t big = 2 << 20;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, '7', big);
    huge[big] = '\0';
    redisReply *r = redisCommand(
        rc, "RPUSH drover:{j.0}:pending 1 abc 2 %s 3 -5 4 2000000 5 %b 6 007 7", "", huge, big);
    assert_non_null(r);
    freeReplyObject(r);
    drv_claim c;
    claim("j", 100, "w", &c);
    assert_int_equal(c.n, 7);
    for (size_t i = 0; i < c.n; i++) {
        char want[24];
        snprintf(want, sizeof want, "%zu", i + 1);
        assert_string_equal(c.items[i].id, want);
    }
    assert_int_equal(counter("j", 0, "dead"), 6);
    assert_int_equal(rint_("HLEN drover:{j.0}:dead"), 6);
    assert_int_equal(leased_count("j", 0), 7);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    char *e = rstr("HGET drover:{j.0}:dead abc");
    assert_non_null(strstr(e, "\"error\":\"id is not a whole number in canonical form\""));
    free(e);
    e = rstr("HGET drover:{j.0}:dead 2000000");
    assert_non_null(strstr(e, "\"error\":\"id outside the partition (0..1000000)\""));
    free(e);
    assert_non_null(e = rstr("HGET drover:{j.0}:dead %s", ""));
    free(e);
    assert_non_null(e = rstr("HGET drover:{j.0}:dead -5"));
    free(e);
    assert_non_null(e = rstr("HGET drover:{j.0}:dead 007"));
    free(e);
    r = redisCommand(rc, "HGET drover:{j.0}:dead %b", huge, big);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, "longer than max_item_bytes (1048576)"));
    freeReplyObject(r);
    free(huge);
    /* The good ones ack normally; acking a dead one is unknown, never an error. */
    drv_ref refs[8];
    for (size_t i = 0; i < c.n; i++)
        refs[i] = ref_of(&c.items[i]);
    refs[7] = (drv_ref){"abc", 3, c.items[0].token};
    drv_ack_result a;
    assert_int_equal(drv_queue_ack(q, "j", 0, refs, 8, &a), DRV_OK);
    assert_int_equal(a.acked, 7);
    assert_int_equal(a.unknown, 1);
    assert_int_equal(leased_count("j", 0), 0);
    assert_int_equal(done_count("j", 0), 7);
    claim_free(&c);
    /* Revived, a bad id comes back dead again at the next claim: no loop, nothing leased. */
    int64_t n;
    assert_int_equal(drv_queue_revive(q, "j", 0, &n), DRV_OK);
    assert_int_equal(n, 6);
    claim("j", 100, "w", &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(counter("j", 0, "dead"), 6);
    claim_free(&c);
}

static void an_id_past_2_to_the_53_is_not_taken_for_its_rounded_neighbour(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    rint_("HSET drover:{j.0}:state start 9007199254740900 end 9007199254740992 "
          "done_base 9007199254740900");
    rint_("RPUSH drover:{j.0}:pending 9007199254740993 9007199254740992");
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.items[0].id, "9007199254740992");
    char *e = rstr("HGET drover:{j.0}:dead 9007199254740993");
    assert_non_null(strstr(e, "canonical form"));
    free(e);
    claim_free(&c);
}

/* A file, stdin or HTTP source may list an id twice; when both copies are leased at once the
 * second ack of the done id settles its copy in `copies` (the coordinator's final check counts
 * done + dead + skipped + duplicates + copies against fed); the same id twice in one ack is
 * counted once. */
static void the_second_copy_of_an_id_listed_twice_is_counted_as_a_copy(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    create_job("j", &o);
    rint_("RPUSH drover:{j.0}:pending x y x");
    drv_claim c1, c2;
    claim("j", 1, "w1", &c1);
    claim("j", 2, "w2", &c2);
    assert_int_equal(c1.n, 1);
    assert_int_equal(c2.n, 2);
    assert_string_equal(c2.items[1].id, "x");
    drv_ref r1[1] = {ref_of(&c1.items[0])};
    drv_ref r2[3] = {ref_of(&c2.items[0]), ref_of(&c2.items[1]), ref_of(&c2.items[1])};
    drv_ack_result a;
    assert_int_equal(drv_queue_ack(q, "j", 0, r1, 1, &a), DRV_OK);
    assert_int_equal(a.acked, 1);
    assert_int_equal(drv_queue_ack(q, "j", 0, r2, 3, &a), DRV_OK);
    assert_int_equal(a.acked, 1);
    assert_int_equal(a.duplicates, 0);
    assert_int_equal(counter("j", 0, "done"), 2);
    assert_int_equal(counter("j", 0, "copies"), 1);
    assert_int_equal(leased_count("j", 0), 0);
    /* A counter a script adds to: checked before the first write like the others. */
    rint_("HSET drover:{j.0}:state copies x");
    ASSERT_REFUSED(drv_queue_ack(q, "j", 0, r1, 1, &a), "drover:{j.0}:state: copies");
    claim_free(&c1);
    claim_free(&c2);
}

static void an_id_over_max_item_bytes_is_dead_at_claim_in_a_file_job(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    create_job("j", &o);
    rint_("HSET drover:{j.0}:state max_item_bytes 16");
    redisReply *r =
        redisCommand(rc, "RPUSH drover:{j.0}:pending a 0123456789abcdef0 b 0123456789abcdef");
    freeReplyObject(r);
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.items[2].id, "0123456789abcdef");
    assert_int_equal(counter("j", 0, "dead"), 1);
    char *e = rstr("HGET drover:{j.0}:dead 0123456789abcdef0");
    assert_non_null(strstr(e, "longer than max_item_bytes (16)"));
    free(e);
    claim_free(&c);
}

static void a_lease_holding_an_id_outside_the_bitmap_is_dead_at_ack_not_a_loop(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_claim c;
    claim("j", 2, "w", &c);
    /* As a drover that did not check ids at claim would have leased it. */
    redisReply *r =
        redisCommand(rc, "HSET drover:{j.0}:owner 99 {\"worker\":\"w\",\"ids\":[\"abc\",\"x7\"]}");
    freeReplyObject(r);
    rint_("ZADD drover:{j.0}:leased 99999999999999 99");
    rint_("HINCRBY drover:{j.0}:state leased 2");
    drv_ref refs[2] = {{"abc", 3, 99}, {"x7", 2, 99}};
    drv_ack_result a;
    assert_int_equal(drv_queue_ack(q, "j", 0, refs, 2, &a), DRV_OK);
    assert_int_equal(a.acked, 0);
    assert_int_equal(counter("j", 0, "dead"), 2);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:dead abc"), 1);
    assert_int_equal(leased_count("j", 0), 2);
    claim_free(&c);
}

int main(void) {
#define T(name) cmocka_unit_test_setup(name, flush)
    const struct CMUnitTest tests[] = {
        T(an_owner_key_of_another_type_fails_claim_and_changes_nothing),
        T(a_corrupt_done_bucket_makes_claim_put_its_ids_back),
        T(an_ackclaim_with_a_damaged_pending_list_records_no_ack),
        T(a_fail_with_a_damaged_dead_hash_changes_nothing),
        T(bad_json_in_an_owner_entry_fails_ack_release_extend_fail_and_reap),
        T(a_state_field_that_is_not_a_number_is_refused_naming_it),
        T(a_limits_field_that_is_not_a_number_is_refused_naming_it),
        T(ids_a_range_partition_cannot_hold_are_dead_at_claim_and_the_rest_leased),
        T(an_id_past_2_to_the_53_is_not_taken_for_its_rounded_neighbour),
        T(the_second_copy_of_an_id_listed_twice_is_counted_as_a_copy),
        T(an_id_over_max_item_bytes_is_dead_at_claim_in_a_file_job),
        T(a_lease_holding_an_id_outside_the_bitmap_is_dead_at_ack_not_a_loop),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
