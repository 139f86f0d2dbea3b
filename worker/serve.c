/* Serve mode: long-lived handler processes fed items over a line protocol
 * (docs/handler-protocol.md). One serve_proc per process slot; a slot's process is replaced
 * when it crashes (with backoff), misbehaves, times out an item or has done --serve-max-items. */
#define _GNU_SOURCE /* pipe2 */
#include "serve.h"

#include "backoff.h"
#include "child.h"
#include "cli.h"
#include "clock.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define ERR_TAIL       512         /* bytes of stderr kept with a failure */
#define LINE_MAX_BYTES (16u << 20) /* longest answer line read */
#define WBUF_SOFT                                                                                  \
    (1u << 20)                        /* unsent stdin bytes past which a process takes no          \
                                       * new item (one item may go past it) */
#define FLUSH_NOW        (64u << 10)  /* queued stdin bytes written at once by serve_start */
#define WBUF_KEEP        (256u << 10) /* stdin buffer kept after it empties */
#define DRAIN_AFTER_EXIT 200          /* ms to read what an exited process left in its pipes */
#define RETIRE_KILL_MS   10000        /* a replaced process gets this long to exit */
#define SHUTDOWN_WAIT_MS 1000         /* serve_free: how long processes get to exit at EOF */
#define STABLE_MS        10000        /* a process up this long ends a crash loop */
#define LOG_LINE_MAX     400          /* bytes of one stderr line logged */
#define LOG_WINDOW_MS    10000        /* stderr lines logged: at most LOG_WINDOW_LINES per */
#define LOG_WINDOW_LINES 100          /* window, for all processes together */
#define CUT_LINE         200          /* bytes of a bad line quoted */

typedef struct serve_item {
    void *tag;
    char *id, *job;
    int attempt;
    int64_t keep;                    /* bytes of its "result" kept, 0 for none */
    int64_t started_ms, deadline_ms; /* monotonic; deadline 0: none */
    uint64_t start_off;              /* where its line begins in the stdin stream */
} serve_item;

enum proc_state {
    P_DOWN,   /* no process: one starts at restart_at (not while draining) */
    P_RUN,    /* takes items */
    P_RETIRE, /* takes no more items (max_items, drain): stdin closes when it holds none */
    P_DOOMED  /* killed: waiting for its exit */
};

typedef struct serve_proc {
    int index;
    enum proc_state state;
    pid_t pid;
    int in_fd, out_fd, err_fd;
    char *wbuf; /* stdin bytes not yet written: wbuf[woff..wlen) */
    size_t wlen, woff, wcap;
    uint64_t queued, written; /* stdin stream offsets: bytes queued and written so far */
    char *lbuf;               /* stdout: the line being read */
    size_t llen, lcap;
    char errline[LOG_LINE_MAX + 1]; /* stderr: the line being read, cut */
    size_t errlen;
    int err_cut;
    char tail[2 * ERR_TAIL];
    size_t tail_len;
    serve_item *items; /* cfg.inflight slots; id NULL when free */
    int nitems;
    int64_t taken; /* items this process was given */
    int exited, status;
    int garbled;    /* wrote a bad line: nothing it writes after that is believed */
    int stopping;   /* killed by serve_kill_all: its items are handed back */
    int64_t eof_ms; /* when its stdout reached EOF before its exit was reported, else 0 */
    int64_t started_ms, exit_ms, retire_ms, restart_at;
    char reason[512]; /* why drover killed it, "" if it did not */
    drv_backoff bo;
} serve_proc;

typedef struct done_entry {
    void *tag;
    drv_outcome out;
} done_entry;

struct serve_pool {
    serve_cfg cfg;
    char *path; /* argv[0] resolved */
    char **env; /* the environment the processes get, minus DROVER_SERVE_INDEX */
    size_t nenv;
    char worker[256];
    serve_proc *procs;
    int draining;
    int64_t spawned;
    done_entry *done;
    size_t ndone, done_head, done_cap;
    int64_t log_window, log_lines, log_dropped;
};

/* ---- small helpers --------------------------------------------------------------------------- */

/* A failure's record: {"error", "attempt", "worker", "process"[, "stderr"]}; the tail goes
 * first and then the message is cut when it does not fit. */
