#ifndef DRV_ENV_H
#define DRV_ENV_H

/* Which of drover's own environment variables a handler's child process may see. Apart from
 * cli.c so that the spec's HTTP handler (handler.c) can ask without depending on the command
 * line layer. */

#include <stddef.h>

/* The environment variables drover reads to reach Redis (NULL-terminated): DROVER_REDIS_URL
 * (which may hold a password), DROVER_PREFIX, DROVER_CONNECT_TIMEOUT_MS and
 * DROVER_COMMAND_TIMEOUT_MS. A handler's child process never inherits them, unless the
 * worker gives one back with --pass-env. */
extern const char *const drv_conn_env[];

/* 1 when 'name' (n bytes) is one of drv_conn_env. */
int drv_conn_env_is(const char *name, size_t n);

/* 1 when the environment entry "NAME=VALUE" may go to a handler's child: it is not one of
 * drv_conn_env, or its NAME is in 'pass' ("NAME[,NAME]", NULL for none). */
int drv_env_for_child(const char *entry, const char *pass);

/* Checks a --pass-env list: names of drv_conn_env separated by commas. 0, or -1 with 'why'. */
int drv_pass_env_check(const char *pass, char *why, size_t whylen);

#endif
