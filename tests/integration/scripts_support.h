/* Shared by tests/integration/test_scripts_*.c: one redis-server per test binary (group setup),
 * an empty database per test (FLUSHALL), a drv_queue for the code under test and a plain
 * hiredis connection for looking at keys the way an operator would with redis-cli.
 *
 * Everything here is static inline so each test binary uses what it needs without unused
 * function warnings. Include after <cmocka.h>. */
#ifndef DRV_TEST_SCRIPTS_SUPPORT_H
#define DRV_TEST_SCRIPTS_SUPPORT_H

#include "clock.h"
#include "keys.h"
#include "queue.h"
#include "redis_fixture.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a test waits for something that depends on time (a 100 ms lease expiring). */
#define POLL_MS 5000

static drv_test_redis server;
static drv_queue *q;
static redisContext *rc;

static inline int group_teardown(void **state) {
    (void)state;
    if (rc) redisFree(rc);
    rc = NULL;
    drv_queue_close(q);
    q = NULL;
    drv_test_redis_stop(&server);
    return 0;
}

static inline int group_setup(void **state) {
    if (drv_test_redis_start(&server, NULL) != 0) return -1;
    drv_redis_cfg cfg;
    char why[256] = "";
    rc = redisConnect("127.0.0.1", server.port);
    if (!rc || rc->err || drv_url_parse(server.url, &cfg, why, sizeof why) != DRV_OK ||
        drv_queue_open(&cfg, "drover:", &q, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "could not connect to the test redis-server: %s\n", why);
        group_teardown(state); /* cmocka skips the group teardown when setup fails */
        return -1;
    }
    return 0;
}

static inline int flush(void **state) {
    (void)state;
    return drv_test_redis_flush(&server);
}

/* ---- looking at keys ----------------------------------------------------------------------- */

static inline redisReply *rcmd(const char *fmt, va_list ap) {
    redisReply *r = redisvCommand(rc, fmt, ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r->str);
    return r;
}

/* An integer reply, or a string reply read as a number; -1 for nil. */
static inline long long rint_(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = rcmd(fmt, ap);
    va_end(ap);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                  : -1;
    freeReplyObject(r);
    return v;
}

/* A string or status reply (caller frees), NULL for nil. */
static inline char *rstr(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = rcmd(fmt, ap);
    va_end(ap);
    char *s = r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS
                  ? strndup(r->str, r->len)
                  : NULL;
    freeReplyObject(r);
    return s;
}

/* Asserts that a command's string reply is 'want' (NULL: nil). */
static inline void assert_rstr(const char *want, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = rcmd(fmt, ap);
    va_end(ap);
    if (!want) {
        if (r->type != REDIS_REPLY_NIL) fail_msg("expected nil, got type %d", r->type);
    } else {
        if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
            fail_msg("expected \"%s\", got reply type %d", want, r->type);
        assert_string_equal(r->str, want);
    }
    freeReplyObject(r);
}

/* The elements of an array reply joined with ',' ("" for an empty array), e.g. LRANGE. */
static inline void assert_rlist(const char *want, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = rcmd(fmt, ap);
    va_end(ap);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    size_t cap = 16;
    for (size_t i = 0; i < r->elements; i++)
        cap += r->element[i]->len + 1;
    char *got = calloc(1, cap);
    assert_non_null(got);
    for (size_t i = 0; i < r->elements; i++) {
        if (i) strcat(got, ",");
        strncat(got, r->element[i]->str, r->element[i]->len);
    }
    freeReplyObject(r);
    if (strcmp(got, want) != 0) fail_msg("expected [%s], got [%s]", want, got);
    free(got);
}

/* Redis TIME in ms: the clock the scripts use. */
static inline int64_t redis_now(void) {
    redisReply *r = redisCommand(rc, "TIME");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int64_t ms =
        strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return ms;
}

/* Polls Redis TIME until it is past 't' (at most POLL_MS): for tests that need the script
 * clock to have moved, e.g. two jobs created in different milliseconds. */
static inline void wait_redis_past(int64_t t) {
    int64_t deadline = drv_now_ms() + POLL_MS;
    while (redis_now() <= t) {
        if (drv_now_ms() > deadline) fail_msg("Redis TIME did not pass %" PRId64, t);
        drv_sleep_ms(1);
    }
}

