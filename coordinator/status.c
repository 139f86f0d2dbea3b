/* drover status, drover list and drover wait. */
#include "coord.h"

#include "cli.h"
#include "clock.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const drv_cmd_doc status_doc = {
    "drover status JOB [--json] [--watch]",
    "Shows where JOB stands: state, total (once known), fed, done, pending, leased, retrying,\n"
    "dead, duplicates, a progress bar, the rate over the last minute and an ETA, and one\n"
    "row per partition. --json prints one object for scripts. --watch refreshes every\n"
    "--interval-ms until the job ends: in place on a terminal, one line per refresh when\n"
    "stdout is a pipe or a file.",
    "  drover status backfill\n"
    "  drover status backfill --watch\n"
    "  drover status backfill --json | jq .done"};

static const drv_cmd_doc list_doc = {
    "drover list [--json]",
    "Lists jobs, oldest first, with their state and progress. A job whose hash\n"
    "drover cannot read (its spec is not valid JSON, say) is "
    "listed\nas broken, naming the key and field.",
    "  drover list"};

typedef struct job_view {
    drv_job job;
    drv_part_stat *st;
    drv_part_stat t; /* totals */
    drv_limits lim;  /* the fleet-wide limits as Redis holds them */
    char feeder[16]; /* stdin: the feeder's state ("" none), and its last beat's age (-1) */
    int64_t feeder_age_ms;
} job_view;

/* A stdin job's feeder that stopped without finishing: its beat is old and it never said done. */
static int feeder_lost(const job_view *v) {
    return v->job.spec.source == DRV_SRC_STDIN && !strcmp(v->feeder, "running") &&
           v->feeder_age_ms >= FEEDER_LOST_MS && !drv_job_state_finished(v->job.st);
}

static drv_err load_view(drv_queue *q, const char *id, job_view *v) {
    memset(v, 0, sizeof *v);
    drv_err e = drv_queue_job_get(q, id, &v->job);
    if (e) return e;
    v->st = calloc((size_t)v->job.partitions, sizeof *v->st);
    if (!v->st) return DRV_ENOMEM;
    if ((e = drv_queue_stats(q, id, v->job.partitions, v->st))) return e;
    drv_part_stat_sum(v->st, v->job.partitions, &v->t);
    v->feeder_age_ms = -1;
    if (v->job.spec.source == DRV_SRC_STDIN &&
        (e = drv_queue_feeder_get(q, id, v->feeder, &v->feeder_age_ms)))
        return e;
    return drv_queue_limits_get(q, id, &v->lim);
}

static double eta_seconds(const job_view *v) {
    double rate = (double)v->job.rate_milli / 1000.0;
    if (v->job.total < 0 || rate <= 0 || v->job.st != DRV_JOB_RUNNING) return -1;
    double left = (double)(v->job.total - v->t.done - v->t.dead);
    return left > 0 ? left / rate : 0;
}

