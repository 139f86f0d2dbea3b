#include "cli.h"

#include "log.h"

#include <stdio.h>

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
