/* Issue 15, items 9 to 11: what a handler's child inherits, which hosts and ports and which
 * ${NAME}s a worker allows, a password kept out of argv, and input that would be silently
 * changed (numbers past 2^53 in a spec, an escaped NUL in an NDJSON id). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli.h"
#include "handler.h"
#include "source.h"
#include "spec.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the child's environment ----------------------------------------------------------------- */

static void child_env_withholds_the_connection_settings(void **state) {
    (void)state;
    assert_int_equal(drv_env_for_child("DROVER_REDIS_URL=redis://:pw@h:1", NULL), 0);
    assert_int_equal(drv_env_for_child("DROVER_PREFIX=x:", NULL), 0);
    assert_int_equal(drv_env_for_child("DROVER_CONNECT_TIMEOUT_MS=1", NULL), 0);
    assert_int_equal(drv_env_for_child("DROVER_COMMAND_TIMEOUT_MS=1", NULL), 0);
    /* Everything else goes through, including names that merely start the same way. */
    assert_int_equal(drv_env_for_child("DROVER_REDIS_URLX=1", NULL), 1);
    assert_int_equal(drv_env_for_child("PATH=/bin", NULL), 1);
    assert_int_equal(drv_env_for_child("DROVER_JOB_ID=j", NULL), 1);
    /* --pass-env gives exactly the named ones back. */
    assert_int_equal(drv_env_for_child("DROVER_REDIS_URL=x", "DROVER_PREFIX,DROVER_REDIS_URL"), 1);
    assert_int_equal(drv_env_for_child("DROVER_PREFIX=x", "DROVER_REDIS_URL"), 0);
}

static void pass_env_names_only_withheld_variables(void **state) {
    (void)state;
    char why[400];
    assert_int_equal(drv_pass_env_check("DROVER_REDIS_URL", why, sizeof why), 0);
    assert_int_equal(drv_pass_env_check("DROVER_REDIS_URL,DROVER_PREFIX", why, sizeof why), 0);
    assert_int_equal(drv_pass_env_check("HOME", why, sizeof why), -1);
    assert_non_null(strstr(why, "\"HOME\""));
    assert_int_equal(drv_pass_env_check("DROVER_REDIS_URL,", why, sizeof why), -1);
}

/* ---- the password in argv -------------------------------------------------------------------- */

static void password_span_finds_the_password(void **state) {
    (void)state;
    size_t off, len;
    const char *u = "redis://user:s3cret@h:6379/0";
    assert_int_equal(drv_url_password_span(u, &off, &len), 1);
    assert_int_equal(len, 6);
    assert_memory_equal(u + off, "s3cret", 6);
    u = "redis://s3cret@h";
    assert_int_equal(drv_url_password_span(u, &off, &len), 1);
    assert_memory_equal(u + off, "s3cret", len);
    u = "redis+sentinel://:p%40w@h1:1,h2:2/m";
    assert_int_equal(drv_url_password_span(u, &off, &len), 1);
    assert_memory_equal(u + off, "p%40w", len);
    assert_int_equal(drv_url_password_span("redis://h:1/0", &off, &len), 0);
}

static void hide_password_overwrites_argv_and_keeps_a_copy(void **state) {
    (void)state;
    char a0[] = "drover-worker", a1[] = "--redis", a2[] = "redis://u:pw@h:1",
         a3[] = "--redis=redis://:xyz@h", a4[] = "--", a5[] = "--redis", a6[] = "redis://:k@h";
    char *argv[] = {a0, a1, a2, a3, a4, a5, a6, NULL};
    drv_cli_hide_password(7, argv);
    /* What ps shows (the original bytes) */
    assert_string_equal(a2, "redis://u:**@h:1");
    assert_string_equal(a3, "--redis=redis://:***@h");
    /* what the parser reads */
    assert_string_equal(argv[2], "redis://u:pw@h:1");
    assert_string_equal(argv[3], "--redis=redis://:xyz@h");
    /* after "--" it is the handler's command: untouched */
    assert_string_equal(a6, "redis://:k@h");
    assert_ptr_equal(argv[6], a6);
    /* The copies live as long as the process in drover; here the test's argv ends now. */
    free(argv[2]);
    free(argv[3]);
}

/* ---- --http-allow ---------------------------------------------------------------------------- */

