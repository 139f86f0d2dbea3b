#include "queue.h"

#include "config.h"
#include "conn.h"
#include "keys.h"
#include "log.h"
#include <cjson/cJSON.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK DRV_BATCH_MAX /* the most one script call takes (common/shared.def) */

struct drv_queue {
    drv_conn *conn;
    char prefix[65];
};

typedef char num_t[24];

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

const char *drv_queue_addr(const drv_queue *q) {
    return drv_conn_addr(q->conn);
}

static int64_t reply_int(const redisReply *r) {
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return (int64_t)r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return 0;
}

static int is_array(const redisReply *r, size_t min) {
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

/* Runs a partition script with the standard partition KEYS. */
static drv_err run_part(drv_queue *q, const char *script, const char *job, int p, int nargs,
                        const char **args, const size_t *lens, redisReply **out) {
    drv_part_keys k;
    drv_keys_part(&k, q->prefix, job, p);
    return drv_conn_script(q->conn, script, DRV_PART_NKEYS, k.ptr, k.len, nargs, args, lens, out);
}

static drv_err redis_time(drv_queue *q, int64_t *ms) {
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "TIME");
    if (e) return e;
    if (!is_array(r, 2)) {
        freeReplyObject(r);
        return DRV_EREPLY;
    }
    *ms = reply_int(r->element[0]) * 1000 + reply_int(r->element[1]) / 1000;
    freeReplyObject(r);
    return DRV_OK;
}

/* Reads every reply of a pipeline of n commands; the first failure is returned but all
 * replies are consumed so the connection stays in step. */
static drv_err drain_replies(drv_queue *q, int n) {
    drv_err first = DRV_OK;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        drv_err e = drv_conn_reply(q->conn, &r);
        if (r) freeReplyObject(r);
        if (e == DRV_EIO) return e;
        if (e && !first) first = e;
    }
    return first;
}

/* Sends CMD BUCKET [ARG] for each bucket of partition k's string-id done record
 * (PREFIX{J.p}:done:B for B below the state hash's done_buckets; lua/lib/done.lua), pipelined and
 * read back a thousand at a time. Their count is read first: the caller deletes or expires the
 * state hash after them. A partition without buckets (a range, or a job from before them) has
 * nothing to do. */
static drv_err each_bucket(drv_queue *q, const drv_part_keys *k, const char *cmd, const char *arg) {
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "HGET %s done_buckets", k->ptr[0]);
    if (e) return e;
    int64_t nb = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    for (int64_t b = 0; b < nb;) {
        int n = 0;
        for (; b < nb && n < 1000; b++, n++) {
            char key[DRV_KEY_MAX + 24];
            snprintf(key, sizeof key, "%s:%" PRId64, k->ptr[4], b);
            const char *argv[] = {cmd, key, arg};
            if ((e = drv_conn_append(q->conn, arg ? 3 : 2, argv, NULL))) return e;
        }
        if ((e = drain_replies(q, n))) return e;
    }
    return DRV_OK;
}

/* ---- jobs ------------------------------------------------------------------------------------ */

drv_err drv_queue_job_delete(drv_queue *q, const char *job) {
    char jk[DRV_KEY_MAX], lk[DRV_KEY_MAX], mk[DRV_KEY_MAX], jobs[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    drv_key_job(lk, sizeof lk, q->prefix, job, "lock");
    drv_key_job(mk, sizeof mk, q->prefix, job, "limits");
    drv_key_global(jobs, sizeof jobs, q->prefix, "jobs");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZREM %s %s", jobs, job);
    if (e) return e;
    freeReplyObject(r);
    if ((e = drv_conn_cmdf(q->conn, &r, "HGET %s partitions", jk))) return e;
    int nparts = r->type == REDIS_REPLY_STRING ? atoi(r->str) : 0;
    freeReplyObject(r);
    /* One more than the count: the invisible partition of an interrupted split, if any. */
    if (nparts > 0) nparts++;
    drv_part_keys k;
    for (int p = 0; p < nparts; p++) {
        drv_keys_part(&k, q->prefix, job, p);
        if ((e = each_bucket(q, &k, "UNLINK", NULL))) return e;
    }
    for (int p = 0; p < nparts; p++) {
        drv_keys_part(&k, q->prefix, job, p);
        const char *argv[1 + DRV_PART_NKEYS];
        size_t lens[1 + DRV_PART_NKEYS];
        argv[0] = "UNLINK", lens[0] = 6;
        for (int i = 0; i < DRV_PART_NKEYS; i++)
            argv[1 + i] = k.ptr[i], lens[1 + i] = k.len[i];
        if ((e = drv_conn_append(q->conn, 1 + DRV_PART_NKEYS, argv, lens))) return e;
    }
    if ((e = drain_replies(q, nparts))) return e;
    /* The job hash goes last: it holds the partition count a retried delete needs. */
    if ((e = drv_conn_cmdf(q->conn, &r, "UNLINK %s %s %s", lk, mk, jk))) return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_job_mark(drv_queue *q, const char *job, int64_t created_ms, const char *field,
                           int64_t *mark_ms) {
    char jk[DRV_KEY_MAX];
    size_t jklen = drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    num_t created;
    snprintf(created, sizeof created, "%" PRId64, created_ms);
    const char *keys[] = {jk}, *args[] = {field, created};
    size_t klens[] = {jklen}, alens[] = {strlen(field), strlen(created)};
    redisReply *r;
    drv_err e = drv_conn_script(q->conn, "mark", 1, keys, klens, 2, args, alens, &r);
    if (e) return e;
    if (r->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return DRV_EREPLY;
    }
    *mark_ms = (int64_t)r->integer;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_job_expire(drv_queue *q, const drv_job *job, int64_t ttl_ms,
                             int64_t *expires_ms) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job->id, "job");
    int64_t now;
    drv_err e = redis_time(q, &now);
    if (e) return e;
    num_t at, ttl;
    snprintf(at, sizeof at, "%" PRId64, now + ttl_ms);
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    /* expires_ms first, so status shows the plan even if the coordinator dies half way (a
     * restart sees it and does not push the deadline back; drover purge still works). */
    const char *hset[] = {"HSET", jk, "expires_ms", at};
    redisReply *r;
    if ((e = drv_conn_cmd(q->conn, 4, hset, NULL, &r))) return e;
    freeReplyObject(r);
    for (int p = 0; p < job->partitions; p++) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job->id, p);
        if ((e = each_bucket(q, &k, "PEXPIRE", ttl))) return e;
        for (int i = 0; i < DRV_PART_NKEYS; i++) {
            const char *argv[] = {"PEXPIRE", k.ptr[i], ttl};
            size_t lens[] = {7, k.len[i], strlen(ttl)};
            if ((e = drv_conn_append(q->conn, 3, argv, lens))) return e;
        }
        /* One partition's replies at a time keeps the pipeline (and its buffer) small. */
        if ((e = drain_replies(q, DRV_PART_NKEYS))) return e;
    }
    /* The limits hash, then the job hash last: while it lives, drover purge can find the
     * partitions. */
    char mk[DRV_KEY_MAX];
    drv_key_job(mk, sizeof mk, q->prefix, job->id, "limits");
    const char *pm[] = {"PEXPIRE", mk, ttl};
    if ((e = drv_conn_cmd(q->conn, 3, pm, NULL, &r))) return e;
    freeReplyObject(r);
    const char *px[] = {"PEXPIRE", jk, ttl};
    if ((e = drv_conn_cmd(q->conn, 3, px, NULL, &r))) return e;
    freeReplyObject(r);
    *expires_ms = now + ttl_ms;
    return DRV_OK;
}

