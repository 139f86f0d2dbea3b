#define _GNU_SOURCE /* memmem */
#include "source.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- record reader --------------------------------------------------------------------------- */

#define READ_CHUNK 65536

struct drv_reader {
    FILE *f;
    drv_fmt fmt;
    int64_t pos; /* source offset of buf[bpos] */
    int64_t end;
    size_t max;
    char *buf;
    size_t blen, bpos;
    int eof;
    int64_t last_end;
    drv_buf rec;
};

drv_err drv_reader_new(FILE *f, drv_fmt fmt, int64_t start, int64_t end, size_t max_bytes,
                       drv_reader **out) {
    drv_reader *r = calloc(1, sizeof *r);
    if (!r) return DRV_ENOMEM;
    r->buf = malloc(READ_CHUNK);
    if (!r->buf) {
        free(r);
        return DRV_ENOMEM;
    }
    r->f = f;
    r->fmt = fmt;
    r->pos = r->last_end = start;
    r->end = end;
    r->max = max_bytes;
    /* Room for the terminator before the cap is checked. */
    drv_buf_init(&r->rec, max_bytes + 2);
    *out = r;
    return DRV_OK;
}

void drv_reader_free(drv_reader *r) {
    if (!r) return;
    drv_buf_free(&r->rec);
    free(r->buf);
    free(r);
}

int64_t drv_reader_offset(const drv_reader *r) {
    return r->last_end;
}

static int fill(drv_reader *r) {
    if (r->bpos < r->blen) return 1;
    if (r->eof) return 0;
    r->blen = fread(r->buf, 1, READ_CHUNK, r->f);
    r->bpos = 0;
    if (r->blen == 0) {
        r->eof = 1;
        return ferror(r->f) ? -1 : 0;
    }
    return 1;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Offset of the first byte of s[0..n) that does not belong to a well-formed UTF-8 sequence
 * (no overlong forms, surrogates or code points past U+10FFFF), or -1 if all is well-formed. */
static int64_t utf8_bad_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
        } else {
            return (int64_t)i;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n) return (int64_t)i; /* cut short */
            unsigned d = u[i + j];
            if (d < (j == 1 ? lo : 0x80) || d > (j == 1 ? hi : 0xBF)) return (int64_t)i;
        }
        i += k + 1;
    }
    return -1;
}

int drv_reader_next(drv_reader *r, const char **rec, size_t *len, int64_t *at, char *why,
                    size_t whylen) {
    for (;;) {
        int64_t start = r->pos;
        if (r->end >= 0 && start >= r->end) return 0;
        drv_buf_reset(&r->rec);
        int in_quotes = 0, got = 0, ended = 0;
        while (!ended) {
            int fr = fill(r);
            if (fr < 0) {
                snprintf(why, whylen, "read error at byte %" PRId64, r->pos);
                return -1;
            }
            if (fr == 0) break;
            const char *p = r->buf + r->bpos;
            size_t avail = r->blen - r->bpos, take;
            if (r->fmt == DRV_FMT_CSV) {
                for (take = 0; take < avail; take++) {
                    if (p[take] == '"')
                        in_quotes = !in_quotes;
                    else if (p[take] == '\n' && !in_quotes)
                        break;
                }
            } else {
                const char *nl = memchr(p, '\n', avail);
                take = nl ? (size_t)(nl - p) : avail;
            }
            if (take < avail) ended = 1;
            if (memchr(p, '\0', take)) {
                snprintf(why, whylen, "record at byte %" PRId64 " holds a NUL byte (binary data?)",
                         start);
                return -1;
            }
            if (drv_buf_append(&r->rec, p, take) != DRV_OK) {
                snprintf(why, whylen, "record at byte %" PRId64 " is longer than %zu bytes", start,
                         r->max);
                return -1;
            }
            got = 1;
            r->bpos += take + (size_t)ended;
            r->pos += (int64_t)(take + (size_t)ended);
        }
        if (!got) return 0;
        r->last_end = r->pos;
        char *s = r->rec.data;
        size_t n = r->rec.len;
        if (n && s[n - 1] == '\r') n--;
        if (r->fmt == DRV_FMT_LINES) {
            while (n && is_space(s[n - 1]))
                n--;
            while (n && is_space(*s))
                s++, n--;
        } else {
            size_t i = 0;
            while (i < n && is_space(s[i]))
                i++;
            if (i == n) n = 0;
        }
        if (n == 0) continue; /* empty line */
        if (n > r->max) {
            snprintf(why, whylen, "record at byte %" PRId64 " is longer than %zu bytes", start,
                     r->max);
            return -1;
        }
        /* Ids and items reach JSON (status, dead, results, HTTP bodies) and other programs'
         * arguments: bytes that are not UTF-8 are refused here, never mangled later. */
        int64_t bad = utf8_bad_at(s, n);
        if (bad >= 0) {
            snprintf(why, whylen,
                     "record at byte %" PRId64 " is not valid UTF-8 (byte %" PRId64
                     " of the file: 0x%02X); convert it first, e.g. iconv -f LATIN1 -t UTF-8",
                     start, start + (int64_t)(s - r->rec.data) + bad,
                     (unsigned)(unsigned char)s[bad]);
            return -1;
        }
        s[n] = '\0';
        *rec = s;
        *len = n;
        *at = start;
        return 1;
    }
}

