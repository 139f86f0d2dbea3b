/* drover web: a dashboard of jobs and workers, served by libmicrohttpd from one polling thread.
 *
 * One thread answers every connection (libmicrohttpd multiplexes them, so a client that sends
 * nothing holds no one up) and is the only user of its Redis connection. What it reads from
 * Redis is kept for a second (the cache below): a hundred viewers polling once a second cost
 * what one does. The numbers are drover status --json's own objects (drv_status_json), rendered
 * into HTML by web_html.c or served as they are under /api/.
 *
 * Actions (POST) need a session: a browser signs in with the token (--token-file or
 * DROVER_WEB_TOKEN) and gets a cookie and a CSRF token that every form carries back. Without a
 * token the server takes no actions at all. */
#include "coord.h"
#include "metrics.h"
#include "web.h"
#include "web_assets.h"

#include "cli.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CACHE_MS    1000 /* how long a snapshot of Redis serves every viewer */
#define CACHE_SLOTS 64
#define SESSION_MS  (12 * 3600 * 1000LL) /* a sign-in lasts 12 hours */
#define SESSIONS    64
#define DEAD_SHOWN  100 /* dead items on a job's page */
#define BODY_MAX    16384
#define FIELD_MAX   512
#define TOKEN_MAX   256
#define COOKIE      "drover_session"

/* Sent with every page: no inline script or style, nothing from elsewhere, no framing. */
#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

typedef struct cached {
    char key[DRV_JOB_ID_MAX + 64];
    cJSON *val;
    int64_t at;   /* drv_now_ms when read; 0: empty slot */
    uint64_t gen; /* the request that last handed it out: never evicted during that request */
} cached;

typedef struct session {
    char id[33], csrf[33]; /* hex of 16 random bytes each; id[0] == 0: free */
    int64_t at;
} session;

typedef struct web {
    struct MHD_Daemon *d;
    drv_queue *q; /* the polling thread's alone */
    char token[TOKEN_MAX + 1];
    size_t token_len; /* 0: read-only */
    cached cache[CACHE_SLOTS];
    uint64_t gen; /* counts requests: a snapshot handed out in this one stays alive to its end */
    session sessions[SESSIONS];
} web;

/* One request's state across libmicrohttpd's calls: the form fields of a POST. */
typedef struct req {
    struct MHD_PostProcessor *pp;
    size_t body;
    int too_big;
    char csrf[FIELD_MAX], token[FIELD_MAX], rate[FIELD_MAX], mif[FIELD_MAX], worker[FIELD_MAX],
        force[FIELD_MAX], match[FIELD_MAX];
    char *ids[DEAD_SHOWN]; /* the dead items ticked ("id" fields) */
    size_t nids;
} req;

/* ---- small helpers --------------------------------------------------------------------------- */

