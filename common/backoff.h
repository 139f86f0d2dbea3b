#ifndef DRV_BACKOFF_H
#define DRV_BACKOFF_H

#include <stdint.h>

/* One thing that keeps failing (a script error, a refused write, a reconnect): the time to
 * wait before the next try, doubling with jitter from 50 ms to 5 s, and one log line per
 * episode instead of one per try. Zeroed is ready (no failure yet).
 *
 *     int say;
 *     int64_t ms = drv_backoff_fail(&b, now, &say);
 *     if (say) drv_warn("%s failing: %s (repeating, backing off)", what, err);
 *     ... try again after ms ...
 *     int64_t n, t;
 *     if (drv_backoff_ok(&b, now, &n, &t)) drv_info("%s ok again after %lld failures in ..."); */
typedef struct drv_backoff {
    int64_t delay_ms; /* the last delay, 0 while things work */
    int64_t fails;    /* failures in this episode */
    int64_t since_ms; /* when the episode began */
} drv_backoff;

#define DRV_BACKOFF_MIN_MS 50
#define DRV_BACKOFF_MAX_MS 5000

/* One more failure at 'now'. Returns how long to wait before the next try (ms, at least 1);
 * *say is 1 for the first failure of an episode (say it), 0 for a repeat (say nothing). */
int64_t drv_backoff_fail(drv_backoff *b, int64_t now, int *say);
/* A success. Returns 1 when it ends an episode of failures (say so once), with how many
 * failures and how long it lasted; 0 when nothing was failing. */
int drv_backoff_ok(drv_backoff *b, int64_t now, int64_t *fails, int64_t *ms);
/* The two with the log lines: "WHAT failing: ERR (repeating, backing off)" at warn level,
 * once per episode, and "WHAT ok again after N failures in T s". */
int64_t drv_backoff_fail_log(drv_backoff *b, int64_t now, const char *what, const char *err);
void drv_backoff_ok_log(drv_backoff *b, int64_t now, const char *what);

#endif
