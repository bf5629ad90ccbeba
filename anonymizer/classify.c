/*
 * classify.c: column classification (see classify.h for the precedence).
 */
#include "classify.h"
#include "ax.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* w.c.s. columns that hold no personal data (wcs-schema.md). */
static const char *const system_columns[] = {
    "id",           "receipt_time", "last_update_time",      "status",
    "anonymised",   "page_no",      "page_id",               "id_display",
    "backoffice_submission", "submission_channel", "criticality_level", "uuid",
    "workflow_processing_timestamp", "workflow_processing_afterjob_id", "test_result_id",
};

/* Submitter and workflow metadata, set to NULL by the final anonymisation. */
static const char *const metadata_columns[] = {
    "user_id",          "user_label",          "workflow_data",         "prefilling_data",
    "workflow_roles",   "workflow_merged_roles_dict", "workflow_roles_array", "concerned_roles_array",
    "actions_roles_array", "submission_context", "submission_agent_id", "tracking_code",
    "digests",          "fts",                 "auto_geoloc",           "relations_data",
};

const char *col_class_str(enum col_class c)
{
    switch (c) {
    case COL_SYSTEM: return "system";
    case COL_METADATA: return "metadata";
    case COL_STATISTICS: return "statistics";
    case COL_KEEP: return "keep";
    case COL_BLANK: return "blank";
    case COL_UNCLASSIFIED: return "unclassified";
    case COL_BLOCK: return "keep (trim)";
    }
    return "?";
}

const char *col_reason_str(enum col_reason r)
{
    switch (r) {
    case REASON_SYSTEM: return "w.c.s. technical column";
    case REASON_METADATA: return "submitter or workflow metadata";
    case REASON_STATISTICS: return "trimmed to done-datetime and kept fields";
    case REASON_CONFIG_KEEP: return "configuration: keep";
    case REASON_CONFIG_BLANK: return "configuration: blank";
    case REASON_DEF_NO: return "definition: anonymise no";
    case REASON_DEF_FINAL: return "definition: anonymise final";
    case REASON_DEF_INTERMEDIATE: return "definition: anonymise intermediate";
    case REASON_NO_DEFINITION: return "no definition for this form";
    case REASON_NOT_IN_DEFINITION: return "not in the definition";
    case REASON_UNKNOWN_COLUMN: return "unknown column";
    case REASON_BLOCK_DISPLAY: return "display of a block whose subfields are removed";
    case REASON_STRUCTURED: return "structured value of a kept item (keep it by name)";
    }
    return "?";
}

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

