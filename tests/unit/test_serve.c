/* Serve mode (worker/serve.c) driven through its API against real handler processes
 * (tests/support/serve_handler.py under Debian's /usr/bin/python3): the protocol, answers out
 * of order, inflight K, crashes, bad lines, timeouts, recycling, drain, a process that never
 * reads its stdin, huge items and a handler that talks before its first item. The pump polls
 * with a deadline; nothing waits on a sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PY "/usr/bin/python3"

/* ---- the harness ------------------------------------------------------------------------------
 */

#define MAXRES 64

typedef struct result {
    int got;
    drv_outcome out;
} result;

typedef struct harness {
    serve_pool *pool;
    int64_t keep;       /* each item's: bytes of its "result" kept */
    result res[MAXRES]; /* by tag: tags are (void *)(intptr_t)(index + 1) */
    int ngot;
} harness;

static void open_pool(harness *h, const char *mode, const char *arg, int procs, int inflight,
                      int64_t max_items, int64_t timeout_ms, int64_t keep) {
    memset(h, 0, sizeof *h);
    char *argv[] = {PY, SERVE_HANDLER, (char *)mode, (char *)arg, NULL};
    serve_cfg cfg = {argv, arg ? 4 : 3, procs, inflight, max_items, timeout_ms, NULL};
    h->keep = keep;
    char why[512] = "";
    if (serve_pool_new(&cfg, "test-worker", &h->pool, why, sizeof why) != 0)
        fail_msg("serve_pool_new: %s", why);
}

static void reap(harness *h) {
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) return;
        serve_child_exited(h->pool, pid, st);
    }
}

static void collect(harness *h) {
    void *tag;
    drv_outcome o;
    while (serve_take_done(h->pool, &tag, &o)) {
        int i = (int)(intptr_t)tag - 1;
        assert_true(i >= 0 && i < MAXRES);
        if (h->res[i].got) fail_msg("item %d finished twice", i);
        h->res[i].got = 1;
        h->res[i].out = o;
        h->ngot++;
    }
}

/* One round: poll the pool's pipes (at most 50 ms or its deadline), service, reap, collect. */
static void pump_once(harness *h) {
    struct pollfd fds[64];
    int n = serve_pollfds(h->pool, fds, 64);
    int64_t now = drv_now_ms();
    int64_t d = serve_next_deadline(h->pool, now);
    int wait = d < 0 || d > 50 ? 50 : (int)d;
    int r = poll(fds, (nfds_t)n, wait);
    if (r < 0 && errno != EINTR) fail_msg("poll: %s", strerror(errno));
    if (r <= 0)
        for (int i = 0; i < n; i++)
            fds[i].revents = 0;
    serve_service(h->pool, fds, n, drv_now_ms());
    reap(h);
    collect(h);
}

typedef int (*cond_fn)(harness *h, intptr_t arg);

static void pump_until(harness *h, cond_fn c, intptr_t arg, int64_t ms, const char *what) {
    int64_t end = drv_now_ms() + ms;
    while (!c(h, arg)) {
        if (drv_now_ms() > end) fail_msg("timed out waiting for %s", what);
        pump_once(h);
    }
}

static int got_n(harness *h, intptr_t n) {
    return h->ngot >= n;
}
static int has_capacity(harness *h, intptr_t n) {
    return serve_capacity(h->pool) >= n;
}
static int spawned_n(harness *h, intptr_t n) {
    return serve_spawned(h->pool) >= n;
}
static int all_down(harness *h, intptr_t unused) {
    (void)unused;
    return serve_running(h->pool) == 0 && serve_inflight(h->pool) == 0;
}

static void start_item(harness *h, int tag, const char *id, const char *payload) {
    drv_lease l = {(char *)id, strlen(id), (char *)payload, payload ? strlen(payload) : 0, 1, 7};
    drv_outcome o;
    if (serve_start(h->pool, "job1", &l, 1, NULL, h->keep, (void *)(intptr_t)(tag + 1), &o) != 0)
        fail_msg("serve_start %s: %s", id, o.error);
}

/* Starts an item once the pool has room. */
static void start_when_free(harness *h, int tag, const char *id) {
    pump_until(h, has_capacity, 1, 10000, "a free process");
    start_item(h, tag, id, NULL);
}

