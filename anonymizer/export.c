/*
 * export.c: the BI export.
 *
 * What is exported: submissions that are anonymised and hold nothing the
 * run blanks in their own row (the run's own "dirty" predicate, negated,
 * without its tests of the history and wcs_all_forms rows, which the export
 * never reads and the run completes), not drafts, with only the columns
 * classification keeps.  The tenant query names no other column in its
 * output, so nothing blanked can reach the BI database.
 *
 * Exactly once: the BI primary key (tenant, form_id, submission_id) makes a
 * second copy impossible; an upsert that only writes rows whose content
 * changed makes re-sending harmless; and the watermark that decides what
 * is sent again moves in the same BI transaction as the rows.  The
 * watermark has two parts, because a submission becomes exportable in two
 * ways:
 *   - anonymised by this tool: every batch of the run records its id range
 *     in anonymizer.changes, in the batch's own transaction; the export
 *     re-reads the ranges recorded after its last position (change_seq);
 *   - anonymised by w.c.s. itself: its anonymised time is recent; the export
 *     re-reads submissions anonymised after its last snapshot time
 *     (anonymised_until) minus a day, for transactions in flight then.
 * A first export (no watermark) reads every anonymised submission.
 *
 * Streaming: the tenant's COPY (SELECT ...) TO STDOUT is pumped chunk by
 * chunk into COPY ... FROM STDIN of a temporary table on the BI side, then
 * merged; memory does not depend on the number of rows.  COPY takes no
 * parameters, so the values the query needs are set first with a
 * parameterised set_config(), transaction-local, and read back with
 * current_setting().
 *
 * The BI side (bi.c) stages the rows; k-anonymity (kanon.c) decides which
 * are published, held back or generalised; the form's typed view
 * (bi_views.c) follows its definition; deletions in w.c.s. are marked.
 * All of a form's effects are one BI transaction; --dry-run rolls it back.
 */
#include "export.h"
#include "audit.h"
#include "ax.h"
#include "bi.h"
#include "bi_views.h"
#include "classify.h"
#include "kanon.h"
#include "plan_export.h"
#include "log.h"
#include "sqltext.h"
#include "strbuf.h"
#include "timeutil.h"
#include "version.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- one form ---------------------------------------------------------------------- */

struct tenant_snapshot {
    bool has_changes;  /* anonymizer.changes exists and is readable */
    char seq[32];      /* highest change recorded, visible in the snapshot */
    char now[64];      /* the snapshot's time */
};

/* Where a form's export stands (export_state), locked for the BI transaction. */
struct watermark {
    bool incremental; /* exported before: only what changed since */
    char since[64];   /* anonymised after this (the last snapshot minus a day) */
    char seq[32];     /* change log position already exported */
    char *held;       /* the ids held back by k-anonymity, an int4multirange */
};

/* What export_form works with. */
struct form_export {
    const struct app *app;
    struct tenant *t;
    struct bi *bi;
    const struct form *f;
    const struct tenant_snapshot *snap;
    bool dry_run;
    struct progress *progress; /* where the dry run says what it would do */
    char fid[16];
    struct plan_field *fields;
    size_t nfields;
    char *harmless;    /* text[] literal: the keys of fields that are not quasi-identifiers */
    char *qi_json;     /* the keys that are, as JSON (forms.quasi_identifiers) */
    bool recheck_all;  /* those or min_k changed since the last export */
    /* where the form's export stands, from export_form_start to export_form_finish */
    struct watermark w;
    struct kanon_result kr;
    long long read, deleted;
    double started;
    bool staged;           /* the rows went to the staging table: k-anonymity and the merge are queued */
    struct db_pipe pipe;   /* those statements, working on the BI server */
    int rc;                /* the first failure */
};

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
        json_object_array_add(a, o);
    }
    return a;
}

/* Whether bi.harmless names this field (by varname, id or column). */
static bool is_harmless(const struct app *app, const struct column *c)
{
    for (size_t i = 0; i < app->cfg->bi.nharmless; i++) {
        const char *h = app->cfg->bi.harmless[i];
        if ((c->field && ((c->field->varname && strcmp(c->field->varname, h) == 0) || strcmp(c->field->id, h) == 0)) ||
            strcmp(c->name, h) == 0)
            return true;
    }
    return false;
}

