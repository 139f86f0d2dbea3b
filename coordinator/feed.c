/* Feeding partitions from a job's source, a chunk at a time. */
#include "feed.h"

#include "clock.h"
#include "hash.h"
#include "log.h"
#include "pg.h"
#include "source.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FEED_CHUNK DRV_FEED_CHUNK /* common/shared.def */

/* Per partition: an open reader positioned at 'pos' (file sources only). */
#define SKIP_WINDOW 1024

typedef struct part_src {
    FILE *f;
    drv_reader *r;
    int64_t pos;  /* byte offset the reader will read next; -1 when not open */
    int verified; /* its records matched the hash taken at submit (this process) */
    /* Repeats to pass over (submit --dedupe first): a window of PREFIX{J}:skip from where the
     * reader is, reloaded when used up if it was full. */
    int64_t skip[SKIP_WINDOW];
    size_t nskip, iskip;
    int skip_loaded, skip_more;
} part_src;

struct drv_feeder {
    const drv_job *job;
    drv_extract *x;
    part_src *parts;
    int nparts;              /* entries in parts (grows with drv_feeder_grow) */
    drv_buf *ids, *payloads; /* FEED_CHUNK buffers each, reused */
    drv_feed_item *items;
    /* The file's fingerprint at submit (drv_feeder_expect); fp_n 0: none (an older job). */
    int64_t fp_size, fp_mtime_ns, fp_inode;
    uint64_t *fp_hash;
    int fp_n;
    int64_t dupes; /* repeats kept first-wins (the job hash's "dupes"); -1: not read yet */
    drv_pgsrc *pg; /* a postgres source (feed_pg.c) */
};

static void close_part(part_src *ps) {
    drv_reader_free(ps->r);
    if (ps->f) fclose(ps->f);
    ps->r = NULL;
    ps->f = NULL;
    ps->pos = -1;
    ps->skip_loaded = 0;
}

/* Whether the record at byte 'at' of partition p is a repeat to pass over. 0 or 1; -1 with
 * 'why' when Redis cannot say. */
static int skip_record(drv_feeder *f, drv_queue *q, int p, const drv_part_stat *st, int64_t at,
                       char *why, size_t whylen) {
    part_src *ps = &f->parts[p];
    if (f->dupes <= 0) return 0;
    for (;;) {
        while (ps->iskip < ps->nskip && ps->skip[ps->iskip] < at)
            ps->iskip++;
        if (ps->iskip < ps->nskip) return ps->skip[ps->iskip] == at ? (ps->iskip++, 1) : 0;
        if (ps->skip_loaded && !ps->skip_more) return 0;
        drv_err e =
            drv_queue_skip_range(q, f->job->id, at, st->end, ps->skip, SKIP_WINDOW, &ps->nskip);
        if (e) {
            snprintf(why, whylen, "reading the repeats to pass over: %s", drv_queue_strerror(q, e));
            return -1;
        }
        ps->iskip = 0;
        ps->skip_loaded = 1;
        ps->skip_more = ps->nskip == SKIP_WINDOW;
        if (!ps->nskip) return 0;
    }
}

/* A file job whose repeated ids are kept first-wins: its list of repeats must be whole before
 * anything is fed (submit writes it right after the job). */
static drv_err check_dupes(drv_feeder *f, drv_queue *q, char *why, size_t whylen) {
    if (f->dupes >= 0) return DRV_OK;
    char *v = NULL;
    int64_t have = 0;
    drv_err e = drv_queue_job_field(q, f->job->id, "dupes", &v);
    int64_t want = v ? atoll(v) : 0;
    free(v);
    if (!e && want > 0) e = drv_queue_skip_count(q, f->job->id, &have);
    if (e) {
        snprintf(why, whylen, "%s", drv_queue_strerror(q, e));
        return e;
    }
    if (want > 0 && have != want) {
        snprintf(why, whylen,
                 "the job's list of repeated ids to pass over holds %" PRId64 " of %" PRId64
                 " (was its submit stopped while writing it? submit again with --replace)",
                 have, want);
        return DRV_EINVAL;
    }
    f->dupes = want;
    return DRV_OK;
}

