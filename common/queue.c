/* The queue's plumbing: opening and closing, error text, reply readers and the one path every
 * script call takes (drvq_script). The operations live by concern in queue_jobs.c,
 * queue_parts.c, queue_leases.c, queue_workers.c, queue_limits.c and queue_dead.c. */
#include "queue_int.h"

#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- plumbing -------------------------------------------------------------------------------- */

int drv_prefix_valid(const char *prefix) {
    size_t n = strlen(prefix);
    return n <= 64 && strcspn(prefix, "{} \t\r\n") == n;
}

drv_err drv_queue_open(const drv_redis_cfg *cfg, const char *prefix, drv_queue **out, char *why,
                       size_t whylen) {
    if (!drv_prefix_valid(prefix)) {
        snprintf(why, whylen, "bad key prefix \"%s\": at most 64 bytes, no braces or spaces",
                 prefix);
        return DRV_EINVAL;
    }
    drv_queue *q = calloc(1, sizeof *q);
    if (!q) return DRV_ENOMEM;
    snprintf(q->prefix, sizeof q->prefix, "%s", prefix);
    drv_err e = drv_conn_open(cfg, &q->conn, why, whylen);
    if (e != DRV_OK) {
        free(q);
        return e;
    }
    *out = q;
    return DRV_OK;
}

void drv_queue_close(drv_queue *q) {
    if (!q) return;
    drv_conn_close(q->conn);
    free(q);
}

drv_err drv_queue_reconnect(drv_queue *q, char *why, size_t whylen) {
    return drv_conn_reconnect(q->conn, why, whylen);
}

int drv_queue_broken(const drv_queue *q) {
    return drv_conn_broken(q->conn);
}

const char *drv_queue_errstr(const drv_queue *q) {
    return drv_conn_errstr(q->conn);
}

const char *drv_queue_strerror(const drv_queue *q, drv_err e) {
    /* The failures whose text says more than their code (Redis's words, the address, the key
     * and field); every path returning one of them sets the text. The others (DRV_ENOJOB,
     * DRV_EPAUSED, ...) say all there is, and a script's "DRV_NOJOB KEY" is not for people. */
    int texted =
        e == DRV_EIO || e == DRV_EREPLY || e == DRV_EFULL || e == DRV_ECORRUPT || e == DRV_EINVAL;
    const char *text = q && texted ? drv_conn_errstr(q->conn) : "";
    return text[0] ? text : drv_strerror(e);
}

const char *drv_queue_addr(const drv_queue *q) {
    return drv_conn_addr(q->conn);
}

int64_t drvq_int(const redisReply *r) {
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return (int64_t)r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return 0;
}

int drvq_is_array(const redisReply *r, size_t min) {
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

static const char *reply_type(const redisReply *r) {
    switch (r ? r->type : -1) {
    case REDIS_REPLY_STRING:
        return "a string";
    case REDIS_REPLY_ARRAY:
        return "an array";
    case REDIS_REPLY_INTEGER:
        return "an integer";
    case REDIS_REPLY_NIL:
        return "nil";
    case REDIS_REPLY_STATUS:
        return "a status";
    default:
        return "something else";
    }
}

drv_err drvq_bad_reply(drv_queue *q, const char *what, const redisReply *r) {
    char msg[256];
    if (r && r->type == REDIS_REPLY_ARRAY)
        snprintf(msg, sizeof msg, "%s: unexpected reply (an array of %zu)", what, r->elements);
    else
        snprintf(msg, sizeof msg, "%s: unexpected reply (%s)", what, reply_type(r));
    drv_conn_set_errstr(q->conn, msg);
    return DRV_EREPLY;
}

/* The callers pass fixed lists shorter than DRVQ_ARGS_MAX (job_note_if: at most 32); one that
 * did not would lose its last arguments, which the script then refuses. */
void drvq_arg(drvq_args *a, const char *s) {
    if (a->n >= DRVQ_ARGS_MAX) return;
    a->v[a->n] = s;
    a->len[a->n++] = strlen(s);
}

void drvq_arg_i64(drvq_args *a, int64_t v) {
    if (a->n >= DRVQ_ARGS_MAX) return;
    snprintf(a->num[a->n], sizeof a->num[a->n], "%" PRId64, v);
    drvq_arg(a, a->num[a->n]);
}

static int shape_ok(const drvq_call *c, const redisReply *r) {
    switch (c->shape) {
    case DRVQ_INT:
        return r->type == REDIS_REPLY_INTEGER;
    case DRVQ_ARRAY:
        return drvq_is_array(r, c->min);
    case DRVQ_ANY:
        break;
    }
    return 1;
}

drv_err drvq_script(drv_queue *q, const drvq_call *c) {
    drv_part_keys pk;
    const char *const *keys = c->keys;
    const size_t *klens = c->klens;
    int nkeys = c->nkeys;
    size_t lens[8];
    if (!keys) {
        drv_keys_part(&pk, q->prefix, c->job, c->part);
        keys = pk.ptr, klens = pk.len, nkeys = DRV_PART_NKEYS;
    } else if (!klens) {
        if (nkeys > 8) { /* no script takes more than the partition keys */
            drv_conn_set_errstr(q->conn, "too many keys for a script call");
            return DRV_EINVAL;
        }
        for (int i = 0; i < nkeys; i++)
            lens[i] = strlen(keys[i]);
        klens = lens;
    }
    redisReply *r;
    drv_err e = drv_conn_script(q->conn, c->script, nkeys, (const char **)keys, klens, c->nargs,
                                (const char **)c->args, c->lens, &r);
    if (e) return e;
    if (!shape_ok(c, r)) {
        char what[64];
        snprintf(what, sizeof what, "lua/%s.lua", c->script);
        e = drvq_bad_reply(q, what, r);
    } else if (c->read) {
        e = c->read(q, r, c->out);
    }
    freeReplyObject(r);
    return e;
}

drv_err drvq_read_int(drv_queue *q, const redisReply *r, void *out) {
    (void)q;
    if (out) *(int64_t *)out = drvq_int(r);
    return DRV_OK;
}

drv_err drvq_add_int(drv_queue *q, const redisReply *r, void *out) {
    (void)q;
    *(int64_t *)out += drvq_int(r);
    return DRV_OK;
}

drv_err drvq_time(drv_queue *q, int64_t *ms) {
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "TIME");
    if (e) return e;
    if (!drvq_is_array(r, 2)) {
        e = drvq_bad_reply(q, "TIME", r);
        freeReplyObject(r);
        return e;
    }
    *ms = drvq_int(r->element[0]) * 1000 + drvq_int(r->element[1]) / 1000;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drvq_drain(drv_queue *q, int n) {
    drv_err first = DRV_OK;
    char text[512] = ""; /* the first failure's: later replies may fail too */
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        drv_err e = drv_conn_reply(q->conn, &r);
        if (r) freeReplyObject(r);
        if (e == DRV_EIO) return e;
        if (e && !first) {
            first = e;
            snprintf(text, sizeof text, "%s", drv_conn_errstr(q->conn));
        }
    }
    if (first) drv_conn_set_errstr(q->conn, text);
    return first;
}

