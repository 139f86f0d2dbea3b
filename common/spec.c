#include "spec.h"

#include "config.h"
#include "handler.h"
#include "keys.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRV_RANGE_LIMIT 9007199254740992LL /* 2^53 */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        e = DRV_EINVAL;                                                                            \
        goto out;                                                                                  \
    } while (0)

void drv_spec_init(drv_spec *s) {
    memset(s, 0, sizeof *s);
    s->source = DRV_SRC_RANGE;
    s->range_start = 1;
    s->range_end = 0; /* start > end: "no source given" until one is set */
    s->format = DRV_FMT_LINES;
    s->partitions = 8;
    s->lease_ms = 30000;
    s->max_attempts = 5;
    s->backoff_ms = 1000;
    s->backoff_max_ms = 300000;
    s->window = 5000;
    s->max_item_bytes = 1 << 20;
    s->weight = 1;
    strcpy(s->next_param, "cursor");
    s->alert_dead_over = -1;
}

int64_t drv_spec_default_burst(int64_t per_second) {
    return per_second / 10 > 1 ? per_second / 10 : 1;
}

const char *drv_fmt_name(drv_fmt f) {
    return f == DRV_FMT_NDJSON ? "ndjson" : f == DRV_FMT_CSV ? "csv" : "lines";
}

int drv_fmt_parse(const char *s, drv_fmt *out) {
    if (strcmp(s, "lines") == 0) return *out = DRV_FMT_LINES, 0;
    if (strcmp(s, "ndjson") == 0) return *out = DRV_FMT_NDJSON, 0;
    if (strcmp(s, "csv") == 0) return *out = DRV_FMT_CSV, 0;
    return -1;
}

const char *drv_src_name(drv_src_type t) {
    return t == DRV_SRC_FILE    ? "file"
           : t == DRV_SRC_STDIN ? "stdin"
           : t == DRV_SRC_HTTP  ? "http"
                                : "range";
}

int drv_range_parse(const char *s, int64_t *a, int64_t *b) {
    const char *dots = strstr(s, "..");
    if (!dots || dots == s) return -1;
    char left[32];
    size_t n = (size_t)(dots - s);
    if (n >= sizeof left) return -1;
    memcpy(left, s, n);
    left[n] = '\0';
    long long x, y;
    if (drv_parse_ll(left, INT64_MIN, INT64_MAX, &x) != 0) return -1;
    if (drv_parse_ll(dots + 2, INT64_MIN, INT64_MAX, &y) != 0) return -1;
    *a = x, *b = y;
    return 0;
}