/* Appends 'lit' to a SCAN MATCH pattern with glob characters escaped. */
static void glob_lit(char *pat, size_t cap, const char *lit) {
    size_t n = strlen(pat);
    for (; *lit && n + 2 < cap; lit++) {
        if (strchr("*?[]\\", *lit)) pat[n++] = '\\';
        pat[n++] = *lit;
    }
    pat[n] = '\0';
}

drv_err drv_queue_job_sweep(drv_queue *q, const char *job, int64_t *unlinked) {
    int64_t total = 0;
    for (int which = 0; which < 2; which++) {
        /* PREFIX{J}:* (job hash, lock) and PREFIX{J.*}:* (every partition, whatever the
         * partition count was). */
        char pat[DRV_KEY_MAX * 2] = "";
        glob_lit(pat, sizeof pat, q->prefix);
        glob_lit(pat, sizeof pat, "{");
        glob_lit(pat, sizeof pat, job);
        strncat(pat, which ? ".*}:*" : "}:*", sizeof pat - strlen(pat) - 1);
        char cursor[32] = "0";
        do {
            redisReply *r;
            drv_err e = drv_conn_cmdf(q->conn, &r, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
            if (e) return e;
            if (!is_array(r, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
                r->element[1]->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(r);
                return DRV_EREPLY;
            }
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            redisReply *keys = r->element[1];
            if (keys->elements) {
                const char **argv = malloc(sizeof *argv * (keys->elements + 1));
                size_t *lens = malloc(sizeof *lens * (keys->elements + 1));
                if (!argv || !lens) {
                    free(argv);
                    free(lens);
                    freeReplyObject(r);
                    return DRV_ENOMEM;
                }
                argv[0] = "UNLINK", lens[0] = 6;
                for (size_t i = 0; i < keys->elements; i++)
                    argv[1 + i] = keys->element[i]->str, lens[1 + i] = keys->element[i]->len;
                redisReply *u;
                e = drv_conn_cmd(q->conn, (int)keys->elements + 1, argv, lens, &u);
                free(argv);
                free(lens);
                if (!e) {
                    total += reply_int(u);
                    freeReplyObject(u);
                }
            }
            freeReplyObject(r);
            if (e) return e;
        } while (strcmp(cursor, "0") != 0);
    }
    if (unlinked) *unlinked = total;
    return DRV_OK;
}

/* A key of the wrong type answers WRONGTYPE: state drover did not write. */
static drv_err wrongtype(drv_queue *q, drv_err e, const char *key) {
    if (e != DRV_EREPLY || strncmp(drv_conn_errstr(q->conn), "WRONGTYPE", 9) != 0) return e;
    char msg[512];
    snprintf(msg, sizeof msg, "%s: WRONGTYPE", key);
    drv_conn_set_errstr(q->conn, msg);
    return DRV_ECORRUPT;
}

/* Writes the job's limits hash from 'spec'; 'fill' also fills the bucket (a new job). */
static drv_err write_limits(drv_queue *q, const drv_spec *spec, int fill) {
    char mk[DRV_KEY_MAX];
    drv_key_job(mk, sizeof mk, q->prefix, spec->id, "limits");
    num_t v[5];
    snprintf(v[0], sizeof v[0], "%" PRId64, spec->rate_per_s);
    snprintf(v[1], sizeof v[1], "%" PRId64, spec->rate_burst > 0 ? spec->rate_burst : 1);
    snprintf(v[2], sizeof v[2], "%" PRId64, spec->max_in_flight);
    snprintf(v[3], sizeof v[3], "%" PRId64, spec->lease_ms);
    snprintf(v[4], sizeof v[4], "%" PRId64, spec->weight);
    const char *argv[] = {"HSET",          mk,   "per_second",  v[0], "burst",  v[1],
                          "max_in_flight", v[2], "lease_ms",    v[3], "weight", v[4],
                          "tokens",        v[1], "refilled_ms", "0"};
    /* Without 'fill' the bucket keeps its tokens (capped at the new burst by admit.lua). */
    int argc = fill ? 14 : 12;
    redisReply *r;
    drv_err e = drv_conn_cmd(q->conn, argc, argv, NULL, &r);
    if (!e) freeReplyObject(r);
    return e;
}

drv_err drv_queue_job_create(drv_queue *q, const drv_spec *spec, int64_t total,
                             const drv_part_init *parts, int replace) {
    return drv_queue_job_create_noted(q, spec, total, parts, replace, NULL);
}

drv_err drv_queue_job_create_noted(drv_queue *q, const drv_spec *spec, int64_t total,
                                   const drv_part_init *parts, int replace, const char *const *kv) {
    char jk[DRV_KEY_MAX], jobs[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, spec->id, "job");
    drv_key_global(jobs, sizeof jobs, q->prefix, "jobs");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZSCORE %s %s", jobs, spec->id);
    if (e) return wrongtype(q, e, jobs);
    int visible = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if ((e = drv_conn_cmdf(q->conn, &r, "EXISTS %s", jk))) return e;
    int leftover = reply_int(r) > 0;
    freeReplyObject(r);
    /* Listed without a job hash: it expired (ttl_after_done); the id is free again. */
    if (visible && leftover && !replace) return DRV_EEXIST;
    if ((visible || leftover) && (e = drv_queue_job_delete(q, spec->id))) return e;

    int64_t now;
    if ((e = redis_time(q, &now))) return e;
    char *json = drv_spec_to_json(spec);
    if (!json) return DRV_ENOMEM;
    int n = 0;
    /* 1. the job hash, marked "creating" */
    e = drv_conn_cmdf(q->conn, &r,
                      "HSET %s spec %s state creating partitions %lld total %lld "
                      "created_ms %lld",
                      jk, json, (long long)spec->partitions, (long long)total, (long long)now);
    free(json);
    if (e) return e;
    freeReplyObject(r);
    /* 2. partition state hashes, pipelined */
    int payloads = spec->source != DRV_SRC_RANGE && spec->format != DRV_FMT_LINES;
    /* Buckets of a string-id done record, sized for the ids a partition is expected to get when
     * the total is known (a file). Otherwise they split as ids come (lua/lib/done.lua), which costs
     * Redis about 3 us of CPU per id over a job (BENCHMARKS.md), more than the rest of a
     * string id's record. */
    num_t buckets = "1";
    if (total > 0) {
        int64_t nb = total / spec->partitions / DRV_DONE_LOAD;
        snprintf(buckets, sizeof buckets, "%" PRId64, nb > 1 ? nb : 1);
    }
    for (int p = 0; p < spec->partitions; p++) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, spec->id, p);
        num_t v[9];
        snprintf(v[8], sizeof v[8], "%" PRId64, spec->max_item_bytes);
        snprintf(v[0], sizeof v[0], "%" PRId64, spec->lease_ms);
        snprintf(v[1], sizeof v[1], "%" PRId64, spec->max_attempts);
        snprintf(v[2], sizeof v[2], "%" PRId64, spec->backoff_ms);
        snprintf(v[3], sizeof v[3], "%" PRId64, spec->backoff_max_ms);
        snprintf(v[4], sizeof v[4], "%d", payloads);
        snprintf(v[5], sizeof v[5], "%" PRId64, parts[p].start);
        snprintf(v[6], sizeof v[6], "%" PRId64, parts[p].end);
        snprintf(v[7], sizeof v[7], "%d", parts[p].exhausted);
        const char *argv[] = {"HSET", k.ptr[0], "state", "running", "lease_ms", v[0],
                              "max_attempts", v[1], "backoff_ms", v[2], "backoff_max_ms", v[3],
                              "payloads", v[4], "start", v[5], "end", v[6], "cursor",
                              parts[p].cursor, "exhausted", v[7], "fed", "0", "done", "0", "failed",
                              "0", "dead", "0", "duplicates", "0", "expired", "0",
                              /* claim.lua dead-letters an id longer than this */
                              "max_item_bytes", v[8],
                              /* Range partitions keep the done record as a bitmap whose bit 0
                               * is their first id, other sources in hashed buckets, one to
                               * start with (lua/lib/done.lua done_has/done_add). */
                              "done_base", v[5]};
        int argc = (int)(sizeof argv / sizeof *argv);
        if (spec->source != DRV_SRC_RANGE) {
            argv[argc - 2] = "done_buckets";
            argv[argc - 1] = buckets;
        }
        if ((e = drv_conn_append(q->conn, argc, argv, NULL))) return e;
        n++;
    }
    if ((e = drain_replies(q, n))) return e;
    /* 3. the fleet-wide limits (lua/admit.lua reads them), bucket full */
    if ((e = write_limits(q, spec, 1))) return e;
    /* 4. the caller's fields (a file's fingerprint), running, then visible */
    if (kv && (e = drv_queue_job_note(q, spec->id, kv))) return e;
    if ((e = drv_conn_cmdf(q->conn, &r, "HSET %s state running", jk))) return e;
    freeReplyObject(r);
    if ((e = drv_conn_cmdf(q->conn, &r, "ZADD %s %lld %s", jobs, (long long)now, spec->id)))
        return e;
    freeReplyObject(r);
    return DRV_OK;
}

