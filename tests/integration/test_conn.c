/* The connection layer against real redis-servers: AUTH (password and ACL user), SELECT,
 * clear errors naming the address, and reconnecting after the server restarts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "conn.h"
#include "redis_fixture.h"
#include "url.h"

#include <stdio.h>
#include <string.h>

static drv_redis_cfg cfg_for(const drv_test_redis *r, const char *user, const char *pass, int db) {
    drv_redis_cfg c;
    char url[256], why[128];
    snprintf(url, sizeof url, "redis://%s%s%s%s127.0.0.1:%d/%d", user, pass[0] ? ":" : "", pass,
             user[0] || pass[0] ? "@" : "", r->port, db);
    assert_int_equal(drv_url_parse(url, &c, why, sizeof why), DRV_OK);
    return c;
}

/* Each test gets its own server from a setup and loses it in the teardown, so a failed
 * assertion never leaves a redis-server behind. */
static drv_test_redis server;

static int start_plain(void **state) {
    (void)state;
    return drv_test_redis_start(&server, NULL);
}

static int start_with_password(void **state) {
    (void)state;
    const char *extra[] = {"--requirepass", "s3cret", NULL};
    return drv_test_redis_start(&server, extra);
}

static int stop_server(void **state) {
    (void)state;
    drv_test_redis_stop(&server);
    return 0;
}

static void auth_with_password_and_acl_user_connects(void **state) {
    (void)state;
    drv_test_redis r = server;
    drv_conn *c;
    char why[512];
    drv_redis_cfg cfg = cfg_for(&r, "", "s3cret", 0);
    assert_int_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_OK);
    redisReply *rep;
    /* An ACL user with its own password. */
    assert_int_equal(drv_conn_cmdf(c, &rep, "ACL SETUSER drover on >w0rker ~* &* +@all"), DRV_OK);
    freeReplyObject(rep);
    drv_conn_close(c);
    cfg = cfg_for(&r, "drover", "w0rker", 0);
    assert_int_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_OK);
    assert_int_equal(drv_conn_cmdf(c, &rep, "ACL WHOAMI"), DRV_OK);
    assert_string_equal(rep->str, "drover");
    freeReplyObject(rep);
    drv_conn_close(c);
}

static void wrong_password_fails_naming_the_address(void **state) {
    (void)state;
    drv_test_redis r = server;
    drv_conn *c = NULL;
    char why[512] = "", addr[64];
    drv_redis_cfg cfg = cfg_for(&r, "", "wrong", 0);
    assert_int_not_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_OK);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", r.port);
    assert_non_null(strstr(why, addr));
    assert_non_null(strstr(why, "AUTH"));
    assert_null(strstr(why, "wrong")); /* the password never appears in messages */
    /* No password at all: the first command is refused, and says so. */
    cfg = cfg_for(&r, "", "", 0);
    assert_int_not_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_OK);
    assert_non_null(strstr(why, "NOAUTH"));
    assert_non_null(strstr(why, addr));
    assert_non_null(strstr(why, "wants a password and none was given"));
}

static void user_without_permissions_is_told_which_user_and_where(void **state) {
    (void)state;
    drv_test_redis r = server;
    drv_conn *c;
    char why[512] = "", addr[64];
    drv_redis_cfg cfg = cfg_for(&r, "", "s3cret", 0);
    assert_int_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_OK);
    redisReply *rep;
    /* A user that may log in and nothing more: SCRIPT LOAD, the first command, is refused. */
    assert_int_equal(drv_conn_cmdf(c, &rep, "ACL SETUSER nobody on >n0thing resetkeys -@all"),
                     DRV_OK);
    freeReplyObject(rep);
    drv_conn_close(c);
    cfg = cfg_for(&r, "nobody", "n0thing", 0);
    assert_int_not_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_OK);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", r.port);
    assert_non_null(strstr(why, addr));
    assert_non_null(strstr(why, "user 'nobody' may not run what drover needs"));
    assert_non_null(strstr(why, "NOPERM"));
    assert_null(strstr(why, "n0thing"));
}

static void select_uses_the_database_in_the_url(void **state) {
    (void)state;
    drv_test_redis r = server;
    drv_conn *c;
    char why[512];
    drv_redis_cfg cfg = cfg_for(&r, "", "", 5);
    assert_int_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_OK);
    redisReply *rep;
    assert_int_equal(drv_conn_cmdf(c, &rep, "SET k v"), DRV_OK);
    freeReplyObject(rep);
    assert_int_equal(drv_conn_cmdf(c, &rep, "CLIENT INFO"), DRV_OK);
    assert_non_null(strstr(rep->str, " db=5 "));
    freeReplyObject(rep);
    drv_conn_close(c);
}

static void unreachable_redis_fails_fast_naming_the_address(void **state) {
    (void)state;
    drv_redis_cfg cfg;
    char why[512];
    /* Port 1 on loopback: nothing listens, the connect is refused at once. */
    assert_int_equal(drv_url_parse("redis://127.0.0.1:1/0", &cfg, why, sizeof why), DRV_OK);
    drv_conn *c = NULL;
    int64_t t0 = drv_now_ms();
    assert_int_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_EIO);
    assert_true(drv_now_ms() - t0 < 3000);
    assert_non_null(strstr(why, "127.0.0.1:1"));
}

static void reconnects_after_the_server_restarts(void **state) {
    (void)state;
    drv_test_redis *rp = &server, r = server;
    drv_conn *c;
    char why[512];
    drv_redis_cfg cfg = cfg_for(&r, "", "", 0);
    assert_int_equal(drv_conn_open(&cfg, &c, why, sizeof why), DRV_OK);
    drv_test_redis_kill(rp);
    redisReply *rep = NULL;
    assert_int_equal(drv_conn_cmdf(c, &rep, "PING"), DRV_EIO);
    assert_true(drv_conn_broken(c));
    assert_int_equal(drv_conn_cmdf(c, &rep, "PING"), DRV_EIO); /* stays broken, no crash */
    assert_int_equal(drv_conn_reconnect(c, why, sizeof why), DRV_EIO);
    /* The server comes back on the same port: the next reconnect works, scripts load again. */
    assert_int_equal(drv_test_redis_restart(rp, NULL), 0);
    assert_int_equal(drv_conn_reconnect(c, why, sizeof why), DRV_OK);
    assert_int_equal(drv_conn_cmdf(c, &rep, "PING"), DRV_OK);
    freeReplyObject(rep);
    drv_conn_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(auth_with_password_and_acl_user_connects,
                                        start_with_password, stop_server),
        cmocka_unit_test_setup_teardown(wrong_password_fails_naming_the_address,
                                        start_with_password, stop_server),
        cmocka_unit_test_setup_teardown(user_without_permissions_is_told_which_user_and_where,
                                        start_with_password, stop_server),
        cmocka_unit_test_setup_teardown(select_uses_the_database_in_the_url, start_plain,
                                        stop_server),
        cmocka_unit_test(unreachable_redis_fails_fast_naming_the_address),
        cmocka_unit_test_setup_teardown(reconnects_after_the_server_restarts, start_plain,
                                        stop_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
