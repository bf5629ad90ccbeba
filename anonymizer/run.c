/*
 * run.c: the nightly job.  For each tenant: lock, discover, then per form
 * the final anonymisation of due submissions and the removal of expired
 * drafts, in batches of one transaction each, then VACUUM, then the export.
 *
 * A batch is a keyset range of ids: one statement (plan_batch) finds the
 * next batch_size submissions that need work after the previous range,
 * locks what it can of them (SKIP LOCKED: rows a w.c.s. request holds are
 * left for the next run, and counted), rewrites the rows, clears their
 * history and deletes their tracking codes; a second statement makes sure
 * wcs_all_forms carries nothing personal even where its trigger is missing;
 * the range is recorded in the change log the export reads.  A kill at any
 * point loses at most the batch in flight, which the next run finds again:
 * every predicate is about the data, never about what a previous run
 * remembers.
 */
#include "run.h"
#include "audit.h"
#include "export.h"
#include "ax.h"
#include "log.h"
#include "privileges.h"
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
    long long tokens_deleted;    /* search tokens no row matches any more */
    int not_vacuumed;            /* its tables the role could not vacuum (it does not own them) */
};

/* What a run did to a tenant beyond its forms' counts. */
struct tenant_effects {
    bool shared_changed; /* rows of the tenant-wide tables changed: vacuum them */
    int not_vacuumed;    /* tables the role could not vacuum */
};

/* One kind of batch over one form, and where it stands. */
struct batcher {
    struct tenant *t;
    const struct app *app;
    const struct form *f;
    enum plan_batch kind;
    char *work;     /* plan_batch */
    char *range;    /* plan_batch_range */
    char *allforms; /* plan_batch_allforms, or NULL */
    struct progress *progress;
    char lo[32];    /* the last id done (exclusive lower bound of the next batch) */
};

static void batcher_init(struct batcher *b, struct tenant *t, const struct app *app, const struct form *f,
                         enum plan_batch kind, struct progress *progress)
{
    memset(b, 0, sizeof *b);
    b->t = t;
    b->app = app;
    b->f = f;
    b->kind = kind;
    b->work = plan_batch(f, kind);
    b->range = plan_batch_range(f, kind);
    b->allforms = plan_batch_allforms(f, kind);
    b->progress = progress;
    snprintf(b->lo, sizeof b->lo, "0");
}

static void batcher_free(struct batcher *b)
{
    free(b->work);
    free(b->range);
    free(b->allforms);
}

static long long getll(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : atoll(PQgetvalue(res, row, col));
}

/* Server errors that leave a batch for the next run rather than fail the form. */
static bool transient(const struct db *db)
{
    return db_error_is(db, DB_SQLSTATE_LOCK_NOT_AVAILABLE) || db_error_is(db, DB_SQLSTATE_DEADLOCK);
}

static bool cancelled_by_signal(const struct db *db)
{
    return app_interrupted && db_error_is(db, DB_SQLSTATE_QUERY_CANCELED);
}

/*
 * One batch transaction after b->lo.  On success *res holds the batch's
 * counters (NULL when there were no candidates: the form is done) and hi the
 * range's upper bound.  On failure the transaction is still open.
 */
