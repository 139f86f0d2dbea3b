/* The HTTP handler of a spec: parsing, status sets, ${NAME}, and per-item rendering with the
 * escaping each place needs (URL, JSON body, header). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "handler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------- */

static void parse_ok(const char *json, drv_http_cfg *c) {
    char why[512] = "";
    drv_err e = drv_http_cfg_parse(json, strlen(json), c, why, sizeof why);
    if (e != DRV_OK) fail_msg("%s: refused: %s", json, why);
}

/* The handler is refused, with a message that contains 'needle'. */
static void parse_bad(const char *json, const char *needle) {
    char why[512] = "";
    drv_http_cfg c;
    drv_err e = drv_http_cfg_parse(json, strlen(json), &c, why, sizeof why);
    if (e != DRV_EINVAL) fail_msg("%s: accepted", json);
    if (!strstr(why, needle)) fail_msg("%s: message \"%s\" lacks \"%s\"", json, why, needle);
}

/* Renders 'tmpl' of a handler for one item and compares. */
static void render(const drv_http_cfg *c, const char *tmpl, drv_esc esc, const char *id,
                   const char *item, const char *want) {
    drv_buf b;
    drv_buf_init(&b, 1 << 16);
    drv_tvals v = {id, strlen(id), item, item ? strlen(item) : 0, NULL, 0};
    char why[256] = "";
    drv_err e = drv_http_render(c, tmpl, esc, &v, &b, why, sizeof why);
    if (e != DRV_OK) fail_msg("\"%s\": %s", tmpl, why);
    if (strcmp(b.data, want) != 0)
        fail_msg("\"%s\" rendered \"%s\", expected \"%s\"", tmpl, b.data, want);
    drv_tvals_free(&v);
    drv_buf_free(&b);
}

static drv_err render_err(const drv_http_cfg *c, const char *tmpl, drv_esc esc, const char *item,
                          char *why, size_t whylen) {
    drv_buf b;
    drv_buf_init(&b, 1 << 16);
    drv_tvals v = {"7", 1, item, item ? strlen(item) : 0, NULL, 0};
    drv_err e = drv_http_render(c, tmpl, esc, &v, &b, why, whylen);
    drv_tvals_free(&v);
    drv_buf_free(&b);
    return e;
}

/* ---- parsing ------------------------------------------------------------------------------- */

static void handler_defaults(void **state) {
    (void)state;
    drv_http_cfg c;
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/x/{id}\"}", &c);
    assert_string_equal(c.method, "GET");
    assert_int_equal(c.timeout_ms, 30000);
    assert_int_equal(c.keep_response, 0);
    assert_true(drv_http_is_ok(&c, 200) && drv_http_is_ok(&c, 204) && drv_http_is_ok(&c, 299));
    assert_false(drv_http_is_ok(&c, 301) || drv_http_is_ok(&c, 404));
    int retry[] = {408, 425, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < sizeof retry / sizeof *retry; i++)
        assert_true(drv_http_is_retry(&c, retry[i]));
    assert_false(drv_http_is_retry(&c, 501) || drv_http_is_retry(&c, 404) ||
                 drv_http_is_retry(&c, 400));
    assert_false(drv_http_is_ok(&c, 99) || drv_http_is_ok(&c, 600) || drv_http_is_retry(&c, -1));
    drv_http_cfg_free(&c);
    parse_ok("{\"type\":\"http\",\"url\":\"https://h/\",\"body\":\"x={id}\"}", &c);
    assert_string_equal(c.method, "POST"); /* a body means POST unless told */
    assert_false(c.body_json);
    drv_http_cfg_free(&c);
}

static void handler_status_sets_take_codes_and_classes(void **state) {
    (void)state;
    drv_http_cfg c;
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\",\"ok_status\":[\"2xx\",304],"
             "\"retry_status\":[503,\"4XX\"]}",
             &c);
    assert_true(drv_http_is_ok(&c, 304) && drv_http_is_ok(&c, 250));
    assert_false(drv_http_is_ok(&c, 404));
    assert_true(drv_http_is_retry(&c, 503) && drv_http_is_retry(&c, 418));
    assert_false(drv_http_is_retry(&c, 500));
    drv_http_cfg_free(&c);
}

static void handler_body_kind_follows_content_type_or_shape(void **state) {
    (void)state;
    drv_http_cfg c;
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\",\"body\":\" {\\\"a\\\":\\\"{id}\\\"}\"}",
             &c);
    assert_true(c.body_json);
    drv_http_cfg_free(&c);
    /* A body that starts with a placeholder is not taken for JSON by its first brace. */
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\",\"body\":\"{item}\"}", &c);
    assert_false(c.body_json);
    drv_http_cfg_free(&c);
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\",\"body\":\"{item}\","
             "\"headers\":{\"Content-Type\":\"application/json\"}}",
             &c);
    assert_true(c.body_json);
    drv_http_cfg_free(&c);
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\",\"body\":\"{\\\"a\\\":1}\","
             "\"headers\":{\"content-type\":\"text/plain\"}}",
             &c);
    assert_false(c.body_json);
    drv_http_cfg_free(&c);
}

