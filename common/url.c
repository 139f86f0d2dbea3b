#include "url.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return DRV_EINVAL;                                                                         \
    } while (0)

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes incl. NUL). Returns 0, or -1 on a bad escape,
 * an encoded NUL or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1; /* needs two hex digits after '%' */
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Parses "[user]:password@" or "password@"-less userinfo from s[0..n). */
static drv_err parse_userinfo(const char *s, size_t n, drv_redis_cfg *out, char *why,
                              size_t whylen) {
    const char *colon = memchr(s, ':', n);
    if (!colon) {
        /* redis://secret@host is common shorthand for a password with the default user. */
        if (pct_decode(s, n, out->password, sizeof out->password) != 0)
            FAIL("bad password encoding or too long");
        return DRV_OK;
    }
    if (pct_decode(s, (size_t)(colon - s), out->user, sizeof out->user) != 0)
        FAIL("bad user name encoding or too long");
    if (pct_decode(colon + 1, n - (size_t)(colon - s) - 1, out->password, sizeof out->password) !=
        0)
        FAIL("bad password encoding or too long");
    return DRV_OK;
}

/* Parses "host[:port]" or "[v6]:port" in s[0..end) into host/port. */
static drv_err parse_hostport(const char *s, const char *end, int defport, char *host, int *port,
                              const char *url, char *why, size_t whylen) {
    const char *h = s, *h_end;
    if (s < end && *s == '[') {
        h = s + 1;
        h_end = memchr(h, ']', (size_t)(end - h));
        if (!h_end) FAIL("unterminated [IPv6] address");
        s = h_end + 1;
    } else {
        /* A '?' or '#' ends the host too, so "redis://h?db=2" is refused below instead of
         * becoming a host name that fails only at connect time. */
        h_end = s;
        while (h_end < end && *h_end != ':' && *h_end != '?' && *h_end != '#')
            h_end++;
        s = h_end;
    }
    size_t hn = (size_t)(h_end - h);
    if (hn == 0) FAIL("missing host in \"%s\"", url);
    if (hn >= 256) FAIL("host name too long");
    memcpy(host, h, hn);
    host[hn] = '\0';
    *port = defport;
    if (s < end && *s == ':') {
        char num[16];
        size_t n = (size_t)(end - s - 1);
        long long v;
        if (n == 0 || n >= sizeof num) FAIL("bad port in \"%s\"", url);
        memcpy(num, s + 1, n);
        num[n] = '\0';
        if (drv_parse_ll(num, 1, 65535, &v) != 0) FAIL("bad port \"%s\" (1-65535)", num);
        *port = (int)v;
    } else if (s < end) {
        FAIL("unexpected \"%.*s\" in Redis URL", (int)(end - s), s);
    }
    return DRV_OK;
}

/* The TLS parameters after '?' (q[0..n), without the '?'). */
static drv_err parse_tls_params(const char *q, size_t n, drv_redis_cfg *c, char *why,
                                size_t whylen) {
    const char *end = q + n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (!amp) amp = end;
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        if (!eq)
            FAIL("expected NAME=VALUE in the Redis URL's parameters, got \"%.*s\"", (int)(amp - q),
                 q);
        size_t kn = (size_t)(eq - q), vn = (size_t)(amp - eq - 1);
        char *dst = NULL;
        size_t cap = 0;
        if (kn == 2 && memcmp(q, "ca", 2) == 0)
            dst = c->tls_ca, cap = sizeof c->tls_ca;
        else if (kn == 4 && memcmp(q, "cert", 4) == 0)
            dst = c->tls_cert, cap = sizeof c->tls_cert;
        else if (kn == 3 && memcmp(q, "key", 3) == 0)
            dst = c->tls_key, cap = sizeof c->tls_key;
        if (dst) {
            if (vn == 0 || pct_decode(eq + 1, vn, dst, cap) != 0)
                FAIL("bad %.*s= path in the Redis URL (empty, bad encoding or too long)", (int)kn,
                     q);
        } else if (kn == 8 && memcmp(q, "insecure", 8) == 0) {
            if (vn != 1 || (eq[1] != '0' && eq[1] != '1'))
                FAIL("expected insecure=1 or insecure=0 in the Redis URL, got \"%.*s\"",
                     (int)(amp - q), q);
            c->tls_insecure = eq[1] == '1';
        } else {
            FAIL("unknown parameter \"%.*s\" in the Redis URL (known: ca, cert, key, insecure)",
                 (int)kn, q);
        }
        q = amp == end ? end : amp + 1;
    }
    if (c->tls_key[0] && !c->tls_cert[0]) FAIL("key= needs cert= in the Redis URL");
    if (c->tls_cert[0] && !c->tls_key[0]) memcpy(c->tls_key, c->tls_cert, sizeof c->tls_key);
    return DRV_OK;
}

