#ifndef DRV_DUPES_H
#define DRV_DUPES_H

/* Duplicate ids in a file source, found at submit exactly and with bounded memory: each
 * record's id is reduced to a 64-bit hash kept with its record number and byte offset; runs of
 * DRV_DUPES_RUN entries are sorted and spilled to temporary files (tmpfile(): TMPDIR), then
 * merged. Only records whose hashes collide are read again, and their ids compared byte for
 * byte, so a hash collision is never taken for a duplicate. */

#include "err.h"
#include "spec.h"

#include <stddef.h>
#include <stdint.h>

#define DRV_DUPES_RUN  (1u << 18) /* entries sorted in memory at once (24 bytes each: 6 MiB) */
#define DRV_DUPES_SHOW 5          /* duplicates named in the report */

typedef struct drv_dupes drv_dupes;

typedef struct drv_dupe {
    char id[DRV_ID_BYTES_MAX + 1];
    int64_t rec, at, line;                   /* the repeat: record number, byte offset, line */
    int64_t first_rec, first_at, first_line; /* the first record with that id */
} drv_dupe;

typedef struct drv_dupes_report {
    int64_t count; /* records whose id an earlier record has */
    drv_dupe shown[DRV_DUPES_SHOW];
    int nshown;    /* the first count or DRV_DUPES_SHOW of them, in file order */
    int64_t *skip; /* the byte offsets of every repeat, ascending (malloc'd) */
} drv_dupes_report;

drv_err drv_dupes_new(drv_dupes **out);
void drv_dupes_free(drv_dupes *d);
/* One record's id, in file order. */
drv_err drv_dupes_add(drv_dupes *d, const char *id, size_t len, int64_t rec, int64_t at);
/* Finds the repeats among the ids added, reading the colliding records again from 'path'
 * (the file the ids came from, with the spec's format, id field and CSV header starting at
 * byte data_start). *out is filled (free its skip with drv_dupes_report_free). */
drv_err drv_dupes_find(drv_dupes *d, const char *path, const drv_spec *spec, int64_t data_start,
                       drv_dupes_report *out, char *why, size_t whylen);
void drv_dupes_report_free(drv_dupes_report *r);

#endif
