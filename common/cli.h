#ifndef DRV_CLI_H
#define DRV_CLI_H

#include "config.h"
#include "env.h"
#include "queue.h"

/* Options every command of both programs takes. */
typedef struct drv_cli {
    const char *redis_url;
    const char *prefix;
    const char *log_level;
    long long connect_timeout_ms;
    long long command_timeout_ms;
} drv_cli;

#define DRV_CLI_OPTS(c)                                                                            \
    {"redis",                                                                                      \
     "DROVER_REDIS_URL",                                                                           \
     DRV_OPT_STR,                                                                                  \
     "redis://127.0.0.1:6379",                                                                     \
     "URL",                                                                                        \
     "Redis: redis://[user:password@]host:port/db, unix:///path.sock, "                            \
     "redis+cluster://[user:password@]host:port[,host:port...] (Redis Cluster seeds) or "          \
     "redis+sentinel://[user:password@]host:port[,host:port...]/MASTERNAME; rediss://, "           \
     "rediss+cluster:// and rediss+sentinel:// over TLS, verified against the system's CAs, "      \
     "with ?ca=PATH, &cert=PATH&key=PATH (mutual TLS) or ?insecure=1 (no checks: warned). A "      \
     "password in --redis is hidden from ps once read, not before: DROVER_REDIS_URL is the "       \
     "safer form",                                                                                 \
     0,                                                                                            \
     0,                                                                                            \
     &(c)->redis_url},                                                                             \
        {"prefix", "DROVER_PREFIX", DRV_OPT_STR, "drover:", "PREFIX", "prefix of every key", 0,    \
         0,        &(c)->prefix},                                                                  \
        {"log-level",                                                                              \
         "DROVER_LOG_LEVEL",                                                                       \
         DRV_OPT_STR,                                                                              \
         "info",                                                                                   \
         "LEVEL",                                                                                  \
         "debug, info, warn, error or off",                                                        \
         0,                                                                                        \
         0,                                                                                        \
         &(c)->log_level},                                                                         \
        {"connect-timeout-ms",                                                                     \
         "DROVER_CONNECT_TIMEOUT_MS",                                                              \
         DRV_OPT_INT,                                                                              \
         "2000",                                                                                   \
         "MS",                                                                                     \
         "give up connecting to Redis after this long",                                            \
         1,                                                                                        \
         600000,                                                                                   \
         &(c)->connect_timeout_ms},                                                                \
    {                                                                                              \
        "command-timeout-ms", "DROVER_COMMAND_TIMEOUT_MS", DRV_OPT_INT, "10000", "MS",             \
            "give up waiting for a Redis reply after this long", 1, 600000,                        \
            &(c)->command_timeout_ms                                                               \
    }

/* Hides the password of every --redis URL in argv (up to a "--") from `ps`: the bytes the
 * kernel shows are overwritten with '*', and argv[i] points to a private copy holding the
 * real value, so parsing afterwards sees it. Call before parsing. */
void drv_cli_hide_password(int argc, char **argv);

/* Applies the log level and checks the URL and prefix: returns 0, or 2 after printing what
 * is wrong (a usage error: nothing was sent to Redis). */
int drv_cli_check(const drv_cli *c, drv_redis_cfg *cfg);
/* Connects. Returns 0, or 1 after printing an error that names the address. */
int drv_cli_connect(const drv_cli *c, const drv_redis_cfg *cfg, drv_queue **q);

#endif
