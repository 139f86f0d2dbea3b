/* The HTTP handler: one request per item, all of them driven by one libcurl multi handle, so
 * a worker keeps hundreds of requests in flight from one thread. The multi handle keeps
 * connections alive and caches DNS across requests; HTTP/2 multiplexes where the server
 * offers it. Redirects are followed here, not by libcurl, so each hop is checked against
 * --http-allow. */
#include "handlers.h"

#include "clock.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ERR_BODY      512 /* bytes of a failed response kept with the error */
#define MAX_REDIRECTS 5
#define REQUEST_MAX   (8u << 20) /* a rendered URL, header or body */

struct http_engine {
    CURLM *multi;
    drv_host_rule *allow; /* --http-allow */
    int nallow;
    int active;
    http_req *done; /* finished, not yet taken */
    int verbose;    /* DROVER_HTTP_VERBOSE=1: libcurl's trace on stderr */
};

struct http_req {
    CURL *easy;
    struct curl_slist *hdrs;
    drv_buf url, body;
    int has_body;
    const drv_http_cfg *cfg;
    char *resp;
    size_t resp_len, resp_cap, resp_total;
    char retry_after[64];
    char errbuf[CURL_ERROR_SIZE];
    CURLcode code;
    long status;
    int redirects;
    int64_t started_ms;
    char refused[320]; /* a redirect --http-allow refused, or another reason to give up */
    http_req *next;
};

http_engine *http_engine_new(int concurrency, int max_host_conns, const char *allow) {
    http_engine *e = calloc(1, sizeof *e);
    if (!e || !(e->multi = curl_multi_init())) {
        free(e);
        return NULL;
    }
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)concurrency);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host_conns);
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    const char *v = getenv("DROVER_HTTP_VERBOSE");
    e->verbose = v && strcmp(v, "1") == 0;
    if (allow && *allow) {
        char why[400];
        /* main() checked the list: this cannot fail but for memory, and then allows nothing. */
        if (drv_host_rules_parse(allow, &e->allow, &e->nallow, why, sizeof why) != DRV_OK) {
            e->allow = calloc(1, sizeof *e->allow);
            e->nallow = 1; /* an empty host matches no URL */
        }
    }
    return e;
}

void http_engine_free(http_engine *e) {
    if (!e) return;
    curl_multi_cleanup(e->multi);
    free(e->allow);
    free(e);
}

int http_active(const http_engine *e) {
    return e->active;
}

/* 1 if 'url' may be requested under --http-allow (its host and port); 0 with the host and port
 * in 'why' otherwise. */
static int allowed(const http_engine *e, const char *url, char *why, size_t whylen) {
    if (e->nallow == 0) return 1;
    CURLU *u = curl_url();
    char *host = NULL, *scheme = NULL, *port = NULL;
    int ok = 0;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        char h[256];
        size_t hn = strlen(host);
        if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {
            snprintf(h, sizeof h, "%.*s", (int)(hn - 2), host + 1);
        } else {
            snprintf(h, sizeof h, "%s", host);
        }
        ok = drv_host_rules_match(e->allow, e->nallow, scheme, h, atoi(port));
        int host_known = 0;
        for (int i = 0; !ok && i < e->nallow; i++)
            host_known |= strcasecmp(e->allow[i].host, h) == 0;
        if (!ok && host_known)
            snprintf(why, whylen,
                     "port %s of host %s is not in this worker's --http-allow (HOST alone is "
                     "its scheme's default port; HOST:PORT or HOST:* for others)",
                     port, host);
        else if (!ok)
            snprintf(why, whylen, "host %s is not in this worker's --http-allow", host);
    } else {
        snprintf(why, whylen, "not a valid URL: %.200s", url);
    }
    curl_free(host);
    curl_free(scheme);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

