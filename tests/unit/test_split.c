/* The source reader, item extraction, splitting at record boundaries and argv templating. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "source.h"
#include "spec.h"
#include "template.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static char *write_temp(const char *data, size_t len) {
    char *path = strdup("/tmp/drover-unit-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Reads every record of f from 'start' to 'end' into a newline-joined string. */
static void read_all(FILE *f, drv_fmt fmt, int64_t start, int64_t end, size_t max, drv_buf *out) {
    drv_reader *r;
    assert_int_equal(fseeko(f, start, SEEK_SET), 0);
    assert_int_equal(drv_reader_new(f, fmt, start, end, max, &r), DRV_OK);
    const char *rec;
    size_t len;
    int64_t at;
    char why[256];
    int rc;
    while ((rc = drv_reader_next(r, &rec, &len, &at, why, sizeof why)) == 1) {
        assert_int_equal(drv_buf_append(out, rec, len), DRV_OK);
        assert_int_equal(drv_buf_append(out, "\n", 1), DRV_OK);
    }
    assert_int_equal(rc, 0);
    drv_reader_free(r);
}

static void records_of(const char *data, drv_fmt fmt, drv_buf *out) {
    FILE *f = fmemopen((void *)data, strlen(data), "r");
    assert_non_null(f);
    drv_buf_init(out, 1 << 20);
    read_all(f, fmt, 0, -1, 1 << 16, out);
    fclose(f);
}

/* ---- the reader -------------------------------------------------------------------------- */

static void reader_handles_crlf_empty_lines_and_no_trailing_newline(void **state) {
    (void)state;
    drv_buf b;
    records_of("1\r\n\r\n2\n\n  \n 3 \r\n4", DRV_FMT_LINES, &b);
    assert_string_equal(b.data, "1\n2\n3\n4\n");
    drv_buf_free(&b);
}

static void reader_keeps_quoted_newline_in_one_csv_record(void **state) {
    (void)state;
    drv_buf b;
    records_of("id,note\r\n1,\"a\nb\"\r\n2,\"x,\"\"y\"\"\"\n", DRV_FMT_CSV, &b);
    assert_string_equal(b.data, "id,note\n1,\"a\nb\"\n2,\"x,\"\"y\"\"\"\n");
    drv_buf_free(&b);
}

static void reader_refuses_nul_bytes_naming_the_offset(void **state) {
    (void)state;
    const char data[] = "ok\nbad\0line\n";
    FILE *f = fmemopen((void *)data, sizeof data - 1, "r");
    drv_reader *r;
    assert_int_equal(drv_reader_new(f, DRV_FMT_LINES, 0, -1, 100, &r), DRV_OK);
    const char *rec;
    size_t len;
    int64_t at;
    char why[256];
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), 1);
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), -1);
    assert_non_null(strstr(why, "byte 3"));
    assert_non_null(strstr(why, "NUL"));
    drv_reader_free(r);
    fclose(f);
}

static void reader_refuses_oversized_records_instead_of_truncating(void **state) {
    (void)state;
    char *data = malloc(5000);
    memset(data, 'x', 4000);
    strcpy(data + 4000, "\nshort\n");
    FILE *f = fmemopen(data, strlen(data), "r");
    drv_reader *r;
    assert_int_equal(drv_reader_new(f, DRV_FMT_LINES, 0, -1, 1000, &r), DRV_OK);
    const char *rec;
    size_t len;
    int64_t at;
    char why[256];
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), -1);
    assert_non_null(strstr(why, "longer than 1000 bytes"));
    drv_reader_free(r);
    fclose(f);
    /* With room for it, a 1 MiB line is one record. */
    char *big = malloc((1 << 20) + 2);
    memset(big, 'y', 1 << 20);
    big[1 << 20] = '\n';
    big[(1 << 20) + 1] = '\0';
    f = fmemopen(big, (1 << 20) + 1, "r");
    assert_int_equal(drv_reader_new(f, DRV_FMT_LINES, 0, -1, 1 << 20, &r), DRV_OK);
    assert_int_equal(drv_reader_next(r, &rec, &len, &at, why, sizeof why), 1);
    assert_int_equal(len, 1 << 20);
    assert_int_equal(drv_reader_offset(r), (1 << 20) + 1);
    drv_reader_free(r);
    fclose(f);
    free(big);
    free(data);
}

