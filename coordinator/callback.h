#ifndef DRV_CALLBACK_H
#define DRV_CALLBACK_H

/* The coordinator's callbacks (a job spec's on_complete and on_dead): one JSON POST each,
 * retried by the caller until the endpoint answers 2xx. ${NAME} in the URL and headers is
 * resolved from the coordinator's environment when the hook is opened, so secrets never
 * reach Redis. */

#include "queue.h"

#include <stdint.h>

typedef struct drv_hook drv_hook;

/* Opens a hook from its canonical spec JSON ({"url","headers","timeout_ms"}). DRV_EINVAL with
 * 'why' naming a missing ${NAME}. Caller frees with drv_hook_free(). */
drv_err drv_hook_open(const char *spec_json, const char *name, drv_hook **out, char *why,
                      size_t whylen);
void drv_hook_free(drv_hook *h); /* NULL is a no-op */

/* Returns nonzero to abort a POST in flight (a stop signal, a lost lock). Called every 50 ms. */
typedef int (*drv_hook_alive)(void *ud);

/* POSTs 'body' (JSON) once with Content-Type: application/json and Idempotency-Key: 'key'.
 * DRV_OK on a 2xx. Otherwise DRV_EIO with 'why' (the status or curl's error) and
 * *retry_after_ms from a Retry-After header (0 when there is none). */
drv_err drv_hook_post(drv_hook *h, const char *body, const char *key, drv_hook_alive alive,
                      void *ud, int64_t *retry_after_ms, char *why, size_t whylen);

/* The JSON body of a callback: event "complete" ({"job","event","state","total","processed",
 * "dead","duplicates","failed_attempts","started_ms","finished_ms","duration_ms",
 * "first_errors"}) or "dead_over" (the same plus "threshold"). 'first_errors' holds up to 10
 * dead items ({"id","error"}). Caller frees with free(); NULL on a Redis error (*err set). */
char *drv_hook_summary(drv_queue *q, const drv_job *job, const char *event, drv_err *err);

#endif
