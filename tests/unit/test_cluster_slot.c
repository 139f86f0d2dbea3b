/* Redis Cluster key slots: CRC16 (XMODEM) and the hash tag rules, as Redis documents them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster.h"

#include <string.h>

static int slot(const char *key) {
    return drv_cluster_keyslot(key, strlen(key));
}

static void crc16_known_vectors(void **state) {
    (void)state;
    assert_int_equal(drv_crc16("123456789", 9), 0x31C3);
    assert_int_equal(drv_crc16("", 0), 0);
    /* The slots Redis's CLUSTER KEYSLOT gives. */
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("123456789"), 0x31C3 & 16383);
}

static void hash_tags_follow_the_redis_rules(void **state) {
    (void)state;
    /* Only the part inside the first {...} is hashed. */
    assert_int_equal(slot("{user1000}.following"), slot("user1000"));
    assert_int_equal(slot("{user1000}.followers"), slot("{user1000}.following"));
    /* "{}" is no tag: the whole key is hashed. */
    assert_int_equal(slot("foo{}{bar}"), drv_crc16("foo{}{bar}", 10) & 16383);
    /* The tag is "{bar" (from the first '{' to the first '}' after it). */
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    /* Only the first tag counts. */
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    /* No closing brace: the whole key. */
    assert_int_equal(slot("foo{bar"), drv_crc16("foo{bar", 7) & 16383);
    /* drover's keys: a partition's keys share one slot, partitions differ. */
    assert_int_equal(slot("drover:{job.3}:pending"), slot("drover:{job.3}:state"));
    assert_int_equal(slot("drover:{job.3}:state"), slot("job.3"));
    assert_int_not_equal(slot("drover:{job.3}:state"), slot("drover:{job.4}:state"));
    /* Binary keys: the length, not a NUL, ends the key. */
    assert_int_equal(drv_cluster_keyslot("a\0b", 3), drv_crc16("a\0b", 3) & 16383);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc16_known_vectors),
        cmocka_unit_test(hash_tags_follow_the_redis_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
