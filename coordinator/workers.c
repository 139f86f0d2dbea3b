/* drover workers and drover drain: the fleet as the workers report it. */
#include "coord.h"

#include "cli.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses the common options and up to one positional argument, and connects. Returns -1 to go
 * on, or the exit code. */
static int open_fleet(int argc, char **argv, const drv_cmd_doc *doc, int npos_want, char **pos,
                      int *json, drv_queue **q) {
    drv_cli cli;
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"json", NULL, DRV_OPT_BOOL, NULL, NULL, "one JSON object per line", 0, 0, json},
        {0},
    };
    int npos;
    int rc = drv_opts_parse(opts, doc, argc, argv, pos, npos_want, &npos, NULL, NULL);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : EXIT_USAGE;
    if (npos != npos_want) {
        fprintf(stderr, "error: %s needs a WORKER id (see drover workers)\n", argv[0]);
        return EXIT_USAGE;
    }
    drv_redis_cfg cfg;
    if ((rc = drv_cli_check(&cli, &cfg)) || (rc = drv_cli_connect(&cli, &cfg, q))) return rc;
    return -1;
}

static const char *state_of(const drv_worker_info *w, int64_t now) {
    return now - w->beat_ms > w->lease_ms ? "lost" : w->state[0] ? w->state : "running";
}

cJSON *drv_worker_json(const drv_worker_info *x, int64_t now) {
    double age = (double)(now - x->beat_ms) / 1000.0;
    double up = x->started_ms ? (double)(now - x->started_ms) / 1000.0 : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", x->id);
    cJSON_AddStringToObject(o, "state", state_of(x, now));
    cJSON_AddNumberToObject(o, "age_s", age);
    cJSON_AddNumberToObject(o, "in_flight", (double)x->in_flight);
    cJSON_AddNumberToObject(o, "queued", (double)x->queued);
    cJSON_AddNumberToObject(o, "done", (double)x->done);
    cJSON_AddNumberToObject(o, "failed", (double)x->failed);
    cJSON_AddStringToObject(o, "jobs", x->jobs);
    cJSON_AddStringToObject(o, "host", x->host);
    cJSON_AddNumberToObject(o, "pid", (double)x->pid);
    cJSON_AddStringToObject(o, "version", x->version);
    cJSON_AddNumberToObject(o, "lease_ms", (double)x->lease_ms);
    cJSON_AddNumberToObject(o, "started_ms", (double)x->started_ms);
    cJSON_AddNumberToObject(o, "uptime_s", up);
    return o;
}

int cmd_workers(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover workers [--json]",
        "Lists the workers that report to this Redis, with what they said in their last\n"
        "heartbeat (every second): state, seconds since that heartbeat, items in flight and\n"
        "queued, done and failed so far, the jobs they serve, host, pid, version and uptime.\n"
        "A worker silent for longer than the lease of its jobs is shown as lost: its items\n"
        "come back to the others when their leases expire. A worker that exits cleanly leaves\n"
        "the list; a lost one is forgotten a day after its last heartbeat.",
        "  drover workers\n"
        "  drover workers --json | jq -r 'select(.state == \"lost\") | .id'"};
    int json = 0;
    drv_queue *q;
    char *pos[1];
    int rc = open_fleet(argc, argv, &doc, 0, pos, &json, &q);
    if (rc >= 0) return rc;
    drv_worker_info *w;
    size_t n;
    int64_t now;
    drv_err e = drv_queue_workers(q, &w, &n, &now);
    if (e) {
        fprintf(stderr, "error: listing workers: %s\n", drv_queue_strerror(q, e));
        drv_queue_close(q);
        return 1;
    }
    if (!json && n)
        printf("%-28s %-9s %6s %6s %6s %10s %8s %-20s %-16s %7s %8s %7s\n", "WORKER", "STATE",
               "AGE", "FLIGHT", "QUEUED", "DONE", "FAILED", "JOBS", "HOST", "PID", "VERSION",
               "UPTIME");
    if (!json && !n) fprintf(stderr, "no workers have reported\n");
    for (size_t i = 0; i < n; i++) {
        const drv_worker_info *x = &w[i];
        double age = (double)(now - x->beat_ms) / 1000.0;
        double up = x->started_ms ? (double)(now - x->started_ms) / 1000.0 : 0;
        if (json) {
            cJSON *o = drv_worker_json(x, now);
            char *t = cJSON_PrintUnformatted(o);
            if (t) puts(t);
            cJSON_free(t);
            cJSON_Delete(o);
        } else {
            printf("%-28s %-9s %6.1f %6" PRId64 " %6" PRId64 " %10" PRId64 " %8" PRId64
                   " %-20s %-16s %7" PRId64 " %8s %6.0fs\n",
                   x->id, state_of(x, now), age, x->in_flight, x->queued, x->done, x->failed,
                   x->jobs[0] ? x->jobs : "-", x->host, x->pid, x->version, up);
        }
    }
    free(w);
    drv_queue_close(q);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_drain(int argc, char **argv) {
    static const drv_cmd_doc doc = {
        "drover drain WORKER",
        "Asks one worker (an id from drover workers) to finish and exit, as SIGTERM would: at\n"
        "its next heartbeat (within a second) it stops claiming, hands back items it has not\n"
        "started, lets running ones finish within its --grace, and exits 0. For a host going\n"
        "down while the rest of the fleet carries on.",
        "  drover drain web-3:41822"};
    int json = 0;
    drv_queue *q;
    char *pos[1];
    int rc = open_fleet(argc, argv, &doc, 1, pos, &json, &q);
    if (rc >= 0) return rc;
    drv_err e = drv_queue_worker_drain(q, pos[0]);
    if (e == DRV_ENOJOB) {
        fprintf(stderr, "error: no worker %s (see drover workers)\n", pos[0]);
        rc = 1;
    } else if (e) {
        fprintf(stderr, "error: worker %s: %s\n", pos[0], drv_queue_strerror(q, e));
        rc = 1;
    } else {
        printf("worker %s: asked to drain; it finishes what it runs and exits\n", pos[0]);
        rc = 0;
    }
    drv_queue_close(q);
    return rc;
}