static void reader_stops_before_a_record_starting_at_end(void **state) {
    (void)state;
    const char *data = "aa\nbb\ncc\n";
    FILE *f = fmemopen((void *)data, strlen(data), "r");
    drv_buf b;
    drv_buf_init(&b, 1024);
    read_all(f, DRV_FMT_LINES, 0, 3, 100, &b); /* "bb" starts at 3: not ours */
    assert_string_equal(b.data, "aa\n");
    drv_buf_reset(&b);
    read_all(f, DRV_FMT_LINES, 3, 7, 100, &b); /* "cc" starts at 6 < 7: ours */
    assert_string_equal(b.data, "bb\ncc\n");
    drv_buf_free(&b);
    fclose(f);
}

/* ---- CSV and items ----------------------------------------------------------------------- */

static void csv_split_handles_quotes_escapes_and_empty_fields(void **state) {
    (void)state;
    drv_buf s;
    drv_buf_init(&s, 4096);
    size_t off[8];
    const char *rec = "a,\"b,c\",\"d\"\"e\",,f,";
    assert_int_equal(drv_csv_split(rec, strlen(rec), &s, off, 8), 6);
    assert_string_equal(s.data + off[0], "a");
    assert_string_equal(s.data + off[1], "b,c");
    assert_string_equal(s.data + off[2], "d\"e");
    assert_string_equal(s.data + off[3], "");
    assert_string_equal(s.data + off[4], "f");
    assert_string_equal(s.data + off[5], "");
    assert_int_equal(drv_csv_split("\"open", 5, &s, off, 8), -1);
    assert_int_equal(drv_csv_split("\"a\"b,c", 6, &s, off, 8), -1);
    drv_buf_free(&s);
}

static void ndjson_id_is_a_string_or_whole_number(void **state) {
    (void)state;
    drv_extract *x;
    char why[256];
    assert_int_equal(drv_extract_new(DRV_FMT_NDJSON, "uid", NULL, 0, &x, why, sizeof why), DRV_OK);
    drv_buf id, pl;
    drv_buf_init(&id, 1024);
    drv_buf_init(&pl, 1 << 16);
    const char *a = "{\"uid\":\"u-1\",\"n\":1}";
    assert_int_equal(drv_extract_item(x, a, strlen(a), &id, &pl, why, sizeof why), 0);
    assert_string_equal(id.data, "u-1");
    assert_string_equal(pl.data, a);
    const char *b = "{\"uid\":42}";
    assert_int_equal(drv_extract_item(x, b, strlen(b), &id, &pl, why, sizeof why), 0);
    assert_string_equal(id.data, "42");
    const char *bad[] = {"{\"uid\":1.5}", "{\"other\":1}", "[1,2]", "{\"uid\":\"\"}", "{"};
    const char *msg[] = {"not a string or a whole number", "no field \"uid\"", "not a JSON object",
                         "empty id", "not a JSON object"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(drv_extract_item(x, bad[i], strlen(bad[i]), &id, &pl, why, sizeof why),
                         -1);
        assert_non_null(strstr(why, msg[i]));
    }
    drv_extract_free(x);
    drv_buf_free(&id);
    drv_buf_free(&pl);
}

