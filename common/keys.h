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
 *   PREFIX{JOB}:history       LIST  progress samples for drover web's chart, newest first, capped
 *   PREFIX{JOB.P}:NAME        the partition keys, NAME one of drv_part_key_names
 *   PREFIX{JOB.P}:done:B      bucket B of a string-id partition's done record
 *
 * A partition's keys share the hash tag {JOB.P}, so every script runs on one slot. Job ids
 * are letters, digits, '_' and '-' (at most 64) and can never break a hash tag. */

#define DRV_JOB_ID_MAX 64
#define DRV_KEY_MAX    192
/* A worker's hash: the prefix, "{workers}:" and an id of at most 160 bytes. */
#define DRV_WORKER_KEY_MAX (DRV_KEY_MAX + 180)

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
/* "PREFIX{JOB}:NAME" for NAME in job, lock, limits, history. Returns the length. */
size_t drv_key_job(char *buf, size_t len, const char *prefix, const char *job, const char *name);
/* "PREFIXNAME" for NAME in jobs, {workers}, {workers}:ID. Returns the length. */
size_t drv_key_global(char *buf, size_t len, const char *prefix, const char *name);
/* "PREFIXjobs": every job by creation time. Returns the length. */
size_t drv_key_jobs(char *buf, size_t len, const char *prefix);
/* "PREFIX{workers}": the worker registry. Returns the length. */
size_t drv_key_workers(char *buf, size_t len, const char *prefix);
/* "PREFIX{workers}:ID": worker ID's last heartbeat (ID cut at 160 bytes; len at least
 * DRV_WORKER_KEY_MAX). Returns the length. */
size_t drv_key_worker(char *buf, size_t len, const char *prefix, const char *worker);
/* "PREFIX{JOB.P}:done:B": bucket B of partition k's string-id done record (lua/lib/done.lua);
 * len at least DRV_KEY_MAX + 24. Returns the length. */
size_t drv_key_done_bucket(char *buf, size_t len, const drv_part_keys *k, long long bucket);

#endif
