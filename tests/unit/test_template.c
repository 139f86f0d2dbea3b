/* argv templates: {id} and {item} expand inside one element; nothing else changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "template.h"

#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------- */

/* Expands with id "42" and item "{\"k\":1}" and checks the result. */
static void expect_expansion(const char *tmpl, const char *want) {
    drv_buf b;
    drv_buf_init(&b, 1 << 16);
    const char *id = "42", *item = "{\"k\":1}";
    drv_err e = drv_template_expand(tmpl, id, strlen(id), item, strlen(item), &b);
    if (e != DRV_OK) fail_msg("\"%s\": returned %d", tmpl, e);
    assert_non_null(b.data);
    if (b.len != strlen(want) || strcmp(b.data, want) != 0)
        fail_msg("\"%s\" expanded to \"%s\", expected \"%s\"", tmpl, b.data, want);
    drv_buf_free(&b);
}

/* ---- expansion ---------------------------------------------------------------------------- */

static void template_replaces_id(void **state) {
    (void)state;
    expect_expansion("{id}", "42");
    expect_expansion("--user={id}", "--user=42");
    expect_expansion("/data/{id}.json", "/data/42.json");
}

static void template_replaces_item(void **state) {
    (void)state;
    expect_expansion("{item}", "{\"k\":1}");
    expect_expansion("payload={item};", "payload={\"k\":1};");
}

static void template_replaces_each_placeholder_every_time(void **state) {
    (void)state;
    expect_expansion("{id}{id}", "4242");
    expect_expansion("{id}-{item}-{id}-{item}", "42-{\"k\":1}-42-{\"k\":1}");
    expect_expansion("a{id}b{item}c{id}", "a42b{\"k\":1}c42");
}

static void template_without_placeholder_is_copied(void **state) {
    (void)state;
    expect_expansion("echo", "echo");
    expect_expansion("", "");
    expect_expansion("id item $ID ${id} '{ id }'", "id item $ID $42 '{ id }'");
}

static void template_keeps_other_braces_literally(void **state) {
    (void)state;
    expect_expansion("{x}", "{x}");
    expect_expansion("{", "{");
    expect_expansion("}", "}");
    expect_expansion("}{id}{", "}42{");
    expect_expansion("{{id}}", "{42}");
    expect_expansion("{ID}{Item}{items}", "{ID}{Item}{items}");
    expect_expansion("{id", "{id");
    expect_expansion("{item{id}", "{item42");
    expect_expansion("{}{{{", "{}{{{");
}

static void template_does_not_expand_placeholders_inside_values(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1024);
    assert_int_equal(drv_template_expand("{id}:{item}", "{item}", 6, "{id}", 4, &b), DRV_OK);
    assert_string_equal(b.data, "{item}:{id}");
    drv_buf_free(&b);
}

static void template_accepts_empty_values(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1024);
    assert_int_equal(drv_template_expand("<{id}|{item}>", "", 0, "", 0, &b), DRV_OK);
    assert_string_equal(b.data, "<|>");
    assert_int_equal(b.len, 3);
    assert_int_equal(drv_template_expand("{id}", "", 0, "", 0, &b), DRV_OK);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(b.len, 0);
    /* An absent item (no payload) with no length is empty too, not a literal "{item}". */
    assert_int_equal(drv_template_expand("[{item}]", "7", 1, NULL, 0, &b), DRV_OK);
    assert_string_equal(b.data, "[]");
    drv_buf_free(&b);
}

static void template_uses_only_the_given_lengths(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1024);
    assert_int_equal(drv_template_expand("{id}/{item}", "12345", 2, "abcdef", 3, &b), DRV_OK);
    assert_string_equal(b.data, "12/abc");
    drv_buf_free(&b);
}

static void template_resets_the_buffer_first(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1024);
    assert_int_equal(drv_buf_append(&b, "old contents", 12), DRV_OK);
    assert_int_equal(drv_template_expand("x{id}", "1", 1, "", 0, &b), DRV_OK);
    assert_string_equal(b.data, "x1");
    assert_int_equal(b.len, 2);
    drv_buf_free(&b);
}

static void template_refuses_nul_in_a_value(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1024);
    assert_int_equal(drv_template_expand("{item}", "1", 1, "a\0b", 3, &b), DRV_EINVAL);
    assert_int_equal(drv_template_expand("x{id}", "1\0", 2, "", 0, &b), DRV_EINVAL);
    /* A value that is not used may hold anything. */
    assert_int_equal(drv_template_expand("{id}", "1", 1, "a\0b", 3, &b), DRV_OK);
    assert_string_equal(b.data, "1");
    drv_buf_free(&b);
}

static void template_over_the_cap_is_too_big(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 8);
    /* Exactly at the cap fits. */
    assert_int_equal(drv_template_expand("ab{id}", "123456", 6, "", 0, &b), DRV_OK);
    assert_string_equal(b.data, "ab123456");
    assert_int_equal(drv_template_expand("ab{id}", "1234567", 7, "", 0, &b), DRV_ETOOBIG);
    assert_int_equal(drv_template_expand("123456789", "", 0, "", 0, &b), DRV_ETOOBIG);
    assert_int_equal(drv_template_expand("{item}{item}", "", 0, "abcde", 5, &b), DRV_ETOOBIG);
    assert_true(b.len <= b.max);
    drv_buf_free(&b);
}

/* ---- uses_item ---------------------------------------------------------------------------- */

static void template_uses_item_finds_item_in_any_element(void **state) {
    (void)state;
    char *none[] = {"curl", "-d", "{id}", "http://x/{id}"};
    char *last[] = {"sh", "-c", "echo {item}"};
    char *first[] = {"{item}"};
    char *near[] = {"{items}", "{ item }", "{Item}"};
    assert_int_equal(drv_template_uses_item(none, 4), 0);
    assert_int_equal(drv_template_uses_item(last, 3), 1);
    assert_int_equal(drv_template_uses_item(first, 1), 1);
    assert_int_equal(drv_template_uses_item(near, 3), 0);
    assert_int_equal(drv_template_uses_item(last, 2), 0); /* only argc elements are looked at */
    assert_int_equal(drv_template_uses_item(NULL, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(template_replaces_id),
        cmocka_unit_test(template_replaces_item),
        cmocka_unit_test(template_replaces_each_placeholder_every_time),
        cmocka_unit_test(template_without_placeholder_is_copied),
        cmocka_unit_test(template_keeps_other_braces_literally),
        cmocka_unit_test(template_does_not_expand_placeholders_inside_values),
        cmocka_unit_test(template_accepts_empty_values),
        cmocka_unit_test(template_uses_only_the_given_lengths),
        cmocka_unit_test(template_resets_the_buffer_first),
        cmocka_unit_test(template_refuses_nul_in_a_value),
        cmocka_unit_test(template_over_the_cap_is_too_big),
        cmocka_unit_test(template_uses_item_finds_item_in_any_element),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
