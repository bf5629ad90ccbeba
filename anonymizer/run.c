/*
 * run.c: the nightly job.  For each tenant: lock, discover, then per form
 * the final anonymisation of due submissions and the removal of expired
 * drafts, in batches of one transaction each, then VACUUM.
 *
 * A batch is a keyset range of ids: first the range is found (the next
 * batch_size submissions that need work after the previous range), then one
 * statement locks what it can of that range (FOR UPDATE SKIP LOCKED: rows a
 * w.c.s. request holds are left for the next run, and counted), rewrites the
 * rows, clears their history and deletes their tracking codes; a second
 * statement makes sure wcs_all_forms carries nothing personal even where
 * its trigger is missing.  A kill at any point loses at most the batch in
 * flight, which the next run finds again: every predicate is about the
 * data, never about what a previous run remembers.
 */
#include "run.h"
#include "audit.h"
#include "export.h"
#include "jobs.h"
#include "ax.h"
#include "log.h"
#include "strbuf.h"
#include "tenant.h"
#include "timeutil.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct form_counts {
    long long anonymised;        /* not anonymised before */
    long long completed;         /* anonymised by w.c.s., finished by us */
    long long drafts_deleted;
    long long drafts_anonymised;
    long long history_cleared;   /* history rows cleared */
    long long tracking_deleted;  /* tracking codes deleted */
    long long locked;            /* due, but held by another session */
};

struct batch_sql {
    const char *what; /* for messages */
    bool deleting;    /* deletes drafts; otherwise anonymises, and logs its ranges in anonymizer.changes */
    char *range;      /* $5 lo, $6 limit -> max(id), count: to skip a range that could not be locked */
    char *work;       /* $5 lo, $6 limit -> hi, candidates, counters */
    char *allforms;   /* optional second statement, over ($5, $6] */
};

static void batch_sql_free(struct batch_sql *b)
{
    free(b->range);
    free(b->work);
    free(b->allforms);
}

/*
 * One statement per batch: the next $6 candidates after $5 in id order,
 * locked (those a w.c.s. request holds are skipped), changed; it returns the
 * range's upper bound, the number of candidates and what was done.  change
 * is the data-modifying CTE over "locked l", returning (fresh, draft).
 */
static char *batch_statement(const struct form *f, const char *pred, const char *change, bool clear_history,
                             const char *lock_mode)
{
    struct strbuf sb;
    bool tc = f->has_tracking_col;

    sb_init(&sb);
    sb_appendf(&sb,
               "WITH cand AS MATERIALIZED (SELECT m.id FROM public.%s m WHERE m.id > $5 AND %s ORDER BY m.id LIMIT $6),"
               " locked AS (SELECT m.id, %s AS tracking_code, m.anonymised IS NULL AS fresh,"
               "  COALESCE(m.status = 'draft', false) AS draft FROM public.%s m"
               "  WHERE m.id = ANY (ARRAY(SELECT id FROM cand)) AND %s FOR %s OF m SKIP LOCKED),"
               " chg AS (%s)",
               f->q_table, pred, tc ? "m.tracking_code" : "NULL::varchar", f->q_table, pred, lock_mode, change);
    if (clear_history && f->q_evo)
        sb_appendf(&sb,
                   ", evo AS (UPDATE public.%s e SET who = NULL, comment = NULL, parts = NULL FROM locked l"
                   " WHERE e.formdata_id = l.id AND (e.who IS NOT NULL OR e.comment IS NOT NULL OR e.parts IS NOT NULL)"
                   " RETURNING 1)",
                   f->q_evo);
    /* by primary key: a join could read the whole tenant-wide table per batch */
    if (tc)
        sb_append(&sb, ", tc AS (DELETE FROM public.tracking_codes c WHERE c.id = ANY (ARRAY("
                       "SELECT l.tracking_code FROM locked l WHERE l.tracking_code IS NOT NULL)) RETURNING 1)");
    sb_appendf(&sb,
               " SELECT (SELECT max(id) FROM cand), (SELECT count(*) FROM cand),"
               " count(*) FILTER (WHERE fresh AND NOT draft), count(*) FILTER (WHERE NOT fresh),"
               " count(*) FILTER (WHERE fresh AND draft), %s, %s FROM chg",
               clear_history && f->q_evo ? "(SELECT count(*) FROM evo)" : "0", tc ? "(SELECT count(*) FROM tc)" : "0");
    return sb_finish(&sb);
}

