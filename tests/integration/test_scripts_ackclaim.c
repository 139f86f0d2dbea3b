/* lua/ackclaim.lua through drv_queue_ackclaim: a worker's acks for a partition and its next
 * claim in one call. Each case checks what an operator would see with redis-cli. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scripts_support.h"

static drv_ref refs_of(const drv_claim *c, size_t i) {
    return ref_of(&c->items[i]);
}

/* Acks everything of c and claims up to 'max' more in one call. */
static drv_err ackclaim_all(const drv_claim *c, int max, const char *worker, drv_ack_result *a,
                            drv_claim *next) {
    drv_ref r[16];
    assert_true(c->n <= 16);
    for (size_t i = 0; i < c->n; i++)
        r[i] = refs_of(c, i);
    return drv_queue_ackclaim(q, "j", 0, worker, max, r, NULL, c->n, a, next);
}

static void acks_the_batch_and_leases_the_next_in_one_call(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 5);
    drv_claim c, d;
    claim("j", 3, "w", &c);
    drv_ack_result a = {-1, -1, -1};
    assert_int_equal(ackclaim_all(&c, 3, "w", &a, &d), DRV_OK);
    assert_int_equal(a.acked, 3);
    assert_int_equal(a.duplicates, 0);
    assert_int_equal(a.unknown, 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.items[0].id, "4");
    assert_string_equal(d.items[1].id, "5");
    assert_int_equal(d.items[0].attempt, 1);
    assert_true(d.items[0].token > c.items[0].token);
    assert_int_equal(done_count("j", 0), 3);
    for (const char *const *id = (const char *const[]){"1", "2", "3", NULL}; *id; id++)
        assert_int_equal(is_done("j", 0, *id), 1);
    /* One lease for the claim: 4 and 5, under the new token. */
    assert_int_equal(leased_count("j", 0), 2);
    assert_int_equal(rint_("HLEN drover:{j.0}:owner"), 1);
    char want[64];
    snprintf(want, sizeof want, "%" PRId64 ":w", d.items[0].token);
    assert_holder(want, "j", 0, "4");
    assert_holder(want, "j", 0, "5");
    assert_int_equal(counter("j", 0, "done"), 3);
    /* The last batch: acks with nothing left to claim. */
    drv_claim e;
    assert_int_equal(ackclaim_all(&d, 3, "w", &a, &e), DRV_OK);
    assert_int_equal(a.acked, 2);
    assert_int_equal(e.n, 0);
    assert_int_equal(done_count("j", 0), 5);
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased drover:{j.0}:owner"), 0);
    /* No acks at all is a plain claim. */
    assert_int_equal(drv_queue_ackclaim(q, "j", 0, "w", 3, NULL, NULL, 0, &a, &e), DRV_OK);
    assert_int_equal(a.acked, 0);
    assert_int_equal(e.n, 0);
    claim_free(&c);
    claim_free(&d);
}

static void a_lease_lost_between_claim_and_ack_counts_a_duplicate_and_is_done_once(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 1);
    drv_claim c, b, d;
    claim("j", 1, "w1", &c);
    claim_when_back("j", 1, "w2", &b); /* the lease expired and went to w2 */
    assert_int_equal(b.items[0].attempt, 2);
    drv_ack_result a;
    assert_int_equal(ackclaim_all(&c, 1, "w1", &a, &d), DRV_OK);
    assert_int_equal(a.acked, 1);
    assert_int_equal(a.duplicates, 1);
    assert_int_equal(d.n, 0);
    /* w2 still holds its lease; its ack releases it and counts nothing more. */
    assert_int_equal(is_done("j", 0, "1"), 1);
    assert_int_equal(ackclaim_all(&b, 1, "w2", &a, &d), DRV_OK);
    assert_int_equal(a.acked, 0);
    assert_int_equal(a.duplicates, 0);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(counter("j", 0, "duplicates"), 1);
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased drover:{j.0}:owner drover:{j.0}:tries"), 0);
    claim_free(&c);
    claim_free(&b);
}

