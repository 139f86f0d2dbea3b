/* drover metrics and drover run --metrics-addr: the Prometheus text exposition of jobs and
 * workers, printed or served over HTTP. */
#include "metrics.h"

#include "cli.h"
#include "coord.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An exposition larger than this is refused rather than sent (name the jobs you want). */
#define METRICS_MAX_BYTES (64u << 20)

/* ---- rendering ------------------------------------------------------------------------------- */

/* What one job contributes: its hash and the sum of its partitions. */
typedef struct job_row {
    char id[DRV_JOB_ID_MAX + 1];
    char state[16];
    int partitions;
    int64_t total, rate_milli;
    drv_part_stat t;
} job_row;

static void family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the exposition format says: backslash, double quote, newline. */
static void label_value(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* name{label="value"[,label2="value2"]} v */
static void sample(FILE *f, const char *name, const char *label, const char *value,
                   const char *label2, const char *value2) {
    fprintf(f, "%s{%s=", name, label);
    label_value(f, value);
    if (label2) {
        fprintf(f, ",%s=", label2);
        label_value(f, value2);
    }
    fputc('}', f);
}

static void sample_int(FILE *f, const char *name, const char *label, const char *value, int64_t v) {
    sample(f, name, label, value, NULL, NULL);
    fprintf(f, " %" PRId64 "\n", v);
}

/* Reads one job into *row. DRV_ENOJOB when it is gone. */
static drv_err load_job(drv_queue *q, const char *id, drv_job *scratch, job_row *row) {
    drv_err e = drv_queue_job_get(q, id, scratch);
    if (e) return e;
    drv_part_stat *st = calloc((size_t)scratch->partitions, sizeof *st);
    if (!st) return DRV_ENOMEM;
    e = drv_queue_stats(q, id, scratch->partitions, st);
    if (!e) {
        memset(row, 0, sizeof *row);
        snprintf(row->id, sizeof row->id, "%s", scratch->id);
        snprintf(row->state, sizeof row->state, "%s", scratch->state);
        row->partitions = scratch->partitions;
        row->total = scratch->total;
        row->rate_milli = scratch->rate_milli;
        drv_part_stat_sum(st, scratch->partitions, &row->t);
    }
    free(st);
    return e;
}

/* 1 if the worker's comma-separated job list names one of jobs[0..njobs). */
static int serves_one_of(const char *list, char *const *jobs, int njobs) {
    for (int i = 0; i < njobs; i++) {
        size_t n = strlen(jobs[i]);
        for (const char *p = list; *p;) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            if (len == n && strncmp(p, jobs[i], n) == 0) return 1;
            p += len + (end ? 1 : 0);
        }
    }
    return 0;
}

static void render_jobs(FILE *f, const job_row *r, size_t n) {
    static const char *const states[] = {"running", "paused", "cancelled", "done"};
    family(f, "drover_job_state", "gauge",
           "1 for the job's current state (running, paused, cancelled, done), 0 for the others.");
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < sizeof states / sizeof *states; s++) {
            sample(f, "drover_job_state", "job", r[i].id, "state", states[s]);
            fprintf(f, " %d\n", strcmp(r[i].state, states[s]) == 0);
        }
    family(f, "drover_job_partitions", "gauge", "Partitions of the job.");
    for (size_t i = 0; i < n; i++)
        sample_int(f, "drover_job_partitions", "job", r[i].id, r[i].partitions);
    family(f, "drover_job_source_items", "gauge",
           "Items in the job's source, once known (absent before).");
    for (size_t i = 0; i < n; i++)
        if (r[i].total >= 0) sample_int(f, "drover_job_source_items", "job", r[i].id, r[i].total);
    family(f, "drover_job_items_per_second", "gauge",
           "Items done per second, as the coordinator measured it (0 until measured).");
    for (size_t i = 0; i < n; i++) {
        sample(f, "drover_job_items_per_second", "job", r[i].id, NULL, NULL);
        fprintf(f, " %" PRId64 ".%03" PRId64 "\n", r[i].rate_milli / 1000,
                (r[i].rate_milli < 0 ? -r[i].rate_milli : r[i].rate_milli) % 1000);
    }
    family(f, "drover_items", "gauge",
           "Items of the job by where they are now: pending, leased, retrying (waiting out a "
           "backoff), dead.");
    for (size_t i = 0; i < n; i++) {
        const struct {
            const char *state;
            int64_t v;
        } by[] = {{"pending", r[i].t.pending},
                  {"leased", r[i].t.leased},
                  {"retrying", r[i].t.retrying},
                  {"dead", r[i].t.dead}};
        for (size_t s = 0; s < sizeof by / sizeof *by; s++) {
            sample(f, "drover_items", "job", r[i].id, "state", by[s].state);
            fprintf(f, " %" PRId64 "\n", by[s].v);
        }
    }
    const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"drover_items_fed_total", "Items the coordinator fed into the job's partitions.",
         offsetof(drv_part_stat, fed)},
        {"drover_items_done_total", "Items acknowledged done (each id counted once).",
         offsetof(drv_part_stat, done)},
        {"drover_attempts_failed_total", "Failed attempts (retried or dead-lettered).",
         offsetof(drv_part_stat, failed)},
        {"drover_duplicates_total", "Acks that arrived after their lease was lost.",
         offsetof(drv_part_stat, duplicates)},
        {"drover_leases_expired_total", "Leases that expired and were handed out again.",
         offsetof(drv_part_stat, expired)},
        {"drover_items_skipped_total", "Items dropped at claim time because already done.",
         offsetof(drv_part_stat, skipped)},
        {"drover_throttled_total",
         "Throttled answers (429, or a retry status with Retry-After): no attempt counted.",
         offsetof(drv_part_stat, throttled)},
        {"drover_cooldowns_total", "Fleet cool-downs started (an API's Retry-After).",
         offsetof(drv_part_stat, cooldowns)},
    };
    for (size_t c = 0; c < sizeof counters / sizeof *counters; c++) {
        family(f, counters[c].name, "counter", counters[c].help);
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, (const char *)&r[i].t + counters[c].off, sizeof v);
            sample_int(f, counters[c].name, "job", r[i].id, v);
        }
    }
}

