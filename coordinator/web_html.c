/* drover web's pages: HTML tables rendered on the server from the JSON objects of drover status
 * --json and drover workers --json, so that every number is the command line's and the page
 * reads without JavaScript. Nothing from Redis is written unescaped (web_esc), and nothing is
 * inline (no style or script attributes): the Content-Security-Policy forbids it. */
#include "web.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void web_esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static const char *str(const cJSON *o, const char *k) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return s ? s : "";
}

/* The number under k, NAN when absent or null. */
static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A count, or "-" for null (a total not known yet). */
static void count(FILE *f, double v) {
    if (isnan(v))
        fputs("-", f);
    else
        fprintf(f, "%.0f", v);
}

static void duration(FILE *f, double s) {
    if (isnan(s)) {
        fputs("-", f);
        return;
    }
    long long t = (long long)(s + 0.5);
    if (t >= 3600)
        fprintf(f, "%lldh%02lldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        fprintf(f, "%lldm%02llds", t / 60, t % 60);
    else
        fprintf(f, "%llds", t);
}

/* A cell the live refresh updates: data-k names the field of the JSON object it shows. */
static void cell_count(FILE *f, const char *k, double v) {
    fprintf(f, "<td class=n data-k=%s>", k);
    count(f, v);
    fputs("</td>", f);
}

static void head(FILE *f, const char *page, const char *title, const char *key, const web_ctx *c) {
    fputs("<!doctype html><html lang=en><head><meta charset=utf-8>"
          "<meta name=viewport content=\"width=device-width,initial-scale=1\"><title>drover: ",
          f);
    web_esc(f, title);
    fputs("</title><link rel=stylesheet href=\"/static/app.css\">"
          "<link rel=icon href=\"/static/favicon.svg\">"
          "<script src=\"/static/app.js\" defer></script></head>",
          f);
    fprintf(f, "<body data-page=%s", page);
    if (key) {
        fputs(" data-key=\"", f);
        web_esc(f, key);
        fputc('"', f);
    }
    fputs("><header><nav><a href=\"/\">Jobs</a> <a href=\"/workers\">Workers</a></nav>", f);
    if (!c->has_token)
        fputs("<p class=ro>Read-only: drover web was started without a token "
              "(--token-file or DROVER_WEB_TOKEN), so it takes no actions.</p>",
              f);
    else if (!c->csrf)
        fputs("<form class=login method=post action=\"/login\"><label>Token "
              "<input type=password name=token autocomplete=current-password></label> "
              "<button>Sign in</button> to pause, resume, cancel, retry, purge and drain</form>",
              f);
    else {
        fputs("<form class=login method=post action=\"/logout\">", f);
        fprintf(f, "<input type=hidden name=csrf value=\"%s\">", c->csrf);
        fputs("<button>Sign out</button></form>", f);
    }
    fputs("</header><main>", f);
    if (c->msg && c->msg[0]) {
        fputs("<p class=msg role=status>", f);
        web_esc(f, c->msg);
        fputs("</p>", f);
    }
    fputs("<h1>", f);
    web_esc(f, title);
    fputs("</h1>", f);
}

static void foot(FILE *f) {
    fputs("</main></body></html>\n", f);
}

/* <form> for one action; the CSRF token goes with every POST. */
static void form_open(FILE *f, const char *action_fmt, const char *arg, const web_ctx *c) {
    fputs("<form class=act method=post action=\"", f);
    char url[512];
    snprintf(url, sizeof url, action_fmt, arg);
    web_esc(f, url);
    fprintf(f, "\"><input type=hidden name=csrf value=\"%s\">", c->csrf);
}

static void progress(FILE *f, const cJSON *j) {
    double total = num(j, "total"), done = num(j, "done") + num(j, "dead");
    if (isnan(total) || total <= 0) {
        fputs("<progress data-k=progress></progress>", f);
        return;
    }
    double frac = done / total;
    fprintf(f, "<progress data-k=progress max=1 value=\"%.4f\">%.1f%%</progress>",
            frac > 1 ? 1 : frac, 100 * (frac > 1 ? 1 : frac));
}

static void limits(FILE *f, const cJSON *j) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "limits");
    double rate = num(l, "rate_per_second"), mif = num(l, "max_in_flight");
    double eff = num(l, "effective_in_flight"); /* the adaptive limit now, when on */
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(l, "adaptive");
    int adaptive = cJSON_IsTrue(ad) && !isnan(eff);
    if (isnan(rate) && isnan(mif) && !adaptive) {
        fputs("-", f);
        return;
    }
    if (!isnan(rate)) fprintf(f, "rate %.0f/s ", rate);
    if (!isnan(mif)) fprintf(f, "in flight %.0f ", mif);
    if (adaptive) fprintf(f, "adaptive %.0f", eff);
}

