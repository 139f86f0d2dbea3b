/* drover submit: validate a job, split its source into partitions, register it. */
/* realpath() is an XSI function. */
#define _XOPEN_SOURCE 700
#include "coord.h"

#include "cli.h"
#include "clock.h"
#include "log.h"
#include "pg.h"
#include "source.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const drv_cmd_doc doc = {
    "drover submit [SPEC.json] [--id J] (--range A..B | --file PATH | --source - |\n"
    "              --postgres DSN --table T --key K) [OPTIONS]",
    "Validates a job, splits its source into partitions and registers it in Redis, then prints\n"
    "the job id alone on stdout. A spec file and flags can be combined: flags win. Nothing is\n"
    "written to Redis when the spec is wrong (exit 2). With --source - the items are read from\n"
    "standard input and fed as they come (this command runs until the input ends). An\n"
    "interrupted stdin feed resumes: pipe the same input, in the same order, into the same\n"
    "command (same id, no --replace); the records fed before are read again, checked and\n"
    "skipped, and input that differs from what was fed is refused (exit 2) naming the record.\n"
    "While it feeds, the job hash holds its heartbeat (drover status: \"feeder lost N s ago\").\n"
    "With --postgres the table is checked first (it, its key and columns exist, the key has a\n"
    "unique index, the --where condition plans) and the coordinator walks it by key, each row\n"
    "an item (its JSON), resuming after the last key fed; give the DSN as \"${NAME}\" so its\n"
    "password stays in the environment of submit and drover run, never in Redis.",
    "  drover submit --id backfill --range 1..10000000 --partitions 16\n"
    "  drover submit --id rescore --file users.csv --format csv --id-field user_id\n"
    "  drover submit --id inv --postgres '${DATABASE_URL}' --table invoices --key id \\\n"
    "      --where 'fee_fixed = false' --columns id,email\n"
    "  psql -Atc 'select id from invoices' | drover submit --id inv --source -\n"
    "  drover submit job.json --replace\n"
    "  drover submit --id notify --range 1..50000 --rate 50 --max-in-flight 20"};

/* Splits [a, b] into nparts contiguous sub-ranges of (nearly) equal size. */
static void split_range(const drv_spec *s, drv_part_init *parts) {
    uint64_t total = (uint64_t)(s->range_end - s->range_start) + 1;
    uint64_t base = total / (uint64_t)s->partitions, rem = total % (uint64_t)s->partitions;
    int64_t next = s->range_start;
    for (int p = 0; p < s->partitions; p++) {
        uint64_t n = base + ((uint64_t)p < rem);
        parts[p].start = next;
        parts[p].end = next + (int64_t)n - 1;
        parts[p].exhausted = n == 0;
        snprintf(parts[p].cursor, sizeof parts[p].cursor, "%" PRId64, next);
        next += (int64_t)n;
    }
}

static void scan_progress(int64_t done, int64_t size) {
    fprintf(stderr, "drover: scanning source: %.0f%% of %" PRId64 " bytes\n",
            size ? 100.0 * (double)done / (double)size : 100.0, size);
}

static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= (1u << 24)) { /* a spec over 16 MiB is not a spec */
            free(buf);
            buf = NULL;
            errno = EFBIG;
            break;
        }
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

#define FIELDS_MAX 32

/* What the command line asked for. The spec's own fields come from its table (common/spec.h):
 * one flag per field, in vals[] by row. */
typedef struct submit_args {
    drv_cli cli;
    drv_redis_cfg cfg;
    const char *range, *file, *source, *format, *id_field;
    const char *pg_dsn, *pg_table, *pg_key, *pg_where, *pg_columns, *pg_query;
    int pg_allow_seqscan;
    const char *vals[FIELDS_MAX];
    int replace, quiet;
    char *pos[1];
    int npos;
} submit_args;

/* The flags: connection, the spec table's fields (the source's own where its row is), then
 * the command's. Returns how many options were written (with the terminating row). */
