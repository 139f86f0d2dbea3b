#ifndef DRV_URL_H
#define DRV_URL_H

#include "err.h"

#include <stddef.h>

/* Where Redis is and how to log in. Parsed from
 *   redis://[[user]:password@]host[:port][/db]     host may be [IPv6]
 *   unix://[[user]:password@]/path/to.sock[?db=N]
 *   redis+cluster://[[user]:password@]host[:port][,host[:port]...][/0]   (seed nodes, db 0)
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTERNAME
 * user and password are percent-decoded; they log in to the Redis nodes (a sentinel is
 * asked without them). Default ports: 6379, 26379 for sentinels.
 *
 * rediss://, rediss+cluster:// and rediss+sentinel:// are the same over TLS (every node and
 * sentinel), with parameters after a '?', joined by '&', percent-decoded:
 *   ca=PATH      trust the CA certificates in this PEM file instead of the system's
 *   cert=PATH    a client certificate (mutual TLS), PEM
 *   key=PATH     its private key (default: in the cert file)
 *   insecure=1   check neither the certificate nor the host name (warned about at start)
 * The userinfo ends at the last '@' before the first '?'. */
#define DRV_REDIS_MAX_SEEDS 16

typedef enum { DRV_REDIS_SINGLE = 0, DRV_REDIS_CLUSTER, DRV_REDIS_SENTINEL } drv_redis_mode;

typedef struct drv_redis_seed {
    char host[256];
    int port;
} drv_redis_seed;

typedef struct drv_redis_cfg {
    drv_redis_mode mode;
    int nseeds;                                /* cluster seeds or sentinels; 0 for SINGLE */
    drv_redis_seed seeds[DRV_REDIS_MAX_SEEDS]; /* in URL order */
    char master[128];                          /* sentinel: the master's name */
    char host[256];     /* SINGLE: the server; CLUSTER/SENTINEL: the first seed until resolved */
    int port;           /* 0 for unix sockets */
    char path[256];     /* unix socket path, "" for TCP */
    char user[128];     /* ACL user, "" for the default user */
    char password[256]; /* "" for no AUTH */
    int db;
    int connect_timeout_ms;
    int command_timeout_ms;
    int tls;            /* rediss: every connection over TLS (common/link.c) */
    int tls_insecure;   /* insecure=1: no certificate or host name check */
    char tls_ca[256];   /* ca=PATH, "" for the system's CA store */
    char tls_cert[256]; /* cert=PATH, "" for no client certificate */
    char tls_key[256];  /* key=PATH; the cert file when only cert= is given */
} drv_redis_cfg;

/* Parses 'url' into *out (timeouts set to defaults 2000/5000 ms). On error returns
 * DRV_EINVAL and writes a reason into 'why' (NUL-terminated, at most whylen bytes). */
drv_err drv_url_parse(const char *url, drv_redis_cfg *out, char *why, size_t whylen);

/* Writes the address without the password ("redis://user@host:6379/0",
 * "redis+cluster://h1:7000,h2:7001", "redis+sentinel://h:26379/mymaster"; "rediss..." over
 * TLS, without its parameters) for messages. */
void drv_url_describe(const drv_redis_cfg *cfg, char *buf, size_t len);

/* Where the password sits in a Redis URL's text: 1 with *off and *len set (len may be 0 for
 * "redis://user:@host"), 0 when the URL has no userinfo. For hiding it from `ps`. */
int drv_url_password_span(const char *url, size_t *off, size_t *len);

/* --http-allow: "HOST[:PORT][,HOST[:PORT]...]". A bare HOST allows its URL scheme's default
 * port only (80 for http, 443 for https); HOST:PORT that port; HOST:* any port. IPv6 hosts
 * are written in brackets ("[::1]:8080"); "::1" alone names the host. */
typedef struct drv_host_rule {
    char host[256]; /* without brackets */
    int port;       /* 1..65535; 0: the scheme's default port; -1: any port */
} drv_host_rule;

/* Parses the list into a new array (free() it). Returns DRV_OK, or DRV_EINVAL with the
 * entry that is wrong in 'why'. */
drv_err drv_host_rules_parse(const char *list, drv_host_rule **out, int *n, char *why,
                             size_t whylen);
/* 1 when scheme://host:port (host without brackets, port the URL's or its default) matches a
 * rule; host names compare without regard to case. */
int drv_host_rules_match(const drv_host_rule *r, int n, const char *scheme, const char *host,
                         int port);

#endif
