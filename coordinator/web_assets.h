#ifndef DRV_WEB_ASSETS_H
#define DRV_WEB_ASSETS_H

#include <stddef.h>

/* The files of web/ as drover web serves them under /static/NAME, embedded at build time by
 * cmake/embed_files.cmake. The table ends with a NULL name. */
typedef struct drv_web_asset {
    const char *name;
    const unsigned char *data;
    size_t len;
} drv_web_asset;

extern const drv_web_asset drv_web_assets[];

#endif
