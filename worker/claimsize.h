/* How many items the worker asks for in one claim (issue 21): sized from what it observes, so
 * that an untuned worker is as fast as a hand-tuned one without holding much it has not
 * started. Pure arithmetic over what the loop (loop.c) reports, unit-tested in
 * tests/unit/test_claimsize.c; the caller passes the time. --batch K fixes the size instead.
 *
 * The worker wants enough queued items to keep its slots busy until the next claim comes
 * back, plus a little margin: rate x (claim round trip + horizon) queued, where the rate is
 * the items it finishes per second and the horizon a fraction of the job's lease (10 ms to
 * 100 ms). Because the horizon is longer than a round trip, a worker that is held back by its
 * claims (a no-op handler at 4 items per claim) sees its rate rise with each bigger claim, so
 * the size grows to the script's maximum within a few windows; a worker held back by its
 * handler (a command, a slow API) keeps about a horizon of work queued: a drain hands that
 * back, a crash strands that until the lease expires. */
#ifndef DRV_WORKER_CLAIMSIZE_H
#define DRV_WORKER_CLAIMSIZE_H

#include <stdint.h>

#define CLAIMSIZE_WINDOW_US 20000 /* the finish rate is measured over windows this long */

typedef struct claimsize {
    int max;           /* the most one claim asks for: DRV_BATCH_MAX, or --batch */
    int fixed;         /* --batch given: every claim asks for max, as before */
    double rate;       /* items finished per second (moving average), 0: not known yet */
    int64_t rtt_us;    /* claim round trip (moving average), 0: not known yet */
    int64_t win_start; /* the current window: since when (us), */
    int64_t win_done;  /* and how many items finished in it */
} claimsize;

void claimsize_init(claimsize *s, int max, int fixed);

/* n items finished at now_us (local monotonic microseconds). */
void claimsize_finished(claimsize *s, int64_t n, int64_t now_us);

/* A claim took us microseconds from the call to its reply. */
void claimsize_rtt(claimsize *s, int64_t us);

/* Items to keep queued (claimed, not started) for a job whose lease is lease_ms. */
int64_t claimsize_target(const claimsize *s, int64_t lease_ms);

/* How many items to ask for now, given the worker's slots (items that may run at once), what
 * runs and what waits queued, and the room left in its held array; 0: do not claim now.
 * Fixed: max while fewer than 'slots' wait and no more than 'slots' are held (the worker's
 * behaviour before sizing). Sized: once the queue is down to half its target (or empty with a
 * slot free), enough to fill the free slots and the target, between 1 and max. */
int claimsize_want(const claimsize *s, int slots, int running, int queued, int room,
                   int64_t lease_ms);

/* ---- idle partitions ------------------------------------------------------------------------ */

#define IDLE_PROBE_AFTER 3    /* empty claims in a row before a partition is only probed */
#define IDLE_PROBE_MS    1000 /* an idle job's partitions are probed about this often, */
#define IDLE_CLAIM_EVERY 30   /* and claimed from (recovering leases, retries) every Nth time */

/* How long a partition whose last 'empties' claims (>= 1) found nothing waits before the next:
 * idle_ms (--idle-ms) halved to whole with 'jitter' in [0, 1) for the first, doubling with
 * each after it up to IDLE_PROBE_MS, so that a fleet of idle workers does not poll Redis
 * --idle-ms apart on every partition. */
int64_t claimsize_idle_ms(int64_t idle_ms, int empties, double jitter);

#endif