/* Compares in time that depends on the lengths only, so a guess learns nothing from timing. */
static int same_secret(const char *a, size_t alen, const char *b, size_t blen) {
    unsigned char diff = alen != blen;
    for (size_t i = 0; i < alen && i < blen; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static int random_hex(char out[33]) {
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    if (got != sizeof b) return -1;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

/* ---- the cache of Redis snapshots ------------------------------------------------------------ */

static cached *cache_find(web *w, const char *key) {
    int64_t now = drv_now_ms();
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (w->cache[i].at && now - w->cache[i].at < CACHE_MS && strcmp(w->cache[i].key, key) == 0)
            return &w->cache[i];
    return NULL;
}

/* Keeps val (taken over) under key, in an empty or the oldest slot that no snapshot of this
 * request points into: a page renders from up to four snapshots taken one after another, so
 * the one taken last must not free one taken before it (a request uses far fewer than
 * CACHE_SLOTS). Returns 0, or -1 (val freed) when every slot is in use by this request. */
static int cache_put(web *w, const char *key, cJSON *val) {
    cached *slot = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cached *s = &w->cache[i];
        if (s->at && s->gen == w->gen) continue; /* handed out in this request */
        if (s->at && strcmp(s->key, key) == 0) {
            slot = s;
            break;
        }
        if (!slot || s->at < slot->at) slot = s;
    }
    if (!slot) {
        cJSON_Delete(val);
        return -1;
    }
    cJSON_Delete(slot->val);
    snprintf(slot->key, sizeof slot->key, "%s", key);
    slot->val = val;
    slot->at = drv_now_ms();
    slot->gen = w->gen;
    return 0;
}

/* After an action: the next page shows its effect, not a second-old snapshot. */
static void cache_clear(web *w) {
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cJSON_Delete(w->cache[i].val);
        w->cache[i].val = NULL;
        w->cache[i].at = 0;
    }
}

/* ---- reading Redis --------------------------------------------------------------------------- */

/* Every job as drover list --json shows it; a job drover cannot read is listed as broken. */
static drv_err read_jobs(drv_queue *q, cJSON **out) {
    char(*ids)[DRV_JOB_ID_MAX + 1];
    size_t n;
    drv_err e = drv_queue_job_list(q, &ids, &n);
    if (e) return e;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n && !e; i++) {
        cJSON *o = NULL;
        e = drv_status_json(q, ids[i], 0, &o);
        if (e == DRV_ECORRUPT) {
            if ((o = cJSON_CreateObject())) {
                cJSON_AddStringToObject(o, "id", ids[i]);
                cJSON_AddStringToObject(o, "state", "broken");
                cJSON_AddStringToObject(o, "error", drv_queue_strerror(q, e));
            }
            e = DRV_OK;
        } else if (e == DRV_ENOJOB) { /* deleted since the listing */
            e = DRV_OK;
            continue;
        }
        if (o) cJSON_AddItemToArray(arr, o);
    }
    free(ids);
    if (!arr) return DRV_ENOMEM;
    if (e) cJSON_Delete(arr);
    *out = e ? NULL : arr;
    return e;
}

static drv_err read_workers(drv_queue *q, cJSON **out) {
    drv_worker_info *w;
    size_t n;
    int64_t now;
    drv_err e = drv_queue_workers(q, &w, &n, &now);
    if (e) return e;
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "workers");
    cJSON_AddNumberToObject(o, "now_ms", (double)now);
    for (size_t i = 0; arr && i < n; i++)
        cJSON_AddItemToArray(arr, drv_worker_json(&w[i], now));
    free(w);
    *out = o;
    return o ? DRV_OK : DRV_ENOMEM;
}

static void add_dead(const char *id, size_t idlen, const char *err, size_t errlen, void *ud) {
    cJSON *o = cJSON_CreateObject();
    char *idz = strndup(id, idlen);
    cJSON *parsed = cJSON_ParseWithLength(err, errlen);
    cJSON_AddStringToObject(o, "id", idz ? idz : "");
    if (parsed)
        cJSON_AddItemToObject(o, "error", parsed);
    else
        cJSON_AddStringToObject(o, "error", "(not JSON)");
    cJSON_AddItemToArray(ud, o);
    free(idz);
}

/* key: "ID P CURSOR": a page of dead items from partition P at HSCAN cursor CURSOR, as
 * {"items": [{"id", "error"}], "next": {"p", "cursor"} or null at the end}. */
static drv_err read_dead(drv_queue *q, const char *key, cJSON **out) {
    char id[DRV_JOB_ID_MAX + 1], cursor[32];
    int p = 0, parts = 0;
    if (sscanf(key, "%64s %d %31s", id, &p, cursor) != 3) return DRV_EINVAL;
    drv_err e = drv_queue_job_partitions(q, id, &parts);
    if (e) return e;
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "items");
    if (!arr) {
        cJSON_Delete(o);
        return DRV_ENOMEM;
    }
    if ((e = drv_queue_dead_page(q, id, parts, DEAD_SHOWN, &p, cursor, add_dead, arr))) {
        cJSON_Delete(o);
        return e;
    }
    if (p < parts) {
        cJSON *next = cJSON_AddObjectToObject(o, "next");
        cJSON_AddNumberToObject(next, "p", p);
        cJSON_AddStringToObject(next, "cursor", cursor);
    } else {
        cJSON_AddNullToObject(o, "next");
    }
    *out = o;
    return DRV_OK;
}

