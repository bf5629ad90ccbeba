/*
 * classify.h: what happens to each column of a form's main table.
 *
 * Precedence, first match wins:
 *   1. the w.c.s. columns this tool knows (system columns kept, personal
 *      metadata stripped, statistics_data trimmed);
 *   2. the configuration's "blank" then "keep" lists (by varname or field id);
 *   3. the definition's "anonymise" mode ("no"/false: keep; "final",
 *      "intermediate", true: blank);
 *   4. anything else is unclassified: blanked (privacy by default) and
 *      reported.
 * Two refinements of "keep":
 *   - a kept block keeps only its kept subfields (each classified by the same
 *     rules, named "<block>.<subfield>" by varname or id); its display value
 *     and digests, computed from all subfields, are blanked;
 *   - the structured value of a kept item field (f<id>_structured, the whole
 *     record of the chosen item) is blanked unless keep names that column
 *     explicitly ("f<id>_structured", "<varname>_structured").
 */
#ifndef CLASSIFY_H
#define CLASSIFY_H

#include "config.h"
#include "definition.h"

#include <stdbool.h>
#include <stddef.h>

enum col_class {
    COL_SYSTEM = 0,   /* technical or statistical, not personal: kept */
    COL_METADATA,     /* submitter / workflow metadata: set to NULL */
    COL_STATISTICS,   /* statistics_data: trimmed to done-datetime and kept fields */
    COL_KEEP,         /* field value kept */
    COL_BLANK,        /* field value set to NULL */
    COL_UNCLASSIFIED, /* nobody said: set to NULL and reported */
    COL_BLOCK,        /* a kept block: only its kept subfields stay in every element */
};

enum col_reason {
    REASON_SYSTEM = 0,
    REASON_METADATA,
    REASON_STATISTICS,
    REASON_CONFIG_KEEP,
    REASON_CONFIG_BLANK,
    REASON_DEF_NO,
    REASON_DEF_FINAL,
    REASON_DEF_INTERMEDIATE,
    REASON_NO_DEFINITION,     /* a field column, and no definition for the form */
    REASON_NOT_IN_DEFINITION, /* a field column the definition does not know */
    REASON_UNKNOWN_COLUMN,    /* not a w.c.s. column this tool knows */
    REASON_BLOCK_DISPLAY,     /* display value of a trimmed block */
    REASON_STRUCTURED,        /* structured value of a kept item, not kept explicitly */
};

/* A block's subfield, classified like a field. */
struct col_sub {
    const struct def_field *field; /* borrowed from the definition */
    bool kept;
    enum col_reason reason;
    bool structured_kept; /* its "<id>_structured" value is kept too (named explicitly) */
};

struct column {
    char *name;
    char *qname; /* quoted for SQL (PQescapeIdentifier), set at discovery; may be NULL elsewhere */
    char *type; /* format_type() of the column */
    bool notnull;
    enum col_class cls;
    enum col_reason reason;
    const struct def_field *field; /* borrowed from the definition; may be NULL */
    struct col_sub *subs;          /* COL_BLOCK: its subfields (owned; classify_columns_free) */
    size_t nsubs;
};

const char *col_class_str(enum col_class c);

/* Whether a field is personal by nature whatever its form says: an email
 * field, or a varname such as nom, prenom, email, telephone, adresse.
 * NULL when it is not; else why ("an email field", "varname nom"), static
 * or in why_buf. */
const char *classify_personal_by_nature(const struct def_field *fld, char *why_buf, size_t n);
const char *col_reason_str(enum col_reason r);

/* True when the class means "set to NULL". */
static inline bool col_is_nulled(enum col_class c)
{
    return c == COL_METADATA || c == COL_BLANK || c == COL_UNCLASSIFIED;
}

/*
 * Classifies every column.  def may be NULL (no definition for the form).
 * pol gives the configuration's keep/blank lists.
 */
void classify_columns(struct column *cols, size_t ncols, const struct definition *def,
                      const struct cfg_resolved *pol);
/* Frees what classify_columns allocated in the columns (not the columns). */
void classify_columns_free(struct column *cols, size_t ncols);

/* A kept value of a field: what "keep" keeps (not a trimmed block, whose own value is partly kept). */
static inline bool col_is_kept(enum col_class c)
{
    return c == COL_KEEP || c == COL_BLOCK;
}

/*
 * Names in the configuration's keep/blank lists that match no field of the
 * form, for a warning: returns how many were found and sets *names to a
 * newly allocated array of borrowed strings (caller frees the array only).
 */
size_t classify_unmatched_names(const struct column *cols, size_t ncols, const struct definition *def,
                                const struct cfg_resolved *pol, const char ***names);

/* How reports name a block's subfield: "f9.1" (caller frees). */
char *classify_sub_name(const struct column *block, const struct col_sub *sub);
/* Its configuration name by varnames, "enfants.prenom", or NULL when either has none (caller frees). */
char *classify_sub_varname(const struct column *block, const struct col_sub *sub);

/* True for a column that stores a field value (f<id>, f<id>_display, ...). */
bool classify_is_field_column(const char *name);

#endif
