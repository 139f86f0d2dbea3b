/* The cluster routing layer (common/cluster.c) through drv_conn against a real 3-master Redis
 * Cluster on loopback, formed by the test (CLUSTER ADDSLOTSRANGE + MEET): keys of every master
 * from one connection, pipelines whose commands land on different nodes answered in order,
 * UNLINK over several slots, SCAN over every master, MULTI/EXEC, scripts reloaded after
 * SCRIPT FLUSH on every node, and keyless commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster.h"
#include "conn.h"
#include "redis_fixture.h"
#include "url.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NODES 3
#define NKEYS 60

static drv_test_redis node[NODES];
static drv_conn *conn;

static redisReply *on(int i, const char *fmt, ...) {
    redisContext *c = redisConnect("127.0.0.1", node[i].port);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static int all_ok(void) {
    for (int i = 0; i < NODES; i++) {
        redisReply *r = on(i, "CLUSTER INFO");
        int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") &&
                 strstr(r->str, "cluster_known_nodes:3");
        if (r) freeReplyObject(r);
        if (!ok) return 0;
    }
    return 1;
}

static int form(void **state) {
    (void)state;
    const char *extra[] = {"--cluster-enabled",
                           "yes",
                           "--cluster-config-file",
                           "nodes.conf",
                           "--cluster-node-timeout",
                           "1000",
                           NULL};
    for (int i = 0; i < NODES; i++)
        if (drv_test_redis_start(&node[i], extra) != 0) return -1;
    for (int i = 0; i < NODES; i++) {
        int from = i * 16384 / NODES, to = (i + 1) * 16384 / NODES - 1;
        redisReply *r = on(i, "CLUSTER ADDSLOTSRANGE %d %d", from, to);
        if (!r || r->type == REDIS_REPLY_ERROR) return -1;
        freeReplyObject(r);
        if (i) {
            r = on(0, "CLUSTER MEET 127.0.0.1 %d", node[i].port);
            if (!r || r->type == REDIS_REPLY_ERROR) return -1;
            freeReplyObject(r);
        }
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!all_ok()) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 30) {
            fprintf(stderr, "the cluster did not form in 30 s\n");
            return -1;
        }
        nanosleep(&(struct timespec){0, 50000000L}, NULL);
    }
    char url[128], why[256];
    drv_redis_cfg cfg;
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", node[1].port);
    if (drv_url_parse(url, &cfg, why, sizeof why) != DRV_OK) return -1;
    if (drv_conn_open(&cfg, &conn, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "open: %s\n", why);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    drv_conn_close(conn);
    for (int i = 0; i < NODES; i++)
        drv_test_redis_stop(&node[i]);
    return 0;
}

static void key_name(char *buf, size_t n, int i) {
    snprintf(buf, n, "t:{k%d}:v", i);
}

/* How many keys node i holds (DBSIZE on that node alone). */
static long long dbsize(int i) {
    redisReply *r = on(i, "DBSIZE");
    assert_non_null(r);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void keys_reach_every_master_and_pipelines_answer_in_order(void **state) {
    (void)state;
    redisReply *r;
    char k[64], v[64];
    for (int i = 0; i < NKEYS; i++) {
        key_name(k, sizeof k, i);
        snprintf(v, sizeof v, "value-%d", i);
        assert_int_equal(drv_conn_cmdf(conn, &r, "SET %s %s", k, v), DRV_OK);
        freeReplyObject(r);
    }
    for (int i = 0; i < NODES; i++)
        assert_true(dbsize(i) > 0); /* 60 keys over 3 slot ranges: each master holds some */
    assert_int_equal(dbsize(0) + dbsize(1) + dbsize(2), NKEYS);
    /* One pipeline, commands for all three nodes interleaved: replies in append order. */
    for (int i = 0; i < NKEYS; i++) {
        key_name(k, sizeof k, i);
        const char *argv[] = {"GET", k};
        assert_int_equal(drv_conn_append(conn, 2, argv, NULL), DRV_OK);
    }
    for (int i = 0; i < NKEYS; i++) {
        assert_int_equal(drv_conn_reply(conn, &r), DRV_OK);
        snprintf(v, sizeof v, "value-%d", i);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_string_equal(r->str, v);
        freeReplyObject(r);
    }
}

static void scan_walks_every_master_and_unlink_splits_by_slot(void **state) {
    (void)state;
    redisReply *r;
    char cursor[64] = "0";
    int seen = 0, pages = 0;
    do {
        assert_int_equal(drv_conn_cmdf(conn, &r, "SCAN %s MATCH %s COUNT 1000", cursor, "t:*"),
                         DRV_OK);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        seen += (int)r->element[1]->elements;
        freeReplyObject(r);
        assert_true(++pages < 100);
    } while (strcmp(cursor, "0") != 0);
    assert_int_equal(seen, NKEYS);
    /* UNLINK of keys in many slots: one per slot inside the layer, the sum answered. */
    const char *argv[1 + NKEYS];
    char keys[NKEYS][64];
    argv[0] = "UNLINK";
    for (int i = 0; i < NKEYS; i++) {
        key_name(keys[i], sizeof keys[i], i);
        argv[1 + i] = keys[i];
    }
    assert_int_equal(drv_conn_cmd(conn, 1 + NKEYS, argv, NULL, &r), DRV_OK);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, NKEYS);
    freeReplyObject(r);
    assert_int_equal(dbsize(0) + dbsize(1) + dbsize(2), 0);
}

