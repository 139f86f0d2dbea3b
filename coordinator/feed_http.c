/* The paginated HTTP source: the coordinator walks a listing API a page at a time and feeds
 * each page's items, hash-partitioned by id, as it arrives.
 *
 * Where it is: the job hash holds "page" (pages fed so far) and "page_url" (the URL of the
 * next one). A fetched page is staged in Redis (PREFIX{J}:page: its number, the next page's
 * URL and its items) before any partition takes an item of it. Each partition's cursor says
 * how far it got into that page: "K" (page K not begun) or "K/n" (its first n items of page K
 * fed). Every chunk lands with its cursor in one feed.lua call, and the job hash moves to page
 * K+1 only after every partition has, dropping the staged page in the same step. So a
 * coordinator killed anywhere feeds the rest of page K from the staged copy, never from a
 * fetch of it again: a listing that changed meanwhile (the job deleting what it lists) cannot
 * shift items under the partitions' offsets. */
#include "feed.h"

#include "clock.h"
#include "hash.h"
#include "handler.h"
#include "log.h"
#include "source.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PAGE_MAX       (64u << 20) /* bytes of one listing page */
#define PAGE_TIMEOUT   30000
#define FEED_CHUNK     DRV_FEED_CHUNK /* common/shared.def */
#define BACKOFF_MAX_MS 30000

struct drv_pager {
    const drv_job *job;
    drv_http_cfg env; /* only for ${NAME}: its url and headers hold the source's templates */
    struct curl_slist *hdrs;
    int64_t page;
    char *url;
    int64_t next_try_ms, backoff_ms;
    int failing;
    int total_noted;
    drv_pager_alive alive;
    void *alive_ud;
    int64_t kill_page; /* test hook: DROVER_TEST_KILL_AFTER_PAGE (-1: none) */
};

void drv_pager_free(drv_pager *pg) {
    if (!pg) return;
    drv_http_cfg_free(&pg->env);
    curl_slist_free_all(pg->hdrs);
    free(pg->url);
    free(pg);
}

/* Resolves ${NAME} in one string with the coordinator's environment. */
static char *resolve(drv_pager *pg, const char *t, char *why, size_t whylen) {
    drv_buf b;
    drv_buf_init(&b, 1 << 20);
    drv_tvals v = {"", 0, NULL, 0, NULL, 0};
    drv_err e = drv_http_render(&pg->env, t, DRV_ESC_RAW, &v, &b, why, whylen);
    drv_tvals_free(&v);
    if (e) {
        drv_buf_free(&b);
        return NULL;
    }
    return b.data;
}

drv_err drv_pager_open(const drv_job *job, drv_pager_alive alive, void *ud, drv_pager **out,
                       char *why, size_t whylen) {
    drv_pager *pg = calloc(1, sizeof *pg);
    if (!pg) return DRV_ENOMEM;
    pg->job = job;
    pg->alive = alive;
    pg->alive_ud = ud;
    const drv_spec *s = &job->spec;
    /* ${NAME} in the URL and headers: the same rules as a handler's, from this environment. */
    pg->env.url = strdup(s->url);
    cJSON *h = s->src_headers[0] ? cJSON_Parse(s->src_headers) : NULL;
    for (const cJSON *x = h ? h->child : NULL; x && pg->env.nhdr < DRV_HTTP_HEADERS_MAX;
         x = x->next) {
        char *line = malloc(strlen(x->string) + strlen(x->valuestring) + 3);
        if (line) sprintf(line, "%s: %s", x->string, x->valuestring);
        pg->env.hdr[pg->env.nhdr++] = line;
    }
    cJSON_Delete(h);
    drv_err e = pg->env.url ? drv_http_cfg_resolve_env(&pg->env, why, whylen) : DRV_ENOMEM;
    for (int i = 0; !e && i < pg->env.nhdr; i++) {
        char *line = pg->env.hdr[i] ? resolve(pg, pg->env.hdr[i], why, whylen) : NULL;
        struct curl_slist *n = line ? curl_slist_append(pg->hdrs, line) : NULL;
        free(line);
        if (!n)
            e = DRV_EINVAL;
        else
            pg->hdrs = n;
    }
    pg->page = job->page;
    if (!e) pg->url = job->page_url[0] ? strdup(job->page_url) : resolve(pg, s->url, why, whylen);
    if (!e && !pg->url) e = DRV_EINVAL;
    if (e) {
        if (e == DRV_ENOMEM) snprintf(why, whylen, "out of memory");
        drv_pager_free(pg);
        return e;
    }
    pg->backoff_ms = 1000;
    /* A test hook, read only here: SIGKILL this coordinator right after its first partition
     * write of page K, so a test can stop it between the partitions of one page. */
    const char *kill = getenv("DROVER_TEST_KILL_AFTER_PAGE");
    pg->kill_page = kill && *kill ? strtoll(kill, NULL, 10) : -1;
    *out = pg;
    return DRV_OK;
}