static int build_opts(submit_args *a, drv_opt *opts, char (*help)[256]) {
    const drv_opt cli[] = {DRV_CLI_OPTS(&a->cli)};
    const drv_opt source[] = {
        {"range", NULL, DRV_OPT_STR, NULL, "A..B", "integer ids A to B inclusive", 0, 0, &a->range},
        {"file", NULL, DRV_OPT_STR, NULL, "PATH", "a file of items (- for standard input)", 0, 0,
         &a->file},
        {"source", NULL, DRV_OPT_STR, NULL, "-", "read items from standard input", 0, 0,
         &a->source},
        {"format", NULL, DRV_OPT_STR, NULL, "FMT", "lines (default), ndjson or csv", 0, 0,
         &a->format},
        {"id-field", NULL, DRV_OPT_STR, NULL, "F", "the NDJSON field or CSV column holding each id",
         0, 0, &a->id_field},
        {"postgres", NULL, DRV_OPT_STR, NULL, "DSN",
         "a PostgreSQL table: the libpq DSN, \"${NAME}\" from the environment (no literal "
         "password)",
         0, 0, &a->pg_dsn},
        {"table", NULL, DRV_OPT_STR, NULL, "T", "with --postgres: the table", 0, 0, &a->pg_table},
        {"query", NULL, DRV_OPT_STR, NULL, "SQL",
         "with --postgres, instead of --table: a SELECT whose first column is the (unique) key", 0,
         0, &a->pg_query},
        {"key", NULL, DRV_OPT_STR, NULL, "K",
         "with --postgres: its unique key column (integer, text or uuid), each item's id", 0, 0,
         &a->pg_key},
        {"where", NULL, DRV_OPT_STR, NULL, "SQL", "with --postgres: only rows meeting it", 0, 0,
         &a->pg_where},
        {"columns", NULL, DRV_OPT_STR, NULL, "A,B",
         "with --postgres: the item's columns (default: the whole row)", 0, 0, &a->pg_columns},
        {"allow-seqscan", NULL, DRV_OPT_BOOL, NULL, NULL,
         "with --postgres: feed a key without an index (every page scans the table)", 0, 0,
         &a->pg_allow_seqscan},
    };
    const drv_opt own[] = {
        {"replace", NULL, DRV_OPT_BOOL, NULL, NULL,
         "replace an existing job of the same id (its keys are deleted)", 0, 0, &a->replace},
        {"quiet", NULL, DRV_OPT_BOOL, NULL, NULL, "no progress on stderr", 0, 0, &a->quiet},
        {0},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cli / sizeof *cli; i++)
        opts[n++] = cli[i];
    for (int r = 0; drv_spec_fields[r].name && r < FIELDS_MAX; r++) {
        const drv_spec_field *f = &drv_spec_fields[r];
        if (f->type == DRV_FIELD_SOURCE)
            for (size_t i = 0; i < sizeof source / sizeof *source; i++)
                opts[n++] = source[i];
        else if (f->flag)
            drv_spec_field_opt(f, &a->vals[r], help[r], sizeof help[r], &opts[n++]);
    }
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        opts[n++] = own[i];
    return n;
}

/* Parses the command line. -1 to go on, or the exit code. */
static int parse_args(submit_args *a, int argc, char **argv) {
    static char help[FIELDS_MAX][256];
    drv_opt opts[FIELDS_MAX + 24];
    memset(a, 0, sizeof *a);
    build_opts(a, opts, help);
    int rc = drv_opts_parse(opts, &doc, argc, argv, a->pos, 1, &a->npos, NULL, NULL);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : EXIT_USAGE;
    if ((rc = drv_cli_check(&a->cli, &a->cfg))) return rc;
    return -1;
}

/* The spec file given, if any, into *spec. 0, 1 when there is none, or -1 (said). */
static int read_spec_file(const submit_args *a, drv_spec *spec, char *why, size_t whylen) {
    if (a->npos != 1) return 1;
    char *json;
    size_t len;
    if (read_file(a->pos[0], &json, &len) != 0) {
        fprintf(stderr, "error: %s: cannot read the spec: %s\n", a->pos[0], strerror(errno));
        return -1;
    }
    drv_err e = drv_spec_parse(json, len, spec, why, whylen);
    free(json);
    if (e != DRV_OK) {
        fprintf(stderr, "error: %s: %s\n", a->pos[0], why);
        return -1;
    }
    return 0;
}

