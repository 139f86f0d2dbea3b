/* The command handler: one process per item, or one per --stdin-batch of items, started
 * without a shell; it implements handlers.h. */
#define _GNU_SOURCE /* execvpe */
#include "handlers.h"

#include "child.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "template.h"
#include "trace.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define ERR_TAIL            512    /* bytes of stderr kept with the error */
#define ARG_MAX_BYTES       131072 /* Linux's MAX_ARG_STRLEN for one argv element */
#define DRAIN_AFTER_EXIT_MS 200

typedef struct exec_proc exec_proc;

struct exec_proc {
    pid_t pid;
    int in_fd, err_fd; /* -1 when closed */
    char *in_data;
    size_t in_len, in_off;
    char tail[2 * ERR_TAIL];
    size_t tail_len;
    int exited, status;
    int64_t exit_ms, deadline_ms, started_ms;
    int timed_out;
    /* --stdin-batch: the items' count, and the result lines read from stdout so far. */
    int nitems;
    int out_fd;    /* -1 when closed or not a batch */
    char **lines;  /* nitems entries; NULL: no result line yet */
    int nlines;    /* complete lines read */
    char *partial; /* the line being read (at most RESULT_MAX bytes kept) */
    size_t part_len;
};

#define RESULT_MAX 400 /* bytes kept of one result line */

static void exec_free(exec_proc *p);

int exec_check_cmd(const exec_cfg *cfg, char *why, size_t whylen) {
    const char *cmd = cfg->argv[0];
    if (strchr(cmd, '{')) {
        snprintf(why, whylen, "the command itself (\"%s\") cannot be a template", cmd);
        return -1;
    }
    if (strchr(cmd, '/')) {
        struct stat st;
        if (stat(cmd, &st) != 0 || !S_ISREG(st.st_mode) || access(cmd, X_OK) != 0) {
            snprintf(why, whylen, "%s: not an executable file", cmd);
            return -1;
        }
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    char buf[4096];
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, n ? p : ".", cmd);
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0) return 0;
        p += n;
        if (*p == ':') p++;
    }
    snprintf(why, whylen, "%s: command not found on PATH", cmd);
    return -1;
}

static int nonblock_cloexec(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0
               ? -1
               : 0;
}

/* The child's side of spawn(), between vfork() and exec: drv_child_setup (own process group,
 * death signal, default signals, fds 0-2 and nothing else), then the exec. It shares the
 * worker's memory until the exec, so it only makes system calls and never returns; a failure
 * leaves its errno in *failed (the parent's). */
static __attribute__((noinline, noreturn)) void child(char **argv, char **envp, int in_fd,
                                                      int out_fd, int stderr_fd, pid_t parent,
                                                      volatile int *failed) {
    int e = drv_child_setup(parent, in_fd, out_fd, stderr_fd);
    if (e == 0) {
        execvpe(argv[0], argv, envp);
        e = errno ? errno : EIO;
    }
    *failed = e;
    _exit(127);
}

/* vfork()s and execs argv (the child's fds as child() takes them), as posix_spawn does (no
 * copy of the worker's memory), but with the death signal set. Returns the pid, or -1 with
 * errno set when the command could not be run (exec failed, or no process). */
static pid_t spawn(char **argv, char **envp, int in_fd, int out_fd, int stderr_fd) {
    volatile int failed = 0;
    /* No signal handler of the worker's runs in the child before its exec. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = vfork();
    if (pid == 0) child(argv, envp, in_fd, out_fd, stderr_fd, parent, &failed);
    int saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        errno = saved;
        return -1;
    }
    /* Also from this side (the classic pair): where vfork acts as fork (valgrind), a kill of
     * the group could otherwise come before the child's own setpgid and miss it. */
    setpgid(pid, pid);
    if (failed) { /* the child is gone: reap it, report why */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        errno = failed;
        return -1;
    }
    return pid;
}

/* DROVER_LEASE_TOKEN: the item's lease token, or a batch's tokens, space-separated in the
 * order of its stdin lines. */
static char *lease_tokens(const drv_lease *const *ls, int n) {
    int k = n ? n : 1;
    char *s = malloc((size_t)k * 21 + sizeof "DROVER_LEASE_TOKEN=");
    if (!s) return NULL;
    size_t off = (size_t)sprintf(s, "DROVER_LEASE_TOKEN=");
    for (int i = 0; i < k; i++)
        off += (size_t)sprintf(s + off, "%s%" PRId64, i ? " " : "", ls[i]->token);
    return s;
}

