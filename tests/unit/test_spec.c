/* Job specs: parsing JSON, validation, serialising back, and the --range flag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------- */

#define RANGE_1_2 "\"source\":{\"type\":\"range\",\"start\":1,\"end\":2}"

static drv_err parse(const char *json, drv_spec *s, char *why, size_t whylen) {
    return drv_spec_parse(json, strlen(json), s, why, whylen);
}

/* Parses 'json', expecting DRV_EINVAL with a message holding 'needle', and the output left as
 * it was. */
static void expect_error(const char *json, const char *needle) {
    drv_spec s, before;
    char why[512] = "";
    memset(&s, 0x5a, sizeof s);
    memcpy(&before, &s, sizeof s);
    drv_err e = parse(json, &s, why, sizeof why);
    if (e != DRV_EINVAL) fail_msg("%s: returned %d (\"%s\"), expected DRV_EINVAL", json, e, why);
    if (!strstr(why, needle))
        fail_msg("%s: message \"%s\" does not name \"%s\"", json, why, needle);
    if (memcmp(&s, &before, sizeof s) != 0) fail_msg("%s: output changed on failure", json);
}

static void expect_ok(const char *json, drv_spec *s) {
    char why[512] = "";
    drv_err e = parse(json, s, why, sizeof why);
    if (e != DRV_OK) fail_msg("%s: returned %d: %s", json, e, why);
}

static void assert_spec_equal(const drv_spec *a, const drv_spec *b) {
    assert_string_equal(a->id, b->id);
    assert_int_equal(a->source, b->source);
    if (a->source == DRV_SRC_RANGE) {
        assert_int_equal(a->range_start, b->range_start);
        assert_int_equal(a->range_end, b->range_end);
    } else {
        assert_string_equal(a->path, b->path);
        assert_int_equal(a->format, b->format);
        assert_string_equal(a->id_field, b->id_field);
    }
    assert_int_equal(a->partitions, b->partitions);
    assert_int_equal(a->lease_ms, b->lease_ms);
    assert_int_equal(a->max_attempts, b->max_attempts);
    assert_int_equal(a->max_throttled, b->max_throttled);
    assert_int_equal(a->backoff_ms, b->backoff_ms);
    assert_int_equal(a->backoff_max_ms, b->backoff_max_ms);
    assert_int_equal(a->window, b->window);
    assert_int_equal(a->max_item_bytes, b->max_item_bytes);
    assert_int_equal(a->rate_per_s, b->rate_per_s);
    assert_int_equal(a->rate_burst, b->rate_burst);
    assert_int_equal(a->max_in_flight, b->max_in_flight);
    assert_int_equal(a->weight, b->weight);
    assert_int_equal(a->keep_results, b->keep_results);
}

/* ---- valid specs --------------------------------------------------------------------------- */

static void spec_range_source_parses_with_defaults(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{\"id\":\"j-1\",\"source\":{\"type\":\"range\",\"start\":5,\"end\":9}}", &s);
    assert_string_equal(s.id, "j-1");
    assert_int_equal(s.source, DRV_SRC_RANGE);
    assert_int_equal(s.range_start, 5);
    assert_int_equal(s.range_end, 9);
    drv_spec d;
    drv_spec_init(&d);
    assert_int_equal(s.partitions, d.partitions);
    assert_int_equal(s.partitions, 8);
    assert_int_equal(s.lease_ms, 30000);
    assert_int_equal(s.max_attempts, 5);
    assert_int_equal(s.max_throttled, 50);
    assert_int_equal(s.backoff_ms, 1000);
    assert_int_equal(s.backoff_max_ms, 300000);
    assert_int_equal(s.window, 5000);
    assert_int_equal(s.max_item_bytes, 1 << 20);
    assert_string_equal(s.path, "");
    assert_string_equal(s.id_field, "");
}

static void spec_without_id_leaves_it_empty_for_generation(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{" RANGE_1_2 "}", &s);
    assert_string_equal(s.id, "");
}

static void spec_range_may_hold_a_single_or_negative_ids(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{\"source\":{\"type\":\"range\",\"start\":7,\"end\":7}}", &s);
    assert_int_equal(s.range_start, 7);
    assert_int_equal(s.range_end, 7);
    expect_ok("{\"source\":{\"type\":\"range\",\"start\":-10,\"end\":-3}}", &s);
    assert_int_equal(s.range_start, -10);
    assert_int_equal(s.range_end, -3);
}

static void spec_file_source_parses_lines_ndjson_and_csv(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{\"source\":{\"type\":\"file\",\"path\":\"/data/ids.txt\"}}", &s);
    assert_int_equal(s.source, DRV_SRC_FILE);
    assert_string_equal(s.path, "/data/ids.txt");
    assert_int_equal(s.format, DRV_FMT_LINES); /* the default format */
    assert_string_equal(s.id_field, "");

    expect_ok("{\"source\":{\"type\":\"file\",\"path\":\"u.ndjson\",\"format\":\"ndjson\","
              "\"id_field\":\"user_id\"}}",
              &s);
    assert_int_equal(s.format, DRV_FMT_NDJSON);
    assert_string_equal(s.path, "u.ndjson");
    assert_string_equal(s.id_field, "user_id");

    expect_ok("{\"source\":{\"type\":\"file\",\"path\":\"/x.csv\",\"format\":\"csv\","
              "\"id_field\":\"uid\"},\"partitions\":3}",
              &s);
    assert_int_equal(s.format, DRV_FMT_CSV);
    assert_string_equal(s.id_field, "uid");
    assert_int_equal(s.partitions, 3);
}

static void spec_stdin_source_parses_without_a_path(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{\"source\":{\"type\":\"stdin\"}}", &s);
    assert_int_equal(s.source, DRV_SRC_STDIN);
    assert_int_equal(s.format, DRV_FMT_LINES);
    assert_string_equal(s.path, "");
    expect_ok("{\"source\":{\"type\":\"stdin\",\"format\":\"ndjson\",\"id_field\":\"k\"}}", &s);
    assert_int_equal(s.format, DRV_FMT_NDJSON);
    assert_string_equal(s.id_field, "k");
}

