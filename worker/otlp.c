#define _GNU_SOURCE /* asprintf */
#include "otlp.h"

#include "backoff.h"
#include "clock.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_CAP    4096 /* spans waiting; more are dropped */
#define BATCH_MAX    512  /* spans per request */
#define FLUSH_MS     1000 /* a partial batch waits at most this long */
#define SEND_MS      5000 /* one request's time limit */
#define STOP_SEND_MS 2000 /* the last one's, when the worker exits */
#define ITEM_MAX     256  /* bytes of the item id kept in the span */
#define ERROR_MAX    256  /* bytes of the error kept as the span's status message */

typedef struct span {
    trace_ctx t;
    char job[65];
    char item[ITEM_MAX + 1];
    char outcome[16];
    char error[ERROR_MAX + 1];
    int attempt, failed;
    int64_t start_ns, end_ns;
} span;

struct otlp {
    char *url;
    char *worker;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    span *q; /* ring of QUEUE_CAP */
    size_t head, n;
    int stop;
    int64_t dropped;
    span *batch; /* the thread's own: BATCH_MAX */
    CURL *curl;
    drv_backoff bo;
};

static void copy_text(char *dst, size_t cap, const char *s, size_t len) {
    if (len >= cap) len = cap - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
}

void otlp_span(otlp *o, const char *job, const char *item, size_t itemlen, int attempt,
               const trace_ctx *t, int64_t start_ns, int64_t end_ns, const char *outcome,
               const char *error) {
    pthread_mutex_lock(&o->mu);
    if (o->n == QUEUE_CAP) {
        o->dropped++;
        pthread_mutex_unlock(&o->mu);
        return;
    }
    span *s = &o->q[(o->head + o->n++) % QUEUE_CAP];
    s->t = *t;
    copy_text(s->job, sizeof s->job, job, strlen(job));
    copy_text(s->item, sizeof s->item, item, itemlen);
    copy_text(s->outcome, sizeof s->outcome, outcome, strlen(outcome));
    copy_text(s->error, sizeof s->error, error ? error : "", error ? strlen(error) : 0);
    s->failed = error != NULL;
    s->attempt = attempt;
    s->start_ns = start_ns;
    s->end_ns = end_ns;
    if (o->n >= BATCH_MAX) pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

int64_t otlp_dropped(otlp *o) {
    pthread_mutex_lock(&o->mu);
    int64_t d = o->dropped;
    pthread_mutex_unlock(&o->mu);
    return d;
}

static void attr(cJSON *attrs, const char *key, const char *kind, const char *value) {
    cJSON *a = cJSON_CreateObject(), *v = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "key", key);
    cJSON_AddStringToObject(v, kind, value);
    cJSON_AddItemToObject(a, "value", v);
    cJSON_AddItemToArray(attrs, a);
}

/* The OTLP/HTTP JSON body of spans[0..n): ids as hex, times and integers as strings (the
 * protobuf JSON mapping of 64-bit numbers). */
