#include "handler.h"

#include "env.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        e = DRV_EINVAL;                                                                            \
        goto out;                                                                                  \
    } while (0)

static const int default_retry[] = {408, 425, 429, 500, 502, 503, 504};

void drv_http_cfg_free(drv_http_cfg *c) {
    free(c->url);
    free(c->body);
    for (int i = 0; i < c->nhdr; i++)
        free(c->hdr[i]);
    for (int i = 0; i < c->nenv; i++) {
        free(c->env[i].name);
        free(c->env[i].value);
    }
    free(c->env);
    memset(c, 0, sizeof *c);
}

/* Reads ok_status / retry_status: an array of codes (100..599) and "Nxx" classes. */
static int parse_status_set(const cJSON *v, const char *name, unsigned char *set, char *why,
                            size_t whylen) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
        snprintf(why, whylen, "handler.%s: expected a non-empty array such as [200, \"2xx\"]",
                 name);
        return -1;
    }
    memset(set, 0, 600);
    const cJSON *x;
    cJSON_ArrayForEach(x, v) {
        if (cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble) && x->valuedouble >= 100 &&
            x->valuedouble <= 599) {
            set[(int)x->valuedouble] = 1;
        } else if (cJSON_IsString(x) && strlen(x->valuestring) == 3 && x->valuestring[0] >= '1' &&
                   x->valuestring[0] <= '5' && tolower((unsigned char)x->valuestring[1]) == 'x' &&
                   tolower((unsigned char)x->valuestring[2]) == 'x') {
            int base = (x->valuestring[0] - '0') * 100;
            memset(set + base, 1, 100);
        } else {
            snprintf(why, whylen,
                     "handler.%s: expected status codes 100..599 or \"2xx\"-style "
                     "classes",
                     name);
            return -1;
        }
    }
    return 0;
}

/* Checks a template's placeholders: "{item.}" with an empty path or "${" without a valid
 * name and closing brace are mistakes worth naming. */
static int check_template(const char *t, const char *field, char *why, size_t whylen) {
    for (const char *p = t; *p; p++) {
        if (p[0] == '$' && p[1] == '{') {
            const char *n = p + 2;
            size_t k = 0;
            while (isalnum((unsigned char)n[k]) || n[k] == '_')
                k++;
            if (k == 0 || n[k] != '}' || isdigit((unsigned char)n[0])) {
                snprintf(why, whylen,
                         "handler.%s: \"${\" must start ${NAME} (letters, digits, "
                         "'_')",
                         field);
                return -1;
            }
        }
        if (strncmp(p, "{item.}", 7) == 0) {
            snprintf(why, whylen, "handler.%s: {item.} needs a field name", field);
            return -1;
        }
    }
    return 0;
}

