#ifndef DRV_PG_H
#define DRV_PG_H

/* The postgres source (feed_pg.c): a table walked by its key, a partition at a time.
 *
 * An integer key's partitions are slices of the key's min..max at submit, the last one open
 * (up to 2^53, the largest integer a JSON id keeps exactly), so rows inserted past the max are fed
 * too; a text or uuid key's partition is the rows whose key hashes to it (the first 32 bits of
 * md5(key::text), mod P, computed by PostgreSQL). Each partition is walked in key order by keyset
 * pagination, its cursor in Redis the last key it fed: an integer in decimal, or ">" and the text
 * key ("" before the first). So a restart resumes after the last key fed, a row inserted ahead of a
 * cursor is fed when the walk reaches it and a row deleted before is not. */

#include "queue.h"

typedef struct drv_pgsrc drv_pgsrc;

/* drover submit: checks the source against the database (the DSN's ${NAME} from this
 * environment; a literal password refused), sets spec->pg_key_type and cuts the partitions.
 * 0, or the exit code with the reason on stderr: 2 for anything wrong with the source (the
 * DSN, table, key, columns, condition, a key without a unique index), 1 for out of memory. */
int drv_pg_split(drv_spec *spec, drv_part_init *parts);

/* drover run: resolves the DSN's ${NAME} from this environment (a missing one is DRV_EINVAL
 * naming it); connects at the first fill. 'job' is borrowed and outlives the source. */
drv_err drv_pg_open(const drv_job *job, drv_pgsrc **out, char *why, size_t whylen);
void drv_pg_free(drv_pgsrc *s);

/* Feeds up to 'want' rows of partition p after the cursor in st, a page per feed.lua call,
 * and marks the partition exhausted when a page comes back short. A lost connection or a
 * transient error (a timeout, a restart) is logged once per episode and retried with backoff
 * (DRV_OK, nothing fed); DRV_EINVAL is a source that cannot be fed (the table or a column
 * gone, a row over max_item_bytes), with why. DRV_ECURSOR as drv_feeder_fill. */
drv_err drv_pg_fill(drv_pgsrc *s, drv_queue *q, int p, drv_part_stat *st, int64_t want,
                    int64_t *fed, char *why, size_t whylen);

#endif