void drv_feeder_free(drv_feeder *f) {
    if (!f) return;
    for (int p = 0; f->parts && p < f->nparts; p++)
        close_part(&f->parts[p]);
    for (int i = 0; f->ids && i < FEED_CHUNK; i++) {
        drv_buf_free(&f->ids[i]);
        drv_buf_free(&f->payloads[i]);
    }
    drv_extract_free(f->x);
    drv_pg_free(f->pg);
    free(f->fp_hash);
    free(f->parts);
    free(f->ids);
    free(f->payloads);
    free(f->items);
    free(f);
}

drv_err drv_feeder_open(const drv_job *job, drv_feeder **out, char *why, size_t whylen) {
    drv_feeder *f = calloc(1, sizeof *f);
    if (!f) return DRV_ENOMEM;
    f->job = job;
    f->dupes = -1;
    f->parts = calloc((size_t)job->partitions, sizeof *f->parts);
    f->ids = calloc(FEED_CHUNK, sizeof *f->ids);
    f->payloads = calloc(FEED_CHUNK, sizeof *f->payloads);
    f->items = calloc(FEED_CHUNK, sizeof *f->items);
    if (!f->parts || !f->ids || !f->payloads || !f->items) goto nomem;
    f->nparts = job->partitions;
    for (int p = 0; p < job->partitions; p++)
        f->parts[p].pos = -1;
    for (int i = 0; i < FEED_CHUNK; i++) {
        drv_buf_init(&f->ids[i], DRV_ID_BYTES_MAX);
        drv_buf_init(&f->payloads[i], (size_t)job->spec.max_item_bytes * 2);
    }
    if (job->spec.source == DRV_SRC_PG) {
        drv_err e = drv_pg_open(job, &f->pg, why, whylen);
        if (e) {
            drv_feeder_free(f);
            return e;
        }
    }
    if (job->spec.source == DRV_SRC_FILE) {
        drv_buf hdr;
        drv_buf_init(&hdr, (size_t)job->spec.max_item_bytes);
        int64_t data_start = 0;
        FILE *fp = fopen(job->spec.path, "rb");
        if (!fp) {
            snprintf(why, whylen, "%s: cannot open: %s", job->spec.path, strerror(errno));
            drv_buf_free(&hdr);
            drv_feeder_free(f);
            return DRV_EINVAL;
        }
        int bad = job->spec.format == DRV_FMT_CSV &&
                  drv_csv_read_header(fp, (size_t)job->spec.max_item_bytes, &hdr, &data_start, why,
                                      whylen) != 0;
        fclose(fp);
        drv_err e = bad ? DRV_EINVAL
                        : drv_extract_new(job->spec.format, job->spec.id_field, hdr.data, hdr.len,
                                          &f->x, why, whylen);
        drv_buf_free(&hdr);
        if (e != DRV_OK) {
            drv_feeder_free(f);
            return e;
        }
    }
    *out = f;
    return DRV_OK;
nomem:
    drv_feeder_free(f);
    return DRV_ENOMEM;
}

drv_err drv_feeder_grow(drv_feeder *f, int nparts) {
    if (nparts <= f->nparts) return DRV_OK;
    part_src *np = realloc(f->parts, sizeof *np * (size_t)nparts);
    if (!np) return DRV_ENOMEM;
    for (int p = f->nparts; p < nparts; p++)
        np[p] = (part_src){.pos = -1};
    f->parts = np;
    f->nparts = nparts;
    return DRV_OK;
}