static void close_pool(harness *h) {
    serve_kill_all(h->pool);
    pump_until(h, all_down, 0, 10000, "every process down");
    collect(h);
    for (int i = 0; i < MAXRES; i++)
        free(h->res[i].out.response);
    serve_free(h->pool);
    reap(h);
}

static void expect_error(const result *r, const char *needle) {
    if (!r->got) fail_msg("no outcome (wanted an error with \"%s\")", needle);
    if (r->out.ok) fail_msg("ok (wanted an error with \"%s\")", needle);
    if (!strstr(r->out.error, needle)) fail_msg("error %s lacks \"%s\"", r->out.error, needle);
}

/* The pid in an ok result {"pid", "len", "attempt"} (keep_response needed). */
static long result_field(const result *r, const char *field) {
    if (!r->got || !r->out.ok || !r->out.response) fail_msg("no ok result with a response");
    cJSON *j = cJSON_ParseWithLength(r->out.response, r->out.resplen);
    assert_non_null(j);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);
    assert_true(cJSON_IsNumber(v));
    long x = (long)v->valuedouble;
    cJSON_Delete(j);
    return x;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_ok_and_errors(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "script", NULL, 2, 2, 0, 0, 4096);
    start_item(&h, 0, "a1", NULL);
    start_item(&h, 1, "fail1", NULL);
    start_item(&h, 2, "later1", NULL);
    start_item(&h, 3, "b2", "{\"name\":\"x\",\"n\":[1,2]}");
    assert_int_equal(serve_capacity(h.pool), 0);
    pump_until(&h, got_n, 4, 10000, "four answers");
    assert_true(h.res[0].out.ok);
    assert_int_equal(result_field(&h.res[0], "len"), 0); /* no "item" for an id-only item */
    assert_int_equal(result_field(&h.res[0], "attempt"), 1);
    assert_int_equal(result_field(&h.res[0], "token"), 7);    /* lease_token */
    assert_int_equal(result_field(&h.res[0], "deadline"), 0); /* no timeout, no deadline_ms */
    expect_error(&h.res[1], "no such row");
    assert_true(h.res[1].out.permanent);
    expect_error(&h.res[2], "rate limited");
    assert_false(h.res[2].out.permanent);
    assert_int_equal(h.res[2].out.retry_after_ms, 1500);
    /* The payload went as JSON, not as a string: its re-serialised length. */
    assert_int_equal(result_field(&h.res[3], "len"), strlen("{\"name\": \"x\", \"n\": [1, 2]}"));
    assert_int_equal(serve_inflight(h.pool), 0);
    assert_int_equal(serve_capacity(h.pool), 4);
    close_pool(&h);
}

static int order_seen[8];
static void test_out_of_order_inflight(void **state) {
    (void)state;
    harness h;
    /* One process holding four items; it answers only once it has all four, newest first. */
    open_pool(&h, "reverse", "4", 1, 4, 0, 0, 0);
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%d", i);
        start_item(&h, i, id, NULL);
    }
    assert_int_equal(serve_capacity(h.pool), 0);
    assert_int_equal(serve_inflight(h.pool), 4);
    int seen = 0;
    int64_t end = drv_now_ms() + 10000;
    while (seen < 4) {
        if (drv_now_ms() > end) fail_msg("no answers");
        struct pollfd fds[8];
        int n = serve_pollfds(h.pool, fds, 8);
        if (poll(fds, (nfds_t)n, 50) <= 0)
            for (int i = 0; i < n; i++)
                fds[i].revents = 0;
        serve_service(h.pool, fds, n, drv_now_ms());
        void *tag;
        drv_outcome o;
        while (serve_take_done(h.pool, &tag, &o)) {
            assert_true(o.ok);
            order_seen[seen++] = (int)(intptr_t)tag - 1;
        }
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(order_seen[i], 3 - i);
    assert_int_equal(serve_capacity(h.pool), 4);
    close_pool(&h);
}

static void test_crash_mid_item(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "script", NULL, 1, 2, 0, 0, 4096);
    start_item(&h, 0, "ok1", NULL);
    start_item(&h, 1, "crash2", NULL);
    pump_until(&h, got_n, 2, 10000, "both outcomes");
    assert_true(h.res[0].out.ok);
    expect_error(&h.res[1], "exited with status 3");
    expect_error(&h.res[1], "dying on crash2"); /* the stderr tail */
    assert_false(h.res[1].out.permanent);
    assert_false(h.res[1].out.retryable_local); /* it saw the item: an attempt */
    /* Restarted (after a short backoff), and it works. */
    start_when_free(&h, 2, "ok3");
    pump_until(&h, got_n, 3, 10000, "the next item");
    assert_true(h.res[2].out.ok);
    assert_int_equal(serve_spawned(h.pool), 2);
    close_pool(&h);
}