drv_err drv_url_parse(const char *url, drv_redis_cfg *out, char *why, size_t whylen) {
    drv_redis_cfg c;
    memset(&c, 0, sizeof c);
    c.connect_timeout_ms = 2000;
    c.command_timeout_ms = 5000;
    if (!url || !*url) FAIL("empty Redis URL");
    const char *p = NULL;
    int is_unix = 0;
    drv_redis_mode mode = DRV_REDIS_SINGLE;
    static const struct {
        const char *scheme;
        drv_redis_mode mode;
        int tls;
    } schemes[] = {
        {"redis://", DRV_REDIS_SINGLE, 0},
        {"redis+cluster://", DRV_REDIS_CLUSTER, 0},
        {"redis+sentinel://", DRV_REDIS_SENTINEL, 0},
        {"rediss://", DRV_REDIS_SINGLE, 1},
        {"rediss+cluster://", DRV_REDIS_CLUSTER, 1},
        {"rediss+sentinel://", DRV_REDIS_SENTINEL, 1},
    };
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes && !p; i++) {
        size_t n = strlen(schemes[i].scheme);
        if (strncmp(url, schemes[i].scheme, n) == 0) {
            p = url + n;
            mode = schemes[i].mode;
            c.tls = schemes[i].tls;
        }
    }
    if (!p && strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        is_unix = 1;
    }
    if (!p) {
        FAIL("expected redis://host:port/db, unix:///path.sock, redis+cluster://host:port,... or "
             "redis+sentinel://host:port,.../NAME (rediss... over TLS), got \"%s\"",
             url);
    }
    c.mode = mode;
    /* userinfo ends at the last '@' before the parameters (passwords may contain '@' only
     * percent-encoded, but be lenient with the last one; a '?' in one must be encoded). */
    const char *query = strchr(p, '?');
    const char *at = NULL;
    for (const char *s = p; *s && (!query || s < query); s++)
        if (*s == '@') at = s;
    if (at) {
        drv_err e = parse_userinfo(p, (size_t)(at - p), &c, why, whylen);
        if (e != DRV_OK) return e;
        p = at + 1;
    }
    if (is_unix) {
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/') FAIL("unix socket URL needs an absolute path: unix:///path");
        if (n >= sizeof c.path) FAIL("unix socket path too long");
        memcpy(c.path, p, n);
        c.path[n] = '\0';
        if (q) {
            long long db;
            if (strncmp(q, "?db=", 4) != 0 || drv_parse_ll(q + 4, 0, 1 << 20, &db) != 0)
                FAIL("expected ?db=N after the socket path");
            c.db = (int)db;
        }
        *out = c;
        return DRV_OK;
    }
    /* From here on, the address and path are p[0..stop); the parameters follow a '?'. */
    query = strchr(p, '?');
    const char *stop = query ? query : p + strlen(p);
    if (query) {
        size_t qn = strlen(query + 1);
        if (!c.tls)
            FAIL("unexpected \"%s\" in Redis URL%s", query,
                 strstr(query, "ca=") || strstr(query, "cert=") || strstr(query, "insecure=")
                     ? " (TLS parameters need rediss://)"
                     : "");
        drv_err e = parse_tls_params(query + 1, qn, &c, why, whylen);
        if (e != DRV_OK) return e;
    }
    const char *end = p + strcspn(p, "/?");
    if (mode == DRV_REDIS_SINGLE) {
        drv_err e = parse_hostport(p, end, 6379, c.host, &c.port, url, why, whylen);
        if (e != DRV_OK) return e;
    } else {
        /* host[:port],host[:port]...: [IPv6] hosts may hold ':' but not ','. */
        int defport = mode == DRV_REDIS_SENTINEL ? 26379 : 6379;
        const char *s = p;
        while (s < end) {
            const char *comma = s;
            if (*comma == '[') comma = memchr(s, ']', (size_t)(end - s));
            if (!comma) FAIL("unterminated [IPv6] address");
            comma = memchr(comma, ',', (size_t)(end - comma));
            if (!comma) comma = end;
            if (c.nseeds == DRV_REDIS_MAX_SEEDS)
                FAIL("more than %d addresses in \"%s\"", DRV_REDIS_MAX_SEEDS, url);
            drv_redis_seed *sd = &c.seeds[c.nseeds++];
            drv_err e = parse_hostport(s, comma, defport, sd->host, &sd->port, url, why, whylen);
            if (e != DRV_OK) return e;
            s = comma == end ? end : comma + 1;
            if (comma != end && s == end) FAIL("missing host after ',' in \"%s\"", url);
        }
        if (c.nseeds == 0) FAIL("missing host in \"%s\"", url);
        snprintf(c.host, sizeof c.host, "%s", c.seeds[0].host);
        c.port = c.seeds[0].port;
    }
    p = end;
    if (mode == DRV_REDIS_SENTINEL) {
        /* /MASTERNAME, required; the database is the master's 0. */
        if (*p != '/' || !p[1])
            FAIL("redis+sentinel:// needs the master's name: "
                 "redis+sentinel://host:port[,host:port]/NAME");
        p++;
        size_t n = (size_t)(stop - p);
        if (n >= sizeof c.master) FAIL("master name too long");
        if (strcspn(p, " \t\r\n?#/") != n) FAIL("bad master name \"%.*s\"", (int)n, p);
        memcpy(c.master, p, n);
        c.master[n] = '\0';
        *out = c;
        return DRV_OK;
    }
    if (*p == '/') {
        p++;
        if (p < stop) {
            long long db;
            char num[24];
            size_t n = (size_t)(stop - p);
            if (n >= sizeof num) FAIL("bad database number \"%.*s\"", (int)n, p);
            memcpy(num, p, n);
            num[n] = '\0';
            if (drv_parse_ll(num, 0, 1 << 20, &db) != 0) FAIL("bad database number \"%s\"", num);
            if (mode == DRV_REDIS_CLUSTER && db != 0)
                FAIL("Redis Cluster has only database 0, got \"%s\"", num);
            c.db = (int)db;
        }
    } else if (p < stop) {
        FAIL("unexpected \"%.*s\" in Redis URL", (int)(stop - p), p);
    }
    *out = c;
    return DRV_OK;
}