static const char *hfield(const redisReply *r, const char *name) {
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->type == REDIS_REPLY_STRING ? r->element[i + 1]->str : NULL;
    return NULL;
}

static int64_t hint(const redisReply *r, const char *name, int64_t def) {
    const char *v = hfield(r, name);
    return v ? strtoll(v, NULL, 10) : def;
}

/* A whole-number field drover wrote into hash 'key': absent is 'def', anything but a whole
 * number in [lo, hi] is DRV_ECORRUPT, with the key and field in the error text. */
static drv_err hnum(drv_queue *q, const redisReply *r, const char *key, const char *name,
                    int64_t def, int64_t lo, int64_t hi, int64_t *out) {
    const char *v = hfield(r, name);
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

static drv_err corrupt(drv_queue *q, const char *key, const char *name, const char *what) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s: field %s: %s", key, name, what);
    drv_conn_set_errstr(q->conn, msg);
    return DRV_ECORRUPT;
}

drv_err drv_queue_job_get(drv_queue *q, const char *job, drv_job *out) {
    if (!drv_job_id_valid(job)) return DRV_ENOJOB;
    char jk[DRV_KEY_MAX], jobs[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    drv_key_global(jobs, sizeof jobs, q->prefix, "jobs");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZSCORE %s %s", jobs, job);
    if (e) return wrongtype(q, e, jobs);
    int visible = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (!visible) return DRV_ENOJOB;
    if ((e = drv_conn_cmdf(q->conn, &r, "HGETALL %s", jk))) return wrongtype(q, e, jk);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        /* Listed, but its hash is gone: it expired (ttl_after_done). Drop the entry, which
         * cannot expire with it (another slot). A purge or --replace removes the entry
         * before the hash, and a submit writes the hash before the entry, so this sees only
         * a job that is really gone. */
        freeReplyObject(r);
        if ((e = drv_conn_cmdf(q->conn, &r, "ZREM %s %s", jobs, job))) return e;
        freeReplyObject(r);
        return DRV_ENOJOB;
    }
    drv_job j;
    memset(&j, 0, sizeof j);
    const char *spec = is_array(r, 2) ? hfield(r, "spec") : NULL;
    const char *state = is_array(r, 2) ? hfield(r, "state") : NULL;
    char why[256] = "missing";
    if (!spec || !state || drv_spec_parse(spec, strlen(spec), &j.spec, why, sizeof why) != DRV_OK) {
        /* Listed and there, but unusable: say so (drover list, status) rather than hide it. */
        freeReplyObject(r);
        return corrupt(q, jk, !state && spec ? "state" : "spec", why);
    }
    snprintf(j.id, sizeof j.id, "%s", job);
    snprintf(j.state, sizeof j.state, "%s", state);
    /* Every number with the bounds submit gave it: a hand-edited field refuses the job, named,
     * rather than turning into 0 partitions or 100000 of them. */
    int64_t parts = 0;
    if ((e = hnum(q, r, jk, "partitions", 0, 1, DRV_PARTITIONS_MAX, &parts)) ||
        (e = hnum(q, r, jk, "total", -1, -1, INT64_MAX, &j.total)) ||
        (e = hnum(q, r, jk, "created_ms", 0, 1, INT64_MAX, &j.created_ms)) ||
        (e = hnum(q, r, jk, "finished_ms", 0, 0, INT64_MAX, &j.finished_ms)) ||
        (e = hnum(q, r, jk, "page", 0, 0, INT64_MAX, &j.page)) ||
        (e = hnum(q, r, jk, "complete_sent", 0, 0, INT64_MAX, &j.complete_sent)) ||
        (e = hnum(q, r, jk, "dead_alert_sent", 0, 0, INT64_MAX, &j.dead_alert_sent)) ||
        (e = hnum(q, r, jk, "expires_ms", 0, 0, INT64_MAX, &j.expires_ms))) {
        freeReplyObject(r);
        return e;
    }
    j.partitions = (int)parts;
    /* Only range partitions split (and only up to the cap); the others keep submit's count, which
     * also places each stdin id. */
    if (!hfield(r, "partitions") || j.partitions < j.spec.partitions ||
        (j.spec.source != DRV_SRC_RANGE && j.partitions != j.spec.partitions)) {
        char what[160];
        snprintf(what, sizeof what, "%d partitions, but the spec has %" PRId64 "%s", j.partitions,
                 j.spec.partitions, j.spec.source == DRV_SRC_RANGE ? " (splits only add)" : "");
        freeReplyObject(r);
        return corrupt(q, jk, "partitions", what);
    }
    if (!hfield(r, "created_ms")) {
        freeReplyObject(r);
        return corrupt(q, jk, "created_ms", "missing");
    }
    static const char *const states[] = {"creating", "running", "paused", "cancelled", "done"};
    size_t si = 0;
    while (si < sizeof states / sizeof *states && strcmp(states[si], state) != 0)
        si++;
    if (si == sizeof states / sizeof *states) {
        char what[96];
        snprintf(what, sizeof what, "unknown state \"%.40s\"", state);
        freeReplyObject(r);
        return corrupt(q, jk, "state", what);
    }
    snprintf(j.page_url, sizeof j.page_url, "%s",
             hfield(r, "page_url") ? hfield(r, "page_url") : "");
    const char *rate = hfield(r, "rate");
    j.rate_milli = rate ? (int64_t)(strtod(rate, NULL) * 1000) : 0;
    freeReplyObject(r);
    *out = j;
    return DRV_OK;
}