/* ---- the done record ---------------------------------------------------------------------- */

/* The done record of partition p, any kind (README "Keys"): range partitions carry
 * `done_base` in their state hash and keep a bitmap (bit id - done_base); others carry
 * `done_buckets` (N) and keep HASHes done:0 .. done:N-1; jobs from before buckets a SET. */
static inline int done_is_bitmap(const char *job, int p) {
    return rint_("HEXISTS drover:{%s.%d}:state done_base", job, p) == 1;
}

static inline int done_is_buckets(const char *job, int p) {
    return rint_("HEXISTS drover:{%s.%d}:state done_buckets", job, p) == 1;
}

static inline long long done_base_of(const char *job, int p) {
    return rint_("HGET drover:{%s.%d}:state done_base", job, p);
}

/* The bucket key of ARGV[1] (KEYS: state, done), written from README's description rather than
 * taken from lua/lib/done.lua: h = the first 32 bits of the id's SHA-1, T the power of two with
 * T <= N < 2T; bucket h mod 2T, or h mod T when that is N or more. */
#define DONE_BUCKET_LUA                                                                            \
    "local n = tonumber(redis.call('HGET', KEYS[1], 'done_buckets')) "                             \
    "local t = 1 while t * 2 <= n do t = t * 2 end "                                               \
    "local h = tonumber(string.sub(redis.sha1hex(ARGV[1]), 1, 8), 16) "                            \
    "local b = h % (2 * t) if b >= n then b = h % t end "                                          \
    "return KEYS[2] .. ':' .. b"

static inline char *done_bucket_of(const char *job, int p, const char *id) {
    return rstr("EVAL %s 2 drover:{%s.%d}:state drover:{%s.%d}:done %s", DONE_BUCKET_LUA, job, p,
                job, p, id);
}

/* 1 when 'id' is recorded done in partition p. */
static inline int is_done(const char *job, int p, const char *id) {
    if (done_is_buckets(job, p)) {
        char *key = done_bucket_of(job, p, id);
        int n = (int)rint_("HEXISTS %s %s", key, id);
        free(key);
        return n;
    }
    if (!done_is_bitmap(job, p)) return (int)rint_("SISMEMBER drover:{%s.%d}:done %s", job, p, id);
    return (int)rint_("GETBIT drover:{%s.%d}:done %lld", job, p,
                      strtoll(id, NULL, 10) - done_base_of(job, p));
}

/* How many ids partition p records done. */
static inline long long done_count(const char *job, int p) {
    if (done_is_buckets(job, p))
        return rint_("EVAL %s 2 drover:{%s.%d}:state drover:{%s.%d}:done",
                     "local n, c = tonumber(redis.call('HGET', KEYS[1], 'done_buckets')), 0 "
                     "for b = 0, n - 1 do c = c + redis.call('HLEN', KEYS[2] .. ':' .. b) end "
                     "return c",
                     job, p, job, p);
    if (!done_is_bitmap(job, p)) return rint_("SCARD drover:{%s.%d}:done", job, p);
    return rint_("BITCOUNT drover:{%s.%d}:done", job, p);
}

/* Records 'id' done directly (as an earlier run would have). */
static inline void mark_done(const char *job, int p, const char *id) {
    if (done_is_buckets(job, p)) {
        char *key = done_bucket_of(job, p, id);
        if (rint_("HSETNX %s %s %s", key, id, ""))
            rint_("HINCRBY drover:{%s.%d}:state done_ids 1", job, p);
        free(key);
    } else if (!done_is_bitmap(job, p))
        rint_("SADD drover:{%s.%d}:done %s", job, p, id);
    else
        rint_("SETBIT drover:{%s.%d}:done %lld 1", job, p,
              strtoll(id, NULL, 10) - done_base_of(job, p));
}

/* ---- leases: one per claim; leased maps its token to its deadline, owner maps the token to
 * {"worker":"W","ids":[...]} (lua/lib/lease.lua) ------------------------------------------------
 */

/* {token, worker, deadline} of the lease holding ARGV[1], or {}. */
#define LEASE_FIND_LUA                                                                             \
    "for _, t in ipairs(redis.call('HKEYS', KEYS[2])) do "                                         \
    "local l = cjson.decode(redis.call('HGET', KEYS[2], t)) "                                      \
    "for _, id in ipairs(l.ids) do if id == ARGV[1] then "                                         \
    "return {t, l.worker, redis.call('ZSCORE', KEYS[1], t)} end end end return {}"

