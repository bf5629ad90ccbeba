/*
 * tenant.c: tenant session and catalog discovery.
 *
 * Everything that names a table or a column comes from the catalog and is
 * quoted here, once, with PQescapeIdentifier; the statements themselves are
 * built by plan.c.
 */
#include "tenant.h"
#include "ax.h"
#include "defs.h"
#include "log.h"
#include "privileges.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The columns of wcs_all_forms that carry nothing personal (statistics_data
 * is trimmed and id_display reset on their own).  Every other column, the
 * known personal ones (user_id, user_label, user_name, submission_agent_id,
 * digests, fts, the roles arrays, geolocation, relations_data) and any a
 * later w.c.s. adds, is cleared for anonymised submissions: privacy by
 * default.
 */
static const char *const allforms_kept[] = {
    "category_id",          "formdef_id", "id",             "receipt_time",   "status",
    "id_display",           "submission_channel",           "backoffice_submission",
    "last_update_time",     "is_at_endpoint",               "formdef_name",   "criticality_level",
    "anonymised",           "statistics_data",
};
static const char *const allforms_known_personal[] = {
    "user_id",     "user_label",          "user_name",           "submission_agent_id",
    "digests",     "fts",                 "concerned_roles_array", "actions_roles_array",
    "geoloc_base_x", "geoloc_base_y",     "relations_data",
};

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

/* A new session for t, with the tool's profile (db.h). */
static int session_open(struct tenant *t, const struct app *app, bool read_only)
{
    struct db_profile profile = app_db_profile(app->cfg, read_only);
    int rc = db_connect(&t->db, t->app_tenant->cfg->conninfo, t->app_tenant->cfg->dbname, t->name, &profile);
    /* a stop signal (SIGINT, SIGTERM...) cancels this session's statement: the batch in flight rolls back */
    if (rc == AX_OK)
        db_watch_cancel(&t->db);
    return rc;
}

int tenant_open(struct tenant *t, const struct app *app, struct app_tenant *at, bool read_only)
{
    memset(t, 0, sizeof *t);
    t->app_tenant = at;
    t->name = at->cfg->name;
    return session_open(t, app, read_only);
}

int tenant_helper_session(struct tenant *t, const struct app *app)
{
    /* the coordinator's session, inherited by fork: its socket is closed
     * here (the session itself stays the coordinator's), never ended */
    if (t->db.conn && PQsocket(t->db.conn) >= 0)
        close(PQsocket(t->db.conn));
    memset(&t->db, 0, sizeof t->db);
    return session_open(t, app, false);
}

void tenant_close(struct tenant *t)
{
    db_watch_cancel(NULL);
    for (size_t i = 0; i < t->facts.nallforms_personal; i++)
        free(t->facts.allforms_personal[i]);
    free(t->facts.allforms_personal);
    free(t->facts.users_set_null);
    free(t->facts.users_as_text);
    free(t->facts.users_holds);
    memset(&t->facts, 0, sizeof t->facts);
    for (size_t i = 0; i < t->nforms; i++)
        form_free(&t->forms[i]);
    free(t->forms);
    t->forms = NULL;
    t->nforms = 0;
    db_close(&t->db);
}

