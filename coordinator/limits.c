/* drover set: change a job's fleet-wide limits (rate, burst, max_in_flight) and its weight
 * while it runs. */
#include "coord.h"

#include "cli.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SET_MAX_ARGS 8
#define ROWS_MAX     32

/* The changes asked for, by row of the spec table (common/spec.h): -1 when not given. Only the
 * rows marked live are keys of drover set. */
typedef struct set_args {
    long long val[ROWS_MAX];
} set_args;

/* A live row's key: its flag with '_' for '-' ("max_in_flight"). */
static void key_of(const drv_spec_field *f, char *key, size_t len) {
    snprintf(key, len, "%s", f->flag);
    for (char *c = key; *c; c++)
        if (*c == '-') *c = '_';
}

/* The smallest value drover set takes: 0 lifts a limit whose default is "none". */
static long long key_min(const drv_spec_field *f) {
    return (f->flags & DRV_FIELD_OPTIONAL) && f->def < f->min ? f->def : f->min;
}

/* The live row named by kv's KEY (len bytes), or -1. */
static int find_key(const char *kv, size_t len) {
    for (int r = 0; drv_spec_fields[r].name && r < ROWS_MAX; r++) {
        char key[64];
        if (!(drv_spec_fields[r].flags & DRV_FIELD_LIVE)) continue;
        key_of(&drv_spec_fields[r], key, sizeof key);
        if (strlen(key) == len && strncmp(kv, key, len) == 0) return r;
    }
    return -1;
}

/* "rate, burst, max_in_flight, weight", for a message. */
static void live_keys(char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (int r = 0; drv_spec_fields[r].name && r < ROWS_MAX && o < len; r++) {
        char key[64];
        if (!(drv_spec_fields[r].flags & DRV_FIELD_LIVE)) continue;
        key_of(&drv_spec_fields[r], key, sizeof key);
        o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", key);
    }
}

/* The row of a spec field. */
static int row(const char *name) {
    return (int)(drv_spec_field_named(name) - drv_spec_fields);
}

/* Parses KEY=VALUE arguments. Returns 0, or -1 after printing what is wrong. */
static int parse_sets(char **kv, int n, set_args *a) {
    for (int r = 0; r < ROWS_MAX; r++)
        a->val[r] = -1;
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        int r = eq ? find_key(kv[i], (size_t)(eq - kv[i])) : -1;
        if (r < 0) {
            char keys[256];
            live_keys(keys, sizeof keys);
            fprintf(stderr, "error: \"%s\": expected KEY=VALUE with KEY one of %s\n", kv[i], keys);
            return -1;
        }
        const drv_spec_field *f = &drv_spec_fields[r];
        char key[64];
        key_of(f, key, sizeof key);
        if (a->val[r] != -1) {
            fprintf(stderr, "error: %s: given twice\n", key);
            return -1;
        }
        if (drv_parse_ll(eq + 1, key_min(f), f->max, &a->val[r]) != 0) {
            fprintf(stderr, "error: %s: expected a whole number from %lld to %lld, got \"%s\"\n",
                    key, key_min(f), (long long)f->max, eq + 1);
            return -1;
        }
    }
    if (a->val[row("rate.per_second")] == 0 && a->val[row("rate.burst")] != -1) {
        fprintf(stderr, "error: burst: rate=0 lifts the rate limit; a burst needs a rate\n");
        return -1;
    }
    return 0;
}

/* Makes the changes of 'a' the job's (its spec and limits hash). DRV_EINVAL when the
 * changes do not make a valid spec, with the reason in 'why'. */
static drv_err apply_sets(drv_queue *q, drv_job *job, const set_args *a, char *why, size_t whylen) {
    drv_spec *s = &job->spec;
    long long rate = a->val[row("rate.per_second")], burst = a->val[row("rate.burst")];
    if (burst >= 0 && rate < 0 && !s->rate_per_s) {
        snprintf(why, whylen, "burst: job %s has no rate limit; give rate= with it", job->id);
        return DRV_EINVAL;
    }
    for (int r = 0; drv_spec_fields[r].name && r < ROWS_MAX; r++)
        if (a->val[r] >= 0) *(int64_t *)((char *)s + drv_spec_fields[r].off) = a->val[r];
    /* A new rate without a burst gets the default burst; rate=0 lifts the limit. */
    if (rate >= 0 && burst < 0) s->rate_burst = rate ? drv_spec_default_burst(rate) : 0;
    if (drv_spec_validate(s, why, whylen) != DRV_OK) return DRV_EINVAL;
    drv_err e = drv_queue_limits_set(q, s);
    if (e) snprintf(why, whylen, "job %s: %s", job->id, drv_queue_strerror(q, e));
    return e;
}

