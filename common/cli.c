#include "cli.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int drv_cli_check(const drv_cli *c, drv_redis_cfg *cfg) {
    int lvl = drv_log_level_parse(c->log_level);
    if (lvl < 0) {
        fprintf(stderr,
                "error: --log-level: expected debug, info, warn, error or off, got \"%s\"\n",
                c->log_level);
        return 2;
    }
    drv_log_level = lvl;
    char why[256];
    if (drv_url_parse(c->redis_url, cfg, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "error: --redis: %s\n", why);
        return 2;
    }
    if (!drv_prefix_valid(c->prefix)) {
        fprintf(stderr, "error: --prefix: at most 64 bytes with no braces or spaces, got \"%s\"\n",
                c->prefix);
        return 2;
    }
    cfg->connect_timeout_ms = (int)c->connect_timeout_ms;
    cfg->command_timeout_ms = (int)c->command_timeout_ms;
    return 0;
}

int drv_cli_connect(const drv_cli *c, const drv_redis_cfg *cfg, drv_queue **q) {
    char why[600];
    drv_err e = drv_queue_open(cfg, c->prefix, q, why, sizeof why);
    if (e != DRV_OK) {
        fprintf(stderr, "error: %s\n", why);
        return 1;
    }
    return 0;
}

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

/* Overwrites the password in argv[i] (from byte 'skip' on) if it holds one. */
static void hide_in(char **argv, int i, size_t skip) {
    size_t off, len;
    if (!drv_url_password_span(argv[i] + skip, &off, &len) || len == 0) return;
    char *copy = strdup(argv[i]);
    if (!copy) return; /* keep the value usable: better shown than lost */
    memset(argv[i] + skip + off, '*', len);
    argv[i] = copy; /* lives as long as the process, like argv */
}

void drv_cli_hide_password(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return; /* the handler's command is not ours */
        if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc)
            hide_in(argv, ++i, 0);
        else if (strncmp(argv[i], "--redis=", 8) == 0)
            hide_in(argv, i, 8);
    }
}