static drv_err fill_range(drv_feeder *f, drv_queue *q, int p, drv_part_stat *st, int64_t want,
                          int64_t *fed) {
    int64_t cur = strtoll(st->cursor, NULL, 10);
    while (want > 0 && cur <= st->end) {
        int64_t n = st->end - cur + 1;
        if (n > want) n = want;
        if (n > FEED_CHUNK) n = FEED_CHUNK;
        char expect[32], next[32];
        snprintf(expect, sizeof expect, "%" PRId64, cur);
        snprintf(next, sizeof next, "%" PRId64, cur + n);
        for (int64_t i = 0; i < n; i++) {
            drv_buf *b = &f->ids[i];
            char num[24];
            int len = snprintf(num, sizeof num, "%" PRId64, cur + i);
            drv_buf_reset(b);
            if (drv_buf_append(b, num, (size_t)len)) return DRV_ENOMEM;
            f->items[i] = (drv_feed_item){b->data, b->len, NULL, 0};
        }
        int last = cur + n > st->end;
        drv_err e =
            drv_queue_feed(q, f->job->id, p, expect, next, last, f->items, (size_t)n, &st->pending);
        if (e) return e;
        memcpy(st->cursor, next, sizeof next);
        st->exhausted = last;
        cur += n;
        want -= n;
        *fed += n;
    }
    return DRV_OK;
}

drv_err drv_feeder_expect(drv_feeder *f, int64_t size, int64_t mtime_ns, int64_t inode,
                          const uint64_t *hash, int n) {
    uint64_t *h = malloc(sizeof *h * (size_t)(n > 0 ? n : 1));
    if (!h) return DRV_ENOMEM;
    memcpy(h, hash, sizeof *h * (size_t)n);
    free(f->fp_hash);
    f->fp_hash = h;
    f->fp_n = n;
    f->fp_size = size, f->fp_mtime_ns = mtime_ns, f->fp_inode = inode;
    return DRV_OK;
}

/* The file is still the one submit scanned: same size, modification time and inode. Cheap (a
 * stat), so it runs before every chunk is fed. */
static drv_err check_stat(drv_feeder *f, char *why, size_t whylen) {
    if (!f->fp_n) return DRV_OK;
    const char *path = f->job->spec.path;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(why, whylen, "file %s changed since submit: %s", path, strerror(errno));
        return DRV_EINVAL;
    }
    int64_t mt = (int64_t)sb.st_mtim.tv_sec * 1000000000 + (int64_t)sb.st_mtim.tv_nsec;
    if ((int64_t)sb.st_size != f->fp_size)
        snprintf(why, whylen, "file %s changed since submit: size %" PRId64 " -> %" PRId64, path,
                 f->fp_size, (int64_t)sb.st_size);
    else if ((int64_t)sb.st_ino != f->fp_inode)
        snprintf(why, whylen,
                 "file %s changed since submit: inode %" PRId64 " -> %" PRId64
                 " (replaced by another file)",
                 path, f->fp_inode, (int64_t)sb.st_ino);
    else if (mt != f->fp_mtime_ns)
        snprintf(why, whylen,
                 "file %s changed since submit: modified (mtime %" PRId64 " -> %" PRId64 " ns)",
                 path, f->fp_mtime_ns, mt);
    else
        return DRV_OK;
    return DRV_EINVAL;
}

/* Before the first feed of partition p by this process: its records hash as at submit (a
 * rewrite that kept size and mtime). Reads the partition once. */
static drv_err check_hash(drv_feeder *f, int p, const drv_part_stat *st, char *why, size_t whylen) {
    part_src *ps = &f->parts[p];
    if (ps->verified || p >= f->fp_n) return DRV_OK;
    uint64_t h;
    drv_err e =
        drv_hash_range(f->job->spec.path, &f->job->spec, st->start, st->end, &h, why, whylen);
    if (e) return e;
    if (h != f->fp_hash[p]) {
        snprintf(why, whylen,
                 "file %s changed since submit: the records of partition %d (bytes %" PRId64
                 "..%" PRId64 ") differ (hash %016" PRIx64 ", was %016" PRIx64 ")",
                 f->job->spec.path, p, st->start, st->end, h, f->fp_hash[p]);
        return DRV_EINVAL;
    }
    ps->verified = 1;
    return DRV_OK;
}