/* TRACEPARENT: the attempt's W3C traceparent (what OpenTelemetry SDKs read to continue a
 * trace), or a batch's, space-separated in the order of its stdin lines. */
static char *traceparents(const char *const *tps, int n) {
    int k = n ? n : 1;
    char *s = malloc((size_t)k * (TRACEPARENT_LEN + 1) + sizeof "TRACEPARENT=");
    if (!s) return NULL;
    size_t off = (size_t)sprintf(s, "TRACEPARENT=");
    for (int i = 0; i < k; i++)
        off += (size_t)sprintf(s + off, "%s%s", i ? " " : "", tps[i] ? tps[i] : "");
    return s;
}

/* Starts the command for one item (n 0: ls[0] alone, the item in argv and the environment) or
 * for a batch of n items on stdin (--stdin-batch: one per line, results read from stdout). */
static int spawn_items(const exec_cfg *cfg, const char *job, const drv_lease *const *ls,
                       const char *const *tps, int n, exec_proc **proc, drv_outcome *out) {
    memset(out, 0, sizeof *out);
    const drv_lease *l = ls[0];
    exec_proc *p = calloc(1, sizeof *p);
    char **argv = calloc((size_t)cfg->argc + 1, sizeof *argv);
    int inp[2] = {-1, -1}, errp[2] = {-1, -1}, outp[2] = {-1, -1};
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 6, sizeof *envp);
    char *extra[5] = {0};
    int rc = -1;
    if (!p || !argv || !envp) goto resource;
    p->in_fd = p->err_fd = p->out_fd = -1;
    if (n > 0) {
        p->nitems = n;
        p->lines = calloc((size_t)n, sizeof *p->lines);
        p->partial = malloc(RESULT_MAX + 1);
        if (!p->lines || !p->partial) goto resource;
    }
    const char *item = l->payload ? l->payload : l->id;
    size_t item_len = l->payload ? l->plen : l->idlen;
    for (int i = 0; i < cfg->argc; i++) {
        drv_buf b;
        drv_buf_init(&b, ARG_MAX_BYTES - 1);
        drv_err e = drv_template_expand(cfg->argv[i], l->id, l->idlen, item, item_len, &b);
        if (e != DRV_OK) {
            drv_buf_free(&b);
            out->permanent = 1;
            drv_outcome_error(out,
                              e == DRV_ETOOBIG ? "item too large for a command argument (use stdin)"
                                               : "item holds a NUL byte and cannot be an argument",
                              cfg->argv[i]);
            goto fail;
        }
        argv[i] = b.data; /* owned by argv now */
    }
    /* A batch has no one item id or attempt: DROVER_BATCH_SIZE says how many lines come (and
     * extra[3] stays NULL, left out below, as extra[4] is without trace context). */
    if (asprintf(&extra[0], "DROVER_JOB=%s", job) < 0 || !(extra[1] = lease_tokens(ls, n)) ||
        (n ? asprintf(&extra[2], "DROVER_BATCH_SIZE=%d", n)
           : asprintf(&extra[2], "DROVER_ITEM_ID=%s", l->id)) < 0 ||
        (!n && asprintf(&extra[3], "DROVER_ATTEMPT=%d", l->attempt) < 0) ||
        (tps[0] && !(extra[4] = traceparents(tps, n))))
        goto resource;
    /* Our values replace any inherited DROVER_JOB etc. The worker's own Redis settings (its
     * URL may hold a password) stay with it: a handler is not a worker. */
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "DROVER_JOB=", 11) && strncmp(environ[i], "DROVER_ITEM_ID=", 15) &&
            strncmp(environ[i], "DROVER_ATTEMPT=", 15) &&
            strncmp(environ[i], "DROVER_LEASE_TOKEN=", 19) &&
            strncmp(environ[i], "DROVER_BATCH_SIZE=", 18) &&
            !(extra[4] && strncmp(environ[i], "TRACEPARENT=", 12) == 0) &&
            drv_env_for_child(environ[i], cfg->pass_env))
            envp[k++] = environ[i];
    for (int i = 0; i < 5; i++)
        if (extra[i]) envp[k++] = extra[i];
    if (pipe(errp) != 0 || nonblock_cloexec(errp[0]) != 0 ||
        fcntl(errp[1], F_SETFD, FD_CLOEXEC) != 0)
        goto resource;
    if (cfg->use_stdin || n) {
        if (pipe(inp) != 0 || nonblock_cloexec(inp[1]) != 0 ||
            fcntl(inp[0], F_SETFD, FD_CLOEXEC) != 0)
            goto resource;
    }
    if (n && (pipe(outp) != 0 || nonblock_cloexec(outp[0]) != 0 ||
              fcntl(outp[1], F_SETFD, FD_CLOEXEC) != 0))
        goto resource;
    /* A worker started with fd 0, 1 or 2 closed gets pipe ends there: moved up, they can
     * neither take the place of its own stderr nor be overwritten in the child. */
    int *ends[] = {&errp[0], &errp[1], &inp[0], &inp[1], &outp[0], &outp[1]};
    for (size_t i = 0; i < sizeof ends / sizeof *ends; i++)
        if (drv_fd_lift(ends[i]) != 0) goto resource;
    /* Its own process group: a timeout kills the whole tree, and a Ctrl-C at the worker's
     * terminal does not reach items that are draining. */
    p->pid = spawn(argv, envp, cfg->use_stdin || n ? inp[0] : -1, n ? outp[1] : -1, errp[1]);
    if (p->pid < 0) goto resource;
    close(errp[1]);
    errp[1] = -1;
    p->err_fd = errp[0];
    if (n) {
        close(outp[1]);
        outp[1] = -1;
        p->out_fd = outp[0];
        outp[0] = -1;
        close(inp[0]);
        inp[0] = -1;
        p->in_fd = inp[1];
        size_t len = 0;
        for (int i = 0; i < n; i++)
            len += (ls[i]->payload ? ls[i]->plen : ls[i]->idlen) + 1;
        p->in_data = malloc(len ? len : 1);
        if (!p->in_data) {
            close(p->in_fd);
            p->in_fd = -1;
        } else {
            for (int i = 0; i < n; i++) {
                const char *it = ls[i]->payload ? ls[i]->payload : ls[i]->id;
                size_t il = ls[i]->payload ? ls[i]->plen : ls[i]->idlen;
                memcpy(p->in_data + p->in_len, it, il);
                p->in_len += il;
                p->in_data[p->in_len++] = '\n';
            }
        }
    } else if (cfg->use_stdin) {
        close(inp[0]);
        inp[0] = -1;
        p->in_fd = inp[1];
        p->in_len = item_len + 1;
        p->in_data = malloc(p->in_len);
        if (!p->in_data) {
            close(p->in_fd);
            p->in_fd = -1;
        } else {
            memcpy(p->in_data, item, item_len);
            p->in_data[item_len] = '\n';
        }
    }
    p->started_ms = drv_now_ms();
    p->deadline_ms = cfg->timeout_ms > 0 ? p->started_ms + cfg->timeout_ms : 0;
    *proc = p;
    p = NULL;
    rc = 0;
    goto cleanup;
