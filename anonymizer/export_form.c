/*
 * export_form.c: the export of one form (see export_form.h and export.c).
 *
 * Order, in the form's BI transaction: the forms row (noting whether the
 * rule that decides its groups changed: then every row is sent again), the
 * watermark, the tenant's rows into the staging table, the submissions
 * deleted in w.c.s. taken out (their groups checked again), the view; then,
 * queued in a pipeline, the decisions, the merge and the figures (kanon.c).
 */
#include "export_form.h"
#include "audit.h"
#include "ax.h"
#include "bi_views.h"
#include "classify.h"
#include "log.h"
#include "strbuf.h"
#include "timeutil.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A text[] literal of n strings. */
static char *text_array(char *const *items, size_t n)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append_pg_text_array(&sb, items, n);
    return sb_finish(&sb);
}

static json_object *fields_json(const struct plan_field *fields, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        const struct column *c = fields[i].col;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "key", json_object_new_string(fields[i].key));
        json_object_object_add(o, "column", json_object_new_string(c->name));
        json_object_object_add(o, "label", c->field && c->field->label ? json_object_new_string(c->field->label) : NULL);
        json_object_object_add(o, "type", json_object_new_string(c->field ? c->field->type : c->type));
        json_object_object_add(o, "sensitive", json_object_new_boolean(fields[i].sensitive));
        json_object_array_add(a, o);
    }
    return a;
}

/* Whether bi.sensitive names this field (by varname, id or column). */
static bool is_sensitive(const struct app *app, const struct column *c)
{
    for (size_t i = 0; i < app->cfg->bi.nsensitive; i++) {
        const char *h = app->cfg->bi.sensitive[i];
        if ((c->field && ((c->field->varname && strcmp(c->field->varname, h) == 0) || strcmp(c->field->id, h) == 0)) ||
            strcmp(c->name, h) == 0)
            return true;
    }
    return false;
}

/* The keys k-anonymity counts, the sensitive ones, the dates (a field and its display value alike). */
static void classify_fields(struct form_export *fe)
{
    char **sens = ax_calloc(fe->nfields + 1, sizeof *sens), **dates = ax_calloc(fe->nfields + 1, sizeof *dates),
         **qi = ax_calloc(fe->nfields + 1, sizeof *qi);
    size_t nk = 0;
    fe->nsensitive = fe->nqi = fe->ndates = 0;
    for (size_t i = 0; i < fe->nfields; i++) {
        struct plan_field *pf = &fe->fields[i];
        pf->sensitive = is_sensitive(fe->app, pf->col);
        bool display = strlen(pf->key) > 8 && strcmp(pf->key + strlen(pf->key) - 8, "_display") == 0;
        if (pf->sensitive) {
            sens[fe->nsensitive++] = pf->key;
            continue;
        }
        qi[nk++] = pf->key;
        fe->nqi += !display;
        if (strcmp(pf->col->type, "date") == 0)
            dates[fe->ndates++] = pf->key;
    }
    fe->sensitive = text_array(sens, fe->nsensitive);
    fe->dates = text_array(dates, fe->ndates);
    fe->qi_keys = text_array(qi, nk);
    free(sens);
    free(dates);
    free(qi);
}

/* Everything that decides the groups of the form's rows: when it changes, every row is decided again. */
static json_object *rule_json(const struct form_export *fe, json_object *kept)
{
    const struct cfg_bi *c = &fe->app->cfg->bi;
    json_object *r = json_object_new_object();
    json_object_object_add(r, "kept_fields", json_object_get(kept));
    json_object_object_add(r, "min_k", json_object_new_int(c->min_k));
    json_object_object_add(r, "min_l", json_object_new_int(c->min_l));
    json_object_object_add(r, "time_precision", json_object_new_string(c->time_precision));
    json_object_object_add(r, "date_precision", json_object_new_string(c->date_precision));
    json_object_object_add(r, "generalise", json_object_new_boolean(c->generalise));
    json_object_object_add(r, "time_zone", json_object_new_string(fe->bi->tz));
    return r;
}

