#ifndef DRV_SCRIPTS_H
#define DRV_SCRIPTS_H

#include <stddef.h>

/* The Lua scripts of lua/, embedded at build time (cmake/embed_lua.cmake): each is the
 * includes its `-- @include NAME` lines name (lua/lib/NAME.lua and `shared`, the constants of
 * common/shared.def; each once, in dependency order) followed by lua/NAME.lua. The table ends
 * with a NULL name. */
typedef struct drv_script_src {
    const char *name;
    const char *src;
    size_t len;
} drv_script_src;

extern const drv_script_src drv_script_sources[];

#endif
