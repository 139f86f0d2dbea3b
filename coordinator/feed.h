#ifndef DRV_FEED_H
#define DRV_FEED_H

#include "queue.h"

#include <stdio.h>

/* Streams a job's source into its partitions, a chunk at a time, never holding the whole
 * source. Each chunk and the cursor that covers it land in one feed.lua call, so a restarted
 * coordinator resumes exactly at the cursor in Redis. */
typedef struct drv_feeder drv_feeder;

/* For range and file sources (stdin is fed by submit). Caller owns '*out'; 'job' is borrowed
 * and must outlive the feeder. */
drv_err drv_feeder_open(const drv_job *job, drv_feeder **out, char *why, size_t whylen);
void drv_feeder_free(drv_feeder *f);
/* The file's fingerprint taken at submit (size, mtime in ns, inode, and a drv_rec_hash of each
 * of the n partitions' records). Once given, a fill refuses (DRV_EINVAL, "file F changed since
 * submit: ...") to feed a file that no longer matches: the stat before each chunk, the hash of
 * a partition's records before this feeder first feeds it. */
drv_err drv_feeder_expect(drv_feeder *f, int64_t size, int64_t mtime_ns, int64_t inode,
                          const uint64_t *hash, int n);
/* Makes room for partitions up to nparts - 1 (the job grew by a split). */
drv_err drv_feeder_grow(drv_feeder *f, int nparts);

/* Feeds up to 'want' items into partition p, starting at the cursor in 'st' (as last read from
 * Redis), and advances st->cursor, st->pending and st->exhausted as chunks land. Adds the items fed
 * to *fed. DRV_ECURSOR means another feeder moved the cursor (re-read and try again); DRV_EINVAL a
 * source error (message in 'why'). */
drv_err drv_feeder_fill(drv_feeder *f, drv_queue *q, int p, drv_part_stat *st, int64_t want,
                        int64_t *fed, char *why, size_t whylen);

/* The stdin source: reads records from 'in', hash-partitions them by id, feeds them (keeping
 * each pending list under the window) and marks every partition exhausted at the end.
 * Resumes a job fed before: each partition's first records, as many as its cursor says were
 * fed, are read again and skipped, and checked against the cursor's hash; input that differs
 * is refused (DRV_EINVAL with *differs set and 'why' naming the record where it showed).
 * Prints progress to stderr unless 'quiet'. Returns DRV_OK or an error with 'why'. */
drv_err drv_feed_stream(drv_queue *q, const drv_job *job, FILE *in, int quiet, int *differs,
                        char *why, size_t whylen);

/* The paginated HTTP source (feed_http.c). 'alive' is called during a long fetch: it renews
 * the coordinator's lock and returns nonzero to abandon the fetch (a stop signal). */
typedef struct drv_pager drv_pager;
typedef int (*drv_pager_alive)(void *ud);

/* Resolves ${NAME} in the source's URL and headers from this environment (a missing one is
 * DRV_EINVAL naming it). 'job' is borrowed and must outlive the pager. */
drv_err drv_pager_open(const drv_job *job, drv_pager_alive alive, void *ud, drv_pager **out,
                       char *why, size_t whylen);
void drv_pager_free(drv_pager *pg);
/* Fetches the next page and feeds its items, when every partition is under the window.
 * A fetch that failed in a way worth retrying is logged and tried again later (DRV_OK);
 * DRV_EINVAL is a page that cannot be used (not JSON, no items array, an item without an id),
 * with 'why'. The cursors in st advance as chunks land; *fed counts the items. */
drv_err drv_pager_step(drv_pager *pg, drv_queue *q, drv_part_stat *st, int64_t *fed, char *why,
                       size_t whylen);

#endif
