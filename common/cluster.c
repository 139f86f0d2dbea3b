#include "cluster.h"

#include "link.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define NSLOTS         16384
#define MAX_NODES      64
#define MAX_TRIES      40  /* redirections and TRYAGAIN/CLUSTERDOWN retries of one command */
#define BACKOFF_MAX_MS 200 /* 5, 10, 20 ... 200 ms: about 6 s over MAX_TRIES */

typedef struct node {
    char host[256];
    int port;
    drv_link *link; /* NULL until first used, and after its connection was lost */
} node;

/* A queued pipeline command: argv and lens point into the same allocation. */
typedef struct pcmd {
    int argc;
    const char **argv;
    size_t *lens;
    int node; /* where it was sent, -1 when it runs alone after the others */
    redisReply *reply;
    int lost; /* its node's connection was lost before its reply */
} pcmd;

struct drv_cluster {
    drv_redis_cfg cfg;
    drv_tls *tls; /* rediss+cluster: every node over TLS */
    node nodes[MAX_NODES];
    int nnodes;
    int16_t slot[NSLOTS]; /* node index of the master, -1 when unknown */
    int masters[MAX_NODES];
    int nmasters;
    int multi;      /* a MULTI was asked for and not yet ended */
    int multi_node; /* where it went, -1 while held back */
    pcmd *q;        /* the pipeline: appended commands, then their replies */
    size_t qn, qcap, qnext;
    int flushed;
    char err[512];
    char owner[300];
};

static void set_err(drv_cluster *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(drv_cluster *cl, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->err, sizeof cl->err, fmt, ap);
    va_end(ap);
}

/* ---- slots ------------------------------------------------------------------------------------
 */

uint16_t drv_crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

int drv_cluster_keyslot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        /* "{}" is no tag: the whole key is hashed. */
        if (close && close > key + from) {
            key += from;
            len = (size_t)(close - key);
        }
    }
    return drv_crc16(key, len) & (NSLOTS - 1);
}

/* ---- nodes ------------------------------------------------------------------------------------
 */

static int find_node(drv_cluster *cl, const char *host, size_t hlen, int port) {
    for (int i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].port == port && strlen(cl->nodes[i].host) == hlen &&
            memcmp(cl->nodes[i].host, host, hlen) == 0)
            return i;
    if (cl->nnodes == MAX_NODES || hlen >= sizeof cl->nodes[0].host) return -1;
    node *n = &cl->nodes[cl->nnodes];
    memcpy(n->host, host, hlen);
    n->host[hlen] = '\0';
    n->port = port;
    n->link = NULL;
    return cl->nnodes++;
}

static void drop_node(drv_cluster *cl, int i, const char *why) {
    node *n = &cl->nodes[i];
    if (!n->link) return;
    set_err(cl, "Redis cluster node %s:%d: %s", n->host, n->port,
            why ? why : drv_link_errstr(n->link));
    drv_link_free(n->link);
    n->link = NULL;
}

/* The node's connection, opened (and logged in) on first use; NULL with the reason set. */
static drv_link *node_link(drv_cluster *cl, int i) {
    node *n = &cl->nodes[i];
    if (n->link) return n->link;
    char why[256];
    drv_link *l = drv_link_open(n->host, n->port, NULL, cl->tls, cl->cfg.connect_timeout_ms,
                                cl->cfg.command_timeout_ms, why, sizeof why);
    if (!l) {
        set_err(cl, "cannot connect to Redis cluster node %s:%d: %s", n->host, n->port, why);
        return NULL;
    }
    if (cl->cfg.password[0]) {
        redisReply *r = cl->cfg.user[0]
                            ? drv_link_command(l, "AUTH %s %s", cl->cfg.user, cl->cfg.password)
                            : drv_link_command(l, "AUTH %s", cl->cfg.password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            set_err(cl, "Redis cluster node %s:%d refused AUTH: %s", n->host, n->port,
                    r ? r->str : drv_link_errstr(l));
            if (r) freeReplyObject(r);
            drv_link_free(l);
            return NULL;
        }
        freeReplyObject(r);
    }
    n->link = l;
    return l;
}

