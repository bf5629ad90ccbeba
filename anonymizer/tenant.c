/*
 * tenant.c: tenant session, catalog discovery and the SQL each form needs.
 *
 * Everything that names a table or a column comes from the catalog and is
 * quoted with PQescapeIdentifier; everything else is a parameter.  The same
 * predicates serve the run, the report and the export, so that what the
 * report counts is exactly what the run does.
 */
#include "tenant.h"
#include "ax.h"
#include "log.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const form_dollar_params[FORM_NPARAMS + 1] = {"", "$1", "$2", "$3", "$4", "$5", "$6", "$7"};

const Oid form_param_types[FORM_NPARAMS] = {
    DB_TIMESTAMPTZOID, DB_INT4OID, DB_TEXTARRAYOID, DB_TEXTARRAYOID, DB_INT8OID, DB_INT8OID, DB_TIMESTAMPTZOID,
};

/* Personal columns of wcs_all_forms, cleared for anonymised submissions. */
static const char *const allforms_personal[] = {
    "user_id",     "user_label",          "user_name",           "submission_agent_id",
    "digests",     "fts",                 "concerned_roles_array", "actions_roles_array",
    "geoloc_base_x", "geoloc_base_y",     "relations_data",
};

int tenant_open(struct tenant *t, const struct app *app, struct app_tenant *at, bool read_only)
{
    char lock_ms[32], stmt_ms[32];
    const char *values[3];
    const Oid types[3] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};

    memset(t, 0, sizeof *t);
    t->app_tenant = at;
    t->name = at->cfg->name;
    int rc = db_connect(&t->db, at->cfg->conninfo, at->cfg->dbname, t->name);
    if (rc)
        return rc;
    /* SIGINT/SIGTERM cancel this session's statement: the batch in flight rolls back */
    db_watch_cancel(&t->db);
    snprintf(lock_ms, sizeof lock_ms, "%d", app->cfg->lock_timeout_ms);
    snprintf(stmt_ms, sizeof stmt_ms, "%d", app->cfg->statement_timeout_ms);
    values[0] = lock_ms;
    values[1] = stmt_ms;
    values[2] = read_only ? "on" : "off";
    /* pg_catalog first so nothing in public can shadow a built-in; public
     * stays on the path because the w.c.s. triggers name their tables
     * without a schema */
    rc = db_exec(&t->db, NULL,
                 "SELECT pg_catalog.set_config('search_path', 'pg_catalog, public', false),"
                 " pg_catalog.set_config('TimeZone', 'UTC', false),"
                 " pg_catalog.set_config('lock_timeout', $1, false),"
                 " pg_catalog.set_config('statement_timeout', $2, false),"
                 " pg_catalog.set_config('default_transaction_read_only', $3, false)",
                 3, types, values);
    return rc;
}

static void form_free(struct form *f)
{
    free(f->table);
    free(f->evo_table);
    free(f->slug);
    free(f->name);
    for (size_t i = 0; i < f->ncols; i++) {
        free(f->cols[i].name);
        free(f->cols[i].type);
    }
    free(f->cols);
    free(f->q_table);
    free(f->q_evo);
    free(f->endpoints);
    free(f->stat_keys);
    tenant_free_preds(&f->pred);
    free(f->sql_set);
    free(f->sql_allforms_set);
    free(f->sql_allforms_dirty);
    free(f->unsupported);
}

void tenant_close(struct tenant *t)
{
    db_watch_cancel(NULL);
    for (size_t i = 0; i < t->nallforms; i++)
        free(t->allforms_cols[i]);
    free(t->allforms_cols);
    t->allforms_cols = NULL;
    t->nallforms = 0;
    for (size_t i = 0; i < t->nforms; i++)
        form_free(&t->forms[i]);
    free(t->forms);
    t->forms = NULL;
    t->nforms = 0;
    db_close(&t->db);
}

