#ifndef DRV_TEMPLATE_H
#define DRV_TEMPLATE_H

#include "buf.h"

#include <stddef.h>

/* Expands "{id}" and "{item}" inside one argv element; every other character, including
 * other braces, is kept as is. The result is appended to 'out' (reset first). Returns
 * DRV_OK, or DRV_ETOOBIG when it would pass out->max, or DRV_EINVAL when a value holds a NUL
 * byte (argv cannot carry one). No shell is involved, so no quoting is needed or done. */
drv_err drv_template_expand(const char *tmpl, const char *id, size_t idlen, const char *item,
                            size_t itemlen, drv_buf *out);

/* 1 if any element of argv uses {item}. */
int drv_template_uses_item(char *const *argv, int argc);

#endif