resource:
    out->retryable_local = 1;
    drv_outcome_error(out, "could not start the command", strerror(errno));
fail:
    rc = -1;
    if (inp[1] >= 0) close(inp[1]);
    if (errp[0] >= 0) close(errp[0]);
    if (outp[0] >= 0) close(outp[0]);
cleanup:
    if (outp[1] >= 0) close(outp[1]);
    if (inp[0] >= 0) close(inp[0]);
    if (errp[1] >= 0) close(errp[1]);
    for (int i = 0; argv && i < cfg->argc; i++)
        free(argv[i]);
    free(argv);
    for (int i = 0; i < 5; i++)
        free(extra[i]);
    free(envp);
    if (p) exec_free(p);
    return rc;
}

static int exec_pollfds(exec_proc *p, struct pollfd *fds) {
    int n = 0;
    if (p->out_fd >= 0) fds[n++] = (struct pollfd){p->out_fd, POLLIN, 0};
    if (p->err_fd >= 0) fds[n++] = (struct pollfd){p->err_fd, POLLIN, 0};
    if (p->in_fd >= 0) fds[n++] = (struct pollfd){p->in_fd, POLLOUT, 0};
    return n;
}

static void read_err(exec_proc *p) {
    char buf[4096];
    for (;;) {
        ssize_t r = read(p->err_fd, buf, sizeof buf);
        if (r > 0) {
            /* Keep the last ERR_TAIL bytes. */
            for (ssize_t i = 0; i < r; i++) {
                if (p->tail_len == sizeof p->tail) {
                    memmove(p->tail, p->tail + ERR_TAIL, ERR_TAIL);
                    p->tail_len = ERR_TAIL;
                }
                p->tail[p->tail_len++] = buf[i];
            }
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(p->err_fd);
            p->err_fd = -1;
        }
        return;
    }
}