static void an_expired_first_delivery_acked_late_is_known_not_unknown(void **state) {
    (void)state;
    jobopt o = defaults();
    o.lease_ms = 100;
    job_with_items("j", &o, 1);
    drv_claim c, d;
    claim("j", 1, "w1", &c);
    assert_int_equal(rint_("HEXISTS drover:{j.0}:tries 1"), 0); /* first delivery: no entry */
    drv_part_stat st;
    reap_until("j", nothing_leased, &st); /* the lease expired: back in pending, tries 1 */
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 1);
    drv_ack_result a;
    assert_int_equal(ackclaim_all(&c, 1, "w1", &a, &d), DRV_OK);
    assert_int_equal(a.acked, 1);
    assert_int_equal(a.duplicates, 1);
    assert_int_equal(a.unknown, 0);
    assert_int_equal(d.n, 0); /* done is final: the pending copy is skipped */
    assert_int_equal(counter("j", 0, "skipped"), 1);
    claim_free(&c);
}

static void a_double_ack_in_one_call_marks_done_once(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_claim c, d;
    claim("j", 1, "w", &c);
    drv_ref r[2] = {refs_of(&c, 0), refs_of(&c, 0)};
    drv_ack_result a;
    assert_int_equal(drv_queue_ackclaim(q, "j", 0, "w", 1, r, NULL, 2, &a, &d), DRV_OK);
    assert_int_equal(a.acked, 1);
    assert_int_equal(a.duplicates, 0);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0].id, "2");
    /* The same ack again, in the next call: the lease is gone, so it is a late ack. */
    drv_claim e;
    assert_int_equal(drv_queue_ackclaim(q, "j", 0, "w", 1, r, NULL, 1, &a, &e), DRV_OK);
    assert_int_equal(a.acked, 0);
    assert_int_equal(a.duplicates, 1);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(e.n, 0);
    claim_free(&c);
    claim_free(&d);
}

static void an_id_never_handed_out_is_unknown(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_ref r = {"77", 2, 5};
    drv_ack_result a;
    drv_claim d;
    assert_int_equal(drv_queue_ackclaim(q, "j", 0, "w", 1, &r, NULL, 1, &a, &d), DRV_OK);
    assert_int_equal(a.acked, 0);
    assert_int_equal(a.unknown, 1);
    assert_int_equal(is_done("j", 0, "77"), 0);
    assert_int_equal(d.n, 1);
    claim_free(&d);
}

static void a_paused_partition_takes_the_acks_and_leases_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3);
    drv_claim c, d;
    claim("j", 1, "w", &c);
    rint_("HSET drover:{j.0}:state state paused");
    drv_ack_result a = {0};
    memset(&d, 0, sizeof d);
    assert_int_equal(ackclaim_all(&c, 2, "w", &a, &d), DRV_EPAUSED);
    assert_int_equal(a.acked, 1);
    assert_int_equal(d.n, 0);
    assert_null(d.items);
    assert_int_equal(is_done("j", 0, "1"), 1);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2);
    assert_int_equal(rint_("EXISTS drover:{j.0}:leased"), 0);
    assert_int_equal(counter("j", 0, "token"), 1); /* only the first claim's */
    claim_free(&c);
}

static void a_cancelled_partition_takes_the_acks_and_leases_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 3);
    drv_claim c, d;
    claim("j", 1, "w", &c);
    rint_("HSET drover:{j.0}:state state cancelled");
    drv_ack_result a = {0};
    assert_int_equal(ackclaim_all(&c, 2, "w", &a, &d), DRV_ECANCELLED);
    assert_int_equal(a.acked, 1);
    assert_int_equal(d.n, 0);
    assert_int_equal(counter("j", 0, "done"), 1);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 2);
    claim_free(&c);
}

