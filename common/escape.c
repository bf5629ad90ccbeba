/*
 * escape.c: CSV fields and HTML text.
 */
#include "escape.h"
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Whether s is a number a spreadsheet reads as one (a leading - or + is then no formula). */
static bool is_number(const char *s)
{
    char *end;
    if (!*s)
        return false;
    errno = 0;
    (void)strtod(s, &end);
    return *end == '\0' && errno == 0;
}

void esc_csv_field(FILE *out, const char *s, bool last)
{
    s = s ? s : "";
    /* a cell a spreadsheet would read as a formula (=HYPERLINK(...), +, -, @, a tab or a carriage return
     * first) is written as text: a leading apostrophe, as spreadsheet-safe CSV writers do */
    bool formula = *s && strchr("=+-@\t\r", *s) && !is_number(s);
    if (formula || strpbrk(s, ",\"\r\n")) {
        fputc('"', out);
        if (formula)
            fputc('\'', out);
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                fputc('"', out);
            fputc(*p, out);
        }
        fputc('"', out);
    } else {
        fputs(s, out);
    }
    fputs(last ? "\r\n" : ",", out);
}

void esc_html(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(out, "\\x%02x", *p);
            else
                fputc(*p, out);
        }
    }
}

void esc_htmlf(FILE *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = ax_vasprintf(fmt, ap);
    va_end(ap);
    esc_html(out, text);
    free(text);
}

char *esc_text(const char *s)
{
    struct strbuf sb;
    sb_init(&sb);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            sb_appendf(&sb, "\\x%02x", *p);
        else
            sb_appendc(&sb, (char)*p);
    }
    return sb_finish(&sb);
}