/* ---- jobs ------------------------------------------------------------------------------------ */

static const char *sort_key;

static int by_sort_key(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    if (strcmp(sort_key, "id") == 0 || strcmp(sort_key, "state") == 0)
        return strcmp(str(x, sort_key), str(y, sort_key));
    double u = num(x, sort_key), v = num(y, sort_key);
    u = isnan(u) ? -1 : u, v = isnan(v) ? -1 : v;
    return u < v ? 1 : u > v ? -1 : 0; /* numbers: largest first */
}

void web_html_jobs(FILE *f, const cJSON *jobs, const web_ctx *c) {
    static const char *const cols[][2] = {
        {"id", "Job"},        {"state", "State"},         {NULL, "Progress"}, {"done", "Done"},
        {NULL, "Total"},      {"rate", "Rate/s"},         {NULL, "ETA"},      {"dead", "Dead"},
        {NULL, "Duplicates"}, {"throttled", "Throttled"}, {NULL, "Limits"}};
    static const char *const states[] = {"running", "paused", "cancelled", "done", "broken"};
    head(f, "jobs", "Jobs", NULL, c);
    fputs("<form class=filter method=get action=\"/\"><label>State <select name=state>"
          "<option value=\"\">all</option>",
          f);
    for (size_t i = 0; i < sizeof states / sizeof *states; i++)
        fprintf(f, "<option%s>%s</option>",
                c->state && strcmp(c->state, states[i]) == 0 ? " selected" : "", states[i]);
    fputs("</select></label> <label>Job <input name=find value=\"", f);
    web_esc(f, c->find);
    fputs("\"></label> <button>Filter</button></form>", f);

    int n = cJSON_GetArraySize(jobs), shown = 0;
    const cJSON **rows = calloc(n ? (size_t)n : 1, sizeof *rows);
    if (!rows) return;
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs) {
        if (c->state && c->state[0] && strcmp(str(j, "state"), c->state) != 0) continue;
        if (c->find && c->find[0] && !strstr(str(j, "id"), c->find)) continue;
        rows[shown++] = j;
    }
    sort_key = "id";
    for (size_t k = 0; k < sizeof cols / sizeof *cols; k++)
        if (c->sort && cols[k][0] && strcmp(c->sort, cols[k][0]) == 0) sort_key = cols[k][0];
    if (c->sort) qsort(rows, (size_t)shown, sizeof *rows, by_sort_key);

    fputs("<div class=scroll><table id=jobs><thead><tr>", f);
    for (size_t k = 0; k < sizeof cols / sizeof *cols; k++) {
        if (cols[k][0]) {
            fprintf(f, "<th><a href=\"/?sort=%s&amp;state=", cols[k][0]);
            web_esc(f, c->state);
            fputs("&amp;find=", f);
            web_esc(f, c->find); /* an id's letters, digits, _ and - need no %-encoding */
            fprintf(f, "\">%s</a></th>", cols[k][1]);
        } else {
            fprintf(f, "<th>%s</th>", cols[k][1]);
        }
    }
    fputs("</tr></thead><tbody>", f);
    for (int i = 0; i < shown; i++) {
        j = rows[i];
        fputs("<tr data-job=\"", f);
        web_esc(f, str(j, "id"));
        fputs("\"><td><a href=\"/jobs/", f);
        web_esc(f, str(j, "id"));
        fputs("\">", f);
        web_esc(f, str(j, "id"));
        fputs("</a></td><td data-k=state>", f);
        web_esc(f, str(j, "state"));
        if (cJSON_GetObjectItemCaseSensitive(j, "error")) {
            fputs(": ", f);
            web_esc(f, str(j, "error"));
        }
        fputs("</td><td>", f);
        progress(f, j);
        fputs("</td>", f);
        cell_count(f, "done", num(j, "done"));
        cell_count(f, "total", num(j, "total"));
        fprintf(f, "<td class=n data-k=rate>%.1f</td><td class=n data-k=eta_s>",
                isnan(num(j, "rate")) ? 0 : num(j, "rate"));
        duration(f, num(j, "eta_s"));
        fputs("</td>", f);
        cell_count(f, "dead", num(j, "dead"));
        cell_count(f, "duplicates", num(j, "duplicates"));
        cell_count(f, "throttled", num(j, "throttled"));
        fputs("<td>", f);
        limits(f, j);
        fputs("</td></tr>", f);
    }
    fputs("</tbody></table></div>", f);
    if (!shown) fputs("<p>No jobs.</p>", f);
    free(rows);
    foot(f);
}

