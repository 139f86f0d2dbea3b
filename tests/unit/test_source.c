/* Sources: the record reader, CSV splitting, item extraction, and scanning a file into
 * partitions that hold every record exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "source.h"
#include "spec.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------- */

#define MAX_RECS 8192

/* What a reader returned: each record as "LEN:" + bytes (unambiguous even for records holding
 * newlines), with its start and the reader's offset after it. */
typedef struct recs {
    int n;  /* records returned */
    int rc; /* the last drv_reader_next result: 0 at the end, -1 on error */
    drv_buf joined;
    int64_t at[MAX_RECS];
    int64_t off[MAX_RECS];
    int64_t final_off; /* drv_reader_offset after the last call */
    char why[256];
} recs;

static recs *recs_new(void) {
    recs *r = calloc(1, sizeof *r);
    assert_non_null(r);
    drv_buf_init(&r->joined, (size_t)1 << 28);
    assert_int_equal(drv_buf_append(&r->joined, "", 0), DRV_OK);
    return r;
}

static void recs_free(recs *r) {
    drv_buf_free(&r->joined);
    free(r);
}

static void join(drv_buf *b, const char *rec, size_t len) {
    char num[32];
    int n = snprintf(num, sizeof num, "%zu:", len);
    assert_int_equal(drv_buf_append(b, num, (size_t)n), DRV_OK);
    assert_int_equal(drv_buf_append(b, rec, len), DRV_OK);
}

/* Reads f from 'start' (seeking there) up to 'end', appending to *out until the end or the
 * first error. */
static void read_records(FILE *f, drv_fmt fmt, int64_t start, int64_t end, size_t max, recs *out) {
    drv_reader *r = NULL;
    assert_int_equal(fseeko(f, (off_t)start, SEEK_SET), 0);
    assert_int_equal(drv_reader_new(f, fmt, start, end, max, &r), DRV_OK);
    assert_int_equal(drv_reader_offset(r), start);
    for (;;) {
        const char *rec = NULL;
        size_t len = 0;
        int64_t at = -1;
        out->rc = drv_reader_next(r, &rec, &len, &at, out->why, sizeof out->why);
        if (out->rc != 1) break;
        assert_true(out->n < MAX_RECS);
        assert_int_equal(strlen(rec), len); /* NUL-terminated, no NUL inside */
        join(&out->joined, rec, len);
        out->at[out->n] = at;
        out->off[out->n] = drv_reader_offset(r);
        out->n++;
    }
    out->final_off = drv_reader_offset(r);
    drv_reader_free(r);
}

/* A stream over data[0..len): fmemopen, or a temporary file when empty (fmemopen wants room). */
static FILE *stream(const char *data, size_t len) {
    FILE *f;
    if (len) {
        f = fmemopen((void *)data, len, "r");
    } else {
        f = tmpfile();
    }
    assert_non_null(f);
    return f;
}

static recs *read_all(const char *data, size_t len, drv_fmt fmt, int64_t start, int64_t end,
                      size_t max) {
    recs *r = recs_new();
    FILE *f = stream(data, len);
    read_records(f, fmt, start, end, max, r);
    fclose(f);
    return r;
}

static recs *read_str(const char *data, drv_fmt fmt) {
    return read_all(data, strlen(data), fmt, 0, -1, 1 << 16);
}

/* Asserts the reader returned exactly 'want' (n strings) and then ended cleanly. */
static void expect_records(const recs *r, const char *const *want, int n) {
    drv_buf b;
    drv_buf_init(&b, (size_t)1 << 28);
    assert_int_equal(drv_buf_append(&b, "", 0), DRV_OK);
    for (int i = 0; i < n; i++)
        join(&b, want[i], strlen(want[i]));
    if (r->rc != 0) fail_msg("reader ended with %d: %s", r->rc, r->why);
    if (r->n != n || r->joined.len != b.len || memcmp(r->joined.data, b.data, b.len) != 0)
        fail_msg("got %d records \"%s\", expected %d \"%s\"", r->n, r->joined.data, n, b.data);
    drv_buf_free(&b);
}

#define EXPECT_RECORDS(r, ...)                                                                     \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                          \
        expect_records((r), want_, (int)(sizeof want_ / sizeof *want_));                           \
    } while (0)

static char *write_temp(const char *data, size_t len) {
    char *path = strdup("/tmp/drover-unit-source-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void remove_temp(char *path) {
    unlink(path);
    free(path);
}

static void file_spec(drv_spec *s, drv_fmt fmt, const char *id_field, int partitions) {
    drv_spec_init(s);
    s->source = DRV_SRC_FILE;
    s->format = fmt;
    snprintf(s->id_field, sizeof s->id_field, "%s", id_field);
    snprintf(s->path, sizeof s->path, "%s", "unused");
    s->partitions = partitions;
}

/* ---- the reader: line endings and blank lines ------------------------------------------------ */

static void reader_splits_lf_and_crlf_lines(void **state) {
    (void)state;
    recs *r = read_str("a\nbb\r\nc\n", DRV_FMT_LINES);
    EXPECT_RECORDS(r, "a", "bb", "c");
    assert_int_equal(r->at[0], 0);
    assert_int_equal(r->at[1], 2);
    assert_int_equal(r->at[2], 6);
    recs_free(r);
    r = read_str("{\"k\":1}\r\n{\"k\":2}\n", DRV_FMT_NDJSON);
    EXPECT_RECORDS(r, "{\"k\":1}", "{\"k\":2}");
    recs_free(r);
    r = read_str("id,v\r\n1,a\r\n", DRV_FMT_CSV);
    EXPECT_RECORDS(r, "id,v", "1,a");
    recs_free(r);
}

static void reader_returns_last_record_without_trailing_newline(void **state) {
    (void)state;
    recs *r = read_str("a\nb", DRV_FMT_LINES);
    EXPECT_RECORDS(r, "a", "b");
    assert_int_equal(r->off[1], 3);
    recs_free(r);
    r = read_str("only", DRV_FMT_LINES);
    EXPECT_RECORDS(r, "only");
    recs_free(r);
    r = read_str("a\r\nb\r", DRV_FMT_LINES);
    EXPECT_RECORDS(r, "a", "b");
    recs_free(r);
    r = read_str("1,\"x\ny\"", DRV_FMT_CSV);
    EXPECT_RECORDS(r, "1,\"x\ny\"");
    recs_free(r);
}

static void reader_skips_empty_and_whitespace_only_lines(void **state) {
    (void)state;
    recs *r = read_str("\n\r\na\n\n  \t\n\r\n \r\nb\n\n\n", DRV_FMT_LINES);
    EXPECT_RECORDS(r, "a", "b");
    assert_int_equal(r->at[0], 3);
    assert_int_equal(r->at[1], 15);
    recs_free(r);
    r = read_str("\n{\"k\":1}\n   \n\r\n{\"k\":2}\n\t\n", DRV_FMT_NDJSON);
    EXPECT_RECORDS(r, "{\"k\":1}", "{\"k\":2}");
    recs_free(r);
    r = read_str("id\n\n1\r\n\r\n2\n", DRV_FMT_CSV);
    EXPECT_RECORDS(r, "id", "1", "2");
    recs_free(r);
}

static void reader_of_nothing_but_blank_lines_returns_no_record(void **state) {
    (void)state;
    recs *r = read_str("\n\r\n  \n\t\r\n", DRV_FMT_LINES);
    expect_records(r, NULL, 0);
    recs_free(r);
    r = read_all("", 0, DRV_FMT_LINES, 0, -1, 100);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->n, 0);
    assert_int_equal(r->final_off, 0);
    recs_free(r);
}

