/*
 * bi_views.c: the per-form views of the BI staging schema (see bi_views.h).
 *
 * A view is one CREATE VIEW and its COMMENT statements.  DDL takes no
 * parameters, so the statement is assembled by the BI server itself:
 * format() with %I for every identifier and %L for every value, all passed
 * as parameters.  The text obtained is kept in forms.view_sql; the view is
 * dropped and made again only when that text changes.
 */
#include "bi_views.h"
#include "ax.h"
#include "sqltext.h"
#include "strbuf.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns every view starts with: from the submissions view, as they are. */
static const char *const common_columns[][2] = {
    {"tenant", "The w.c.s. site (tenant)."},
    {"form_slug", "The form's slug."},
    {"submission_key", "The row's key: a keyed hash, says nothing of the submission's number in w.c.s."},
    {"receipt_date", "The local day it was submitted (date), truncated to time_precision."},
    {"receipt_time", "The local time of day it was submitted (time); NULL at day precision or coarser."},
    {"done_date", "The local day it reached a final status (date), truncated likewise; NULL while open."},
    {"done_time", "The local time of day it was done (time); NULL at day precision or coarser, or while open."},
    {"processing_time", "Done minus receipt, from the truncated values (interval); NULL while open."},
    {"time_precision", "What its dates and times are truncated to: minute, hour, day, week, month, quarter or year."},
    {"status", "Workflow status id (see the statuses table)."},
    {"status_name", "Workflow status name."},
    {"is_final", "The status is final (the submission is done)."},
    {"channel", "Submission channel: web, mail, phone, counter, fax, email, social-network."},
    {"backoffice_submission", "Submitted by an agent in the back office."},
    {"criticality_level", "w.c.s. criticality level."},
    {"suppressed", "The fields whose value was suppressed (set to null) so that the row could be published."},
};

static char *bi_safe_name(const char *text)
{
    struct strbuf sb;
    sb_init(&sb);
    bool sep = false;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p - 'A' + 'a') : *p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (sep && sb.len)
                sb_appendc(&sb, '_');
            sb_appendc(&sb, (char)c);
            sep = false;
        } else {
            sep = true;
        }
    }
    return sb_finish(&sb);
}

/* name cut to fit 63 bytes with suffix after it */
static char *fit_name(const char *name, const char *suffix)
{
    size_t room = 63 - strlen(suffix);
    return ax_asprintf("%.*s%s", (int)(strlen(name) < room ? strlen(name) : room), name, suffix);
}

/* The view being built: format()'s text, its arguments, the column names taken, the comments. */
struct view_build {
    const char *schema, *view;
    struct strbuf fmt;   /* the whole format string */
    char **args;         /* format()'s arguments, in order */
    size_t nargs;
    char **names;        /* column names taken */
    size_t nnames;
    struct strbuf comments; /* COMMENT ON COLUMN statements, appended after the CREATE */
    char **cargs;           /* their arguments */
    size_t ncargs;
    bool sensitive;         /* the field being added is declared sensitive */
    json_object *sensitive_columns; /* the columns that hold sensitive fields */
};

static void arg(char ***args, size_t *n, const char *value)
{
    *args = ax_reallocarray(*args, *n + 1, sizeof **args);
    (*args)[(*n)++] = ax_strdup(value ? value : "");
}

static bool name_taken(const struct view_build *vb, const char *name)
{
    for (size_t i = 0; i < vb->nnames; i++)
        if (strcmp(vb->names[i], name) == 0)
            return true;
    return false;
}

/* A column name not used yet in the view: the wanted one, else with _<n>. */
static char *column_name(struct view_build *vb, const char *wanted)
{
    char *name = fit_name(wanted, "");
    for (int n = 2; name_taken(vb, name); n++) {
        char sfx[16];
        snprintf(sfx, sizeof sfx, "_%d", n);
        free(name);
        name = fit_name(wanted, sfx);
    }
    vb->names = ax_reallocarray(vb->names, vb->nnames + 1, sizeof *vb->names);
    vb->names[vb->nnames++] = ax_strdup(name);
    return name;
}