int tenant_try_lock(struct tenant *t, bool *acquired)
{
    PGresult *res;
    int rc = db_exec(&t->db, &res,
                     "SELECT pg_catalog.pg_try_advisory_lock(" TENANT_LOCK_CLASSID ", " TENANT_LOCK_OBJID ")", 0,
                     NULL, NULL);
    if (rc)
        return rc;
    *acquired = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

/* Columns of a relation, in order. */
static int load_columns(struct tenant *t, const char *oid, struct column **cols, size_t *n)
{
    PGresult *res;
    const char *values[1] = {oid};
    const Oid types[1] = {DB_TEXTOID};
    int rc = db_exec(&t->db, &res,
                     "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull"
                     " FROM pg_catalog.pg_attribute a"
                     " WHERE a.attrelid = $1::pg_catalog.oid AND a.attnum > 0 AND NOT a.attisdropped"
                     " ORDER BY a.attnum",
                     1, types, values);
    if (rc)
        return rc;
    int nrows = PQntuples(res);
    *cols = ax_calloc((size_t)nrows, sizeof **cols);
    *n = (size_t)nrows;
    for (int i = 0; i < nrows; i++) {
        (*cols)[i].name = ax_strdup(PQgetvalue(res, i, 0));
        (*cols)[i].type = ax_strdup(PQgetvalue(res, i, 1));
        (*cols)[i].notnull = strcmp(PQgetvalue(res, i, 2), "t") == 0;
    }
    PQclear(res);
    return AX_OK;
}

static const struct column *find_col(const struct form *f, const char *name)
{
    for (size_t i = 0; i < f->ncols; i++)
        if (strcmp(f->cols[i].name, name) == 0)
            return &f->cols[i];
    return NULL;
}

static void add_key(char ***keys, size_t *n, const char *key)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*keys)[i], key) == 0)
            return;
    *keys = ax_reallocarray(*keys, *n + 1, sizeof **keys);
    (*keys)[(*n)++] = ax_strdup(key);
}

/* Builds the predicates and SET lists of one form (see tenant.h). */
static void prepare_sql(struct tenant *t, struct form *f)
{
    struct strbuf sb;
    sb_init(&sb);

    /* required w.c.s. columns */
    static const char *const required[] = {"id", "status", "receipt_time", "last_update_time", "anonymised"};
    for (size_t i = 0; i < AX_ARRAY_LEN(required); i++) {
        if (!find_col(f, required[i])) {
            f->unsupported = ax_asprintf("table %s has no column %s: not a w.c.s. form table", f->table, required[i]);
            sb_free(&sb);
            return;
        }
    }
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (col_is_nulled(c->cls) && c->notnull) {
            f->unsupported = ax_asprintf("column %s of %s is NOT NULL and cannot be blanked", c->name, f->table);
            sb_free(&sb);
            return;
        }
        if (c->cls == COL_STATISTICS && strcmp(c->type, "jsonb") != 0) {
            f->unsupported = ax_asprintf("column statistics_data of %s is %s, not jsonb", f->table, c->type);
            sb_free(&sb);
            return;
        }
    }

    f->has_tracking_col = t->has_tracking_codes && find_col(f, "tracking_code") != NULL;

    /* final statuses */
    if (f->def && f->def->nstatuses > 0) {
        char **ends = NULL;
        size_t nends = 0;
        for (size_t i = 0; i < f->def->nstatuses; i++) {
            if (f->def->statuses[i].endpoint) {
                ends = ax_reallocarray(ends, nends + 1, sizeof *ends);
                ends[nends++] = ax_asprintf("wf-%s", f->def->statuses[i].id);
            }
        }
        sb_append_pg_text_array(&sb, ends, nends);
        f->endpoints = sb_detach(&sb);
        for (size_t i = 0; i < nends; i++)
            free(ends[i]);
        free(ends);
    }

    /* statistics keys that survive: done-datetime and the kept fields */
    char **keys = NULL;
    size_t nkeys = 0;
    add_key(&keys, &nkeys, "done-datetime");
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls != COL_KEEP)
            continue;
        if (c->field) {
            if (c->field->varname)
                add_key(&keys, &nkeys, c->field->varname);
            add_key(&keys, &nkeys, c->field->id);
        }
        add_key(&keys, &nkeys, c->name);
    }
    sb_append_pg_text_array(&sb, keys, nkeys);
    f->stat_keys = sb_detach(&sb);
    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    free(keys);

    /* the SET lists of the final anonymisation */
    struct strbuf set;
    sb_init(&set);
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (!col_is_nulled(c->cls))
            continue;
        char *q = db_quote_ident(&t->db, c->name);
        sb_appendf(&set, "%s = NULL, ", q);
        free(q);
    }
    if (find_col(f, "statistics_data"))
        sb_append(&set, "statistics_data = CASE WHEN pg_catalog.jsonb_typeof(t.statistics_data) = 'object'"
                        " THEN (SELECT COALESCE(pg_catalog.jsonb_object_agg(s.key, s.value), '{}'::jsonb)"
                        " FROM pg_catalog.jsonb_each(t.statistics_data) s WHERE s.key = ANY ($4)) END, ");
    sb_append(&set, "anonymised = COALESCE(t.anonymised, $7)");
    f->sql_set = sb_finish(&set);
    if (t->nallforms > 0) {
        struct strbuf dirty;
        sb_init(&dirty);
        sb_append(&dirty, "(");
        for (size_t i = 0; i < t->nallforms; i++) {
            char *q = db_quote_ident(&t->db, t->allforms_cols[i]);
            sb_appendf(&sb, "%s = NULL, ", q);
            sb_appendf(&dirty, "w.%s IS NOT NULL OR ", q);
            free(q);
        }
        sb_append(&sb, "statistics_data = m.statistics_data, anonymised = m.anonymised");
        sb_append(&dirty, "w.statistics_data IS DISTINCT FROM m.statistics_data"
                          " OR w.anonymised IS DISTINCT FROM m.anonymised)");
        f->sql_allforms_set = sb_detach(&sb);
        f->sql_allforms_dirty = sb_finish(&dirty);
    }
    sb_free(&sb);

    tenant_build_preds(t, f, form_dollar_params, false, &f->pred);
}