static int header_is(const char *h, const char *name) {
    size_t n = strlen(name);
    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

drv_err drv_http_cfg_parse(const char *json, size_t len, drv_http_cfg *out, char *why,
                           size_t whylen) {
    static const char *const known[] = {
        "type",       "method",    "url",          "headers",       "body",
        "timeout_ms", "ok_status", "retry_status", "keep_response", 0};
    drv_err e = DRV_OK;
    drv_http_cfg c;
    memset(&c, 0, sizeof c);
    cJSON *h = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(h)) FAIL("handler: expected an object such as {\"type\": \"http\", ...}");
    for (const cJSON *f = h->child; f; f = f->next) {
        int ok = 0;
        for (const char *const *k = known; *k; k++)
            ok |= strcmp(f->string, *k) == 0;
        if (!ok)
            FAIL("handler.%s: unknown field (expected type, method, url, headers, body, "
                 "timeout_ms, ok_status, retry_status, keep_response)",
                 f->string);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, "type");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "http") != 0)
        FAIL("handler.type: expected \"http\" (commands are given to drover-worker, never "
             "taken from a spec)");
    v = cJSON_GetObjectItemCaseSensitive(h, "url");
    if (!cJSON_IsString(v) || !v->valuestring[0]) FAIL("handler.url: expected a URL template");
    if (strncasecmp(v->valuestring, "http://", 7) && strncasecmp(v->valuestring, "https://", 8) &&
        strncmp(v->valuestring, "${", 2))
        FAIL("handler.url: expected http:// or https:// (or ${NAME} holding one), got \"%.64s\"",
             v->valuestring);
    if (check_template(v->valuestring, "url", why, whylen)) goto bad;
    c.url = strdup(v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(h, "body");
    if (v) {
        if (!cJSON_IsString(v)) FAIL("handler.body: expected a string template");
        if (check_template(v->valuestring, "body", why, whylen)) goto bad;
        c.body = strdup(v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(h, "method");
    if (v) {
        if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= sizeof c.method)
            FAIL("handler.method: expected an HTTP method such as GET or POST");
        for (const char *p = v->valuestring; *p; p++)
            if (!isupper((unsigned char)*p))
                FAIL("handler.method: expected an upper-case method such as GET or POST, got "
                     "\"%s\"",
                     v->valuestring);
        snprintf(c.method, sizeof c.method, "%s", v->valuestring);
    } else {
        snprintf(c.method, sizeof c.method, "%s", c.body ? "POST" : "GET");
    }
    v = cJSON_GetObjectItemCaseSensitive(h, "headers");
    int has_ctype = 0;
    if (v) {
        if (!cJSON_IsObject(v)) FAIL("handler.headers: expected an object of name: value");
        for (const cJSON *x = v->child; x; x = x->next) {
            if (c.nhdr == DRV_HTTP_HEADERS_MAX)
                FAIL("handler.headers: more than %d headers", DRV_HTTP_HEADERS_MAX);
            if (!cJSON_IsString(x)) FAIL("handler.headers.%s: expected a string", x->string);
            size_t nl = strlen(x->string);
            if (nl == 0 || strcspn(x->string, ":\r\n \t") != nl)
                FAIL("handler.headers: \"%s\" is not a header name", x->string);
            if (strpbrk(x->valuestring, "\r\n"))
                FAIL("handler.headers.%s: a value cannot hold a line break", x->string);
            if (check_template(x->valuestring, "headers", why, whylen)) goto bad;
            char *hv = malloc(nl + 2 + strlen(x->valuestring) + 1);
            if (!hv) FAIL("out of memory");
            sprintf(hv, "%s: %s", x->string, x->valuestring);
            c.hdr[c.nhdr++] = hv;
            if (header_is(hv, "content-type")) {
                has_ctype = 1;
                c.body_json = strstr(x->valuestring, "json") != NULL;
            }
        }
    }
    if (c.body && !has_ctype) {
        /* A body that starts as a JSON object or array (not with a placeholder) is JSON. */
        const char *b = c.body;
        while (isspace((unsigned char)*b))
            b++;
        int placeholder = strncmp(b, "{id}", 4) == 0 || strncmp(b, "{item}", 6) == 0 ||
                          strncmp(b, "{item.", 6) == 0;
        c.body_json = (*b == '{' || *b == '[') && !placeholder;
    }
    c.timeout_ms = 30000;
    v = cJSON_GetObjectItemCaseSensitive(h, "timeout_ms");
    if (v) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
            v->valuedouble > 86400000)
            FAIL("handler.timeout_ms: expected 1 to 86400000");
        c.timeout_ms = (int64_t)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(h, "keep_response");
    if (v) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble > DRV_KEEP_RESPONSE_MAX)
            FAIL("handler.keep_response: expected 0 to %d bytes", DRV_KEEP_RESPONSE_MAX);
        c.keep_response = (int64_t)v->valuedouble;
    }
    memset(c.ok + 200, 1, 100);
    for (size_t i = 0; i < sizeof default_retry / sizeof *default_retry; i++)
        c.retry[default_retry[i]] = 1;
    v = cJSON_GetObjectItemCaseSensitive(h, "ok_status");
    if (v && parse_status_set(v, "ok_status", c.ok, why, whylen)) goto bad;
    v = cJSON_GetObjectItemCaseSensitive(h, "retry_status");
    if (v && parse_status_set(v, "retry_status", c.retry, why, whylen)) goto bad;
    for (int s = 100; s < 600; s++)
        if (c.ok[s] && c.retry[s])
            FAIL("handler: status %d is in both ok_status and retry_status", s);
    if (!c.url || (cJSON_GetObjectItemCaseSensitive(h, "body") && !c.body)) FAIL("out of memory");
    *out = c;
    memset(&c, 0, sizeof c);
    goto out;
bad:
    e = DRV_EINVAL;
out:
    drv_http_cfg_free(&c);
    cJSON_Delete(h);
    return e;
}

static cJSON *status_json(const unsigned char *set) {
    cJSON *a = cJSON_CreateArray();
    for (int s = 100; s < 600; s++) {
        if (!set[s]) continue;
        if (s % 100 == 0 && memchr(set + s, 0, 100) == NULL) {
            char cls[4] = {(char)('0' + s / 100), 'x', 'x', 0};
            cJSON_AddItemToArray(a, cJSON_CreateString(cls));
            s += 99;
        } else {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(s));
        }
    }
    return a;
}