/*
 * The typed expression of a value in the fields object, by the SQL type the
 * tenant's column has (what the JSON value was made from): path is the
 * jsonb path to it as a format string taking one %L per element in keys.
 */
static const char *typed(const char *sql_type)
{
    if (strcmp(sql_type, "date") == 0)
        return "date";
    if (strcmp(sql_type, "numeric") == 0 || strcmp(sql_type, "integer") == 0 || strcmp(sql_type, "bigint") == 0)
        return "numeric";
    if (strcmp(sql_type, "boolean") == 0)
        return "boolean";
    if (strncmp(sql_type, "timestamp", 9) == 0)
        return "timestamptz";
    if (strcmp(sql_type, "text[]") == 0 || strcmp(sql_type, "character varying[]") == 0)
        return "text[]";
    if (strcmp(sql_type, "text") == 0 || strncmp(sql_type, "character varying", 17) == 0)
        return "text";
    return "jsonb";
}

static void add_column(struct view_build *vb, const char *expr_fmt, const char *const *keys, size_t nkeys,
                       const char *wanted, const char *comment)
{
    char *name = column_name(vb, wanted);
    if (vb->sensitive)
        json_object_array_add(vb->sensitive_columns, json_object_new_string(name));
    sb_append(&vb->fmt, ",\n  ");
    sb_append(&vb->fmt, expr_fmt);
    sb_append(&vb->fmt, " AS %I");
    for (size_t i = 0; i < nkeys; i++)
        arg(&vb->args, &vb->nargs, keys[i]);
    arg(&vb->args, &vb->nargs, name);
    sb_append(&vb->comments, "COMMENT ON COLUMN %I.%I.%I IS %L;\n");
    arg(&vb->cargs, &vb->ncargs, vb->schema);
    arg(&vb->cargs, &vb->ncargs, vb->view);
    arg(&vb->cargs, &vb->ncargs, name);
    arg(&vb->cargs, &vb->ncargs, comment);
    free(name);
}

/* A scalar of the fields object (key), typed. */
static void field_column(struct view_build *vb, const char *key, const char *type, const char *wanted,
                         const char *comment)
{
    const char *keys[2] = {key, key};
    if (strcmp(type, "jsonb") == 0)
        add_column(vb, "(s.fields OPERATOR(pg_catalog.->) %L)", keys, 1, wanted, comment);
    else if (strcmp(type, "text") == 0)
        add_column(vb, "(s.fields OPERATOR(pg_catalog.->>) %L)", keys, 1, wanted, comment);
    else if (strcmp(type, "text[]") == 0)
        add_column(vb,
                   "CASE WHEN pg_catalog.jsonb_typeof(s.fields OPERATOR(pg_catalog.->) %L) OPERATOR(pg_catalog.=)"
                   " 'array' THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(s.fields OPERATOR(pg_catalog.->)"
                   " %L)) END",
                   keys, 2, wanted, comment);
    else {
        char *e = ax_asprintf("(s.fields OPERATOR(pg_catalog.->>) %%L)::%s", type);
        add_column(vb, e, keys, 1, wanted, comment);
        free(e);
    }
}

/* A subfield of a block that holds one element, typed by its w.c.s. type (its values are JSON as w.c.s. wrote
 * them: only well-formed ones are cast). */
static void subfield_column(struct view_build *vb, const char *key, const struct def_field *sub, const char *wanted,
                            const char *comment)
{
    /* the value appears once, or twice (tested, then cast): two %L each time */
    const char *keys[4] = {key, sub->id, key, sub->id};
    const char *t = sub->type;
    const char *v = "(((s.fields OPERATOR(pg_catalog.->) %L) OPERATOR(pg_catalog.->) 'data')"
                    " OPERATOR(pg_catalog.->) 0 OPERATOR(pg_catalog.->>) %L)";
    char *e;
    if (strcmp(t, "date") == 0)
        e = ax_asprintf("CASE WHEN %s OPERATOR(pg_catalog.~) '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN %s::date END", v, v);
    else if (strcmp(t, "numeric") == 0)
        e = ax_asprintf("CASE WHEN %s OPERATOR(pg_catalog.~) '^-?[0-9]+([.][0-9]+)?$' THEN %s::numeric END", v, v);
    else if (strcmp(t, "bool") == 0)
        e = ax_asprintf("CASE WHEN %s OPERATOR(pg_catalog.=) ANY ('{true,false}'::text[]) THEN %s::boolean END", v, v);
    else
        e = ax_strdup(v);
    add_column(vb, e, keys, strstr(e, "CASE") ? 4 : 2, wanted, comment);
    free(e);
}