/*
 * A test on related rows: EXISTS (the planner may hash the whole related
 * table, right for one pass over a form) or a scalar subquery (one index
 * probe per row, right for a batch of a few thousand rows in a large
 * table: a hashed subplan would read the whole history table per batch).
 */
static void related(struct strbuf *sb, bool set_oriented, const char *from_where)
{
    if (set_oriented)
        sb_appendf(sb, "EXISTS (SELECT 1 FROM %s)", from_where);
    else
        sb_appendf(sb, "((SELECT 1 FROM %s LIMIT 1) IS NOT NULL)", from_where);
}

void tenant_build_preds(struct tenant *t, const struct form *f, const char *const p[FORM_NPARAMS + 1],
                        bool set_oriented, struct form_preds *out)
{
    struct strbuf sb, tmp;
    sb_init(&sb);
    sb_init(&tmp);

    /* at a final status (drafts never are) */
    if (f->endpoints) {
        sb_appendf(&sb, "COALESCE(m.status = ANY (%s), false)", p[3]);
    } else if (t->has_allforms) {
        sb_appendf(&tmp, "public.wcs_all_forms w WHERE w.formdef_id = %s AND w.id = m.id AND w.is_at_endpoint", p[2]);
        related(&sb, set_oriented, tmp.buf);
        sb_reset(&tmp);
    } else {
        sb_append(&sb, "false");
    }
    out->final = sb_detach(&sb);

    /* which submissions the final anonymisation applies to */
    sb_appendf(&sb, "%s < %s AND ((m.status IS DISTINCT FROM 'draft' AND %s)%s)", SQL_REF, p[1],
               f->pol.open_submissions == CFG_OPEN_ANONYMISE ? "true" : out->final,
               f->pol.drafts == CFG_DRAFTS_ANONYMISE ? " OR m.status = 'draft'" : "");
    out->due_base = sb_detach(&sb);

    /* anything left that the final anonymisation removes */
    const char *sep = "";
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (!col_is_nulled(c->cls))
            continue;
        char *q = db_quote_ident(&t->db, c->name);
        sb_appendf(&sb, "%sm.%s IS NOT NULL", sep, q);
        sep = " OR ";
        free(q);
    }
    if (find_col(f, "statistics_data")) {
        sb_appendf(&sb,
                   "%s(CASE WHEN pg_catalog.jsonb_typeof(m.statistics_data) = 'object'"
                   " THEN EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(m.statistics_data) k"
                   " WHERE k <> ALL (%s)) ELSE m.statistics_data IS NOT NULL END)",
                   sep, p[4]);
        sep = " OR ";
    }
    if (f->q_evo) {
        sb_appendf(&tmp, "public.%s e WHERE e.formdata_id = m.id"
                         " AND (e.who IS NOT NULL OR e.comment IS NOT NULL OR e.parts IS NOT NULL)", f->q_evo);
        sb_append(&sb, sep);
        related(&sb, set_oriented, tmp.buf);
        sb_reset(&tmp);
        sep = " OR ";
    }
    if (f->sql_allforms_dirty) {
        sb_appendf(&tmp, "public.wcs_all_forms w WHERE w.formdef_id = %s AND w.id = m.id AND %s", p[2],
                   f->sql_allforms_dirty);
        sb_append(&sb, sep);
        related(&sb, set_oriented, tmp.buf);
        sb_reset(&tmp);
        sep = " OR ";
    }
    sb_free(&tmp);
    if (!*sep)
        sb_append(&sb, "false");
    out->dirty = sb_detach(&sb);

    sb_appendf(&sb, "(%s) AND (m.anonymised IS NULL OR %s)", out->due_base, out->dirty);
    out->work = sb_finish(&sb);
}

