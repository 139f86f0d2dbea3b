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

#define FIELD(m) offsetof(drv_spec, m)
#define CAP(m)   sizeof(((drv_spec *)0)->m)

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        e = DRV_EINVAL;                                                                            \
        goto out;                                                                                  \
    } while (0)

void drv_spec_init(drv_spec *s) {
    memset(s, 0, sizeof *s);
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++)
        if (f->type == DRV_FIELD_INT) *(int64_t *)((char *)s + f->off) = f->def;
    s->source = DRV_SRC_RANGE;
    s->range_start = 1;
    s->range_end = 0; /* start > end: "no source given" until one is set */
    s->format = DRV_FMT_LINES;
    strcpy(s->next_param, "cursor");
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
           : t == DRV_SRC_PG    ? "postgres"
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

/* ---- rules beyond a field's bounds ------------------------------------------------------------
 */

static int check_id(const drv_spec *s, const drv_spec_field *f, char *why, size_t whylen) {
    (void)f;
    if (!s->id[0] || drv_job_id_valid(s->id)) return 0;
    snprintf(why, whylen, "id: expected 1 to 64 letters, digits, '_' or '-', got \"%s\"", s->id);
    return -1;
}

static int check_backoff_max(const drv_spec *s, const drv_spec_field *f, char *why, size_t whylen) {
    if (s->backoff_max_ms >= s->backoff_ms && s->backoff_max_ms <= f->max) return 0;
    snprintf(why, whylen,
             "backoff_max_ms: expected backoff_ms (%" PRId64 ") to %" PRId64 ", got %" PRId64,
             s->backoff_ms, f->max, s->backoff_max_ms);
    return -1;
}

/* A burst belongs to a rate: 1 to the maximum with one, none without. */
static int check_burst(const drv_spec *s, const drv_spec_field *f, char *why, size_t whylen) {
    if (s->rate_per_s && (s->rate_burst < f->min || s->rate_burst > f->max)) {
        snprintf(why, whylen, "rate.burst: expected %" PRId64 " to %" PRId64 ", got %" PRId64,
                 f->min, f->max, s->rate_burst);
        return -1;
    }
    if (!s->rate_per_s && s->rate_burst) {
        snprintf(why, whylen, "rate.burst: only with rate.per_second");
        return -1;
    }
    return 0;
}

/* on_dead and alert_dead_over come together: where to send the alert, and when. */
static int check_alert(const drv_spec *s, const drv_spec_field *f, char *why, size_t whylen) {
    (void)f;
    if (s->alert_dead_over >= 0 && !s->on_dead[0]) {
        snprintf(why, whylen, "alert_dead_over: needs \"on_dead\" (where to send the alert)");
        return -1;
    }
    if (s->on_dead[0] && s->alert_dead_over < 0) {
        snprintf(why, whylen,
                 "on_dead: needs \"alert_dead_over\" (the dead count that triggers it)");
        return -1;
    }
    return 0;
}

static int check_source(const drv_spec *s, const drv_spec_field *f, char *why, size_t whylen) {
    drv_err e = DRV_OK;
    (void)f;
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
    case DRV_SRC_PG:
        if (drv_spec_pg_check(s, why, whylen)) return -1;
        break;
    }
out:
    return e ? -1 : 0;
}

/* "NAME: expected MIN to MAX, got V" (or the row's own words for what is expected). */
static void out_of_bounds(const drv_spec_field *f, int64_t v, const char *hint, char *why,
                          size_t whylen) {
    if (f->expect)
        snprintf(why, whylen, "%s: expected %s, got %" PRId64 "%s", f->name, f->expect, v, hint);
    else
        snprintf(why, whylen, "%s: expected %" PRId64 " to %" PRId64 ", got %" PRId64 "%s", f->name,
                 f->min, f->max, v, hint);
}

int64_t drv_spec_field_int(const drv_spec *s, const drv_spec_field *f) {
    return *(const int64_t *)((const char *)s + f->off);
}

