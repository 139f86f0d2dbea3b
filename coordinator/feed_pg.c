/* The postgres source: submit's checks and partitions, and the coordinator's keyset walk of
 * each partition (pg.h says what the cursors are).
 *
 * Every value sent with a query (a cursor, a bound, a partition number, a name looked up in
 * the catalog) is a parameter; the SQL text holds only identifiers the catalog gave back
 * (quoted by PQescapeIdentifier) and the spec's own "where", which is SQL by design. The
 * connection is read-only (default_transaction_read_only) with a statement_timeout, and its
 * DSN is resolved from this process's environment: a ${NAME} in the spec never holds the
 * password in Redis, and a literal password is refused at submit. */
#include "pg.h"

#include "backoff.h"
#include "clock.h"
#include "coord.h"
#include "log.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FEED_CHUNK      DRV_FEED_CHUNK /* common/shared.def */
#define STATEMENT_MS    "30000"        /* statement_timeout of every page */
#define CONNECT_TIMEOUT "10"           /* seconds */
#define HASH_EXPR       "(('x' || substr(md5(%s::text), 1, 8))::bit(32)::bigint %% $%d::bigint)"
#define SQL_MAX         (16 << 10)
#define KEY_LIMIT       9007199254740992LL /* 2^53: the open partition's end */

/* ---- the DSN ----------------------------------------------------------------------------- */

/* The DSN with each ${NAME} replaced by this environment's value. NULL with why naming a
 * missing variable (never printing a value). Caller frees. */
static char *resolve_dsn(const char *dsn, char *why, size_t whylen) {
    size_t cap = strlen(dsn) + 1, n = 0;
    char *out = malloc(cap);
    for (const char *p = dsn; out && *p;) {
        const char *val = NULL, *close = NULL;
        size_t vlen = 1;
        if (p[0] == '$' && p[1] == '{' && (close = strchr(p + 2, '}'))) {
            char name[128];
            size_t k = (size_t)(close - p - 2);
            snprintf(name, sizeof name, "%.*s", (int)(k < sizeof name ? k : sizeof name - 1),
                     p + 2);
            if (!(val = getenv(name))) {
                snprintf(why, whylen, "source.dsn: ${%s} is not set in this environment", name);
                free(out);
                return NULL;
            }
            vlen = strlen(val);
        } else {
            val = p;
        }
        if (n + vlen + 1 > cap) {
            char *nb = realloc(out, cap = (n + vlen + 1) * 2);
            if (!nb) free(out);
            out = nb;
            if (!out) break;
        }
        memcpy(out + n, val, vlen);
        n += vlen;
        p = close ? close + 1 : p + 1;
    }
    if (!out) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    out[n] = '\0';
    return out;
}

/* What a ${NAME} of the DSN stands for while its literal text is checked: no real password. */
#define ENV_MARK "drover-env-value"

/* Whether text that libpq cannot parse as it stands (a ${NAME} stands for part of it) may still
 * spell a password: a "password" keyword, or a URI's user:password@. Errs on the side of yes. */
static int may_hold_password(const char *text) {
    for (const char *p = text; *p; p++)
        if (strncasecmp(p, "password", 8) == 0) return 1;
    const char *u = strstr(text, "://");
    if (!u) return 0;
    u += 3;
    const char *at = strchr(u, '@'), *slash = strchr(u, '/');
    if (!at || (slash && slash < at)) return 0;
    const char *colon = memchr(u, ':', (size_t)(at - u));
    return colon != NULL;
}

/* A password written into the spec's DSN would be stored in Redis: refused. A password that is
 * exactly one ${NAME} comes from the environment and is fine. 0, or -1 with why. */
