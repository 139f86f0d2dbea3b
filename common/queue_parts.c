/* Partitions: their sizes and counters (stats, reap, settled ids), feeding, splitting one in
 * two (rebalancing) and the fleet cool-down. Leases on their items are in queue_leases.c. */
#include "queue_int.h"

#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

drv_err drv_queue_range_settled(drv_queue *q, const char *job, int p, int64_t start, int64_t end,
                                int64_t *done, int64_t *dead) {
    drv_part_keys k;
    drv_keys_part(&k, q->prefix, job, p);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "HGET %s done_base", k.ptr[DRV_K_STATE]);
    if (e) return drvq_wrongtype(q, e, k.ptr[DRV_K_STATE]);
    int bitmap = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (!bitmap) {
        *done = *dead = -1;
        return DRV_OK;
    }
    if ((e = drv_conn_cmdf(q->conn, &r, "BITCOUNT %s", k.ptr[DRV_K_DONE])))
        return drvq_wrongtype(q, e, k.ptr[DRV_K_DONE]);
    int64_t nd = drvq_int(r);
    freeReplyObject(r);
    /* The dead hash may hold ids that are not of this range (dead-lettered at claim): only
     * the range's own ids count. */
    int64_t nx = 0;
    char cursor[32] = "0";
    do {
        if ((e = drv_conn_cmdf(q->conn, &r, "HSCAN %s %s COUNT 1000", k.ptr[DRV_K_DEAD], cursor)))
            return drvq_wrongtype(q, e, k.ptr[DRV_K_DEAD]);
        if (!drvq_is_array(r, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            e = drvq_bad_reply(q, "HSCAN", r);
            freeReplyObject(r);
            return e;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *kv = r->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            long long id;
            if (kv->element[i]->type == REDIS_REPLY_STRING &&
                drv_parse_ll(kv->element[i]->str, start, end, &id) == 0)
                nx++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    *done = nd;
    *dead = nx;
    return DRV_OK;
}

void drv_part_stat_sum(const drv_part_stat *st, int n, drv_part_stat *out) {
    memset(out, 0, sizeof *out);
    for (int p = 0; p < n; p++) {
        const drv_part_stat *s = &st[p];
        out->pending += s->pending, out->leased += s->leased, out->retrying += s->retrying;
        out->dead += s->dead, out->fed += s->fed, out->done += s->done;
        out->failed += s->failed, out->throttled += s->throttled;
        out->duplicates += s->duplicates, out->expired += s->expired;
        out->copies += s->copies;
        out->skipped += s->skipped, out->released += s->released;
        out->recovered += s->recovered;
        if (s->cooldown_until > out->cooldown_until) out->cooldown_until = s->cooldown_until;
        if (s->cooldowns > out->cooldowns) out->cooldowns = s->cooldowns;
    }
}

/* lua/reap.lua answers pending, leased, retrying, dead, leases recovered, retries due,
 * exhausted. */
static drv_err read_reap(drv_queue *q, const redisReply *r, void *ud) {
    (void)q;
    drv_part_stat *out = ud;
    out->pending = drvq_int(r->element[0]);
    out->leased = drvq_int(r->element[1]);
    out->retrying = drvq_int(r->element[2]);
    out->dead = drvq_int(r->element[3]);
    out->recovered = drvq_int(r->element[4]) + drvq_int(r->element[5]);
    out->exhausted = drvq_int(r->element[6]) != 0;
    return DRV_OK;
}

drv_err drv_queue_reap(drv_queue *q, const char *job, int p, drv_part_stat *out) {
    return drvq_script(q, &(drvq_call){.script = "reap",
                                       .job = job,
                                       .part = p,
                                       .shape = DRVQ_ARRAY,
                                       .min = 7,
                                       .read = read_reap,
                                       .out = out});
}

drv_err drv_queue_pending(drv_queue *q, const char *job, const int *parts, int n, int64_t *lens) {
    drv_err e, first = DRV_OK;
    for (int i = 0; i < n; i++) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job, parts[i]);
        const char *c[2] = {"LLEN", k.ptr[DRV_K_PENDING]};
        if ((e = drv_conn_append(q->conn, 2, c, NULL))) return e;
    }
    for (int i = 0; i < n; i++) { /* every reply is read, so the connection stays in step */
        redisReply *r = NULL;
        if ((e = drv_conn_reply(q->conn, &r)) == DRV_EIO) return e;
        if (e && !first) {
            drv_part_keys k;
            drv_keys_part(&k, q->prefix, job, parts[i]);
            first = drvq_wrongtype(q, e, k.ptr[DRV_K_PENDING]);
        }
        lens[i] = e ? 0 : drvq_int(r);
        if (r) freeReplyObject(r);
    }
    return first;
}