/* ---- fetching -------------------------------------------------------------------------------- */

typedef struct page_buf {
    drv_buf body;
    int too_big;
    char retry_after[64];
} page_buf;

static size_t on_page(char *p, size_t size, size_t n, void *ud) {
    page_buf *b = ud;
    if (drv_buf_append(&b->body, p, size * n) != DRV_OK) {
        b->too_big = 1;
        return 0;
    }
    return size * n;
}

static size_t on_page_header(char *p, size_t size, size_t n, void *ud) {
    page_buf *b = ud;
    size_t len = size * n;
    drv_header_retry_after(p, len, b->retry_after, sizeof b->retry_after);
    return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)a, (void)b, (void)c, (void)d;
    drv_pager *pg = ud;
    return pg->alive && pg->alive(pg->alive_ud) != 0; /* nonzero aborts the transfer */
}

/* GETs the current page. DRV_OK with the body; DRV_EIO for something worth retrying (with
 * *retry_ms from Retry-After, or 0); DRV_EINVAL for an answer that will not change. */
static drv_err fetch(drv_pager *pg, page_buf *b, int64_t *retry_ms, char *why, size_t whylen) {
    CURL *h = curl_easy_init();
    if (!h) return DRV_ENOMEM;
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, pg->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, pg->hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_page);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_page_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)PAGE_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "drover/" DROVER_VERSION);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, pg);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    *retry_ms = 0;
    if (b->too_big) {
        snprintf(why, whylen, "page %" PRId64 " is over %u bytes", pg->page, PAGE_MAX);
        return DRV_EINVAL;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(why, whylen, "stopped while fetching page %" PRId64, pg->page);
        return DRV_EIO;
    }
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "page %" PRId64 ": %s", pg->page,
                 err[0] ? err : curl_easy_strerror(rc));
        return rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ? DRV_EINVAL : DRV_EIO;
    }
    if (status >= 200 && status < 300) return DRV_OK;
    snprintf(why, whylen, "page %" PRId64 ": HTTP %ld", pg->page, status);
    if (status == 408 || status == 425 || status == 429 || status >= 500) {
        if (b->retry_after[0]) *retry_ms = drv_retry_after_ms(b->retry_after, (int64_t)time(NULL));
        return DRV_EIO;
    }
    return DRV_EINVAL;
}

/* ---- a page's items -------------------------------------------------------------------------- */

/* The value at a dotted path ("data.items"); "" is the value itself. */
static const cJSON *at_path(const cJSON *v, const char *path) {
    char name[256];
    while (v && *path) {
        size_t k = strcspn(path, ".");
        if (k >= sizeof name) return NULL;
        memcpy(name, path, k);
        name[k] = '\0';
        v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, name) : NULL;
        path += k;
        if (*path == '.') path++;
    }
    return v;
}

/* An item's id as text: a string, or a whole number. */
static int id_text(const cJSON *v, char *buf, size_t cap) {
    if (cJSON_IsString(v)) {
        size_t n = strlen(v->valuestring);
        if (n == 0 || n >= cap) return -1;
        memcpy(buf, v->valuestring, n + 1);
        return 0;
    }
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
        fabs(v->valuedouble) < 9007199254740992.0) {
        snprintf(buf, cap, "%" PRId64, (int64_t)v->valuedouble);
        return 0;
    }
    return -1;
}

/* The URL of the page after this one: 'next' is a URL (absolute or relative to this page) or
 * a token that replaces the next_param query parameter of the first page's URL. */
