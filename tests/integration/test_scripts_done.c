/* The done record (lua/lib/done.lua done_has/done_add) against a real redis-server: a bitmap for
 * range partitions (bit id - done_base, done_base = the partition's first id), hashed buckets of
 * ids for the other sources (a SET for jobs from before buckets). Through the queue API: claim,
 * ack, fail and lease recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

/* Job 'id' with one range partition start..end, cursor at start (as submit writes it). */
static void range_job(const char *id, int64_t start, int64_t end) {
    jobopt o = defaults();
    drv_spec s = spec_of(id, &o);
    s.range_start = start;
    s.range_end = end;
    drv_part_init parts[1];
    memset(parts, 0, sizeof parts);
    parts[0].start = start;
    parts[0].end = end;
    snprintf(parts[0].cursor, sizeof parts[0].cursor, "%" PRId64, start);
    assert_int_equal(drv_queue_job_create(q, &s, end - start + 1, parts, 0), DRV_OK);
}

/* Feeds the ids lo..hi (at most 1000) to partition 0, the cursor moving as feed.c moves it. */
static void feed_ids(const char *job, int64_t lo, int64_t hi) {
    static drv_feed_item items[1000];
    static char ids[1000][24];
    size_t n = 0;
    for (int64_t i = lo; i <= hi; i++, n++) {
        snprintf(ids[n], sizeof ids[n], "%" PRId64, i);
        items[n] = (drv_feed_item){ids[n], strlen(ids[n]), NULL, 0};
    }
    char expect[24], next[24];
    snprintf(expect, sizeof expect, "%" PRId64, lo);
    snprintf(next, sizeof next, "%" PRId64, hi + 1);
    assert_int_equal(drv_queue_feed(q, job, 0, expect, next, 0, items, n, NULL), DRV_OK);
}

/* Claims everything pending in partition 0 and acks it; returns how many were acked. */
static size_t claim_and_ack_all(const char *job) {
    drv_claim c;
    assert_int_equal(drv_queue_claim(q, job, 0, "w", 1000, &c), DRV_OK);
    drv_ref *r = calloc(c.n ? c.n : 1, sizeof *r);
    assert_non_null(r);
    for (size_t i = 0; i < c.n; i++)
        r[i] = ref_of(&c.items[i]);
    drv_ack_result res = {-1, -1, -1};
    assert_int_equal(drv_queue_ack(q, job, 0, r, c.n, &res), DRV_OK);
    assert_int_equal(res.acked, (int64_t)c.n);
    size_t n = c.n;
    free(r);
    claim_free(&c);
    return n;
}

static void a_range_partition_records_done_as_a_bitmap_from_its_start(void **state) {
    (void)state;
    range_job("j", 1001, 2000);
    assert_rstr("1001", "HGET drover:{j.0}:state done_base");
    feed_ids("j", 1001, 1010);
    assert_int_equal(claim_and_ack_all("j"), 10);
    assert_rstr("string", "TYPE drover:{j.0}:done");
    for (int off = 0; off < 10; off++)
        assert_int_equal(rint_("GETBIT drover:{j.0}:done %d", off), 1);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 10"), 0);
    assert_int_equal(rint_("BITCOUNT drover:{j.0}:done"), 10);
    /* Ten ids, two bytes: an eighth of a byte per id once the range is dense. */
    assert_int_equal(rint_("STRLEN drover:{j.0}:done"), 2);
    assert_int_equal(counter("j", 0, "done"), 10);
}

