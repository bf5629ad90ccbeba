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
    char *valid = esc_utf8(s ? s : "");
    s = valid;
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
    free(valid);
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
            if (*p < 0x20 || *p == 0x7f) {
                fprintf(out, "\\x%02x", *p);
            } else if (*p >= 0x80) {
                /* a document in UTF-8: a byte that is not part of valid UTF-8 is U+FFFD */
                size_t n = esc_utf8_len(p);
                if (n == 0)
                    fputs("\xef\xbf\xbd", out);
                else
                    fwrite(p, 1, n, out);
                p += n ? n - 1 : 0;
            } else {
                fputc(*p, out);
            }
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
        size_t n = *p >= 0x80 ? esc_utf8_len(p) : 1;
        if (*p < 0x20 || *p == 0x7f) {
            sb_appendf(&sb, "\\x%02x", *p);
        } else if (n == 0) {
            sb_append(&sb, "\xef\xbf\xbd"); /* not UTF-8: U+FFFD */
        } else {
            sb_appendn(&sb, (const char *)p, n);
            p += n - 1;
        }
    }
    return sb_finish(&sb);
}

size_t esc_utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned min, cp;
    if ((c & 0xe0) == 0xc0)
        n = 2, min = 0x80, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 3, min = 0x800, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        n = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

char *esc_utf8(const char *s)
{
    if (!s)
        return NULL;
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, "");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = esc_utf8_len(p);
        if (n == 0) {
            sb_append(&sb, "\xef\xbf\xbd"); /* U+FFFD REPLACEMENT CHARACTER */
            p++;
        } else {
            sb_appendn(&sb, (const char *)p, n);
            p += n;
        }
    }
    return sb_finish(&sb);
}

json_object *esc_json_string(const char *s)
{
    if (!s)
        return NULL;
    char *valid = esc_utf8(s);
    json_object *o = json_object_new_string(valid);
    free(valid);
    return o;
}

void esc_json_print(FILE *out, json_object *root)
{
    fputs(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE),
          out);
    fputc('\n', out);
}