/* Reads CLUSTER SLOTS from node i into the map. Returns 0, or -1 with the reason set. */
static int read_slots(drv_cluster *cl, int i) {
    drv_link *l = node_link(cl, i);
    if (!l) return -1;
    redisReply *r = drv_link_command(l, "CLUSTER SLOTS");
    if (!r) {
        drop_node(cl, i, NULL);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        set_err(cl, "Redis at %s:%d is not a usable cluster node (CLUSTER SLOTS: %s)",
                cl->nodes[i].host, cl->nodes[i].port,
                r->type == REDIS_REPLY_ERROR ? r->str : "no slots assigned");
        freeReplyObject(r);
        return -1;
    }
    int16_t slot[NSLOTS];
    for (int s = 0; s < NSLOTS; s++)
        slot[s] = -1;
    for (size_t k = 0; k < r->elements; k++) {
        const redisReply *e = r->element[k];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        const redisReply *m = e->element[2];
        /* An empty host means "the address you asked me on". */
        const char *h = m->element[0]->len ? m->element[0]->str : cl->nodes[i].host;
        int ni = find_node(cl, h, strlen(h), (int)m->element[1]->integer);
        if (ni < 0) continue;
        for (long long s = from < 0 ? 0 : from; s <= to && s < NSLOTS; s++)
            slot[s] = (int16_t)ni;
    }
    freeReplyObject(r);
    memcpy(cl->slot, slot, sizeof slot);
    cl->nmasters = 0;
    for (int n = 0; n < cl->nnodes; n++)
        for (int s = 0; s < NSLOTS; s++)
            if (cl->slot[s] == n) {
                cl->masters[cl->nmasters++] = n;
                break;
            }
    return 0;
}

static void drop_pipeline(drv_cluster *cl) {
    for (size_t i = cl->qnext; i < cl->qn; i++)
        if (cl->q[i].reply) freeReplyObject(cl->q[i].reply);
    for (size_t i = 0; i < cl->qn; i++)
        free(cl->q[i].argv);
    cl->qn = cl->qnext = 0;
    cl->flushed = 0;
}

/* Reads the map from any node that answers; a pipeline in progress is kept. */
static drv_err reload_map(drv_cluster *cl) {
    /* Known masters first, then every node known, then the seeds. */
    for (int k = 0; k < cl->nmasters; k++)
        if (read_slots(cl, cl->masters[k]) == 0) return DRV_OK;
    for (int i = 0; i < cl->nnodes; i++)
        if (read_slots(cl, i) == 0) return DRV_OK;
    char last[sizeof cl->err];
    snprintf(last, sizeof last, "%s", cl->err);
    for (int s = 0; s < cl->cfg.nseeds; s++) {
        const drv_redis_seed *sd = &cl->cfg.seeds[s];
        int i = find_node(cl, sd->host, strlen(sd->host), sd->port);
        if (i >= 0 && read_slots(cl, i) == 0) return DRV_OK;
    }
    if (!cl->err[0]) snprintf(cl->err, sizeof cl->err, "%s", last);
    return DRV_EIO;
}

drv_err drv_cluster_refresh(drv_cluster *cl) {
    drop_pipeline(cl);
    cl->multi = 0;
    cl->multi_node = -1;
    return reload_map(cl);
}

drv_err drv_cluster_open(const drv_redis_cfg *cfg, drv_cluster **out, char *why, size_t whylen) {
    drv_cluster *cl = calloc(1, sizeof *cl);
    if (!cl) return DRV_ENOMEM;
    cl->cfg = *cfg;
    cl->multi_node = -1;
    for (int s = 0; s < NSLOTS; s++)
        cl->slot[s] = -1;
    drv_err e = drv_tls_new(cfg, &cl->tls, cl->err, sizeof cl->err);
    if (e == DRV_OK) e = drv_cluster_refresh(cl);
    if (e != DRV_OK) {
        if (why) snprintf(why, whylen, "%s", cl->err);
        drv_cluster_close(cl);
        return e;
    }
    *out = cl;
    return DRV_OK;
}

void drv_cluster_close(drv_cluster *cl) {
    if (!cl) return;
    drop_pipeline(cl);
    free(cl->q);
    for (int i = 0; i < cl->nnodes; i++)
        drv_link_free(cl->nodes[i].link);
    drv_tls_free(cl->tls);
    free(cl);
}

const char *drv_cluster_errstr(const drv_cluster *cl) {
    return cl->err;
}

