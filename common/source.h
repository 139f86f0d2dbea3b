#ifndef DRV_SOURCE_H
#define DRV_SOURCE_H

#include "buf.h"
#include "dupes.h"
#include "err.h"
#include "hash.h"
#include "spec.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- record reader ---------------------------------------------------------------------
 * Streams records from a FILE: a line (lines, ndjson) or a CSV record (a newline inside a
 * quoted field does not end it). The terminator ("\n" or "\r\n") is not part of the record.
 * The last record needs no trailing newline. Lines that are empty (or, for the lines format,
 * only white space) are skipped. A record over max_bytes or holding a NUL byte is an error:
 * never truncated, never split. */
typedef struct drv_reader drv_reader;

/* Reads 'f' from its current position, which is byte offset 'start' of the source, and stops
 * before any record that starts at or after 'end' (-1: no end). Caller owns '*out' (close
 * with drv_reader_free); 'f' stays the caller's. */
drv_err drv_reader_new(FILE *f, drv_fmt fmt, int64_t start, int64_t end, size_t max_bytes,
                       drv_reader **out);
void drv_reader_free(drv_reader *r);
/* Returns 1 and the record (borrowed until the next call), 0 at the end, or -1 with a message
 * in 'why' naming the byte offset. *at is the record's starting offset. */
int drv_reader_next(drv_reader *r, const char **rec, size_t *len, int64_t *at, char *why,
                    size_t whylen);
/* Byte offset just past the last record returned (the cursor to resume from). */
int64_t drv_reader_offset(const drv_reader *r);

/* ---- items ---------------------------------------------------------------------------
 * Turns a record into (id, payload):
 *   lines   id = the line, trimmed; no payload (the id is the item)
 *   ndjson  id = the value of id_field (a string or a whole number); payload = the line
 *   csv     id = the id_field column; payload = a JSON object of header -> value */
typedef struct drv_extract drv_extract;

/* For csv, 'header' is the first record of the file. Caller owns '*out'. */
drv_err drv_extract_new(drv_fmt fmt, const char *id_field, const char *header, size_t hlen,
                        drv_extract **out, char *why, size_t whylen);
void drv_extract_free(drv_extract *x);
/* Fills id (and payload when the format has one). Returns 0, or -1 with a message. */
int drv_extract_item(drv_extract *x, const char *rec, size_t len, drv_buf *id, drv_buf *payload,
                     char *why, size_t whylen);
int drv_extract_has_payload(const drv_extract *x);

/* Splits one CSV record into fields (quotes removed, "" unescaped). Fields are written into
 * 'store' back to back, each NUL-terminated; offsets into store go to off[] (at most cap).
 * Returns the number of fields or -1 on a malformed record. */
int drv_csv_split(const char *rec, size_t len, drv_buf *store, size_t *off, int cap);

/* ---- scanning a file at submit --------------------------------------------------------
 * Reads the whole file once: validates every record and its id, counts them, and picks
 * partition boundaries at record starts so each partition gets about the same bytes. */
typedef struct drv_scan {
    int64_t size;       /* file size in bytes */
    int64_t data_start; /* first byte after the CSV header (0 otherwise) */
    int64_t total;      /* records (items) */
    int nparts;
    int64_t *start;                  /* [nparts] first byte of each partition */
    int64_t *end;                    /* [nparts] one past its last byte */
    uint64_t *hash;                  /* [nparts] drv_rec_hash over the partition's records */
    int64_t mtime_ns, inode, device; /* of the file as scanned (with size: its fingerprint) */
} drv_scan;

/* 'progress' (may be NULL) is called about once a second with the bytes read so far. */
drv_err drv_scan_file(const char *path, const drv_spec *spec, drv_scan *out, char *why,
                      size_t whylen, void (*progress)(int64_t done, int64_t size));
/* The same, handing every record's id (with its record number and offset) to 'ids' as well,
 * to find repeated ids (dupes.h). */
drv_err drv_scan_file_ids(const char *path, const drv_spec *spec, drv_scan *out, char *why,
                          size_t whylen, void (*progress)(int64_t done, int64_t size),
                          drv_dupes *ids);
void drv_scan_free(drv_scan *s);

/* drv_rec_hash, the fingerprint of a partition's records, is in hash.h. */
/* Hashes the records of 'path' in [start, end) as drv_scan_file does for a partition. */
drv_err drv_hash_range(const char *path, const drv_spec *spec, int64_t start, int64_t end,
                       uint64_t *out, char *why, size_t whylen);

/* Reads the CSV header of 'f' (positioned at 0). Returns 0 and the header in 'hdr', or -1. */
int drv_csv_read_header(FILE *f, size_t max_bytes, drv_buf *hdr, int64_t *data_start, char *why,
                        size_t whylen);

#endif
