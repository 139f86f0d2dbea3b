/* Parsing what users type: job specs, Redis URLs, flags and environment variables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "keys.h"
#include "spec.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- specs ----------------------------------------------------------------------------------- */

static drv_err parse(const char *json, drv_spec *s, char *why, size_t whylen) {
    return drv_spec_parse(json, strlen(json), s, why, whylen);
}

static void spec_range_gets_defaults(void **state) {
    (void)state;
    drv_spec s;
    char why[512];
    assert_int_equal(parse("{\"id\":\"j-1\",\"source\":{\"type\":\"range\",\"start\":5,\"end\":9}}",
                           &s, why, sizeof why),
                     DRV_OK);
    assert_string_equal(s.id, "j-1");
    assert_int_equal(s.source, DRV_SRC_RANGE);
    assert_int_equal(s.range_start, 5);
    assert_int_equal(s.range_end, 9);
    assert_int_equal(s.partitions, 8);
    assert_int_equal(s.lease_ms, 30000);
    assert_int_equal(s.max_attempts, 5);
    assert_int_equal(s.window, 5000);
}

static void spec_file_and_stdin_sources_parse(void **state) {
    (void)state;
    drv_spec s;
    char why[512];
    assert_int_equal(parse("{\"source\":{\"type\":\"file\",\"path\":\"/x.csv\",\"format\":\"csv\","
                           "\"id_field\":\"uid\"},\"partitions\":3,\"lease_ms\":500}",
                           &s, why, sizeof why),
                     DRV_OK);
    assert_int_equal(s.source, DRV_SRC_FILE);
    assert_int_equal(s.format, DRV_FMT_CSV);
    assert_string_equal(s.path, "/x.csv");
    assert_string_equal(s.id_field, "uid");
    assert_int_equal(s.partitions, 3);
    assert_int_equal(s.lease_ms, 500);
    assert_int_equal(parse("{\"source\":{\"type\":\"stdin\"}}", &s, why, sizeof why), DRV_OK);
    assert_int_equal(s.source, DRV_SRC_STDIN);
    assert_int_equal(s.format, DRV_FMT_LINES);
}

/* Each bad spec must fail with a message that names the field (or the position). */
static void spec_errors_name_the_field(void **state) {
    (void)state;
    static const struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2}", "malformed JSON at line 1"},
        {"{\n\"source\": {,}}", "line 2"},
        {"[1]", "JSON object at the top level"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"partitons\":4}", "partitons"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2,\"step\":1}}", "source.step"},
        {"{\"partitions\":4}", "source: missing"},
        {"{\"source\":{\"type\":\"range\",\"start\":1}}", "needs \"start\" and \"end\""},
        {"{\"source\":{\"type\":\"range\",\"start\":3,\"end\":2}}", "greater than its end"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"partitions\":0}",
         "partitions: expected 1 to 1024"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"partitions\":1025}",
         "partitions"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"partitions\":1.5}",
         "partitions: expected a whole number"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"partitions\":\"8\"}",
         "partitions: expected a whole number"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"lease_ms\":5}", "lease_ms"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"max_attempts\":0}",
         "max_attempts"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"backoff_ms\":10,"
         "\"backoff_max_ms\":5}",
         "backoff_max_ms"},
        {"{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},\"window\":0}", "window"},
        {"{\"source\":{\"type\":\"queue\"}}", "source.type: expected range, file or stdin"},
        {"{\"source\":{\"type\":\"file\"}}", "source.path"},
        {"{\"source\":{\"type\":\"file\",\"path\":\"x\",\"format\":\"ndjson\"}}",
         "source.id_field"},
        {"{\"source\":{\"type\":\"file\",\"path\":\"x\",\"id_field\":\"a\"}}", "source.id_field"},
        {"{\"source\":{\"type\":\"file\",\"path\":\"x\",\"format\":\"xml\"}}", "source.format"},
        {"{\"source\":{\"type\":\"stdin\",\"path\":\"x\"}}", "source.path"},
        {"{\"id\":\"a b\",\"source\":{\"type\":\"range\",\"start\":1,\"end\":2}}", "id:"},
        {"{\"id\":\"{x}\",\"source\":{\"type\":\"range\",\"start\":1,\"end\":2}}", "id:"},
        {"{\"id\":7,\"source\":{\"type\":\"range\",\"start\":1,\"end\":2}}",
         "id: expected a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        drv_spec s;
        char why[512] = "";
        drv_err e = parse(cases[i].json, &s, why, sizeof why);
        if (e != DRV_EINVAL || !strstr(why, cases[i].needle))
            fail_msg("case %zu: %s -> %d \"%s\", expected \"%s\"", i, cases[i].json, e, why,
                     cases[i].needle);
    }
}