static void reader_trims_surrounding_white_space_in_lines_format(void **state) {
    (void)state;
    recs *r = read_str("  a b \t\r\n\tc\n d \x0b\f\n", DRV_FMT_LINES);
    EXPECT_RECORDS(r, "a b", "c", "d");
    assert_int_equal(r->at[0], 0); /* a record starts where its line does */
    recs_free(r);
}

static void reader_keeps_white_space_inside_ndjson_and_csv_records(void **state) {
    (void)state;
    recs *r = read_str(" {\"k\": 1} \n", DRV_FMT_NDJSON);
    EXPECT_RECORDS(r, " {\"k\": 1} ");
    recs_free(r);
    r = read_str(" a , b \r\n", DRV_FMT_CSV);
    EXPECT_RECORDS(r, " a , b ");
    recs_free(r);
}

/* ---- the reader: refusals -----------------------------------------------------------------------
 */

static void reader_refuses_nul_byte_naming_the_offset(void **state) {
    (void)state;
    static const char data[] = "ok\nab\0c\nafter\n";
    recs *r = read_all(data, sizeof data - 1, DRV_FMT_LINES, 0, -1, 100);
    assert_int_equal(r->n, 1); /* "ok", then the error: nothing after it is returned */
    assert_int_equal(r->rc, -1);
    assert_non_null(strstr(r->why, "NUL"));
    assert_non_null(strstr(r->why, "byte 3"));
    recs_free(r);
    static const char csv[] = "id\n1,\"x\n\0\"\n";
    r = read_all(csv, sizeof csv - 1, DRV_FMT_CSV, 0, -1, 100);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->rc, -1);
    assert_non_null(strstr(r->why, "NUL"));
    assert_non_null(strstr(r->why, "byte 3"));
    recs_free(r);
}

static void reader_refuses_invalid_utf8_naming_the_offset(void **state) {
    (void)state;
    static const char data[] = "ok\nab\xff\xfe\nafter\n";
    recs *r = read_all(data, sizeof data - 1, DRV_FMT_LINES, 0, -1, 100);
    assert_int_equal(r->n, 1); /* "ok", then the error: nothing after it is returned */
    assert_int_equal(r->rc, -1);
    assert_non_null(
        strstr(r->why, "record at byte 3 is not valid UTF-8 (byte 5 of the file: 0xFF)"));
    recs_free(r);
    static const char nd[] = "{\"id\": \"caf\xe9\"}\n";
    r = read_all(nd, sizeof nd - 1, DRV_FMT_NDJSON, 0, -1, 100);
    assert_int_equal(r->n, 0);
    assert_int_equal(r->rc, -1);
    assert_non_null(strstr(r->why, "not valid UTF-8 (byte 11 of the file: 0xE9)"));
    recs_free(r);
    /* Overlong, surrogate, past U+10FFFF, cut short, a stray continuation byte: each refused. */
    static const char *const bad[] = {"a\xc0\xaf", "a\xed\xa0\x80", "a\xf4\x90\x80\x80",
                                      "a\xe2\x82",
                                      "a\x80"
                                      "b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = read_all(bad[i], strlen(bad[i]), DRV_FMT_LINES, 0, -1, 100);
        assert_int_equal(r->rc, -1);
        assert_non_null(strstr(r->why, "not valid UTF-8 (byte 1 of the file"));
        recs_free(r);
    }
    /* Two-, three- and four-byte characters are fine. */
    static const char good[] = "caf\xc3\xa9\n\xe2\x82\xac"
                               "1\n\xf0\x9f\x98\x80\n";
    r = read_all(good, sizeof good - 1, DRV_FMT_LINES, 0, -1, 100);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->n, 3);
    recs_free(r);
}

static void reader_refuses_a_record_over_max_bytes(void **state) {
    (void)state;
    /* Exactly max bytes is fine, with LF or CRLF. */
    recs *r = read_all("12345678\n12345678\r\n", 19, DRV_FMT_LINES, 0, -1, 8);
    EXPECT_RECORDS(r, "12345678", "12345678");
    recs_free(r);
    /* One byte more, two, or many: an error naming the record's offset, never a prefix. */
    static const char *const over[] = {"ok\n123456789\nok\n", "ok\n1234567890\r\n",
                                       "ok\n12345678901234567890\n", "ok\n123456789"};
    for (size_t i = 0; i < sizeof over / sizeof *over; i++) {
        r = read_all(over[i], strlen(over[i]), DRV_FMT_LINES, 0, -1, 8);
        assert_int_equal(r->n, 1);
        assert_int_equal(r->rc, -1);
        assert_non_null(strstr(r->why, "longer than 8 bytes"));
        assert_non_null(strstr(r->why, "byte 3"));
        recs_free(r);
    }
    const char *csv = "id\n1,\"a\nbcdefgh\"\n";
    r = read_all(csv, strlen(csv), DRV_FMT_CSV, 0, -1, 8);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->rc, -1);
    assert_non_null(strstr(r->why, "longer than 8 bytes"));
    recs_free(r);
}

static void reader_refuses_an_oversized_record_spanning_read_chunks(void **state) {
    (void)state;
    size_t n = 200000;
    char *data = malloc(n + 16);
    assert_non_null(data);
    memset(data, 'x', n);
    memcpy(data + n, "\nshort\n", 8);
    recs *r = read_all(data, strlen(data), DRV_FMT_LINES, 0, -1, n - 1);
    assert_int_equal(r->n, 0);
    assert_int_equal(r->rc, -1);
    assert_non_null(strstr(r->why, "longer than 199999 bytes"));
    assert_non_null(strstr(r->why, "byte 0"));
    recs_free(r);
    /* With max = n it is one record of n bytes. */
    r = read_all(data, strlen(data), DRV_FMT_LINES, 0, -1, n);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->at[1], (int64_t)n + 1);
    recs_free(r);
    free(data);
}

static void reader_accepts_a_1_mib_line_when_max_allows(void **state) {
    (void)state;
    size_t n = (size_t)1 << 20;
    char *data = malloc(n + 16);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    memcpy(data + n, "\r\nnext\n", 8);
    FILE *f = stream(data, n + 7);
    drv_reader *r;
    assert_int_equal(drv_reader_new(f, DRV_FMT_LINES, 0, -1, n, &r), DRV_OK);
    const char *rec;
    size_t len;
    int64_t at;
    char why[256];
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), 1);
    assert_int_equal(len, n);
    assert_memory_equal(rec, data, n);
    assert_int_equal(at, 0);
    assert_int_equal(drv_reader_offset(r), (int64_t)n + 2);
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), 1);
    assert_string_equal(rec, "next");
    assert_int_equal(at, (int64_t)n + 2);
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), 0);
    drv_reader_free(r);
    fclose(f);
    free(data);
}