static void test_bad_line(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "script", NULL, 1, 1, 0, 0, 0);
    start_item(&h, 0, "bad1", NULL);
    pump_until(&h, got_n, 1, 10000, "the bad line's outcome");
    expect_error(&h.res[0], "not protocol");
    expect_error(&h.res[0], "garbage instead of an answer"); /* names the line */
    start_when_free(&h, 1, "ok2");
    pump_until(&h, got_n, 2, 10000, "the next item");
    assert_true(h.res[1].out.ok);
    assert_int_equal(serve_spawned(h.pool), 2);
    close_pool(&h);
}

static void test_timeout(void **state) {
    (void)state;
    harness h;
    /* The timeout also bounds the next item, which a freshly restarted interpreter answers:
     * 5 s is far more than a Python start takes even under ASan on a loaded machine. */
    open_pool(&h, "script", NULL, 1, 1, 0, 5000, 4096);
    int64_t t0 = drv_now_ms();
    start_item(&h, 0, "hang1", NULL);
    pump_until(&h, got_n, 1, 20000, "the timeout");
    assert_true(drv_now_ms() - t0 >= 5000);
    expect_error(&h.res[0], "timed out after 5.0 s");
    start_when_free(&h, 1, "ok2");
    pump_until(&h, got_n, 2, 10000, "the next item");
    assert_true(h.res[1].out.ok);
    assert_int_equal(result_field(&h.res[1], "deadline"), 1); /* deadline_ms was sent */
    assert_int_equal(serve_spawned(h.pool), 2);
    close_pool(&h);
}

static void test_recycle(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "script", NULL, 1, 1, 3, 0, 4096);
    for (int i = 0; i < 7; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        start_when_free(&h, i, id);
        pump_until(&h, got_n, i + 1, 10000, "an answer");
        assert_true(h.res[i].out.ok);
    }
    long pid[7];
    for (int i = 0; i < 7; i++)
        pid[i] = result_field(&h.res[i], "pid");
    assert_true(pid[0] == pid[1] && pid[1] == pid[2]);
    assert_true(pid[3] == pid[4] && pid[4] == pid[5] && pid[3] != pid[0]);
    assert_true(pid[6] != pid[3] && pid[6] != pid[0]);
    assert_int_equal(serve_spawned(h.pool), 3);
    close_pool(&h);
}

static void test_drain_with_items_in_flight(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "script", NULL, 2, 1, 0, 0, 0);
    start_item(&h, 0, "slow1", NULL);
    start_item(&h, 1, "slow2", NULL);
    serve_drain(h.pool);
    assert_int_equal(serve_capacity(h.pool), 0);
    drv_lease l = {"x", 1, NULL, 0, 1, 1};
    drv_outcome o;
    assert_int_equal(serve_start(h.pool, "job1", &l, 1, NULL, 0, NULL, &o), -1);
    assert_true(o.retryable_local);
    /* Answers are still collected; then stdin closes and the processes exit by themselves. */
    pump_until(&h, all_down, 0, 10000, "the drain");
    assert_true(h.res[0].out.ok && h.res[1].out.ok);
    assert_int_equal(serve_spawned(h.pool), 2);
    serve_free(h.pool);
}

static void test_kill_all_hands_back(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "script", NULL, 1, 2, 0, 0, 0);
    start_item(&h, 0, "hang1", NULL);
    start_item(&h, 1, "hang2", NULL);
    serve_kill_all(h.pool); /* the grace is over */
    pump_until(&h, all_down, 0, 10000, "the kill");
    for (int i = 0; i < 2; i++) {
        expect_error(&h.res[i], "the worker is stopping");
        assert_true(h.res[i].out.retryable_local); /* handed back, no attempt spent */
    }
    assert_int_equal(serve_spawned(h.pool), 1); /* and nothing restarted */
    serve_free(h.pool);
}