static void fail_record(const serve_pool *p, const serve_proc *s, const char *what, int with_tail,
                        int attempt, drv_outcome *out) {
    char tail[ERR_TAIL + 1] = "";
    if (with_tail) {
        size_t off = s->tail_len > ERR_TAIL ? s->tail_len - ERR_TAIL : 0;
        memcpy(tail, s->tail + off, s->tail_len - off);
        tail[s->tail_len - off] = '\0';
        drv_text_sanitize(tail, strlen(tail));
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", what);
    drv_text_sanitize(msg, strlen(msg));
    for (int pass = 0; pass < 2; pass++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddNumberToObject(o, "attempt", attempt);
        cJSON_AddStringToObject(o, "worker", p->worker);
        cJSON_AddNumberToObject(o, "process", s->index);
        if (with_tail && pass == 0) cJSON_AddStringToObject(o, "stderr", tail);
        char *t = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (t && strlen(t) < sizeof out->error) {
            snprintf(out->error, sizeof out->error, "%s", t);
            cJSON_free(t);
            return;
        }
        cJSON_free(t);
    }
    snprintf(out->error, sizeof out->error, "{\"error\":\"failed\",\"attempt\":%d}", attempt);
}

static int push_done(serve_pool *p, void *tag, const drv_outcome *o) {
    if (p->done_head + p->ndone == p->done_cap) {
        if (p->done_head > 0) {
            memmove(p->done, p->done + p->done_head, p->ndone * sizeof *p->done);
            p->done_head = 0;
        } else {
            size_t cap = p->done_cap ? p->done_cap * 2 : 16;
            done_entry *d = realloc(p->done, cap * sizeof *d);
            if (!d) return -1;
            p->done = d;
            p->done_cap = cap;
        }
    }
    done_entry *e = &p->done[p->done_head + p->ndone++];
    e->tag = tag;
    e->out = *o;
    return 0;
}

/* Finishes the item in slot k with outcome o (o->response passes to the done queue). */
static void finish_item(serve_pool *p, serve_proc *s, int k, drv_outcome *o) {
    serve_item *it = &s->items[k];
    if (push_done(p, it->tag, o) != 0) {
        /* Out of memory: the outcome is lost, and the lease expires (the item runs again). */
        drv_error("serve: out of memory recording item %s's outcome", it->id);
        free(o->response);
    }
    free(it->id);
    free(it->job);
    memset(it, 0, sizeof *it);
    s->nitems--;
}

static void kill_group(serve_proc *s) {
    if (s->pid > 0 && !s->exited) kill(-s->pid, SIGKILL);
}

/* Kills the process for 'reason' (kept for the items it held). The first reason stays. */
static void doom(serve_proc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void doom(serve_proc *s, const char *fmt, ...) {
    if (s->state == P_DOWN) return;
    if (!s->reason[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->reason, sizeof s->reason, fmt, ap);
        va_end(ap);
    }
    s->state = P_DOOMED;
    kill_group(s);
}

/* ---- starting a process ---------------------------------------------------------------------- */

static char *find_on_path(const char *cmd) {
    if (strchr(cmd, '/')) return strdup(cmd);
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    char buf[4096];
    for (const char *q = path; *q;) {
        size_t n = strcspn(q, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, n ? q : ".", cmd);
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
            return strdup(buf);
        q += n;
        if (*q == ':') q++;
    }
    return NULL;
}

static int queue_bytes(serve_proc *s, const char *d, size_t n) {
    if (s->woff > 0 && s->wlen + n > s->wcap) {
        memmove(s->wbuf, s->wbuf + s->woff, s->wlen - s->woff);
        s->wlen -= s->woff;
        s->woff = 0;
    }
    if (s->wlen + n > s->wcap) {
        size_t cap = s->wcap ? s->wcap : 4096;
        while (cap < s->wlen + n)
            cap *= 2;
        char *b = realloc(s->wbuf, cap);
        if (!b) return -1;
        s->wbuf = b;
        s->wcap = cap;
    }
    memcpy(s->wbuf + s->wlen, d, n);
    s->wlen += n;
    s->queued += n;
    return 0;
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* In the child between fork and exec: only async-signal-safe calls. The report pipe is
 * close-on-exec: exec success closes it, a failure writes its errno there. */
static void child_exec(const serve_pool *p, char **envp, pid_t parent, int in, int out, int err,
                       int report) {
    int e = drv_child_setup(parent, in, out, err);
    if (e == 0) {
        execve(p->path, p->cfg.argv, envp);
        e = errno;
    }
    ssize_t w = write(report, &e, sizeof e);
    (void)w;
    _exit(127);
}

/* Starts slot s's process. Returns 0, or -1 with 'why'. */
static int proc_spawn(serve_pool *p, serve_proc *s, int64_t now, char *why, size_t whylen) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
    char idx[40];
    snprintf(idx, sizeof idx, "DROVER_SERVE_INDEX=%d", s->index);
    p->env[p->nenv] = idx;
    p->env[p->nenv + 1] = NULL;
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) ||
        pipe2(rep, O_CLOEXEC) || drv_fd_lift(&in[0]) || drv_fd_lift(&in[1]) ||
        drv_fd_lift(&out[0]) || drv_fd_lift(&out[1]) || drv_fd_lift(&err[0]) ||
        drv_fd_lift(&err[1]) || drv_fd_lift(&rep[1])) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        goto fail;
    }
    /* Signals stay blocked across fork, so the child never runs the worker's handlers. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) child_exec(p, p->env, parent, in[0], out[1], err[1], rep[1]);
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(fork_errno));
        goto fail;
    }
    close_fd(&rep[1]);
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    int child_errno = 0;
    ssize_t r;
    do
        r = read(rep[0], &child_errno, sizeof child_errno);
    while (r < 0 && errno == EINTR);
    close_fd(&rep[0]);
    if (r > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        snprintf(why, whylen, "%s: %s", p->cfg.argv[0], strerror(child_errno));
        goto fail;
    }
    fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    fcntl(err[0], F_SETFL, fcntl(err[0], F_GETFL) | O_NONBLOCK);
    s->pid = pid;
    s->in_fd = in[1];
    s->out_fd = out[0];
    s->err_fd = err[0];
    s->state = P_RUN;
    s->exited = s->status = s->garbled = s->stopping = 0;
    s->eof_ms = 0;
    s->started_ms = now;
    s->exit_ms = s->retire_ms = 0;
    s->taken = 0;
    s->reason[0] = '\0';
    s->wlen = s->woff = s->llen = s->errlen = s->tail_len = 0;
    s->queued = s->written = 0;
    s->err_cut = 0;
    p->spawned++;
    char hello[96];
    int n = snprintf(hello, sizeof hello, "{\"drover\":\"handler-protocol\",\"version\":%d}\n",
                     SERVE_PROTOCOL_VERSION);
    if (queue_bytes(s, hello, (size_t)n) != 0) doom(s, "out of memory");
    drv_debug("serve[%d]: started pid %d", s->index, (int)pid);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
        close_fd(&rep[i]);
    }
    return -1;
}

/* ---- the pool -------------------------------------------------------------------------------- */