drv_err drv_queue_job_list(drv_queue *q, char (**ids)[DRV_JOB_ID_MAX + 1], size_t *n) {
    char jobs[DRV_KEY_MAX];
    drv_key_global(jobs, sizeof jobs, q->prefix, "jobs");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZRANGE %s 0 -1", jobs);
    if (e) return e;
    char(*out)[DRV_JOB_ID_MAX + 1] = calloc(r->elements + 1, sizeof *out);
    if (!out) {
        freeReplyObject(r);
        return DRV_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING && drv_job_id_valid(r->element[i]->str))
            snprintf(out[k++], sizeof *out, "%s", r->element[i]->str);
    freeReplyObject(r);
    *ids = out;
    *n = k;
    return DRV_OK;
}

drv_err drv_queue_job_set_state(drv_queue *q, const drv_job *job, const char *state) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job->id, "job");
    redisReply *r;
    drv_err e;
    int finished = strcmp(state, "done") == 0 || strcmp(state, "cancelled") == 0;
    /* Partitions first: the scripts honour them, and a crash between the two leaves the job
     * hash (what operators and the coordinator read) to be set again. With created_ms, none is
     * written back once gone (lua/mirror.lua), nor the job hash (below). */
    if (job->created_ms && (e = drv_queue_job_mirror_state(q, job, state))) return e;
    for (int p = 0; !job->created_ms && p < job->partitions; p++) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job->id, p);
        const char *argv[] = {"HSET", k.ptr[0], "state", state};
        if ((e = drv_conn_append(q->conn, 4, argv, NULL))) return e;
    }
    if (!job->created_ms && (e = drain_replies(q, job->partitions))) return e;
    num_t now_s = "";
    if (finished) {
        int64_t now;
        if ((e = redis_time(q, &now))) return e;
        snprintf(now_s, sizeof now_s, "%" PRId64, now);
    }
    if (job->created_ms) {
        /* Only on the job read (lua/mark.lua): one deleted or replaced meanwhile is left alone. */
        const char *kv[] = {"state", state, finished ? "finished_ms" : NULL, now_s, NULL};
        return drv_queue_job_note_if(q, job->id, job->created_ms, kv);
    }
    if (finished)
        e = drv_conn_cmdf(q->conn, &r, "HSET %s state %s finished_ms %s", jk, state, now_s);
    else
        e = drv_conn_cmdf(q->conn, &r, "HSET %s state %s", jk, state);
    if (e) return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_range_settled(drv_queue *q, const char *job, int p, int64_t start, int64_t end,
                                int64_t *done, int64_t *dead) {
    drv_part_keys k;
    drv_keys_part(&k, q->prefix, job, p);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "HGET %s done_base", k.ptr[0]);
    if (e) return wrongtype(q, e, k.ptr[0]);
    int bitmap = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (!bitmap) {
        *done = *dead = -1;
        return DRV_OK;
    }
    if ((e = drv_conn_cmdf(q->conn, &r, "BITCOUNT %s", k.ptr[4]))) return wrongtype(q, e, k.ptr[4]);
    int64_t nd = reply_int(r);
    freeReplyObject(r);
    /* The dead hash may hold ids that are not of this range (dead-lettered at claim): only
     * the range's own ids count. */
    int64_t nx = 0;
    char cursor[32] = "0";
    do {
        if ((e = drv_conn_cmdf(q->conn, &r, "HSCAN %s %s COUNT 1000", k.ptr[7], cursor)))
            return wrongtype(q, e, k.ptr[7]);
        if (!is_array(r, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return DRV_EREPLY;
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

drv_err drv_queue_job_mirror_state(drv_queue *q, const drv_job *job, const char *state) {
    for (int p = 0; p < job->partitions; p++) {
        const char *args[] = {state};
        size_t lens[] = {strlen(state)};
        redisReply *r;
        drv_err e = run_part(q, "mirror", job->id, p, 1, args, lens, &r);
        if (e) return e;
        freeReplyObject(r);
    }
    return DRV_OK;
}

drv_err drv_queue_job_note_if(drv_queue *q, const char *job, int64_t created_ms,
                              const char *const *kv) {
    char jk[DRV_KEY_MAX];
    size_t jklen = drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    num_t created;
    snprintf(created, sizeof created, "%" PRId64, created_ms);
    const char *args[34];
    size_t alens[34];
    int n = 0;
    args[n++] = "";
    args[n++] = created;
    for (; kv[0] && kv[1] && n < 32; kv += 2)
        args[n++] = kv[0], args[n++] = kv[1];
    for (int i = 0; i < n; i++)
        alens[i] = strlen(args[i]);
    const char *keys[] = {jk};
    size_t klens[] = {jklen};
    redisReply *r;
    drv_err e = drv_conn_script(q->conn, "mark", 1, keys, klens, n, args, alens, &r);
    if (e) return e;
    int64_t wrote = reply_int(r);
    freeReplyObject(r);
    return wrote ? DRV_OK : DRV_ENOJOB;
}

drv_err drv_queue_job_field(drv_queue *q, const char *job, const char *field, char **out) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "HGET %s %s", jk, field);
    if (e) return wrongtype(q, e, jk);
    *out = NULL;
    if (r->type == REDIS_REPLY_STRING && !(*out = strdup(r->str))) e = DRV_ENOMEM;
    freeReplyObject(r);
    return e;
}

drv_err drv_queue_job_note(drv_queue *q, const char *job, const char *const *kv) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    const char *argv[34];
    int argc = 0;
    argv[argc++] = "HSET";
    argv[argc++] = jk;
    for (; kv[0] && kv[1] && argc < 32; kv += 2)
        argv[argc++] = kv[0], argv[argc++] = kv[1];
    redisReply *r;
    drv_err e = drv_conn_cmd(q->conn, argc, argv, NULL, &r);
    if (!e) freeReplyObject(r);
    return e;
}

