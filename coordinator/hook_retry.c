/* Callback retries (hook_retry.h): pure decisions, no I/O. */
#include "hook_retry.h"

void drv_hook_retry_init(drv_hook_retry *r, int64_t first_ms, int64_t max_ms) {
    r->first_ms = first_ms;
    r->max_ms = max_ms < first_ms ? first_ms : max_ms;
    r->backoff_ms = first_ms;
    r->next_try_ms = 0;
}

int drv_hook_retry_due(const drv_hook_retry *r, int64_t now) {
    return now >= r->next_try_ms;
}

int64_t drv_hook_retry_wait(const drv_hook_retry *r, int64_t now) {
    return now >= r->next_try_ms ? 0 : r->next_try_ms - now;
}

int64_t drv_hook_retry_failed(drv_hook_retry *r, int64_t now, int64_t retry_after_ms,
                              uint64_t rnd) {
    /* Jitter over the upper half: coordinators of many jobs failing together spread out. */
    int64_t half = r->backoff_ms / 2;
    int64_t wait = half + (int64_t)(rnd % ((uint64_t)half + 1));
    if (retry_after_ms > wait)
        wait = retry_after_ms < DRV_HOOK_RETRY_AFTER_MAX_MS ? retry_after_ms
                                                            : DRV_HOOK_RETRY_AFTER_MAX_MS;
    r->next_try_ms = now + wait;
    r->backoff_ms = r->backoff_ms * 2 > r->max_ms ? r->max_ms : r->backoff_ms * 2;
    return wait;
}

drv_hook_step drv_hook_next_step(drv_err read, int64_t created_ms, int64_t want_created_ms,
                                 int sent) {
    if (read == DRV_ENOJOB || (read == DRV_OK && created_ms != want_created_ms))
        return DRV_HOOK_GIVE_UP;
    if (read != DRV_OK) return DRV_HOOK_ERROR;
    return sent ? DRV_HOOK_DONE : DRV_HOOK_POST;
}