/* A row's own rules: its bounds (its default too when that means none), then its check. */
static int check_field(const drv_spec *s, const drv_spec_field *f, char *why, size_t whylen) {
    if (f->type == DRV_FIELD_INT && !(f->flags & DRV_FIELD_DEPENDENT)) {
        int64_t v = drv_spec_field_int(s, f);
        if (!((f->flags & DRV_FIELD_OPTIONAL) && v == f->def) && (v < f->min || v > f->max)) {
            out_of_bounds(f, v, "", why, whylen);
            return -1;
        }
    }
    return f->check ? f->check(s, f, why, whylen) : 0;
}

drv_err drv_spec_validate(const drv_spec *s, char *why, size_t whylen) {
    /* The source last: its rules use the partition count, checked by then. */
    for (int last = 0; last < 2; last++)
        for (const drv_spec_field *f = drv_spec_fields; f->name; f++)
            if ((f->type == DRV_FIELD_SOURCE) == last && check_field(s, f, why, whylen))
                return DRV_EINVAL;
    return DRV_OK;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static int is_known(const char *name, const char *const *known) {
    for (; *known; known++)
        if (strcmp(name, *known) == 0) return 1;
    return 0;
}

/* "a, b, c" from a NULL-terminated list, for a message. */
static void join_names(const char *const *names, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (; *names && o < len; names++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", *names);
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

static drv_err parse_source(const cJSON *src, const drv_spec_field *f, drv_spec *s, char *why,
                            size_t whylen) {
    (void)f;
    static const char *const known[] = {
        "type",  "start",   "end",           "path",     "format", "id_field", "url",
        "items", "next",    "next_param",    "headers",  "dsn",    "table",    "key",
        "where", "columns", "allow_seqscan", "key_type", "query",  0};
    drv_err e = DRV_OK;
    char type[16] = "", fmt[16] = "";
    if (!cJSON_IsObject(src)) FAIL("source: expected an object such as {\"type\": \"range\", ...}");
    for (const cJSON *x = src->child; x; x = x->next)
        if (!is_known(x->string, known)) {
            char list[256];
            join_names(known, list, sizeof list);
            FAIL("source.%s: unknown field (expected %s)", x->string, list);
        }
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
    } else if (strcmp(type, "postgres") == 0) {
        if ((e = drv_spec_pg_parse(src, s, why, whylen))) goto out;
    } else {
        FAIL("source.type: expected range, file, stdin, http or postgres, got \"%s\"", type);
    }
    if (s->source != DRV_SRC_PG)
        for (const char *k = "dsn\0table\0key\0where\0columns\0allow_seqscan\0key_type\0query\0";
             *k; k += strlen(k) + 1)
            if (cJSON_HasObjectItem(src, k))
                FAIL("source.%s: only a postgres source has it (this one is %s)", k, type);
out:
    return e;
}

static drv_err parse_handler(const cJSON *h, const drv_spec_field *f, drv_spec *s, char *why,
                             size_t whylen) {
    (void)f;
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
    for (const cJSON *x = h->child; x; x = x->next)
        if (!is_known(x->string, known)) {
            char list[64];
            join_names(known, list, sizeof list);
            FAIL("%s.%s: unknown field (expected %s)", name, x->string, list);
        }
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

static drv_err parse_hook_field(const cJSON *h, const drv_spec_field *f, drv_spec *s, char *why,
                                size_t whylen) {
    return parse_hook(h, f->name, (char *)s + f->off, f->cap, why, whylen);
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

static int check_dedupe(const drv_spec *s, const drv_spec_field *f, char *why, size_t whylen) {
    (void)f;
    if (!s->dedupe[0] || !strcmp(s->dedupe, "refuse")) return 0;
    if (strcmp(s->dedupe, "first") != 0) {
        snprintf(why, whylen, "dedupe: expected \"refuse\" or \"first\", got \"%s\"", s->dedupe);
        return -1;
    }
    if (s->source != DRV_SRC_FILE) {
        snprintf(why, whylen,
                 "dedupe: only a file source is checked for repeated ids at submit "
                 "(stdin and HTTP repeats are skipped at claim)");
        return -1;
    }
    return 0;
}

/* ---- the table --------------------------------------------------------------------------------
 */

#define NO_LIMIT DRV_RANGE_LIMIT

const drv_spec_field drv_spec_fields[] = {
    {"id", "id", "J", DRV_FIELD_STR, 0, 0, 0, 0, FIELD(id), CAP(id), "generated", NULL,
     "job id (letters, digits, _ and -)", NULL, check_id},
    {"source", NULL, NULL, DRV_FIELD_SOURCE, DRV_FIELD_REQUIRED, 0, 0, 0, 0, 0, "required",
     "{\"type\": \"range\"|\"file\"|\"stdin\"|\"http\"|\"postgres\", ...}",
     "where the items come from", parse_source, check_source},
    {"partitions", "partitions", "P", DRV_FIELD_INT, 0, 8, 1, DRV_PARTITIONS_MAX, FIELD(partitions),
     0, NULL, NULL, "partitions", NULL, NULL},
    {"lease_ms", "lease-ms", "MS", DRV_FIELD_INT, 0, 30000, 100, 86400000, FIELD(lease_ms), 0, NULL,
     NULL, "lease length before an item is handed out again", NULL, NULL},
    {"max_attempts", "max-attempts", "N", DRV_FIELD_INT, 0, 5, 1, 1000, FIELD(max_attempts), 0,
     NULL, NULL, "deliveries before an item is dead-lettered", NULL, NULL},
    {"max_throttled", "max-throttled", "N", DRV_FIELD_INT, 0, 50, 1, 1000000, FIELD(max_throttled),
     0, NULL, NULL, "throttled answers (429, Retry-After) before an item is dead-lettered", NULL,
     NULL},
    {"backoff_ms", "backoff-ms", "MS", DRV_FIELD_INT, 0, 1000, 0, 86400000, FIELD(backoff_ms), 0,
     NULL, NULL, "first retry delay, doubled each attempt", NULL, NULL},
    {"backoff_max_ms", "backoff-max-ms", "MS", DRV_FIELD_INT, DRV_FIELD_DEPENDENT, 300000, 0,
     86400000, FIELD(backoff_max_ms), 0, NULL, NULL, "longest retry delay", NULL,
     check_backoff_max},
    {"window", "window", "N", DRV_FIELD_INT, 0, 5000, 1, 10000000, FIELD(window), 0, NULL, NULL,
     "most pending items per partition in Redis", NULL, NULL},
    {"max_item_bytes", "max-item-bytes", "N", DRV_FIELD_INT, 0, 1 << 20, 16, 64 << 20,
     FIELD(max_item_bytes), 0, NULL, NULL, "largest item accepted", NULL, NULL},
    {"dedupe", "dedupe", "MODE", DRV_FIELD_STR, DRV_FIELD_OMIT, 0, 0, 0, FIELD(dedupe), CAP(dedupe),
     "refuse", "\"refuse\" or \"first\"",
     "a file's repeated ids: refused at submit, or \"first\" keeps the first of each", NULL,
     check_dedupe},
    {"handler", "handler", "JSON", DRV_FIELD_OBJECT, 0, 0, 0, 0, FIELD(handler), CAP(handler),
     "none (workers run their command)", NULL, "an HTTP request per item, sent by the workers",
     parse_handler, NULL},
    {"keep_results", "keep-results", "BYTES", DRV_FIELD_INT, DRV_FIELD_OMIT, 0, 0,
     DRV_KEEP_RESPONSE_MAX, FIELD(keep_results), 0, "none", NULL,
     "bytes of each ok --serve \"result\" kept for drover results", NULL, NULL},
    {"rate.per_second", "rate", "R", DRV_FIELD_INT,
     DRV_FIELD_OPTIONAL | DRV_FIELD_OMIT | DRV_FIELD_REQUIRED | DRV_FIELD_LIVE, 0, 1, DRV_RATE_MAX,
     FIELD(rate_per_s), 0, "no limit", NULL, "items started per second across the fleet", NULL,
     NULL},
    {"rate.burst", "burst", "B", DRV_FIELD_INT, DRV_FIELD_DEPENDENT | DRV_FIELD_LIVE, 0, 1,
     DRV_RATE_MAX, FIELD(rate_burst), 0, "R/10, at least 1", NULL,
     "with --rate: items that may start at once", NULL, check_burst},
    {"max_in_flight", "max-in-flight", "N", DRV_FIELD_INT,
     DRV_FIELD_OPTIONAL | DRV_FIELD_OMIT | DRV_FIELD_LIVE, 0, 1, DRV_RATE_MAX, FIELD(max_in_flight),
     0, "no cap", NULL, "items leased at once across every worker", NULL, NULL},
    {"halt.failed_percent", "halt-failed-percent", "P", DRV_FIELD_INT,
     DRV_FIELD_OPTIONAL | DRV_FIELD_OMIT | DRV_FIELD_REQUIRED | DRV_FIELD_LIVE, 0, 1, 100,
     FIELD(halt_failed_percent), 0, "never", NULL,
     "pause the job once more than P% of the last M finished attempts failed", NULL, NULL},
    {"halt.min_items", "halt-min-items", "M", DRV_FIELD_INT, DRV_FIELD_OMIT, 100, 1, 10000000,
     FIELD(halt_min_items), 0, NULL, NULL, "with halt: M, the attempts the percentage is of", NULL,
     NULL},
    {"adaptive", "adaptive", "0|1", DRV_FIELD_INT, DRV_FIELD_OMIT | DRV_FIELD_LIVE, 1, 0, 1,
     FIELD(adaptive), 0, "true", "true or false (or 1, 0)",
     "an HTTP handler's fleet-wide in-flight limit adapts to the API (AIMD)", NULL, NULL},
    {"adaptive_start", "adaptive-start", "N", DRV_FIELD_INT, DRV_FIELD_OMIT, 16, 1, DRV_RATE_MAX,
     FIELD(adaptive_start), 0, NULL, NULL, "with adaptive: the in-flight limit it starts at", NULL,
     NULL},
    {"weight", "weight", "W", DRV_FIELD_INT, DRV_FIELD_OMIT | DRV_FIELD_LIVE, 1, 1, DRV_WEIGHT_MAX,
     FIELD(weight), 0, NULL, NULL, "share of a worker serving several jobs", NULL, NULL},
    {"on_complete", "on-complete", "JSON", DRV_FIELD_OBJECT, 0, 0, 0, 0, FIELD(on_complete),
     CAP(on_complete), "none", NULL,
     "{\"url\", \"headers\", \"timeout_ms\"}: POSTed a summary when the job ends", parse_hook_field,
     NULL},
    {"on_dead", "on-dead", "JSON", DRV_FIELD_OBJECT, 0, 0, 0, 0, FIELD(on_dead), CAP(on_dead),
     "none", NULL, "the same shape, POSTed once the dead count exceeds --alert-dead-over",
     parse_hook_field, NULL},
    {"alert_dead_over", "alert-dead-over", "N", DRV_FIELD_INT, DRV_FIELD_OPTIONAL | DRV_FIELD_OMIT,
     -1, 0, NO_LIMIT, FIELD(alert_dead_over), 0, "never", "0 or more",
     "with --on-dead: the dead count that triggers it", NULL, check_alert},
    {"ttl_after_done", "ttl-after-done", "S", DRV_FIELD_INT, DRV_FIELD_OMIT, 0, 0, 31536000,
     FIELD(ttl_after_done), 0, "0 (keep)", "0 (keep) to 31536000 seconds",
     "seconds a done job's keys live on once its on_complete is accepted", NULL, NULL},
    {0},
};

const drv_spec_field *drv_spec_field_named(const char *name) {
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

const drv_spec_field *drv_spec_field_by_flag(const char *flag) {
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++)
        if (f->flag && strcmp(f->flag, flag) == 0) return f;
    return NULL;
}

/* The length of a row's group ("rate" of "rate.burst"); 0 at the top level. */
static size_t group_len(const drv_spec_field *f) {
    const char *dot = strchr(f->name, '.');
    return dot ? (size_t)(dot - f->name) : 0;
}

/* The name of a row within its object ("burst" of "rate.burst"). */
static const char *leaf(const drv_spec_field *f) {
    size_t g = group_len(f);
    return g ? f->name + g + 1 : f->name;
}

/* The first segment of a row's name: the key it has in the top-level object. */
static size_t top_len(const drv_spec_field *f) {
    size_t g = group_len(f);
    return g ? g : strlen(f->name);
}

void drv_spec_known_fields(const char *group, char *buf, size_t len) {
    size_t o = 0, glen = strlen(group);
    buf[0] = '\0';
    const drv_spec_field *prev = NULL;
    for (const drv_spec_field *f = drv_spec_fields; f->name && o < len; f++) {
        const char *name;
        size_t n;
        if (!glen) {
            /* "rate" once for its rows */
            name = f->name, n = top_len(f);
            if (prev && top_len(prev) == n && strncmp(prev->name, name, n) == 0) continue;
            prev = f;
        } else {
            if (group_len(f) != glen || strncmp(f->name, group, glen) != 0) continue;
            name = leaf(f), n = strlen(name);
        }
        o += (size_t)snprintf(buf + o, len - o, "%s%.*s", o ? ", " : "", (int)n, name);
    }
}

/* 1 when 'key' names a field (or a group of fields) within 'group' ("" for the top level). */
static int known_in(const char *group, const char *key) {
    size_t glen = strlen(group), klen = strlen(key);
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++) {
        if (!glen && top_len(f) == klen && strncmp(f->name, key, klen) == 0) return 1;
        if (glen && group_len(f) == glen && strncmp(f->name, group, glen) == 0 &&
            strcmp(leaf(f), key) == 0)
            return 1;
    }
    return 0;
}

/* Refuses a field of 'obj' the table does not know, listing the ones it does. */
static int refuse_unknown(const cJSON *obj, const char *group, char *why, size_t whylen) {
    for (const cJSON *x = obj->child; x; x = x->next)
        if (!known_in(group, x->string)) {
            char list[512];
            drv_spec_known_fields(group, list, sizeof list);
            snprintf(why, whylen, "%s%s%s: unknown field (expected %s)", group, *group ? "." : "",
                     x->string, list);
            return -1;
        }
    return 0;
}

/* Reads one row's value from its object (present: 'v'). */
static drv_err parse_field(const cJSON *obj, const cJSON *v, const drv_spec_field *f, drv_spec *s,
                           char *why, size_t whylen) {
    char *at = (char *)s + f->off;
    switch (f->type) {
    case DRV_FIELD_INT: {
        int64_t x;
        /* A 0..1 field is a switch: true and false are its values too ("adaptive": false). */
        if (f->min == 0 && f->max == 1 && cJSON_IsBool(v)) {
            *(int64_t *)at = cJSON_IsTrue(v) ? 1 : 0;
            return DRV_OK;
        }
        if (get_int(obj, leaf(f), f->name, &x, why, whylen)) return DRV_EINVAL;
        /* A dependent field's bounds are its check's, in drv_spec_validate. */
        if (!(f->flags & DRV_FIELD_DEPENDENT) && (x < f->min || x > f->max)) {
            /* Given in JSON, the "none" default is not a value: leave the field out. */
            char hint[96] = "";
            size_t g = group_len(f);
            if ((f->flags & DRV_FIELD_OPTIONAL) && g)
                snprintf(hint, sizeof hint, " (leave \"%.*s\" out for %s)", (int)g, f->name,
                         f->def_text);
            else if (f->flags & DRV_FIELD_OPTIONAL)
                snprintf(hint, sizeof hint, " (leave it out for %s)", f->def_text);
            out_of_bounds(f, x, hint, why, whylen);
            return DRV_EINVAL;
        }
        *(int64_t *)at = x;
        return DRV_OK;
    }
    case DRV_FIELD_STR:
        return get_str(obj, leaf(f), f->name, at, f->cap, why, whylen) ? DRV_EINVAL : DRV_OK;
    case DRV_FIELD_OBJECT:
    case DRV_FIELD_SOURCE:
        return f->parse(v, f, s, why, whylen);
    }
    return DRV_EINVAL;
}

/* The object a row's value is in: the root, or its group's object ("rate"), NULL when that is
 * not given. DRV_EINVAL when the group is not an object or holds an unknown field. */
static drv_err field_object(const cJSON *root, const drv_spec_field *f, const cJSON **obj,
                            char *why, size_t whylen) {
    size_t g = group_len(f);
    *obj = root;
    if (!g) return DRV_OK;
    char group[64];
    snprintf(group, sizeof group, "%.*s", (int)g, f->name);
    *obj = cJSON_GetObjectItemCaseSensitive(root, group);
    if (!*obj) return DRV_OK;
    if (!cJSON_IsObject(*obj)) {
        char list[128];
        drv_spec_known_fields(group, list, sizeof list);
        snprintf(why, whylen, "%s: expected an object with %s", group, list);
        return DRV_EINVAL;
    }
    return refuse_unknown(*obj, group, why, whylen) ? DRV_EINVAL : DRV_OK;
}

/* Reads every row of the table from the root object into s. */
static drv_err parse_fields(const cJSON *root, drv_spec *s, char *why, size_t whylen) {
    drv_err e;
    if (refuse_unknown(root, "", why, whylen)) return DRV_EINVAL;
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++) {
        const cJSON *obj;
        if ((e = field_object(root, f, &obj, why, whylen))) return e;
        if (!obj) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, leaf(f));
        if (!v && (f->flags & DRV_FIELD_REQUIRED)) {
            snprintf(why, whylen, "%s: missing (%s%s)", f->name, f->expect ? "expected " : "",
                     f->expect ? f->expect : f->help);
            return DRV_EINVAL;
        }
        if (v && (e = parse_field(obj, v, f, s, why, whylen))) return e;
    }
    /* A rate without a burst: a tenth of a second's worth. */
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(root, "rate");
    if (s->rate_per_s && !cJSON_HasObjectItem(rate, "burst"))
        s->rate_burst = drv_spec_default_burst(s->rate_per_s);
    return DRV_OK;
}

drv_err drv_spec_parse(const char *json, size_t len, drv_spec *out, char *why, size_t whylen) {
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
    if ((e = parse_fields(root, &s, why, whylen)) != DRV_OK) goto out;
    if ((e = drv_spec_validate(&s, why, whylen)) != DRV_OK) goto out;
    *out = s;
    goto out;
bad:
    e = DRV_EINVAL;
out:
    cJSON_Delete(root);
    return e;
}

drv_err drv_spec_set_text(drv_spec *s, const drv_spec_field *f, const char *text, char *why,
                          size_t whylen) {
    char *at = (char *)s + f->off;
    const char *flag = f->flag ? f->flag : f->name;
    switch (f->type) {
    case DRV_FIELD_INT: {
        long long v;
        if (drv_parse_ll(text, INT64_MIN, INT64_MAX, &v) != 0) {
            snprintf(why, whylen, "--%s: expected a whole number, got \"%s\"", flag, text);
            return DRV_EINVAL;
        }
        *(int64_t *)at = v;
        return DRV_OK;
    }
    case DRV_FIELD_STR:
        if (strlen(text) >= f->cap) {
            snprintf(why, whylen, "--%s: at most %zu characters", flag, f->cap - 1);
            return DRV_EINVAL;
        }
        strcpy(at, text);
        return DRV_OK;
    case DRV_FIELD_OBJECT:
    case DRV_FIELD_SOURCE: {
        cJSON *v = cJSON_Parse(text);
        if (!v) {
            snprintf(why, whylen, "--%s: expected a JSON object, got \"%.64s\"", flag, text);
            return DRV_EINVAL;
        }
        drv_err e = f->parse(v, f, s, why, whylen);
        cJSON_Delete(v);
        return e;
    }
    }
    return DRV_EINVAL;
}

void drv_spec_field_help(const drv_spec_field *f, char *buf, size_t len) {
    if (f->def_text)
        snprintf(buf, len, "%s (default: %s)", f->help, f->def_text);
    else
        snprintf(buf, len, "%s (default %" PRId64 ")", f->help, f->def);
}

void drv_spec_field_opt(const drv_spec_field *f, const char **dst, char *help, size_t helplen,
                        drv_opt *out) {
    drv_spec_field_help(f, help, helplen);
    *out = (drv_opt){f->flag, NULL, DRV_OPT_STR, NULL, f->metavar, help, 0, 0, dst};
}

/* ---- serialising ------------------------------------------------------------------------------
 */

/* cJSON prints numbers with 15 significant digits whenever that reads back within a relative
 * DBL_EPSILON, so 9007199254740991 would be stored as 9007199254740990. Whole numbers are
 * written exactly instead. */
static void add_int(cJSON *obj, const char *name, int64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, v);
    cJSON_AddRawToObject(obj, name, num);
}