/* ---- coordinator ----------------------------------------------------------------------------- */

drv_err drv_queue_lock(drv_queue *q, const char *job, const char *owner, int64_t ttl_ms,
                       int *held) {
    return drv_queue_lock_job(q, job, 0, owner, ttl_ms, held);
}

drv_err drv_queue_lock_job(drv_queue *q, const char *job, int64_t created_ms, const char *owner,
                           int64_t ttl_ms, int *held) {
    char lk[DRV_KEY_MAX], jk[DRV_KEY_MAX];
    size_t lklen = drv_key_job(lk, sizeof lk, q->prefix, job, "lock");
    size_t jklen = drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    num_t ttl, created;
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    snprintf(created, sizeof created, "%" PRId64, created_ms);
    const char *keys[] = {lk, jk}, *args[] = {owner, ttl, created};
    size_t klens[] = {lklen, jklen}, alens[] = {strlen(owner), strlen(ttl), strlen(created)};
    redisReply *r;
    drv_err e = drv_conn_script(q->conn, "lock", created_ms ? 2 : 1, keys, klens,
                                created_ms ? 3 : 2, args, alens, &r);
    if (e) return e;
    int64_t v = reply_int(r);
    freeReplyObject(r);
    if (v < 0) return DRV_ENOJOB;
    *held = v == 1;
    return DRV_OK;
}

drv_err drv_queue_unlock(drv_queue *q, const char *job, const char *owner) {
    char lk[DRV_KEY_MAX];
    size_t lklen = drv_key_job(lk, sizeof lk, q->prefix, job, "lock");
    const char *keys[] = {lk}, *args[] = {owner};
    size_t klens[] = {lklen}, alens[] = {strlen(owner)};
    redisReply *r;
    drv_err e = drv_conn_script(q->conn, "unlock", 1, keys, klens, 1, args, alens, &r);
    if (!e) freeReplyObject(r);
    return e;
}

void drv_part_stat_sum(const drv_part_stat *st, int n, drv_part_stat *out) {
    memset(out, 0, sizeof *out);
    for (int p = 0; p < n; p++) {
        const drv_part_stat *s = &st[p];
        out->pending += s->pending, out->leased += s->leased, out->retrying += s->retrying;
        out->dead += s->dead, out->fed += s->fed, out->done += s->done;
        out->failed += s->failed, out->duplicates += s->duplicates, out->expired += s->expired;
        out->copies += s->copies;
        out->skipped += s->skipped, out->released += s->released;
        out->recovered += s->recovered;
        if (s->cooldown_until > out->cooldown_until) out->cooldown_until = s->cooldown_until;
        if (s->cooldowns > out->cooldowns) out->cooldowns = s->cooldowns;
    }
}

drv_err drv_queue_reap(drv_queue *q, const char *job, int p, drv_part_stat *out) {
    redisReply *r;
    drv_err e = run_part(q, "reap", job, p, 0, NULL, NULL, &r);
    if (e) return e;
    if (!is_array(r, 7)) {
        freeReplyObject(r);
        return DRV_EREPLY;
    }
    out->pending = reply_int(r->element[0]);
    out->leased = reply_int(r->element[1]);
    out->retrying = reply_int(r->element[2]);
    out->dead = reply_int(r->element[3]);
    out->recovered = reply_int(r->element[4]) + reply_int(r->element[5]);
    out->exhausted = reply_int(r->element[6]) != 0;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_stats(drv_queue *q, const char *job, int nparts, drv_part_stat *out) {
    drv_err e;
    for (int p = 0; p < nparts; p++) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job, p);
        /* leased: the state hash counts the ids the partition's leases hold. */
        const char *c[4][2] = {
            {"HGETALL", k.ptr[0]}, {"LLEN", k.ptr[1]}, {"ZCARD", k.ptr[6]}, {"HLEN", k.ptr[7]}};
        for (int i = 0; i < 4; i++)
            if ((e = drv_conn_append(q->conn, 2, c[i], NULL))) return e;
    }
    drv_err first = DRV_OK;
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
                if (!first) first = wrongtype(q, e, k.ptr[key_of[i]]);
                continue;
            }
            if (i == 0 && is_array(r, 0)) {
                snprintf(s->state, sizeof s->state, "%s",
                         hfield(r, "state") ? hfield(r, "state") : "missing");
                /* Counters never go below 0; a field that is not a whole number in its bounds
                 * is named (the first one), the rest of the partitions are still read. */
                int64_t ex = 0, sf = -1;
                drv_err ce;
                const char *sk = k.ptr[0];
                char kept[512]; /* the first error's text stays the one reported */
                snprintf(kept, sizeof kept, "%s", drv_conn_errstr(q->conn));
                if ((ce = hnum(q, r, sk, "fed", 0, 0, INT64_MAX, &s->fed)) ||
                    (ce = hnum(q, r, sk, "done", 0, 0, INT64_MAX, &s->done)) ||
                    (ce = hnum(q, r, sk, "failed", 0, 0, INT64_MAX, &s->failed)) ||
                    (ce = hnum(q, r, sk, "duplicates", 0, 0, INT64_MAX, &s->duplicates)) ||
                    (ce = hnum(q, r, sk, "copies", 0, 0, INT64_MAX, &s->copies)) ||
                    (ce = hnum(q, r, sk, "expired", 0, 0, INT64_MAX, &s->expired)) ||
                    (ce = hnum(q, r, sk, "skipped", 0, 0, INT64_MAX, &s->skipped)) ||
                    (ce = hnum(q, r, sk, "released", 0, 0, INT64_MAX, &s->released)) ||
                    (ce = hnum(q, r, sk, "leased", 0, 0, INT64_MAX, &s->leased)) ||
                    (ce = hnum(q, r, sk, "start", 0, INT64_MIN, INT64_MAX, &s->start)) ||
                    (ce = hnum(q, r, sk, "end", 0, INT64_MIN, INT64_MAX, &s->end)) ||
                    (ce = hnum(q, r, sk, "exhausted", 0, 0, 1, &ex)) ||
                    (ce = hnum(q, r, sk, "cooldown_until", 0, 0, INT64_MAX, &s->cooldown_until)) ||
                    (ce = hnum(q, r, sk, "cooldowns", 0, 0, INT64_MAX, &s->cooldowns)) ||
                    (ce = hnum(q, r, sk, "split_from", -1, -1, DRV_PARTITIONS_MAX - 1, &sf))) {
                    if (!first)
                        first = ce;
                    else
                        drv_conn_set_errstr(q->conn, kept);
                }
                s->exhausted = ex != 0;
                s->split_from = (int)sf;
                const char *cur = hfield(r, "cursor");
                if (cur && strlen(cur) >= sizeof s->cursor && !first)
                    first = corrupt(q, sk, "cursor", "longer than 31 bytes");
                snprintf(s->cursor, sizeof s->cursor, "%s", cur ? cur : "");
            } else if (i == 1) {
                s->pending = reply_int(r);
            } else if (i == 2) {
                s->retrying = reply_int(r);
            } else if (i == 3) {
                s->dead = reply_int(r);
            }
            freeReplyObject(r);
        }
    }
    return first;
}