static drv_err open_part(drv_feeder *f, int p, int64_t pos, int64_t end, char *why, size_t whylen) {
    part_src *ps = &f->parts[p];
    close_part(ps);
    ps->f = fopen(f->job->spec.path, "rb");
    if (!ps->f) {
        snprintf(why, whylen, "%s: cannot open: %s", f->job->spec.path, strerror(errno));
        return DRV_EINVAL;
    }
    if (fseeko(ps->f, (off_t)pos, SEEK_SET) != 0 ||
        drv_reader_new(ps->f, f->job->spec.format, pos, end, (size_t)f->job->spec.max_item_bytes,
                       &ps->r) != DRV_OK) {
        snprintf(why, whylen, "%s: cannot seek to byte %" PRId64, f->job->spec.path, pos);
        close_part(ps);
        return DRV_EINVAL;
    }
    ps->pos = pos;
    return DRV_OK;
}

static drv_err fill_file(drv_feeder *f, drv_queue *q, int p, drv_part_stat *st, int64_t want,
                         int64_t *fed, char *why, size_t whylen) {
    part_src *ps = &f->parts[p];
    int64_t cur = strtoll(st->cursor, NULL, 10);
    drv_err e;
    if ((e = check_stat(f, why, whylen)) || (e = check_hash(f, p, st, why, whylen)) ||
        (e = check_dupes(f, q, why, whylen))) {
        close_part(ps);
        return e;
    }
    /* The reader is only trusted where Redis says the cursor is. */
    if (ps->pos != cur && (e = open_part(f, p, cur, st->end, why, whylen))) return e;
    int has_payload = drv_extract_has_payload(f->x);
    while (want > 0) {
        size_t n = 0;
        int end = 0;
        while (n < FEED_CHUNK && (int64_t)n < want) {
            const char *rec;
            size_t len;
            int64_t at;
            char msg[512];
            int rc = drv_reader_next(ps->r, &rec, &len, &at, msg, sizeof msg);
            if (rc < 0) {
                snprintf(why, whylen, "%s: %s", f->job->spec.path, msg);
                close_part(ps);
                return DRV_EINVAL;
            }
            if (rc == 0) {
                end = 1;
                break;
            }
            int skip = skip_record(f, q, p, st, at, why, whylen);
            if (skip < 0) {
                close_part(ps);
                return DRV_EIO;
            }
            if (skip) continue; /* a repeat: the cursor passes it with the chunk */
            if (drv_extract_item(f->x, rec, len, &f->ids[n], &f->payloads[n], msg, sizeof msg)) {
                snprintf(why, whylen, "%s: byte %" PRId64 ": %s (the file changed since submit?)",
                         f->job->spec.path, at, msg);
                close_part(ps);
                return DRV_EINVAL;
            }
            f->items[n] = (drv_feed_item){f->ids[n].data, f->ids[n].len,
                                          has_payload ? f->payloads[n].data : NULL,
                                          has_payload ? f->payloads[n].len : 0};
            n++;
        }
        int64_t next_pos = drv_reader_offset(ps->r);
        char expect[32], next[32];
        snprintf(expect, sizeof expect, "%" PRId64, cur);
        snprintf(next, sizeof next, "%" PRId64, next_pos);
        if (n == 0 && !end) break;
        /* What was read is fed only if the file did not change while it was read. */
        if ((e = check_stat(f, why, whylen))) {
            close_part(ps);
            return e;
        }
        e = drv_queue_feed(q, f->job->id, p, expect, next, end, f->items, n, &st->pending);
        if (e) {
            /* Whether or not the script ran, Redis's cursor is the truth: re-open there. */
            close_part(ps);
            return e;
        }
        ps->pos = cur = next_pos;
        memcpy(st->cursor, next, sizeof next);
        st->exhausted = end;
        *fed += (int64_t)n;
        want -= (int64_t)n;
        if (end) {
            close_part(ps);
            break;
        }
    }
    return DRV_OK;
}