drv_err drv_queue_stats(drv_queue *q, const char *job, int nparts, drv_part_stat *out) {
    drv_err e;
    for (int p = 0; p < nparts; p++) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job, p);
        /* leased: the state hash counts the ids the partition's leases hold. */
        const char *c[4][2] = {{"HGETALL", k.ptr[DRV_K_STATE]},
                               {"LLEN", k.ptr[DRV_K_PENDING]},
                               {"ZCARD", k.ptr[DRV_K_RETRY]},
                               {"HLEN", k.ptr[DRV_K_DEAD]}};
        for (int i = 0; i < 4; i++)
            if ((e = drv_conn_append(q->conn, 2, c[i], NULL))) return e;
    }
    drv_err first = DRV_OK;
    char first_text[512] = ""; /* the first failure's: later replies may fail too */
    for (int p = 0; p < nparts; p++) {
        drv_part_stat *s = &out[p];
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job, p);
        static const int key_of[4] = {0, 1, 6, 7};
        memset(s, 0, sizeof *s);
        s->split_from = -1;
        for (int i = 0; i < 4; i++) {
            redisReply *r = NULL;
            e = drv_conn_reply(q->conn, &r);
            if (e == DRV_EIO) return e;
            if (e) {
                if (!first) {
                    first = drvq_wrongtype(q, e, k.ptr[key_of[i]]);
                    snprintf(first_text, sizeof first_text, "%s", drv_conn_errstr(q->conn));
                }
                continue;
            }
            if (i == 0 && drvq_is_array(r, 0)) {
                const char *state = drvq_hfield(r, "state");
                s->st = state ? drv_job_state_parse(state) : DRV_JOB_MISSING;
                snprintf(s->state, sizeof s->state, "%s",
                         state ? state : drv_job_state_name(DRV_JOB_MISSING));
                /* Counters never go below 0; a field that is not a whole number in its bounds
                 * is named (the first one), the rest of the partitions are still read. */
                int64_t ex = 0, sf = -1;
                drv_err ce;
                const char *sk = k.ptr[DRV_K_STATE];
                char kept[512]; /* the first error's text stays the one reported */
                snprintf(kept, sizeof kept, "%s", drv_conn_errstr(q->conn));
                if ((ce = drvq_hnum(q, r, sk, "fed", 0, 0, INT64_MAX, &s->fed)) ||
                    (ce = drvq_hnum(q, r, sk, "done", 0, 0, INT64_MAX, &s->done)) ||
                    (ce = drvq_hnum(q, r, sk, "failed", 0, 0, INT64_MAX, &s->failed)) ||
                    (ce = drvq_hnum(q, r, sk, "throttled", 0, 0, INT64_MAX, &s->throttled)) ||
                    (ce = drvq_hnum(q, r, sk, "duplicates", 0, 0, INT64_MAX, &s->duplicates)) ||
                    (ce = drvq_hnum(q, r, sk, "copies", 0, 0, INT64_MAX, &s->copies)) ||
                    (ce = drvq_hnum(q, r, sk, "expired", 0, 0, INT64_MAX, &s->expired)) ||
                    (ce = drvq_hnum(q, r, sk, "skipped", 0, 0, INT64_MAX, &s->skipped)) ||
                    (ce = drvq_hnum(q, r, sk, "released", 0, 0, INT64_MAX, &s->released)) ||
                    (ce = drvq_hnum(q, r, sk, "leased", 0, 0, INT64_MAX, &s->leased)) ||
                    (ce = drvq_hnum(q, r, sk, "start", 0, INT64_MIN, INT64_MAX, &s->start)) ||
                    (ce = drvq_hnum(q, r, sk, "end", 0, INT64_MIN, INT64_MAX, &s->end)) ||
                    (ce = drvq_hnum(q, r, sk, "exhausted", 0, 0, 1, &ex)) ||
                    (ce = drvq_hnum(q, r, sk, "cooldown_until", 0, 0, INT64_MAX,
                                    &s->cooldown_until)) ||
                    (ce = drvq_hnum(q, r, sk, "cooldowns", 0, 0, INT64_MAX, &s->cooldowns)) ||
                    (ce = drvq_hnum(q, r, sk, "split_from", -1, -1, DRV_PARTITIONS_MAX - 1, &sf))) {
                    if (!first) {
                        first = ce;
                        snprintf(first_text, sizeof first_text, "%s", drv_conn_errstr(q->conn));
                    } else
                        drv_conn_set_errstr(q->conn, kept);
                }
                s->exhausted = ex != 0;
                s->split_from = (int)sf;
                const char *cur = drvq_hfield(r, "cursor");
                if (cur && strlen(cur) >= sizeof s->cursor && !first) {
                    first = drvq_corrupt(q, sk, "cursor", "longer than 1025 bytes");
                    snprintf(first_text, sizeof first_text, "%s", drv_conn_errstr(q->conn));
                }
                snprintf(s->cursor, sizeof s->cursor, "%s", cur ? cur : "");
            } else if (i == 1) {
                s->pending = drvq_int(r);
            } else if (i == 2) {
                s->retrying = drvq_int(r);
            } else if (i == 3) {
                s->dead = drvq_int(r);
            }
            freeReplyObject(r);
        }
    }
    if (first) drv_conn_set_errstr(q->conn, first_text);
    return first;
}

