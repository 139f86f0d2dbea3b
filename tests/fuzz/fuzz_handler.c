/* libFuzzer: HTTP handlers and per-item rendering. The input is split at the first NUL: a
 * handler object, then an item (NDJSON-like text). A parsed handler renders its URL, headers
 * and body for that item without crashing; a rendered header never holds CR or LF, and a
 * rendered URL holds no byte a URL cannot carry raw. */
#include "handler.h"
#include "spec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    size_t hlen = nul ? (size_t)(nul - s) : size;
    const char *item = nul ? nul + 1 : NULL;
    size_t ilen = nul ? size - hlen - 1 : 0;
    drv_http_cfg c;
    char why[512];
    if (drv_http_cfg_parse(s, hlen, &c, why, sizeof why) != DRV_OK) return 0;
    char json[DRV_HANDLER_JSON_MAX];
    drv_http_cfg d;
    if (drv_http_cfg_to_json(&c, json, sizeof json) == DRV_OK) {
        if (drv_http_cfg_parse(json, strlen(json), &d, why, sizeof why) != DRV_OK) {
            fprintf(stderr, "canonical handler refused: %s\n%s\n", why, json);
            abort();
        }
        drv_http_cfg_free(&d);
    }
    /* ${NAME} is left unresolved on purpose: rendering must refuse it, not crash. */
    drv_buf b;
    drv_buf_init(&b, 1 << 16);
    drv_tvals v = {"id-1", 4, item, ilen, NULL, 0};
    if (drv_http_render(&c, c.url, DRV_ESC_URL, &v, &b, why, sizeof why) == DRV_OK)
        for (size_t i = 0; i < b.len; i++) /* values are percent-encoded: such bytes come */
            if ((unsigned char)b.data[i] <= ' ' && !strchr(c.url, b.data[i])) /* only from it */
                abort();
    for (int i = 0; i < c.nhdr; i++)
        if (drv_http_render(&c, c.hdr[i], DRV_ESC_HEADER, &v, &b, why, sizeof why) == DRV_OK &&
            (memchr(b.data, '\r', b.len) || memchr(b.data, '\n', b.len)))
            abort();
    if (c.body)
        drv_http_render(&c, c.body, c.body_json ? DRV_ESC_JSON : DRV_ESC_RAW, &v, &b, why,
                        sizeof why);
    drv_tvals_free(&v);
    drv_buf_free(&b);
    drv_http_cfg_free(&c);
    return 0;
}
