/* Callbacks: a job's on_complete and on_dead POSTs (see callback.h). */
#include "callback.h"

#include "handler.h"
#include "buf.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FIRST_ERRORS 10

struct drv_hook {
    char *url;
    struct curl_slist *hdrs;
    long timeout_ms;
};

void drv_hook_free(drv_hook *h) {
    if (!h) return;
    free(h->url);
    curl_slist_free_all(h->hdrs);
    free(h);
}

/* Resolves ${NAME} in one string, as the HTTP source does for its URL and headers. */
static char *resolve(const drv_http_cfg *env, const char *t, char *why, size_t whylen) {
    drv_buf b;
    drv_buf_init(&b, 1 << 16);
    drv_tvals v = {"", 0, NULL, 0, NULL, 0};
    drv_err e = drv_http_render(env, t, DRV_ESC_RAW, &v, &b, why, whylen);
    drv_tvals_free(&v);
    if (e) {
        drv_buf_free(&b);
        return NULL;
    }
    return b.data;
}

drv_err drv_hook_open(const char *spec_json, const char *name, drv_hook **out, char *why,
                      size_t whylen) {
    drv_err e = DRV_OK;
    drv_http_cfg env;
    memset(&env, 0, sizeof env);
    drv_hook *h = calloc(1, sizeof *h);
    cJSON *root = cJSON_Parse(spec_json);
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(root, "url");
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "headers");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(root, "timeout_ms");
    if (!h || !root || !cJSON_IsString(url)) {
        snprintf(why, whylen, "%s: not a valid callback", name);
        e = h && root ? DRV_EINVAL : DRV_ENOMEM;
        goto out;
    }
    h->timeout_ms = cJSON_IsNumber(to) ? (long)to->valuedouble : 10000;
    /* Only the URL and header templates are set: drv_http_cfg_resolve_env looks up every
     * ${NAME} they use, and a missing one is named. */
    env.url = strdup(url->valuestring);
    for (const cJSON *x = hd ? hd->child : NULL; x && env.nhdr < DRV_HTTP_HEADERS_MAX;
         x = x->next) {
        char *line = malloc(strlen(x->string) + strlen(x->valuestring) + 3);
        if (line) sprintf(line, "%s: %s", x->string, x->valuestring);
        env.hdr[env.nhdr++] = line;
    }
    char sub[256];
    if (!env.url) {
        e = DRV_ENOMEM;
        goto out;
    }
    if ((e = drv_http_cfg_resolve_env(&env, sub, sizeof sub))) {
        snprintf(why, whylen, "%s: %s", name, sub);
        goto out;
    }
    for (int i = 0; i < env.nhdr; i++) {
        char *line = env.hdr[i] ? resolve(&env, env.hdr[i], sub, sizeof sub) : NULL;
        struct curl_slist *n = line ? curl_slist_append(h->hdrs, line) : NULL;
        free(line);
        if (!n) {
            snprintf(why, whylen, "%s.headers: %s", name, sub);
            e = DRV_EINVAL;
            goto out;
        }
        h->hdrs = n;
    }
    struct curl_slist *n = curl_slist_append(h->hdrs, "Content-Type: application/json");
    if (n) h->hdrs = n;
    if (!n || !(h->url = resolve(&env, env.url, sub, sizeof sub))) {
        snprintf(why, whylen, "%s.url: %s", name, n ? sub : "out of memory");
        e = DRV_EINVAL;
        goto out;
    }
out:
    drv_http_cfg_free(&env);
    cJSON_Delete(root);
    if (e) {
        drv_hook_free(h);
        return e;
    }
    *out = h;
    return DRV_OK;
}

/* ---- one POST -------------------------------------------------------------------------------- */

typedef struct post_state {
    char retry_after[64];
    size_t body_bytes; /* of the answer: read and dropped */
} post_state;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    (void)p;
    ((post_state *)ud)->body_bytes += size * n;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    post_state *s = ud;
    size_t len = size * n;
    drv_header_retry_after(p, len, s->retry_after, sizeof s->retry_after);
    return len;
}