static inline redisReply *lease_find(const char *job, int p, const char *id) {
    redisReply *r = redisCommand(rc, "EVAL %s 2 drover:{%s.%d}:leased drover:{%s.%d}:owner %s",
                                 LEASE_FIND_LUA, job, p, job, p, id);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    return r;
}

/* The deadline (ms) of the lease holding id, -1 when no lease holds it. */
static inline long long lease_deadline(const char *job, int p, const char *id) {
    redisReply *r = lease_find(job, p, id);
    long long d = r->elements == 3 ? strtoll(r->element[2]->str, NULL, 10) : -1;
    freeReplyObject(r);
    return d;
}

/* Asserts that id is held by the lease "TOKEN:WORKER" (want NULL: by none). */
static inline void assert_holder(const char *want, const char *job, int p, const char *id) {
    redisReply *r = lease_find(job, p, id);
    char got[256] = "";
    if (r->elements == 3)
        snprintf(got, sizeof got, "%s:%s", r->element[0]->str, r->element[1]->str);
    freeReplyObject(r);
    if (!want && *got) fail_msg("expected %s to be held by no lease, held by %s", id, got);
    if (want && strcmp(got, want) != 0) fail_msg("expected %s held by %s, got [%s]", id, want, got);
}

/* How many ids the partition's leases hold. Asserts that the state hash's 'leased' counter
 * agrees with the leases themselves, and that every lease has a deadline and an owner entry. */
static inline long long leased_count(const char *job, int p) {
    long long n = rint_("EVAL %s 2 drover:{%s.%d}:leased drover:{%s.%d}:owner", /* */
                        "local n = 0 "
                        "for _, t in ipairs(redis.call('HKEYS', KEYS[2])) do "
                        "n = n + #cjson.decode(redis.call('HGET', KEYS[2], t)).ids end "
                        "if redis.call('ZCARD', KEYS[1]) ~= redis.call('HLEN', KEYS[2]) then "
                        "return -1 end return n",
                        job, p, job, p);
    assert_true(n >= 0); /* as many leases in leased as in owner */
    long long c = rint_("HGET drover:{%s.%d}:state leased", job, p);
    assert_int_equal(c < 0 ? 0 : c, n);
    return n;
}

/* ---- jobs and items ------------------------------------------------------------------------ */

typedef struct jobopt {
    int parts;
    int64_t lease_ms, max_attempts, backoff_ms, backoff_max_ms;
    int payloads; /* an NDJSON file source: items carry payloads */
} jobopt;

static inline jobopt defaults(void) {
    return (jobopt){1, 10000, 3, 100, 400, 0};
}

static inline drv_spec spec_of(const char *id, const jobopt *o) {
    drv_spec s;
    drv_spec_init(&s);
    snprintf(s.id, sizeof s.id, "%s", id);
    if (o->payloads) {
        s.source = DRV_SRC_FILE;
        s.format = DRV_FMT_NDJSON;
        snprintf(s.path, sizeof s.path, "/nonexistent/items.ndjson");
        snprintf(s.id_field, sizeof s.id_field, "id");
    } else {
        s.range_start = 1;
        s.range_end = 1000000;
    }
    s.partitions = o->parts;
    s.lease_ms = o->lease_ms;
    s.max_attempts = o->max_attempts;
    s.backoff_ms = o->backoff_ms;
    s.backoff_max_ms = o->backoff_max_ms;
    return s;
}

/* Creates job 'id' with every partition's cursor at "0". Each partition of a range job spans
 * 0..range_end, so a test may feed any id of the range to any partition (claim refuses an id
 * outside its partition's start..end). */
static inline void create_job(const char *id, const jobopt *o) {
    drv_spec s = spec_of(id, o);
    drv_part_init parts[16];
    assert_true(o->parts <= 16);
    memset(parts, 0, sizeof parts);
    for (int p = 0; p < o->parts; p++) {
        snprintf(parts[p].cursor, sizeof parts[p].cursor, "0");
        if (!o->payloads) parts[p].end = s.range_end;
    }
    assert_int_equal(drv_queue_job_create(q, &s, -1, parts, 0), DRV_OK);
}

