#ifndef DRV_QUEUE_INT_H
#define DRV_QUEUE_INT_H

/* What the queue_*.c files share, and nothing outside them sees: the handle, the reply
 * readers, and the one path every script call takes (drvq_script). queue.h is the API. */

#include "queue.h"

#include "conn.h"

#include <hiredis/hiredis.h>

#define CHUNK DRV_BATCH_MAX /* the most one script call takes (common/shared.def) */

struct drv_queue {
    drv_conn *conn;
    char prefix[65];
};

typedef char num_t[24];

/* ---- replies --------------------------------------------------------------------------------- */

/* An integer reply, or a string holding one; 0 for anything else. */
int64_t drvq_int(const redisReply *r);
/* 1 if r is an array of at least min elements. */
int drvq_is_array(const redisReply *r, size_t min);
/* Names a reply drover cannot use ('what': the command or script) in the error text and
 * returns DRV_EREPLY. */
drv_err drvq_bad_reply(drv_queue *q, const char *what, const redisReply *r);

/* A field of an HGETALL reply (NULL when absent or not a string). */
const char *drvq_hfield(const redisReply *r, const char *name);
/* A number field of an HGETALL reply, 'def' when absent (no bounds: display only). */
int64_t drvq_hint(const redisReply *r, const char *name, int64_t def);
/* A whole-number field drover wrote into hash 'key': absent is 'def', anything but a whole
 * number in [lo, hi] is DRV_ECORRUPT, with the key and field in the error text. */
drv_err drvq_hnum(drv_queue *q, const redisReply *r, const char *key, const char *name, int64_t def,
                  int64_t lo, int64_t hi, int64_t *out);
/* DRV_ECORRUPT with "KEY: field NAME: WHAT" as the text. */
drv_err drvq_corrupt(drv_queue *q, const char *key, const char *name, const char *what);
/* A key of the wrong type answers WRONGTYPE: state drover did not write (DRV_ECORRUPT, the
 * key named). Any other e is returned as it is. */
drv_err drvq_wrongtype(drv_queue *q, drv_err e, const char *key);

/* ---- plain commands -------------------------------------------------------------------------- */

/* Redis time in ms. */
drv_err drvq_time(drv_queue *q, int64_t *ms);
/* Reads every reply of a pipeline of n commands; the first failure is returned but all
 * replies are consumed so the connection stays in step. */
drv_err drvq_drain(drv_queue *q, int n);
/* Sends CMD KEY [ARG] for each bucket KEY of partition k's string-id done record, pipelined
 * (its count is read from the state hash first). */
drv_err drvq_each_bucket(drv_queue *q, const drv_part_keys *k, const char *cmd, const char *arg);
/* Writes the job's limits hash from 'spec'; 'fill' also fills the bucket (a new job). */
drv_err drvq_write_limits(drv_queue *q, const drv_spec *spec, int fill);

/* ---- scripts --------------------------------------------------------------------------------- */

/* The arguments of one script call: strings are borrowed, numbers formatted in here. */
#define DRVQ_ARGS_MAX 40
typedef struct drvq_args {
    const char *v[DRVQ_ARGS_MAX];
    size_t len[DRVQ_ARGS_MAX];
    num_t num[DRVQ_ARGS_MAX];
    int n;
} drvq_args;

void drvq_arg(drvq_args *a, const char *s);
void drvq_arg_i64(drvq_args *a, int64_t v);

/* What a script's reply must be before its reader sees it. */
typedef enum drvq_shape {
    DRVQ_ANY,   /* whatever it is (the reader copes) */
    DRVQ_INT,   /* an integer */
    DRVQ_ARRAY, /* an array of at least 'min' elements */
} drvq_shape;

/* One script call: "run this script on these keys and read this reply shape". */
typedef struct drvq_call {
    const char *script; /* lua/NAME.lua */
    /* keys == NULL: the standard partition KEYS of (job, part), in drv_part_key_names order */
    const char *job;
    int part;
    int nkeys;
    const char *const *keys;
    const size_t *klens; /* NULL: strlen */
    int nargs;
    const char *const *args;
    const size_t *lens;
    drvq_shape shape;
    size_t min;
    /* Reads a reply of the right shape into out; NULL: the reply is only checked. A reader
     * that returns DRV_EREPLY names what was wrong (drvq_bad_reply). */
    drv_err (*read)(drv_queue *q, const redisReply *r, void *out);
    void *out;
} drvq_call;

/* Runs the call: builds the keys, calls the script (conn.c maps DRV_WORD errors), checks the
 * shape, runs the reader and frees the reply. Every failure leaves text for
 * drv_queue_strerror. */
drv_err drvq_script(drv_queue *q, const drvq_call *c);

/* Readers shared by several calls: *(int64_t *)out = the reply as a number, or += it. */
drv_err drvq_read_int(drv_queue *q, const redisReply *r, void *out);
drv_err drvq_add_int(drv_queue *q, const redisReply *r, void *out);

#endif