static void spec_round_trips_through_json(void **state) {
    (void)state;
    drv_spec a, b;
    char why[512];
    assert_int_equal(parse("{\"id\":\"r\",\"source\":{\"type\":\"file\",\"path\":\"/d/u.ndjson\","
                           "\"format\":\"ndjson\",\"id_field\":\"k\"},\"partitions\":16,"
                           "\"max_attempts\":9,\"backoff_ms\":7,\"backoff_max_ms\":70,"
                           "\"window\":123,\"max_item_bytes\":4096}",
                           &a, why, sizeof why),
                     DRV_OK);
    char *json = drv_spec_to_json(&a);
    assert_non_null(json);
    assert_int_equal(parse(json, &b, why, sizeof why), DRV_OK);
    assert_memory_equal(&a, &b, sizeof a);
    free(json);
}

static void range_bounds_stay_within_what_json_holds_exactly(void **state) {
    (void)state;
    drv_spec s;
    char why[512];
    drv_spec_init(&s);
    s.range_start = 1;
    s.range_end = 9007199254740992LL; /* 2^53: still exact */
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_OK);
    s.range_end += 1;
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "2^53"));
}

static void range_flag_parses_inclusive_bounds(void **state) {
    (void)state;
    int64_t a, b;
    assert_int_equal(drv_range_parse("1..10", &a, &b), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 10);
    assert_int_equal(drv_range_parse("-5..-1", &a, &b), 0);
    assert_int_equal(a, -5);
    assert_int_equal(drv_range_parse("1-10", &a, &b), -1);
    assert_int_equal(drv_range_parse("..10", &a, &b), -1);
    assert_int_equal(drv_range_parse("1..", &a, &b), -1);
    assert_int_equal(drv_range_parse("1..x", &a, &b), -1);
}

/* ---- URLs ---------------------------------------------------------------------------------------
 */

static void url_parses_host_port_db_and_credentials(void **state) {
    (void)state;
    drv_redis_cfg c;
    char why[256];
    assert_int_equal(drv_url_parse("redis://cache.internal", &c, why, sizeof why), DRV_OK);
    assert_string_equal(c.host, "cache.internal");
    assert_int_equal(c.port, 6379);
    assert_int_equal(c.db, 0);
    assert_int_equal(drv_url_parse("redis://app:p%40ss%3Aw@10.0.0.1:6380/3", &c, why, sizeof why),
                     DRV_OK);
    assert_string_equal(c.user, "app");
    assert_string_equal(c.password, "p@ss:w");
    assert_string_equal(c.host, "10.0.0.1");
    assert_int_equal(c.port, 6380);
    assert_int_equal(c.db, 3);
    assert_int_equal(drv_url_parse("redis://secret@h:1/", &c, why, sizeof why), DRV_OK);
    assert_string_equal(c.user, "");
    assert_string_equal(c.password, "secret");
    assert_int_equal(drv_url_parse("redis://[::1]:7000/2", &c, why, sizeof why), DRV_OK);
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 7000);
    assert_int_equal(drv_url_parse("unix:///run/redis.sock?db=4", &c, why, sizeof why), DRV_OK);
    assert_string_equal(c.path, "/run/redis.sock");
    assert_int_equal(c.db, 4);
    assert_int_equal(drv_url_parse("unix://:pw@/tmp/r.sock", &c, why, sizeof why), DRV_OK);
    assert_string_equal(c.password, "pw");
    assert_string_equal(c.path, "/tmp/r.sock");
}