/* ---- CSV ------------------------------------------------------------------------------------- */

int drv_csv_split(const char *rec, size_t len, drv_buf *store, size_t *off, int cap) {
    drv_buf_reset(store);
    int n = 0;
    size_t i = 0;
    for (;;) {
        if (n >= cap) return -1;
        off[n++] = store->len;
        if (i < len && rec[i] == '"') {
            i++;
            for (;;) {
                if (i >= len) return -1; /* unterminated quote */
                if (rec[i] == '"') {
                    if (i + 1 < len && rec[i + 1] == '"') {
                        if (drv_buf_append(store, "\"", 1)) return -1;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (drv_buf_append(store, rec + i, 1)) return -1;
                i++;
            }
            if (i < len && rec[i] != ',') return -1; /* text after a closing quote */
        } else {
            size_t j = i;
            while (j < len && rec[j] != ',')
                j++;
            if (drv_buf_append(store, rec + i, j - i)) return -1;
            i = j;
        }
        if (drv_buf_append(store, "", 1)) return -1; /* field terminator */
        if (i >= len) return n;
        i++;            /* the comma */
        if (i == len) { /* trailing comma: one more empty field */
            if (n >= cap) return -1;
            off[n++] = store->len;
            if (drv_buf_append(store, "", 1)) return -1;
            return n;
        }
    }
}

/* ---- items ----------------------------------------------------------------------------------- */

#define CSV_MAX_COLS 1024

struct drv_extract {
    drv_fmt fmt;
    char *id_field;
    char **cols; /* csv header names */
    int ncols, id_col;
    drv_buf store;
    size_t off[CSV_MAX_COLS];
};

drv_err drv_extract_new(drv_fmt fmt, const char *id_field, const char *header, size_t hlen,
                        drv_extract **out, char *why, size_t whylen) {
    drv_extract *x = calloc(1, sizeof *x);
    if (!x) return DRV_ENOMEM;
    x->fmt = fmt;
    x->id_col = -1;
    drv_buf_init(&x->store, (size_t)1 << 30);
    x->id_field = strdup(id_field ? id_field : "");
    if (!x->id_field) goto nomem;
    if (fmt == DRV_FMT_CSV) {
        int n = drv_csv_split(header, hlen, &x->store, x->off, CSV_MAX_COLS);
        if (n < 0) {
            snprintf(why, whylen, "malformed CSV header");
            drv_extract_free(x);
            return DRV_EINVAL;
        }
        x->cols = calloc((size_t)n, sizeof *x->cols);
        if (!x->cols) goto nomem;
        x->ncols = n;
        for (int i = 0; i < n; i++) {
            if (!(x->cols[i] = strdup(x->store.data + x->off[i]))) goto nomem;
            if (strcmp(x->cols[i], x->id_field) == 0 && x->id_col < 0) x->id_col = i;
        }
        if (x->id_col < 0) {
            snprintf(why, whylen, "no column \"%s\" in the CSV header \"%.*s\"", x->id_field,
                     (int)(hlen > 200 ? 200 : hlen), header);
            drv_extract_free(x);
            return DRV_EINVAL;
        }
    }
    *out = x;
    return DRV_OK;
nomem:
    drv_extract_free(x);
    return DRV_ENOMEM;
}

void drv_extract_free(drv_extract *x) {
    if (!x) return;
    for (int i = 0; i < x->ncols; i++)
        free(x->cols[i]);
    free(x->cols);
    free(x->id_field);
    drv_buf_free(&x->store);
    free(x);
}

int drv_extract_has_payload(const drv_extract *x) {
    return x->fmt != DRV_FMT_LINES;
}

static int check_id(const drv_buf *id, char *why, size_t whylen) {
    if (id->len == 0) {
        snprintf(why, whylen, "empty id");
        return -1;
    }
    if (id->len > DRV_ID_BYTES_MAX) {
        snprintf(why, whylen, "id longer than %d bytes", DRV_ID_BYTES_MAX);
        return -1;
    }
    return 0;
}

/* Whole numbers at or past 2^53 do not survive the trip through a double: 2^53 + 1 reads back
 * as 2^53, and two items would share an id. Casting past int64 is undefined besides. */
#define ID_NUM_LIMIT 9007199254740992.0

/* cJSON decodes "\u0000" into a NUL and the id string then ends there: "b\u0000c" would
 * become "b", the id of another item. Reparses the record with each "\u0000" text turned into
 * "\u0001" (the same length, decoded or literal): a longer id means the first had a NUL, at
 * byte *at (its decoded length). 1 when it had, 0 when not, -1 out of memory. Only records holding
 * the text pay. */
static int id_has_nul(drv_extract *x, const char *rec, size_t len, size_t idlen, size_t *at) {
    static const char esc[] = "\\u0000";
    if (!memmem(rec, len, esc, 6)) return 0;
    char *copy = malloc(len);
    if (!copy) return -1;
    memcpy(copy, rec, len);
    for (char *p = copy; (p = memmem(p, len - (size_t)(p - copy), esc, 6)) != NULL; p += 6)
        p[5] = '1';
    cJSON *o = cJSON_ParseWithLength(copy, len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, x->id_field);
    int nul = cJSON_IsString(v) && strlen(v->valuestring) > idlen;
    cJSON_Delete(o);
    free(copy);
    *at = idlen;
    return nul;
}

static int extract_ndjson(drv_extract *x, const char *rec, size_t len, drv_buf *id, char *why,
                          size_t whylen) {
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(rec, len, &end, 0);
    int rc = -1;
    if (!o || !cJSON_IsObject(o)) {
        snprintf(why, whylen, "not a JSON object");
        goto out;
    }
    /* cJSON stops after the first value: "{...} junk" is not one object, and its payload
     * would reach handlers as invalid JSON. */
    while (end && end < rec + len && is_space(*end))
        end++;
    if (end && end < rec + len) {
        snprintf(why, whylen, "text after the JSON object at column %zu", (size_t)(end - rec) + 1);
        goto out;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, x->id_field);
    if (!v) {
        snprintf(why, whylen, "no field \"%s\"", x->id_field);
        goto out;
    }
    if (cJSON_IsString(v)) {
        size_t at;
        int nul = id_has_nul(x, rec, len, strlen(v->valuestring), &at);
        if (nul < 0) {
            snprintf(why, whylen, "out of memory checking field \"%s\"", x->id_field);
            goto out;
        }
        if (nul) {
            snprintf(why, whylen,
                     "field \"%s\" holds an escaped NUL (\\u0000) at byte %zu of the id: ids "
                     "cannot hold NUL",
                     x->id_field, at);
            goto out;
        }
        if (drv_buf_append(id, v->valuestring, strlen(v->valuestring))) goto big;
    } else if (cJSON_IsNumber(v) && v->valuedouble > -ID_NUM_LIMIT &&
               v->valuedouble < ID_NUM_LIMIT && v->valuedouble == (double)(int64_t)v->valuedouble) {
        char num[32];
        int n = snprintf(num, sizeof num, "%" PRId64, (int64_t)v->valuedouble);
        if (drv_buf_append(id, num, (size_t)n)) goto big;
    } else {
        snprintf(why, whylen,
                 "field \"%s\" is not a string or a whole number below 2^53 in magnitude "
                 "(larger ids must be strings)",
                 x->id_field);
        goto out;
    }
    rc = check_id(id, why, whylen);
    goto out;
big:
    snprintf(why, whylen, "id longer than %d bytes", DRV_ID_BYTES_MAX);
out:
    cJSON_Delete(o);
    return rc;
}

static int extract_csv(drv_extract *x, const char *rec, size_t len, drv_buf *id, drv_buf *payload,
                       char *why, size_t whylen) {
    int n = drv_csv_split(rec, len, &x->store, x->off, CSV_MAX_COLS);
    if (n < 0) {
        snprintf(why, whylen, "malformed CSV record");
        return -1;
    }
    if (n != x->ncols) {
        snprintf(why, whylen, "%d fields where the header has %d", n, x->ncols);
        return -1;
    }
    const char *v = x->store.data + x->off[x->id_col];
    if (drv_buf_append(id, v, strlen(v))) {
        snprintf(why, whylen, "id longer than %d bytes", DRV_ID_BYTES_MAX);
        return -1;
    }
    if (check_id(id, why, whylen)) return -1;
    cJSON *o = cJSON_CreateObject();
    if (!o) return -1;
    for (int i = 0; i < n; i++)
        if (!cJSON_AddStringToObject(o, x->cols[i], x->store.data + x->off[i])) {
            cJSON_Delete(o);
            snprintf(why, whylen, "out of memory");
            return -1;
        }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    drv_err e = drv_buf_append(payload, txt, strlen(txt));
    cJSON_free(txt);
    if (e) {
        snprintf(why, whylen, "item longer than %zu bytes as JSON", payload->max);
        return -1;
    }
    return 0;
}

int drv_extract_item(drv_extract *x, const char *rec, size_t len, drv_buf *id, drv_buf *payload,
                     char *why, size_t whylen) {
    drv_buf_reset(id);
    if (payload) drv_buf_reset(payload);
    switch (x->fmt) {
    case DRV_FMT_LINES:
        if (drv_buf_append(id, rec, len)) {
            snprintf(why, whylen, "id longer than %d bytes", DRV_ID_BYTES_MAX);
            return -1;
        }
        return check_id(id, why, whylen);
    case DRV_FMT_NDJSON:
        if (extract_ndjson(x, rec, len, id, why, whylen)) return -1;
        if (payload && drv_buf_append(payload, rec, len)) {
            snprintf(why, whylen, "item longer than %zu bytes", payload->max);
            return -1;
        }
        return 0;
    case DRV_FMT_CSV:
        return extract_csv(x, rec, len, id, payload, why, whylen);
    }
    return -1;
}

/* ---- scanning -------------------------------------------------------------------------------- */

int drv_csv_read_header(FILE *f, size_t max_bytes, drv_buf *hdr, int64_t *data_start, char *why,
                        size_t whylen) {
    drv_reader *r;
    if (drv_reader_new(f, DRV_FMT_CSV, 0, -1, max_bytes, &r) != DRV_OK) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    const char *rec;
    size_t len;
    int64_t at;
    int rc = drv_reader_next(r, &rec, &len, &at, why, whylen);
    if (rc == 0) snprintf(why, whylen, "empty CSV file: expected a header line");
    if (rc == 1) {
        drv_buf_reset(hdr);
        if (drv_buf_append(hdr, rec, len)) rc = -1;
        *data_start = drv_reader_offset(r);
    }
    drv_reader_free(r);
    /* The reader buffers ahead: leave 'f' at the data's first byte for the caller. */
    if (rc == 1 && fseeko(f, (off_t)*data_start, SEEK_SET) != 0) rc = -1;
    return rc == 1 ? 0 : -1;
}

drv_err drv_scan_file(const char *path, const drv_spec *spec, drv_scan *out, char *why,
                      size_t whylen, void (*progress)(int64_t done, int64_t size)) {
    return drv_scan_file_ids(path, spec, out, why, whylen, progress, NULL);
}

drv_err drv_scan_file_ids(const char *path, const drv_spec *spec, drv_scan *out, char *why,
                          size_t whylen, void (*progress)(int64_t done, int64_t size),
                          drv_dupes *ids) {
    drv_err e = DRV_EINVAL;
    drv_scan s = {0};
    drv_reader *r = NULL;
    drv_extract *x = NULL;
    drv_buf hdr, id, payload;
    char msg[256];
    drv_buf_init(&hdr, (size_t)spec->max_item_bytes);
    drv_buf_init(&id, DRV_ID_BYTES_MAX);
    drv_buf_init(&payload, (size_t)spec->max_item_bytes);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f) {
        snprintf(why, whylen, "%s: cannot open: %s", path, strerror(errno));
        return DRV_EINVAL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s: not a regular file", path);
        goto out;
    }
    s.size = (int64_t)st.st_size;
    s.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + (int64_t)st.st_mtim.tv_nsec;
    s.inode = (int64_t)st.st_ino;
    s.device = (int64_t)st.st_dev;
    s.nparts = (int)spec->partitions;
    s.start = calloc((size_t)s.nparts, sizeof *s.start);
    s.end = calloc((size_t)s.nparts, sizeof *s.end);
    s.hash = calloc((size_t)s.nparts, sizeof *s.hash);
    if (!s.start || !s.end || !s.hash) {
        e = DRV_ENOMEM;
        goto out;
    }
    if (spec->format == DRV_FMT_CSV) {
        if (drv_csv_read_header(f, (size_t)spec->max_item_bytes, &hdr, &s.data_start, msg,
                                sizeof msg)) {
            snprintf(why, whylen, "%s: %s", path, msg);
            goto out;
        }
    }
    if ((e = drv_extract_new(spec->format, spec->id_field, hdr.data, hdr.len, &x, msg,
                             sizeof msg)) != DRV_OK) {
        snprintf(why, whylen, "%s: %s", path, msg);
        goto out;
    }
    e = DRV_EINVAL;
    if (drv_reader_new(f, spec->format, s.data_start, -1, (size_t)spec->max_item_bytes, &r)) {
        e = DRV_ENOMEM;
        goto out;
    }
    int k = 1;
    for (int p = 0; p < s.nparts; p++)
        s.hash[p] = DRV_REC_HASH_INIT;
    int64_t span = s.size - s.data_start;
    s.start[0] = s.data_start;
    time_t last = time(NULL);
    int64_t recno = 0;
    for (;;) {
        const char *rec;
        size_t len;
        int64_t at;
        int rc = drv_reader_next(r, &rec, &len, &at, msg, sizeof msg);
        if (rc < 0) {
            snprintf(why, whylen, "%s: %s", path, msg);
            goto out;
        }
        if (rc == 0) break;
        recno++;
        while (k < s.nparts &&
               at >= s.data_start + span / s.nparts * k + (span % s.nparts) * k / s.nparts)
            s.start[k++] = at;
        s.hash[k - 1] = drv_rec_hash(s.hash[k - 1], rec, len);
        if (drv_extract_item(x, rec, len, &id, &payload, msg, sizeof msg)) {
            snprintf(why, whylen, "%s: record %" PRId64 " (byte %" PRId64 "): %s", path, recno, at,
                     msg);
            goto out;
        }
        drv_err de = ids ? drv_dupes_add(ids, id.data, id.len, recno, at) : DRV_OK;
        if (de != DRV_OK) {
            snprintf(why, whylen, "%s: keeping the ids to find repeats: %s", path,
                     de == DRV_ENOMEM ? "out of memory" : "cannot write a temporary file (TMPDIR)");
            e = de;
            goto out;
        }
        s.total++;
        if (progress && time(NULL) != last) {
            last = time(NULL);
            progress(at, s.size);
        }
    }
    while (k < s.nparts)
        s.start[k++] = s.size;
    for (int p = 0; p < s.nparts; p++)
        s.end[p] = p + 1 < s.nparts ? s.start[p + 1] : s.size;
    *out = s;
    s.start = s.end = NULL;
    s.hash = NULL;
    e = DRV_OK;
out:
    drv_reader_free(r);
    drv_extract_free(x);
    drv_buf_free(&hdr);
    drv_buf_free(&id);
    drv_buf_free(&payload);
    free(s.start);
    free(s.end);
    free(s.hash);
    fclose(f);
    return e;
}

void drv_scan_free(drv_scan *s) {
    free(s->start);
    free(s->end);
    free(s->hash);
    s->start = s->end = NULL;
    s->hash = NULL;
}

drv_err drv_hash_range(const char *path, const drv_spec *spec, int64_t start, int64_t end,
                       uint64_t *out, char *why, size_t whylen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whylen, "%s: cannot open: %s", path, strerror(errno));
        return DRV_EINVAL;
    }
    drv_reader *r = NULL;
    if (fseeko(f, (off_t)start, SEEK_SET) != 0 ||
        drv_reader_new(f, spec->format, start, end, (size_t)spec->max_item_bytes, &r) != DRV_OK) {
        snprintf(why, whylen, "%s: cannot seek to byte %" PRId64, path, start);
        fclose(f);
        return DRV_EINVAL;
    }
    uint64_t h = DRV_REC_HASH_INIT;
    drv_err e = DRV_OK;
    for (;;) {
        const char *rec;
        size_t len;
        int64_t at;
        char msg[256];
        int rc = drv_reader_next(r, &rec, &len, &at, msg, sizeof msg);
        if (rc < 0) {
            snprintf(why, whylen, "%s: %s", path, msg);
            e = DRV_EINVAL;
            break;
        }
        if (rc == 0) break;
        h = drv_rec_hash(h, rec, len);
    }
    drv_reader_free(r);
    fclose(f);
    if (!e) *out = h;
    return e;
}
