#ifndef DRV_METRICS_H
#define DRV_METRICS_H

/* Prometheus metrics: the text exposition format (version 0.0.4) of jobs and workers, as the
 * queue API reads them, and a small HTTP server (libmicrohttpd) that serves it to scrapers. */

#include "queue.h"

#include <stdio.h>
#include <sys/socket.h>

/* Writes the exposition of the jobs named in jobs[0..njobs) (every job in PREFIXjobs when
 * njobs is 0) and of the workers: every registered one, or with named jobs, those serving one
 * of them. Every family has its HELP and TYPE lines, and label values are escaped.
 * A named job that does not exist is skipped; *missing (when not NULL) counts them and 'why'
 * names the first. On failure the caller discards what was written (render into a buffer);
 * drv_queue_strerror(q, e) is the reason. */
drv_err drv_metrics_render(drv_queue *q, char *const *jobs, int njobs, FILE *out, int *missing,
                           char *why, size_t whylen);

/* Where the server listens: "HOST:PORT" or "[IPV6]:PORT". */
typedef struct drv_metrics_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[300]; /* as given, for messages */
} drv_metrics_addr;

/* Parses and resolves 'addr'. DRV_EINVAL with the reason in 'why' (a usage error). */
drv_err drv_metrics_addr_parse(const char *addr, drv_metrics_addr *out, char *why, size_t whylen);

typedef struct drv_metrics_srv drv_metrics_srv;

/* Binds 'addr' and serves GET /metrics from libmicrohttpd's own polling thread, rendering the
 * jobs named in jobs[0..njobs) (borrowed: they must outlive the server). 'q' is handed over:
 * only the server thread uses it from then on (a drv_queue is not thread-safe), and
 * drv_metrics_stop closes it. DRV_EIO with the reason in 'why' when the address cannot be
 * bound (in use, not local); 'q' is then closed too. */
drv_err drv_metrics_serve(const drv_metrics_addr *addr, drv_queue *q, char *const *jobs, int njobs,
                          drv_metrics_srv **out, char *why, size_t whylen);
/* Stops the server thread and closes its connection. NULL is a no-op. */
void drv_metrics_stop(drv_metrics_srv *s);

#endif