static char *range_statement(const struct form *f, const char *pred)
{
    return ax_asprintf("SELECT max(s.id), count(*) FROM (SELECT m.id FROM public.%s m"
                       " WHERE m.id > $5 AND %s ORDER BY m.id LIMIT $6) s",
                       f->q_table, pred);
}

static void build_anonymise_sql(const struct form *f, struct batch_sql *b)
{
    b->what = "anonymise";
    b->range = range_statement(f, f->pred.work);
    char *change = ax_asprintf("UPDATE public.%s t SET %s FROM locked l WHERE t.id = l.id RETURNING l.fresh, l.draft",
                               f->q_table, f->sql_set);
    /* the lock an UPDATE that changes no key takes: new history rows (which
     * reference the submission) are not blocked by it */
    b->work = batch_statement(f, f->pred.work, change, true, "NO KEY UPDATE");
    free(change);
    if (f->sql_allforms_set)
        b->allforms = ax_asprintf("UPDATE public.wcs_all_forms w SET %s FROM public.%s m"
                                  " WHERE w.formdef_id = $2 AND w.id > $5 AND w.id <= $6 AND w.id = m.id"
                                  " AND m.id > $5 AND m.id <= $6 AND m.anonymised IS NOT NULL AND %s AND %s",
                                  f->sql_allforms_set, f->q_table, f->pred.due_base, f->sql_allforms_dirty);
}

static void build_drafts_sql(const struct tenant *t, const struct form *f, struct batch_sql *b)
{
    static const char draft_pred[] = "m.status = 'draft' AND " SQL_PAST;

    b->what = "delete drafts";
    b->deleting = true;
    b->range = range_statement(f, draft_pred);
    /* history rows go with the submission (ON DELETE CASCADE), the
     * wcs_all_forms row with the w.c.s. trigger */
    char *change = ax_asprintf("DELETE FROM public.%s t USING locked l WHERE t.id = l.id RETURNING true AS fresh,"
                               " true AS draft",
                               f->q_table);
    b->work = batch_statement(f, draft_pred, change, false, "UPDATE");
    free(change);
    /* a deleted draft leaves nothing in wcs_all_forms, trigger or not */
    if (t->has_allforms)
        /* both sides bounded by the range: an anti-join could otherwise read the whole table per batch */
        b->allforms = ax_asprintf("DELETE FROM public.wcs_all_forms w WHERE w.formdef_id = $2 AND w.id > $5"
                                  " AND w.id <= $6 AND NOT EXISTS (SELECT 1 FROM public.%s m WHERE m.id = w.id"
                                  " AND m.id > $5 AND m.id <= $6)",
                                  f->q_table);
}

static long long getll(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : atoll(PQgetvalue(res, row, col));
}

static bool transient(const struct db *db)
{
    return db_error_is(db, DB_SQLSTATE_LOCK_NOT_AVAILABLE) || db_error_is(db, DB_SQLSTATE_DEADLOCK);
}

/*
 * Runs batches until the form has no more work, or an interruption.
 * drafts: the counters go to drafts_deleted.
 */
static int run_batches(struct tenant *t, const struct app *app, struct form *f, const struct batch_sql *b,
                       struct form_counts *c)
{
    char lo[32] = "0", limit[32], hi[32], fid[16];
    const char *values[FORM_NPARAMS];
    PGresult *res = NULL;
    int rc;