static void an_unknown_job_or_partition_is_enojob_and_records_nothing(void **state) {
    (void)state;
    drv_ref r = {"1", 1, 1};
    drv_ack_result a;
    drv_claim d;
    assert_int_equal(drv_queue_ackclaim(q, "nope", 0, "w", 1, &r, NULL, 1, &a, &d), DRV_ENOJOB);
    assert_int_equal(rint_("DBSIZE"), 0);
    jobopt o = defaults();
    job_with_items("j", &o, 1);
    assert_int_equal(drv_queue_ackclaim(q, "j", 1, "w", 1, &r, NULL, 1, &a, &d), DRV_ENOJOB);
    assert_int_equal(rint_("EXISTS drover:{j.1}:done drover:{j.1}:state"), 0);
}

static void a_done_partition_takes_acks_and_leases_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_claim c, d;
    claim("j", 1, "w", &c);
    rint_("HSET drover:{j.0}:state state done");
    drv_ack_result a;
    assert_int_equal(ackclaim_all(&c, 1, "w", &a, &d), DRV_OK);
    assert_int_equal(a.acked, 1);
    assert_int_equal(d.n, 0);
    claim_free(&c);
}

static void a_retried_item_gets_its_attempt_from_tries(void **state) {
    (void)state;
    jobopt o = defaults();
    o.backoff_ms = 1;
    o.backoff_max_ms = 1;
    job_with_items("j", &o, 1);
    drv_claim c, b, d;
    claim("j", 1, "w", &c);
    drv_failure f = failure_of(&c.items[0], 0, 0, "{\"error\":\"x\"}");
    assert_int_equal(drv_queue_fail(q, "j", 0, &f, 1, NULL), DRV_OK);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 1); /* written by the failure */
    claim_when_back("j", 1, "w", &b);
    assert_int_equal(b.items[0].attempt, 2);
    assert_int_equal(rint_("HGET drover:{j.0}:tries 1"), 2);
    drv_ack_result a;
    assert_int_equal(ackclaim_all(&b, 1, "w", &a, &d), DRV_OK);
    assert_int_equal(a.acked, 1);
    assert_int_equal(rint_("EXISTS drover:{j.0}:tries drover:{j.0}:errors"), 0);
    claim_free(&c);
    claim_free(&b);
}

static void responses_are_kept_for_the_items_marked_done(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 2);
    drv_claim c, d;
    claim("j", 2, "w", &c);
    drv_ref r[2] = {refs_of(&c, 0), refs_of(&c, 1)};
    drv_bytes resp[2] = {{"hello", 5}, {NULL, 0}};
    drv_ack_result a;
    assert_int_equal(drv_queue_ackclaim(q, "j", 0, "w", 1, r, resp, 2, &a, &d), DRV_OK);
    assert_int_equal(a.acked, 2);
    assert_rstr("hello", "HGET drover:{j.0}:results 1");
    assert_rstr("", "HGET drover:{j.0}:results 2");
    claim_free(&c);
}

static void more_than_1000_acks_is_einval_and_sends_nothing(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, 1);
    static drv_ref r[1001];
    for (int i = 0; i < 1001; i++)
        r[i] = (drv_ref){"1", 1, 1};
    drv_ack_result a;
    drv_claim d;
    assert_int_equal(drv_queue_ackclaim(q, "j", 0, "w", 1, r, NULL, 1001, &a, &d), DRV_EINVAL);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 1);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(acks_the_batch_and_leases_the_next_in_one_call),
        T(a_lease_lost_between_claim_and_ack_counts_a_duplicate_and_is_done_once),
        T(an_expired_first_delivery_acked_late_is_known_not_unknown),
        T(a_double_ack_in_one_call_marks_done_once),
        T(an_id_never_handed_out_is_unknown),
        T(a_paused_partition_takes_the_acks_and_leases_nothing),
        T(a_cancelled_partition_takes_the_acks_and_leases_nothing),
        T(an_unknown_job_or_partition_is_enojob_and_records_nothing),
        T(a_done_partition_takes_acks_and_leases_nothing),
        T(a_retried_item_gets_its_attempt_from_tries),
        T(responses_are_kept_for_the_items_marked_done),
        T(more_than_1000_acks_is_einval_and_sends_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
