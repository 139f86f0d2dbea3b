/* The TLS transport (common/link.c) against a real redis-server's TLS port: values larger
 * than a TLS record both ways, and a long pipeline, come back byte for byte, so the output
 * buffer is flushed whole and replies split over records are put together. The certificates
 * are made with openssl in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conn.h"
#include "redis_fixture.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static drv_test_redis server;
static char certs[64];
static int tls_port;

static int make_certs(void) {
    snprintf(certs, sizeof certs, "/tmp/drover-tls-XXXXXX");
    if (!mkdtemp(certs)) return -1;
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "cd %s && ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca && "
             "openssl req $ec -keyout server.key -out server.csr -subj /CN=test-server && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' >san && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-days 2 -out server.crt -extfile san",
             certs);
    char quiet[1300];
    snprintf(quiet, sizeof quiet, "(%s) >/dev/null 2>&1", cmd);
    return system(quiet) == 0 ? 0 : -1;
}

/* A server with a plain port (the fixture's PING) and a TLS port beside it. */
static int start_tls(void **state) {
    (void)state;
    if (make_certs() != 0) return -1;
    char port[16], cert[128], key[128], ca[128];
    snprintf(cert, sizeof cert, "%s/server.crt", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int try = 0; try < 10; try++) {
        tls_port = 20000 + rand() % 40000;
        snprintf(port, sizeof port, "%d", tls_port);
        const char *extra[] = {"--tls-port",
                               port,
                               "--tls-cert-file",
                               cert,
                               "--tls-key-file",
                               key,
                               "--tls-ca-cert-file",
                               ca,
                               "--tls-auth-clients",
                               "no",
                               NULL};
        if (drv_test_redis_start(&server, extra) == 0) return 0;
    }
    return -1;
}

static int stop_tls(void **state) {
    (void)state;
    drv_test_redis_stop(&server);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certs);
    return system(cmd) == 0 ? 0 : -1;
}

static drv_conn *open_tls(void) {
    char url[256], why[512];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d/0?ca=%s/ca.crt", tls_port, certs);
    drv_redis_cfg cfg;
    assert_int_equal(drv_url_parse(url, &cfg, why, sizeof why), DRV_OK);
    drv_conn *c = NULL;
    drv_err e = drv_conn_open(&cfg, &c, why, sizeof why);
    if (e != DRV_OK) fail_msg("%s", why);
    return c;
}

static void values_larger_than_a_record_come_back_whole(void **state) {
    (void)state;
    drv_conn *c = open_tls();
    size_t n = 1 << 20; /* 1 MiB: 64 TLS records each way */
    char *v = malloc(n);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    const char *set[] = {"SET", "big", v};
    size_t setl[] = {3, 3, n};
    redisReply *r;
    assert_int_equal(drv_conn_cmd(c, 3, set, setl, &r), DRV_OK);
    freeReplyObject(r);
    /* Several in one pipeline: replies of 1 MiB back to back on the same records. */
    const char *get[] = {"GET", "big"};
    size_t getl[] = {3, 3};
    for (int i = 0; i < 8; i++)
        assert_int_equal(drv_conn_append(c, 2, get, getl), DRV_OK);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(drv_conn_reply(c, &r), DRV_OK);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(r->len, n);
        assert_memory_equal(r->str, v, n);
        freeReplyObject(r);
    }
    free(v);
    drv_conn_close(c);
}

static void a_long_pipeline_answers_in_order(void **state) {
    (void)state;
    drv_conn *c = open_tls();
    const char *incr[] = {"INCR", "counter"};
    size_t incrl[] = {4, 7};
    for (int i = 0; i < 5000; i++)
        assert_int_equal(drv_conn_append(c, 2, incr, incrl), DRV_OK);
    for (int i = 1; i <= 5000; i++) {
        redisReply *r;
        assert_int_equal(drv_conn_reply(c, &r), DRV_OK);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(r->integer, i);
        freeReplyObject(r);
    }
    drv_conn_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_larger_than_a_record_come_back_whole),
        cmocka_unit_test(a_long_pipeline_answers_in_order),
    };
    return cmocka_run_group_tests(tests, start_tls, stop_tls);
}