/* Feeds ids PREFIX from..to to partition p in chunks of 1000, the cursor counting items: the
 * bare number when prefix is NULL, else PREFIX-00001 style, with payload "{}" (a payload job). */
static inline void feed_ids_as(const char *job, int p, const char *prefix, int from, int to) {
    static drv_feed_item items[1000];
    static char ids[1000][32];
    for (int lo = from; lo <= to; lo += 1000) {
        int hi = lo + 999 < to ? lo + 999 : to, n = 0;
        for (int i = lo; i <= hi; i++, n++) {
            if (prefix)
                snprintf(ids[n], sizeof ids[n], "%s-%05d", prefix, i);
            else
                snprintf(ids[n], sizeof ids[n], "%d", i);
            items[n] =
                (drv_feed_item){ids[n], strlen(ids[n]), prefix ? "{}" : NULL, prefix ? 2 : 0};
        }
        char expect[32], next[32];
        long long cur = rint_("HGET drover:{%s.%d}:state cursor", job, p);
        snprintf(expect, sizeof expect, "%lld", cur);
        snprintf(next, sizeof next, "%lld", cur + n);
        assert_int_equal(
            drv_queue_feed(q, job, p, expect, next, prefix ? 1 : 0, items, (size_t)n, NULL),
            DRV_OK);
    }
}

/* Feeds ids from..to (decimal) to partition p in chunks of 1000, the cursor counting items. */
static inline void feed_range(const char *job, int p, int from, int to) {
    feed_ids_as(job, p, NULL, from, to);
}

/* A job with items 1..n pending in partition 0. */
static inline void job_with_items(const char *id, const jobopt *o, int n) {
    create_job(id, o);
    if (n > 0) feed_range(id, 0, 1, n);
}

static inline void claim(const char *job, int max, const char *worker, drv_claim *c) {
    drv_err e = drv_queue_claim(q, job, 0, worker, max, c);
    if (e != DRV_OK) fail_msg("claim: %s (%s)", drv_strerror(e), drv_queue_errstr(q));
}

static inline void claim_free(drv_claim *c) {
    for (size_t i = 0; i < c->n; i++)
        drv_lease_clear(&c->items[i]);
    free(c->items);
    memset(c, 0, sizeof *c);
}

static inline drv_ref ref_of(const drv_lease *l) {
    return (drv_ref){l->id, l->idlen, l->token};
}

/* Claims until something comes back (an expired lease or a due retry), at most POLL_MS. */
static inline void claim_when_back(const char *job, int max, const char *worker, drv_claim *c) {
    int64_t deadline = drv_now_ms() + POLL_MS;
    for (;;) {
        claim(job, max, worker, c);
        if (c->n > 0) return;
        claim_free(c);
        if (drv_now_ms() > deadline) fail_msg("nothing came back within %d ms", POLL_MS);
        drv_sleep_ms(10);
    }
}

/* Reaps partition 0 until 'done(st)' holds, at most POLL_MS; leaves the last report in *st. */
static inline void reap_until(const char *job, int (*done)(const drv_part_stat *),
                              drv_part_stat *st) {
    int64_t deadline = drv_now_ms() + POLL_MS;
    for (;;) {
        memset(st, 0, sizeof *st);
        assert_int_equal(drv_queue_reap(q, job, 0, st), DRV_OK);
        if (done(st)) return;
        if (drv_now_ms() > deadline) fail_msg("reap: condition not met within %d ms", POLL_MS);
        drv_sleep_ms(10);
    }
}

static inline int nothing_leased(const drv_part_stat *st) {
    return st->leased == 0;
}

static inline int something_dead(const drv_part_stat *st) {
    return st->dead > 0;
}

static inline drv_failure failure_of(const drv_lease *l, int permanent, int64_t after,
                                     const char *err) {
    return (drv_failure){ref_of(l), permanent, 0, after, err, strlen(err)};
}

/* One counter of partition p's state hash (0 when absent). */
static inline long long counter(const char *job, int p, const char *name) {
    long long v = rint_("HGET drover:{%s.%d}:state %s", job, p, name);
    return v < 0 ? 0 : v;
}

#endif
