#ifndef DRV_SPEC_H
#define DRV_SPEC_H

#include "config.h"
#include "err.h"

#include <stddef.h>
#include <stdint.h>

/* A job spec: what to feed and how the fleet treats its items. The same struct comes from a
 * JSON file (drv_spec_parse) or from drover submit's flags, and is stored in the job hash as
 * JSON (drv_spec_to_json), so workers and a restarted coordinator see the same values. */
typedef enum drv_src_type {
    DRV_SRC_RANGE = 0,
    DRV_SRC_FILE,
    DRV_SRC_STDIN,
    DRV_SRC_HTTP,
    DRV_SRC_PG /* a PostgreSQL table walked by key (coordinator/feed_pg.c) */
} drv_src_type;
typedef enum drv_fmt { DRV_FMT_LINES = 0, DRV_FMT_NDJSON, DRV_FMT_CSV } drv_fmt;

#define DRV_PARTITIONS_MAX 1024
/* Most ids one range partition holds: its done bitmap is a Redis string of at most 2^32 bits. */
#define DRV_PART_IDS_MAX     4294967296ULL
#define DRV_ID_BYTES_MAX     1024
#define DRV_HANDLER_JSON_MAX 32768 /* a spec's handler object, as JSON */
#define DRV_HOOK_JSON_MAX    8192  /* an on_complete or on_dead object, as JSON */

typedef struct drv_spec {
    char id[65]; /* job id; "" = generate one */
    drv_src_type source;
    int64_t range_start;      /* range: first id */
    int64_t range_end;        /* range: last id (inclusive) */
    char path[4096];          /* file: path as given */
    drv_fmt format;           /* file, stdin */
    char id_field[256];       /* ndjson: field; csv: header column; http: field. "" = lines */
    char url[4096];           /* http: the first page */
    char items_path[256];     /* http: dotted JSON path to the array of items ("" = the body) */
    char next_path[256];      /* http: dotted JSON path to the next page's token or URL */
    char next_param[64];      /* http: query parameter that carries a token ("cursor") */
    char src_headers[4096];   /* http: JSON object of request headers, ${NAME} allowed */
    char pg_dsn[1024];        /* postgres: libpq DSN, ${NAME} allowed; never a literal password */
    char pg_table[256];       /* postgres: the table, as SQL names it ("invoices", "s.t") */
    char pg_key[64];          /* postgres: the key column (an integer or a text/uuid column) */
    char pg_key_type[8];      /* postgres: "int" or "text", found by submit ("" before) */
    char pg_where[4096];      /* postgres: an SQL condition rows must meet ("" for all) */
    char pg_query[8192];      /* postgres: a SELECT whose first column is the key, not a table */
    char pg_columns[4096];    /* postgres: the item's columns, "a,b" ("" for every column) */
    int64_t pg_allow_seqscan; /* postgres: 1 feeds a key with no index (a scan per page) */
    char dedupe[8];           /* file: repeated ids "" (refused at submit) or "first" (kept once) */
    int64_t partitions;
    int64_t lease_ms;
    int64_t max_attempts;
    int64_t max_throttled; /* throttled answers (429, Retry-After) before an item is dead */
    int64_t backoff_ms;    /* first retry delay (before jitter) */
    int64_t backoff_max_ms;
    int64_t window; /* high-water mark of each pending list */
    int64_t max_item_bytes;
    char handler[DRV_HANDLER_JSON_MAX]; /* canonical JSON of an HTTP handler, "" for none */
    /* Bytes of each ok item's result that the worker's own handler reports (a --serve
     * answer's "result") kept in the job's results hash; 0 keeps none. A spec HTTP handler
     * keeps its responses by its own keep_response instead. */
    int64_t keep_results;
    /* Fleet-wide limits (lua/admit.lua), changeable live with drover set: */
    int64_t rate_per_s;          /* items started per second across the fleet, 0 for no limit */
    int64_t rate_burst;          /* token bucket size; set whenever rate_per_s is */
    int64_t max_in_flight;       /* items leased at once across the fleet, 0 for no cap */
    int64_t weight;              /* share of a worker's capacity beside other jobs (default 1) */
    int64_t halt_failed_percent; /* pause the job past this % of failures, 0 for never */
    int64_t halt_min_items;      /* ... of the last this many finished items */
    int64_t adaptive; /* 1: an HTTP handler's in-flight limit adapts (AIMD, lua/lib/aimd.lua) */
    int64_t adaptive_start; /* where that limit starts */
    /* Callbacks the coordinator POSTs: canonical JSON {"url","headers","timeout_ms"}, "" for
     * none. Header values keep their ${NAME} references: the coordinator resolves them. */
    char on_complete[DRV_HOOK_JSON_MAX];
    char on_dead[DRV_HOOK_JSON_MAX];
    int64_t alert_dead_over; /* on_dead fires once dead > this; -1 = never */
    int64_t ttl_after_done;  /* seconds a done job's keys live on; 0 = until purged */
} drv_spec;

#define DRV_RATE_MAX   1000000
#define DRV_WEIGHT_MAX 1000

/* ---- the field table ------------------------------------------------------------------------
 * One row per spec field drives everything a field needs: drv_spec_init (its default),
 * drv_spec_parse (its JSON name, type and bounds, the list of known fields), drv_spec_validate
 * (bounds, then the row's cross-field check), drv_spec_to_json (its place and whether it is left
 * out at its default), drover submit's flags and their --help, and drover set's keys (rows
 * marked live). A new field is one row here (and its member of drv_spec), as Redis's
 * standardConfig table drives its config. */