drv_err drv_http_cfg_to_json(const drv_http_cfg *c, char *buf, size_t cap) {
    cJSON *o = cJSON_CreateObject(), *hs = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "http");
    cJSON_AddStringToObject(o, "method", c->method);
    cJSON_AddStringToObject(o, "url", c->url);
    for (int i = 0; i < c->nhdr; i++) {
        const char *colon = strchr(c->hdr[i], ':');
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(colon - c->hdr[i]), c->hdr[i]);
        cJSON_AddStringToObject(hs, name, colon + 2);
    }
    if (c->nhdr)
        cJSON_AddItemToObject(o, "headers", hs);
    else
        cJSON_Delete(hs);
    if (c->body) cJSON_AddStringToObject(o, "body", c->body);
    cJSON_AddNumberToObject(o, "timeout_ms", (double)c->timeout_ms);
    cJSON_AddItemToObject(o, "ok_status", status_json(c->ok));
    cJSON_AddItemToObject(o, "retry_status", status_json(c->retry));
    if (c->keep_response) cJSON_AddNumberToObject(o, "keep_response", (double)c->keep_response);
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!t) return DRV_ENOMEM;
    drv_err e = DRV_OK;
    if (strlen(t) >= cap)
        e = DRV_ETOOBIG;
    else
        strcpy(buf, t);
    cJSON_free(t);
    return e;
}

/* ---- ${NAME} --------------------------------------------------------------------------------- */

static const char *env_allow; /* drv_http_env_allow */
static int env_allow_on;

void drv_http_env_allow(const char *list) {
    env_allow = list;
    env_allow_on = 1;
}

/* NAME: letters, digits and '_', not starting with a digit. */
static int env_name_ok(const char *s, size_t n) {
    if (n == 0 || isdigit((unsigned char)s[0])) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') return 0;
    return 1;
}

int drv_env_allow_check(const char *list, char *why, size_t whylen) {
    for (const char *p = list ? list : "";;) {
        size_t k = strcspn(p, ",");
        size_t nk = k && p[k - 1] == '*' ? k - 1 : k;
        if (!env_name_ok(p, nk)) {
            snprintf(why, whylen,
                     "--allow-env: expected variable names or prefixes ending in '*' (such as "
                     "DROVER_SECRET_*), separated by commas, got \"%.*s\"",
                     (int)k, p);
            return -1;
        }
        if (!p[k]) return 0;
        p += k + 1;
    }
}

int drv_env_allowed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, name, n) == 0) return 1;
        /* A prefix never reaches drover's own connection settings: those only by name. */
        if (k && p[k - 1] == '*' && n >= k - 1 && strncmp(p, name, k - 1) == 0 &&
            !drv_conn_env_is(name, n))
            return 1;
        p += k;
        if (*p == ',') p++;
    }
    return 0;
}

static drv_err env_scan(drv_http_cfg *c, const char *t, char *why, size_t whylen) {
    for (const char *p = t; p && (p = strstr(p, "${")) != NULL; p += 2) {
        const char *n = p + 2, *end = strchr(n, '}');
        if (!end) continue;
        size_t k = (size_t)(end - n);
        int have = 0;
        for (int i = 0; i < c->nenv; i++)
            have |= strlen(c->env[i].name) == k && strncmp(c->env[i].name, n, k) == 0;
        if (have) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)k, n);
        if (env_allow_on && !drv_env_allowed(env_allow, name)) {
            snprintf(why, whylen,
                     "the job's handler uses ${%s}, which this worker does not allow "
                     "(--allow-env NAME or PREFIX*)",
                     name);
            return DRV_EINVAL;
        }
        const char *val = getenv(name);
        if (!val) {
            snprintf(why, whylen,
                     "the job's handler uses ${%s}, which is not set in this "
                     "worker's environment",
                     name);
            return DRV_EINVAL;
        }
        drv_env_var *nv = realloc(c->env, sizeof *nv * (size_t)(c->nenv + 1));
        if (!nv) return DRV_ENOMEM;
        c->env = nv;
        c->env[c->nenv].name = strdup(name);
        c->env[c->nenv].value = strdup(val);
        if (!c->env[c->nenv].name || !c->env[c->nenv].value) return DRV_ENOMEM;
        c->nenv++;
    }
    return DRV_OK;
}