static void spec_given_fields_replace_the_defaults(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{" RANGE_1_2 ",\"partitions\":1024,\"lease_ms\":100,\"max_attempts\":1000,"
              "\"backoff_ms\":0,\"backoff_max_ms\":0,\"window\":1,\"max_item_bytes\":16}",
              &s);
    assert_int_equal(s.partitions, 1024);
    assert_int_equal(s.lease_ms, 100);
    assert_int_equal(s.max_attempts, 1000);
    assert_int_equal(s.backoff_ms, 0);
    assert_int_equal(s.backoff_max_ms, 0);
    assert_int_equal(s.window, 1);
    assert_int_equal(s.max_item_bytes, 16);
}

static void spec_accepts_whole_numbers_written_with_a_fraction_or_exponent(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{" RANGE_1_2 ",\"partitions\":4.0,\"window\":1e3}", &s);
    assert_int_equal(s.partitions, 4);
    assert_int_equal(s.window, 1000);
}

static void spec_parse_reads_only_len_bytes(void **state) {
    (void)state;
    const char *json = "{" RANGE_1_2 "}garbage after the given length";
    size_t len = strlen("{" RANGE_1_2 "}");
    drv_spec s;
    char why[256];
    assert_int_equal(drv_spec_parse(json, len, &s, why, sizeof why), DRV_OK);
    assert_int_equal(s.range_end, 2);
}

/* ---- malformed and invalid specs ---------------------------------------------------------- */

static void spec_malformed_json_names_line_and_column(void **state) {
    (void)state;
    expect_error("{" RANGE_1_2, "malformed JSON at line 1, column ");
    /* The '1' (where a ':' belongs) is the 7th character of line 2. */
    expect_error("{\n  \"a\" 1}", "line 2, column 7");
    expect_error("{\n\"source\": {,}}", "malformed JSON at line 2, column ");
    expect_error("{\n\n  \"partitions\": 4,\n  \"window\": }", "line 4, column 13");
    expect_error("", "malformed JSON at line 1, column 1");
}

static void spec_text_after_the_object_is_malformed(void **state) {
    (void)state;
    expect_error("{" RANGE_1_2 "} {\"partitions\":2}", "malformed JSON at line 1, column ");
    expect_error("{" RANGE_1_2 "}\nx", "line 2, column 1");
    /* Trailing white space is fine. */
    drv_spec s;
    expect_ok("{" RANGE_1_2 "}\n\t \r\n", &s);
}

static void spec_top_level_must_be_an_object(void **state) {
    (void)state;
    expect_error("[1]", "JSON object at the top level");
    expect_error("\"range\"", "JSON object at the top level");
    expect_error("42", "JSON object at the top level");
    expect_error("null", "JSON object at the top level");
}

static void spec_unknown_top_level_field_is_named(void **state) {
    (void)state;
    expect_error("{" RANGE_1_2 ",\"partitons\":4}", "partitons: unknown field");
}

static void spec_unknown_source_field_is_named(void **state) {
    (void)state;
    expect_error("{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2,\"step\":1}}",
                 "source.step: unknown field");
    expect_error("{\"source\":{\"type\":\"file\",\"path\":\"x\",\"fromat\":\"csv\"}}",
                 "source.fromat");
}

static void spec_missing_source_is_named(void **state) {
    (void)state;
    expect_error("{\"partitions\":4}", "source: missing");
    expect_error("{}", "source: missing");
}

static void spec_source_must_be_an_object_with_a_known_type(void **state) {
    (void)state;
    expect_error("{\"source\":\"range\"}", "source: expected an object");
    expect_error("{\"source\":{\"type\":\"queue\"}}",
                 "source.type: expected range, file, stdin, http or postgres");
    expect_error("{\"source\":{}}", "source.type");
    expect_error("{\"source\":{\"type\":3}}", "source.type: expected a string");
}

/* The postgres source: its members round-trip (the DSN kept as written, ${NAME} and all), and
 * each missing or misplaced member is named. */
static void spec_postgres_round_trips_and_names_what_is_wrong(void **state) {
    (void)state;
    const char *json = "{\"source\":{\"type\":\"postgres\",\"dsn\":\"${DATABASE_URL}\","
                       "\"table\":\"invoices\",\"key\":\"id\",\"where\":\"fee_fixed = false\","
                       "\"columns\":[\"id\",\"email\"],\"allow_seqscan\":true}}";
    drv_spec s, back;
    char why[512];
    assert_int_equal(drv_spec_parse(json, strlen(json), &s, why, sizeof why), DRV_OK);
    assert_int_equal(s.source, DRV_SRC_PG);
    assert_string_equal(s.pg_dsn, "${DATABASE_URL}");
    assert_string_equal(s.pg_columns, "id,email");
    assert_int_equal(s.pg_allow_seqscan, 1);
    char *out = drv_spec_to_json(&s);
    assert_non_null(out);
    assert_int_equal(drv_spec_parse(out, strlen(out), &back, why, sizeof why), DRV_OK);
    assert_string_equal(back.pg_table, "invoices");
    assert_string_equal(back.pg_where, "fee_fixed = false");
    assert_string_equal(back.pg_columns, "id,email");
    free(out);
    expect_error("{\"source\":{\"type\":\"postgres\",\"table\":\"t\",\"key\":\"id\"}}",
                 "source.dsn: missing");
    expect_error("{\"source\":{\"type\":\"postgres\",\"dsn\":\"x\",\"key\":\"id\"}}",
                 "source.table: missing");
    expect_error("{\"source\":{\"type\":\"postgres\",\"dsn\":\"x\",\"table\":\"t\"}}",
                 "source.key: missing");
    expect_error("{\"source\":{\"type\":\"postgres\",\"dsn\":\"x\",\"table\":\"t\",\"key\":"
                 "\"id\",\"columns\":[\"a b\"]}}",
                 "source.columns");
    expect_error("{\"source\":{\"type\":\"postgres\",\"dsn\":\"x\",\"table\":\"t\",\"key\":"
                 "\"id\",\"path\":\"/x\"}}",
                 "source.path: not a field of a postgres source");
    expect_error("{\"source\":{\"type\":\"postgres\",\"dsn\":\"x\",\"table\":\"t\",\"query\":"
                 "\"SELECT 1\"}}",
                 "source.table: give a table or a query, not both");
    /* A query needs no key: submit notes its first column. */
    const char *q =
        "{\"source\":{\"type\":\"postgres\",\"dsn\":\"x\",\"query\":\"SELECT id FROM t\"}}";
    assert_int_equal(drv_spec_parse(q, strlen(q), &s, why, sizeof why), DRV_OK);
    assert_string_equal(s.pg_query, "SELECT id FROM t");
    expect_error("{\"source\":{\"type\":\"range\",\"start\":1,\"end\":2,\"table\":\"t\"}}",
                 "source.table: only a postgres source has it");
}

