#include "conn.h"

#include "cluster.h"
#include "link.h"
#include "log.h"
#include "scripts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCRIPTS 32

struct drv_conn {
    drv_redis_cfg cfg;
    drv_link *link;  /* NULL while broken; always NULL in cluster mode */
    drv_tls *tls;    /* rediss: the TLS settings of the server and the sentinels */
    drv_cluster *cl; /* cluster mode only: the routing layer (cluster.c) */
    int cl_broken;   /* cluster mode: a node was lost; reconnect reads the map again */
    char addr[320];
    char err[512];
    char sha[MAX_SCRIPTS][41];
};

static void set_err(drv_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(drv_conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

/* A call that succeeded: no error text left over from an earlier one (hiredis's convention:
 * the text is that of the last call, and empty after a success). */
static void clear_err(drv_conn *c) {
    c->err[0] = '\0';
}

static void mark_broken(drv_conn *c) {
    if (c->link) {
        set_err(c, "%s: %s", c->addr, drv_link_errstr(c->link));
        drv_link_free(c->link);
        c->link = NULL;
    }
}

static int script_index(const char *name) {
    for (int i = 0; drv_script_sources[i].name; i++)
        if (strcmp(drv_script_sources[i].name, name) == 0) return i;
    return -1;
}

/* SCRIPT LOAD one script; stores its sha. */
static drv_err load_script(drv_conn *c, int i) {
    const char *argv[] = {"SCRIPT", "LOAD", drv_script_sources[i].src};
    size_t lens[] = {6, 4, drv_script_sources[i].len};
    redisReply *r;
    drv_err e = drv_conn_cmd(c, 3, argv, lens, &r);
    if (e != DRV_OK) return e;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        set_err(c, "SCRIPT LOAD %s: unexpected reply", drv_script_sources[i].name);
        freeReplyObject(r);
        return DRV_EREPLY;
    }
    memcpy(c->sha[i], r->str, 40);
    c->sha[i][40] = '\0';
    freeReplyObject(r);
    return DRV_OK;
}

/* The first commands after connecting (SELECT, SCRIPT LOAD) failed with an error reply: says
 * which server refused what, and for the two refusals an operator meets when setting up
 * credentials, what to do about it. Redis's own text is kept after the hint. */
static void explain_refusal(drv_conn *c) {
    char msg[sizeof c->err];
    snprintf(msg, sizeof msg, "%s", c->err);
    if (strncmp(msg, "NOAUTH", 6) == 0)
        set_err(c,
                "Redis at %s wants a password and none was given (put it in the URL: "
                "redis://[USER:]PASSWORD@HOST:PORT): %s",
                c->addr, msg);
    else if (strncmp(msg, "NOPERM", 6) == 0)
        set_err(c,
                "Redis at %s: user '%s' may not run what drover needs (see \"Redis ACL\" in "
                "README.md): %s",
                c->addr, c->cfg.user[0] ? c->cfg.user : "default", msg);
    else if (strstr(msg, c->addr) == NULL)
        set_err(c, "Redis at %s: %s", c->addr, msg);
}

/* Cluster mode: read the slot map (first time or again) and load the scripts on every
 * master. */
static drv_err cluster_connect(drv_conn *c) {
    drv_err e;
    if (!c->cl) {
        e = drv_cluster_open(&c->cfg, &c->cl, c->err, sizeof c->err);
        if (e != DRV_OK) return e;
    } else if ((e = drv_cluster_refresh(c->cl)) != DRV_OK) {
        set_err(c, "%s", drv_cluster_errstr(c->cl));
        return e;
    }
    c->cl_broken = 0;
    for (int i = 0; i < MAX_SCRIPTS && drv_script_sources[i].name; i++)
        if ((e = load_script(c, i)) != DRV_OK) {
            if (e == DRV_EREPLY) explain_refusal(c);
            c->cl_broken = 1;
            return e;
        }
    return DRV_OK;
}

/* Sentinel mode: asks the sentinels in turn for the master's address and points cfg.host and
 * cfg.port (and the address in messages) at it. Sentinels are asked without AUTH. */
static drv_err sentinel_resolve(drv_conn *c) {
    char last[400] = "no sentinel given";
    for (int i = 0; i < c->cfg.nseeds; i++) {
        const drv_redis_seed *s = &c->cfg.seeds[i];
        char why[256];
        /* A sentinel gets the connect timeout for its answer too: it only looks up a name. */
        drv_link *l = drv_link_open(s->host, s->port, NULL, c->tls, c->cfg.connect_timeout_ms,
                                    c->cfg.connect_timeout_ms, why, sizeof why);
        if (!l) {
            snprintf(last, sizeof last, "sentinel %.100s:%d: %.200s", s->host, s->port, why);
            continue;
        }
        redisReply *r = drv_link_command(l, "SENTINEL get-master-addr-by-name %s", c->cfg.master);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof c->cfg.host) {
            snprintf(c->cfg.host, sizeof c->cfg.host, "%s", r->element[0]->str);
            c->cfg.port = atoi(r->element[1]->str);
            freeReplyObject(r);
            drv_link_free(l);
            drv_redis_cfg single = c->cfg;
            single.mode = DRV_REDIS_SINGLE;
            /* The master's address, then who named it (cut to fit: only for messages). */
            drv_url_describe(&single, c->addr, sizeof c->addr);
            size_t o = strlen(c->addr);
            snprintf(c->addr + o, sizeof c->addr - o, " (master %.100s of sentinel %.100s:%d)",
                     c->cfg.master, s->host, s->port);
            return DRV_OK;
        }
        if (!r)
            snprintf(last, sizeof last, "sentinel %.100s:%d: %.200s", s->host, s->port,
                     drv_link_errstr(l));
        else
            snprintf(last, sizeof last, "sentinel %.100s:%d knows no master \"%.100s\"%s%.100s",
                     s->host, s->port, c->cfg.master, r->type == REDIS_REPLY_ERROR ? ": " : "",
                     r->type == REDIS_REPLY_ERROR ? r->str : "");
        if (r) freeReplyObject(r);
        drv_link_free(l);
    }
    set_err(c, "cannot find the Redis master \"%s\": %s", c->cfg.master, last);
    return DRV_EIO;
}