static int literal_password(const char *dsn, char *why, size_t whylen) {
    /* Only the literal text can hold one: check it with every ${NAME} replaced by ENV_MARK. */
    char plain[sizeof((drv_spec *)0)->pg_dsn + 256];
    size_t n = 0;
    for (const char *p = dsn; *p && n + sizeof ENV_MARK < sizeof plain;) {
        const char *close = p[0] == '$' && p[1] == '{' ? strchr(p, '}') : NULL;
        if (close) {
            memcpy(plain + n, ENV_MARK, sizeof ENV_MARK - 1);
            n += sizeof ENV_MARK - 1;
            p = close + 1;
        } else {
            plain[n++] = *p++;
        }
    }
    plain[n] = '\0';
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(plain, &err);
    int bad = 0;
    if (!o) {
        /* A ${NAME} holding a whole DSN or part of one: judge the literal text by its words. */
        bad = may_hold_password(plain);
    }
    for (PQconninfoOption *x = o; x && x->keyword; x++)
        if (strcmp(x->keyword, "password") == 0 && x->val && x->val[0] &&
            strcmp(x->val, ENV_MARK) != 0)
            bad = 1;
    PQconninfoFree(o);
    PQfreemem(err);
    if (bad)
        snprintf(why, whylen,
                 "source.dsn: holds a password, which would be stored in Redis: put the DSN in "
                 "an environment variable and give \"${NAME}\" (or use PGPASSWORD or ~/.pgpass)");
    return bad ? -1 : 0;
}

/* Connects read-only with a statement timeout. NULL with why (libpq's words, which never
 * include the password). */
static PGconn *connect_ro(const char *dsn, char *why, size_t whylen) {
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {dsn, CONNECT_TIMEOUT, "drover", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c && PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "SET default_transaction_read_only = on; "
                                "SET statement_timeout = " STATEMENT_MS);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (ok) return c;
    }
    snprintf(why, whylen, "%s", c ? PQerrorMessage(c) : "out of memory");
    why[strcspn(why, "\n")] = '\0';
    PQfinish(c);
    return NULL;
}

/* ---- the page query ------------------------------------------------------------------------ */

/* What a page query needs, found in the catalog. */
typedef struct pg_names {
    char table[600];   /* the table as SQL, quoted as needed (regclass::text); "" for a query */
    char *from;        /* a query source: "(query)" */
    char key_name[64]; /* a query source: its first column, unquoted */
    char *key;         /* the key column, quoted */
    char *item;        /* the item's JSON expression */
    int is_text;
} pg_names;

static void names_free(pg_names *n) {
    PQfreemem(n->key);
    free(n->item);
    free(n->from);
    n->key = n->item = n->from = NULL;
}

/* What a page reads FROM: the table, or the query in parentheses. */
static const char *from_of(const pg_names *n) {
    return n->from ? n->from : n->table;
}

/* The first row's first value of a one-parameter-list query, or NULL (no row, or an error in
 * why). Caller frees. */
/* PostgreSQL's own words for a failed query, without its "ERROR:  " and detail lines. */
static const char *pg_msg(const PGresult *r, const PGconn *c) {
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return m ? m : PQerrorMessage(c);
}

static char *query_one(PGconn *c, const char *sql, int n, const char *const *params, int *err,
                       char *why, size_t whylen) {
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    char *v = NULL;
    *err = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "%s", pg_msg(r, c));
        why[strcspn(why, "\n")] = '\0';
        *err = 1;
    } else if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        v = strdup(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return v;
}

/* The item's JSON expression: the whole row, or the columns named (known to exist). NULL out
 * of memory. */
static char *item_expr(PGconn *c, const char *columns) {
    size_t cap = 64 + strlen(columns) * 8;
    char *item = malloc(cap);
    if (!item || !columns[0]) {
        if (item) snprintf(item, cap, "row_to_json(t)::text");
        return item;
    }
    size_t o = (size_t)snprintf(item, cap, "json_build_object(");
    for (const char *p = columns; *p;) {
        size_t k = strcspn(p, ",");
        char *lit = PQescapeLiteral(c, p, k), *id = PQescapeIdentifier(c, p, k);
        if (lit && id && o + strlen(lit) + strlen(id) + 8 < cap)
            o += (size_t)snprintf(item + o, cap - o, "%s%s, t.%s", o > 18 ? ", " : "", lit, id);
        PQfreemem(lit);
        PQfreemem(id);
        p += k + (p[k] == ',');
    }
    snprintf(item + o, cap - o, ")::text");
    return item;
}