static void spec_range_needs_start_and_end(void **state) {
    (void)state;
    expect_error("{\"source\":{\"type\":\"range\",\"start\":1}}", "\"end\"");
    expect_error("{\"source\":{\"type\":\"range\",\"end\":1}}", "\"start\"");
}

static void spec_range_start_after_end_is_refused(void **state) {
    (void)state;
    expect_error("{\"source\":{\"type\":\"range\",\"start\":3,\"end\":2}}",
                 "range start 3 is greater than its end 2");
}

static void spec_range_bounds_beyond_2_53_are_refused(void **state) {
    (void)state;
    expect_error("{\"source\":{\"type\":\"range\",\"start\":1,\"end\":1e16}}", "source.end");
    expect_error("{\"source\":{\"type\":\"range\",\"start\":-1e16,\"end\":1}}", "source.start");
    drv_spec s;
    expect_ok("{\"source\":{\"type\":\"range\",\"start\":-9007199254740992,"
              "\"end\":-9007199254740000}}",
              &s);
    assert_int_equal(s.range_start, -9007199254740992LL);
    expect_ok("{\"source\":{\"type\":\"range\",\"start\":9007199254740000,"
              "\"end\":9007199254740992}}",
              &s);
    assert_int_equal(s.range_end, 9007199254740992LL);
}

/* A range partition's done record is a bitmap of at most 2^32 bits (offset id - start). */
static void spec_range_partitions_wider_than_2_32_ids_are_refused(void **state) {
    (void)state;
    drv_spec s;
    /* 2^32 ids in one partition: the widest that fits; one more does not. */
    expect_ok("{\"source\":{\"type\":\"range\",\"start\":0,\"end\":4294967295},"
              "\"partitions\":1}",
              &s);
    expect_error("{\"source\":{\"type\":\"range\",\"start\":0,\"end\":4294967296},"
                 "\"partitions\":1}",
                 "gives partitions of 4294967297 ids; a partition holds at most 2^32 (4294967296): "
                 "use at least 2 partitions");
    /* Negative ranges count the same way. */
    expect_ok("{\"source\":{\"type\":\"range\",\"start\":-8589934592,\"end\":-1},"
              "\"partitions\":2}",
              &s);
    expect_error("{\"source\":{\"type\":\"range\",\"start\":-8589934592,\"end\":0},"
                 "\"partitions\":2}",
                 "use at least 3 partitions");
    /* Wider than 1024 partitions of 2^32 can hold: only a narrower range helps. */
    expect_error("{\"source\":{\"type\":\"range\",\"start\":-9007199254740992,"
                 "\"end\":9007199254740992},\"partitions\":1024}",
                 "has 18014398509481985 ids; at most 2^32 (4294967296) per partition");
}

static void spec_partitions_must_be_1_to_1024(void **state) {
    (void)state;
    expect_error("{" RANGE_1_2 ",\"partitions\":0}", "partitions: expected 1 to 1024, got 0");
    expect_error("{" RANGE_1_2 ",\"partitions\":1025}", "partitions: expected 1 to 1024, got 1025");
    expect_error("{" RANGE_1_2 ",\"partitions\":-1}", "partitions");
    drv_spec s;
    expect_ok("{" RANGE_1_2 ",\"partitions\":1}", &s);
    assert_int_equal(s.partitions, 1);
}

static void spec_numbers_must_be_whole(void **state) {
    (void)state;
    expect_error("{" RANGE_1_2 ",\"partitions\":1.5}", "partitions: expected a whole number");
    expect_error("{" RANGE_1_2 ",\"partitions\":\"8\"}", "partitions: expected a whole number");
    expect_error("{" RANGE_1_2 ",\"partitions\":true}", "partitions: expected a whole number");
    expect_error("{" RANGE_1_2 ",\"partitions\":null}", "partitions: expected a whole number");
    expect_error("{" RANGE_1_2 ",\"lease_ms\":1000.25}", "lease_ms: expected a whole number");
    expect_error("{\"source\":{\"type\":\"range\",\"start\":1.5,\"end\":2}}",
                 "source.start: expected a whole number");
    expect_error("{\"source\":{\"type\":\"range\",\"start\":1,\"end\":\"2\"}}",
                 "source.end: expected a whole number");
}