static void render_workers(FILE *f, const drv_worker_info *w, size_t n, int64_t now,
                           char *const *jobs, int njobs) {
    const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"drover_worker_up", "gauge",
         "1 while the worker heartbeats, 0 once silent longer than its lease (lost)."},
        {"drover_worker_in_flight", "gauge", "Items the worker is running now."},
        {"drover_worker_queued", "gauge", "Items the worker holds but has not started."},
        {"drover_worker_done_total", "counter", "Items the worker finished ok since it started."},
        {"drover_worker_failed_total", "counter",
         "Failed attempts of the worker since it started."},
        {"drover_worker_heartbeat_age_seconds", "gauge",
         "Seconds since the worker's last heartbeat."},
        {"drover_worker_spans_dropped_total", "counter",
         "Spans the worker's --otlp-endpoint exporter dropped (queue full or collector failing)."},
    };
    for (size_t k = 0; k < sizeof fams / sizeof *fams; k++) {
        family(f, fams[k].name, fams[k].type, fams[k].help);
        for (size_t i = 0; i < n; i++) {
            const drv_worker_info *x = &w[i];
            if (njobs && !serves_one_of(x->jobs, jobs, njobs)) continue;
            int64_t age = now - x->beat_ms;
            sample(f, fams[k].name, "worker", x->id, NULL, NULL);
            switch (k) {
            case 0:
                fprintf(f, " %d\n", age <= x->lease_ms);
                break;
            case 1:
                fprintf(f, " %" PRId64 "\n", x->in_flight);
                break;
            case 2:
                fprintf(f, " %" PRId64 "\n", x->queued);
                break;
            case 3:
                fprintf(f, " %" PRId64 "\n", x->done);
                break;
            case 4:
                fprintf(f, " %" PRId64 "\n", x->failed);
                break;
            case 5:
                fprintf(f, " %.3f\n", (double)age / 1000.0);
                break;
            default:
                fprintf(f, " %" PRId64 "\n", x->spans_dropped);
                break;
            }
        }
    }
}