static char *field_comment(const struct form *f, const struct column *c, const struct def_field *fld,
                           const char *what)
{
    const char *label = fld && fld->label ? fld->label : c->name;
    return ax_asprintf("%s%s (form %s, %s %s%s%s).", label, what, f->name ? f->name : f->slug,
                       fld ? "field" : "column", fld ? fld->id : c->name, fld && fld->varname ? ", varname " : "",
                       fld && fld->varname ? fld->varname : "");
}

static void kept_fields(struct view_build *vb, const struct form *f, const struct plan_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct column *c = fields[i].col;
        const struct def_field *fld = c->field;
        bool display = strstr(fields[i].key, "_display") &&
                       strcmp(fields[i].key + strlen(fields[i].key) - 8, "_display") == 0;
        char *comment = field_comment(f, c, fld, display ? " (as displayed)" : "");
        vb->sensitive = fields[i].sensitive;
        if (c->cls == COL_BLOCK && fld && fld->max_items == 1 && !display) {
            /* a block of one element: its kept subfields as columns */
            for (size_t k = 0; k < c->nsubs; k++) {
                if (!c->subs[k].kept)
                    continue;
                const struct def_field *sub = c->subs[k].field;
                char *wanted = ax_asprintf("%s_%s", fields[i].key, sub->varname ? sub->varname : sub->id);
                char *sc = ax_asprintf("%s: %s (form %s, block field %s, subfield %s).", fld->label ? fld->label : c->name,
                                       sub->label ? sub->label : sub->id, f->name ? f->name : f->slug, fld->id, sub->id);
                subfield_column(vb, fields[i].key, sub, wanted, sc);
                free(sc);
                free(wanted);
            }
        } else {
            field_column(vb, fields[i].key, display ? "text" : typed(c->type), fields[i].key, comment);
        }
        free(comment);
    }
}

/* The whole text of format() for the view and its comments, with its arguments. */
static void build(struct view_build *vb, struct bi *bi, const char *tenant, const struct form *f, const char *view,
                  const struct plan_field *fields, size_t nfields, char ***args, size_t *nargs)
{
    char fid[16];
    snprintf(fid, sizeof fid, "%d", f->formdef_id);
    memset(vb, 0, sizeof *vb);
    vb->schema = bi->schema;
    vb->view = view;
    sb_init(&vb->fmt);
    sb_init(&vb->comments);
    sb_append(&vb->fmt, "CREATE VIEW %I.%I AS SELECT s.tenant");
    arg(&vb->args, &vb->nargs, bi->schema);
    arg(&vb->args, &vb->nargs, view);
    vb->sensitive_columns = json_object_new_array();
    vb->names = ax_calloc(1, sizeof *vb->names);
    vb->names[vb->nnames++] = ax_strdup("tenant");
    for (size_t i = 1; i < AX_ARRAY_LEN(common_columns); i++) {
        sb_appendf(&vb->fmt, ", s.%s", common_columns[i][0]);
        vb->names = ax_reallocarray(vb->names, vb->nnames + 1, sizeof *vb->names);
        vb->names[vb->nnames++] = ax_strdup(common_columns[i][0]);
    }
    kept_fields(vb, f, fields, nfields);
    sb_append(&vb->fmt, "\nFROM %I.submissions s WHERE s.tenant OPERATOR(pg_catalog.=) %L"
                        " AND s.form_id OPERATOR(pg_catalog.=) %L;\n"
                        "COMMENT ON VIEW %I.%I IS %L;\n");
    arg(&vb->args, &vb->nargs, bi->schema);
    arg(&vb->args, &vb->nargs, tenant);
    arg(&vb->args, &vb->nargs, fid);
    arg(&vb->args, &vb->nargs, bi->schema);
    arg(&vb->args, &vb->nargs, view);
    char *vc = ax_asprintf("Submissions of the form \"%s\" (%s) of %s, one row each, kept fields as typed columns;"
                           " see anonymizer-bi(7).",
                           f->name ? f->name : f->slug, f->slug, tenant);
    arg(&vb->args, &vb->nargs, vc);
    free(vc);
    for (size_t i = 0; i < AX_ARRAY_LEN(common_columns); i++) {
        sb_append(&vb->fmt, "COMMENT ON COLUMN %I.%I.%I IS %L;\n");
        arg(&vb->args, &vb->nargs, bi->schema);
        arg(&vb->args, &vb->nargs, view);
        arg(&vb->args, &vb->nargs, common_columns[i][0]);
        const char *text = common_columns[i][1];
        /* dates and times: where a day begins and ends */
        bool when = strncmp(common_columns[i][0], "receipt_", 8) == 0 || strncmp(common_columns[i][0], "done_", 5) == 0;
        char *c = when ? ax_asprintf("%s Time zone: %s.", text, bi->tz) : ax_strdup(text);
        arg(&vb->args, &vb->nargs, c);
        free(c);
    }
    /* the field columns' comments */
    sb_append(&vb->fmt, vb->comments.buf);
    for (size_t i = 0; i < vb->ncargs; i++)
        arg(&vb->args, &vb->nargs, vb->cargs[i]);
    *args = vb->args;
    *nargs = vb->nargs;
}