    snprintf(limit, sizeof limit, "%d", app->cfg->batch_size);
    for (;;) {
        if (app_interrupted || app_out_of_time(app))
            return AX_ERR_INTERRUPTED;
        double started = tm_now();
        if ((rc = db_cmd(&t->db, "BEGIN")))
            return rc;
        form_params(f, values, lo, limit, t->now, fid, sizeof fid);
        rc = db_exec(&t->db, &res, b->work, FORM_NPARAMS, form_param_types, values);
        long long candidates = 0;
        if (rc == AX_OK) {
            candidates = getll(res, 0, 1);
            if (candidates == 0) {
                PQclear(res);
                return db_cmd(&t->db, "COMMIT");
            }
            snprintf(hi, sizeof hi, "%s", PQgetvalue(res, 0, 0));
            form_params(f, values, lo, hi, t->now, fid, sizeof fid);
            if (b->allforms)
                rc = db_exec(&t->db, NULL, b->allforms, FORM_NPARAMS, form_param_types, values);
        }
        if (rc == AX_OK && !b->deleting) {
            /* in the batch's transaction: the export finds exactly what committed */
            const char *cv[4] = {app->run_id, f->table, lo, hi};
            const Oid ct[4] = {DB_TEXTOID, DB_TEXTOID, DB_INT8OID, DB_INT8OID};
            rc = db_exec(&t->db, NULL,
                         "INSERT INTO anonymizer.changes (run_id, table_name, lo, hi) VALUES ($1::uuid, $2, $3 + 1, $4)",
                         4, ct, cv);
        }
        if (rc == AX_OK)
            rc = db_cmd(&t->db, "COMMIT");
        if (rc != AX_OK) {
            PQclear(res);
            res = NULL;
            if (app_interrupted && db_error_is(&t->db, DB_SQLSTATE_QUERY_CANCELED)) {
                /* cancelled by SIGINT/SIGTERM: this batch rolls back, the next run redoes it */
                rc = AX_ERR_INTERRUPTED;
                goto fail;
            }
            if (!transient(&t->db))
                goto fail;
            /* a w.c.s. request holds something this batch needs: leave the
             * whole range for the next run */
            char *why = ax_strdup(t->db.error);
            db_rollback_quietly(&t->db);
            form_params(f, values, lo, limit, t->now, fid, sizeof fid);
            if ((rc = db_exec(&t->db, &res, b->range, FORM_NPARAMS, form_param_types, values))) {
                free(why);
                goto fail;
            }
            candidates = getll(res, 0, 1);
            snprintf(hi, sizeof hi, "%s", PQgetisnull(res, 0, 0) ? lo : PQgetvalue(res, 0, 0));
            PQclear(res);
            res = NULL;
            log_info("%s: form %s: ids %s to %s left for the next run: %s", t->name, f->slug, lo, hi, why);
            free(why);
            if (candidates == 0)
                return AX_OK;
            c->locked += candidates;
            snprintf(lo, sizeof lo, "%s", hi);
            continue;
        }
        long long anonymised = getll(res, 0, 2), completed = getll(res, 0, 3), drafts = getll(res, 0, 4);
        long long done = anonymised + completed + drafts;
        c->anonymised += anonymised;
        c->completed += completed;
        if (b->deleting)
            c->drafts_deleted += drafts;
        else
            c->drafts_anonymised += drafts;
        c->history_cleared += getll(res, 0, 5);
        c->tracking_deleted += getll(res, 0, 6);
        c->locked += candidates > done ? candidates - done : 0;
        PQclear(res);
        res = NULL;
        progress_add(done);
        log_debug("%s: form %s: %s: ids %s to %s: %lld of %lld done in %.3f s", t->name, f->slug, b->what, lo, hi,
                  done, candidates, tm_now() - started);
        snprintf(lo, sizeof lo, "%s", hi);
    }
fail:
    if (rc == AX_ERR_DB && app_interrupted && db_error_is(&t->db, DB_SQLSTATE_QUERY_CANCELED))
        rc = AX_ERR_INTERRUPTED;
    db_rollback_quietly(&t->db);
    return rc;
}

/* How many submissions of the form the run still has to anonymise. */
static int count_work(struct tenant *t, const struct form *f, long long *n)
{
    char fid[16], *sql = ax_asprintf("SELECT count(*) FROM public.%s m WHERE %s", f->q_table, f->pred.work);
    const char *values[FORM_NPARAMS];
    PGresult *res;
    form_params(f, values, "0", "0", t->now, fid, sizeof fid);
    int rc = db_exec(&t->db, &res, sql, FORM_NPARAMS, form_param_types, values);
    free(sql);
    if (rc)
        return rc;
    *n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return AX_OK;
}

