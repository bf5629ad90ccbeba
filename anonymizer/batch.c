/*
 * batch.c: the batch engine of the run (see batch.h).
 *
 * A batch is a keyset range of ids: one statement (plan_batch) finds the
 * next submissions that need work after the previous range (the predicate
 * evaluated once per candidate), rewrites the rows, clears their history
 * and deletes their tracking codes.  It first runs without locking ahead,
 * with a short lock timeout; when a w.c.s. request holds one of the rows it
 * is done again the careful way, its rows locked first (SKIP LOCKED: the
 * rows held are left for the next run, and counted).  A second statement
 * makes sure wcs_all_forms carries nothing personal only where the form's
 * trigger is missing or did not do it (seen on the form's first batch);
 * the ids it changed are recorded in the change log the export reads (as
 * ranges of consecutive ids).  Candidates come from anonymizer.candidates,
 * which the unit planner fills once per form and run (units.c).  A kill at any
 * point loses at most the batch in flight, which the next run finds again:
 * every predicate is about the data, never about what a previous run
 * remembers.
 *
 * A batch's size follows its time: it aims at batch_target, never more
 * than batch_size rows nor, if it can help it, a second.
 */
#include "batch.h"
#include "audit.h"
#include "ax.h"
#include "log.h"
#include "strbuf.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past this many submissions isolated in one unit, the failure is taken to be the table's. */
#define MAX_ROW_FAILURES 100
/* How long a batch that took no lock first waits for a row before it is done again the careful way. */
#define FAST_LOCK_TIMEOUT "100ms"
/* One element of a text[] literal, double-quoted. */
static void array_element(struct strbuf *sb, const char *s)
{
    sb_append(sb, sb->len > 1 ? ",\"" : "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_appendc(sb, '\\');
        sb_appendc(sb, *p);
    }
    sb_appendc(sb, '"');
}
/* The tables a form's batches change: its own, and the tenant-wide ones w.c.s.'s triggers and the run touch. */
static char *owed_literal(const struct tenant *t, const struct form *f)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_appendc(&sb, '{');
    array_element(&sb, f->table);
    if (f->evo_table)
        array_element(&sb, f->evo_table);
    if (t->facts.has_tracking_codes)
        array_element(&sb, "tracking_codes");
    if (t->facts.has_allforms)
        array_element(&sb, "wcs_all_forms");
    sb_appendc(&sb, '}');
    return sb_finish(&sb);
}
void batcher_init(struct batcher *b, struct tenant *t, const struct app *app, const struct form *f,
                         enum plan_batch kind, const char *lo, const char *end, struct progress *progress)
{
    memset(b, 0, sizeof *b);
    b->t = t;
    b->app = app;
    b->f = f;
    b->kind = kind;
    b->work = plan_batch(f, kind);
    b->fast = kind == PLAN_ANONYMISE ? plan_batch_unlocked(f) : NULL;
    b->range = plan_batch_range(f, kind);
    b->allforms = plan_batch_allforms(f, kind);
    b->progress = progress;
    b->owed = owed_literal(t, f);
    b->size = app->cfg->batch_size;
    snprintf(b->lo, sizeof b->lo, "%s", lo);
    snprintf(b->end, sizeof b->end, "%s", end);
}
/*
 * The next batch's size: what would have taken batch_target at the last
 * batch's pace, moving by at most a factor of 2 up or 4 down, within 10 and
 * batch_size rows; a batch over a second halves it at least.
 */
int batch_next_size(int size, int batch_size, int target_ms, double seconds, long long rows)
{
    double target = target_ms / 1000.0;
    if (seconds <= 0.001 || rows <= 0)
        return size;
    double want = size * target / seconds;
    if (want > size * 2.0)
        want = size * 2.0;
    if (want < size / 4.0)
        want = size / 4.0;
    if (seconds > 1.0 && want > size / 2.0)
        want = size / 2.0;
    int n = (int)want, max = batch_size, min = max < 10 ? max : 10;
    return n < min ? min : n > max ? max : n;
}
void batcher_free(struct batcher *b)
{
    free(b->work);
    free(b->fast);
    free(b->range);
    free(b->allforms);
    free(b->failure);
    free(b->owed);
}
/* Server errors that leave a batch for the next run rather than fail the form. */
bool batch_transient(const struct db *db)
{
    return db_error_is(db, DB_SQLSTATE_LOCK_NOT_AVAILABLE) || db_error_is(db, DB_SQLSTATE_DEADLOCK);
}
bool batch_cancelled(const struct db *db)
{
    return app_interrupted && db_error_is(db, DB_SQLSTATE_QUERY_CANCELED);
}
/* How far a server error reaches: the rows of the batch, the form's table, or the session itself. */

