#ifndef DRV_KEYS_H
#define DRV_KEYS_H

#include "drv_shared.h" /* generated from common/shared.def: DRV_PART_NKEYS, DRV_K_*, ... */

#include <stddef.h>

/* Every Redis key drover uses is spelled in keys.c, and only there. The layout (README.md,
 * "Key layout"):
 *
 *   PREFIXjobs                ZSET  job id -> creation time (ms)
 *   PREFIX{workers}           ZSET  worker id -> last heartbeat (ms, Redis time)
 *   PREFIX{workers}:ID        HASH  what worker ID reported in its last heartbeat
 *   PREFIX{JOB}:job           HASH  spec, state, partitions, total, timestamps, rate
 *   PREFIX{JOB}:lock          STRING coordinator id holding the job (with a TTL)
 *   PREFIX{JOB}:limits        HASH  fleet-wide rate bucket, in-flight cap and per-worker counts
 *   PREFIX{JOB.P}:NAME        the partition keys, NAME one of drv_part_key_names
 *
 * A partition's keys share the hash tag {JOB.P}, so every script runs on one slot. Job ids
 * are letters, digits, '_' and '-' (at most 64) and can never break a hash tag. */

#define DRV_JOB_ID_MAX 64
#define DRV_KEY_MAX    192

/* The partition keys in the order every partition script takes them (DRV_PART_KEY_NAMES of
 * common/shared.def; the scripts' K_* come from the same list). */
extern const char *const drv_part_key_names[DRV_PART_NKEYS];

typedef struct drv_part_keys {
    char key[DRV_PART_NKEYS][DRV_KEY_MAX];
    const char *ptr[DRV_PART_NKEYS];
    size_t len[DRV_PART_NKEYS];
} drv_part_keys;

/* 1 if 'id' is a valid job id. */
int drv_job_id_valid(const char *id);
void drv_keys_part(drv_part_keys *k, const char *prefix, const char *job, int part);
/* "PREFIX{JOB}:NAME" for NAME in job, lock, limits. Returns the length. */
size_t drv_key_job(char *buf, size_t len, const char *prefix, const char *job, const char *name);
/* "PREFIXNAME" for NAME in jobs, {workers}, {workers}:ID. Returns the length. */
size_t drv_key_global(char *buf, size_t len, const char *prefix, const char *name);

#endif
