#include "keys.h"

#include <stdio.h>
#include <string.h>

const char *const drv_part_key_names[DRV_PART_NKEYS] = {DRV_PART_KEY_NAMES};

/* drv_queue_feed refuses a chunk over DRV_BATCH_MAX: the feeders' chunk must fit. */
_Static_assert(DRV_FEED_CHUNK <= DRV_BATCH_MAX, "FEED_CHUNK over BATCH_MAX in common/shared.def");

int drv_job_id_valid(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > DRV_JOB_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void drv_keys_part(drv_part_keys *k, const char *prefix, const char *job, int part) {
    for (int i = 0; i < DRV_PART_NKEYS; i++) {
        int n = snprintf(k->key[i], DRV_KEY_MAX, "%s{%s.%d}:%s", prefix, job, part,
                         drv_part_key_names[i]);
        k->ptr[i] = k->key[i];
        k->len[i] = n < 0 ? 0 : (size_t)n < DRV_KEY_MAX ? (size_t)n : DRV_KEY_MAX - 1;
    }
}

size_t drv_key_job(char *buf, size_t len, const char *prefix, const char *job, const char *name) {
    int n = snprintf(buf, len, "%s{%s}:%s", prefix, job, name);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

size_t drv_key_global(char *buf, size_t len, const char *prefix, const char *name) {
    int n = snprintf(buf, len, "%s%s", prefix, name);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

size_t drv_key_jobs(char *buf, size_t len, const char *prefix) {
    return drv_key_global(buf, len, prefix, "jobs");
}

size_t drv_key_workers(char *buf, size_t len, const char *prefix) {
    return drv_key_global(buf, len, prefix, "{workers}");
}

size_t drv_key_worker(char *buf, size_t len, const char *prefix, const char *worker) {
    int n = snprintf(buf, len, "%s{workers}:%.160s", prefix, worker);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

size_t drv_key_done_bucket(char *buf, size_t len, const drv_part_keys *k, long long bucket) {
    /* drv_part_key_names[4] is "done" */
    int n = snprintf(buf, len, "%s:%lld", k->ptr[DRV_K_DONE], bucket);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}
