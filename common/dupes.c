/* Duplicate ids of a file source (see dupes.h): an external sort of id hashes, then an exact
 * check of the records whose hashes collide. */
#include "dupes.h"

#include "buf.h"
#include "hash.h"
#include "source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ent {
    uint64_t h;
    int64_t rec, at;
} ent;

struct drv_dupes {
    ent *buf;
    size_t n;
    FILE **runs;
    size_t nruns;
};

static int ent_cmp(const void *a, const void *b) {
    const ent *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return x->rec < y->rec ? -1 : x->rec > y->rec;
}

static int off_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

drv_err drv_dupes_new(drv_dupes **out) {
    drv_dupes *d = calloc(1, sizeof *d);
    if (!d || !(d->buf = malloc(DRV_DUPES_RUN * sizeof *d->buf))) {
        free(d);
        return DRV_ENOMEM;
    }
    *out = d;
    return DRV_OK;
}

void drv_dupes_free(drv_dupes *d) {
    if (!d) return;
    for (size_t i = 0; i < d->nruns; i++)
        fclose(d->runs[i]);
    free(d->runs);
    free(d->buf);
    free(d);
}

/* Sorts the entries in memory and writes them to a temporary file of their own. */
static drv_err spill(drv_dupes *d) {
    qsort(d->buf, d->n, sizeof *d->buf, ent_cmp);
    FILE **runs = realloc(d->runs, (d->nruns + 1) * sizeof *runs);
    if (!runs) return DRV_ENOMEM;
    d->runs = runs;
    FILE *f = tmpfile();
    if (!f) return DRV_EIO;
    if (fwrite(d->buf, sizeof *d->buf, d->n, f) != d->n || fflush(f) != 0 ||
        fseeko(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return DRV_EIO;
    }
    d->runs[d->nruns++] = f;
    d->n = 0;
    return DRV_OK;
}

drv_err drv_dupes_add(drv_dupes *d, const char *id, size_t len, int64_t rec, int64_t at) {
    if (d->n == DRV_DUPES_RUN) {
        drv_err e = spill(d);
        if (e) return e;
    }
    d->buf[d->n++] = (ent){drv_fnv1a_step(DRV_REC_HASH_INIT, id, len), rec, at};
    return DRV_OK;
}

/* ---- merging the runs ------------------------------------------------------------------------ */

typedef struct cursor {
    FILE *f; /* NULL: the in-memory run */
    ent cur;
    size_t next; /* in-memory run: the index after cur */
    int live;
} cursor;

static void advance(drv_dupes *d, cursor *c) {
    if (c->f)
        c->live = fread(&c->cur, sizeof c->cur, 1, c->f) == 1;
    else if ((c->live = c->next < d->n))
        c->cur = d->buf[c->next++];
}

/* The smallest entry of the runs (a linear look: there are few runs), or 0 at the end. */
static int take(drv_dupes *d, cursor *cs, size_t k, ent *out) {
    cursor *best = NULL;
    for (size_t i = 0; i < k; i++)
        if (cs[i].live && (!best || ent_cmp(&cs[i].cur, &best->cur) < 0)) best = &cs[i];
    if (!best) return 0;
    *out = best->cur;
    advance(d, best);
    return 1;
}

/* ---- the exact check ------------------------------------------------------------------------- */

typedef struct rereader {
    const char *path;
    const drv_spec *spec;
    drv_extract *x;
    drv_buf id, payload;
} rereader;

/* The id of the record at byte 'at' of the file. */
static drv_err id_at(rereader *rr, int64_t at, char *why, size_t whylen) {
    FILE *f = fopen(rr->path, "rb");
    drv_reader *r = NULL;
    drv_err e = DRV_EIO;
    const char *rec;
    size_t len;
    int64_t got;
    char msg[256];
    if (!f) {
        snprintf(why, whylen, "%s: cannot open: %s", rr->path, strerror(errno));
        return DRV_EIO;
    }
    if (fseeko(f, (off_t)at, SEEK_SET) == 0 &&
        drv_reader_new(f, rr->spec->format, at, -1, (size_t)rr->spec->max_item_bytes, &r) ==
            DRV_OK &&
        drv_reader_next(r, &rec, &len, &got, msg, sizeof msg) == 1 &&
        drv_extract_item(rr->x, rec, len, &rr->id, &rr->payload, msg, sizeof msg) == 0)
        e = DRV_OK;
    else
        snprintf(why, whylen,
                 "%s: reading the record at byte %lld again failed (the file "
                 "changed while it was read?)",
                 rr->path, (long long)at);
    drv_reader_free(r);
    fclose(f);
    return e;
}

/* The line of each byte offset asked (1-based), in one pass over the file. */
static void lines_of(const char *path, int64_t *at, int64_t *line, int n) {
    FILE *f = fopen(path, "rb");
    if (!f) return;
    int64_t pos = 0, nl = 0;
    char buf[65536];
    size_t got;
    int done = 0;
    while (done < n && (got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; i++, pos++) {
            for (int k = 0; k < n; k++)
                if (at[k] == pos) line[k] = nl + 1, done++;
            if (buf[i] == '\n') nl++;
        }
    }
    fclose(f);
}

typedef struct distinct {
    char id[DRV_ID_BYTES_MAX + 1];
    int64_t rec, at;
} distinct;

drv_err drv_dupes_find(drv_dupes *d, const char *path, const drv_spec *spec, int64_t data_start,
                       drv_dupes_report *out, char *why, size_t whylen) {
    memset(out, 0, sizeof *out);
    drv_err e = DRV_ENOMEM;
    rereader rr = {path, spec, NULL, {0}, {0}};
    drv_buf_init(&rr.id, DRV_ID_BYTES_MAX);
    drv_buf_init(&rr.payload, (size_t)spec->max_item_bytes * 2);
    size_t k = d->nruns + 1, ngroup = 0, capgroup = 0, capdist = 0, cap_skip = 0;
    cursor *cs = calloc(k, sizeof *cs);
    ent *group = NULL;
    distinct *dist = NULL;
    if (!cs) goto out;
    if (spec->format == DRV_FMT_CSV) {
        /* The extractor needs the header: the file's first record. */
        drv_buf hdr;
        int64_t ds = 0;
        drv_buf_init(&hdr, (size_t)spec->max_item_bytes);
        FILE *f = fopen(path, "rb");
        int bad =
            !f || drv_csv_read_header(f, (size_t)spec->max_item_bytes, &hdr, &ds, why, whylen) != 0;
        if (f) fclose(f);
        if (!bad)
            e = drv_extract_new(spec->format, spec->id_field, hdr.data, hdr.len, &rr.x, why,
                                whylen);
        drv_buf_free(&hdr);
        if (bad) e = DRV_EIO;
        if (e) goto out;
    } else if ((e = drv_extract_new(spec->format, spec->id_field, NULL, 0, &rr.x, why, whylen)))
        goto out;
    (void)data_start;
    qsort(d->buf, d->n, sizeof *d->buf, ent_cmp);
    for (size_t i = 0; i < d->nruns; i++)
        cs[i].f = d->runs[i];
    for (size_t i = 0; i < k; i++)
        advance(d, &cs[i]);
    ent x;
    int more = take(d, cs, k, &x);
    while (more) {
        /* One group: every entry with this hash, in file order. */
        ngroup = 0;
        uint64_t h = x.h;
        do {
            if (ngroup == capgroup) {
                size_t nc = capgroup ? capgroup * 2 : 16;
                ent *g = realloc(group, nc * sizeof *g);
                if (g) group = g;
                if (!g) {
                    e = DRV_ENOMEM;
                    goto out;
                }
                capgroup = nc;
            }
            group[ngroup++] = x;
        } while ((more = take(d, cs, k, &x)) && x.h == h);
        if (ngroup < 2) continue;
        size_t nd = 0;
        for (size_t g = 0; g < ngroup; g++) {
            if ((e = id_at(&rr, group[g].at, why, whylen))) goto out;
            size_t m = 0;
            while (m < nd && !(strlen(dist[m].id) == rr.id.len &&
                               memcmp(dist[m].id, rr.id.data, rr.id.len) == 0))
                m++;
            if (m == nd) { /* a first, or a hash collision of another id */
                if (nd == capdist) {
                    size_t nc = capdist ? capdist * 2 : 4;
                    distinct *dd = realloc(dist, nc * sizeof *dd);
                    if (!dd) {
                        e = DRV_ENOMEM;
                        goto out;
                    }
                    dist = dd, capdist = nc;
                }
                memcpy(dist[nd].id, rr.id.data, rr.id.len);
                dist[nd].id[rr.id.len] = '\0';
                dist[nd].rec = group[g].rec, dist[nd].at = group[g].at;
                nd++;
                continue;
            }
            if ((size_t)out->count == cap_skip) {
                cap_skip = cap_skip ? cap_skip * 2 : 64;
                int64_t *s = realloc(out->skip, cap_skip * sizeof *s);
                if (!s) {
                    e = DRV_ENOMEM;
                    goto out;
                }
                out->skip = s;
            }
            out->skip[out->count++] = group[g].at;
            /* Keep the DRV_DUPES_SHOW earliest repeats in file order. */
            drv_dupe dp = {.rec = group[g].rec,
                           .at = group[g].at,
                           .first_rec = dist[m].rec,
                           .first_at = dist[m].at};
            memcpy(dp.id, dist[m].id, sizeof dp.id);
            int pos = out->nshown;
            while (pos > 0 && out->shown[pos - 1].rec > dp.rec)
                pos--;
            if (pos < DRV_DUPES_SHOW) {
                int last = out->nshown < DRV_DUPES_SHOW ? out->nshown : DRV_DUPES_SHOW - 1;
                memmove(&out->shown[pos + 1], &out->shown[pos], (size_t)(last - pos) * sizeof dp);
                out->shown[pos] = dp;
                if (out->nshown < DRV_DUPES_SHOW) out->nshown++;
            }
        }
    }
    if (out->count) qsort(out->skip, (size_t)out->count, sizeof *out->skip, off_cmp);
    int64_t at[2 * DRV_DUPES_SHOW], line[2 * DRV_DUPES_SHOW] = {0};
    for (int i = 0; i < out->nshown; i++)
        at[2 * i] = out->shown[i].at, at[2 * i + 1] = out->shown[i].first_at;
    lines_of(path, at, line, 2 * out->nshown);
    for (int i = 0; i < out->nshown; i++)
        out->shown[i].line = line[2 * i], out->shown[i].first_line = line[2 * i + 1];
    e = DRV_OK;
out:
    if (e == DRV_ENOMEM) snprintf(why, whylen, "out of memory");
    if (e) drv_dupes_report_free(out);
    drv_extract_free(rr.x);
    drv_buf_free(&rr.id);
    drv_buf_free(&rr.payload);
    free(cs);
    free(group);
    free(dist);
    return e;
}

void drv_dupes_report_free(drv_dupes_report *r) {
    free(r->skip);
    r->skip = NULL;
}
