/*
 * run.c: the nightly job.  For each tenant: lock, discover, then per form
 * the final anonymisation of due submissions and the removal of expired
 * drafts, in batches of one transaction each, then VACUUM, then the export.
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
 * the range is recorded in the change log the export reads.  A kill at any
 * point loses at most the batch in flight, which the next run finds again:
 * every predicate is about the data, never about what a previous run
 * remembers.
 *
 * A batch's size follows its time: it aims at batch_target, never more
 * than batch_size rows nor, if it can help it, a second.  A tenant's work is
 * cut into units (a form, or for a large form a range of its ids); the
 * tenant's process (its coordinator, which holds the tenant lock for the
 * run) starts helper processes while the run's --jobs leaves tokens free;
 * it and its helpers take units one after another from a counter in shared
 * memory, so that no helper waits for the coordinator to hand one out.  A
 * form's search tokens, VACUUM and audit entry come once, in the
 * coordinator, after all its units.
 */
#include "run.h"
#include "audit.h"
#include "export.h"
#include "ax.h"
#include "executor.h"
#include "ipc.h"
#include "log.h"
#include "privileges.h"
#include "strbuf.h"
#include "tenant.h"
#include "timeutil.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

struct form_counts {
    long long anonymised;        /* not anonymised before */
    long long completed;         /* anonymised by w.c.s., finished by us */
    long long drafts_deleted;
    long long drafts_anonymised;
    long long history_cleared;   /* history rows cleared */
    long long tracking_deleted;  /* tracking codes deleted */
    long long locked;            /* due, but held by another session */
    long long tokens_deleted;    /* search tokens no row matches any more */
    long long failed;            /* submissions a server error kept from being done (skipped) */
    int table_locked;            /* units whose table a lock kept the run off (left for the next run) */
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
    char *fast;     /* plan_batch_unlocked (anonymisation only), or NULL */
    bool careful;   /* the next batch takes its locks first (a fast one waited for a lock) */
    char *range;    /* plan_batch_range */
    char *allforms; /* plan_batch_allforms, or NULL: not needed (no table, or the w.c.s. trigger does it) */
    bool allforms_checked; /* whether the trigger does its job was seen once */
    struct progress *progress;
    char lo[32];    /* the last id done (exclusive lower bound of the next batch) */
    char end[32];   /* the last id of the work unit (PLAN_NO_END: none) */
    int size;       /* rows in the next batch: follows the time batches take */
    bool bisecting; /* a batch failed: halves until the failing submission is isolated */
    char *owed;       /* the tables its batches change, as a text[] literal (anonymizer.vacuum_owed) */
    bool owed_marked; /* recorded by a committed batch of this batcher */
    char *failure;  /* the first failure of this batcher (a submission skipped, or the table), or NULL */
};

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