/* Tries the run lock: *acquired false when another session holds it. */
static int try_lock(struct tenant *t, bool *acquired)
{
    PGresult *res;
    int rc = db_query(&t->db, &res, DB_ONE_ROW(1), "SELECT pg_catalog.pg_try_advisory_lock(" LOCK_TENANT ")", 0,
                      NULL, NULL);
    if (rc)
        return rc;
    *acquired = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

/*
 * Whether a run of another process finished this tenant successfully after
 * this one started: it did it while this one was doing others (a peer host
 * with the same timer, or a second run); a run that finished before this one
 * started is an earlier night, or an earlier run this one is meant to
 * follow.  A tenant without a readable anonymizer.runs was never run.
 */
static int done_by_peer(struct tenant *t, const struct app *app, bool *done)
{
    bool exists = false, readable = false;
    *done = false;
    int rc = db_relation(&t->db, "anonymizer", "runs", &exists, &readable);
    if (rc || !exists || !readable)
        return rc;
    PGresult *res;
    const char *v[2] = {app->started, app->run_id};
    rc = db_query(&t->db, &res, DB_ONE_ROW(1),
                  "SELECT EXISTS (SELECT 1 FROM anonymizer.runs WHERE command OPERATOR(pg_catalog.=) 'run'"
                  " AND outcome OPERATOR(pg_catalog.=) 'ok' AND run_id OPERATOR(pg_catalog.<>) $2::uuid"
                  " AND finished_at OPERATOR(pg_catalog.>=) $1::timestamptz)",
                  2, NULL, v);
    if (rc)
        return rc;
    *done = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

/*
 * The slugs of a tenant a peer does, for the forms entries' check (a slug
 * that no reachable tenant has is a typo; one this process did not look at
 * is not).  Best effort: what cannot be read is not noted.
 */
static void note_peer_slugs(struct tenant *t, const struct app *app, struct app_tenant *at)
{
    static const char *const defs[2] = {"formdefs", "carddefs"};
    for (int card = 0; card < 2; card++) {
        bool exists = false, readable = false;
        if (db_relation(&t->db, "public", defs[card], &exists, &readable) != AX_OK || !exists || !readable)
            continue;
        PGresult *res;
        char *sql = ax_asprintf("SELECT slug FROM public.%s WHERE slug IS NOT NULL", defs[card]);
        if (db_query(&t->db, &res, DB_ROWS(1), sql, 0, NULL, NULL) == AX_OK) {
            for (int i = 0; i < PQntuples(res); i++)
                app_note_slug(app, at, PQgetvalue(res, i, 0), card == 1);
            PQclear(res);
        }
        free(sql);
    }
    db_clear_error(&t->db);
}

/* -- discovery ---------------------------------------------------------------- */

/* Which tenant-wide w.c.s. tables exist. */
static int load_relations(struct tenant *t)
{
    PGresult *res;
    /* from the catalog: to_regclass() fails without USAGE on the schema */
    static const char *const names[] = {"tracking_codes", "wcs_all_forms", "formdefs", "carddefs", "wcs_search_tokens",
                                        "users", "workflow_traces", "workflow_traces_archive", "test_workflow_traces",
                                        "test_workflow_traces_archive", "audit", "loggederrors", "testdef", "snapshots"};
    bool *facts[AX_ARRAY_LEN(names)] = {&t->facts.has_tracking_codes, &t->facts.has_allforms, &t->facts.has_defs[0],
                                        &t->facts.has_defs[1], &t->facts.has_search_tokens, &t->facts.has_users,
                                        &t->facts.has_traces[0], &t->facts.has_traces[1], &t->facts.has_traces[2],
                                        &t->facts.has_traces[3], &t->facts.has_audit, &t->facts.has_loggederrors,
                                        &t->facts.has_testdef, &t->facts.has_snapshots};
    struct strbuf list;
    sb_init(&list);
    sb_append_pg_text_array(&list, (char *const *)names, AX_ARRAY_LEN(names));
    const char *values[1] = {list.buf};
    int rc = db_query(&t->db, &res, DB_ROWS(1),
                      "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                      "  ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
                      " WHERE n.nspname OPERATOR(pg_catalog.=) 'public'"
                      " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])"
                      " AND c.relname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])",
                      1, NULL, values);
    sb_free(&list);
    if (rc)
        return rc;
    for (size_t i = 0; i < AX_ARRAY_LEN(names); i++) {
        *facts[i] = false;
        for (int r = 0; r < PQntuples(res); r++)
            *facts[i] |= strcmp(PQgetvalue(res, r, 0), names[i]) == 0;
    }
    PQclear(res);
    return AX_OK;
}

/* The personal columns of users, which a test user copied from a submitter holds (testdefs.h). */
static int load_user_columns(struct tenant *t)
{
    PGresult *res;
    int rc = db_query(&t->db, &res, DB_ROWS(1),
                      "SELECT a.attname FROM pg_catalog.pg_attribute a"
                      " WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('public.users')"
                      " AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped AND NOT a.attnotnull"
                      " AND a.attname OPERATOR(pg_catalog.<>) ALL ('{id,test_uuid,roles,is_active,is_admin,"
                      "last_seen,deleted_timestamp}'::name[])"
                      " ORDER BY a.attnum",
                      0, NULL, NULL);
    if (rc || PQntuples(res) == 0) {
        PQclear(res);
        return rc;
    }
    struct strbuf s, x, h;
    sb_init(&s);
    sb_init(&x);
    sb_init(&h);
    for (int i = 0; i < PQntuples(res); i++) {
        char *q = db_quote_ident(&t->db, PQgetvalue(res, i, 0));
        sb_appendf(&s, "%s%s = NULL", i ? ", " : "", q);
        sb_appendf(&x, "%su.%s::text", i ? ", " : "", q);
        sb_appendf(&h, "%su.%s IS NOT NULL", i ? " OR " : "", q);
        free(q);
    }
    PQclear(res);
    t->facts.users_set_null = sb_finish(&s);
    t->facts.users_as_text = sb_finish(&x);
    t->facts.users_holds = sb_finish(&h);
    return AX_OK;
}

static int load_allforms_columns(struct tenant *t)
{
    PGresult *res;
    int rc = db_query(&t->db, &res, DB_ROWS(2),
                      "SELECT a.attname, a.attnotnull FROM pg_catalog.pg_attribute a"
                      " WHERE a.attrelid OPERATOR(pg_catalog.=) 'public.wcs_all_forms'::pg_catalog.regclass"
                      " AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped ORDER BY a.attnum",
                      0, NULL, NULL);
    if (rc)
        return rc;
    bool has_stats = false, has_anon = false;
    char *refused = NULL;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);
        has_stats |= strcmp(name, "statistics_data") == 0;
        has_anon |= strcmp(name, "anonymised") == 0;
        t->facts.allforms_has_id_display |= strcmp(name, "id_display") == 0;
        if (in_list(name, allforms_kept, AX_ARRAY_LEN(allforms_kept)))
            continue;
        bool known = in_list(name, allforms_known_personal, AX_ARRAY_LEN(allforms_known_personal));
        if (!known && strcmp(PQgetvalue(res, i, 1), "t") == 0) {
            if (!refused)
                refused = ax_strdup(name);
            continue;
        }
        if (!known)
            log_warning("%s: wcs_all_forms.%s: unknown column, cleared for anonymised submissions (privacy by"
                        " default)", t->name, name);
        struct plan_tenant *p = &t->facts;
        p->allforms_personal = ax_reallocarray(p->allforms_personal, p->nallforms_personal + 1,
                                               sizeof *p->allforms_personal);
        p->allforms_personal[p->nallforms_personal++] = db_quote_ident(&t->db, name);
    }
    PQclear(res);
    if (refused) {
        db_set_error(&t->db, "wcs_all_forms.%s: unknown column that is NOT NULL: it cannot be cleared", refused);
        free(refused);
        return AX_ERR_DATA;
    }
    if (!has_stats || !has_anon) {
        db_set_error(&t->db, "wcs_all_forms has no statistics_data or anonymised column: unsupported w.c.s. layout");
        return AX_ERR_DATA;
    }
    return AX_OK;
}

