/*
 * classify.c: column classification (see classify.h for the precedence).
 */
#include "classify.h"
#include "ax.h"

#include <ctype.h>
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

/* The field column a column belongs to: "f12" for "f12_display". */
static char *base_column(const char *name)
{
    static const char *const suffixes[] = {"_display", "_structured"};
    size_t len = strlen(name);
    for (size_t i = 0; i < AX_ARRAY_LEN(suffixes); i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl + 1 && strcmp(name + len - sl, suffixes[i]) == 0)
            return ax_strndup(name, len - sl);
    }
    return ax_strdup(name);
}

static const struct def_field *field_of_column(const struct definition *def, const char *name)
{
    const struct def_field *f = def_find_column(def, name);
    if (f)
        return f;
    char *base = base_column(name);
    f = def_find_column(def, base);
    free(base);
    return f;
}

/* Does a configuration name (varname or field id) designate this column? */
static bool name_designates(const char *name, const struct column *col)
{
    if (col->field)
        return (col->field->varname && strcmp(col->field->varname, name) == 0) || strcmp(col->field->id, name) == 0;
    char *want = def_column_for_id(name);
    char *base = base_column(col->name);
    bool match = strcmp(want, col->name) == 0 || strcmp(want, base) == 0;
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

void classify_columns(struct column *cols, size_t ncols, const struct definition *def,
                      const struct cfg_resolved *pol)
{
    for (size_t i = 0; i < ncols; i++) {
        struct column *c = &cols[i];
        c->field = NULL;
        if (in_list(c->name, system_columns, AX_ARRAY_LEN(system_columns))) {
            c->cls = COL_SYSTEM;
            c->reason = REASON_SYSTEM;
            continue;
        }
        if (in_list(c->name, metadata_columns, AX_ARRAY_LEN(metadata_columns)) || strncmp(c->name, "geoloc_", 7) == 0) {
            c->cls = COL_METADATA;
            c->reason = REASON_METADATA;
            continue;
        }
        if (strcmp(c->name, "statistics_data") == 0) {
            c->cls = COL_STATISTICS;
            c->reason = REASON_STATISTICS;
            continue;
        }
        if (!classify_is_field_column(c->name)) {
            c->cls = COL_UNCLASSIFIED;
            c->reason = REASON_UNKNOWN_COLUMN;
            continue;
        }
        c->field = def ? field_of_column(def, c->name) : NULL;
        if (pol && any_designates(pol->blank, pol->nblank, c)) {
            c->cls = COL_BLANK;
            c->reason = REASON_CONFIG_BLANK;
        } else if (pol && any_designates(pol->keep, pol->nkeep, c)) {
            c->cls = COL_KEEP;
            c->reason = REASON_CONFIG_KEEP;
        } else if (c->field) {
            switch (c->field->anonymise) {
            case DEF_ANON_NO:
                c->cls = COL_KEEP;
                c->reason = REASON_DEF_NO;
                break;
            case DEF_ANON_FINAL:
                c->cls = COL_BLANK;
                c->reason = REASON_DEF_FINAL;
                break;
            case DEF_ANON_INTERMEDIATE:
                c->cls = COL_BLANK;
                c->reason = REASON_DEF_INTERMEDIATE;
                break;
            }
        } else {
            c->cls = COL_UNCLASSIFIED;
            c->reason = def ? REASON_NOT_IN_DEFINITION : REASON_NO_DEFINITION;
        }
    }
}

static void collect_unmatched(char *const *names, size_t n, const struct column *cols, size_t ncols,
                              const struct definition *def, const char ***out, size_t *count)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < ncols && !found; j++)
            if (classify_is_field_column(cols[j].name) && name_designates(names[i], &cols[j]))
                found = true;
        /* a field of the definition without a column yet is not a typo */
        for (size_t j = 0; def && j < def->nfields && !found; j++)
            if ((def->fields[j].varname && strcmp(def->fields[j].varname, names[i]) == 0) ||
                strcmp(def->fields[j].id, names[i]) == 0)
                found = true;
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