static char *next_url(drv_pager *pg, const char *next, char *why, size_t whylen) {
    int is_url = strncmp(next, "http://", 7) == 0 || strncmp(next, "https://", 8) == 0 ||
                 next[0] == '/' || next[0] == '?';
    CURLU *u = curl_url();
    char *out = NULL, *first = NULL;
    if (!u) return NULL;
    if (is_url) {
        if (curl_url_set(u, CURLUPART_URL, pg->url, 0) == CURLUE_OK &&
            curl_url_set(u, CURLUPART_URL, next, 0) == CURLUE_OK)
            curl_url_get(u, CURLUPART_URL, &out, 0);
    } else if ((first = resolve(pg, pg->job->spec.url, why, whylen)) != NULL &&
               curl_url_set(u, CURLUPART_URL, first, 0) == CURLUE_OK) {
        /* Drop the parameter if the first URL has it, then append the token. */
        char *query = NULL;
        drv_buf q;
        drv_buf_init(&q, 1 << 20);
        drv_err e = drv_buf_append(&q, "", 0);
        size_t plen = strlen(pg->job->spec.next_param);
        if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) {
            for (char *p = query; *p && !e;) {
                size_t n = strcspn(p, "&");
                int same = n >= plen && strncmp(p, pg->job->spec.next_param, plen) == 0 &&
                           (n == plen || p[plen] == '=');
                if (!same && n) {
                    if (q.len) e = drv_buf_append(&q, "&", 1);
                    if (!e) e = drv_buf_append(&q, p, n);
                }
                p += n;
                if (*p == '&') p++;
            }
        }
        curl_free(query);
        char *tok = curl_easy_escape(NULL, next, 0);
        if (!e && tok) {
            if (q.len) e = drv_buf_append(&q, "&", 1);
            if (!e) e = drv_buf_append(&q, pg->job->spec.next_param, plen);
            if (!e) e = drv_buf_append(&q, "=", 1);
            if (!e) e = drv_buf_append(&q, tok, strlen(tok));
            if (!e) e = drv_buf_append(&q, "", 1);
            if (!e && curl_url_set(u, CURLUPART_QUERY, q.data, 0) == CURLUE_OK)
                curl_url_get(u, CURLUPART_URL, &out, 0);
        }
        curl_free(tok);
        drv_buf_free(&q);
    }
    free(first);
    curl_url_cleanup(u);
    char *r = out ? strdup(out) : NULL;
    curl_free(out);
    if (!r && !why[0])
        snprintf(why, whylen, "page %" PRId64 ": bad next page \"%.200s\"", pg->page, next);
    return r;
}

/* Parses a cursor "K" or "K/n": how many of this page's items partition p already has. -1:
 * the partition is already past page K (fed it before a restart). */
static int64_t cursor_offset(const char *cur, int64_t page) {
    char *end;
    long long k = strtoll(cur, &end, 10);
    if (k > page) return -1;
    if (*end == '/') return strtoll(end + 1, NULL, 10);
    return 0;
}

/* A page's items, read and checked whole before any of it is staged or fed. */
typedef struct page_items {
    int n;
    char **ids;
    char **payloads; /* NULL for an item that is not an object */
    int *part;
} page_items;

static void page_items_free(page_items *pi) {
    for (int k = 0; k < pi->n; k++) {
        free(pi->ids ? pi->ids[k] : NULL);
        cJSON_free(pi->payloads ? pi->payloads[k] : NULL);
    }
    free(pi->part);
    free(pi->ids);
    free(pi->payloads);
    memset(pi, 0, sizeof *pi);
}