/* The keys of the fields that are (sensitive) or are not (!sensitive) declared sensitive, as a JSON list. */
static char *keys_json(const struct form_export *fe, bool sensitive)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < fe->nfields; i++)
        if (fe->fields[i].sensitive == sensitive)
            json_object_array_add(a, json_object_new_string(fe->fields[i].key));
    char *s = ax_strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
    json_object_put(a);
    return s;
}

/*
 * The form's row of forms (before its rows: they reference it), noting
 * whether its rule changed, and its statuses.
 */
static int record_form(struct form_export *fe)
{
    PGresult *res;
    const struct cfg_bi *c = &fe->app->cfg->bi;
    char k[16], l[16];
    snprintf(k, sizeof k, "%d", c->min_k);
    snprintf(l, sizeof l, "%d", c->min_l);
    json_object *kept = fields_json(fe->fields, fe->nfields), *rule = rule_json(fe, kept);
    char *qi = keys_json(fe, false), *sens = keys_json(fe, true);
    const char *v[12] = {fe->t->name, fe->fid, fe->f->slug, fe->f->name,
                         json_object_to_json_string_ext(kept, JSON_C_TO_STRING_PLAIN), qi, k, sens, l,
                         c->time_precision, c->date_precision, json_object_to_json_string_ext(rule, JSON_C_TO_STRING_PLAIN)};
    const Oid ty[12] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID,
                        DB_INT4OID, DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    int rc = bi_query(fe->bi, &res, DB_ONE_ROW(1),
                      "SELECT NOT EXISTS (SELECT 1 FROM @S.forms WHERE tenant OPERATOR(pg_catalog.=) $1"
                      " AND form_id OPERATOR(pg_catalog.=) $2 AND rule OPERATOR(pg_catalog.=) $12::jsonb"
                      " AND deleted_at IS NULL)",
                      12, ty, v);
    if (rc == AX_OK) {
        fe->rule_changed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        rc = bi_command(fe->bi,
                        "INSERT INTO @S.forms AS f (tenant, form_id, form_slug, form_name, kept_fields, updated_at,"
                        " quasi_identifiers, min_k, sensitive, min_l, time_precision, date_precision, generalise, rule)"
                        " VALUES ($1, $2, $3, $4, $5::jsonb, pg_catalog.now(), $6::jsonb, $7, $8::jsonb, $9, $10, $11,"
                        " ($12::jsonb OPERATOR(pg_catalog.->>) 'generalise')::boolean, $12::jsonb)"
                        " ON CONFLICT (tenant, form_id) DO UPDATE SET"
                        " form_slug = EXCLUDED.form_slug, form_name = EXCLUDED.form_name,"
                        " kept_fields = EXCLUDED.kept_fields, updated_at = EXCLUDED.updated_at, deleted_at = NULL,"
                        " quasi_identifiers = EXCLUDED.quasi_identifiers, min_k = EXCLUDED.min_k,"
                        " sensitive = EXCLUDED.sensitive, min_l = EXCLUDED.min_l,"
                        " time_precision = EXCLUDED.time_precision, date_precision = EXCLUDED.date_precision,"
                        " generalise = EXCLUDED.generalise, rule = EXCLUDED.rule"
                        /* a row compared as its text: equal texts, equal values (NULL included) */
                        " WHERE ROW(f.form_slug, f.form_name, f.deleted_at IS NULL, f.rule)::text"
                        " OPERATOR(pg_catalog.<>) ROW(EXCLUDED.form_slug, EXCLUDED.form_name, true,"
                        " EXCLUDED.rule)::text",
                        12, ty, v);
    }
    if (rc == AX_OK)
        rc = bi_form_statuses(fe->bi, fe->t->name, fe->f);
    json_object_put(rule);
    json_object_put(kept);
    free(qi);
    free(sens);
    return rc;
}

/*
 * The form's row of export_state, created when missing, locked for this
 * transaction.  A new rule starts the form again: every row is read and
 * decided, the suppression order computed anew.
 */