void tenant_free_preds(struct form_preds *p)
{
    free(p->final);
    free(p->due_base);
    free(p->dirty);
    free(p->work);
    memset(p, 0, sizeof *p);
}

static int load_allforms_columns(struct tenant *t, char ***cols, size_t *n)
{
    PGresult *res;
    *cols = NULL;
    *n = 0;
    int rc = db_exec(&t->db, &res,
                     "SELECT a.attname FROM pg_catalog.pg_attribute a"
                     " WHERE a.attrelid = 'public.wcs_all_forms'::pg_catalog.regclass"
                     " AND a.attnum > 0 AND NOT a.attisdropped",
                     0, NULL, NULL);
    if (rc)
        return rc;
    bool has_stats = false, has_anon = false;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);
        if (strcmp(name, "statistics_data") == 0)
            has_stats = true;
        else if (strcmp(name, "anonymised") == 0)
            has_anon = true;
        for (size_t k = 0; k < AX_ARRAY_LEN(allforms_personal); k++) {
            if (strcmp(name, allforms_personal[k]) == 0) {
                *cols = ax_reallocarray(*cols, *n + 1, sizeof **cols);
                (*cols)[(*n)++] = ax_strdup(name);
            }
        }
    }
    PQclear(res);
    if (!has_stats || !has_anon) {
        db_set_error(&t->db, "wcs_all_forms has no statistics_data or anonymised column: unsupported w.c.s. layout");
        for (size_t i = 0; i < *n; i++)
            free((*cols)[i]);
        free(*cols);
        *cols = NULL;
        *n = 0;
        return AX_ERR_DATA;
    }
    return AX_OK;
}

