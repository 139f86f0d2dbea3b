/* Fleet-wide limits: the job's limits hash (PREFIX{J}:limits), admission under its rate and
 * in-flight cap (lua/admit.lua), reading and changing them. */
#include "queue_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the job's limits hash from 'spec'; 'fill' also fills the bucket (a new job). */
drv_err drvq_write_limits(drv_queue *q, const drv_spec *spec, int fill) {
    char mk[DRV_KEY_MAX];
    drv_key_job(mk, sizeof mk, q->prefix, spec->id, "limits");
    num_t v[7];
    snprintf(v[0], sizeof v[0], "%" PRId64, spec->rate_per_s);
    snprintf(v[1], sizeof v[1], "%" PRId64, spec->rate_burst > 0 ? spec->rate_burst : 1);
    snprintf(v[2], sizeof v[2], "%" PRId64, spec->max_in_flight);
    snprintf(v[3], sizeof v[3], "%" PRId64, spec->lease_ms);
    snprintf(v[4], sizeof v[4], "%" PRId64, spec->weight);
    /* Only an HTTP handler's answers say "too much" (429, Retry-After): the adaptive limit is
     * for those jobs; a worker's own command has none to adapt to. */
    snprintf(v[5], sizeof v[5], "%d", spec->adaptive && spec->handler[0]);
    snprintf(v[6], sizeof v[6], "%" PRId64, spec->adaptive_start);
    const char *argv[] = {"HSET",        mk,   "per_second",    v[0], "burst",  v[1],
                          "lease_ms",    v[3], "max_in_flight", v[2], "weight", v[4],
                          "adaptive",    v[5], "a_start",       v[6], "tokens", v[1],
                          "refilled_ms", "0"};
    /* Without 'fill' the bucket keeps its tokens (capped at the new burst by admit.lua). */
    int argc = fill ? 18 : 16;
    redisReply *r;
    drv_err e = drv_conn_cmd(q->conn, argc, argv, NULL, &r);
    if (!e) freeReplyObject(r);
    return e;
}

/* lua/admit.lua answers Redis time, the items granted and how long to wait for more. */
static drv_err read_admit(drv_queue *q, const redisReply *r, void *ud) {
    (void)q;
    drv_admit *out = ud;
    out->now_ms = drvq_int(r->element[0]);
    out->granted = drvq_int(r->element[1]);
    out->wait_ms = drvq_int(r->element[2]);
    return DRV_OK;
}

drv_err drv_queue_admit(drv_queue *q, const char *job, const char *worker, int64_t want,
                        int64_t held, int64_t unused, drv_admit *out) {
    return drv_queue_admit_answers(q, job, worker, want, held, unused, 0, 0, out);
}

drv_err drv_queue_admit_answers(drv_queue *q, const char *job, const char *worker, int64_t want,
                                int64_t held, int64_t unused, int64_t bad, int64_t good,
                                drv_admit *out) {
    char mk[DRV_KEY_MAX];
    drv_key_job(mk, sizeof mk, q->prefix, job, "limits");
    drvq_args a = {0};
    drvq_arg(&a, worker);
    drvq_arg_i64(&a, want);
    drvq_arg_i64(&a, held);
    drvq_arg_i64(&a, unused);
    drvq_arg_i64(&a, bad);
    drvq_arg_i64(&a, good);
    const char *keys[] = {mk};
    return drvq_script(q, &(drvq_call){.script = "admit",
                                       .nkeys = 1,
                                       .keys = keys,
                                       .nargs = a.n,
                                       .args = a.v,
                                       .lens = a.len,
                                       .shape = DRVQ_ARRAY,
                                       .min = 3,
                                       .read = read_admit,
                                       .out = out});
}

/* ---- limits ---------------------------------------------------------------------------------- */

drv_err drv_queue_limits_get(drv_queue *q, const char *job, drv_limits *out) {
    char mk[DRV_KEY_MAX];
    drv_key_job(mk, sizeof mk, q->prefix, job, "limits");
    int64_t now;
    drv_err e = drvq_time(q, &now);
    if (e) return e;
    redisReply *r;
    if ((e = drv_conn_cmdf(q->conn, &r, "HGETALL %s", mk))) return e;
    drv_limits l;
    memset(&l, 0, sizeof l);
    if (drvq_is_array(r, 2)) {
        l.present = 1;
        l.per_second = drvq_hint(r, "per_second", 0);
        l.burst = drvq_hint(r, "burst", 0);
        l.max_in_flight = drvq_hint(r, "max_in_flight", 0);
        l.weight = drvq_hint(r, "weight", 1);
        l.adaptive = drvq_hint(r, "adaptive", 0);
        l.limit = drvq_hint(r, "a_limit", 0);
        const char *t = drvq_hfield(r, "tokens");
        l.tokens = t ? (int64_t)strtod(t, NULL) : 0;
        int64_t lease_ms = drvq_hint(r, "lease_ms", 30000);
        /* The same freshness rule as admit.lua. */
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *k = r->element[i], *v = r->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                strncmp(k->str, "w:", 2) != 0)
                continue;
            const char *colon = strchr(v->str, ':');
            if (!colon || strtoll(colon + 1, NULL, 10) + lease_ms + 1000 < now) continue;
            l.in_flight += strtoll(v->str, NULL, 10);
            l.workers++;
        }
    }
    freeReplyObject(r);
    *out = l;
    return DRV_OK;
}

drv_err drv_queue_limits_set(drv_queue *q, const drv_spec *spec) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, spec->id, "job");
    char *json = drv_spec_to_json(spec);
    if (!json) return DRV_ENOMEM;
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "MULTI");
    if (e) goto out;
    freeReplyObject(r);
    if ((e = drv_conn_cmdf(q->conn, &r, "HSET %s spec %s", jk, json))) goto discard;
    freeReplyObject(r);
    if ((e = drvq_write_limits(q, spec, 0))) goto discard;
    if ((e = drv_conn_cmdf(q->conn, &r, "EXEC"))) goto out;
    /* EXEC answers nil when the transaction was aborted, an array otherwise. */
    if (r->type != REDIS_REPLY_ARRAY) e = drvq_bad_reply(q, "EXEC", r);
    freeReplyObject(r);
    goto out;
discard:
    if (e != DRV_EIO) {
        char text[512]; /* the failure's, not DISCARD's */
        snprintf(text, sizeof text, "%s", drv_conn_errstr(q->conn));
        if (drv_conn_cmdf(q->conn, &r, "DISCARD") == DRV_OK) freeReplyObject(r);
        drv_conn_set_errstr(q->conn, text);
    }
out:
    free(json);
    return e;
}
