#include "backoff.h"

#include "clock.h"
#include "log.h"

#include <inttypes.h>

int64_t drv_backoff_fail(drv_backoff *b, int64_t now, int *say) {
    *say = b->fails == 0;
    if (b->fails == 0) {
        b->since_ms = now;
        b->delay_ms = DRV_BACKOFF_MIN_MS;
    } else {
        b->delay_ms = b->delay_ms * 2 > DRV_BACKOFF_MAX_MS ? DRV_BACKOFF_MAX_MS : b->delay_ms * 2;
    }
    b->fails++;
    /* Full jitter over the upper half: workers failing together spread out. */
    return b->delay_ms / 2 + (int64_t)drv_rand((uint64_t)(b->delay_ms / 2) + 1);
}

int drv_backoff_ok(drv_backoff *b, int64_t now, int64_t *fails, int64_t *ms) {
    if (b->fails == 0) return 0;
    if (fails) *fails = b->fails;
    if (ms) *ms = now - b->since_ms;
    b->fails = 0;
    b->delay_ms = 0;
    return 1;
}

int64_t drv_backoff_fail_log(drv_backoff *b, int64_t now, const char *what, const char *err) {
    int say;
    int64_t ms = drv_backoff_fail(b, now, &say);
    if (say) drv_warn("%s failing: %s (repeating, backing off)", what, err);
    return ms;
}

void drv_backoff_ok_log(drv_backoff *b, int64_t now, const char *what) {
    int64_t n, ms;
    if (drv_backoff_ok(b, now, &n, &ms))
        drv_info("%s ok again after %" PRId64 " failures in %.1f s", what, n, (double)ms / 1000.0);
}