int http_check_job(const http_engine *e, const drv_http_cfg *c, char *why, size_t whylen) {
    /* Only a URL whose host is fixed can be judged before any item; a host made of {id} or
     * {item...} (or of ${NAME}, whose value may hold anything) is checked per request. */
    const char *hs = strstr(c->url, "://");
    if (e->nallow == 0 || !hs || strncmp(c->url, "${", 2) == 0) return 0;
    size_t auth = strcspn(hs + 3, "/?#");
    for (size_t i = 0; i < auth; i++)
        if (hs[3 + i] == '{') return 0;
    drv_buf b;
    drv_buf_init(&b, REQUEST_MAX);
    drv_tvals v = {"x", 1, NULL, 0, NULL, 0};
    char tmp[256];
    int rc = 0;
    if (drv_http_render(c, c->url, DRV_ESC_URL, &v, &b, tmp, sizeof tmp) == DRV_OK &&
        !allowed(e, b.data, why, whylen))
        rc = -1;
    drv_tvals_free(&v);
    drv_buf_free(&b);
    return rc;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    http_req *r = ud;
    size_t len = size * n;
    r->resp_total += len;
    if (r->resp_len < r->resp_cap) {
        size_t take = r->resp_cap - r->resp_len < len ? r->resp_cap - r->resp_len : len;
        memcpy(r->resp + r->resp_len, p, take);
        r->resp_len += take;
    }
    return len; /* the rest is read and dropped: a 10 MB answer costs no memory */
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    http_req *r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) r->retry_after[0] = '\0'; /* a new response */
    drv_header_retry_after(p, len, r->retry_after, sizeof r->retry_after);
    return len;
}