static char *body_of(const otlp *o, const span *spans, size_t n) {
    cJSON *root = cJSON_CreateObject();
    cJSON *rs = cJSON_AddArrayToObject(root, "resourceSpans");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToArray(rs, r);
    cJSON *res = cJSON_AddObjectToObject(r, "resource");
    cJSON *rattrs = cJSON_AddArrayToObject(res, "attributes");
    attr(rattrs, "service.name", "stringValue", "drover-worker");
    attr(rattrs, "service.instance.id", "stringValue", o->worker);
    attr(rattrs, "service.version", "stringValue", DROVER_VERSION);
    cJSON *ss = cJSON_AddArrayToObject(r, "scopeSpans");
    cJSON *sc = cJSON_CreateObject();
    cJSON_AddItemToArray(ss, sc);
    cJSON *scope = cJSON_AddObjectToObject(sc, "scope");
    cJSON_AddStringToObject(scope, "name", "drover");
    cJSON_AddStringToObject(scope, "version", DROVER_VERSION);
    cJSON *arr = cJSON_AddArrayToObject(sc, "spans");
    for (size_t i = 0; i < n; i++) {
        const span *s = &spans[i];
        char num[32], name[96];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "traceId", s->t.trace_id);
        cJSON_AddStringToObject(j, "spanId", s->t.span_id);
        if (s->t.parent_id[0]) cJSON_AddStringToObject(j, "parentSpanId", s->t.parent_id);
        snprintf(name, sizeof name, "process %s", s->job);
        cJSON_AddStringToObject(j, "name", name);
        cJSON_AddNumberToObject(j, "kind", 5); /* SPAN_KIND_CONSUMER: an item taken from a queue */
        snprintf(num, sizeof num, "%" PRId64, s->start_ns);
        cJSON_AddStringToObject(j, "startTimeUnixNano", num);
        snprintf(num, sizeof num, "%" PRId64, s->end_ns);
        cJSON_AddStringToObject(j, "endTimeUnixNano", num);
        cJSON *attrs = cJSON_AddArrayToObject(j, "attributes");
        attr(attrs, "drover.job", "stringValue", s->job);
        attr(attrs, "drover.item.id", "stringValue", s->item);
        snprintf(num, sizeof num, "%d", s->attempt);
        attr(attrs, "drover.attempt", "intValue", num);
        attr(attrs, "drover.outcome", "stringValue", s->outcome);
        cJSON *st = cJSON_AddObjectToObject(j, "status");
        cJSON_AddNumberToObject(st, "code", s->failed ? 2 : 1); /* ERROR : OK */
        if (s->failed) cJSON_AddStringToObject(st, "message", s->error);
        cJSON_AddItemToArray(arr, j);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static size_t discard(char *p, size_t size, size_t n, void *u) {
    (void)p, (void)u;
    return size * n;
}

/* Sends one batch. Returns 0, or -1 with 'why'. */
static int send_batch(otlp *o, const span *spans, size_t n, char *why, size_t whylen) {
    char *body = body_of(o, spans, n);
    if (!body) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(o->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(o->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(o->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    CURLcode c = curl_easy_perform(o->curl);
    long status = 0;
    curl_easy_getinfo(o->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    free(body);
    if (c != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(c));
        return -1;
    }
    if (status < 200 || status > 299) {
        snprintf(why, whylen, "HTTP status %ld", status);
        return -1;
    }
    return 0;
}

static void abs_time(struct timespec *ts, int64_t ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

/* The thread: waits for a full batch or FLUSH_MS, sends, backs off while sending fails (spans
 * keep queueing meanwhile, and drop once the queue is full). A failed batch is dropped. */
static void *run(void *arg) {
    otlp *o = arg;
    int64_t retry_at = 0;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        int64_t now = drv_now_ms();
        if (!o->stop && (o->n < BATCH_MAX || now < retry_at)) {
            struct timespec ts;
            int64_t wait = now < retry_at ? retry_at - now : FLUSH_MS;
            abs_time(&ts, wait);
            pthread_cond_timedwait(&o->cv, &o->mu, &ts);
            now = drv_now_ms();
            if (!o->stop && (now < retry_at || (o->n < BATCH_MAX && o->n == 0))) continue;
        }
        if (o->n == 0 || (o->stop && retry_at > now))
            break;          /* stopping: no waiting out a backoff */
        int last = o->stop; /* stopping: one last batch, in a shorter time */
        size_t k = o->n < BATCH_MAX ? o->n : BATCH_MAX;
        for (size_t i = 0; i < k; i++)
            o->batch[i] = o->q[(o->head + i) % QUEUE_CAP];
        o->head = (o->head + k) % QUEUE_CAP;
        o->n -= k;
        pthread_mutex_unlock(&o->mu);
        char why[256];
        if (last) curl_easy_setopt(o->curl, CURLOPT_TIMEOUT_MS, (long)STOP_SEND_MS);
        int rc = send_batch(o, o->batch, k, why, sizeof why);
        now = drv_now_ms();
        if (rc == 0) {
            if (o->bo.fails) drv_backoff_ok_log(&o->bo, now, "sending spans to the collector");
            retry_at = 0;
        } else {
            retry_at =
                now + drv_backoff_fail_log(&o->bo, now, "sending spans to the collector", why);
        }
        pthread_mutex_lock(&o->mu);
        if (rc != 0) o->dropped += (int64_t)k;
        if (last) break;
    }
    o->dropped += (int64_t)o->n; /* what a stop left unsent */
    o->n = 0;
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

otlp *otlp_new(const char *url, const char *worker, char *why, size_t whylen) {
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(why, whylen, "--otlp-endpoint: expected an http:// or https:// URL, got \"%s\"",
                 url);
        return NULL;
    }
    const char *host = strstr(url, "://") + 3;
    if (!*host || *host == '/') {
        snprintf(why, whylen, "--otlp-endpoint: no host in \"%s\"", url);
        return NULL;
    }
    otlp *o = calloc(1, sizeof *o);
    if (!o) goto oom;
    /* A bare collector address gets the traces path (what OTEL_EXPORTER_OTLP_ENDPOINT means). */
    const char *path = strchr(host, '/');
    if (!path || strcmp(path, "/") == 0) {
        size_t n = path ? (size_t)(path - url) : strlen(url);
        if (asprintf(&o->url, "%.*s/v1/traces", (int)n, url) < 0) o->url = NULL;
    } else {
        o->url = strdup(url);
    }
    o->worker = strdup(worker);
    o->q = calloc(QUEUE_CAP, sizeof *o->q);
    o->batch = calloc(BATCH_MAX, sizeof *o->batch);
    o->curl = curl_easy_init();
    if (!o->url || !o->worker || !o->q || !o->batch || !o->curl) goto oom;
    curl_easy_setopt(o->curl, CURLOPT_URL, o->url);
    curl_easy_setopt(o->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(o->curl, CURLOPT_TIMEOUT_MS, (long)SEND_MS);
    curl_easy_setopt(o->curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(o->curl, CURLOPT_WRITEFUNCTION, discard);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    if (pthread_create(&o->thread, NULL, run, o) != 0) {
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        snprintf(why, whylen, "--otlp-endpoint: cannot start the exporter thread");
        goto fail;
    }
    return o;
oom:
    snprintf(why, whylen, "out of memory");
fail:
    if (o) {
        if (o->curl) curl_easy_cleanup(o->curl);
        free(o->url), free(o->worker), free(o->q), free(o->batch), free(o);
    }
    return NULL;
}

void otlp_free(otlp *o) {
    if (!o) return;
    pthread_mutex_lock(&o->mu);
    o->stop = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    if (o->dropped) drv_info("traces: %" PRId64 " spans dropped", o->dropped);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    curl_easy_cleanup(o->curl);
    free(o->url), free(o->worker), free(o->q), free(o->batch), free(o);
}