static void a_second_ack_of_a_done_range_item_is_a_duplicate(void **state) {
    (void)state;
    range_job("j", 1, 100);
    rint_("HSET drover:{j.0}:state lease_ms 100");
    feed_ids("j", 1, 1);
    drv_claim a, b;
    claim("j", 1, "a", &a);
    claim_when_back("j", 1, "b", &b); /* a's lease expired; b holds the item now */
    drv_ref rb = ref_of(&b.items[0]), ra = ref_of(&a.items[0]);
    drv_ack_result res = {-1, -1, -1};
    assert_int_equal(drv_queue_ack(q, "j", 0, &rb, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(res.duplicates, 0);
    /* a's late ack: the bit was set already, so it is one duplicate and nothing more. */
    assert_int_equal(drv_queue_ack(q, "j", 0, &ra, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 0);
    assert_int_equal(res.duplicates, 1);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(counter("j", 0, "duplicates"), 1);
    assert_int_equal(rint_("BITCOUNT drover:{j.0}:done"), 1);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 0"), 1);
    claim_free(&a);
    claim_free(&b);
}

static void claim_drops_range_items_whose_bit_is_set(void **state) {
    (void)state;
    range_job("j", 500, 599);
    feed_ids("j", 500, 504);
    rint_("SETBIT drover:{j.0}:done 0 1"); /* 500, done in an earlier run */
    rint_("SETBIT drover:{j.0}:done 3 1"); /* 503 */
    drv_claim c;
    claim("j", 10, "w", &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.items[0].id, "501");
    assert_string_equal(c.items[1].id, "502");
    assert_string_equal(c.items[2].id, "504");
    assert_int_equal(counter("j", 0, "skipped"), 2);
    claim_free(&c);
}

static void offsets_cover_a_negative_range_from_its_start_to_its_end(void **state) {
    (void)state;
    range_job("j", -5, 4);
    feed_ids("j", -5, 4);
    assert_int_equal(claim_and_ack_all("j"), 10);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 0"), 1); /* -5 */
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 5"), 1); /* 0 */
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 9"), 1); /* 4, the end */
    assert_int_equal(rint_("BITCOUNT drover:{j.0}:done"), 10);
    assert_int_equal(is_done("j", 0, "-5"), 1);
    assert_int_equal(is_done("j", 0, "4"), 1);
}

static void ids_near_2_53_keep_exact_offsets(void **state) {
    (void)state;
    /* Lua numbers are doubles: exact up to 2^53, the range limit. */
    range_job("j", 9007199254740000LL, 9007199254740992LL);
    /* Skip ids ...000..989, so the last three ids of the range are fed. */
    rint_("HSET drover:{j.0}:state cursor 9007199254740990");
    feed_ids("j", 9007199254740990LL, 9007199254740992LL);
    assert_int_equal(claim_and_ack_all("j"), 3);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 990"), 1);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 991"), 1);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 992"), 1);
    assert_int_equal(rint_("BITCOUNT drover:{j.0}:done"), 3);
}

static void an_ack_of_an_id_outside_the_bitmap_is_unknown_and_sets_nothing(void **state) {
    (void)state;
    range_job("j", 10, 20);
    feed_ids("j", 10, 10);
    drv_claim c;
    claim("j", 1, "w", &c);
    /* Ids the partition never fed, some that no bitmap offset can hold (before its start, at
     * 2^32 past it) or that are not canonical whole numbers: unknown, never a bit. */
    static const char *const bad[] = {"9", "4294967306",          "010", "+10", "10.0", "1e1", "-0",
                                      "x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        drv_ref r = {bad[i], strlen(bad[i]), c.items[0].token};
        drv_ack_result res = {-1, -1, -1};
        assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
        if (res.unknown != 1 || res.acked != 0 || res.duplicates != 0)
            fail_msg("ack of \"%s\": acked %" PRId64 " duplicates %" PRId64 " unknown %" PRId64,
                     bad[i], res.acked, res.duplicates, res.unknown);
    }
    assert_int_equal(rint_("EXISTS drover:{j.0}:done"), 0);
    /* The item itself is still held and acks normally: a duplicate of the canonical id later
     * is recognised as done. */
    drv_ref r = ref_of(&c.items[0]);
    drv_ack_result res = {-1, -1, -1};
    assert_int_equal(drv_queue_ack(q, "j", 0, &r, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 0"), 1);
    assert_int_equal(rint_("STRLEN drover:{j.0}:done"), 1);
    claim_free(&c);
}

static void a_failure_of_a_range_item_already_done_is_not_dead_lettered(void **state) {
    (void)state;
    range_job("j", 1, 10);
    rint_("HSET drover:{j.0}:state lease_ms 100 max_attempts 2");
    feed_ids("j", 1, 1);
    drv_claim a, b;
    claim("j", 1, "a", &a);
    claim_when_back("j", 1, "b", &b); /* b: the last attempt */
    drv_ref ra = ref_of(&a.items[0]);
    assert_int_equal(drv_queue_ack(q, "j", 0, &ra, 1, NULL), DRV_OK); /* a's late ack: done */
    drv_failure f = failure_of(&b.items[0], 1, 0, "{\"error\":\"x\"}");
    drv_fail_result fr;
    memset(&fr, 0, sizeof fr);
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, &fr), DRV_OK);
    assert_int_equal(rint_("HLEN drover:{j.0}:dead"), 0);
    assert_int_equal(counter("j", 0, "dead"), 0);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 0"), 1);
    claim_free(&a);
    claim_free(&b);
}

static void a_done_range_item_whose_lease_expires_is_only_dropped(void **state) {
    (void)state;
    range_job("j", 1, 10);
    rint_("HSET drover:{j.0}:state lease_ms 100");
    feed_ids("j", 1, 2);
    drv_claim c;
    claim("j", 2, "w", &c);
    rint_("SETBIT drover:{j.0}:done 0 1"); /* 1 recorded done meanwhile (e.g. a late ack) */
    drv_claim d;
    claim_when_back("j", 10, "v", &d); /* both leases expired: only 2 comes back */
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].id, "2");
    assert_int_equal(rint_("HEXISTS drover:{j.0}:errors 1"), 0);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 0);
    claim_free(&c);
    claim_free(&d);
}

