/* Redis URLs: what drv_url_parse accepts, what it refuses, and how an address is described. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "url.h"

#include <stdio.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------- */

static drv_redis_cfg parse_ok(const char *url) {
    drv_redis_cfg c;
    char why[256] = "";
    drv_err e = drv_url_parse(url, &c, why, sizeof why);
    if (e != DRV_OK) fail_msg("%s: returned %d: %s", url, e, why);
    return c;
}

/* Expects DRV_EINVAL, a message holding 'needle', and *out left as it was. */
static void expect_error(const char *url, const char *needle) {
    drv_redis_cfg c, before;
    char why[256] = "";
    memset(&c, 0x5a, sizeof c);
    memcpy(&before, &c, sizeof c);
    drv_err e = drv_url_parse(url, &c, why, sizeof why);
    if (e != DRV_EINVAL) fail_msg("%s: returned %d, expected DRV_EINVAL", url ? url : "NULL", e);
    if (!strstr(why, needle)) fail_msg("%s: message \"%s\" lacks \"%s\"", url, why, needle);
    if (memcmp(&c, &before, sizeof c) != 0) fail_msg("%s: output changed on failure", url);
}

/* ---- TCP --------------------------------------------------------------------------------------
 */

static void url_host_alone_gets_default_port_db_and_timeouts(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis://localhost");
    assert_string_equal(c.host, "localhost");
    assert_int_equal(c.port, 6379);
    assert_int_equal(c.db, 0);
    assert_string_equal(c.path, "");
    assert_string_equal(c.user, "");
    assert_string_equal(c.password, "");
    assert_int_equal(c.connect_timeout_ms, 2000);
    assert_int_equal(c.command_timeout_ms, 5000);
    c = parse_ok("redis://10.0.0.5/");
    assert_string_equal(c.host, "10.0.0.5");
    assert_int_equal(c.port, 6379);
    assert_int_equal(c.db, 0);
}

static void url_reads_host_port_and_db(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis://cache.internal:6380/3");
    assert_string_equal(c.host, "cache.internal");
    assert_int_equal(c.port, 6380);
    assert_int_equal(c.db, 3);
    c = parse_ok("redis://h:1");
    assert_int_equal(c.port, 1);
    c = parse_ok("redis://h:65535/0");
    assert_int_equal(c.port, 65535);
    c = parse_ok("redis://h/15");
    assert_int_equal(c.port, 6379);
    assert_int_equal(c.db, 15);
}

static void url_reads_user_and_password(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis://alice:s3cret@h:7000/2");
    assert_string_equal(c.user, "alice");
    assert_string_equal(c.password, "s3cret");
    assert_string_equal(c.host, "h");
    assert_int_equal(c.port, 7000);
    assert_int_equal(c.db, 2);
    c = parse_ok("redis://:only-pass@h");
    assert_string_equal(c.user, "");
    assert_string_equal(c.password, "only-pass");
}

static void url_userinfo_without_colon_is_a_password(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis://secret@host");
    assert_string_equal(c.user, "");
    assert_string_equal(c.password, "secret");
    assert_string_equal(c.host, "host");
    assert_int_equal(c.port, 6379);
}

static void url_percent_decodes_user_and_password(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis://us%65r%2F1:p%40ss%3Aw%25rd%2f@h");
    assert_string_equal(c.user, "user/1");
    assert_string_equal(c.password, "p@ss:w%rd/");
    c = parse_ok("redis://%41%42@h");
    assert_string_equal(c.password, "AB");
}

static void url_refuses_bad_percent_escapes(void **state) {
    (void)state;
    expect_error("redis://:pass%4@h", "password");
    expect_error("redis://:pass%@h", "password");
    expect_error("redis://:%zz@h", "password");
    expect_error("redis://:a%00b@h", "password"); /* NUL cannot be sent in AUTH */
    expect_error("redis://u%4:p@h", "user");
    expect_error("redis://u%g0:p@h", "user");
    expect_error("redis://%4@h", "password");
}

static void url_refuses_overlong_credentials(void **state) {
    (void)state;
    char url[1024], pw[300];
    memset(pw, 'p', sizeof pw - 1);
    pw[sizeof pw - 1] = '\0';
    snprintf(url, sizeof url, "redis://:%s@h", pw);
    expect_error(url, "password");
    /* 255 bytes is the most the password field holds. */
    pw[255] = '\0';
    snprintf(url, sizeof url, "redis://:%s@h", pw);
    drv_redis_cfg c = parse_ok(url);
    assert_int_equal(strlen(c.password), 255);
}