static void fmt_time(int64_t ms, char *buf, size_t len) {
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static cJSON *view_json(const job_view *v, int with_parts) {
    cJSON *o = cJSON_CreateObject();
    const drv_job *j = &v->job;
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "state", j->state);
    /* Why the coordinator paused the job (the halt threshold), while it is paused. */
    if (j->st == DRV_JOB_PAUSED && j->halted[0])
        cJSON_AddStringToObject(o, "halted", j->halted);
    else
        cJSON_AddNullToObject(o, "halted");
    if (j->total >= 0)
        cJSON_AddNumberToObject(o, "total", (double)j->total);
    else
        cJSON_AddNullToObject(o, "total");
    cJSON_AddNumberToObject(o, "fed", (double)v->t.fed);
    cJSON_AddNumberToObject(o, "done", (double)v->t.done);
    cJSON_AddNumberToObject(o, "pending", (double)v->t.pending);
    cJSON_AddNumberToObject(o, "leased", (double)v->t.leased);
    cJSON_AddNumberToObject(o, "retrying", (double)v->t.retrying);
    cJSON_AddNumberToObject(o, "dead", (double)v->t.dead);
    cJSON_AddNumberToObject(o, "duplicates", (double)v->t.duplicates);
    cJSON_AddNumberToObject(o, "failed_attempts", (double)v->t.failed);
    cJSON_AddNumberToObject(o, "throttled", (double)v->t.throttled);
    cJSON_AddNumberToObject(o, "expired_leases", (double)v->t.expired);
    cJSON_AddNumberToObject(o, "skipped_done", (double)v->t.skipped);
    cJSON_AddNumberToObject(o, "rate", (double)j->rate_milli / 1000.0);
    if (j->spec.source == DRV_SRC_STDIN) {
        cJSON *f = cJSON_AddObjectToObject(o, "feeder");
        if (v->feeder[0])
            cJSON_AddStringToObject(f, "state", feeder_lost(v) ? "lost" : v->feeder);
        else
            cJSON_AddNullToObject(f, "state");
        if (v->feeder_age_ms >= 0)
            cJSON_AddNumberToObject(f, "beat_age_ms", (double)v->feeder_age_ms);
        else
            cJSON_AddNullToObject(f, "beat_age_ms");
    }
    cJSON_AddNumberToObject(o, "cooldowns", (double)v->t.cooldowns);
    if (v->t.cooldown_until)
        cJSON_AddNumberToObject(o, "cooldown_until_ms", (double)v->t.cooldown_until);
    else
        cJSON_AddNullToObject(o, "cooldown_until_ms");
    double eta = eta_seconds(v);
    if (eta >= 0)
        cJSON_AddNumberToObject(o, "eta_s", eta);
    else
        cJSON_AddNullToObject(o, "eta_s");
    cJSON_AddNumberToObject(o, "created_ms", (double)j->created_ms);
    if (j->finished_ms)
        cJSON_AddNumberToObject(o, "finished_ms", (double)j->finished_ms);
    else
        cJSON_AddNullToObject(o, "finished_ms");
    cJSON_AddStringToObject(o, "source", drv_src_name(j->spec.source));
    /* The limits as the spec says them, and what the workers last reported holding. */
    cJSON *lim = cJSON_AddObjectToObject(o, "limits");
    if (j->spec.rate_per_s) {
        cJSON_AddNumberToObject(lim, "rate_per_second", (double)j->spec.rate_per_s);
        cJSON_AddNumberToObject(lim, "burst", (double)j->spec.rate_burst);
    } else {
        cJSON_AddNullToObject(lim, "rate_per_second");
        cJSON_AddNullToObject(lim, "burst");
    }
    if (j->spec.max_in_flight)
        cJSON_AddNumberToObject(lim, "max_in_flight", (double)j->spec.max_in_flight);
    else
        cJSON_AddNullToObject(lim, "max_in_flight");
    cJSON_AddNumberToObject(lim, "weight", (double)j->spec.weight);
    cJSON_AddBoolToObject(lim, "adaptive", v->lim.adaptive == 1);
    /* The effective in-flight limit: the adaptive one (null before the first admit), else
     * max_in_flight (null: none). */
    if (v->lim.adaptive == 1 && v->lim.limit > 0)
        cJSON_AddNumberToObject(lim, "effective_in_flight", (double)v->lim.limit);
    else if (v->lim.adaptive != 1 && j->spec.max_in_flight)
        cJSON_AddNumberToObject(lim, "effective_in_flight", (double)j->spec.max_in_flight);
    else
        cJSON_AddNullToObject(lim, "effective_in_flight");
    cJSON_AddNumberToObject(lim, "in_flight_reported", (double)v->lim.in_flight);
    cJSON_AddNumberToObject(lim, "workers_reporting", (double)v->lim.workers);
    /* Callbacks and expiry: null when not configured, false when configured and not yet sent,
     * else when it was accepted (ms, Redis time). */
    const struct {
        const char *name;
        int configured;
        int64_t at;
    } marks[] = {{"complete_sent_ms", j->spec.on_complete[0] != 0, j->complete_sent},
                 {"dead_alert_sent_ms", j->spec.on_dead[0] != 0, j->dead_alert_sent},
                 {"expires_ms", j->spec.ttl_after_done > 0, j->expires_ms}};
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++) {
        if (!marks[i].configured)
            cJSON_AddNullToObject(o, marks[i].name);
        else if (!marks[i].at)
            cJSON_AddFalseToObject(o, marks[i].name);
        else
            cJSON_AddNumberToObject(o, marks[i].name, (double)marks[i].at);
    }
    if (!with_parts) {
        cJSON_AddNumberToObject(o, "partitions", j->partitions);
        return o;
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "partitions");
    for (int p = 0; p < j->partitions; p++) {
        const drv_part_stat *s = &v->st[p];
        cJSON *po = cJSON_CreateObject();
        cJSON_AddNumberToObject(po, "partition", p);
        cJSON_AddStringToObject(po, "state", s->state);
        cJSON_AddNumberToObject(po, "fed", (double)s->fed);
        cJSON_AddNumberToObject(po, "done", (double)s->done);
        cJSON_AddNumberToObject(po, "pending", (double)s->pending);
        cJSON_AddNumberToObject(po, "leased", (double)s->leased);
        cJSON_AddNumberToObject(po, "retrying", (double)s->retrying);
        cJSON_AddNumberToObject(po, "dead", (double)s->dead);
        cJSON_AddNumberToObject(po, "duplicates", (double)s->duplicates);
        cJSON_AddStringToObject(po, "cursor", s->cursor);
        cJSON_AddBoolToObject(po, "exhausted", s->exhausted);
        if (s->split_from >= 0) cJSON_AddNumberToObject(po, "split_from", s->split_from);
        cJSON_AddItemToArray(arr, po);
    }
    return o;
}