drv_err drv_queue_feed(drv_queue *q, const char *job, int p, const char *expect, const char *next,
                       int exhausted, const drv_feed_item *items, size_t n,
                       int64_t *pending_after) {
    if (n > CHUNK) return DRV_EINVAL;
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
    redisReply *r;
    drv_err e = run_part(q, "feed", job, p, (int)nargs, args, lens, &r);
    free(args);
    free(lens);
    if (e) return e;
    if (pending_after) *pending_after = reply_int(r);
    freeReplyObject(r);
    return DRV_OK;
}

/* ---- rebalancing ----------------------------------------------------------------------------- */

drv_err drv_queue_split_new(drv_queue *q, const drv_spec *spec, int from, int to, int64_t cut,
                            int64_t end, const char *state) {
    num_t v[9];
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
        "expired",        "0",   "max_item_bytes", v[8], "done_base",    v[5]};
    size_t n = sizeof args / sizeof *args, lens[sizeof args / sizeof *args];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(args[i]);
    redisReply *r;
    drv_err e = run_part(q, "split_new", spec->id, to, (int)n, args, lens, &r);
    if (e) return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_split_cut(drv_queue *q, const char *job, int from, int64_t old_end, int64_t cut,
                            int *exhausted) {
    num_t oe, ne, c;
    snprintf(oe, sizeof oe, "%" PRId64, old_end);
    snprintf(ne, sizeof ne, "%" PRId64, cut - 1);
    snprintf(c, sizeof c, "%" PRId64, cut);
    const char *args[] = {oe, ne, c};
    size_t lens[] = {strlen(oe), strlen(ne), strlen(c)};
    redisReply *r;
    drv_err e = run_part(q, "split_cut", job, from, 3, args, lens, &r);
    if (e) return e;
    if (exhausted) *exhausted = reply_int(r) == 1;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_split_grow(drv_queue *q, const char *job, int to) {
    char jk[DRV_KEY_MAX];
    size_t jklen = drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    num_t n;
    snprintf(n, sizeof n, "%d", to);
    const char *keys[] = {jk}, *args[] = {n};
    size_t klens[] = {jklen}, alens[] = {strlen(n)};
    redisReply *r;
    drv_err e = drv_conn_script(q->conn, "split_grow", 1, keys, klens, 1, args, alens, &r);
    if (e) return e;
    freeReplyObject(r);
    return DRV_OK;
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

drv_err drv_queue_job_partitions(drv_queue *q, const char *job, int *out) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "HGET %s partitions", jk);
    if (e) return e;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return DRV_ENOJOB;
    }
    *out = atoi(r->str);
    freeReplyObject(r);
    return DRV_OK;
}

/* ---- workers --------------------------------------------------------------------------------- */

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
        redisReply *r;
        drv_err e = run_part(q, "cooldown", job, p, p == 0 ? 1 : 2, args, lens, &r);
        if (e) return e;
        if (p == 0) {
            snprintf(end, sizeof end, "%" PRId64, reply_int(r));
            lens[1] = strlen(end);
        }
        if (reply_int(r) > latest) latest = reply_int(r);
        freeReplyObject(r);
    }
    if (until) *until = latest;
    return DRV_OK;
}

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

/* Parses claim.lua's reply from element 'at' on: now, token, deadline, count, then (count > 0)
 * the lease record {"worker":...,"ids":[...]} (JSON), k, k pairs (index from 1, attempt) for
 * the items past their first attempt, and a payload per item for jobs that carry them. Frees
 * nothing of r; on an error *out holds nothing. */
static drv_err parse_claim(const redisReply *r, size_t at, drv_claim *out) {
    drv_claim c = {0};
    drv_err e = DRV_EREPLY;
    if (!is_array(r, at + 4)) return DRV_EREPLY;
    c.now_ms = reply_int(r->element[at]);
    int64_t token = reply_int(r->element[at + 1]);
    c.deadline_ms = reply_int(r->element[at + 2]);
    if (token < 0) { /* a fleet cool-down: nothing until deadline_ms */
        c.cooldown_until = c.deadline_ms;
        c.deadline_ms = 0;
    }
    int64_t count = reply_int(r->element[at + 3]);
    if (count == 0) {
        if (r->elements != at + 4) return DRV_EREPLY;
        *out = c;
        return DRV_OK;
    }
    if (count < 0 || count > 100000 || r->elements < at + 6) return DRV_EREPLY;
    const redisReply *lease = r->element[at + 4];
    int64_t k = reply_int(r->element[at + 5]);
    if (lease->type != REDIS_REPLY_STRING || k < 0 || k > count) return DRV_EREPLY;
    size_t pl0 = at + 6 + (size_t)k * 2; /* the first payload, if any */
    int payloads = r->elements == pl0 + (size_t)count;
    if (!payloads && r->elements != pl0) return DRV_EREPLY;
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
            if (pl->type != REDIS_REPLY_STRING) goto fail;
            if (pl->len && !(l->payload = dup_bytes(pl->str, pl->len))) {
                e = DRV_ENOMEM;
                goto fail;
            }
            l->plen = pl->len;
        }
    }
    for (size_t x = 0; x < (size_t)k; x++) {
        int64_t i = reply_int(r->element[at + 6 + x * 2]);
        if (i < 1 || i > count) goto fail;
        c.items[i - 1].attempt = (int)reply_int(r->element[at + 7 + x * 2]);
    }
    cJSON_Delete(j);
    *out = c;
    return DRV_OK;
fail:
    cJSON_Delete(j);
    for (size_t i = 0; i < c.n; i++)
        drv_lease_clear(&c.items[i]);
    free(c.items);
    return e;
}