static void batcher_init(struct batcher *b, struct tenant *t, const struct app *app, const struct form *f,
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
static void adapt_size(struct batcher *b, double seconds, long long rows)
{
    double target = b->app->cfg->batch_target_ms / 1000.0;
    if (seconds <= 0.001 || rows <= 0)
        return;
    double want = b->size * target / seconds;
    if (want > b->size * 2.0)
        want = b->size * 2.0;
    if (want < b->size / 4.0)
        want = b->size / 4.0;
    if (seconds > 1.0 && want > b->size / 2.0)
        want = b->size / 2.0;
    int n = (int)want, max = b->app->cfg->batch_size, min = max < 10 ? max : 10;
    b->size = n < min ? min : n > max ? max : n;
}

static void batcher_free(struct batcher *b)
{
    free(b->work);
    free(b->fast);
    free(b->range);
    free(b->allforms);
    free(b->failure);
    free(b->owed);
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

/* How far a server error reaches: the rows of the batch, the form's table, or the session itself. */
enum failure_scope { FAIL_ROWS, FAIL_TABLE, FAIL_SESSION };

static enum failure_scope failure_scope(const struct db *db)
{
    static const char *const row_classes[] = {
        "09", /* triggered action exception */
        "22", /* data exception */
        "23", /* integrity constraint violation: a foreign key to a draft, a check */
        "27", /* triggered data change violation */
        "38", "39", "2F", /* external routine (a trigger) exception */
        "P0", /* PL/pgSQL: RAISE in a trigger */
    };
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
        return FAIL_SESSION;
    const char *state = db->sqlstate;
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

/* The error of a failed statement, as the audit and the log name it: the message, its SQLSTATE, the statement. */
static char *failure_text(const struct db *db)
{
    return ax_strdup(db->error ? db->error : "?");
}

/* Past this many submissions isolated in one unit, the failure is taken to be the table's. */
#define MAX_ROW_FAILURES 100

/* How long a batch that took no lock first waits for a row before it is done again the careful way. */
#define FAST_LOCK_TIMEOUT "100ms"

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
    if (getll(*res, 0, 1) == 0) {
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
            if (atoll(PQcmdTuples(ar)) == 0 && getll(*res, 0, 2) + getll(*res, 0, 3) + getll(*res, 0, 4) > 0) {
                free(b->allforms);
                b->allforms = NULL;
            }
        }
        if (rc == AX_OK)
            PQclear(ar);
    }
    /* in the batch's transaction: the export finds exactly what committed */
    if (rc == AX_OK && b->kind == PLAN_ANONYMISE)
        rc = audit_log_change(b->t, b->app, b->f->table, b->lo, hi);
    /* and the VACUUM it makes owed, recorded with the change itself */
    bool marking = !b->owed_marked && getll(*res, 0, 2) + getll(*res, 0, 3) + getll(*res, 0, 4) > 0;
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
    if (rc && transient(&b->t->db)) {
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
    if (getll(res, 0, 1) == 0) {
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
        bool was_fast = b->fast && !b->careful;
        int rc = batch_once(b, &res, hi, sizeof hi);
        if (rc == AX_OK && !res)
            return AX_OK;
        if (rc != AX_OK && was_fast && transient(db)) {
            /* a w.c.s. request holds one of its rows: the same batch again, locks first (SKIP LOCKED) */
            db_rollback_quietly(db);
            b->careful = true;
            continue;
        }
        if (rc != AX_OK) {
            if (cancelled_by_signal(db)) {
                /* this batch rolls back, the next run redoes it */
                db_rollback_quietly(db);
                return AX_ERR_INTERRUPTED;
            }
            if (!transient(db)) {
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
        long long candidates = getll(res, 0, 1);
        PQclear(res);
        progress_add(b->progress, done);
        double seconds = tm_now() - started;
        log_debug("%s: %s: %s: ids %s to %s: %lld of %lld done in %.3f s (batch of %d)", b->t->name, b->f->label,
                  b->kind == PLAN_ANONYMISE ? "anonymise" : "delete drafts", b->lo, hi, done, candidates, seconds,
                  b->size);
        /* halving towards a failing submission: the size stays until it is found */
        if (!b->bisecting)
            adapt_size(b, seconds, candidates);
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

static int count_work(struct tenant *t, const struct form *f, long long *n)
{
    return count_with(t, f, plan_count_work(f), n);
}

/* How many expired drafts of the form the run still has to delete. */
static int count_drafts(struct tenant *t, const struct form *f, long long *n)
{
    return count_with(t, f, plan_count_drafts(f), n);
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

/* Totals, audit entry and summary line of one form. */
static int form_done(struct tenant *t, const struct app *app, const struct form *f, const struct form_counts *c,
                     int rc, const char *error, double started, struct run_totals *tot)
{
    if (!f->sql.unsupported)
        log_info("%s: %s: %lld anonymised, %lld completed, %lld drafts %s, %lld locked%s, %lld search tokens deleted,"
                 " %lld failed (cutoff %s, %.2f s)%s",
                 t->name, f->label, c->anonymised, c->completed,
                 f->pol.drafts == CFG_DRAFTS_DELETE ? c->drafts_deleted : c->drafts_anonymised,
                 f->pol.drafts == CFG_DRAFTS_DELETE ? "deleted" : "anonymised", c->locked,
                 c->table_locked ? " (table locked: left for the next run)" : "", c->tokens_deleted, c->failed,
                 f->cutoff, tm_now() - started, rc == AX_ERR_INTERRUPTED ? " [interrupted]" : rc == AX_ERR_LOCKED ? " [table locked]" : rc ? " [failed]" : "");
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

/* -- work units ------------------------------------------------------------------------ */

/* A form's table is cut into units of about this many batches of rows (a few seconds of work). */
#define UNIT_BATCHES 12

/* One unit: the ids (lo, end] of one form. */
struct unit {
    size_t form;
    char lo[32], end[32];
};

/* What a unit did, as a helper sends it. */
struct unit_result {
    uint64_t unit; /* its index */
    int32_t rc;
    struct form_counts c;
    char error[1024];
};

/* Where a form stands while its units run. */
struct form_state {
    struct form_counts c;
    size_t units_left;
    bool started;
    int rc;       /* the first failure of its units */
    char *error;
    double started_at;
};

/* The units of one form: the whole table, or ranges of ids for a large one (the last one open-ended). */
static int plan_units(struct tenant *t, const struct app *app, size_t fi, struct unit **units, size_t *n)
{
    const struct form *f = &t->forms[fi];
    const double unit_rows = (double)UNIT_BATCHES * app->cfg->batch_size;
    PGresult *res;
    char *sql = ax_asprintf("SELECT pg_catalog.min(m.id), pg_catalog.max(m.id), (SELECT c.reltuples"
                            " FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1))"
                            " FROM public.%s m",
                            f->q_table);
    char *name = ax_asprintf("public.%s", f->q_table);
    const char *values[1] = {name};
    int rc = db_query(&t->db, &res, DB_ONE_ROW(3), sql, 1, NULL, values);
    free(sql);
    free(name);
    if (rc)
        return rc;
    long long lo = PQgetisnull(res, 0, 0) ? 0 : atoll(PQgetvalue(res, 0, 0));
    long long hi = PQgetisnull(res, 0, 1) ? 0 : atoll(PQgetvalue(res, 0, 1));
    double rows = PQgetisnull(res, 0, 2) ? -1 : atof(PQgetvalue(res, 0, 2));
    PQclear(res);
    if (rows < 0)
        rows = (double)(hi - lo + 1);
    long long parts = rows > unit_rows * 1.5 ? (long long)(rows / unit_rows + 0.5) : 1;
    if (parts > 1000)
        parts = 1000;
    long long width = parts > 1 ? (hi - lo + 1 + parts - 1) / parts : 0;
    for (long long k = 0; k < parts; k++) {
        *units = ax_reallocarray(*units, *n + 1, sizeof **units);
        struct unit *u = &(*units)[(*n)++];
        u->form = fi;
        if (k == 0)
            snprintf(u->lo, sizeof u->lo, "0");
        else
            snprintf(u->lo, sizeof u->lo, "%lld", lo - 1 + k * width);
        if (k == parts - 1)
            snprintf(u->end, sizeof u->end, "%s", PLAN_NO_END);
        else
            snprintf(u->end, sizeof u->end, "%lld", lo - 1 + (k + 1) * width);
    }
    return AX_OK;
}

/*
 * One unit: the anonymisation of its range, then the deletion of its
 * expired drafts.  *failure: what kept submissions or the table from being
 * done (the first such thing), or NULL; the caller frees it.
 */
static int run_unit(struct tenant *t, const struct app *app, const struct unit *u, struct progress *progress,
                    struct form_counts *c, char **failure)
{
    const struct form *f = &t->forms[u->form];
    struct batcher b;
    *failure = NULL;
    progress_phase(progress, "anonymise");
    batcher_init(&b, t, app, f, PLAN_ANONYMISE, u->lo, u->end, progress);
    int locked = c->table_locked;
    int rc = run_batches(&b, c);
    *failure = b.failure;
    b.failure = NULL;
    batcher_free(&b);
    /* a table locked is left whole: its drafts too */
    if (rc == AX_OK && f->pol.drafts == CFG_DRAFTS_DELETE && c->table_locked == locked) {
        progress_phase(progress, "drafts");
        batcher_init(&b, t, app, f, PLAN_DELETE_DRAFTS, u->lo, u->end, progress);
        rc = run_batches(&b, c);
        if (!*failure) {
            *failure = b.failure;
            b.failure = NULL;
        }
        batcher_free(&b);
    }
    return rc;
}

struct unit_job {
    struct tenant *t;
    const struct app *app;
    const struct unit *units;
    size_t nunits;
    size_t *claim; /* shared by the coordinator and its helpers: the next unit to take */
    struct progress *progress;
};

/* The next unit nobody has taken (nunits: none left); shared memory, so helpers and coordinator never both
 * take one, and nobody waits for the coordinator to hand out work. */
static size_t claim_unit(size_t *claim, size_t nunits)
{
    size_t ui = __atomic_fetch_add(claim, 1, __ATOMIC_SEQ_CST);
    return ui < nunits ? ui : nunits;
}

/* In a helper process: units, taken one after another, on a session of its own; each result to the coordinator. */
static void unit_helper(void *arg, int fd)
{
    struct unit_job *j = arg;
    int rc = tenant_helper_session(j->t, j->app);
    for (;;) {
        if (app_interrupted || app_out_of_time(j->app))
            break;
        size_t ui = claim_unit(j->claim, j->nunits);
        if (ui == j->nunits)
            break;
        struct unit_result r;
        memset(&r, 0, sizeof r);
        r.unit = ui;
        char *failure = NULL;
        r.rc = rc;
        if (rc == AX_OK)
            r.rc = run_unit(j->t, j->app, &j->units[ui], j->progress, &r.c, &failure);
        if (failure)
            snprintf(r.error, sizeof r.error, "%s", failure);
        else if (r.rc && j->t->db.error)
            snprintf(r.error, sizeof r.error, "%s", j->t->db.error);
        free(failure);
        ipc_send(fd, IPC_RESULT, &r, sizeof r);
        /* its session lost (or never opened): the coordinator sees the others through */
        if (r.rc == AX_ERR_DB && failure_scope(&j->t->db) == FAIL_SESSION)
            break;
    }
}

static void add_counts(struct form_counts *to, const struct form_counts *c)
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

/*
 * A form whose units are all done: its search tokens, its VACUUM, its
 * audit entry and summary line, in the coordinator.
 */
static int finish_form(struct tenant *t, const struct app *app, size_t fi, struct form_state *fs,
                       struct job_ctx *ctx, struct tenant_effects *fx)
{
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
        if (count_work(t, f, &left) == AX_OK)
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
    fs->rc = rc;
    return form_done(t, app, f, c, rc, fs->error, fs->started_at, &ctx->tot);
}

/* How much of the tenant's work a live progress line can count on (it costs a pass over each table). */
static long long count_due(struct tenant *t, const struct form *f)
{
    long long n = -1, drafts = 0;
    if (count_work(t, f, &n) != AX_OK)
        return -1;
    if (f->pol.drafts == CFG_DRAFTS_DELETE && count_drafts(t, f, &drafts) != AX_OK)
        return -1;
    return n + drafts;
}

/* Names the forms a stop left for the next run. */
static void log_forms_left(const struct tenant *t, const struct form_state *fs)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t k = 0; k < t->nforms; k++)
        if (fs[k].units_left > 0 && !fs[k].started)
            sb_appendf(&sb, "%s%s", sb.len ? ", " : "", t->forms[k].slug);
    if (sb.len)
        log_info("%s: forms not started, left for the next run: %s", t->name, sb.buf);
    sb_free(&sb);
}

/* The scheduling of a tenant's units: in helpers while tokens allow, one at a time in the coordinator. */
struct scheduler {
    struct tenant *t;
    const struct app *app;
    struct job_ctx *ctx;
    struct tenant_effects *fx;
    struct unit *units;
    size_t nunits;
    size_t *claim;   /* the next unit to take, shared with the helpers (claim_unit) */
    size_t started_upto; /* the forms of units below it are marked started */
    struct form_state *fs;
    int fatal;    /* a failure that ends the tenant (AX_ERR_DB from finishing a form) */
    char *fatal_error;
    char *helper_error; /* a helper died: the forms it left unfinished fail with this */
};

/* A unit is done (rc, counts): its form finishes with its last unit. */
static void unit_done(struct scheduler *s, size_t ui, int rc, const struct form_counts *c, const char *error)
{
    struct form_state *fs = &s->fs[s->units[ui].form];
    add_counts(&fs->c, c);
    if (error && *error && !fs->error)
        fs->error = ax_strdup(error);
    if (rc && !fs->rc)
        fs->rc = rc;
    if (--fs->units_left > 0)
        return;
    int done = finish_form(s->t, s->app, s->units[ui].form, fs, s->ctx, s->fx);
    if (done == AX_ERR_DB && !s->fatal) {
        s->fatal = AX_ERR_DB;
        s->fatal_error = ax_strdup(fs->error ? fs->error : s->t->db.error ? s->t->db.error : "?");
    }
}

static bool stop_starting(const struct scheduler *s)
{
    return app_interrupted || app_out_of_time(s->app) || s->fatal;
}

/* How many units have been taken, by anyone. */
static size_t claimed(const struct scheduler *s)
{
    size_t n = __atomic_load_n(s->claim, __ATOMIC_SEQ_CST);
    return n < s->nunits ? n : s->nunits;
}

/* Marks the form started: its progress line and the time its summary counts from. */
static void start_form(struct scheduler *s, size_t fi)
{
    struct form_state *fs = &s->fs[fi];
    if (fs->started)
        return;
    fs->started = true;
    fs->started_at = tm_now();
    const struct form *f = &s->t->forms[fi];
    report_unclassified(s->t, f);
    progress_form_start(s->ctx->progress, f->kind == FORM_KIND_FORM ? f->slug : f->label,
                        s->app->progress_live ? count_due(s->t, f) : -1);
}

/* The forms of every unit taken so far, helpers' included, are started. */
static void mark_started(struct scheduler *s)
{
    for (size_t upto = claimed(s); s->started_upto < upto; s->started_upto++)
        start_form(s, s->units[s->started_upto].form);
}

/* Starts helpers while tokens allow (keeping one for the coordinator itself); each takes units until none is
 * left, as the coordinator does. */
static void start_helpers(struct scheduler *s)
{
    for (;;) {
        if (stop_starting(s) || s->nunits - claimed(s) <= 1)
            return;
        struct unit_job job = {s->t, s->app, s->units, s->nunits, s->claim, s->ctx->progress};
        if (!helper_start(s->ctx->helpers, unit_helper, &job))
            return;
        log_debug("%s: a helper process takes units too", s->t->name);
    }
}

/* What a helper sent or did: a unit's result, or its end (one that died leaves its unit unfinished, said at the
 * end).  False when nothing happened within timeout_ms. */
static bool collect_helpers(struct scheduler *s, int timeout_ms)
{
    const char *payload;
    size_t len, pending;
    int status = 0;
    enum helper_event ev = helper_wait(s->ctx->helpers, timeout_ms, &payload, &len, &status, &pending);
    /* the forms of the units taken so far are started (their summary counts from then) */
    mark_started(s);
    if (ev == HELPER_MESSAGE && len == sizeof(struct unit_result)) {
        struct unit_result r;
        memcpy(&r, payload, sizeof r);
        r.error[sizeof r.error - 1] = '\0';
        if (r.unit < s->nunits)
            unit_done(s, (size_t)r.unit, r.rc, &r.c, r.error);
    } else if (ev == HELPER_ENDED) {
        bool died = !WIFEXITED(status) || WEXITSTATUS(status) != 0 || pending != 0;
        if (died && !app_interrupted && !s->helper_error) {
            s->helper_error = ax_asprintf("a helper process ended without a result (wait status %d)", status);
            log_error("%s: %s", s->t->name, s->helper_error);
        }
    }
    return ev != HELPER_NONE;
}

/* The coordinator's own share: the next unit nobody has taken, or false. */
static bool run_next_unit(struct scheduler *s)
{
    if (stop_starting(s))
        return false;
    size_t ui = claim_unit(s->claim, s->nunits);
    mark_started(s);
    if (ui == s->nunits)
        return false;
    struct form_counts c = {0};
    char *failure = NULL;
    int rc;
    if (s->fs[s->units[ui].form].rc == AX_ERR_DATA) {
        /* its table failed (privileges, disk full...): skipped */
        rc = AX_ERR_DATA;
    } else {
        rc = run_unit(s->t, s->app, &s->units[ui], s->ctx->progress, &c, &failure);
    }
    unit_done(s, ui, rc, &c, failure ? failure : rc && rc != AX_ERR_DATA ? s->t->db.error : NULL);
    free(failure);
    /* a failure that ends the tenant stops the helpers too */
    if (s->fatal)
        __atomic_store_n(s->claim, s->nunits, __ATOMIC_SEQ_CST);
    return true;
}

/*
 * The table could not be measured (plan_units failed): a lock is waited for
 * again by the unit, which leaves the table for the next run; another error
 * fails the form.  False: the session is lost.
 */
static bool plan_one_unit(struct tenant *t, struct scheduler *s, size_t fi)
{
    if (failure_scope(&t->db) == FAIL_SESSION)
        return false;
    if (!transient(&t->db)) {
        struct form_counts none = {0};
        char *why = failure_text(&t->db);
        log_error("%s: %s: failed: %s", t->name, t->forms[fi].label, why);
        s->fs[fi].rc = AX_ERR_DATA;
        form_done(t, s->app, &t->forms[fi], &none, AX_ERR_DATA, why, tm_now(), &s->ctx->tot);
        free(why);
        return true;
    }
    s->units = ax_reallocarray(s->units, s->nunits + 1, sizeof *s->units);
    struct unit *u = &s->units[s->nunits++];
    u->form = fi;
    snprintf(u->lo, sizeof u->lo, "0");
    snprintf(u->end, sizeof u->end, "%s", PLAN_NO_END);
    return true;
}

/* Every unit of the tenant; returns the outcome, *error the message of a failure that ends the tenant. */
static enum tenant_outcome run_forms(struct tenant *t, const struct app *app, struct job_ctx *ctx,
                                     struct tenant_effects *fx, char **error)
{
    struct scheduler s = {.t = t, .app = app, .ctx = ctx, .fx = fx};
    enum tenant_outcome outcome = TENANT_OK;
    s.fs = ax_calloc(t->nforms + 1, sizeof *s.fs);
    for (size_t i = 0; i < t->nforms && !s.fatal; i++) {
        struct form *f = &t->forms[i];
        if (f->sql.unsupported) {
            /* this form is left alone; the others are safe to process */
            struct form_counts none = {0};
            log_error("%s: %s: %s; skipped", t->name, f->label, f->sql.unsupported);
            if (form_done(t, app, f, &none, AX_ERR_DATA, f->sql.unsupported, tm_now(), &ctx->tot) == AX_ERR_DB)
                s.fatal = AX_ERR_DB;
            outcome = TENANT_FAILED;
            continue;
        }
        size_t before = s.nunits;
        if (plan_units(t, app, i, &s.units, &s.nunits) != AX_OK && !plan_one_unit(t, &s, i)) {
            s.fatal = AX_ERR_DB;
            s.fatal_error = ax_strdup(t->db.error);
            break;
        }
        s.fs[i].units_left = s.nunits - before;
    }
    /* the next unit to take, in memory the helpers share */
    s.claim = mmap(NULL, sizeof *s.claim, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s.claim == MAP_FAILED) {
        s.claim = NULL;
        s.fatal = AX_ERR_NOMEM;
        s.fatal_error = ax_asprintf("cannot share the work units: %s", strerror(errno));
    } else {
        *s.claim = s.fatal ? s.nunits : 0;
    }
    for (; s.claim;) {
        /* helpers that ended give their token back before more are asked for */
        while (collect_helpers(&s, 0))
            ;
        start_helpers(&s);
        if (run_next_unit(&s))
            continue;
        if (!collect_helpers(&s, -1))
            break;
    }
    size_t taken = s.claim ? claimed(&s) : 0;
    if (s.claim)
        mark_started(&s);
    /* what a stop left: forms partly done are recorded as interrupted, the others named */
    for (size_t i = 0; i < t->nforms; i++) {
        struct form_state *fs = &s.fs[i];
        if (fs->units_left == 0 || !fs->started)
            continue;
        fs->units_left = 1;
        if (!fs->rc && s.helper_error && !app_interrupted) {
            fs->rc = AX_ERR_DB;
            fs->error = ax_strdup(s.helper_error);
        }
        if (!fs->rc)
            fs->rc = s.fatal ? AX_ERR_DB : AX_ERR_INTERRUPTED;
        size_t ui = 0;
        while (ui < s.nunits && s.units[ui].form != i)
            ui++;
        struct form_counts none = {0};
        unit_done(&s, ui, fs->rc, &none, NULL);
    }
    log_forms_left(t, s.fs);
    for (size_t i = 0; i < t->nforms; i++) {
        if (s.fs[i].rc == AX_ERR_DATA || s.fs[i].rc == AX_ERR_LOCKED)
            outcome = TENANT_FAILED;
        else if (s.fs[i].rc == AX_ERR_DB && !s.fatal) {
            s.fatal = AX_ERR_DB;
            s.fatal_error = ax_strdup(s.fs[i].error ? s.fs[i].error : "?");
        }
        free(s.fs[i].error);
    }
    if (s.fatal) {
        *error = s.fatal_error ? s.fatal_error : ax_strdup(ax_status_str(s.fatal));
        outcome = TENANT_FAILED;
    } else if (app_interrupted || taken < s.nunits || app_budget_exhausted) {
        bool left = taken < s.nunits;
        for (size_t i = 0; i < t->nforms && !left; i++)
            left = s.fs[i].rc == AX_ERR_INTERRUPTED;
        if (left)
            outcome = TENANT_INTERRUPTED;
    }
    free(s.fs);
    free(s.units);
    free(s.helper_error);
    if (s.claim)
        munmap(s.claim, sizeof *s.claim);
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
    /* the tenant-wide tables, changed now or owed from before; not when the session is lost */
    if (app->cfg->vacuum && !error) {
        static const char *const shared[] = {"tracking_codes", "wcs_all_forms", "wcs_search_tokens"};
        const bool has[] = {t.facts.has_tracking_codes, t.facts.has_allforms, t.facts.has_search_tokens};
        for (size_t i = 0; i < AX_ARRAY_LEN(shared); i++)
            if (has[i])
                fx.not_vacuumed += !vacuum_if_owed(&t, shared[i], shared[i], fx.shared_changed);
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
    size_t ok = 0;
    for (size_t i = 0; i < app->ntenants; i++)
        ok += outcomes[i] == TENANT_OK;
    double seconds = tm_now() - started;
    log_info("run %s: %zu of %zu tenants done, %lld submissions anonymised, %lld completed, %lld drafts, %lld locked,"
             " %lld failed, %lld search tokens deleted, %lld rows exported, %.2f s, %.0f submissions/s%s",
             app->run_id, ok, app->ntenants, tot.anonymised, tot.completed, tot.drafts, tot.locked, tot.failed,
             tot.tokens,
             tot.exported,
             seconds, seconds > 0 ? (double)(tot.anonymised + tot.completed + tot.drafts) / seconds : 0.0,
             app_budget_exhausted ? " (time budget exhausted)" : app_interrupted ? " (interrupted)" : "");
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