void drv_url_describe(const drv_redis_cfg *cfg, char *buf, size_t len) {
    const char *u = cfg->user, *sep = cfg->user[0] ? "@" : "";
    const char *scheme = cfg->tls ? "rediss" : "redis";
    if (cfg->mode != DRV_REDIS_SINGLE) {
        int cl = cfg->mode == DRV_REDIS_CLUSTER;
        size_t o = 0;
        int n = snprintf(buf, len, "%s+%s://%s%s", scheme, cl ? "cluster" : "sentinel", u, sep);
        for (int i = 0; n >= 0 && i < cfg->nseeds; i++) {
            o += (size_t)n;
            if (o >= len) return;
            const drv_redis_seed *s = &cfg->seeds[i];
            int v6 = strchr(s->host, ':') != NULL;
            n = snprintf(buf + o, len - o, "%s%s%s%s:%d", i ? "," : "", v6 ? "[" : "", s->host,
                         v6 ? "]" : "", s->port);
        }
        if (n >= 0 && !cl && (o += (size_t)n) < len) snprintf(buf + o, len - o, "/%s", cfg->master);
        return;
    }
    if (cfg->path[0])
        snprintf(buf, len, "unix://%s%s%s?db=%d", u, sep, cfg->path, cfg->db);
    else if (strchr(cfg->host, ':'))
        snprintf(buf, len, "%s://%s%s[%s]:%d/%d", scheme, u, sep, cfg->host, cfg->port, cfg->db);
    else
        snprintf(buf, len, "%s://%s%s%s:%d/%d", scheme, u, sep, cfg->host, cfg->port, cfg->db);
}