int drv_cluster_masters(const drv_cluster *cl) {
    return cl->nmasters;
}

const char *drv_cluster_slot_owner(const drv_cluster *cl, int slot) {
    if (slot < 0 || slot >= NSLOTS || cl->slot[slot] < 0) return NULL;
    const node *n = &cl->nodes[cl->slot[slot]];
    snprintf(((drv_cluster *)cl)->owner, sizeof cl->owner, "%s:%d", n->host, n->port);
    return cl->owner;
}

/* ---- routing ----------------------------------------------------------------------------------
 */

static int is_cmd(const char *name, const char *arg, size_t len) {
    return strlen(name) == len && strncasecmp(name, arg, len) == 0;
}

/* The argv index of the command's routing key, or -1 when it has none. */
static int key_index(int argc, const char **argv, const size_t *lens) {
    if (argc < 2) return -1;
    static const char *const keyless[] = {
        "TIME",   "PING",   "INFO", "SCRIPT",  "SCAN",   "MULTI",    "EXEC",     "DISCARD",
        "AUTH",   "SELECT", "ECHO", "CLUSTER", "DBSIZE", "FLUSHALL", "FLUSHDB",  "CONFIG",
        "CLIENT", "WAIT",   "ROLE", "HELLO",   "MEMORY", "COMMAND",  "LASTSAVE", NULL};
    if (is_cmd("EVALSHA", argv[0], lens[0]) || is_cmd("EVAL", argv[0], lens[0]) ||
        is_cmd("EVALSHA_RO", argv[0], lens[0]) || is_cmd("EVAL_RO", argv[0], lens[0]) ||
        is_cmd("FCALL", argv[0], lens[0])) {
        if (argc < 4 || lens[2] == 0 || (lens[2] == 1 && argv[2][0] == '0')) return -1;
        return 3;
    }
    for (int i = 0; keyless[i]; i++)
        if (is_cmd(keyless[i], argv[0], lens[0])) return -1;
    return 1;
}

static int any_master(drv_cluster *cl) {
    for (int k = 0; k < cl->nmasters; k++)
        if (cl->nodes[cl->masters[k]].link) return cl->masters[k];
    if (cl->nmasters) return cl->masters[0];
    return cl->nnodes ? 0 : -1;
}

static int slot_node(drv_cluster *cl, int slot) {
    int n = slot >= 0 ? cl->slot[slot] : -1;
    return n >= 0 ? n : any_master(cl);
}

static void backoff(int attempt) {
    long ms = 5L << (attempt < 6 ? attempt : 6);
    if (ms > BACKOFF_MAX_MS) ms = BACKOFF_MAX_MS;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the node index named, or -1. */
static int redirect_node(drv_cluster *cl, const redisReply *r, int *slot) {
    const char *sp = strchr(r->str, ' ');
    if (!sp) return -1;
    *slot = atoi(sp + 1);
    const char *addr = strchr(sp + 1, ' ');
    if (!addr) return -1;
    addr++;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) return -1;
    return find_node(cl, addr, (size_t)(colon - addr), atoi(colon + 1));
}

static int starts(const redisReply *r, const char *word) {
    size_t n = strlen(word);
    return r->type == REDIS_REPLY_ERROR && r->len >= n && strncmp(r->str, word, n) == 0 &&
           (r->len == n || r->str[n] == ' ');
}

