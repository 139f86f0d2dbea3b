/* The queue's error text follows hiredis's convention (issue 16, item 3): every failure leaves
 * text that says what failed, a success clears it, and drv_queue_strerror(q, e) is the message
 * a caller prints: the queue's text for a failure that has one, the code's own words for the
 * rest, never the text of an earlier failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

static void assert_cleared(void) {
    assert_string_equal(drv_queue_errstr(q), "");
}

static void assert_text(drv_err e, const char *want) {
    const char *msg = drv_queue_strerror(q, e);
    if (!strstr(msg, want)) fail_msg("expected \"%s\" in \"%s\"", want, msg);
    assert_string_equal(drv_queue_errstr(q), msg);
}

static void a_wrong_type_key_names_the_key_and_a_success_clears_it(void **state) {
    (void)state;
    rint_("SET drover:jobs x");
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_ECORRUPT);
    assert_text(DRV_ECORRUPT, "drover:jobs: WRONGTYPE");
    rint_("DEL drover:jobs");
    jobopt o = defaults();
    create_job("j", &o);
    assert_cleared();
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_cleared();
}

static void a_script_refusal_keeps_its_text_until_the_next_success(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    rint_("DEL drover:{j.0}:pending");
    rint_("SET drover:{j.0}:pending x");
    drv_claim c;
    assert_int_equal(drv_queue_claim(q, "j", 0, "w", 10, &c), DRV_ECORRUPT);
    assert_text(DRV_ECORRUPT, "drover:{j.0}:pending");
    rint_("DEL drover:{j.0}:pending");
    assert_int_equal(drv_queue_claim(q, "j", 0, "w", 10, &c), DRV_OK);
    claim_free(&c);
    assert_cleared();
}

static void a_failure_without_text_is_not_given_an_earlier_ones(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    drv_job j;
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    rint_("SET drover:jobs x");
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_ECORRUPT);
    rint_("DEL drover:jobs");
    /* A job that was replaced: the lock script answers, nothing is wrong with Redis. */
    int held = 0;
    drv_err e = drv_queue_lock_job(q, "j", j.created_ms + 1, "coord", 10000, &held);
    assert_int_equal(e, DRV_ENOJOB);
    assert_cleared();
    assert_string_equal(drv_queue_strerror(q, e), drv_strerror(DRV_ENOJOB));
}

static void bad_input_says_what_was_wrong(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    static drv_feed_item items[1001];
    for (size_t i = 0; i < 1001; i++)
        items[i] = (drv_feed_item){"1", 1, NULL, 0};
    drv_err e = drv_queue_feed(q, "j", 0, "1", "1002", 0, items, 1001, NULL);
    assert_int_equal(e, DRV_EINVAL);
    assert_text(DRV_EINVAL, "more than 1000");
}

static void a_refused_write_gives_redis_words_and_then_clears(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    const char *kv[] = {"rate", "1.5", NULL};
    rint_("CONFIG SET maxmemory-policy noeviction");
    rint_("CONFIG SET maxmemory 1");
    drv_err e = drv_queue_job_note(q, "j", kv);
    rint_("CONFIG SET maxmemory 0");
    assert_int_equal(e, DRV_EFULL);
    assert_text(DRV_EFULL, "OOM");
    assert_int_equal(drv_queue_job_note(q, "j", kv), DRV_OK);
    assert_cleared();
}

/* The queue's connection, found among the server's clients as the one that is not rc. */
static long long queue_client_id(void) {
    long long mine = rint_("CLIENT ID");
    char *list = rstr("CLIENT LIST");
    long long other = -1;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        long long id = strtoll(line + 3, NULL, 10); /* "id=N ..." */
        if (id != mine) other = id;
    }
    free(list);
    return other;
}

static void a_lost_connection_names_the_address_and_a_reconnect_clears_it(void **state) {
    (void)state;
    jobopt o = defaults();
    create_job("j", &o);
    long long id = queue_client_id();
    assert_true(id > 0);
    assert_int_equal(rint_("CLIENT KILL ID %lld", id), 1);
    drv_job j;
    drv_err e = drv_queue_job_get(q, "j", &j);
    assert_int_equal(e, DRV_EIO);
    assert_text(DRV_EIO, "127.0.0.1");
    /* Still broken: the same text, not an empty one. */
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_EIO);
    assert_text(DRV_EIO, "127.0.0.1");
    char why[256];
    assert_int_equal(drv_queue_reconnect(q, why, sizeof why), DRV_OK);
    assert_cleared();
    assert_int_equal(drv_queue_job_get(q, "j", &j), DRV_OK);
    assert_cleared();
}

static void the_first_failure_of_a_pipeline_keeps_its_text(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 3;
    create_job("j", &o);
    rint_("HSET drover:{j.0}:state fed abc");
    rint_("DEL drover:{j.2}:pending");
    rint_("SET drover:{j.2}:pending x");
    drv_part_stat st[3];
    assert_int_equal(drv_queue_stats(q, "j", 3, st), DRV_ECORRUPT);
    assert_text(DRV_ECORRUPT, "drover:{j.0}:state: field fed");
}

static void strerror_of_no_queue_or_no_failure_is_the_codes_words(void **state) {
    (void)state;
    assert_string_equal(drv_queue_strerror(NULL, DRV_EIO), drv_strerror(DRV_EIO));
    assert_string_equal(drv_queue_strerror(q, DRV_OK), drv_strerror(DRV_OK));
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(a_wrong_type_key_names_the_key_and_a_success_clears_it),
        T(a_script_refusal_keeps_its_text_until_the_next_success),
        T(a_failure_without_text_is_not_given_an_earlier_ones),
        T(bad_input_says_what_was_wrong),
        T(a_refused_write_gives_redis_words_and_then_clears),
        T(a_lost_connection_names_the_address_and_a_reconnect_clears_it),
        T(the_first_failure_of_a_pipeline_keeps_its_text),
        T(strerror_of_no_queue_or_no_failure_is_the_codes_words),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
