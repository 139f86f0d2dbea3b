#include "template.h"

#include <string.h>

drv_err drv_template_expand(const char *tmpl, const char *id, size_t idlen, const char *item,
                            size_t itemlen, drv_buf *out) {
    drv_buf_reset(out);
    drv_err e = drv_buf_append(out, "", 0);
    for (const char *p = tmpl; *p && e == DRV_OK;) {
        const char *val = NULL;
        size_t vlen = 0, skip = 0;
        if (strncmp(p, "{id}", 4) == 0)
            val = id, vlen = idlen, skip = 4;
        else if (strncmp(p, "{item}", 6) == 0)
            val = item, vlen = itemlen, skip = 6;
        if (skip) { /* not 'val': an absent value (NULL, 0) is empty, not a literal */
            if (vlen && memchr(val, '\0', vlen)) return DRV_EINVAL;
            e = drv_buf_append(out, val, vlen);
            p += skip;
        } else {
            size_t lit = 1 + strcspn(p + 1, "{");
            e = drv_buf_append(out, p, lit);
            p += lit;
        }
    }
    return e;
}

int drv_template_uses_item(char *const *argv, int argc) {
    for (int i = 0; i < argc; i++)
        if (strstr(argv[i], "{item}")) return 1;
    return 0;
}