static void set_method(http_req *r, const char *method, int with_body) {
    CURL *c = r->easy;
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    if (with_body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body.data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
        if (strcmp(method, "POST") != 0) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET") != 0) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
}

void http_req_free(http_engine *e, http_req *r) {
    if (!r) return;
    if (r->easy) {
        if (e) curl_multi_remove_handle(e->multi, r->easy); /* e: it may still be in there */
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->hdrs);
    drv_buf_free(&r->url);
    drv_buf_free(&r->body);
    free(r->resp);
    free(r);
}

int http_start(http_engine *e, const drv_http_cfg *c, const drv_lease *l, const char *traceparent,
               http_req **out, drv_outcome *o) {
    memset(o, 0, sizeof *o);
    http_req *r = calloc(1, sizeof *r);
    char why[512];
    if (!r) goto resource;
    r->cfg = c;
    drv_buf_init(&r->url, REQUEST_MAX);
    drv_buf_init(&r->body, REQUEST_MAX);
    drv_tvals v = {l->id, l->idlen, l->payload, l->plen, NULL, 0};
    drv_buf hb;
    drv_buf_init(&hb, REQUEST_MAX);
    drv_err err = drv_http_render(c, c->url, DRV_ESC_URL, &v, &r->url, why, sizeof why);
    for (int i = 0; !err && i < c->nhdr; i++) {
        err = drv_http_render(c, c->hdr[i], DRV_ESC_HEADER, &v, &hb, why, sizeof why);
        if (!err) {
            struct curl_slist *n = curl_slist_append(r->hdrs, hb.data);
            if (!n)
                err = DRV_ENOMEM;
            else
                r->hdrs = n;
        }
    }
    if (!err && c->body) {
        r->has_body = 1;
        err = drv_http_render(c, c->body, c->body_json ? DRV_ESC_JSON : DRV_ESC_RAW, &v, &r->body,
                              why, sizeof why);
    }
    drv_buf_free(&hb);
    drv_tvals_free(&v);
    if (err == DRV_ENOMEM) goto resource;
    if (err) {
        o->permanent = 1;
        drv_outcome_error(o, why, NULL);
        http_req_free(NULL, r);
        return -1;
    }
    if (!allowed(e, r->url.data, why, sizeof why)) {
        o->permanent = 1;
        drv_outcome_error(o, why, NULL);
        http_req_free(NULL, r);
        return -1;
    }
    if (c->body_json) {
        int has = 0;
        for (int i = 0; i < c->nhdr; i++)
            has |= strncasecmp(c->hdr[i], "Content-Type:", 13) == 0;
        if (!has) {
            struct curl_slist *n = curl_slist_append(r->hdrs, "Content-Type: application/json");
            if (!n) goto resource;
            r->hdrs = n;
        }
    }
    int own_tp = 0; /* a spec that sets traceparent itself (from the item) keeps its own */
    for (int i = 0; i < c->nhdr; i++)
        own_tp |= strncasecmp(c->hdr[i], "traceparent:", 12) == 0;
    if (traceparent && !own_tp) {
        char tp[96];
        snprintf(tp, sizeof tp, "traceparent: %s", traceparent);
        struct curl_slist *t = curl_slist_append(r->hdrs, tp);
        if (!t) goto resource;
        r->hdrs = t;
    }
    /* curl would wait up to a second for "100 Continue" before sending a larger body. */
    struct curl_slist *n = curl_slist_append(r->hdrs, "Expect:");
    if (!n) goto resource;
    r->hdrs = n;
    r->resp_cap = c->keep_response > ERR_BODY ? (size_t)c->keep_response : ERR_BODY;
    r->resp = malloc(r->resp_cap);
    if (!r->resp || !(r->easy = curl_easy_init())) goto resource;
    CURL *h = r->easy;
    curl_easy_setopt(h, CURLOPT_URL, r->url.data);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(c->timeout_ms < 10000 ? c->timeout_ms : 10000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "drover/" DROVER_VERSION);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    set_method(r, c->method, r->has_body);
    if (e->verbose) curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    if (curl_multi_add_handle(e->multi, h) != CURLM_OK) goto resource;
    r->started_ms = drv_now_ms();
    e->active++;
    *out = r;
    return 0;
resource:
    o->retryable_local = 1;
    drv_outcome_error(o, "could not set up the request (out of memory)", NULL);
    http_req_free(NULL, r);
    return -1;
}

/* Follows a redirect in place, or returns 0 to finish the request as it is. */
static int follow(http_engine *e, http_req *r) {
    long s = r->status;
    if (r->code != CURLE_OK || drv_http_is_ok(r->cfg, s) ||
        !(s == 301 || s == 302 || s == 303 || s == 307 || s == 308))
        return 0;
    char *to = NULL;
    if (curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &to) != CURLE_OK || !to) return 0;
    if (r->redirects == MAX_REDIRECTS) {
        snprintf(r->refused, sizeof r->refused, "more than %d redirects", MAX_REDIRECTS);
        return 0;
    }
    char why[256];
    if (!allowed(e, to, why, sizeof why)) {
        snprintf(r->refused, sizeof r->refused, "redirect refused: %s", why);
        return 0;
    }
    drv_buf nu;
    drv_buf_init(&nu, REQUEST_MAX);
    if (drv_buf_append(&nu, to, strlen(to) + 1) != DRV_OK) {
        drv_buf_free(&nu);
        return 0;
    }
    curl_multi_remove_handle(e->multi, r->easy);
    drv_buf_free(&r->url);
    r->url = nu;
    r->redirects++;
    /* 303 always, and 301/302 after a POST (as browsers do), turn into a GET without a body. */
    if (s == 303 || ((s == 301 || s == 302) && strcmp(r->cfg->method, "POST") == 0)) {
        r->has_body = 0;
        set_method(r, s == 303 && strcmp(r->cfg->method, "HEAD") == 0 ? "HEAD" : "GET", 0);
    }
    curl_easy_setopt(r->easy, CURLOPT_URL, r->url.data);
    r->resp_len = r->resp_total = 0;
    r->retry_after[0] = '\0';
    r->status = 0;
    if (curl_multi_add_handle(e->multi, r->easy) != CURLM_OK) {
        snprintf(r->refused, sizeof r->refused, "could not follow a redirect");
        return 0;
    }
    return 1;
}

int http_wait(http_engine *e, struct pollfd *fds, int nfds, int timeout_ms) {
    struct curl_waitfd *w = calloc((size_t)(nfds ? nfds : 1), sizeof *w);
    if (!w) return -1;
    for (int i = 0; i < nfds; i++) {
        w[i].fd = fds[i].fd;
        w[i].events = (short)((fds[i].events & POLLIN ? CURL_WAIT_POLLIN : 0) |
                              (fds[i].events & POLLOUT ? CURL_WAIT_POLLOUT : 0));
    }
    int n = 0;
    CURLMcode mc = curl_multi_poll(e->multi, w, (unsigned)nfds, timeout_ms, &n);
    int ready = 0;
    for (int i = 0; i < nfds; i++) {
        fds[i].revents = (short)((w[i].revents & CURL_WAIT_POLLIN ? POLLIN : 0) |
                                 (w[i].revents & CURL_WAIT_POLLOUT ? POLLOUT : 0));
        ready += fds[i].revents != 0;
    }
    free(w);
    int running = 0;
    curl_multi_perform(e->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        http_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        r->code = m->data.result;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
        if (follow(e, r)) continue;
        curl_multi_remove_handle(e->multi, r->easy);
        e->active--;
        r->next = e->done;
        e->done = r;
    }
    return mc == CURLM_OK ? ready : -1;
}