/* Sends one command to node 'ni' following redirections. */
static redisReply *routed(drv_cluster *cl, int ni, int argc, const char **argv,
                          const size_t *lens) {
    int asking = 0;
    for (int attempt = 0;; attempt++) {
        if (ni < 0) {
            set_err(cl, "no Redis cluster node known");
            return NULL;
        }
        drv_link *l = node_link(cl, ni);
        if (!l) return NULL;
        if (asking) {
            redisReply *a = drv_link_command(l, "ASKING");
            if (!a) {
                drop_node(cl, ni, NULL);
                return NULL;
            }
            freeReplyObject(a);
        }
        redisReply *r = drv_link_command_argv(l, argc, argv, lens);
        if (!r) {
            drop_node(cl, ni, NULL);
            return NULL;
        }
        if (r->type != REDIS_REPLY_ERROR || attempt >= MAX_TRIES) return r;
        int slot = -1;
        if (starts(r, "MOVED") || starts(r, "ASK")) {
            int moved = r->str[0] == 'M';
            int to = redirect_node(cl, r, &slot);
            if (to < 0) return r;
            drv_debug("cluster: %.*s", (int)r->len, r->str);
            freeReplyObject(r);
            /* A second redirection for one command: the masters disagree about the slot
             * (SETSLOT NODE reached some of them, not yet all; a failover under way). They
             * would bounce the command between them; give them time to agree. */
            if (attempt > 0) backoff(attempt - 1);
            if (moved) {
                /* A moved slot seldom moves alone (a reshard, a failover): read the whole
                 * map again, and trust the redirection for this slot whatever it says. */
                if (reload_map(cl) != DRV_OK)
                    drv_debug("cluster: refreshing the slot map: %s", cl->err);
                if (slot >= 0 && slot < NSLOTS) cl->slot[slot] = (int16_t)to;
            }
            asking = !moved;
            ni = to;
            continue;
        }
        if (starts(r, "TRYAGAIN") || starts(r, "CLUSTERDOWN")) {
            int down = r->str[0] == 'C';
            drv_debug("cluster: %.*s (attempt %d)", (int)r->len, r->str, attempt + 1);
            freeReplyObject(r);
            backoff(attempt);
            if (down && reload_map(cl) == DRV_OK) {
                int k = key_index(argc, argv, lens);
                ni = slot_node(cl, k > 0 ? drv_cluster_keyslot(argv[k], lens[k]) : -1);
            }
            asking = 0;
            continue;
        }
        return r;
    }
}

static redisReply *new_reply(int type) {
    redisReply *r = calloc(1, sizeof *r);
    if (r) r->type = type;
    return r;
}

static redisReply *status_reply(const char *s) {
    redisReply *r = new_reply(REDIS_REPLY_STATUS);
    if (r && !(r->str = strdup(s))) {
        free(r);
        return NULL;
    }
    if (r) r->len = strlen(s);
    return r;
}

/* SCAN over every master in turn; the cursor is "0" or "MASTER:CURSOR". */
static redisReply *scan(drv_cluster *cl, int argc, const char **argv, const size_t *lens) {
    if (argc < 2 || argc > 32) {
        set_err(cl, "SCAN over the cluster: bad argument count");
        return NULL;
    }
    char cur[64];
    snprintf(cur, sizeof cur, "%.*s", (int)(lens[1] < 63 ? lens[1] : 63), argv[1]);
    int m = 0;
    const char *c = "0";
    char *colon = strchr(cur, ':');
    if (colon) {
        *colon = '\0';
        m = atoi(cur);
        c = colon + 1;
    }
    if (m < 0 || m >= cl->nmasters) {
        set_err(cl, "SCAN over the cluster: no master %d", m);
        return NULL;
    }
    const char *av[32];
    size_t lv[32];
    for (int i = 0; i < argc; i++)
        av[i] = argv[i], lv[i] = lens[i];
    av[1] = c, lv[1] = strlen(c);
    redisReply *r = routed(cl, cl->masters[m], argc, av, lv);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return r;
    char next[96];
    if (strcmp(r->element[0]->str, "0") != 0)
        snprintf(next, sizeof next, "%d:%s", m, r->element[0]->str);
    else if (m + 1 < cl->nmasters)
        snprintf(next, sizeof next, "%d:0", m + 1);
    else
        snprintf(next, sizeof next, "0");
    char *s = strdup(next);
    if (!s) {
        freeReplyObject(r);
        set_err(cl, "out of memory");
        return NULL;
    }
    free(r->element[0]->str);
    r->element[0]->str = s;
    r->element[0]->len = strlen(s);
    return r;
}

/* The same command on every master; the first error, or else the first reply. */
static redisReply *broadcast(drv_cluster *cl, int argc, const char **argv, const size_t *lens) {
    redisReply *keep = NULL;
    for (int k = 0; k < cl->nmasters; k++) {
        redisReply *r = routed(cl, cl->masters[k], argc, argv, lens);
        if (!r) {
            if (keep) freeReplyObject(keep);
            return NULL;
        }
        if (!keep || (r->type == REDIS_REPLY_ERROR && keep->type != REDIS_REPLY_ERROR)) {
            if (keep) freeReplyObject(keep);
            keep = r;
        } else {
            freeReplyObject(r);
        }
    }
    if (!keep) set_err(cl, "no Redis cluster master known");
    return keep;
}

