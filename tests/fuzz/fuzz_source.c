/* libFuzzer: the record reader and item extraction over arbitrary bytes, in all three formats.
 * Every record returned lies inside the input, holds no NUL, is not over the cap, and the
 * offsets only grow; an error always says why. */
#include "source.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(const uint8_t *data, size_t size, drv_fmt fmt, const char *field) {
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f) return;
    drv_buf hdr;
    drv_buf_init(&hdr, 4096);
    int64_t start = 0;
    char why[512] = "";
    drv_extract *x = NULL;
    drv_reader *r = NULL;
    if (fmt == DRV_FMT_CSV && drv_csv_read_header(f, 4096, &hdr, &start, why, sizeof why) != 0)
        goto out;
    if (drv_extract_new(fmt, field, hdr.data, hdr.len, &x, why, sizeof why) != DRV_OK) goto out;
    if (drv_reader_new(f, fmt, start, -1, 4096, &r) != DRV_OK) goto out;
    int64_t last = -1;
    for (;;) {
        const char *rec;
        size_t len;
        int64_t at;
        why[0] = '\0';
        int rc = drv_reader_next(r, &rec, &len, &at, why, sizeof why);
        if (rc < 0 && !why[0]) abort();
        if (rc <= 0) break;
        if (len > 4096 || memchr(rec, '\0', len) || at < 0 || at <= last || (size_t)at + len > size)
            abort();
        last = at;
        drv_buf id, pl;
        drv_buf_init(&id, DRV_ID_BYTES_MAX);
        drv_buf_init(&pl, 8192);
        why[0] = '\0';
        if (drv_extract_item(x, rec, len, &id, drv_extract_has_payload(x) ? &pl : NULL, why,
                             sizeof why) != 0 &&
            !why[0])
            abort();
        drv_buf_free(&id);
        drv_buf_free(&pl);
    }
out:
    drv_reader_free(r);
    drv_extract_free(x);
    drv_buf_free(&hdr);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    run(data, size, DRV_FMT_LINES, "");
    run(data, size, DRV_FMT_NDJSON, "id");
    run(data, size, DRV_FMT_CSV, "id");
    return 0;
}