static drv_err page_read(drv_pager *pg, const cJSON *items, page_items *pi, char *why,
                         size_t whylen) {
    const drv_spec *s = &pg->job->spec;
    int P = pg->job->partitions, n = cJSON_GetArraySize(items);
    pi->n = n;
    pi->part = calloc((size_t)(n ? n : 1), sizeof *pi->part);
    pi->ids = calloc((size_t)(n ? n : 1), sizeof *pi->ids);
    pi->payloads = calloc((size_t)(n ? n : 1), sizeof *pi->payloads);
    drv_err e = pi->part && pi->ids && pi->payloads ? DRV_OK : DRV_ENOMEM;
    int i = 0;
    for (const cJSON *it = items->child; it && !e; it = it->next, i++) {
        char id[DRV_ID_BYTES_MAX + 1];
        const cJSON *idv = s->id_field[0] ? at_path(it, s->id_field) : it;
        if (!idv || id_text(idv, id, sizeof id) != 0) {
            snprintf(why, whylen, "page %" PRId64 ", item %d: %s", pg->page, i,
                     s->id_field[0] ? "no id_field there, or it is not a string or whole number"
                                    : "not a string or whole number (set source.id_field)");
            e = DRV_EINVAL;
            break;
        }
        pi->ids[i] = strdup(id);
        if (cJSON_IsObject(it)) pi->payloads[i] = cJSON_PrintUnformatted(it);
        if (!pi->ids[i] || (cJSON_IsObject(it) && !pi->payloads[i]))
            e = DRV_ENOMEM;
        else if (pi->payloads[i] && strlen(pi->payloads[i]) > (size_t)s->max_item_bytes) {
            snprintf(why, whylen, "page %" PRId64 ", item %s: over max_item_bytes (%" PRId64 ")",
                     pg->page, id, s->max_item_bytes);
            e = DRV_EINVAL;
        }
        pi->part[i] = drv_partition_of(id, strlen(id), P);
    }
    if (e == DRV_ENOMEM) snprintf(why, whylen, "out of memory");
    return e;
}

static drv_err feed_page(drv_pager *pg, drv_queue *q, drv_part_stat *st, const page_items *pi,
                         int last, int64_t *fed, char *why, size_t whylen) {
    int P = pg->job->partitions, n = pi->n;
    drv_feed_item *chunk = calloc(FEED_CHUNK, sizeof *chunk);
    drv_err e = chunk ? DRV_OK : DRV_ENOMEM;
    for (int p = 0; p < P && !e; p++) {
        int64_t off = cursor_offset(st[p].cursor, pg->page);
        if (off < 0) continue; /* fed before a restart */
        int64_t seen = 0;
        int m = 0;
        for (int k = 0; k <= n && !e; k++) {
            int end = k == n;
            if (!end) {
                if (pi->part[k] != p) continue;
                if (seen++ < off) continue;
                chunk[m++] = (drv_feed_item){pi->ids[k], strlen(pi->ids[k]), pi->payloads[k],
                                             pi->payloads[k] ? strlen(pi->payloads[k]) : 0};
            }
            if (m == FEED_CHUNK || end) {
                char expect[32], next[32];
                if (off)
                    snprintf(expect, sizeof expect, "%" PRId64 "/%" PRId64, pg->page, off);
                else
                    snprintf(expect, sizeof expect, "%" PRId64, pg->page);
                if (end)
                    snprintf(next, sizeof next, "%" PRId64, pg->page + 1);
                else
                    snprintf(next, sizeof next, "%" PRId64 "/%" PRId64, pg->page, off + m);
                /* Payloads go with every item or none: a page mixing objects and plain ids
                 * feeds the plain ones with the id as payload. */
                int any = 0;
                for (int x = 0; x < m; x++)
                    any |= chunk[x].payload != NULL;
                for (int x = 0; any && x < m; x++)
                    if (!chunk[x].payload)
                        chunk[x].payload = chunk[x].id, chunk[x].plen = chunk[x].idlen;
                e = drv_queue_feed(q, pg->job->id, p, expect, next, end && last, chunk, (size_t)m,
                                   &st[p].pending);
                if (e) {
                    snprintf(why, whylen, "feeding partition %d: %s", p, drv_queue_strerror(q, e));
                    break;
                }
                if (pg->page == pg->kill_page) {
                    drv_warn("job %s: DROVER_TEST_KILL_AFTER_PAGE=%" PRId64
                             ": killing myself after feeding partition %d",
                             pg->job->id, pg->page, p);
                    raise(SIGKILL);
                }
                memcpy(st[p].cursor, next, sizeof next);
                st[p].exhausted = end && last;
                *fed += m;
                off += m;
                m = 0;
            }
        }
    }
    free(chunk);
    if (e == DRV_ENOMEM) snprintf(why, whylen, "out of memory");
    return e;
}

/* Stages page K in Redis before any partition takes an item of it: {"page": K, "next": URL or
 * "" for the last, "items": the page's items as listed}. */
