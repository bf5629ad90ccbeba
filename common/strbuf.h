/*
 * strbuf.h: a growable, always NUL-terminated string buffer, used to build
 * SQL text from catalog identifiers and to format output lines.
 */
#ifndef STRBUF_H
#define STRBUF_H

#include "ax.h"

#include <stddef.h>

struct strbuf {
    char *buf; /* owned; never NULL after sb_init */
    size_t len;
    size_t cap;
};

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_append(struct strbuf *sb, const char *s);
void sb_appendn(struct strbuf *sb, const char *s, size_t n);
void sb_appendc(struct strbuf *sb, char c);
void sb_appendf(struct strbuf *sb, const char *fmt, ...) AX_PRINTF(2, 3);
/* Hands the buffer to the caller (who frees it) and resets sb for reuse. */
char *sb_detach(struct strbuf *sb);
/* Hands the buffer to the caller (who frees it); sb is done with. */
char *sb_finish(struct strbuf *sb);

/* Appends a PostgreSQL array literal ({"a","b"}) of the given strings, for a
 * text[] parameter value. */
void sb_append_pg_text_array(struct strbuf *sb, char *const *items, size_t n);

/* The text[] literal of n strings the caller allocated, which it frees (and the array). */
char *pg_text_array_taking(char **items, size_t n);

#endif