/*
 * Data tables in public that have the w.c.s. main columns (history tables,
 * named <main>_evolutions, do not): forms (formdata_<id>_<slug>), their test
 * copies (test_formdata_<id>_<slug>), cards (carddata_<id>_<slug>); each
 * test copy after its form, cards last.  Columns: oid, table, kind (0 form,
 * 1 test copy, 2 card), formdef or carddef id, history table, slug, name,
 * has a formdefs (carddefs) row.
 */
static char *forms_query(const bool has_defs[2])
{
    struct strbuf sql;
    sb_init(&sql);
    sb_append(&sql, "SELECT c.oid, c.relname, k.kind, k.id, e.relname, ");
    sb_append(&sql, has_defs[0] && has_defs[1] ? "COALESCE(fd.slug, cd.slug), COALESCE(fd.name, cd.name),"
                                                 " COALESCE(fd.id, cd.id) IS NOT NULL"
                    : has_defs[0]              ? "fd.slug, fd.name, fd.id IS NOT NULL"
                    : has_defs[1]              ? "cd.slug, cd.name, cd.id IS NOT NULL"
                                               : "NULL, NULL, false");
    sb_append(&sql, ", k.card");
    sb_append(&sql, " FROM pg_catalog.pg_class c"
                    " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
                    "  AND n.nspname OPERATOR(pg_catalog.=) 'public'"
                    " CROSS JOIN LATERAL (SELECT CASE WHEN c.relname OPERATOR(pg_catalog.~) '^formdata_' THEN 0"
                    "  WHEN c.relname OPERATOR(pg_catalog.~) '^test_' THEN 1 ELSE 2 END AS kind,"
                    "  c.relname OPERATOR(pg_catalog.~) '^(test_)?carddata_' AS card,"
                    "  pg_catalog.substring(c.relname, '^(?:test_formdata|test_carddata|formdata|carddata)_([0-9]{1,9})_')::int"
                    "  AS id) k"
                    " LEFT JOIN pg_catalog.pg_class e ON e.relnamespace OPERATOR(pg_catalog.=) c.relnamespace"
                    "  AND e.relname OPERATOR(pg_catalog.=) (c.relname OPERATOR(pg_catalog.||) '_evolutions')"
                    "  AND e.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])");
    if (has_defs[0])
        sb_append(&sql, " LEFT JOIN public.formdefs fd ON NOT k.card AND fd.id OPERATOR(pg_catalog.=) k.id");
    if (has_defs[1])
        sb_append(&sql, " LEFT JOIN public.carddefs cd ON k.card AND cd.id OPERATOR(pg_catalog.=) k.id");
    sb_append(&sql, " WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])"
                    " AND c.relname OPERATOR(pg_catalog.~) '^(test_formdata|test_carddata|formdata|carddata)_[0-9]{1,9}_'"
                    " AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid"
                    "  AND a.attname OPERATOR(pg_catalog.=) 'receipt_time' AND NOT a.attisdropped)"
                    " ORDER BY k.kind OPERATOR(pg_catalog.=) 2, k.id, k.kind, c.relname");
    return sb_finish(&sql);
}