drv_err drv_queue_claim(drv_queue *q, const char *job, int p, const char *worker, int max,
                        drv_claim *out) {
    num_t m;
    snprintf(m, sizeof m, "%d", max);
    const char *args[] = {worker, m};
    size_t lens[] = {strlen(worker), strlen(m)};
    redisReply *r;
    drv_err e = run_part(q, "claim", job, p, 2, args, lens, &r);
    if (e) return e;
    e = parse_claim(r, 0, out);
    freeReplyObject(r);
    return e;
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

drv_err drv_queue_ackclaim(drv_queue *q, const char *job, int p, const char *worker, int max,
                           const drv_ref *refs, const drv_bytes *resp, size_t n,
                           drv_ack_result *ack, drv_claim *out) {
    if (n > CHUNK) return DRV_EINVAL;
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
    redisReply *r;
    drv_err e = run_part(q, "ackclaim", job, p, (int)k, args, lens, &r);
    free(args);
    free(lens);
    free(nums);
    if (e) return e;
    memset(out, 0, sizeof *out);
    if (!is_array(r, 4)) {
        freeReplyObject(r);
        return DRV_EREPLY;
    }
    drv_ack_result a = {reply_int(r->element[0]), reply_int(r->element[1]),
                        reply_int(r->element[2])};
    if (ack) *ack = a;
    int64_t status = reply_int(r->element[3]);
    if (status == 1)
        e = DRV_EPAUSED;
    else if (status == 2)
        e = DRV_ECANCELLED;
    else
        e = parse_claim(r, 4, out);
    freeReplyObject(r);
    return e;
}

drv_err drv_queue_admit(drv_queue *q, const char *job, const char *worker, int64_t want,
                        int64_t held, int64_t unused, drv_admit *out) {
    char mk[DRV_KEY_MAX];
    size_t mklen = drv_key_job(mk, sizeof mk, q->prefix, job, "limits");
    num_t a[3];
    snprintf(a[0], sizeof a[0], "%" PRId64, want);
    snprintf(a[1], sizeof a[1], "%" PRId64, held);
    snprintf(a[2], sizeof a[2], "%" PRId64, unused);
    const char *keys[] = {mk}, *args[] = {worker, a[0], a[1], a[2]};
    size_t klens[] = {mklen}, alens[] = {strlen(worker), strlen(a[0]), strlen(a[1]), strlen(a[2])};
    redisReply *r;
    drv_err e = drv_conn_script(q->conn, "admit", 1, keys, klens, 4, args, alens, &r);
    if (e) return e;
    if (!is_array(r, 3)) {
        freeReplyObject(r);
        return DRV_EREPLY;
    }
    out->now_ms = reply_int(r->element[0]);
    out->granted = reply_int(r->element[1]);
    out->wait_ms = reply_int(r->element[2]);
    freeReplyObject(r);
    return DRV_OK;
}

/* Runs 'script' over refs in chunks as id, token pairs; 'sum' adds up each reply. */
static drv_err run_refs(drv_queue *q, const char *script, const char *job, int p,
                        const drv_ref *refs, size_t n, void (*sum)(const redisReply *r, void *acc),
                        void *acc) {
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
        redisReply *r;
        drv_err e = run_part(q, script, job, p, (int)(2 * m), args, lens, &r);
        if (e) return e;
        sum(r, acc);
        freeReplyObject(r);
    }
    return DRV_OK;
}

static void sum_ack(const redisReply *r, void *acc) {
    drv_ack_result *a = acc;
    if (!is_array(r, 3)) return;
    a->acked += reply_int(r->element[0]);
    a->duplicates += reply_int(r->element[1]);
    a->unknown += reply_int(r->element[2]);
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
        redisReply *r;
        drv_err e = run_part(q, "ack", job, p, (int)k, args, lens, &r);
        if (e) return e;
        sum_ack(r, &a);
        freeReplyObject(r);
    }
    if (res) *res = a;
    return DRV_OK;
}

static void sum_extend(const redisReply *r, void *acc) {
    if (is_array(r, 1)) *(int64_t *)acc += (int64_t)r->elements - 1;
}

drv_err drv_queue_extend(drv_queue *q, const char *job, int p, const drv_ref *refs, size_t n,
                         int64_t *lost) {
    int64_t l = 0;
    drv_err e = run_refs(q, "extend", job, p, refs, n, sum_extend, &l);
    if (lost && !e) *lost = l;
    return e;
}

static void sum_int(const redisReply *r, void *acc) {
    *(int64_t *)acc += reply_int(r);
}

drv_err drv_queue_release(drv_queue *q, const char *job, int p, const drv_ref *refs, size_t n,
                          int64_t *released) {
    int64_t k = 0;
    drv_err e = run_refs(q, "release", job, p, refs, n, sum_int, &k);
    if (released && !e) *released = k;
    return e;
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
            a[2] = x->permanent ? "1" : "0", l[2] = 1;
            a[3] = after[i], l[3] = strlen(after[i]);
            a[4] = x->error, l[4] = x->errlen;
        }
        redisReply *r;
        drv_err e = run_part(q, "fail", job, p, (int)(G * m), args, lens, &r);
        if (e) return e;
        if (is_array(r, 3)) {
            acc.retrying += reply_int(r->element[0]);
            acc.dead += reply_int(r->element[1]);
            acc.stale += reply_int(r->element[2]);
        }
        freeReplyObject(r);
    }
    if (res) *res = acc;
    return DRV_OK;
}

#define WORKER_TTL_S 86400 /* a worker's hash outlives its last heartbeat by a day */

static void worker_keys(const drv_queue *q, const char *worker, char *zk, char *hk) {
    drv_key_global(zk, DRV_KEY_MAX, q->prefix, "{workers}");
    char name[DRV_KEY_MAX];
    snprintf(name, sizeof name, "{workers}:%.160s", worker);
    drv_key_global(hk, DRV_KEY_MAX + 180, q->prefix, name);
}