/* A query source: its first column is the key (an integer or text-like type), the columns
 * named must be among its columns; the page query reads FROM (query) t. 0, or -1 with why. */
static int find_query_names(PGconn *c, const drv_spec *s, pg_names *n, char *why, size_t whylen) {
    size_t qlen = strlen(s->pg_query);
    char *sql = malloc(qlen + 64);
    if (!sql) return snprintf(why, whylen, "out of memory"), -1;
    snprintf(sql, qlen + 64, "SELECT * FROM (%s) t LIMIT 0", s->pg_query);
    PGresult *r = PQprepare(c, "", sql, 0, NULL);
    free(sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (ok) {
        PQclear(r);
        r = PQdescribePrepared(c, "");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    }
    if (!ok) {
        snprintf(why, whylen, "source.query: %s", pg_msg(r, c));
        why[strcspn(why, "\n")] = '\0';
        PQclear(r);
        return -1;
    }
    Oid t = PQnfields(r) > 0 ? PQftype(r, 0) : 0;
    const char *key = PQnfields(r) > 0 ? PQfname(r, 0) : "";
    int is_int = t == 20 || t == 21 || t == 23;                   /* int8, int2, int4 */
    int is_text = t == 25 || t == 1043 || t == 1042 || t == 2950; /* text, varchar, bpchar, uuid */
    int rc = -1;
    if (!is_int && !is_text)
        snprintf(why, whylen,
                 "source.query: its first column \"%s\" (the key) is of type oid %u: expected "
                 "an integer, text or uuid",
                 key, (unsigned)t);
    else if (s->pg_key[0] && strcmp(s->pg_key, key))
        snprintf(why, whylen, "source.key: \"%s\", but the query's first column is \"%s\"",
                 s->pg_key, key);
    else
        rc = 0;
    for (const char *p = s->pg_columns; !rc && *p;) {
        size_t k = strcspn(p, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)k, p);
        int found = 0;
        for (int i = 0; i < PQnfields(r); i++)
            found |= strcmp(PQfname(r, i), name) == 0;
        if (!found) {
            snprintf(why, whylen, "source.columns: no column \"%s\" in the query", name);
            rc = -1;
        }
        p += k + (p[k] == ',');
    }
    if (!rc) {
        n->is_text = is_text;
        n->key = PQescapeIdentifier(c, key, strlen(key));
        n->item = item_expr(c, s->pg_columns);
        n->from = malloc(qlen + 3);
        if (n->from) snprintf(n->from, qlen + 3, "(%s)", s->pg_query);
        if (!n->key || !n->item || !n->from) snprintf(why, whylen, "out of memory"), rc = -1;
        snprintf(n->key_name, sizeof n->key_name, "%s", key);
    }
    PQclear(r);
    return rc;
}

/* The table and the key's and columns' attributes. Fills n. 0, or -1 with why naming the
 * spec field that is wrong. */