static int build_env(serve_pool *p, const char *pass_env) {
    size_t n = 0;
    while (environ[n])
        n++;
    p->env = calloc(n + 3, sizeof *p->env);
    if (!p->env) return -1;
    for (size_t i = 0; i < n; i++) {
        /* Per-item values travel in the protocol; stale ones from the worker's own
         * environment would mislead. The worker's Redis settings stay with it. */
        if (!strncmp(environ[i], "DROVER_JOB=", 11) ||
            !strncmp(environ[i], "DROVER_ITEM_ID=", 15) ||
            !strncmp(environ[i], "DROVER_ATTEMPT=", 15) ||
            !strncmp(environ[i], "DROVER_SERVE_INDEX=", 19) ||
            !strncmp(environ[i], "DROVER_LEASE_TOKEN=", 19) ||
            !strncmp(environ[i], "DROVER_BATCH_SIZE=", 18) ||
            !drv_env_for_child(environ[i], pass_env))
            continue;
        if (!(p->env[p->nenv] = strdup(environ[i]))) return -1;
        p->nenv++;
    }
    return 0;
}

int serve_pool_new(const serve_cfg *cfg, const char *worker_id, serve_pool **out, char *why,
                   size_t whylen) {
    *out = NULL;
    if (cfg->argc < 1 || !cfg->argv || !cfg->argv[0]) {
        snprintf(why, whylen, "--serve needs a command after --");
        return -1;
    }
    if (cfg->procs < 1 || cfg->procs > 10000) {
        snprintf(why, whylen, "--serve: %d processes (1 to 10000)", cfg->procs);
        return -1;
    }
    if (cfg->inflight < 0 || cfg->inflight > 100000 || cfg->max_items < 0 || cfg->timeout_ms < 0) {
        snprintf(why, whylen, "--serve: a setting is out of range");
        return -1;
    }
    serve_pool *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->cfg = *cfg;
    if (p->cfg.inflight == 0) p->cfg.inflight = 1;
    p->cfg.argv = calloc((size_t)cfg->argc + 1, sizeof *p->cfg.argv);
    if (!p->cfg.argv) goto oom;
    for (int i = 0; i < cfg->argc; i++)
        if (!(p->cfg.argv[i] = strdup(cfg->argv[i]))) goto oom;
    snprintf(p->worker, sizeof p->worker, "%s", worker_id ? worker_id : "");
    p->path = find_on_path(cfg->argv[0]);
    if (!p->path) {
        snprintf(why, whylen, "%s: command not found on PATH", cfg->argv[0]);
        goto fail;
    }
    struct stat st;
    if (stat(p->path, &st) != 0 || !S_ISREG(st.st_mode) || access(p->path, X_OK) != 0) {
        snprintf(why, whylen, "%s: not an executable file", p->path);
        goto fail;
    }
    if (build_env(p, cfg->pass_env) != 0) goto oom;
    p->procs = calloc((size_t)cfg->procs, sizeof *p->procs);
    if (!p->procs) goto oom;
    for (int i = 0; i < cfg->procs; i++) {
        serve_proc *s = &p->procs[i];
        s->index = i;
        s->in_fd = s->out_fd = s->err_fd = -1;
        s->items = calloc((size_t)p->cfg.inflight, sizeof *s->items);
        if (!s->items) goto oom;
    }
    int64_t now = drv_now_ms();
    for (int i = 0; i < cfg->procs; i++)
        if (proc_spawn(p, &p->procs[i], now, why, whylen) != 0) goto fail;
    *out = p;
    return 0;
oom:
    snprintf(why, whylen, "out of memory");
fail:
    /* The processes already started go with their zombies: nothing is left behind. */
    for (int i = 0; p && p->procs && i < cfg->procs; i++) {
        serve_proc *s = &p->procs[i];
        if (s->state == P_DOWN || s->pid <= 0) continue;
        kill_group(s);
        int status;
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
        }
        s->state = P_DOWN;
    }
    serve_free(p);
    return -1;
}

static int takes_items(const serve_pool *p, const serve_proc *s) {
    if (p->draining || s->state != P_RUN || s->exited || s->in_fd < 0) return 0;
    if (s->wlen - s->woff > WBUF_SOFT) return 0;
    int64_t free_slots = p->cfg.inflight - s->nitems;
    if (p->cfg.max_items > 0 && p->cfg.max_items - s->taken < free_slots)
        free_slots = p->cfg.max_items - s->taken;
    return free_slots > 0 ? (int)free_slots : 0;
}

int serve_capacity(const serve_pool *p) {
    int n = 0;
    for (int i = 0; i < p->cfg.procs; i++)
        n += takes_items(p, &p->procs[i]);
    return n;
}

int serve_running(const serve_pool *p) {
    int n = 0;
    for (int i = 0; i < p->cfg.procs; i++)
        n += p->procs[i].state != P_DOWN && !p->procs[i].exited;
    return n;
}

int64_t serve_spawned(const serve_pool *p) {
    return p->spawned;
}

pid_t serve_pid(const serve_pool *p, int i) {
    if (i < 0 || i >= p->cfg.procs) return 0;
    const serve_proc *s = &p->procs[i];
    return s->state != P_DOWN && !s->exited ? s->pid : 0;
}

/* ---- writing items --------------------------------------------------------------------------- */

/* Appends s as a JSON string literal. */
static int put_json_str(serve_proc *s, const char *v, size_t n) {
    char buf[512];
    size_t k = 0;
    buf[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (k + 8 > sizeof buf) {
            if (queue_bytes(s, buf, k) != 0) return -1;
            k = 0;
        }
        unsigned char c = (unsigned char)v[i];
        if (c == '"' || c == '\\') {
            buf[k++] = '\\';
            buf[k++] = (char)c;
        } else if (c < 0x20) {
            k += (size_t)snprintf(buf + k, 8, "\\u%04x", c);
        } else {
            buf[k++] = (char)c;
        }
    }
    buf[k++] = '"';
    return queue_bytes(s, buf, k);
}

/* The item's payload as a JSON value when it is one on one line (NDJSON, CSV and HTTP
 * sources), else as a string. */
