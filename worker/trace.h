/* W3C trace context (https://www.w3.org/TR/trace-context/) for item attempts: each attempt is a
 * span of its own, continuing the trace of the item's "traceparent" field when it has one. */
#ifndef DRV_WORKER_TRACE_H
#define DRV_WORKER_TRACE_H

#include <stddef.h>

#define TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */

typedef struct trace_ctx {
    char trace_id[33];
    char span_id[17];   /* this attempt's span */
    char parent_id[17]; /* the span of the item's traceparent; "" for a new trace */
    char traceparent[TRACEPARENT_LEN + 1]; /* what the handler gets: the attempt's span */
} trace_ctx;

/* Parses a traceparent header value. Returns 0 with the trace id, the parent span id and the
 * flags (2 hex digits), or -1 when it is not a valid one (the spec's rules: lowercase hex, a
 * version other than ff, exactly 55 characters for version 00, ids not all zeros). */
int trace_parse(const char *tp, size_t len, char trace_id[33], char parent_id[17], char flags[3]);

/* A new attempt: continues the trace of the item's "traceparent" field when the item is a JSON
 * object holding a valid one, else starts a new trace (sampled). The ids are random (getrandom,
 * through a pool that is not thread safe: call it from one thread). */
void trace_begin(trace_ctx *t, const char *item, size_t len);

#endif