static void test_never_reads_stdin(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "noread", NULL, 1, 8, 0, 500, 0);
    size_t big = 1 << 20;
    char *item = malloc(big + 3);
    memset(item, 'x', big + 2);
    item[0] = item[big + 1] = '"';
    item[big + 2] = '\0';
    int64_t t0 = drv_now_ms();
    int n = 0;
    while (serve_capacity(h.pool) > 0) {
        char id[16];
        snprintf(id, sizeof id, "n%d", n);
        start_item(&h, n++, id, item);
    }
    /* The pipe is full and the rest is buffered: it stops taking items before its 8 slots,
     * and serve_start never blocked. */
    assert_true(n >= 1 && n < 8);
    assert_true(drv_now_ms() - t0 < 2000);
    pump_until(&h, got_n, n, 10000, "the timeouts");
    for (int i = 0; i < n; i++)
        assert_false(h.res[i].out.ok);
    expect_error(&h.res[0], "timed out");
    pump_until(&h, spawned_n, 2, 10000, "a restart");
    free(item);
    close_pool(&h);
}

static void test_huge_items(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "echo", NULL, 1, 3, 0, 0, DRV_KEEP_RESPONSE_MAX);
    size_t big = 1000000;
    char *item = malloc(big + 3);
    memset(item, 'y', big + 2);
    item[0] = item[big + 1] = '"';
    item[big + 2] = '\0';
    start_item(&h, 0, "h1", item);
    start_item(&h, 1, "h2", "not json: sent as a string");
    start_item(&h, 2, "h3", "{\"a\":1} junk");
    pump_until(&h, got_n, 3, 20000, "the echoes");
    assert_true(h.res[0].out.ok);
    assert_int_equal(h.res[0].out.resplen, big); /* a string result is kept as its text */
    assert_memory_equal(h.res[0].out.response, item + 1, big);
    assert_true(h.res[1].out.ok);
    assert_int_equal(h.res[1].out.resplen, strlen("not json: sent as a string"));
    assert_int_equal(h.res[2].out.resplen, strlen("{\"a\":1} junk")); /* a string, not JSON */
    free(item);
    close_pool(&h);
}

/* Each item keeps its own job's bytes of "result" (keep_results): 0 keeps nothing, N cuts
 * the JSON text (or a string's text) to N bytes, whatever the pool's other items keep. */
static void test_keep_per_item(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "echo", NULL, 1, 4, 0, 0, 0);
    const char *obj = "{\"a\": [1, 2, 3]}";
    start_item(&h, 0, "k0", obj); /* keep 0 */
    h.keep = 5;
    start_item(&h, 1, "k1", obj);
    start_item(&h, 2, "k2", "\"hello world\"");
    h.keep = 1000;
    start_item(&h, 3, "k3", obj);
    pump_until(&h, got_n, 4, 10000, "four answers");
    for (int i = 0; i < 4; i++)
        assert_true(h.res[i].out.ok);
    assert_null(h.res[0].out.response);
    assert_int_equal(h.res[0].out.resplen, 0);
    assert_int_equal(h.res[1].out.resplen, 5);
    assert_memory_equal(h.res[1].out.response, "{\"a\":", 5); /* JSON text, cut */
    assert_int_equal(h.res[2].out.resplen, 5);
    assert_memory_equal(h.res[2].out.response, "hello", 5); /* a string: its text */
    assert_int_equal(h.res[3].out.resplen, strlen("{\"a\":[1,2,3]}"));
    assert_memory_equal(h.res[3].out.response, "{\"a\":[1,2,3]}", strlen("{\"a\":[1,2,3]}"));
    close_pool(&h);
}

static void test_stdout_before_first_item(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "chatty", NULL, 1, 1, 0, 0, 0);
    /* Handed over before the pool read anything: the greeting then kills the process. */
    start_item(&h, 0, "c1", NULL);
    pump_until(&h, got_n, 1, 10000, "the outcome");
    expect_error(&h.res[0], "not protocol");
    expect_error(&h.res[0], "hello");
    /* Every restart says hello again: it keeps being replaced, with backoff. */
    pump_until(&h, spawned_n, 3, 10000, "restarts");
    close_pool(&h);
}

static void test_stdout_closed(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "closeout", NULL, 1, 1, 0, 0, 0);
    start_item(&h, 0, "x1", NULL);
    pump_until(&h, got_n, 1, 10000, "the outcome");
    expect_error(&h.res[0], "closed its stdout");
    pump_until(&h, spawned_n, 2, 10000, "a restart");
    close_pool(&h);
}