drv_err drv_status_json(drv_queue *q, const char *id, int with_parts, cJSON **out) {
    job_view v;
    drv_err e = load_view(q, id, &v);
    if (!e && !(*out = view_json(&v, with_parts))) e = DRV_ENOMEM;
    free(v.st);
    return e;
}

static void print_json(cJSON *o) {
    char *txt = cJSON_PrintUnformatted(o);
    if (txt) puts(txt);
    cJSON_free(txt);
    cJSON_Delete(o);
}

/* "[##########..........]  50.0%": done and dead items over the total, once it is known. */
static void progress_bar(const job_view *v, char *buf, size_t len) {
    enum { W = 40 };
    const drv_job *j = &v->job;
    if (j->total <= 0) {
        /* No fraction to show: the counts and the rate say how it goes. */
        snprintf(buf, len,
                 "%" PRId64 " done, %" PRId64 " dead of %" PRId64
                 " fed so far, %.1f/s (total not known yet)",
                 v->t.done, v->t.dead, v->t.fed, (double)j->rate_milli / 1000.0);
        return;
    }
    double f = (double)(v->t.done + v->t.dead) / (double)j->total;
    if (f > 1) f = 1;
    char bar[W + 1];
    int full = (int)(f * W);
    for (int i = 0; i < W; i++)
        bar[i] = i < full ? '#' : '.';
    bar[W] = '\0';
    snprintf(buf, len, "[%s] %5.1f%%", bar, f * 100.0);
}

/* One line: for --watch when stdout is not a terminal, and for logs. */
static void print_line(const job_view *v) {
    char bar[96], tot[24] = "?";
    progress_bar(v, bar, sizeof bar);
    if (v->job.total >= 0) snprintf(tot, sizeof tot, "%" PRId64, v->job.total);
    printf("%s %s %s done %" PRId64 "/%s dead %" PRId64 " pending %" PRId64 " leased %" PRId64
           " rate %.1f/s\n",
           v->job.id, v->job.state, bar, v->t.done, tot, v->t.dead, v->t.pending, v->t.leased,
           (double)v->job.rate_milli / 1000.0);
}

