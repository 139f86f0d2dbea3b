#include "env.h"

#include <stdio.h>
#include <string.h>

const char *const drv_conn_env[] = {"DROVER_REDIS_URL", "DROVER_PREFIX",
                                    "DROVER_CONNECT_TIMEOUT_MS", "DROVER_COMMAND_TIMEOUT_MS", NULL};

int drv_conn_env_is(const char *name, size_t n) {
    for (int i = 0; drv_conn_env[i]; i++)
        if (strlen(drv_conn_env[i]) == n && strncmp(drv_conn_env[i], name, n) == 0) return 1;
    return 0;
}

static int in_list(const char *list, const char *name, size_t n) {
    for (const char *p = list; p && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, name, n) == 0) return 1;
        p += k;
        if (*p == ',') p++;
    }
    return 0;
}

int drv_env_for_child(const char *entry, const char *pass) {
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
    return !drv_conn_env_is(entry, n) || in_list(pass, entry, n);
}

int drv_pass_env_check(const char *pass, char *why, size_t whylen) {
    if (!pass) return 0;
    for (const char *p = pass;;) {
        size_t k = strcspn(p, ",");
        if (!drv_conn_env_is(p, k)) {
            snprintf(why, whylen,
                     "--pass-env: \"%.*s\" is not a variable the worker withholds (those are "
                     "DROVER_REDIS_URL, DROVER_PREFIX, DROVER_CONNECT_TIMEOUT_MS and "
                     "DROVER_COMMAND_TIMEOUT_MS; others are passed anyway)",
                     (int)k, p);
            return -1;
        }
        if (!p[k]) return 0;
        p += k + 1;
    }
}
