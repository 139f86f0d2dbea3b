#ifndef DRV_LOG_H
#define DRV_LOG_H

/* One line per event on stderr:
 *   2026-05-01T12:00:00.123Z W worker[4242] lease lost job=j1 item=42
 * The macros test the level before evaluating their arguments. */
enum { DRV_LOG_DEBUG = 0, DRV_LOG_INFO, DRV_LOG_WARN, DRV_LOG_ERROR, DRV_LOG_OFF };

extern int drv_log_level; /* the only global in common/ */

/* Sets the program name shown in each line ("worker", "drover"). Borrowed pointer. */
void drv_log_init(const char *prog);
/* Parses "debug", "info", "warn", "error" or "off"; returns -1 if unknown. */
int drv_log_level_parse(const char *s);
void drv_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define DRV_LOG(lvl, ...)                                                                          \
    do {                                                                                           \
        if ((lvl) >= drv_log_level) drv_log_write((lvl), __VA_ARGS__);                             \
    } while (0)
#define drv_debug(...) DRV_LOG(DRV_LOG_DEBUG, __VA_ARGS__)
#define drv_info(...)  DRV_LOG(DRV_LOG_INFO, __VA_ARGS__)
#define drv_warn(...)  DRV_LOG(DRV_LOG_WARN, __VA_ARGS__)
#define drv_error(...) DRV_LOG(DRV_LOG_ERROR, __VA_ARGS__)

#endif
