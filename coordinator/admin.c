/* drover pause, resume, cancel, dead, retry, results, purge: steering a job, reading it out
 * and removing it. */
#include "coord.h"

#include "cli.h"
#include "handler.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job_cmd {
    drv_cli cli;
    int json;
    drv_queue *q;
    drv_job job;
} job_cmd;

/* Parses "COMMAND JOB [--json]", connects and loads the job. Returns -1 to go on, or the
 * exit code. */
static int open_job(int argc, char **argv, const drv_cmd_doc *doc, int with_json, job_cmd *c) {
    memset(c, 0, sizeof *c);
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&c->cli),
        {"json", NULL, DRV_OPT_BOOL, NULL, NULL, "JSON output (one object per line)", 0, 0,
         &c->json},
        {0},
    };
    drv_opt plain[sizeof opts / sizeof *opts];
    memcpy(plain, opts, sizeof opts);
    if (!with_json) memset(&plain[sizeof opts / sizeof *opts - 2], 0, sizeof *plain);
    char *id;
    int rc = parse_job_args(plain, doc, argc, argv, &id);
    if (rc != -1) return rc;
    drv_redis_cfg cfg;
    if ((rc = drv_cli_check(&c->cli, &cfg)) || (rc = drv_cli_connect(&c->cli, &cfg, &c->q)))
        return rc;
    drv_err e = drv_queue_job_get(c->q, id, &c->job);
    if (e) {
        if (e == DRV_ENOJOB)
            fprintf(stderr, "error: no job %s (see drover list)\n", id);
        else
            fprintf(stderr, "error: job %s: %s\n", id, drv_queue_strerror(c->q, e));
        drv_queue_close(c->q);
        return 1;
    }
    return -1;
}

drv_err drv_admin_transition(drv_queue *q, const drv_job *job, const char *from, const char *to,
                             char *why, size_t whylen) {
    char padded[64], allowed[64];
    snprintf(padded, sizeof padded, " %s ", job->state);
    snprintf(allowed, sizeof allowed, " %s ", from);
    if (!strstr(allowed, padded)) {
        snprintf(why, whylen, "job %s is %s; this applies to a job that is %s", job->id, job->state,
                 from);
        return DRV_EINVAL;
    }
    drv_err e = drv_queue_job_set_state(q, job, to);
    if (!e && job->halted[0]) {
        /* The halt's reason ends with its pause: a later pause by hand must not show it. */
        const char *kv[] = {"halted", "", NULL};
        e = drv_queue_job_note(q, job->id, kv);
    }
    if (e) snprintf(why, whylen, "job %s: %s", job->id, drv_queue_strerror(q, e));
    return e;
}

/* Moves the job from one of 'from' (space-separated) to 'to'. */
static int transition(int argc, char **argv, const drv_cmd_doc *doc, const char *from,
                      const char *to) {
    job_cmd c;
    int rc = open_job(argc, argv, doc, 0, &c);
    if (rc >= 0) return rc;
    char why[600];
    drv_err e = drv_admin_transition(c.q, &c.job, from, to, why, sizeof why);
    if (e == DRV_EINVAL) {
        fprintf(stderr, "error: job %s is %s; %s applies to a job that is %s\n", c.job.id,
                c.job.state, argv[0], from);
        rc = 1;
    } else if (e) {
        fprintf(stderr, "error: %s\n", why);
        rc = 1;
    } else {
        printf("job %s: %s\n", c.job.id, to);
        rc = 0;
    }
    drv_queue_close(c.q);
    return rc;
}

int cmd_pause(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover pause JOB",
        "Pauses JOB: workers stop claiming its items at their next claim (items already\n"
        "running finish). The same as `HSET PREFIX{JOB}:job state paused` while a coordinator\n"
        "runs; this command also writes each partition's state at once.",
        "  drover pause backfill"};
    return transition(argc, argv, &doc, "running", "paused");
}

int cmd_resume(int argc, char **argv) {
    static const drv_cmd_doc doc = {"drover resume JOB",
                                    "Lets workers claim a paused JOB's items again.",
                                    "  drover resume backfill"};
    return transition(argc, argv, &doc, "paused", "running");
}

int cmd_cancel(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover cancel JOB",
        "Cancels JOB for good: no more claims or feeding; its coordinator exits 4. The keys stay\n"
        "for inspection.",
        "  drover cancel backfill"};
    return transition(argc, argv, &doc, "running paused", "cancelled");
}

typedef void (*pair_fn)(const char *id, size_t idlen, const char *v, size_t vlen, void *ud);

/* Prints every (id, value) pair of one hash of each partition (dead items, kept responses).
 * Returns the exit code. */