static int lock_watermark(struct form_export *fe, struct watermark *w)
{
    PGresult *res;
    const char *v[3] = {fe->t->name, fe->fid, fe->f->slug};
    const Oid ty[3] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID};
    int rc = bi_command(fe->bi,
                        "INSERT INTO @S.export_state (tenant, form_id, form_slug, updated_at)"
                        " VALUES ($1, $2, $3, pg_catalog.now()) ON CONFLICT (tenant, form_id) DO NOTHING",
                        3, ty, v);
    if (rc == AX_OK)
        rc = bi_query(fe->bi, &res, DB_ONE_ROW(3),
                      "SELECT change_seq, anonymised_until OPERATOR(pg_catalog.-) '1 day'::interval,"
                      " EXISTS (SELECT 1 FROM @S.submission_rows b WHERE b.tenant OPERATOR(pg_catalog.=) $1"
                      " AND b.form_id OPERATOR(pg_catalog.=) $2 AND b.pub IS NULL AND b.deleted_at IS NULL)"
                      " FROM @S.export_state WHERE tenant OPERATOR(pg_catalog.=) $1 AND form_id OPERATOR(pg_catalog.=) $2"
                      " FOR UPDATE",
                      2, ty, v);
    if (rc)
        return rc;
    w->incremental = !PQgetisnull(res, 0, 1) && !fe->rule_changed;
    w->has_held = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    snprintf(w->since, sizeof w->since, "%s", w->incremental ? PQgetvalue(res, 0, 1) : "-infinity");
    snprintf(w->seq, sizeof w->seq, "%s", w->incremental && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "0");
    PQclear(res);
    if (!w->incremental)
        rc = bi_command(fe->bi, "UPDATE @S.export_state SET suppression_order = NULL"
                                " WHERE tenant OPERATOR(pg_catalog.=) $1 AND form_id OPERATOR(pg_catalog.=) $2",
                        2, ty, v);
    return rc;
}

/* The tenant query's values (plan_export.h), transaction-local. */
static int set_copy_settings(struct form_export *fe, const struct watermark *w)
{
    const struct form *f = fe->f;
    char **keys = ax_calloc(fe->nfields + 1, sizeof *keys);
    for (size_t i = 0; i < fe->nfields; i++)
        keys[i] = fe->fields[i].key;
    size_t ns = f->def ? f->def->nstatuses : 0;
    char **ids = ax_calloc(ns + 1, sizeof *ids), **names = ax_calloc(ns + 1, sizeof *names);
    for (size_t i = 0; i < ns; i++) {
        ids[i] = ax_asprintf("wf-%s", f->def->statuses[i].id);
        names[i] = f->def->statuses[i].name;
    }
    char *keys_a = text_array(keys, fe->nfields), *ids_a = text_array(ids, ns), *names_a = text_array(names, ns);
    struct plan_export_settings s = {
        .formdef_id = fe->fid, .final_statuses = f->sql.endpoints ? f->sql.endpoints : "{}",
        .kept_stat_keys = f->sql.stat_keys, .block_keys = f->sql.block_keys,
        .time_precision = fe->app->cfg->bi.time_precision, .time_zone = fe->bi->tz, .field_keys = keys_a,
        .status_ids = ids_a, .status_names = names_a, .anonymised_since = w->since, .change_seq = w->seq,
        .table = f->table,
    };
    char *setting_names, *setting_values;
    plan_export_settings_bind(&s, &setting_names, &setting_values);
    const char *v[2] = {setting_names, setting_values};
    int rc = db_query(&fe->t->db, NULL, DB_ONE_ROW(1), plan_export_settings_sql, 2, NULL, v);
    free(setting_names);
    free(setting_values);
    for (size_t i = 0; i < ns; i++)
        free(ids[i]);
    free(ids);
    free(names);
    free(keys);
    free(keys_a);
    free(ids_a);
    free(names_a);
    return rc;
}

/* The rows the tenant sends, streamed into the staging table. */
static int copy_rows(struct form_export *fe)
{
    char *changes = fe->snap->has_changes ? audit_changed_ids_sql(fe->f->q_table) : NULL;
    char *copy_sql = plan_export_copy(fe->f, fe->fields, fe->nfields, fe->w.incremental, changes);
    double t0 = tm_now();
    int rc = db_copy(&fe->t->db, &fe->bi->db, copy_sql,
                     "COPY pg_temp.anonymizer_stage (" BI_STAGE_COLUMNS ") FROM STDIN", &fe->read);
    log_debug("%s: %s: staged %lld rows in %.3f s", fe->t->name, fe->f->label, fe->read, tm_now() - t0);
    free(changes);
    free(copy_sql);
    return rc;
}