/* The slug and name of a form, from its formdefs row or, for an orphan table, its name. */
static void name_form(struct tenant *t, struct form *f, PGresult *res, int row)
{
    if (f->has_formdef_row && !PQgetisnull(res, row, 5)) {
        f->slug = ax_strdup(PQgetvalue(res, row, 5));
        f->name = ax_strdup(PQgetisnull(res, row, 6) ? f->slug : PQgetvalue(res, row, 6));
        return;
    }
    /* an orphan table still holds personal data: process it, with the slug
     * its name was built from */
    const char *p = strchr(strchr(f->table, '_') + 1 + (f->kind == FORM_KIND_TEST ? strlen("formdata_") : 0), '_');
    f->slug = ax_strdup(p ? p + 1 : f->table);
    for (char *q = f->slug; *q; q++)
        if (*q == '_')
            *q = '-';
    f->name = ax_strdup(f->slug);
    log_warning("%s: table %s has no %s row; processing it as %s \"%s\"", t->name, f->table,
                f->kind == FORM_KIND_CARD ? "carddefs" : "formdefs", form_kind_str(f->kind), f->slug);
}

/* Every column of every form table, in one catalog query. */
static int load_columns(struct tenant *t, char **oids)
{
    struct strbuf arr;
    PGresult *res;
    sb_init(&arr);
    sb_append_pg_text_array(&arr, oids, t->nforms);
    const char *values[1] = {arr.buf};
    const Oid types[1] = {DB_TEXTOID};
    int rc = db_query(&t->db, &res, DB_ROWS(4),
                      "SELECT u.n, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull"
                      " FROM pg_catalog.unnest($1::pg_catalog.oid[]) WITH ORDINALITY u (oid, n)"
                      " JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) u.oid"
                      " WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped"
                      " ORDER BY u.n, a.attnum",
                      1, types, values);
    sb_free(&arr);
    if (rc)
        return rc;
    /* rows come grouped by table, in the order of t->forms */
    int nrows = PQntuples(res), row = 0;
    for (size_t i = 0; i < t->nforms; i++) {
        struct form *f = &t->forms[i];
        int first = row;
        while (row < nrows && atoll(PQgetvalue(res, row, 0)) == (long long)i + 1)
            row++;
        f->ncols = (size_t)(row - first);
        f->cols = ax_calloc(f->ncols, sizeof *f->cols);
        for (size_t k = 0; k < f->ncols; k++) {
            struct column *c = &f->cols[k];
            int r = first + (int)k;
            c->name = ax_strdup(PQgetvalue(res, r, 1));
            c->qname = db_quote_ident(&t->db, c->name);
            c->type = ax_strdup(PQgetvalue(res, r, 2));
            c->notnull = strcmp(PQgetvalue(res, r, 3), "t") == 0;
        }
    }
    PQclear(res);
    return AX_OK;
}