static void spec_other_bounds_are_named(void **state) {
    (void)state;
    expect_error("{" RANGE_1_2 ",\"lease_ms\":99}", "lease_ms: expected 100 to 86400000");
    expect_error("{" RANGE_1_2 ",\"max_attempts\":0}", "max_attempts: expected 1 to 1000");
    expect_error("{" RANGE_1_2 ",\"max_throttled\":0}", "max_throttled: expected 1 to 1000000");
    expect_error("{" RANGE_1_2 ",\"backoff_ms\":-1}", "backoff_ms: expected 0 to 86400000");
    expect_error("{" RANGE_1_2 ",\"backoff_ms\":10,\"backoff_max_ms\":5}", "backoff_max_ms");
    expect_error("{" RANGE_1_2 ",\"window\":0}", "window: expected 1 to 10000000");
    expect_error("{" RANGE_1_2 ",\"max_item_bytes\":15}", "max_item_bytes: expected 16");
    expect_error("{" RANGE_1_2 ",\"max_item_bytes\":67108865}", "max_item_bytes");
}

static void spec_ndjson_and_csv_need_an_id_field(void **state) {
    (void)state;
    expect_error("{\"source\":{\"type\":\"file\",\"path\":\"x\",\"format\":\"ndjson\"}}",
                 "source.id_field");
    expect_error("{\"source\":{\"type\":\"file\",\"path\":\"x\",\"format\":\"csv\"}}",
                 "source.id_field");
    expect_error("{\"source\":{\"type\":\"stdin\",\"format\":\"csv\",\"id_field\":\"\"}}",
                 "source.id_field");
}

static void spec_lines_refuses_an_id_field(void **state) {
    (void)state;
    expect_error("{\"source\":{\"type\":\"file\",\"path\":\"x\",\"id_field\":\"a\"}}",
                 "source.id_field: only ndjson and csv");
    expect_error("{\"source\":{\"type\":\"file\",\"path\":\"x\",\"format\":\"lines\","
                 "\"id_field\":\"a\"}}",
                 "source.id_field");
}

static void spec_bad_format_is_named(void **state) {
    (void)state;
    expect_error("{\"source\":{\"type\":\"file\",\"path\":\"x\",\"format\":\"xml\"}}",
                 "source.format: expected lines, ndjson or csv, got \"xml\"");
    expect_error("{\"source\":{\"type\":\"file\",\"path\":\"x\",\"format\":1}}",
                 "source.format: expected a string");
}

static void spec_file_needs_a_path_and_stdin_refuses_one(void **state) {
    (void)state;
    expect_error("{\"source\":{\"type\":\"file\"}}", "source.path");
    expect_error("{\"source\":{\"type\":\"file\",\"path\":\"\"}}", "source.path");
    expect_error("{\"source\":{\"type\":\"stdin\",\"path\":\"x\"}}", "source.path");
}

static void spec_bad_job_id_is_named(void **state) {
    (void)state;
    expect_error("{\"id\":\"a b\"," RANGE_1_2 "}", "id: expected 1 to 64");
    expect_error("{\"id\":\"{x}\"," RANGE_1_2 "}", "id: expected 1 to 64");
    expect_error("{\"id\":\"j.1\"," RANGE_1_2 "}", "id: expected 1 to 64");
    expect_error("{\"id\":7," RANGE_1_2 "}", "id: expected a string");
    char json[256], id65[66];
    memset(id65, 'a', 65);
    id65[65] = '\0';
    snprintf(json, sizeof json, "{\"id\":\"%s\"," RANGE_1_2 "}", id65);
    expect_error(json, "id:");
    /* 64 characters is the most an id may have. */
    drv_spec s;
    id65[64] = '\0';
    snprintf(json, sizeof json, "{\"id\":\"%s\"," RANGE_1_2 "}", id65);
    expect_ok(json, &s);
    assert_string_equal(s.id, id65);
}

static void spec_validate_refuses_what_parse_refuses(void **state) {
    (void)state;
    drv_spec s;
    char why[256];
    drv_spec_init(&s);
    /* Straight from init no source is set: an empty range. */
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "source"));
    s.range_start = 1, s.range_end = 10;
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_OK);
    s.partitions = 0;
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "partitions"));
    s.partitions = 8;
    strcpy(s.id, "no spaces please");
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "id:"));
    s.id[0] = '\0';
    s.source = DRV_SRC_FILE;
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "source.path"));
    strcpy(s.path, "/x");
    s.format = DRV_FMT_CSV;
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "source.id_field"));
    strcpy(s.id_field, "id");
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_OK);
}

/* ---- serialising ---------------------------------------------------------------------------- */

static void round_trip(const drv_spec *a) {
    char why[512] = "";
    char *json = drv_spec_to_json(a);
    assert_non_null(json);
    drv_spec b;
    if (parse(json, &b, why, sizeof why) != DRV_OK) fail_msg("%s: %s", json, why);
    assert_spec_equal(a, &b);
    free(json);
}

static void spec_round_trips_through_json(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{\"id\":\"r\",\"source\":{\"type\":\"file\",\"path\":\"/d/u \\\"q\\\".ndjson\","
              "\"format\":\"ndjson\",\"id_field\":\"k\"},\"partitions\":16,\"lease_ms\":1234,"
              "\"max_attempts\":9,\"backoff_ms\":7,\"backoff_max_ms\":70,\"window\":123,"
              "\"max_item_bytes\":4096}",
              &s);
    round_trip(&s);
    expect_ok("{\"id\":\"csv_job\",\"source\":{\"type\":\"file\",\"path\":\"/x.csv\","
              "\"format\":\"csv\",\"id_field\":\"user id\"}}",
              &s);
    round_trip(&s);
    expect_ok("{\"source\":{\"type\":\"stdin\"},\"partitions\":1}", &s);
    round_trip(&s);
    expect_ok("{\"source\":{\"type\":\"stdin\",\"format\":\"ndjson\",\"id_field\":\"k\"}}", &s);
    round_trip(&s);
    expect_ok("{\"id\":\"big\",\"source\":{\"type\":\"range\",\"start\":-9007199254740992,"
              "\"end\":-9007199254740000},\"window\":10000000}",
              &s);
    round_trip(&s);
}

