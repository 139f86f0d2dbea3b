/* drover submit: validate a job, split its source into partitions, register it. */
/* realpath() is an XSI function. */
#define _XOPEN_SOURCE 700
#include "coord.h"

#include "cli.h"
#include "clock.h"
#include "log.h"
#include "source.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const drv_cmd_doc doc = {
    "drover submit [SPEC.json] [--id J] (--range A..B | --file PATH | --source -) [OPTIONS]",
    "Validates a job, splits its source into partitions and registers it in Redis, then prints\n"
    "the job id alone on stdout. A spec file and flags can be combined: flags win. Nothing is\n"
    "written to Redis when the spec is wrong (exit 2). With --source - the items are read from\n"
    "standard input and fed as they come (this command runs until the input ends); an\n"
    "interrupted stdin feed cannot resume from its cursor: pipe the input again into a new\n"
    "submit with --replace, or feed the same id again (done items are skipped at claim).",
    "  drover submit --id backfill --range 1..10000000 --partitions 16\n"
    "  drover submit --id rescore --file users.csv --format csv --id-field user_id\n"
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

/* Applies a whole-number flag onto a spec field. */
static int apply_int(const char *flag, const char *val, int64_t *field) {
    long long v;
    if (!val) return 0;
    if (drv_parse_ll(val, INT64_MIN, INT64_MAX, &v) != 0) {
        fprintf(stderr, "error: --%s: expected a whole number, got \"%s\"\n", flag, val);
        return -1;
    }
    *field = v;
    return 0;
}

