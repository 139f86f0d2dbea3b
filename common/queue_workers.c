/* Workers: the registry of heartbeats (PREFIX{workers}, PREFIX{workers}:ID), a clean exit,
 * draining one, and listing them. */
#include "queue_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKER_TTL_S 86400 /* a worker's hash outlives its last heartbeat by a day */

static void worker_keys(const drv_queue *q, const char *worker, char *zk, char *hk) {
    drv_key_workers(zk, DRV_KEY_MAX, q->prefix);
    drv_key_worker(hk, DRV_WORKER_KEY_MAX, q->prefix, worker);
}

/* lua/beat.lua answers Redis time and whether an operator asked the worker to drain. */
struct beat_out {
    int *drain;
    int64_t *now_ms;
};

static drv_err read_beat(drv_queue *q, const redisReply *r, void *ud) {
    (void)q;
    struct beat_out *o = ud;
    if (o->now_ms) *o->now_ms = drvq_int(r->element[0]);
    if (o->drain) *o->drain = drvq_int(r->element[1]) == 1;
    return DRV_OK;
}

drv_err drv_queue_heartbeat(drv_queue *q, const drv_worker_info *w, int *drain, int64_t *now_ms) {
    char zk[DRV_KEY_MAX], hk[DRV_WORKER_KEY_MAX];
    worker_keys(q, w->id, zk, hk);
    num_t pid, inf, qd, dn, fl, sd, lease, ttl;
    snprintf(pid, sizeof pid, "%" PRId64, w->pid);
    snprintf(inf, sizeof inf, "%" PRId64, w->in_flight);
    snprintf(qd, sizeof qd, "%" PRId64, w->queued);
    snprintf(dn, sizeof dn, "%" PRId64, w->done);
    snprintf(fl, sizeof fl, "%" PRId64, w->failed);
    snprintf(sd, sizeof sd, "%" PRId64, w->spans_dropped);
    snprintf(lease, sizeof lease, "%" PRId64, w->lease_ms);
    snprintf(ttl, sizeof ttl, "%d", WORKER_TTL_S);
    const char *args[] = {w->id,      ttl,        "host",  w->host,  "pid",           pid,
                          "version",  w->version, "jobs",  w->jobs,  "in_flight",     inf,
                          "queued",   qd,         "done",  dn,       "failed",        fl,
                          "lease_ms", lease,      "state", w->state, "spans_dropped", sd};
    size_t n = sizeof args / sizeof *args, lens[sizeof args / sizeof *args];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(args[i]);
    const char *keys[] = {zk, hk};
    struct beat_out o = {drain, now_ms};
    return drvq_script(q, &(drvq_call){.script = "beat",
                                       .nkeys = 2,
                                       .keys = keys,
                                       .nargs = (int)n,
                                       .args = args,
                                       .lens = lens,
                                       .shape = DRVQ_ARRAY,
                                       .min = 2,
                                       .read = read_beat,
                                       .out = &o});
}

drv_err drv_queue_worker_gone(drv_queue *q, const char *worker) {
    char zk[DRV_KEY_MAX], hk[DRV_WORKER_KEY_MAX];
    worker_keys(q, worker, zk, hk);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZREM %s %s", zk, worker);
    if (!e) freeReplyObject(r);
    if (!e && !(e = drv_conn_cmdf(q->conn, &r, "DEL %s", hk))) freeReplyObject(r);
    return e;
}

drv_err drv_queue_worker_drain(drv_queue *q, const char *worker) {
    char zk[DRV_KEY_MAX], hk[DRV_WORKER_KEY_MAX];
    worker_keys(q, worker, zk, hk);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "EXISTS %s", hk);
    if (e) return e;
    int exists = drvq_int(r) == 1;
    freeReplyObject(r);
    if (!exists) return DRV_ENOJOB;
    if ((e = drv_conn_cmdf(q->conn, &r, "HSET %s drain 1", hk))) return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_workers(drv_queue *q, drv_worker_info **out, size_t *n, int64_t *now_ms) {
    char zk[DRV_KEY_MAX], hk[DRV_WORKER_KEY_MAX];
    worker_keys(q, "", zk, hk);
    int64_t now;
    drv_err e = drvq_time(q, &now);
    if (e) return e;
    redisReply *ids;
    if ((e = drv_conn_cmdf(q->conn, &ids, "ZRANGE %s 0 -1", zk))) return e;
    drv_worker_info *w = calloc(ids->elements + 1, sizeof *w);
    size_t k = 0;
    if (!w) e = DRV_ENOMEM;
    for (size_t i = 0; !e && i < ids->elements; i++) {
        const char *id = ids->element[i]->str;
        worker_keys(q, id, zk, hk);
        redisReply *h;
        if ((e = drv_conn_cmdf(q->conn, &h, "HGETALL %s", hk))) break;
        if (!drvq_is_array(h, 2)) { /* its hash expired: a worker gone for a day */
            freeReplyObject(h);
            if ((e = drv_conn_cmdf(q->conn, &h, "ZREM %s %s", zk, id))) break;
            freeReplyObject(h);
            continue;
        }
        drv_worker_info *x = &w[k++];
        snprintf(x->id, sizeof x->id, "%s", id);
#define STR_FIELD(f) snprintf(x->f, sizeof x->f, "%s", drvq_hfield(h, #f) ? drvq_hfield(h, #f) : "")
        STR_FIELD(host);
        STR_FIELD(version);
        STR_FIELD(jobs);
        STR_FIELD(state);
#undef STR_FIELD
        x->pid = drvq_hint(h, "pid", 0);
        x->in_flight = drvq_hint(h, "in_flight", 0);
        x->queued = drvq_hint(h, "queued", 0);
        x->done = drvq_hint(h, "done", 0);
        x->failed = drvq_hint(h, "failed", 0);
        x->spans_dropped = drvq_hint(h, "spans_dropped", 0);
        x->lease_ms = drvq_hint(h, "lease_ms", 30000);
        x->started_ms = drvq_hint(h, "started_ms", 0);
        x->beat_ms = drvq_hint(h, "beat_ms", 0);
        if (drvq_hint(h, "drain", 0) == 1 && strcmp(x->state, "running") == 0)
            snprintf(x->state, sizeof x->state, "draining");
        freeReplyObject(h);
    }
    freeReplyObject(ids);
    if (e) {
        free(w);
        return e;
    }
    *out = w;
    *n = k;
    if (now_ms) *now_ms = now;
    return DRV_OK;
}