typedef enum drv_field_type {
    DRV_FIELD_INT,    /* int64_t within min..max */
    DRV_FIELD_STR,    /* char[cap]: a JSON string */
    DRV_FIELD_OBJECT, /* char[cap]: an object kept as canonical JSON, read by the row's parse */
    DRV_FIELD_SOURCE  /* the source object: several members, read by the row's parse; its flags
                       * (--range, --file, --source -, --format, --id-field) are submit's own */
} drv_field_type;

enum {
    DRV_FIELD_OPTIONAL = 1u << 0,  /* the default means "none": allowed, but not written in JSON */
    DRV_FIELD_DEPENDENT = 1u << 1, /* bounds that depend on another field: the row's check */
    DRV_FIELD_OMIT = 1u << 2,      /* to_json leaves it out at its default */
    DRV_FIELD_REQUIRED = 1u << 3,  /* must be given (within its object, for "rate.burst") */
    DRV_FIELD_LIVE = 1u << 4       /* drover set changes it on a running job */
};

struct cJSON;
typedef struct drv_spec_field drv_spec_field;
struct drv_spec_field {
    const char *name;    /* JSON path: "partitions"; "rate.burst" is "burst" in the object "rate" */
    const char *flag;    /* drover submit's flag without "--" (drover set's key with '_' for '-');
                          * NULL for the source, whose flags are submit's own */
    const char *metavar; /* the flag's value in --help */
    drv_field_type type;
    unsigned flags;        /* DRV_FIELD_* */
    int64_t def, min, max; /* INT: the default and the bounds */
    size_t off, cap;       /* where it lives in drv_spec; STR and OBJECT: its size */
    const char *def_text;  /* the default as --help says it ("no cap"); NULL: def */
    const char *expect;    /* what a message says is expected; NULL: "min to max" */
    const char *help;      /* one line for --help */
    /* OBJECT, SOURCE: reads the JSON value into the spec; DRV_EINVAL with why naming it. */
    drv_err (*parse)(const struct cJSON *v, const drv_spec_field *f, drv_spec *s, char *why,
                     size_t whylen);
    /* Rules beyond the bounds (the field against others): 0, or -1 with why. */
    int (*check)(const drv_spec *s, const drv_spec_field *f, char *why, size_t whylen);
};

/* The rows, in the order of the canonical JSON (the rows of a group such as "rate" adjacent,
 * the first one deciding whether the group is written); ends with a row whose name is NULL. */
extern const drv_spec_field drv_spec_fields[];

/* The row of a JSON path ("weight", "rate.burst") or of a submit flag ("max-in-flight"); NULL
 * when there is none. */
const drv_spec_field *drv_spec_field_named(const char *name);
const drv_spec_field *drv_spec_field_by_flag(const char *flag);
/* An INT row's value in s. */
int64_t drv_spec_field_int(const drv_spec *s, const drv_spec_field *f);
/* Sets a row's value from a flag's text (INT: a whole number, bounds are validate's; STR: the
 * text; OBJECT: JSON). DRV_EINVAL with why naming the flag. */
drv_err drv_spec_set_text(drv_spec *s, const drv_spec_field *f, const char *text, char *why,
                          size_t whylen);
/* The row's --help line: its help and its default. */
void drv_spec_field_help(const drv_spec_field *f, char *buf, size_t len);
/* The row's drover submit flag: a string option into *dst (NULL when not given), its help
 * written into 'help' (which the option points to). */
void drv_spec_field_opt(const drv_spec_field *f, const char **dst, char *help, size_t helplen,
                        drv_opt *out);
/* The fields known within 'group' ("" for the top level, "rate" for its object), as
 * "id, source, ...", for a message. */
void drv_spec_known_fields(const char *group, char *buf, size_t len);

/* The burst a rate gets when none is given: a tenth of a second's worth, at least 1. */
int64_t drv_spec_default_burst(int64_t per_second);

/* Fills in the defaults (no source set yet). */
void drv_spec_init(drv_spec *s);

/* Parses a JSON spec into *out (initialised with defaults first) and validates it. Unknown
 * fields are refused. On error returns DRV_EINVAL with a message naming the field and what
 * was expected in 'why'. */
drv_err drv_spec_parse(const char *json, size_t len, drv_spec *out, char *why, size_t whylen);

/* Checks ranges and combinations; the one place the rules live. */
drv_err drv_spec_validate(const drv_spec *s, char *why, size_t whylen);

/* Serialises to compact JSON. Caller frees with free(). NULL on ENOMEM. */
char *drv_spec_to_json(const drv_spec *s);

const char *drv_fmt_name(drv_fmt f);
/* Returns 0 and sets *out for "lines", "ndjson" or "csv"; -1 otherwise. */
int drv_fmt_parse(const char *s, drv_fmt *out);
const char *drv_src_name(drv_src_type t);

/* The postgres source's members (spec_pg.c): read from the source object (type known), written
 * back, and checked. */
drv_err drv_spec_pg_parse(const struct cJSON *src, drv_spec *s, char *why, size_t whylen);
void drv_spec_pg_write(struct cJSON *src, const drv_spec *s);
int drv_spec_pg_check(const drv_spec *s, char *why, size_t whylen);
/* Sets the columns from "a,b" (a flag) or checks them: names without spaces, at most 50. 0 or -1.
 */
int drv_spec_pg_columns(drv_spec *s, const char *list, char *why, size_t whylen);

/* Parses "A..B" (inclusive, A <= B, 64-bit signed). Returns 0 or -1. */
int drv_range_parse(const char *s, int64_t *a, int64_t *b);

#endif
