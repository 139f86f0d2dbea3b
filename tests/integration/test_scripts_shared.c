/* The constants C and the scripts share (common/shared.def) agree on both sides, against a real
 * redis-server: both are generated from that file, and these tests fail if either side is
 * edited by hand. The Lua side is read the way the scripts see it (the include `shared` run by
 * EVAL) and through behaviour that depends on it: the claim cap, the recovery batch, the
 * bucket splits; the C side through drv_shared.h's names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts.h"
#include "scripts_support.h"

#include <ctype.h>

/* The embedded text of the include `shared`: split_new.lua includes nothing else, so its
 * source is that include followed by the script, which starts with its @include line. */
static char *shared_lua(void) {
    const char *src = NULL;
    for (int i = 0; drv_script_sources[i].name; i++)
        if (strcmp(drv_script_sources[i].name, "split_new") == 0) src = drv_script_sources[i].src;
    assert_non_null(src);
    const char *end = strstr(src, "-- @include shared");
    assert_non_null(end);
    return strndup(src, (size_t)(end - src));
}

/* The Lua K_* index of each partition key is its place in drv_part_key_names: KEYS[K_NAME] is
 * the key named NAME that drv_keys_part built. */
static void the_scripts_key_indices_match_the_c_key_names(void **state) {
    (void)state;
    char *lua = shared_lua();
    char script[4096];
    int n = snprintf(script, sizeof script, "%sreturn {", lua);
    for (int i = 0; i < DRV_PART_NKEYS; i++) {
        char up[32];
        size_t k = 0;
        for (const char *c = drv_part_key_names[i]; *c && k < sizeof up - 1; c++)
            up[k++] = (char)toupper((unsigned char)*c);
        up[k] = '\0';
        n += snprintf(script + n, sizeof script - (size_t)n, "KEYS[K_%s], ", up);
    }
    snprintf(script + n, sizeof script - (size_t)n, "#KEYS}");
    free(lua);

    drv_part_keys keys;
    drv_keys_part(&keys, "drover:", "j", 0);
    const char *argv[3 + DRV_PART_NKEYS];
    size_t lens[3 + DRV_PART_NKEYS];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", DRV_PART_NKEYS);
    argv[0] = "EVAL", lens[0] = 4;
    argv[1] = script, lens[1] = strlen(script);
    argv[2] = nk, lens[2] = strlen(nk);
    for (int i = 0; i < DRV_PART_NKEYS; i++)
        argv[3 + i] = keys.ptr[i], lens[3 + i] = keys.len[i];
    redisReply *r = redisCommandArgv(rc, 3 + DRV_PART_NKEYS, argv, lens);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("EVAL: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, DRV_PART_NKEYS + 1);
    for (int i = 0; i < DRV_PART_NKEYS; i++) {
        char want[DRV_KEY_MAX];
        snprintf(want, sizeof want, "drover:{j.0}:%s", drv_part_key_names[i]);
        assert_string_equal(r->element[i]->str, want);
    }
    assert_int_equal(r->element[DRV_PART_NKEYS]->integer, DRV_PART_NKEYS);
    freeReplyObject(r);
}

/* The Lua constants, read as the scripts read them, have the C values. */
static void the_scripts_constants_are_the_c_ones(void **state) {
    (void)state;
    char *lua = shared_lua();
    char script[4096];
    snprintf(script, sizeof script, "%sreturn {BATCH_MAX, DONE_LOAD}", lua);
    free(lua);
    redisReply *r = redisCommand(rc, "EVAL %s 0", script);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("EVAL: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, DRV_BATCH_MAX);
    assert_int_equal(r->element[1]->integer, DRV_DONE_LOAD);
    freeReplyObject(r);
}

/* A claim leases at most BATCH_MAX items (lua/lib/claim.lua), the most the C side acks in one
 * ackclaim call: one more ack is refused before anything is sent. */
static void a_claim_and_an_ackclaim_take_at_most_batch_max(void **state) {
    (void)state;
    jobopt o = defaults();
    job_with_items("j", &o, DRV_BATCH_MAX + 10);
    drv_claim c;
    claim("j", DRV_BATCH_MAX + 1, "w", &c);
    assert_int_equal(c.n, DRV_BATCH_MAX);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), 10);

    drv_ref *refs = calloc(DRV_BATCH_MAX + 1, sizeof *refs);
    assert_non_null(refs);
    for (size_t i = 0; i < c.n; i++)
        refs[i] = ref_of(&c.items[i]);
    refs[DRV_BATCH_MAX] = refs[0];
    drv_ack_result ack;
    drv_claim d;
    assert_int_equal(drv_queue_ackclaim(q, "j", 0, "w", 1, refs, NULL, DRV_BATCH_MAX + 1, &ack, &d),
                     DRV_EINVAL);
    assert_int_equal(drv_queue_ackclaim(q, "j", 0, "w", 1, refs, NULL, DRV_BATCH_MAX, &ack, &d),
                     DRV_OK);
    assert_int_equal(ack.acked, DRV_BATCH_MAX);
    assert_int_equal(d.n, 1);
    claim_free(&d);
    free(refs);
    claim_free(&c);
}