static void write_source(cJSON *src, const drv_spec *s) {
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
    } else if (s->source == DRV_SRC_PG) {
        drv_spec_pg_write(src, s);
    } else {
        if (s->source == DRV_SRC_FILE) cJSON_AddStringToObject(src, "path", s->path);
        cJSON_AddStringToObject(src, "format", drv_fmt_name(s->format));
        if (s->id_field[0]) cJSON_AddStringToObject(src, "id_field", s->id_field);
    }
}

/* 1 when to_json writes the row: an omitted default or an empty object is left out. */
static int written(const drv_spec *s, const drv_spec_field *f) {
    if (f->type == DRV_FIELD_OBJECT) return ((const char *)s + f->off)[0] != '\0';
    if (f->type == DRV_FIELD_INT && (f->flags & DRV_FIELD_OMIT))
        return drv_spec_field_int(s, f) != f->def;
    if (f->type == DRV_FIELD_STR && (f->flags & DRV_FIELD_OMIT))
        return ((const char *)s + f->off)[0] != '\0';
    return 1;
}

/* Adds one row's value to 'obj'. 0, or -1 out of memory. */
static int write_field(cJSON *obj, const drv_spec *s, const drv_spec_field *f) {
    const char *at = (const char *)s + f->off;
    switch (f->type) {
    case DRV_FIELD_INT:
        add_int(obj, leaf(f), drv_spec_field_int(s, f));
        return 0;
    case DRV_FIELD_STR:
        return cJSON_AddStringToObject(obj, leaf(f), at) ? 0 : -1;
    case DRV_FIELD_OBJECT:
        return cJSON_AddRawToObject(obj, leaf(f), at) ? 0 : -1;
    case DRV_FIELD_SOURCE: {
        cJSON *src = cJSON_AddObjectToObject(obj, leaf(f));
        if (!src) return -1;
        write_source(src, s);
        return 0;
    }
    }
    return -1;
}

char *drv_spec_to_json(const drv_spec *s) {
    cJSON *root = cJSON_CreateObject(), *group = NULL;
    const drv_spec_field *head = NULL; /* the first row of the group being written */
    char *txt = NULL;
    if (!root) return NULL;
    for (const drv_spec_field *f = drv_spec_fields; f->name; f++) {
        size_t g = group_len(f);
        cJSON *obj = root;
        if (g) {
            /* A group ("rate") is written when its first row is; its other rows go with it. */
            if (!head || group_len(head) != g || strncmp(head->name, f->name, g) != 0) {
                head = f;
                group = NULL;
                if (written(s, f)) {
                    char name[64];
                    snprintf(name, sizeof name, "%.*s", (int)g, f->name);
                    if (!(group = cJSON_AddObjectToObject(root, name))) goto out;
                }
            }
            if (!group) continue;
            obj = group;
        } else if (!written(s, f)) {
            continue;
        }
        if (write_field(obj, s, f)) goto out;
    }
    char *p = cJSON_PrintUnformatted(root);
    if (p) {
        txt = strdup(p);
        cJSON_free(p);
    }
out:
    cJSON_Delete(root);
    return txt;
}