static void print_human(const job_view *v) {
    const drv_job *j = &v->job;
    char created[32], finished[32], total[32] = "unknown yet", eta[32] = "-";
    fmt_time(j->created_ms, created, sizeof created);
    fmt_time(j->finished_ms, finished, sizeof finished);
    if (j->total >= 0) snprintf(total, sizeof total, "%" PRId64, j->total);
    double e = eta_seconds(v);
    if (e >= 0) snprintf(eta, sizeof eta, "%.0fs", e);
    char pct[32] = "";
    if (j->total > 0)
        snprintf(pct, sizeof pct, " (%.1f%%)", 100.0 * (double)v->t.done / (double)j->total);
    printf("job %s: %s (%s source, %d partitions)\n", j->id, j->state, drv_src_name(j->spec.source),
           j->partitions);
    printf("  created %s, finished %s\n", created, finished);
    printf("  total %s  fed %" PRId64 "  done %" PRId64 "%s  skipped %" PRId64 "\n", total,
           v->t.fed, v->t.done, pct, v->t.skipped);
    if (feeder_lost(v))
        printf("  feeder lost %" PRId64 " s ago: its standard input stopped before the end; pipe "
               "the same input into drover submit --id %s --source - again to resume\n",
               v->feeder_age_ms / 1000, j->id);
    printf("  pending %" PRId64 "  leased %" PRId64 "  retrying %" PRId64 "  dead %" PRId64
           "  duplicates %" PRId64 "\n",
           v->t.pending, v->t.leased, v->t.retrying, v->t.dead, v->t.duplicates);
    char bar[96];
    progress_bar(v, bar, sizeof bar);
    printf("  %s\n", bar);
    printf("  rate %.1f/s  eta %s\n", (double)j->rate_milli / 1000.0, eta);
    if (j->st == DRV_JOB_PAUSED && j->halted[0]) printf("  %s\n", j->halted);
    if (j->spec.on_complete[0] || j->spec.on_dead[0] || j->spec.ttl_after_done) {
        char sent[32], alert[32], exp[32];
        fmt_time(j->complete_sent, sent, sizeof sent);
        fmt_time(j->dead_alert_sent, alert, sizeof alert);
        fmt_time(j->expires_ms, exp, sizeof exp);
        printf("  callbacks: complete sent %s, dead alert sent %s; keys expire %s\n",
               j->spec.on_complete[0] ? sent : "(none)", j->spec.on_dead[0] ? alert : "(none)",
               j->spec.ttl_after_done ? exp : "(never)");
    }
    int64_t cool = v->t.cooldown_until - drv_wall_ms();
    if (cool > 0)
        printf("  cooling down: the API sent Retry-After; claims resume in %.1f s\n",
               (double)cool / 1000.0);
    if (v->t.throttled || v->t.cooldowns)
        printf("  throttled: %" PRId64 " answers (429 or Retry-After; no attempt counted), "
               "%" PRId64 " fleet cool-downs (Retry-After)\n",
               v->t.throttled, v->t.cooldowns);
    if (j->spec.rate_per_s || j->spec.max_in_flight || j->spec.weight != 1 ||
        v->lim.adaptive == 1) {
        printf("  limits:");
        if (j->spec.rate_per_s)
            printf(" rate %" PRId64 "/s (burst %" PRId64 ")", j->spec.rate_per_s,
                   j->spec.rate_burst);
        if (j->spec.max_in_flight)
            printf(" max_in_flight %" PRId64 " (%" PRId64 " held by %" PRId64 " workers)",
                   j->spec.max_in_flight, v->lim.in_flight, v->lim.workers);
        printf(" weight %" PRId64, j->spec.weight);
        if (v->lim.adaptive == 1 && v->lim.limit > 0)
            printf("; adaptive in-flight limit %" PRId64 " (%" PRId64 " held by %" PRId64
                   " workers)",
                   v->lim.limit, v->lim.in_flight, v->lim.workers);
        else if (v->lim.adaptive == 1)
            printf("; adaptive in-flight limit (not started)");
        printf("\n");
    }
    printf("\n");
    printf("  %4s %-9s %10s %10s %8s %7s %8s %6s %5s  %s\n", "part", "state", "fed", "done",
           "pending", "leased", "retrying", "dead", "dups", "cursor");
    for (int p = 0; p < j->partitions; p++) {
        const drv_part_stat *s = &v->st[p];
        char from[32] = "";
        if (s->split_from >= 0) snprintf(from, sizeof from, " (split from %d)", s->split_from);
        printf("  %4d %-9s %10" PRId64 " %10" PRId64 " %8" PRId64 " %7" PRId64 " %8" PRId64
               " %6" PRId64 " %5" PRId64 "  %s%s%s\n",
               p, s->state, s->fed, s->done, s->pending, s->leased, s->retrying, s->dead,
               s->duplicates, s->cursor, s->exhausted ? " (source done)" : "", from);
    }
}