static int batch_once(struct batcher *b, PGresult **res, char *hi, size_t hilen)
{
    char limit[32], fid[16];
    const char *values[PLAN_NPARAMS];
    struct db *db = &b->t->db;
    int rc;

    *res = NULL;
    snprintf(limit, sizeof limit, "%d", b->app->cfg->batch_size);
    if ((rc = db_cmd(db, "BEGIN")))
        return rc;
    plan_params(b->f, values, b->lo, limit, b->t->now, fid, sizeof fid);
    if ((rc = db_query(db, res, DB_ONE_ROW(PLAN_BATCH_NCOLS), b->work, PLAN_NPARAMS, plan_param_types, values)))
        return rc;
    if (getll(*res, 0, 1) == 0) {
        PQclear(*res);
        *res = NULL;
        return db_cmd(db, "COMMIT");
    }
    snprintf(hi, hilen, "%s", PQgetvalue(*res, 0, 0));
    plan_params(b->f, values, b->lo, hi, b->t->now, fid, sizeof fid);
    if (b->allforms)
        rc = db_command(db, b->allforms, PLAN_NPARAMS, plan_param_types, values);
    /* in the batch's transaction: the export finds exactly what committed */
    if (rc == AX_OK && b->kind == PLAN_ANONYMISE)
        rc = audit_log_change(b->t, b->app, b->f->table, b->lo, hi);
    if (rc == AX_OK)
        rc = db_cmd(db, "COMMIT");
    if (rc) {
        PQclear(*res);
        *res = NULL;
    }
    return rc;
}

/*
 * A w.c.s. request holds something the batch after b->lo needs (lock
 * timeout, deadlock): the whole range is left for the next run, and its
 * candidates counted as locked.  *done: nothing was left to step over.
 */
static int leave_range(struct batcher *b, struct form_counts *c, bool *done)
{
    char limit[32], fid[16];
    const char *values[PLAN_NPARAMS];
    PGresult *res;
    char *why = ax_strdup(b->t->db.error);

    db_rollback_quietly(&b->t->db);
    snprintf(limit, sizeof limit, "%d", b->app->cfg->batch_size);
    plan_params(b->f, values, b->lo, limit, b->t->now, fid, sizeof fid);
    int rc = db_query(&b->t->db, &res, DB_ONE_ROW(2), b->range, PLAN_NPARAMS, plan_param_types, values);
    if (rc == AX_OK) {
        long long candidates = getll(res, 0, 1);
        const char *hi = PQgetisnull(res, 0, 0) ? b->lo : PQgetvalue(res, 0, 0);
        log_info("%s: %s: ids %s to %s left for the next run: %s", b->t->name, b->f->label, b->lo, hi, why);
        c->locked += candidates;
        *done = candidates == 0;
        snprintf(b->lo, sizeof b->lo, "%s", hi);
        PQclear(res);
    }
    free(why);
    return rc;
}

/* Adds one batch's counters (plan_batch's row). */
static long long count_batch(const struct batcher *b, const PGresult *res, struct form_counts *c)
{
    long long candidates = getll(res, 0, 1), anonymised = getll(res, 0, 2), completed = getll(res, 0, 3),
              drafts = getll(res, 0, 4);
    long long done = anonymised + completed + drafts;
    c->anonymised += anonymised;
    c->completed += completed;
    if (b->kind == PLAN_DELETE_DRAFTS)
        c->drafts_deleted += drafts;
    else
        c->drafts_anonymised += drafts;
    c->history_cleared += getll(res, 0, 5);
    c->tracking_deleted += getll(res, 0, 6);
    c->locked += candidates > done ? candidates - done : 0;
    return done;
}

/* Runs batches until the form has no more work of this kind, or an interruption. */
static int run_batches(struct batcher *b, struct form_counts *c)
{
    struct db *db = &b->t->db;
    for (;;) {
        if (app_interrupted || app_out_of_time(b->app))
            return AX_ERR_INTERRUPTED;
        double started = tm_now();
        PGresult *res;
        char hi[32];
        int rc = batch_once(b, &res, hi, sizeof hi);
        if (rc == AX_OK && !res)
            return AX_OK;
        if (rc != AX_OK) {
            if (cancelled_by_signal(db)) {
                /* this batch rolls back, the next run redoes it */
                db_rollback_quietly(db);
                return AX_ERR_INTERRUPTED;
            }
            if (!transient(db)) {
                db_rollback_quietly(db);
                return rc;
            }
            bool done = false;
            if ((rc = leave_range(b, c, &done)))
                return rc;
            if (done)
                return AX_OK;
            continue;
        }
        long long done = count_batch(b, res, c);
        long long candidates = getll(res, 0, 1);
        PQclear(res);
        progress_add(b->progress, done);
        log_debug("%s: %s: %s: ids %s to %s: %lld of %lld done in %.3f s", b->t->name, b->f->label,
                  b->kind == PLAN_ANONYMISE ? "anonymise" : "delete drafts", b->lo, hi, done, candidates,
                  tm_now() - started);
        snprintf(b->lo, sizeof b->lo, "%s", hi);
    }
}

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
        c->tokens_deleted += getll(res, 0, 1);
        bool done = PQgetisnull(res, 0, 0) || strlen(PQgetvalue(res, 0, 0)) >= sizeof last;
        if (!done)
            snprintf(last, sizeof last, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        if (done)
            break;
    }
    if (rc == AX_ERR_DB && cancelled_by_signal(&t->db))
        rc = AX_ERR_INTERRUPTED;
    free(sql);
    free(context);
    return rc;
}

