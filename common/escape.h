/*
 * escape.h: writing text safely into the documents people read and the
 * files programs load: CSV fields (RFC 4180) and HTML text.
 */
#ifndef ESCAPE_H
#define ESCAPE_H

#include "ax.h"

#include <stdbool.h>
#include <stdio.h>

/* One CSV field (NULL is empty), quoted when needed, then "," or, for the
 * last field of a record, CRLF.  A field a spreadsheet would take for a
 * formula (=, +, -, @, tab or CR first, and not a number) is written as
 * text, with a leading apostrophe. */
void esc_csv_field(FILE *out, const char *s, bool last);

/* Text as HTML: & < > " ' escaped; control characters shown as \xNN. */
void esc_html(FILE *out, const char *s);

/* printf into HTML text. */
void esc_htmlf(FILE *out, const char *fmt, ...) AX_PRINTF(2, 3);

/* A name or message for a text document or a terminal: control characters
 * (a newline would forge a line, an escape sequence drive the terminal)
 * written \xNN.  NULL is "".  Caller frees. */
char *esc_text(const char *s);

#endif