drv_err drv_spec_validate(const drv_spec *s, char *why, size_t whylen) {
    drv_err e = DRV_OK;
    if (s->id[0] && !drv_job_id_valid(s->id))
        FAIL("id: expected 1 to 64 letters, digits, '_' or '-', got \"%s\"", s->id);
    if (s->partitions < 1 || s->partitions > DRV_PARTITIONS_MAX)
        FAIL("partitions: expected 1 to %d, got %" PRId64, DRV_PARTITIONS_MAX, s->partitions);
    if (s->lease_ms < 100 || s->lease_ms > 86400000)
        FAIL("lease_ms: expected 100 to 86400000, got %" PRId64, s->lease_ms);
    if (s->max_attempts < 1 || s->max_attempts > 1000)
        FAIL("max_attempts: expected 1 to 1000, got %" PRId64, s->max_attempts);
    if (s->backoff_ms < 0 || s->backoff_ms > 86400000)
        FAIL("backoff_ms: expected 0 to 86400000, got %" PRId64, s->backoff_ms);
    if (s->backoff_max_ms < s->backoff_ms || s->backoff_max_ms > 86400000)
        FAIL("backoff_max_ms: expected backoff_ms (%" PRId64 ") to 86400000, got %" PRId64,
             s->backoff_ms, s->backoff_max_ms);
    if (s->window < 1 || s->window > 10000000)
        FAIL("window: expected 1 to 10000000, got %" PRId64, s->window);
    if (s->max_item_bytes < 16 || s->max_item_bytes > (64 << 20))
        FAIL("max_item_bytes: expected 16 to 67108864, got %" PRId64, s->max_item_bytes);
    if (s->rate_per_s < 0 || s->rate_per_s > DRV_RATE_MAX)
        FAIL("rate.per_second: expected 1 to %d, got %" PRId64, DRV_RATE_MAX, s->rate_per_s);
    if (s->rate_per_s && (s->rate_burst < 1 || s->rate_burst > DRV_RATE_MAX))
        FAIL("rate.burst: expected 1 to %d, got %" PRId64, DRV_RATE_MAX, s->rate_burst);
    if (!s->rate_per_s && s->rate_burst) FAIL("rate.burst: only with rate.per_second");
    if (s->max_in_flight < 0 || s->max_in_flight > DRV_RATE_MAX)
        FAIL("max_in_flight: expected 1 to %d, got %" PRId64, DRV_RATE_MAX, s->max_in_flight);
    if (s->weight < 1 || s->weight > DRV_WEIGHT_MAX)
        FAIL("weight: expected 1 to %d, got %" PRId64, DRV_WEIGHT_MAX, s->weight);
    if (s->alert_dead_over < -1)
        FAIL("alert_dead_over: expected 0 or more, got %" PRId64, s->alert_dead_over);
    if (s->alert_dead_over >= 0 && !s->on_dead[0])
        FAIL("alert_dead_over: needs \"on_dead\" (where to send the alert)");
    if (s->on_dead[0] && s->alert_dead_over < 0)
        FAIL("on_dead: needs \"alert_dead_over\" (the dead count that triggers it)");
    if (s->ttl_after_done < 0 || s->ttl_after_done > 31536000)
        FAIL("ttl_after_done: expected 0 (keep) to 31536000 seconds, got %" PRId64,
             s->ttl_after_done);
    switch (s->source) {
    case DRV_SRC_RANGE:
        /* The spec is stored as JSON, whose numbers are exact only up to 2^53. */
        if (s->range_start < -DRV_RANGE_LIMIT || s->range_start > DRV_RANGE_LIMIT ||
            s->range_end < -DRV_RANGE_LIMIT || s->range_end > DRV_RANGE_LIMIT)
            FAIL("source: range bounds must be within -2^53..2^53 (%" PRId64 "..%" PRId64 ")",
                 s->range_start, s->range_end);
        if (s->range_start > s->range_end)
            FAIL("source: range start %" PRId64 " is greater than its end %" PRId64, s->range_start,
                 s->range_end);
        {
            /* A range partition's done record is a bitmap whose offsets are id - start, and a
             * Redis string holds at most 2^32 bits; submit gives each partition
             * ceil(total / partitions) ids. */
            uint64_t total = (uint64_t)(s->range_end - s->range_start) + 1;
            uint64_t width = (total + (uint64_t)s->partitions - 1) / (uint64_t)s->partitions;
            uint64_t need = (total + DRV_PART_IDS_MAX - 1) / DRV_PART_IDS_MAX;
            if (width > DRV_PART_IDS_MAX && need <= DRV_PARTITIONS_MAX)
                FAIL("source: range %" PRId64 "..%" PRId64 " over %" PRId64
                     " partitions gives partitions of %" PRIu64
                     " ids; a partition holds at most 2^32 (4294967296): use at least %" PRIu64
                     " partitions",
                     s->range_start, s->range_end, s->partitions, width, need);
            if (width > DRV_PART_IDS_MAX)
                FAIL("source: range %" PRId64 "..%" PRId64 " has %" PRIu64
                     " ids; at most 2^32 (4294967296) per partition and %d partitions hold "
                     "at most 2^42: submit a narrower range",
                     s->range_start, s->range_end, total, DRV_PARTITIONS_MAX);
        }
        break;
    case DRV_SRC_FILE:
        if (!s->path[0]) FAIL("source.path: expected a file path");
        /* fall through */
    case DRV_SRC_STDIN:
        if (s->format != DRV_FMT_LINES && !s->id_field[0])
            FAIL("source.id_field: format %s needs the field (ndjson) or column (csv) that "
                 "holds each item's id",
                 drv_fmt_name(s->format));
        if (s->format == DRV_FMT_LINES && s->id_field[0])
            FAIL("source.id_field: only ndjson and csv sources have fields; format is lines");
        break;
    case DRV_SRC_HTTP:
        if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8) &&
            strncmp(s->url, "${", 2))
            FAIL("source.url: expected an http:// or https:// URL");
        if (!s->next_param[0]) FAIL("source.next_param: expected a query parameter name");
        break;
    }
