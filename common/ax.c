/*
 * ax.c: status names and allocation helpers.
 */
#include "ax.h"

#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

const char *ax_status_str(int status)
{
    switch (status) {
    case AX_OK: return "success";
    case AX_ERR_NOMEM: return "out of memory";
    case AX_ERR_USAGE: return "usage error";
    case AX_ERR_CONFIG: return "configuration error";
    case AX_ERR_IO: return "input/output error";
    case AX_ERR_DB: return "database error";
    case AX_ERR_CONNECT: return "connection failed";
    case AX_ERR_LOCKED: return "locked by another run";
    case AX_ERR_INTERRUPTED: return "interrupted";
    case AX_ERR_DATA: return "unsupported tenant data";
    }
    return "unknown error";
}

static void oom(void)
{
    fputs("anonymizer: fatal: out of memory\n", stderr);
    abort();
}

void *ax_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *ax_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *ax_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *ax_reallocarray(void *ptr, size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size)
        oom();
    return ax_realloc(ptr, n * size);
}

char *ax_strdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        oom();
    return p;
}

char *ax_strndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        oom();
    return p;
}

char *ax_vasprintf(const char *fmt, va_list ap)
{
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        oom();
    return out;
}

char *ax_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = ax_vasprintf(fmt, ap);
    va_end(ap);
    return out;
}

void ax_stop_signals(sigset_t *set)
{
    /* a terminal closed, the quit key, a stray signal from a log rotation: none may kill a batch midway */
    static const int stops[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1};
    sigemptyset(set);
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
        sigaddset(set, stops[i]);
}

void ax_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}
