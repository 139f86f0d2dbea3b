#ifndef DRV_URL_H
#define DRV_URL_H

#include "err.h"

#include <stddef.h>

/* Where Redis is and how to log in. Parsed from
 *   redis://[[user]:password@]host[:port][/db]     host may be [IPv6]
 *   unix://[[user]:password@]/path/to.sock[?db=N]
 * user and password are percent-decoded. */
typedef struct drv_redis_cfg {
    char host[256];
    int port;           /* 0 for unix sockets */
    char path[256];     /* unix socket path, "" for TCP */
    char user[128];     /* ACL user, "" for the default user */
    char password[256]; /* "" for no AUTH */
    int db;
    int connect_timeout_ms;
    int command_timeout_ms;
} drv_redis_cfg;

/* Parses 'url' into *out (timeouts set to defaults 2000/5000 ms). On error returns
 * DRV_EINVAL and writes a reason into 'why' (NUL-terminated, at most whylen bytes). */
drv_err drv_url_parse(const char *url, drv_redis_cfg *out, char *why, size_t whylen);

/* Writes the address without the password ("redis://user@host:6379/0") for messages. */
void drv_url_describe(const drv_redis_cfg *cfg, char *buf, size_t len);

#endif