drv_err drv_metrics_render(drv_queue *q, char *const *jobs, int njobs, FILE *out, int *missing,
                           char *why, size_t whylen) {
    char(*ids)[DRV_JOB_ID_MAX + 1] = NULL;
    size_t nids = 0;
    job_row *rows = NULL;
    drv_worker_info *w = NULL;
    size_t nw = 0, nrows = 0;
    int64_t now = 0;
    int gone = 0;
    drv_job *scratch = malloc(sizeof *scratch); /* large (spec, page URL): not on the stack */
    drv_err e = DRV_ENOMEM;
    if (!scratch) goto out;
    if (!njobs && (e = drv_queue_job_list(q, &ids, &nids))) goto out;
    size_t want = njobs ? (size_t)njobs : nids;
    e = DRV_ENOMEM;
    if (want && !(rows = calloc(want, sizeof *rows))) goto out;
    for (size_t i = 0; i < want; i++) {
        const char *id = njobs ? jobs[i] : ids[i];
        int again = 0; /* a job named twice would repeat its series: the scraper refuses that */
        for (size_t k = 0; njobs && k < i; k++)
            again |= strcmp(jobs[k], id) == 0;
        if (again) continue;
        e = load_job(q, id, scratch, &rows[nrows]);
        if (e == DRV_ENOJOB) { /* named and absent, or deleted since the listing */
            if (njobs && !gone++) snprintf(why, whylen, "%s", id);
            continue;
        }
        if (e) goto out;
        nrows++;
    }
    if ((e = drv_queue_workers(q, &w, &nw, &now))) goto out;
    render_jobs(out, rows, nrows);
    render_workers(out, w, nw, now, jobs, njobs);
    if (missing) *missing = gone;
    e = ferror(out) ? DRV_ENOMEM : DRV_OK;
out:
    free(w);
    free(rows);
    free(ids);
    free(scratch);
    return e;
}

/* Renders into a new buffer. DRV_EIO: the connection broke (caller may reconnect). */
static drv_err render_buf(drv_queue *q, char *const *jobs, int njobs, char **buf, size_t *len,
                          int *missing, char *why, size_t whylen) {
    char *b = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&b, &n);
    if (!f) return DRV_ENOMEM;
    drv_err e = drv_metrics_render(q, jobs, njobs, f, missing, why, whylen);
    if (fclose(f) != 0 && !e) e = DRV_ENOMEM;
    if (!e && n > METRICS_MAX_BYTES) {
        snprintf(why, whylen, "the exposition is over %u MiB: name the jobs you want",
                 METRICS_MAX_BYTES >> 20);
        e = DRV_ETOOBIG;
    }
    if (e) {
        free(b);
        return e;
    }
    *buf = b;
    *len = n;
    return DRV_OK;
}

/* ---- the HTTP server ------------------------------------------------------------------------- */

struct drv_metrics_srv {
    struct MHD_Daemon *d;
    drv_queue *q; /* used by the server thread only */
    char *const *jobs;
    int njobs;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text,
                             const char *allow) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Runs on libmicrohttpd's polling thread, one request at a time: the only user of s->q. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **req_cls) {
    (void)version, (void)upload, (void)upload_len, (void)req_cls;
    drv_metrics_srv *s = cls;
    if (strcmp(url, "/metrics") != 0) return reply(conn, MHD_HTTP_NOT_FOUND, "try /metrics\n", 0);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n", "GET, HEAD");
    char why[600] = "", *buf = NULL;
    size_t len = 0;
    drv_err e = DRV_EIO;
    /* One reconnect per scrape: a scraper retries on its own schedule. */
    for (int attempt = 0; attempt < 2 && e == DRV_EIO; attempt++) {
        if (drv_queue_broken(s->q) && drv_queue_reconnect(s->q, why, sizeof why) != DRV_OK) break;
        e = render_buf(s->q, s->jobs, s->njobs, &buf, &len, NULL, why, sizeof why);
        if (e == DRV_EIO || e == DRV_EREPLY)
            snprintf(why, sizeof why, "%s", drv_queue_strerror(s->q, e));
    }
    if (e) {
        char text[700];
        const char *addr = drv_queue_addr(s->q);
        if (!why[0]) snprintf(why, sizeof why, "%s", drv_strerror(e));
        if (strstr(why, addr)) /* a failed reconnect names the address already */
            snprintf(text, sizeof text, "drover: metrics unavailable: %s\n", why);
        else
            snprintf(text, sizeof text, "drover: metrics unavailable: Redis at %s: %s\n", addr,
                     why);
        drv_warn("metrics: a scrape failed: %s", why);
        return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, NULL);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

drv_err drv_metrics_addr_parse(const char *addr, drv_metrics_addr *out, char *why, size_t whylen) {
    char host[256];
    const char *port;
    size_t n = strlen(addr);
    if (n == 0 || n >= sizeof out->text) goto bad;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - addr - 1) >= sizeof host || rb == addr + 1)
            goto bad;
        memcpy(host, addr + 1, (size_t)(rb - addr - 1));
        host[rb - addr - 1] = '\0';
        port = rb + 2;
    } else {
        const char *c = strrchr(addr, ':');
        if (!c || c == addr || (size_t)(c - addr) >= sizeof host ||
            memchr(addr, ':', (size_t)(c - addr)))
            goto bad;
        memcpy(host, addr, (size_t)(c - addr));
        host[c - addr] = '\0';
        port = c + 1;
    }
    long long p;
    if (drv_parse_ll(port, 1, 65535, &p) != 0) {
        snprintf(why, whylen, "expected a port from 1 to 65535 after the colon, got \"%s\"", port);
        return DRV_EINVAL;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(why, whylen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return DRV_EINVAL;
    }
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    snprintf(out->text, sizeof out->text, "%s", addr);
    freeaddrinfo(res);
    return DRV_OK;
bad:
    snprintf(why, whylen,
             "expected HOST:PORT (or [IPV6]:PORT), like 127.0.0.1:9464, got \"%.280s\"", addr);
    return DRV_EINVAL;
}