drv_err drv_http_cfg_resolve_env(drv_http_cfg *c, char *why, size_t whylen) {
    drv_err e = env_scan(c, c->url, why, whylen);
    for (int i = 0; !e && i < c->nhdr; i++)
        e = env_scan(c, c->hdr[i], why, whylen);
    if (!e) e = env_scan(c, c->body, why, whylen);
    for (int i = 0; !e && i < c->nenv; i++)
        if (strpbrk(c->env[i].value, "\r\n")) {
            snprintf(why, whylen, "${%s} holds a line break", c->env[i].name);
            e = DRV_EINVAL;
        }
    return e;
}

/* ---- rendering ------------------------------------------------------------------------------- */

void drv_tvals_free(drv_tvals *v) {
    cJSON_Delete(v->parsed);
    v->parsed = NULL;
}

static drv_err put_url(drv_buf *out, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    drv_err e = DRV_OK;
    for (size_t i = 0; i < n && !e; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            e = drv_buf_append(out, &s[i], 1);
        } else {
            char pct[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            e = drv_buf_append(out, pct, 3);
        }
    }
    return e;
}

/* JSON string content (no quotes). */
static drv_err put_json_str(drv_buf *out, const char *s, size_t n) {
    drv_err e = DRV_OK;
    size_t run = 0;
    for (size_t i = 0; i < n && !e; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        if (ch == '"')
            esc = "\\\"";
        else if (ch == '\\')
            esc = "\\\\";
        else if (ch == '\n')
            esc = "\\n";
        else if (ch == '\r')
            esc = "\\r";
        else if (ch == '\t')
            esc = "\\t";
        else if (ch < 0x20) {
            snprintf(u, sizeof u, "\\u%04x", ch);
            esc = u;
        }
        if (!esc) continue;
        e = drv_buf_append(out, s + run, i - run);
        if (!e) e = drv_buf_append(out, esc, strlen(esc));
        run = i + 1;
    }
    if (!e) e = drv_buf_append(out, s + run, n - run);
    return e;
}

static int is_json_number(const char *s, size_t n) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return 0;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    cJSON *x = cJSON_Parse(tmp);
    int ok = cJSON_IsNumber(x) && (isdigit((unsigned char)tmp[0]) || tmp[0] == '-');
    cJSON_Delete(x);
    return ok;
}

/* Looks up {item.a.b}: the value at that path, or NULL. */
static const cJSON *item_field(drv_tvals *v, const char *path, size_t n) {
    if (!v->parsed && !v->parse_failed) {
        v->parsed = v->item ? cJSON_ParseWithLength(v->item, v->itemlen) : NULL;
        v->parse_failed = v->parsed == NULL;
    }
    const cJSON *cur = v->parsed;
    while (cur && n) {
        size_t k = 0;
        while (k < n && path[k] != '.')
            k++;
        char name[256];
        if (k >= sizeof name) return NULL;
        memcpy(name, path, k);
        name[k] = 0;
        cur = cJSON_IsObject(cur) ? cJSON_GetObjectItemCaseSensitive(cur, name) : NULL;
        path += k < n ? k + 1 : k;
        n -= k < n ? k + 1 : k;
    }
    return cur;
}

/* A JSON number as text, exact for whole numbers up to 2^53. */
static void number_text(const cJSON *x, char *buf, size_t cap) {
    double d = x->valuedouble;
    if (d == floor(d) && fabs(d) <= 9007199254740992.0)
        snprintf(buf, cap, "%" PRId64, (int64_t)d);
    else
        snprintf(buf, cap, "%.17g", d);
}