static void file_and_stdin_partitions_keep_their_ids_in_hashed_buckets(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    create_job("j", &o);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:state done_base"), 0);
    assert_rstr("1", "HGET drover:{j.0}:state done_buckets"); /* total unknown: one to start */
    drv_feed_item it[2] = {{"user-0001234", 12, "{}", 2},
                           {"6f1c2e4a-9b3d-4c1e-8f2a-0d5b7e9c1a23", 36, "{}", 2}};
    assert_int_equal(drv_queue_feed(q, "j", 0, "0", "2", 1, it, 2, NULL), DRV_OK);
    assert_int_equal(claim_and_ack_all("j"), 2);
    assert_int_equal(rint_("EXISTS drover:{j.0}:done"), 0);
    assert_rstr("hash", "TYPE drover:{j.0}:done:0");
    assert_rstr("listpack", "OBJECT ENCODING drover:{j.0}:done:0");
    assert_int_equal(rint_("HEXISTS drover:{j.0}:done:0 user-0001234"), 1);
    assert_int_equal(rint_("HLEN drover:{j.0}:done:0"), 2);
    assert_rstr("2", "HGET drover:{j.0}:state done_ids");
}

/* Buckets split as ids come (48 a bucket: linear hashing, one split at a time), and every id
 * stays where README's formula puts it (is_done computes its bucket independently). */