drv_err drv_admin_set_limits(drv_queue *q, drv_job *job, long long rate, long long max_in_flight,
                             char *why, size_t whylen) {
    set_args a;
    for (int r = 0; r < ROWS_MAX; r++)
        a.val[r] = -1;
    a.val[row("rate.per_second")] = rate;
    a.val[row("max_in_flight")] = max_in_flight;
    for (int r = 0; r < ROWS_MAX && drv_spec_fields[r].name; r++) {
        const drv_spec_field *f = &drv_spec_fields[r];
        if (a.val[r] != -1 && (a.val[r] < key_min(f) || a.val[r] > f->max)) {
            snprintf(why, whylen, "%s: expected a whole number from %lld to %lld", f->flag,
                     key_min(f), (long long)f->max);
            return DRV_EINVAL;
        }
    }
    return apply_sets(q, job, &a, why, whylen);
}

int cmd_set(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover set JOB KEY=VALUE...",
        "Changes JOB's fleet-wide limits while it runs; every worker honours them at its next\n"
        "claim (the weight within a second). Keys:\n"
        "  rate=R           at most R items started per second across all workers (0: no limit);\n"
        "                   the burst becomes R/10 (at least 1) unless burst= is given too\n"
        "  burst=B          the token bucket's size: items that may start at once after a pause\n"
        "  max_in_flight=N  at most N items leased at once across all workers (0: no cap)\n"
        "  weight=W         the job's share of each worker beside other running jobs (1 to 1000)\n"
        "  adaptive=0|1     an HTTP handler's adaptive in-flight limit off or on (AIMD)\n"
        "  halt_failed_percent=P  pause the job once more than P% of its last halt.min_items\n"
        "                   finished attempts failed (1 to 100)\n"
        "The spec in the job hash is updated too, so drover status shows the new values.",
        "  drover set backfill rate=200\n"
        "  drover set backfill rate=500 burst=50 max_in_flight=64 weight=3"};
    drv_cli cli;
    const drv_opt opts[] = {DRV_CLI_OPTS(&cli), {0}};
    char *pos[1 + SET_MAX_ARGS];
    int npos;
    int rc = drv_opts_parse(opts, &doc, argc, argv, pos, 1 + SET_MAX_ARGS, &npos, NULL, NULL);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : EXIT_USAGE;
    if (npos < 2) {
        fprintf(stderr, "error: drover set needs a JOB and at least one KEY=VALUE (see drover set "
                        "--help)\n");
        return EXIT_USAGE;
    }
    if (!drv_job_id_valid(pos[0])) {
        fprintf(stderr, "error: not a valid job id: \"%s\"\n", pos[0]);
        return EXIT_USAGE;
    }
    set_args a;
    if (parse_sets(pos + 1, npos - 1, &a) != 0) return EXIT_USAGE;
    drv_redis_cfg cfg;
    drv_queue *q;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, &q))) return rc;
    drv_job *job = malloc(sizeof *job); /* a drv_job holds a whole spec: not for the stack */
    if (!job) {
        fprintf(stderr, "error: out of memory\n");
        drv_queue_close(q);
        return 1;
    }
    drv_err e = drv_queue_job_get(q, pos[0], job);
    if (e) {
        if (e == DRV_ENOJOB)
            fprintf(stderr, "error: no job %s (see drover list)\n", pos[0]);
        else
            fprintf(stderr, "error: job %s: %s\n", pos[0], drv_queue_strerror(q, e));
        rc = 1;
        goto out;
    }
    char why[512];
    if ((e = apply_sets(q, job, &a, why, sizeof why)) != DRV_OK) {
        fprintf(stderr, "error: %s\n", why);
        rc = e == DRV_EINVAL ? EXIT_USAGE : 1;
        goto out;
    }
    const drv_spec *s = &job->spec;
    printf("job %s: ", pos[0]);
    if (s->rate_per_s)
        printf("rate %" PRId64 "/s (burst %" PRId64 ")", s->rate_per_s, s->rate_burst);
    else
        printf("no rate limit");
    if (s->max_in_flight)
        printf(", max_in_flight %" PRId64, s->max_in_flight);
    else
        printf(", no in-flight cap");
    printf(", weight %" PRId64 "\n", s->weight);
    rc = 0;
out:
    free(job);
    drv_queue_close(q);
    return rc;
}