static void build_free(struct view_build *vb)
{
    for (size_t i = 0; i < vb->nargs; i++)
        free(vb->args[i]);
    free(vb->args);
    for (size_t i = 0; i < vb->ncargs; i++)
        free(vb->cargs[i]);
    free(vb->cargs);
    for (size_t i = 0; i < vb->nnames; i++)
        free(vb->names[i]);
    free(vb->names);
    sb_free(&vb->fmt);
    sb_free(&vb->comments);
    json_object_put(vb->sensitive_columns);
}

/* The view's name: the one it has, else form_<tenant>_<slug> made safe, unique in the schema. */
static int view_name(struct bi *bi, const char *tenant, const char *fid, const char *slug, char **name, char **old_sql)
{
    PGresult *res;
    const char *v[2] = {tenant, fid};
    const Oid ty[2] = {DB_TEXTOID, DB_INT4OID};
    int rc = bi_query(bi, &res, DB_ONE_ROW(2),
                      "SELECT view_name, view_sql FROM @S.forms WHERE tenant OPERATOR(pg_catalog.=) $1"
                      " AND form_id OPERATOR(pg_catalog.=) $2",
                      2, ty, v);
    if (rc)
        return rc;
    *name = PQgetisnull(res, 0, 0) ? NULL : ax_strdup(PQgetvalue(res, 0, 0));
    *old_sql = PQgetisnull(res, 0, 1) ? NULL : ax_strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    if (*name)
        return AX_OK;
    char *t = bi_safe_name(tenant), *s = bi_safe_name(slug);
    char *base = ax_asprintf("form_%s_%s", t, s);
    free(t);
    free(s);
    for (int n = 1;; n++) {
        char sfx[32] = "";
        if (n > 1)
            snprintf(sfx, sizeof sfx, n == 2 ? "_%s" : "_%s_%d", fid, n);
        char *candidate = fit_name(base, sfx);
        const char *cv[2] = {candidate, bi->schema};
        rc = bi_query(bi, &res, DB_ONE_ROW(1),
                      "SELECT EXISTS (SELECT 1 FROM @S.forms WHERE view_name OPERATOR(pg_catalog.=) $1) OR EXISTS"
                      " (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns"
                      " ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace"
                      " WHERE ns.nspname OPERATOR(pg_catalog.=) $2 AND c.relname OPERATOR(pg_catalog.=) $1)",
                      2, NULL, cv);
        if (rc) {
            free(candidate);
            break;
        }
        bool used = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (!used) {
            *name = candidate;
            break;
        }
        free(candidate);
    }
    free(base);
    return rc;
}