http_req *http_take_done(http_engine *e) {
    http_req *r = e->done;
    if (r) e->done = r->next;
    return r;
}

void http_cancel(http_engine *e, http_req *r) {
    for (http_req **p = &e->done; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            http_req_free(NULL, r);
            return;
        }
    e->active--;
    http_req_free(e, r);
}

/* Permanent transport errors: retrying the same request cannot help. */
static int transport_permanent(CURLcode c) {
    return c == CURLE_URL_MALFORMAT || c == CURLE_UNSUPPORTED_PROTOCOL ||
           c == CURLE_BAD_FUNCTION_ARGUMENT || c == CURLE_NOT_BUILT_IN;
}

void http_outcome(http_req *r, const char *worker, int attempt, drv_outcome *out) {
    memset(out, 0, sizeof *out);
    const drv_http_cfg *c = r->cfg;
    if (!r->refused[0] && r->code == CURLE_OK && drv_http_is_ok(c, r->status)) {
        out->ok = 1;
        if (c->keep_response) {
            out->resplen =
                r->resp_len < (size_t)c->keep_response ? r->resp_len : (size_t)c->keep_response;
            out->response = malloc(out->resplen ? out->resplen : 1);
            if (out->response)
                memcpy(out->response, r->resp, out->resplen);
            else
                out->resplen = 0;
        }
        return;
    }
    char what[384];
    if (r->refused[0]) {
        out->permanent = 1;
        snprintf(what, sizeof what, "%s", r->refused);
    } else if (r->code != CURLE_OK) {
        out->permanent = transport_permanent(r->code);
        if (r->code == CURLE_OPERATION_TIMEDOUT)
            snprintf(what, sizeof what, "timed out after %lld ms", (long long)c->timeout_ms);
        else
            snprintf(what, sizeof what, "%s", curl_easy_strerror(r->code));
    } else {
        snprintf(what, sizeof what, "HTTP %ld", r->status);
        if (drv_http_is_retry(c, r->status)) {
            /* Throttling, not failure: a 429, or any retry status that says when to come back.
             * A 503 or 5xx without Retry-After is a failed attempt (the server may be broken). */
            out->throttled = r->status == 429 || r->retry_after[0];
            if (r->retry_after[0]) {
                int64_t ms = drv_retry_after_ms(r->retry_after, (int64_t)time(NULL));
                if (ms > 0) out->retry_after_ms = ms;
                out->cooldown = ms > 0;
            }
        } else {
            out->permanent = 1;
        }
    }
    size_t blen = r->resp_len < ERR_BODY ? r->resp_len : ERR_BODY;
    char body[ERR_BODY + 1];
    memcpy(body, r->resp, blen);
    body[blen] = '\0';
    drv_text_sanitize(body, blen);
    body[strlen(body)] = '\0';
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", what);
    if (r->status) cJSON_AddNumberToObject(o, "status", (double)r->status);
    if (r->code != CURLE_OK)
        cJSON_AddStringToObject(o, "curl", r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->code));
    if (r->retry_after[0]) cJSON_AddStringToObject(o, "retry_after", r->retry_after);
    cJSON_AddNumberToObject(o, "attempt", attempt);
    cJSON_AddStringToObject(o, "worker", worker);
    if (blen) cJSON_AddStringToObject(o, "body", body);
    char *t = cJSON_PrintUnformatted(o);
    if (!t || strlen(t) >= sizeof out->error) {
        cJSON_free(t);
        cJSON_DeleteItemFromObject(o, "body");
        t = cJSON_PrintUnformatted(o);
    }
    snprintf(out->error, sizeof out->error, "%s", t ? t : "{\"error\":\"failed\"}");
    cJSON_free(t);
    cJSON_Delete(o);
}

/* ---- the handler (handlers.h) ---------------------------------------------------------------- */