enum failure_scope failure_scope_of(const char *state, bool connected)
{
    static const char *const row_classes[] = {
        "09", /* triggered action exception */
        "22", /* data exception */
        "23", /* integrity constraint violation: a foreign key to a draft, a check */
        "27", /* triggered data change violation */
        "38", "39", "2F", /* external routine (a trigger) exception */
        "P0", /* PL/pgSQL: RAISE in a trigger */
    };
    if (!connected)
        return FAIL_SESSION;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
        return FAIL_SESSION;
    /* over statement_timeout: a smaller batch may pass */
    if (strcmp(state, DB_SQLSTATE_QUERY_CANCELED) == 0)
        return FAIL_ROWS;
    for (size_t i = 0; i < AX_ARRAY_LEN(row_classes); i++)
        if (strncmp(state, row_classes[i], 2) == 0)
            return FAIL_ROWS;
    /* privileges, disk full, out of memory, I/O, an unknown table... */
    return FAIL_TABLE;
}

enum failure_scope failure_scope(const struct db *db)
{
    return failure_scope_of(db->sqlstate, db->conn && PQstatus(db->conn) == CONNECTION_OK);
}

/* The error of a failed statement, as the audit and the log name it: the message, its SQLSTATE, the statement. */
char *failure_text(const struct db *db)
{
    return ax_strdup(db->error ? db->error : "?");
}
/*
 * One batch transaction after b->lo.  On success *res holds the batch's
 * counters (NULL when there were no candidates: the form is done) and hi the
 * range's upper bound.  On failure the transaction is still open.
 */
