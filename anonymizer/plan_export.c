/*
 * plan_export.c: the SQL of the export's read of a tenant (see
 * plan_export.h); its predicates are plan.c's.
 */
#include "plan_export.h"
#include "ax.h"
#include "sqltext.h"
#include "strbuf.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where COPY cannot take parameters, the predicates read the values of the one-row CTE "p" (plan.h's $n). */
static const char *const copy_params[PLAN_NPARAMS + 1] = {
    "", "NULL::timestamptz", "p.formdef_id", "p.final_statuses", "p.kept_stat_keys", "NULL", "NULL", "NULL",
    "p.block_keys",
};

/* Each setting's name (anonymizer.<name>), and where its value is. */
static const struct {
    const char *name;
    size_t offset;
} settings[] = {
#define SETTING(member) {#member, offsetof(struct plan_export_settings, member)}
    SETTING(formdef_id),   SETTING(final_statuses), SETTING(kept_stat_keys),   SETTING(block_keys),
    SETTING(time_precision), SETTING(time_zone),    SETTING(field_keys),       SETTING(status_ids),
    SETTING(status_names), SETTING(anonymised_since), SETTING(change_seq),     SETTING(table),
#undef SETTING
};

const char plan_export_settings_sql[] =
    "SELECT pg_catalog.count(pg_catalog.set_config(pg_catalog.concat('anonymizer.', s.name), s.value, true))"
    " FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.text[])) AS s(name, value)";

void plan_export_settings_bind(const struct plan_export_settings *s, char **names, char **values)
{
    char *n[AX_ARRAY_LEN(settings)], *v[AX_ARRAY_LEN(settings)];
    struct strbuf sb;
    for (size_t i = 0; i < AX_ARRAY_LEN(settings); i++) {
        n[i] = (char *)settings[i].name;
        v[i] = *(char *const *)((const char *)s + settings[i].offset);
    }
    sb_init(&sb);
    sb_append_pg_text_array(&sb, n, AX_ARRAY_LEN(settings));
    *names = sb_detach(&sb);
    sb_append_pg_text_array(&sb, v, AX_ARRAY_LEN(settings));
    *values = sb_finish(&sb);
}

static bool is_display(const char *column)
{
    size_t n = strlen(column);
    return n > 8 && strcmp(column + n - 8, "_display") == 0;
}

size_t plan_export_fields(const struct form *f, struct plan_field **out)
{
    size_t n = 0;
    *out = NULL;
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        /* pickled values (file references, structured items) are not statistics */
        if (!col_is_kept(c->cls) || strcmp(c->type, "bytea") == 0)
            continue;
        char *base;
        if (c->field && c->field->varname)
            base = ax_strdup(c->field->varname);
        else if (c->field)
            base = ax_strdup(c->field->column);
        else
            base = is_display(c->name) ? ax_strndup(c->name, strlen(c->name) - 8) : ax_strdup(c->name);
        *out = ax_reallocarray(*out, n + 1, sizeof **out);
        (*out)[n].key = is_display(c->name) ? ax_asprintf("%s_display", base) : ax_strdup(base);
        (*out)[n].col = c;
        (*out)[n].sensitive = false;
        free(base);
        n++;
    }
    return n;
}

void plan_fields_free(struct plan_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(fields[i].key);
    free(fields);
}

char *plan_export_copy(const struct form *f, const struct plan_field *fields, size_t nfields, bool incremental,
                       const char *changes_sql)
{
    struct form_preds p;
    struct strbuf sb;

    plan_preds(f, copy_params, PLAN_ROW, &p);
    sb_init(&sb);
    sb_append(&sb, "COPY (WITH p AS MATERIALIZED (SELECT"
                   " pg_catalog.current_setting('anonymizer.formdef_id')::integer AS formdef_id,"
                   " pg_catalog.current_setting('anonymizer.final_statuses')::text[] AS final_statuses,"
                   " pg_catalog.current_setting('anonymizer.kept_stat_keys')::text[] AS kept_stat_keys,"
                   " pg_catalog.current_setting('anonymizer.block_keys')::jsonb AS block_keys,"
                   " pg_catalog.current_setting('anonymizer.time_precision') AS prec,"
                   " pg_catalog.current_setting('anonymizer.field_keys')::text[] AS keys,"
                   " pg_catalog.current_setting('anonymizer.status_ids')::text[] AS status_ids,"
                   " pg_catalog.current_setting('anonymizer.status_names')::text[] AS status_names,"
                   " pg_catalog.current_setting('anonymizer.time_zone') AS tz)\n"
                   /* local times, truncated where the readers are: a day is a local day */
                   "SELECT m.id,"
                   " pg_catalog.date_trunc(p.prec, pg_catalog.timezone(p.tz, m.receipt_time)) AS receipt_local,");
    sb_appendf(&sb, " CASE WHEN COALESCE(%s, false) THEN pg_catalog.date_trunc(p.prec, pg_catalog.timezone(p.tz, %s))"
                    " END AS done_local,",
               p.final, p.ref);
    sb_append(&sb, " CASE WHEN m.status OPERATOR(pg_catalog.~~) 'wf-%' THEN pg_catalog.substr(m.status, 4)"
                   " ELSE m.status END AS status,"
                   " p.status_names[pg_catalog.array_position(p.status_ids, m.status::text)] AS status_name,");
    sb_appendf(&sb, " COALESCE(%s, false) AS is_final,", p.final);
    sb_append(&sb, " m.submission_channel, m.backoffice_submission, m.criticality_level,\n  ");
    /* jsonb_build_object takes at most 100 arguments: chunks of 40 pairs */
    if (nfields == 0)
        sb_append(&sb, "'{}'::jsonb");
    for (size_t i = 0; i < nfields; i++) {
        if (i % 40 == 0)
            sb_append(&sb, i ? ") OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(" : "pg_catalog.jsonb_build_object(");
        else
            sb_append(&sb, ", ");
        sb_appendf(&sb, "p.keys[%zu], m.%s", i + 1, fields[i].col->qname);
    }
    if (nfields)
        sb_append(&sb, ")");
    sb_append(&sb, " AS fields");
    if (incremental) {
        /* only the rows that may have changed, each found by its id: the list drives the read (the planner,
         * which expects next to nothing from the row filters below, would otherwise scan the whole table once
         * per id); not correlated: the settings are read once, and drive the index scans */
        sb_appendf(&sb, "\nFROM (SELECT a.id FROM public.%s a WHERE a.anonymised OPERATOR(pg_catalog.>)"
                        " pg_catalog.current_setting('anonymizer.anonymised_since')::timestamptz",
                   f->q_table);
        if (changes_sql)
            sb_appendf(&sb, "\n    UNION %s", changes_sql);
        sb_appendf(&sb, ") i CROSS JOIN LATERAL (SELECT r.* FROM public.%s r WHERE r.id OPERATOR(pg_catalog.=) i.id"
                        " OFFSET 0) m CROSS JOIN p\n",
                   f->q_table);
    } else {
        sb_appendf(&sb, "\nFROM public.%s m CROSS JOIN p\n", f->q_table);
    }
    sb_appendf(&sb, "WHERE m.anonymised IS NOT NULL AND " PLAN_NOT_DRAFT "\n"
                    "  AND NOT (%s)",
               p.dirty);
    sb_append(&sb, ") TO STDOUT");
    form_preds_free(&p);
    return sb_finish(&sb);
}