static int fail_job(drv_queue *q, const char *id, drv_err e) {
    if (e == DRV_ENOJOB)
        fprintf(stderr, "error: no job %s (see drover list)\n", id);
    else if (e == DRV_ECORRUPT)
        fprintf(stderr, "error: job %s is broken: %s\n", id, drv_queue_strerror(q, e));
    else
        fprintf(stderr, "error: job %s: %s\n", id, drv_queue_strerror(q, e));
    return 1;
}

int cmd_status(int argc, char **argv) {
    drv_cli cli;
    int json = 0, watch = 0;
    long long interval_ms;
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"json", NULL, DRV_OPT_BOOL, NULL, NULL, "one JSON object on stdout", 0, 0, &json},
        {"watch", NULL, DRV_OPT_BOOL, NULL, NULL, "refresh until the job ends", 0, 0, &watch},
        {"interval-ms", NULL, DRV_OPT_INT, "1000", "MS", "--watch: refresh interval", 50, 3600000,
         &interval_ms},
        {0},
    };
    char *id;
    int rc = parse_job_args(opts, &status_doc, argc, argv, &id);
    if (rc != -1) return rc;
    drv_redis_cfg cfg;
    drv_queue *q;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, &q))) return rc;
    job_view v;
    drv_err e = load_view(q, id, &v);
    int tty = isatty(STDOUT_FILENO);
    while (!e && watch) {
        if (json)
            print_json(view_json(&v, 0));
        else if (tty) {
            printf("\033[H\033[2J"); /* home, clear: a dashboard that refreshes in place */
            print_human(&v);
        } else
            print_line(&v);
        fflush(stdout);
        if (drv_job_state_finished(v.job.st)) break;
        drv_sleep_ms(interval_ms);
        free(v.st);
        e = load_view(q, id, &v);
    }
    if (e) {
        rc = fail_job(q, id, e);
    } else if (watch) {
        rc = 0;
    } else if (json) {
        print_json(view_json(&v, 1));
    } else {
        print_human(&v);
    }
    free(v.st);
    drv_queue_close(q);
    return rc;
}

int cmd_list(int argc, char **argv) {
    drv_cli cli;
    int json = 0;
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"json", NULL, DRV_OPT_BOOL, NULL, NULL, "one JSON object per line", 0, 0, &json},
        {0},
    };
    char *pos[1];
    int npos;
    int rc = drv_opts_parse(opts, &list_doc, argc, argv, pos, 0, &npos, NULL, NULL);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : EXIT_USAGE;
    drv_redis_cfg cfg;
    drv_queue *q;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, &q))) return rc;
    char(*ids)[DRV_JOB_ID_MAX + 1];
    size_t n;
    drv_err e = drv_queue_job_list(q, &ids, &n);
    if (e) {
        fprintf(stderr, "error: listing jobs: %s\n", drv_queue_strerror(q, e));
        drv_queue_close(q);
        return 1;
    }
    if (!json && n)
        printf("%-32s %-9s %12s %12s %8s  %s\n", "JOB", "STATE", "DONE", "TOTAL", "DEAD",
               "CREATED");
    for (size_t i = 0; i < n; i++) {
        job_view v;
        drv_err le = load_view(q, ids[i], &v);
        if (le == DRV_ECORRUPT) {
            /* Listed but unreadable: shown, so it is not forgotten in Redis. */
            if (json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "id", ids[i]);
                cJSON_AddStringToObject(o, "state", "broken");
                cJSON_AddStringToObject(o, "error", drv_queue_strerror(q, le));
                print_json(o);
            } else {
                printf("%-32s %-9s %12s %12s %8s  %s\n", ids[i], "broken", "?", "?", "?",
                       drv_queue_strerror(q, le));
            }
        } else if (le == DRV_OK) {
            if (json) {
                print_json(view_json(&v, 0));
            } else {
                char created[32], total[24] = "?";
                fmt_time(v.job.created_ms, created, sizeof created);
                if (v.job.total >= 0) snprintf(total, sizeof total, "%" PRId64, v.job.total);
                printf("%-32s %-9s %12" PRId64 " %12s %8" PRId64 "  %s\n", v.job.id, v.job.state,
                       v.t.done, total, v.t.dead, created);
            }
        }
        free(v.st);
    }
    free(ids);
    drv_queue_close(q);
    return 0;
}

