#ifndef DRV_WEB_H
#define DRV_WEB_H

/* drover web: the pages (web_html.c), rendered from the same JSON objects drover status
 * --json and drover workers --json print, and served by web.c. */

#include <cjson/cJSON.h>
#include <stdio.h>

/* What every page needs beside its data. */
typedef struct web_ctx {
    int has_token;     /* 0: the server is read-only (started without a token) */
    const char *csrf;  /* the session's CSRF token; NULL when not signed in */
    const char *msg;   /* a line to show at the top (the result of an action), or NULL */
    const char *state; /* jobs page: only jobs in this state ("" or NULL: all) */
    const char *find;  /* jobs page: only jobs whose id holds this */
    const char *sort;  /* jobs page: a column (id, state, done, rate, dead) */
} web_ctx;

/* Writes s with &, <, >, " and ' escaped: every string from Redis goes through this. */
void web_esc(FILE *f, const char *s);

/* jobs: an array of drover list --json objects. */
void web_html_jobs(FILE *f, const cJSON *jobs, const web_ctx *c);
/* job: drover status JOB --json; workers: {"now_ms", "workers": [...]}; dead: a page of dead
 * items, {"items": [{"id", "error"}], "next": {"p", "cursor"} or null}; history: an array of
 * {"at_ms", "done", "dead", "rate"}, oldest first (PREFIX{J}:history). */
void web_html_job(FILE *f, const cJSON *job, const cJSON *workers, const cJSON *dead,
                  const cJSON *history, const web_ctx *c);
void web_html_workers(FILE *f, const cJSON *workers, const web_ctx *c);
/* A page saying one thing (an error, a refusal). */
void web_html_note(FILE *f, const char *title, const char *text, const web_ctx *c);

#endif