static void multi_exec_goes_to_the_node_of_its_first_key(void **state) {
    (void)state;
    redisReply *r;
    assert_int_equal(drv_conn_cmdf(conn, &r, "MULTI"), DRV_OK);
    freeReplyObject(r);
    assert_int_equal(drv_conn_cmdf(conn, &r, "HSET %s a 1", "t:{job}:job"), DRV_OK);
    freeReplyObject(r);
    assert_int_equal(drv_conn_cmdf(conn, &r, "HSET %s b 2", "t:{job}:limits"), DRV_OK);
    freeReplyObject(r);
    assert_int_equal(drv_conn_cmdf(conn, &r, "EXEC"), DRV_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    freeReplyObject(r);
    assert_int_equal(drv_conn_cmdf(conn, &r, "HGET %s b", "t:{job}:limits"), DRV_OK);
    assert_string_equal(r->str, "2");
    freeReplyObject(r);
    /* DISCARD drops what was queued. */
    assert_int_equal(drv_conn_cmdf(conn, &r, "MULTI"), DRV_OK);
    freeReplyObject(r);
    assert_int_equal(drv_conn_cmdf(conn, &r, "HSET %s b 3", "t:{job}:limits"), DRV_OK);
    freeReplyObject(r);
    assert_int_equal(drv_conn_cmdf(conn, &r, "DISCARD"), DRV_OK);
    freeReplyObject(r);
    assert_int_equal(drv_conn_cmdf(conn, &r, "HGET %s b", "t:{job}:limits"), DRV_OK);
    assert_string_equal(r->str, "2");
    freeReplyObject(r);
}

static void scripts_run_on_every_master_and_come_back_after_flush(void **state) {
    (void)state;
    redisReply *r;
    for (int round = 0; round < 2; round++) {
        for (int j = 0; j < 12; j++) {
            char lk[64];
            snprintf(lk, sizeof lk, "t:{lockjob%d}:lock", j);
            const char *keys[] = {lk}, *args[] = {"me", "60000"};
            size_t klens[] = {strlen(lk)}, alens[] = {2, 5};
            assert_int_equal(drv_conn_script(conn, "lock", 1, keys, klens, 2, args, alens, &r),
                             DRV_OK);
            assert_int_equal(r->integer, 1);
            freeReplyObject(r);
        }
        /* The script cache empties (a restart, a failover): NOSCRIPT, then loaded again. */
        for (int i = 0; i < NODES; i++) {
            r = on(i, "SCRIPT FLUSH");
            assert_non_null(r);
            freeReplyObject(r);
        }
    }
    /* Keyless commands go to some master. */
    assert_int_equal(drv_conn_cmdf(conn, &r, "TIME"), DRV_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    assert_false(drv_conn_broken(conn));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_reach_every_master_and_pipelines_answer_in_order),
        cmocka_unit_test(scan_walks_every_master_and_unlink_splits_by_slot),
        cmocka_unit_test(multi_exec_goes_to_the_node_of_its_first_key),
        cmocka_unit_test(scripts_run_on_every_master_and_come_back_after_flush),
    };
    return cmocka_run_group_tests(tests, form, teardown);
}
