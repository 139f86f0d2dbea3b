#ifndef DRV_LINK_H
#define DRV_LINK_H

#include "err.h"
#include "url.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stddef.h>

/* One connection to one Redis server, in plain text or over TLS. Every byte drover sends to
 * Redis goes through here: conn.c (a single server, the sentinels and the master they name)
 * and cluster.c (each node), so every program and every path gets TLS the same way.
 *
 * A link is a hiredis redisContext either way. Plain links are hiredis's own, untouched: each
 * call below is one hiredis call. TLS links (Debian's hiredis 0.14 has no TLS) keep everything
 * hiredis does but the I/O: hiredis connects the socket (timeout, IPv6, its error text),
 * formats commands into its output buffer (redisAppendCommandArgv) and parses replies with its
 * reader (redisGetReplyFromReader); OpenSSL carries the bytes on the same socket. Pipelines,
 * timeouts and reconnects therefore behave alike on both.
 *
 * Not thread-safe: one per thread, like a redisContext. */
typedef struct drv_link drv_link;

/* The TLS settings of a drv_redis_cfg (an SSL_CTX with its CA store and client certificate),
 * shared by every link made from that cfg. */
typedef struct drv_tls drv_tls;

/* For a cfg with tls set: loads the CA store (the system's, or ca=), the client certificate
 * and key; warns once per process when insecure. '*out' is NULL for a plain cfg. Returns
 * DRV_OK, or DRV_EINVAL with the file and OpenSSL's reason in 'why'. */
drv_err drv_tls_new(const drv_redis_cfg *cfg, drv_tls **out, char *why, size_t whylen);
void drv_tls_free(drv_tls *t); /* NULL is a no-op */

/* Connects to host:port (or the unix socket 'path' when it is not NULL or ""), over TLS when
 * 'tls' is not NULL: SNI and the certificate's check name 'host' (an IP address literal is
 * checked as one). The connection and the TLS handshake each take at most connect_ms;
 * a reply at most command_ms. Returns NULL with the reason in 'why' ("Connection refused",
 * "certificate verify failed: hostname mismatch", "server is not speaking TLS ..."). */
drv_link *drv_link_open(const char *host, int port, const char *path, drv_tls *tls, int connect_ms,
                        int command_ms, char *why, size_t whylen);
void drv_link_free(drv_link *l); /* NULL is a no-op */

/* As redisCommand, redisvCommand, redisCommandArgv: the reply, or NULL when the connection
 * failed (the link is then useless: free it). */
redisReply *drv_link_command(drv_link *l, const char *fmt, ...);
redisReply *drv_link_vcommand(drv_link *l, const char *fmt, va_list ap);
redisReply *drv_link_command_argv(drv_link *l, int argc, const char **argv, const size_t *lens);

/* Pipelining, as redisAppendCommandArgv and redisGetReply: append returns 0 (or -1 without
 * memory); get_reply sends what was appended and returns the next reply, or NULL when the
 * connection failed. */
int drv_link_append_argv(drv_link *l, int argc, const char **argv, const size_t *lens);
redisReply *drv_link_get_reply(drv_link *l);

/* Why the last call returned NULL ("timed out waiting for a reply", "Server closed the
 * connection", ...). Borrowed. */
const char *drv_link_errstr(const drv_link *l);

#endif