static void buckets_split_as_ids_come_and_keep_each_id_where_the_formula_puts_it(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    create_job("j", &o);
    for (int k = 0; k < 3; k++) {
        feed_ids_as("j", 0, "u", 1 + k * 1000, (k + 1) * 1000);
        assert_int_equal(claim_and_ack_all("j"), 1000);
    }
    long long nb = rint_("HGET drover:{j.0}:state done_buckets");
    assert_int_equal(nb, 63); /* the least N with 3000 <= 48 N */
    assert_rstr("3000", "HGET drover:{j.0}:state done_ids");
    assert_int_equal(done_count("j", 0), 3000);
    for (long long b = 0; b < nb; b++) {
        long long n = rint_("HLEN drover:{j.0}:done:%lld", b);
        if (n < 1 || n > 128) fail_msg("bucket %lld holds %lld ids", b, n);
        char *enc = rstr("OBJECT ENCODING drover:{j.0}:done:%lld", b);
        assert_string_equal(enc, "listpack");
        free(enc);
    }
    assert_int_equal(rint_("EXISTS drover:{j.0}:done:%lld", nb), 0);
    char id[32];
    for (int i = 1; i <= 3000; i++) {
        snprintf(id, sizeof id, "u-%05d", i);
        if (!is_done("j", 0, id)) fail_msg("%s is not in its bucket", id);
    }
    assert_int_equal(is_done("j", 0, "u-03001"), 0);
    /* Fed again (a source listing them twice), every one is dropped at claim time. */
    feed_ids_as("j", 0, "u", 1, 1000);
    drv_claim c;
    claim("j", 1000, "w", &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(counter("j", 0, "skipped"), 1000);
    claim_free(&c);

    /* ttl_after_done reaches every bucket; a delete removes them all. */
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    int64_t at;
    assert_int_equal(drv_queue_job_expire(q, &j, 60000, &at), DRV_OK);
    for (long long b = 0; b < nb; b++) {
        long long ttl = rint_("PTTL drover:{j.0}:done:%lld", b);
        if (ttl <= 0 || ttl > 60000) fail_msg("bucket %lld: PTTL %lld", b, ttl);
    }
    assert_int_equal(drv_queue_job_delete(q, "j"), DRV_OK);
    assert_int_equal(rint_("DBSIZE"), 0);
}

/* Submit sizes the buckets for the ids a partition is expected to get when the total is known
 * (a file), so they need not split while the job runs. */
static void submit_sizes_the_buckets_for_a_known_total(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    o.parts = 2;
    drv_spec s = spec_of("j", &o);
    drv_part_init parts[2];
    memset(parts, 0, sizeof parts);
    snprintf(parts[0].cursor, sizeof parts[0].cursor, "0");
    snprintf(parts[1].cursor, sizeof parts[1].cursor, "0");
    assert_int_equal(drv_queue_job_create(q, &s, 48 * 4 * 2 + 5, parts, 0), DRV_OK);
    assert_rstr("4", "HGET drover:{j.0}:state done_buckets");
    assert_rstr("4", "HGET drover:{j.1}:state done_buckets");
    assert_int_equal(drv_queue_job_create(q, &s, 3, parts, 1), DRV_OK); /* fewer: still one */
    assert_rstr("1", "HGET drover:{j.1}:state done_buckets");
    range_job("r", 1, 100000); /* a range keeps its bitmap */
    assert_int_equal(rint_("HEXISTS drover:{r.0}:state done_buckets"), 0);
}

/* A partition of a job submitted by drover before buckets has neither done_base nor
 * done_buckets: its SET of ids goes on working. */
static void a_job_from_before_buckets_keeps_its_set(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    create_job("j", &o);
    rint_("HDEL drover:{j.0}:state done_buckets");
    rint_("SADD drover:{j.0}:done u-00002"); /* done by the old version */
    feed_ids_as("j", 0, "u", 1, 3);
    assert_int_equal(claim_and_ack_all("j"), 2);
    assert_int_equal(counter("j", 0, "skipped"), 1);
    assert_rstr("set", "TYPE drover:{j.0}:done");
    assert_int_equal(rint_("SCARD drover:{j.0}:done"), 3);
    assert_int_equal(rint_("EXISTS drover:{j.0}:done:0"), 0);
}

/* A split's new partition keeps its own bitmap from its own first id (the cut). The ids from the
 * cut on were never fed to the old partition (split_cut's compare-and-set), so no id is done in
 * both; what the old partition recorded stays as it was. */
static void a_split_partition_has_its_own_bitmap_from_the_cut(void **state) {
    (void)state;
    range_job("j", 1, 1000);
    feed_ids("j", 1, 100);
    assert_int_equal(claim_and_ack_all("j"), 100);
    jobopt o = defaults();
    drv_spec s = spec_of("j", &o);
    assert_int_equal(drv_queue_split_new(q, &s, 0, 1, 550, 1000, "running"), DRV_OK);
    assert_int_equal(drv_queue_split_cut(q, "j", 0, 1000, 550, NULL), DRV_OK);
    assert_int_equal(drv_queue_split_grow(q, "j", 1), DRV_OK);
    assert_rstr("550", "HGET drover:{j.1}:state done_base");
    /* Feed and ack 550..552 in the new partition. */
    drv_feed_item it[3] = {{"550", 3, NULL, 0}, {"551", 3, NULL, 0}, {"552", 3, NULL, 0}};
    assert_int_equal(drv_queue_feed(q, "j", 1, "550", "553", 0, it, 3, NULL), DRV_OK);
    drv_claim c;
    assert_int_equal(drv_queue_claim(q, "j", 1, "w", 10, &c), DRV_OK);
    assert_int_equal(c.n, 3);
    drv_ref r[3] = {ref_of(&c.items[0]), ref_of(&c.items[1]), ref_of(&c.items[2])};
    assert_int_equal(drv_queue_ack(q, "j", 1, r, 3, NULL), DRV_OK);
    claim_free(&c);
    assert_int_equal(rint_("GETBIT drover:{j.1}:done 0"), 1); /* 550 */
    assert_int_equal(rint_("GETBIT drover:{j.1}:done 2"), 1); /* 552 */
    assert_int_equal(rint_("BITCOUNT drover:{j.1}:done"), 3);
    /* The old partition's record is untouched: 1..100 done, nothing at or past the cut. */
    assert_int_equal(rint_("BITCOUNT drover:{j.0}:done"), 100);
    assert_int_equal(rint_("BITCOUNT drover:{j.0}:done 68 -1"), 0); /* bits 544.. */
    /* Done stays final in the new partition: 550 handed back (as a restart might) is dropped. */
    rint_("RPUSH drover:{j.1}:pending 550");
    assert_int_equal(drv_queue_claim(q, "j", 1, "w", 10, &c), DRV_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(counter("j", 1, "skipped"), 1);
    claim_free(&c);
}

/* A dense batch is read and written as one byte span (GETRANGE/SETRANGE): bits set before in
 * those bytes stay set, and the string grows only to the last byte written. */
static void a_dense_batch_keeps_the_other_bits_of_its_bytes(void **state) {
    (void)state;
    range_job("j", 0, 99);
    rint_("SETBIT drover:{j.0}:done 3 1");  /* 3, done in an earlier run */
    rint_("SETBIT drover:{j.0}:done 15 1"); /* 15, the same, not fed now */
    feed_ids("j", 0, 10);
    assert_int_equal(claim_and_ack_all("j"), 10); /* 3 is skipped at the claim */
    assert_int_equal(counter("j", 0, "skipped"), 1);
    assert_int_equal(rint_("BITCOUNT drover:{j.0}:done"), 12);
    for (int bit = 0; bit <= 10; bit++)
        assert_int_equal(rint_("GETBIT drover:{j.0}:done %d", bit), 1);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 15"), 1);
    assert_int_equal(rint_("STRLEN drover:{j.0}:done"), 2);
}

/* A batch spread over more than 16 bytes per id goes bit by bit (BITFIELD) instead of
 * reading and writing the megabytes between its ids: the same record either way. */
static void a_sparse_batch_sets_and_reads_the_same_bits(void **state) {
    (void)state;
    range_job("j", 0, 9999999);
    rint_("HSET drover:{j.0}:state cursor 10000000");
    rint_("RPUSH drover:{j.0}:pending 7 8 5000000 9999999");
    rint_("SETBIT drover:{j.0}:done 5000000 1"); /* done in an earlier run */
    assert_int_equal(claim_and_ack_all("j"), 3);
    assert_int_equal(counter("j", 0, "skipped"), 1);
    assert_int_equal(rint_("BITCOUNT drover:{j.0}:done"), 4);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 7"), 1);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 8"), 1);
    assert_int_equal(rint_("GETBIT drover:{j.0}:done 9999999"), 1);
    /* Handed back again (as a restart might), all of them are dropped as done. */
    rint_("RPUSH drover:{j.0}:pending 7 8 5000000 9999999");
    drv_claim c;
    assert_int_equal(drv_queue_claim(q, "j", 0, "w", 10, &c), DRV_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(counter("j", 0, "skipped"), 5);
    claim_free(&c);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(a_range_partition_records_done_as_a_bitmap_from_its_start),
        T(a_second_ack_of_a_done_range_item_is_a_duplicate),
        T(claim_drops_range_items_whose_bit_is_set),
        T(offsets_cover_a_negative_range_from_its_start_to_its_end),
        T(ids_near_2_53_keep_exact_offsets),
        T(an_ack_of_an_id_outside_the_bitmap_is_unknown_and_sets_nothing),
        T(a_failure_of_a_range_item_already_done_is_not_dead_lettered),
        T(a_done_range_item_whose_lease_expires_is_only_dropped),
        T(file_and_stdin_partitions_keep_their_ids_in_hashed_buckets),
        T(buckets_split_as_ids_come_and_keep_each_id_where_the_formula_puts_it),
        T(submit_sizes_the_buckets_for_a_known_total),
        T(a_job_from_before_buckets_keeps_its_set),
        T(a_split_partition_has_its_own_bitmap_from_the_cut),
        T(a_dense_batch_keeps_the_other_bits_of_its_bytes),
        T(a_sparse_batch_sets_and_reads_the_same_bits),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
