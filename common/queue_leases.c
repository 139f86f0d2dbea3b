/* Leases: claiming items of a partition, and what a worker reports about them (ack, ackclaim,
 * extend, release, fail). The claim reply's layout is documented and parsed here. */
#include "queue_int.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void drv_lease_clear(drv_lease *l) {
    free(l->id);
    free(l->payload);
    memset(l, 0, sizeof *l);
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- claiming ------------------------------------------------------------------------------ */

/* claim.lua's reply (and ackclaim.lua's from its element 4 on), as lua/claim.lua documents it:
 *
 *   {now_ms, token, deadline_ms, count, lease, k, index1, attempt1, ..., indexk, attemptk,
 *    payload1, ..., payloadcount}
 *
 * lease is the lease record {"worker":...,"ids":[id1, ..., idcount]} (one JSON string); the k
 * pairs give the attempt of the items past their first (index into ids from 1), every other
 * item is on attempt 1; the payloads come only for jobs whose items carry them. count 0: nothing
 * follows it. A fleet cool-down is {now_ms, -1, cooldown_until_ms, 0}. The positions, from the
 * reply's first claim element: */
enum claim_at {
    CLAIM_NOW,      /* Redis time */
    CLAIM_TOKEN,    /* the fencing token of every lease of this call; -1: a cool-down */
    CLAIM_DEADLINE, /* the leases' deadline; during a cool-down, its end */
    CLAIM_COUNT,    /* items leased */
    CLAIM_LEASE,    /* count > 0: the lease record (JSON) */
    CLAIM_K,        /* items past their first attempt */
    CLAIM_PAIRS,    /* k (index, attempt) pairs, then the payloads */
};

static drv_err bad_claim(drv_queue *q, const char *why) {
    char msg[160];
    snprintf(msg, sizeof msg, "lua/claim.lua: unexpected reply (%s)", why);
    drv_conn_set_errstr(q->conn, msg);
    return DRV_EREPLY;
}

/* Parses the claim reply from element 'at' on (the layout above). Frees nothing of r; on an
 * error *out holds nothing and the text says what was wrong. */
static drv_err parse_claim(drv_queue *q, const redisReply *r, size_t at, drv_claim *out) {
    drv_claim c = {0};
    drv_err e = DRV_EREPLY;
    const char *why = "malformed lease record";
    if (!drvq_is_array(r, at + CLAIM_LEASE)) return bad_claim(q, "too short");
    c.now_ms = drvq_int(r->element[at + CLAIM_NOW]);
    int64_t token = drvq_int(r->element[at + CLAIM_TOKEN]);
    c.deadline_ms = drvq_int(r->element[at + CLAIM_DEADLINE]);
    if (token < 0) { /* a fleet cool-down: nothing until deadline_ms */
        c.cooldown_until = c.deadline_ms;
        c.deadline_ms = 0;
    }
    int64_t count = drvq_int(r->element[at + CLAIM_COUNT]);
    if (count == 0) {
        if (r->elements != at + CLAIM_LEASE) return bad_claim(q, "elements after count 0");
        *out = c;
        return DRV_OK;
    }
    if (count < 0 || count > 100000 || r->elements < at + CLAIM_PAIRS)
        return bad_claim(q, "bad count");
    const redisReply *lease = r->element[at + CLAIM_LEASE];
    int64_t k = drvq_int(r->element[at + CLAIM_K]);
    if (lease->type != REDIS_REPLY_STRING || k < 0 || k > count)
        return bad_claim(q, "bad lease or attempt count");
    size_t pl0 = at + CLAIM_PAIRS + (size_t)k * 2; /* the first payload, if any */
    int payloads = r->elements == pl0 + (size_t)count;
    if (!payloads && r->elements != pl0) return bad_claim(q, "wrong number of payloads");
    cJSON *j = cJSON_ParseWithLength(lease->str, lease->len);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != count) goto fail;
    c.items = calloc((size_t)count, sizeof *c.items);
    if (!c.items) {
        e = DRV_ENOMEM;
        goto fail;
    }
    const cJSON *id = ids->child;
    for (size_t i = 0; i < (size_t)count; i++, id = id->next) {
        if (!cJSON_IsString(id)) goto fail;
        drv_lease *l = &c.items[i];
        l->idlen = strlen(id->valuestring);
        l->id = dup_bytes(id->valuestring, l->idlen);
        l->attempt = 1;
        l->token = token;
        c.n = i + 1;
        if (!l->id) {
            e = DRV_ENOMEM;
            goto fail;
        }
        if (payloads) {
            const redisReply *pl = r->element[pl0 + i];
            if (pl->type != REDIS_REPLY_STRING) {
                why = "a payload that is not a string";
                goto fail;
            }
            if (pl->len && !(l->payload = dup_bytes(pl->str, pl->len))) {
                e = DRV_ENOMEM;
                goto fail;
            }
            l->plen = pl->len;
        }
    }
    for (size_t x = 0; x < (size_t)k; x++) {
        int64_t i = drvq_int(r->element[at + CLAIM_PAIRS + x * 2]);
        if (i < 1 || i > count) {
            why = "an attempt index out of range";
            goto fail;
        }
        c.items[i - 1].attempt = (int)drvq_int(r->element[at + CLAIM_PAIRS + 1 + x * 2]);
    }
    cJSON_Delete(j);
    *out = c;
    return DRV_OK;
