/*
 * run.c: the nightly job.  For each tenant: lock, discover, then its forms'
 * work units (units.h: the final anonymisation of due submissions and the
 * removal of expired drafts, in batches of one transaction each, batch.h),
 * and as each form is done its search tokens, VACUUM and audit entry; then
 * the tenant-wide tables' VACUUM, then the export.
 */
#include "run.h"
#include "audit.h"
#include "ax.h"
#include "export.h"
#include "log.h"
#include "privileges.h"
#include "strbuf.h"
#include "tenant.h"
#include "timeutil.h"
#include "testdefs.h"
#include "units.h"
#include "wcs_logs.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a run did to a tenant beyond its forms' counts. */
struct tenant_effects {
    bool shared_changed; /* rows of the tenant-wide tables changed: vacuum them */
    int not_vacuumed;    /* tables the role could not vacuum */
};

/* What the hooks of the tenant's units need (units.h). */
struct run_state {
    struct tenant *t;
    const struct app *app;
    struct job_ctx *ctx;
    struct tenant_effects fx;
};
/* Search tokens are deleted in ranges of this many, one statement (and transaction) each. */
#define TOKEN_RANGE "1000"
/*
 * The search tokens of the form's context that no row of its table matches
 * any more: w.c.s. fills wcs_search_tokens from every fts but purges it only
 * when a site option says so, so the words of anonymised text stay there.
 */