typedef struct hreq {
    http_req *r;
    uint64_t tag;
    int attempt;
} hreq;

typedef struct http_handler {
    handler base;
    http_engine *e;
    const char *worker;
    int max; /* requests in flight at most (--concurrency) */
    hreq *reqs;
    int n, draining;
} http_handler;

static int hh_capacity(const handler *h) {
    const http_handler *x = (const http_handler *)h;
    return x->draining ? 0 : x->max - x->n;
}

static int hh_start(handler *h, const char *job, const drv_http_cfg *c, const hitem *items, int n,
                    drv_outcome *out) {
    (void)job;
    (void)n;
    http_handler *x = (http_handler *)h;
    http_req *r;
    if (http_start(x->e, c, items[0].l, items[0].traceparent, &r, out) != 0) return -1;
    x->reqs[x->n++] = (hreq){r, items[0].tag, items[0].l->attempt};
    return 1;
}

static int hh_pollfds(handler *h, struct pollfd *fds, int cap) {
    (void)h;
    (void)fds;
    (void)cap;
    return 0; /* libcurl's sockets are waited on in hh_wait */
}

static int64_t hh_next_deadline(const handler *h, int64_t now) {
    (void)now;
    return ((const http_handler *)h)->e->done ? 0 : -1;
}

static void hh_service(handler *h, const struct pollfd *fds, int n, int64_t now) {
    (void)h;
    (void)fds;
    (void)n;
    (void)now;
}

static int hh_take_done(handler *h, int64_t now, uint64_t *tag, drv_outcome *out) {
    (void)now;
    http_handler *x = (http_handler *)h;
    http_req *r;
    while ((r = http_take_done(x->e)) != NULL) {
        int i = 0;
        while (i < x->n && x->reqs[i].r != r)
            i++;
        if (i == x->n) { /* cannot happen: every request is one of reqs */
            http_req_free(NULL, r);
            continue;
        }
        http_outcome(r, x->worker, x->reqs[i].attempt, out);
        http_req_free(NULL, r);
        *tag = x->reqs[i].tag;
        x->reqs[i] = x->reqs[--x->n];
        return 1;
    }
    return 0;
}

static int hh_child_exited(handler *h, pid_t pid, int status) {
    (void)h;
    (void)pid;
    (void)status;
    return 0;
}

static void hh_abandon(handler *h) {
    http_handler *x = (http_handler *)h;
    for (int i = 0; i < x->n; i++)
        http_cancel(x->e, x->reqs[i].r);
    x->n = 0;
}

static void hh_kill_all(handler *h) {
    (void)h;
}

static void hh_drain(handler *h) {
    ((http_handler *)h)->draining = 1;
}

static void hh_free(handler *h) {
    http_handler *x = (http_handler *)h;
    if (!x) return;
    hh_abandon(h);
    http_engine_free(x->e);
    free(x->reqs);
    free(x);
}

static int hh_wait(handler *h, struct pollfd *fds, int nfds, int timeout_ms) {
    return http_wait(((http_handler *)h)->e, fds, nfds, timeout_ms);
}

static int hh_check_job(const handler *h, const drv_http_cfg *c, char *why, size_t whylen) {
    return http_check_job(((const http_handler *)h)->e, c, why, whylen);
}

static const handler_ops http_ops = {
    .name = "HTTP handler",
    .capacity = hh_capacity,
    .start = hh_start,
    .pollfds = hh_pollfds,
    .next_deadline = hh_next_deadline,
    .service = hh_service,
    .take_done = hh_take_done,
    .child_exited = hh_child_exited,
    .abandon = hh_abandon,
    .kill_all = hh_kill_all,
    .drain = hh_drain,
    .free = hh_free,
    .wait = hh_wait,
    .check_job = hh_check_job,
};

handler *http_handler_new(const char *worker, int concurrency, int max_host_conns,
                          const char *allow) {
    http_handler *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->e = http_engine_new(concurrency, max_host_conns, allow);
    x->reqs = calloc((size_t)concurrency, sizeof *x->reqs);
    if (!x->e || !x->reqs) {
        http_engine_free(x->e);
        free(x->reqs);
        free(x);
        return NULL;
    }
    x->base.ops = &http_ops;
    x->worker = worker;
    x->max = concurrency;
    return &x->base;
}