fail:
    cJSON_Delete(j);
    for (size_t i = 0; i < c.n; i++)
        drv_lease_clear(&c.items[i]);
    free(c.items);
    return e == DRV_EREPLY ? bad_claim(q, why) : e;
}

static drv_err read_claim(drv_queue *q, const redisReply *r, void *out) {
    return parse_claim(q, r, 0, out);
}

drv_err drv_queue_claim(drv_queue *q, const char *job, int p, const char *worker, int max,
                        drv_claim *out) {
    drvq_args a = {0};
    drvq_arg(&a, worker);
    drvq_arg_i64(&a, max);
    return drvq_script(q, &(drvq_call){.script = "claim",
                                       .job = job,
                                       .part = p,
                                       .nargs = a.n,
                                       .args = a.v,
                                       .lens = a.len,
                                       .read = read_claim,
                                       .out = out});
}

/* Most arguments put_acks writes for n acks: n, the ids, the number of runs, a token and a
 * count per run (at most one run per id), the responses. */
#define ACK_ARGS(n) (2 + 4 * (n))

/* Appends n acks to args/lens from k on, as ack.lua and ackclaim.lua read them: n, the ids,
 * the number of runs, then per run of consecutive refs leased under one token the token and
 * how many refs it covers (one ack mostly covers one claim: one run instead of a token per
 * id), then the responses when resp is given. nums: room for ACK_ARGS(n) numbers. Returns the
 * next k. */
static size_t put_acks(const char **args, size_t *lens, size_t k, const drv_ref *refs,
                       const drv_bytes *resp, size_t n, num_t *nums) {
    static const char empty[1];
    size_t u = 0, runs = 0;
    snprintf(nums[u], sizeof nums[u], "%zu", n);
    args[k] = nums[u], lens[k++] = strlen(nums[u++]);
    for (size_t i = 0; i < n; i++)
        args[k] = refs[i].id, lens[k++] = refs[i].idlen;
    size_t at = k++, rn = u++; /* the number of runs, written once known */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && refs[j].token == refs[i].token)
            j++;
        snprintf(nums[u], sizeof nums[u], "%" PRId64, refs[i].token);
        args[k] = nums[u], lens[k++] = strlen(nums[u++]);
        snprintf(nums[u], sizeof nums[u], "%zu", j - i);
        args[k] = nums[u], lens[k++] = strlen(nums[u++]);
        runs++;
        i = j;
    }
    snprintf(nums[rn], sizeof nums[rn], "%zu", runs);
    args[at] = nums[rn], lens[at] = strlen(nums[rn]);
    for (size_t i = 0; resp && i < n; i++) {
        args[k] = resp[i].p ? resp[i].p : empty;
        lens[k++] = resp[i].p ? resp[i].n : 0;
    }
    return k;
}

/* ackclaim.lua answers {acked, duplicates, unknown, status, ...}: status 0 and the claim reply
 * (the layout above, from element ACKCLAIM_CLAIM), or 1 (paused) or 2 (cancelled) and nothing
 * more. */