static void url_reads_bracketed_ipv6_host(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis://[::1]:6380");
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 6380);
    c = parse_ok("redis://u:p@[fe80::1:2]/4");
    assert_string_equal(c.host, "fe80::1:2");
    assert_int_equal(c.port, 6379);
    assert_int_equal(c.db, 4);
    assert_string_equal(c.password, "p");
    expect_error("redis://[::1", "unterminated");
    expect_error("redis://[]:6379", "missing host");
}

/* ---- unix sockets -----------------------------------------------------------------------------
 */

static void url_reads_unix_socket_path_and_db(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("unix:///tmp/r.sock");
    assert_string_equal(c.path, "/tmp/r.sock");
    assert_int_equal(c.port, 0);
    assert_int_equal(c.db, 0);
    assert_string_equal(c.host, "");
    c = parse_ok("unix:///var/run/redis/redis.sock?db=3");
    assert_string_equal(c.path, "/var/run/redis/redis.sock");
    assert_int_equal(c.db, 3);
    c = parse_ok("unix://:pw@/tmp/r.sock?db=1");
    assert_string_equal(c.path, "/tmp/r.sock");
    assert_string_equal(c.password, "pw");
    assert_int_equal(c.db, 1);
}

static void url_refuses_relative_unix_path(void **state) {
    (void)state;
    expect_error("unix://tmp/r.sock", "absolute path");
    expect_error("unix://", "absolute path");
    expect_error("unix://?db=1", "absolute path");
}

static void url_refuses_bad_unix_query(void **state) {
    (void)state;
    expect_error("unix:///tmp/r.sock?db=", "?db=N");
    expect_error("unix:///tmp/r.sock?db=x", "?db=N");
    expect_error("unix:///tmp/r.sock?db=-1", "?db=N");
    expect_error("unix:///tmp/r.sock?timeout=1", "?db=N");
    expect_error("unix:///tmp/r.sock?db=1&x=2", "?db=N");
}

/* ---- errors -----------------------------------------------------------------------------------
 */

static void url_refuses_bad_scheme(void **state) {
    (void)state;
    expect_error("http://h:6379", "expected redis://");
    expect_error("redis-tls://h", "expected redis://");
    expect_error("h:6379", "expected redis://");
    expect_error("", "empty");
    expect_error(NULL, "empty");
}

static void url_refuses_bad_ports(void **state) {
    (void)state;
    expect_error("redis://h:0", "bad port \"0\"");
    expect_error("redis://h:65536", "bad port \"65536\"");
    expect_error("redis://h:-1", "bad port");
    expect_error("redis://h:abc", "bad port \"abc\"");
    expect_error("redis://h:63x/0", "bad port");
    expect_error("redis://h:/0", "bad port");
    expect_error("redis://h:", "bad port");
    expect_error("redis://h: 80", "bad port");
    expect_error("redis://h:99999999999999999999", "bad port");
}

static void url_refuses_bad_db(void **state) {
    (void)state;
    expect_error("redis://h/x", "bad database number \"x\"");
    expect_error("redis://h:6379/-1", "bad database number");
    expect_error("redis://h/1.5", "bad database number");
    expect_error("redis://h/2/3", "bad database number");
    expect_error("redis://h/99999999", "bad database number");
}

static void url_refuses_trailing_garbage(void **state) {
    (void)state;
    expect_error("redis://[::1]x", "unexpected \"x\"");
    expect_error("redis://[::1]:6379x", "bad port");
    expect_error("redis://h:6379/0 junk", "bad database number");
    /* A query is no part of a redis:// URL; it must not become part of the host name. */
    expect_error("redis://localhost?db=2", "unexpected \"?db=2\"");
    expect_error("redis://localhost:6379?db=2", "unexpected \"?db=2\"");
    expect_error("redis://h#frag", "unexpected \"#frag\"");
}

static void url_refuses_missing_host(void **state) {
    (void)state;
    expect_error("redis://", "missing host");
    expect_error("redis://:6379", "missing host");
    expect_error("redis://u:p@/0", "missing host");
}