/* ---- the reader: CSV quoting ------------------------------------------------------------------
 */

static void reader_keeps_quoted_newline_in_one_csv_record(void **state) {
    (void)state;
    recs *r = read_str("id,note\r\n"
                       "1,\"line one\nline two\"\r\n"
                       "2,\"a, b\",\"say \"\"hi\"\"\"\n"
                       "3,\"crlf\r\ninside\n\n\"\n"
                       "4,\"\"\"\n5,quoted \"\"\"\n"
                       "6,plain",
                       DRV_FMT_CSV);
    EXPECT_RECORDS(r, "id,note", "1,\"line one\nline two\"", "2,\"a, b\",\"say \"\"hi\"\"\"",
                   "3,\"crlf\r\ninside\n\n\"", "4,\"\"\"\n5,quoted \"\"\"", "6,plain");
    recs_free(r);
}

static void reader_keeps_a_quoted_field_across_read_chunks(void **state) {
    (void)state;
    /* A quoted field of 150 000 bytes, newlines every 100 bytes, spans several reads. */
    size_t n = 150000;
    char *data = malloc(n + 64);
    assert_non_null(data);
    size_t k = (size_t)sprintf(data, "id,text\n1,\"");
    for (size_t i = 0; i < n; i++)
        data[k++] = i % 100 == 99 ? '\n' : i % 100 == 50 ? ',' : 'q';
    k += (size_t)sprintf(data + k, "\"\n2,end\n");
    recs *r = read_all(data, k, DRV_FMT_CSV, 0, -1, 1 << 20);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->at[1], 8);
    assert_int_equal(r->at[2], (int64_t)(8 + 3 + n + 2));
    assert_int_equal(r->off[1], r->at[2]);
    recs_free(r);
    free(data);
}

/* ---- the reader: offsets and bounds --------------------------------------------------------- */

static void reader_offset_is_just_past_each_record(void **state) {
    (void)state;
    /* a\r\n = 0..2, blank line 3, bb\n = 4..6, ccc = 7..9 */
    recs *r = read_str("a\r\n\nbb\nccc", DRV_FMT_LINES);
    EXPECT_RECORDS(r, "a", "bb", "ccc");
    assert_int_equal(r->at[0], 0);
    assert_int_equal(r->off[0], 3);
    assert_int_equal(r->at[1], 4);
    assert_int_equal(r->off[1], 7);
    assert_int_equal(r->at[2], 7);
    assert_int_equal(r->off[2], 10);
    assert_int_equal(r->final_off, 10);
    recs_free(r);
    /* Blank lines after the last record are not part of it; the reader may step over them
     * once it has looked for another record, and resuming there finds none. */
    const char *blanks = "a\n\n \n";
    r = read_str(blanks, DRV_FMT_LINES);
    EXPECT_RECORDS(r, "a");
    assert_int_equal(r->off[0], 2);
    assert_true(r->final_off >= 2 && r->final_off <= 5);
    recs *rest = read_all(blanks, 5, DRV_FMT_LINES, r->final_off, -1, 100);
    expect_records(rest, NULL, 0);
    recs_free(rest);
    recs_free(r);
}

static void reader_offset_counts_from_the_given_start(void **state) {
    (void)state;
    const char *data = "aa\nbb\ncc\n";
    recs *r = read_all(data, strlen(data), DRV_FMT_LINES, 3, -1, 100);
    EXPECT_RECORDS(r, "bb", "cc");
    assert_int_equal(r->at[0], 3);
    assert_int_equal(r->off[0], 6);
    assert_int_equal(r->at[1], 6);
    assert_int_equal(r->off[1], 9);
    recs_free(r);
}

static void reader_stops_before_a_record_starting_at_or_after_end(void **state) {
    (void)state;
    const char *data = "aa\nbb\ncc\n"; /* records at 0, 3, 6 */
    size_t n = strlen(data);
    recs *r = read_all(data, n, DRV_FMT_LINES, 0, 3, 100);
    EXPECT_RECORDS(r, "aa"); /* "bb" starts at 3 = end */
    assert_int_equal(r->final_off, 3);
    recs_free(r);
    r = read_all(data, n, DRV_FMT_LINES, 0, 4, 100);
    EXPECT_RECORDS(r, "aa", "bb"); /* "bb" starts before 4, so it is read whole */
    recs_free(r);
    r = read_all(data, n, DRV_FMT_LINES, 3, 7, 100);
    EXPECT_RECORDS(r, "bb", "cc");
    recs_free(r);
    r = read_all(data, n, DRV_FMT_LINES, 3, 3, 100);
    expect_records(r, NULL, 0);
    recs_free(r);
    r = read_all(data, n, DRV_FMT_LINES, 0, 0, 100);
    expect_records(r, NULL, 0);
    recs_free(r);
    /* Blank lines before 'end' are skipped; the record after them starts past 'end'. */
    const char *blanks = "aa\n\n\n\nbb\n"; /* bb at 6 */
    r = read_all(blanks, strlen(blanks), DRV_FMT_LINES, 0, 4, 100);
    EXPECT_RECORDS(r, "aa");
    recs_free(r);
    r = read_all(blanks, strlen(blanks), DRV_FMT_LINES, 0, 7, 100);
    EXPECT_RECORDS(r, "aa", "bb");
    recs_free(r);
    /* A CSV record starting before 'end' is read whole, quoted newlines and all. */
    const char *csv = "1,\"a\nb\nc\"\n2,x\n";
    r = read_all(csv, strlen(csv), DRV_FMT_CSV, 0, 1, 100);
    EXPECT_RECORDS(r, "1,\"a\nb\nc\"");
    recs_free(r);
}

static void reader_never_returns_a_record_after_an_error(void **state) {
    (void)state;
    static const char data[] = "1\n22222222222\n3\n";
    FILE *f = stream(data, sizeof data - 1);
    drv_reader *r;
    assert_int_equal(drv_reader_new(f, DRV_FMT_LINES, 0, -1, 4, &r), DRV_OK);
    const char *rec;
    size_t len;
    int64_t at;
    char why[256];
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), 1);
    assert_string_equal(rec, "1");
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), -1);
    assert_int_equal(drv_reader_offset(r), 2); /* the cursor stays before the bad record */
    drv_reader_free(r);
    fclose(f);
}

/* ---- drv_csv_split ------------------------------------------------------------------------ */

/* Splits 'rec' and checks the fields against want (n of them), or expects -1 when n < 0. */
static void expect_split(const char *rec, const char *const *want, int n) {
    drv_buf store;
    drv_buf_init(&store, 1 << 16);
    size_t off[16];
    int got = drv_csv_split(rec, strlen(rec), &store, off, 16);
    if (got != n) fail_msg("\"%s\": %d fields, expected %d", rec, got, n);
    for (int i = 0; i < n; i++)
        if (strcmp(store.data + off[i], want[i]) != 0)
            fail_msg("\"%s\": field %d is \"%s\", expected \"%s\"", rec, i, store.data + off[i],
                     want[i]);
    drv_buf_free(&store);
}