static drv_err read_history(drv_queue *q, const char *id, cJSON **out) {
    drv_history_sample *h;
    size_t n;
    drv_err e = drv_queue_history(q, id, DRV_HISTORY_MAX, &h, &n);
    if (e) return e;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "at_ms", (double)h[i].at_ms);
        cJSON_AddNumberToObject(o, "done", (double)h[i].done);
        cJSON_AddNumberToObject(o, "dead", (double)h[i].dead);
        cJSON_AddNumberToObject(o, "rate", (double)h[i].rate_milli / 1000.0);
        cJSON_AddItemToArray(arr, o);
    }
    free(h);
    *out = arr;
    return arr ? DRV_OK : DRV_ENOMEM;
}

/* A snapshot by key ("jobs", "workers", "job:ID", "dead:ID", "hist:ID"): from the cache when under
 * a second old, else read (one reconnect when the connection broke). The cache owns it. */
static drv_err snapshot(web *w, const char *key, const cJSON **out) {
    cached *c = cache_find(w, key);
    if (c) {
        c->gen = w->gen; /* pinned until this request ends */
        *out = c->val;
        return DRV_OK;
    }
    drv_err e = DRV_EIO;
    cJSON *val = NULL;
    for (int attempt = 0; attempt < 2 && e == DRV_EIO; attempt++) {
        char why[300];
        if (drv_queue_broken(w->q) && drv_queue_reconnect(w->q, why, sizeof why) != DRV_OK) {
            drv_warn("web: Redis at %s: %s", drv_queue_addr(w->q), why);
            break;
        }
        if (strcmp(key, "jobs") == 0)
            e = read_jobs(w->q, &val);
        else if (strcmp(key, "workers") == 0)
            e = read_workers(w->q, &val);
        else if (strncmp(key, "job:", 4) == 0)
            e = drv_status_json(w->q, key + 4, 1, &val);
        else if (strncmp(key, "hist:", 5) == 0)
            e = read_history(w->q, key + 5, &val);
        else
            e = read_dead(w->q, key + 5, &val);
    }
    if (e) return e;
    if (cache_put(w, key, val) != 0) return DRV_ENOMEM;
    *out = val;
    return DRV_OK;
}

/* ---- responses ------------------------------------------------------------------------------- */

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status, char *buf, size_t len,
                                const char *type, const char *cache) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache ? cache : "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, cache ? cache : "GET, HEAD");
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* A page: 'render' writes it into a memory stream. */
typedef struct page {
    FILE *f;
    char *buf;
    size_t len;
} page;

static int page_open(page *p) {
    p->buf = NULL;
    p->len = 0;
    p->f = open_memstream(&p->buf, &p->len);
    return p->f ? 0 : -1;
}

static enum MHD_Result page_send(struct MHD_Connection *conn, unsigned status, page *p) {
    if (fclose(p->f) != 0) {
        free(p->buf);
        return MHD_NO;
    }
    return send_buf(conn, status, p->buf, p->len, "text/html; charset=utf-8", NULL);
}

static enum MHD_Result note(struct MHD_Connection *conn, unsigned status, const char *title,
                            const char *text, const web_ctx *c) {
    page p;
    if (page_open(&p)) return MHD_NO;
    web_html_note(p.f, title, text, c);
    return page_send(conn, status, &p);
}

static enum MHD_Result send_json(struct MHD_Connection *conn, const cJSON *o) {
    char *txt = cJSON_PrintUnformatted(o);
    if (!txt) return MHD_NO;
    char *buf = strdup(txt); /* cJSON's allocator may not be malloc: hand over a malloc'd copy */
    cJSON_free(txt);
    if (!buf) return MHD_NO;
    return send_buf(conn, MHD_HTTP_OK, buf, strlen(buf), "application/json", NULL);
}

/* 303 to url (already safe to put in a header: ids are [A-Za-z0-9_-]) with msg (if any) as
 * ?msg=. */