/* The quasi-identifier keys of the form's fields, and the harmless ones (a field and its display value alike). */
static void split_fields(struct form_export *fe)
{
    char **harmless = ax_calloc(fe->nfields + 1, sizeof *harmless);
    size_t nh = 0;
    json_object *qi = json_object_new_array();
    for (size_t i = 0; i < fe->nfields; i++) {
        if (is_harmless(fe->app, fe->fields[i].col))
            harmless[nh++] = fe->fields[i].key;
        else
            json_object_array_add(qi, json_object_new_string(fe->fields[i].key));
    }
    struct strbuf sb;
    sb_init(&sb);
    sb_append_pg_text_array(&sb, harmless, nh);
    fe->harmless = sb_finish(&sb);
    fe->qi_json = ax_strdup(json_object_to_json_string_ext(qi, JSON_C_TO_STRING_PLAIN));
    json_object_put(qi);
    free(harmless);
}

/*
 * The form's row of forms (before its rows: they reference it), noting
 * whether the k-anonymity rule changed for it, and its statuses.
 */
static int record_form(struct form_export *fe)
{
    PGresult *res;
    char k[16];
    snprintf(k, sizeof k, "%d", fe->app->cfg->bi.min_k);
    json_object *j = fields_json(fe->fields, fe->nfields);
    const char *v[7] = {fe->t->name, fe->fid, fe->f->slug, fe->f->name,
                        json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN), fe->qi_json, k};
    const Oid ty[7] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_INT4OID};
    int rc = bi_query(fe->bi, &res, DB_ONE_ROW(1),
                      "SELECT NOT EXISTS (SELECT 1 FROM @S.forms WHERE tenant OPERATOR(pg_catalog.=) $1"
                      " AND form_id OPERATOR(pg_catalog.=) $2 AND quasi_identifiers OPERATOR(pg_catalog.=) $6::jsonb"
                      " AND min_k OPERATOR(pg_catalog.=) $7)",
                      7, ty, v);
    if (rc == AX_OK) {
        fe->recheck_all = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        rc = bi_command(fe->bi,
                        "INSERT INTO @S.forms AS f (tenant, form_id, form_slug, form_name, kept_fields, updated_at,"
                        " quasi_identifiers, min_k)"
                        " VALUES ($1, $2, $3, $4, $5::jsonb, pg_catalog.now(), $6::jsonb, $7)"
                        " ON CONFLICT (tenant, form_id) DO UPDATE SET"
                        " form_slug = EXCLUDED.form_slug, form_name = EXCLUDED.form_name,"
                        " kept_fields = EXCLUDED.kept_fields, updated_at = EXCLUDED.updated_at, deleted_at = NULL,"
                        " quasi_identifiers = EXCLUDED.quasi_identifiers, min_k = EXCLUDED.min_k"
                        /* a row compared as its text: equal texts, equal values (NULL included) */
                        " WHERE ROW(f.form_slug, f.form_name, f.kept_fields, f.deleted_at IS NULL, f.quasi_identifiers,"
                        " f.min_k)::text OPERATOR(pg_catalog.<>) ROW(EXCLUDED.form_slug, EXCLUDED.form_name,"
                        " EXCLUDED.kept_fields, true, EXCLUDED.quasi_identifiers, EXCLUDED.min_k)::text",
                        7, ty, v);
    }
    if (rc == AX_OK)
        rc = bi_form_statuses(fe->bi, fe->t->name, fe->f);
    json_object_put(j);
    return rc;
}

/* The form's row of export_state, created when missing, locked for this transaction; its held-back ids. */
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
                      " (SELECT COALESCE(pg_catalog.range_agg(pg_catalog.int4range(h.submission_id,"
                      "  h.submission_id OPERATOR(pg_catalog.+) 1)), '{}')::text FROM @S.held_back h"
                      "  WHERE h.tenant OPERATOR(pg_catalog.=) $1 AND h.form_id OPERATOR(pg_catalog.=) $2)"
                      " FROM @S.export_state WHERE tenant OPERATOR(pg_catalog.=) $1 AND form_id OPERATOR(pg_catalog.=) $2"
                      " FOR UPDATE",
                      2, ty, v);
    if (rc)
        return rc;
    w->incremental = !PQgetisnull(res, 0, 1);
    snprintf(w->since, sizeof w->since, "%s", w->incremental ? PQgetvalue(res, 0, 1) : "-infinity");
    snprintf(w->seq, sizeof w->seq, "%s", w->incremental && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "0");
    w->held = ax_strdup(PQgetvalue(res, 0, 2));
    PQclear(res);
    return AX_OK;
}

