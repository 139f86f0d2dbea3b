/* Flags, environment variables and defaults from one table; whole-number parsing; job ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the table under test ------------------------------------------------------------------ */

static const char *url, *label;
static long long parts, retries;
static int verbose, color;

static const drv_opt opts[] = {
    {"redis-url", "DRV_TEST_REDIS_URL", DRV_OPT_STR, "redis://127.0.0.1:6379", "URL",
     "where Redis is", 0, 0, &url},
    {"partitions", "DRV_TEST_PARTITIONS", DRV_OPT_INT, "8", "N", "how many partitions", 1, 1024,
     &parts},
    {"retries", NULL, DRV_OPT_INT, "-3", "N", "signed bounds", -5, 5, &retries},
    {"verbose", "DRV_TEST_VERBOSE", DRV_OPT_BOOL, NULL, NULL, "log more", 0, 0, &verbose},
    {"color", NULL, DRV_OPT_BOOL, "true", NULL, "colour the output", 0, 0, &color},
    {"label", NULL, DRV_OPT_STR, NULL, "TEXT", "a free label", 0, 0, &label},
    {0},
};

static const drv_cmd_doc doc = {"drover-test [OPTIONS] FILE...", "Exercises the option table.",
                                "  drover-test --partitions 4 a b"};

static int setup(void **state) {
    (void)state;
    unsetenv("DRV_TEST_REDIS_URL");
    unsetenv("DRV_TEST_PARTITIONS");
    unsetenv("DRV_TEST_VERBOSE");
    url = label = NULL;
    parts = retries = -999;
    verbose = color = -1;
    return 0;
}

/* ---- capturing what the parser prints ------------------------------------------------------ */

typedef struct capture {
    int fd, saved;
    FILE *tmp;
} capture;

static void capture_start(capture *c, int fd) {
    fflush(stdout);
    fflush(stderr);
    c->fd = fd;
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), fd) >= 0);
}

/* Restores the descriptor and returns what was written to it (static storage). */
static const char *capture_end(capture *c) {
    static char text[8192];
    fflush(stdout);
    fflush(stderr);
    assert_true(dup2(c->saved, c->fd) >= 0);
    close(c->saved);
    rewind(c->tmp);
    size_t n = fread(text, 1, sizeof text - 1, c->tmp);
    text[n] = '\0';
    fclose(c->tmp);
    return text;
}

/* Runs the parser on a NULL-terminated argv; collects up to 4 positionals and the rest. */
typedef struct run {
    int rc, npos, nrest;
    char *pos[4];
    char **rest;
    const char *err; /* what went to stderr */
} run;

static run parse_argv(char **argv, int with_rest) {
    run r;
    memset(&r, 0, sizeof r);
    int argc = 0;
    while (argv[argc])
        argc++;
    capture c;
    capture_start(&c, STDERR_FILENO);
    r.rc = drv_opts_parse(opts, &doc, argc, argv, r.pos, 4, &r.npos, with_rest ? &r.rest : NULL,
                          with_rest ? &r.nrest : NULL);
    r.err = capture_end(&c);
    return r;
}

static void expect_error(run r, const char *const *needles) {
    assert_int_equal(r.rc, DRV_OPTS_ERROR);
    for (; *needles; needles++)
        if (!strstr(r.err, *needles)) fail_msg("stderr \"%s\" lacks \"%s\"", r.err, *needles);
}

/* ---- defaults, environment, flags ----------------------------------------------------------- */