static enum MHD_Result see_other(struct MHD_Connection *conn, const char *url, const char *msg,
                                 const char *cookie) {
    char loc[1024];
    size_t o = (size_t)snprintf(loc, sizeof loc, msg ? "%s?msg=" : "%s", url);
    if (!msg) msg = "";
    for (const unsigned char *s = (const unsigned char *)msg; *s && o + 4 < sizeof loc; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            strchr("-_.", *s))
            loc[o++] = (char)*s;
        else
            o += (size_t)snprintf(loc + o, sizeof loc - o, "%%%02X", *s);
    }
    loc[o] = '\0';
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (cookie) MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_SEE_OTHER, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result redis_down(struct MHD_Connection *conn, web *w, drv_err e,
                                  const web_ctx *c) {
    char text[600];
    snprintf(text, sizeof text, "Redis at %s: %s", drv_queue_addr(w->q),
             drv_queue_strerror(w->q, e));
    drv_warn("web: %s", text);
    return note(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Redis unavailable", text, c);
}

/* ---- sessions -------------------------------------------------------------------------------- */

static session *session_of(web *w, struct MHD_Connection *conn) {
    const char *id = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, COOKIE);
    if (!w->token_len || !id) return NULL;
    int64_t now = drv_now_ms();
    for (int i = 0; i < SESSIONS; i++) {
        session *s = &w->sessions[i];
        if (!s->id[0] || !same_secret(s->id, 32, id, strlen(id))) continue;
        if (now - s->at > SESSION_MS) { /* signed in too long ago: sign in again */
            s->id[0] = '\0';
            s->at = 0;
            return NULL;
        }
        return s;
    }
    return NULL;
}

static session *session_new(web *w) {
    session *s = &w->sessions[0];
    for (int i = 0; i < SESSIONS; i++)
        if (w->sessions[i].at < s->at) s = &w->sessions[i]; /* a free one, or the oldest */
    if (random_hex(s->id) || random_hex(s->csrf)) {
        s->id[0] = '\0';
        return NULL;
    }
    s->at = drv_now_ms();
    return s;
}

/* ---- actions --------------------------------------------------------------------------------- */

static int field_ll(const char *s, long long *v) {
    if (!s[0]) {
        *v = -1;
        return 0;
    }
    return drv_parse_ll(s, 0, 1000000000000LL, v);
}

