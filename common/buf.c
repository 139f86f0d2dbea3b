/* The capped growable buffer (see buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void drv_buf_init(drv_buf *b, size_t max) {
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

drv_err drv_buf_append(drv_buf *b, const void *p, size_t n) {
    if (n > b->max - b->len || b->len + n + 1 > b->max + 1) return DRV_ETOOBIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return DRV_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return DRV_OK;
}

void drv_buf_reset(drv_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void drv_buf_free(drv_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
