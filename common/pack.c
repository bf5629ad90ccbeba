/*
 * pack.c: see pack.h.
 */
#include "pack.h"
#include "ax.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t NULL_STRING = UINT32_MAX;

void pack_size(struct strbuf *out, size_t n)
{
    uint64_t v = n;
    sb_appendn(out, (const char *)&v, sizeof v);
}

static void pack_one(struct strbuf *out, enum pack_kind kind, const char *member)
{
    switch (kind) {
    case PACK_STR: {
        const char *s = *(char *const *)member;
        uint32_t len = s ? (uint32_t)strlen(s) : NULL_STRING;
        sb_appendn(out, (const char *)&len, sizeof len);
        if (s)
            sb_appendn(out, s, len);
        break;
    }
    case PACK_LL: sb_appendn(out, member, sizeof(long long)); break;
    case PACK_INT: sb_appendn(out, member, sizeof(int)); break;
    case PACK_BOOL: sb_appendn(out, member, sizeof(bool)); break;
    case PACK_DBL: sb_appendn(out, member, sizeof(double)); break;
    }
}

static size_t kind_size(enum pack_kind kind)
{
    switch (kind) {
    case PACK_STR: return sizeof(char *);
    case PACK_LL: return sizeof(long long);
    case PACK_INT: return sizeof(int);
    case PACK_BOOL: return sizeof(bool);
    case PACK_DBL: return sizeof(double);
    }
    return 0;
}

void pack_fields(struct strbuf *out, const void *obj, const struct pack_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < fields[i].count; k++)
            pack_one(out, fields[i].kind, (const char *)obj + fields[i].offset + k * kind_size(fields[i].kind));
}

/* The next len bytes, or NULL when they run out (in->bad set). */
static const char *take(struct unpack *in, size_t len)
{
    if (in->bad || in->left < len) {
        in->bad = true;
        return NULL;
    }
    const char *p = in->p;
    in->p += len;
    in->left -= len;
    return p;
}

size_t unpack_size(struct unpack *in)
{
    uint64_t v = 0;
    const char *p = take(in, sizeof v);
    if (p)
        memcpy(&v, p, sizeof v);
    /* a count no bytes could hold is a short read */
    if (v > in->left) {
        in->bad = true;
        return 0;
    }
    return (size_t)v;
}

static void unpack_one(struct unpack *in, enum pack_kind kind, char *member)
{
    if (kind != PACK_STR) {
        const char *p = take(in, kind_size(kind));
        if (p)
            memcpy(member, p, kind_size(kind));
        return;
    }
    uint32_t len;
    const char *p = take(in, sizeof len);
    char *s = NULL;
    if (p) {
        memcpy(&len, p, sizeof len);
        const char *text = len == NULL_STRING ? NULL : take(in, len);
        if (text) {
            /* not NUL-terminated in the bytes: copied by length */
            s = ax_malloc((size_t)len + 1);
            memcpy(s, text, len);
            s[len] = '\0';
        }
    }
    memcpy(member, &s, sizeof s);
}

bool unpack_fields(struct unpack *in, void *obj, const struct pack_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < fields[i].count; k++)
            unpack_one(in, fields[i].kind, (char *)obj + fields[i].offset + k * kind_size(fields[i].kind));
    return !in->bad;
}