static void vacuum(struct tenant *t, const char *qualified_quoted)
{
    char *sql = ax_asprintf("VACUUM (ANALYZE) %s", qualified_quoted);
    if (db_cmd(&t->db, sql) != AX_OK)
        log_warning("%s: %s: %s (old row versions keep personal data until vacuumed)", t->name, sql, t->db.error);
    free(sql);
}

static json_object *form_entry(const struct form *f, const struct form_counts *c, const char *outcome,
                               const char *error, double seconds)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "slug", json_object_new_string(f->slug));
    json_object_object_add(o, "table", json_object_new_string(f->table));
    json_object_object_add(o, "formdef_id", json_object_new_int(f->formdef_id));
    json_object_object_add(o, "retention_days", json_object_new_int(f->pol.retention_days));
    json_object_object_add(o, "retention_source", json_object_new_string(cfg_source_str(f->pol.retention_source)));
    json_object_object_add(o, "cutoff", json_object_new_string(f->cutoff));
    json_object_object_add(o, "definition", f->def ? json_object_new_string(f->def->path) : NULL);
    json_object_object_add(o, "anonymised", json_object_new_int64(c->anonymised));
    json_object_object_add(o, "completed", json_object_new_int64(c->completed));
    json_object_object_add(o, "drafts_deleted", json_object_new_int64(c->drafts_deleted));
    json_object_object_add(o, "drafts_anonymised", json_object_new_int64(c->drafts_anonymised));
    json_object_object_add(o, "history_cleared", json_object_new_int64(c->history_cleared));
    json_object_object_add(o, "tracking_codes_deleted", json_object_new_int64(c->tracking_deleted));
    json_object_object_add(o, "locked", json_object_new_int64(c->locked));
    json_object *uncl = json_object_new_array();
    for (size_t i = 0; i < f->ncols; i++)
        if (f->cols[i].cls == COL_UNCLASSIFIED)
            json_object_array_add(uncl, json_object_new_string(f->cols[i].name));
    json_object_object_add(o, "unclassified", uncl);
    json_object_object_add(o, "outcome", json_object_new_string(outcome));
    json_object_object_add(o, "error", error ? json_object_new_string(error) : NULL);
    json_object_object_add(o, "seconds", json_object_new_double((double)(long long)(seconds * 1000) / 1000.0));
    return o;
}

static void report_unclassified(const struct tenant *t, const struct form *f)
{
    if (f->nunclassified == 0)
        return;
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < f->ncols; i++) {
        if (f->cols[i].cls != COL_UNCLASSIFIED)
            continue;
        sb_appendf(&sb, "%s%s", sb.len ? ", " : "", f->cols[i].name);
    }
    log_warning("%s: form %s: %zu unclassified column%s blanked (%s): %s", t->name, f->slug, f->nunclassified,
                f->nunclassified > 1 ? "s" : "",
                f->def ? "not in the definition" : "no definition", sb.buf);
    sb_free(&sb);
}

