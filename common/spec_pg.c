/* The postgres source's part of the job spec: its members in JSON and their rules. Kept apart
 * from spec.c, which calls these from its source parser, writer and check. Nothing here
 * talks to PostgreSQL: submit checks the table itself (coordinator/feed_pg.c). */
#include "spec.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#define COLUMNS_MAX 50 /* json_build_object takes at most 100 arguments */

/* A string member into out (cap bytes); absent leaves out as it is. 0, or -1 with why. */
static int get_text(const cJSON *src, const char *name, char *out, size_t cap, char *why,
                    size_t whylen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, name);
    if (!v) return 0;
    if (!cJSON_IsString(v)) {
        snprintf(why, whylen, "source.%s: expected a string", name);
        return -1;
    }
    if (strlen(v->valuestring) >= cap) {
        snprintf(why, whylen, "source.%s: longer than %zu bytes", name, cap - 1);
        return -1;
    }
    strcpy(out, v->valuestring);
    return 0;
}

/* One column name: what PostgreSQL calls an identifier, without a comma (the list's separator)
 * or a quote; it is quoted when the SQL is built. */
static int column_ok(const char *c, size_t n) {
    if (n == 0 || n > 63) return 0;
    for (size_t i = 0; i < n; i++)
        if (c[i] == ',' || c[i] == '"' || c[i] == ' ' || (unsigned char)c[i] < 0x20) return 0;
    return 1;
}

int drv_spec_pg_columns(drv_spec *s, const char *list, char *why, size_t whylen) {
    int n = 0;
    if (strlen(list) >= sizeof s->pg_columns) {
        snprintf(why, whylen, "source.columns: longer than %zu bytes", sizeof s->pg_columns - 1);
        return -1;
    }
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        if (!column_ok(p, k) || ++n > COLUMNS_MAX) {
            snprintf(why, whylen,
                     "source.columns: expected at most %d column names (no spaces, quotes or "
                     "commas in a name), got \"%.*s\"",
                     COLUMNS_MAX, (int)(k < 80 ? k : 80), p);
            return -1;
        }
        p += k;
        if (*p == ',' && !*++p) {
            snprintf(why, whylen, "source.columns: a trailing comma");
            return -1;
        }
    }
    snprintf(s->pg_columns, sizeof s->pg_columns, "%s", list);
    return 0;
}

drv_err drv_spec_pg_parse(const cJSON *src, drv_spec *s, char *why, size_t whylen) {
    s->source = DRV_SRC_PG;
    if (get_text(src, "dsn", s->pg_dsn, sizeof s->pg_dsn, why, whylen) ||
        get_text(src, "table", s->pg_table, sizeof s->pg_table, why, whylen) ||
        get_text(src, "key", s->pg_key, sizeof s->pg_key, why, whylen) ||
        get_text(src, "where", s->pg_where, sizeof s->pg_where, why, whylen) ||
        get_text(src, "key_type", s->pg_key_type, sizeof s->pg_key_type, why, whylen) ||
        get_text(src, "query", s->pg_query, sizeof s->pg_query, why, whylen))
        return DRV_EINVAL;
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(src, "columns");
    if (cols) {
        char list[sizeof s->pg_columns];
        size_t o = 0;
        list[0] = '\0';
        if (!cJSON_IsArray(cols) || cJSON_GetArraySize(cols) == 0) {
            snprintf(why, whylen, "source.columns: expected an array of column names");
            return DRV_EINVAL;
        }
        for (const cJSON *c = cols->child; c; c = c->next) {
            if (!cJSON_IsString(c) || !column_ok(c->valuestring, strlen(c->valuestring)) ||
                o + strlen(c->valuestring) + 2 > sizeof list) {
                snprintf(why, whylen,
                         "source.columns: expected column names (no spaces, quotes or commas)");
                return DRV_EINVAL;
            }
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? "," : "", c->valuestring);
        }
        if (drv_spec_pg_columns(s, list, why, whylen)) return DRV_EINVAL;
    }
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(src, "allow_seqscan");
    if (seq && !cJSON_IsBool(seq)) {
        snprintf(why, whylen, "source.allow_seqscan: expected true or false");
        return DRV_EINVAL;
    }
    s->pg_allow_seqscan = cJSON_IsTrue(seq);
    for (const char *k =
             "start\0end\0path\0format\0id_field\0url\0items\0next\0next_param\0headers\0";
         *k; k += strlen(k) + 1)
        if (cJSON_HasObjectItem(src, k)) {
            snprintf(why, whylen, "source.%s: not a field of a postgres source", k);
            return DRV_EINVAL;
        }
    return DRV_OK;
}

void drv_spec_pg_write(cJSON *src, const drv_spec *s) {
    cJSON_AddStringToObject(src, "dsn", s->pg_dsn);
    if (s->pg_query[0])
        cJSON_AddStringToObject(src, "query", s->pg_query);
    else
        cJSON_AddStringToObject(src, "table", s->pg_table);
    if (s->pg_key[0]) cJSON_AddStringToObject(src, "key", s->pg_key);
    if (s->pg_key_type[0]) cJSON_AddStringToObject(src, "key_type", s->pg_key_type);
    if (s->pg_where[0]) cJSON_AddStringToObject(src, "where", s->pg_where);
    if (s->pg_columns[0]) {
        cJSON *a = cJSON_AddArrayToObject(src, "columns");
        for (const char *p = s->pg_columns; a && *p;) {
            size_t k = strcspn(p, ",");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)k, p);
            cJSON_AddItemToArray(a, cJSON_CreateString(name));
            p += k + (p[k] == ',');
        }
    }
    if (s->pg_allow_seqscan) cJSON_AddTrueToObject(src, "allow_seqscan");
}

int drv_spec_pg_check(const drv_spec *s, char *why, size_t whylen) {
    if (!s->pg_dsn[0]) {
        snprintf(why, whylen,
                 "source.dsn: missing (a libpq connection string, such as "
                 "\"${DATABASE_URL}\")");
        return -1;
    }
    if (!s->pg_table[0] == !s->pg_query[0]) {
        snprintf(why, whylen, "source.table: %s",
                 s->pg_query[0] ? "give a table or a query, not both"
                                : "missing (the table to walk, or a \"query\")");
        return -1;
    }
    if (!s->pg_key[0] && !s->pg_query[0]) {
        snprintf(why, whylen,
                 "source.key: missing (an indexed integer, text or uuid column "
                 "whose values are unique)");
        return -1;
    }
    if (strpbrk(s->pg_key, ",\" ")) {
        snprintf(why, whylen, "source.key: expected a column name, got \"%s\"", s->pg_key);
        return -1;
    }
    if (s->pg_key_type[0] && strcmp(s->pg_key_type, "int") && strcmp(s->pg_key_type, "text")) {
        snprintf(why, whylen, "source.key_type: expected int or text (submit finds it)");
        return -1;
    }
    return 0;
}