static int find_names(PGconn *c, const drv_spec *s, pg_names *n, char *why, size_t whylen) {
    int err;
    char msg[512];
    const char *tp[] = {s->pg_table};
    memset(n, 0, sizeof *n);
    if (s->pg_query[0]) return find_query_names(c, s, n, why, whylen);
    char *t = query_one(c, "SELECT to_regclass($1)::text", 1, tp, &err, msg, sizeof msg);
    if (!t) {
        snprintf(why, whylen, "source.table: no table \"%s\" in the database%s%s", s->pg_table,
                 err ? ": " : "", err ? msg : "");
        return -1;
    }
    snprintf(n->table, sizeof n->table, "%s", t);
    free(t);
    /* The key: an integer, text-like or uuid column. */
    const char *kp[] = {n->table, s->pg_key};
    static const char attr_sql[] =
        "SELECT CASE WHEN t.typname IN ('int2', 'int4', 'int8') THEN 'int' "
        "WHEN t.typname IN ('text', 'varchar', 'bpchar', 'uuid', 'citext') THEN 'text' "
        "ELSE format_type(a.atttypid, a.atttypmod) END "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = $1::regclass AND a.attname = $2 AND a.attnum > 0 "
        "AND NOT a.attisdropped";
    char *kt = query_one(c, attr_sql, 2, kp, &err, msg, sizeof msg);
    if (!kt || (strcmp(kt, "int") && strcmp(kt, "text"))) {
        if (kt)
            snprintf(why, whylen,
                     "source.key: column \"%s\" of %s is %s: expected an integer, text or uuid "
                     "column",
                     s->pg_key, n->table, kt);
        else
            snprintf(why, whylen, "source.key: no column \"%s\" in %s%s%s", s->pg_key, n->table,
                     err ? ": " : "", err ? msg : "");
        free(kt);
        return -1;
    }
    n->is_text = strcmp(kt, "text") == 0;
    free(kt);
    n->key = PQescapeIdentifier(c, s->pg_key, strlen(s->pg_key));
    /* The columns named exist; the item is them, or the whole row. */
    for (const char *p = s->pg_columns; *p;) {
        size_t k = strcspn(p, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)k, p);
        p += k + (p[k] == ',');
        const char *cp[] = {n->table, name};
        char *has = query_one(c, attr_sql, 2, cp, &err, msg, sizeof msg);
        if (!has) {
            snprintf(why, whylen, "source.columns: no column \"%s\" in %s", name, n->table);
            return -1;
        }
        free(has);
    }
    if (!n->key || !(n->item = item_expr(c, s->pg_columns))) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

/* The SQL of a page. An integer key: $1 the last key fed, $2 the partition's last key, $3 the
 * page size. A text key: $1 the partition, $2 the partitions, $3 the page size, $4 the last
 * key fed ('first': none yet, no $4). */
static void page_sql(const pg_names *n, const drv_spec *s, int first, char *sql, size_t cap) {
    char cond[SQL_MAX / 2];
    if (!n->is_text) {
        snprintf(cond, sizeof cond, "t.%s > $1::bigint AND t.%s <= $2::bigint", n->key, n->key);
    } else {
        char hash[512];
        char col[300];
        snprintf(col, sizeof col, "t.%s", n->key);
        snprintf(hash, sizeof hash, HASH_EXPR, col, 2);
        snprintf(cond, sizeof cond, "%s = $1::bigint%s%s%s", hash, first ? "" : " AND t.",
                 first ? "" : n->key, first ? "" : " > $4");
    }
    snprintf(sql, cap, "SELECT t.%s::text, %s FROM %s t WHERE %s%s%s%s ORDER BY t.%s LIMIT $3",
             n->key, n->item, from_of(n), cond, s->pg_where[0] ? " AND (" : "", s->pg_where,
             s->pg_where[0] ? ")" : "", n->key);
}

/* ---- submit ------------------------------------------------------------------------------- */

/* A unique btree index whose first column is the key: each page is then an index range scan,
 * and keyset pages skip no row (a key shared by two rows could straddle a page's end). 0, or -1
 * with why. */
static int check_index(PGconn *c, const drv_spec *s, const pg_names *n, char *why, size_t whylen) {
    if (n->from) return 0; /* a query: check_page reads its plan */
    const char *p[] = {n->table, s->pg_key};
    int err;
    char msg[512];
    char *u = query_one(c,
                        "SELECT max(i.indisunique::int)::text FROM pg_index i "
                        "JOIN pg_class ic ON ic.oid = i.indexrelid "
                        "JOIN pg_am am ON am.oid = ic.relam "
                        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = $2 "
                        "WHERE i.indrelid = $1::regclass AND i.indkey[0] = a.attnum "
                        "AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'",
                        2, p, &err, msg, sizeof msg);
    int rc = 0;
    if (err) {
        snprintf(why, whylen, "source.key: reading the indexes of %.200s: %.400s", n->table, msg);
        rc = -1;
    } else if (u && strcmp(u, "1") != 0) {
        snprintf(why, whylen,
                 "source.key: \"%s\" of %s is indexed but not unique: pages walked by key would "
                 "skip rows that share a key (give a unique key, such as the primary key)",
                 s->pg_key, n->table);
        rc = -1;
    } else if (!u && !s->pg_allow_seqscan) {
        snprintf(why, whylen,
                 "source.key: no btree index on %s(%s): every page would scan the table (create "
                 "a unique index, or pass --allow-seqscan)",
                 n->table, s->pg_key);
        rc = -1;
    }
    free(u);
    return rc;
}