/* ---- one job --------------------------------------------------------------------------------- */

static void job_actions(FILE *f, const char *id, const web_ctx *c) {
    static const char *const acts[][2] = {
        {"pause", "Pause"}, {"resume", "Resume"}, {"cancel", "Cancel"}};
    fputs("<section><h2>Actions</h2><div class=acts>", f);
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        char fmt[64];
        snprintf(fmt, sizeof fmt, "/jobs/%%s/%s", acts[i][0]);
        form_open(f, fmt, id, c);
        fprintf(f, "<button name=do value=%s>%s</button></form>", acts[i][0], acts[i][1]);
    }
    form_open(f, "/jobs/%s/set", id, c);
    fputs("<label>Rate/s <input name=rate inputmode=numeric size=6></label> "
          "<label>Max in flight <input name=max_in_flight inputmode=numeric size=6></label> "
          "<button>Set</button> <small>(0 lifts a limit; empty leaves it)</small></form>",
          f);
    form_open(f, "/jobs/%s/purge", id, c);
    fputs("<label><input type=checkbox name=force value=1> also if not finished</label> "
          "<button>Purge</button></form></div></section>",
          f);
}

/* 1 if the comma-separated list names id. */
static int lists(const char *list, const char *id) {
    size_t n = strlen(id);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, id, n) == 0) return 1;
        p += len + (p[len] ? 1 : 0);
    }
    return 0;
}

static void worker_rows(FILE *f, const cJSON *workers, const char *job, const web_ctx *c) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(workers, "workers"), *w;
    fputs("<div class=scroll><table id=workers><thead><tr><th>Worker</th><th>State</th>"
          "<th>Heartbeat age</th><th>In flight</th><th>Queued</th><th>Done</th><th>Failed</th>"
          "<th>Jobs</th><th>Host</th>",
          f);
    if (c->csrf) fputs("<th></th>", f);
    fputs("</tr></thead><tbody>", f);
    int shown = 0;
    cJSON_ArrayForEach(w, arr) {
        if (job && !lists(str(w, "jobs"), job)) continue;
        shown++;
        fputs("<tr data-worker=\"", f);
        web_esc(f, str(w, "id"));
        fputs("\"><td>", f);
        web_esc(f, str(w, "id"));
        fputs("</td><td data-k=state>", f);
        web_esc(f, str(w, "state"));
        fprintf(f, "</td><td class=n data-k=age_s>%.1fs</td>", num(w, "age_s"));
        cell_count(f, "in_flight", num(w, "in_flight"));
        cell_count(f, "queued", num(w, "queued"));
        cell_count(f, "done", num(w, "done"));
        cell_count(f, "failed", num(w, "failed"));
        fputs("<td>", f);
        web_esc(f, str(w, "jobs"));
        fputs("</td><td>", f);
        web_esc(f, str(w, "host"));
        fputs("</td>", f);
        if (c->csrf) {
            fputs("<td>", f);
            form_open(f, "/workers/drain", NULL, c);
            fputs("<input type=hidden name=worker value=\"", f);
            web_esc(f, str(w, "id"));
            fputs("\"><button>Drain</button></form></td>", f);
        }
        fputs("</tr>", f);
    }
    fputs("</tbody></table></div>", f);
    if (!shown) fputs("<p>No workers.</p>", f);
}

/* The error text of a dead item's record ({"error": "...", ...}), or the record itself. */
static const char *dead_error(const cJSON *d) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(d, "error");
    if (cJSON_IsString(e)) return e->valuestring;
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "error"));
    return s ? s : "(no error text)";
}

