/*
 * strbuf.c: growable string buffer.
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct strbuf *sb)
{
    sb->cap = 64;
    sb->len = 0;
    sb->buf = ax_malloc(sb->cap);
    sb->buf[0] = '\0';
}

void sb_free(struct strbuf *sb)
{
    free(sb->buf);
    sb->buf = NULL;
    sb->len = sb->cap = 0;
}

void sb_reset(struct strbuf *sb)
{
    sb->len = 0;
    sb->buf[0] = '\0';
}

static void sb_grow(struct strbuf *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    sb->buf = ax_realloc(sb->buf, cap);
    sb->cap = cap;
}

void sb_appendn(struct strbuf *sb, const char *s, size_t n)
{
    sb_grow(sb, n);
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void sb_append(struct strbuf *sb, const char *s)
{
    sb_appendn(sb, s, strlen(s));
}

void sb_appendc(struct strbuf *sb, char c)
{
    sb_appendn(sb, &c, 1);
}

void sb_appendf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    sb_grow(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

char *sb_detach(struct strbuf *sb)
{
    char *out = sb->buf;
    sb_init(sb);
    return out;
}

char *sb_finish(struct strbuf *sb)
{
    char *out = sb->buf;
    sb->buf = NULL;
    sb->len = sb->cap = 0;
    return out;
}

void sb_append_pg_text_array(struct strbuf *sb, char *const *items, size_t n)
{
    sb_appendc(sb, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_appendc(sb, ',');
        sb_appendc(sb, '"');
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                sb_appendc(sb, '\\');
            sb_appendc(sb, *p);
        }
        sb_appendc(sb, '"');
    }
    sb_appendc(sb, '}');
}

char *pg_text_array_taking(char **items, size_t n)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append_pg_text_array(&sb, items, n);
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
    return sb_finish(&sb);
}