/* Plans a page once (EXPLAIN, nothing read): a bad "where" is found here, not by the
 * coordinator. 0, or -1 with why. */
static int check_page(PGconn *c, const drv_spec *s, const pg_names *n, char *why, size_t whylen) {
    char sql[SQL_MAX], ex[SQL_MAX + 16];
    page_sql(n, s, n->is_text, sql, sizeof sql); /* a text key's first page: no key to cast */
    snprintf(ex, sizeof ex, "EXPLAIN %s", sql);
    const char *p[] = {"0", n->is_text ? "1" : "0", "1"};
    PGresult *r = PQexecParams(c, ex, 3, NULL, p, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(why, whylen, "%s: %s",
                 s->pg_where[0]   ? "source.where"
                 : s->pg_query[0] ? "source.query"
                                  : "source",
                 pg_msg(r, c));
        why[strcspn(why, "\n")] = '\0';
    }
    /* A query's key has no catalog entry to check: its page's plan says whether a page scans
     * a whole table. */
    for (int i = 0; ok && n->from && !s->pg_allow_seqscan && i < PQntuples(r); i++) {
        const char *seq = strstr(PQgetvalue(r, i, 0), "Seq Scan on ");
        if (seq) {
            snprintf(why, whylen,
                     "source.query: a page would scan a whole table (%.120s): order it by an "
                     "indexed key, or pass --allow-seqscan",
                     seq);
            ok = 0;
        }
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* An integer key's min..max cut into P slices, the last one open. 0, or -1 with why. */
static int split_int(PGconn *c, const drv_spec *s, const pg_names *n, drv_part_init *parts,
                     char *why, size_t whylen) {
    size_t cap = strlen(from_of(n)) + 256;
    char *sql = malloc(cap);
    if (!sql) return snprintf(why, whylen, "out of memory"), -1;
    snprintf(sql, cap, "SELECT min(t.%s)::bigint, max(t.%s)::bigint FROM %s t", n->key, n->key,
             from_of(n));
    PGresult *r = PQexec(c, sql);
    free(sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "source: reading the key's range: %s", pg_msg(r, c));
        why[strcspn(why, "\n")] = '\0';
        PQclear(r);
        return -1;
    }
    int64_t lo = 1, hi = 1; /* an empty table: rows inserted later go to the open partition */
    if (!PQgetisnull(r, 0, 0)) {
        lo = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        hi = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    /* Redis keeps a partition's bounds as numbers a script reads exactly: within 2^53. */
    if (lo <= -KEY_LIMIT || hi >= KEY_LIMIT) {
        snprintf(why, whylen,
                 "source.key: its values span %" PRId64 "..%" PRId64
                 ": an integer key must lie within -2^53..2^53",
                 lo, hi);
        return -1;
    }
    uint64_t total = (uint64_t)(hi - lo) + 1, P = (uint64_t)s->partitions;
    uint64_t base = total / P, rem = total % P;
    int64_t next = lo;
    for (uint64_t p = 0; p < P; p++) {
        uint64_t w = base + (p < rem);
        parts[p].start = next;
        parts[p].end = p + 1 == P ? KEY_LIMIT : next + (int64_t)w - 1;
        parts[p].exhausted = w == 0 && p + 1 < P;
        snprintf(parts[p].cursor, sizeof parts[p].cursor, "%" PRId64, next - 1);
        next += (int64_t)w;
    }
    return 0;
}

int drv_pg_split(drv_spec *s, drv_part_init *parts) {
    char why[1024] = "", *dsn = NULL;
    PGconn *c = NULL;
    pg_names n;
    memset(&n, 0, sizeof n);
    int rc = EXIT_USAGE;
    if (literal_password(s->pg_dsn, why, sizeof why) ||
        !(dsn = resolve_dsn(s->pg_dsn, why, sizeof why)))
        goto out;
    char msg[512];
    if (!(c = connect_ro(dsn, msg, sizeof msg))) {
        snprintf(why, sizeof why, "source.dsn: cannot connect: %s", msg);
        goto out;
    }
    if (find_names(c, s, &n, why, sizeof why) || check_index(c, s, &n, why, sizeof why) ||
        check_page(c, s, &n, why, sizeof why))
        goto out;
    snprintf(s->pg_key_type, sizeof s->pg_key_type, "%s", n.is_text ? "text" : "int");
    if (n.from) snprintf(s->pg_key, sizeof s->pg_key, "%s", n.key_name); /* a query's */
    if (n.is_text) {
        for (int p = 0; p < s->partitions; p++)
            parts[p] = (drv_part_init){0, 0, "", 0};
    } else if (split_int(c, s, &n, parts, why, sizeof why)) {
        goto out;
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "error: %s\n", why);
    names_free(&n);
    PQfinish(c);
    free(dsn);
    return rc;
}

/* ---- the coordinator's walk --------------------------------------------------------------- */

struct drv_pgsrc {
    const drv_job *job;
    char *dsn;
    PGconn *conn;
    pg_names n;
    char sql_first[SQL_MAX], sql_next[SQL_MAX];
    drv_backoff lost;
    int64_t next_try_ms;
};

void drv_pg_free(drv_pgsrc *s) {
    if (!s) return;
    names_free(&s->n);
    PQfinish(s->conn);
    free(s->dsn);
    free(s);
}

drv_err drv_pg_open(const drv_job *job, drv_pgsrc **out, char *why, size_t whylen) {
    drv_pgsrc *s = calloc(1, sizeof *s);
    if (!s) return DRV_ENOMEM;
    s->job = job;
    if (!(s->dsn = resolve_dsn(job->spec.pg_dsn, why, whylen))) {
        free(s);
        return DRV_EINVAL;
    }
    *out = s;
    return DRV_OK;
}

/* A failure worth waiting out: the connection, a timeout, a server shutting down or out of
 * resources, a serialization or lock conflict. */
static int transient(PGconn *c, const PGresult *r) {
    if (!c || PQstatus(c) != CONNECTION_OK) return 1;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st) return 1; /* no answer at all */
    return strncmp(st, "08", 2) == 0 || strncmp(st, "57", 2) == 0 || strncmp(st, "53", 2) == 0 ||
           strncmp(st, "40", 2) == 0 || strcmp(st, "55P03") == 0;
}

/* One more failure of the database: the connection is dropped, the next try backs off, and
 * the first failure of an episode is logged. */
static void failed(drv_pgsrc *s, const char *what) {
    char err[512];
    snprintf(err, sizeof err, "%s", what);
    err[strcspn(err, "\n")] = '\0';
    PQfinish(s->conn);
    s->conn = NULL;
    char label[128];
    snprintf(label, sizeof label, "job %s: the postgres source", s->job->id);
    s->next_try_ms = drv_now_ms() + drv_backoff_fail_log(&s->lost, drv_now_ms(), label, err);
}

/* Connects when not connected and builds the page queries from the catalog. DRV_OK connected,
 * DRV_EIO not yet (backing off), DRV_EINVAL the table or a column is gone (why). */
static drv_err ensure_conn(drv_pgsrc *s, char *why, size_t whylen) {
    if (s->conn) return DRV_OK;
    if (drv_now_ms() < s->next_try_ms) return DRV_EIO;
    char msg[512];
    if (!(s->conn = connect_ro(s->dsn, msg, sizeof msg))) {
        failed(s, msg);
        return DRV_EIO;
    }
    names_free(&s->n);
    if (find_names(s->conn, &s->job->spec, &s->n, why, whylen)) {
        if (PQstatus(s->conn) != CONNECTION_OK) {
            failed(s, why);
            return DRV_EIO;
        }
        PQfinish(s->conn);
        s->conn = NULL;
        return DRV_EINVAL;
    }
    page_sql(&s->n, &s->job->spec, 1, s->sql_first, sizeof s->sql_first);
    page_sql(&s->n, &s->job->spec, 0, s->sql_next, sizeof s->sql_next);
    char label[128];
    snprintf(label, sizeof label, "job %s: the postgres source", s->job->id);
    drv_backoff_ok_log(&s->lost, drv_now_ms(), label);
    return DRV_OK;
}

drv_err drv_pg_fill(drv_pgsrc *s, drv_queue *q, int p, drv_part_stat *st, int64_t want,
                    int64_t *fed, char *why, size_t whylen) {
    const drv_spec *spec = &s->job->spec;
    drv_err e = ensure_conn(s, why, whylen);
    if (e) return e == DRV_EIO ? DRV_OK : e;
    int is_text = s->n.is_text;
    drv_feed_item *items = calloc(FEED_CHUNK, sizeof *items);
    if (!items) return DRV_ENOMEM;
    while (want > 0 && !st->exhausted && !e) {
        char limit[24], part[24], parts[24], end[24];
        int64_t n = want < FEED_CHUNK ? want : FEED_CHUNK;
        snprintf(limit, sizeof limit, "%" PRId64, n);
        const char *params[4];
        int np = 3, first = 0;
        if (!is_text) {
            snprintf(end, sizeof end, "%" PRId64, st->end);
            params[0] = st->cursor, params[1] = end, params[2] = limit;
        } else {
            snprintf(part, sizeof part, "%d", p);
            snprintf(parts, sizeof parts, "%d", s->job->partitions);
            params[0] = part, params[1] = parts, params[2] = limit;
            first = st->cursor[0] != '>';
            if (!first) params[np++] = st->cursor + 1;
        }
        PGresult *r = PQexecParams(s->conn, first ? s->sql_first : s->sql_next, np, NULL, params,
                                   NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            if (transient(s->conn, r)) {
                failed(s, pg_msg(r, s->conn));
            } else {
                snprintf(why, whylen, "postgres source, partition %d: %s", p, pg_msg(r, s->conn));
                why[strcspn(why, "\n")] = '\0';
                e = DRV_EINVAL;
            }
            PQclear(r);
            break;
        }
        int rows = PQntuples(r);
        for (int i = 0; i < rows && !e; i++) {
            int klen = PQgetlength(r, i, 0), plen = PQgetlength(r, i, 1);
            if (klen == 0 || klen > DRV_ID_BYTES_MAX || plen > spec->max_item_bytes) {
                snprintf(why, whylen, "postgres source, key %.64s: %s", PQgetvalue(r, i, 0),
                         klen ? (klen > DRV_ID_BYTES_MAX ? "a key over 1024 bytes"
                                                         : "the row as JSON is over max_item_bytes")
                              : "an empty key cannot be an item's id");
                e = DRV_EINVAL;
            }
            items[i] = (drv_feed_item){PQgetvalue(r, i, 0), (size_t)klen, PQgetvalue(r, i, 1),
                                       (size_t)plen};
        }
        int last = rows < n;
        char next[DRV_CURSOR_MAX];
        if (rows == 0)
            snprintf(next, sizeof next, "%s", st->cursor);
        else
            snprintf(next, sizeof next, "%s%s", is_text ? ">" : "", PQgetvalue(r, rows - 1, 0));
        if (!e)
            e = drv_queue_feed(q, s->job->id, p, st->cursor, next, last, items, (size_t)rows,
                               &st->pending);
        PQclear(r);
        if (e) break;
        memcpy(st->cursor, next, sizeof next);
        st->exhausted = last;
        *fed += rows;
        want -= rows;
    }
    free(items);
    return e;
}