static int put_item(serve_proc *s, const char *v, size_t n) {
    if (!memchr(v, '\n', n) && !memchr(v, '\r', n)) {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(v, n, &end, 0);
        int json = j != NULL;
        cJSON_Delete(j);
        /* One value and nothing after it but blanks: "{...} junk" goes as a string. */
        while (json && end < v + n && (*end == ' ' || *end == '\t'))
            end++;
        if (json && end == v + n) return queue_bytes(s, v, n);
    }
    return put_json_str(s, v, n);
}

static void flush_in(serve_pool *p, serve_proc *s) {
    (void)p;
    while (s->in_fd >= 0 && s->woff < s->wlen) {
        ssize_t w = write(s->in_fd, s->wbuf + s->woff, s->wlen - s->woff);
        if (w > 0) {
            s->woff += (size_t)w;
            s->written += (uint64_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        /* EPIPE: it closed its stdin, so the items waiting for it would never arrive. */
        close_fd(&s->in_fd);
        doom(s, "handler process %d closed its stdin; process killed", s->index);
        break;
    }
    if (s->woff == s->wlen) {
        s->woff = s->wlen = 0;
        if (s->wcap > WBUF_KEEP) {
            free(s->wbuf);
            s->wbuf = NULL;
            s->wcap = 0;
        }
    }
}

/* Whether s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF): what a handler reading its stdin as text can decode. */
static int utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xC2 && c <= 0xDF ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
        if (!len || n - i < len) return 0;
        for (size_t k = 1; k < len; k++)
            if ((u[i + k] & 0xC0) != 0x80) return 0;
        if (len == 3 && ((c == 0xE0 && u[i + 1] < 0xA0) || (c == 0xED && u[i + 1] > 0x9F)))
            return 0; /* overlong, surrogate */
        if (len == 4 && ((c == 0xF0 && u[i + 1] < 0x90) || (c == 0xF4 && u[i + 1] > 0x8F)))
            return 0; /* overlong, past U+10FFFF */
        i += len;
    }
    return 1;
}

int serve_start(serve_pool *p, const char *job, const drv_lease *l, int attempt,
                const char *traceparent, int64_t keep, void *tag, drv_outcome *out) {
    memset(out, 0, sizeof *out);
    /* Sent as it is, such an item would make a text-mode handler (the Python example) fail
     * to decode its stdin and exit, failing every item its process holds. */
    if (!utf8_valid(l->id, l->idlen) || (l->payload && !utf8_valid(l->payload, l->plen))) {
        out->permanent = 1;
        drv_outcome_error(
            out,
            "not valid UTF-8: the --serve line protocol carries JSON text; per-item exec "
            "takes any bytes",
            utf8_valid(l->id, l->idlen) ? "item" : "id");
        return -1;
    }
    serve_proc *best = NULL;
    int best_free = 0;
    for (int i = 0; i < p->cfg.procs; i++) {
        int f = takes_items(p, &p->procs[i]);
        if (f > best_free) {
            best = &p->procs[i];
            best_free = f;
        }
    }
    if (!best) {
        out->retryable_local = 1;
        drv_outcome_error(out, "no handler process free", p->draining ? "draining" : NULL);
        return -1;
    }
    serve_proc *s = best;
    int k = 0;
    while (s->items[k].id)
        k++;
    serve_item *it = &s->items[k];
    it->id = strndup(l->id, l->idlen);
    it->job = strdup(job ? job : "");
    if (!it->id || !it->job) goto oom;
    it->tag = tag;
    it->attempt = attempt;
    it->keep = keep < 0 ? 0 : keep > DRV_KEEP_RESPONSE_MAX ? DRV_KEEP_RESPONSE_MAX : keep;
    it->started_ms = drv_now_ms();
    it->deadline_ms = p->cfg.timeout_ms > 0 ? it->started_ms + p->cfg.timeout_ms : 0;
    it->start_off = s->queued;
    char num[160];
    uint64_t mark_q = s->queued;
    int bad = queue_bytes(s, "{\"id\":", 6) || put_json_str(s, l->id, l->idlen) ||
              queue_bytes(s, ",\"job\":", 7) || put_json_str(s, it->job, strlen(it->job));
    int n =
        snprintf(num, sizeof num, ",\"attempt\":%d,\"lease_token\":%" PRId64, attempt, l->token);
    bad = bad || queue_bytes(s, num, (size_t)n);
    if (traceparent) { /* 55 characters of hex and '-': nothing to escape */
        n = snprintf(num, sizeof num, ",\"traceparent\":\"%s\"", traceparent);
        bad = bad || queue_bytes(s, num, (size_t)n);
    }
    if (it->deadline_ms) {
        n = snprintf(num, sizeof num, ",\"deadline_ms\":%" PRId64,
                     drv_wall_ms() + p->cfg.timeout_ms);
        bad = bad || queue_bytes(s, num, (size_t)n);
    }
    if (l->payload)
        bad = bad || queue_bytes(s, ",\"item\":", 8) || put_item(s, l->payload, l->plen);
    bad = bad || queue_bytes(s, "}\n", 2);
    if (bad) {
        /* Take back what was queued of the line: the newest bytes, wherever they moved. */
        s->wlen -= (size_t)(s->queued - mark_q);
        s->queued = mark_q;
        goto oom;
    }
    s->nitems++;
    s->taken++;
    if (p->cfg.max_items > 0 && s->taken >= p->cfg.max_items) {
        s->state = P_RETIRE;
        s->retire_ms = 0;
    }
    /* The write waits for serve_pollfds, just before the worker's poll: the items a claim
     * brought go out in one write per process. A big backlog goes now. */
    if (s->wlen - s->woff >= FLUSH_NOW) flush_in(p, s);
    return 0;
oom:
    free(it->id);
    free(it->job);
    memset(it, 0, sizeof *it);
    out->retryable_local = 1;
    drv_outcome_error(out, "could not hand the item to a handler process", "out of memory");
    return -1;
}