static void spec_round_trip_keeps_large_range_bounds_exact(void **state) {
    (void)state;
    /* cJSON's own number printing keeps 15 digits when that is within DBL_EPSILON, which
     * near 2^53 is off by one or two. */
    static const int64_t bounds[][2] = {
        {9007199254740990LL, 9007199254740991LL},
        {-9007199254740991LL, -9007199254740989LL},
        {8000000000000001LL, 8000000000000003LL},
        {4503599627370497LL, 4503599627370499LL},
    };
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        drv_spec s;
        drv_spec_init(&s);
        s.range_start = bounds[i][0];
        s.range_end = bounds[i][1];
        round_trip(&s);
    }
}

static void spec_to_json_is_what_was_given(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{\"id\":\"a\",\"source\":{\"type\":\"range\",\"start\":3,\"end\":4}}", &s);
    char *json = drv_spec_to_json(&s);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"id\":\"a\""));
    assert_non_null(strstr(json, "\"type\":\"range\""));
    assert_non_null(strstr(json, "\"start\":3"));
    assert_non_null(strstr(json, "\"end\":4"));
    assert_non_null(strstr(json, "\"partitions\":8"));
    assert_null(strchr(json, '\n')); /* compact */
    free(json);
}

/* ---- fleet-wide limits -------------------------------------------------------------------- */

static void spec_limits_default_to_none_and_weight_one(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{" RANGE_1_2 "}", &s);
    assert_int_equal(s.rate_per_s, 0);
    assert_int_equal(s.rate_burst, 0);
    assert_int_equal(s.max_in_flight, 0);
    assert_int_equal(s.weight, 1);
}

static void spec_rate_burst_defaults_to_a_tenth_of_a_second(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{" RANGE_1_2 ",\"rate\":{\"per_second\":500}}", &s);
    assert_int_equal(s.rate_per_s, 500);
    assert_int_equal(s.rate_burst, 50);
    expect_ok("{" RANGE_1_2 ",\"rate\":{\"per_second\":3}}", &s);
    assert_int_equal(s.rate_burst, 1);
    expect_ok("{" RANGE_1_2 ",\"rate\":{\"per_second\":200,\"burst\":7},"
              "\"max_in_flight\":5,\"weight\":3}",
              &s);
    assert_int_equal(s.rate_per_s, 200);
    assert_int_equal(s.rate_burst, 7);
    assert_int_equal(s.max_in_flight, 5);
    assert_int_equal(s.weight, 3);
    round_trip(&s);
}

static void spec_bad_limits_are_named(void **state) {
    (void)state;
    expect_error("{" RANGE_1_2 ",\"rate\":500}", "rate: expected an object");
    expect_error("{" RANGE_1_2 ",\"rate\":{}}", "rate.per_second: missing");
    expect_error("{" RANGE_1_2 ",\"rate\":{\"per_second\":0}}", "rate.per_second: expected 1");
    expect_error("{" RANGE_1_2 ",\"rate\":{\"per_second\":-5}}", "rate.per_second");
    expect_error("{" RANGE_1_2 ",\"rate\":{\"per_second\":2.5}}",
                 "rate.per_second: expected a whole");
    expect_error("{" RANGE_1_2 ",\"rate\":{\"per_second\":1000001}}", "rate.per_second");
    expect_error("{" RANGE_1_2 ",\"rate\":{\"per_second\":5,\"burst\":0}}", "rate.burst");
    expect_error("{" RANGE_1_2 ",\"rate\":{\"per_second\":5,\"every\":1}}", "rate.every: unknown");
    expect_error("{" RANGE_1_2 ",\"max_in_flight\":0}", "max_in_flight: expected 1");
    expect_error("{" RANGE_1_2 ",\"max_in_flight\":\"5\"}", "max_in_flight: expected a whole");
    expect_error("{" RANGE_1_2 ",\"weight\":0}", "weight: expected 1 to 1000");
    expect_error("{" RANGE_1_2 ",\"weight\":1001}", "weight: expected 1 to 1000");
}

static void spec_validate_refuses_a_burst_without_a_rate(void **state) {
    (void)state;
    drv_spec s;
    char why[256] = "";
    drv_spec_init(&s);
    s.range_end = 5;
    s.rate_burst = 3;
    assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_EINVAL);
    assert_non_null(strstr(why, "rate.burst"));
}

/* ---- names and the --range flag ------------------------------------------------------------ */

static void format_and_source_names_round_trip(void **state) {
    (void)state;
    drv_fmt f;
    for (drv_fmt g = DRV_FMT_LINES; g <= DRV_FMT_CSV; g++) {
        assert_int_equal(drv_fmt_parse(drv_fmt_name(g), &f), 0);
        assert_int_equal(f, g);
    }
    f = DRV_FMT_CSV;
    assert_int_equal(drv_fmt_parse("LINES", &f), -1);
    assert_int_equal(drv_fmt_parse("", &f), -1);
    assert_int_equal(f, DRV_FMT_CSV);
    assert_string_equal(drv_src_name(DRV_SRC_RANGE), "range");
    assert_string_equal(drv_src_name(DRV_SRC_FILE), "file");
    assert_string_equal(drv_src_name(DRV_SRC_STDIN), "stdin");
}

static void range_parse_reads_inclusive_signed_bounds(void **state) {
    (void)state;
    int64_t a = 0, b = 0;
    assert_int_equal(drv_range_parse("1..10", &a, &b), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 10);
    assert_int_equal(drv_range_parse("-5..-1", &a, &b), 0);
    assert_int_equal(a, -5);
    assert_int_equal(b, -1);
    assert_int_equal(drv_range_parse("0..0", &a, &b), 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
    assert_int_equal(drv_range_parse("-9223372036854775808..9223372036854775807", &a, &b), 0);
    assert_true(a == INT64_MIN);
    assert_true(b == INT64_MAX);
}

static void range_parse_refuses_malformed_ranges(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",     "..",    "1..",   "..10",   "1-10",    "1..x",
        "a..5", "1...5", "1..5x", "1.5..2", "1..2..3", "1..99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t a = 11, b = 22;
        if (drv_range_parse(bad[i], &a, &b) != -1) fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(a, 11);
        assert_int_equal(b, 22);
    }
}