/* --postgres and its flags onto the spec. 0, or -1 (said). */
static int apply_pg_flags(const submit_args *a, drv_spec *spec, int *have_source) {
    const char *const *own[] = {&a->pg_table, &a->pg_key, &a->pg_where, &a->pg_columns,
                                &a->pg_query};
    int any = a->pg_allow_seqscan;
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        any |= *own[i] != NULL;
    if (!a->pg_dsn && !(any && spec->source == DRV_SRC_PG)) {
        if (!any) return 0;
        fprintf(stderr, "error: --table, --query, --key, --where, --columns and --allow-seqscan go "
                        "with --postgres\n");
        return -1;
    }
    struct {
        const char *flag, *val;
        char *dst;
        size_t cap;
    } str[] = {{"postgres", a->pg_dsn, spec->pg_dsn, sizeof spec->pg_dsn},
               {"table", a->pg_table, spec->pg_table, sizeof spec->pg_table},
               {"key", a->pg_key, spec->pg_key, sizeof spec->pg_key},
               {"where", a->pg_where, spec->pg_where, sizeof spec->pg_where},
               {"query", a->pg_query, spec->pg_query, sizeof spec->pg_query}};
    if (spec->source != DRV_SRC_PG) {
        spec->source = DRV_SRC_PG;
        spec->pg_where[0] = spec->pg_columns[0] = '\0';
    }
    if (a->pg_table) spec->pg_query[0] = '\0';
    if (a->pg_query) spec->pg_table[0] = '\0';
    for (size_t i = 0; i < sizeof str / sizeof *str; i++) {
        if (!str[i].val) continue;
        if (strlen(str[i].val) >= str[i].cap) {
            fprintf(stderr, "error: --%s: at most %zu characters\n", str[i].flag, str[i].cap - 1);
            return -1;
        }
        strcpy(str[i].dst, str[i].val);
    }
    char why[256];
    if (a->pg_columns && drv_spec_pg_columns(spec, a->pg_columns, why, sizeof why)) {
        fprintf(stderr, "error: --columns: %s\n", why);
        return -1;
    }
    if (a->pg_allow_seqscan) spec->pg_allow_seqscan = 1;
    *have_source = 1;
    return 0;
}

/* --range, --file, --source -, --format and --id-field onto the spec. 0, or -1 (said). */
static int apply_source_flags(const submit_args *a, drv_spec *spec, int have_source) {
    int nsrc = (a->range != NULL) + (a->file != NULL) + (a->source != NULL) + (a->pg_dsn != NULL);
    if (nsrc > 1) {
        fprintf(stderr, "error: give one source: --range, --file, --source - or --postgres\n");
        return -1;
    }
    if (apply_pg_flags(a, spec, &have_source)) return -1;
    if (a->range) {
        spec->source = DRV_SRC_RANGE;
        if (drv_range_parse(a->range, &spec->range_start, &spec->range_end) != 0) {
            fprintf(stderr, "error: --range: expected A..B with whole numbers, got \"%s\"\n",
                    a->range);
            return -1;
        }
        have_source = 1;
    }
    if (a->source && strcmp(a->source, "-") != 0) {
        fprintf(stderr, "error: --source: only - (standard input) is a source here; use "
                        "--range or --file\n");
        return -1;
    }
    if (a->source || (a->file && strcmp(a->file, "-") == 0)) {
        spec->source = DRV_SRC_STDIN;
        spec->path[0] = '\0';
        have_source = 1;
    } else if (a->file) {
        spec->source = DRV_SRC_FILE;
        if (strlen(a->file) >= sizeof spec->path) {
            fprintf(stderr, "error: --file: path too long\n");
            return -1;
        }
        strcpy(spec->path, a->file);
        have_source = 1;
    }
    if (!have_source) {
        fprintf(stderr, "error: no source: give a SPEC.json, --range A..B, --file PATH, "
                        "--source - or --postgres DSN (see drover submit --help)\n");
        return -1;
    }
    if (a->format && drv_fmt_parse(a->format, &spec->format) != 0) {
        fprintf(stderr, "error: --format: expected lines, ndjson or csv, got \"%s\"\n", a->format);
        return -1;
    }
    if (a->id_field) snprintf(spec->id_field, sizeof spec->id_field, "%s", a->id_field);
    return 0;
}

/* The row index of a spec field. */
static int row_of(const char *name) {
    return (int)(drv_spec_field_named(name) - drv_spec_fields);
}

