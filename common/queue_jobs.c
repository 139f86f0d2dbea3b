/* Jobs: create, read, list, state, notes and marks, the coordinator lock, expiry, sweep and
 * delete (the job hash PREFIX{J}:job and what hangs off it). */
#include "queue_int.h"

#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- jobs ------------------------------------------------------------------------------------ */

drv_err drv_queue_job_delete(drv_queue *q, const char *job) {
    char jk[DRV_KEY_MAX], lk[DRV_KEY_MAX], mk[DRV_KEY_MAX], pk[DRV_KEY_MAX], sk[DRV_KEY_MAX],
        hk[DRV_KEY_MAX], jobs[DRV_KEY_MAX];
    drv_key_job(sk, sizeof sk, q->prefix, job, "skip");
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    drv_key_job(lk, sizeof lk, q->prefix, job, "lock");
    drv_key_job(pk, sizeof pk, q->prefix, job, "page");
    drv_key_job(mk, sizeof mk, q->prefix, job, "limits");
    drv_key_job(hk, sizeof hk, q->prefix, job, "history");
    drv_key_jobs(jobs, sizeof jobs, q->prefix);
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
        if ((e = drvq_each_bucket(q, &k, "UNLINK", NULL))) return e;
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
    if ((e = drvq_drain(q, nparts))) return e;
    /* The job hash goes last: it holds the partition count a retried delete needs. */
    if ((e = drv_conn_cmdf(q->conn, &r, "UNLINK %s %s %s %s %s %s", lk, mk, hk, pk, sk, jk)))
        return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_job_mark(drv_queue *q, const char *job, int64_t created_ms, const char *field,
                           int64_t *mark_ms) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    drvq_args a = {0};
    drvq_arg(&a, field);
    drvq_arg_i64(&a, created_ms);
    const char *keys[] = {jk};
    return drvq_script(q, &(drvq_call){.script = "mark",
                                       .nkeys = 1,
                                       .keys = keys,
                                       .nargs = a.n,
                                       .args = a.v,
                                       .lens = a.len,
                                       .shape = DRVQ_INT,
                                       .read = drvq_read_int,
                                       .out = mark_ms});
}