static void csv_item_is_a_json_object_of_the_header(void **state) {
    (void)state;
    drv_extract *x;
    char why[256];
    const char *hdr = "id,name,note";
    assert_int_equal(drv_extract_new(DRV_FMT_CSV, "nope", hdr, strlen(hdr), &x, why, sizeof why),
                     DRV_EINVAL);
    assert_non_null(strstr(why, "no column \"nope\""));
    assert_int_equal(drv_extract_new(DRV_FMT_CSV, "id", hdr, strlen(hdr), &x, why, sizeof why),
                     DRV_OK);
    drv_buf id, pl;
    drv_buf_init(&id, 1024);
    drv_buf_init(&pl, 1 << 16);
    const char *rec = "7,\"Smith, Jo\",\"a\nb\"";
    assert_int_equal(drv_extract_item(x, rec, strlen(rec), &id, &pl, why, sizeof why), 0);
    assert_string_equal(id.data, "7");
    cJSON *o = cJSON_Parse(pl.data);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, "Smith, Jo");
    assert_string_equal(cJSON_GetObjectItem(o, "note")->valuestring, "a\nb");
    cJSON_Delete(o);
    assert_int_equal(drv_extract_item(x, "1,2", 3, &id, &pl, why, sizeof why), -1);
    assert_non_null(strstr(why, "2 fields where the header has 3"));
    drv_extract_free(x);
    drv_buf_free(&id);
    drv_buf_free(&pl);
}

/* ---- splitting: every record in exactly one partition --------------------------------------- */

static void check_partitions_cover_file_exactly(const char *data, drv_fmt fmt,
                                                const char *id_field) {
    char *path = write_temp(data, strlen(data));
    drv_buf whole;
    FILE *f = fopen(path, "rb");
    drv_buf_init(&whole, 1 << 22);
    drv_buf hdr;
    drv_buf_init(&hdr, 1 << 16);
    int64_t data_start = 0;
    char why[256];
    if (fmt == DRV_FMT_CSV)
        assert_int_equal(drv_csv_read_header(f, 1 << 16, &hdr, &data_start, why, sizeof why), 0);
    read_all(f, fmt, data_start, -1, 1 << 16, &whole);
    for (int P = 1; P <= 16; P++) {
        drv_spec spec;
        drv_spec_init(&spec);
        spec.source = DRV_SRC_FILE;
        spec.format = fmt;
        snprintf(spec.id_field, sizeof spec.id_field, "%s", id_field);
        spec.partitions = P;
        drv_scan scan;
        assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, NULL), DRV_OK);
        assert_int_equal(scan.data_start, data_start);
        drv_buf joined;
        drv_buf_init(&joined, 1 << 22);
        for (int p = 0; p < P; p++) {
            assert_true(scan.start[p] <= scan.end[p]);
            if (p) assert_int_equal(scan.start[p], scan.end[p - 1]);
            read_all(f, fmt, scan.start[p], scan.end[p], 1 << 16, &joined);
        }
        assert_int_equal(scan.end[P - 1], scan.size);
        assert_int_equal(joined.len, whole.len);
        assert_memory_equal(joined.data, whole.data, whole.len);
        drv_buf_free(&joined);
        drv_scan_free(&scan);
    }
    fclose(f);
    drv_buf_free(&whole);
    drv_buf_free(&hdr);
    unlink(path);
    free(path);
}

static void lines_partitions_hold_every_record_once_for_1_to_16_partitions(void **state) {
    (void)state;
    char data[8192];
    size_t n = 0;
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(data + n, sizeof data - n, "%s%d%s", i % 13 == 0 ? "\n" : "", i * 7,
                              i % 5 == 0 ? "\r\n" : "\n");
    data[n - 1] = '\0'; /* no trailing newline */
    check_partitions_cover_file_exactly(data, DRV_FMT_LINES, "");
    check_partitions_cover_file_exactly("only\n", DRV_FMT_LINES, ""); /* fewer than P */
}

static void csv_partitions_never_split_a_quoted_newline(void **state) {
    (void)state;
    char data[16384];
    size_t n = (size_t)snprintf(data, sizeof data, "id,text\r\n");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(data + n, sizeof data - n,
                              i % 3 ? "%d,\"multi\nline\n%d\"\r\n" : "%d,plain %d\n", i, i);
    check_partitions_cover_file_exactly(data, DRV_FMT_CSV, "id");
}

static void ndjson_partitions_hold_every_record_once(void **state) {
    (void)state;
    char data[16384];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(data + n, sizeof data - n, "{\"k\":\"%d\",\"pad\":\"%*s\"}\n", i,
                              i % 17, "");
    check_partitions_cover_file_exactly(data, DRV_FMT_NDJSON, "k");
}