/* The spec table's flags onto the spec, then the burst a new rate implies. 0, or -1 (said). */
static int apply_field_flags(const submit_args *a, drv_spec *spec, char *why, size_t whylen) {
    for (int r = 0; drv_spec_fields[r].name && r < FIELDS_MAX; r++)
        if (a->vals[r] && drv_spec_set_text(spec, &drv_spec_fields[r], a->vals[r], why, whylen)) {
            fprintf(stderr, "error: %s\n", why);
            return -1;
        }
    const char *rate = a->vals[row_of("rate.per_second")], *burst = a->vals[row_of("rate.burst")];
    if (burst && !rate && !spec->rate_per_s) {
        fprintf(stderr, "error: --burst: only with --rate\n");
        return -1;
    }
    /* A new rate without a burst gets the default burst; --rate 0 means no limit. */
    if (rate && !burst)
        spec->rate_burst = spec->rate_per_s ? drv_spec_default_burst(spec->rate_per_s) : 0;
    return 0;
}

/* The spec from the file and the flags, validated, with an id. 0, or -1 (said). */
static int build_spec(const submit_args *a, drv_spec *spec) {
    char why[1024];
    drv_spec_init(spec);
    int r = read_spec_file(a, spec, why, sizeof why);
    if (r < 0 || apply_source_flags(a, spec, r == 0) || apply_field_flags(a, spec, why, sizeof why))
        return -1;
    if (drv_spec_validate(spec, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "error: %s\n", why);
        return -1;
    }
    if (!spec->id[0]) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(spec->id, sizeof spec->id, "job-%s-%04x", stamp, (unsigned)drv_rand(0x10000));
    }
    return 0;
}

/* The source split into partitions, and a file's fingerprint (README: Semantics). */
typedef struct split {
    drv_part_init *parts;
    int64_t total; /* -1: not known until fed */
    char *fp;      /* a file's per-partition hashes, NULL for other sources */
    char fp_size[24], fp_mtime[24], fp_inode[24];
    drv_dupes_report dupes; /* a file's repeated ids (kept first-wins: dupes.skip) */
    char ndupes[24];
} split;

static void split_free(split *sp) {
    free(sp->parts);
    free(sp->fp);
    drv_dupes_report_free(&sp->dupes);
}

/* Repeated ids in a file: refused with the first few named (exit 2), or, with dedupe
 * "first", kept once each: the repeats' offsets go to Redis for the feeder to pass over. */
static int check_dupes(const drv_spec *spec, drv_dupes *ids, split *sp, int64_t data_start) {
    char why[1024];
    if (drv_dupes_find(ids, spec->path, spec, data_start, &sp->dupes, why, sizeof why)) {
        fprintf(stderr, "error: %s\n", why);
        return 1;
    }
    drv_dupes_report *r = &sp->dupes;
    snprintf(sp->ndupes, sizeof sp->ndupes, "%" PRId64, r->count);
    if (!r->count || !strcmp(spec->dedupe, "first")) return 0;
    fprintf(stderr,
            "error: %s: %" PRId64 " records repeat an id of an earlier record (one id, one item: "
            "--dedupe first keeps the first of each):\n",
            spec->path, r->count);
    for (int i = 0; i < r->nshown; i++)
        fprintf(stderr,
                "  id \"%s\": record %" PRId64 " (line %" PRId64 ") repeats record %" PRId64
                " (line %" PRId64 ")\n",
                r->shown[i].id, r->shown[i].rec, r->shown[i].line, r->shown[i].first_rec,
                r->shown[i].first_line);
    if (r->count > r->nshown) fprintf(stderr, "  ... and %" PRId64 " more\n", r->count - r->nshown);
    return EXIT_USAGE;
}

/* Scans a file source into partitions of whole records and takes its fingerprint. 0, or an
 * exit code (said). */
