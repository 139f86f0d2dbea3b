/* The hashes Redis keeps the values of are pinned: a change to the id hash would send the ids
 * of a running job (standard input, HTTP listings) to other partitions than their cursors
 * cover, and a change to the record hash would refuse every file submitted before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hash.h"

#include <string.h>

static uint64_t h(const char *s) {
    return drv_fnv1a(s, strlen(s));
}

static void fnv1a_values_are_those_drover_always_used(void **state) {
    (void)state;
    /* The offset basis is 1469598103934665603 (see hash.h), so "" hashes to it. */
    assert_true(h("") == 0x14650fb0739d0383ULL);
    assert_true(h("a") == 0x44bd8ad473cd9906ULL);
    assert_true(h("foobar") == 0x88fad7c0a8ff07f2ULL);
    assert_true(h("42") == 0x9b199d00c5de8f25ULL);
    assert_true(h("user-1001") == 0xbdf9e51b0930a3e9ULL);
    assert_true(h("\xc3\xa9t\xc3\xa9") == 0x314805cf37f70ed9ULL); /* bytes above 0x7f */
}

static void fnv1a_reads_the_given_length_not_to_a_nul(void **state) {
    (void)state;
    static const char with_nul[] = {'a', '\0', 'b'};
    assert_true(drv_fnv1a(with_nul, 3) == 0xe02908510caa06f0ULL);
    assert_true(drv_fnv1a("abc", 1) == h("a"));
}

static void partition_of_is_the_hash_modulo_the_count(void **state) {
    (void)state;
    assert_int_equal(drv_partition_of("", 0, 7), 3);
    assert_int_equal(drv_partition_of("a", 1, 16), 6);
    assert_int_equal(drv_partition_of("foobar", 6, 1024), 1010);
    assert_int_equal(drv_partition_of("42", 2, 7), 4);
    assert_int_equal(drv_partition_of("user-1001", 9, 16), 9);
    assert_int_equal(drv_partition_of("user-1001", 9, 1), 0);
}

static void rec_hash_values_are_those_of_every_submitted_file(void **state) {
    (void)state;
    assert_true(DRV_REC_HASH_INIT == 0xcbf29ce484222325ULL); /* the standard basis */
    uint64_t a = drv_rec_hash(DRV_REC_HASH_INIT, "a", 1);
    assert_true(a == 0xdedf9f982e43402dULL);
    assert_true(drv_rec_hash(a, "bc", 2) == 0xd3effa61b782f8b8ULL);
    /* The length goes in: "a" then "bc" is not "abc". */
    assert_true(drv_rec_hash(DRV_REC_HASH_INIT, "abc", 3) == 0xe5f49fafdcdf1048ULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fnv1a_values_are_those_drover_always_used),
        cmocka_unit_test(fnv1a_reads_the_given_length_not_to_a_nul),
        cmocka_unit_test(partition_of_is_the_hash_modulo_the_count),
        cmocka_unit_test(rec_hash_values_are_those_of_every_submitted_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