static void host_rules_match_host_and_port(void **state) {
    (void)state;
    drv_host_rule *r;
    int n;
    char why[400];
    assert_int_equal(drv_host_rules_parse("api.example.com,127.0.0.1:8080,any.example:*,[::1]:9",
                                          &r, &n, why, sizeof why),
                     DRV_OK);
    assert_int_equal(n, 4);
    /* A bare host: its scheme's default port only. */
    assert_int_equal(drv_host_rules_match(r, n, "https", "API.example.com", 443), 1);
    assert_int_equal(drv_host_rules_match(r, n, "http", "api.example.com", 80), 1);
    assert_int_equal(drv_host_rules_match(r, n, "https", "api.example.com", 8443), 0);
    assert_int_equal(drv_host_rules_match(r, n, "http", "api.example.com", 443), 0);
    /* host:port: that port, whatever the scheme. */
    assert_int_equal(drv_host_rules_match(r, n, "http", "127.0.0.1", 8080), 1);
    assert_int_equal(drv_host_rules_match(r, n, "http", "127.0.0.1", 80), 0);
    assert_int_equal(drv_host_rules_match(r, n, "http", "127.0.0.1", 8081), 0);
    /* host:*: any port. */
    assert_int_equal(drv_host_rules_match(r, n, "http", "any.example", 1), 1);
    assert_int_equal(drv_host_rules_match(r, n, "https", "any.example", 65535), 1);
    assert_int_equal(drv_host_rules_match(r, n, "http", "::1", 9), 1);
    assert_int_equal(drv_host_rules_match(r, n, "http", "::1", 80), 0);
    assert_int_equal(drv_host_rules_match(r, n, "http", "other", 80), 0);
    free(r);
    assert_int_equal(drv_host_rules_parse("::1,[fe80::1]", &r, &n, why, sizeof why), DRV_OK);
    assert_int_equal(drv_host_rules_match(r, n, "http", "::1", 80), 1);
    assert_int_equal(drv_host_rules_match(r, n, "https", "fe80::1", 443), 1);
    free(r);
}