/* ---- TLS --------------------------------------------------------------------------------------
 */

static void url_reads_tls_forms_and_parameters(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("rediss://cache.internal:6380/2");
    assert_int_equal(c.tls, 1);
    assert_int_equal(c.mode, DRV_REDIS_SINGLE);
    assert_string_equal(c.host, "cache.internal");
    assert_int_equal(c.port, 6380);
    assert_int_equal(c.db, 2);
    assert_int_equal(c.tls_insecure, 0);
    assert_string_equal(c.tls_ca, "");
    assert_string_equal(c.tls_cert, "");
    assert_string_equal(c.tls_key, "");
    assert_int_equal(parse_ok("redis://h").tls, 0);
    c = parse_ok("rediss://u:pw@h/1?ca=/etc/ca.pem&cert=/c.pem&key=/k.pem");
    assert_string_equal(c.user, "u");
    assert_string_equal(c.password, "pw");
    assert_int_equal(c.db, 1);
    assert_string_equal(c.tls_ca, "/etc/ca.pem");
    assert_string_equal(c.tls_cert, "/c.pem");
    assert_string_equal(c.tls_key, "/k.pem");
    /* The key defaults to the certificate's file (one PEM holding both). */
    c = parse_ok("rediss://h?cert=/both.pem");
    assert_string_equal(c.tls_key, "/both.pem");
    assert_int_equal(parse_ok("rediss://h?insecure=1").tls_insecure, 1);
    assert_int_equal(parse_ok("rediss://h?insecure=0").tls_insecure, 0);
    /* Values are percent-decoded; an '@' after the '?' is no part of the userinfo. */
    c = parse_ok("rediss://:p@ss@h:7000?ca=/tmp/a%26b@c.pem");
    assert_string_equal(c.password, "p@ss");
    assert_string_equal(c.host, "h");
    assert_int_equal(c.port, 7000);
    assert_string_equal(c.tls_ca, "/tmp/a&b@c.pem");
    c = parse_ok("rediss://[::1]:6390?insecure=1");
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 6390);
    c = parse_ok("rediss+cluster://h1:7000,h2:7001?ca=/ca.pem");
    assert_int_equal(c.mode, DRV_REDIS_CLUSTER);
    assert_int_equal(c.tls, 1);
    assert_int_equal(c.nseeds, 2);
    assert_int_equal(c.seeds[1].port, 7001);
    assert_string_equal(c.tls_ca, "/ca.pem");
    c = parse_ok("rediss+cluster://h1:7000/0?insecure=1");
    assert_int_equal(c.tls_insecure, 1);
    c = parse_ok("rediss+sentinel://s1,s2:26380/mymaster?cert=/c.pem&key=/k.pem");
    assert_int_equal(c.mode, DRV_REDIS_SENTINEL);
    assert_int_equal(c.tls, 1);
    assert_string_equal(c.master, "mymaster");
    assert_int_equal(c.seeds[0].port, 26379);
    assert_string_equal(c.tls_key, "/k.pem");
}

static void url_refuses_bad_tls_parameters(void **state) {
    (void)state;
    expect_error("redis://h?ca=/ca.pem", "TLS parameters need rediss://");
    expect_error("redis+cluster://h?insecure=1", "TLS parameters need rediss://");
    expect_error("rediss://h?foo=1", "unknown parameter \"foo\"");
    expect_error("rediss://h?db=2", "unknown parameter \"db\"");
    expect_error("rediss://h?insecure=yes", "insecure=1 or insecure=0");
    expect_error("rediss://h?insecure=", "insecure=1 or insecure=0");
    expect_error("rediss://h?key=/k.pem", "key= needs cert=");
    expect_error("rediss://h?ca=", "bad ca= path");
    expect_error("rediss://h?ca=%zz", "bad ca= path");
    expect_error("rediss://h?ca", "NAME=VALUE");
    expect_error("rediss://h?ca=/a&&cert=/b", "NAME=VALUE");
    expect_error("rediss+cluster://h/1?ca=/x", "only database 0");
    expect_error("rediss+sentinel://s1?ca=/x", "needs the master's name");
    expect_error("rediss://h/x?ca=/x", "bad database number \"x\"");
    expect_error("rediss://?ca=/x", "missing host");
}

