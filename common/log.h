/*
 * log.h: diagnostics on stderr (and optionally syslog).
 *
 * Every message is one line, written with a single write(2) so that lines of
 * concurrent workers never interleave.  Messages are lowercase and carry no
 * final period; they never contain a connection string (callers print tenant
 * names, not conninfo).
 */
#ifndef LOG_H
#define LOG_H

#include "ax.h"

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* level: the most verbose level printed on stderr. */
void log_init(enum log_level level);
void log_set_syslog(bool enabled);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) AX_PRINTF(2, 3);

/* A warning that -q does not hide: something an operator must fix (a typo, a missing directory). */
void log_loud_warning(const char *fmt, ...) AX_PRINTF(1, 2);

/* The first error logged by this process (without prefix), or NULL. */
const char *log_first_error(void);

/* Sends the stderr lines (newline included) to sink(arg, ...) instead; NULL restores stderr. */
typedef void (*log_sink_fn)(void *arg, enum log_level level, const char *line, size_t len);
void log_set_sink(log_sink_fn sink, void *arg);

/* A line another process logged (as it would have written it), written here: the first error is noted. */
void log_relay(enum log_level level, const char *line, size_t len);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
