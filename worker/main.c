/* drover-worker: claims items from Redis and, for each, sends the job's HTTP request or runs
 * a command (or nothing). */
#include "handlers.h"
#include "otlp.h"
#include "serve.h"

#include "cli.h"
#include "clock.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DRV_HTTP_CONC     100 /* HTTP requests at once without --concurrency */
#define DRV_HTTP_CONC_STR "100"

static const drv_cmd_doc doc = {
    "drover-worker [OPTIONS] [-- CMD [ARG...]]\n       drover-worker [OPTIONS] --handler noop",
    "Claims items from drover jobs in Redis and handles each once.\n\n"
    "A job whose spec has an HTTP \"handler\" gets one request per item, sent by this worker\n"
    "(--concurrency requests in flight over reused connections, one thread). ${NAME} in the\n"
    "handler is taken from this worker's environment at start, so secrets stay out of Redis;\n"
    "a missing variable is an error. Only the names --allow-env lists (or its prefixes, such\n"
    "as DROVER_SECRET_*) are looked up: a job using any other ${NAME} is refused, naming it\n"
    "(with --job the worker exits 2). ok_status marks the item done; retry_status, timeouts\n"
    "and refused or reset connections retry with backoff (Retry-After honoured); any other\n"
    "status dead-letters the item at once. A 429, or a retry status with Retry-After, is a\n"
    "throttle, not a failed attempt (max_throttled); a Retry-After also pauses the job's whole\n"
    "fleet for that long, once per episode. --http-allow limits the hosts and ports requests may "
    "go\n"
    "to: HOST alone allows its scheme's default port only (80, 443), HOST:PORT that port,\n"
    "HOST:* any port.\n\n"
    "Other jobs run CMD once per item, never through a shell:\n"
    "{id} and {item} inside any ARG are replaced by the item's id and the item itself (for\n"
    "NDJSON and CSV sources the record as JSON). The item is also written to CMD's stdin, and\n"
    "DROVER_JOB, DROVER_ITEM_ID, DROVER_ATTEMPT and DROVER_LEASE_TOKEN (higher for each later\n"
    "lease of the item: a handler can fence stale writers with it, README) are set in its\n"
    "environment, and TRACEPARENT: the attempt's W3C trace context, continuing the item's own\n"
    "\"traceparent\" field when it is a JSON object with one (also sent as a traceparent header\n"
    "by the HTTP handler and in the --serve protocol; README, Trace context). Exit status 0 marks "
    "the item done; anything else is a failure, retried with\n"
    "backoff until the job's max_attempts, with the tail of CMD's stderr kept as the error. CMD's "
    "stdout is the\n"
    "worker's stdout. The command comes only from this command line: nothing read from Redis\n"
    "can make a worker run a program. CMD does not inherit the worker's Redis settings\n"
    "(DROVER_REDIS_URL, DROVER_PREFIX, DROVER_CONNECT_TIMEOUT_MS, DROVER_COMMAND_TIMEOUT_MS):\n"
    "a handler is not a worker. --pass-env NAME gives one back on purpose.\n\n"
    "A password in --redis URL is overwritten in the process's arguments once read, but\n"
    "shows in `ps` until then and stays in shell history: DROVER_REDIS_URL is the safer form.\n\n"
    "--stdin-batch K runs CMD once per K items (no {id} or {item} in its arguments), given on\n"
    "its stdin one per line with DROVER_BATCH_SIZE set; its stdout carries one result line per\n"
    "item, in order: \"ok\" marks the item done, any other line fails it with that text; an\n"
    "item without a line fails with \"no result\" (exit 0) or with the exit status, signal or\n"
    "timeout. DROVER_LEASE_TOKEN holds the items' lease tokens, space-separated, in line order.\n"
    "With --stdin-batch, --concurrency counts processes: N batches at once, up to N x K items.\n\n"
    "Handler processes run in their own process group and are SIGKILLed when the worker dies\n"
    "(PR_SET_PDEATHSIG): a killed worker leaves none running.\n\n"
    "--serve N starts N long-lived copies of CMD (never through a shell) and feeds them items\n"
    "over a line protocol (docs/handler-protocol.md): one JSON object per item on its stdin,\n"
    "one JSON answer per item on its stdout, in any order, so a handler keeps its interpreter\n"
    "and database connection warm. --serve-inflight K lets one process hold K items at once.\n"
    "--serve N sets --concurrency to N: the worker runs up to N x K items. A process that exits,\n"
    "crashes, writes a line that is not protocol or passes --timeout-ms fails its items and is\n"
    "restarted with backoff; --serve-max-items M replaces it after M items. On SIGTERM a\n"
    "process that holds no items gets EOF on stdin at once; the others get --grace to answer,\n"
    "then their groups are killed and what they held is handed back.\n\n"
    "SIGTERM or SIGINT drains: no more claims, unstarted items are handed back at once, running\n"
    "items get --grace seconds to finish, then the worker exits 0. A second signal exits at "
    "once.\n\n"
    "--health-file PATH makes the worker rewrite PATH each second Redis answers its heartbeat;\n"
    "drover-worker --health (with the same --health-file or DROVER_HEALTH_FILE) exits 0 when\n"
    "that was at most --max-age seconds ago and 1 otherwise, without contacting Redis: a\n"
    "container HEALTHCHECK that turns unhealthy while the worker has lost Redis.\n\n"
    "--ack-log FILE appends \"JOB ID\" lines to FILE (opened O_APPEND, so workers may share\n"
    "it), written once per ack call after Redis answered it: every id in it is in the job's\n"
    "done record (unless Redis itself lost writes: README, faults table). While Redis is "
    "unreachable the worker keeps running the items it holds,\n"
    "keeps their results (claiming nothing more) and sends them once it is back. Writes Redis\n"
    "refuses for now (OOM, MISCONF) are waited out the same way; anything that keeps failing\n"
    "backs off (50 ms doubling to 5 s) and is logged once until it works again.\n\n"
    "A job replaced with drover submit --replace is followed. With --job, a job whose keys\n"
    "vanish while it runs (FLUSHALL, purge) or whose job hash cannot be read makes the worker\n"
    "say so, drain and exit 1.",
    "  drover-worker --job rescore --concurrency 256 --http-allow api.example.com\n"
    "  drover-worker --job backfill --concurrency 16 -- ./reindex --invoice {id}\n"
    "  drover-worker --concurrency 8 -- curl -fsS -X POST https://api.example/rescore/{id}\n"
    "  drover-worker --job backfill --handler noop --batch 500   # measure coordination alone\n"
    "  DROVER_HEALTH_FILE=/tmp/drover-health drover-worker --health --max-age 30"};