#define EXPECT_SPLIT(rec, ...)                                                                     \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                          \
        expect_split((rec), want_, (int)(sizeof want_ / sizeof *want_));                           \
    } while (0)

static void csv_split_reads_plain_fields(void **state) {
    (void)state;
    EXPECT_SPLIT("a,b,c", "a", "b", "c");
    EXPECT_SPLIT("one", "one");
    EXPECT_SPLIT(" a , b ", " a ", " b "); /* white space is data */
}

static void csv_split_reads_quoted_fields(void **state) {
    (void)state;
    EXPECT_SPLIT("\"a,b\",c", "a,b", "c");
    EXPECT_SPLIT("x,\"line\nbreak\",\"crlf\r\n\"", "x", "line\nbreak", "crlf\r\n");
    EXPECT_SPLIT("\"\",x", "", "x");
    EXPECT_SPLIT("\"a\"", "a");
}

static void csv_split_unescapes_doubled_quotes(void **state) {
    (void)state;
    EXPECT_SPLIT("\"say \"\"hi\"\"\",x", "say \"hi\"", "x");
    EXPECT_SPLIT("\"\"\"\"", "\"");
    EXPECT_SPLIT("\"\"\"\"\"\",\"a\"\"\"", "\"\"", "a\"");
}

static void csv_split_keeps_empty_fields(void **state) {
    (void)state;
    EXPECT_SPLIT("", "");
    EXPECT_SPLIT(",", "", "");
    EXPECT_SPLIT(",,", "", "", "");
    EXPECT_SPLIT("a,,b", "a", "", "b");
    EXPECT_SPLIT(",a", "", "a");
}

static void csv_split_trailing_comma_adds_an_empty_field(void **state) {
    (void)state;
    EXPECT_SPLIT("a,b,", "a", "b", "");
    EXPECT_SPLIT("\"a\",", "a", "");
}

static void csv_split_refuses_an_unterminated_quote(void **state) {
    (void)state;
    expect_split("\"abc", NULL, -1);
    expect_split("a,\"b", NULL, -1);
    expect_split("\"", NULL, -1);
    expect_split("\"ab\"\"", NULL, -1); /* the last quote is an escaped one */
}

static void csv_split_refuses_text_after_a_closing_quote(void **state) {
    (void)state;
    expect_split("\"a\"b,c", NULL, -1);
    expect_split("\"a\" ,c", NULL, -1);
    expect_split("x,\"a\"\"b\"c", NULL, -1);
}

static void csv_split_refuses_more_fields_than_room(void **state) {
    (void)state;
    drv_buf store;
    drv_buf_init(&store, 1024);
    size_t off[3];
    assert_int_equal(drv_csv_split("a,b,c", 5, &store, off, 3), 3);
    assert_int_equal(drv_csv_split("a,b,c,d", 7, &store, off, 3), -1);
    assert_int_equal(drv_csv_split("a,b,c,", 6, &store, off, 3), -1);
    drv_buf_free(&store);
}

static void csv_split_reads_only_len_bytes_and_resets_the_store(void **state) {
    (void)state;
    drv_buf store;
    drv_buf_init(&store, 1024);
    size_t off[4];
    assert_int_equal(drv_csv_split("a,b,c,d", 3, &store, off, 4), 2);
    assert_string_equal(store.data + off[1], "b");
    assert_int_equal(drv_csv_split("x", 1, &store, off, 4), 1);
    assert_int_equal(off[0], 0);
    assert_string_equal(store.data, "x");
    drv_buf_free(&store);
}

/* ---- items ------------------------------------------------------------------------------------
 */

typedef struct item {
    int rc;
    drv_buf id, payload;
    char why[256];
} item;

static void extract(drv_extract *x, const char *rec, item *it) {
    drv_buf_init(&it->id, DRV_ID_BYTES_MAX);
    drv_buf_init(&it->payload, 1 << 16);
    it->why[0] = '\0';
    it->rc = drv_extract_item(x, rec, strlen(rec), &it->id, &it->payload, it->why, sizeof it->why);
}

static void item_free(item *it) {
    drv_buf_free(&it->id);
    drv_buf_free(&it->payload);
}

static drv_extract *extractor(drv_fmt fmt, const char *id_field, const char *header) {
    drv_extract *x = NULL;
    char why[256] = "";
    drv_err e =
        drv_extract_new(fmt, id_field, header, header ? strlen(header) : 0, &x, why, sizeof why);
    if (e != DRV_OK) fail_msg("drv_extract_new: %d %s", e, why);
    return x;
}

static void expect_ndjson_id(drv_extract *x, const char *rec, const char *want) {
    item it;
    extract(x, rec, &it);
    if (it.rc != 0) fail_msg("%s: %s", rec, it.why);
    assert_string_equal(it.id.data, want);
    assert_int_equal(it.payload.len, strlen(rec));
    assert_string_equal(it.payload.data, rec); /* the payload is the line as given */
    item_free(&it);
}

static void expect_item_error(drv_extract *x, const char *rec, const char *needle) {
    item it;
    extract(x, rec, &it);
    if (it.rc != -1) fail_msg("%s: accepted with id \"%s\"", rec, it.id.data);
    if (!strstr(it.why, needle)) fail_msg("%s: message \"%s\" lacks \"%s\"", rec, it.why, needle);
    item_free(&it);
}

static void extract_lines_id_is_the_line(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_LINES, "", NULL);
    assert_int_equal(drv_extract_has_payload(x), 0);
    item it;
    extract(x, "user 42", &it);
    assert_int_equal(it.rc, 0);
    assert_string_equal(it.id.data, "user 42");
    assert_int_equal(it.payload.len, 0);
    item_free(&it);
    /* Ids are capped. */
    char big[DRV_ID_BYTES_MAX + 2];
    memset(big, 'i', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_item_error(x, big, "longer than 1024");
    big[DRV_ID_BYTES_MAX] = '\0';
    extract(x, big, &it);
    assert_int_equal(it.rc, 0);
    item_free(&it);
    drv_extract_free(x);
}

static void extract_ndjson_reads_string_id(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_NDJSON, "user_id", NULL);
    assert_int_equal(drv_extract_has_payload(x), 1);
    expect_ndjson_id(x, "{\"user_id\":\"u-7\",\"n\":1}", "u-7");
    expect_ndjson_id(x, " {\"a\":{\"user_id\":\"inner\"},\"user_id\":\"outer\"} ", "outer");
    expect_ndjson_id(x, "{\"user_id\":\"caf\\u00e9 \\\"q\\\"\"}", "caf\xc3\xa9 \"q\"");
    drv_extract_free(x);
}