/* POST /jobs/ID/ACTION: the admin code the command line runs. */
static enum MHD_Result job_action(struct MHD_Connection *conn, web *w, const char *id,
                                  const char *act, const req *r, const web_ctx *c) {
    char why[600] = "", done[700], back[128];
    snprintf(back, sizeof back, "/jobs/%s", id);
    drv_job *job = malloc(sizeof *job); /* a whole spec: not for the stack */
    if (!job) return MHD_NO;
    drv_err e = DRV_OK;
    if (strcmp(act, "purge") != 0) e = drv_queue_job_get(w->q, id, job);
    if (e == DRV_ENOJOB) {
        free(job);
        return note(conn, MHD_HTTP_NOT_FOUND, "No such job", "There is no such job.", c);
    }
    if (e) {
        free(job);
        return redis_down(conn, w, e, c);
    }
    if (strcmp(act, "pause") == 0) {
        e = drv_admin_transition(w->q, job, "running", "paused", why, sizeof why);
        snprintf(done, sizeof done, "job %s: paused", id);
    } else if (strcmp(act, "resume") == 0) {
        e = drv_admin_transition(w->q, job, "paused", "running", why, sizeof why);
        snprintf(done, sizeof done, "job %s: running", id);
    } else if (strcmp(act, "cancel") == 0) {
        e = drv_admin_transition(w->q, job, "running paused", "cancelled", why, sizeof why);
        snprintf(done, sizeof done, "job %s: cancelled", id);
    } else if (strcmp(act, "retry") == 0) {
        int64_t n = 0;
        e = drv_admin_retry(w->q, job, r->nids ? (const char *const *)r->ids : NULL, r->nids,
                            r->match[0] ? r->match : NULL, &n, why, sizeof why);
        snprintf(done, sizeof done, "job %s: %lld dead items back to pending%s", id, (long long)n,
                 n > 0 && job->st == DRV_JOB_DONE ? "; the job was done: start drover run" : "");
    } else if (strcmp(act, "set") == 0) {
        long long rate, mif;
        if (field_ll(r->rate, &rate) || field_ll(r->mif, &mif)) {
            snprintf(why, sizeof why, "rate and max in flight are whole numbers (or empty)");
            e = DRV_EINVAL;
        } else {
            e = drv_admin_set_limits(w->q, job, rate, mif, why, sizeof why);
        }
        snprintf(done, sizeof done, "job %s: limits set", id);
    } else if (strcmp(act, "purge") == 0) {
        int64_t swept = 0;
        e = drv_admin_purge(w->q, id, strcmp(r->force, "1") == 0, &swept, why, sizeof why);
        snprintf(done, sizeof done, "job %s: purged", id);
        snprintf(back, sizeof back, "/");
    } else {
        free(job);
        return note(conn, MHD_HTTP_NOT_FOUND, "Not found", "No such action.", c);
    }
    free(job);
    cache_clear(w);
    if (e == DRV_EINVAL) return note(conn, MHD_HTTP_CONFLICT, "Refused", why, c);
    if (e == DRV_ENOJOB) return note(conn, MHD_HTTP_NOT_FOUND, "No such job", why, c);
    if (e) return note(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Failed", why, c);
    drv_info("web: %s", done);
    return see_other(conn, back, done, NULL);
}

static enum MHD_Result drain(struct MHD_Connection *conn, web *w, const req *r, const web_ctx *c) {
    drv_err e = drv_queue_worker_drain(w->q, r->worker);
    cache_clear(w);
    char done[700];
    if (e == DRV_ENOJOB) {
        snprintf(done, sizeof done, "no worker %s is registered", r->worker);
        return note(conn, MHD_HTTP_NOT_FOUND, "No such worker", done, c);
    }
    if (e) return redis_down(conn, w, e, c);
    snprintf(done, sizeof done, "worker %s: asked to drain", r->worker);
    drv_info("web: %s", done);
    return see_other(conn, "/workers", done, NULL);
}

/* ---- routing --------------------------------------------------------------------------------- */

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *filename, const char *type, const char *enc,
                                const char *data, uint64_t off, size_t size) {
    (void)kind, (void)filename, (void)type, (void)enc;
    req *r = cls;
    if (strcmp(key, "id") == 0) { /* repeated: one per ticked item, maybe in pieces */
        if (off == 0) {
            if (r->nids == DEAD_SHOWN || !(r->ids[r->nids] = calloc(1, FIELD_MAX))) {
                r->too_big = 1;
                return MHD_YES;
            }
            r->nids++;
        }
        if (!r->nids || off + size >= FIELD_MAX) {
            r->too_big = 1;
            return MHD_YES;
        }
        memcpy(r->ids[r->nids - 1] + off, data, size);
        return MHD_YES;
    }
    char *dst = strcmp(key, "csrf") == 0            ? r->csrf
                : strcmp(key, "match") == 0         ? r->match
                : strcmp(key, "token") == 0         ? r->token
                : strcmp(key, "rate") == 0          ? r->rate
                : strcmp(key, "max_in_flight") == 0 ? r->mif
                : strcmp(key, "worker") == 0        ? r->worker
                : strcmp(key, "force") == 0         ? r->force
                                                    : NULL;
    if (!dst) return MHD_YES;
    if (off + size >= FIELD_MAX) {
        r->too_big = 1;
        return MHD_YES;
    }
    memcpy(dst + off, data, size);
    dst[off + size] = '\0';
    return MHD_YES;
}

static void on_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                    enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    req *r = *req_cls;
    if (!r) return;
    if (r->pp) MHD_destroy_post_processor(r->pp);
    for (size_t i = 0; i < r->nids; i++)
        free(r->ids[i]);
    free(r);
    *req_cls = NULL;
}

/* Splits "/jobs/ID[/ACTION]" into id and act ("" when absent). 0 when it is such a path. */
static int job_path(const char *url, const char *base, char *id, char *act) {
    size_t n = strlen(base);
    if (strncmp(url, base, n) != 0) return -1;
    const char *s = url + n, *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    if (len == 0 || len > DRV_JOB_ID_MAX) return -1;
    memcpy(id, s, len);
    id[len] = '\0';
    if (!drv_job_id_valid(id)) return -1;
    act[0] = '\0';
    if (slash) {
        if (strlen(slash + 1) >= 16 || strchr(slash + 1, '/')) return -1;
        strcpy(act, slash + 1);
    }
    return 0;
}