static drv_err stage_page(drv_pager *pg, drv_queue *q, const cJSON *items, const char *nu,
                          char *why, size_t whylen) {
    cJSON *o = cJSON_CreateObject();
    drv_err e = DRV_ENOMEM;
    if (o && cJSON_AddNumberToObject(o, "page", (double)pg->page) &&
        cJSON_AddStringToObject(o, "next", nu ? nu : "") &&
        cJSON_AddItemReferenceToObject(o, "items", (cJSON *)items)) {
        char *text = cJSON_PrintUnformatted(o);
        if (text) {
            e = drv_queue_page_stage(q, pg->job->id, text, strlen(text));
            if (e)
                snprintf(why, whylen, "staging page %" PRId64 ": %s", pg->page,
                         drv_queue_strerror(q, e));
            cJSON_free(text);
        }
    }
    cJSON_Delete(o);
    if (e == DRV_ENOMEM) snprintf(why, whylen, "out of memory");
    return e;
}

/* The staged page, if it is page K: DRV_OK with *doc (NULL when there is none, or an older
 * one, left by a coordinator that died between moving the job on and dropping it). */
static drv_err staged_page(drv_pager *pg, drv_queue *q, cJSON **doc, char *why, size_t whylen) {
    char *text = NULL;
    *doc = NULL;
    drv_err e = drv_queue_page_staged(q, pg->job->id, &text);
    if (e) {
        snprintf(why, whylen, "reading the staged page: %s", drv_queue_strerror(q, e));
        return e;
    }
    if (!text) return DRV_OK;
    cJSON *d = cJSON_Parse(text);
    free(text);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(d, "page");
    const cJSON *nx = cJSON_GetObjectItemCaseSensitive(d, "next");
    if (!cJSON_IsNumber(k) || !cJSON_IsString(nx) ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(d, "items")) ||
        (int64_t)k->valuedouble > pg->page) {
        snprintf(why, whylen, "{%s}:page: not a staged page %" PRId64 " (damaged?)", pg->job->id,
                 pg->page);
        cJSON_Delete(d);
        return DRV_EINVAL;
    }
    if ((int64_t)k->valuedouble < pg->page) {
        cJSON_Delete(d);
        return drv_queue_page_drop(q, pg->job->id);
    }
    *doc = d;
    return DRV_OK;
}