static void dead_items(FILE *f, const char *id, const cJSON *page, double total_dead,
                       const web_ctx *c) {
    const cJSON *dead = cJSON_GetObjectItemCaseSensitive(page, "items");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(page, "next");
    int n = cJSON_GetArraySize(dead);
    fputs("<section><h2>Errors</h2>", f);
    if (!n) {
        fputs("<p>No dead items.</p></section>", f);
        return;
    }
    /* Grouped by message: n is small (the first dead items only), so a quadratic pass is
     * cheaper than a hash table. */
    fputs("<table id=errors><thead><tr><th>Error</th><th>Items</th></tr></thead><tbody>", f);
    for (int i = 0; i < n; i++) {
        const char *msg = dead_error(cJSON_GetArrayItem(dead, i));
        int seen = 0, k = 0;
        for (int p = 0; p < i && !seen; p++)
            seen = strcmp(dead_error(cJSON_GetArrayItem(dead, p)), msg) == 0;
        if (seen) continue;
        for (int p = i; p < n; p++)
            k += strcmp(dead_error(cJSON_GetArrayItem(dead, p)), msg) == 0;
        fputs("<tr><td>", f);
        web_esc(f, msg);
        fprintf(f, "</td><td class=n>%d</td></tr>", k);
    }
    fputs("</tbody></table>", f);
    fprintf(f, "<p>Counted over the %d dead items of this page (of %.0f).</p></section>", n,
            total_dead);
    fputs("<section><h2>Dead items</h2>", f);
    if (c->csrf) {
        form_open(f, "/jobs/%s/retry", id, c);
        fputs("<button>Retry all dead items</button></form>", f);
        form_open(f, "/jobs/%s/retry", id, c);
        fputs("<label>Error holds <input name=match required></label> "
              "<button>Retry matching</button></form>",
              f);
        form_open(f, "/jobs/%s/retry", id, c); /* the ticked rows of the table below */
    }
    fputs("<div class=scroll><table id=dead><thead><tr>", f);
    if (c->csrf) fputs("<th></th>", f);
    fputs("<th>Item</th><th>Last error</th></tr></thead><tbody>", f);
    const cJSON *d;
    cJSON_ArrayForEach(d, dead) {
        fputs("<tr>", f);
        if (c->csrf) {
            fputs("<td><input type=checkbox name=id value=\"", f);
            web_esc(f, str(d, "id"));
            fputs("\"></td>", f);
        }
        fputs("<td class=id>", f);
        web_esc(f, str(d, "id"));
        fputs("</td><td class=id>", f); /* the whole record, as drover dead prints it */
        char *rec = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(d, "error"));
        web_esc(f, rec ? rec : "");
        cJSON_free(rec);
        fputs("</td></tr>", f);
    }
    fputs("</tbody></table></div>", f);
    if (c->csrf) fputs("<button>Retry the ticked items</button></form>", f);
    fputs("<p class=pages><a href=\"/jobs/", f);
    web_esc(f, id);
    fputs("\">First page</a>", f);
    if (cJSON_IsObject(next)) {
        fputs(" <a rel=next href=\"/jobs/", f);
        web_esc(f, id);
        fprintf(f, "?dp=%.0f&amp;dc=", num(next, "p"));
        web_esc(f, str(next, "cursor"));
        fputs("\">Next page</a>", f);
    }
    fputs("</p>", f);
    fputs("</section>", f);
}

/* One line of the chart: the samples' k scaled to the box (x: time, y: 0 to the largest). */
static void chart_line(FILE *f, const cJSON *h, const char *k, const char *cls) {
    int n = cJSON_GetArraySize(h);
    double t0 = num(cJSON_GetArrayItem(h, 0), "at_ms"),
           t1 = num(cJSON_GetArrayItem(h, n - 1), "at_ms");
    double top = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, h) if (num(s, k) > top) top = num(s, k);
    if (top <= 0) top = 1;
    fprintf(f, "<polyline class=%s points=\"", cls);
    cJSON_ArrayForEach(s, h) {
        double x = t1 > t0 ? 300.0 * (num(s, "at_ms") - t0) / (t1 - t0) : 0;
        fprintf(f, "%.1f,%.1f ", x, 78.0 - 76.0 * num(s, k) / top);
    }
    fprintf(f, "\"/>");
}