drv_err drv_hook_post(drv_hook *h, const char *body, const char *key, drv_hook_alive alive,
                      void *ud, int64_t *retry_after_ms, char *why, size_t whylen) {
    *retry_after_ms = 0;
    char idem[256];
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", key);
    struct curl_slist *hdrs = NULL, *last = h->hdrs;
    /* A private copy of the list with the key appended: the hook's own list stays as it is. */
    for (const struct curl_slist *x = last; x; x = x->next) {
        struct curl_slist *n = curl_slist_append(hdrs, x->data);
        if (!n) goto nomem;
        hdrs = n;
    }
    struct curl_slist *n = curl_slist_append(hdrs, idem);
    if (!n) goto nomem;
    hdrs = n;
    CURL *c = curl_easy_init();
    CURLM *m = curl_multi_init();
    if (!c || !m) {
        curl_easy_cleanup(c);
        curl_multi_cleanup(m);
        goto nomem;
    }
    post_state st;
    memset(&st, 0, sizeof st);
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &st);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->timeout_ms < 10000 ? h->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "drover/" DROVER_VERSION);
    curl_multi_add_handle(m, c);
    /* A multi handle polled in 50 ms slices: the caller's alive() keeps the coordinator's
     * lock and answers a stop signal within 50 ms even while the endpoint hangs. */
    int running = 1, aborted = 0;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK) break;
        if (!running) break;
        if (alive && alive(ud)) {
            aborted = 1;
            break;
        }
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    CURLcode rc = CURLE_FAILED_INIT;
    int left;
    for (CURLMsg *msg; (msg = curl_multi_info_read(m, &left));)
        if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    if (aborted) {
        snprintf(why, whylen, "stopped while sending");
        return DRV_EIO;
    }
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", err[0] ? err : curl_easy_strerror(rc));
        return DRV_EIO;
    }
    if (status >= 200 && status < 300) return DRV_OK;
    snprintf(why, whylen, "HTTP %ld", status);
    if (st.retry_after[0]) {
        int64_t ra = drv_retry_after_ms(st.retry_after, (int64_t)time(NULL));
        *retry_after_ms = ra > 0 ? ra : 0;
    }
    return DRV_EIO;
nomem:
    curl_slist_free_all(hdrs);
    snprintf(why, whylen, "out of memory");
    return DRV_ENOMEM;
}

/* ---- the body -------------------------------------------------------------------------------- */

static void add_num(cJSON *o, const char *name, int64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, v);
    cJSON_AddRawToObject(o, name, num);
}

static void on_dead_item(const char *id, size_t idlen, const char *err, size_t errlen, void *ud) {
    cJSON *arr = ud, *o = cJSON_CreateObject();
    if (!o) return;
    char *sid = strndup(id, idlen);
    cJSON_AddStringToObject(o, "id", sid ? sid : "");
    free(sid);
    /* The error record is JSON written by a worker; kept as a value, or as text if it is not. */
    cJSON *ev = cJSON_ParseWithLength(err, errlen);
    if (!ev) {
        char *s = strndup(err, errlen);
        ev = cJSON_CreateString(s ? s : "");
        free(s);
    }
    cJSON_AddItemToObject(o, "error", ev);
    cJSON_AddItemToArray(arr, o);
}

char *drv_hook_summary(drv_queue *q, const drv_job *job, const char *event, drv_err *err) {
    char *txt = NULL;
    drv_part_stat *st = calloc((size_t)job->partitions, sizeof *st), t;
    cJSON *o = cJSON_CreateObject(), *errs = cJSON_CreateArray();
    *err = DRV_ENOMEM;
    if (!st || !o || !errs) goto out;
    if ((*err = drv_queue_stats(q, job->id, job->partitions, st))) goto out;
    drv_part_stat_sum(st, job->partitions, &t);
    if ((*err =
             drv_queue_dead_first(q, job->id, job->partitions, FIRST_ERRORS, on_dead_item, errs)))
        goto out;
    cJSON_AddStringToObject(o, "job", job->id);
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "state", job->state);
    if (job->total >= 0)
        add_num(o, "total", job->total);
    else
        cJSON_AddNullToObject(o, "total");
    add_num(o, "processed", t.done);
    add_num(o, "dead", t.dead);
    if (strcmp(event, "dead_over") == 0) add_num(o, "threshold", job->spec.alert_dead_over);
    add_num(o, "duplicates", t.duplicates);
    add_num(o, "failed_attempts", t.failed);
    add_num(o, "started_ms", job->created_ms);
    if (job->finished_ms) {
        add_num(o, "finished_ms", job->finished_ms);
        add_num(o, "duration_ms", job->finished_ms - job->created_ms);
    } else {
        cJSON_AddNullToObject(o, "finished_ms");
        cJSON_AddNullToObject(o, "duration_ms");
    }
    cJSON_AddItemToObject(o, "first_errors", errs);
    errs = NULL;
    *err = DRV_ENOMEM;
    char *p = cJSON_PrintUnformatted(o);
    if (p) {
        txt = strdup(p);
        cJSON_free(p);
    }
    if (txt) *err = DRV_OK;
out:
    cJSON_Delete(errs);
    cJSON_Delete(o);
    free(st);
    return txt;
}