static void handler_round_trips_through_canonical_json(void **state) {
    (void)state;
    drv_http_cfg a, b;
    parse_ok("{\"type\":\"http\",\"method\":\"PUT\",\"url\":\"http://h/{id}\",\"headers\":"
             "{\"X-Key\":\"${KEY}\"},\"body\":\"{\\\"v\\\":{item.v}}\",\"timeout_ms\":1500,"
             "\"ok_status\":[200,201],\"keep_response\":64}",
             &a);
    char json[4096];
    assert_int_equal(drv_http_cfg_to_json(&a, json, sizeof json), DRV_OK);
    parse_ok(json, &b);
    assert_string_equal(a.method, b.method);
    assert_string_equal(a.url, b.url);
    assert_string_equal(a.body, b.body);
    assert_int_equal(a.nhdr, b.nhdr);
    assert_string_equal(a.hdr[0], "X-Key: ${KEY}");
    assert_string_equal(a.hdr[0], b.hdr[0]);
    assert_int_equal(a.timeout_ms, b.timeout_ms);
    assert_int_equal(a.keep_response, b.keep_response);
    assert_memory_equal(a.ok, b.ok, sizeof a.ok);
    assert_memory_equal(a.retry, b.retry, sizeof a.retry);
    assert_int_equal(a.body_json, b.body_json);
    char small[16];
    assert_int_equal(drv_http_cfg_to_json(&a, small, sizeof small), DRV_ETOOBIG);
    drv_http_cfg_free(&a);
    drv_http_cfg_free(&b);
}

static void handler_refuses_bad_fields_naming_them(void **state) {
    (void)state;
    parse_bad("[]", "handler: expected an object");
    parse_bad("{\"url\":\"http://h/\"}", "handler.type");
    parse_bad("{\"type\":\"exec\",\"url\":\"http://h/\"}", "handler.type");
    parse_bad("{\"type\":\"http\"}", "handler.url");
    parse_bad("{\"type\":\"http\",\"url\":\"ftp://h/\"}", "handler.url");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"verb\":\"GET\"}", "handler.verb");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"method\":\"get\"}", "handler.method");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"method\":5}", "handler.method");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"headers\":[]}", "handler.headers");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"headers\":{\"A\":1}}",
              "handler.headers.A");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"headers\":{\"A\":\"x\\r\\nB: y\"}}",
              "line break");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"headers\":{\"A B\":\"x\"}}",
              "not a header name");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"body\":5}", "handler.body");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"timeout_ms\":0}", "handler.timeout_ms");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"timeout_ms\":1.5}", "handler.timeout_ms");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"keep_response\":-1}",
              "handler.keep_response");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"keep_response\":2000000}",
              "handler.keep_response");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"ok_status\":[]}", "handler.ok_status");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"ok_status\":[700]}", "handler.ok_status");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"ok_status\":[\"2x\"]}",
              "handler.ok_status");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/\",\"retry_status\":[200]}",
              "status 200 is in both");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/${}\"}", "${NAME}");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/${1A}\"}", "${NAME}");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/${A\"}", "${NAME}");
    parse_bad("{\"type\":\"http\",\"url\":\"http://h/{item.}\"}", "{item.}");
}

/* ---- ${NAME} ------------------------------------------------------------------------------- */

static void env_resolves_at_start_and_a_missing_one_is_named(void **state) {
    (void)state;
    drv_http_cfg c;
    setenv("DRV_TEST_TOKEN", "s3cr{id}et", 1);
    unsetenv("DRV_TEST_MISSING");
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/{id}?k=${DRV_TEST_TOKEN}\","
             "\"headers\":{\"Authorization\":\"Bearer ${DRV_TEST_TOKEN}\"}}",
             &c);
    char why[256] = "";
    assert_int_equal(drv_http_cfg_resolve_env(&c, why, sizeof why), DRV_OK);
    /* The value is configuration: inserted as it is, never read as a template. */
    render(&c, c.url, DRV_ESC_URL, "a b", NULL, "http://h/a%20b?k=s3cr{id}et");
    render(&c, c.hdr[0], DRV_ESC_HEADER, "1", NULL, "Authorization: Bearer s3cr{id}et");
    drv_http_cfg_free(&c);

    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\",\"body\":\"${DRV_TEST_MISSING}\"}", &c);
    assert_int_equal(drv_http_cfg_resolve_env(&c, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "${DRV_TEST_MISSING}"));
    assert_non_null(strstr(why, "not set"));
    /* Rendering an unresolved variable fails instead of sending "${...}". */
    assert_int_equal(render_err(&c, c.body, DRV_ESC_RAW, NULL, why, sizeof why), DRV_EINVAL);
    drv_http_cfg_free(&c);

    setenv("DRV_TEST_TOKEN", "a\nb", 1);
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/?${DRV_TEST_TOKEN}\"}", &c);
    assert_int_equal(drv_http_cfg_resolve_env(&c, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "line break"));
    drv_http_cfg_free(&c);
    unsetenv("DRV_TEST_TOKEN");
}

