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
 * Exactly once: the BI primary key (tenant, form_id, submission_id) of the
 * private table submission_rows makes a second copy impossible; readers
 * see a row key derived from it by a keyed hash (kanon.c), never the ids; an upsert that only writes rows whose content
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
 * The BI side (bi.c) stages the rows; one form's export (export_form.c)
 * has statistical disclosure control (kanon.c) decide which are published,
 * generalised, suppressed or held back; the form's typed view (bi_views.c)
 * follows its definition; deletions in w.c.s. leave the readers' view.
 * All of a form's effects are one BI transaction; --dry-run rolls it back.
 */
#include "export.h"
#include "audit.h"
#include "ax.h"
#include "bi.h"
#include "export_form.h"
#include "log.h"
#include "strbuf.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* the first failure, with the form it concerns: what the audit and the BI runs row say */
    if (!*error)
        *error = ax_asprintf("%s: %s", sl->fe.f->label, msg ? msg : ax_status_str(rc));
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
                      " s AS (UPDATE @S.submission_rows b SET " BI_DELETED_SET
                      " FROM f WHERE b.tenant OPERATOR(pg_catalog.=) $1"
                      " AND b.form_id OPERATOR(pg_catalog.=) f.form_id AND b.deleted_at IS NULL RETURNING 1),"
                      " x AS (UPDATE @S.export_state e SET published = 0, held_back = 0, generalised = 0, suppressed = 0,"
                      " smallest_group = NULL, limiting_field = NULL FROM f WHERE e.tenant OPERATOR(pg_catalog.=) $1"
                      " AND e.form_id OPERATOR(pg_catalog.=) f.form_id)"
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
                                  struct export_totals *tot, long long *watermark_seq, char **why)
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
    if (db_is_superuser(&bi.db))
        app_warn_superuser("bi", PQuser(bi.db.conn));
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
        /* after whole forms the table changed the most: the nights after find a group by index only if the
         * planner knows it (autovacuum may be late, or off); the columns searched on only, outside any form's
         * transaction (two sessions would wait on each other's); a failure costs speed, not correctness */
        if (outcome == TENANT_OK && !dry_run && tot->full_forms > 0 &&
            bi_command(&bi, "ANALYZE @S.submission_rows (tenant, form_id, submission_id, pub_hash)", 0, NULL,
                       NULL) != AX_OK)
            log_debug("%s: bi: ANALYZE: %s", t->name, bi.db.error);
    }
    db_rollback_quietly(&t->db); /* read-only: nothing to commit */
    if (!error && outcome == TENANT_INTERRUPTED)
        error = ax_strdup(app_interruption_str());
    else if (!error && outcome != TENANT_OK)
        error = ax_strdup("some forms could not be exported");
    bi_run_row(&bi, app, t->name, tenant_outcome_str(outcome), error, dry_run);
    if (why)
        *why = error;
    else
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

    enum tenant_outcome outcome = tenant_begin(&t, app, at, TB_READ_ONLY | TB_LOCK | TB_PRIV_READ | TB_WARN_SUPERUSER, NULL);
    if (outcome == TENANT_OK)
        outcome = export_tenant(app, &t, app->export_dry_run, ctx->progress, &etot, &seq, NULL);
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
    log_info("export %s: %zu of %zu tenants %s, %lld rows %s, %.2f s%s", app->run_id, ok, app->ntenants,
             app->export_dry_run ? "looked at" : "exported",
             tot.exported, app->export_dry_run ? "would be written (dry run: nothing written)" : "written",
             tm_now() - started,
             app_budget_exhausted ? " (time budget exhausted)" : app_interrupted ? " (interrupted)" : "");
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