out:
    return e;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static int is_known(const char *name, const char *const *known) {
    for (; *known; known++)
        if (strcmp(name, *known) == 0) return 1;
    return 0;
}

/* Reads an integer field; 'path' names it in messages. Returns 0 or -1 (why filled). */
static int get_int(const cJSON *obj, const char *name, const char *path, int64_t *out, char *why,
                   size_t whylen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v) return 0;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < -(double)DRV_RANGE_LIMIT ||
        d > (double)DRV_RANGE_LIMIT) {
        snprintf(why, whylen, "%s: expected a whole number", path);
        return -1;
    }
    *out = (int64_t)d;
    return 0;
}

static int get_str(const cJSON *obj, const char *name, const char *path, char *out, size_t cap,
                   char *why, size_t whylen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v) return 0;
    if (!cJSON_IsString(v)) {
        snprintf(why, whylen, "%s: expected a string", path);
        return -1;
    }
    if (strlen(v->valuestring) >= cap) {
        snprintf(why, whylen, "%s: longer than %zu bytes", path, cap - 1);
        return -1;
    }
    strcpy(out, v->valuestring);
    return 0;
}

static drv_err parse_source(const cJSON *src, drv_spec *s, char *why, size_t whylen) {
    static const char *const known[] = {"type",   "start",      "end",     "path",
                                        "format", "id_field",   "url",     "items",
                                        "next",   "next_param", "headers", 0};
    drv_err e = DRV_OK;
    char type[16] = "", fmt[16] = "";
    if (!cJSON_IsObject(src)) FAIL("source: expected an object such as {\"type\": \"range\", ...}");
    for (const cJSON *f = src->child; f; f = f->next)
        if (!is_known(f->string, known))
            FAIL("source.%s: unknown field (expected type, start, end, path, format, id_field, "
                 "url, items, next, next_param, headers)",
                 f->string);
    if (get_str(src, "type", "source.type", type, sizeof type, why, whylen)) return DRV_EINVAL;
    if (strcmp(type, "range") == 0) {
        s->source = DRV_SRC_RANGE;
        if (!cJSON_HasObjectItem(src, "start") || !cJSON_HasObjectItem(src, "end"))
            FAIL("source: a range needs \"start\" and \"end\"");
        if (get_int(src, "start", "source.start", &s->range_start, why, whylen) ||
            get_int(src, "end", "source.end", &s->range_end, why, whylen))
            return DRV_EINVAL;
    } else if (strcmp(type, "file") == 0 || strcmp(type, "stdin") == 0) {
        s->source = type[0] == 'f' ? DRV_SRC_FILE : DRV_SRC_STDIN;
        if (get_str(src, "path", "source.path", s->path, sizeof s->path, why, whylen) ||
            get_str(src, "format", "source.format", fmt, sizeof fmt, why, whylen) ||
            get_str(src, "id_field", "source.id_field", s->id_field, sizeof s->id_field, why,
                    whylen))
            return DRV_EINVAL;
        if (fmt[0] && drv_fmt_parse(fmt, &s->format) != 0)
            FAIL("source.format: expected lines, ndjson or csv, got \"%s\"", fmt);
        if (s->source == DRV_SRC_STDIN && s->path[0])
            FAIL("source.path: a stdin source has no path");
    } else if (strcmp(type, "http") == 0) {
        s->source = DRV_SRC_HTTP;
        if (!cJSON_HasObjectItem(src, "url")) FAIL("source.url: missing (the first page's URL)");
        if (get_str(src, "url", "source.url", s->url, sizeof s->url, why, whylen) ||
            get_str(src, "items", "source.items", s->items_path, sizeof s->items_path, why,
                    whylen) ||
            get_str(src, "next", "source.next", s->next_path, sizeof s->next_path, why, whylen) ||
            get_str(src, "next_param", "source.next_param", s->next_param, sizeof s->next_param,
                    why, whylen) ||
            get_str(src, "id_field", "source.id_field", s->id_field, sizeof s->id_field, why,
                    whylen))
            return DRV_EINVAL;
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(src, "headers");
        if (h) {
            if (!cJSON_IsObject(h)) FAIL("source.headers: expected an object of name: value");
            for (const cJSON *x = h->child; x; x = x->next)
                if (!cJSON_IsString(x) || strpbrk(x->valuestring, "\r\n") ||
                    strcspn(x->string, ":\r\n \t") != strlen(x->string) || !x->string[0])
                    FAIL("source.headers.%s: expected a header name with a one-line string",
                         x->string);
            char *t = cJSON_PrintUnformatted(h);
            if (!t || strlen(t) >= sizeof s->src_headers) {
                cJSON_free(t);
                FAIL("source.headers: longer than %zu bytes", sizeof s->src_headers - 1);
            }
            strcpy(s->src_headers, t);
            cJSON_free(t);
        }
        for (const char *k = "start\0end\0path\0format\0"; *k; k += strlen(k) + 1)
            if (cJSON_HasObjectItem(src, k)) FAIL("source.%s: not a field of an http source", k);
    } else {
        FAIL("source.type: expected range, file, stdin or http, got \"%s\"", type);
    }
out:
    return e;
}

