#include "link.h"

#include "clock.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/sds.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct drv_tls {
    SSL_CTX *ctx;
    int insecure;
};

struct drv_link {
    redisContext *ctx; /* hiredis: the socket, the output buffer and the reply reader */
    SSL *ssl;          /* NULL on a plain link: hiredis does its own I/O */
    int answered;      /* a reply came: the server speaks RESP on this port */
    int cert_asked;    /* TLS: the server asked for a client certificate we do not have */
    char err[256];
};

static struct timeval ms_tv(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* OpenSSL's reason for the last failure ("tlsv13 alert certificate required"), or 'dflt'. */
static const char *ssl_reason(const char *dflt) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : dflt;
}

/* The alerts a server sends about the client's certificate, which with TLS 1.3 arrive only at
 * the first read after the handshake: what to do about them. */
static const char *client_cert_hint(unsigned long e) {
    if (ERR_GET_LIB(e) != ERR_LIB_SSL) return "";
    switch (ERR_GET_REASON(e)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return "the server wants a client certificate (cert= and key= in the URL): ";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        return "the server refused the client certificate: ";
    default:
        return "";
    }
}

/* ---- TLS settings -----------------------------------------------------------------------------
 */

static drv_err tls_fail(drv_tls *t, char *why, size_t whylen, const char *fmt, const char *path) {
    char what[400];
    snprintf(what, sizeof what, fmt, path);
    snprintf(why, whylen, "TLS: %s: %s", what, ssl_reason("unknown error"));
    ERR_clear_error();
    drv_tls_free(t);
    return DRV_EINVAL;
}

/* A file named in the URL that cannot be read: say so plainly rather than in OpenSSL's words. */
static int unreadable(const char *what, const char *path, char *why, size_t whylen) {
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return 0;
    }
    snprintf(why, whylen, "TLS: cannot read the %s file %s: %s", what, path, strerror(errno));
    return 1;
}

/* Called in the handshake when the server asks for a client certificate and none is set. With
 * TLS 1.3 the server's refusal comes after the handshake, and may be lost in a connection reset;
 * this is how the error can still say what is missing. */
static int cert_requested(SSL *ssl, X509 **x509, EVP_PKEY **pkey) {
    (void)x509, (void)pkey;
    drv_link *l = SSL_get_app_data(ssl);
    if (l) l->cert_asked = 1;
    return 0; /* none: go on without */
}

drv_err drv_tls_new(const drv_redis_cfg *cfg, drv_tls **out, char *why, size_t whylen) {
    *out = NULL;
    if (!cfg->tls) return DRV_OK;
    if ((cfg->tls_ca[0] && unreadable("CA", cfg->tls_ca, why, whylen)) ||
        (cfg->tls_cert[0] && unreadable("certificate", cfg->tls_cert, why, whylen)) ||
        (cfg->tls_key[0] && unreadable("key", cfg->tls_key, why, whylen)))
        return DRV_EINVAL;
    drv_tls *t = calloc(1, sizeof *t);
    if (!t) return DRV_ENOMEM;
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) return tls_fail(t, why, whylen, "%s", "cannot set up");
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    t->insecure = cfg->tls_insecure;
    if (t->insecure) {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
        /* Once per process, however many connections (cluster nodes, threads) follow. */
        static atomic_int warned;
        if (atomic_exchange(&warned, 1) == 0)
            drv_warn("TLS to Redis with insecure=1: the server's certificate and host name are "
                     "NOT checked, so anyone on the network path can read and change the "
                     "traffic, passwords included");
    } else {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        if (cfg->tls_ca[0]) {
            if (SSL_CTX_load_verify_locations(t->ctx, cfg->tls_ca, NULL) != 1)
                return tls_fail(t, why, whylen, "no CA certificate in %s", cfg->tls_ca);
        } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
            return tls_fail(t, why, whylen, "%s", "cannot load the system's CA certificates");
        }
    }
    if (!cfg->tls_cert[0]) SSL_CTX_set_client_cert_cb(t->ctx, cert_requested);
    if (cfg->tls_cert[0]) {
        if (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->tls_cert) != 1)
            return tls_fail(t, why, whylen, "no certificate in %s", cfg->tls_cert);
        if (SSL_CTX_use_PrivateKey_file(t->ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1)
            return tls_fail(t, why, whylen, "no private key in %s", cfg->tls_key);
        if (SSL_CTX_check_private_key(t->ctx) != 1)
            return tls_fail(t, why, whylen, "the key in %s does not match the certificate",
                            cfg->tls_key);
    }
    *out = t;
    return DRV_OK;
}