static void scan_counts_and_rejects_bad_records_by_number(void **state) {
    (void)state;
    const char *data = "{\"k\":1}\n{\"k\":2}\n{\"x\":3}\n";
    char *path = write_temp(data, strlen(data));
    drv_spec spec;
    drv_spec_init(&spec);
    spec.source = DRV_SRC_FILE;
    spec.format = DRV_FMT_NDJSON;
    strcpy(spec.id_field, "k");
    drv_scan scan;
    char why[512];
    assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, NULL), DRV_EINVAL);
    assert_non_null(strstr(why, "record 3"));
    assert_non_null(strstr(why, "no field \"k\""));
    assert_int_equal(drv_scan_file("/nonexistent/x", &spec, &scan, why, sizeof why, NULL),
                     DRV_EINVAL);
    assert_non_null(strstr(why, "cannot open"));
    spec.format = DRV_FMT_LINES;
    spec.id_field[0] = '\0';
    assert_int_equal(drv_scan_file(path, &spec, &scan, why, sizeof why, NULL), DRV_OK);
    assert_int_equal(scan.total, 3);
    drv_scan_free(&scan);
    unlink(path);
    free(path);
}

/* ---- argv templates ----------------------------------------------------------------------------
 */

static void template_replaces_id_and_item_and_keeps_other_braces(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 1024);
    assert_int_equal(drv_template_expand("--id={id}/{item}/{id}", "42", 2, "{\"a\":1}", 7, &b),
                     DRV_OK);
    assert_string_equal(b.data, "--id=42/{\"a\":1}/42");
    assert_int_equal(drv_template_expand("{x} { }{id}{", "7", 1, "", 0, &b), DRV_OK);
    assert_string_equal(b.data, "{x} { }7{");
    assert_int_equal(drv_template_expand("plain", "7", 1, "", 0, &b), DRV_OK);
    assert_string_equal(b.data, "plain");
    assert_int_equal(drv_template_expand("{item}", "7", 1, "", 0, &b), DRV_OK);
    assert_string_equal(b.data, "");
    /* An id that looks like a template is data, not expanded again. */
    assert_int_equal(drv_template_expand("{id}", "{item}", 6, "X", 1, &b), DRV_OK);
    assert_string_equal(b.data, "{item}");
    drv_buf_free(&b);
}

static void template_refuses_nul_and_respects_the_cap(void **state) {
    (void)state;
    drv_buf b;
    drv_buf_init(&b, 8);
    assert_int_equal(drv_template_expand("{item}", "1", 1, "a\0b", 3, &b), DRV_EINVAL);
    assert_int_equal(drv_template_expand("{item}", "1", 1, "123456789", 9, &b), DRV_ETOOBIG);
    assert_int_equal(drv_template_expand("{item}", "1", 1, "1234567", 7, &b), DRV_OK);
    char *argv[] = {"cmd", "--x={item}"};
    assert_true(drv_template_uses_item(argv, 2));
    assert_false(drv_template_uses_item(argv, 1));
    drv_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reader_handles_crlf_empty_lines_and_no_trailing_newline),
        cmocka_unit_test(reader_keeps_quoted_newline_in_one_csv_record),
        cmocka_unit_test(reader_refuses_nul_bytes_naming_the_offset),
        cmocka_unit_test(reader_refuses_oversized_records_instead_of_truncating),
        cmocka_unit_test(reader_stops_before_a_record_starting_at_end),
        cmocka_unit_test(csv_split_handles_quotes_escapes_and_empty_fields),
        cmocka_unit_test(ndjson_id_is_a_string_or_whole_number),
        cmocka_unit_test(csv_item_is_a_json_object_of_the_header),
        cmocka_unit_test(lines_partitions_hold_every_record_once_for_1_to_16_partitions),
        cmocka_unit_test(csv_partitions_never_split_a_quoted_newline),
        cmocka_unit_test(ndjson_partitions_hold_every_record_once),
        cmocka_unit_test(scan_counts_and_rejects_bad_records_by_number),
        cmocka_unit_test(template_replaces_id_and_item_and_keeps_other_braces),
        cmocka_unit_test(template_refuses_nul_and_respects_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