static int split_file(drv_spec *spec, int quiet, split *sp) {
    char why[1024], abs[PATH_MAX];
    if (!realpath(spec->path, abs)) {
        fprintf(stderr, "error: %s: %s\n", spec->path, strerror(errno));
        return EXIT_USAGE;
    }
    snprintf(spec->path, sizeof spec->path, "%s", abs);
    drv_scan scan;
    drv_dupes *ids = NULL;
    if (drv_dupes_new(&ids)) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    if (drv_scan_file_ids(spec->path, spec, &scan, why, sizeof why, quiet ? NULL : scan_progress,
                          ids)) {
        fprintf(stderr, "error: %s\n", why);
        drv_dupes_free(ids);
        return EXIT_USAGE;
    }
    int rc = check_dupes(spec, ids, sp, scan.data_start);
    drv_dupes_free(ids);
    if (rc) {
        drv_scan_free(&scan);
        return rc;
    }
    if (scan.total == 0) {
        fprintf(stderr, "error: %s: no items in the file\n", spec->path);
        drv_scan_free(&scan);
        return EXIT_USAGE;
    }
    for (int p = 0; p < spec->partitions; p++) {
        sp->parts[p].start = scan.start[p];
        sp->parts[p].end = scan.end[p];
        sp->parts[p].exhausted = scan.start[p] >= scan.end[p];
        snprintf(sp->parts[p].cursor, sizeof sp->parts[p].cursor, "%" PRId64, scan.start[p]);
    }
    sp->total = scan.total - sp->dupes.count;
    /* The file's fingerprint, written with the job: drover run refuses to feed a file that
     * no longer matches it (README: Semantics). */
    sp->fp = calloc((size_t)spec->partitions * 17 + 1, 1);
    if (sp->fp) {
        snprintf(sp->fp_size, sizeof sp->fp_size, "%" PRId64, scan.size);
        snprintf(sp->fp_mtime, sizeof sp->fp_mtime, "%" PRId64, scan.mtime_ns);
        snprintf(sp->fp_inode, sizeof sp->fp_inode, "%" PRId64, scan.inode);
        for (int p = 0; p < spec->partitions; p++)
            snprintf(sp->fp + 17 * p, 18, "%016" PRIx64 "%s", scan.hash[p],
                     p + 1 < spec->partitions ? "," : "");
    }
    drv_scan_free(&scan);
    return sp->fp ? 0 : 1;
}

/* Splits the source before connecting: a bad file is a spec error and writes nothing. 0, or an
 * exit code (said); *sp is freed by the caller either way. */
static int split_source(drv_spec *spec, int quiet, split *sp) {
    memset(sp, 0, sizeof *sp);
    sp->total = -1;
    if (!(sp->parts = calloc((size_t)spec->partitions, sizeof *sp->parts))) return 1;
    if (spec->source == DRV_SRC_RANGE) {
        split_range(spec, sp->parts);
        sp->total = spec->range_end - spec->range_start + 1;
        return 0;
    }
    if (spec->source == DRV_SRC_FILE) return split_file(spec, quiet, sp);
    if (spec->source == DRV_SRC_PG) return drv_pg_split(spec, sp->parts);
    for (int p = 0; p < spec->partitions; p++) {
        sp->parts[p].end = -1;
        strcpy(sp->parts[p].cursor, "0");
    }
    return 0;
}

/* A stdin job that exists already: its feed resumes when it is the same kind of job (the
 * partitions and format decide where each record goes). 0, or an exit code (said). */
static int resume_stdin(drv_queue *q, const drv_spec *spec) {
    drv_job job;
    drv_err e = drv_queue_job_get(q, spec->id, &job);
    if (e) {
        fprintf(stderr, "error: job %s: %s\n", spec->id, drv_queue_strerror(q, e));
        return 1;
    }
    const drv_spec *o = &job.spec;
    if (o->source != DRV_SRC_STDIN || o->format != spec->format ||
        strcmp(o->id_field, spec->id_field) != 0 || job.partitions != spec->partitions) {
        fprintf(stderr,
                "error: job %s already exists with another source (%s source, %d partitions, "
                "format %s); use --replace to start it over\n",
                spec->id, drv_src_name(o->source), job.partitions, drv_fmt_name(o->format));
        return EXIT_USAGE;
    }
    /* A feeder still running is not refused here: the cursors' compare-and-set stops one of
     * the two (DRV_CURSOR) before it feeds anything twice. */
    drv_info("job %s exists: resuming its feed from standard input", spec->id);
    return 0;
}