/* A text[] literal of n strings. */
static char *text_array(char *const *items, size_t n)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append_pg_text_array(&sb, items, n);
    return sb_finish(&sb);
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
        .kept_stat_keys = f->sql.stat_keys, .block_keys = f->sql.block_keys, .tenant = fe->t->name, .slug = f->slug,
        .time_precision = fe->app->cfg->bi.time_precision, .time_zone = fe->bi->tz, .field_keys = keys_a,
        .status_ids = ids_a, .status_names = names_a, .anonymised_since = w->since, .change_seq = w->seq,
        .table = f->table, .held_back = w->held,
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

/* Whether BI holds nothing of this form yet. */
static int bi_form_empty(struct form_export *fe, bool *empty)
{
    PGresult *res;
    const char *v[2] = {fe->t->name, fe->fid};
    const Oid ty[2] = {DB_TEXTOID, DB_INT4OID};
    int rc = bi_query(fe->bi, &res, DB_ONE_ROW(1),
                      "SELECT NOT EXISTS (SELECT 1 FROM @S.submissions WHERE tenant OPERATOR(pg_catalog.=) $1"
                      " AND form_id OPERATOR(pg_catalog.=) $2)", 2, ty, v);
    if (rc)
        return rc;
    *empty = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

/*
 * The rows.  Nothing of this form in BI yet and no k-anonymity to apply:
 * nothing to merge with nor to decide, so they go straight into
 * submissions, as fast as a bare COPY (the watermark row is locked, so
 * nobody else is filling it).  Otherwise into the staging table; the
 * k-anonymity decisions and the merge are queued after (export_form_start).
 */
static int copy_rows(struct form_export *fe, bool *empty)
{
    char *changes = fe->snap->has_changes ? audit_changed_ids_sql(fe->f->q_table) : NULL;
    char *copy_sql = plan_export_copy(fe->f, fe->fields, fe->nfields, fe->w.incremental, changes);
    *empty = false;
    int rc = fe->w.incremental ? AX_OK : bi_form_empty(fe, empty);
    double t0 = tm_now();
    fe->staged = !(*empty && fe->app->cfg->bi.min_k <= 1);
    if (rc == AX_OK && !fe->staged) {
        char *dst = ax_asprintf("COPY %s.submissions (" BI_SUBMISSION_COLUMNS ") FROM STDIN", fe->bi->schema_q);
        rc = db_copy(&fe->t->db, &fe->bi->db, copy_sql, dst, &fe->read);
        free(dst);
        fe->kr.inserted = fe->read;
    } else if (rc == AX_OK) {
        rc = db_copy(&fe->t->db, &fe->bi->db, copy_sql,
                  "COPY pg_temp.anonymizer_stage (" BI_SUBMISSION_COLUMNS ") FROM STDIN", &fe->read);
        const char *v[2] = {fe->t->name, fe->fid};
        const Oid ty[2] = {DB_TEXTOID, DB_INT4OID};
        /* held back earlier and not sent again: deleted, or not exportable any more */
        if (rc == AX_OK)
            rc = bi_command(fe->bi,
                            "DELETE FROM @S.held_back h WHERE h.tenant OPERATOR(pg_catalog.=) $1"
                            " AND h.form_id OPERATOR(pg_catalog.=) $2 AND NOT EXISTS (SELECT 1 FROM"
                            " pg_temp.anonymizer_stage s WHERE s.submission_id OPERATOR(pg_catalog.=) h.submission_id)",
                            2, ty, v);
    }
    log_debug("%s: %s: %s %lld rows in %.3f s", fe->t->name, fe->f->label, fe->staged ? "staged" : "copied", fe->read,
              tm_now() - t0);
    free(changes);
    free(copy_sql);
    return rc;
}

/*
 * Submissions deleted in w.c.s. after their export: marked, not kept as if
 * alive.  Cheap when nothing was deleted: the tenant's anonymised
 * submissions are counted against BI's live and held-back rows; only when
 * the tenant has fewer are its ids streamed over and compared.
 */
static int mark_deleted(struct form_export *fe, long long *marked)
{
    PGresult *res;
    *marked = 0;
    char *count_sql = ax_asprintf("SELECT pg_catalog.count(*) FROM public.%s m WHERE m.anonymised IS NOT NULL"
                                  " AND " PLAN_NOT_DRAFT,
                                  fe->f->q_table);
    int rc = db_query(&fe->t->db, &res, DB_ONE_ROW(1), count_sql, 0, NULL, NULL);
    free(count_sql);
    if (rc)
        return rc;
    long long tenant_rows = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *v[2] = {fe->t->name, fe->fid};
    const Oid ty[2] = {DB_TEXTOID, DB_INT4OID};
    /* what BI will hold once the staged rows are in: live rows, held-back ones, and the new staged ones */
    if ((rc = bi_query(fe->bi, &res, DB_ONE_ROW(1),
                       "SELECT (SELECT pg_catalog.count(*) FROM @S.submissions WHERE tenant OPERATOR(pg_catalog.=) $1"
                       " AND form_id OPERATOR(pg_catalog.=) $2 AND deleted_at IS NULL)"
                       " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM @S.held_back"
                       " WHERE tenant OPERATOR(pg_catalog.=) $1 AND form_id OPERATOR(pg_catalog.=) $2)"
                       " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_temp.anonymizer_stage s"
                       " WHERE NOT EXISTS (SELECT 1 FROM @S.submissions b WHERE b.tenant OPERATOR(pg_catalog.=) $1"
                       " AND b.form_id OPERATOR(pg_catalog.=) $2 AND b.submission_id OPERATOR(pg_catalog.=) s.submission_id)"
                       " AND NOT EXISTS (SELECT 1 FROM @S.held_back h WHERE h.tenant OPERATOR(pg_catalog.=) $1"
                       " AND h.form_id OPERATOR(pg_catalog.=) $2 AND h.submission_id OPERATOR(pg_catalog.=) s.submission_id))",
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
                      "WITH d AS (UPDATE @S.submissions b SET deleted_at = pg_catalog.now(), exported_at = pg_catalog.now()"
                      " WHERE b.tenant OPERATOR(pg_catalog.=) $1 AND b.form_id OPERATOR(pg_catalog.=) $2"
                      " AND b.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM pg_temp.anonymizer_ids i"
                      " WHERE i.id OPERATOR(pg_catalog.=) b.submission_id) RETURNING 1),"
                      " h AS (DELETE FROM @S.held_back b WHERE b.tenant OPERATOR(pg_catalog.=) $1"
                      " AND b.form_id OPERATOR(pg_catalog.=) $2 AND NOT EXISTS"
                      " (SELECT 1 FROM pg_temp.anonymizer_ids i WHERE i.id OPERATOR(pg_catalog.=) b.submission_id)"
                      " RETURNING 1)"
                      " SELECT pg_catalog.count(*) FROM d",
                      2, ty, v);
    if (rc == AX_OK) {
        *marked = atoll(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return rc;
}

/* The watermark, the run's counter and the form's k-anonymity state, in the rows' transaction. */
static int record_progress(struct form_export *fe, long long written, const struct kanon_result *kr)
{
    char n[32], smallest[32], held[32];
    snprintf(n, sizeof n, "%lld", written);
    snprintf(smallest, sizeof smallest, "%lld", kr->smallest);
    snprintf(held, sizeof held, "%lld", kr->held_total);
    const char *v[7] = {fe->t->name, fe->fid, fe->f->slug, fe->snap->seq, fe->snap->now, n,
                        kr->smallest >= 0 ? smallest : NULL};
    const Oid ty[7] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_INT8OID, DB_TIMESTAMPTZOID, DB_INT8OID, DB_INT8OID};
    const char *hv[3] = {fe->t->name, fe->fid, held};
    const Oid hty[3] = {DB_TEXTOID, DB_INT4OID, DB_INT8OID};
    int rc = bi_command(fe->bi,
                        "UPDATE @S.export_state SET form_slug = $3, change_seq = $4, anonymised_until = $5,"
                        " rows_exported = rows_exported OPERATOR(pg_catalog.+) $6, updated_at = pg_catalog.now(),"
                        " smallest_group = $7"
                        " WHERE tenant OPERATOR(pg_catalog.=) $1 AND form_id OPERATOR(pg_catalog.=) $2",
                        7, ty, v);
    if (rc == AX_OK)
        rc = bi_command(fe->bi, "UPDATE @S.export_state SET held_back = $3 WHERE tenant OPERATOR(pg_catalog.=) $1"
                        " AND form_id OPERATOR(pg_catalog.=) $2", 3, hty, hv);
    if (rc == AX_OK && !fe->dry_run) {
        const char *rv[3] = {fe->app->run_id, fe->t->name, n};
        const Oid rty[3] = {DB_TEXTOID, DB_TEXTOID, DB_INT8OID};
        rc = bi_command(fe->bi, "UPDATE @S.runs SET rows_exported = rows_exported OPERATOR(pg_catalog.+) $3"
                        " WHERE run_id OPERATOR(pg_catalog.=) $1::uuid AND tenant OPERATOR(pg_catalog.=) $2",
                        3, rty, rv);
    }
    return rc;
}

static void say_form(struct form_export *fe)
{
    const struct kanon_result *kr = &fe->kr;
    char groups[96] = "";
    if (fe->app->cfg->bi.min_k > 1)
        snprintf(groups, sizeof groups, ", %lld held back (%lld in all), smallest group %lld", kr->held, kr->held_total,
                 kr->smallest);
    if (fe->dry_run) {
        char *line = ax_asprintf("%s: %s: would export %lld new, %lld updated (%lld read)%s, withdraw %lld, generalise"
                                 " %lld, mark %lld deleted",
                                 fe->t->name, fe->f->label, kr->inserted, kr->updated, fe->read, groups, kr->withdrawn,
                                 kr->generalised, fe->deleted);
        progress_print(fe->progress, line);
        free(line);
        return;
    }
    log_info("%s: %s: exported %lld new, %lld updated (%lld read, %s)%s%s in %.2f s", fe->t->name, fe->f->label,
             kr->inserted, kr->updated, fe->read, fe->w.incremental ? "incremental" : "first export", groups,
             fe->deleted ? ", deletions marked" : "", tm_now() - fe->started);
}

/* What k-anonymity and the merge need to know of the form. */
static struct kanon_params kanon_params(const struct form_export *fe, bool empty)
{
    return (struct kanon_params){.tenant = fe->t->name,
                                 .form_id = fe->fid,
                                 .min_k = fe->app->cfg->bi.min_k,
                                 .harmless = fe->harmless,
                                 .generalise = fe->app->cfg->bi.generalise,
                                 .precision = fe->app->cfg->bi.time_precision,
                                 .recheck_all = fe->recheck_all,
                                 .form_empty = empty};
}

/*
 * One form is one BI transaction holding its forms row, statuses, rows,
 * k-anonymity decisions, view, deletions, watermark and the run's counter
 * (rolled back for --dry-run).  The tenant transaction stays open (the
 * snapshot is shared by all forms).  In two halves: the start reads the
 * tenant and queues the BI-side work (k-anonymity, merge) in a pipeline;
 * the finish collects it and commits.  Between them the client is free to
 * start the next form on another BI session: the BI server decides and
 * writes one form while the tenant streams the next.
 */
static void export_form_start(struct form_export *fe)
{
    bool empty = false;
    fe->started = tm_now();
    snprintf(fe->fid, sizeof fe->fid, "%d", fe->f->formdef_id);
    fe->nfields = plan_export_fields(fe->f, &fe->fields);
    fe->kr.smallest = -1;
    split_fields(fe);
    int rc = bi_begin(fe->bi);
    if (rc == AX_OK)
        rc = record_form(fe);
    if (rc == AX_OK)
        rc = lock_watermark(fe, &fe->w);
    if (rc == AX_OK)
        rc = set_copy_settings(fe, &fe->w);
    if (rc == AX_OK)
        rc = copy_rows(fe, &empty);
    if (rc == AX_OK)
        rc = mark_deleted(fe, &fe->deleted);
    if (rc == AX_OK)
        rc = bi_form_view(fe->bi, fe->t->name, fe->f, fe->fields, fe->nfields);
    if (rc == AX_OK && fe->staged) {
        struct kanon_params kp = kanon_params(fe, empty);
        rc = db_pipe_begin(&fe->bi->db, &fe->pipe);
        if (rc == AX_OK)
            rc = kanon_queue(fe->bi, &fe->pipe, &kp, &fe->kr);
        if (rc == AX_OK)
            rc = db_pipe_send(&fe->bi->db);
        if (rc) /* leaves pipeline mode */
            db_pipe_collect(&fe->bi->db, &fe->pipe);
    }
    fe->rc = rc;
}

/* Collects what the BI server did, records the watermark, commits; returns the form's status. */
static int export_form_finish(struct form_export *fe, struct export_totals *tot)
{
    int rc = fe->rc;
    if (rc == AX_OK && fe->staged) {
        rc = db_pipe_collect(&fe->bi->db, &fe->pipe);
        kanon_done(&fe->kr);
    }
    if (rc == AX_OK)
        rc = record_progress(fe, fe->kr.inserted + fe->kr.updated, &fe->kr);
    if (rc == AX_OK)
        rc = bi_end(fe->bi, true);
    else
        bi_end(fe->bi, false);
    if (rc == AX_OK) {
        tot->inserted += fe->kr.inserted;
        tot->updated += fe->kr.updated;
        say_form(fe);
    }
    plan_fields_free(fe->fields, fe->nfields);
    fe->fields = NULL;
    free(fe->harmless);
    free(fe->qi_json);
    free(fe->w.held);
    return rc;
}

/* -- one tenant ---------------------------------------------------------------------- */

static int tenant_snapshot(struct tenant *t, struct tenant_snapshot *snap)
{
    PGresult *res;
    int rc = db_query(&t->db, &res, DB_ONE_ROW(1), "SELECT pg_catalog.now()::text", 0, NULL, NULL);
    if (rc)
        return rc;
    snprintf(snap->now, sizeof snap->now, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return audit_changes_position(t, &snap->has_changes, snap->seq, sizeof snap->seq);
}

static void bi_run_row(struct bi *bi, const struct app *app, const char *tenant, const char *outcome,
                       const char *error, bool dry_run)
{
    if (dry_run)
        return; /* nothing is written */
    const char *v[4] = {app->run_id, tenant, outcome, error};
    const Oid ty[4] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    int rc;
    if (strcmp(outcome, "running") == 0) {
        /* rows of this tenant still running are from an export that died: we hold the tenant lock */
        rc = bi_command(bi, "UPDATE @S.runs SET outcome = 'crashed' WHERE tenant OPERATOR(pg_catalog.=) $2"
                            " AND outcome OPERATOR(pg_catalog.=) 'running' AND run_id OPERATOR(pg_catalog.<>) $1::uuid",
                            2, ty, v);
        if (rc == AX_OK)
            rc = bi_command(bi, "INSERT INTO @S.runs (run_id, tenant, started_at, outcome)"
                                " VALUES ($1::uuid, $2, pg_catalog.now(), $3)", 3, ty, v);
    } else {
        db_rollback_quietly(&bi->db);
        rc = bi_command(bi,
                        "UPDATE @S.runs SET finished_at = pg_catalog.now(), outcome = $3, error = $4"
                        " WHERE run_id OPERATOR(pg_catalog.=) $1::uuid AND tenant OPERATOR(pg_catalog.=) $2",
                        4, ty, v);
    }
    if (rc)
        log_warning("%s: bi: cannot record the export in runs: %s", tenant, bi->db.error);
}

/* A BI session and the form it is working on. */
struct slot {
    struct bi *bi;
    struct form_export fe;
    bool busy;
};

/* Finishes the slot's form; a failure is logged and kept in *error. */
static enum tenant_outcome finish_slot(struct slot *sl, struct tenant *t, struct export_totals *tot, char **error)
{
    if (!sl->busy)
        return TENANT_OK;
    sl->busy = false;
    int rc = export_form_finish(&sl->fe, tot);
    if (rc == AX_OK)
        return TENANT_OK;
    if (app_interrupted)
        return TENANT_INTERRUPTED; /* its BI transaction rolled back */
    /* whichever side failed has the message */
    const char *msg = sl->bi->db.error ? sl->bi->db.error : t->db.error;
    log_error("%s: %s: export failed: %s", t->name, sl->fe.f->label, msg ? msg : ax_status_str(rc));
    free(*error);
    *error = ax_strdup(msg ? msg : ax_status_str(rc));
    return TENANT_FAILED;
}

static enum tenant_outcome worse_outcome(enum tenant_outcome a, enum tenant_outcome b)
{
    return a == TENANT_INTERRUPTED || b == TENANT_INTERRUPTED ? TENANT_INTERRUPTED
           : a == TENANT_OK                                   ? b
                                                              : a;
}

/*
 * Every form, in the tenant's one snapshot, over two BI sessions taken in
 * turn: while one session's server decides and writes a form, the tenant
 * streams the next into the other.  Returns the outcome, *error the last
 * failure.
 */
static enum tenant_outcome export_forms(const struct app *app, struct tenant *t, struct bi *bis[2],
                                        const struct tenant_snapshot *snap, bool dry_run, struct progress *progress,
                                        struct export_totals *tot, char **error)
{
    enum tenant_outcome outcome = TENANT_OK;
    struct slot slots[2] = {{.bi = bis[0]}, {.bi = bis[1] ? bis[1] : bis[0]}};
    size_t next = 0;
    for (size_t i = 0; i < t->nforms && outcome != TENANT_INTERRUPTED; i++) {
        const struct form *f = &t->forms[i];
        if (app_interrupted || app_out_of_time(app)) {
            outcome = TENANT_INTERRUPTED;
            break;
        }
        if (f->kind != FORM_KIND_FORM)
            continue; /* test copies are test data; cards are registers, not submissions */
        if (f->sql.unsupported) {
            outcome = worse_outcome(outcome, TENANT_FAILED);
            continue; /* already reported by discovery/run */
        }
        struct slot *sl = &slots[next];
        next = slots[1].bi != slots[0].bi ? 1 - next : 0;
        outcome = worse_outcome(outcome, finish_slot(sl, t, tot, error));
        db_clear_error(&sl->bi->db);
        db_clear_error(&t->db);
        progress_form_start(progress, f->slug, -1); /* forms only */
        sl->fe = (struct form_export){.app = app, .t = t, .bi = sl->bi, .f = f, .snap = snap, .dry_run = dry_run,
                                     .progress = progress};
        export_form_start(&sl->fe);
        sl->busy = true;
        if (sl->fe.rc && PQtransactionStatus(t->db.conn) != PQTRANS_INTRANS) {
            /* the tenant transaction is unusable after a failed COPY: stop here */
            outcome = worse_outcome(outcome, finish_slot(sl, t, tot, error));
            break;
        }
        if (sl->fe.rc)
            outcome = worse_outcome(outcome, finish_slot(sl, t, tot, error));
    }
    for (int k = 0; k < 2; k++)
        outcome = worse_outcome(outcome, finish_slot(&slots[k], t, tot, error));
    return outcome;
}

/*
 * Forms deleted in w.c.s. (their table is gone): marked, with their rows,
 * once every form of the tenant was exported.
 */
static int mark_deleted_forms(struct bi *bi, const struct tenant *t, bool dry_run)
{
    struct strbuf ids;
    sb_init(&ids);
    sb_append(&ids, "{");
    for (size_t i = 0; i < t->nforms; i++)
        if (t->forms[i].kind == FORM_KIND_FORM)
            sb_appendf(&ids, "%s%d", ids.len > 1 ? "," : "", t->forms[i].formdef_id);
    sb_append(&ids, "}");
    const char *v[2] = {t->name, ids.buf};
    const Oid ty[2] = {DB_TEXTOID, DB_TEXTOID};
    PGresult *res;
    int rc = bi_begin(bi);
    if (rc == AX_OK)
        rc = bi_query(bi, &res, DB_ONE_ROW(2),
                      "WITH f AS (UPDATE @S.forms SET deleted_at = pg_catalog.now() WHERE tenant OPERATOR(pg_catalog.=) $1"
                      " AND deleted_at IS NULL AND NOT (form_id OPERATOR(pg_catalog.=) ANY ($2::integer[]))"
                      " RETURNING form_id),"
                      " s AS (UPDATE @S.submissions b SET deleted_at = pg_catalog.now(), exported_at = pg_catalog.now()"
                      " FROM f WHERE b.tenant OPERATOR(pg_catalog.=) $1"
                      " AND b.form_id OPERATOR(pg_catalog.=) f.form_id AND b.deleted_at IS NULL RETURNING 1)"
                      " SELECT (SELECT pg_catalog.count(*) FROM f), (SELECT pg_catalog.count(*) FROM s)",
                      2, ty, v);
    if (rc == AX_OK) {
        if (atoll(PQgetvalue(res, 0, 0)) > 0)
            log_info("%s: %s %s form%s deleted in w.c.s. (%s rows)", t->name, dry_run ? "would mark" : "marked",
                     PQgetvalue(res, 0, 0), atoll(PQgetvalue(res, 0, 0)) == 1 ? "" : "s", PQgetvalue(res, 0, 1));
        PQclear(res);
        rc = bi_end(bi, true);
    } else {
        bi_end(bi, false);
    }
    sb_free(&ids);
    return rc;
}

/* The number of forms the export reads (a second BI session is worth it from two). */
static size_t exported_forms(const struct tenant *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nforms; i++)
        n += t->forms[i].kind == FORM_KIND_FORM && !t->forms[i].sql.unsupported;
    return n;
}

enum tenant_outcome export_tenant(const struct app *app, struct tenant *t, bool dry_run, struct progress *progress,
                                  struct export_totals *tot, long long *watermark_seq)
{
    struct bi bi, bi2;
    struct bi *bis[2] = {&bi, NULL};
    struct tenant_snapshot snap;
    enum tenant_outcome outcome;
    char *error = NULL;

    *watermark_seq = -1;
    int rc = bi_open(app, &bi, dry_run);
    if (rc) {
        log_error("%s: bi: %s", t->name, bi.db.error ? bi.db.error : ax_status_str(rc));
        bi_close(&bi);
        return rc == AX_ERR_CONNECT ? TENANT_UNREACHABLE : TENANT_FAILED;
    }
    /* the second session only pipelines: without it (or with one form), the first does everything */
    if (exported_forms(t) > 1) {
        if (bi_open(app, &bi2, dry_run) == AX_OK)
            bis[1] = &bi2;
        else
            bi_close(&bi2);
    }
    bi_run_row(&bi, app, t->name, "running", NULL, dry_run);

    /* one snapshot of the tenant for every form; the server refuses any write */
    if ((rc = db_cmd(&t->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) || (rc = tenant_snapshot(t, &snap))) {
        error = ax_strdup(t->db.error);
        outcome = TENANT_FAILED;
    } else {
        outcome = export_forms(app, t, bis, &snap, dry_run, progress, tot, &error);
        if (outcome == TENANT_OK && mark_deleted_forms(&bi, t, dry_run) != AX_OK) {
            log_error("%s: bi: %s", t->name, bi.db.error);
            error = ax_strdup(bi.db.error);
            outcome = TENANT_FAILED;
        }
        if (outcome == TENANT_OK)
            *watermark_seq = atoll(snap.seq);
    }
    db_rollback_quietly(&t->db); /* read-only: nothing to commit */
    bi_run_row(&bi, app, t->name, tenant_outcome_str(outcome), error, dry_run);
    free(error);
    if (bis[1])
        bi_close(bis[1]);
    bi_close(&bi);
    return outcome;
}

/* The export command's work for one tenant (run in a worker, see executor.h). */
static enum tenant_outcome export_job(const struct app *app, struct app_tenant *at, struct job_ctx *ctx)
{
    struct tenant t;
    struct export_totals etot = {0};
    long long seq;

    enum tenant_outcome outcome = tenant_begin(&t, app, at, TB_READ_ONLY | TB_LOCK | TB_PRIV_READ, NULL);
    if (outcome == TENANT_OK)
        outcome = export_tenant(app, &t, app->export_dry_run, ctx->progress, &etot, &seq);
    ctx->tot.exported += etot.inserted + etot.updated;
    tenant_close(&t);
    return outcome;
}

int cmd_export(const struct app *app)
{
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);
    struct run_totals tot = {0};
    double started = tm_now();

    exec_outcomes(app, export_job, outcomes, &tot);
    size_t ok = 0;
    for (size_t i = 0; i < app->ntenants; i++)
        ok += outcomes[i] == TENANT_OK;
    log_info("export %s: %zu of %zu tenants exported, %lld rows %s, %.2f s%s", app->run_id, ok, app->ntenants,
             tot.exported, app->export_dry_run ? "would be written (dry run: nothing written)" : "written",
             tm_now() - started,
             app_budget_exhausted ? " (time budget exhausted)" : app_interrupted ? " (interrupted)" : "");
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