/* ---- rendering ------------------------------------------------------------------------------ */

static void url_values_are_percent_encoded(void **state) {
    (void)state;
    drv_http_cfg c;
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/{id}\"}", &c);
    render(&c, "http://h/u/{id}?q={item.name}", DRV_ESC_URL, "a/b?c&d=é", "{\"name\":\"x y+z\"}",
           "http://h/u/a%2Fb%3Fc%26d%3D%C3%A9?q=x%20y%2Bz");
    render(&c, "http://h/{id}", DRV_ESC_URL, "Az09-._~", NULL, "http://h/Az09-._~");
    drv_http_cfg_free(&c);
}

static void json_bodies_escape_inside_strings_and_insert_values_outside(void **state) {
    (void)state;
    drv_http_cfg c;
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\",\"body\":\"{}\"}", &c);
    const char *item = "{\"name\":\"Zoë \\\"Z\\\"\",\"n\":42,\"big\":9007199254740993,"
                       "\"f\":1.5,\"ok\":true,\"tags\":[1,2],\"sub\":{\"k\":\"v\"},\"nul\":null}";
    /* Inside a string literal: escaped content. */
    render(&c, "{\"id\":\"{id}\",\"name\":\"{item.name}\"}", DRV_ESC_JSON, "a\"b\\c\n", item,
           "{\"id\":\"a\\\"b\\\\c\\n\",\"name\":\"Zoë \\\"Z\\\"\"}");
    /* Outside one: a JSON value. Strings are quoted, numbers and objects stay what they are. */
    render(&c, "{\"id\":{id},\"n\":{item.n},\"name\":{item.name},\"ok\":{item.ok}}", DRV_ESC_JSON,
           "17", item, "{\"id\":17,\"n\":42,\"name\":\"Zoë \\\"Z\\\"\",\"ok\":true}");
    render(&c, "{\"id\":{id}}", DRV_ESC_JSON, "inv-7", item, "{\"id\":\"inv-7\"}");
    render(&c, "{\"rec\":{item},\"tags\":{item.tags},\"k\":{item.sub.k},\"x\":{item.nul}}",
           DRV_ESC_JSON, "1", "{\"tags\":[1,2],\"sub\":{\"k\":\"v\"},\"nul\":null}",
           "{\"rec\":{\"tags\":[1,2],\"sub\":{\"k\":\"v\"},\"nul\":null},\"tags\":[1,2],"
           "\"k\":\"v\",\"x\":null}");
    /* A lines item ({item} without a payload) is its id. */
    render(&c, "[{item}, \"{item}\"]", DRV_ESC_JSON, "x\ty", NULL, "[\"x\\ty\", \"x\\ty\"]");
    /* An escaped quote in the template does not end its string. */
    render(&c, "{\"a\":\"q\\\"{id}\"}", DRV_ESC_JSON, "\"", NULL, "{\"a\":\"q\\\"\\\"\"}");
    /* Large and fractional numbers keep their value. */
    render(&c, "[{item.f}]", DRV_ESC_JSON, "1", item, "[1.5]");
    /* Control characters become \u escapes. */
    render(&c, "\"{id}\"", DRV_ESC_JSON, "\x01", NULL, "\"\\u0001\"");
    drv_http_cfg_free(&c);
}

static void raw_and_header_values_are_inserted_as_they_are(void **state) {
    (void)state;
    drv_http_cfg c;
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\"}", &c);
    render(&c, "id={id}&x={item.x}", DRV_ESC_RAW, "a b", "{\"x\":\"1&2\"}", "id=a b&x=1&2");
    render(&c, "X-Id: {id}", DRV_ESC_HEADER, "inv 9", NULL, "X-Id: inv 9");
    render(&c, "{not a placeholder} {id", DRV_ESC_RAW, "1", NULL, "{not a placeholder} {id");
    char why[256] = "";
    drv_buf b;
    drv_buf_init(&b, 1 << 10);
    drv_tvals v = {"a\r\nX-Evil: 1", 13, NULL, 0, NULL, 0};
    assert_int_equal(drv_http_render(&c, "X-Id: {id}", DRV_ESC_HEADER, &v, &b, why, sizeof why),
                     DRV_EINVAL);
    assert_non_null(strstr(why, "line break"));
    drv_buf_free(&b);
    drv_http_cfg_free(&c);
}

