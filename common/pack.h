/*
 * pack.h: structs written into bytes and read back, by a table of their
 * fields: how a worker process hands what it found back to its parent
 * (the report's findings for a tenant).  Both ends are the same build of
 * the program, so the bytes are in the machine's own order; only the
 * lengths are checked on reading.
 */
#ifndef PACK_H
#define PACK_H

#include "strbuf.h"

#include <stdbool.h>
#include <stddef.h>

enum pack_kind {
    PACK_STR,  /* char * (NULL kept), owned: unpacking allocates */
    PACK_LL,   /* long long */
    PACK_INT,  /* int (and enums) */
    PACK_BOOL, /* bool */
    PACK_DBL,  /* double */
};

struct pack_field {
    enum pack_kind kind;
    size_t offset; /* offsetof() the member */
    size_t count;  /* elements of an array member (1 for a scalar) */
};

#define PACK_FIELD(kind, type, member) {(kind), offsetof(type, member), 1}
#define PACK_ARRAY(kind, type, member, n) {(kind), offsetof(type, member), (n)}

/* Appends obj's fields. */
void pack_fields(struct strbuf *out, const void *obj, const struct pack_field *fields, size_t n);
void pack_size(struct strbuf *out, size_t n);

/* Bytes being read back. */
struct unpack {
    const char *p;
    size_t left;
    bool bad; /* they ended too soon: what was read since is zero or NULL */
};

/* Reads obj's fields (its strings allocated); false when the bytes ran out. */
bool unpack_fields(struct unpack *in, void *obj, const struct pack_field *fields, size_t n);
size_t unpack_size(struct unpack *in);

#endif