drv_err drv_queue_feed(drv_queue *q, const char *job, int p, const char *expect, const char *next,
                       int exhausted, const drv_feed_item *items, size_t n,
                       int64_t *pending_after) {
    if (n > CHUNK) {
        drv_conn_set_errstr(q->conn, "feed: more than 1000 items in one call");
        return DRV_EINVAL;
    }
    int with_payload = n > 0 && items[0].payload != NULL;
    size_t nargs = 4 + n * (with_payload ? 2 : 1);
    const char **args = malloc(nargs * sizeof *args);
    size_t *lens = malloc(nargs * sizeof *lens);
    if (!args || !lens) {
        free(args);
        free(lens);
        return DRV_ENOMEM;
    }
    args[0] = expect, lens[0] = strlen(expect);
    args[1] = next, lens[1] = strlen(next);
    args[2] = exhausted ? "1" : "0", lens[2] = 1;
    args[3] = with_payload ? "1" : "0", lens[3] = 1;
    size_t a = 4;
    for (size_t i = 0; i < n; i++) {
        args[a] = items[i].id, lens[a++] = items[i].idlen;
        if (with_payload) args[a] = items[i].payload, lens[a++] = items[i].plen;
    }
    drv_err e = drvq_script(q, &(drvq_call){.script = "feed",
                                            .job = job,
                                            .part = p,
                                            .nargs = (int)nargs,
                                            .args = args,
                                            .lens = lens,
                                            .read = drvq_read_int,
                                            .out = pending_after});
    free(args);
    free(lens);
    return e;
}

/* ---- rebalancing ----------------------------------------------------------------------------- */