/* ---- callbacks and cleanup ----------------------------------------------------------------- */

static void spec_callbacks_parse_and_survive_a_round_trip(void **state) {
    (void)state;
    drv_spec s, back;
    expect_ok("{" RANGE_1_2 ",\"on_complete\":{\"url\":\"https://hooks.example/done\","
              "\"headers\":{\"Authorization\":\"Bearer ${HOOK_TOKEN}\"}},"
              "\"on_dead\":{\"url\":\"http://127.0.0.1:9/dead\",\"timeout_ms\":2000},"
              "\"alert_dead_over\":10,\"ttl_after_done\":3600}",
              &s);
    assert_string_equal(s.on_complete, "{\"url\":\"https://hooks.example/done\",\"headers\":{"
                                       "\"Authorization\":\"Bearer ${HOOK_TOKEN}\"},"
                                       "\"timeout_ms\":10000}");
    assert_string_equal(s.on_dead, "{\"url\":\"http://127.0.0.1:9/dead\",\"timeout_ms\":2000}");
    assert_int_equal(s.alert_dead_over, 10);
    assert_int_equal(s.ttl_after_done, 3600);
    char *json = drv_spec_to_json(&s);
    assert_non_null(json);
    expect_ok(json, &back);
    free(json);
    assert_string_equal(back.on_complete, s.on_complete);
    assert_string_equal(back.on_dead, s.on_dead);
    assert_int_equal(back.alert_dead_over, 10);
    assert_int_equal(back.ttl_after_done, 3600);
}

static void spec_without_callbacks_has_none(void **state) {
    (void)state;
    drv_spec s;
    expect_ok("{" RANGE_1_2 "}", &s);
    assert_string_equal(s.on_complete, "");
    assert_string_equal(s.on_dead, "");
    assert_int_equal(s.alert_dead_over, -1);
    assert_int_equal(s.ttl_after_done, 0);
    char *json = drv_spec_to_json(&s);
    assert_non_null(json);
    assert_null(strstr(json, "on_complete"));
    assert_null(strstr(json, "alert_dead_over"));
    assert_null(strstr(json, "ttl_after_done"));
    free(json);
}

/* keep_results: none by default (and then not in the JSON), up to 1 MiB, back from the JSON. */
static void spec_keep_results_parses_and_round_trips(void **state) {
    (void)state;
    drv_spec s, back;
    expect_ok("{" RANGE_1_2 "}", &s);
    assert_int_equal(s.keep_results, 0);
    char *json = drv_spec_to_json(&s);
    assert_non_null(json);
    assert_null(strstr(json, "keep_results"));
    free(json);
    expect_ok("{" RANGE_1_2 ",\"keep_results\":4096}", &s);
    assert_int_equal(s.keep_results, 4096);
    json = drv_spec_to_json(&s);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"keep_results\":4096"));
    expect_ok(json, &back);
    assert_spec_equal(&s, &back);
    free(json);
    expect_ok("{" RANGE_1_2 ",\"keep_results\":1048576}", &s);
    expect_error("{" RANGE_1_2 ",\"keep_results\":1048577}",
                 "keep_results: expected 0 to 1048576, got 1048577");
    expect_error("{" RANGE_1_2 ",\"keep_results\":-1}", "keep_results: expected 0 to 1048576");
    assert_non_null(drv_spec_field_by_flag("keep-results"));
}

static void spec_bad_callbacks_are_refused_naming_the_field(void **state) {
    (void)state;
    expect_error("{" RANGE_1_2 ",\"on_complete\":\"https://x\"}",
                 "on_complete: expected an object");
    expect_error("{" RANGE_1_2 ",\"on_complete\":{}}", "on_complete.url: missing");
    expect_error("{" RANGE_1_2 ",\"on_complete\":{\"url\":\"ftp://x/y\"}}",
                 "on_complete.url: expected an http:// or https:// URL");
    expect_error("{" RANGE_1_2 ",\"on_complete\":{\"url\":7}}", "on_complete.url: expected");
    expect_error("{" RANGE_1_2 ",\"on_complete\":{\"url\":\"http://x\",\"method\":\"PUT\"}}",
                 "on_complete.method: unknown field");
    expect_error("{" RANGE_1_2 ",\"on_complete\":{\"url\":\"http://x\",\"headers\":[]}}",
                 "on_complete.headers: expected an object");
    expect_error("{" RANGE_1_2 ",\"on_complete\":{\"url\":\"http://x\",\"headers\":{\"A\":1}}}",
                 "on_complete.headers.A: expected");
    expect_error("{" RANGE_1_2
                 ",\"on_complete\":{\"url\":\"http://x\",\"headers\":{\"A\":\"a\\nb\"}}}",
                 "on_complete.headers.A: expected");
    expect_error("{" RANGE_1_2 ",\"on_complete\":{\"url\":\"http://x\",\"timeout_ms\":5}}",
                 "on_complete.timeout_ms: expected 100 to 600000, got 5");
    expect_error("{" RANGE_1_2 ",\"on_complete\":{\"url\":\"http://x\",\"timeout_ms\":1.5}}",
                 "on_complete.timeout_ms: expected a whole number");
    expect_error("{" RANGE_1_2 ",\"on_dead\":{\"url\":\"http://x\"}}",
                 "on_dead: needs \"alert_dead_over\"");
    expect_error("{" RANGE_1_2 ",\"alert_dead_over\":3}", "alert_dead_over: needs \"on_dead\"");
    expect_error("{" RANGE_1_2 ",\"on_dead\":{\"url\":\"http://x\"},\"alert_dead_over\":-1}",
                 "alert_dead_over: expected 0 or more, got -1");
    expect_error("{" RANGE_1_2 ",\"alert_dead_over\":\"3\"}",
                 "alert_dead_over: expected a whole number");
    expect_error("{" RANGE_1_2 ",\"ttl_after_done\":-1}",
                 "ttl_after_done: expected 0 (keep) to 31536000 seconds, got -1");
    expect_error("{" RANGE_1_2 ",\"ttl_after_done\":31536001}", "ttl_after_done: expected");
}

