/*
 * escape.h: writing text safely into the documents people read and the
 * files programs load: CSV fields (RFC 4180) and HTML text.
 */
#ifndef ESCAPE_H
#define ESCAPE_H

#include "ax.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

/* One CSV field (NULL is empty), quoted when needed, then "," or, for the
 * last field of a record, CRLF.  A field a spreadsheet would take for a
 * formula (=, +, -, @, tab or CR first, and not a number) is written as
 * text, with a leading apostrophe. */
void esc_csv_field(FILE *out, const char *s, bool last);

/* Text as HTML: & < > " ' escaped; control characters shown as \xNN;
 * bytes that are not valid UTF-8 written U+FFFD. */
void esc_html(FILE *out, const char *s);

/* printf into HTML text. */
void esc_htmlf(FILE *out, const char *fmt, ...) AX_PRINTF(2, 3);

/* A name or message for a text document or a terminal: control characters
 * (a newline would forge a line, an escape sequence drive the terminal)
 * written \xNN, bytes that are not valid UTF-8 written U+FFFD.  NULL is "".  Caller frees. */
char *esc_text(const char *s);

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when the bytes
 * there are not one (truncated, overlong, a surrogate, past U+10FFFF). */
size_t esc_utf8_len(const unsigned char *s);

/* s with every byte that is not part of valid UTF-8 replaced by U+FFFD:
 * text from outside (a definition, a database name) in a document that
 * must be UTF-8 (JSON, HTML).  NULL is NULL.  Caller frees. */
char *esc_utf8(const char *s);

/* A JSON string of s made valid UTF-8 (esc_utf8); NULL gives NULL (null). */
json_object *esc_json_string(const char *s);

/* A JSON document as the tool prints them (indented, "/" unescaped), then a line end. */
void esc_json_print(FILE *out, json_object *root);

#endif