/* UNLINK/DEL/EXISTS/TOUCH k1 k2 ... with keys in several slots: one key at a time. */
static int spans_slots(int argc, const char **argv, const size_t *lens) {
    if (argc < 3) return 0;
    if (!is_cmd("UNLINK", argv[0], lens[0]) && !is_cmd("DEL", argv[0], lens[0]) &&
        !is_cmd("EXISTS", argv[0], lens[0]) && !is_cmd("TOUCH", argv[0], lens[0]))
        return 0;
    int s = drv_cluster_keyslot(argv[1], lens[1]);
    for (int i = 2; i < argc; i++)
        if (drv_cluster_keyslot(argv[i], lens[i]) != s) return 1;
    return 0;
}

static redisReply *per_key(drv_cluster *cl, int argc, const char **argv, const size_t *lens) {
    long long sum = 0;
    for (int i = 1; i < argc; i++) {
        const char *av[] = {argv[0], argv[i]};
        size_t lv[] = {lens[0], lens[i]};
        redisReply *r = routed(cl, slot_node(cl, drv_cluster_keyslot(argv[i], lens[i])), 2, av, lv);
        if (!r || r->type != REDIS_REPLY_INTEGER) return r;
        sum += r->integer;
        freeReplyObject(r);
    }
    redisReply *r = new_reply(REDIS_REPLY_INTEGER);
    if (r) r->integer = sum;
    return r;
}

static redisReply *run(drv_cluster *cl, int argc, const char **argv, const size_t *lens);

redisReply *drv_cluster_command(drv_cluster *cl, int argc, const char **argv, const size_t *lens) {
    if (cl->qn) drop_pipeline(cl); /* a command between append and reply: replies forgotten */
    return run(cl, argc, argv, lens);
}

static redisReply *run(drv_cluster *cl, int argc, const char **argv, const size_t *lens) {
    size_t lbuf[64];
    if (!lens) {
        /* argv of C strings (drv_conn_cmd allows NULL lens). */
        if (argc > 64) {
            set_err(cl, "too many arguments");
            return NULL;
        }
        for (int i = 0; i < argc; i++)
            lbuf[i] = strlen(argv[i]);
        lens = lbuf;
    }
    if (argc < 1) return NULL;
    if (is_cmd("MULTI", argv[0], lens[0])) {
        cl->multi = 1;
        cl->multi_node = -1;
        return status_reply("OK");
    }
    if (is_cmd("EXEC", argv[0], lens[0]) || is_cmd("DISCARD", argv[0], lens[0])) {
        int was = cl->multi_node;
        cl->multi = 0;
        cl->multi_node = -1;
        if (was < 0) {
            if (argv[0][0] == 'D' || argv[0][0] == 'd') return status_reply("OK");
            return new_reply(REDIS_REPLY_ARRAY); /* an empty transaction */
        }
        drv_link *l = node_link(cl, was);
        redisReply *r = l ? drv_link_command_argv(l, argc, argv, lens) : NULL;
        if (!r && l) drop_node(cl, was, NULL);
        return r;
    }
    int k = key_index(argc, argv, lens);
    if (cl->multi) {
        /* Inside a transaction: everything goes to the node of its first key. */
        if (cl->multi_node < 0) {
            int ni = slot_node(cl, k > 0 ? drv_cluster_keyslot(argv[k], lens[k]) : -1);
            drv_link *l = ni >= 0 ? node_link(cl, ni) : NULL;
            if (!l) return NULL;
            redisReply *m = drv_link_command(l, "MULTI");
            if (!m) {
                drop_node(cl, ni, NULL);
                return NULL;
            }
            if (m->type == REDIS_REPLY_ERROR) return m;
            freeReplyObject(m);
            cl->multi_node = ni;
        }
        drv_link *l = node_link(cl, cl->multi_node);
        redisReply *r = l ? drv_link_command_argv(l, argc, argv, lens) : NULL;
        if (!r && l) drop_node(cl, cl->multi_node, NULL);
        /* A MOVED here aborts the transaction (EXECABORT); the map is right for a retry. */
        if (r && starts(r, "MOVED")) reload_map(cl);
        return r;
    }
    if (k < 0) {
        if (is_cmd("SCAN", argv[0], lens[0])) return scan(cl, argc, argv, lens);
        if (is_cmd("SCRIPT", argv[0], lens[0]) || is_cmd("FLUSHALL", argv[0], lens[0]) ||
            is_cmd("FLUSHDB", argv[0], lens[0]))
            return broadcast(cl, argc, argv, lens);
        return routed(cl, any_master(cl), argc, argv, lens);
    }
    if (spans_slots(argc, argv, lens)) return per_key(cl, argc, argv, lens);
    return routed(cl, slot_node(cl, drv_cluster_keyslot(argv[k], lens[k])), argc, argv, lens);
}