/* ---- the field table ---------------------------------------------------------------------- */

/* A valid spec every row's test starts from: a range, and what the dependent fields need (a
 * rate for a burst, an on_dead for its threshold and the other way round). */
static void table_base(drv_spec *s) {
    char why[512];
    drv_spec_init(s);
    s->range_start = 1, s->range_end = 100;
    s->rate_per_s = 10, s->rate_burst = 1;
    s->halt_failed_percent = 10;
    assert_int_equal(drv_spec_set_text(s, drv_spec_field_named("on_dead"),
                                       "{\"url\":\"http://x/\"}", why, sizeof why),
                     DRV_OK);
    s->alert_dead_over = 0;
    if (drv_spec_validate(s, why, sizeof why) != DRV_OK) fail_msg("base spec: %s", why);
}

/* A valid value for the row other than its default, as a flag's text. */
static void sample(const drv_spec_field *f, char *buf, size_t len) {
    if (f->type == DRV_FIELD_INT)
        snprintf(buf, len, "%lld", (long long)(f->def < f->max ? f->def + 1 : f->def - 1));
    else if (strcmp(f->name, "handler") == 0)
        snprintf(buf, len, "{\"type\":\"http\",\"url\":\"http://h/{id}\"}");
    else if (f->type == DRV_FIELD_OBJECT)
        snprintf(buf, len, "{\"url\":\"https://cb/%s\",\"timeout_ms\":500}", f->name);
    else if (strcmp(f->name, "dedupe") == 0)
        snprintf(buf, len, "refuse"); /* "first" is for file sources, and the base is a range */
    else
        snprintf(buf, len, "job_%s", f->name);
}

static void spec_every_field_round_trips_through_json(void **state) {
    (void)state;
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++) {
        if (f->type == DRV_FIELD_SOURCE) continue; /* its own tests above */
        drv_spec a, b;
        char text[256], why[512];
        table_base(&a);
        sample(f, text, sizeof text);
        if (drv_spec_set_text(&a, f, text, why, sizeof why) != DRV_OK)
            fail_msg("%s = %s: %s", f->name, text, why);
        if (drv_spec_validate(&a, why, sizeof why) != DRV_OK)
            fail_msg("%s = %s: %s", f->name, text, why);
        char *json = drv_spec_to_json(&a);
        assert_non_null(json);
        if (parse(json, &b, why, sizeof why) != DRV_OK) fail_msg("%s: %s", json, why);
        if (f->type == DRV_FIELD_INT)
            assert_int_equal(drv_spec_field_int(&a, f), drv_spec_field_int(&b, f));
        else
            assert_string_equal((const char *)&a + f->off, (const char *)&b + f->off);
        /* The canonical JSON is a fixed point. */
        char *again = drv_spec_to_json(&b);
        assert_string_equal(json, again);
        free(again);
        free(json);
    }
}

/* Puts v into the row's place of a JSON spec that is otherwise valid. */
static void json_with(const drv_spec_field *f, long long v, char *buf, size_t len) {
    const char *dot = strchr(f->name, '.');
    const char *extra =
        strcmp(f->name, "alert_dead_over") == 0 ? ",\"on_dead\":{\"url\":\"http://x/\"}" : "";
    if (dot && (strcmp(dot, ".per_second") == 0 || strcmp(dot, ".failed_percent") == 0))
        snprintf(buf, len, "{" RANGE_1_2 ",\"%.*s\":{\"%s\":%lld}}", (int)(dot - f->name), f->name,
                 dot + 1, v);
    else if (dot && strncmp(f->name, "halt.", 5) == 0)
        snprintf(buf, len, "{" RANGE_1_2 ",\"halt\":{\"failed_percent\":10,\"%s\":%lld}}", dot + 1,
                 v);
    else if (dot)
        snprintf(buf, len, "{" RANGE_1_2 ",\"%.*s\":{\"per_second\":10,\"%s\":%lld}}",
                 (int)(dot - f->name), f->name, dot + 1, v);
    else
        snprintf(buf, len, "{" RANGE_1_2 "%s,\"%s\":%lld}", extra, f->name, v);
}

static void spec_every_bound_is_refused_naming_the_field(void **state) {
    (void)state;
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++) {
        if (f->type != DRV_FIELD_INT) continue;
        long long outside[] = {(long long)f->min - 1, (long long)f->max + 1};
        for (int i = 0; i < 2; i++) {
            if (outside[i] > 9007199254740992LL) continue; /* not exact in JSON: its own test */
            char json[512], why[512];
            json_with(f, outside[i], json, sizeof json);
            expect_error(json, f->name);
            /* validate too, as after drover submit's flags or drover set */
            drv_spec s;
            long long v = outside[i];
            if ((f->flags & DRV_FIELD_OPTIONAL) && v == f->def) v--; /* the default is "none" */
            table_base(&s);
            *(int64_t *)((char *)&s + f->off) = v;
            assert_int_equal(drv_spec_validate(&s, why, sizeof why), DRV_EINVAL);
            if (!strstr(why, f->name)) fail_msg("%s = %lld: \"%s\"", f->name, v, why);
        }
    }
}