drv_err drv_metrics_serve(const drv_metrics_addr *addr, drv_queue *q, char *const *jobs, int njobs,
                          drv_metrics_srv **out, char *why, size_t whylen) {
    drv_err e = DRV_ENOMEM;
    drv_metrics_srv *s = calloc(1, sizeof *s);
    /* The listening socket is ours, so a port in use is said with the system's words. */
    int fd = -1, one = 1;
    if (!s) goto fail;
    s->q = q;
    s->jobs = jobs;
    s->njobs = njobs;
    e = DRV_EIO;
    fd = socket(addr->ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 || listen(fd, 64) != 0) {
        snprintf(why, whylen, "cannot listen on %s: %s", addr->text, strerror(errno));
        goto fail;
    }
    /* Signals stay with the main thread: the polling thread starts with them blocked. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (addr->ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET,
                            (MHD_socket)fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)32, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!s->d) {
        snprintf(why, whylen, "cannot start the HTTP server on %s", addr->text);
        goto fail;
    }
    *out = s;
    return DRV_OK;
fail:
    if (fd >= 0) close(fd);
    free(s);
    drv_queue_close(q);
    return e;
}

void drv_metrics_stop(drv_metrics_srv *s) {
    if (!s) return;
    MHD_stop_daemon(s->d); /* joins the polling thread and closes the socket */
    drv_queue_close(s->q);
    free(s);
}

/* ---- drover metrics -------------------------------------------------------------------------- */

int cmd_metrics(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover metrics [JOB...]",
        "Prints the Prometheus text exposition of every job (or of the jobs named) and of the\n"
        "workers (those serving a named job): items by state, done, fed, failed attempts,\n"
        "duplicates, expired leases and the rate per job; up, in flight, done and failed per\n"
        "worker. The names are listed in the README. To let Prometheus scrape a coordinator,\n"
        "start it with drover run JOB --metrics-addr HOST:PORT instead. The output is already\n"
        "a machine format; for JSON use drover status JOB --json and drover workers --json.",
        "  drover metrics backfill\n"
        "  drover metrics | grep '^drover_items{'\n"
        "  drover metrics > /var/lib/node_exporter/textfile/drover.prom.$$ && \\\n"
        "    mv /var/lib/node_exporter/textfile/drover.prom.$$ "
        "/var/lib/node_exporter/textfile/drover.prom"};
    enum { MAX_JOBS = 256 };
    drv_cli cli;
    const drv_opt opts[] = {DRV_CLI_OPTS(&cli), {0}};
    char *pos[MAX_JOBS];
    int npos;
    int rc = drv_opts_parse(opts, &doc, argc, argv, pos, MAX_JOBS, &npos, NULL, NULL);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : EXIT_USAGE;
    for (int i = 0; i < npos; i++)
        if (!drv_job_id_valid(pos[i])) {
            fprintf(stderr,
                    "error: \"%s\" is not a job id (letters, digits, _ and -, at most %d)\n",
                    pos[i], DRV_JOB_ID_MAX);
            return EXIT_USAGE;
        }
    drv_redis_cfg cfg;
    drv_queue *q;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, &q))) return rc;
    char why[600] = "", *buf = NULL;
    size_t len = 0;
    int missing = 0;
    drv_err e = render_buf(q, pos, npos, &buf, &len, &missing, why, sizeof why);
    rc = 1;
    if (e == DRV_EIO || e == DRV_EREPLY)
        fprintf(stderr, "error: reading metrics: %s\n", drv_queue_strerror(q, e));
    else if (e)
        fprintf(stderr, "error: reading metrics: %s\n", why[0] ? why : drv_strerror(e));
    else if (missing)
        fprintf(stderr, "error: no job %s (see drover list)\n", why);
    else if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
        fprintf(stderr, "error: writing the metrics: %s\n", strerror(errno));
    else
        rc = 0;
    free(buf);
    drv_queue_close(q);
    return rc;
}