drv_err drv_feeder_fill(drv_feeder *f, drv_queue *q, int p, drv_part_stat *st, int64_t want,
                        int64_t *fed, char *why, size_t whylen) {
    if (st->exhausted || want <= 0) return DRV_OK;
    switch (f->job->spec.source) {
    case DRV_SRC_RANGE:
        return fill_range(f, q, p, st, want, fed);
    case DRV_SRC_FILE:
        return fill_file(f, q, p, st, want, fed, why, whylen);
    case DRV_SRC_PG:
        return drv_pg_fill(f->pg, q, p, st, want, fed, why, whylen);
    case DRV_SRC_STDIN: /* fed by the submitting process */
    case DRV_SRC_HTTP:  /* fed a page at a time (feed_http.c) */
        return DRV_OK;
    }
    return DRV_OK;
}

/* ---- standard input -------------------------------------------------------------------------- */

/* A partition's share of standard input. Its cursor is "N:H": the first N records of the
 * input that land in this partition are fed, and H (16 hex digits) is drv_rec_hash over them,
 * in order ("0" before any). Fed again with the same input, a feeder skips those N by position
 * and checks H once it has read them, so a resumed feed neither feeds twice nor takes other
 * input for the same. (A cursor "N" without H, from before the hash, is resumed unchecked.) */
typedef struct stream_part {
    drv_buf *ids, *payloads;
    size_t n, bytes;
    int64_t count; /* records fed so far (the cursor's N) */
    char cur[64];  /* the cursor as it is in Redis (the compare-and-set's guard) */
    int64_t skip;  /* records fed before this feeder started: read again, not fed */
    int64_t seen;  /* records of this partition read so far */
    uint64_t h;    /* drv_rec_hash of the records read so far (fed, skipped or buffered) */
    uint64_t want; /* the cursor's H: the hash of the first 'skip' records */
    int has_want;
    int64_t pending;
} stream_part;

#define STREAM_FLUSH_BYTES (4u << 20)

/* Reads a stdin cursor "N" or "N:H" into the partition. -1 if it is neither. */
static int stream_cursor(stream_part *sp, const char *cur) {
    char *end;
    errno = 0;
    long long n = strtoll(cur, &end, 10);
    if (errno || n < 0 || end == cur) return -1;
    sp->count = sp->skip = n;
    sp->h = DRV_REC_HASH_INIT;
    snprintf(sp->cur, sizeof sp->cur, "%s", cur);
    if (*end == '\0') return 0;
    char *hend;
    if (*end != ':' || strlen(end + 1) != 16) return -1;
    sp->want = strtoull(end + 1, &hend, 16);
    if (*hend) return -1;
    sp->has_want = 1;
    return 0;
}

/* Waits until partition p's pending list is under the window, then feeds its buffer. */
static drv_err stream_flush(drv_queue *q, const drv_job *job, int p, stream_part *sp, int last,
                            drv_feed_item *items, char *why, size_t whylen) {
    while (sp->pending >= job->spec.window) {
        drv_part_stat st;
        drv_err e = drv_queue_reap(q, job->id, p, &st);
        if (e) {
            snprintf(why, whylen, "%s", drv_queue_strerror(q, e));
            return e;
        }
        sp->pending = st.pending;
        if (sp->pending >= job->spec.window) drv_sleep_ms(20);
    }
    for (size_t i = 0; i < sp->n; i++)
        items[i] = (drv_feed_item){sp->ids[i].data, sp->ids[i].len,
                                   sp->payloads ? sp->payloads[i].data : NULL,
                                   sp->payloads ? sp->payloads[i].len : 0};
    char next[64];
    int64_t count = sp->count + (int64_t)sp->n;
    if (count)
        snprintf(next, sizeof next, "%" PRId64 ":%016" PRIx64, count, sp->h);
    else
        snprintf(next, sizeof next, "0");
    drv_err e = drv_queue_feed(q, job->id, p, sp->cur, next, last, items, sp->n, &sp->pending);
    if (e) {
        snprintf(why, whylen, "feeding partition %d: %s", p, drv_queue_strerror(q, e));
        return e;
    }
    sp->count = count;
    memcpy(sp->cur, next, sizeof next);
    sp->n = sp->bytes = 0;
    return DRV_OK;
}

