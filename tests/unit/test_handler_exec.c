/* worker/handler_exec.c through the handler interface, against real processes. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "child.h"
#include "clock.h"
#include "handlers.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
    hitem items[] = {{&l1, 1, 0, NULL}, {&l2, 2, 0, NULL}};
    drv_outcome out;
    assert_int_equal(h->ops->start(h, "job", NULL, &items[0], 1, &out), 1);
    assert_int_equal(h->ops->start(h, "job", NULL, &items[1], 1, &out), 1);
    int64_t t0 = drv_now_ms();
    h->ops->free(h);
    assert_true(drv_now_ms() - t0 < 10000);
}

/* The fallback for kernels without CLOSE_RANGE_CLOEXEC leaves no fd from 3 up inheritable
 * (the Redis socket among them); run in a child, not to change this process's fds. */
static void test_cloexec_fallback(void **state) {
    (void)state;
    int fds[3] = {open("/dev/null", O_RDONLY), open("/dev/null", O_RDONLY), -1};
    assert_true(fds[0] >= 3 && fds[1] >= 3);
    fds[2] = fcntl(fds[1], F_DUPFD, 200); /* well above the others */
    assert_true(fds[2] >= 200);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        drv_fds_cloexec_scan(3);
        for (int i = 0; i < 3; i++)
            if (!(fcntl(fds[i], F_GETFD) & FD_CLOEXEC)) _exit(1);
        _exit(fcntl(0, F_GETFD) & FD_CLOEXEC ? 2 : 0); /* 0-2 untouched */
    }
    int status = -1;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as the worker does */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_kills_running),
        cmocka_unit_test(test_cloexec_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