static enum MHD_Result get_page(struct MHD_Connection *conn, web *w, const char *url, web_ctx *c) {
    char id[DRV_JOB_ID_MAX + 1], act[16], key[DRV_JOB_ID_MAX + 64];
    const cJSON *a = NULL, *b = NULL, *d = NULL;
    drv_err e;
    page p;
    c->msg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "msg");
    if (strncmp(url, "/static/", 8) == 0) {
        for (const drv_web_asset *x = drv_web_assets; x->name; x++) {
            if (strcmp(url + 8, x->name) != 0) continue;
            const char *type = strstr(x->name, ".js")    ? "text/javascript; charset=utf-8"
                               : strstr(x->name, ".svg") ? "image/svg+xml"
                                                         : "text/css; charset=utf-8";
            char *buf = malloc(x->len ? x->len : 1);
            if (!buf) return MHD_NO;
            memcpy(buf, x->data, x->len);
            return send_buf(conn, MHD_HTTP_OK, buf, x->len, type, "max-age=300");
        }
    } else if (strcmp(url, "/favicon.ico") == 0) { /* what browsers ask for unprompted */
        return see_other(conn, "/static/favicon.svg", NULL, NULL);
    } else if (strcmp(url, "/api/jobs") == 0) {
        if ((e = snapshot(w, "jobs", &a))) return redis_down(conn, w, e, c);
        return send_json(conn, a);
    } else if (strcmp(url, "/api/workers") == 0) {
        if ((e = snapshot(w, "workers", &a))) return redis_down(conn, w, e, c);
        return send_json(conn, a);
    } else if (job_path(url, "/api/jobs/", id, act) == 0 && strcmp(act, "history") == 0) {
        snprintf(key, sizeof key, "job:%s", id); /* a job that exists, else 404 */
        if ((e = snapshot(w, key, &a)) == DRV_ENOJOB)
            return note(conn, MHD_HTTP_NOT_FOUND, "No such job", "There is no such job.", c);
        snprintf(key, sizeof key, "hist:%s", id);
        if (e || (e = snapshot(w, key, &b))) return redis_down(conn, w, e, c);
        return send_json(conn, b);
    } else if (job_path(url, "/api/jobs/", id, act) == 0 && !act[0]) {
        snprintf(key, sizeof key, "job:%s", id);
        if ((e = snapshot(w, key, &a)) == DRV_ENOJOB)
            return note(conn, MHD_HTTP_NOT_FOUND, "No such job", "There is no such job.", c);
        if (e) return redis_down(conn, w, e, c);
        return send_json(conn, a);
    } else if (strcmp(url, "/") == 0) {
        if ((e = snapshot(w, "jobs", &a))) return redis_down(conn, w, e, c);
        c->state = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "state");
        c->find = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "find");
        c->sort = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "sort");
        if (page_open(&p)) return MHD_NO;
        web_html_jobs(p.f, a, c);
        return page_send(conn, MHD_HTTP_OK, &p);
    } else if (strcmp(url, "/workers") == 0) {
        if ((e = snapshot(w, "workers", &a))) return redis_down(conn, w, e, c);
        if (page_open(&p)) return MHD_NO;
        web_html_workers(p.f, a, c);
        return page_send(conn, MHD_HTTP_OK, &p);
    } else if (job_path(url, "/jobs/", id, act) == 0 && !act[0]) {
        snprintf(key, sizeof key, "job:%s", id);
        if ((e = snapshot(w, key, &a)) == DRV_ENOJOB)
            return note(conn, MHD_HTTP_NOT_FOUND, "No such job", "There is no such job.", c);
        if (e) return redis_down(conn, w, e, c);
        /* The page of dead items asked for: ?dp=PARTITION&dc=CURSOR (the start without). */
        const char *dp = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "dp");
        const char *dc = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "dc");
        long long part = 0, cur = 0;
        if ((dp && drv_parse_ll(dp, 0, 1 << 20, &part)) ||
            (dc && drv_parse_ll(dc, 0, 9223372036854775807LL, &cur)))
            return note(conn, MHD_HTTP_BAD_REQUEST, "Bad page", "dp and dc are numbers.", c);
        snprintf(key, sizeof key, "dead:%s %lld %lld", id, part, cur);
        if ((e = snapshot(w, "workers", &b)) || (e = snapshot(w, key, &d)))
            return redis_down(conn, w, e, c);
        const cJSON *h = NULL;
        snprintf(key, sizeof key, "hist:%s", id);
        if ((e = snapshot(w, key, &h))) return redis_down(conn, w, e, c);
        if (page_open(&p)) return MHD_NO;
        web_html_job(p.f, a, b, d, h, c);
        return page_send(conn, MHD_HTTP_OK, &p);
    }
    return note(conn, MHD_HTTP_NOT_FOUND, "Not found", "There is no such page.", c);
}

