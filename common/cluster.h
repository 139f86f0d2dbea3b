#ifndef DRV_CLUSTER_H
#define DRV_CLUSTER_H

#include "err.h"
#include "url.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* Redis Cluster routing for conn.c (Debian's hiredis 0.14 has no cluster support).
 *
 * Keeps the slot map from CLUSTER SLOTS and one connection per node (opened on first use),
 * and sends each command to the master of its first key's slot: EVAL/EVALSHA by the first
 * key after numkeys, most commands by argv[1]. MOVED updates the map (and refreshes it
 * whole), ASK sends ASKING then the command to the node named, TRYAGAIN and CLUSTERDOWN are
 * retried with a capped backoff (the command did not run). Commands without a key: SCAN
 * walks every master in turn (the cursor it hands back is "MASTER:CURSOR", "0" at the end);
 * SCRIPT, FLUSHALL and FLUSHDB go to every master (the first reply is returned); MULTI is
 * held back and sent to the node of the first command after it, which EXEC or DISCARD then
 * go to; others (TIME, PING, INFO) go to any master. UNLINK, DEL, EXISTS and TOUCH whose
 * keys span slots run one key at a time and answer the sum.
 *
 * Not thread-safe: one per thread, like a redisContext. */
typedef struct drv_cluster drv_cluster;

/* CRC16-CCITT (XMODEM), the one Redis Cluster uses: "123456789" -> 0x31C3. */
uint16_t drv_crc16(const char *buf, size_t len);
/* The slot of a key (0..16383), honouring the first non-empty {hash tag}. */
int drv_cluster_keyslot(const char *key, size_t len);

/* Reads the slot map from the first seed that answers. On failure returns DRV_EIO (or
 * DRV_ENOMEM) with the reason in 'why'. Caller owns '*out': drv_cluster_close(). */
drv_err drv_cluster_open(const drv_redis_cfg *cfg, drv_cluster **out, char *why, size_t whylen);
void drv_cluster_close(drv_cluster *cl); /* NULL is a no-op */

/* Reads the slot map again (after a lost node: a replica may have taken over). Drops any
 * queued pipeline. Returns DRV_OK or DRV_EIO; the reason in drv_cluster_errstr(). */
drv_err drv_cluster_refresh(drv_cluster *cl);

/* Runs one command. Returns the reply (which may be an error reply; free with
 * freeReplyObject), or NULL when a node could not be reached or its connection was lost:
 * the reason is in drv_cluster_errstr() and the next drv_cluster_refresh() starts over. */
redisReply *drv_cluster_command(drv_cluster *cl, int argc, const char **argv, const size_t *lens);

/* Pipelining: commands are queued (copied) and sent, per node, at the first
 * drv_cluster_reply(), which then returns the replies in the order the commands were
 * appended (NULL as in drv_cluster_command). Append returns 0, or -1 without memory. */
int drv_cluster_append(drv_cluster *cl, int argc, const char **argv, const size_t *lens);
redisReply *drv_cluster_reply(drv_cluster *cl);

/* The last connection or routing error. Borrowed; overwritten by the next call. */
const char *drv_cluster_errstr(const drv_cluster *cl);

/* For tests and tools: how many masters own slots, and the "host:port" owning a slot in the
 * current map (NULL when unknown). Borrowed, valid until the next call. */
int drv_cluster_masters(const drv_cluster *cl);
const char *drv_cluster_slot_owner(const drv_cluster *cl, int slot);

#endif