/* Sends CMD BUCKET [ARG] for each bucket of partition k's string-id done record
 * (PREFIX{J.p}:done:B for B below the state hash's done_buckets; lua/lib/done.lua), pipelined and
 * read back a thousand at a time. Their count is read first: the caller deletes or expires the
 * state hash after them. A partition without buckets (a range, or a job from before them) has
 * nothing to do. */
drv_err drvq_each_bucket(drv_queue *q, const drv_part_keys *k, const char *cmd, const char *arg) {
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "HGET %s done_buckets", k->ptr[DRV_K_STATE]);
    if (e) return e;
    int64_t nb = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    for (int64_t b = 0; b < nb;) {
        int n = 0;
        for (; b < nb && n < 1000; b++, n++) {
            char key[DRV_KEY_MAX + 24];
            drv_key_done_bucket(key, sizeof key, k, (long long)b);
            const char *argv[] = {cmd, key, arg};
            if ((e = drv_conn_append(q->conn, arg ? 3 : 2, argv, NULL))) return e;
        }
        if ((e = drvq_drain(q, n))) return e;
    }
    return DRV_OK;
}

drv_err drvq_wrongtype(drv_queue *q, drv_err e, const char *key) {
    if (e != DRV_EREPLY || strncmp(drv_conn_errstr(q->conn), "WRONGTYPE", 9) != 0) return e;
    char msg[512];
    snprintf(msg, sizeof msg, "%s: WRONGTYPE", key);
    drv_conn_set_errstr(q->conn, msg);
    return DRV_ECORRUPT;
}

const char *drvq_hfield(const redisReply *r, const char *name) {
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->type == REDIS_REPLY_STRING ? r->element[i + 1]->str : NULL;
    return NULL;
}

int64_t drvq_hint(const redisReply *r, const char *name, int64_t def) {
    const char *v = drvq_hfield(r, name);
    return v ? strtoll(v, NULL, 10) : def;
}

drv_err drvq_hnum(drv_queue *q, const redisReply *r, const char *key, const char *name, int64_t def,
                  int64_t lo, int64_t hi, int64_t *out) {
    const char *v = drvq_hfield(r, name);
    long long n;
    if (!v) {
        *out = def;
        return DRV_OK;
    }
    if (drv_parse_ll(v, lo, hi, &n) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "%s: field %s: expected a whole number from %lld to %lld, got \"%.40s\"", key,
                 name, (long long)lo, (long long)hi, v);
        drv_conn_set_errstr(q->conn, msg);
        return DRV_ECORRUPT;
    }
    *out = n;
    return DRV_OK;
}

drv_err drvq_corrupt(drv_queue *q, const char *key, const char *name, const char *what) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s: field %s: %s", key, name, what);
    drv_conn_set_errstr(q->conn, msg);
    return DRV_ECORRUPT;
}
