#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int drv_parse_ll(const char *s, long long min, long long max, long long *out) {
    /* strtoll would skip leading white space; " 5" is not a whole decimal integer. */
    if (s == NULL || !(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9'))) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (strcmp(s, yes[i]) == 0) return *out = 1, 0;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strcmp(s, no[i]) == 0) return *out = 0, 0;
    return -1;
}

/* Stores 'val' into the option; 'from' names where it came from for the error message. */
static int set_value(const drv_opt *o, const char *val, const char *from) {
    switch (o->type) {
    case DRV_OPT_STR:
        *(const char **)o->dst = val;
        return 0;
    case DRV_OPT_INT: {
        long long v;
        if (drv_parse_ll(val, o->min, o->max, &v) != 0) {
            fprintf(stderr, "error: %s: expected a whole number from %lld to %lld, got \"%s\"\n",
                    from, o->min, o->max, val);
            return -1;
        }
        *(long long *)o->dst = v;
        return 0;
    }
    case DRV_OPT_BOOL: {
        int b;
        if (parse_bool(val, &b) != 0) {
            fprintf(stderr, "error: %s: expected true or false, got \"%s\"\n", from, val);
            return -1;
        }
        *(int *)o->dst = b;
        return 0;
    }
    }
    return -1;
}

static const drv_opt *find_opt(const drv_opt *opts, const char *name, size_t len) {
    for (const drv_opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

/* The hidden --help-man[=sub] and --help-flags (for the build's man page and completion
 * generator) are looked for before anything else is read, so a bad DROVER_* variable in the
 * build's environment cannot change or stop what they print. Returns 1 when one was handled. */
static int help_for_build(const drv_opt *opts, const drv_cmd_doc *doc, int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help-man") == 0 || strcmp(argv[i], "--help-man=sub") == 0) {
            drv_opts_man(opts, doc, strcmp(argv[i], "--help-man=sub") == 0, stdout);
            return 1;
        }
        if (strcmp(argv[i], "--help-flags") == 0) {
            drv_opts_flags(opts, stdout);
            return 1;
        }
    }
    return 0;
}

int drv_opts_parse(const drv_opt *opts, const drv_cmd_doc *doc, int argc, char **argv, char **pos,
                   int pos_cap, int *npos, char ***rest, int *nrest) {
    char from[160];
    *npos = 0;
    if (rest) *rest = NULL, *nrest = 0;
    if (help_for_build(opts, doc, argc, argv)) return DRV_OPTS_HELP;
    for (const drv_opt *o = opts; o->name; o++) {
        if (o->def && set_value(o, o->def, o->name) != 0) return DRV_OPTS_ERROR;
        if (o->type == DRV_OPT_BOOL && !o->def) *(int *)o->dst = 0;
    }
    for (const drv_opt *o = opts; o->name; o++) {
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && *v) {
            snprintf(from, sizeof from, "environment variable %s", o->env);
            if (set_value(o, v, from) != 0) return DRV_OPTS_ERROR;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            if (!rest) {
                fprintf(stderr, "error: unexpected \"--\"\n");
                return DRV_OPTS_ERROR;
            }
            *rest = argv + i + 1;
            *nrest = argc - i - 1;
            return DRV_OPTS_OK;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            drv_opts_help(opts, doc, stdout);
            return DRV_OPTS_HELP;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (a[0] == '-' && a[1] != '\0') {
                fprintf(stderr, "error: unknown flag \"%s\" (see --help)\n", a);
                return DRV_OPTS_ERROR;
            }
            if (*npos >= pos_cap) {
                fprintf(stderr, "error: unexpected argument \"%s\" (see --help)\n", a);
                return DRV_OPTS_ERROR;
            }
            pos[(*npos)++] = argv[i];
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const drv_opt *o = find_opt(opts, name, len);
        if (!o) {
            fprintf(stderr, "error: unknown flag \"--%.*s\" (see --help)\n", (int)len, name);
            return DRV_OPTS_ERROR;
        }
        snprintf(from, sizeof from, "--%s", o->name);
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (o->type == DRV_OPT_BOOL) {
            val = "true";
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "error: --%s needs a value (%s)\n", o->name,
                    o->metavar ? o->metavar : "VALUE");
            return DRV_OPTS_ERROR;
        }
        if (set_value(o, val, from) != 0) return DRV_OPTS_ERROR;
    }
    return DRV_OPTS_OK;
}

