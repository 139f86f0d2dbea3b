/* The hashes Redis keeps the values of (see hash.h). */
#include "hash.h"

#define FNV_PRIME    1099511628211ULL
#define ID_HASH_INIT 1469598103934665603ULL /* not the standard basis: see hash.h */

uint64_t drv_fnv1a_step(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
    return h;
}

uint64_t drv_fnv1a(const char *s, size_t n) {
    return drv_fnv1a_step(ID_HASH_INIT, s, n);
}

int drv_partition_of(const char *s, size_t n, int partitions) {
    return (int)(drv_fnv1a(s, n) % (uint64_t)partitions);
}

uint64_t drv_rec_hash(uint64_t h, const char *rec, size_t len) {
    char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (char)(unsigned char)((uint64_t)len >> (8 * i));
    return drv_fnv1a_step(drv_fnv1a_step(h, rec, len), le, sizeof le);
}