drv_err drv_pager_step(drv_pager *pg, drv_queue *q, drv_part_stat *st, int64_t *fed, char *why,
                       size_t whylen) {
    const drv_job *job = pg->job;
    int P = job->partitions;
    why[0] = '\0';
    int all_done = 1;
    for (int p = 0; p < P; p++) {
        if (!st[p].exhausted) all_done = 0;
        if (st[p].pending >= job->spec.window) return DRV_OK; /* bounded by the window */
    }
    if (all_done && job->total < 0 && !pg->total_noted) {
        /* The last page was fed by a coordinator that died before it wrote the total. Every
         * partition is exhausted, so the fed counters in Redis are final. */
        drv_part_stat *now = calloc((size_t)P, sizeof *now);
        if (now && drv_queue_stats(q, job->id, P, now) == DRV_OK) {
            int64_t sum = 0;
            for (int p = 0; p < P; p++)
                sum += now[p].fed;
            char tot[24];
            snprintf(tot, sizeof tot, "%" PRId64, sum);
            const char *kv[] = {"total", tot, NULL};
            if (drv_queue_job_note_if(q, job->id, job->created_ms, kv) == DRV_OK)
                pg->total_noted = 1;
        }
        free(now);
    }
    if (all_done) return DRV_OK;
    cJSON *doc = NULL;
    char *nu = NULL;
    page_items pi = {0};
    page_buf b;
    memset(&b, 0, sizeof b);
    drv_buf_init(&b.body, PAGE_MAX);
    const cJSON *items;
    int last;
    drv_err e = staged_page(pg, q, &doc, why, whylen);
    if (e) goto out;
    if (doc) {
        /* A coordinator stopped inside this page: the rest of it comes from the staged copy. */
        items = cJSON_GetObjectItemCaseSensitive(doc, "items");
        const char *nx = cJSON_GetObjectItemCaseSensitive(doc, "next")->valuestring;
        last = nx[0] == '\0';
        if (!last && !(nu = strdup(nx))) {
            e = DRV_ENOMEM;
            goto out;
        }
        if ((e = page_read(pg, items, &pi, why, whylen))) goto out;
        drv_debug("job %s: page %" PRId64 " from its staged copy", job->id, pg->page);
    } else {
        if (drv_now_ms() < pg->next_try_ms) goto out;
        int64_t retry_ms = 0;
        e = fetch(pg, &b, &retry_ms, why, whylen);
        if (e == DRV_EIO) {
            int64_t wait = retry_ms > 0 ? retry_ms : pg->backoff_ms;
            if (wait > BACKOFF_MAX_MS * 10) wait = BACKOFF_MAX_MS * 10;
            pg->next_try_ms = drv_now_ms() + wait;
            pg->backoff_ms =
                pg->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pg->backoff_ms * 2;
            if (!pg->failing++)
                drv_warn("job %s: listing %s failed (%s); retrying with backoff", job->id, pg->url,
                         why);
            e = DRV_OK;
            goto out;
        }
        if (e) goto out;
        if (pg->failing) drv_info("job %s: the listing answers again", job->id);
        pg->failing = 0;
        pg->backoff_ms = 1000;
        doc = cJSON_ParseWithLength(b.body.data ? b.body.data : "", b.body.len);
        if (!doc) {
            snprintf(why, whylen, "page %" PRId64 " (%s): not JSON", pg->page, pg->url);
            e = DRV_EINVAL;
            goto out;
        }
        items = at_path(doc, job->spec.items_path);
        if (!cJSON_IsArray(items)) {
            snprintf(why, whylen, "page %" PRId64 " (%s): no array at \"%s\"", pg->page, pg->url,
                     job->spec.items_path[0] ? job->spec.items_path : "(the whole body)");
            e = DRV_EINVAL;
            goto out;
        }
        const cJSON *nv = job->spec.next_path[0] ? at_path(doc, job->spec.next_path) : NULL;
        char token[4096] = "";
        if (cJSON_IsString(nv))
            snprintf(token, sizeof token, "%s", nv->valuestring);
        else if (cJSON_IsNumber(nv))
            id_text(nv, token, sizeof token);
        last = token[0] == '\0';
        nu = last ? NULL : next_url(pg, token, why, whylen);
        if (!last && !nu) {
            e = DRV_EINVAL;
            goto out;
        }
        /* Checked whole before it is staged: a bad page stops the job with nothing fed. */
        if ((e = page_read(pg, items, &pi, why, whylen)) ||
            (e = stage_page(pg, q, items, nu, why, whylen)))
            goto out;
    }
    if ((e = feed_page(pg, q, st, &pi, last, fed, why, whylen))) goto out;
    /* Every partition has page K: the job moves to K+1. */
    char pk[24];
    snprintf(pk, sizeof pk, "%" PRId64, pg->page + 1);
    const char *kv[] = {"page", pk, "page_url", nu ? nu : "", NULL, NULL, NULL};
    char tot[24];
    drv_part_stat *now = last ? calloc((size_t)P, sizeof *now) : NULL;
    if (now && drv_queue_stats(q, job->id, P, now) == DRV_OK) {
        int64_t sum = 0;
        for (int p = 0; p < P; p++)
            sum += now[p].fed;
        snprintf(tot, sizeof tot, "%" PRId64, sum);
        kv[4] = "total", kv[5] = tot;
        pg->total_noted = 1;
    }
    free(now);
    /* The job hash moves to K+1 and the staged page goes in one step (lua/mark.lua). */
    if ((e = drv_queue_page_done(q, job->id, job->created_ms, kv))) {
        snprintf(why, whylen, "%s", drv_queue_strerror(q, e));
        goto out;
    }
    drv_debug("job %s: page %" PRId64 " fed (%d items)%s", job->id, pg->page, pi.n,
              last ? ", the last" : "");
    pg->page++;
    free(pg->url);
    pg->url = nu ? nu : strdup("");
    nu = NULL;
out:
    free(nu);
    page_items_free(&pi);
    cJSON_Delete(doc);
    drv_buf_free(&b.body);
    return e;
}