/* Processes one form; returns AX_OK, AX_ERR_INTERRUPTED, AX_ERR_DATA or AX_ERR_DB. */
static int run_form(struct tenant *t, const struct app *app, struct form *f, struct run_totals *tot,
                    bool *shared_changed)
{
    struct form_counts c = {0};
    struct batch_sql anon = {0}, drafts = {0};
    double started = tm_now();
    int rc = AX_OK;
    const char *error = NULL;

    if (f->unsupported) {
        log_error("%s: form %s: %s; form skipped", t->name, f->slug, f->unsupported);
        rc = AX_ERR_DATA;
        error = f->unsupported;
        goto audit;
    }
    report_unclassified(t, f);
    long long due = -1;
    /* counting costs a pass over the table: only for someone watching */
    if (app->progress_live && count_work(t, f, &due) != AX_OK)
        due = -1;
    progress_form_start(f->slug, due);
    build_anonymise_sql(f, &anon);
    rc = run_batches(t, app, f, &anon, &c);
    if (rc == AX_OK && f->pol.drafts == CFG_DRAFTS_DELETE) {
        build_drafts_sql(t, f, &drafts);
        rc = run_batches(t, app, f, &drafts, &c);
    }
    progress_form_end();
    if (rc == AX_ERR_DB)
        error = t->db.error;
    if (rc == AX_ERR_INTERRUPTED && app_budget_exhausted && !app_interrupted) {
        long long left;
        if (count_work(t, f, &left) == AX_OK)
            log_info("%s: form %s: time budget exhausted, %lld submissions left for the next run", t->name, f->slug,
                     left);
        error = "time budget exhausted";
    } else if (rc == AX_ERR_INTERRUPTED) {
        error = "interrupted by a signal";
    }

    long long changed = c.anonymised + c.completed + c.drafts_deleted + c.drafts_anonymised;
    if (changed > 0) {
        *shared_changed = true;
        if (app->cfg->vacuum && rc != AX_ERR_DB) {
            char *q = ax_asprintf("public.%s", f->q_table);
            vacuum(t, q);
            free(q);
            if (f->q_evo) {
                q = ax_asprintf("public.%s", f->q_evo);
                vacuum(t, q);
                free(q);
            }
        }
    }
    if (rc == AX_ERR_DB)
        log_error("%s: form %s: %s", t->name, f->slug, t->db.error);
    log_info("%s: form %s: %lld anonymised, %lld completed, %lld drafts %s, %lld locked (cutoff %s, %.2f s)%s",
             t->name, f->slug, c.anonymised, c.completed,
             f->pol.drafts == CFG_DRAFTS_DELETE ? c.drafts_deleted : c.drafts_anonymised,
             f->pol.drafts == CFG_DRAFTS_DELETE ? "deleted" : "anonymised", c.locked, f->cutoff,
             tm_now() - started, rc == AX_ERR_INTERRUPTED ? " [interrupted]" : rc ? " [failed]" : "");
audit:
    tot->anonymised += c.anonymised;
    tot->completed += c.completed;
    tot->drafts += c.drafts_deleted + c.drafts_anonymised;
    tot->locked += c.locked;
    {
        const char *outcome = rc == AX_OK ? "ok" : rc == AX_ERR_INTERRUPTED ? "interrupted" : "failed";
        char *err_copy = error ? ax_strdup(error) : NULL;
        json_object *entry = form_entry(f, &c, outcome, err_copy, tm_now() - started);
        /* the audit survives a failed form as long as the connection does */
        if (audit_add_form(t, app, entry) != AX_OK && rc == AX_OK) {
            log_error("%s: cannot write the audit row: %s", t->name, t->db.error);
            rc = AX_ERR_DB;
        }
        json_object_put(entry);
        free(err_copy);
    }
    batch_sql_free(&anon);
    batch_sql_free(&drafts);
    return rc;
}

enum tenant_outcome run_tenant(const struct app *app, struct app_tenant *at, struct run_totals *tot)
{
    struct tenant t;
    enum tenant_outcome outcome = TENANT_OK;
    bool locked = false, shared_changed = false, audit_open = false;
    double started = tm_now();
    char *error = NULL;
    int rc;

    rc = tenant_open(&t, app, at, false);
    if (rc) {
        log_error("%s: cannot connect: %s", at->cfg->name, t.db.error);
        tenant_close(&t);
        return TENANT_UNREACHABLE;
    }
    if ((rc = tenant_try_lock(&t, &locked)))
        goto db_failed;
    if (!locked) {
        log_warning("%s: another anonymizer run holds this tenant's lock; tenant skipped", t.name);
        tenant_close(&t);
        return TENANT_LOCKED;
    }
    if ((rc = tenant_discover_forms(&t, app)))
        goto db_failed;
    if ((rc = tenant_compute_cutoffs(&t, NULL)))
        goto db_failed;
    if ((rc = audit_begin(&t, app, "run")))
        goto db_failed;
    audit_open = true;