static int print_each(job_cmd *c, drv_err (*each)(drv_queue *, const char *, int, pair_fn, void *),
                      pair_fn print) {
    for (int p = 0; p < c->job.partitions; p++) {
        drv_err e = each(c->q, c->job.id, p, print, c);
        if (e) {
            fprintf(stderr, "error: job %s: %s\n", c->job.id, drv_queue_strerror(c->q, e));
            return 1;
        }
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static void print_dead(const char *id, size_t idlen, const char *err, size_t errlen, void *ud) {
    job_cmd *c = ud;
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *parsed = cJSON_ParseWithLength(err, errlen);
        char *idz = strndup(id, idlen);
        cJSON_AddStringToObject(o, "id", idz ? idz : "");
        if (parsed)
            cJSON_AddItemToObject(o, "error", parsed);
        else
            cJSON_AddStringToObject(o, "error", "(not JSON)");
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) puts(txt);
        cJSON_free(txt);
        cJSON_Delete(o);
        free(idz);
    } else {
        printf("%.*s\t%.*s\n", (int)idlen, id, (int)errlen, err);
    }
}

int cmd_dead(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover dead JOB [--json]",
        "Lists JOB's dead items (those that used up their attempts or failed permanently), one\n"
        "per line: the id, a tab, and the last error as JSON. --json prints one object per line.",
        "  drover dead backfill | head"};
    job_cmd c;
    int rc = open_job(argc, argv, &doc, 1, &c);
    if (rc >= 0) return rc;
    rc = print_each(&c, drv_queue_dead_each, print_dead);
    drv_queue_close(c.q);
    return rc;
}

drv_err drv_admin_retry(drv_queue *q, const drv_job *job, const char *const *ids, size_t nids,
                        const char *match, int64_t *revived, char *why, size_t whylen) {
    *revived = 0;
    if (job->st == DRV_JOB_CANCELLED) {
        snprintf(why, whylen, "job %s is cancelled", job->id);
        return DRV_EINVAL;
    }
    drv_err e = DRV_OK;
    for (int p = 0; p < job->partitions && !e; p++) {
        int64_t n = 0;
        if (ids) /* an id is dead in one partition: the others skip it */
            e = drv_queue_revive_ids(q, job->id, p, ids, nids, &n);
        else
            e = drv_queue_revive_matching(q, job->id, p, match, &n);
        *revived += n;
    }
    if (!e && *revived > 0 && job->st == DRV_JOB_DONE)
        e = drv_queue_job_set_state(q, job, "running");
    if (e) snprintf(why, whylen, "job %s: %s", job->id, drv_queue_strerror(q, e));
    return e;
}

int cmd_retry(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover retry JOB [--match TEXT]",
        "Moves JOB's dead items back to pending with fresh attempts: all of them, or with\n"
        "--match those whose last error's \"error\" text holds TEXT (as drover dead shows it).\n"
        "A job that was done runs again: start its coordinator (drover run JOB) to finish it.",
        "  drover retry backfill && drover run backfill\n"
        "  drover retry backfill --match 'status 503'"};
    drv_cli cli;
    const char *match = NULL;
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"match", NULL, DRV_OPT_STR, NULL, "TEXT", "only the dead items whose error holds TEXT", 0,
         0, &match},
        {0},
    };
    char *id;
    int rc = parse_job_args(opts, &doc, argc, argv, &id);
    if (rc != -1) return rc;
    if (match && !match[0]) {
        fprintf(stderr, "error: --match needs some text (leave it out to retry every dead item)\n");
        return EXIT_USAGE;
    }
    drv_redis_cfg cfg;
    drv_queue *q;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, &q))) return rc;
    drv_job *job = malloc(sizeof *job);
    drv_err e = job ? drv_queue_job_get(q, id, job) : DRV_ENOMEM;
    char why[600];
    int64_t total = 0;
    if (e == DRV_ENOJOB)
        snprintf(why, sizeof why, "no job %s (see drover list)", id);
    else if (e)
        snprintf(why, sizeof why, "job %s: %s", id, drv_queue_strerror(q, e));
    else
        e = drv_admin_retry(q, job, NULL, 0, match, &total, why, sizeof why);
    if (e) {
        fprintf(stderr, "error: %s\n", why);
        rc = 1;
    } else {
        printf("job %s: %" PRId64 " dead items back to pending\n", id, total);
        if (total > 0 && job->st == DRV_JOB_DONE)
            printf("the job was done: run `drover run %s` to finish it\n", id);
        rc = 0;
    }
    free(job);
    drv_queue_close(q);
    return rc;
}

/* id TAB response, with \\, tab, newline and CR escaped so each item stays one line. */
static void print_result(const char *id, size_t idlen, const char *resp, size_t rlen, void *ud) {
    job_cmd *c = ud;
    if (c->json) {
        char *idz = strndup(id, idlen), *rz = strndup(resp, rlen);
        if (rz) drv_text_sanitize(rz, rlen);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", idz ? idz : "");
        cJSON_AddStringToObject(o, "response", rz ? rz : "");
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) puts(txt);
        cJSON_free(txt);
        cJSON_Delete(o);
        free(idz);
        free(rz);
        return;
    }
    fwrite(id, 1, idlen, stdout);
    putchar('\t');
    size_t run = 0;
    for (size_t i = 0; i < rlen; i++) {
        const char *esc = resp[i] == '\\'   ? "\\\\"
                          : resp[i] == '\t' ? "\\t"
                          : resp[i] == '\n' ? "\\n"
                          : resp[i] == '\r' ? "\\r"
                                            : NULL;
        if (!esc) continue;
        fwrite(resp + run, 1, i - run, stdout);
        fputs(esc, stdout);
        run = i + 1;
    }
    fwrite(resp + run, 1, rlen - run, stdout);
    putchar('\n');
}