/* Classification, the configuration's names that match nothing, and the SQL. */
static void prepare_form(struct tenant *t, struct form *f)
{
    classify_columns(f->cols, f->ncols, f->def, &f->pol);
    for (size_t k = 0; k < f->ncols; k++)
        if (f->cols[k].cls == COL_UNCLASSIFIED)
            f->nunclassified++;
    const char **unmatched;
    size_t nun = classify_unmatched_names(f->cols, f->ncols, f->def, &f->pol, &unmatched);
    for (size_t k = 0; k < nun; k++)
        log_warning("%s: %s: configured field \"%s\" matches no field", t->name, f->label, unmatched[k]);
    free(unmatched);
    plan_prepare(f, &t->facts);
}

/* Form tables and not one definition: every field of every form is blanked, and nobody asked for that. */
static void warn_without_definitions(const struct tenant *t)
{
    size_t forms = 0;
    for (size_t i = 0; i < t->nforms; i++)
        forms += t->forms[i].kind == FORM_KIND_FORM;
    if (forms > 0 && t->app_tenant->defs.n == 0)
        log_loud_warning("%s: %zu form table%s but no definition at all: every field is blanked (fetch them, or"
                         " see schemas in anonymizer.conf(5))",
                         t->name, forms, forms == 1 ? "" : "s");
}

static int tenant_discover_forms(struct tenant *t, const struct app *app)
{
    PGresult *res;
    int rc;

    if ((rc = load_relations(t)))
        return rc;
    t->facts.anonymise_wcs_logs = app->cfg->wcs_logs_anonymise;
    t->facts.anonymise_testdefs = !app->cfg->testdefs_report_only;
    if (t->facts.has_testdef && t->facts.has_users && (rc = load_user_columns(t)))
        return rc;
    if (t->check_privileges && (rc = privileges_check_definitions(&t->db, &t->facts)))
        return rc;
    if (t->facts.has_allforms && (rc = load_allforms_columns(t)))
        return rc;
    char *sql = forms_query(t->facts.has_defs);
    rc = db_query(&t->db, &res, DB_ROWS(9), sql, 0, NULL, NULL);
    free(sql);
    if (rc)
        return rc;

    int nrows = PQntuples(res);
    char **oids = ax_calloc((size_t)nrows, sizeof *oids);
    t->forms = ax_calloc((size_t)nrows, sizeof *t->forms);
    for (int i = 0; i < nrows; i++) {
        struct form *f = &t->forms[t->nforms];
        oids[t->nforms++] = PQgetvalue(res, i, 0);
        f->table = ax_strdup(PQgetvalue(res, i, 1));
        f->kind = (enum form_kind)atoi(PQgetvalue(res, i, 2));
        f->formdef_id = atoi(PQgetvalue(res, i, 3));
        f->evo_table = PQgetisnull(res, i, 4) ? NULL : ax_strdup(PQgetvalue(res, i, 4));
        f->has_formdef_row = strcmp(PQgetvalue(res, i, 7), "t") == 0;
        f->of_card = strcmp(PQgetvalue(res, i, 8), "t") == 0;
        name_form(t, f, res, i);
        f->label = ax_asprintf("%s%s %s", form_kind_str(f->kind), f->kind == FORM_KIND_TEST ? " of" : "", f->slug);
        if (f->of_card) {
            /* a card, or a test copy of a card: the card's definition and cards entry */
            f->def = def_set_find(&t->app_tenant->card_defs, f->slug);
            f->anonymise = cfg_resolve_card(app->cfg, t->app_tenant->cfg, f->slug, &f->pol);
        } else {
            /* a test copy follows its form's definition and rules */
            f->def = def_set_find(&t->app_tenant->defs, f->slug);
            f->anonymise = true;
            cfg_resolve(app->cfg, t->app_tenant->cfg, f->slug, &f->pol);
        }
        f->q_table = db_quote_ident(&t->db, f->table);
        f->q_evo = f->evo_table ? db_quote_ident(&t->db, f->evo_table) : NULL;
        /* a test copy of a card without a cards entry: part of the card's register, left as it is */
        if (f->kind == FORM_KIND_TEST && f->of_card && !f->anonymise) {
            form_free(f);
            memset(f, 0, sizeof *f);
            t->nforms--;
        }
    }
    rc = t->nforms > 0 ? load_columns(t, oids) : AX_OK;
    free(oids);
    PQclear(res);
    if (rc)
        return rc;
    for (size_t i = 0; i < t->nforms; i++)
        prepare_form(t, &t->forms[i]);
    warn_without_definitions(t);
    app_note_entries(app, t->app_tenant, t->forms, t->nforms);
    return AX_OK;
}

