#define _GNU_SOURCE /* memmem */
#include "trace.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int hex_ok(const char *s, size_t n) {
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

int trace_parse(const char *tp, size_t len, char trace_id[33], char parent_id[17], char flags[3]) {
    if (len < TRACEPARENT_LEN || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return -1;
    /* Version 00 is exactly 55 characters; a later version may append "-..." fields. */
    if (memcmp(tp, "00", 2) == 0 ? len != TRACEPARENT_LEN
                                 : len > TRACEPARENT_LEN && tp[TRACEPARENT_LEN] != '-')
        return -1;
    if (memcmp(tp, "ff", 2) == 0 || !(hex_ok(tp, 2) || memcmp(tp, "00", 2) == 0)) return -1;
    if (!hex_ok(tp + 3, 32) || !hex_ok(tp + 36, 16)) return -1;
    if (!(hex_ok(tp + 53, 2) || memcmp(tp + 53, "00", 2) == 0)) return -1;
    memcpy(trace_id, tp + 3, 32);
    trace_id[32] = '\0';
    memcpy(parent_id, tp + 36, 16);
    parent_id[16] = '\0';
    memcpy(flags, tp + 53, 2);
    flags[2] = '\0';
    return 0;
}

/* Random bytes from the kernel (getrandom; /dev/urandom where that is missing). Ids need to be
 * unique across a fleet, which the clock and the pid alone do not give. */
static void random_bytes(uint8_t *b, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r < 0 && errno != EINTR) {
            break;
        }
    }
    if (got < n) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        while (fd >= 0 && got < n) {
            ssize_t r = read(fd, b + got, n - got);
            if (r <= 0 && !(r < 0 && errno == EINTR)) break;
            if (r > 0) got += (size_t)r;
        }
        if (fd >= 0) close(fd);
    }
    if (got < n) { /* no source at all: unique enough within this process, never all zeros */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
        for (size_t i = got; i < n; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            b[i] = (uint8_t)(x >> 56) | (i == n - 1);
        }
    }
}

/* Bytes from a pool refilled 4 KiB at a time: one system call per ~170 attempts, not two per
 * attempt. Called from the worker's loop thread only. */
static void pool_bytes(uint8_t *b, size_t n) {
    static uint8_t pool[4096];
    static size_t left;
    if (left < n) {
        random_bytes(pool, sizeof pool);
        left = sizeof pool;
    }
    memcpy(b, pool + sizeof pool - left, n);
    memset(pool + sizeof pool - left, 0, n); /* never handed out twice */
    left -= n;
}

/* n random bytes as 2n lowercase hex digits, not all zeros. */
static void random_hex(char *out, size_t n) {
    static const char digits[] = "0123456789abcdef";
    uint8_t b[16];
    int nonzero = 0;
    do {
        pool_bytes(b, n);
        for (size_t i = 0; i < n; i++)
            nonzero |= b[i] != 0;
    } while (!nonzero);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The item's "traceparent" field, when the item is a JSON object with a valid one. */
static int item_parent(const char *item, size_t len, char trace_id[33], char parent_id[17],
                       char flags[3]) {
    if (!item || len < TRACEPARENT_LEN) return -1;
    size_t i = 0;
    while (i < len && (item[i] == ' ' || item[i] == '\t' || item[i] == '\n' || item[i] == '\r'))
        i++;
    /* Most items carry none: look for the name before parsing the whole item. */
    if (i == len || item[i] != '{' || !memmem(item, len, "\"traceparent\"", 13)) return -1;
    cJSON *o = cJSON_ParseWithLength(item, len);
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(o, "traceparent");
    int rc = cJSON_IsString(tp)
                 ? trace_parse(tp->valuestring, strlen(tp->valuestring), trace_id, parent_id, flags)
                 : -1;
    cJSON_Delete(o);
    return rc;
}

void trace_begin(trace_ctx *t, const char *item, size_t len) {
    char flags[3] = "01"; /* a new trace is sampled: the operator asked for spans */
    if (item_parent(item, len, t->trace_id, t->parent_id, flags) != 0) {
        random_hex(t->trace_id, 16);
        t->parent_id[0] = '\0';
    }
    random_hex(t->span_id, 8);
    memcpy(t->traceparent, "00-", 3);
    memcpy(t->traceparent + 3, t->trace_id, 32);
    t->traceparent[35] = '-';
    memcpy(t->traceparent + 36, t->span_id, 16);
    t->traceparent[52] = '-';
    memcpy(t->traceparent + 53, flags, 2);
    t->traceparent[55] = '\0';
}