static void url_errors_say_what_is_wrong(void **state) {
    (void)state;
    static const char *bad[][2] = {
        {"", "empty"},
        {"http://h:1", "expected redis://"},
        {"redis://", "missing host"},
        {"redis://h:0", "bad port"},
        {"redis://h:65536", "bad port"},
        {"redis://h:abc", "bad port"},
        {"redis://h:1/x", "bad database"},
        {"redis://h:1/2/3", "bad database"},
        {"redis://%4@h", "password"},
        {"redis://%zz@h", "password"},
        {"redis://%00@h", "password"},
        {"redis://[::1", "unterminated"},
        {"unix://relative.sock", "absolute path"},
        {"unix:///r.sock?db=x", "?db=N"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        drv_redis_cfg c;
        char why[256] = "";
        if (drv_url_parse(bad[i][0], &c, why, sizeof why) != DRV_EINVAL || !strstr(why, bad[i][1]))
            fail_msg("\"%s\" -> \"%s\", expected \"%s\"", bad[i][0], why, bad[i][1]);
    }
}

static void url_description_never_shows_the_password(void **state) {
    (void)state;
    drv_redis_cfg c;
    char why[256], d[320];
    assert_int_equal(drv_url_parse("redis://u:hunter2@h:1/2", &c, why, sizeof why), DRV_OK);
    drv_url_describe(&c, d, sizeof d);
    assert_string_equal(d, "redis://u@h:1/2");
    assert_null(strstr(d, "hunter2"));
}

/* ---- flags and environment
 * ----------------------------------------------------------------------- */

static const char *s_opt;
static long long n_opt;
static int b_opt;
static const drv_opt opts[] = {
    {"name", "DRV_TEST_NAME", DRV_OPT_STR, "dflt", "S", "a string", 0, 0, &s_opt},
    {"count", "DRV_TEST_COUNT", DRV_OPT_INT, "3", "N", "a number", 1, 10, &n_opt},
    {"flag", NULL, DRV_OPT_BOOL, NULL, NULL, "a switch", 0, 0, &b_opt},
    {0},
};
static const drv_cmd_doc doc = {"t [OPTIONS]", "A test.", "  t --count 4"};

static int run(int argc, char **argv, char **pos, int *npos) {
    return drv_opts_parse(opts, &doc, argc, argv, pos, 2, npos, NULL, NULL);
}

static void flags_beat_env_which_beats_defaults(void **state) {
    (void)state;
    char *pos[2];
    int npos;
    unsetenv("DRV_TEST_NAME");
    unsetenv("DRV_TEST_COUNT");
    char *a0[] = {"t"};
    assert_int_equal(run(1, a0, pos, &npos), DRV_OPTS_OK);
    assert_string_equal(s_opt, "dflt");
    assert_int_equal(n_opt, 3);
    assert_false(b_opt);
    setenv("DRV_TEST_COUNT", "5", 1);
    assert_int_equal(run(1, a0, pos, &npos), DRV_OPTS_OK);
    assert_int_equal(n_opt, 5);
    char *a1[] = {"t", "--count=7", "job", "--name", "x", "--flag", "more"};
    assert_int_equal(run(7, a1, pos, &npos), DRV_OPTS_OK);
    assert_int_equal(n_opt, 7);
    assert_string_equal(s_opt, "x");
    assert_true(b_opt);
    assert_int_equal(npos, 2);
    assert_string_equal(pos[0], "job");
    assert_string_equal(pos[1], "more");
    unsetenv("DRV_TEST_COUNT");
}

static void bad_flags_and_env_values_are_errors(void **state) {
    (void)state;
    char *pos[2];
    int npos;
    char *a[][3] = {{"t", "--count", "11"}, {"t", "--count", "x"}, {"t", "--nope", "1"},
                    {"t", "--count", NULL}, {"t", "-x", NULL},     {"t", "--", NULL}};
    int argcs[] = {3, 3, 3, 2, 2, 2};
    for (int i = 0; i < 6; i++)
        assert_int_equal(run(argcs[i], a[i], pos, &npos), DRV_OPTS_ERROR);
    char *three[] = {"t", "a", "b", "c"};
    assert_int_equal(run(4, three, pos, &npos), DRV_OPTS_ERROR); /* too many positionals */
    setenv("DRV_TEST_COUNT", "lots", 1);
    char *a0[] = {"t"};
    assert_int_equal(run(1, a0, pos, &npos), DRV_OPTS_ERROR);
    unsetenv("DRV_TEST_COUNT");
    char **rest;
    int nrest;
    char *dd[] = {"t", "--flag", "--", "cmd", "--count"};
    assert_int_equal(drv_opts_parse(opts, &doc, 5, dd, pos, 2, &npos, &rest, &nrest), DRV_OPTS_OK);
    assert_int_equal(nrest, 2);
    assert_string_equal(rest[0], "cmd");
    assert_string_equal(rest[1], "--count");
}

static void help_is_generated_from_the_table(void **state) {
    (void)state;
    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    drv_opts_help(opts, &doc, f);
    fclose(f);
    assert_non_null(strstr(buf, "Usage: t [OPTIONS]"));
    assert_non_null(strstr(buf, "--count N"));
    assert_non_null(strstr(buf, "(default: 3)"));
    assert_non_null(strstr(buf, "[env DRV_TEST_COUNT]"));
    assert_non_null(strstr(buf, "Example:\n  t --count 4"));
}

static void job_ids_cannot_break_a_hash_tag(void **state) {
    (void)state;
    assert_true(drv_job_id_valid("backfill_2026-11"));
    assert_false(drv_job_id_valid(""));
    assert_false(drv_job_id_valid("a}b"));
    assert_false(drv_job_id_valid("a{b"));
    assert_false(drv_job_id_valid("a.b"));
    assert_false(drv_job_id_valid("a b"));
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    assert_false(drv_job_id_valid(long_id));
    long_id[64] = '\0';
    assert_true(drv_job_id_valid(long_id));
    drv_part_keys k;
    drv_keys_part(&k, "drover:", "j", 3);
    assert_string_equal(k.key[0], "drover:{j.3}:state");
    assert_string_equal(k.key[9], "drover:{j.3}:items");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_range_gets_defaults),
        cmocka_unit_test(spec_file_and_stdin_sources_parse),
        cmocka_unit_test(spec_errors_name_the_field),
        cmocka_unit_test(spec_round_trips_through_json),
        cmocka_unit_test(range_bounds_stay_within_what_json_holds_exactly),
        cmocka_unit_test(range_flag_parses_inclusive_bounds),
        cmocka_unit_test(url_parses_host_port_db_and_credentials),
        cmocka_unit_test(url_errors_say_what_is_wrong),
        cmocka_unit_test(url_description_never_shows_the_password),
        cmocka_unit_test(flags_beat_env_which_beats_defaults),
        cmocka_unit_test(bad_flags_and_env_values_are_errors),
        cmocka_unit_test(help_is_generated_from_the_table),
        cmocka_unit_test(job_ids_cannot_break_a_hash_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