static void test_free_gives_eof(void **state) {
    (void)state;
    char log[] = "/tmp/drover-serve-test-XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    close(fd);
    setenv("SERVE_LOG", log, 1); /* before the pool: its processes get the environment then */
    harness h;
    open_pool(&h, "sleep", "0", 1, 1, 0, 0, 0);
    start_item(&h, 0, "e1", NULL);
    pump_until(&h, got_n, 1, 10000, "the answer");
    assert_true(h.res[0].out.ok);
    pid_t pid = serve_pid(h.pool, 0);
    assert_true(pid > 0);
    serve_free(h.pool); /* EOF first: the handler ends by itself, and is reaped */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char buf[256] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(log);
    unsetenv("SERVE_LOG");
    if (!strstr(buf, "started e1\nEOF\n")) fail_msg("the handler's log: %s", buf);
}

static void test_noisy_stderr(void **state) {
    (void)state;
    harness h;
    /* More stderr than a pipe holds: read as it comes (and logged, rate-limited), never
     * blocking the handler. */
    open_pool(&h, "noisy", NULL, 1, 1, 0, 0, 0);
    start_item(&h, 0, "n1", NULL);
    pump_until(&h, got_n, 1, 20000, "the answer after the noise");
    assert_true(h.res[0].out.ok);
    close_pool(&h);
}

/* An id or payload that is not UTF-8 would kill a text-mode handler (and every item its
 * process holds): refused before it reaches a process, as a permanent failure; valid
 * multi-byte UTF-8 goes through to the same process. */
static void test_invalid_utf8_refused(void **state) {
    (void)state;
    harness h;
    open_pool(&h, "script", NULL, 1, 1, 0, 0, 0);
    const char *bad[][2] = {
        {"bad\xff", NULL},          {"ok", "x\xc3"},        /* stray byte, cut sequence */
        {"\xc0\xaf", NULL},         {"\xed\xa0\x80", NULL}, /* overlong, surrogate */
        {"\xf4\x90\x80\x80", NULL}, {"ok", "{\"a\":\"\xe2\x82\"}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        drv_lease l = {(char *)bad[i][0],
                       strlen(bad[i][0]),
                       (char *)bad[i][1],
                       bad[i][1] ? strlen(bad[i][1]) : 0,
                       1,
                       7};
        drv_outcome o;
        assert_int_equal(serve_start(h.pool, "job1", &l, 1, NULL, 0, NULL, &o), -1);
        assert_true(o.permanent);
        assert_false(o.retryable_local);
        assert_non_null(strstr(o.error, "not valid UTF-8"));
    }
    assert_int_equal(serve_inflight(h.pool), 0);
    start_item(&h, 0, "caf\xc3\xa9-\xf0\x9f\x98\x80", "{\"name\":\"\xe2\x82\xac\"}");
    pump_until(&h, got_n, 1, 10000, "the UTF-8 item's answer");
    assert_true(h.res[0].out.ok);
    assert_int_equal(serve_spawned(h.pool), 1); /* never restarted */
    close_pool(&h);
}

static void test_bad_command(void **state) {
    (void)state;
    char *argv[] = {"/nonexistent/handler", NULL};
    serve_cfg cfg = {argv, 1, 2, 1, 0, 0, NULL};
    serve_pool *p = NULL;
    char why[512] = "";
    assert_int_equal(serve_pool_new(&cfg, "w", &p, why, sizeof why), -1);
    assert_null(p);
    assert_non_null(strstr(why, "/nonexistent/handler"));
    char *argv2[] = {"no-such-command-drover", NULL};
    cfg.argv = argv2;
    assert_int_equal(serve_pool_new(&cfg, "w", &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "not found"));
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as the worker does */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_and_errors),
        cmocka_unit_test(test_invalid_utf8_refused),
        cmocka_unit_test(test_out_of_order_inflight),
        cmocka_unit_test(test_crash_mid_item),
        cmocka_unit_test(test_bad_line),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_recycle),
        cmocka_unit_test(test_drain_with_items_in_flight),
        cmocka_unit_test(test_kill_all_hands_back),
        cmocka_unit_test(test_never_reads_stdin),
        cmocka_unit_test(test_huge_items),
        cmocka_unit_test(test_keep_per_item),
        cmocka_unit_test(test_stdout_before_first_item),
        cmocka_unit_test(test_stdout_closed),
        cmocka_unit_test(test_free_gives_eof),
        cmocka_unit_test(test_noisy_stderr),
        cmocka_unit_test(test_bad_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
