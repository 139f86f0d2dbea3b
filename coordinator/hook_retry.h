#ifndef DRV_HOOK_RETRY_H
#define DRV_HOOK_RETRY_H

/* When a callback (on_complete, on_dead) is tried again, and when it is given up: the decisions
 * of drover run's callback loop (run.c), kept apart from curl and Redis so unit tests can call
 * them (tests/unit/test_hook_retry.c). */

#include "err.h"

#include <stdint.h>

/* The longest a Retry-After header may hold a callback back (an hour). */
#define DRV_HOOK_RETRY_AFTER_MAX_MS 3600000

/* One callback's retry schedule: a delay that doubles per failure up to max_ms, drawn with
 * jitter over its upper half, or longer when the endpoint asks (Retry-After). */
typedef struct drv_hook_retry {
    int64_t first_ms, max_ms; /* --callback-backoff-ms, --callback-backoff-max-ms */
    int64_t backoff_ms;       /* the top of the next delay's range */
    int64_t next_try_ms;      /* when the next attempt is due; 0: now */
} drv_hook_retry;

/* A fresh schedule (no failure yet). A max below first is raised to first. */
void drv_hook_retry_init(drv_hook_retry *r, int64_t first_ms, int64_t max_ms);
/* 1 when an attempt is due at 'now'. */
int drv_hook_retry_due(const drv_hook_retry *r, int64_t now);
/* How long until the next attempt is due (0 when it is). */
int64_t drv_hook_retry_wait(const drv_hook_retry *r, int64_t now);
/* A failed attempt at 'now': returns the wait before the next, within [backoff/2, backoff]
 * with 'rnd' picking the point (any value: taken modulo the range), or the endpoint's
 * Retry-After when that is longer (at most an hour); then doubles the backoff up to max. */
int64_t drv_hook_retry_failed(drv_hook_retry *r, int64_t now, int64_t retry_after_ms, uint64_t rnd);

/* What an attempt does, given the job as read just before it. */
typedef enum drv_hook_step {
    DRV_HOOK_POST,    /* send it */
    DRV_HOOK_DONE,    /* sent before (its mark is in the job hash): nothing more */
    DRV_HOOK_GIVE_UP, /* the job was deleted or replaced: the callback is no longer wanted */
    DRV_HOOK_ERROR    /* the job could not be read: handle the error, then try again */
} drv_hook_step;

/* 'read' is how reading the job went (DRV_ENOJOB: gone), 'created_ms' the job read's and
 * 'want_created_ms' the one the callback is for, 'sent' its mark. */
drv_hook_step drv_hook_next_step(drv_err read, int64_t created_ms, int64_t want_created_ms,
                                 int sent);

#endif