static void a_missing_field_is_an_error_naming_it(void **state) {
    (void)state;
    drv_http_cfg c;
    parse_ok("{\"type\":\"http\",\"url\":\"http://h/\"}", &c);
    char why[256] = "";
    assert_int_equal(
        render_err(&c, "{item.email}", DRV_ESC_RAW, "{\"name\":\"x\"}", why, sizeof why),
        DRV_EINVAL);
    assert_non_null(strstr(why, "\"email\""));
    assert_int_equal(render_err(&c, "{item.a.b}", DRV_ESC_RAW, "{\"a\":1}", why, sizeof why),
                     DRV_EINVAL);
    /* A lines source has no fields. */
    assert_int_equal(render_err(&c, "{item.x}", DRV_ESC_URL, NULL, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "no fields"));
    /* Not JSON: no fields either. */
    assert_int_equal(render_err(&c, "{item.x}", DRV_ESC_URL, "plain", why, sizeof why), DRV_EINVAL);
    drv_buf b;
    drv_buf_init(&b, 8);
    drv_tvals v = {"123456789", 9, NULL, 0, NULL, 0};
    assert_int_equal(drv_http_render(&c, "{id}", DRV_ESC_RAW, &v, &b, why, sizeof why),
                     DRV_ETOOBIG);
    drv_buf_free(&b);
    drv_http_cfg_free(&c);
}

/* ---- responses ------------------------------------------------------------------------------ */

static void retry_after_header_lines_are_picked_out(void **state) {
    (void)state;
    char v[8] = "old";
    const char *l = "Retry-After: 120\r\n";
    assert_int_equal(drv_header_retry_after(l, strlen(l), v, sizeof v), 1);
    assert_string_equal(v, " 120");
    l = "retry-after: Thu, 01 Jan 2026 00:00:07 GMT\r\n"; /* any case; cut to fit */
    assert_int_equal(drv_header_retry_after(l, strlen(l), v, sizeof v), 1);
    assert_string_equal(v, " Thu, 0");
    l = "Content-Type: text/plain\r\n";
    strcpy(v, "kept");
    assert_int_equal(drv_header_retry_after(l, strlen(l), v, sizeof v), 0);
    assert_string_equal(v, "kept");
    assert_int_equal(drv_header_retry_after("Retry-After:", 12, v, sizeof v), 0);
}

static void retry_after_takes_seconds_or_a_date(void **state) {
    (void)state;
    int64_t now = 1767225600; /* 2026-01-01T00:00:00Z */
    assert_int_equal(drv_retry_after_ms("3", now), 3000);
    assert_int_equal(drv_retry_after_ms(" 120 ", now), 120000);
    assert_int_equal(drv_retry_after_ms("0", now), 0);
    assert_int_equal(drv_retry_after_ms("Thu, 01 Jan 2026 00:00:07 GMT", now), 7000);
    assert_int_equal(drv_retry_after_ms("Wed, 31 Dec 2025 23:59:00 GMT", now), 0); /* past */
    assert_int_equal(drv_retry_after_ms("soon", now), -1);
    assert_int_equal(drv_retry_after_ms("", now), -1);
    assert_int_equal(drv_retry_after_ms("5s", now), -1);
    /* Absurd values are capped at a year, not overflowed. */
    assert_int_equal(drv_retry_after_ms("99999999999999", now), 86400LL * 365 * 1000);
}

static void sanitize_keeps_utf8_and_replaces_the_rest(void **state) {
    (void)state;
    char s[] = "ok é\t\n\x01\xff\xc3 end";
    drv_text_sanitize(s, strlen(s));
    assert_string_equal(s, "ok é\t\n??? end");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handler_defaults),
        cmocka_unit_test(retry_after_header_lines_are_picked_out),
        cmocka_unit_test(handler_status_sets_take_codes_and_classes),
        cmocka_unit_test(handler_body_kind_follows_content_type_or_shape),
        cmocka_unit_test(handler_round_trips_through_canonical_json),
        cmocka_unit_test(handler_refuses_bad_fields_naming_them),
        cmocka_unit_test(env_resolves_at_start_and_a_missing_one_is_named),
        cmocka_unit_test(url_values_are_percent_encoded),
        cmocka_unit_test(json_bodies_escape_inside_strings_and_insert_values_outside),
        cmocka_unit_test(raw_and_header_values_are_inserted_as_they_are),
        cmocka_unit_test(a_missing_field_is_an_error_naming_it),
        cmocka_unit_test(retry_after_takes_seconds_or_a_date),
        cmocka_unit_test(sanitize_keeps_utf8_and_replaces_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