static void extract_ndjson_reads_whole_number_id(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_NDJSON, "k", NULL);
    expect_ndjson_id(x, "{\"k\":42}", "42");
    expect_ndjson_id(x, "{\"k\":-7}", "-7");
    expect_ndjson_id(x, "{\"k\":0}", "0");
    expect_ndjson_id(x, "{\"k\":3.0}", "3");
    expect_ndjson_id(x, "{\"k\":1e3}", "1000");
    expect_ndjson_id(x, "{\"k\":9007199254740991}", "9007199254740991");
    drv_extract_free(x);
}

static void extract_ndjson_refuses_ids_a_double_cannot_hold_exactly(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_NDJSON, "k", NULL);
    /* Both would read back as 9007199254740992: two items with one id. */
    expect_item_error(x, "{\"k\":9007199254740993}", "\"k\"");
    expect_item_error(x, "{\"k\":9007199254740992}", "\"k\"");
    expect_item_error(x, "{\"k\":1e300}", "\"k\"");
    expect_item_error(x, "{\"k\":-1e19}", "\"k\"");
    drv_extract_free(x);
}

static void extract_ndjson_refuses_missing_field(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_NDJSON, "k", NULL);
    expect_item_error(x, "{\"id\":1}", "no field \"k\"");
    expect_item_error(x, "{\"K\":1}", "no field \"k\""); /* names are case-sensitive */
    expect_item_error(x, "{}", "no field \"k\"");
    drv_extract_free(x);
}

static void extract_ndjson_refuses_non_objects(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_NDJSON, "k", NULL);
    expect_item_error(x, "[1,2]", "not a JSON object");
    expect_item_error(x, "\"k\"", "not a JSON object");
    expect_item_error(x, "42", "not a JSON object");
    expect_item_error(x, "{\"k\":1", "not a JSON object");
    expect_item_error(x, "k=1", "not a JSON object");
    drv_extract_free(x);
}

static void extract_ndjson_refuses_text_after_the_object(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_NDJSON, "k", NULL);
    expect_item_error(x, "{\"k\":1} {\"k\":2}", "after");
    expect_item_error(x, "{\"k\":1}x", "after");
    expect_item_error(x, "{\"k\":1},", "after");
    expect_ndjson_id(x, "{\"k\":1} \t", "1");
    drv_extract_free(x);
}

static void extract_ndjson_refuses_ids_that_are_not_strings_or_whole(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_NDJSON, "k", NULL);
    expect_item_error(x, "{\"k\":1.5}", "not a string or a whole number");
    expect_item_error(x, "{\"k\":true}", "not a string or a whole number");
    expect_item_error(x, "{\"k\":null}", "not a string or a whole number");
    expect_item_error(x, "{\"k\":[1]}", "not a string or a whole number");
    expect_item_error(x, "{\"k\":{\"a\":1}}", "not a string or a whole number");
    expect_item_error(x, "{\"k\":\"\"}", "empty id");
    drv_extract_free(x);
}

static void extract_ndjson_caps_the_id_and_the_payload(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_NDJSON, "k", NULL);
    char rec[DRV_ID_BYTES_MAX + 32];
    int n = snprintf(rec, sizeof rec, "{\"k\":\"%*s\"}", DRV_ID_BYTES_MAX + 1, "x");
    assert_true(n > 0 && (size_t)n < sizeof rec);
    expect_item_error(x, rec, "longer than 1024");
    drv_buf id, payload;
    drv_buf_init(&id, DRV_ID_BYTES_MAX);
    drv_buf_init(&payload, 8);
    char why[256];
    assert_int_equal(drv_extract_item(x, "{\"k\":1,\"pad\":0}", 15, &id, &payload, why, sizeof why),
                     -1);
    assert_non_null(strstr(why, "longer than 8 bytes"));
    /* Without a payload buffer only the id is taken. */
    assert_int_equal(drv_extract_item(x, "{\"k\":1,\"pad\":0}", 15, &id, NULL, why, sizeof why), 0);
    assert_string_equal(id.data, "1");
    drv_buf_free(&id);
    drv_buf_free(&payload);
    drv_extract_free(x);
}

static void extract_csv_payload_is_an_object_of_header_to_value(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_CSV, "uid", "name,uid,note,empty");
    assert_int_equal(drv_extract_has_payload(x), 1);
    item it;
    extract(x, "\"Smith, J\",17,\"said \"\"hi\"\"\nthen left\",", &it);
    if (it.rc != 0) fail_msg("%s", it.why);
    assert_string_equal(it.id.data, "17");
    cJSON *o = cJSON_Parse(it.payload.data);
    assert_non_null(o);
    assert_true(cJSON_IsObject(o));
    assert_int_equal(cJSON_GetArraySize(o), 4);
    static const char *const keys[] = {"name", "uid", "note", "empty"};
    static const char *const vals[] = {"Smith, J", "17", "said \"hi\"\nthen left", ""};
    const cJSON *v = o->child;
    for (int i = 0; i < 4; i++, v = v->next) {
        assert_non_null(v);
        assert_string_equal(v->string, keys[i]); /* in header order */
        assert_true(cJSON_IsString(v));          /* values stay text: "17", not 17 */
        assert_string_equal(v->valuestring, vals[i]);
    }
    cJSON_Delete(o);
    item_free(&it);
    drv_extract_free(x);
}

static void extract_csv_refuses_field_count_mismatch(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_CSV, "id", "id,a,b");
    expect_item_error(x, "1,2", "2 fields where the header has 3");
    expect_item_error(x, "1,2,3,4", "4 fields where the header has 3");
    expect_item_error(x, "1,2,3,", "4 fields");
    drv_extract_free(x);
}

static void extract_csv_refuses_malformed_records_and_empty_ids(void **state) {
    (void)state;
    drv_extract *x = extractor(DRV_FMT_CSV, "id", "a,id");
    expect_item_error(x, "1,\"2", "malformed CSV record");
    expect_item_error(x, "\"1\"x,2", "malformed CSV record");
    expect_item_error(x, "1,", "empty id");
    expect_item_error(x, "1,\"\"", "empty id");
    drv_extract_free(x);
}

static void extract_new_refuses_a_header_without_the_id_column(void **state) {
    (void)state;
    drv_extract *x = NULL;
    char why[256] = "";
    const char *hdr = "user,name";
    assert_int_equal(drv_extract_new(DRV_FMT_CSV, "uid", hdr, strlen(hdr), &x, why, sizeof why),
                     DRV_EINVAL);
    assert_null(x);
    assert_non_null(strstr(why, "\"uid\""));
    assert_non_null(strstr(why, "user,name"));
    /* The header's names are exact: no trimming, no case folding. */
    hdr = "a, uid,UID";
    assert_int_equal(drv_extract_new(DRV_FMT_CSV, "uid", hdr, strlen(hdr), &x, why, sizeof why),
                     DRV_EINVAL);
    hdr = "a,\"uid";
    assert_int_equal(drv_extract_new(DRV_FMT_CSV, "uid", hdr, strlen(hdr), &x, why, sizeof why),
                     DRV_EINVAL);
    assert_non_null(strstr(why, "malformed CSV header"));
    /* A quoted header name is unquoted. */
    hdr = "a,\"uid\"";
    assert_int_equal(drv_extract_new(DRV_FMT_CSV, "uid", hdr, strlen(hdr), &x, why, sizeof why),
                     DRV_OK);
    drv_extract_free(x);
    drv_extract_free(NULL);
}

