#ifndef DRV_CONN_H
#define DRV_CONN_H

#include "err.h"
#include "url.h"

#include <hiredis/hiredis.h>
#include <stddef.h>

/* One Redis connection with its script registry. Not thread-safe: one per thread.
 *
 * A NULL reply from hiredis means the connection is gone; the connection is then marked
 * broken and every call returns DRV_EIO until drv_conn_reconnect() succeeds. Nothing here
 * retries a command on its own: whether a command is safe to repeat is the caller's call. (In
 * cluster mode, cluster.c sends a command again only after a MOVED, ASK, TRYAGAIN or
 * CLUSTERDOWN answer, which Redis gives without running it.)
 *
 * The URL's mode picks the server: redis:// and unix:// one Redis (hiredis directly, as ever);
 * redis+cluster:// a Redis Cluster through cluster.c (reconnect reads the slot map again);
 * redis+sentinel:// the master the sentinels name (asked again on every reconnect, and a
 * READONLY answer counts as a lost connection: the master was demoted). */
typedef struct drv_conn drv_conn;

/* Connects, AUTHs, SELECTs and loads every script. On failure returns DRV_EIO (or
 * DRV_EREPLY for a refused AUTH) and writes a message naming the address into 'why'.
 * Caller owns '*out': release with drv_conn_close(). */
drv_err drv_conn_open(const drv_redis_cfg *cfg, drv_conn **out, char *why, size_t whylen);
void drv_conn_close(drv_conn *c); /* NULL is a no-op */

/* Reconnects a broken connection. Returns DRV_OK, or DRV_EIO with the reason in 'why'. */
drv_err drv_conn_reconnect(drv_conn *c, char *why, size_t whylen);
int drv_conn_broken(const drv_conn *c);
/* Borrowed: valid until drv_conn_close(). "redis://host:port/db" without the password. */
const char *drv_conn_addr(const drv_conn *c);
/* The error text of the last call (connection or reply), "" after a call that succeeded
 * (drv_conn_reply, reading a pipeline, sets it and never clears it: the first failure of the
 * pipeline keeps its text until the next command or append). Borrowed; overwritten by the
 * next call. */
const char *drv_conn_errstr(const drv_conn *c);
/* Replaces the error text (a caller that found a reply it cannot use names what was wrong). */
void drv_conn_set_errstr(drv_conn *c, const char *text);

/* Runs one command. On DRV_OK '*out' is the reply (caller frees with freeReplyObject);
 * a REDIS_REPLY_ERROR reply is returned as DRV_EREPLY with no reply and the text kept for
 * drv_conn_errstr(). */
drv_err drv_conn_cmd(drv_conn *c, int argc, const char **argv, const size_t *lens,
                     redisReply **out);
/* printf-style convenience for fixed commands (hiredis format rules: %s, %b, %lld). */
drv_err drv_conn_cmdf(drv_conn *c, redisReply **out, const char *fmt, ...);

/* Runs a script by name (lua/NAME.lua) with EVALSHA, reloading it on NOSCRIPT (the script
 * cache empties on every Redis restart or failover). A script error "DRV_WORD detail" maps
 * to the matching drv_err (DRV_EPAUSED, DRV_ECANCELLED, DRV_ENOJOB, DRV_ECURSOR), anything
 * else to DRV_EREPLY; the text is kept for drv_conn_errstr(). */
drv_err drv_conn_script(drv_conn *c, const char *name, int nkeys, const char **keys,
                        const size_t *keylens, int nargs, const char **args, const size_t *arglens,
                        redisReply **out);

/* Pipelining: queue commands, then read their replies in order. */
drv_err drv_conn_append(drv_conn *c, int argc, const char **argv, const size_t *lens);
drv_err drv_conn_reply(drv_conn *c, redisReply **out);

#endif