int serve_pollfds(serve_pool *p, struct pollfd *fds, int cap) {
    int n = 0;
    for (int i = 0; i < p->cfg.procs; i++) {
        serve_proc *s = &p->procs[i];
        if (s->out_fd >= 0 && n < cap) fds[n++] = (struct pollfd){s->out_fd, POLLIN, 0};
        if (s->err_fd >= 0 && n < cap) fds[n++] = (struct pollfd){s->err_fd, POLLIN, 0};
        if (s->in_fd >= 0 && s->woff < s->wlen) flush_in(p, s);
        if (s->in_fd >= 0 && s->woff < s->wlen && n < cap)
            fds[n++] = (struct pollfd){s->in_fd, POLLOUT, 0};
    }
    return n;
}

/* ---- reading answers ------------------------------------------------------------------------- */

static void bad_line(serve_proc *s, const char *what, const char *line, size_t len) {
    if (s->state == P_DOOMED) return; /* already going: one reason is enough */
    s->garbled = 1;
    char cut[CUT_LINE + 1];
    size_t n = len < CUT_LINE ? len : CUT_LINE;
    memcpy(cut, line, n);
    cut[n] = '\0';
    drv_text_sanitize(cut, n);
    doom(s, "handler process %d wrote a line that is not protocol (%s): \"%s\"%s; process killed",
         s->index, what, cut, len > CUT_LINE ? "..." : "");
}

/* The slot holding item 'id' (of 'job' when the answer names one), or -1. */
static int match_item(const serve_pool *p, const serve_proc *s, const char *id, const char *job) {
    int found = -1;
    for (int k = 0; k < p->cfg.inflight; k++) {
        const serve_item *it = &s->items[k];
        if (!it->id || strcmp(it->id, id) != 0) continue;
        if (job && strcmp(it->job, job) != 0) continue;
        /* The same id twice (two jobs): the one given first. */
        if (found < 0 || it->started_ms < s->items[found].started_ms) found = k;
    }
    return found;
}

static void answer(serve_pool *p, serve_proc *s, int k, cJSON *msg) {
    serve_item *it = &s->items[k];
    drv_outcome o;
    memset(&o, 0, sizeof o);
    cJSON *ok = cJSON_GetObjectItemCaseSensitive(msg, "ok");
    cJSON *err = cJSON_GetObjectItemCaseSensitive(msg, "error");
    if (cJSON_IsTrue(ok) && (!err || cJSON_IsNull(err))) {
        o.ok = 1;
        cJSON *res = cJSON_GetObjectItemCaseSensitive(msg, "result");
        if (it->keep > 0 && res) {
            char *txt = cJSON_IsString(res) ? NULL : cJSON_PrintUnformatted(res);
            const char *v = cJSON_IsString(res) ? res->valuestring : txt;
            if (v) {
                size_t n = strlen(v);
                if (n > (size_t)it->keep) n = (size_t)it->keep;
                o.response = malloc(n ? n : 1);
                if (o.response) {
                    memcpy(o.response, v, n);
                    o.resplen = n;
                }
            }
            cJSON_free(txt);
        }
    } else {
        char *txt = NULL;
        const char *what = "failed";
        if (cJSON_IsString(err))
            what = err->valuestring;
        else if (err && !cJSON_IsNull(err))
            what = txt = cJSON_PrintUnformatted(err);
        else if (cJSON_IsFalse(ok))
            what = "failed (\"ok\": false)";
        fail_record(p, s, what ? what : "failed", 0, it->attempt, &o);
        cJSON_free(txt);
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(msg, "retry"))) o.permanent = 1;
        cJSON *ra = cJSON_GetObjectItemCaseSensitive(msg, "retry_after_ms");
        if (cJSON_IsNumber(ra) && ra->valuedouble > 0)
            o.retry_after_ms =
                ra->valuedouble > 86400000.0 * 365 ? 86400000LL * 365 : (int64_t)ra->valuedouble;
    }
    finish_item(p, s, k, &o);
}

static void handle_line(serve_pool *p, serve_proc *s, char *line, size_t len) {
    if (len && line[len - 1] == '\r') len--;
    size_t sp = 0;
    while (sp < len && (line[sp] == ' ' || line[sp] == '\t'))
        sp++;
    if (sp == len || s->garbled) return; /* a blank line says nothing */
    cJSON *msg = cJSON_ParseWithLength(line, len);
    if (!msg || !cJSON_IsObject(msg)) {
        bad_line(s, "not a JSON object", line, len);
        cJSON_Delete(msg);
        return;
    }
    cJSON *idv = cJSON_GetObjectItemCaseSensitive(msg, "id");
    cJSON *jobv = cJSON_GetObjectItemCaseSensitive(msg, "job");
    char num[64];
    const char *id = NULL;
    if (cJSON_IsString(idv)) {
        id = idv->valuestring;
    } else if (cJSON_IsNumber(idv) && idv->valuedouble == (double)(int64_t)idv->valuedouble) {
        /* A handler that turned a numeric id into a number: the same id. */
        snprintf(num, sizeof num, "%" PRId64, (int64_t)idv->valuedouble);
        id = num;
    }
    cJSON *ok = cJSON_GetObjectItemCaseSensitive(msg, "ok");
    cJSON *err = cJSON_GetObjectItemCaseSensitive(msg, "error");
    int k = id ? match_item(p, s, id, cJSON_IsString(jobv) ? jobv->valuestring : NULL) : -1;
    if (!id)
        bad_line(s, "no \"id\"", line, len);
    else if (k < 0 && s->state != P_DOOMED)
        bad_line(s, "no item with this id is in flight here", line, len);
    else if (k >= 0 && !cJSON_IsBool(ok) && !err)
        bad_line(s, "neither \"ok\" nor \"error\"", line, len);
    else if (k >= 0)
        answer(p, s, k, msg);
    /* else: a late answer from a process already killed (its item timed out): dropped */
    cJSON_Delete(msg);
}

