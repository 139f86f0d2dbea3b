/* worker/handler_exec.c through the handler interface, against real processes. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "handlers.h"

#include <signal.h>
#include <string.h>

/* After a fatal break the loop frees the handler with children still running: free kills
 * their groups before it waits, rather than waiting for them to finish (up to --timeout-ms,
 * or forever without one). */
static void test_free_kills_running(void **state) {
    (void)state;
    char *argv[] = {"sleep", "600", NULL};
    exec_cfg cfg = {argv, 2, 0, 0, 0, NULL};
    handler *h = exec_handler_new(&cfg, "w", 2);
    assert_non_null(h);
    drv_lease l1 = {"1", 1, NULL, 0, 1, 7}, l2 = {"2", 1, NULL, 0, 1, 8};
    hitem items[] = {{&l1, 1}, {&l2, 2}};
    drv_outcome out;
    assert_int_equal(h->ops->start(h, "job", NULL, &items[0], 1, &out), 1);
    assert_int_equal(h->ops->start(h, "job", NULL, &items[1], 1, &out), 1);
    int64_t t0 = drv_now_ms();
    h->ops->free(h);
    assert_true(drv_now_ms() - t0 < 10000);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as the worker does */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_kills_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