static int tenant_compute_cutoffs(struct tenant *t, const char *at)
{
    PGresult *res;
    const char *values[2] = {at, NULL};
    const Oid types[2] = {DB_TIMESTAMPTZOID, DB_INT4OID};

    /* one clock reading for every form */
    int rc = db_query(&t->db, &res, DB_ONE_ROW(1), "SELECT COALESCE($1, pg_catalog.now())", 1, types, values);
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
        rc = db_query(&t->db, &res, DB_ONE_ROW(1), "SELECT $1 OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => $2)", 2, types,
                      values);
        if (rc)
            return rc;
        snprintf(f->cutoff, sizeof f->cutoff, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return AX_OK;
}

enum tenant_outcome tenant_begin(struct tenant *t, const struct app *app, struct app_tenant *at, unsigned steps,
                                 const char *at_time)
{
    if (defs_prepare(app, at, (steps & TB_FETCH) ? DEFS_FETCH_FIRST : DEFS_FILES, NULL) != AX_OK) {
        memset(t, 0, sizeof *t);
        t->app_tenant = at;
        t->name = at->cfg->name;
        db_set_error(&t->db, "%s", at->defs_error);
        return TENANT_FAILED;
    }
    if (tenant_open(t, app, at, (steps & TB_READ_ONLY) != 0) != AX_OK) {
        if (PQstatus(t->db.conn) != CONNECTION_OK) {
            log_error("%s: cannot connect: %s", at->cfg->name, t->db.error);
            return TENANT_UNREACHABLE;
        }
        log_error("%s: %s", t->name, t->db.error);
        return TENANT_FAILED;
    }
    if ((steps & TB_WARN_SUPERUSER) && db_is_superuser(&t->db))
        app_warn_superuser(t->name, PQuser(t->db.conn));
    bool locked = true;
    if ((steps & TB_LOCK) && try_lock(t, &locked) != AX_OK) {
        log_error("%s: %s", t->name, t->db.error);
        return TENANT_FAILED;
    }
    bool peer_did_it = false;
    if (locked && (steps & TB_PEER) && done_by_peer(t, app, &peer_did_it) != AX_OK) {
        log_error("%s: %s", t->name, t->db.error);
        return TENANT_FAILED;
    }
    if (!locked || peer_did_it) {
        /* two hosts (or two runs) are one platform: a tenant done by one of them tonight is done */
        db_set_error(&t->db, "%s", locked ? "done tonight by another anonymizer run" : "another anonymizer run"
                                                                                       " holds this tenant's lock");
        log_info("%s: %s (a peer host, or another run); skipped", t->name,
                 locked ? "done tonight by another anonymizer run" : "another anonymizer run holds this tenant's lock");
        note_peer_slugs(t, app, at);
        return TENANT_PEER;
    }
    int rc = AX_OK;
    /* one consistent picture; the server refuses any write */
    if (steps & TB_SNAPSHOT)
        rc = db_cmd(&t->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    t->check_privileges = (steps & (TB_PRIV_RUN | TB_PRIV_READ)) != 0;
    if (rc == AX_OK)
        rc = tenant_discover_forms(t, app);
    /* before anything is touched: a missing grant is one clear error, not a tenant half done */
    if (rc == AX_OK && (steps & (TB_PRIV_RUN | TB_PRIV_READ)))
        rc = privileges_check(&t->db, &t->facts, t->forms, t->nforms, (steps & TB_PRIV_RUN) ? PRIV_RUN : PRIV_READ);
    /* a form whose own tables lack a grant is left out, the others go on */
    if (rc == AX_OK && (steps & TB_PRIV_RUN)) {
        char *first;
        if (privileges_check_forms(&t->db, t->forms, t->nforms, &first) < 0)
            rc = AX_ERR_DB;
        free(first);
    }
    if (rc == AX_OK && (steps & TB_CUTOFFS))
        rc = tenant_compute_cutoffs(t, at_time);
    if (rc != AX_OK) {
        log_error("%s: %s", t->name, t->db.error ? t->db.error : ax_status_str(rc));
        return TENANT_FAILED;
    }
    return TENANT_OK;
}
