/* Rebalancing: splitting the rest of a slow partition's range into a new partition.
 *
 * A split touches three hash tags (the new partition, the old one, the job), so it is three
 * script calls, ordered so that a coordinator killed between any two leaves a state the next
 * one completes (docs/ARCHITECTURE.md, invariants 1 and 3: no id lost, none fed twice):
 *
 *   1. split_new:  {J.N}:state = start N0, end E, cursor N0, split_from S (N = the count)
 *                  Invisible: nothing reads, feeds or claims partition N while the count is N.
 *   2. split_cut:  {J.S}:state end = N0 - 1, cursor_max = N0, if its end is still E and its
 *                  cursor still <= N0 (CAS). From here the ids N0..E belong to partition N
 *                  only; feed.lua refuses to move S's cursor past cursor_max.
 *   3. split_grow: {J}:job partitions = N + 1 (CAS on N).
 *
 * Killed after 1: partition N exists, S still ends at E: resume drops N (nothing was fed or
 * claimed there). Killed after 2: S ends at N0 - 1: resume raises the count. Killed after 3:
 * nothing to do. resume runs before the first feed of every start, takeover and reconnect. */
#include "rebalance.h"

#include "log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

drv_err drv_rebalance_resume(drv_queue *q, const drv_job *job, int *count) {
    int n;
    drv_err e = drv_queue_job_partitions(q, job->id, &n);
    if (e) return e;
    if (job->spec.source != DRV_SRC_RANGE || n < 1 || n >= DRV_PARTITIONS_MAX) {
        *count = n;
        return DRV_OK;
    }
    /* Partitions 0..n: n, one past the last visible one, is the new partition of a split that
     * was cut short, if there is one. */
    drv_part_stat *all = calloc((size_t)n + 1, sizeof *all);
    if (!all) return DRV_ENOMEM;
    if ((e = drv_queue_stats(q, job->id, n + 1, all))) goto out;
    const drv_part_stat *s = &all[n];
    int from = s->split_from;
    if (s->st == DRV_JOB_MISSING) {
        /* no split in flight */
    } else if (from < 0 || from >= n) {
        drv_warn("job %s: partition %d exists beyond the partition count without a valid "
                 "split_from; not splitting into it",
                 job->id, n);
    } else if (all[from].end == s->start - 1) {
        /* Step 2 landed: the ids s->start..s->end are partition n's alone. */
        if ((e = drv_queue_split_grow(q, job->id, n))) goto out;
        drv_info("job %s: finished an interrupted split: partition %d takes %" PRId64 "..%" PRId64
                 " from partition %d",
                 job->id, n, s->start, s->end, from);
        n++;
    } else {
        /* Step 2 never landed: partition 'from' still owns the ids; nothing ever fed n. */
        if ((e = drv_queue_split_drop(q, job->id, n))) goto out;
        drv_info("job %s: undid an interrupted split of partition %d (it was never cut)", job->id,
                 from);
    }
    *count = n;
out:
    free(all);
    return e;
}

int drv_rebalance_pick(const drv_job *job, const drv_part_stat *st, int64_t *cut) {
    if (job->spec.source != DRV_SRC_RANGE || job->partitions >= DRV_PARTITIONS_MAX) return -1;
    int drained = 0, best = -1;
    int64_t best_left = 0;
    for (int p = 0; p < job->partitions; p++) {
        const drv_part_stat *s = &st[p];
        if (s->exhausted && !s->pending && !s->leased && !s->retrying) {
            drained++;
            continue;
        }
        if (s->exhausted) continue;
        int64_t left = s->end - strtoll(s->cursor, NULL, 10) + 1;
        if (left > best_left) best_left = left, best = p;
    }
    if (drained == 0 || job->partitions - drained >= job->spec.partitions) return -1;
    if (best < 0 || best_left <= 2 * job->spec.window) return -1;
    *cut = strtoll(st[best].cursor, NULL, 10) + best_left / 2;
    return best;
}

drv_err drv_rebalance_split(drv_queue *q, const drv_job *job, drv_part_stat *st, int from,
                            int64_t cut, const char *state) {
    int to = job->partitions;
    int64_t end = st[from].end;
    drv_err e = drv_queue_split_new(q, &job->spec, from, to, cut, end, state);
    if (e) return e;
    int exhausted = 0;
    e = drv_queue_split_cut(q, job->id, from, end, cut, &exhausted);
    if (e == DRV_ECURSOR) {
        /* The partition moved (fed past the cut, or cut already): undo step 1. */
        drv_err d = drv_queue_split_drop(q, job->id, to);
        return d ? d : e;
    }
    if (e) return e;
    st[from].end = cut - 1;
    if (exhausted) st[from].exhausted = 1;
    if ((e = drv_queue_split_grow(q, job->id, to))) return e;
    drv_info("job %s: split partition %d at %" PRId64 ": partition %d takes %" PRId64 "..%" PRId64,
             job->id, from, cut, to, cut, end);
    return DRV_OK;
}