/* Done and rate over the job's history, drawn here so that it shows without JavaScript. */
static void chart(FILE *f, const cJSON *h) {
    int n = cJSON_GetArraySize(h);
    if (n < 2) {
        fputs("<p>The chart needs two samples of history (drover run writes one every 10 s).</p>",
              f);
        return;
    }
    double span =
        (num(cJSON_GetArrayItem(h, n - 1), "at_ms") - num(cJSON_GetArrayItem(h, 0), "at_ms")) /
        1000.0;
    double top_rate = 0, top_done = num(cJSON_GetArrayItem(h, n - 1), "done");
    const cJSON *s;
    cJSON_ArrayForEach(s, h) if (num(s, "rate") > top_rate) top_rate = num(s, "rate");
    fputs("<figure id=chart><svg viewBox=\"0 0 300 80\" preserveAspectRatio=none role=img "
          "aria-label=\"done and rate over time\">",
          f);
    chart_line(f, h, "done", "done");
    chart_line(f, h, "rate", "rate");
    fprintf(f,
            "</svg><figcaption><span class=done>done</span> (up to %.0f) and "
            "<span class=rate>rate</span> (up to %.1f/s) over the last ",
            top_done, top_rate);
    duration(f, span);
    fprintf(f, ", %d samples</figcaption></figure>", n);
}

void web_html_job(FILE *f, const cJSON *job, const cJSON *workers, const cJSON *dead,
                  const cJSON *history, const web_ctx *c) {
    const char *id = str(job, "id");
    char title[128];
    snprintf(title, sizeof title, "Job %s", id);
    head(f, "job", title, id, c);
    fputs("<section><table id=summary class=kv><tbody><tr><th>State</th><td data-k=state>", f);
    web_esc(f, str(job, "state"));
    fputs("</td></tr><tr><th>Progress</th><td>", f);
    progress(f, job);
    fputs("</td></tr>", f);
    static const char *const rows[][2] = {{"total", "Total"},
                                          {"fed", "Fed"},
                                          {"done", "Done"},
                                          {"pending", "Pending"},
                                          {"leased", "Leased"},
                                          {"retrying", "Retrying"},
                                          {"dead", "Dead"},
                                          {"duplicates", "Duplicates"},
                                          {"failed_attempts", "Failed attempts"},
                                          {"throttled", "Throttled (429 or Retry-After)"},
                                          {"expired_leases", "Expired leases"}};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        fprintf(f, "<tr><th>%s</th>", rows[i][1]);
        cell_count(f, rows[i][0], num(job, rows[i][0]));
        fputs("</tr>", f);
    }
    fprintf(f, "<tr><th>Rate</th><td class=n data-k=rate>%.1f/s</td></tr>", num(job, "rate"));
    fputs("<tr><th>ETA</th><td class=n data-k=eta_s>", f);
    duration(f, num(job, "eta_s"));
    fputs("</td></tr><tr><th>Limits</th><td>", f);
    limits(f, job);
    fputs("</td></tr><tr><th>Source</th><td>", f);
    web_esc(f, str(job, "source"));
    fputs("</td></tr></tbody></table>", f);
    fputs("</section><section><h2>History</h2>", f);
    chart(f, history);
    fputs("</section>", f);
    if (c->csrf) job_actions(f, id, c);

    fputs("<section><h2>Partitions</h2><div class=scroll><table id=parts><thead><tr>"
          "<th>#</th><th>State</th><th>Fed</th><th>Done</th><th>Pending</th><th>Leased</th>"
          "<th>Dead</th><th>Cursor</th></tr></thead><tbody>",
          f);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(job, "partitions")) {
        fputs("<tr>", f);
        cell_count(f, "partition", num(p, "partition"));
        fputs("<td>", f);
        web_esc(f, str(p, "state"));
        fputs("</td>", f);
        cell_count(f, "fed", num(p, "fed"));
        cell_count(f, "done", num(p, "done"));
        cell_count(f, "pending", num(p, "pending"));
        cell_count(f, "leased", num(p, "leased"));
        cell_count(f, "dead", num(p, "dead"));
        fputs("<td class=id>", f);
        web_esc(f, str(p, "cursor"));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "exhausted")))
            fputs(" (source done)", f);
        fputs("</td></tr>", f);
    }
    fputs("</tbody></table></div></section><section><h2>Workers</h2>", f);
    worker_rows(f, workers, id, c);
    fputs("</section>", f);
    dead_items(f, id, dead, num(job, "dead"), c);
    foot(f);
}

void web_html_workers(FILE *f, const cJSON *workers, const web_ctx *c) {
    head(f, "workers", "Workers", NULL, c);
    worker_rows(f, workers, NULL, c);
    foot(f);
}

void web_html_note(FILE *f, const char *title, const char *text, const web_ctx *c) {
    head(f, "note", title, NULL, c);
    fputs("<p>", f);
    web_esc(f, text);
    fputs("</p>", f);
    foot(f);
}