/* Whether a job keeps responses: results its workers' own handlers report (keep_results) or
 * its HTTP handler's responses (the handler's keep_response). */
static int job_keeps(const drv_spec *s) {
    if (s->keep_results > 0) return 1;
    drv_http_cfg h;
    if (!s->handler[0] || drv_http_cfg_parse(s->handler, strlen(s->handler), &h, NULL, 0) != DRV_OK)
        return 0;
    int keeps = h.keep_response > 0;
    drv_http_cfg_free(&h);
    return keeps;
}

int cmd_results(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover results JOB [--json]",
        "Streams the responses JOB kept, one per line: the id, a tab, and the response with\n"
        "backslash, tab, newline and carriage return written as \\\\, \\t, \\n and \\r. A job\n"
        "keeps the first N bytes of each ok response of its HTTP handler (\"keep_response\": N\n"
        "in the spec's handler), or of each ok \"result\" its workers' --serve handlers answer\n"
        "(\"keep_results\": N in the spec, drover submit --keep-results N).\n"
        "--json prints one {\"id\", \"response\"} object per line. Items come partition by\n"
        "partition, in no particular order; an item's response is there once it is done.",
        "  drover results rescore > scores.tsv\n"
        "  drover results rescore --json | jq -r .response"};
    job_cmd c;
    int rc = open_job(argc, argv, &doc, 1, &c);
    if (rc >= 0) return rc;
    if (!job_keeps(&c.job.spec)) {
        fprintf(stderr,
                "error: job %s keeps no responses (its spec needs \"keep_results\": N, from "
                "drover submit --keep-results N, or an HTTP handler with \"keep_response\": N)\n",
                c.job.id);
        drv_queue_close(c.q);
        return 1;
    }
    rc = print_each(&c, drv_queue_results_each, print_result);
    drv_queue_close(c.q);
    return rc;
}

drv_err drv_admin_purge(drv_queue *q, const char *id, int force, int64_t *swept, char *why,
                        size_t whylen) {
    *swept = 0;
    drv_job *job = malloc(sizeof *job); /* a whole spec: not for a server thread's stack */
    if (!job) {
        snprintf(why, whylen, "out of memory");
        return DRV_ENOMEM;
    }
    drv_err e = drv_queue_job_get(q, id, job);
    if (e && e != DRV_ENOJOB) {
        snprintf(why, whylen, "job %s: %s", id, drv_queue_strerror(q, e));
        goto out;
    }
    if (!e && !force && !drv_job_state_finished(job->st)) {
        snprintf(why, whylen, "job %s is %s; purge a job once it is done or cancelled (or --force)",
                 id, job->state);
        e = DRV_EINVAL;
        goto out;
    }
    if (!e) e = drv_queue_job_delete(q, id);
    drv_err e2 = e ? e : drv_queue_job_sweep(q, id, swept);
    if (e == DRV_ENOJOB && (e2 = drv_queue_job_sweep(q, id, swept)) == DRV_OK && !*swept) {
        snprintf(why, whylen, "no job %s (see drover list)", id);
        goto out;
    }
    if ((e && e != DRV_ENOJOB) || e2) {
        e = e && e != DRV_ENOJOB ? e : e2;
        snprintf(why, whylen, "purging job %s: %s", id, drv_queue_strerror(q, e));
        goto out;
    }
    e = DRV_OK;
out:
    free(job);
    return e;
}

int cmd_purge(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover purge JOB [--force]",
        "Deletes every key of a finished (done or cancelled) JOB: first its entry in the job\n"
        "list, so workers and drover list stop seeing it, then its partitions' keys with\n"
        "UNLINK (Redis frees large values, such as the done record of ten million ids, in a\n"
        "background thread, so it never blocks), the job hash last, and finally a SCAN sweep\n"
        "in batches for anything left under the job's hash tags. --force purges a job that is\n"
        "still running or paused (its workers drop what they hold).",
        "  drover purge backfill"};
    drv_cli cli;
    int force = 0;
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"force", NULL, DRV_OPT_BOOL, NULL, NULL, "also a job that has not ended", 0, 0, &force},
        {0},
    };
    char *id;
    int rc = parse_job_args(opts, &doc, argc, argv, &id);
    if (rc != -1) return rc;
    drv_redis_cfg cfg;
    drv_queue *q;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, &q))) return rc;
    int64_t swept = 0;
    char why[600];
    if (drv_admin_purge(q, id, force, &swept, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "error: %s\n", why);
        drv_queue_close(q);
        return 1;
    }
    printf("job %s: purged", id);
    if (swept) printf(" (%" PRId64 " stray keys swept)", swept);
    printf("\n");
    drv_queue_close(q);
    return 0;
}
