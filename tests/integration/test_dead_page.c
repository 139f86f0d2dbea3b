/* drover web's pages of dead items (drv_queue_dead_page): every dead item of every partition
 * comes across the pages (at least once, as HSCAN promises), and the last page says it is the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts_support.h"

static int seen[3][300];
static int count;

static void mark(const char *id, size_t idlen, const char *err, size_t errlen, void *ud) {
    (void)err, (void)errlen, (void)ud;
    int p, i;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)idlen, id);
    assert_int_equal(sscanf(buf, "p%d-%d", &p, &i), 2);
    seen[p][i]++;
    count++;
}

static void pages_cover_every_dead_item_once(void **state) {
    (void)state;
    jobopt o = defaults();
    o.parts = 3;
    create_job("dp", &o);
    int per[3] = {0, 250, 7}; /* an empty partition, a large (hashtable) one, a small one */
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < per[p]; i++)
            rint_("HSET drover:{dp.%d}:dead p%d-%d {\"error\":\"x\"}", p, p, i);
    memset(seen, 0, sizeof seen);
    count = 0;
    int p = 0, pages = 0;
    char cursor[32] = "0";
    while (p < 3) {
        int before = count;
        assert_int_equal(drv_queue_dead_page(q, "dp", 3, 40, &p, cursor, mark, NULL), DRV_OK);
        assert_true(count > before || p == 3);
        assert_true(++pages < 100);
    }
    assert_true(pages >= 2); /* paged (COUNT is a hint: how many a page holds is Redis's call) */
    for (int pp = 0; pp < 3; pp++)
        for (int i = 0; i < per[pp]; i++)
            assert_true(seen[pp][i] >= 1); /* HSCAN: at least once */
    assert_true(count >= 257);
}

#define T(name) cmocka_unit_test_setup(name, flush)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(pages_cover_every_dead_item_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