/* "rate": {"per_second": R, "burst": B}; burst defaults to drv_spec_default_burst(R). */
static drv_err parse_rate(const cJSON *rate, drv_spec *s, char *why, size_t whylen) {
    drv_err e = DRV_OK;
    if (!cJSON_IsObject(rate)) FAIL("rate: expected an object such as {\"per_second\": 100}");
    for (const cJSON *f = rate->child; f; f = f->next)
        if (strcmp(f->string, "per_second") && strcmp(f->string, "burst"))
            FAIL("rate.%s: unknown field (expected per_second, burst)", f->string);
    if (!cJSON_HasObjectItem(rate, "per_second"))
        FAIL("rate.per_second: missing (items per second across the fleet)");
    int64_t r = 0, b = 0;
    if (get_int(rate, "per_second", "rate.per_second", &r, why, whylen) ||
        get_int(rate, "burst", "rate.burst", &b, why, whylen))
        return DRV_EINVAL;
    if (r < 1 || r > DRV_RATE_MAX)
        FAIL("rate.per_second: expected 1 to %d, got %" PRId64 " (leave \"rate\" out for no "
             "limit)",
             DRV_RATE_MAX, r);
    if (cJSON_HasObjectItem(rate, "burst") && (b < 1 || b > DRV_RATE_MAX))
        FAIL("rate.burst: expected 1 to %d, got %" PRId64, DRV_RATE_MAX, b);
    s->rate_per_s = r;
    s->rate_burst = b ? b : drv_spec_default_burst(r);
out:
    return e;
}

static drv_err drv_spec_set_handler(drv_spec *s, const cJSON *h, char *why, size_t whylen) {
    char *t = cJSON_PrintUnformatted(h);
    if (!t) return DRV_ENOMEM;
    drv_http_cfg c;
    drv_err e = drv_http_cfg_parse(t, strlen(t), &c, why, whylen);
    cJSON_free(t);
    if (e) return e;
    e = drv_http_cfg_to_json(&c, s->handler, sizeof s->handler);
    drv_http_cfg_free(&c);
    if (e == DRV_ETOOBIG)
        snprintf(why, whylen, "handler: longer than %zu bytes as JSON", sizeof s->handler - 1);
    return e;
}