int bi_form_view(struct bi *bi, const char *tenant, const struct form *f, const struct plan_field *fields,
                 size_t nfields)
{
    char fid[16];
    snprintf(fid, sizeof fid, "%d", f->formdef_id);
    char *name = NULL, *old_sql = NULL;
    int rc = view_name(bi, tenant, fid, f->slug, &name, &old_sql);
    if (rc) {
        free(old_sql);
        return rc;
    }
    struct view_build vb;
    char **args;
    size_t nargs;
    build(&vb, bi, tenant, f, name, fields, nfields, &args, &nargs);
    struct strbuf arr;
    sb_init(&arr);
    sb_append_pg_text_array(&arr, args, nargs);
    const char *v[2] = {vb.fmt.buf, arr.buf};
    PGresult *res;
    rc = db_query(&bi->db, &res, DB_ONE_ROW(1), "SELECT pg_catalog.format($1, VARIADIC $2::text[])", 2, NULL, v);
    if (rc == AX_OK) {
        char *sql = ax_strdup(PQgetvalue(res, 0, 0));
        PQclear(res);
        const char *ev[2] = {bi->schema, name};
        rc = db_query(&bi->db, &res, DB_ONE_ROW(1),
                      "SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text)) IS NOT NULL", 2,
                      NULL, ev);
        bool exists = rc == AX_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        if (rc == AX_OK)
            PQclear(res);
        if (rc == AX_OK && (!exists || !old_sql || strcmp(old_sql, sql) != 0)) {
            /* a new definition: the view follows in this transaction, with the rows that carry it */
            char *q = db_quote_ident(&bi->db, name);
            char *drop = ax_asprintf("DROP VIEW IF EXISTS @S.%s", q);
            rc = bi_command(bi, drop, 0, NULL, NULL);
            free(drop);
            if (rc == AX_OK)
                rc = db_script(&bi->db, sql);
            if (rc == AX_OK)
                rc = bi_grant_select(bi, q, false);
            free(q);
            const char *uv[4] = {tenant, fid, name, sql};
            const Oid uty[4] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_TEXTOID};
            if (rc == AX_OK)
                rc = bi_command(bi, "UPDATE @S.forms SET view_name = $3, view_sql = $4"
                                    " WHERE tenant OPERATOR(pg_catalog.=) $1 AND form_id OPERATOR(pg_catalog.=) $2",
                                4, uty, uv);
        }
        const char *sv[3] = {tenant, fid, json_object_to_json_string_ext(vb.sensitive_columns, JSON_C_TO_STRING_PLAIN)};
        const Oid sty[3] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID};
        if (rc == AX_OK)
            rc = bi_command(bi, "UPDATE @S.forms SET sensitive_columns = $3::jsonb WHERE tenant OPERATOR(pg_catalog.=) $1"
                                " AND form_id OPERATOR(pg_catalog.=) $2 AND " SQL_DISTINCT("sensitive_columns", "$3::jsonb"),
                            3, sty, sv);
        free(sql);
    }
    sb_free(&arr);
    build_free(&vb);
    free(name);
    free(old_sql);
    return rc;
}

int bi_form_statuses(struct bi *bi, const char *tenant, const struct form *f)
{
    char fid[16];
    snprintf(fid, sizeof fid, "%d", f->formdef_id);
    size_t n = f->def ? f->def->nstatuses : 0;
    int rc = AX_OK;
    for (size_t i = 0; i < n && rc == AX_OK; i++) {
        const struct def_status *st = &f->def->statuses[i];
        const char *v[5] = {tenant, fid, st->id, st->name, st->endpoint ? "t" : "f"};
        const Oid ty[5] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_TEXTOID, DB_BOOLOID};
        rc = bi_command(bi,
                        "INSERT INTO @S.statuses AS x (tenant, form_id, status, status_name, is_final)"
                        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, form_id, status) DO UPDATE SET"
                        " status_name = EXCLUDED.status_name, is_final = EXCLUDED.is_final"
                        " WHERE ROW(x.status_name, x.is_final)::text OPERATOR(pg_catalog.<>)"
                        " ROW(EXCLUDED.status_name, EXCLUDED.is_final)::text",
                        5, ty, v);
    }
    return rc;
}