/* The POST routes: 1 for a path one may POST to (and GET may not). */
static int post_route(const char *url) {
    char id[DRV_JOB_ID_MAX + 1], act[16];
    return strcmp(url, "/login") == 0 || strcmp(url, "/logout") == 0 ||
           strcmp(url, "/workers/drain") == 0 || (job_path(url, "/jobs/", id, act) == 0 && act[0]);
}

static enum MHD_Result post(struct MHD_Connection *conn, web *w, const char *url, req *r,
                            session *s, web_ctx *c) {
    if (!w->token_len)
        return note(conn, MHD_HTTP_FORBIDDEN, "Read-only",
                    "drover web was started without a token: it takes no actions.", c);
    if (strcmp(url, "/login") == 0) {
        if (!same_secret(r->token, strlen(r->token), w->token, w->token_len)) {
            drv_warn("web: a sign-in with a wrong token was refused");
            return note(conn, MHD_HTTP_FORBIDDEN, "Refused", "That is not the token.", c);
        }
        session *n = session_new(w);
        if (!n) return MHD_NO;
        char cookie[128];
        snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d",
                 COOKIE, n->id, (int)(SESSION_MS / 1000));
        return see_other(conn, "/", "signed in", cookie);
    }
    /* Every other POST: a session, and its CSRF token in the form. */
    if (!s) return note(conn, MHD_HTTP_FORBIDDEN, "Refused", "Sign in with the token first.", c);
    if (!same_secret(r->csrf, strlen(r->csrf), s->csrf, 32))
        return note(conn, MHD_HTTP_FORBIDDEN, "Refused",
                    "The form's CSRF token is missing or stale: reload the page.", c);
    if (strcmp(url, "/logout") == 0) {
        memset(s, 0, sizeof *s);
        return see_other(conn, "/", "signed out",
                         COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    }
    if (strcmp(url, "/workers/drain") == 0) return drain(conn, w, r, c);
    char id[DRV_JOB_ID_MAX + 1], act[16];
    job_path(url, "/jobs/", id, act);
    return job_action(conn, w, id, act, r, c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **req_cls) {
    (void)version;
    web *w = cls;
    w->gen++; /* snapshots handed out before this request may be evicted now */
    session *s = session_of(w, conn);
    web_ctx c = {.has_token = w->token_len > 0, .csrf = s ? s->csrf : NULL};
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int is_post = strcmp(method, "POST") == 0;
    if (is_post && post_route(url)) {
        req *r = *req_cls;
        if (!r) { /* the first call: headers only */
            if (!(r = calloc(1, sizeof *r))) return MHD_NO;
            *req_cls = r;
            r->pp = MHD_create_post_processor(conn, 4096, on_field, r);
            if (!r->pp)
                return note(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "Bad form",
                            "Expected an application/x-www-form-urlencoded form.", &c);
            return MHD_YES;
        }
        if (*upload_len) {
            r->body += *upload_len;
            if (r->body > BODY_MAX)
                r->too_big = 1;
            else if (MHD_post_process(r->pp, upload, *upload_len) != MHD_YES)
                r->too_big = 1;
            *upload_len = 0;
            return MHD_YES;
        }
        if (r->too_big) return note(conn, 413, "Too large", "The form is too large.", &c);
        return post(conn, w, url, r, s, &c);
    }
    if (is_get && !post_route(url)) return get_page(conn, w, url, &c);
    if (post_route(url)) {
        char *allow = strdup("POST");
        if (!allow) return MHD_NO;
        return send_buf(conn, MHD_HTTP_METHOD_NOT_ALLOWED, allow, 4, "text/plain", "POST");
    }
    char *text = strdup("GET, HEAD");
    if (!text) return MHD_NO;
    return send_buf(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, strlen(text), "text/plain", NULL);
}

/* ---- drover web ------------------------------------------------------------------------------ */

/* The token from a file (its first line) or DROVER_WEB_TOKEN. 0, or 2 after a message. */
static int load_token(const char *file, web *w) {
    char buf[TOKEN_MAX + 2] = "";
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr, "error: --token-file %s: %s\n", file, strerror(errno));
            return EXIT_USAGE;
        }
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
        buf[strcspn(buf, "\r\n")] = '\0';
    } else if (getenv("DROVER_WEB_TOKEN")) {
        snprintf(buf, sizeof buf, "%s", getenv("DROVER_WEB_TOKEN"));
    } else {
        return 0;
    }
    size_t n = strlen(buf);
    if (n < 16 || n > TOKEN_MAX) {
        fprintf(stderr, "error: the web token (%s) must be 16 to %d characters, got %zu\n",
                file ? "--token-file" : "DROVER_WEB_TOKEN", TOKEN_MAX, n);
        return EXIT_USAGE;
    }
    memcpy(w->token, buf, n + 1);
    w->token_len = n;
    return 0;
}