/* Writes the job into Redis. 0, or an exit code (said). */
static int register_job(drv_queue *q, const drv_spec *spec, const split *sp, int replace) {
    /* A file's fingerprint goes in before the job is visible: no coordinator can open it
     * without one. */
    const char *kv[] = {"src_size",   sp->fp_size,  "src_mtime_ns", sp->fp_mtime, "src_inode",
                        sp->fp_inode, "src_hashes", sp->fp,         "dupes",      sp->ndupes,
                        NULL};
    drv_err e =
        drv_queue_job_create_noted(q, spec, sp->total, sp->parts, replace, sp->fp ? kv : NULL);
    if (e == DRV_EEXIST && spec->source == DRV_SRC_STDIN) return resume_stdin(q, spec);
    if (e == DRV_EEXIST) {
        fprintf(stderr, "error: job %s already exists (use --replace to start it over)\n",
                spec->id);
        return EXIT_USAGE;
    }
    /* The repeats to pass over, right after the job: the job hash's "dupes" tells a
     * coordinator how many to expect before it feeds. */
    if (e == DRV_OK && sp->dupes.count)
        e = drv_queue_skip_write(q, spec->id, sp->dupes.skip, sp->dupes.count);
    if (e != DRV_OK) {
        fprintf(stderr, "error: registering job %s at %s: %s\n", spec->id, drv_queue_addr(q),
                drv_queue_strerror(q, e));
        return 1;
    }
    if (sp->dupes.count)
        drv_info("job %s: %" PRId64 " records repeat an earlier id: the first of each is kept",
                 spec->id, sp->dupes.count);
    return 0;
}

/* The stdin feeder's heartbeat: a thread with its own connection writes it every
 * FEEDER_BEAT_MS, whatever the feed is doing (blocked on a slow pipe, waiting for room under
 * the window), and stops with the process, so a beat older than FEEDER_LOST_MS means the
 * feeder is gone. */
typedef struct beat_ctx {
    const drv_cli *cli;
    const drv_redis_cfg *cfg;
    const drv_job *job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
} beat_ctx;

static void *beat_main(void *ud) {
    beat_ctx *b = ud;
    drv_queue *q = NULL;
    char why[600];
    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        pthread_mutex_unlock(&b->mu);
        if (!q && drv_queue_open(b->cfg, b->cli->prefix, &q, why, sizeof why) != DRV_OK) q = NULL;
        if (q) (void)drv_queue_feeder_beat(q, b->job->id, b->job->created_ms, "running");
        pthread_mutex_lock(&b->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += FEEDER_BEAT_MS / 1000;
        while (!b->stop && pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (q) drv_queue_close(q);
    return NULL;
}

/* The loop of a stdin job: feeds standard input until it ends. 0, or an exit code (said). */
static int feed_stdin(drv_queue *q, const submit_args *a, const drv_spec *spec, int quiet) {
    char why[1024];
    drv_job job;
    drv_err e;
    int differs = 0;
    if ((e = drv_queue_job_get(q, spec->id, &job)) != DRV_OK) {
        fprintf(stderr, "error: feeding job %s from standard input: %s\n", spec->id,
                drv_strerror(e));
        return 1;
    }
    beat_ctx b = {.cli = &a->cli, .cfg = &a->cfg, .job = &job};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    pthread_t th;
    int beating = pthread_create(&th, NULL, beat_main, &b) == 0;
    e = drv_feed_stream(q, &job, stdin, quiet, &differs, why, sizeof why);
    if (beating) {
        pthread_mutex_lock(&b.mu);
        b.stop = 1;
        pthread_cond_signal(&b.cv);
        pthread_mutex_unlock(&b.mu);
        pthread_join(th, NULL);
    }
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    if (e != DRV_OK) {
        fprintf(stderr, "error: feeding job %s from standard input: %s\n", spec->id, why);
        return differs ? EXIT_USAGE : 1;
    }
    (void)drv_queue_feeder_beat(q, job.id, job.created_ms, "done");
    return 0;
}

int cmd_submit(int argc, char **argv) {
    submit_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc >= 0) return rc;
    drv_spec spec;
    if (build_spec(&a, &spec)) return EXIT_USAGE;
    split sp;
    drv_queue *q = NULL;
    if (!(rc = split_source(&spec, a.quiet, &sp)) && !(rc = drv_cli_connect(&a.cli, &a.cfg, &q)))
        rc = register_job(q, &spec, &sp, a.replace);
    split_free(&sp);
    if (!rc) {
        printf("%s\n", spec.id);
        fflush(stdout);
        if (spec.source == DRV_SRC_STDIN) rc = feed_stdin(q, &a, &spec, a.quiet);
    }
    if (q) drv_queue_close(q);
    return rc;
}