static void read_out(serve_pool *p, serve_proc *s) {
    for (;;) {
        if (s->lcap - s->llen < 65536) {
            size_t cap = s->lcap ? s->lcap * 2 : 65536;
            while (cap - s->llen < 65536)
                cap *= 2;
            char *b = realloc(s->lbuf, cap);
            if (!b) {
                doom(s, "out of memory reading handler process %d's stdout", s->index);
                close_fd(&s->out_fd);
                return;
            }
            s->lbuf = b;
            s->lcap = cap;
        }
        ssize_t r = read(s->out_fd, s->lbuf + s->llen, s->lcap - s->llen);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            /* EOF: it cannot answer any more. It is usually exiting (tick finishes it once
             * its exit is reported); one that runs on without its stdout is killed. */
            close_fd(&s->out_fd);
            if (!s->exited) s->eof_ms = drv_now_ms();
            return;
        }
        size_t from = s->llen, start = 0;
        s->llen += (size_t)r;
        char *nl;
        while ((nl = memchr(s->lbuf + from, '\n', s->llen - from))) {
            size_t end = (size_t)(nl - s->lbuf);
            handle_line(p, s, s->lbuf + start, end - start);
            start = from = end + 1;
        }
        if (start > 0) {
            memmove(s->lbuf, s->lbuf + start, s->llen - start);
            s->llen -= start;
        }
        if (s->llen > LINE_MAX_BYTES) {
            bad_line(s, "line too long", s->lbuf, s->llen);
            s->llen = 0;
        }
    }
}

/* ---- stderr ---------------------------------------------------------------------------------- */

static void log_stderr_line(serve_pool *p, serve_proc *s, int64_t now) {
    if (now - p->log_window >= LOG_WINDOW_MS) {
        if (p->log_dropped)
            drv_warn("serve: %" PRId64 " stderr lines of handler processes not logged (more than "
                     "%d in %d s)",
                     p->log_dropped, LOG_WINDOW_LINES, LOG_WINDOW_MS / 1000);
        p->log_window = now;
        p->log_lines = p->log_dropped = 0;
    }
    if (p->log_lines >= LOG_WINDOW_LINES) {
        p->log_dropped++;
        return;
    }
    p->log_lines++;
    s->errline[s->errlen] = '\0';
    drv_text_sanitize(s->errline, s->errlen);
    drv_info("serve[%d] pid %d: %s%s", s->index, (int)s->pid, s->errline, s->err_cut ? "..." : "");
}

static void read_err(serve_pool *p, serve_proc *s) {
    char buf[8192];
    int64_t now = drv_now_ms();
    for (;;) {
        ssize_t r = read(s->err_fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            if (s->errlen) log_stderr_line(p, s, now);
            s->errlen = 0;
            close_fd(&s->err_fd);
            return;
        }
        for (ssize_t i = 0; i < r; i++) {
            if (s->tail_len == sizeof s->tail) {
                memmove(s->tail, s->tail + ERR_TAIL, ERR_TAIL);
                s->tail_len = ERR_TAIL;
            }
            s->tail[s->tail_len++] = buf[i];
            if (buf[i] == '\n') {
                log_stderr_line(p, s, now);
                s->errlen = 0;
                s->err_cut = 0;
            } else if (s->errlen < LOG_LINE_MAX) {
                s->errline[s->errlen++] = buf[i];
            } else {
                s->err_cut = 1;
            }
        }
    }
}

/* ---- timers and exits ------------------------------------------------------------------------ */

static void describe_exit(const serve_proc *s, char *what, size_t n) {
    if (s->reason[0])
        snprintf(what, n, "%s", s->reason);
    else if (WIFEXITED(s->status))
        snprintf(what, n, "handler process %d exited with status %d", s->index,
                 WEXITSTATUS(s->status));
    else if (WIFSIGNALED(s->status))
        snprintf(what, n, "handler process %d was killed by signal %d (%s)", s->index,
                 WTERMSIG(s->status), strsignal(WTERMSIG(s->status)));
    else
        snprintf(what, n, "handler process %d ended with status %d", s->index, s->status);
}

/* The process exited and its pipes are read: its items fail, and the slot restarts (at once
 * after a planned exit, with backoff after a failure; never while draining). */
static void proc_down(serve_pool *p, serve_proc *s, int64_t now) {
    char what[600];
    describe_exit(s, what, sizeof what);
    int planned = !s->reason[0] && s->in_fd < 0 && s->woff == s->wlen && s->nitems == 0 &&
                  s->state == P_RETIRE && WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0;
    int failed = s->nitems;
    for (int k = 0; k < p->cfg.inflight && s->nitems > 0; k++) {
        serve_item *it = &s->items[k];
        if (!it->id) continue;
        drv_outcome o;
        memset(&o, 0, sizeof o);
        if (it->start_off >= s->written || s->stopping) {
            /* It never saw a byte of the item, or the worker is stopping: not the item's
             * fault, no attempt spent. */
            o.retryable_local = 1;
            char m[700];
            snprintf(m, sizeof m, "%s%s", what, s->stopping ? "" : " before the item was sent");
            drv_outcome_error(&o, m, NULL);
        } else {
            fail_record(p, s, what, 1, it->attempt, &o);
        }
        finish_item(p, s, k, &o);
    }
    close_fd(&s->in_fd);
    close_fd(&s->out_fd);
    close_fd(&s->err_fd);
    s->wlen = s->woff = s->llen = 0;
    int lived = now - s->started_ms >= STABLE_MS;
    s->state = P_DOWN;
    s->pid = 0;
    if (p->draining) {
        drv_debug("serve[%d]: %s", s->index, what);
        return;
    }
    if (planned || lived) {
        int64_t nf, ms;
        if (drv_backoff_ok(&s->bo, now, &nf, &ms))
            drv_info("serve[%d]: handler process ran again after %" PRId64 " failed starts in "
                     "%.1f s",
                     s->index, nf, (double)ms / 1000.0);
    }
    if (planned) {
        drv_debug("serve[%d]: replaced after %" PRId64 " items", s->index, s->taken);
        s->restart_at = now;
        return;
    }
    int say;
    int64_t delay = drv_backoff_fail(&s->bo, now, &say);
    s->restart_at = now + delay;
    if (say)
        drv_warn("serve[%d]: %s; %d item%s failed; restarting it (a crash loop backs off, "
                 "said once)",
                 s->index, what, failed, failed == 1 ? "" : "s");
    else
        drv_debug("serve[%d]: %s; restarting in %" PRId64 " ms", s->index, what, delay);
}