/* Validates an on_complete / on_dead object and writes its canonical JSON into out. */
static drv_err parse_hook(const cJSON *h, const char *name, char *out, size_t cap, char *why,
                          size_t whylen) {
    static const char *const known[] = {"url", "headers", "timeout_ms", 0};
    drv_err e = DRV_OK;
    cJSON *c = NULL;
    char *t = NULL;
    if (!cJSON_IsObject(h))
        FAIL("%s: expected an object such as {\"url\": \"https://...\", \"headers\": {...}}", name);
    for (const cJSON *f = h->child; f; f = f->next)
        if (!is_known(f->string, known))
            FAIL("%s.%s: unknown field (expected url, headers, timeout_ms)", name, f->string);
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(h, "url");
    if (!url) FAIL("%s.url: missing (where to POST)", name);
    if (!cJSON_IsString(url) || strpbrk(url->valuestring, " \t\r\n") ||
        (strncmp(url->valuestring, "http://", 7) && strncmp(url->valuestring, "https://", 8) &&
         strncmp(url->valuestring, "${", 2)) ||
        strlen(url->valuestring) >= 4096)
        FAIL("%s.url: expected an http:// or https:// URL (at most 4095 bytes)", name);
    int64_t timeout = 10000;
    char path[64];
    snprintf(path, sizeof path, "%s.timeout_ms", name);
    if (get_int(h, "timeout_ms", path, &timeout, why, whylen)) return DRV_EINVAL;
    if (timeout < 100 || timeout > 600000)
        FAIL("%s.timeout_ms: expected 100 to 600000, got %" PRId64, name, timeout);
    if (!(c = cJSON_CreateObject())) return DRV_ENOMEM;
    cJSON_AddStringToObject(c, "url", url->valuestring);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(h, "headers");
    if (hd) {
        if (!cJSON_IsObject(hd)) FAIL("%s.headers: expected an object of name: value", name);
        int n = 0;
        for (const cJSON *x = hd->child; x; x = x->next, n++)
            if (!cJSON_IsString(x) || strpbrk(x->valuestring, "\r\n") ||
                strcspn(x->string, ":\r\n \t") != strlen(x->string) || !x->string[0])
                FAIL("%s.headers.%s: expected a header name with a one-line string", name,
                     x->string);
        if (n > 32) FAIL("%s.headers: at most 32 headers", name);
        cJSON_AddItemToObject(c, "headers", cJSON_Duplicate(hd, 1));
    }
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, timeout);
    cJSON_AddRawToObject(c, "timeout_ms", num);
    if (!(t = cJSON_PrintUnformatted(c))) {
        e = DRV_ENOMEM;
        goto out;
    }
    if (strlen(t) >= cap) FAIL("%s: longer than %zu bytes as JSON", name, cap - 1);
    strcpy(out, t);
out:
    cJSON_free(t);
    cJSON_Delete(c);
    return e;
}

/* JSON numbers are read as doubles, exact for whole numbers up to 2^53 only: "end":
 * 9007199254740993 would become 2^53 without a word (and so would 9.007199254740993e15).
 * Refuses, naming the field, any number whose text is past 2^52 in magnitude unless it is a
 * plain whole number within -2^53..2^53, as the --range flag does. 1 (why filled) or 0. */
static int inexact_number(const char *json, size_t len, char *why, size_t whylen) {
    const char *key = "";
    size_t keylen = 0;
    /* The keys of the objects around this point, for a message naming "source.end". */
    const char *outer[8];
    size_t outerlen[8];
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (c == '{') {
            if (depth < 8 && keylen) outer[depth] = key, outerlen[depth] = keylen;
            if (depth < 8 && !keylen) outer[depth] = "", outerlen[depth] = 0;
            depth++;
            key = "", keylen = 0;
            continue;
        }
        if (c == '}' && depth > 0) {
            depth--;
            key = "", keylen = 0;
            continue;
        }
        if (c == '"') {
            size_t j = i + 1;
            while (j < len && json[j] != '"')
                j += json[j] == '\\' ? 2 : 1;
            size_t k = j + 1;
            while (k < len &&
                   (json[k] == ' ' || json[k] == '\t' || json[k] == '\r' || json[k] == '\n'))
                k++;
            if (k < len && json[k] == ':') key = json + i + 1, keylen = j - i - 1;
            i = j;
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) continue;
        size_t j = i;
        int plain = 1;
        while (j < len && json[j] && strchr("+-0123456789.eE", json[j])) {
            if (json[j] == '.' || json[j] == 'e' || json[j] == 'E') plain = 0;
            j++;
        }
        char num[64];
        size_t n = j - i;
        int ok = n < sizeof num;
        if (ok) {
            memcpy(num, json + i, n);
            num[n] = '\0';
            double d = fabs(strtod(num, NULL));
            if (plain) {
                long long v;
                ok = drv_parse_ll(num, -DRV_RANGE_LIMIT, DRV_RANGE_LIMIT, &v) == 0;
            } else {
                ok = d < 4503599627370496.0; /* 2^52: a fraction or exponent is exact below */
            }
        }
        if (!ok) {
            char path[160] = "";
            size_t o = 0;
            for (int d = 1; d < depth && d < 8 && o < sizeof path; d++)
                if (outerlen[d])
                    o += (size_t)snprintf(path + o, sizeof path - o, "%.*s.",
                                          (int)(outerlen[d] < 40 ? outerlen[d] : 40), outer[d]);
            if (o >= sizeof path) o = sizeof path - 1;
            snprintf(why, whylen,
                     "%s%.*s: %.*s is not exact as a JSON number: whole numbers must be within "
                     "-2^53..2^53 (and written without a fraction or exponent past 2^52)",
                     path, (int)(keylen < 64 ? keylen : 64), key, (int)(n < 40 ? n : 40), json + i);
            return 1;
        }
        i = j - 1;
    }
    return 0;
}