drv_err drv_queue_split_new(drv_queue *q, const drv_spec *spec, int from, int to, int64_t cut,
                            int64_t end, const char *state) {
    num_t v[10];
    snprintf(v[9], sizeof v[9], "%" PRId64, spec->max_throttled);
    snprintf(v[8], sizeof v[8], "%" PRId64, spec->max_item_bytes);
    snprintf(v[0], sizeof v[0], "%" PRId64, spec->lease_ms);
    snprintf(v[1], sizeof v[1], "%" PRId64, spec->max_attempts);
    snprintf(v[2], sizeof v[2], "%" PRId64, spec->backoff_ms);
    snprintf(v[3], sizeof v[3], "%" PRId64, spec->backoff_max_ms);
    snprintf(v[4], sizeof v[4], "%d",
             spec->source != DRV_SRC_RANGE && spec->format != DRV_FMT_LINES);
    snprintf(v[5], sizeof v[5], "%" PRId64, cut);
    snprintf(v[6], sizeof v[6], "%" PRId64, end);
    snprintf(v[7], sizeof v[7], "%d", from);
    /* The same fields drv_queue_job_create writes, plus split_from. Only range partitions are
     * split; the new one's done bitmap starts at its own first id (the cut): the ids from the
     * cut on were never fed to the old partition, so none of them is done there. */
    const char *args[] = {
        "state",          state, "lease_ms",       v[0], "max_attempts", v[1], "backoff_ms", v[2],
        "backoff_max_ms", v[3],  "payloads",       v[4], "start",        v[5], "end",        v[6],
        "cursor",         v[5],  "exhausted",      "0",  "split_from",   v[7], "fed",        "0",
        "done",           "0",   "failed",         "0",  "dead",         "0",  "duplicates", "0",
        "expired",        "0",   "max_item_bytes", v[8], "done_base",    v[5], "throttled",  "0",
        "max_throttled",  v[9]};
    size_t n = sizeof args / sizeof *args, lens[sizeof args / sizeof *args];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(args[i]);
    return drvq_script(q, &(drvq_call){.script = "split_new",
                                       .job = spec->id,
                                       .part = to,
                                       .nargs = (int)n,
                                       .args = args,
                                       .lens = lens});
}

drv_err drv_queue_split_cut(drv_queue *q, const char *job, int from, int64_t old_end, int64_t cut,
                            int *exhausted) {
    drvq_args a = {0};
    drvq_arg_i64(&a, old_end);
    drvq_arg_i64(&a, cut - 1);
    drvq_arg_i64(&a, cut);
    int64_t v = 0;
    drv_err e = drvq_script(q, &(drvq_call){.script = "split_cut",
                                            .job = job,
                                            .part = from,
                                            .nargs = a.n,
                                            .args = a.v,
                                            .lens = a.len,
                                            .read = drvq_read_int,
                                            .out = &v});
    if (!e && exhausted) *exhausted = v == 1;
    return e;
}

drv_err drv_queue_split_grow(drv_queue *q, const char *job, int to) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    drvq_args a = {0};
    drvq_arg_i64(&a, to);
    const char *keys[] = {jk};
    return drvq_script(q, &(drvq_call){.script = "split_grow",
                                       .nkeys = 1,
                                       .keys = keys,
                                       .nargs = a.n,
                                       .args = a.v,
                                       .lens = a.len});
}

drv_err drv_queue_split_drop(drv_queue *q, const char *job, int p) {
    drv_part_keys k;
    drv_keys_part(&k, q->prefix, job, p);
    const char *argv[1 + DRV_PART_NKEYS];
    size_t lens[1 + DRV_PART_NKEYS];
    argv[0] = "UNLINK", lens[0] = 6;
    for (int i = 0; i < DRV_PART_NKEYS; i++)
        argv[1 + i] = k.ptr[i], lens[1 + i] = k.len[i];
    redisReply *r;
    drv_err e = drv_conn_cmd(q->conn, 1 + DRV_PART_NKEYS, argv, lens, &r);
    if (e) return e;
    freeReplyObject(r);
    return DRV_OK;
}

/* ---- cool-down ------------------------------------------------------------------------------- */

drv_err drv_queue_cooldown(drv_queue *q, const char *job, int nparts, int64_t ms, int64_t *until) {
    num_t m, end = "";
    snprintf(m, sizeof m, "%" PRId64, ms);
    const char *args[] = {m, end};
    size_t lens[] = {strlen(m), 0};
    int64_t latest = 0;
    /* One call per partition: a cool-down is rare (an API said 429 or 503), and each script
     * stays on its own partition's hash tag. The first call fixes the end (Redis time); the
     * others are given that end, so every partition has the same. */
    for (int p = 0; p < nparts; p++) {
        int64_t v = 0;
        drv_err e = drvq_script(q, &(drvq_call){.script = "cooldown",
                                                .job = job,
                                                .part = p,
                                                .nargs = p == 0 ? 1 : 2,
                                                .args = args,
                                                .lens = lens,
                                                .read = drvq_read_int,
                                                .out = &v});
        if (e) return e;
        if (p == 0) {
            snprintf(end, sizeof end, "%" PRId64, v);
            lens[1] = strlen(end);
        }
        if (v > latest) latest = v;
    }
    if (until) *until = latest;
    return DRV_OK;
}
