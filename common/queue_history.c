/* A job's progress history: the samples drover run writes (every 10 s by default, its
 * --history-ms) and drover web draws. A capped list under the job's hash tag, newest first. */
#include "queue_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

drv_err drv_queue_history_add(drv_queue *q, const char *job, const drv_history_sample *s) {
    char hk[DRV_KEY_MAX], v[96];
    drv_key_job(hk, sizeof hk, q->prefix, job, "history");
    snprintf(v, sizeof v, "%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64, s->at_ms, s->done,
             s->dead, s->rate_milli);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "LPUSH %s %s", hk, v);
    if (e) return drvq_wrongtype(q, e, hk);
    freeReplyObject(r);
    /* A failure here leaves one sample too many until the next push trims it. */
    if ((e = drv_conn_cmdf(q->conn, &r, "LTRIM %s 0 %d", hk, DRV_HISTORY_MAX - 1))) return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_history(drv_queue *q, const char *job, int max, drv_history_sample **out,
                          size_t *n) {
    char hk[DRV_KEY_MAX];
    drv_key_job(hk, sizeof hk, q->prefix, job, "history");
    *out = NULL;
    *n = 0;
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "LRANGE %s 0 %d", hk, max - 1);
    if (e) return drvq_wrongtype(q, e, hk);
    drv_history_sample *s = calloc(r->elements ? r->elements : 1, sizeof *s);
    if (!s) {
        freeReplyObject(r);
        return DRV_ENOMEM;
    }
    /* Oldest first, as a chart draws them; a sample that does not parse is skipped. */
    size_t k = 0;
    for (size_t i = r->elements; i-- > 0;) {
        const redisReply *x = r->element[i];
        if (x->type != REDIS_REPLY_STRING) continue;
        drv_history_sample *o = &s[k];
        if (sscanf(x->str, "%" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64, &o->at_ms, &o->done,
                   &o->dead, &o->rate_milli) == 4)
            k++;
    }
    freeReplyObject(r);
    *out = s;
    *n = k;
    return DRV_OK;
}