    for (size_t i = 0; i < t.nforms; i++) {
        rc = run_form(&t, app, &t.forms[i], tot, &shared_changed);
        if (rc == AX_ERR_INTERRUPTED) {
            outcome = TENANT_INTERRUPTED;
            if (i + 1 < t.nforms) {
                struct strbuf sb;
                sb_init(&sb);
                for (size_t k = i + 1; k < t.nforms; k++)
                    sb_appendf(&sb, "%s%s", sb.len ? ", " : "", t.forms[k].slug);
                log_info("%s: forms not started, left for the next run: %s", t.name, sb.buf);
                sb_free(&sb);
            }
            break;
        }
        if (rc == AX_ERR_DATA) {
            /* this form is left alone; the others are safe to process */
            outcome = TENANT_FAILED;
            continue;
        }
        if (rc) {
            outcome = TENANT_FAILED;
            error = ax_strdup(t.db.error ? t.db.error : ax_status_str(rc));
            break;
        }
    }
    if (shared_changed && app->cfg->vacuum && outcome != TENANT_FAILED) {
        if (t.has_tracking_codes)
            vacuum(&t, "public.tracking_codes");
        if (t.has_allforms)
            vacuum(&t, "public.wcs_all_forms");
    }
    /* then the export, under the same lock; not after a server error (the
     * session may be gone) nor when interrupted: the next run catches up */
    if (app->cfg->bi.conninfo && !error && outcome != TENANT_INTERRUPTED) {
        struct export_totals etot = {0};
        long long seq;
        enum tenant_outcome eo = export_tenant(app, &t, &etot, &seq);
        tot->exported += etot.inserted + etot.updated;
        if (eo != TENANT_OK) {
            if (outcome == TENANT_OK)
                outcome = eo == TENANT_INTERRUPTED ? TENANT_INTERRUPTED : TENANT_FAILED;
            error = ax_strdup("the export to the BI database failed");
        } else if (seq > 0) {
            /* every form has exported the change log up to seq: forget it */
            char s[32];
            snprintf(s, sizeof s, "%lld", seq);
            const char *v[1] = {s};
            const Oid ty[1] = {DB_INT8OID};
            if (db_exec(&t.db, NULL, "DELETE FROM anonymizer.changes WHERE seq <= $1", 1, ty, v) != AX_OK)
                log_warning("%s: cannot prune anonymizer.changes: %s", t.name, t.db.error);
        }
    }
    if (audit_finish(&t, app,
                     outcome == TENANT_OK ? "ok" : outcome == TENANT_INTERRUPTED ? "interrupted" : "failed",
                     error ? error
                           : outcome == TENANT_FAILED ? "some forms could not be processed"
                           : outcome == TENANT_INTERRUPTED
                               ? (app_budget_exhausted && !app_interrupted ? "time budget exhausted" : "interrupted by a signal")
                               : NULL)) {
        log_error("%s: cannot write the audit row: %s", t.name, t.db.error);
        outcome = TENANT_FAILED;
    }
    log_info("%s: %s: %zu forms in %.2f s", t.name,
             outcome == TENANT_OK ? "done" : outcome == TENANT_INTERRUPTED ? "interrupted" : "failed", t.nforms,
             tm_now() - started);
    free(error);
    tenant_close(&t);
    return outcome;

db_failed:
    log_error("%s: %s", t.name, t.db.error ? t.db.error : ax_status_str(rc));
    if (audit_open)
        audit_finish(&t, app, "failed", t.db.error);
    tenant_close(&t);
    return TENANT_FAILED;
}

int cmd_run(const struct app *app)
{
    struct run_totals tot = {0};
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);
    double started = tm_now();

    if (!app->cfg->bi.conninfo)
        log_info("no bi group in the configuration: nothing is exported");
    jobs_run(app, app->jobs, run_tenant, outcomes, &tot);
    size_t ok = 0;
    for (size_t i = 0; i < app->ntenants; i++)
        ok += outcomes[i] == TENANT_OK;
    double seconds = tm_now() - started;
    log_info("run %s: %zu of %zu tenants done, %lld submissions anonymised, %lld completed, %lld drafts, %lld locked,"
             " %lld rows exported, %.2f s, %.0f submissions/s%s",
             app->run_id, ok, app->ntenants, tot.anonymised, tot.completed, tot.drafts, tot.locked, tot.exported,
             seconds, seconds > 0 ? (double)(tot.anonymised + tot.completed + tot.drafts) / seconds : 0.0,
             app_budget_exhausted ? " (time budget exhausted)" : app_interrupted ? " (interrupted)" : "");
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
