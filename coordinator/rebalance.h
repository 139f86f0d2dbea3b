#ifndef DRV_REBALANCE_H
#define DRV_REBALANCE_H

/* Rebalancing (README.md, "Rebalancing"): when a partition is drained and another still has
 * much of its range left, the rest of that range is split into a new partition, so idle
 * workers are not left waiting behind one slow partition. Range sources only. */

#include "queue.h"

/* Finishes (step 3) or undoes (drops the new partition) a split that a killed coordinator
 * left half-made, so it must run before anything is fed after a start, a takeover or an
 * outage. *count is the job's partition count in Redis afterwards, which may be more than
 * job->partitions (a split by an earlier coordinator): the caller grows to it. */
drv_err drv_rebalance_resume(drv_queue *q, const drv_job *job, int *count);

/* The rule: with at least one partition drained (source exhausted, nothing pending, leased or
 * retrying) and fewer than spec.partitions partitions not drained, the partition with the most
 * ids not yet fed is split, if that is more than 2 x window ids, at the middle of what it has
 * left. Returns the partition to split and sets *cut (the new partition's first id), or -1. */
int drv_rebalance_pick(const drv_job *job, const drv_part_stat *st, int64_t *cut);

/* Splits partition 'from' at 'cut' into a new partition numbered job->partitions, in the three
 * steps of drv_queue_split_new/cut/grow. On DRV_OK the job has one more partition and
 * st[from] has its new end. DRV_ECURSOR: the partition moved under the split (it was undone;
 * re-read and decide again). Any other error may leave a half-made split that
 * drv_rebalance_resume finishes. */
drv_err drv_rebalance_split(drv_queue *q, const drv_job *job, drv_part_stat *st, int from,
                            int64_t cut, const char *state);

#endif