static void tick(serve_pool *p, serve_proc *s, int64_t now) {
    if (s->state == P_DOWN) {
        if (p->draining || now < s->restart_at) return;
        char why[512];
        if (proc_spawn(p, s, now, why, sizeof why) != 0) {
            int say;
            s->restart_at = now + drv_backoff_fail(&s->bo, now, &say);
            if (say)
                drv_warn("serve[%d]: cannot start the handler: %s (backing off)", s->index, why);
        }
        return;
    }
    /* Items past their deadline fail now; the process holding them is killed. */
    for (int k = 0; k < p->cfg.inflight && s->nitems > 0; k++) {
        serve_item *it = &s->items[k];
        if (!it->id || !it->deadline_ms || now < it->deadline_ms) continue;
        char what[256];
        snprintf(what, sizeof what, "timed out after %.1f s; handler process %d killed",
                 (double)(it->deadline_ms - it->started_ms) / 1000.0, s->index);
        drv_outcome o;
        memset(&o, 0, sizeof o);
        fail_record(p, s, what, 1, it->attempt, &o);
        doom(s, "handler process %d killed: item %.200s timed out", s->index, it->id);
        finish_item(p, s, k, &o);
    }
    if (s->exited) {
        if (s->out_fd >= 0) read_out(p, s);
        if (s->err_fd >= 0) read_err(p, s);
        /* A grandchild may hold the pipes open: wait a little, not forever. */
        if ((s->out_fd < 0 && s->err_fd < 0) || now >= s->exit_ms + DRAIN_AFTER_EXIT)
            proc_down(p, s, now);
        return;
    }
    if (s->eof_ms && s->state != P_DOOMED && now >= s->eof_ms + DRAIN_AFTER_EXIT)
        doom(s, "handler process %d closed its stdout; process killed", s->index);
    if (s->state == P_RUN && p->draining) s->state = P_RETIRE;
    if (s->state == P_RUN && now - s->started_ms >= STABLE_MS && s->bo.fails) {
        int64_t nf, ms;
        if (drv_backoff_ok(&s->bo, now, &nf, &ms))
            drv_info("serve[%d]: handler process up again after %" PRId64 " failures in %.1f s",
                     s->index, nf, (double)ms / 1000.0);
    }
    if (s->state == P_RETIRE && s->nitems == 0 && s->woff == s->wlen && s->in_fd >= 0) {
        close_fd(&s->in_fd); /* EOF: it should finish and exit */
        s->retire_ms = now;
    }
    if (s->state == P_RETIRE && s->in_fd < 0 && !p->draining && s->retire_ms &&
        now - s->retire_ms >= RETIRE_KILL_MS)
        doom(s, "handler process %d did not exit within %d s of its stdin closing; killed",
             s->index, RETIRE_KILL_MS / 1000);
}

void serve_service(serve_pool *p, const struct pollfd *fds, int n, int64_t now) {
    for (int i = 0; i < n; i++) {
        if (!fds[i].revents) continue;
        for (int j = 0; j < p->cfg.procs; j++) {
            serve_proc *s = &p->procs[j];
            if (fds[i].fd == s->out_fd)
                read_out(p, s);
            else if (fds[i].fd == s->err_fd)
                read_err(p, s);
            else if (fds[i].fd == s->in_fd)
                flush_in(p, s);
            else
                continue;
            break;
        }
    }
    for (int j = 0; j < p->cfg.procs; j++)
        tick(p, &p->procs[j], now);
    if (p->log_dropped && now - p->log_window >= LOG_WINDOW_MS) {
        drv_warn("serve: %" PRId64 " stderr lines of handler processes not logged (more than %d "
                 "in %d s)",
                 p->log_dropped, LOG_WINDOW_LINES, LOG_WINDOW_MS / 1000);
        p->log_dropped = 0;
    }
}

int serve_take_done(serve_pool *p, void **tag, drv_outcome *out) {
    if (!p->ndone) return 0;
    done_entry *e = &p->done[p->done_head++];
    p->ndone--;
    *tag = e->tag;
    *out = e->out;
    if (!p->ndone) p->done_head = 0;
    return 1;
}

static void earliest(int64_t *d, int64_t at, int64_t now) {
    int64_t x = at > now ? at - now : 0;
    if (*d < 0 || x < *d) *d = x;
}