/* ---- pipelining -------------------------------------------------------------------------------
 */

int drv_cluster_append(drv_cluster *cl, int argc, const char **argv, const size_t *lens) {
    if (cl->flushed) drop_pipeline(cl); /* replies left unread from the last pipeline */
    if (cl->qn == cl->qcap) {
        size_t cap = cl->qcap ? cl->qcap * 2 : 16;
        pcmd *q = realloc(cl->q, cap * sizeof *q);
        if (!q) return -1;
        cl->q = q, cl->qcap = cap;
    }
    size_t total = (size_t)argc * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; i < argc; i++)
        total += (lens ? lens[i] : strlen(argv[i])) + 1;
    char *mem = malloc(total);
    if (!mem) return -1;
    pcmd *c = &cl->q[cl->qn];
    c->argc = argc;
    c->argv = (const char **)(void *)mem;
    c->lens = (size_t *)(void *)(mem + (size_t)argc * sizeof(char *));
    char *data = mem + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        memcpy(data, argv[i], n);
        data[n] = '\0';
        c->argv[i] = data;
        c->lens[i] = n;
        data += n + 1;
    }
    c->node = -1;
    c->reply = NULL;
    c->lost = 0;
    cl->qn++;
    return 0;
}

/* Sends every queued command to its node (each node's share as one pipeline), reads every
 * reply, then runs again, one at a time, the commands that were redirected or must run
 * alone. */
static void flush(drv_cluster *cl) {
    cl->flushed = 1;
    for (size_t i = 0; i < cl->qn; i++) {
        pcmd *c = &cl->q[i];
        int k = key_index(c->argc, c->argv, c->lens);
        if (cl->multi || k < 0 || spans_slots(c->argc, c->argv, c->lens)) continue;
        int ni = slot_node(cl, drv_cluster_keyslot(c->argv[k], c->lens[k]));
        if (ni < 0 || !node_link(cl, ni)) {
            c->lost = 1;
            continue;
        }
        if (drv_link_append_argv(cl->nodes[ni].link, c->argc, c->argv, c->lens) != 0) {
            c->lost = 1;
            continue;
        }
        c->node = ni;
    }
    /* Each node answers in the order it was sent to, so reading in the caller's order works. */
    for (size_t i = 0; i < cl->qn; i++) {
        pcmd *c = &cl->q[i];
        if (c->node < 0) continue;
        drv_link *l = cl->nodes[c->node].link;
        redisReply *r = l ? drv_link_get_reply(l) : NULL;
        if (!r) {
            if (l) drop_node(cl, c->node, NULL);
            c->lost = 1;
            c->node = -1;
            continue;
        }
        c->reply = r;
    }
    /* Now no node has replies in flight: redirections and lone commands one by one. */
    for (size_t i = 0; i < cl->qn; i++) {
        pcmd *c = &cl->q[i];
        if (c->lost) continue;
        redisReply *r = c->reply;
        if (r && !(starts(r, "MOVED") || starts(r, "ASK") || starts(r, "TRYAGAIN") ||
                   starts(r, "CLUSTERDOWN")))
            continue;
        if (r) freeReplyObject(r);
        c->reply = run(cl, c->argc, c->argv, c->lens);
        if (!c->reply) c->lost = 1;
    }
}

redisReply *drv_cluster_reply(drv_cluster *cl) {
    if (cl->qnext >= cl->qn) {
        set_err(cl, "no command in the pipeline");
        return NULL;
    }
    if (!cl->flushed) flush(cl);
    pcmd *c = &cl->q[cl->qnext++];
    redisReply *r = c->reply;
    c->reply = NULL;
    if (cl->qnext == cl->qn) drop_pipeline(cl);
    return r;
}
