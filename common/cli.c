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