void drv_opts_help(const drv_opt *opts, const drv_cmd_doc *doc, FILE *out) {
    fprintf(out, "Usage: %s\n\n%s\n", doc->usage, doc->summary);
    if (opts && opts->name) fprintf(out, "\nOptions:\n");
    for (const drv_opt *o = opts; o && o->name; o++) {
        char left[64];
        if (o->type == DRV_OPT_BOOL)
            snprintf(left, sizeof left, "--%s", o->name);
        else
            snprintf(left, sizeof left, "--%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        fprintf(out, "  %-24s %s", left, o->help);
        if (o->def && o->type != DRV_OPT_BOOL) fprintf(out, " (default: %s)", o->def);
        if (o->env) fprintf(out, " [env %s]", o->env);
        fputc('\n', out);
    }
    fprintf(out, "  %-24s %s\n", "-h, --help", "show this help and exit");
    if (doc->example) fprintf(out, "\nExample:\n%s\n", doc->example);
}

static void roff_n(const char *s, size_t len, FILE *out) {
    int bol = 1;
    for (const char *end = s + len; s < end; s++) {
        if (bol && (*s == '.' || *s == '\'')) fputs("\\&", out);
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out); /* a minus, not a hyphen: flags copied from the page must work */
        else
            fputc(*s, out);
        bol = *s == '\n';
    }
}

void drv_roff_text(const char *s, FILE *out) {
    roff_n(s, strlen(s), out);
}

/* The summary's blank lines are paragraph breaks; its other line breaks only wrap --help. */
static void roff_paragraphs(const char *s, FILE *out) {
    while (*s) {
        const char *end = strstr(s, "\n\n");
        size_t len = end ? (size_t)(end - s) : strlen(s);
        fputs(".PP\n", out);
        roff_n(s, len, out);
        fputc('\n', out);
        s += len;
        while (*s == '\n')
            s++;
    }
}

static void roff_block(const char *s, FILE *out) {
    fputs(".nf\n", out);
    drv_roff_text(s, out);
    fputs("\n.fi\n", out);
}

void drv_opts_man(const drv_opt *opts, const drv_cmd_doc *doc, int sub, FILE *out) {
    if (sub) {
        /* The heading is the command: the usage line's first two words ("drover submit"). */
        size_t n = strcspn(doc->usage, " ");
        if (doc->usage[n]) n += 1 + strcspn(doc->usage + n + 1, " \n");
        fprintf(out, ".SS \"%.*s\"\n", (int)n, doc->usage);
    } else {
        fputs(".SH SYNOPSIS\n", out);
    }
    roff_block(doc->usage, out);
    if (!sub) fputs(".SH DESCRIPTION\n", out);
    roff_paragraphs(doc->summary, out);
    fputs(sub ? ".PP\n.B Options:\n" : ".SH OPTIONS\n", out);
    for (const drv_opt *o = opts; o && o->name; o++) {
        fputs(".TP\n.B \\-\\-", out);
        drv_roff_text(o->name, out);
        if (o->type != DRV_OPT_BOOL) {
            fputs(" \\fI", out);
            drv_roff_text(o->metavar ? o->metavar : "VALUE", out);
            fputs("\\fR", out);
        }
        fputc('\n', out);
        drv_roff_text(o->help, out);
        if (o->def && o->type != DRV_OPT_BOOL) {
            fputs(" (default: ", out);
            drv_roff_text(o->def, out);
            fputc(')', out);
        }
        if (o->env) {
            fputs(" [env \\fB", out);
            drv_roff_text(o->env, out);
            fputs("\\fR]", out);
        }
        fputc('\n', out);
    }
    fputs(".TP\n.B \\-h, \\-\\-help\nshow this help and exit\n", out);
    if (doc->example) {
        fputs(sub ? ".PP\n.B Example:\n" : ".SH EXAMPLES\n", out);
        roff_block(doc->example, out);
    }
}

void drv_opts_flags(const drv_opt *opts, FILE *out) {
    for (const drv_opt *o = opts; o && o->name; o++)
        fprintf(out, "--%s\n", o->name);
    fputs("--help\n", out);
}