/* How many submissions of the form the run still has to anonymise. */
static int count_work(struct tenant *t, const struct form *f, long long *n)
{
    char fid[16], *sql = plan_count_work(f);
    const char *values[PLAN_NPARAMS];
    PGresult *res;
    plan_params(f, values, "0", "0", t->now, fid, sizeof fid);
    int rc = db_query(&t->db, &res, DB_ONE_ROW(1), sql, PLAN_NPARAMS, plan_param_types, values);
    free(sql);
    if (rc)
        return rc;
    *n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return AX_OK;
}

/*
 * VACUUM needs ownership: PostgreSQL would skip a table the role does not
 * own with a mere notice, so that is looked at first and counted.  Returns
 * false when the table was not vacuumed.
 */
static bool vacuum(struct tenant *t, const char *quoted)
{
    bool owns = false;
    if (privileges_owns(t, quoted, &owns) != AX_OK || !owns) {
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

/* Said once per tenant: what was not vacuumed, and what that means. */
static void warn_not_vacuumed(const struct tenant *t, int tables)
{
    if (tables > 0)
        log_warning("%s: %d table%s not vacuumed: the role does not own %s, and old row versions keep personal data"
                    " until autovacuum (see \"anonymizer grants\")",
                    t->name, tables, tables == 1 ? "" : "s", tables == 1 ? "it" : "them");
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
    log_warning("%s: %s: %zu unclassified column%s blanked (%s): %s", t->name, f->label, f->nunclassified,
                f->nunclassified > 1 ? "s" : "", f->def ? "not in the definition" : "no definition", sb.buf);
    sb_free(&sb);
}

/* The batches of one form: anonymisation, then the deletion of expired drafts. */
static int form_batches(struct tenant *t, const struct app *app, struct form *f, struct progress *progress,
                        struct form_counts *c)
{
    struct batcher b;
    long long due = -1;
    /* counting costs a pass over the table: only for someone watching */
    if (app->progress_live && count_work(t, f, &due) != AX_OK)
        due = -1;
    progress_form_start(progress, f->kind == FORM_KIND_FORM ? f->slug : f->label, due);
    batcher_init(&b, t, app, f, PLAN_ANONYMISE, progress);
    int rc = run_batches(&b, c);
    batcher_free(&b);
    if (rc == AX_OK && f->pol.drafts == CFG_DRAFTS_DELETE) {
        batcher_init(&b, t, app, f, PLAN_DELETE_DRAFTS, progress);
        rc = run_batches(&b, c);
        batcher_free(&b);
    }
    progress_form_end(progress);
    return rc;
}

/* Totals, audit entry and summary line of one form. */
static int form_done(struct tenant *t, const struct app *app, const struct form *f, const struct form_counts *c,
                     int rc, const char *error, double started, struct run_totals *tot)
{
    if (!f->sql.unsupported)
        log_info("%s: %s: %lld anonymised, %lld completed, %lld drafts %s, %lld locked, %lld search tokens deleted"
                 " (cutoff %s, %.2f s)%s",
                 t->name, f->label, c->anonymised, c->completed,
                 f->pol.drafts == CFG_DRAFTS_DELETE ? c->drafts_deleted : c->drafts_anonymised,
                 f->pol.drafts == CFG_DRAFTS_DELETE ? "deleted" : "anonymised", c->locked, c->tokens_deleted,
                 f->cutoff, tm_now() - started, rc == AX_ERR_INTERRUPTED ? " [interrupted]" : rc ? " [failed]" : "");
    tot->anonymised += c->anonymised;
    tot->completed += c->completed;
    tot->drafts += c->drafts_deleted + c->drafts_anonymised;
    tot->locked += c->locked;
    tot->tokens += c->tokens_deleted;
    const char *outcome = rc == AX_OK ? "ok" : rc == AX_ERR_INTERRUPTED ? "interrupted" : "failed";
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
 * Processes one form; returns AX_OK, AX_ERR_INTERRUPTED, AX_ERR_DATA or
 * AX_ERR_DB, with the server's message in *db_error (caller frees).
 */
static int run_form(struct tenant *t, const struct app *app, struct form *f, struct job_ctx *ctx,
                    struct tenant_effects *fx, char **db_error)
{
    struct form_counts c = {0};
    double started = tm_now();
    const char *error = NULL;
    int rc;

    if (f->sql.unsupported) {
        log_error("%s: %s: %s; skipped", t->name, f->label, f->sql.unsupported);
        return form_done(t, app, f, &c, AX_ERR_DATA, f->sql.unsupported, started, &ctx->tot);
    }
    report_unclassified(t, f);
    rc = form_batches(t, app, f, ctx->progress, &c);
    bool changed = c.anonymised + c.completed + c.drafts_deleted + c.drafts_anonymised > 0;
    if (rc == AX_OK && changed)
        rc = purge_tokens(t, f, &c);
    if (rc == AX_ERR_DB)
        error = t->db.error;
    if (rc == AX_ERR_INTERRUPTED && app_budget_exhausted && !app_interrupted) {
        long long left;
        if (count_work(t, f, &left) == AX_OK)
            log_info("%s: %s: time budget exhausted, %lld submissions left for the next run", t->name, f->label,
                     left);
    }
    if (rc == AX_ERR_INTERRUPTED)
        error = app_interruption_str();

    char *err_copy = error ? ax_strdup(error) : NULL;
    if (changed) {
        fx->shared_changed = true;
        if (app->cfg->vacuum && rc != AX_ERR_DB) {
            c.not_vacuumed += !vacuum(t, f->q_table);
            if (f->q_evo)
                c.not_vacuumed += !vacuum(t, f->q_evo);
            fx->not_vacuumed += c.not_vacuumed;
        }
    }
    if (rc == AX_ERR_DB)
        log_error("%s: %s: %s", t->name, f->label, err_copy);
    int done_rc = form_done(t, app, f, &c, rc, err_copy, started, &ctx->tot);
    if (done_rc == AX_ERR_DB && !err_copy)
        err_copy = ax_strdup(t->db.error);
    if (done_rc == AX_ERR_DB)
        *db_error = err_copy;
    else
        free(err_copy);
    return done_rc;
}

/* Names the forms a stop left for the next run. */
static void log_forms_left(const struct tenant *t, size_t from)
{
    if (from >= t->nforms)
        return;
    struct strbuf sb;
    sb_init(&sb);
    for (size_t k = from; k < t->nforms; k++)
        sb_appendf(&sb, "%s%s", sb.len ? ", " : "", t->forms[k].slug);
    log_info("%s: forms not started, left for the next run: %s", t->name, sb.buf);
    sb_free(&sb);
}

/* Every form of the tenant; *error receives the message of a failure that ends the tenant. */
static enum tenant_outcome run_forms(struct tenant *t, const struct app *app, struct job_ctx *ctx,
                                     struct tenant_effects *fx, char **error)
{
    enum tenant_outcome outcome = TENANT_OK;
    for (size_t i = 0; i < t->nforms; i++) {
        char *db_error = NULL;
        int rc = run_form(t, app, &t->forms[i], ctx, fx, &db_error);
        if (rc == AX_ERR_INTERRUPTED) {
            log_forms_left(t, i + 1);
            return TENANT_INTERRUPTED;
        }
        if (rc == AX_ERR_DATA) {
            /* this form is left alone; the others are safe to process */
            outcome = TENANT_FAILED;
            continue;
        }
        if (rc) {
            *error = db_error ? db_error : ax_strdup(ax_status_str(rc));
            return TENANT_FAILED;
        }
    }
    return outcome;
}

/* The export, under the same lock, then the change log it consumed is pruned. */
static enum tenant_outcome run_export(struct tenant *t, const struct app *app, struct job_ctx *ctx,
                                      enum tenant_outcome outcome, char **error)
{
    struct export_totals etot = {0};
    long long seq;
    enum tenant_outcome eo = export_tenant(app, t, false, ctx->progress, &etot, &seq);
    ctx->tot.exported += etot.inserted + etot.updated;
    if (eo != TENANT_OK) {
        if (outcome == TENANT_OK)
            outcome = eo == TENANT_INTERRUPTED ? TENANT_INTERRUPTED : TENANT_FAILED;
        free(*error);
        *error = ax_strdup("the export to the BI database failed");
    } else if (seq > 0 && audit_prune_changes(t, seq) != AX_OK) {
        log_warning("%s: cannot prune anonymizer.changes: %s", t->name, t->db.error);
    }
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

enum tenant_outcome run_tenant(const struct app *app, struct app_tenant *at, struct job_ctx *ctx)
{
    struct tenant t;
    struct tenant_effects fx = {0};
    double started = tm_now();
    char *error = NULL;

    enum tenant_outcome outcome = tenant_begin(&t, app, at, TB_FETCH | TB_LOCK | TB_PRIV_RUN | TB_CUTOFFS, NULL);
    if (outcome != TENANT_OK) {
        tenant_close(&t);
        return outcome;
    }
    if (audit_begin(&t, app, "run") != AX_OK) {
        log_error("%s: %s", t.name, t.db.error);
        tenant_close(&t);
        return TENANT_FAILED;
    }
    outcome = run_forms(&t, app, ctx, &fx, &error);
    if (fx.shared_changed && app->cfg->vacuum && outcome != TENANT_FAILED) {
        if (t.facts.has_tracking_codes)
            fx.not_vacuumed += !vacuum(&t, "tracking_codes");
        if (t.facts.has_allforms)
            fx.not_vacuumed += !vacuum(&t, "wcs_all_forms");
        if (t.facts.has_search_tokens)
            fx.not_vacuumed += !vacuum(&t, "wcs_search_tokens");
    }
    warn_not_vacuumed(&t, fx.not_vacuumed);
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
    log_info("%s: %s: %zu forms in %.2f s", t.name, outcome == TENANT_OK ? "done" : tenant_outcome_str(outcome),
             t.nforms, tm_now() - started);
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
    jobs_run(app, app->jobs, run_tenant, outcomes, &tot);
    size_t ok = 0;
    for (size_t i = 0; i < app->ntenants; i++)
        ok += outcomes[i] == TENANT_OK;
    double seconds = tm_now() - started;
    log_info("run %s: %zu of %zu tenants done, %lld submissions anonymised, %lld completed, %lld drafts, %lld locked,"
             " %lld search tokens deleted, %lld rows exported, %.2f s, %.0f submissions/s%s",
             app->run_id, ok, app->ntenants, tot.anonymised, tot.completed, tot.drafts, tot.locked, tot.tokens,
             tot.exported,
             seconds, seconds > 0 ? (double)(tot.anonymised + tot.completed + tot.drafts) / seconds : 0.0,
             app_budget_exhausted ? " (time budget exhausted)" : app_interrupted ? " (interrupted)" : "");
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