static void opts_apply_the_table_defaults(void **state) {
    (void)state;
    char *argv[] = {"prog", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_string_equal(url, "redis://127.0.0.1:6379");
    assert_int_equal(parts, 8);
    assert_int_equal(retries, -3);
    assert_int_equal(verbose, 0); /* a bool without a default is false */
    assert_int_equal(color, 1);
    assert_null(label); /* no default: left alone */
    assert_int_equal(r.npos, 0);
    assert_string_equal(r.err, "");
}

static void opts_env_overrides_the_default(void **state) {
    (void)state;
    setenv("DRV_TEST_REDIS_URL", "redis://env:1/2", 1);
    setenv("DRV_TEST_PARTITIONS", "16", 1);
    setenv("DRV_TEST_VERBOSE", "yes", 1);
    char *argv[] = {"prog", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_string_equal(url, "redis://env:1/2");
    assert_int_equal(parts, 16);
    assert_int_equal(verbose, 1);
}

static void opts_empty_env_value_is_ignored(void **state) {
    (void)state;
    setenv("DRV_TEST_PARTITIONS", "", 1);
    char *argv[] = {"prog", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_int_equal(parts, 8);
}

static void opts_flag_overrides_env(void **state) {
    (void)state;
    setenv("DRV_TEST_REDIS_URL", "redis://env:1/2", 1);
    setenv("DRV_TEST_PARTITIONS", "16", 1);
    setenv("DRV_TEST_VERBOSE", "true", 1);
    char *argv[] = {"prog",         "--partitions",  "3", "--redis-url",
                    "redis://flag", "--verbose=off", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_int_equal(parts, 3);
    assert_string_equal(url, "redis://flag");
    assert_int_equal(verbose, 0);
}

static void opts_later_flag_wins(void **state) {
    (void)state;
    char *argv[] = {"prog", "--partitions", "3", "--partitions=5", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_int_equal(parts, 5);
}

static void opts_accept_name_equals_value(void **state) {
    (void)state;
    char *argv[] = {"prog", "--partitions=12", "--label=a=b", "--redis-url=", "--retries=-5", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_int_equal(parts, 12);
    assert_string_equal(label, "a=b"); /* only the first '=' splits */
    assert_string_equal(url, "");
    assert_int_equal(retries, -5);
}

static void opts_string_values_are_borrowed_from_argv(void **state) {
    (void)state;
    char *argv[] = {"prog", "--label", "x", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_ptr_equal(label, argv[2]);
}

static void opts_bool_flag_alone_means_true(void **state) {
    (void)state;
    char *argv[] = {"prog", "--verbose", "file", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_int_equal(verbose, 1);
    /* The next argument is not taken as the bool's value. */
    assert_int_equal(r.npos, 1);
    assert_string_equal(r.pos[0], "file");
}

static void opts_bool_flag_takes_explicit_values(void **state) {
    (void)state;
    static const struct {
        const char *arg;
        int want;
    } cases[] = {
        {"--color=false", 0}, {"--color=0", 0},   {"--color=no", 0},
        {"--color=off", 0},   {"--color=", 0},    {"--color=1", 1},
        {"--color=true", 1},  {"--color=yes", 1}, {"--color=on", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *argv[] = {"prog", (char *)cases[i].arg, NULL};
        color = -1;
        run r = parse_argv(argv, 0);
        assert_int_equal(r.rc, DRV_OPTS_OK);
        if (color != cases[i].want) fail_msg("%s gave %d", cases[i].arg, color);
    }
}

static void opts_bad_bool_value_names_the_flag(void **state) {
    (void)state;
    char *argv[] = {"prog", "--color=maybe", NULL};
    const char *want[] = {"--color", "maybe", NULL};
    expect_error(parse_argv(argv, 0), want);
}

/* ---- errors ------------------------------------------------------------------------------------
 */

static void opts_int_out_of_bounds_names_the_flag_and_bounds(void **state) {
    (void)state;
    char *high[] = {"prog", "--partitions", "1025", NULL};
    const char *want_high[] = {"--partitions", "1 to 1024", "1025", NULL};
    expect_error(parse_argv(high, 0), want_high);
    char *low[] = {"prog", "--partitions=0", NULL};
    const char *want_low[] = {"--partitions", "1 to 1024", NULL};
    expect_error(parse_argv(low, 0), want_low);
    char *neg[] = {"prog", "--retries=-6", NULL};
    const char *want_neg[] = {"--retries", "-5 to 5", NULL};
    expect_error(parse_argv(neg, 0), want_neg);
    /* The bounds themselves are allowed. */
    char *edge[] = {"prog", "--partitions", "1024", "--retries", "5", NULL};
    assert_int_equal(parse_argv(edge, 0).rc, DRV_OPTS_OK);
    assert_int_equal(parts, 1024);
    assert_int_equal(retries, 5);
}

static void opts_int_must_be_a_whole_number(void **state) {
    (void)state;
    static const char *const bad[] = {"abc", "1.5", "8x", "", " 8", "0x10", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *argv[] = {"prog", "--partitions", (char *)bad[i], NULL};
        const char *want[] = {"--partitions", "whole number", NULL};
        parts = -999;
        expect_error(parse_argv(argv, 0), want);
        assert_int_equal(parts, 8); /* the default stays */
    }
}

static void opts_unknown_flag_is_an_error(void **state) {
    (void)state;
    char *a[] = {"prog", "--nope", NULL};
    const char *want_a[] = {"unknown flag", "--nope", NULL};
    expect_error(parse_argv(a, 0), want_a);
    char *b[] = {"prog", "--nope=3", NULL};
    const char *want_b[] = {"unknown flag \"--nope\"", NULL};
    expect_error(parse_argv(b, 0), want_b);
    char *c[] = {"prog", "-x", NULL};
    const char *want_c[] = {"unknown flag \"-x\"", NULL};
    expect_error(parse_argv(c, 0), want_c);
    /* A prefix of a flag's name is not that flag. */
    char *d[] = {"prog", "--part", "3", NULL};
    const char *want_d[] = {"--part", NULL};
    expect_error(parse_argv(d, 0), want_d);
}

static void opts_missing_value_is_an_error(void **state) {
    (void)state;
    char *argv[] = {"prog", "--partitions", NULL};
    const char *want[] = {"--partitions", "needs a value", "N", NULL};
    expect_error(parse_argv(argv, 0), want);
    char *argv2[] = {"prog", "--label", NULL};
    const char *want2[] = {"--label", "needs a value", "TEXT", NULL};
    expect_error(parse_argv(argv2, 0), want2);
}

static void opts_bad_env_value_names_the_variable(void **state) {
    (void)state;
    setenv("DRV_TEST_PARTITIONS", "lots", 1);
    char *argv[] = {"prog", NULL};
    const char *want[] = {"DRV_TEST_PARTITIONS", "lots", "1 to 1024", NULL};
    expect_error(parse_argv(argv, 0), want);
    setup(NULL);
    setenv("DRV_TEST_VERBOSE", "perhaps", 1);
    const char *want_bool[] = {"DRV_TEST_VERBOSE", "perhaps", NULL};
    expect_error(parse_argv(argv, 0), want_bool);
}

/* ---- positionals and "--" ------------------------------------------------------------------ */

static void opts_collect_positional_args_in_order(void **state) {
    (void)state;
    char *argv[] = {"prog", "a", "--partitions", "2", "b", "-", "c", NULL};
    run r = parse_argv(argv, 0);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_int_equal(r.npos, 4);
    assert_string_equal(r.pos[0], "a");
    assert_string_equal(r.pos[1], "b");
    assert_string_equal(r.pos[2], "-"); /* "-" alone (stdin) is an argument, not a flag */
    assert_string_equal(r.pos[3], "c");
    assert_int_equal(parts, 2);
}

static void opts_too_many_positional_args_is_an_error(void **state) {
    (void)state;
    char *argv[] = {"prog", "a", "b", "c", "d", "e", NULL};
    const char *want[] = {"unexpected argument \"e\"", NULL};
    expect_error(parse_argv(argv, 0), want);
    int npos = -1;
    char *none[1];
    char *one[] = {"prog", "x", NULL};
    capture c;
    capture_start(&c, STDERR_FILENO);
    int rc = drv_opts_parse(opts, &doc, 2, one, none, 0, &npos, NULL, NULL);
    const char *err = capture_end(&c);
    assert_int_equal(rc, DRV_OPTS_ERROR);
    assert_non_null(strstr(err, "\"x\""));
}

static void opts_double_dash_hands_over_the_rest(void **state) {
    (void)state;
    char *argv[] = {"prog", "--verbose", "pos", "--", "curl", "--partitions", "9", "--", NULL};
    run r = parse_argv(argv, 1);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_int_equal(verbose, 1);
    assert_int_equal(parts, 8); /* after "--", flags are the command's */
    assert_int_equal(r.npos, 1);
    assert_string_equal(r.pos[0], "pos");
    assert_int_equal(r.nrest, 4);
    assert_ptr_equal(r.rest, argv + 4);
    assert_string_equal(r.rest[0], "curl");
    assert_string_equal(r.rest[3], "--");
}

static void opts_double_dash_at_the_end_gives_an_empty_rest(void **state) {
    (void)state;
    char *argv[] = {"prog", "--", NULL};
    run r = parse_argv(argv, 1);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_int_equal(r.nrest, 0);
    char *argv2[] = {"prog", NULL};
    r = parse_argv(argv2, 1);
    assert_int_equal(r.rc, DRV_OPTS_OK);
    assert_null(r.rest);
    assert_int_equal(r.nrest, 0);
}

static void opts_double_dash_without_a_rest_is_an_error(void **state) {
    (void)state;
    char *argv[] = {"prog", "--", "x", NULL};
    const char *want[] = {"\"--\"", NULL};
    expect_error(parse_argv(argv, 0), want);
}

/* ---- help ---------------------------------------------------------------------------------- */

static void opts_help_prints_the_table_and_returns_help(void **state) {
    (void)state;
    static const char *const flags[] = {"--help", "-h"};
    for (size_t i = 0; i < 2; i++) {
        char *argv[] = {"prog", "--partitions", "4", (char *)flags[i], "--nope", NULL};
        int npos;
        char *pos[2];
        capture c;
        capture_start(&c, STDOUT_FILENO);
        int rc = drv_opts_parse(opts, &doc, 5, argv, pos, 2, &npos, NULL, NULL);
        const char *out = capture_end(&c);
        assert_int_equal(rc, DRV_OPTS_HELP);
        static const char *const want[] = {
            "Usage: drover-test [OPTIONS] FILE...",
            "Exercises the option table.",
            "--redis-url URL",
            "(default: redis://127.0.0.1:6379)",
            "[env DRV_TEST_REDIS_URL]",
            "--partitions N",
            "how many partitions",
            "--verbose",
            "[env DRV_TEST_VERBOSE]",
            "--label TEXT",
            "-h, --help",
            "Example:",
            "drover-test --partitions 4 a b",
        };
        for (size_t k = 0; k < sizeof want / sizeof *want; k++)
            if (!strstr(out, want[k])) fail_msg("help lacks \"%s\":\n%s", want[k], out);
        assert_null(strstr(out, "--verbose VALUE")); /* bools take no value */
    }
}

/* ---- drv_parse_ll -----------------------------------------------------------------------------
 */

static void parse_ll_reads_whole_numbers_within_bounds(void **state) {
    (void)state;
    long long v = 0;
    assert_int_equal(drv_parse_ll("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(drv_parse_ll("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(drv_parse_ll("-7", -10, 10, &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(drv_parse_ll("+7", -10, 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(drv_parse_ll("007", 0, 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(drv_parse_ll("9223372036854775807", 0, INT64_MAX, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(drv_parse_ll("-9223372036854775808", INT64_MIN, 0, &v), 0);
    assert_true(v == INT64_MIN);
}

static void parse_ll_refuses_anything_else(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",
        " 5",
        "5 ",
        "\t5",
        "5\n",
        "1.0",
        "1e3",
        "0x10",
        "abc",
        "-",
        "+",
        "--5",
        "- 5",
        "12a",
        "9223372036854775808",
        "-9223372036854775809",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        long long v = 42;
        if (drv_parse_ll(bad[i], INT64_MIN, INT64_MAX, &v) != -1)
            fail_msg("\"%s\" was accepted as %lld", bad[i], v);
        assert_int_equal(v, 42);
    }
    long long v = 42;
    assert_int_equal(drv_parse_ll(NULL, 0, 10, &v), -1);
    assert_int_equal(drv_parse_ll("11", 0, 10, &v), -1);
    assert_int_equal(drv_parse_ll("-1", 0, 10, &v), -1);
    assert_int_equal(v, 42);
}

/* ---- job ids (keys.h) --------------------------------------------------------------------------
 */

static void job_id_allows_letters_digits_underscore_and_dash(void **state) {
    (void)state;
    assert_int_equal(drv_job_id_valid("a"), 1);
    assert_int_equal(drv_job_id_valid("nightly-2026_05_01"), 1);
    assert_int_equal(drv_job_id_valid("ABCxyz019_-"), 1);
    char id[66];
    memset(id, 'z', 64);
    id[64] = '\0';
    assert_int_equal(drv_job_id_valid(id), 1);
}

static void job_id_refuses_what_could_break_a_key(void **state) {
    (void)state;
    static const char *const bad[] = {
        "", "a b", "{x}", "a}", "a{", "j.1", "a:b", "a/b", "\xc3\xa4", "a\tb", "a\nb", "*",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (drv_job_id_valid(bad[i])) fail_msg("\"%s\" was accepted", bad[i]);
    char id[66];
    memset(id, 'z', 65);
    id[65] = '\0';
    assert_int_equal(drv_job_id_valid(id), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(opts_apply_the_table_defaults, setup),
        cmocka_unit_test_setup(opts_env_overrides_the_default, setup),
        cmocka_unit_test_setup(opts_empty_env_value_is_ignored, setup),
        cmocka_unit_test_setup(opts_flag_overrides_env, setup),
        cmocka_unit_test_setup(opts_later_flag_wins, setup),
        cmocka_unit_test_setup(opts_accept_name_equals_value, setup),
        cmocka_unit_test_setup(opts_string_values_are_borrowed_from_argv, setup),
        cmocka_unit_test_setup(opts_bool_flag_alone_means_true, setup),
        cmocka_unit_test_setup(opts_bool_flag_takes_explicit_values, setup),
        cmocka_unit_test_setup(opts_bad_bool_value_names_the_flag, setup),
        cmocka_unit_test_setup(opts_int_out_of_bounds_names_the_flag_and_bounds, setup),
        cmocka_unit_test_setup(opts_int_must_be_a_whole_number, setup),
        cmocka_unit_test_setup(opts_unknown_flag_is_an_error, setup),
        cmocka_unit_test_setup(opts_missing_value_is_an_error, setup),
        cmocka_unit_test_setup(opts_bad_env_value_names_the_variable, setup),
        cmocka_unit_test_setup(opts_collect_positional_args_in_order, setup),
        cmocka_unit_test_setup(opts_too_many_positional_args_is_an_error, setup),
        cmocka_unit_test_setup(opts_double_dash_hands_over_the_rest, setup),
        cmocka_unit_test_setup(opts_double_dash_at_the_end_gives_an_empty_rest, setup),
        cmocka_unit_test_setup(opts_double_dash_without_a_rest_is_an_error, setup),
        cmocka_unit_test_setup(opts_help_prints_the_table_and_returns_help, setup),
        cmocka_unit_test(parse_ll_reads_whole_numbers_within_bounds),
        cmocka_unit_test(parse_ll_refuses_anything_else),
        cmocka_unit_test(job_id_allows_letters_digits_underscore_and_dash),
        cmocka_unit_test(job_id_refuses_what_could_break_a_key),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unsetenv("DRV_TEST_REDIS_URL");
    unsetenv("DRV_TEST_PARTITIONS");
    unsetenv("DRV_TEST_VERBOSE");
    return rc;
}