/* Sentinel mode: the address a sentinel named may be a demoted master a moment after a
 * failover; only a master will do. */
static drv_err check_master(drv_conn *c) {
    redisReply *r;
    drv_err e = drv_conn_cmdf(c, &r, "ROLE");
    if (e != DRV_OK) return e;
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
    freeReplyObject(r);
    if (!ok) {
        set_err(c, "%s is not a master (yet): a failover is under way", c->addr);
        return DRV_EIO;
    }
    return DRV_OK;
}

static drv_err do_connect(drv_conn *c) {
    if (c->cfg.mode == DRV_REDIS_CLUSTER) return cluster_connect(c);
    if (c->cfg.mode == DRV_REDIS_SENTINEL) {
        drv_err e = sentinel_resolve(c);
        if (e != DRV_OK) return e;
    }
    char why[256];
    c->link = drv_link_open(c->cfg.host, c->cfg.port, c->cfg.path, c->tls,
                            c->cfg.connect_timeout_ms, c->cfg.command_timeout_ms, why, sizeof why);
    if (!c->link) {
        set_err(c, "cannot connect to Redis at %s: %s", c->addr, why);
        return DRV_EIO;
    }
    redisReply *r = NULL;
    drv_err e = DRV_OK;
    if (c->cfg.password[0]) {
        if (c->cfg.user[0])
            e = drv_conn_cmdf(c, &r, "AUTH %s %s", c->cfg.user, c->cfg.password);
        else
            e = drv_conn_cmdf(c, &r, "AUTH %s", c->cfg.password);
        if (e != DRV_OK) {
            char msg[sizeof c->err];
            snprintf(msg, sizeof msg, "%s", c->err);
            set_err(c, "Redis at %s refused AUTH: %s", c->addr, msg);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (c->cfg.db != 0) {
        if ((e = drv_conn_cmdf(c, &r, "SELECT %d", c->cfg.db)) != DRV_OK) goto fail;
        freeReplyObject(r);
    } else if (!c->cfg.password[0]) {
        /* A server that wants a password answers NOAUTH to this; to a script over 16 KB
         * (SCRIPT LOAD's argument) it would answer only "Protocol error: unauthenticated bulk
         * length" and close the connection. */
        if ((e = drv_conn_cmdf(c, &r, "PING")) != DRV_OK) goto fail;
        freeReplyObject(r);
    }
    if (c->cfg.mode == DRV_REDIS_SENTINEL && (e = check_master(c)) != DRV_OK) goto fail;
    for (int i = 0; i < MAX_SCRIPTS && drv_script_sources[i].name; i++)
        if ((e = load_script(c, i)) != DRV_OK) goto fail;
    return DRV_OK;
fail:
    if (e == DRV_EREPLY) explain_refusal(c);
    drv_link_free(c->link);
    c->link = NULL;
    return e;
}

drv_err drv_conn_open(const drv_redis_cfg *cfg, drv_conn **out, char *why, size_t whylen) {
    drv_conn *c = calloc(1, sizeof *c);
    if (!c) return DRV_ENOMEM;
    c->cfg = *cfg;
    drv_url_describe(cfg, c->addr, sizeof c->addr);
    drv_err e = DRV_OK;
    /* cluster.c keeps its own TLS settings, for its nodes. */
    if (cfg->mode != DRV_REDIS_CLUSTER) e = drv_tls_new(cfg, &c->tls, c->err, sizeof c->err);
    if (e == DRV_OK) e = do_connect(c);
    if (e != DRV_OK) {
        if (why) snprintf(why, whylen, "%s", c->err);
        drv_cluster_close(c->cl);
        drv_tls_free(c->tls);
        free(c);
        return e;
    }
    *out = c;
    return DRV_OK;
}

void drv_conn_close(drv_conn *c) {
    if (!c) return;
    drv_link_free(c->link);
    drv_cluster_close(c->cl);
    drv_tls_free(c->tls);
    free(c);
}

drv_err drv_conn_reconnect(drv_conn *c, char *why, size_t whylen) {
    drv_err e = DRV_OK;
    if (!(c->link || (c->cl && !c->cl_broken))) e = do_connect(c);
    if (e != DRV_OK && why) snprintf(why, whylen, "%s", c->err);
    if (e == DRV_OK) clear_err(c);
    return e;
}

int drv_conn_broken(const drv_conn *c) {
    return c->cl ? c->cl_broken : c->link == NULL;
}

const char *drv_conn_addr(const drv_conn *c) {
    return c->addr;
}

const char *drv_conn_errstr(const drv_conn *c) {
    return c->err;
}

void drv_conn_set_errstr(drv_conn *c, const char *text) {
    set_err(c, "%s", text);
}

/* Refusals a healthy server gives while it cannot take writes for a while: out of memory
 * under maxmemory/noeviction, a failed background save (stop-writes-on-bgsave-error),
 * loading its dataset, a script or module running too long, and in a cluster the
 * redirections and retries still unsettled after cluster.c followed them for seconds (a
 * reshard or failover half done). Nothing was written; the same call may succeed later, so
 * callers treat them as an outage without reconnecting. */
static int transient_refusal(const char *err) {
    static const char *const words[] = {"OOM",   "MISCONF", "LOADING",  "BUSY",       "MASTERDOWN",
                                        "MOVED", "ASK",     "TRYAGAIN", "CLUSTERDOWN"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t n = strlen(words[i]);
        if (strncmp(err, words[i], n) == 0 && (err[n] == ' ' || err[n] == '\0')) return 1;
    }
    return 0;
}

/* Takes ownership of reply r: turns an error reply into DRV_EREPLY (DRV_EFULL for a
 * transient refusal). */
static drv_err check_reply(drv_conn *c, redisReply *r, redisReply **out) {
    if (!r) {
        mark_broken(c);
        return DRV_EIO;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        set_err(c, "%.*s", (int)r->len, r->str);
        freeReplyObject(r);
        /* Sentinel mode: the master we talk to was demoted; ask the sentinels again. */
        if (c->cfg.mode == DRV_REDIS_SENTINEL && c->link && strncmp(c->err, "READONLY", 8) == 0) {
            char msg[sizeof c->err];
            snprintf(msg, sizeof msg, "%s", c->err);
            drv_link_free(c->link);
            c->link = NULL;
            set_err(c, "%s was demoted to a replica: %s", c->addr, msg);
            return DRV_EIO;
        }
        if (transient_refusal(c->err)) return DRV_EFULL;
        return DRV_EREPLY;
    }
    *out = r;
    return DRV_OK;
}

/* Cluster mode: a NULL reply means a node was lost (the map is read again on reconnect). */
static drv_err cluster_reply(drv_conn *c, redisReply *r, redisReply **out) {
    if (!r) {
        set_err(c, "%s", drv_cluster_errstr(c->cl));
        c->cl_broken = 1;
        return DRV_EIO;
    }
    return check_reply(c, r, out);
}

static drv_err cluster_cmd(drv_conn *c, int argc, const char **argv, const size_t *lens,
                           redisReply **out) {
    if (c->cl_broken) return DRV_EIO;
    return cluster_reply(c, drv_cluster_command(c->cl, argc, argv, lens), out);
}

/* Splits a command hiredis formatted (RESP: *N $len data ...) back into argv and lens, which
 * point into 'cmd'. Returns argc, or -1 when it does not fit in 'max'. */
static int resp_to_argv(char *cmd, int len, const char **argv, size_t *lens, int max) {
    char *p = cmd, *end = cmd + len;
    if (p >= end || *p != '*') return -1;
    long n = strtol(p + 1, &p, 10);
    if (n < 1 || n > max) return -1;
    p += 2;
    for (long i = 0; i < n; i++) {
        if (p >= end || *p != '$') return -1;
        long l = strtol(p + 1, &p, 10);
        p += 2;
        if (l < 0 || p + l + 2 > end) return -1;
        argv[i] = p;
        lens[i] = (size_t)l;
        p += l + 2;
    }
    return (int)n;
}

static drv_err cluster_cmdv(drv_conn *c, redisReply **out, const char *fmt, va_list ap) {
    if (c->cl_broken) return DRV_EIO;
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0) {
        set_err(c, "out of memory formatting \"%s\"", fmt);
        return DRV_ENOMEM;
    }
    const char *argv[64];
    size_t lens[64];
    int argc = resp_to_argv(cmd, len, argv, lens, 64);
    drv_err e;
    if (argc < 0) {
        set_err(c, "cannot route \"%s\" in cluster mode", fmt);
        e = DRV_EINVAL;
    } else {
        e = cluster_cmd(c, argc, argv, lens, out);
    }
    free(cmd);
    return e;
}

static drv_err cmd_argv(drv_conn *c, int argc, const char **argv, const size_t *lens,
                        redisReply **out) {
    if (c->cl) return cluster_cmd(c, argc, argv, lens, out);
    if (!c->link) return DRV_EIO;
    return check_reply(c, drv_link_command_argv(c->link, argc, argv, lens), out);
}

drv_err drv_conn_cmd(drv_conn *c, int argc, const char **argv, const size_t *lens,
                     redisReply **out) {
    drv_err e = cmd_argv(c, argc, argv, lens, out);
    if (e == DRV_OK) clear_err(c);
    return e;
}

drv_err drv_conn_cmdf(drv_conn *c, redisReply **out, const char *fmt, ...) {
    va_list ap;
    drv_err e;
    if (c->cl) {
        va_start(ap, fmt);
        e = cluster_cmdv(c, out, fmt, ap);
        va_end(ap);
    } else if (!c->link) {
        e = DRV_EIO;
    } else {
        va_start(ap, fmt);
        redisReply *r = drv_link_vcommand(c->link, fmt, ap);
        va_end(ap);
        e = check_reply(c, r, out);
    }
    if (e == DRV_OK) clear_err(c);
    return e;
}

drv_err drv_conn_append(drv_conn *c, int argc, const char **argv, const size_t *lens) {
    if (c->cl) {
        if (c->cl_broken) return DRV_EIO;
        if (drv_cluster_append(c->cl, argc, argv, lens) != 0) {
            set_err(c, "out of memory queueing a command");
            return DRV_ENOMEM;
        }
        clear_err(c);
        return DRV_OK;
    }
    if (!c->link) return DRV_EIO;
    if (drv_link_append_argv(c->link, argc, argv, lens) != 0) {
        mark_broken(c);
        return DRV_EIO;
    }
    /* A pipeline starts with no error; its replies (drv_conn_reply) set one, never clear it,
     * so the first failure among them keeps its text while the rest are read. */
    clear_err(c);
    return DRV_OK;
}

drv_err drv_conn_reply(drv_conn *c, redisReply **out) {
    if (c->cl) {
        if (c->cl_broken) return DRV_EIO;
        return cluster_reply(c, drv_cluster_reply(c->cl), out);
    }
    if (!c->link) return DRV_EIO;
    return check_reply(c, drv_link_get_reply(c->link), out);
}

/* Maps "DRV_WORD detail" to an error code. */
static drv_err script_error(const char *msg) {
    static const struct {
        const char *word;
        drv_err e;
    } map[] = {
        {"DRV_PAUSED", DRV_EPAUSED},   {"DRV_CANCELLED", DRV_ECANCELLED},
        {"DRV_NOJOB", DRV_ENOJOB},     {"DRV_CURSOR", DRV_ECURSOR},
        {"DRV_SPLIT", DRV_ECURSOR},    {"DRV_EXISTS", DRV_EEXIST},
        {"DRV_CORRUPT", DRV_ECORRUPT},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t n = strlen(map[i].word);
        if (strncmp(msg, map[i].word, n) == 0 && (msg[n] == ' ' || msg[n] == '\0')) return map[i].e;
    }
    return DRV_EREPLY;
}

drv_err drv_conn_script(drv_conn *c, const char *name, int nkeys, const char **keys,
                        const size_t *keylens, int nargs, const char **args, const size_t *arglens,
                        redisReply **out) {
    int si = script_index(name);
    if (si < 0) {
        set_err(c, "no script named %s", name);
        return DRV_EINVAL;
    }
    int argc = 3 + nkeys + nargs;
    const char *stack_argv[64];
    size_t stack_lens[64];
    const char **argv = stack_argv;
    size_t *lens = stack_lens;
    if (argc > 64) {
        argv = malloc(sizeof *argv * (size_t)argc);
        lens = malloc(sizeof *lens * (size_t)argc);
        if (!argv || !lens) {
            free(argv);
            free(lens);
            set_err(c, "out of memory calling script %s", name);
            return DRV_ENOMEM;
        }
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA", lens[0] = 7;
    argv[2] = nk, lens[2] = strlen(nk);
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i], lens[3 + i] = keylens[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i], lens[3 + nkeys + i] = arglens[i];
    drv_err e;
    for (int attempt = 0;; attempt++) {
        argv[1] = c->sha[si], lens[1] = 40;
        e = cmd_argv(c, argc, argv, lens, out);
        if (e == DRV_EREPLY && strncmp(c->err, "NOSCRIPT", 8) == 0 && attempt == 0) {
            drv_debug("script %s not in the Redis script cache, loading it again", name);
            if ((e = load_script(c, si)) != DRV_OK) break;
            continue;
        }
        break;
    }
    if (e == DRV_EREPLY) e = script_error(c->err);
    if (e == DRV_OK) clear_err(c);
    if (argv != stack_argv) {
        free(argv);
        free(lens);
    }
    return e;
}