int cmd_web(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover web [--addr HOST:PORT] [--token-file FILE]",
        "Serves a dashboard of every job and worker at http://HOST:PORT/ (127.0.0.1:8080 by\n"
        "default; loopback only unless told otherwise): the jobs with their progress, rate, ETA,\n"
        "dead items and limits; one job's chart of done and rate over the last day (drover run\n"
        "--history-ms), partitions, workers, errors grouped by message and dead items, 100 a\n"
        "page; the workers with their heartbeats. Pages read without JavaScript; with it they\n"
        "refresh themselves every second. Every number is drover status --json's, and\n"
        "/api/jobs, /api/jobs/JOB, /api/jobs/JOB/history and /api/workers serve them as JSON.\n"
        "What is read from Redis serves every viewer for a second, so many viewers cost what\n"
        "one does.\n"
        "Actions (pause, resume, cancel, set rate and max_in_flight, retry dead items: all,\n"
        "those whose error matches or those ticked, purge, drain a worker) need the token\n"
        "(--token-file, or DROVER_WEB_TOKEN; 16 to 256 characters): the page asks for it once\n"
        "and keeps a session cookie. Without a token the server is read-only. Stops on SIGINT\n"
        "or SIGTERM.",
        "  drover web\n"
        "  DROVER_WEB_TOKEN=$(cat /etc/drover/web-token) drover web --addr 127.0.0.1:9000"};
    drv_cli cli;
    const char *addr_s = NULL, *token_file = NULL;
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"addr", "DROVER_WEB_ADDR", DRV_OPT_STR, "127.0.0.1:8080", "HOST:PORT",
         "where to listen (HOST:PORT or [IPV6]:PORT)", 0, 0, &addr_s},
        {"token-file", NULL, DRV_OPT_STR, NULL, "FILE",
         "the token actions need, the file's first line (else DROVER_WEB_TOKEN; none: "
         "read-only)",
         0, 0, &token_file},
        {0},
    };
    char *pos[1];
    int npos;
    int rc = drv_opts_parse(opts, &doc, argc, argv, pos, 0, &npos, NULL, NULL);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : EXIT_USAGE;
    web *w = calloc(1, sizeof *w);
    if (!w) return 1;
    drv_metrics_addr addr;
    char why[600];
    if (drv_metrics_addr_parse(addr_s, &addr, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "error: --addr: %s\n", why);
        free(w);
        return EXIT_USAGE;
    }
    if ((rc = load_token(token_file, w))) {
        free(w);
        return rc;
    }
    drv_redis_cfg cfg;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, &w->q))) {
        free(w);
        return rc;
    }
    /* The polling thread starts with SIGINT and SIGTERM blocked, and so does this one, which
     * waits for them with sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (addr.ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    w->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w, MHD_OPTION_SOCK_ADDR,
                            (const struct sockaddr *)&addr.ss, MHD_OPTION_NOTIFY_COMPLETED, on_done,
                            w, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    if (!w->d) {
        fprintf(stderr, "error: cannot listen on %s (in use, or not an address of this host)\n",
                addr.text);
        drv_queue_close(w->q);
        free(w);
        return 1;
    }
    drv_info("web: serving http://%s/ (%s)", addr.text,
             w->token_len ? "actions need the token" : "read-only: no token");
    int sig = 0;
    sigwait(&sigs, &sig);
    drv_info("web: stopping (signal %d)", sig);
    MHD_stop_daemon(w->d);
    cache_clear(w);
    drv_queue_close(w->q);
    free(w);
    return 0;
}