int64_t serve_next_deadline(const serve_pool *p, int64_t now) {
    int64_t d = p->ndone ? 0 : -1;
    for (int j = 0; j < p->cfg.procs; j++) {
        const serve_proc *s = &p->procs[j];
        if (s->state == P_DOWN) {
            if (!p->draining) earliest(&d, s->restart_at, now);
            continue;
        }
        for (int k = 0; k < p->cfg.inflight; k++)
            if (s->items[k].id && s->items[k].deadline_ms)
                earliest(&d, s->items[k].deadline_ms, now);
        if (s->exited) earliest(&d, s->exit_ms + DRAIN_AFTER_EXIT, now);
        if (s->eof_ms && s->state != P_DOOMED) earliest(&d, s->eof_ms + DRAIN_AFTER_EXIT, now);
        if (s->state == P_RETIRE && s->in_fd >= 0 && s->nitems == 0 && s->woff == s->wlen)
            earliest(&d, now, now);
        if (s->state == P_RUN && p->draining) earliest(&d, now, now);
        if (s->state == P_RETIRE && s->retire_ms && !p->draining)
            earliest(&d, s->retire_ms + RETIRE_KILL_MS, now);
        if (s->state == P_RUN && s->bo.fails) earliest(&d, s->started_ms + STABLE_MS, now);
    }
    if (p->log_dropped) earliest(&d, p->log_window + LOG_WINDOW_MS, now);
    return d;
}

int serve_child_exited(serve_pool *p, pid_t pid, int status) {
    if (pid <= 0) return 0;
    for (int j = 0; j < p->cfg.procs; j++) {
        serve_proc *s = &p->procs[j];
        if (s->state == P_DOWN || s->pid != pid || s->exited) continue;
        s->exited = 1;
        s->status = status;
        s->exit_ms = drv_now_ms();
        tick(p, s, s->exit_ms); /* finishes it now when its pipes are already at EOF */
        return 1;
    }
    return 0;
}

void serve_drain(serve_pool *p) {
    p->draining = 1;
    int64_t now = drv_now_ms();
    for (int j = 0; j < p->cfg.procs; j++)
        tick(p, &p->procs[j], now);
}

int serve_inflight(const serve_pool *p) {
    int n = (int)p->ndone;
    for (int j = 0; j < p->cfg.procs; j++)
        n += p->procs[j].nitems;
    return n;
}

void serve_kill_all(serve_pool *p) {
    p->draining = 1; /* the end: nothing restarts */
    for (int j = 0; j < p->cfg.procs; j++) {
        serve_proc *s = &p->procs[j];
        if (s->state == P_DOWN) continue;
        if (!s->reason[0]) s->stopping = 1; /* a process killed for a reason keeps it */
        doom(s, "handler process %d killed: the worker is stopping", j);
    }
}

/* 1 while s is a process the worker has not reaped and that has not exited (an exited one is
 * left a zombie, so its process group id stays reserved until shutdown kills the group). */
static int running_unreaped(const serve_proc *s) {
    if (s->state == P_DOWN || s->exited || s->pid <= 0) return 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return !(waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
             si.si_pid == s->pid);
}

/* The end of the pool: every process gets EOF on stdin and up to SHUTDOWN_WAIT_MS to exit
 * (a handler closing its connection), reading what it still writes; then every process group
 * left is SIGKILLed (grandchildren too) and the processes the worker has not reaped are. */
static void shutdown_procs(serve_pool *p) {
    int n = p->cfg.procs;
    struct pollfd *fds = calloc((size_t)n * 2 + 1, sizeof *fds);
    for (int j = 0; j < n; j++)
        close_fd(&p->procs[j].in_fd);
    int64_t end = drv_now_ms() + SHUTDOWN_WAIT_MS;
    while (fds) {
        int nf = 0, alive = 0;
        for (int j = 0; j < n; j++) {
            serve_proc *s = &p->procs[j];
            if (!running_unreaped(s)) continue;
            alive++;
            if (s->out_fd >= 0) fds[nf++] = (struct pollfd){s->out_fd, POLLIN, 0};
            if (s->err_fd >= 0) fds[nf++] = (struct pollfd){s->err_fd, POLLIN, 0};
        }
        int64_t now = drv_now_ms();
        if (!alive || now >= end) break;
        /* An exit closes the pipes, which wakes the poll; a process that closed them earlier
         * is checked again every 50 ms. */
        int r = poll(fds, (nfds_t)nf, end - now < 50 ? (int)(end - now) : 50);
        for (int i = 0; r > 0 && i < nf; i++)
            for (int j = 0; fds[i].revents && j < n; j++) {
                if (fds[i].fd == p->procs[j].out_fd) read_out(p, &p->procs[j]);
                if (fds[i].fd == p->procs[j].err_fd) read_err(p, &p->procs[j]);
            }
    }
    free(fds);
    for (int j = 0; j < n; j++) {
        serve_proc *s = &p->procs[j];
        if (s->state == P_DOWN || s->exited || s->pid <= 0) continue;
        kill(-s->pid, SIGKILL);
        int status;
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
        }
        s->exited = 1;
    }
}

void serve_free(serve_pool *p) {
    if (!p) return;
    if (p->procs) shutdown_procs(p);
    if (p->log_dropped)
        drv_warn("serve: %" PRId64 " stderr lines of handler processes not logged (more than %d "
                 "in %d s)",
                 p->log_dropped, LOG_WINDOW_LINES, LOG_WINDOW_MS / 1000);
    for (int j = 0; p->procs && j < p->cfg.procs; j++) {
        serve_proc *s = &p->procs[j];
        close_fd(&s->in_fd);
        close_fd(&s->out_fd);
        close_fd(&s->err_fd);
        for (int k = 0; s->items && k < p->cfg.inflight; k++) {
            free(s->items[k].id);
            free(s->items[k].job);
        }
        free(s->items);
        free(s->wbuf);
        free(s->lbuf);
    }
    free(p->procs);
    for (size_t i = 0; i < p->ndone; i++)
        free(p->done[p->done_head + i].out.response);
    free(p->done);
    for (size_t i = 0; p->env && i < p->nenv; i++)
        free(p->env[i]);
    free(p->env);
    for (int i = 0; p->cfg.argv && i < p->cfg.argc; i++)
        free(p->cfg.argv[i]);
    free(p->cfg.argv);
    free(p->path);
    free(p);
}