/*
 * Submissions deleted in w.c.s. after their export: out of the reader's
 * view, their content blanked, their groups checked again after the merge;
 * the loader sees them deleted.  Cheap when nothing was deleted: the
 * tenant's anonymised submissions (counted on w.c.s.'s indexes) against
 * BI's live rows (the form's counts) and the new staged ones; only when the
 * tenant has fewer are its ids streamed over and compared.
 */
static int mark_deleted(struct form_export *fe, long long *marked)
{
    PGresult *res;
    *marked = 0;
    /* w.c.s.'s index on anonymised, and its index on status for the drafts among them */
    char *count_sql = ax_asprintf("SELECT (SELECT pg_catalog.count(*) FROM public.%s m WHERE m.anonymised IS NOT NULL)"
                                  " OPERATOR(pg_catalog.-) (SELECT pg_catalog.count(*) FROM public.%s m"
                                  " WHERE m.status OPERATOR(pg_catalog.=) 'draft' AND m.anonymised IS NOT NULL)",
                                  fe->f->q_table, fe->f->q_table);
    int rc = db_query(&fe->t->db, &res, DB_ONE_ROW(1), count_sql, 0, NULL, NULL);
    free(count_sql);
    if (rc)
        return rc;
    long long tenant_rows = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *v[2] = {fe->t->name, fe->fid};
    const Oid ty[2] = {DB_TEXTOID, DB_INT4OID};
    /* BI's live rows from the form's counts (bi_contract.h) */
    if ((rc = bi_query(fe->bi, &res, DB_ONE_ROW(1),
                       "SELECT (SELECT COALESCE(pg_catalog.sum(c.n), 0) FROM @S.form_counts c"
                       " WHERE c.tenant OPERATOR(pg_catalog.=) $1 AND c.form_id OPERATOR(pg_catalog.=) $2)"
                       " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_temp.anonymizer_stage s"
                       " WHERE NOT EXISTS (SELECT 1 FROM @S.submission_rows b WHERE b.tenant OPERATOR(pg_catalog.=) $1"
                       " AND b.form_id OPERATOR(pg_catalog.=) $2 AND b.submission_id OPERATOR(pg_catalog.=) s.submission_id"
                       " AND b.deleted_at IS NULL))",
                       2, ty, v)))
        return rc;
    long long bi_rows = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (tenant_rows >= bi_rows)
        return AX_OK;
    long long copied;
    char *ids_sql = ax_asprintf("COPY (SELECT m.id FROM public.%s m) TO STDOUT", fe->f->q_table);
    rc = db_copy(&fe->t->db, &fe->bi->db, ids_sql, "COPY pg_temp.anonymizer_ids (id) FROM STDIN", &copied);
    free(ids_sql);
    if (rc == AX_OK)
        rc = bi_query(fe->bi, &res, DB_ONE_ROW(1),
                      "WITH gone AS MATERIALIZED (SELECT b.submission_id, b.pub_hash FROM @S.submission_rows b"
                      " WHERE b.tenant OPERATOR(pg_catalog.=) $1 AND b.form_id OPERATOR(pg_catalog.=) $2"
                      " AND b.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM pg_temp.anonymizer_ids i"
                      " WHERE i.id OPERATOR(pg_catalog.=) b.submission_id) FOR UPDATE),"
                      " g AS (INSERT INTO pg_temp.anonymizer_groups (pub_hash) SELECT DISTINCT gone.pub_hash FROM gone"
                      " WHERE gone.pub_hash IS NOT NULL),"
                      " d AS (UPDATE @S.submission_rows b SET " BI_DELETED_SET " FROM gone WHERE b.tenant OPERATOR(pg_catalog.=) $1"
                      " AND b.form_id OPERATOR(pg_catalog.=) $2 AND b.submission_id OPERATOR(pg_catalog.=)"
                      " gone.submission_id RETURNING 1)"
                      " SELECT pg_catalog.count(*) FROM d",
                      2, ty, v);
    if (rc == AX_OK) {
        *marked = atoll(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return rc;
}

/* The watermark and the run's counter, in the rows' transaction; then the form's figures, read back. */
static int record_progress(struct form_export *fe, long long written)
{
    char n[32];
    snprintf(n, sizeof n, "%lld", written);
    const char *v[6] = {fe->t->name, fe->fid, fe->f->slug, fe->snap->seq, fe->snap->now, n};
    const Oid ty[6] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_INT8OID, DB_TIMESTAMPTZOID, DB_INT8OID};
    PGresult *res;
    int rc = bi_query(fe->bi, &res, DB_ONE_ROW(6),
                      "UPDATE @S.export_state SET form_slug = $3, change_seq = $4, anonymised_until = $5,"
                      " rows_exported = rows_exported OPERATOR(pg_catalog.+) $6, updated_at = pg_catalog.now()"
                      " WHERE tenant OPERATOR(pg_catalog.=) $1 AND form_id OPERATOR(pg_catalog.=) $2"
                      " RETURNING published, held_back, generalised, suppressed, smallest_group, limiting_field",
                      6, ty, v);
    if (rc)
        return rc;
    struct form_figures *fg = &fe->fig;
    fg->published = atoll(PQgetvalue(res, 0, 0));
    fg->held = atoll(PQgetvalue(res, 0, 1));
    fg->generalised = atoll(PQgetvalue(res, 0, 2));
    fg->suppressed = atoll(PQgetvalue(res, 0, 3));
    fg->smallest = PQgetisnull(res, 0, 4) ? -1 : atoll(PQgetvalue(res, 0, 4));
    snprintf(fg->limiting, sizeof fg->limiting, "%s", PQgetvalue(res, 0, 5));
    PQclear(res);
    if (!fe->dry_run) {
        const char *rv[3] = {fe->app->run_id, fe->t->name, n};
        const Oid rty[3] = {DB_TEXTOID, DB_TEXTOID, DB_INT8OID};
        rc = bi_command(fe->bi, "UPDATE @S.runs SET rows_exported = rows_exported OPERATOR(pg_catalog.+) $3"
                        " WHERE run_id OPERATOR(pg_catalog.=) $1::uuid AND tenant OPERATOR(pg_catalog.=) $2",
                        3, rty, rv);
    }
    return rc;
}

/* What the form's export did; a warning (never hidden by -q) when it holds back more than half the form. */
static void say_form(struct form_export *fe)
{
    const struct kanon_result *kr = &fe->kr;
    const struct form_figures *fg = &fe->fig;
    char figures[160];
    snprintf(figures, sizeof figures, "; in BI %lld published (%lld generalised, %lld with a suppressed field),"
             " %lld held back", fg->published, fg->generalised, fg->suppressed, fg->held);
    if (fe->dry_run) {
        char *line = ax_asprintf("%s: %s: would export %lld new, %lld updated, %lld released (%lld read), hold back"
                                 " %lld, withdraw %lld, mark %lld deleted%s",
                                 fe->t->name, fe->f->label, kr->inserted, kr->updated, kr->released, fe->read, kr->held,
                                 kr->withdrawn, fe->deleted, figures);
        progress_print(fe->progress, line);
        free(line);
    } else {
        log_info("%s: %s: exported %lld new, %lld updated, %lld released (%lld read, %s), %lld held back, %lld"
                 " withdrawn%s%s in %.2f s",
                 fe->t->name, fe->f->label, kr->inserted, kr->updated, kr->released, fe->read,
                 fe->w.incremental ? "incremental" : "full", kr->held, kr->withdrawn,
                 fe->deleted ? ", deletions marked" : "", figures, tm_now() - fe->started);
    }
    if (fg->held > fg->published)
        log_loud_warning("%s: %s: %lld of %lld anonymised rows are held back from BI (groups under k = %d); the field that"
                    " makes them small: %s (see bi.sensitive, bi.generalise in anonymizer.conf(5))",
                    fe->t->name, fe->f->label, fg->held, fg->held + fg->published, fe->app->cfg->bi.min_k,
                    fg->limiting[0] ? fg->limiting : "none (too few rows)");
}

static struct kanon_params kanon_params(const struct form_export *fe)
{
    const struct cfg_bi *c = &fe->app->cfg->bi;
    return (struct kanon_params){.tenant = fe->t->name,
                                 .form_id = fe->fid,
                                 .min_k = c->min_k,
                                 .min_l = c->min_l,
                                 .generalise = c->generalise,
                                 .precision = c->time_precision,
                                 .date_precision = c->date_precision,
                                 .sensitive = fe->sensitive,
                                 .nsensitive = fe->nsensitive,
                                 .dates = fe->dates,
                                 .ndates = fe->ndates,
                                 .qi_keys = fe->qi_keys,
                                 .nqi = fe->nqi,
                                 .full = !fe->w.incremental,
                                 .has_held = fe->w.has_held};
}

/*
 * One form is one BI transaction holding its forms row, statuses, rows,
 * decisions, view, deletions, watermark and the run's counter (rolled back
 * for --dry-run).  The tenant transaction stays open (the snapshot is
 * shared by all forms).  In two halves: the start reads the tenant and
 * queues the BI-side work in a pipeline; the finish collects it and
 * commits.  Between them the client is free to start the next form on
 * another BI session.
 */
void export_form_start(struct form_export *fe)
{
    fe->started = tm_now();
    snprintf(fe->fid, sizeof fe->fid, "%d", fe->f->formdef_id);
    fe->nfields = plan_export_fields(fe->f, &fe->fields);
    classify_fields(fe);
    int rc = bi_begin(fe->bi);
    if (rc == AX_OK)
        rc = record_form(fe);
    if (rc == AX_OK)
        rc = lock_watermark(fe, &fe->w);
    if (rc == AX_OK)
        rc = set_copy_settings(fe, &fe->w);
    if (rc == AX_OK)
        rc = copy_rows(fe);
    if (rc == AX_OK)
        rc = mark_deleted(fe, &fe->deleted);
    if (rc == AX_OK)
        rc = bi_form_view(fe->bi, fe->t->name, fe->f, fe->fields, fe->nfields);
    /* nothing sent, nothing deleted, the same rule: no group can have changed (held rows wait for new ones) */
    bool nothing = fe->w.incremental && fe->read == 0 && fe->deleted == 0;
    if (rc == AX_OK && !nothing) {
        struct kanon_params kp = kanon_params(fe);
        rc = db_pipe_begin(&fe->bi->db, &fe->pipe);
        fe->queued = rc == AX_OK;
        if (rc == AX_OK)
            rc = kanon_queue(fe->bi, &fe->pipe, &kp, &fe->kr);
        if (rc == AX_OK)
            rc = db_pipe_send(&fe->bi->db);
        if (rc) { /* leaves pipeline mode */
            db_pipe_collect(&fe->bi->db, &fe->pipe);
            fe->queued = false;
        }
    }
    fe->rc = rc;
}

int export_form_finish(struct form_export *fe, struct export_totals *tot)
{
    int rc = fe->rc;
    if (rc == AX_OK && fe->queued) {
        rc = db_pipe_collect(&fe->bi->db, &fe->pipe);
        kanon_done(&fe->kr);
    }
    if (rc == AX_OK)
        rc = record_progress(fe, fe->kr.inserted + fe->kr.updated + fe->kr.released);
    if (rc == AX_OK)
        rc = bi_end(fe->bi, true);
    else
        bi_end(fe->bi, false);
    if (rc == AX_OK) {
        tot->inserted += fe->kr.inserted + fe->kr.released;
        tot->updated += fe->kr.updated;
        tot->full_forms += !fe->w.incremental;
        say_form(fe);
    }
    plan_fields_free(fe->fields, fe->nfields);
    fe->fields = NULL;
    free(fe->sensitive);
    free(fe->dates);
    free(fe->qi_keys);
    fe->sensitive = fe->dates = fe->qi_keys = NULL;
    return rc;
}