int cmd_wait(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover wait JOB [--timeout S] [--json]",
        "Blocks until JOB ends, for scripts and CI pipelines. Exits 0 when it is done, 1 when it\n"
        "is done with dead items (see drover dead), 4 when it is cancelled, 3 when --timeout\n"
        "seconds pass first. A progress line goes to stderr every --progress-ms (0: none);\n"
        "--json prints the final status object on stdout. A lost Redis connection is retried\n"
        "until the timeout.",
        "  drover wait backfill --timeout 3600 && echo finished\n"
        "  drover wait backfill --json --progress-ms 0 | jq .dead"};
    drv_cli cli;
    int json = 0;
    long long timeout_s, interval_ms, progress_ms;
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"timeout", NULL, DRV_OPT_INT, "0", "S", "give up after S seconds and exit 3 (0: never)", 0,
         31536000, &timeout_s},
        {"interval-ms", NULL, DRV_OPT_INT, "500", "MS", "how often to look", 10, 60000,
         &interval_ms},
        {"progress-ms", NULL, DRV_OPT_INT, "10000", "MS", "progress line interval (0: none)", 0,
         86400000, &progress_ms},
        {"json", NULL, DRV_OPT_BOOL, NULL, NULL, "the final status as JSON on stdout", 0, 0, &json},
        {0},
    };
    char *id;
    int rc = parse_job_args(opts, &doc, argc, argv, &id);
    if (rc != -1) return rc;
    drv_redis_cfg cfg;
    drv_queue *q;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, &q))) return rc;
    int64_t start = drv_now_ms(), next_progress = start + progress_ms;
    int64_t deadline = timeout_s ? start + timeout_s * 1000 : 0;
    int said_lost = 0;
    job_view v;
    memset(&v, 0, sizeof v);
    for (;;) {
        free(v.st);
        drv_err e = load_view(q, id, &v);
        if (e == DRV_EIO) {
            char why[256];
            if (!said_lost++)
                fprintf(stderr, "drover wait: lost Redis at %s; retrying\n", drv_queue_addr(q));
            drv_queue_reconnect(q, why, sizeof why);
        } else if (e) {
            rc = fail_job(q, id, e);
            break;
        } else {
            said_lost = 0;
            if (drv_job_state_finished(v.job.st)) {
                rc = v.job.st == DRV_JOB_CANCELLED ? EXIT_CANCELLED : v.t.dead ? 1 : 0;
                if (!json)
                    fprintf(stderr, "job %s: %s: %" PRId64 " done, %" PRId64 " dead\n", v.job.id,
                            v.job.state, v.t.done, v.t.dead);
                break;
            }
        }
        int64_t now = drv_now_ms();
        if (progress_ms && now >= next_progress && !e) {
            char tot[24] = "?";
            if (v.job.total >= 0) snprintf(tot, sizeof tot, "%" PRId64, v.job.total);
            fprintf(stderr, "job %s: %s, done %" PRId64 "/%s, dead %" PRId64 ", rate %.0f/s\n",
                    v.job.id, v.job.state, v.t.done, tot, v.t.dead,
                    (double)v.job.rate_milli / 1000.0);
            next_progress = now + progress_ms;
        }
        if (deadline && now >= deadline) {
            fprintf(stderr, "drover wait: job %s still %s after %lld s\n", id,
                    e ? "unknown" : v.job.state, timeout_s);
            rc = EXIT_TIMEOUT;
            break;
        }
        int64_t nap = interval_ms;
        if (deadline && deadline - now < nap) nap = deadline - now;
        drv_sleep_ms(nap);
    }
    if (json && (rc == 0 || rc == 1 || rc == EXIT_CANCELLED || rc == EXIT_TIMEOUT) && v.st)
        print_json(view_json(&v, 0));
    free(v.st);
    drv_queue_close(q);
    return rc;
}