/* ---- scanning: the key property ------------------------------------------------------------- */

/* The records of the whole file, read in one pass from its data start. */
static recs *whole_file_records(const char *path, drv_fmt fmt, int64_t *data_start) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    *data_start = 0;
    if (fmt == DRV_FMT_CSV) {
        drv_buf hdr;
        char why[256];
        drv_buf_init(&hdr, 1 << 20);
        assert_int_equal(drv_csv_read_header(f, 1 << 20, &hdr, data_start, why, sizeof why), 0);
        drv_buf_free(&hdr);
    }
    recs *r = recs_new();
    read_records(f, fmt, *data_start, -1, 1 << 20, r);
    assert_int_equal(r->rc, 0);
    fclose(f);
    return r;
}

/* For P = 1..16: the partitions drv_scan_file picks, each read from start[p] to end[p], give
 * exactly the whole file's records, in order, each once. */
static void check_partitions_are_exact(const char *data, size_t len, drv_fmt fmt,
                                       const char *id_field) {
    char *path = write_temp(data, len);
    int64_t data_start;
    recs *whole = whole_file_records(path, fmt, &data_start);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    for (int P = 1; P <= 16; P++) {
        drv_spec spec;
        file_spec(&spec, fmt, id_field, P);
        spec.max_item_bytes = 1 << 20;
        drv_scan scan;
        char why[512] = "";
        if (drv_scan_file(path, &spec, &scan, why, sizeof why, NULL) != DRV_OK)
            fail_msg("P=%d: %s", P, why);
        assert_int_equal(scan.nparts, P);
        assert_int_equal(scan.size, (int64_t)len);
        assert_int_equal(scan.data_start, data_start);
        assert_int_equal(scan.total, whole->n);
        assert_int_equal(scan.start[0], data_start);
        assert_int_equal(scan.end[P - 1], scan.size);
        recs *joined = recs_new();
        for (int p = 0; p < P; p++) {
            assert_true(scan.start[p] <= scan.end[p]);
            if (p > 0) assert_int_equal(scan.start[p], scan.end[p - 1]);
            int before = joined->n;
            read_records(f, fmt, scan.start[p], scan.end[p], 1 << 20, joined);
            if (joined->rc != 0) fail_msg("P=%d p=%d: %s", P, p, joined->why);
            for (int i = before; i < joined->n; i++) {
                assert_true(joined->at[i] >= scan.start[p]);
                assert_true(joined->at[i] < scan.end[p]);
            }
            /* The fingerprint drover run checks before feeding the partition is the one the
             * scan took (coordinator/feed.c). */
            uint64_t h = 0;
            if (drv_hash_range(path, &spec, scan.start[p], scan.end[p], &h, why, sizeof why))
                fail_msg("P=%d p=%d: %s", P, p, why);
            assert_true(h == scan.hash[p]);
        }
        if (joined->n != whole->n)
            fail_msg("P=%d: %d records over the partitions, %d in the file", P, joined->n,
                     whole->n);
        assert_int_equal(joined->joined.len, whole->joined.len);
        assert_memory_equal(joined->joined.data, whole->joined.data, whole->joined.len);
        assert_memory_equal(joined->at, whole->at, sizeof(int64_t) * (size_t)whole->n);
        recs_free(joined);
        drv_scan_free(&scan);
    }
    fclose(f);
    recs_free(whole);
    remove_temp(path);
}

/* A small deterministic generator, so the files are varied but the same on every run. */
static uint32_t rnd(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void scan_lines_partitions_hold_every_record_once(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1 << 22);
    assert_int_equal(drv_buf_append(&b, "\n\r\n", 3), DRV_OK); /* leading blank lines */
    uint32_t seed = 7;
    for (int i = 0; i < 700; i++) {
        char line[128];
        int n = snprintf(line, sizeof line, "%s%d-%.*s%s", i % 7 == 0 ? "  " : "", i,
                         (int)(rnd(&seed) % 60),
                         "abcdefghijklmnopqrstuvwxyz0123456789abcdefghij"
                         "klmnopqrstuvwxyz",
                         i % 5 == 0 ? " \t" : "");
        assert_int_equal(drv_buf_append(&b, line, (size_t)n), DRV_OK);
        const char *eol = rnd(&seed) % 3 == 0 ? "\r\n" : "\n";
        assert_int_equal(drv_buf_append(&b, eol, strlen(eol)), DRV_OK);
        if (rnd(&seed) % 11 == 0) assert_int_equal(drv_buf_append(&b, "\n  \n", 4), DRV_OK);
    }
    assert_int_equal(drv_buf_append(&b, "last-without-newline", 20), DRV_OK);
    check_partitions_are_exact(b.data, b.len, DRV_FMT_LINES, "");
    drv_buf_free(&b);
}

static void scan_long_records_across_read_chunks_are_exact(void **state) {
    (void)state;
    /* Five records of about 100 KB: boundaries fall inside records and across reads, and most
     * P leave some partitions empty. */
    size_t n = 0, cap = 600000;
    char *data = malloc(cap);
    assert_non_null(data);
    for (int i = 0; i < 5; i++) {
        size_t len = 90000 + (size_t)i * 7000;
        n += (size_t)sprintf(data + n, "{\"k\":%d,\"pad\":\"", i);
        memset(data + n, 'a' + i, len);
        n += len;
        n += (size_t)sprintf(data + n, "\"}\r\n");
        if (i == 2) data[n++] = '\n';
    }
    check_partitions_are_exact(data, n - 2, DRV_FMT_NDJSON, "k"); /* no trailing newline */
    free(data);
}

static void scan_ndjson_partitions_hold_every_record_once(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1 << 22);
    uint32_t seed = 11;
    for (int i = 0; i < 500; i++) {
        char line[256];
        int n = snprintf(line, sizeof line, "{\"k\":%s%d%s,\"pad\":\"%*s\",\"nl\":\"a\\nb\"}%s",
                         i % 2 ? "\"" : "", i, i % 2 ? "\"" : "", (int)(rnd(&seed) % 90), "",
                         i % 4 == 0 ? "\r\n" : "\n");
        assert_int_equal(drv_buf_append(&b, line, (size_t)n), DRV_OK);
        if (i % 37 == 0) assert_int_equal(drv_buf_append(&b, "\n", 1), DRV_OK);
    }
    check_partitions_are_exact(b.data, b.len, DRV_FMT_NDJSON, "k");
    drv_buf_free(&b);
}