static void url_password_span_stops_at_the_parameters(void **state) {
    (void)state;
    size_t off, len;
    const char *url = "rediss://:pw@h?ca=/a@b.pem";
    assert_int_equal(drv_url_password_span(url, &off, &len), 1);
    assert_int_equal(off, 10);
    assert_int_equal(len, 2);
    assert_int_equal(drv_url_password_span("rediss://h?ca=/a@b.pem", &off, &len), 0);
}

/* ---- describe ---------------------------------------------------------------------------------
 */

static void url_describe_shows_address_without_password(void **state) {
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"redis://h", "redis://h:6379/0"},
        {"redis://alice:topsecret@h:7000/2", "redis://alice@h:7000/2"},
        {"redis://topsecret@h", "redis://h:6379/0"},
        {"redis://:topsecret@[::1]:6380/1", "redis://[::1]:6380/1"},
        {"unix://bob:topsecret@/tmp/r.sock?db=3", "unix://bob@/tmp/r.sock?db=3"},
        {"unix:///tmp/r.sock", "unix:///tmp/r.sock?db=0"},
        {"rediss://alice:topsecret@h:7000/2?ca=/ca.pem&insecure=1", "rediss://alice@h:7000/2"},
        {"rediss+cluster://:topsecret@h1:1,h2:2?ca=/ca.pem", "rediss+cluster://h1:1,h2:2"},
        {"rediss+sentinel://s1/m?insecure=1", "rediss+sentinel://s1:26379/m"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        drv_redis_cfg c = parse_ok(cases[i].url);
        char buf[600];
        drv_url_describe(&c, buf, sizeof buf);
        assert_string_equal(buf, cases[i].want);
        assert_null(strstr(buf, "topsecret"));
    }
}

static void url_describe_output_parses_back_to_the_same_address(void **state) {
    (void)state;
    const char *urls[] = {"redis://u:pw@example.org:6390/7", "redis://[2001:db8::5]:1/0",
                          "unix:///tmp/x.sock?db=9"};
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        drv_redis_cfg a = parse_ok(urls[i]), b;
        char buf[600];
        drv_url_describe(&a, buf, sizeof buf);
        b = parse_ok(buf);
        assert_string_equal(a.host, b.host);
        assert_string_equal(a.path, b.path);
        assert_int_equal(a.port, b.port);
        assert_int_equal(a.db, b.db);
    }
}

static void url_describe_truncates_to_the_buffer(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis://a-rather-long-host-name.example.org:6379/0");
    char buf[12];
    memset(buf, 'X', sizeof buf);
    drv_url_describe(&c, buf, sizeof buf);
    assert_int_equal(strlen(buf), sizeof buf - 1);
    assert_memory_equal(buf, "redis://a-r", sizeof buf);
}

/* ---- cluster and sentinel ------------------------------------------------------------------ */

static void url_reads_cluster_seeds(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis+cluster://alice:topsecret@n1:7000,[::1]:7001,n3");
    assert_int_equal(c.mode, DRV_REDIS_CLUSTER);
    assert_int_equal(c.nseeds, 3);
    assert_string_equal(c.seeds[0].host, "n1");
    assert_int_equal(c.seeds[0].port, 7000);
    assert_string_equal(c.seeds[1].host, "::1");
    assert_int_equal(c.seeds[1].port, 7001);
    assert_string_equal(c.seeds[2].host, "n3");
    assert_int_equal(c.seeds[2].port, 6379);
    assert_string_equal(c.host, "n1");
    assert_int_equal(c.port, 7000);
    assert_string_equal(c.user, "alice");
    assert_string_equal(c.password, "topsecret");
    assert_int_equal(c.db, 0);
    c = parse_ok("redis+cluster://127.0.0.1:7000/0");
    assert_int_equal(c.nseeds, 1);
    assert_int_equal(parse_ok("redis://h").mode, DRV_REDIS_SINGLE);
    assert_int_equal(parse_ok("redis://h").nseeds, 0);
}

static void url_reads_sentinels_and_master_name(void **state) {
    (void)state;
    drv_redis_cfg c = parse_ok("redis+sentinel://:pw@s1,s2:26380/mymaster");
    assert_int_equal(c.mode, DRV_REDIS_SENTINEL);
    assert_int_equal(c.nseeds, 2);
    assert_string_equal(c.seeds[0].host, "s1");
    assert_int_equal(c.seeds[0].port, 26379);
    assert_string_equal(c.seeds[1].host, "s2");
    assert_int_equal(c.seeds[1].port, 26380);
    assert_string_equal(c.master, "mymaster");
    assert_string_equal(c.password, "pw");
}