drv_err drv_http_render(const drv_http_cfg *c, const char *tmpl, drv_esc esc, drv_tvals *v,
                        drv_buf *out, char *why, size_t whylen) {
    drv_buf_reset(out);
    drv_err e = drv_buf_append(out, "", 0);
    int in_str = 0; /* JSON: inside a string literal of the template */
    for (const char *p = tmpl; *p && !e;) {
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            size_t k = end ? (size_t)(end - p - 2) : 0;
            const char *val = NULL;
            for (int i = 0; end && i < c->nenv; i++)
                if (strlen(c->env[i].name) == k && strncmp(c->env[i].name, p + 2, k) == 0)
                    val = c->env[i].value;
            if (!val) {
                snprintf(why, whylen, "${%.*s} was not resolved", (int)k, p + 2);
                return DRV_EINVAL;
            }
            e = drv_buf_append(out, val, strlen(val));
            p = end + 1;
            continue;
        }
        const char *s = NULL; /* the value as text */
        size_t n = 0, skip = 0;
        int is_json_value = 0; /* s is already JSON (an object, a number, ...) */
        char num[64];
        char *printed = NULL;
        if (strncmp(p, "{id}", 4) == 0) {
            s = v->id, n = v->idlen, skip = 4;
        } else if (strncmp(p, "{item}", 6) == 0) {
            skip = 6;
            if (v->item)
                s = v->item, n = v->itemlen, is_json_value = 1;
            else
                s = v->id, n = v->idlen;
        } else if (strncmp(p, "{item.", 6) == 0) {
            size_t k = strcspn(p + 6, "}{ \"");
            if (p[6 + k] == '}' && k > 0) {
                skip = 7 + k;
                const cJSON *f = item_field(v, p + 6, k);
                if (!f) {
                    snprintf(why, whylen, "the item has no field \"%.*s\"%s", (int)k, p + 6,
                             v->item ? "" : " (its source has no fields: use {id} or {item})");
                    return DRV_EINVAL;
                }
                if (cJSON_IsString(f)) {
                    s = f->valuestring, n = strlen(s);
                } else if (cJSON_IsNumber(f)) {
                    number_text(f, num, sizeof num);
                    s = num, n = strlen(num), is_json_value = 1;
                } else {
                    printed = cJSON_PrintUnformatted(f);
                    if (!printed) return DRV_ENOMEM;
                    s = printed, n = strlen(printed), is_json_value = 1;
                }
            }
        }
        if (!skip) {
            if (esc == DRV_ESC_JSON) {
                if (*p == '"') in_str = !in_str;
                if (*p == '\\' && in_str && p[1]) {
                    e = drv_buf_append(out, p, 2);
                    p += 2;
                    continue;
                }
            }
            e = drv_buf_append(out, p, 1);
            p++;
            continue;
        }
        switch (esc) {
        case DRV_ESC_URL:
            e = put_url(out, s, n);
            break;
        case DRV_ESC_JSON:
            if (in_str) {
                e = put_json_str(out, s, n);
            } else if (is_json_value || is_json_number(s, n)) {
                e = drv_buf_append(out, s, n);
            } else {
                e = drv_buf_append(out, "\"", 1);
                if (!e) e = put_json_str(out, s, n);
                if (!e) e = drv_buf_append(out, "\"", 1);
            }
            break;
        case DRV_ESC_HEADER:
            if (memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, '\0', n)) {
                snprintf(why, whylen, "a header value would hold a line break or NUL byte");
                cJSON_free(printed);
                return DRV_EINVAL;
            }
            /* fall through */
        case DRV_ESC_RAW:
            e = drv_buf_append(out, s, n);
            break;
        }
        cJSON_free(printed);
        p += skip;
    }
    if (e == DRV_ETOOBIG) snprintf(why, whylen, "the rendered request is over %zu bytes", out->max);
    return e;
}

int drv_http_is_ok(const drv_http_cfg *c, long s) {
    return s >= 100 && s < 600 && c->ok[s];
}

int drv_http_is_retry(const drv_http_cfg *c, long s) {
    return s >= 100 && s < 600 && c->retry[s];
}

int drv_header_retry_after(const char *p, size_t len, char *out, size_t cap) {
    if (len <= 12 || strncasecmp(p, "Retry-After:", 12) != 0 || cap == 0) return 0;
    size_t k = len - 12;
    if (k >= cap) k = cap - 1;
    memcpy(out, p + 12, k);
    out[k] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return 1;
}

int64_t drv_retry_after_ms(const char *v, int64_t now_s) {
    while (isspace((unsigned char)*v))
        v++;
    if (!*v) return -1;
    if (isdigit((unsigned char)*v)) {
        char *end;
        long long s = strtoll(v, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (*end) return -1;
        return s > 86400LL * 365 ? 86400LL * 365 * 1000 : s * 1000;
    }
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1) return -1;
    return t > now_s ? ((int64_t)t - now_s) * 1000 : 0;
}

void drv_text_sanitize(char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        size_t len = ch < 0x80         ? 1
                     : (ch >> 5) == 6  ? 2
                     : (ch >> 4) == 14 ? 3
                     : (ch >> 3) == 30 ? 4
                                       : 0;
        int ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] >> 6) == 2;
        if (ok && len == 1 && ch < 0x20 && ch != '\t' && ch != '\n') ok = 0;
        if (ok && len == 1 && ch == 0x7f) ok = 0;
        if (!ok) {
            s[i++] = '?';
            continue;
        }
        i += len;
    }
}