static void scan_csv_partitions_never_split_a_quoted_field(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1 << 22);
    const char *hdr = "id,\"text, long\",n\r\n";
    assert_int_equal(drv_buf_append(&b, hdr, strlen(hdr)), DRV_OK);
    uint32_t seed = 3;
    for (int i = 0; i < 400; i++) {
        char rec[512];
        int n;
        switch (rnd(&seed) % 4) {
        case 0: /* quoted lines that look like records of their own */
            n = snprintf(rec, sizeof rec, "%d,\"first\n%d,fake,row\n\nlast \"\"q\"\"\",%d\r\n", i,
                         i + 100000, i);
            break;
        case 1:
            n = snprintf(rec, sizeof rec, "%d,plain text %*s,%d\n", i, (int)(rnd(&seed) % 40), "",
                         i);
            break;
        case 2:
            n = snprintf(rec, sizeof rec, "\"%d\",\"a,b,\r\nc\",\n", i);
            break;
        default:
            n = snprintf(rec, sizeof rec, "%d,\"\",\"\"\"\"\n\n", i);
            break;
        }
        assert_int_equal(drv_buf_append(&b, rec, (size_t)n), DRV_OK);
    }
    const char *last = "last,\"no\nnewline\",x";
    assert_int_equal(drv_buf_append(&b, last, strlen(last)), DRV_OK);
    check_partitions_are_exact(b.data, b.len, DRV_FMT_CSV, "id");
    drv_buf_free(&b);
}

static void scan_with_fewer_records_than_partitions_is_exact(void **state) {
    (void)state;
    check_partitions_are_exact("only\n", 5, DRV_FMT_LINES, "");
    check_partitions_are_exact("a\nb\nc", 5, DRV_FMT_LINES, "");
    check_partitions_are_exact("\n\n\nx\n\n\n", 7, DRV_FMT_LINES, "");
    check_partitions_are_exact("id,t\n1,\"a\nb\"\n", 13, DRV_FMT_CSV, "id");
    check_partitions_are_exact("{\"k\":1}\n{\"k\":2}", 15, DRV_FMT_NDJSON, "k");
    /* A header and nothing else: no records, every partition empty. */
    check_partitions_are_exact("id,x\r\n", 6, DRV_FMT_CSV, "id");
    check_partitions_are_exact("id,x", 4, DRV_FMT_CSV, "id");

    char *path = write_temp("a\nb\nc\n", 6);
    drv_spec spec;
    file_spec(&spec, DRV_FMT_LINES, "", 16);
    drv_scan scan;
    char why[256];
    assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, NULL), DRV_OK);
    assert_int_equal(scan.total, 3);
    int empty = 0;
    for (int p = 0; p < 16; p++)
        empty += scan.start[p] == scan.end[p];
    assert_int_equal(empty, 13);
    drv_scan_free(&scan);
    remove_temp(path);
}

static void scan_balances_partitions_by_bytes(void **state) {
    (void)state;
    /* 1000 lines of 10 bytes into 4 partitions: 250 lines each. */
    char *data = malloc(10000);
    assert_non_null(data);
    for (int i = 0; i < 1000; i++)
        memcpy(data + i * 10, "123456789\n", 10);
    char *path = write_temp(data, 10000);
    drv_spec spec;
    file_spec(&spec, DRV_FMT_LINES, "", 4);
    drv_scan scan;
    char why[256];
    assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, NULL), DRV_OK);
    for (int p = 0; p < 4; p++) {
        assert_int_equal(scan.start[p], p * 2500);
        assert_int_equal(scan.end[p], (p + 1) * 2500);
    }
    drv_scan_free(&scan);
    remove_temp(path);
    free(data);
}

/* ---- scanning: counts and errors ------------------------------------------------------------ */

static void scan_counts_records_not_lines(void **state) {
    (void)state;
    const char *data = "\na\r\n\n  \nb\nc";
    char *path = write_temp(data, strlen(data));
    drv_spec spec;
    file_spec(&spec, DRV_FMT_LINES, "", 2);
    drv_scan scan;
    char why[256];
    assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, NULL), DRV_OK);
    assert_int_equal(scan.total, 3);
    assert_int_equal(scan.size, (int64_t)strlen(data));
    assert_int_equal(scan.data_start, 0);
    drv_scan_free(&scan);
    remove_temp(path);

    data = "id,v\n1,\"x\ny\"\n\n2,z\n";
    path = write_temp(data, strlen(data));
    file_spec(&spec, DRV_FMT_CSV, "id", 2);
    assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, NULL), DRV_OK);
    assert_int_equal(scan.total, 2); /* the header is not an item */
    assert_int_equal(scan.data_start, 5);
    drv_scan_free(&scan);
    remove_temp(path);
}

static void expect_scan_error(const char *path, const drv_spec *spec, const char *needle) {
    drv_scan scan;
    memset(&scan, 0x5a, sizeof scan);
    drv_scan before = scan;
    char why[512] = "";
    drv_err e = drv_scan_file(path, spec, &scan, why, sizeof why, NULL);
    if (e != DRV_EINVAL) fail_msg("%s: returned %d (%s), expected DRV_EINVAL", path, e, why);
    if (!strstr(why, needle)) fail_msg("%s: message \"%s\" lacks \"%s\"", path, why, needle);
    assert_memory_equal(&scan, &before, sizeof scan);
}

static void scan_refuses_a_missing_file(void **state) {
    (void)state;
    drv_spec spec;
    file_spec(&spec, DRV_FMT_LINES, "", 4);
    expect_scan_error("/nonexistent/drover-unit-missing.txt", &spec,
                      "/nonexistent/drover-unit-missing.txt: cannot open");
}

static void scan_refuses_a_directory(void **state) {
    (void)state;
    char dir[] = "/tmp/drover-unit-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    drv_spec spec;
    file_spec(&spec, DRV_FMT_LINES, "", 4);
    expect_scan_error(dir, &spec, "not a regular file");
    rmdir(dir);
}

static void scan_of_an_empty_file_has_no_records(void **state) {
    (void)state;
    char *path = write_temp("", 0);
    drv_spec spec;
    file_spec(&spec, DRV_FMT_LINES, "", 4);
    drv_scan scan;
    char why[256];
    assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, NULL), DRV_OK);
    assert_int_equal(scan.size, 0);
    assert_int_equal(scan.total, 0);
    for (int p = 0; p < 4; p++) {
        assert_int_equal(scan.start[p], 0);
        assert_int_equal(scan.end[p], 0);
    }
    drv_scan_free(&scan);
    /* A CSV file needs at least its header. */
    file_spec(&spec, DRV_FMT_CSV, "id", 4);
    expect_scan_error(path, &spec, "empty CSV file");
    remove_temp(path);
}

static void scan_names_the_bad_record_by_number(void **state) {
    (void)state;
    /* The third record (fourth line: a blank line is not a record) has no "k". */
    const char *data = "{\"k\":1}\n{\"k\":2}\n\n{\"x\":3}\n{\"k\":4}\n";
    char *path = write_temp(data, strlen(data));
    drv_spec spec;
    file_spec(&spec, DRV_FMT_NDJSON, "k", 2);
    expect_scan_error(path, &spec, "record 3 (byte 17)");
    expect_scan_error(path, &spec, "no field \"k\"");
    expect_scan_error(path, &spec, path);
    remove_temp(path);

    data = "{\"k\":1}\n[]\n";
    path = write_temp(data, strlen(data));
    expect_scan_error(path, &spec, "record 2");
    remove_temp(path);

    data = "id,v\n1,a\n2,b,c\n";
    path = write_temp(data, strlen(data));
    file_spec(&spec, DRV_FMT_CSV, "id", 2);
    expect_scan_error(path, &spec, "record 2");
    expect_scan_error(path, &spec, "3 fields where the header has 2");
    remove_temp(path);
}