static void spec_every_field_has_a_submit_flag_in_help(void **state) {
    (void)state;
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++) {
        if (f->type == DRV_FIELD_SOURCE) continue; /* --range, --file, --source: submit's own */
        if (!f->flag) fail_msg("%s: no submit flag", f->name);
        assert_ptr_equal(drv_spec_field_by_flag(f->flag), f);
        const char *val = NULL;
        char help[256], flag[64];
        drv_opt opts[2] = {{0}, {0}};
        drv_spec_field_opt(f, &val, help, sizeof help, &opts[0]);
        char *out = NULL;
        size_t outlen = 0;
        FILE *mem = open_memstream(&out, &outlen);
        assert_non_null(mem);
        drv_cmd_doc doc = {"drover submit", "", NULL};
        drv_opts_help(opts, &doc, mem);
        fclose(mem);
        snprintf(flag, sizeof flag, "--%s %s", f->flag, f->metavar);
        if (!strstr(out, flag)) fail_msg("%s: \"%s\" not in --help:\n%s", f->name, flag, out);
        if (!strstr(out, f->help)) fail_msg("%s: its help not in --help:\n%s", f->name, out);
        if (!strstr(out, "default")) fail_msg("%s: no default in --help:\n%s", f->name, out);
        free(out);
        /* The flag sets what the row says. */
        char text[256], arg[300];
        sample(f, text, sizeof text);
        snprintf(arg, sizeof arg, "--%s=%s", f->flag, text);
        char *argv[] = {"submit", arg, NULL};
        char *pos[1];
        int npos;
        assert_int_equal(drv_opts_parse(opts, &doc, 2, argv, pos, 1, &npos, NULL, NULL),
                         DRV_OPTS_OK);
        assert_non_null(val);
        assert_string_equal(val, text);
    }
}

static void spec_unknown_field_lists_every_field_of_the_table(void **state) {
    (void)state;
    drv_spec s;
    char why[1024] = "";
    assert_int_equal(parse("{" RANGE_1_2 ",\"nope\":1}", &s, why, sizeof why), DRV_EINVAL);
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++) {
        char top[64];
        snprintf(top, sizeof top, "%.*s", (int)strcspn(f->name, "."), f->name);
        if (!strstr(why, top)) fail_msg("\"%s\" does not list %s", why, top);
    }
    assert_int_equal(
        parse("{" RANGE_1_2 ",\"rate\":{\"per_second\":1,\"x\":1}}", &s, why, sizeof why),
        DRV_EINVAL);
    assert_non_null(strstr(why, "rate.x: unknown field (expected per_second, burst)"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_every_field_round_trips_through_json),
        cmocka_unit_test(spec_every_bound_is_refused_naming_the_field),
        cmocka_unit_test(spec_every_field_has_a_submit_flag_in_help),
        cmocka_unit_test(spec_unknown_field_lists_every_field_of_the_table),
        cmocka_unit_test(spec_callbacks_parse_and_survive_a_round_trip),
        cmocka_unit_test(spec_without_callbacks_has_none),
        cmocka_unit_test(spec_bad_callbacks_are_refused_naming_the_field),
        cmocka_unit_test(spec_range_source_parses_with_defaults),
        cmocka_unit_test(spec_without_id_leaves_it_empty_for_generation),
        cmocka_unit_test(spec_range_may_hold_a_single_or_negative_ids),
        cmocka_unit_test(spec_file_source_parses_lines_ndjson_and_csv),
        cmocka_unit_test(spec_stdin_source_parses_without_a_path),
        cmocka_unit_test(spec_given_fields_replace_the_defaults),
        cmocka_unit_test(spec_accepts_whole_numbers_written_with_a_fraction_or_exponent),
        cmocka_unit_test(spec_parse_reads_only_len_bytes),
        cmocka_unit_test(spec_malformed_json_names_line_and_column),
        cmocka_unit_test(spec_text_after_the_object_is_malformed),
        cmocka_unit_test(spec_top_level_must_be_an_object),
        cmocka_unit_test(spec_unknown_top_level_field_is_named),
        cmocka_unit_test(spec_unknown_source_field_is_named),
        cmocka_unit_test(spec_missing_source_is_named),
        cmocka_unit_test(spec_source_must_be_an_object_with_a_known_type),
        cmocka_unit_test(spec_postgres_round_trips_and_names_what_is_wrong),
        cmocka_unit_test(spec_range_needs_start_and_end),
        cmocka_unit_test(spec_range_start_after_end_is_refused),
        cmocka_unit_test(spec_range_bounds_beyond_2_53_are_refused),
        cmocka_unit_test(spec_range_partitions_wider_than_2_32_ids_are_refused),
        cmocka_unit_test(spec_partitions_must_be_1_to_1024),
        cmocka_unit_test(spec_numbers_must_be_whole),
        cmocka_unit_test(spec_other_bounds_are_named),
        cmocka_unit_test(spec_ndjson_and_csv_need_an_id_field),
        cmocka_unit_test(spec_lines_refuses_an_id_field),
        cmocka_unit_test(spec_bad_format_is_named),
        cmocka_unit_test(spec_file_needs_a_path_and_stdin_refuses_one),
        cmocka_unit_test(spec_bad_job_id_is_named),
        cmocka_unit_test(spec_validate_refuses_what_parse_refuses),
        cmocka_unit_test(spec_round_trips_through_json),
        cmocka_unit_test(spec_round_trip_keeps_large_range_bounds_exact),
        cmocka_unit_test(spec_to_json_is_what_was_given),
        cmocka_unit_test(spec_limits_default_to_none_and_weight_one),
        cmocka_unit_test(spec_keep_results_parses_and_round_trips),
        cmocka_unit_test(spec_rate_burst_defaults_to_a_tenth_of_a_second),
        cmocka_unit_test(spec_bad_limits_are_named),
        cmocka_unit_test(spec_validate_refuses_a_burst_without_a_rate),
        cmocka_unit_test(format_and_source_names_round_trip),
        cmocka_unit_test(range_parse_reads_inclusive_signed_bounds),
        cmocka_unit_test(range_parse_refuses_malformed_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