/* Reads result lines from a batch's stdout: line N is item N's result. Lines past the
 * batch's count are read and dropped. */
static void read_out(exec_proc *p) {
    char buf[4096];
    for (;;) {
        ssize_t r = read(p->out_fd, buf, sizeof buf);
        if (r > 0) {
            for (ssize_t i = 0; i < r; i++) {
                if (buf[i] != '\n') {
                    if (p->part_len < RESULT_MAX) p->partial[p->part_len++] = buf[i];
                    continue;
                }
                if (p->part_len && p->partial[p->part_len - 1] == '\r') p->part_len--;
                p->partial[p->part_len] = '\0';
                if (p->nlines < p->nitems) p->lines[p->nlines] = strdup(p->partial);
                p->nlines++;
                p->part_len = 0;
            }
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(p->out_fd);
            p->out_fd = -1;
        }
        return;
    }
}

static void write_in(exec_proc *p) {
    while (p->in_off < p->in_len) {
        ssize_t w = write(p->in_fd, p->in_data + p->in_off, p->in_len - p->in_off);
        if (w > 0) {
            p->in_off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;
        break; /* EPIPE: the command does not read its stdin; that is its business */
    }
    close(p->in_fd);
    p->in_fd = -1;
}

static void exec_service(exec_proc *p, const struct pollfd *fds, int n) {
    for (int i = 0; i < n; i++) {
        if (!fds[i].revents) continue;
        if (fds[i].fd == p->err_fd)
            read_err(p);
        else if (fds[i].fd == p->out_fd)
            read_out(p);
        else if (fds[i].fd == p->in_fd)
            write_in(p);
    }
}

static void exec_exited(exec_proc *p, int status) {
    p->exited = 1;
    p->status = status;
    p->exit_ms = drv_now_ms();
}

static pid_t exec_pid(const exec_proc *p) {
    return p->pid;
}

static void exec_kill(exec_proc *p) {
    if (!p->exited && p->pid > 0) kill(-p->pid, SIGKILL);
}

static int64_t exec_next_deadline(const exec_proc *p, int64_t now) {
    int64_t d = -1;
    if (p->deadline_ms && !p->timed_out) d = p->deadline_ms > now ? p->deadline_ms - now : 0;
    if (p->exited) {
        int64_t x = p->exit_ms + DRAIN_AFTER_EXIT_MS - now;
        if (x < 0) x = 0;
        if (d < 0 || x < d) d = x;
    }
    return d;
}

static int exec_finished(exec_proc *p, int64_t now) {
    if (p->deadline_ms && !p->timed_out && !p->exited && now >= p->deadline_ms) {
        p->timed_out = 1;
        exec_kill(p);
    }
    if (!p->exited) return 0;
    /* A grandchild may hold stderr (or a batch's stdout) open after the command exits: wait
     * a little, not forever. */
    if ((p->err_fd >= 0 || p->out_fd >= 0) && now < p->exit_ms + DRAIN_AFTER_EXIT_MS) {
        if (p->err_fd >= 0) read_err(p);
        if (p->out_fd >= 0) read_out(p);
        if (p->err_fd >= 0 || p->out_fd >= 0) return 0;
    }
    return 1;
}

/* A failure's error record: {"error": what, "attempt", "worker"[, "stderr"]}. */
static void fail_record(exec_proc *p, const char *what, int with_tail, const char *worker,
                        int attempt, drv_outcome *out);

static void exec_outcome(exec_proc *p, int slot, const char *worker, int attempt,
                         drv_outcome *out) {
    memset(out, 0, sizeof *out);
    if (slot >= 0 && slot < p->nitems && p->lines[slot]) {
        /* The batch protocol: "ok", or anything else is the failure's message. */
        if (strcmp(p->lines[slot], "ok") == 0)
            out->ok = 1;
        else
            fail_record(p, p->lines[slot], 0, worker, attempt, out);
        return;
    }
    int clean = !p->timed_out && WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0;
    if (clean && slot < 0) {
        out->ok = 1;
        return;
    }
    if (clean) {
        fail_record(p, "no result", 1, worker, attempt, out);
        return;
    }
    char what[128];
    if (p->timed_out)
        snprintf(what, sizeof what, "timed out after %.1f s; process group killed",
                 (double)(p->deadline_ms - p->started_ms) / 1000.0);
    else if (WIFEXITED(p->status))
        snprintf(what, sizeof what, "exit status %d", WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status))
        snprintf(what, sizeof what, "killed by signal %d (%s)", WTERMSIG(p->status),
                 strsignal(WTERMSIG(p->status)));
    else
        snprintf(what, sizeof what, "ended with status %d", p->status);
    fail_record(p, what, 1, worker, attempt, out);
}