void drv_tls_free(drv_tls *t) {
    if (!t) return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- the handshake ----------------------------------------------------------------------------
 */

static int is_ip_literal(const char *host) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Why SSL_connect failed, in the words an operator acts on. */
static void handshake_error(drv_link *l, int r, int code, char *why, size_t whylen) {
    long v = SSL_get_verify_result(l->ssl);
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    if (v != X509_V_OK) {
        snprintf(why, whylen, "TLS: certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    } else if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
               (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_RECORD_LENGTH_MISMATCH)) {
        /* A plain Redis answers the ClientHello with an error reply: not a TLS record. */
        snprintf(why, whylen,
                 "TLS: the server is not speaking TLS (a plain-text port? use redis://): %s",
                 ssl_reason("bad record"));
    } else if (e) {
        snprintf(why, whylen, "TLS handshake failed: %s%s", client_cert_hint(e),
                 ssl_reason("unknown error"));
    } else if (code == SSL_ERROR_SYSCALL && r == 0) {
        snprintf(why, whylen,
                 "TLS handshake failed: the server closed the connection (not a TLS port?)");
    } else {
        snprintf(why, whylen, "TLS handshake failed: %s", errno ? strerror(errno) : "I/O error");
    }
    ERR_clear_error();
}

/* SNI, the name or address to check, then SSL_connect on the non-blocking socket, waiting at
 * most connect_ms in all (hiredis's timeouts bound one read or write each, not the whole). */
static int tls_handshake(drv_link *l, drv_tls *t, const char *host, int connect_ms, char *why,
                         size_t whylen) {
    int fd = l->ctx->fd;
    ERR_clear_error();
    l->ssl = SSL_new(t->ctx);
    if (!l->ssl || SSL_set_fd(l->ssl, fd) != 1) {
        snprintf(why, whylen, "TLS: cannot set up the connection: %s", ssl_reason("no memory"));
        ERR_clear_error();
        return -1;
    }
    SSL_set_app_data(l->ssl, l);
    int ip = is_ip_literal(host);
    if (!ip) SSL_set_tlsext_host_name(l->ssl, host); /* SNI never carries an address */
    if (!t->insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(l->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
                : X509_VERIFY_PARAM_set1_host(vp, host, 0)) != 1) {
            snprintf(why, whylen, "TLS: cannot check the certificate against \"%s\"", host);
            return -1;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        snprintf(why, whylen, "TLS: %s", strerror(errno));
        return -1;
    }
    int64_t deadline = drv_now_ms() + connect_ms;
    for (;;) {
        errno = 0;
        int r = SSL_connect(l->ssl);
        if (r == 1) break;
        int code = SSL_get_error(l->ssl, r);
        if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) {
            handshake_error(l, r, code, why, whylen);
            return -1;
        }
        int64_t left = deadline - drv_now_ms();
        struct pollfd p = {fd, code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
        int n = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (n == 0) {
            snprintf(why, whylen,
                     "TLS: no answer to the TLS handshake within %d ms: the server is not "
                     "speaking TLS (a plain-text port? use redis://) or is stalled",
                     connect_ms);
            return -1;
        }
        if (n < 0 && errno != EINTR) {
            snprintf(why, whylen, "TLS: %s", strerror(errno));
            return -1;
        }
    }
    if (fcntl(fd, F_SETFL, flags) < 0) {
        snprintf(why, whylen, "TLS: %s", strerror(errno));
        return -1;
    }
    return 0;
}

drv_link *drv_link_open(const char *host, int port, const char *path, drv_tls *tls, int connect_ms,
                        int command_ms, char *why, size_t whylen) {
    redisContext *ctx = path && *path ? redisConnectUnixWithTimeout(path, ms_tv(connect_ms))
                                      : redisConnectWithTimeout(host, port, ms_tv(connect_ms));
    if (!ctx) {
        snprintf(why, whylen, "cannot allocate a connection");
        return NULL;
    }
    if (ctx->err) {
        snprintf(why, whylen, "%s", ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    drv_link *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(why, whylen, "cannot allocate a connection");
        redisFree(ctx);
        return NULL;
    }
    l->ctx = ctx;
    if (tls && tls_handshake(l, tls, host, connect_ms, why, whylen) != 0) {
        drv_link_free(l);
        return NULL;
    }
    redisSetTimeout(ctx, ms_tv(command_ms)); /* each read and write, TLS or not */
    return l;
}

void drv_link_free(drv_link *l) {
    if (!l) return;
    SSL_free(l->ssl); /* no close_notify: Redis needs none, and it could block on a dead peer */
    redisFree(l->ctx);
    free(l);
}

const char *drv_link_errstr(const drv_link *l) {
    return l->err;
}

/* ---- plain I/O: hiredis's ---------------------------------------------------------------------
 */

/* Keeps why hiredis returned no reply, while errno still tells a timeout. */
static redisReply *plain_result(drv_link *l, redisReply *r) {
    if (r) {
        l->answered = 1;
        return r;
    }
    redisContext *c = l->ctx;
    const char *why = c->err ? c->errstr : "connection lost";
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
        why = "timed out waiting for a reply";
    else if (c->err == REDIS_ERR_PROTOCOL && strstr(c->errstr, "\"\\x15\""))
        /* A TLS port answers plain text with a TLS alert record (content type 0x15). */
        why = "the server expects TLS (it answered with a TLS alert): use rediss://";
    else if (!l->answered && c->connection_type == REDIS_CONN_TCP &&
             (c->err == REDIS_ERR_EOF || (c->err == REDIS_ERR_IO && errno == ECONNRESET)))
        /* ... or drops it: Redis's TLS port does, redis-server never does to a first PING. */
        why = "the server closed the connection without answering: it probably expects TLS "
              "(use rediss://)";
    snprintf(l->err, sizeof l->err, "%s", why);
    return NULL;
}

/* ---- TLS I/O: hiredis's buffers and reader, OpenSSL's bytes -----------------------------------
 */

static redisReply *tls_io_error(drv_link *l, int r) {
    int code = SSL_get_error(l->ssl, r);
    if (l->cert_asked && !l->answered && code != SSL_ERROR_WANT_READ &&
        code != SSL_ERROR_WANT_WRITE)
        snprintf(l->err, sizeof l->err,
                 "TLS: the server wants a client certificate (cert= and key= in the URL): %s",
                 code == SSL_ERROR_SSL ? ssl_reason("refused") : "connection closed");
    else if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
        snprintf(l->err, sizeof l->err, "timed out waiting for a reply"); /* SO_RCVTIMEO */
    else if (code == SSL_ERROR_ZERO_RETURN || (code == SSL_ERROR_SYSCALL && errno == 0))
        snprintf(l->err, sizeof l->err, "Server closed the connection");
    else if (code == SSL_ERROR_SYSCALL)
        snprintf(l->err, sizeof l->err, "%s", strerror(errno));
    else
        snprintf(l->err, sizeof l->err, "TLS: %s%s", client_cert_hint(ERR_peek_last_error()),
                 ssl_reason("unknown error"));
    ERR_clear_error();
    return NULL;
}

/* Sends hiredis's output buffer and empties it, as redisBufferWrite does. */
static int tls_flush(drv_link *l) {
    redisContext *c = l->ctx;
    size_t len = sdslen(c->obuf);
    for (size_t off = 0; off < len;) {
        size_t chunk = len - off < INT_MAX ? len - off : INT_MAX;
        ERR_clear_error();
        errno = 0;
        int n = SSL_write(l->ssl, c->obuf + off, (int)chunk);
        if (n <= 0) {
            tls_io_error(l, n);
            return -1;
        }
        off += (size_t)n;
    }
    if (len) {
        sdsfree(c->obuf);
        if (!(c->obuf = sdsempty())) {
            snprintf(l->err, sizeof l->err, "out of memory");
            return -1;
        }
    }
    return 0;
}

static redisReply *tls_protocol_error(drv_link *l) {
    snprintf(l->err, sizeof l->err, "%s", l->ctx->errstr);
    return NULL;
}

/* redisGetReply over TLS: a reply already read, else flush and read until one is whole. */
static redisReply *tls_get_reply(drv_link *l) {
    redisContext *c = l->ctx;
    void *r = NULL;
    if (redisGetReplyFromReader(c, &r) != REDIS_OK) return tls_protocol_error(l);
    if (r) return r;
    if (tls_flush(l) != 0) return NULL;
    while (!r) {
        char buf[16384]; /* one TLS record at most */
        ERR_clear_error();
        errno = 0;
        int n = SSL_read(l->ssl, buf, sizeof buf);
        if (n <= 0) return tls_io_error(l, n);
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK ||
            redisGetReplyFromReader(c, &r) != REDIS_OK)
            return tls_protocol_error(l);
    }
    l->answered = 1;
    return r;
}

/* ---- commands ---------------------------------------------------------------------------------
 */

redisReply *drv_link_vcommand(drv_link *l, const char *fmt, va_list ap) {
    if (!l->ssl) return plain_result(l, redisvCommand(l->ctx, fmt, ap));
    if (redisvAppendCommand(l->ctx, fmt, ap) != REDIS_OK) return tls_protocol_error(l);
    return tls_get_reply(l);
}

redisReply *drv_link_command(drv_link *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = drv_link_vcommand(l, fmt, ap);
    va_end(ap);
    return r;
}

redisReply *drv_link_command_argv(drv_link *l, int argc, const char **argv, const size_t *lens) {
    if (!l->ssl) return plain_result(l, redisCommandArgv(l->ctx, argc, argv, lens));
    if (redisAppendCommandArgv(l->ctx, argc, argv, lens) != REDIS_OK) return tls_protocol_error(l);
    return tls_get_reply(l);
}

int drv_link_append_argv(drv_link *l, int argc, const char **argv, const size_t *lens) {
    if (redisAppendCommandArgv(l->ctx, argc, argv, lens) == REDIS_OK) return 0;
    snprintf(l->err, sizeof l->err, "%s", l->ctx->errstr);
    return -1;
}

redisReply *drv_link_get_reply(drv_link *l) {
    if (l->ssl) return tls_get_reply(l);
    void *r = NULL;
    if (redisGetReply(l->ctx, &r) != REDIS_OK) r = NULL;
    return plain_result(l, r);
}
