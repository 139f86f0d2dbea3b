/* Dead items and kept results: reading them (HSCAN, never a walk of a whole large hash in one
 * reply) and reviving dead items. */
#include "queue_int.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HSCANs hash 'which' (a partition key index) of partition p, calling page on each page's
 * (field, value) pairs. */
static drv_err scan_hash(drv_queue *q, const char *job, int p, int which,
                         drv_err (*page)(drv_queue *q, redisReply *kv, void *ud), void *ud) {
    drv_part_keys k;
    drv_keys_part(&k, q->prefix, job, p);
    char cursor[32] = "0";
    do {
        redisReply *r;
        drv_err e = drv_conn_cmdf(q->conn, &r, "HSCAN %s %s COUNT 500", k.ptr[which], cursor);
        if (e) return e;
        if (!drvq_is_array(r, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            e = drvq_bad_reply(q, "HSCAN", r);
            freeReplyObject(r);
            return e;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        e = page(q, r->element[1], ud);
        freeReplyObject(r);
        if (e) return e;
    } while (strcmp(cursor, "0") != 0);
    return DRV_OK;
}

struct pair_each {
    void (*fn)(const char *, size_t, const char *, size_t, void *);
    void *ud;
};

static drv_err pair_page(drv_queue *q, redisReply *kv, void *ud) {
    (void)q;
    struct pair_each *d = ud;
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        d->fn(kv->element[i]->str, kv->element[i]->len, kv->element[i + 1]->str,
              kv->element[i + 1]->len, d->ud);
    return DRV_OK;
}

drv_err drv_queue_dead_each(drv_queue *q, const char *job, int p,
                            void (*fn)(const char *id, size_t idlen, const char *err, size_t errlen,
                                       void *ud),
                            void *ud) {
    struct pair_each d = {fn, ud};
    return scan_hash(q, job, p, DRV_K_DEAD, pair_page, &d);
}

drv_err drv_queue_dead_page(
    drv_queue *q, const char *job, int nparts, int max, int *p, char cursor[32],
    void (*fn)(const char *id, size_t idlen, const char *err, size_t errlen, void *ud), void *ud) {
    struct pair_each d = {fn, ud};
    int got = 0;
    while (*p < nparts && got < max) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job, *p);
        redisReply *r;
        drv_err e = drv_conn_cmdf(q->conn, &r, "HSCAN %s %s COUNT %d", k.ptr[DRV_K_DEAD], cursor,
                                  max - got);
        if (e) return e;
        if (!drvq_is_array(r, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            e = drvq_bad_reply(q, "HSCAN", r);
            freeReplyObject(r);
            return e;
        }
        got += (int)(r->element[1]->elements / 2);
        pair_page(q, r->element[1], &d);
        if (strcmp(r->element[0]->str, "0") == 0) {
            ++*p, snprintf(cursor, 32, "0");
        } else {
            snprintf(cursor, 32, "%s", r->element[0]->str);
        }
        freeReplyObject(r);
    }
    return DRV_OK;
}

drv_err drv_queue_dead_first(drv_queue *q, const char *job, int nparts, int max,
                             void (*fn)(const char *id, size_t idlen, const char *err,
                                        size_t errlen, void *ud),
                             void *ud) {
    int got = 0;
    for (int p = 0; p < nparts && got < max; p++) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job, p);
        redisReply *r;
        drv_err e = drv_conn_cmdf(q->conn, &r, "HSCAN %s 0 COUNT %d", k.ptr[DRV_K_DEAD], max);
        if (e) return e;
        if (!drvq_is_array(r, 2) || r->element[1]->type != REDIS_REPLY_ARRAY) {
            e = drvq_bad_reply(q, "HSCAN", r);
            freeReplyObject(r);
            return e;
        }
        redisReply *kv = r->element[1];
        for (size_t i = 0; i + 1 < kv->elements && got < max; i += 2, got++)
            fn(kv->element[i]->str, kv->element[i]->len, kv->element[i + 1]->str,
               kv->element[i + 1]->len, ud);
        freeReplyObject(r);
    }
    return DRV_OK;
}

drv_err drv_queue_results_each(drv_queue *q, const char *job, int p,
                               void (*fn)(const char *id, size_t idlen, const char *resp,
                                          size_t rlen, void *ud),
                               void *ud) {
    struct pair_each d = {fn, ud};
    return scan_hash(q, job, p, DRV_K_RESULTS, pair_page, &d);
}

struct revive_ctx {
    const char *job;
    int p;
    const char *match; /* only the items whose error holds this (NULL: all) */
    int64_t revived;
};

/* 1 if the dead item's error record (JSON) has an "error" text holding 'match'. */
static int error_matches(const redisReply *err, const char *match) {
    cJSON *o = cJSON_ParseWithLength(err->str, err->len);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "error"));
    int yes = text && strstr(text, match) != NULL;
    cJSON_Delete(o);
    return yes;
}

static drv_err revive_args(drv_queue *q, struct revive_ctx *c, const char **args,
                           const size_t *lens, size_t n) {
    drv_err e = DRV_OK;
    for (size_t off = 0; off < n && !e; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        e = drvq_script(q, &(drvq_call){.script = "revive",
                                        .job = c->job,
                                        .part = c->p,
                                        .nargs = (int)m,
                                        .args = args + off,
                                        .lens = lens + off,
                                        .read = drvq_add_int,
                                        .out = &c->revived});
    }
    return e;
}

static drv_err revive_page(drv_queue *q, redisReply *kv, void *ud) {
    struct revive_ctx *c = ud;
    size_t n = kv->elements / 2, k = 0;
    if (n == 0) return DRV_OK;
    const char **args = malloc(n * sizeof *args);
    size_t *lens = malloc(n * sizeof *lens);
    drv_err e = args && lens ? DRV_OK : DRV_ENOMEM;
    for (size_t i = 0; i < n && !e; i++) {
        if (c->match && !error_matches(kv->element[2 * i + 1], c->match)) continue;
        args[k] = kv->element[2 * i]->str, lens[k++] = kv->element[2 * i]->len;
    }
    if (!e) e = revive_args(q, c, args, lens, k);
    free(args);
    free(lens);
    return e;
}

/* ---- reviving ------------------------------------------------------------------------------- */

drv_err drv_queue_revive(drv_queue *q, const char *job, int p, int64_t *revived) {
    return drv_queue_revive_matching(q, job, p, NULL, revived);
}

drv_err drv_queue_revive_matching(drv_queue *q, const char *job, int p, const char *match,
                                  int64_t *revived) {
    struct revive_ctx c = {job, p, match, 0};
    drv_err e = scan_hash(q, job, p, DRV_K_DEAD, revive_page, &c);
    if (revived && !e) *revived = c.revived;
    return e;
}

drv_err drv_queue_revive_ids(drv_queue *q, const char *job, int p, const char *const *ids, size_t n,
                             int64_t *revived) {
    struct revive_ctx c = {job, p, NULL, 0};
    size_t *lens = malloc((n ? n : 1) * sizeof *lens);
    if (!lens) return DRV_ENOMEM;
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(ids[i]);
    drv_err e = revive_args(q, &c, (const char **)ids, lens, n);
    free(lens);
    if (revived && !e) *revived = c.revived;
    return e;
}