static void fail_record(exec_proc *p, const char *what, int with_tail, const char *worker,
                        int attempt, drv_outcome *out) {
    size_t off = p->tail_len > ERR_TAIL ? p->tail_len - ERR_TAIL : 0;
    char tail[ERR_TAIL + 1];
    memcpy(tail, p->tail + off, p->tail_len - off);
    tail[p->tail_len - off] = '\0';
    /* stderr bytes may not be valid text: keep it printable for the JSON record. */
    for (size_t i = 0; tail[i]; i++)
        if ((unsigned char)tail[i] < 0x20 && tail[i] != '\n' && tail[i] != '\t') tail[i] = '?';
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", what);
    cJSON_AddNumberToObject(o, "attempt", attempt);
    cJSON_AddStringToObject(o, "worker", worker);
    if (with_tail) cJSON_AddStringToObject(o, "stderr", tail);
    char *t = cJSON_PrintUnformatted(o);
    if (t && strlen(t) < sizeof out->error) {
        snprintf(out->error, sizeof out->error, "%s", t);
    } else {
        /* Too long with the tail: the tail goes, the reason stays. */
        cJSON_DeleteItemFromObject(o, "stderr");
        cJSON_free(t);
        t = cJSON_PrintUnformatted(o);
        snprintf(out->error, sizeof out->error, "%s", t ? t : "{\"error\":\"failed\"}");
    }
    cJSON_free(t);
    cJSON_Delete(o);
}

static void exec_free(exec_proc *p) {
    if (!p) return;
    if (p->out_fd >= 0) close(p->out_fd);
    for (int i = 0; p->lines && i < p->nitems; i++)
        free(p->lines[i]);
    free(p->lines);
    free(p->partial);
    if (p->in_fd >= 0) close(p->in_fd);
    if (p->err_fd >= 0) close(p->err_fd);
    free(p->in_data);
    free(p);
}

/* ---- the handler (handlers.h) ---------------------------------------------------------------- */

/* One process and the items it runs: one, or a --stdin-batch's (slot N: stdin line N). */
typedef struct erun {
    exec_proc *p;
    int n, nfds, emitted, finished;
    uint64_t *tags;
    int *attempts;
} erun;

typedef struct exec_handler {
    handler base;
    const exec_cfg *cfg;
    const char *worker;
    int procs; /* processes at once (--concurrency) */
    erun *runs;
    int nruns, draining;
} exec_handler;

static int per_proc(const exec_handler *x) {
    return x->cfg->stdin_batch > 0 ? x->cfg->stdin_batch : 1;
}

static int eh_capacity(const handler *h) {
    const exec_handler *x = (const exec_handler *)h;
    return x->draining ? 0 : (x->procs - x->nruns) * per_proc(x);
}

static int eh_start(handler *h, const char *job, const drv_http_cfg *http, const hitem *items,
                    int n, drv_outcome *out) {
    (void)http;
    exec_handler *x = (exec_handler *)h;
    int k = n < per_proc(x) ? n : per_proc(x);
    const drv_lease **ls = malloc(sizeof *ls * (size_t)k);
    const char **tps = malloc(sizeof *tps * (size_t)k);
    erun r = {0};
    r.n = k;
    r.tags = malloc(sizeof *r.tags * (size_t)k);
    r.attempts = malloc(sizeof *r.attempts * (size_t)k);
    if (!ls || !tps || !r.tags || !r.attempts || x->nruns == x->procs) {
        memset(out, 0, sizeof *out);
        out->retryable_local = 1;
        drv_outcome_error(out, "could not start the command", "out of memory");
        k = -1;
    } else {
        for (int i = 0; i < k; i++) {
            ls[i] = items[i].l;
            tps[i] = items[i].traceparent;
            r.tags[i] = items[i].tag;
            r.attempts[i] = items[i].l->attempt;
        }
        if (spawn_items(x->cfg, job, ls, tps, x->cfg->stdin_batch > 0 ? k : 0, &r.p, out) != 0)
            k = -1;
    }
    free(ls);
    free(tps);
    if (k < 0) {
        free(r.tags);
        free(r.attempts);
        return -1;
    }
    x->runs[x->nruns++] = r;
    return k;
}