static int purge_tokens(struct tenant *t, const struct form *f, struct form_counts *c)
{
    char *sql = plan_purge_tokens(f), *context = plan_token_context(f), last[1024] = "";
    int rc = AX_OK;
    while (sql && context && rc == AX_OK) {
        if (app_interrupted) {
            rc = AX_ERR_INTERRUPTED;
            break;
        }
        PGresult *res;
        const char *values[3] = {context, last, TOKEN_RANGE};
        const Oid types[3] = {DB_TEXTOID, DB_TEXTOID, DB_INT4OID};
        if ((rc = db_query(&t->db, &res, DB_ONE_ROW(2), sql, 3, types, values)))
            break;
        c->tokens_deleted += db_value_ll(res, 0, 1);
        bool done = PQgetisnull(res, 0, 0) || strlen(PQgetvalue(res, 0, 0)) >= sizeof last;
        if (!done)
            snprintf(last, sizeof last, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        if (done)
            break;
    }
    if (rc == AX_ERR_DB && batch_cancelled(&t->db))
        rc = AX_ERR_INTERRUPTED;
    free(sql);
    free(context);
    return rc;
}
/*
 * VACUUM needs ownership: PostgreSQL would skip a table the role does not
 * own with a mere notice, so that is looked at first and counted.  Returns
 * false when the table was not vacuumed.
 */
static bool vacuum(struct tenant *t, const char *quoted)
{
    bool owns = false;
    if (privileges_owns(&t->db, quoted, &owns) != AX_OK || !owns) {
        log_debug("%s: %s not vacuumed: the role does not own it", t->name, quoted);
        return false;
    }
    char *sql = ax_asprintf("VACUUM (ANALYZE) public.%s", quoted);
    bool ok = db_cmd(&t->db, sql) == AX_OK;
    if (!ok)
        log_warning("%s: %s: %s (old row versions keep personal data until vacuumed)", t->name, sql, t->db.error);
    free(sql);
    return ok;
}
/*
 * VACUUM of a table this run changed, or that an earlier run left owed
 * (anonymizer.vacuum_owed: a failed night must not leave old row versions
 * behind forever); the debt is cleared only by a VACUUM that succeeded.
 * Returns false when the table owed one and was not vacuumed.
 */
static bool vacuum_if_owed(struct tenant *t, const char *name, const char *quoted, bool changed)
{
    bool owed = changed;
    if (!owed && audit_vacuum_owed(t, name, &owed) != AX_OK) {
        log_warning("%s: cannot read anonymizer.vacuum_owed: %s", t->name, t->db.error);
        return true;
    }
    if (!owed)
        return true;
    if (!vacuum(t, quoted))
        return false;
    if (audit_vacuum_paid(t, name) != AX_OK)
        log_warning("%s: %s vacuumed, but anonymizer.vacuum_owed not updated: %s", t->name, name, t->db.error);
    return true;
}
/* Said once per tenant: what was not vacuumed, and what that means. */
static void warn_not_vacuumed(const struct tenant *t, int tables)
{
    if (tables > 0)
        log_warning("%s: %d table%s not vacuumed: the role does not own %s, and old row versions keep personal data"
                    " until autovacuum (see \"anonymizer grants\")",
                    t->name, tables, tables == 1 ? "" : "s", tables == 1 ? "it" : "them");
}
/* The form's field columns kept and blanked (unclassified ones are blanked too): what was in force. */
static void add_fields(json_object *o, const struct form *f)
{
    json_object *kept = json_object_new_array(), *blanked = json_object_new_array();
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (col_is_kept(c->cls))
            json_object_array_add(kept, json_object_new_string(c->name));
        else if (c->cls == COL_BLANK || c->cls == COL_UNCLASSIFIED)
            json_object_array_add(blanked, json_object_new_string(c->name));
    }
    json_object_object_add(o, "kept", kept);
    json_object_object_add(o, "blanked", blanked);
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
    json_object_object_add(o, "search_tokens_deleted", json_object_new_int64(c->tokens_deleted));
    json_object_object_add(o, "held", json_object_new_int64(c->held));
    add_fields(o, f);
    json_object_object_add(o, "failed", json_object_new_int64(c->failed));
    json_object_object_add(o, "table_locked", json_object_new_boolean(c->table_locked > 0));
    json_object_object_add(o, "kind", json_object_new_string(form_kind_str(f->kind)));
    json_object_object_add(o, "vacuumed", json_object_new_boolean(c->not_vacuumed == 0));
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
/* Totals, audit entry and summary line of one form. */
static int form_done(struct tenant *t, const struct app *app, const struct form *f, const struct form_counts *c,
                     int rc, const char *error, double started, struct run_totals *tot)
{
    /* the cutoff as a person reads it: local time, to the second */
    char cutoff[40];
    time_t cut;
    char err[64];
    if (tm_parse_instant(f->cutoff, &cut, err, sizeof err) == 0)
        tm_format_local(cut, cutoff);
    else
        snprintf(cutoff, sizeof cutoff, "%.39s", f->cutoff);
    if (!f->sql.unsupported)
        log_info("%s: %s: %lld anonymised, %lld completed, %lld drafts %s, %lld locked%s, %lld search tokens deleted,"
                 " %lld failed (cutoff %s, %.2f s)%s",
                 t->name, f->label, c->anonymised, c->completed,
                 f->pol.drafts == CFG_DRAFTS_DELETE ? c->drafts_deleted : c->drafts_anonymised,
                 f->pol.drafts == CFG_DRAFTS_DELETE ? "deleted" : "anonymised", c->locked,
                 c->table_locked ? " (table locked: left for the next run)" : "", c->tokens_deleted, c->failed,
                 cutoff, tm_now() - started, rc == AX_ERR_INTERRUPTED ? " [interrupted]" : rc == AX_ERR_LOCKED ? " [table locked]" : rc ? " [failed]" : "");
    tot->anonymised += c->anonymised;
    tot->completed += c->completed;
    tot->drafts += c->drafts_deleted + c->drafts_anonymised;
    tot->locked += c->locked;
    tot->tokens += c->tokens_deleted;
    tot->failed += c->failed;
    const char *outcome = rc == AX_OK                ? "ok"
                          : rc == AX_ERR_INTERRUPTED ? "interrupted"
                          : rc == AX_ERR_LOCKED      ? "locked"
                                                     : "failed";
    char *err_copy = error ? ax_strdup(error) : NULL;
    json_object *entry = form_entry(f, c, outcome, err_copy, tm_now() - started);
    /* the audit survives a failed form as long as the connection does */
    if (audit_add_form(t, app, entry) != AX_OK && rc == AX_OK) {
        log_error("%s: cannot write the audit row: %s", t->name, t->db.error);
        rc = AX_ERR_DB;
    }
    json_object_put(entry);
    free(err_copy);
    return rc;
}
/*
 * A form whose units are all done: its search tokens, its VACUUM, its
 * audit entry and summary line, in the coordinator.
 */
static int finish_form(void *arg, size_t fi, struct form_state *fs)
{
    struct run_state *rs = arg;
    struct tenant *t = rs->t;
    const struct app *app = rs->app;
    struct job_ctx *ctx = rs->ctx;
    struct tenant_effects *fx = &rs->fx;
    struct form *f = &t->forms[fi];
    struct form_counts *c = &fs->c;
    int rc = fs->rc;
    bool changed = c->anonymised + c->completed + c->drafts_deleted + c->drafts_anonymised > 0;
    /* a form that failed in part still has its search tokens purged for what was done */
    if ((rc == AX_OK || rc == AX_ERR_DATA) && changed) {
        progress_phase(ctx->progress, "search tokens");
        /* owed before the deletions: a crash in between leaves the debt recorded */
        int prc = t->facts.has_search_tokens ? audit_owe_vacuum(t, app, "{wcs_search_tokens}") : AX_OK;
        if (prc == AX_OK)
            prc = purge_tokens(t, f, c);
        if (prc == AX_ERR_DB) {
            if (!fs->error)
                fs->error = failure_text(&t->db);
            prc = failure_scope(&t->db) == FAIL_SESSION ? AX_ERR_DB : AX_ERR_DATA;
        }
        if (prc && rc == AX_OK)
            rc = prc;
    }
    if (rc == AX_ERR_INTERRUPTED && app_budget_exhausted && !app_interrupted) {
        long long left;
        if (batch_count_work(t, f, &left) == AX_OK)
            log_info("%s: %s: time budget exhausted, %lld submissions left for the next run", t->name, f->label,
                     left);
    }
    if (rc == AX_ERR_INTERRUPTED && !fs->error)
        fs->error = ax_strdup(app_interruption_str());
    fx->shared_changed |= changed;
    /* what this run changed, and what an earlier night left owed */
    if (app->cfg->vacuum && rc != AX_ERR_DB) {
        progress_phase(ctx->progress, "vacuum");
        c->not_vacuumed += !vacuum_if_owed(t, f->table, f->q_table, changed);
        if (f->q_evo)
            c->not_vacuumed += !vacuum_if_owed(t, f->evo_table, f->q_evo, changed);
        fx->not_vacuumed += c->not_vacuumed;
    }
    /* submissions skipped: the form failed, what could be done is done */
    if (rc == AX_OK && c->failed > 0)
        rc = AX_ERR_DATA;
    /* its table locked past lock_timeout: not failed, left for the next run, and said */
    if (rc == AX_OK && c->table_locked > 0) {
        rc = AX_ERR_LOCKED;
        log_error("%s: %s: %s", t->name, f->label, fs->error ? fs->error : "table locked, left for the next run");
    }
    if ((rc == AX_ERR_DB || rc == AX_ERR_DATA) && c->failed > 0)
        log_error("%s: %s: failed, %lld skipped, the first: %s", t->name, f->label, c->failed,
                  fs->error ? fs->error : "?");
    else if (rc == AX_ERR_DB || rc == AX_ERR_DATA)
        log_error("%s: %s: failed: %s", t->name, f->label, fs->error ? fs->error : "?");
    /* the candidates are this run's: a backlog's would cost the next night their deletion */
    if (rc != AX_ERR_DB && candidates_clear(t, f) != AX_OK)
        log_warning("%s: %s: cannot empty anonymizer.candidates: %s", t->name, f->label, t->db.error);
    /* nothing left behind: the rows anonymised before this night's pass need not be looked at again */
    if (rc == AX_OK && c->locked == 0 && candidates_checked(t, f, &fs->cand) != AX_OK) {
        if (!fs->error)
            fs->error = failure_text(&t->db);
        rc = failure_scope(&t->db) == FAIL_SESSION ? AX_ERR_DB : AX_ERR_DATA;
    }
    fs->rc = rc;
    c->held = fs->cand.held;
    if (c->held > 0)
        log_info("%s: %s: %lld submission%s left alone: under a legal hold (anonymizer hold list)", t->name, f->label,
                 c->held, c->held == 1 ? "" : "s");
    return form_done(t, app, f, c, rc, fs->error, fs->started_at, &ctx->tot);
}
/* A form left out: its audit entry says why. */
static int skip_form(void *arg, size_t fi, const char *why)
{
    struct run_state *rs = arg;
    struct form_counts none = {0};
    return form_done(rs->t, rs->app, &rs->t->forms[fi], &none, AX_ERR_DATA, why, tm_now(), &rs->ctx->tot);
}

/* The export, under the same lock, then the change log it consumed is pruned. */
static enum tenant_outcome run_export(struct tenant *t, const struct app *app, struct job_ctx *ctx,
                                      enum tenant_outcome outcome, char **error)
{
    struct export_totals etot = {0};
    long long seq;
    char *why = NULL;
    enum tenant_outcome eo = export_tenant(app, t, false, ctx->progress, &etot, &seq, &why);
    ctx->tot.exported += etot.inserted + etot.updated;
    if (eo != TENANT_OK) {
        if (outcome == TENANT_OK)
            outcome = eo == TENANT_INTERRUPTED ? TENANT_INTERRUPTED : TENANT_FAILED;
        /* the cause, not only where it happened (a form's missing privilege, a server error) */
        free(*error);
        *error = why ? ax_asprintf("the export to the BI database failed: %s", why)
                     : ax_strdup("the export to the BI database failed");
    } else if (seq > 0 && audit_prune_changes(t, seq) != AX_OK) {
        log_warning("%s: cannot prune anonymizer.changes: %s", t->name, t->db.error);
    }
    free(why);
    return outcome;
}
/* What the audit says of a tenant that ended without a message of its own. */
static const char *tenant_error(enum tenant_outcome outcome)
{
    if (outcome == TENANT_FAILED)
        return "some forms could not be processed";
    if (outcome == TENANT_INTERRUPTED)
        return app_interruption_str();
    return NULL;
}
/* The test definitions made from submissions whose period passed: each form's, one transaction each. */
static enum tenant_outcome run_testdefs(struct tenant *t, enum tenant_outcome outcome, char **error)
{
    for (size_t i = 0; i < t->nforms && !app_interrupted; i++) {
        long long done;
        if (testdefs_anonymise(t, &t->forms[i], &done) != AX_OK) {
            log_error("%s: %s: test definitions: %s", t->name, t->forms[i].label, t->db.error);
            *error = ax_asprintf("%s: test definitions: %s", t->forms[i].label, t->db.error);
            return TENANT_FAILED;
        }
        if (done > 0)
            log_info("%s: %s: %lld test definition%s made from submissions anonymised (data, test user, snapshots)",
                     t->name, t->forms[i].label, done, done == 1 ? "" : "s");
    }
    return outcome;
}
/* One tenant's night (a job of the executor): never exits, reports failures in its outcome. */
static enum tenant_outcome run_tenant(const struct app *app, struct app_tenant *at, struct job_ctx *ctx)
{
    struct tenant t;
    struct run_state rs = {.t = &t, .app = app, .ctx = ctx};
    const struct unit_hooks hooks = {.arg = &rs, .form_finished = finish_form, .form_skipped = skip_form};
    double started = tm_now();
    char *error = NULL;

    enum tenant_outcome outcome = tenant_begin(&t, app, at, TB_FETCH | TB_LOCK | TB_PEER | TB_PRIV_RUN | TB_CUTOFFS | TB_WARN_SUPERUSER,
                                                NULL);
    if (outcome != TENANT_OK) {
        tenant_close(&t);
        return outcome;
    }
    if (audit_begin(&t, app, "run") != AX_OK) {
        log_error("%s: %s", t.name, t.db.error);
        tenant_close(&t);
        return TENANT_FAILED;
    }
    /* debts an administrator's VACUUM or autovacuum paid since: forgotten (the report already ignores them) */
    if (audit_vacuum_paid_outside(&t) != AX_OK)
        log_warning("%s: cannot update anonymizer.vacuum_owed: %s", t.name, t.db.error);
    outcome = units_run(&t, app, ctx, &hooks, &error);
    if (t.facts.anonymise_testdefs && !error && outcome != TENANT_INTERRUPTED)
        outcome = run_testdefs(&t, outcome, &error);
    if (app->cfg->wcs_logs_anonymise && !error && outcome != TENANT_INTERRUPTED) {
        long long blanked;
        if (wcs_logs_anonymise(&t, &blanked) != AX_OK) {
            log_error("%s: w.c.s.'s error log: %s", t.name, t.db.error);
            error = ax_asprintf("w.c.s.'s error log: %s", t.db.error);
            outcome = TENANT_FAILED;
        } else if (blanked > 0) {
            log_info("%s: %lld error%s of w.c.s.'s error log about anonymised submissions blanked (wcs_logs)",
                     t.name, blanked, blanked == 1 ? "" : "s");
        }
    }
    /* the tenant-wide tables, changed now or owed from before; not when the session is lost */
    if (app->cfg->vacuum && !error) {
        static const char *const shared[] = {"tracking_codes", "wcs_all_forms", "wcs_search_tokens"};
        const bool has[] = {t.facts.has_tracking_codes, t.facts.has_allforms, t.facts.has_search_tokens};
        for (size_t i = 0; i < AX_ARRAY_LEN(shared); i++)
            if (has[i])
                rs.fx.not_vacuumed += !vacuum_if_owed(&t, shared[i], shared[i], rs.fx.shared_changed);
    }
    warn_not_vacuumed(&t, rs.fx.not_vacuumed);
    /* not after a server error (the session may be gone) nor when
     * interrupted: the next run catches up */
    long long exported_before = ctx->tot.exported;
    bool exporting = app->cfg->bi.conninfo && !error && outcome != TENANT_INTERRUPTED;
    if (exporting)
        outcome = run_export(&t, app, ctx, outcome, &error);
    if (audit_finish(&t, app, outcome, error ? error : tenant_error(outcome),
                     exporting ? ctx->tot.exported - exported_before : -1)) {
        log_error("%s: cannot write the audit row: %s", t.name, t.db.error);
        outcome = TENANT_FAILED;
    }
    log_info("%s: %s: %zu form%s in %.2f s", t.name, outcome == TENANT_OK ? "done" : tenant_outcome_str(outcome),
             t.nforms, t.nforms == 1 ? "" : "s", tm_now() - started);
    free(error);
    tenant_close(&t);
    return outcome;
}
int cmd_run(const struct app *app)
{
    struct run_totals tot = {0};
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);
    double started = tm_now();

    if (!app->cfg->bi.conninfo)
        log_info("no bi group in the configuration: nothing is exported");
    exec_outcomes(app, run_tenant, outcomes, &tot);
    size_t ok = 0, peer = 0;
    for (size_t i = 0; i < app->ntenants; i++) {
        ok += outcomes[i] == TENANT_OK;
        peer += outcomes[i] == TENANT_PEER;
    }
    double seconds = tm_now() - started;
    char by_peers[64] = "";
    if (peer)
        snprintf(by_peers, sizeof by_peers, " (and %zu by another run)", peer);
    log_info("run %s: %zu of %zu tenants done%s, %lld submissions anonymised, %lld completed, %lld drafts, %lld locked,"
             " %lld failed, %lld search tokens deleted, %lld rows exported, %.2f s, %.0f submissions/s%s",
             app->run_id, ok, app->ntenants, by_peers, tot.anonymised, tot.completed, tot.drafts, tot.locked, tot.failed,
             tot.tokens,
             tot.exported,
             seconds, seconds > 0 ? (double)(tot.anonymised + tot.completed + tot.drafts) / seconds : 0.0,
             app_budget_exhausted ? " (time budget exhausted)" : app_interrupted ? " (interrupted)" : "");
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