enum { ACKCLAIM_STATUS = 3, ACKCLAIM_CLAIM = 4 };

struct ackclaim_out {
    drv_ack_result *ack;
    drv_claim *claim;
};

static drv_err read_ackclaim(drv_queue *q, const redisReply *r, void *ud) {
    struct ackclaim_out *o = ud;
    memset(o->claim, 0, sizeof *o->claim);
    if (!drvq_is_array(r, ACKCLAIM_CLAIM)) return drvq_bad_reply(q, "lua/ackclaim.lua", r);
    drv_ack_result a = {drvq_int(r->element[0]), drvq_int(r->element[1]), drvq_int(r->element[2])};
    if (o->ack) *o->ack = a;
    int64_t status = drvq_int(r->element[ACKCLAIM_STATUS]);
    if (status == 1) return DRV_EPAUSED;
    if (status == 2) return DRV_ECANCELLED;
    return parse_claim(q, r, ACKCLAIM_CLAIM, o->claim);
}

drv_err drv_queue_ackclaim(drv_queue *q, const char *job, int p, const char *worker, int max,
                           const drv_ref *refs, const drv_bytes *resp, size_t n,
                           drv_ack_result *ack, drv_claim *out) {
    if (n > CHUNK) {
        drv_conn_set_errstr(q->conn, "ackclaim: more than 1000 acks in one call");
        return DRV_EINVAL;
    }
    const char **args = malloc(sizeof *args * (2 + ACK_ARGS(n)));
    size_t *lens = malloc(sizeof *lens * (2 + ACK_ARGS(n)));
    num_t *nums = malloc(sizeof *nums * ACK_ARGS(n));
    num_t m;
    if (!args || !lens || !nums) {
        free(args);
        free(lens);
        free(nums);
        return DRV_ENOMEM;
    }
    snprintf(m, sizeof m, "%d", max);
    size_t k = 0;
    args[k] = worker, lens[k++] = strlen(worker);
    args[k] = m, lens[k++] = strlen(m);
    k = put_acks(args, lens, k, refs, resp, n, nums);
    struct ackclaim_out o = {ack, out};
    drv_err e = drvq_script(q, &(drvq_call){.script = "ackclaim",
                                            .job = job,
                                            .part = p,
                                            .nargs = (int)k,
                                            .args = args,
                                            .lens = lens,
                                            .read = read_ackclaim,
                                            .out = &o});
    free(args);
    free(lens);
    free(nums);
    return e;
}

/* ---- reporting ------------------------------------------------------------------------------ */

/* Runs 'script' over refs in chunks as id, token pairs; 'sum' adds up each reply. */
static drv_err run_refs(drv_queue *q, const char *script, const char *job, int p,
                        const drv_ref *refs, size_t n,
                        drv_err (*sum)(drv_queue *q, const redisReply *r, void *acc), void *acc) {
    const char *args[2 * CHUNK];
    size_t lens[2 * CHUNK];
    num_t tok[CHUNK];
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        for (size_t i = 0; i < m; i++) {
            snprintf(tok[i], sizeof tok[i], "%" PRId64, refs[off + i].token);
            args[2 * i] = refs[off + i].id, lens[2 * i] = refs[off + i].idlen;
            args[2 * i + 1] = tok[i], lens[2 * i + 1] = strlen(tok[i]);
        }
        drv_err e = drvq_script(q, &(drvq_call){.script = script,
                                                .job = job,
                                                .part = p,
                                                .nargs = (int)(2 * m),
                                                .args = args,
                                                .lens = lens,
                                                .read = sum,
                                                .out = acc});
        if (e) return e;
    }
    return DRV_OK;
}

/* ack.lua answers {acked, duplicates, unknown}. */
static drv_err sum_ack(drv_queue *q, const redisReply *r, void *acc) {
    (void)q;
    drv_ack_result *a = acc;
    if (!drvq_is_array(r, 3)) return DRV_OK;
    a->acked += drvq_int(r->element[0]);
    a->duplicates += drvq_int(r->element[1]);
    a->unknown += drvq_int(r->element[2]);
    return DRV_OK;
}