int main(int argc, char **argv) {
    drv_log_init("worker");
    drv_cli cli;
    worker_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *id = NULL, *job = NULL, *handler_name = NULL, *allow = NULL, *health_file = NULL,
               *ack_log = NULL, *allow_env = NULL, *pass_env = NULL, *otlp_url = NULL;
    long long conc = 0, batch = 0, grace, timeout, idle, stats, vanish, host_conns, max_age,
              stdin_batch, serve_n, serve_inflight, serve_max;
    /* conc and batch have no default: 0 = chosen below (conc per handler, batch per claim) */
    int exit_when_done = 0, no_stdin = 0, version = 0, health = 0, noop = 0;
    exec_cfg exec;
    memset(&exec, 0, sizeof exec);
    const drv_opt opts[] = {
        DRV_CLI_OPTS(&cli),
        {"job", "DROVER_JOB_ID", DRV_OPT_STR, NULL, "J",
         "serve only job J (default: every running job)", 0, 0, &job},
        {"concurrency", "DROVER_CONCURRENCY", DRV_OPT_INT, NULL, "N",
         "handler processes (or HTTP requests) at once: N items, N x K with --stdin-batch K; "
         "--serve N sets it (default: 4 processes of CMD, " DRV_HTTP_CONC_STR " HTTP requests)",
         1, 4096, &conc},
        {"batch", "DROVER_BATCH", DRV_OPT_INT, NULL, "K",
         "items per claim call (default: sized claim by claim from the items finished per "
         "second and the claim's round trip, up to " DRV_BATCH_MAX_STR ")",
         0, DRV_BATCH_MAX, &batch},
        {"grace", "DROVER_GRACE", DRV_OPT_INT, "30", "S",
         "seconds running items get to finish after SIGTERM", 0, 86400, &grace},
        {"timeout-ms", "DROVER_TIMEOUT_MS", DRV_OPT_INT, "600000", "MS",
         "kill CMD's process group after this long (0: never; HTTP: the spec's timeout_ms)", 0,
         604800000, &timeout},
        {"handler", "DROVER_HANDLER", DRV_OPT_STR, "auto", "H",
         "auto (the job's HTTP handler, else CMD) or noop (do nothing: for measuring)", 0, 0,
         &handler_name},
        {"http-allow", "DROVER_HTTP_ALLOW", DRV_OPT_STR, NULL, "HOST[:PORT][,...]",
         "send HTTP requests only to these hosts and ports (default: any); HOST alone: its "
         "scheme's default port only; HOST:* any port; others are refused",
         0, 0, &allow},
        {"allow-env", "DROVER_ALLOW_ENV", DRV_OPT_STR, NULL, "NAME[,NAME]",
         "the ${NAME}s a job's HTTP handler may use from this worker's environment; NAME* is a "
         "prefix (DROVER_SECRET_*). Default: none",
         0, 0, &allow_env},
        {"pass-env", NULL, DRV_OPT_STR, NULL, "NAME[,NAME]",
         "give CMD these of the worker's Redis settings (withheld by default: DROVER_REDIS_URL, "
         "DROVER_PREFIX, DROVER_CONNECT_TIMEOUT_MS, DROVER_COMMAND_TIMEOUT_MS)",
         0, 0, &pass_env},
        {"max-host-conns", "DROVER_MAX_HOST_CONNS", DRV_OPT_INT, "0", "N",
         "HTTP connections to one host at most (0: up to --concurrency)", 0, 65536, &host_conns},
        {"no-stdin", NULL, DRV_OPT_BOOL, NULL, NULL, "do not write the item to CMD's stdin", 0, 0,
         &no_stdin},
        {"stdin-batch", "DROVER_STDIN_BATCH", DRV_OPT_INT, "0", "K",
         "run CMD once per K items, given on its stdin one per line; CMD prints one result "
         "line per item, in order: ok, or anything else as the failure (README: The worker's "
         "command). 0: one process per item",
         0, 1000, &stdin_batch},
        {"serve", "DROVER_SERVE", DRV_OPT_INT, "0", "N",
         "run N long-lived copies of CMD fed items over the line protocol "
         "(docs/handler-protocol.md); sets --concurrency to N. 0: a process per item",
         0, 4096, &serve_n},
        {"serve-inflight", "DROVER_SERVE_INFLIGHT", DRV_OPT_INT, "1", "K",
         "--serve: items one process holds at once (for handlers with their own concurrency); "
         "the worker runs up to N x K items",
         1, 100000, &serve_inflight},
        {"serve-max-items", "DROVER_SERVE_MAX_ITEMS", DRV_OPT_INT, "0", "M",
         "--serve: replace a process after M items (leaky handlers); 0: never", 0, 1000000000,
         &serve_max},
        {"id", "DROVER_WORKER_ID", DRV_OPT_STR, NULL, "ID",
         "worker id in leases and logs (default: host:pid)", 0, 0, &id},
        {"idle-ms", "DROVER_IDLE_MS", DRV_OPT_INT, "100", "MS",
         "first wait before asking an empty partition again (doubling to 1 s while it stays "
         "empty; a job whose partitions are all empty is then probed with LLEN about once a "
         "second, a claim from each every 30th time)",
         1, 60000, &idle},
        {"stats-ms", "DROVER_STATS_MS", DRV_OPT_INT, "10000", "MS",
         "log a progress line this often (0: never)", 0, 86400000, &stats},
        {"vanish-ms", "DROVER_VANISH_MS", DRV_OPT_INT, "3000", "MS",
         "how long a running job may be missing before it counts as deleted (a submit "
         "--replace is a moment without it)",
         100, 86400000, &vanish},
        {"exit-when-done", NULL, DRV_OPT_BOOL, NULL, NULL,
         "exit 0 once no job it serves is running (with --job: once that job ends); exit 1 when "
         "a job it served vanished while running",
         0, 0, &exit_when_done},
        {"health-file", "DROVER_HEALTH_FILE", DRV_OPT_STR, NULL, "PATH",
         "rewrite PATH each time Redis answers a heartbeat (for --health)", 0, 0, &health_file},
        {"ack-log", "DROVER_ACK_LOG", DRV_OPT_STR, NULL, "FILE",
         "append a line \"JOB ID\" to FILE for each item whose ack Redis recorded", 0, 0, &ack_log},
        {"otlp-endpoint", "DROVER_OTLP_ENDPOINT", DRV_OPT_STR, NULL, "URL",
         "send a span per item attempt to this OpenTelemetry collector (OTLP/HTTP JSON, "
         "http://HOST:4318 gets /v1/traces), in batches from a thread of its own: a slow or "
         "missing collector drops spans (counted), never delays items",
         0, 0, &otlp_url},
        {"health", NULL, DRV_OPT_BOOL, NULL, NULL,
         "check the --health-file of a running worker and exit: 0 healthy, 1 not", 0, 0, &health},
        {"max-age", "DROVER_HEALTH_MAX_AGE", DRV_OPT_INT, "30", "S",
         "--health: unhealthy once the last Redis contact is older than S seconds", 1, 86400,
         &max_age},
        {"version", NULL, DRV_OPT_BOOL, NULL, NULL, "print the version and exit", 0, 0, &version},
        {0},
    };
    char **rest;
    int nrest, npos;
    char *pos[1];
    drv_cli_hide_password(argc, argv);
    int rc = drv_opts_parse(opts, &doc, argc, argv, pos, 0, &npos, &rest, &nrest);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : 2;
    if (version) {
        printf("drover-worker %s\n", DROVER_VERSION);
        return 0;
    }
    if (health) {
        if (!health_file || !*health_file) {
            fprintf(stderr, "error: --health needs --health-file PATH or DROVER_HEALTH_FILE\n");
            return 2;
        }
        char msg[512];
        int h = worker_health_check(health_file, max_age, drv_wall_ms(), msg, sizeof msg);
        printf("%s\n", msg);
        return h;
    }
    if (health_file && !*health_file) {
        fprintf(stderr, "error: --health-file: expected a path\n");
        return 2;
    }
    drv_redis_cfg rcfg;
    if ((rc = drv_cli_check(&cli, &rcfg))) return rc;
    if (serve_n == 0 && (serve_inflight != 1 || serve_max != 0)) {
        fprintf(stderr, "error: --serve-inflight and --serve-max-items go with --serve N\n");
        return 2;
    }
    if (serve_n > 0 && nrest == 0) {
        fprintf(stderr, "error: --serve N runs a command: add -- CMD [ARG...]\n");
        return 2;
    }
    if (strcmp(handler_name, "noop") == 0) {
        noop = 1;
        if (nrest > 0) {
            fprintf(stderr, "error: --handler noop runs no command; drop the -- CMD\n");
            return 2;
        }
    } else if (strcmp(handler_name, "auto") != 0 && strcmp(handler_name, "exec") != 0) {
        fprintf(stderr, "error: --handler: expected auto or noop, got \"%s\"\n", handler_name);
        return 2;
    }
    if (!noop && nrest > 0) {
        exec.argv = rest;
        exec.argc = nrest;
        exec.timeout_ms = timeout;
        exec.use_stdin = !no_stdin;
        exec.stdin_batch = (int)stdin_batch;
        if (serve_n > 0 && stdin_batch > 0) {
            fprintf(stderr, "error: --serve and --stdin-batch are two ways to run CMD; pick one\n");
            return 2;
        }
        if (serve_n > 0 && no_stdin) {
            fprintf(stderr, "error: --serve gives CMD its items on stdin; drop --no-stdin\n");
            return 2;
        }
        for (int i = 0; serve_n > 0 && i < nrest; i++)
            if (strstr(rest[i], "{id}") || strstr(rest[i], "{item}")) {
                fprintf(stderr,
                        "error: --serve: CMD gets its items on stdin, so \"%s\" cannot hold "
                        "{id} or {item}\n",
                        rest[i]);
                return 2;
            }
        if (stdin_batch > 0 && no_stdin) {
            fprintf(stderr, "error: --stdin-batch gives CMD its items on stdin; drop --no-stdin\n");
            return 2;
        }
        for (int i = 0; stdin_batch > 0 && i < nrest; i++)
            if (strstr(rest[i], "{id}") || strstr(rest[i], "{item}")) {
                fprintf(stderr,
                        "error: --stdin-batch: CMD gets several items on stdin, so \"%s\" "
                        "cannot hold {id} or {item}\n",
                        rest[i]);
                return 2;
            }
        char cwhy[512];
        if (exec_check_cmd(&exec, cwhy, sizeof cwhy) != 0) {
            fprintf(stderr, "error: %s\n", cwhy);
            return 2;
        }
    }
    char why[512];
    if (allow) {
        drv_host_rule *rules;
        int nrules;
        if (drv_host_rules_parse(allow, &rules, &nrules, why, sizeof why) != DRV_OK) {
            fprintf(stderr, "error: --http-allow: %s\n", why);
            return 2;
        }
        free(rules);
    }
    if (allow_env && drv_env_allow_check(allow_env, why, sizeof why) != 0) {
        fprintf(stderr, "error: %s\n", why);
        return 2;
    }
    drv_http_env_allow(allow_env);
    if (pass_env && drv_pass_env_check(pass_env, why, sizeof why) != 0) {
        fprintf(stderr, "error: %s\n", why);
        return 2;
    }
    exec.pass_env = pass_env;
    if (job && !drv_job_id_valid(job)) {
        fprintf(stderr, "error: --job: not a valid job id: \"%s\"\n", job);
        return 2;
    }
    cfg.ack_log = -1;
    if (ack_log) {
        if (!*ack_log) {
            fprintf(stderr, "error: --ack-log: expected a path\n");
            return 2;
        }
        cfg.ack_log = open(ack_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (cfg.ack_log < 0) {
            fprintf(stderr, "error: --ack-log: cannot open %s: %s\n", ack_log, strerror(errno));
            return 2;
        }
    }
    char host[64] = "host", wid[160];
    gethostname(host, sizeof host - 1);
    snprintf(wid, sizeof wid, "%s:%d", host, (int)getpid());
    cfg.id = id ? id : wid;
    cfg.job = job;
    /* --concurrency counts processes: a --stdin-batch process holds up to K items, a --serve
     * process up to --serve-inflight; --serve N is the process count. */
    if (serve_n > 0) conc = serve_n;
    /* A process per item costs a fork and its memory, an HTTP request a socket: without
     * --concurrency a worker runs 4 processes but DRV_HTTP_CONC requests, since a slow API is
     * waited on, not computed (100 requests of 20 ms: 5000 items/s). */
    long long http_conc = conc ? conc : DRV_HTTP_CONC;
    if (!conc) conc = 4;
    cfg.concurrency = (int)conc;
    long long slots = exec.argv && stdin_batch > 0 ? conc * stdin_batch
                      : serve_n > 0                ? conc * serve_inflight
                                                   : conc;
    if (!noop && http_conc > slots) slots = http_conc; /* each handler's capacity caps its own */
    if (slots > 1000000) {
        fprintf(stderr, "error: %lld items at once is too many (at most 1000000)\n", slots);
        return 2;
    }
    cfg.slots = (int)slots;
    cfg.batch = (int)batch; /* 0: sized claim by claim (worker/claimsize.h) */
    cfg.grace_ms = grace * 1000;
    cfg.idle_ms = idle;
    cfg.stats_ms = stats;
    cfg.vanish_ms = vanish;
    cfg.exit_when_done = exit_when_done;
    cfg.max_host_conns = (int)host_conns;
    cfg.http_allow = allow;
    cfg.health_file = health_file;

    /* libcurl's global state is set up once, before anything else could use it (the
     * exporter's thread included). */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (otlp_url && !(cfg.otlp = otlp_new(otlp_url, cfg.id, why, sizeof why))) {
        fprintf(stderr, "error: %s\n", why);
        if (cfg.ack_log >= 0) close(cfg.ack_log);
        curl_global_cleanup();
        return 2;
    }
    drv_queue *q;
    if ((rc = drv_cli_connect(&cli, &rcfg, &q))) {
        otlp_free(cfg.otlp);
        if (cfg.ack_log >= 0) close(cfg.ack_log);
        curl_global_cleanup();
        return rc;
    }
    /* The worker's own handler runs its command (or nothing, for noop); the specs' HTTP
     * handlers run in the HTTP handler (not with noop: that measures coordination alone). */
    serve_cfg scfg = {exec.argv, exec.argc,       (int)serve_n, (int)serve_inflight,
                      serve_max, exec.timeout_ms, pass_env};
    char swhy[512] = "out of memory";
    if (serve_n > 0)
        cfg.own = serve_handler_new(&scfg, cfg.id, swhy, sizeof swhy);
    else
        cfg.own = noop        ? noop_handler_new()
                  : exec.argv ? exec_handler_new(&exec, cfg.id, cfg.concurrency)
                              : NULL;
    cfg.spec = noop ? NULL : http_handler_new(cfg.id, (int)http_conc, cfg.max_host_conns, allow);
    if (serve_n > 0 && !cfg.own) {
        fprintf(stderr, "error: --serve: %s\n", swhy);
        rc = 2;
    } else if ((!cfg.own && (noop || exec.argv)) || (!noop && !cfg.spec)) {
        fprintf(stderr, "error: cannot set up the worker's handlers: out of memory\n");
        rc = 1;
    } else {
        rc = worker_run(&cfg, q);
    }
    if (cfg.own) cfg.own->ops->free(cfg.own);
    if (cfg.spec) cfg.spec->ops->free(cfg.spec);
    drv_queue_close(q);
    otlp_free(cfg.otlp); /* after the loop: its last spans go in one last batch */
    if (cfg.ack_log >= 0) close(cfg.ack_log);
    curl_global_cleanup();
    return rc;
}