drv_err drv_spec_parse(const char *json, size_t len, drv_spec *out, char *why, size_t whylen) {
    static const char *const known[] = {"id",
                                        "source",
                                        "partitions",
                                        "lease_ms",
                                        "max_attempts",
                                        "backoff_ms",
                                        "backoff_max_ms",
                                        "window",
                                        "max_item_bytes",
                                        "handler",
                                        "rate",
                                        "max_in_flight",
                                        "weight",
                                        "on_complete",
                                        "on_dead",
                                        "alert_dead_over",
                                        "ttl_after_done",
                                        0};
    drv_err e = DRV_OK;
    drv_spec s;
    drv_spec_init(&s);
    cJSON *root = NULL;
    if (inexact_number(json, len, why, whylen)) goto bad;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root && end) {
        /* cJSON stops after the first value: text after it (a second object, a stray brace)
         * would otherwise be dropped without a word. */
        while (end < json + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
            end++;
        if (end < json + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < at && i < len; i++, col++)
            if (json[i] == '\n') line++, col = 0;
        FAIL("malformed JSON at line %d, column %d", line, col);
    }
    if (!cJSON_IsObject(root)) FAIL("expected a JSON object at the top level");
    for (const cJSON *f = root->child; f; f = f->next)
        if (!is_known(f->string, known))
            FAIL("%s: unknown field (expected id, source, partitions, lease_ms, max_attempts, "
                 "backoff_ms, backoff_max_ms, window, max_item_bytes, handler, rate, "
                 "max_in_flight, weight, on_complete, on_dead, alert_dead_over, "
                 "ttl_after_done)",
                 f->string);
    if (get_str(root, "id", "id", s.id, sizeof s.id, why, whylen)) goto bad;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "source");
    if (!src)
        FAIL("source: missing (expected {\"type\": \"range\"|\"file\"|\"stdin\"|\"http\", ...})");
    if ((e = parse_source(src, &s, why, whylen)) != DRV_OK) goto out;
    if (get_int(root, "partitions", "partitions", &s.partitions, why, whylen) ||
        get_int(root, "lease_ms", "lease_ms", &s.lease_ms, why, whylen) ||
        get_int(root, "max_attempts", "max_attempts", &s.max_attempts, why, whylen) ||
        get_int(root, "backoff_ms", "backoff_ms", &s.backoff_ms, why, whylen) ||
        get_int(root, "backoff_max_ms", "backoff_max_ms", &s.backoff_max_ms, why, whylen) ||
        get_int(root, "window", "window", &s.window, why, whylen) ||
        get_int(root, "max_item_bytes", "max_item_bytes", &s.max_item_bytes, why, whylen) ||
        get_int(root, "weight", "weight", &s.weight, why, whylen) ||
        get_int(root, "alert_dead_over", "alert_dead_over", &s.alert_dead_over, why, whylen) ||
        get_int(root, "ttl_after_done", "ttl_after_done", &s.ttl_after_done, why, whylen))
        goto bad;
    if (cJSON_HasObjectItem(root, "alert_dead_over") && s.alert_dead_over < 0)
        FAIL("alert_dead_over: expected 0 or more, got %" PRId64, s.alert_dead_over);
    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(root, "on_complete");
    if (oc && (e = parse_hook(oc, "on_complete", s.on_complete, sizeof s.on_complete, why,
                              whylen)) != DRV_OK)
        goto out;
    const cJSON *od = cJSON_GetObjectItemCaseSensitive(root, "on_dead");
    if (od && (e = parse_hook(od, "on_dead", s.on_dead, sizeof s.on_dead, why, whylen)) != DRV_OK)
        goto out;
    const cJSON *mif = cJSON_GetObjectItemCaseSensitive(root, "max_in_flight");
    if (mif) {
        if (get_int(root, "max_in_flight", "max_in_flight", &s.max_in_flight, why, whylen))
            goto bad;
        if (s.max_in_flight < 1)
            FAIL("max_in_flight: expected 1 to %d, got %" PRId64 " (leave it out for no cap)",
                 DRV_RATE_MAX, s.max_in_flight);
    }
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(root, "rate");
    if (rate && (e = parse_rate(rate, &s, why, whylen)) != DRV_OK) goto out;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "handler");
    if (h && (e = drv_spec_set_handler(&s, h, why, whylen)) != DRV_OK) goto out;
    if ((e = drv_spec_validate(&s, why, whylen)) != DRV_OK) goto out;
    *out = s;
    goto out;