drv_err drv_queue_ack(drv_queue *q, const char *job, int p, const drv_ref *refs, size_t n,
                      drv_ack_result *res) {
    return drv_queue_ack_keep(q, job, p, refs, NULL, n, res);
}

drv_err drv_queue_ack_keep(drv_queue *q, const char *job, int p, const drv_ref *refs,
                           const drv_bytes *resp, size_t n, drv_ack_result *res) {
    const char *args[ACK_ARGS(CHUNK)];
    size_t lens[ACK_ARGS(CHUNK)];
    num_t nums[ACK_ARGS(CHUNK)];
    drv_ack_result a = {0};
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        size_t k = put_acks(args, lens, 0, refs + off, resp ? resp + off : NULL, m, nums);
        drv_err e = drvq_script(q, &(drvq_call){.script = "ack",
                                                .job = job,
                                                .part = p,
                                                .nargs = (int)k,
                                                .args = args,
                                                .lens = lens,
                                                .read = sum_ack,
                                                .out = &a});
        if (e) return e;
    }
    if (res) *res = a;
    return DRV_OK;
}

/* extend.lua answers {deadline, the ids no longer held...}. */
static drv_err sum_extend(drv_queue *q, const redisReply *r, void *acc) {
    (void)q;
    if (drvq_is_array(r, 1)) *(int64_t *)acc += (int64_t)r->elements - 1;
    return DRV_OK;
}

drv_err drv_queue_extend(drv_queue *q, const char *job, int p, const drv_ref *refs, size_t n,
                         int64_t *lost) {
    int64_t l = 0;
    drv_err e = run_refs(q, "extend", job, p, refs, n, sum_extend, &l);
    if (lost && !e) *lost = l;
    return e;
}

drv_err drv_queue_release(drv_queue *q, const char *job, int p, const drv_ref *refs, size_t n,
                          int64_t *released) {
    int64_t k = 0;
    drv_err e = run_refs(q, "release", job, p, refs, n, drvq_add_int, &k);
    if (released && !e) *released = k;
    return e;
}

/* fail.lua answers {retrying, dead, stale, throttled}. */
static drv_err sum_fail(drv_queue *q, const redisReply *r, void *ud) {
    (void)q;
    drv_fail_result *acc = ud;
    if (!drvq_is_array(r, 4)) return DRV_OK;
    acc->retrying += drvq_int(r->element[0]);
    acc->dead += drvq_int(r->element[1]);
    acc->stale += drvq_int(r->element[2]);
    acc->throttled += drvq_int(r->element[3]);
    return DRV_OK;
}

drv_err drv_queue_fail(drv_queue *q, const char *job, int p, const drv_failure *f, size_t n,
                       drv_fail_result *res) {
    enum { G = 5, FCHUNK = 200 };
    const char *args[G * FCHUNK];
    size_t lens[G * FCHUNK];
    num_t tok[FCHUNK], after[FCHUNK];
    drv_fail_result acc = {0};
    for (size_t off = 0; off < n; off += FCHUNK) {
        size_t m = n - off < FCHUNK ? n - off : FCHUNK;
        for (size_t i = 0; i < m; i++) {
            const drv_failure *x = &f[off + i];
            snprintf(tok[i], sizeof tok[i], "%" PRId64, x->ref.token);
            snprintf(after[i], sizeof after[i], "%" PRId64, x->retry_after_ms);
            const char **a = &args[G * i];
            size_t *l = &lens[G * i];
            a[0] = x->ref.id, l[0] = x->ref.idlen;
            a[1] = tok[i], l[1] = strlen(tok[i]);
            a[2] = x->permanent ? "1" : x->throttled ? "2" : "0", l[2] = 1;
            a[3] = after[i], l[3] = strlen(after[i]);
            a[4] = x->error, l[4] = x->errlen;
        }
        drv_err e = drvq_script(q, &(drvq_call){.script = "fail",
                                                .job = job,
                                                .part = p,
                                                .nargs = (int)(G * m),
                                                .args = args,
                                                .lens = lens,
                                                .read = sum_fail,
                                                .out = &acc});
        if (e) return e;
    }
    if (res) *res = acc;
    return DRV_OK;
}