static void url_refuses_bad_cluster_and_sentinel_urls(void **state) {
    (void)state;
    expect_error("redis+cluster://", "missing host");
    expect_error("redis+cluster://a:1,,b:2", "missing host");
    expect_error("redis+cluster://a:1,", "missing host after ','");
    expect_error("redis+cluster://a:99999", "bad port");
    expect_error("redis+cluster://a:1/3", "only database 0");
    expect_error("redis+cluster://[::1:7000", "unterminated");
    expect_error("redis+cluster://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "more than 16");
    expect_error("redis+sentinel://s1:26379", "needs the master's name");
    expect_error("redis+sentinel://s1:26379/", "needs the master's name");
    expect_error("redis+sentinel://s1/a?b", "unexpected \"?b\"");
    expect_error("redis+sentinel://s1/a b", "bad master name");
    expect_error("redis+sentinels://s1/m", "expected redis://");
}

static void url_describe_cluster_and_sentinel_without_password(void **state) {
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"redis+cluster://alice:topsecret@n1:7000,[::1]:7001",
         "redis+cluster://alice@n1:7000,[::1]:7001"},
        {"redis+cluster://topsecret@n1", "redis+cluster://n1:6379"},
        {"redis+sentinel://:topsecret@s1,s2:26380/mymaster",
         "redis+sentinel://s1:26379,s2:26380/mymaster"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        drv_redis_cfg c = parse_ok(cases[i].url);
        char buf[600];
        drv_url_describe(&c, buf, sizeof buf);
        assert_string_equal(buf, cases[i].want);
        assert_null(strstr(buf, "topsecret"));
        /* The description parses back to the same nodes. */
        drv_redis_cfg b = parse_ok(buf);
        assert_int_equal(b.mode, c.mode);
        assert_int_equal(b.nseeds, c.nseeds);
        for (int k = 0; k < c.nseeds; k++) {
            assert_string_equal(b.seeds[k].host, c.seeds[k].host);
            assert_int_equal(b.seeds[k].port, c.seeds[k].port);
        }
        assert_string_equal(b.master, c.master);
    }
    char small[20];
    drv_redis_cfg c = parse_ok("redis+cluster://a-long-host:7000,b-long-host:7001");
    drv_url_describe(&c, small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_host_alone_gets_default_port_db_and_timeouts),
        cmocka_unit_test(url_reads_host_port_and_db),
        cmocka_unit_test(url_reads_user_and_password),
        cmocka_unit_test(url_userinfo_without_colon_is_a_password),
        cmocka_unit_test(url_percent_decodes_user_and_password),
        cmocka_unit_test(url_refuses_bad_percent_escapes),
        cmocka_unit_test(url_refuses_overlong_credentials),
        cmocka_unit_test(url_reads_bracketed_ipv6_host),
        cmocka_unit_test(url_reads_unix_socket_path_and_db),
        cmocka_unit_test(url_refuses_relative_unix_path),
        cmocka_unit_test(url_refuses_bad_unix_query),
        cmocka_unit_test(url_refuses_bad_scheme),
        cmocka_unit_test(url_refuses_bad_ports),
        cmocka_unit_test(url_refuses_bad_db),
        cmocka_unit_test(url_refuses_trailing_garbage),
        cmocka_unit_test(url_refuses_missing_host),
        cmocka_unit_test(url_reads_tls_forms_and_parameters),
        cmocka_unit_test(url_refuses_bad_tls_parameters),
        cmocka_unit_test(url_password_span_stops_at_the_parameters),
        cmocka_unit_test(url_describe_shows_address_without_password),
        cmocka_unit_test(url_describe_output_parses_back_to_the_same_address),
        cmocka_unit_test(url_describe_truncates_to_the_buffer),
        cmocka_unit_test(url_reads_cluster_seeds),
        cmocka_unit_test(url_reads_sentinels_and_master_name),
        cmocka_unit_test(url_refuses_bad_cluster_and_sentinel_urls),
        cmocka_unit_test(url_describe_cluster_and_sentinel_without_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
