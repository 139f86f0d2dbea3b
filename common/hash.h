#ifndef DRV_HASH_H
#define DRV_HASH_H

/* The two hashes whose values Redis keeps, so they must never change (tests/unit/test_hash.c
 * pins them), both 64-bit FNV-1a over one step function:
 *
 *  - drv_partition_of: which partition an item id lands in, for the sources not split by
 *    position (standard input and HTTP listings). A coordinator with another function would
 *    feed ids into other partitions than their cursors say.
 *  - drv_rec_hash: a file partition's fingerprint, taken at submit and checked before feeding
 *    (the job hash's src_hashes). Another function would refuse every file submitted before. */

#include <stddef.h>
#include <stdint.h>

/* One FNV-1a step over s[0..n) from hash value h. */
uint64_t drv_fnv1a_step(uint64_t h, const char *s, size_t n);

/* 64-bit FNV-1a of s[0..n) as drover has always computed ids: from the offset basis
 * 1469598103934665603, not the standard 14695981039346656037 (the first copy of this function
 * lost the last digit). That is harmless for spreading ids and is kept on purpose: "fixing" it
 * would move the ids of running jobs to other partitions. */
uint64_t drv_fnv1a(const char *s, size_t n);

/* The partition (0..partitions-1) of the id s[0..n): drv_fnv1a modulo 'partitions' (> 0). */
int drv_partition_of(const char *s, size_t n, int partitions);

/* The fingerprint of a partition's bytes: FNV-1a 64 over each record (as a reader returns it)
 * followed by its length (8 bytes, little end first), so records that move between lines still
 * change it. Start from DRV_REC_HASH_INIT (the standard offset basis). */
#define DRV_REC_HASH_INIT 14695981039346656037ULL
uint64_t drv_rec_hash(uint64_t h, const char *rec, size_t len);

#endif
