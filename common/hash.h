#ifndef DRV_HASH_H
#define DRV_HASH_H

/* Which partition an item id lands in, for the sources that are not split by position
 * (standard input and HTTP listings). It must never change: a coordinator restarted with a
 * different function would feed ids into other partitions than their cursors say, so the same
 * id could be fed twice. tests/unit/test_hash.c pins its values. */

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a of s[0..n) as drover has always computed it: stable across hosts, builds and
 * runs. Its offset basis is 1469598103934665603, not the standard 14695981039346656037 (the
 * first copy of this function lost the last digit). That is harmless for spreading ids and is
 * kept on purpose: "fixing" it would move ids of running jobs to other partitions. */
uint64_t drv_fnv1a(const char *s, size_t n);

/* The partition (0..partitions-1) of the id s[0..n): drv_fnv1a modulo 'partitions' (> 0). */
int drv_partition_of(const char *s, size_t n, int partitions);

#endif
