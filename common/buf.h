#ifndef DRV_BUF_H
#define DRV_BUF_H

/* A growable byte buffer with a hard cap (curl's dynbuf idea), so a hostile 2 GB item is an
 * error (DRV_ETOOBIG), not an out-of-memory. The data is always NUL-terminated once anything
 * was appended; 'data' is NULL before that. */

#include "err.h"

#include <stddef.h>

typedef struct drv_buf {
    char *data;
    size_t len, cap, max; /* max: hard cap; appending past it fails with DRV_ETOOBIG */
} drv_buf;

/* Empties 'b' and sets its cap; allocates nothing. */
void drv_buf_init(drv_buf *b, size_t max);
/* Appends p[0..n); on failure (DRV_ETOOBIG, DRV_ENOMEM) 'b' is unchanged. */
drv_err drv_buf_append(drv_buf *b, const void *p, size_t n);
/* Empties 'b' and keeps its memory for reuse. */
void drv_buf_reset(drv_buf *b);
/* Releases the memory; 'b' may be appended to again (its max is kept). */
void drv_buf_free(drv_buf *b);

#endif