bool classify_is_field_column(const char *name)
{
    if (name[0] != 'f' || name[1] == '\0')
        return false;
    if (in_list(name, system_columns, AX_ARRAY_LEN(system_columns)) ||
        in_list(name, metadata_columns, AX_ARRAY_LEN(metadata_columns)))
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!(isdigit((unsigned char)*p) || islower((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

enum col_suffix { SUFFIX_NONE = 0, SUFFIX_DISPLAY, SUFFIX_STRUCTURED };

/* The field column a column belongs to ("f12" for "f12_display"), and which of its values it holds. */
static char *base_column(const char *name, enum col_suffix *suffix)
{
    static const struct {
        const char *text;
        enum col_suffix suffix;
    } suffixes[] = {{"_display", SUFFIX_DISPLAY}, {"_structured", SUFFIX_STRUCTURED}};
    size_t len = strlen(name);
    for (size_t i = 0; i < AX_ARRAY_LEN(suffixes); i++) {
        size_t sl = strlen(suffixes[i].text);
        if (len > sl + 1 && strcmp(name + len - sl, suffixes[i].text) == 0) {
            if (suffix)
                *suffix = suffixes[i].suffix;
            return ax_strndup(name, len - sl);
        }
    }
    if (suffix)
        *suffix = SUFFIX_NONE;
    return ax_strdup(name);
}

static const struct def_field *field_of_column(const struct definition *def, const char *name)
{
    const struct def_field *f = def_find_column(def, name);
    if (f)
        return f;
    char *base = base_column(name, NULL);
    f = def_find_column(def, base);
    free(base);
    return f;
}

/* Does name (a varname or an id) designate field f? */
static bool names_field(const char *name, size_t len, const struct def_field *f)
{
    return (f->varname && strlen(f->varname) == len && strncmp(f->varname, name, len) == 0) ||
           (strlen(f->id) == len && strncmp(f->id, name, len) == 0);
}

/* Does a configuration name designate this column (its field, or its id when there is no definition)? */
static bool name_designates(const char *name, const struct column *col)
{
    if (col->field)
        return names_field(name, strlen(name), col->field);
    char *want = def_column_for_id(name);
    char *base = base_column(col->name, NULL);
    bool match = strcmp(want, col->name) == 0 || strcmp(want, base) == 0;
    free(want);
    free(base);
    return match;
}

/* Does a configuration name designate a structured column explicitly ("f2_structured", "motif_structured")? */
static bool name_designates_structured(const char *name, const struct column *col)
{
    static const char sfx[] = "_structured";
    size_t len = strlen(name), sl = sizeof sfx - 1;
    if (strcmp(name, col->name) == 0)
        return true;
    if (len <= sl || strcmp(name + len - sl, sfx) != 0)
        return false;
    if (col->field)
        return names_field(name, len - sl, col->field);
    char *id = ax_strndup(name, len - sl), *want = def_column_for_id(id), *base = base_column(col->name, NULL);
    bool match = strcmp(want, base) == 0;
    free(id);
    free(want);
    free(base);
    return match;
}

static bool any_designates(char *const *names, size_t n, const struct column *col)
{
    for (size_t i = 0; i < n; i++)
        if (name_designates(names[i], col))
            return true;
    return false;
}

static bool any_designates_structured(char *const *names, size_t n, const struct column *col)
{
    for (size_t i = 0; i < n; i++)
        if (name_designates_structured(names[i], col))
            return true;
    return false;
}

/*
 * Does name ("<block>.<subfield>", each by varname or id, the subfield
 * optionally with "_structured") designate this subfield of this block?
 * *structured: it named the structured value.
 */
static bool name_designates_sub(const char *name, const struct def_field *block, const struct def_field *sub,
                                bool *structured)
{
    const char *dot = strchr(name, '.');
    if (!dot || !names_field(name, (size_t)(dot - name), block))
        return false;
    const char *rest = dot + 1;
    size_t len = strlen(rest), sl = strlen("_structured");
    *structured = false;
    if (names_field(rest, len, sub))
        return true;
    if (len > sl && strcmp(rest + len - sl, "_structured") == 0 && names_field(rest, len - sl, sub)) {
        *structured = true;
        return true;
    }
    return false;
}

/* How the definition classifies a field: keep or blank, and why. */
static void from_definition(const struct def_field *f, enum col_class *cls, enum col_reason *reason)
{
    switch (f->anonymise) {
    case DEF_ANON_NO:
        *cls = COL_KEEP;
        *reason = REASON_DEF_NO;
        return;
    case DEF_ANON_FINAL:
        *cls = COL_BLANK;
        *reason = REASON_DEF_FINAL;
        return;
    case DEF_ANON_INTERMEDIATE:
        *cls = COL_BLANK;
        *reason = REASON_DEF_INTERMEDIATE;
        return;
    }
}

/* The subfields of a kept block: configuration first, then their own anonymise mode. */
static void classify_subs(struct column *c, const struct cfg_resolved *pol)
{
    const struct def_field *block = c->field;
    c->nsubs = block->nsubs;
    c->subs = ax_calloc(block->nsubs, sizeof *c->subs);
    for (size_t i = 0; i < block->nsubs; i++) {
        struct col_sub *s = &c->subs[i];
        s->field = &block->subs[i];
        bool structured, blanked = false, kept = false;
        for (size_t k = 0; pol && k < pol->nblank; k++)
            blanked |= name_designates_sub(pol->blank[k], block, s->field, &structured) && !structured;
        for (size_t k = 0; pol && k < pol->nkeep; k++) {
            if (!name_designates_sub(pol->keep[k], block, s->field, &structured))
                continue;
            if (structured)
                s->structured_kept = true;
            else
                kept = true;
        }
        enum col_class cls = COL_BLANK;
        if (blanked) {
            s->reason = REASON_CONFIG_BLANK;
            s->kept = false;
        } else if (kept) {
            s->reason = REASON_CONFIG_KEEP;
            s->kept = true;
        } else {
            from_definition(s->field, &cls, &s->reason);
            s->kept = cls == COL_KEEP;
        }
        s->structured_kept &= s->kept;
    }
}

/* A field column: configuration, then the definition; f<id>_structured and blocks refined. */
static void classify_field(struct column *c, const struct definition *def, const struct cfg_resolved *pol)
{
    enum col_suffix suffix;
    free(base_column(c->name, &suffix));
    c->field = def ? field_of_column(def, c->name) : NULL;
    if (pol && (any_designates(pol->blank, pol->nblank, c) ||
                (suffix == SUFFIX_STRUCTURED && any_designates_structured(pol->blank, pol->nblank, c)))) {
        c->cls = COL_BLANK;
        c->reason = REASON_CONFIG_BLANK;
    } else if (pol && any_designates(pol->keep, pol->nkeep, c)) {
        c->cls = COL_KEEP;
        c->reason = REASON_CONFIG_KEEP;
    } else if (c->field) {
        from_definition(c->field, &c->cls, &c->reason);
    } else {
        c->cls = COL_UNCLASSIFIED;
        c->reason = def ? REASON_NOT_IN_DEFINITION : REASON_NO_DEFINITION;
    }
    if (c->cls != COL_KEEP)
        return;
    if (suffix == SUFFIX_STRUCTURED) {
        /* the whole record of the chosen item: kept only when asked for by name */
        if (pol && any_designates_structured(pol->keep, pol->nkeep, c)) {
            c->reason = REASON_CONFIG_KEEP;
        } else {
            c->cls = COL_BLANK;
            c->reason = REASON_STRUCTURED;
        }
    } else if (c->field && c->field->block) {
        if (suffix == SUFFIX_DISPLAY) {
            /* computed from every subfield, the removed ones included */
            c->cls = COL_BLANK;
            c->reason = REASON_BLOCK_DISPLAY;
        } else {
            c->cls = COL_BLOCK;
            classify_subs(c, pol);
        }
    }
}

void classify_columns(struct column *cols, size_t ncols, const struct definition *def,
                      const struct cfg_resolved *pol)
{
    for (size_t i = 0; i < ncols; i++) {
        struct column *c = &cols[i];
        c->field = NULL;
        if (in_list(c->name, system_columns, AX_ARRAY_LEN(system_columns))) {
            c->cls = COL_SYSTEM;
            c->reason = REASON_SYSTEM;
        } else if (in_list(c->name, metadata_columns, AX_ARRAY_LEN(metadata_columns)) ||
                   strncmp(c->name, "geoloc_", 7) == 0) {
            c->cls = COL_METADATA;
            c->reason = REASON_METADATA;
        } else if (strcmp(c->name, "statistics_data") == 0) {
            c->cls = COL_STATISTICS;
            c->reason = REASON_STATISTICS;
        } else if (!classify_is_field_column(c->name)) {
            c->cls = COL_UNCLASSIFIED;
            c->reason = REASON_UNKNOWN_COLUMN;
        } else {
            classify_field(c, def, pol);
        }
    }
}

void classify_columns_free(struct column *cols, size_t ncols)
{
    for (size_t i = 0; i < ncols; i++) {
        free(cols[i].subs);
        cols[i].subs = NULL;
        cols[i].nsubs = 0;
    }
}

/* Does a configuration name match a field of the definition, or a subfield ("<block>.<sub>")? */
static bool matches_definition(const char *name, const struct definition *def)
{
    for (size_t j = 0; def && j < def->nfields; j++) {
        const struct def_field *f = &def->fields[j];
        if (names_field(name, strlen(name), f))
            return true;
        bool structured;
        for (size_t k = 0; k < f->nsubs; k++)
            if (name_designates_sub(name, f, &f->subs[k], &structured))
                return true;
    }
    return false;
}

static void collect_unmatched(char *const *names, size_t n, const struct column *cols, size_t ncols,
                              const struct definition *def, const char ***out, size_t *count)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < ncols && !found; j++)
            if (classify_is_field_column(cols[j].name) &&
                (name_designates(names[i], &cols[j]) || name_designates_structured(names[i], &cols[j])))
                found = true;
        /* a field of the definition without a column yet is not a typo */
        found = found || matches_definition(names[i], def);
        if (!found) {
            *out = ax_reallocarray(*out, *count + 1, sizeof **out);
            (*out)[(*count)++] = names[i];
        }
    }
}

size_t classify_unmatched_names(const struct column *cols, size_t ncols, const struct definition *def,
                                const struct cfg_resolved *pol, const char ***names)
{
    size_t count = 0;
    *names = NULL;
    collect_unmatched(pol->keep, pol->nkeep, cols, ncols, def, names, &count);
    collect_unmatched(pol->blank, pol->nblank, cols, ncols, def, names, &count);
    return count;
}

char *classify_sub_name(const struct column *block, const struct col_sub *sub)
{
    return ax_asprintf("%s.%s", block->name, sub->field->id);
}

char *classify_sub_varname(const struct column *block, const struct col_sub *sub)
{
    if (!block->field || !block->field->varname || !sub->field->varname)
        return NULL;
    return ax_asprintf("%s.%s", block->field->varname, sub->field->varname);
}

/* Varnames that name a person whatever the form: keeping them is almost certainly a mistake. */
static const char *const personal_varnames[] = {
    "nom", "prenom", "nom_famille", "nom_naissance", "email", "courriel", "mail", "telephone", "tel", "portable",
    "mobile", "adresse", "address", "name", "first_name", "last_name", "phone",
};

const char *classify_personal_by_nature(const struct def_field *fld, char *why_buf, size_t n)
{
    if (!fld)
        return NULL;
    if (fld->type && strcmp(fld->type, "email") == 0)
        return "an email field";
    for (size_t v = 0; fld->varname && v < sizeof personal_varnames / sizeof *personal_varnames; v++)
        if (strcmp(fld->varname, personal_varnames[v]) == 0) {
            snprintf(why_buf, n, "varname %s", fld->varname);
            return why_buf;
        }
    return NULL;
}
