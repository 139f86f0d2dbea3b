#ifndef DRV_CONFIG_H
#define DRV_CONFIG_H

#include <stdio.h>

/* One table drives flags, DROVER_* environment variables and --help. Values are applied in
 * order: the table's default, then the environment, then the command line. A bad value
 * prints what was wrong and the caller exits 2. */
typedef enum drv_opt_type { DRV_OPT_STR, DRV_OPT_INT, DRV_OPT_BOOL } drv_opt_type;

typedef struct drv_opt {
    const char *name; /* long flag without "--" */
    const char *env;  /* environment variable, or NULL */
    drv_opt_type type;
    const char *def;     /* default as text, or NULL for none */
    const char *metavar; /* shown in --help: "URL", "N" */
    const char *help;
    long long min, max; /* bounds for DRV_OPT_INT */
    void *dst;          /* const char ** | long long * | int * (bool) */
} drv_opt;

typedef struct drv_cmd_doc {
    const char *usage;   /* "drover-worker [OPTIONS] -- CMD ARG..." */
    const char *summary; /* a paragraph */
    const char *example; /* one or more lines, or NULL */
} drv_cmd_doc;

enum { DRV_OPTS_OK = 0, DRV_OPTS_HELP = 1, DRV_OPTS_ERROR = -1 };

/* Parses argv[1..argc). Positional arguments are collected in order into pos (at most
 * pos_cap; more is an error). Everything after "--" goes to *rest / *nrest when rest is not
 * NULL (otherwise "--" is an error). Returns DRV_OPTS_OK, DRV_OPTS_HELP (help was printed
 * to stdout: exit 0) or DRV_OPTS_ERROR (a message naming the flag or variable was printed
 * to stderr: exit 2). Strings stored in the table are borrowed from argv or environ. */
int drv_opts_parse(const drv_opt *opts, const drv_cmd_doc *doc, int argc, char **argv, char **pos,
                   int pos_cap, int *npos, char ***rest, int *nrest);
void drv_opts_help(const drv_opt *opts, const drv_cmd_doc *doc, FILE *out);

/* The man page form of --help, from the same table (the build writes drover(1) and
 * drover-worker(1) with it, so the two cannot disagree): sections SYNOPSIS, DESCRIPTION,
 * OPTIONS and EXAMPLES, or with 'sub' one .SS subsection per command. A command prints it for
 * the hidden flag --help-man (--help-man=sub); --help-flags prints its flags, one a line, for
 * the bash completion. */
void drv_opts_man(const drv_opt *opts, const drv_cmd_doc *doc, int sub, FILE *out);
void drv_opts_flags(const drv_opt *opts, FILE *out);
/* Writes 's' as roff text: backslashes and minus signs escaped, a leading '.' or '\'' made
 * literal. */
void drv_roff_text(const char *s, FILE *out);

/* Parses a whole decimal integer in [min, max]. Returns 0 on success, -1 otherwise. */
int drv_parse_ll(const char *s, long long min, long long max, long long *out);

#endif
