/* --otlp-endpoint: one span per item attempt, sent to an OpenTelemetry collector over OTLP/HTTP
 * JSON in batches by a thread of its own. Items never wait for it: spans go into a bounded
 * queue, and when the queue is full (the collector is slow or gone) new spans are dropped and
 * counted. */
#ifndef DRV_WORKER_OTLP_H
#define DRV_WORKER_OTLP_H

#include "trace.h"

#include <stddef.h>
#include <stdint.h>

typedef struct otlp otlp;

/* Starts the exporter thread. 'url' is the collector's traces endpoint; one without a path
 * gets /v1/traces. Returns NULL with 'why' on a bad URL or no memory. */
otlp *otlp_new(const char *url, const char *worker, char *why, size_t whylen);
/* Queues one attempt's span (start and end: wall clock, ns). 'error' is NULL for an ok
 * outcome. Never blocks on the collector. */
void otlp_span(otlp *o, const char *job, const char *item, size_t itemlen, int attempt,
               const trace_ctx *t, int64_t start_ns, int64_t end_ns, const char *outcome,
               const char *error);
/* Spans dropped so far: the queue was full or the collector refused or missed a batch. */
int64_t otlp_dropped(otlp *o);
/* Stops the thread after one last try (a few seconds at most) to send what is queued. */
void otlp_free(otlp *o);

#endif