int drv_url_password_span(const char *url, size_t *off, size_t *len) {
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p) return 0;
    p += 3;
    /* As drv_url_parse reads it: the userinfo ends at the last '@' before the first '?'. */
    const char *query = strchr(p, '?'), *at = NULL;
    for (const char *s = p; *s && (!query || s < query); s++)
        if (*s == '@') at = s;
    if (!at) return 0;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pw = colon ? colon + 1 : p;
    *off = (size_t)(pw - url);
    *len = (size_t)(at - pw);
    return 1;
}

drv_err drv_host_rules_parse(const char *list, drv_host_rule **out, int *n, char *why,
                             size_t whylen) {
    drv_host_rule *r = NULL;
    int k = 0;
    if (!list || !*list) {
        snprintf(why, whylen, "expected HOST[:PORT][,HOST[:PORT]...], got \"\"");
        return DRV_EINVAL;
    }
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        char e[300];
        snprintf(e, sizeof e, "%.*s", (int)(len < 280 ? len : 280), p);
        drv_host_rule h = {{0}, 0};
        const char *host = p, *hend, *port = NULL, *end = p + len;
        if (len && *p == '[') {
            host = p + 1;
            hend = memchr(host, ']', len - 1);
            if (hend && hend + 1 < end) {
                if (hend[1] != ':') hend = NULL;
                port = hend ? hend + 2 : NULL;
            }
        } else {
            const char *c1 = memchr(p, ':', len),
                       *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
            hend = c1 && !c2 ? c1 : end; /* two colons: an IPv6 address without a port */
            if (c1 && !c2) port = c1 + 1;
        }
        size_t hn = hend ? (size_t)(hend - host) : 0;
        int ok = hend && hn > 0 && hn < sizeof h.host;
        for (size_t i = 0; ok && i < hn; i++)
            ok = host[i] != '/' && host[i] != '@' && host[i] != ' ' && host[i] != '\t' &&
                 host[i] != '[' && host[i] != ']' && host[i] != '*' && host[i] != '?' &&
                 host[i] != '#';
        if (ok && port) {
            char pt[16];
            long long v;
            size_t pn = (size_t)(end - port);
            if (pn == 1 && *port == '*')
                h.port = -1;
            else if (pn > 0 && pn < sizeof pt && *port != '+' && *port != '-' &&
                     (memcpy(pt, port, pn), pt[pn] = 0, drv_parse_ll(pt, 1, 65535, &v) == 0))
                h.port = (int)v;
            else
                ok = 0;
        }
        if (!ok) {
            free(r);
            snprintf(why, whylen,
                     "expected HOST, HOST:PORT or HOST:* (no scheme or path; IPv6 as [ADDR]:PORT), "
                     "got \"%s\"",
                     e);
            return DRV_EINVAL;
        }
        memcpy(h.host, host, hn);
        drv_host_rule *nr = realloc(r, sizeof *nr * (size_t)(k + 1));
        if (!nr) {
            free(r);
            return DRV_ENOMEM;
        }
        r = nr;
        r[k++] = h;
        if (!p[len]) break;
        p += len + 1;
    }
    *out = r;
    *n = k;
    return DRV_OK;
}

static int default_port(const char *scheme) {
    if (!scheme) return 0;
    if (strcasecmp(scheme, "http") == 0) return 80;
    if (strcasecmp(scheme, "https") == 0) return 443;
    return 0;
}

int drv_host_rules_match(const drv_host_rule *r, int n, const char *scheme, const char *host,
                         int port) {
    for (int i = 0; i < n; i++) {
        if (strcasecmp(r[i].host, host) != 0) continue;
        if (r[i].port == -1) return 1;
        int want = r[i].port ? r[i].port : default_port(scheme);
        if (want && want == port) return 1;
    }
    return 0;
}
