#ifndef DRV_HANDLER_H
#define DRV_HANDLER_H

/* The HTTP handler of a job spec: what every worker sends for each item. It lives in the spec
 * (so a whole fleet does the same thing) as canonical JSON; each worker parses it, resolves
 * ${NAME} from its own environment (so secrets never reach Redis) and renders one request
 * per item.
 *
 * Templates: {id}, {item} and {item.FIELD} (FIELD a dotted path into an NDJSON or CSV item)
 * are replaced per item: percent-encoded in the URL; in a JSON body, escaped inside a string
 * literal and a JSON value outside one; as they are in headers and other bodies. ${NAME} is
 * replaced by the worker's environment variable NAME, as it is (it is configuration, not
 * data). Any other brace is literal. */

#include "err.h"
#include "buf.h"

#include <stddef.h>
#include <stdint.h>

#define DRV_HTTP_HEADERS_MAX  64
#define DRV_KEEP_RESPONSE_MAX (1 << 20)

typedef struct drv_env_var {
    char *name, *value;
} drv_env_var;

typedef struct drv_http_cfg {
    char method[16];
    char *url;                       /* template */
    char *hdr[DRV_HTTP_HEADERS_MAX]; /* "Name: value" templates */
    int nhdr;
    char *body; /* template, NULL for none */
    int body_json;
    int64_t timeout_ms;
    int64_t keep_response; /* bytes of each ok response to keep, 0 for none */
    unsigned char ok[600], retry[600];
    drv_env_var *env; /* ${NAME} values, filled by drv_http_cfg_resolve_env */
    int nenv;
} drv_http_cfg;

/* Parses and validates a handler object (JSON text). Errors name the field ("handler.url:
 * ..."). The result is independent of the environment; see drv_http_cfg_resolve_env. */
drv_err drv_http_cfg_parse(const char *json, size_t len, drv_http_cfg *out, char *why,
                           size_t whylen);
/* Writes the canonical JSON of a parsed handler into buf (for the spec). */
drv_err drv_http_cfg_to_json(const drv_http_cfg *c, char *buf, size_t cap);
/* Looks up every ${NAME} the templates use in the environment. A missing variable is
 * DRV_EINVAL naming it. */
drv_err drv_http_cfg_resolve_env(drv_http_cfg *c, char *why, size_t whylen);
void drv_http_cfg_free(drv_http_cfg *c);

/* Limits the ${NAME}s drv_http_cfg_resolve_env looks up from then on to 'list' (kept, not
 * copied): "NAME[,NAME]", where an entry ending in '*' is a prefix ("DROVER_SECRET_*"); NULL
 * or "" allows none. Without a call (the coordinator) every name is looked up. A name not
 * allowed is DRV_EINVAL naming it, whether it is set or not. */
void drv_http_env_allow(const char *list);
/* Checks an --allow-env list. 0, or -1 with the entry that is wrong in 'why'. */
int drv_env_allow_check(const char *list, char *why, size_t whylen);
/* 1 when 'list' allows ${name}. A prefix never matches drover's connection settings
 * (drv_conn_env): those are allowed only by their exact name. */
int drv_env_allowed(const char *list, const char *name);

typedef enum drv_esc { DRV_ESC_RAW, DRV_ESC_URL, DRV_ESC_JSON, DRV_ESC_HEADER } drv_esc;

/* One item's values for rendering. 'item' is the payload (JSON text for NDJSON and CSV
 * sources) or NULL when the id is the item. */
typedef struct drv_tvals {
    const char *id;
    size_t idlen;
    const char *item;
    size_t itemlen;
    void *parsed; /* internal: the item parsed once (cJSON), freed by drv_tvals_free */
    int parse_failed;
} drv_tvals;

void drv_tvals_free(drv_tvals *v);

/* Renders one template for one item into out (reset first). Returns DRV_OK; DRV_EINVAL with
 * 'why' when the item lacks a field the template names, a header value would hold CR, LF or
 * NUL, or ${NAME} was not resolved; DRV_ETOOBIG past out->max. */
drv_err drv_http_render(const drv_http_cfg *c, const char *tmpl, drv_esc esc, drv_tvals *v,
                        drv_buf *out, char *why, size_t whylen);

/* 1 when status s counts as success (ok) or as worth a retry (retry). */
int drv_http_is_ok(const drv_http_cfg *c, long s);
int drv_http_is_retry(const drv_http_cfg *c, long s);

/* Parses a Retry-After value (delta seconds or an HTTP date) into milliseconds from now_s
 * (Unix seconds). Returns -1 when it is neither. */
int64_t drv_retry_after_ms(const char *v, int64_t now_s);

/* For libcurl header callbacks: if the header line p[0..len) is Retry-After, copies its value
 * (without the line end, cut to cap - 1 bytes) into out and returns 1; otherwise 0. */
int drv_header_retry_after(const char *p, size_t len, char *out, size_t cap);

/* Replaces bytes that are not valid UTF-8 (and control characters other than \t and \n)
 * with '?', so a response body can be kept in a JSON error record. */
void drv_text_sanitize(char *s, size_t n);

#endif
