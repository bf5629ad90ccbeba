/*
 * plan_export.h: the statements the export runs on a form's table: its
 * kept fields and the COPY that reads its exportable submissions, with the
 * predicates of plan.h (so the export selects what the run says is done).
 */
#ifndef PLAN_EXPORT_H
#define PLAN_EXPORT_H

#include "plan.h"

/* A kept column that goes into the BI "fields" object. */
struct plan_field {
    char *key;                  /* JSON key: varname, or the column's base name; "<key>_display" */
    const struct column *col;   /* borrowed from the form */
    bool sensitive;             /* declared in bi.sensitive: published, not counted in the groups (set by the export) */
};

/* The kept columns the export sends (not the pickled bytea ones); caller frees with plan_fields_free. */
size_t plan_export_fields(const struct form *f, struct plan_field **out);
void plan_fields_free(struct plan_field *fields, size_t n);

/*
 * The values the export's COPY reads.  COPY takes no parameters: they are
 * set first, transaction-local, as settings anonymizer.<member name>, and
 * read once with current_setting() (every value as text).
 */
struct plan_export_settings {
    const char *formdef_id;
    const char *final_statuses;   /* text[] literal */
    const char *kept_stat_keys;   /* text[] literal */
    const char *block_keys;       /* jsonb: the keys kept in each trimmed block's elements */
    const char *time_precision;   /* minute, hour, day */
    const char *time_zone;        /* the one times are truncated in */
    const char *field_keys;       /* text[] literal: the JSON keys of the kept fields, in order */
    const char *status_ids;       /* text[] literal ("wf-<id>") */
    const char *status_names;     /* text[] literal, in the same order */
    const char *anonymised_since; /* incremental: anonymised after this */
    const char *change_seq;       /* incremental: the change log position already exported */
    const char *table;            /* the form table's catalog name (for the change log) */
};

/* The statement that sets them, and its two values: text[] literals of names and values (caller frees both). */
extern const char plan_export_settings_sql[];
void plan_export_settings_bind(const struct plan_export_settings *s, char **names, char **values);

/*
 * The tenant's COPY (SELECT ...) TO STDOUT for one form, reading the
 * settings above.  incremental: only submissions anonymised since
 * anonymised_since, or whose ids changes_sql returns (the change log, from
 * audit_changed_ids_sql; NULL when there is none).  Its columns:
 * BI_STAGE_COLUMNS (bi.h).
 */
char *plan_export_copy(const struct form *f, const struct plan_field *fields, size_t nfields, bool incremental,
                       const char *changes_sql);

#endif