drv_err drv_queue_heartbeat(drv_queue *q, const drv_worker_info *w, int *drain, int64_t *now_ms) {
    char zk[DRV_KEY_MAX], hk[DRV_KEY_MAX + 180];
    worker_keys(q, w->id, zk, hk);
    num_t pid, inf, qd, dn, fl, lease, ttl;
    snprintf(pid, sizeof pid, "%" PRId64, w->pid);
    snprintf(inf, sizeof inf, "%" PRId64, w->in_flight);
    snprintf(qd, sizeof qd, "%" PRId64, w->queued);
    snprintf(dn, sizeof dn, "%" PRId64, w->done);
    snprintf(fl, sizeof fl, "%" PRId64, w->failed);
    snprintf(lease, sizeof lease, "%" PRId64, w->lease_ms);
    snprintf(ttl, sizeof ttl, "%d", WORKER_TTL_S);
    const char *args[] = {w->id,      ttl,        "host",  w->host, "pid",       pid,
                          "version",  w->version, "jobs",  w->jobs, "in_flight", inf,
                          "queued",   qd,         "done",  dn,      "failed",    fl,
                          "lease_ms", lease,      "state", w->state};
    size_t n = sizeof args / sizeof *args, lens[sizeof args / sizeof *args];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(args[i]);
    const char *keys[] = {zk, hk};
    size_t klens[] = {strlen(zk), strlen(hk)};
    redisReply *r;
    drv_err e = drv_conn_script(q->conn, "beat", 2, keys, klens, (int)n, args, lens, &r);
    if (e) return e;
    if (!is_array(r, 2)) {
        freeReplyObject(r);
        return DRV_EREPLY;
    }
    if (now_ms) *now_ms = reply_int(r->element[0]);
    if (drain) *drain = reply_int(r->element[1]) == 1;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_worker_gone(drv_queue *q, const char *worker) {
    char zk[DRV_KEY_MAX], hk[DRV_KEY_MAX + 180];
    worker_keys(q, worker, zk, hk);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZREM %s %s", zk, worker);
    if (!e) freeReplyObject(r);
    if (!e && !(e = drv_conn_cmdf(q->conn, &r, "DEL %s", hk))) freeReplyObject(r);
    return e;
}

drv_err drv_queue_worker_drain(drv_queue *q, const char *worker) {
    char zk[DRV_KEY_MAX], hk[DRV_KEY_MAX + 180];
    worker_keys(q, worker, zk, hk);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "EXISTS %s", hk);
    if (e) return e;
    int exists = reply_int(r) == 1;
    freeReplyObject(r);
    if (!exists) return DRV_ENOJOB;
    if ((e = drv_conn_cmdf(q->conn, &r, "HSET %s drain 1", hk))) return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_workers(drv_queue *q, drv_worker_info **out, size_t *n, int64_t *now_ms) {
    char zk[DRV_KEY_MAX], hk[DRV_KEY_MAX + 180];
    worker_keys(q, "", zk, hk);
    int64_t now;
    drv_err e = redis_time(q, &now);
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
        if (!is_array(h, 2)) { /* its hash expired: a worker gone for a day */
            freeReplyObject(h);
            if ((e = drv_conn_cmdf(q->conn, &h, "ZREM %s %s", zk, id))) break;
            freeReplyObject(h);
            continue;
        }
        drv_worker_info *x = &w[k++];
        snprintf(x->id, sizeof x->id, "%s", id);
#define STR_FIELD(f) snprintf(x->f, sizeof x->f, "%s", hfield(h, #f) ? hfield(h, #f) : "")
        STR_FIELD(host);
        STR_FIELD(version);
        STR_FIELD(jobs);
        STR_FIELD(state);
#undef STR_FIELD
        x->pid = hint(h, "pid", 0);
        x->in_flight = hint(h, "in_flight", 0);
        x->queued = hint(h, "queued", 0);
        x->done = hint(h, "done", 0);
        x->failed = hint(h, "failed", 0);
        x->lease_ms = hint(h, "lease_ms", 30000);
        x->started_ms = hint(h, "started_ms", 0);
        x->beat_ms = hint(h, "beat_ms", 0);
        if (hint(h, "drain", 0) == 1 && strcmp(x->state, "running") == 0)
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

/* ---- operators ------------------------------------------------------------------------------- */

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
        if (!is_array(r, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return DRV_EREPLY;
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
    return scan_hash(q, job, p, 7, pair_page, &d);
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
        drv_err e = drv_conn_cmdf(q->conn, &r, "HSCAN %s 0 COUNT %d", k.ptr[7], max);
        if (e) return e;
        if (!is_array(r, 2) || r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return DRV_EREPLY;
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
    return scan_hash(q, job, p, 10, pair_page, &d);
}

struct revive_ctx {
    const char *job;
    int p;
    int64_t revived;
};

static drv_err revive_page(drv_queue *q, redisReply *kv, void *ud) {
    struct revive_ctx *c = ud;
    size_t n = kv->elements / 2;
    if (n == 0) return DRV_OK;
    const char **args = malloc(n * sizeof *args);
    size_t *lens = malloc(n * sizeof *lens);
    drv_err e = args && lens ? DRV_OK : DRV_ENOMEM;
    for (size_t i = 0; i < n && !e; i++)
        args[i] = kv->element[2 * i]->str, lens[i] = kv->element[2 * i]->len;
    for (size_t off = 0; off < n && !e; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        redisReply *r;
        e = run_part(q, "revive", c->job, c->p, (int)m, args + off, lens + off, &r);
        if (!e) {
            c->revived += reply_int(r);
            freeReplyObject(r);
        }
    }
    free(args);
    free(lens);
    return e;
}

/* ---- limits ---------------------------------------------------------------------------------- */

drv_err drv_queue_limits_get(drv_queue *q, const char *job, drv_limits *out) {
    char mk[DRV_KEY_MAX];
    drv_key_job(mk, sizeof mk, q->prefix, job, "limits");
    int64_t now;
    drv_err e = redis_time(q, &now);
    if (e) return e;
    redisReply *r;
    if ((e = drv_conn_cmdf(q->conn, &r, "HGETALL %s", mk))) return e;
    drv_limits l;
    memset(&l, 0, sizeof l);
    if (is_array(r, 2)) {
        l.present = 1;
        l.per_second = hint(r, "per_second", 0);
        l.burst = hint(r, "burst", 0);
        l.max_in_flight = hint(r, "max_in_flight", 0);
        l.weight = hint(r, "weight", 1);
        const char *t = hfield(r, "tokens");
        l.tokens = t ? (int64_t)strtod(t, NULL) : 0;
        int64_t lease_ms = hint(r, "lease_ms", 30000);
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
    if ((e = write_limits(q, spec, 0))) goto discard;
    if ((e = drv_conn_cmdf(q->conn, &r, "EXEC"))) goto out;
    /* EXEC answers nil when the transaction was aborted, an array otherwise. */
    if (r->type != REDIS_REPLY_ARRAY) e = DRV_EREPLY;
    freeReplyObject(r);
    goto out;
discard:
    if (e != DRV_EIO && drv_conn_cmdf(q->conn, &r, "DISCARD") == DRV_OK) freeReplyObject(r);
out:
    free(json);
    return e;
}

/* ---- dead items --------------------------------------------------------------------------------
 */

drv_err drv_queue_revive(drv_queue *q, const char *job, int p, int64_t *revived) {
    struct revive_ctx c = {job, p, 0};
    drv_err e = scan_hash(q, job, p, 7, revive_page, &c);
    if (revived && !e) *revived = c.revived;
    return e;
}