drv_err drv_feed_stream(drv_queue *q, const drv_job *job, FILE *in, int quiet, int *differs,
                        char *why, size_t whylen) {
    int P = job->partitions;
    int payload = job->spec.format != DRV_FMT_LINES;
    drv_err e = DRV_ENOMEM;
    drv_reader *r = NULL;
    drv_extract *x = NULL;
    drv_buf hdr;
    drv_buf_init(&hdr, (size_t)job->spec.max_item_bytes);
    int64_t resumed = 0, skipped = 0;
    *differs = 0;
    stream_part *sp = calloc((size_t)P, sizeof *sp);
    drv_feed_item *items = calloc(FEED_CHUNK, sizeof *items);
    drv_part_stat *st = calloc((size_t)P, sizeof *st);
    if (!sp || !items || !st) goto out;
    if ((e = drv_queue_stats(q, job->id, P, st))) {
        snprintf(why, whylen, "%s", drv_queue_strerror(q, e));
        goto out;
    }
    for (int p = 0; p < P; p++) {
        sp[p].ids = calloc(FEED_CHUNK, sizeof(drv_buf));
        sp[p].payloads = payload ? calloc(FEED_CHUNK, sizeof(drv_buf)) : NULL;
        if (!sp[p].ids || (payload && !sp[p].payloads)) goto out;
        for (int i = 0; i < FEED_CHUNK; i++) {
            drv_buf_init(&sp[p].ids[i], DRV_ID_BYTES_MAX);
            if (payload) drv_buf_init(&sp[p].payloads[i], (size_t)job->spec.max_item_bytes * 2);
        }
        if (stream_cursor(&sp[p], st[p].cursor) != 0) {
            snprintf(why, whylen, "partition %d: cursor \"%s\" is not a stdin cursor (N or N:HASH)",
                     p, st[p].cursor);
            e = DRV_ECORRUPT;
            goto out;
        }
        sp[p].pending = st[p].pending;
        resumed += sp[p].skip;
    }
    if (resumed && !quiet)
        drv_info("job %s: %" PRId64 " records were fed before: reading them again to check and "
                 "skip them",
                 job->id, resumed);
    int64_t header_end = 0;
    if (job->spec.format == DRV_FMT_CSV &&
        drv_csv_read_header(in, (size_t)job->spec.max_item_bytes, &hdr, &header_end, why, whylen) !=
            0) {
        e = DRV_EINVAL;
        goto out;
    }
    if ((e = drv_extract_new(job->spec.format, job->spec.id_field, hdr.data, hdr.len, &x, why,
                             whylen)))
        goto out;
    if ((e = drv_reader_new(in, job->spec.format, header_end, -1, (size_t)job->spec.max_item_bytes,
                            &r)))
        goto out;
    int64_t total = 0, last_report = drv_now_ms();
    for (;;) {
        const char *rec;
        size_t len;
        int64_t at;
        char msg[512];
        int rc = drv_reader_next(r, &rec, &len, &at, msg, sizeof msg);
        if (rc < 0) {
            snprintf(why, whylen, "standard input: %s", msg);
            e = DRV_EINVAL;
            goto out;
        }
        if (rc == 0) break;
        drv_buf id, pl;
        drv_buf_init(&id, DRV_ID_BYTES_MAX);
        drv_buf_init(&pl, (size_t)job->spec.max_item_bytes * 2);
        if (drv_extract_item(x, rec, len, &id, payload ? &pl : NULL, msg, sizeof msg)) {
            snprintf(why, whylen, "standard input, byte %" PRId64 ": %s", at, msg);
            drv_buf_free(&id);
            drv_buf_free(&pl);
            e = DRV_EINVAL;
            goto out;
        }
        int p = drv_partition_of(id.data, id.len, P);
        stream_part *s = &sp[p];
        total++;
        s->h = drv_rec_hash(s->h, rec, len);
        if (s->seen++ < s->skip) {
            /* Fed before: checked against the cursor's hash once all of them are read. */
            skipped++;
            if (s->seen == s->skip && s->has_want && s->h != s->want) {
                snprintf(why, whylen,
                         "standard input is not what was fed to job %s before: partition %d was "
                         "fed %" PRId64 " records, and this input's first %" PRId64
                         " for it differ (a record changed, moved or was added at or before "
                         "record %" PRId64 ", byte %" PRId64 ", id \"%.*s\"); feed the same "
                         "input in the same order, or submit with --replace to start over",
                         job->id, p, s->skip, s->skip, total, at, (int)id.len, id.data);
                *differs = 1;
                drv_buf_free(&id);
                drv_buf_free(&pl);
                e = DRV_EINVAL;
                goto out;
            }
            drv_buf_free(&id);
            drv_buf_free(&pl);
            continue;
        }
        /* Swap the filled buffers into the partition's slot: no copy. */
        drv_buf tmp = s->ids[s->n];
        s->ids[s->n] = id;
        drv_buf_free(&tmp);
        if (payload) {
            tmp = s->payloads[s->n];
            s->payloads[s->n] = pl;
            drv_buf_free(&tmp);
        } else {
            drv_buf_free(&pl);
        }
        s->bytes += len;
        s->n++;
        if (s->n == FEED_CHUNK || s->bytes >= STREAM_FLUSH_BYTES)
            if ((e = stream_flush(q, job, p, s, 0, items, why, whylen))) goto out;
        if (!quiet && drv_now_ms() - last_report >= 2000) {
            last_report = drv_now_ms();
            drv_info("job %s: %" PRId64 " items read from standard input", job->id, total);
        }
    }
    for (int p = 0; p < P; p++) {
        if (sp[p].seen < sp[p].skip) {
            snprintf(why, whylen,
                     "standard input is not what was fed to job %s before: it ended after %" PRId64
                     " records, but partition %d had been fed %" PRId64 " and this input has "
                     "only %" PRId64 " for it; feed the same input, or submit with --replace to "
                     "start over",
                     job->id, total, p, sp[p].skip, sp[p].seen);
            *differs = 1;
            e = DRV_EINVAL;
            goto out;
        }
    }
    for (int p = 0; p < P; p++)
        if ((e = stream_flush(q, job, p, &sp[p], 1, items, why, whylen))) goto out;
    {
        int64_t fed_all = 0;
        for (int p = 0; p < P; p++)
            fed_all += sp[p].count;
        char t[32];
        snprintf(t, sizeof t, "%" PRId64, fed_all);
        const char *kv[] = {"total", t, NULL};
        if ((e = drv_queue_job_note_if(q, job->id, job->created_ms, kv))) {
            snprintf(why, whylen, "%s", drv_queue_strerror(q, e));
            goto out;
        }
        if (!quiet)
            drv_info("job %s: standard input ended after %" PRId64 " items (%" PRId64
                     " of them fed before, skipped)",
                     job->id, total, skipped);
    }
out:
    if (e == DRV_ENOMEM) snprintf(why, whylen, "out of memory");
    drv_reader_free(r);
    drv_extract_free(x);
    drv_buf_free(&hdr);
    for (int p = 0; sp && p < P; p++) {
        for (int i = 0; sp[p].ids && i < FEED_CHUNK; i++)
            drv_buf_free(&sp[p].ids[i]);
        for (int i = 0; sp[p].payloads && i < FEED_CHUNK; i++)
            drv_buf_free(&sp[p].payloads[i]);
        free(sp[p].ids);
        free(sp[p].payloads);
    }
    free(sp);
    free(items);
    free(st);
    return e;
}