static void host_rules_refuse_what_would_never_match(void **state) {
    (void)state;
    static const char *const bad[] = {"",         "https://api.example.com",
                                      "api:0",    "api:65536",
                                      "api:",     "api:x",
                                      "api:-1",   "a,,b",
                                      "a,",       "user@api",
                                      "api/path", "[::1",
                                      "[::1]x",   "*",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        drv_host_rule *r = NULL;
        int n = 0;
        char why[400] = "";
        if (drv_host_rules_parse(bad[i], &r, &n, why, sizeof why) != DRV_EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_non_null(strstr(why, "expected HOST"));
    }
}

/* ---- ${NAME} and --allow-env ----------------------------------------------------------------- */

static void allow_env_names_and_prefixes(void **state) {
    (void)state;
    assert_int_equal(drv_env_allowed("API_TOKEN,DROVER_SECRET_*", "API_TOKEN"), 1);
    assert_int_equal(drv_env_allowed("API_TOKEN,DROVER_SECRET_*", "DROVER_SECRET_X"), 1);
    assert_int_equal(drv_env_allowed("API_TOKEN,DROVER_SECRET_*", "API_TOKEN2"), 0);
    assert_int_equal(drv_env_allowed("API_TOKEN,DROVER_SECRET_*", "AWS_SECRET_ACCESS_KEY"), 0);
    assert_int_equal(drv_env_allowed(NULL, "API_TOKEN"), 0);
    assert_int_equal(drv_env_allowed("", "API_TOKEN"), 0);
    /* A prefix never reaches the worker's own Redis URL; its exact name does. */
    assert_int_equal(drv_env_allowed("DROVER_*", "DROVER_REDIS_URL"), 0);
    assert_int_equal(drv_env_allowed("DROVER_REDIS_URL", "DROVER_REDIS_URL"), 1);
    char why[400];
    assert_int_equal(drv_env_allow_check("A,B_*,_C1", why, sizeof why), 0);
    assert_int_equal(drv_env_allow_check("*", why, sizeof why), -1);
    assert_int_equal(drv_env_allow_check("A,,B", why, sizeof why), -1);
    assert_int_equal(drv_env_allow_check("1A", why, sizeof why), -1);
    assert_int_equal(drv_env_allow_check("A-B", why, sizeof why), -1);
    assert_non_null(strstr(why, "\"A-B\""));
}

static void resolve_env_refuses_a_name_not_allowed(void **state) {
    (void)state;
    const char *spec = "{\"type\":\"http\",\"url\":\"http://h/?o=${DRV_T_SECRET}\","
                       "\"headers\":{\"X\":\"${DROVER_SECRET_T}\"}}";
    drv_http_cfg c;
    char why[400] = "";
    setenv("DRV_T_SECRET", "aws", 1);
    setenv("DROVER_SECRET_T", "tok", 1);
    drv_http_env_allow("DROVER_SECRET_*");
    memset(&c, 0, sizeof c);
    assert_int_equal(drv_http_cfg_parse(spec, strlen(spec), &c, why, sizeof why), DRV_OK);
    assert_int_equal(drv_http_cfg_resolve_env(&c, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "${DRV_T_SECRET}"));
    assert_non_null(strstr(why, "does not allow"));
    drv_http_cfg_free(&c);

    drv_http_env_allow("DRV_T_SECRET,DROVER_SECRET_*");
    memset(&c, 0, sizeof c);
    assert_int_equal(drv_http_cfg_parse(spec, strlen(spec), &c, why, sizeof why), DRV_OK);
    assert_int_equal(drv_http_cfg_resolve_env(&c, why, sizeof why), DRV_OK);
    drv_http_cfg_free(&c);

    /* Not allowed is said before "not set": the worker's environment is not probed. */
    unsetenv("DRV_T_SECRET");
    drv_http_env_allow(NULL);
    memset(&c, 0, sizeof c);
    assert_int_equal(drv_http_cfg_parse(spec, strlen(spec), &c, why, sizeof why), DRV_OK);
    assert_int_equal(drv_http_cfg_resolve_env(&c, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "does not allow"));
    drv_http_cfg_free(&c);
    unsetenv("DROVER_SECRET_T");
}

/* ---- numbers past 2^53 in a spec ------------------------------------------------------------- */

static void spec_refuses_range_bounds_json_would_round(void **state) {
    (void)state;
    static const char *const bad[] = {
        "{\"source\":{\"type\":\"range\",\"start\":1,\"end\":9007199254740993}}",
        "{\"source\":{\"type\":\"range\",\"start\":-9007199254740993,\"end\":1}}",
        "{\"source\":{\"type\":\"range\",\"start\":1,\"end\":9.007199254740993e15}}",
        "{\"source\":{\"type\":\"range\",\"start\":1,\"end\":"
        "99999999999999999999999999999999999999999999999999999999999999999999}}",
        NULL};
    for (int i = 0; bad[i]; i++) {
        drv_spec s;
        char why[400] = "";
        if (drv_spec_parse(bad[i], strlen(bad[i]), &s, why, sizeof why) != DRV_EINVAL)
            fail_msg("%s: accepted", bad[i]);
        if (!strstr(why, "source.") || !strstr(why, "2^53"))
            fail_msg("%s: message \"%s\" does not name the field and the limit", bad[i], why);
    }
    /* 2^53 itself is exact, as --range accepts it. */
    const char *ok = "{\"source\":{\"type\":\"range\",\"start\":9007199254740991,"
                     "\"end\":9007199254740992}}";
    drv_spec s;
    char why[400] = "";
    assert_int_equal(drv_spec_parse(ok, strlen(ok), &s, why, sizeof why), DRV_OK);
    assert_true(s.range_end == 9007199254740992LL);
    /* A number inside a string is text, not a number. */
    ok = "{\"id\":\"x\",\"source\":{\"type\":\"range\",\"start\":1,\"end\":2},"
         "\"handler\":{\"type\":\"http\",\"url\":\"http://h/9007199254740993\"}}";
    assert_int_equal(drv_spec_parse(ok, strlen(ok), &s, why, sizeof why), DRV_OK);
}

/* ---- an escaped NUL in an NDJSON id ---------------------------------------------------------- */

static void ndjson_id_with_an_escaped_nul_is_refused(void **state) {
    (void)state;
    drv_extract *x;
    char why[400] = "";
    assert_int_equal(drv_extract_new(DRV_FMT_NDJSON, "id", NULL, 0, &x, why, sizeof why), DRV_OK);
    drv_buf id, pl;
    drv_buf_init(&id, 4096);
    drv_buf_init(&pl, 4096);
    const char *rec = "{\"id\":\"b\\u0000c\"}";
    assert_int_equal(drv_extract_item(x, rec, strlen(rec), &id, &pl, why, sizeof why), -1);
    assert_non_null(strstr(why, "NUL"));
    assert_non_null(strstr(why, "byte 1 of the id"));
    /* A literal backslash before "u0000" is text, and a NUL elsewhere in the record is not
     * the id's. */
    rec = "{\"id\":\"b\\\\u0000c\",\"other\":\"\\u0000\"}";
    assert_int_equal(drv_extract_item(x, rec, strlen(rec), &id, &pl, why, sizeof why), 0);
    assert_int_equal(id.len, 8);
    assert_memory_equal(id.data, "b\\u0000c", 8);
    drv_buf_free(&id);
    drv_buf_free(&pl);
    drv_extract_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(child_env_withholds_the_connection_settings),
        cmocka_unit_test(pass_env_names_only_withheld_variables),
        cmocka_unit_test(password_span_finds_the_password),
        cmocka_unit_test(hide_password_overwrites_argv_and_keeps_a_copy),
        cmocka_unit_test(host_rules_match_host_and_port),
        cmocka_unit_test(host_rules_refuse_what_would_never_match),
        cmocka_unit_test(allow_env_names_and_prefixes),
        cmocka_unit_test(resolve_env_refuses_a_name_not_allowed),
        cmocka_unit_test(spec_refuses_range_bounds_json_would_round),
        cmocka_unit_test(ndjson_id_with_an_escaped_nul_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