int cmd_submit(int argc, char **argv) {
    drv_cli cli;
    const char *id = NULL, *range = NULL, *file = NULL, *source = NULL, *format = NULL,
               *id_field = NULL, *partitions = NULL, *lease = NULL, *attempts = NULL,
               *window = NULL, *backoff = NULL, *backoff_max = NULL, *max_item = NULL, *rate = NULL,
               *burst = NULL, *max_in_flight = NULL, *weight = NULL;
    int replace = 0, quiet = 0;
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"id", NULL, DRV_OPT_STR, NULL, "J",
         "job id (letters, digits, _ and -; default: generated)", 0, 0, &id},
        {"range", NULL, DRV_OPT_STR, NULL, "A..B", "integer ids A to B inclusive", 0, 0, &range},
        {"file", NULL, DRV_OPT_STR, NULL, "PATH", "a file of items (- for standard input)", 0, 0,
         &file},
        {"source", NULL, DRV_OPT_STR, NULL, "-", "read items from standard input", 0, 0, &source},
        {"format", NULL, DRV_OPT_STR, NULL, "FMT", "lines (default), ndjson or csv", 0, 0, &format},
        {"id-field", NULL, DRV_OPT_STR, NULL, "F", "the NDJSON field or CSV column holding each id",
         0, 0, &id_field},
        {"partitions", NULL, DRV_OPT_STR, NULL, "P", "partitions (default 8)", 0, 0, &partitions},
        {"lease-ms", NULL, DRV_OPT_STR, NULL, "MS",
         "lease length before an item is handed out again (default 30000)", 0, 0, &lease},
        {"max-attempts", NULL, DRV_OPT_STR, NULL, "N",
         "deliveries before an item is dead-lettered (default 5)", 0, 0, &attempts},
        {"backoff-ms", NULL, DRV_OPT_STR, NULL, "MS",
         "first retry delay, doubled each attempt (default 1000)", 0, 0, &backoff},
        {"backoff-max-ms", NULL, DRV_OPT_STR, NULL, "MS", "longest retry delay (default 300000)", 0,
         0, &backoff_max},
        {"window", NULL, DRV_OPT_STR, NULL, "N",
         "most pending items per partition in Redis (default 5000)", 0, 0, &window},
        {"max-item-bytes", NULL, DRV_OPT_STR, NULL, "N", "largest item accepted (default 1048576)",
         0, 0, &max_item},
        {"rate", NULL, DRV_OPT_STR, NULL, "R",
         "items started per second by the whole fleet (default: no limit)", 0, 0, &rate},
        {"burst", NULL, DRV_OPT_STR, NULL, "B", "with --rate: items that may start at once (R/10)",
         0, 0, &burst},
        {"max-in-flight", NULL, DRV_OPT_STR, NULL, "N",
         "items leased at once across every worker (default: no cap)", 0, 0, &max_in_flight},
        {"weight", NULL, DRV_OPT_STR, NULL, "W",
         "share of a worker serving several jobs (default 1)", 0, 0, &weight},
        {"replace", NULL, DRV_OPT_BOOL, NULL, NULL,
         "replace an existing job of the same id (its keys are deleted)", 0, 0, &replace},
        {"quiet", NULL, DRV_OPT_BOOL, NULL, NULL, "no progress on stderr", 0, 0, &quiet},
        {0},
    };
    char *pos[1];
    int npos;
    int rc = drv_opts_parse(opts, &doc, argc, argv, pos, 1, &npos, NULL, NULL);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : EXIT_USAGE;
    drv_redis_cfg cfg;
    if ((rc = drv_cli_check(&cli, &cfg))) return rc;

    drv_spec spec;
    char why[1024];
    drv_spec_init(&spec);
    int have_source = 0;
    if (npos == 1) {
        char *json;
        size_t len;
        if (read_file(pos[0], &json, &len) != 0) {
            fprintf(stderr, "error: %s: cannot read the spec: %s\n", pos[0], strerror(errno));
            return EXIT_USAGE;
        }
        drv_err e = drv_spec_parse(json, len, &spec, why, sizeof why);
        free(json);
        if (e != DRV_OK) {
            fprintf(stderr, "error: %s: %s\n", pos[0], why);
            return EXIT_USAGE;
        }
        have_source = 1;
    }
    int nsrc = (range != NULL) + (file != NULL) + (source != NULL);
    if (nsrc > 1) {
        fprintf(stderr, "error: give one source: --range, --file or --source -\n");
        return EXIT_USAGE;
    }
    if (range) {
        spec.source = DRV_SRC_RANGE;
        if (drv_range_parse(range, &spec.range_start, &spec.range_end) != 0) {
            fprintf(stderr, "error: --range: expected A..B with whole numbers, got \"%s\"\n",
                    range);
            return EXIT_USAGE;
        }
        have_source = 1;
    }
    if (source && strcmp(source, "-") != 0) {
        fprintf(stderr, "error: --source: only - (standard input) is a source here; use "
                        "--range or --file\n");
        return EXIT_USAGE;
    }
    if (source || (file && strcmp(file, "-") == 0)) {
        spec.source = DRV_SRC_STDIN;
        spec.path[0] = '\0';
        have_source = 1;
    } else if (file) {
        spec.source = DRV_SRC_FILE;
        if (strlen(file) >= sizeof spec.path) {
            fprintf(stderr, "error: --file: path too long\n");
            return EXIT_USAGE;
        }
        strcpy(spec.path, file);
        have_source = 1;
    }
    if (!have_source) {
        fprintf(stderr, "error: no source: give a SPEC.json, --range A..B, --file PATH or "
                        "--source - (see drover submit --help)\n");
        return EXIT_USAGE;
    }
    if (format && drv_fmt_parse(format, &spec.format) != 0) {
        fprintf(stderr, "error: --format: expected lines, ndjson or csv, got \"%s\"\n", format);
        return EXIT_USAGE;
    }
    if (id_field) snprintf(spec.id_field, sizeof spec.id_field, "%s", id_field);
    if (id) snprintf(spec.id, sizeof spec.id, "%.*s", (int)sizeof spec.id - 1, id);
    if (id && strlen(id) >= sizeof spec.id) {
        fprintf(stderr, "error: --id: at most 64 characters\n");
        return EXIT_USAGE;
    }
    if (apply_int("partitions", partitions, &spec.partitions) ||
        apply_int("lease-ms", lease, &spec.lease_ms) ||
        apply_int("max-attempts", attempts, &spec.max_attempts) ||
        apply_int("backoff-ms", backoff, &spec.backoff_ms) ||
        apply_int("backoff-max-ms", backoff_max, &spec.backoff_max_ms) ||
        apply_int("window", window, &spec.window) ||
        apply_int("max-item-bytes", max_item, &spec.max_item_bytes) ||
        apply_int("rate", rate, &spec.rate_per_s) || apply_int("burst", burst, &spec.rate_burst) ||
        apply_int("max-in-flight", max_in_flight, &spec.max_in_flight) ||
        apply_int("weight", weight, &spec.weight))
        return EXIT_USAGE;
    if (burst && !rate && !spec.rate_per_s) {
        fprintf(stderr, "error: --burst: only with --rate\n");
        return EXIT_USAGE;
    }
    /* A new rate without a burst gets the default burst; --rate 0 means no limit. */
    if (rate && !burst)
        spec.rate_burst = spec.rate_per_s ? drv_spec_default_burst(spec.rate_per_s) : 0;
    if (drv_spec_validate(&spec, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "error: %s\n", why);
        return EXIT_USAGE;
    }
    if (!spec.id[0]) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(spec.id, sizeof spec.id, "job-%s-%04x", stamp, (unsigned)drv_rand(0x10000));
    }

    /* Split the source before connecting: a bad file is a spec error and writes nothing. */
    drv_part_init *parts = calloc((size_t)spec.partitions, sizeof *parts);
    if (!parts) return 1;
    char *fp = NULL, fp_size[24], fp_mtime[24], fp_inode[24];
    int64_t total = -1;
    if (spec.source == DRV_SRC_RANGE) {
        split_range(&spec, parts);
        total = spec.range_end - spec.range_start + 1;
    } else if (spec.source == DRV_SRC_FILE) {
        char abs[PATH_MAX];
        if (!realpath(spec.path, abs)) {
            fprintf(stderr, "error: %s: %s\n", spec.path, strerror(errno));
            free(parts);
            return EXIT_USAGE;
        }
        snprintf(spec.path, sizeof spec.path, "%s", abs);
        drv_scan scan;
        if (drv_scan_file(spec.path, &spec, &scan, why, sizeof why, quiet ? NULL : scan_progress)) {
            fprintf(stderr, "error: %s\n", why);
            free(parts);
            return EXIT_USAGE;
        }
        if (scan.total == 0) {
            fprintf(stderr, "error: %s: no items in the file\n", spec.path);
            drv_scan_free(&scan);
            free(parts);
            return EXIT_USAGE;
        }
        for (int p = 0; p < spec.partitions; p++) {
            parts[p].start = scan.start[p];
            parts[p].end = scan.end[p];
            parts[p].exhausted = scan.start[p] >= scan.end[p];
            snprintf(parts[p].cursor, sizeof parts[p].cursor, "%" PRId64, scan.start[p]);
        }
        total = scan.total;
        /* The file's fingerprint, written with the job: drover run refuses to feed a file that
         * no longer matches it (README: Semantics). */
        fp = calloc((size_t)spec.partitions * 17 + 1, 1);
        if (fp) {
            snprintf(fp_size, sizeof fp_size, "%" PRId64, scan.size);
            snprintf(fp_mtime, sizeof fp_mtime, "%" PRId64, scan.mtime_ns);
            snprintf(fp_inode, sizeof fp_inode, "%" PRId64, scan.inode);
            for (int p = 0; p < spec.partitions; p++)
                snprintf(fp + 17 * p, 18, "%016" PRIx64 "%s", scan.hash[p],
                         p + 1 < spec.partitions ? "," : "");
        }
        drv_scan_free(&scan);
        if (!fp) {
            free(parts);
            return 1;
        }
    } else {
        for (int p = 0; p < spec.partitions; p++) {
            parts[p].end = -1;
            strcpy(parts[p].cursor, "0");
        }
    }

    drv_queue *q;
    if ((rc = drv_cli_connect(&cli, &cfg, &q))) {
        free(parts);
        free(fp);
        return rc;
    }
    /* A file's fingerprint goes in before the job is visible: no coordinator can open it
     * without one. */
    const char *kv[] = {"src_size",   fp_size,     "src_mtime_ns",
                        fp_mtime,     "src_inode", fp_inode,
                        "src_hashes", fp,          NULL};
    drv_err e = drv_queue_job_create_noted(q, &spec, total, parts, replace, fp ? kv : NULL);
    free(parts);
    free(fp);
    if (e == DRV_EEXIST) {
        fprintf(stderr, "error: job %s already exists (use --replace to start it over)\n", spec.id);
        drv_queue_close(q);
        return EXIT_USAGE;
    }
    if (e != DRV_OK) {
        fprintf(stderr, "error: registering job %s at %s: %s\n", spec.id, drv_queue_addr(q),
                drv_queue_strerror(q, e));
        drv_queue_close(q);
        return 1;
    }
    printf("%s\n", spec.id);
    fflush(stdout);
    rc = 0;
    if (spec.source == DRV_SRC_STDIN) {
        drv_job job;
        if ((e = drv_queue_job_get(q, spec.id, &job)) == DRV_OK)
            e = drv_feed_stream(q, &job, stdin, quiet, why, sizeof why);
        else
            snprintf(why, sizeof why, "%s", drv_strerror(e));
        if (e != DRV_OK) {
            fprintf(stderr, "error: feeding job %s from standard input: %s\n", spec.id, why);
            rc = 1;
        }
    }
    drv_queue_close(q);
    return rc;
}
