/*
 * ax.h: status codes shared by every module.
 *
 * Functions return 0 on success or a negative ax_status; only main() maps a
 * status to an exit code.  The message that explains a failure is written
 * where it is detected (through log.h or into a caller's error buffer).
 */
#ifndef AX_H
#define AX_H

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

enum ax_status {
    AX_OK = 0,
    AX_ERR_NOMEM = -1,       /* allocation failed */
    AX_ERR_USAGE = -2,       /* bad command line */
    AX_ERR_CONFIG = -3,      /* bad configuration or form definition */
    AX_ERR_IO = -4,          /* file could not be read */
    AX_ERR_DB = -5,          /* server error, or connection lost */
    AX_ERR_CONNECT = -6,     /* tenant could not be reached */
    AX_ERR_LOCKED = -7,      /* another run holds the tenant lock */
    AX_ERR_INTERRUPTED = -8, /* stopped by a signal or the time budget */
    AX_ERR_DATA = -9,        /* tenant data the tool cannot handle safely */
};

const char *ax_status_str(int status);

#define AX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* printf-style checking for our variadic helpers */
#define AX_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))

/* Allocation helpers that abort on out-of-memory: the tool cannot do anything
 * useful without memory, and aborting mid-batch is safe (the transaction rolls
 * back). */
void *ax_malloc(size_t size);
void *ax_calloc(size_t n, size_t size);
void *ax_realloc(void *ptr, size_t size);
void *ax_reallocarray(void *ptr, size_t n, size_t size);
char *ax_strdup(const char *s);
char *ax_strndup(const char *s, size_t n);
char *ax_asprintf(const char *fmt, ...) AX_PRINTF(1, 2);
char *ax_vasprintf(const char *fmt, va_list ap) AX_PRINTF(1, 0);

/* write(2) until everything is written or the reader is gone (a broken pipe, a closed terminal: ignored). */
void ax_write_all(int fd, const void *buf, size_t len);

/* The signals that stop a run cleanly (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1), as a set. */
void ax_stop_signals(sigset_t *set);

#endif
