/* drover: the coordinator and operator command line. */
#include "coord.h"

#include "cli.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"submit", cmd_submit, "register a job from a spec file or flags; print its id"},
    {"run", cmd_run, "coordinate a job: feed, recover leases, finish (one active per job)"},
    {"status", cmd_status, "show a job's progress (--json for scripts)"},
    {"list", cmd_list, "list jobs"},
    {"wait", cmd_wait, "block until a job ends (exit 0 done, 1 dead items, 3 timeout)"},
    {"pause", cmd_pause, "stop workers from claiming a job's items"},
    {"resume", cmd_resume, "let workers claim a paused job's items again"},
    {"cancel", cmd_cancel, "stop a job for good"},
    {"set", cmd_set, "change a job's rate, in-flight cap or weight while it runs"},
    {"dead", cmd_dead, "list a job's dead items with their last error"},
    {"retry", cmd_retry, "move a job's dead items back to pending"},
    {"results", cmd_results, "stream the responses a job's HTTP handler kept"},
    {"workers", cmd_workers, "list the workers, their heartbeats and what they run"},
    {"drain", cmd_drain, "ask one worker to finish what it runs and exit"},
    {"purge", cmd_purge, "delete a finished job's keys without blocking Redis"},
    {"metrics", cmd_metrics, "print Prometheus metrics of jobs and workers"},
    {"web", cmd_web, "serve a dashboard of jobs and workers (and steer them, with a token)"},
};

int parse_job_args(const drv_opt *opts, const drv_cmd_doc *doc, int argc, char **argv, char **job) {
    char *pos[1];
    int npos;
    int rc = drv_opts_parse(opts, doc, argc, argv, pos, 1, &npos, NULL, NULL);
    if (rc != DRV_OPTS_OK) return rc == DRV_OPTS_HELP ? 0 : EXIT_USAGE;
    /* The usage line starts "drover NAME": the command the messages name. */
    int n = (int)strcspn(doc->usage, " ");
    if (doc->usage[n]) n += 1 + (int)strcspn(doc->usage + n + 1, " ");
    if (npos != 1) {
        fprintf(stderr, "error: %.*s needs a JOB (see %.*s --help)\n", n, doc->usage, n,
                doc->usage);
        return EXIT_USAGE;
    }
    if (!drv_job_id_valid(pos[0])) {
        fprintf(stderr,
                "error: not a valid job id: \"%s\" (letters, digits, _ and -; at most %d)\n",
                pos[0], DRV_JOB_ID_MAX);
        return EXIT_USAGE;
    }
    *job = pos[0];
    return -1;
}

/* The top-level help, in parts that --help and the man page (--help-man) both print. */
static const char intro[] =
    "drover coordinates bulk work across a fleet of drover-worker processes, with\n"
    "Redis as the only shared state.";
static const char notes[] =
    "Every command takes --help. Redis comes from --redis or DROVER_REDIS_URL (the\n"
    "safer form for a URL with a password: --redis is hidden from ps once read, but\n"
    "not before). --redis, --prefix, --log-level and the timeouts may come before\n"
    "the command or after it.\n"
    "Exit codes: 0 ok, 1 failure (or dead items), 2 usage error, 3 wait timed out,\n"
    "4 cancelled.";
static const char example[] = "  drover submit --id backfill --range 1..1000000 --partitions 16\n"
                              "  drover run backfill &\n"
                              "  drover-worker --job backfill -- ./reindex {id}";

static void usage(FILE *out) {
    fprintf(out, "Usage: drover COMMAND [OPTIONS] [ARGS]\n\n%s\n\nCommands:\n", intro);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n%s\n\nExample:\n%s\n", notes, example);
}

/* The page's start; the build appends each command's `drover CMD --help-man=sub`
 * (cmake/gen_docs.cmake). */
static void usage_man(FILE *out) {
    fputs(".SH SYNOPSIS\n.B drover\n\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]\n"
          ".SH DESCRIPTION\n",
          out);
    drv_roff_text(intro, out);
    fputs("\n.PP\n", out);
    drv_roff_text(notes, out);
    fputs("\n.SH EXAMPLES\n.nf\n", out);
    drv_roff_text(example, out);
    fputs("\n.fi\n.SH COMMANDS\n", out);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        fputs(".TP\n.B ", out);
        drv_roff_text(commands[i].name, out);
        fputc('\n', out);
        drv_roff_text(commands[i].summary, out);
        fputc('\n', out);
    }
}

/* The options every command takes may also come before the command ("drover --redis URL
 * list"): moves them to just after it, where the command's parser reads them (and where
 * the same option given after the command still wins). Returns the new argc, or -1 after a
 * message for an option before the command that is not a common one. */
static int common_opts_first(int argc, char **argv) {
    static const char *const common[] = {"redis", "prefix", "log-level", "connect-timeout-ms",
                                         "command-timeout-ms"};
    int i = 1;
    while (i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2] &&
           strcmp(argv[i], "--help") != 0 && strcmp(argv[i], "--version") != 0 &&
           strncmp(argv[i], "--help-", 7) != 0) {
        const char *name = argv[i] + 2;
        size_t len = strcspn(name, "=");
        int known = 0;
        for (size_t k = 0; k < sizeof common / sizeof *common; k++)
            known |= strlen(common[k]) == len && strncmp(common[k], name, len) == 0;
        if (!known) {
            fprintf(stderr,
                    "error: \"%s\" before the command: only --redis, --prefix, --log-level, "
                    "--connect-timeout-ms and --command-timeout-ms go there (see drover --help)\n",
                    argv[i]);
            return -1;
        }
        if (!name[len]) {
            if (i + 1 >= argc) {
                fprintf(stderr, "error: %s needs a value\n", argv[i]);
                return -1;
            }
            i++;
        }
        i++;
    }
    if (i == 1) return argc;
    if (i >= argc) {
        fprintf(stderr, "error: no command after the options (see drover --help)\n");
        return -1;
    }
    /* argv[1..i) are the options, argv[i] the command: rotate the command to the front. */
    char *cmd = argv[i];
    memmove(argv + 2, argv + 1, sizeof *argv * (size_t)(i - 1));
    argv[1] = cmd;
    return argc;
}

int main(int argc, char **argv) {
    drv_log_init("drover");
    drv_cli_hide_password(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (common_opts_first(argc, argv) < 0) return EXIT_USAGE;
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    /* Hidden: what the build's man page and completion generator read. */
    if (strcmp(cmd, "--help-man") == 0) {
        usage_man(stdout);
        return 0;
    }
    if (strcmp(cmd, "--help-commands") == 0) {
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
            puts(commands[i].name);
        return 0;
    }
    if (strcmp(cmd, "--help-flags") == 0) { /* the ones that may come before the command */
        drv_cli cli;
        const drv_opt common[] = {DRV_CLI_OPTS(&cli), {0}};
        drv_opts_flags(common, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("drover %s\n", DROVER_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command \"%s\" (see drover --help)\n", cmd);
    return EXIT_USAGE;
}