static int batch_once(struct batcher *b, PGresult **res, char *hi, size_t hilen)
{
    char limit[32];
    struct plan_values pv;
    struct db *db = &b->t->db;
    int rc;

    *res = NULL;
    snprintf(limit, sizeof limit, "%d", b->size);
    if ((rc = db_cmd(db, "BEGIN")))
        return rc;
    /* w.c.s.'s triggers on the form tables (and on wcs_all_forms) name their tables without a schema: public
     * follows pg_catalog for this transaction, and every statement of ours is qualified (sqltext.h) */
    if ((rc = db_cmd(db, "SELECT pg_catalog.set_config('search_path', 'pg_catalog, public, pg_temp', true)")))
        return rc;
    /* without locks taken first, a row a w.c.s. request holds makes the batch wait: not long */
    bool fast = b->fast && !b->careful;
    if (fast && (rc = db_cmd(db, "SELECT pg_catalog.set_config('lock_timeout', '" FAST_LOCK_TIMEOUT "', true)")))
        return rc;
    plan_bind(b->f, &(struct plan_args){.lo = b->lo, .upto = limit, .run_ts = b->t->now, .unit_end = b->end}, &pv);
    if ((rc = db_query(db, res, DB_ONE_ROW(PLAN_BATCH_NCOLS), fast ? b->fast : b->work, PLAN_NPARAMS, pv.types,
                       pv.values)))
        return rc;
    b->careful = false;
    if (db_value_ll(*res, 0, 1) == 0) {
        PQclear(*res);
        *res = NULL;
        return db_cmd(db, "COMMIT");
    }
    snprintf(hi, hilen, "%s", PQgetvalue(*res, 0, 0));
    plan_bind(b->f, &(struct plan_args){.lo = b->lo, .upto = hi, .run_ts = b->t->now, .unit_end = b->end}, &pv);
    if (b->allforms) {
        PGresult *ar;
        rc = db_query(db, &ar, DB_ANY, b->allforms, PLAN_NPARAMS, pv.types, pv.values);
        /* the w.c.s. trigger already did it (nothing left to change): not run again for this form */
        if (rc == AX_OK && !b->allforms_checked) {
            b->allforms_checked = true;
            if (atoll(PQcmdTuples(ar)) == 0 && db_value_ll(*res, 0, 2) + db_value_ll(*res, 0, 3) + db_value_ll(*res, 0, 4) > 0) {
                free(b->allforms);
                b->allforms = NULL;
            }
        }
        if (rc == AX_OK)
            PQclear(ar);
    }
    /* in the batch's transaction: the export finds exactly what committed */
    if (rc == AX_OK && b->kind == PLAN_ANONYMISE)
        rc = audit_log_change(b->t, b->app, b->f->table, PQgetvalue(*res, 0, 7));
    /* and the audit too, whatever kills the run before the form's entry is written */
    if (rc == AX_OK)
        rc = audit_log_batch(b->t, b->app, b->f->table,
                             b->kind == PLAN_DELETE_DRAFTS && b->f->pol.drafts == CFG_DRAFTS_DELETE, *res);
    /* and the VACUUM it makes owed, recorded with the change itself */
    bool marking = !b->owed_marked && db_value_ll(*res, 0, 2) + db_value_ll(*res, 0, 3) + db_value_ll(*res, 0, 4) > 0;
    if (rc == AX_OK && marking)
        rc = audit_owe_vacuum(b->t, b->app, b->owed);
    if (rc == AX_OK)
        rc = db_cmd(db, "COMMIT");
    if (rc == AX_OK && marking)
        b->owed_marked = true;
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
    char limit[32];
    struct plan_values pv;
    PGresult *res;
    char *why = ax_strdup(b->t->db.error);

    db_rollback_quietly(&b->t->db);
    snprintf(limit, sizeof limit, "%d", b->size);
    plan_bind(b->f, &(struct plan_args){.lo = b->lo, .upto = limit, .run_ts = b->t->now, .unit_end = b->end}, &pv);
    int rc = db_query(&b->t->db, &res, DB_ONE_ROW(2), b->range, PLAN_NPARAMS, pv.types, pv.values);
    if (rc && batch_transient(&b->t->db)) {
        /* the table itself is locked: the rest of the unit is left for the next run */
        db_rollback_quietly(&b->t->db);
        log_info("%s: %s: table locked, ids after %s left for the next run: %s", b->t->name, b->f->label, b->lo,
                 why);
        if (!b->failure)
            b->failure = ax_asprintf("table locked, ids after %s left for the next run: %s", b->lo, why);
        c->table_locked++;
        *done = true;
        free(why);
        return AX_OK;
    }
    if (rc == AX_OK) {
        long long candidates = db_value_ll(res, 0, 1);
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
/*
 * A batch of one submission failed for a reason tied to its row: the
 * submission is skipped (named, counted), the run goes on after it.
 */
static int skip_failing(struct batcher *b, struct form_counts *c, const char *why)
{
    struct plan_values pv;
    PGresult *res;
    plan_bind(b->f, &(struct plan_args){.lo = b->lo, .upto = "1", .run_ts = b->t->now, .unit_end = b->end}, &pv);
    int rc = db_query(&b->t->db, &res, DB_ONE_ROW(2), b->range, PLAN_NPARAMS, pv.types, pv.values);
    if (rc)
        return rc;
    if (db_value_ll(res, 0, 1) == 0) {
        /* nothing there any more: the failure was not this row's */
        PQclear(res);
        db_set_error(&b->t->db, "%s", why);
        return AX_ERR_DATA;
    }
    const char *id = PQgetvalue(res, 0, 0);
    log_error("%s: %s: %s %s skipped: %s", b->t->name, b->f->label,
              b->kind == PLAN_ANONYMISE ? "submission" : "draft", id, why);
    if (!b->failure)
        b->failure = ax_asprintf("%s %s: %s", b->kind == PLAN_ANONYMISE ? "submission" : "draft", id, why);
    c->failed++;
    snprintf(b->lo, sizeof b->lo, "%s", id);
    PQclear(res);
    b->bisecting = false;
    b->size = 1;
    return AX_OK;
}
/*
 * A batch failed (not a lock, not a signal).  Tied to its rows: halved
 * again and again until the failing submission is isolated and skipped, the
 * others done.  Tied to the table: the rest of the unit is skipped
 * (AX_ERR_DATA, the form fails, the tenant goes on).  The session lost:
 * AX_ERR_DB, the tenant cannot go on.  AX_OK: go on with the next batch.
 */
static int batch_failed(struct batcher *b, struct form_counts *c, int rc)
{
    struct db *db = &b->t->db;
    enum failure_scope scope = failure_scope(db);
    char *why = failure_text(db);
    db_rollback_quietly(db);
    if (scope == FAIL_SESSION) {
        db_set_error(db, "%s", why);
        free(why);
        return rc;
    }
    if (scope == FAIL_ROWS && b->size > 1) {
        b->size /= 2;
        b->bisecting = true;
        free(why);
        return AX_OK;
    }
    if (scope == FAIL_ROWS && c->failed < MAX_ROW_FAILURES) {
        rc = skip_failing(b, c, why);
        free(why);
        return rc == AX_OK ? AX_OK : failure_scope(db) == FAIL_SESSION ? AX_ERR_DB : AX_ERR_DATA;
    }
    if (scope == FAIL_ROWS)
        db_set_error(db, "more than %d submissions fail, the rest after id %s is left: %s", MAX_ROW_FAILURES, b->lo,
                     why);
    else
        db_set_error(db, "ids after %s: %s", b->lo, why);
    free(b->failure);
    b->failure = ax_strdup(db->error);
    free(why);
    return AX_ERR_DATA;
}
/* Adds one batch's counters (plan_batch's row). */
static long long count_batch(const struct batcher *b, const PGresult *res, struct form_counts *c)
{
    long long candidates = db_value_ll(res, 0, 1), anonymised = db_value_ll(res, 0, 2), completed = db_value_ll(res, 0, 3),
              drafts = db_value_ll(res, 0, 4);
    long long done = anonymised + completed + drafts;
    c->anonymised += anonymised;
    c->completed += completed;
    if (b->kind == PLAN_DELETE_DRAFTS)
        c->drafts_deleted += drafts;
    else
        c->drafts_anonymised += drafts;
    c->history_cleared += db_value_ll(res, 0, 5);
    c->tracking_deleted += db_value_ll(res, 0, 6);
    c->locked += candidates > done ? candidates - done : 0;
    return done;
}
/* Runs batches until the form has no more work of this kind, or an interruption. */
int run_batches(struct batcher *b, struct form_counts *c)
{
    struct db *db = &b->t->db;
    for (;;) {
        if (app_interrupted || app_out_of_time(b->app))
            return AX_ERR_INTERRUPTED;
        double started = tm_now();
        PGresult *res;
        char hi[32];
        bool was_fast = b->fast && !b->careful;
        int rc = batch_once(b, &res, hi, sizeof hi);
        if (rc == AX_OK && !res)
            return AX_OK;
        if (rc != AX_OK && was_fast && batch_transient(db)) {
            /* a w.c.s. request holds one of its rows: the same batch again, locks first (SKIP LOCKED) */
            db_rollback_quietly(db);
            b->careful = true;
            continue;
        }
        if (rc != AX_OK) {
            if (batch_cancelled(db)) {
                /* this batch rolls back, the next run redoes it */
                db_rollback_quietly(db);
                return AX_ERR_INTERRUPTED;
            }
            if (!batch_transient(db)) {
                if ((rc = batch_failed(b, c, rc)))
                    return rc;
                continue;
            }
            bool done = false;
            if ((rc = leave_range(b, c, &done))) {
                free(b->failure);
                b->failure = ax_strdup(db->error ? db->error : "?");
                return failure_scope(db) == FAIL_SESSION ? AX_ERR_DB : AX_ERR_DATA;
            }
            if (done)
                return AX_OK;
            continue;
        }
        long long done = count_batch(b, res, c);
        long long candidates = db_value_ll(res, 0, 1);
        PQclear(res);
        progress_add(b->progress, done);
        double seconds = tm_now() - started;
        log_debug("%s: %s: %s: ids %s to %s: %lld of %lld done in %.3f s (batch of %d)", b->t->name, b->f->label,
                  b->kind == PLAN_ANONYMISE ? "anonymise" : "delete drafts", b->lo, hi, done, candidates, seconds,
                  b->size);
        /* halving towards a failing submission: the size stays until it is found */
        if (!b->bisecting)
            b->size = batch_next_size(b->size, b->app->cfg->batch_size, b->app->cfg->batch_target_ms, seconds,
                                      candidates);
        snprintf(b->lo, sizeof b->lo, "%s", hi);
    }
}
/* How many submissions of the form the run still has to anonymise. */
static int count_with(struct tenant *t, const struct form *f, char *sql, long long *n)
{
    struct plan_values pv;
    PGresult *res;
    plan_bind(f, &(struct plan_args){.run_ts = t->now}, &pv);
    int rc = db_query(&t->db, &res, DB_ONE_ROW(1), sql, PLAN_NPARAMS, pv.types, pv.values);
    free(sql);
    if (rc)
        return rc;
    *n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return AX_OK;
}
int batch_count_work(struct tenant *t, const struct form *f, long long *n)
{
    return count_with(t, f, plan_count_work(f), n);
}
/* How many expired drafts of the form the run still has to delete. */
int batch_count_drafts(struct tenant *t, const struct form *f, long long *n)
{
    return count_with(t, f, plan_count_drafts(f), n);
}
void form_counts_add(struct form_counts *to, const struct form_counts *c)
{
    to->anonymised += c->anonymised;
    to->completed += c->completed;
    to->drafts_deleted += c->drafts_deleted;
    to->drafts_anonymised += c->drafts_anonymised;
    to->history_cleared += c->history_cleared;
    to->tracking_deleted += c->tracking_deleted;
    to->locked += c->locked;
    to->failed += c->failed;
    to->table_locked += c->table_locked;
}
