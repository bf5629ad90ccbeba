/*
 * definition.h: a form's readable definition, the w.c.s. JSON export served
 * at /api/formdefs/<slug>/schema, stored as <schemas>/<tenant>/<slug>.json.
 *
 * Only what classification and the final-status test need is kept: the data
 * fields (with the column each maps to and its "anonymise" mode) and the
 * workflow statuses.  A definition that cannot be trusted to map fields to
 * columns (malformed JSON, fields without ids, an unknown anonymise mode) is
 * refused as a whole.
 */
#ifndef DEFINITION_H
#define DEFINITION_H

#include <stdbool.h>
#include <stddef.h>

enum def_anonymise {
    DEF_ANON_NO = 0,       /* "no" or false: the value is kept */
    DEF_ANON_FINAL,        /* "final" or true */
    DEF_ANON_INTERMEDIATE, /* "intermediate" */
};

struct def_field {
    char *id;
    char *column; /* "f" + id, "-" turned to "_", lower-cased; NULL for a block's subfield */
    char *type;
    char *label;   /* may be NULL */
    char *varname; /* may be NULL */
    enum def_anonymise anonymise;
    bool anonymise_explicit; /* false when the w.c.s. default for the type applied */
    bool backoffice;         /* a workflow (backoffice) field */
    bool block;              /* type "block" (or legacy "block:<slug>") */
    struct def_field *subs;  /* a block's subfields (schema.fields of the export), keyed by id in its data */
    size_t nsubs;
    int max_items;           /* a block's "max_items" (how many elements it may hold); 0: unknown */
};

struct def_status {
    char *id; /* without the "wf-" prefix */
    char *name;
    bool endpoint;
};

struct definition {
    char *path;
    char *slug; /* url_name */
    char *name;
    bool id_template; /* a non-empty id_template: id_display may hold field values */
    struct def_field *fields;
    size_t nfields;
    struct def_status *statuses;
    size_t nstatuses;
};

/* Parses a definition held in memory.  path is only used in messages.
 * Returns 0 and a new definition in *out (caller frees with def_free), or
 * AX_ERR_CONFIG with one line in err. */
int def_parse(const char *text, size_t len, const char *path, struct definition **out, char *err, size_t errlen);

void def_free(struct definition *def);

/* The column a field id maps to (caller frees). */
char *def_column_for_id(const char *id);

/* The definitions of one tenant: every <dir>/<slug>.json. */
struct def_set {
    struct definition **defs;
    size_t n;
};

/*
 * Loads every *.json file of dir.  A missing directory is an empty set; a
 * file that does not parse, or whose url_name is not its file name, fails the
 * whole set (AX_ERR_CONFIG, one line in err).
 */
int def_set_load(const char *dir, struct def_set *set, char *err, size_t errlen);
void def_set_free(struct def_set *set);
const struct definition *def_set_find(const struct def_set *set, const char *slug);

const struct def_field *def_find_column(const struct definition *def, const char *column);
const struct def_status *def_find_status(const struct definition *def, const char *status_id);

#endif