bad:
    e = DRV_EINVAL;
out:
    cJSON_Delete(root);
    return e;
}

/* cJSON prints numbers with 15 significant digits whenever that reads back within a relative
 * DBL_EPSILON, so 9007199254740991 would be stored as 9007199254740990. Whole numbers are
 * written exactly instead. */
static void add_int(cJSON *obj, const char *name, int64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, v);
    cJSON_AddRawToObject(obj, name, num);
}

char *drv_spec_to_json(const drv_spec *s) {
    cJSON *root = cJSON_CreateObject(), *src = cJSON_CreateObject();
    char *txt = NULL;
    if (!root || !src) goto out;
    cJSON_AddStringToObject(root, "id", s->id);
    cJSON_AddStringToObject(src, "type", drv_src_name(s->source));
    if (s->source == DRV_SRC_RANGE) {
        add_int(src, "start", s->range_start);
        add_int(src, "end", s->range_end);
    } else if (s->source == DRV_SRC_HTTP) {
        cJSON_AddStringToObject(src, "url", s->url);
        if (s->items_path[0]) cJSON_AddStringToObject(src, "items", s->items_path);
        if (s->next_path[0]) cJSON_AddStringToObject(src, "next", s->next_path);
        cJSON_AddStringToObject(src, "next_param", s->next_param);
        if (s->id_field[0]) cJSON_AddStringToObject(src, "id_field", s->id_field);
        if (s->src_headers[0]) cJSON_AddRawToObject(src, "headers", s->src_headers);
    } else {
        if (s->source == DRV_SRC_FILE) cJSON_AddStringToObject(src, "path", s->path);
        cJSON_AddStringToObject(src, "format", drv_fmt_name(s->format));
        if (s->id_field[0]) cJSON_AddStringToObject(src, "id_field", s->id_field);
    }
    cJSON_AddItemToObject(root, "source", src);
    src = NULL;
    add_int(root, "partitions", s->partitions);
    add_int(root, "lease_ms", s->lease_ms);
    add_int(root, "max_attempts", s->max_attempts);
    add_int(root, "backoff_ms", s->backoff_ms);
    add_int(root, "backoff_max_ms", s->backoff_max_ms);
    add_int(root, "window", s->window);
    add_int(root, "max_item_bytes", s->max_item_bytes);
    if (s->handler[0]) cJSON_AddRawToObject(root, "handler", s->handler);
    if (s->rate_per_s) {
        cJSON *rate = cJSON_AddObjectToObject(root, "rate");
        if (!rate) goto out;
        add_int(rate, "per_second", s->rate_per_s);
        add_int(rate, "burst", s->rate_burst);
    }
    if (s->max_in_flight) add_int(root, "max_in_flight", s->max_in_flight);
    if (s->weight != 1) add_int(root, "weight", s->weight);
    if (s->on_complete[0]) cJSON_AddRawToObject(root, "on_complete", s->on_complete);
    if (s->on_dead[0]) cJSON_AddRawToObject(root, "on_dead", s->on_dead);
    if (s->alert_dead_over >= 0) add_int(root, "alert_dead_over", s->alert_dead_over);
    if (s->ttl_after_done) add_int(root, "ttl_after_done", s->ttl_after_done);
    char *p = cJSON_PrintUnformatted(root);
    if (p) {
        txt = strdup(p);
        cJSON_free(p);
    }
out:
    cJSON_Delete(src);
    cJSON_Delete(root);
    return txt;
}