drv_err drv_queue_job_expire(drv_queue *q, const drv_job *job, int64_t ttl_ms,
                             int64_t *expires_ms) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job->id, "job");
    int64_t now;
    drv_err e = drvq_time(q, &now);
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
        if ((e = drvq_each_bucket(q, &k, "PEXPIRE", ttl))) return e;
        for (int i = 0; i < DRV_PART_NKEYS; i++) {
            const char *argv[] = {"PEXPIRE", k.ptr[i], ttl};
            size_t lens[] = {7, k.len[i], strlen(ttl)};
            if ((e = drv_conn_append(q->conn, 3, argv, lens))) return e;
        }
        /* One partition's replies at a time keeps the pipeline (and its buffer) small. */
        if ((e = drvq_drain(q, DRV_PART_NKEYS))) return e;
    }
    /* The limits hash, then the job hash last: while it lives, drover purge can find the
     * partitions. */
    char mk[DRV_KEY_MAX], sk[DRV_KEY_MAX];
    drv_key_job(mk, sizeof mk, q->prefix, job->id, "limits");
    drv_key_job(sk, sizeof sk, q->prefix, job->id, "skip"); /* --dedupe first's repeats */
    const char *pm[] = {"PEXPIRE", mk, ttl};
    if ((e = drv_conn_cmd(q->conn, 3, pm, NULL, &r))) return e;
    freeReplyObject(r);
    drv_key_job(mk, sizeof mk, q->prefix, job->id, "history");
    if ((e = drv_conn_cmd(q->conn, 3, pm, NULL, &r))) return e;
    freeReplyObject(r);
    const char *ps[] = {"PEXPIRE", sk, ttl};
    if ((e = drv_conn_cmd(q->conn, 3, ps, NULL, &r))) return e;
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
            if (!drvq_is_array(r, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
                r->element[1]->type != REDIS_REPLY_ARRAY) {
                e = drvq_bad_reply(q, "SCAN", r);
                freeReplyObject(r);
                return e;
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
                    total += drvq_int(u);
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

drv_err drv_queue_job_create(drv_queue *q, const drv_spec *spec, int64_t total,
                             const drv_part_init *parts, int replace) {
    return drv_queue_job_create_noted(q, spec, total, parts, replace, NULL);
}

drv_err drv_queue_job_create_noted(drv_queue *q, const drv_spec *spec, int64_t total,
                                   const drv_part_init *parts, int replace, const char *const *kv) {
    char jk[DRV_KEY_MAX], jobs[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, spec->id, "job");
    drv_key_jobs(jobs, sizeof jobs, q->prefix);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZSCORE %s %s", jobs, spec->id);
    if (e) return drvq_wrongtype(q, e, jobs);
    int visible = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if ((e = drv_conn_cmdf(q->conn, &r, "EXISTS %s", jk))) return e;
    int leftover = drvq_int(r) > 0;
    freeReplyObject(r);
    /* Listed without a job hash: it expired (ttl_after_done); the id is free again. */
    if (visible && leftover && !replace) return DRV_EEXIST;
    if ((visible || leftover) && (e = drv_queue_job_delete(q, spec->id))) return e;

    int64_t now;
    if ((e = drvq_time(q, &now))) return e;
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
    int payloads = spec->source == DRV_SRC_PG ||
                   (spec->source != DRV_SRC_RANGE && spec->format != DRV_FMT_LINES);
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
        num_t v[10];
        snprintf(v[9], sizeof v[9], "%" PRId64, spec->max_throttled);
        snprintf(v[8], sizeof v[8], "%" PRId64, spec->max_item_bytes);
        snprintf(v[0], sizeof v[0], "%" PRId64, spec->lease_ms);
        snprintf(v[1], sizeof v[1], "%" PRId64, spec->max_attempts);
        snprintf(v[2], sizeof v[2], "%" PRId64, spec->backoff_ms);
        snprintf(v[3], sizeof v[3], "%" PRId64, spec->backoff_max_ms);
        snprintf(v[4], sizeof v[4], "%d", payloads);
        snprintf(v[5], sizeof v[5], "%" PRId64, parts[p].start);
        snprintf(v[6], sizeof v[6], "%" PRId64, parts[p].end);
        snprintf(v[7], sizeof v[7], "%d", parts[p].exhausted);
        const char *argv[] = {"HSET", k.ptr[DRV_K_STATE], "state", "running", "lease_ms", v[0],
                              "max_attempts", v[1], "backoff_ms", v[2], "backoff_max_ms", v[3],
                              "payloads", v[4], "start", v[5], "end", v[6], "cursor",
                              parts[p].cursor, "exhausted", v[7], "fed", "0", "done", "0", "failed",
                              "0", "dead", "0", "duplicates", "0", "expired", "0",
                              /* claim.lua dead-letters an id longer than this */
                              "max_item_bytes", v[8], "max_throttled", v[9], "throttled", "0",
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
    if ((e = drvq_drain(q, n))) return e;
    /* 3. the fleet-wide limits (lua/admit.lua reads them), bucket full */
    if ((e = drvq_write_limits(q, spec, 1))) return e;
    /* 4. the caller's fields (a file's fingerprint), running, then visible */
    if (kv && (e = drv_queue_job_note(q, spec->id, kv))) return e;
    if ((e = drv_conn_cmdf(q->conn, &r, "HSET %s state running", jk))) return e;
    freeReplyObject(r);
    if ((e = drv_conn_cmdf(q->conn, &r, "ZADD %s %lld %s", jobs, (long long)now, spec->id)))
        return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_job_get(drv_queue *q, const char *job, drv_job *out) {
    if (!drv_job_id_valid(job)) return DRV_ENOJOB;
    char jk[DRV_KEY_MAX], jobs[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    drv_key_jobs(jobs, sizeof jobs, q->prefix);
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZSCORE %s %s", jobs, job);
    if (e) return drvq_wrongtype(q, e, jobs);
    int visible = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (!visible) return DRV_ENOJOB;
    if ((e = drv_conn_cmdf(q->conn, &r, "HGETALL %s", jk))) return drvq_wrongtype(q, e, jk);
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
    const char *spec = drvq_is_array(r, 2) ? drvq_hfield(r, "spec") : NULL;
    const char *state = drvq_is_array(r, 2) ? drvq_hfield(r, "state") : NULL;
    char why[256] = "missing";
    if (!spec || !state || drv_spec_parse(spec, strlen(spec), &j.spec, why, sizeof why) != DRV_OK) {
        /* Listed and there, but unusable: say so (drover list, status) rather than hide it. */
        freeReplyObject(r);
        return drvq_corrupt(q, jk, !state && spec ? "state" : "spec", why);
    }
    snprintf(j.id, sizeof j.id, "%s", job);
    snprintf(j.state, sizeof j.state, "%s", state);
    const char *halted = drvq_hfield(r, "halted");
    snprintf(j.halted, sizeof j.halted, "%s", halted ? halted : "");
    /* Every number with the bounds submit gave it: a hand-edited field refuses the job, named,
     * rather than turning into 0 partitions or 100000 of them. */
    int64_t parts = 0;
    if ((e = drvq_hnum(q, r, jk, "partitions", 0, 1, DRV_PARTITIONS_MAX, &parts)) ||
        (e = drvq_hnum(q, r, jk, "total", -1, -1, INT64_MAX, &j.total)) ||
        (e = drvq_hnum(q, r, jk, "created_ms", 0, 1, INT64_MAX, &j.created_ms)) ||
        (e = drvq_hnum(q, r, jk, "finished_ms", 0, 0, INT64_MAX, &j.finished_ms)) ||
        (e = drvq_hnum(q, r, jk, "page", 0, 0, INT64_MAX, &j.page)) ||
        (e = drvq_hnum(q, r, jk, "complete_sent", 0, 0, INT64_MAX, &j.complete_sent)) ||
        (e = drvq_hnum(q, r, jk, "dead_alert_sent", 0, 0, INT64_MAX, &j.dead_alert_sent)) ||
        (e = drvq_hnum(q, r, jk, "expires_ms", 0, 0, INT64_MAX, &j.expires_ms))) {
        freeReplyObject(r);
        return e;
    }
    j.partitions = (int)parts;
    /* Only range partitions split (and only up to the cap); the others keep submit's count, which
     * also places each stdin id. */
    if (!drvq_hfield(r, "partitions") || j.partitions < j.spec.partitions ||
        (j.spec.source != DRV_SRC_RANGE && j.partitions != j.spec.partitions)) {
        char what[160];
        snprintf(what, sizeof what, "%d partitions, but the spec has %" PRId64 "%s", j.partitions,
                 j.spec.partitions, j.spec.source == DRV_SRC_RANGE ? " (splits only add)" : "");
        freeReplyObject(r);
        return drvq_corrupt(q, jk, "partitions", what);
    }
    if (!drvq_hfield(r, "created_ms")) {
        freeReplyObject(r);
        return drvq_corrupt(q, jk, "created_ms", "missing");
    }
    j.st = drv_job_state_parse(state);
    if (j.st == DRV_JOB_UNKNOWN || j.st == DRV_JOB_MISSING) {
        char what[96];
        snprintf(what, sizeof what, "unknown state \"%.40s\"", state);
        freeReplyObject(r);
        return drvq_corrupt(q, jk, "state", what);
    }
    snprintf(j.page_url, sizeof j.page_url, "%s",
             drvq_hfield(r, "page_url") ? drvq_hfield(r, "page_url") : "");
    const char *rate = drvq_hfield(r, "rate");
    j.rate_milli = rate ? (int64_t)(strtod(rate, NULL) * 1000) : 0;
    freeReplyObject(r);
    *out = j;
    return DRV_OK;
}

drv_err drv_queue_job_list(drv_queue *q, char (**ids)[DRV_JOB_ID_MAX + 1], size_t *n) {
    char jobs[DRV_KEY_MAX];
    drv_key_jobs(jobs, sizeof jobs, q->prefix);
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
    int finished = drv_job_state_finished(drv_job_state_parse(state));
    /* Partitions first: the scripts honour them, and a crash between the two leaves the job
     * hash (what operators and the coordinator read) to be set again. With created_ms, none is
     * written back once gone (lua/mirror.lua), nor the job hash (below). */
    if (job->created_ms && (e = drv_queue_job_mirror_state(q, job, state))) return e;
    for (int p = 0; !job->created_ms && p < job->partitions; p++) {
        drv_part_keys k;
        drv_keys_part(&k, q->prefix, job->id, p);
        const char *argv[] = {"HSET", k.ptr[DRV_K_STATE], "state", state};
        if ((e = drv_conn_append(q->conn, 4, argv, NULL))) return e;
    }
    if (!job->created_ms && (e = drvq_drain(q, job->partitions))) return e;
    num_t now_s = "";
    if (finished) {
        int64_t now;
        if ((e = drvq_time(q, &now))) return e;
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

drv_err drv_queue_job_mirror_state(drv_queue *q, const drv_job *job, const char *state) {
    const char *args[] = {state};
    size_t lens[] = {strlen(state)};
    for (int p = 0; p < job->partitions; p++) {
        drv_err e = drvq_script(q, &(drvq_call){.script = "mirror",
                                                .job = job->id,
                                                .part = p,
                                                .nargs = 1,
                                                .args = args,
                                                .lens = lens});
        if (e) return e;
    }
    return DRV_OK;
}

static drv_err note_if(drv_queue *q, const char *job, int64_t created_ms, const char *const *kv,
                       int drop_page) {
    char jk[DRV_KEY_MAX], pk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    drv_key_job(pk, sizeof pk, q->prefix, job, "page");
    drvq_args a = {0};
    drvq_arg(&a, "");
    drvq_arg_i64(&a, created_ms);
    for (; kv[0] && kv[1] && a.n < 32; kv += 2)
        drvq_arg(&a, kv[0]), drvq_arg(&a, kv[1]);
    const char *keys[] = {jk, pk};
    int64_t wrote = 0;
    drv_err e = drvq_script(q, &(drvq_call){.script = "mark",
                                            .nkeys = drop_page ? 2 : 1,
                                            .keys = keys,
                                            .nargs = a.n,
                                            .args = a.v,
                                            .lens = a.len,
                                            .read = drvq_read_int,
                                            .out = &wrote});
    if (e) return e;
    return wrote ? DRV_OK : DRV_ENOJOB;
}

drv_err drv_queue_job_note_if(drv_queue *q, const char *job, int64_t created_ms,
                              const char *const *kv) {
    return note_if(q, job, created_ms, kv, 0);
}

drv_err drv_queue_page_done(drv_queue *q, const char *job, int64_t created_ms,
                            const char *const *kv) {
    return note_if(q, job, created_ms, kv, 1);
}

drv_err drv_queue_skip_write(drv_queue *q, const char *job, const int64_t *at, int64_t n) {
    char sk[DRV_KEY_MAX];
    drv_key_job(sk, sizeof sk, q->prefix, job, "skip");
    drv_err e = DRV_OK;
    for (int64_t i = 0; i < n && !e;) {
        /* ZADD key score member ..., a few thousand at a time, pipelined. */
        int batch = 0;
        for (; i < n && batch < 64 && !e; batch++) {
            const char *argv[2 + 2 * 64];
            size_t lens[2 + 2 * 64];
            num_t v[64];
            int argc = 0;
            argv[argc] = "ZADD", lens[argc++] = 4;
            argv[argc] = sk, lens[argc++] = strlen(sk);
            for (int k = 0; k < 64 && i < n; k++, i++) {
                snprintf(v[k], sizeof v[k], "%" PRId64, at[i]);
                argv[argc] = v[k], lens[argc++] = strlen(v[k]);
                argv[argc] = v[k], lens[argc++] = strlen(v[k]);
            }
            e = drv_conn_append(q->conn, argc, argv, lens);
        }
        if (!e) e = drvq_drain(q, batch);
    }
    return e;
}

drv_err drv_queue_skip_range(drv_queue *q, const char *job, int64_t from, int64_t to, int64_t *out,
                             size_t cap, size_t *n) {
    char sk[DRV_KEY_MAX];
    drv_key_job(sk, sizeof sk, q->prefix, job, "skip");
    redisReply *r;
    *n = 0;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZRANGEBYSCORE %s %lld (%lld LIMIT 0 %lld", sk,
                              (long long)from, (long long)to, (long long)cap);
    if (e) return drvq_wrongtype(q, e, sk);
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements && *n < cap; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING) out[(*n)++] = atoll(r->element[i]->str);
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_skip_count(drv_queue *q, const char *job, int64_t *n) {
    char sk[DRV_KEY_MAX];
    drv_key_job(sk, sizeof sk, q->prefix, job, "skip");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "ZCARD %s", sk);
    if (e) return drvq_wrongtype(q, e, sk);
    *n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_feeder_beat(drv_queue *q, const char *job, int64_t created_ms,
                              const char *state) {
    int64_t now;
    drv_err e = drvq_time(q, &now);
    if (e) return e;
    num_t at;
    snprintf(at, sizeof at, "%" PRId64, now);
    const char *kv[] = {"feeder", state, "feeder_beat_ms", at, NULL};
    return note_if(q, job, created_ms, kv, 0);
}

drv_err drv_queue_feeder_get(drv_queue *q, const char *job, char state[16], int64_t *age_ms) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    state[0] = '\0';
    *age_ms = -1;
    int64_t now;
    drv_err e = drvq_time(q, &now);
    if (e) return e;
    redisReply *r;
    if ((e = drv_conn_cmdf(q->conn, &r, "HMGET %s feeder feeder_beat_ms", jk)))
        return drvq_wrongtype(q, e, jk);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        if (r->element[0]->type == REDIS_REPLY_STRING)
            snprintf(state, 16, "%s", r->element[0]->str);
        if (r->element[1]->type == REDIS_REPLY_STRING) *age_ms = now - atoll(r->element[1]->str);
    }
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_page_stage(drv_queue *q, const char *job, const char *text, size_t len) {
    char pk[DRV_KEY_MAX];
    drv_key_job(pk, sizeof pk, q->prefix, job, "page");
    const char *argv[] = {"SET", pk, text};
    size_t lens[] = {3, strlen(pk), len};
    redisReply *r;
    drv_err e = drv_conn_cmd(q->conn, 3, argv, lens, &r);
    if (e) return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_page_staged(drv_queue *q, const char *job, char **text) {
    char pk[DRV_KEY_MAX];
    drv_key_job(pk, sizeof pk, q->prefix, job, "page");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "GET %s", pk);
    if (e) return drvq_wrongtype(q, e, pk);
    *text = NULL;
    if (r->type == REDIS_REPLY_STRING && !(*text = strdup(r->str))) e = DRV_ENOMEM;
    freeReplyObject(r);
    return e;
}

drv_err drv_queue_page_drop(drv_queue *q, const char *job) {
    char pk[DRV_KEY_MAX];
    drv_key_job(pk, sizeof pk, q->prefix, job, "page");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "UNLINK %s", pk);
    if (e) return e;
    freeReplyObject(r);
    return DRV_OK;
}

drv_err drv_queue_job_field(drv_queue *q, const char *job, const char *field, char **out) {
    char jk[DRV_KEY_MAX];
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    redisReply *r;
    drv_err e = drv_conn_cmdf(q->conn, &r, "HGET %s %s", jk, field);
    if (e) return drvq_wrongtype(q, e, jk);
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
    drv_key_job(lk, sizeof lk, q->prefix, job, "lock");
    drv_key_job(jk, sizeof jk, q->prefix, job, "job");
    drvq_args a = {0};
    drvq_arg(&a, owner);
    drvq_arg_i64(&a, ttl_ms);
    drvq_arg_i64(&a, created_ms);
    /* Without created_ms: the lock alone (KEYS[1], ARGV[1..2]); lua/lock.lua. */
    const char *keys[] = {lk, jk};
    int64_t v = 0;
    drv_err e = drvq_script(q, &(drvq_call){.script = "lock",
                                            .nkeys = created_ms ? 2 : 1,
                                            .keys = keys,
                                            .nargs = created_ms ? 3 : 2,
                                            .args = a.v,
                                            .lens = a.len,
                                            .read = drvq_read_int,
                                            .out = &v});
    if (e) return e;
    if (v < 0) return DRV_ENOJOB;
    *held = v == 1;
    return DRV_OK;
}

drv_err drv_queue_unlock(drv_queue *q, const char *job, const char *owner) {
    char lk[DRV_KEY_MAX];
    drv_key_job(lk, sizeof lk, q->prefix, job, "lock");
    const char *keys[] = {lk}, *args[] = {owner};
    size_t alens[] = {strlen(owner)};
    return drvq_script(
        q,
        &(drvq_call){
            .script = "unlock", .nkeys = 1, .keys = keys, .nargs = 1, .args = args, .lens = alens});
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