static void scan_refuses_a_csv_header_without_the_id_column(void **state) {
    (void)state;
    const char *data = "user,name\n1,a\n";
    char *path = write_temp(data, strlen(data));
    drv_spec spec;
    file_spec(&spec, DRV_FMT_CSV, "id", 2);
    expect_scan_error(path, &spec, "no column \"id\"");
    remove_temp(path);
}

static void scan_refuses_oversized_and_binary_records(void **state) {
    (void)state;
    char data[200];
    memset(data, 'x', sizeof data);
    memcpy(data, "ok\n", 3);
    char *path = write_temp(data, sizeof data);
    drv_spec spec;
    file_spec(&spec, DRV_FMT_LINES, "", 2);
    spec.max_item_bytes = 64;
    expect_scan_error(path, &spec, "longer than 64 bytes");
    remove_temp(path);

    static const char bin[] = "a\nb\0\n";
    path = write_temp(bin, sizeof bin - 1);
    expect_scan_error(path, &spec, "NUL");
    expect_scan_error(path, &spec, "byte 2");
    remove_temp(path);
}

static int64_t progress_calls;

static void count_progress(int64_t done, int64_t size) {
    assert_true(done <= size);
    progress_calls++;
}

static void scan_accepts_a_progress_callback(void **state) {
    (void)state;
    const char *data = "1\n2\n3\n";
    char *path = write_temp(data, strlen(data));
    drv_spec spec;
    file_spec(&spec, DRV_FMT_LINES, "", 1);
    drv_scan scan;
    char why[256];
    progress_calls = 0;
    assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, count_progress), DRV_OK);
    assert_int_equal(scan.total, 3);
    assert_true(progress_calls <= 3); /* about once a second, not once a record */
    drv_scan_free(&scan);
    remove_temp(path);
}

static void csv_read_header_leaves_the_file_at_the_data(void **state) {
    (void)state;
    const char *data = "\n\"a\nb\",c\r\n1,2\n";
    FILE *f = stream(data, strlen(data));
    drv_buf hdr;
    drv_buf_init(&hdr, 1024);
    int64_t ds = -1;
    char why[256];
    assert_int_equal(drv_csv_read_header(f, 1024, &hdr, &ds, why, sizeof why), 0);
    assert_string_equal(hdr.data, "\"a\nb\",c");
    assert_int_equal(ds, 10);
    assert_int_equal(ftello(f), 10);
    char rest[8] = "";
    assert_non_null(fgets(rest, sizeof rest, f));
    assert_string_equal(rest, "1,2\n");
    drv_buf_free(&hdr);
    fclose(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reader_splits_lf_and_crlf_lines),
        cmocka_unit_test(reader_returns_last_record_without_trailing_newline),
        cmocka_unit_test(reader_skips_empty_and_whitespace_only_lines),
        cmocka_unit_test(reader_of_nothing_but_blank_lines_returns_no_record),
        cmocka_unit_test(reader_trims_surrounding_white_space_in_lines_format),
        cmocka_unit_test(reader_keeps_white_space_inside_ndjson_and_csv_records),
        cmocka_unit_test(reader_refuses_nul_byte_naming_the_offset),
        cmocka_unit_test(reader_refuses_invalid_utf8_naming_the_offset),
        cmocka_unit_test(reader_refuses_a_record_over_max_bytes),
        cmocka_unit_test(reader_refuses_an_oversized_record_spanning_read_chunks),
        cmocka_unit_test(reader_accepts_a_1_mib_line_when_max_allows),
        cmocka_unit_test(reader_keeps_quoted_newline_in_one_csv_record),
        cmocka_unit_test(reader_keeps_a_quoted_field_across_read_chunks),
        cmocka_unit_test(reader_offset_is_just_past_each_record),
        cmocka_unit_test(reader_offset_counts_from_the_given_start),
        cmocka_unit_test(reader_stops_before_a_record_starting_at_or_after_end),
        cmocka_unit_test(reader_never_returns_a_record_after_an_error),
        cmocka_unit_test(csv_split_reads_plain_fields),
        cmocka_unit_test(csv_split_reads_quoted_fields),
        cmocka_unit_test(csv_split_unescapes_doubled_quotes),
        cmocka_unit_test(csv_split_keeps_empty_fields),
        cmocka_unit_test(csv_split_trailing_comma_adds_an_empty_field),
        cmocka_unit_test(csv_split_refuses_an_unterminated_quote),
        cmocka_unit_test(csv_split_refuses_text_after_a_closing_quote),
        cmocka_unit_test(csv_split_refuses_more_fields_than_room),
        cmocka_unit_test(csv_split_reads_only_len_bytes_and_resets_the_store),
        cmocka_unit_test(extract_lines_id_is_the_line),
        cmocka_unit_test(extract_ndjson_reads_string_id),
        cmocka_unit_test(extract_ndjson_reads_whole_number_id),
        cmocka_unit_test(extract_ndjson_refuses_ids_a_double_cannot_hold_exactly),
        cmocka_unit_test(extract_ndjson_refuses_missing_field),
        cmocka_unit_test(extract_ndjson_refuses_non_objects),
        cmocka_unit_test(extract_ndjson_refuses_text_after_the_object),
        cmocka_unit_test(extract_ndjson_refuses_ids_that_are_not_strings_or_whole),
        cmocka_unit_test(extract_ndjson_caps_the_id_and_the_payload),
        cmocka_unit_test(extract_csv_payload_is_an_object_of_header_to_value),
        cmocka_unit_test(extract_csv_refuses_field_count_mismatch),
        cmocka_unit_test(extract_csv_refuses_malformed_records_and_empty_ids),
        cmocka_unit_test(extract_new_refuses_a_header_without_the_id_column),
        cmocka_unit_test(scan_lines_partitions_hold_every_record_once),
        cmocka_unit_test(scan_long_records_across_read_chunks_are_exact),
        cmocka_unit_test(scan_ndjson_partitions_hold_every_record_once),
        cmocka_unit_test(scan_csv_partitions_never_split_a_quoted_field),
        cmocka_unit_test(scan_with_fewer_records_than_partitions_is_exact),
        cmocka_unit_test(scan_balances_partitions_by_bytes),
        cmocka_unit_test(scan_counts_records_not_lines),
        cmocka_unit_test(scan_refuses_a_missing_file),
        cmocka_unit_test(scan_refuses_a_directory),
        cmocka_unit_test(scan_of_an_empty_file_has_no_records),
        cmocka_unit_test(scan_names_the_bad_record_by_number),
        cmocka_unit_test(scan_refuses_a_csv_header_without_the_id_column),
        cmocka_unit_test(scan_refuses_oversized_and_binary_records),
        cmocka_unit_test(scan_accepts_a_progress_callback),
        cmocka_unit_test(csv_read_header_leaves_the_file_at_the_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