/* Recovery moves at most BATCH_MAX due retries a call: the coordinator reaps a partition again
 * while a reap recovered that many (coordinator/run.c). */
static void a_reap_recovers_at_most_batch_max_due_retries(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    for (int i = 1; i <= DRV_BATCH_MAX + 7; i++)
        rint_("ZADD drover:{j.0}:retry 0 %d", i);
    drv_part_stat st;
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.recovered, DRV_BATCH_MAX);
    assert_int_equal(drv_queue_reap(q, "j", 0, &st), DRV_OK);
    assert_int_equal(st.recovered, 7);
    assert_int_equal(rint_("LLEN drover:{j.0}:pending"), DRV_BATCH_MAX + 7);
}

/* Submit sizes a partition's buckets for DONE_LOAD ids each (C), and the scripts split one only
 * once the ids pass DONE_LOAD a bucket (Lua): a job of exactly that many keeps its buckets. */
static void buckets_sized_by_submit_split_only_past_done_load(void **state) {
    (void)state;
    jobopt o = defaults();
    o.payloads = 1;
    drv_spec s = spec_of("j", &o);
    drv_part_init part;
    memset(&part, 0, sizeof part);
    snprintf(part.cursor, sizeof part.cursor, "0");
    assert_int_equal(drv_queue_job_create(q, &s, 2 * DRV_DONE_LOAD, &part, 0), DRV_OK);
    assert_int_equal(rint_("HGET drover:{j.0}:state done_buckets"), 2);

    feed_ids_as("j", 0, "u", 1, 2 * DRV_DONE_LOAD + 1);
    drv_claim c;
    claim("j", 2 * DRV_DONE_LOAD + 1, "w", &c);
    assert_int_equal(c.n, 2 * DRV_DONE_LOAD + 1);
    drv_ref refs[2 * DRV_DONE_LOAD + 1];
    for (size_t i = 0; i < c.n; i++)
        refs[i] = ref_of(&c.items[i]);
    drv_ack_result res;
    assert_int_equal(drv_queue_ack(q, "j", 0, refs, 2 * DRV_DONE_LOAD, &res), DRV_OK);
    assert_int_equal(res.acked, 2 * DRV_DONE_LOAD);
    assert_int_equal(rint_("HGET drover:{j.0}:state done_buckets"), 2);
    assert_int_equal(drv_queue_ack(q, "j", 0, refs + 2 * DRV_DONE_LOAD, 1, &res), DRV_OK);
    assert_int_equal(res.acked, 1);
    assert_int_equal(rint_("HGET drover:{j.0}:state done_buckets"), 3);
    claim_free(&c);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(the_scripts_key_indices_match_the_c_key_names),
        T(the_scripts_constants_are_the_c_ones),
        T(a_claim_and_an_ackclaim_take_at_most_batch_max),
        T(a_reap_recovers_at_most_batch_max_due_retries),
        T(buckets_sized_by_submit_split_only_past_done_load),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
