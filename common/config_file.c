/*
 * config_file.c: a configuration (or definition) file read safely: a
 * regular file of bounded size, and a text libconfig can be trusted with
 * (no NUL, no integer past 64 bits, no @include).
 */
#include "config_loader.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *cfg_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    /* non-blocking: a FIFO must not hang the run before it is refused */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        close(fd);
        return NULL;
    }
    struct strbuf sb;
    char chunk[65536];
    ssize_t n;
    sb_init(&sb);
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || sb.len + (size_t)n > max) {
            if (n < 0)
                snprintf(err, errlen, "%s", strerror(errno));
            else
                snprintf(err, errlen, "larger than %zu %s", max >= 1024 * 1024 ? max / (1024 * 1024) : max,
                         max >= 1024 * 1024 ? "MiB" : "bytes");
            close(fd);
            sb_free(&sb);
            return NULL;
        }
        sb_appendn(&sb, chunk, (size_t)n);
    }
    close(fd);
    *len = sb.len;
    return sb.buf; /* ownership passes to the caller */
}
/* The line (1-based) of offset off. */
static int line_at(const char *text, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off; i++)
        line += text[i] == '\n';
    return line;
}
/*
 * libconfig reads an integer past 64 bits as -1 (then "-1 is out of
 * range" names a number nobody wrote): such literals are found first, in
 * the text, outside strings and comments.
 */
static int check_integers(const char *path, const char *text, char *err, size_t errlen)
{
    for (const char *p = text; *p;) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            p += *p == '"';
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            p = strchrnul(p, '\n');
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            p = end ? end + 2 : p + strlen(p);
        } else if (isdigit((unsigned char)*p) && (p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' ||
                                                                  p[-1] == '.'))) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p, &end, 0);
            bool number = *end != '.' && *end != 'e' && *end != 'E';
            if (number && (errno == ERANGE || v > (unsigned long long)INT64_MAX)) {
                snprintf(err, errlen, "%s:%d: %.*s: integer out of range", path, line_at(text, (size_t)(p - text)),
                         (int)(end - p > 40 ? 40 : end - p), p);
                return AX_ERR_CONFIG;
            }
            p = end > p ? end : p + 1;
        } else {
            p++;
        }
    }
    return AX_OK;
}
/*
 * What libconfig would take silently: a NUL byte (the rest of a string, or
 * of the file, ignored) and @include (a file the permission check never
 * saw, outside the configuration digest): both refused.
 */
int cfg_check_text(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        snprintf(err, errlen, "%s:%d: a NUL byte in the configuration file", path, line_at(text, (size_t)(nul - text)));
        return AX_ERR_CONFIG;
    }
    if (check_integers(path, text, err, errlen) != AX_OK)
        return AX_ERR_CONFIG;
    for (size_t i = 0; i < len; i = (size_t)(strchrnul(text + i, '\n') - text) + 1) {
        size_t p = i + strspn(text + i, " \t");
        if (strncmp(text + p, "@include", 8) == 0) {
            snprintf(err, errlen, "%s:%d: @include is not supported: keep the configuration in one file (its owner"
                                  " and mode are checked)", path, line_at(text, p));
            return AX_ERR_CONFIG;
        }
        if (!text[i])
            break;
    }
    return AX_OK;
}