int tenant_discover_forms(struct tenant *t, const struct app *app)
{
    PGresult *res = NULL;
    int rc;

    bool has_formdefs;
    if ((rc = db_relation(&t->db, "public", "tracking_codes", &t->has_tracking_codes, NULL)) ||
        (rc = db_relation(&t->db, "public", "wcs_all_forms", &t->has_allforms, NULL)) ||
        (rc = db_relation(&t->db, "public", "formdefs", &has_formdefs, NULL)))
        return rc;
    if (t->has_allforms && (rc = load_allforms_columns(t, &t->allforms_cols, &t->nallforms)))
        return rc;

    /* Main tables: formdata_<id>_<slug> in public that have the w.c.s. main
     * columns (history tables, named <main>_evolutions, do not), never the
     * test_ copies. */
    struct strbuf sql;
    sb_init(&sql);
    sb_append(&sql, "SELECT c.oid, c.relname, pg_catalog.substring(c.relname, '^formdata_([0-9]{1,9})_')::int,"
                    " e.relname, ");
    if (has_formdefs)
        sb_append(&sql, "f.slug, f.name, f.id IS NOT NULL");
    else
        sb_append(&sql, "NULL, NULL, false");
    sb_append(&sql, " FROM pg_catalog.pg_class c"
                    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'"
                    " LEFT JOIN pg_catalog.pg_class e ON e.relnamespace = c.relnamespace"
                    "  AND e.relname = c.relname || '_evolutions' AND e.relkind IN ('r', 'p')");
    if (has_formdefs)
        sb_append(&sql, " LEFT JOIN public.formdefs f"
                        "  ON f.id = pg_catalog.substring(c.relname, '^formdata_([0-9]{1,9})_')::int");
    sb_append(&sql, " WHERE c.relkind IN ('r', 'p') AND c.relname ~ '^formdata_[0-9]{1,9}_'"
                    " AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid"
                    "  AND a.attname = 'receipt_time' AND NOT a.attisdropped)"
                    " ORDER BY 3, 2");
    rc = db_exec(&t->db, &res, sql.buf, 0, NULL, NULL);
    sb_free(&sql);
    if (rc)
        goto out;

    int nrows = PQntuples(res);
    t->forms = ax_calloc((size_t)nrows, sizeof *t->forms);
    for (int i = 0; i < nrows; i++) {
        struct form *f = &t->forms[t->nforms++];
        f->table = ax_strdup(PQgetvalue(res, i, 1));
        f->formdef_id = atoi(PQgetvalue(res, i, 2));
        f->evo_table = PQgetisnull(res, i, 3) ? NULL : ax_strdup(PQgetvalue(res, i, 3));
        f->has_formdef_row = strcmp(PQgetvalue(res, i, 6), "t") == 0;
        if (f->has_formdef_row && !PQgetisnull(res, i, 4)) {
            f->slug = ax_strdup(PQgetvalue(res, i, 4));
            f->name = ax_strdup(PQgetisnull(res, i, 5) ? f->slug : PQgetvalue(res, i, 5));
        } else {
            /* an orphan table still holds personal data: process it, with
             * the slug its name was built from */
            const char *p = strchr(f->table + strlen("formdata_"), '_');
            f->slug = ax_strdup(p ? p + 1 : f->table);
            for (char *q = f->slug; *q; q++)
                if (*q == '_')
                    *q = '-';
            f->name = ax_strdup(f->slug);
            log_warning("%s: table %s has no formdefs row; processing it as form \"%s\"", t->name, f->table,
                        f->slug);
        }
        f->def = def_set_find(&t->app_tenant->defs, f->slug);
        cfg_resolve(app->cfg, t->app_tenant->cfg, f->slug, &f->pol);
        f->q_table = db_quote_ident(&t->db, f->table);
        f->q_evo = f->evo_table ? db_quote_ident(&t->db, f->evo_table) : NULL;
        if ((rc = load_columns(t, PQgetvalue(res, i, 0), &f->cols, &f->ncols)))
            goto out;
        classify_columns(f->cols, f->ncols, f->def, &f->pol);
        for (size_t k = 0; k < f->ncols; k++)
            if (f->cols[k].cls == COL_UNCLASSIFIED)
                f->nunclassified++;
        const char **unmatched;
        size_t nun = classify_unmatched_names(f->cols, f->ncols, f->def, &f->pol, &unmatched);
        for (size_t k = 0; k < nun; k++)
            log_warning("%s: form %s: configured field \"%s\" matches no field", t->name, f->slug, unmatched[k]);
        free(unmatched);
        prepare_sql(t, f);
    }
out:
    PQclear(res);
    return rc;
}

int tenant_compute_cutoffs(struct tenant *t, const char *at)
{
    PGresult *res;
    const char *values[2] = {at, NULL};
    const Oid types[2] = {DB_TIMESTAMPTZOID, DB_INT4OID};

    /* one clock reading for every form */
    int rc = db_exec(&t->db, &res, "SELECT COALESCE($1, pg_catalog.now())", 1, types, values);
    if (rc)
        return rc;
    snprintf(t->now, sizeof t->now, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    values[0] = t->now;
    for (size_t i = 0; i < t->nforms; i++) {
        struct form *f = &t->forms[i];
        char days[16];
        /* days as in the configuration, where a month counts 30 */
        snprintf(days, sizeof days, "%d", f->pol.retention_days);
        values[1] = days;
        rc = db_exec(&t->db, &res, "SELECT $1 - pg_catalog.make_interval(days => $2)", 2, types, values);
        if (rc)
            return rc;
        snprintf(f->cutoff, sizeof f->cutoff, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return AX_OK;
}

void form_params(const struct form *f, const char *values[FORM_NPARAMS], const char *lo, const char *hi,
                 const char *run_ts, char *formdef_id_buf, size_t buflen)
{
    snprintf(formdef_id_buf, buflen, "%d", f->formdef_id);
    values[0] = f->cutoff;
    values[1] = formdef_id_buf;
    values[2] = f->endpoints ? f->endpoints : "{}";
    values[3] = f->stat_keys;
    values[4] = lo;
    values[5] = hi;
    values[6] = run_ts;
}