static int eh_pollfds(handler *h, struct pollfd *fds, int cap) {
    exec_handler *x = (exec_handler *)h;
    int nf = 0;
    for (int i = 0; i < x->nruns; i++) {
        erun *r = &x->runs[i];
        r->nfds = 0;
        if (cap - nf < 3) continue;
        r->nfds = exec_pollfds(r->p, &fds[nf]);
        nf += r->nfds;
    }
    return nf;
}

static void eh_service(handler *h, const struct pollfd *fds, int n, int64_t now) {
    (void)now;
    exec_handler *x = (exec_handler *)h;
    int off = 0;
    for (int i = 0; i < x->nruns && off < n; i++) {
        erun *r = &x->runs[i];
        exec_service(r->p, &fds[off], r->nfds);
        off += r->nfds;
    }
}

static int64_t eh_next_deadline(const handler *h, int64_t now) {
    const exec_handler *x = (const exec_handler *)h;
    int64_t d = -1;
    for (int i = 0; i < x->nruns; i++) {
        int64_t t = x->runs[i].finished ? 0 : exec_next_deadline(x->runs[i].p, now);
        if (t >= 0 && (d < 0 || t < d)) d = t;
    }
    return d;
}

static void run_free(erun *r) {
    exec_free(r->p);
    free(r->tags);
    free(r->attempts);
}

static int eh_take_done(handler *h, int64_t now, uint64_t *tag, drv_outcome *out) {
    exec_handler *x = (exec_handler *)h;
    for (int i = 0; i < x->nruns; i++) {
        erun *r = &x->runs[i];
        if (!r->finished && !(r->finished = exec_finished(r->p, now))) continue;
        int slot = r->emitted++;
        *tag = r->tags[slot];
        exec_outcome(r->p, x->cfg->stdin_batch > 0 ? slot : -1, x->worker, r->attempts[slot], out);
        if (r->emitted == r->n) {
            run_free(r);
            x->runs[i] = x->runs[--x->nruns];
        }
        return 1;
    }
    return 0;
}

static int eh_child_exited(handler *h, pid_t pid, int status) {
    exec_handler *x = (exec_handler *)h;
    for (int i = 0; i < x->nruns; i++)
        if (exec_pid(x->runs[i].p) == pid) {
            exec_exited(x->runs[i].p, status);
            return 1;
        }
    return 0;
}

/* Waits for a process that was killed or is exiting (not one that exited already: reaped). */
static void reap(exec_proc *p) {
    if (p->exited) return;
    int status;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
}

static void eh_abandon(handler *h) {
    exec_handler *x = (exec_handler *)h;
    for (int i = 0; i < x->nruns; i++) {
        exec_kill(x->runs[i].p);
        reap(x->runs[i].p);
        run_free(&x->runs[i]);
    }
    x->nruns = 0;
}

static void eh_kill_all(handler *h) {
    exec_handler *x = (exec_handler *)h;
    for (int i = 0; i < x->nruns; i++)
        exec_kill(x->runs[i].p);
}

static void eh_drain(handler *h) {
    ((exec_handler *)h)->draining = 1;
}

/* After a fatal break children may still run: killed first, or the wait below would last
 * until they finish (up to --timeout-ms), or forever. */
static void eh_free(handler *h) {
    exec_handler *x = (exec_handler *)h;
    if (!x) return;
    for (int i = 0; i < x->nruns; i++) {
        exec_kill(x->runs[i].p);
        reap(x->runs[i].p);
        run_free(&x->runs[i]);
    }
    free(x->runs);
    free(x);
}

static const handler_ops exec_ops = {
    .name = "command",
    .capacity = eh_capacity,
    .start = eh_start,
    .pollfds = eh_pollfds,
    .next_deadline = eh_next_deadline,
    .service = eh_service,
    .take_done = eh_take_done,
    .child_exited = eh_child_exited,
    .abandon = eh_abandon,
    .kill_all = eh_kill_all,
    .drain = eh_drain,
    .free = eh_free,
};

handler *exec_handler_new(const exec_cfg *cfg, const char *worker, int procs) {
    exec_handler *x = calloc(1, sizeof *x);
    if (!x || !(x->runs = calloc((size_t)procs, sizeof *x->runs))) {
        free(x);
        return NULL;
    }
    x->base.ops = &exec_ops;
    x->cfg = cfg;
    x->worker = worker;
    x->procs = procs;
    return &x->base;
}
