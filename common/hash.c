/* The id -> partition hash (see hash.h). */
#include "hash.h"

uint64_t drv_fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

int drv_partition_of(const char *s, size_t n, int partitions) {
    return (int)(drv_fnv1a(s, n) % (uint64_t)partitions);
}
