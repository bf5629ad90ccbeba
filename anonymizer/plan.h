/*
 * plan.h: every statement the tool runs on a form's tables, built in one
 * place.
 *
 * What is "due", what still "needs work", and what a blanked row looks like
 * are decided here and nowhere else: run, report and export all take their
 * predicates from plan_preds(), so they select exactly the same rows.  The
 * statements are plain text built from quoted catalog names (struct column's
 * qname, the form's q_table) and $n parameters; tests/unit/golden/ holds the
 * text generated for a fixed form, so that a change to the SQL shows up in
 * review as a diff of SQL.
 *
 * Callers never deal in positions: a statement's values are bound by name
 * (struct plan_args, struct plan_report_args), and plan_bind puts each where
 * the statements expect it.  Inside this module, the form statements take
 *   $1 cutoff, $2 formdef id, $3 final statuses (text[]), $4 kept
 *   statistics keys (text[]), $5 lo (exclusive), $6 a batch's size or a
 *   range's last id, $7 the run timestamp, $8 the keys kept in the elements
 *   of each trimmed block (jsonb), $9 the last id of the work unit, $10 the
 *   form's table name (its candidates in anonymizer.candidates, units.h);
 * the report's aggregate takes $5 the legal limit, $6 the instant
 * evaluated, $7 the backup retention in days, $9 the open limit, $10 the
 * instant before which anonymised rows were found clean, instead.
 */
#ifndef PLAN_H
#define PLAN_H

#include "db.h"
#include "form.h"

#include <stdbool.h>
#include <stddef.h>

#define PLAN_NPARAMS 10
/* The last id of a work unit that is not bounded */
#define PLAN_NO_END "9223372036854775807"
/* "$1".."$10" (index 0 unused): where plan_preds reads its values in ordinary statements */
extern const char *const plan_dollar_params[PLAN_NPARAMS + 1];

/* What a batch, a range or a count of a form is run with, besides what the form itself gives. */
struct plan_args {
    const char *lo;       /* the last id already done (exclusive); NULL: "0" */
    const char *upto;     /* a batch's size (plan_batch, plan_batch_range), or the last id of the range a batch
                             changed (plan_batch_allforms); NULL: "0" */
    const char *run_ts;   /* the run's clock reading: the anonymised time it sets */
    const char *unit_end; /* the last id of the work unit; NULL: none */
};

/* What the report's aggregate (plan_report) is run with. */
struct plan_report_args {
    const char *legal_limit; /* the instant evaluated minus three months */
    const char *at;          /* the instant evaluated */
    const char *backup_days; /* backup_retention, in days */
    const char *open_limit;  /* the instant evaluated minus open_limit */
    const char *since;       /* rows anonymised before it were found clean by a run (candidates.h); NULL: none */
};

/* A statement's values, bound: pass values, types, PLAN_NPARAMS to db_query. */
struct plan_values {
    const char *values[PLAN_NPARAMS];
    const Oid *types;
    char formdef_id[16];
};
void plan_bind(const struct form *f, const struct plan_args *a, struct plan_values *out);
void plan_bind_report(const struct form *f, const struct plan_report_args *a, struct plan_values *out);

/* The time of a submission's last activity, on alias m. */
#define PLAN_ACTIVITY "COALESCE(m.last_update_time, m.receipt_time)"
/* Not a draft (a NULL status is not one), on alias m. */
#define PLAN_NOT_DRAFT "COALESCE(m.status OPERATOR(pg_catalog.<>) 'draft', true)"

/* What the tenant database has, for the SQL of its forms. */
struct plan_tenant {
    bool has_tracking_codes;
    bool has_allforms;
    bool has_search_tokens;
    bool has_defs[2]; /* formdefs, carddefs */
    bool has_users;   /* read by w.c.s.'s triggers on the form tables */
    /* workflow_traces, its archive, and the same for test tables: w.c.s.'s BEFORE DELETE trigger on every data
     * table deletes a row's traces from them */
    bool has_traces[4];
    bool has_audit, has_loggederrors; /* w.c.s.'s own logs */
    bool has_testdef, has_snapshots;  /* test definitions made from submissions, and their snapshots */
    bool anonymise_testdefs;          /* testdefs = "anonymise" (the default) */
    /* the personal columns of users (every nullable one but the account's bookkeeping), read once where the
     * tenant has test definitions: "c = NULL, ...", "u.c::text, ...", "u.c IS NOT NULL OR ..."; NULL: none */
    char *users_set_null, *users_as_text, *users_holds;
    bool anonymise_wcs_logs;          /* wcs_logs = "anonymise": the run blanks the texts of loggederrors */
    bool allforms_has_id_display;
    char **allforms_personal; /* quoted names of the personal columns of wcs_all_forms */
    size_t nallforms_personal;
};

/*
 * How related rows (history, wcs_all_forms) are tested.  PLAN_SCAN: for one
 * pass over a whole table (report, export), EXISTS, which the planner may
 * hash.  PLAN_PROBE: for a batch of a few thousand rows of a large table, a
 * scalar subquery, one index probe per row (a hashed subplan would read the
 * whole related table per batch).  PLAN_ROW: for the export, dirty tests
 * the row itself only: what the export publishes comes from the row, and
 * the history and wcs_all_forms, which it never reads, are the run's to
 * complete (their probes were a fifth of the export's time).
 */
enum plan_style { PLAN_PROBE = 0, PLAN_SCAN, PLAN_ROW };

/* Builds f->sql from the form's classified columns (form_sql_free frees it).  t: the tenant's facts. */
void plan_prepare(struct form *f, const struct plan_tenant *t);

/*
 * The predicates with p[n] as the text of parameter n ($1 cutoff, $2 formdef
 * id, $3 final statuses, $4 kept statistics keys): "$n", or an expression
 * that reads the value where parameters cannot go (COPY).  Free with
 * form_preds_free.
 */
void plan_preds(const struct form *f, const char *const p[PLAN_NPARAMS + 1], enum plan_style style,
                struct form_preds *out);

/* -- the run's batches (caller frees every returned string) ------------------ */

/* The two kinds of batch: the final anonymisation, and the deletion of expired drafts. */
enum plan_batch { PLAN_ANONYMISE = 0, PLAN_DELETE_DRAFTS };

/*
 * One batch in one statement: the next $6 candidates after $5 (and up to
 * $9) in id order, taken from the form's candidates (anonymizer.candidates,
 * filled once per run: the rows the anonymised index says can need work),
 * locked (rows a w.c.s. request holds are skipped; the
 * lock checks again that they are due, not the whole "needs work"
 * predicate, evaluated once), changed.  Returns one
 * row: the range's upper bound, candidates, anonymised, completed, drafts,
 * history rows cleared, tracking codes deleted, the ids changed (int8[],
 * for the change log).
 */
char *plan_batch(const struct form *f, enum plan_batch kind);
#define PLAN_BATCH_NCOLS 8
/*
 * The same anonymisation batch without taking the locks first: cheaper per
 * row, for the common case where no w.c.s. request holds a candidate; run
 * with a short lock_timeout, and done again with plan_batch when it waits.
 */
char *plan_batch_unlocked(const struct form *f);
/* The range the next batch would take (max id, candidates), without changing
 * anything: to step over a range that could not be locked. */
char *plan_batch_range(const struct form *f, enum plan_batch kind);
/* The wcs_all_forms statement that follows a batch over the candidates in ($5, $6], or NULL. */
char *plan_batch_allforms(const struct form *f, enum plan_batch kind);
/* How many submissions still need the final anonymisation (one row, one column). */
char *plan_count_work(const struct form *f);
/* How many drafts are past the cutoff (one row, one column). */
char *plan_count_drafts(const struct form *f);

/* -- the report ------------------------------------------------------------- */

/*
 * One pass over the main table, one row: submissions, anonymised, due,
 * drafts due, open past cutoff, incomplete, oldest pending (ISO), days past
 * the limit, anonymised still in backups, until when (date); open and
 * inactive past open_limit, the oldest of them (ISO); then the submissions
 * holding personal data by age, done ones then the others: within the
 * period, between the period and the legal limit, past the limit; the
 * undated; the status unknown, and those past the limit; the open ones
 * past the period that still hold a field marked "intermediate".
 * Values: plan_bind_report.
 */
/* Which rows: all, those not under a legal hold, or only those (settings anonymizer.held_all, a boolean, and
 * anonymizer.held, a bigint[] of ids, set in the session: see report.c). */
enum plan_held { PLAN_HELD_ANY = 0, PLAN_HELD_NOT, PLAN_HELD_ONLY };
char *plan_report(const struct form *f, enum plan_held held);
#define PLAN_REPORT_NCOLS 22
/*
 * What the rows anonymised before $10 add to the report (found clean by a
 * run: nothing due, nothing pending): how many, how many in backups, and
 * until when (as plan_report's columns 8 and 9), on w.c.s.'s index on
 * anonymised.  Values: plan_bind_report.
 */
char *plan_report_settled(const struct form *f);
#define PLAN_REPORT_SETTLED_NCOLS 3

/* -- search tokens ------------------------------------------------------------ */

/*
 * The search tokens of the form's context that no row of its table matches
 * any more (w.c.s.'s own purge test), deleted over a bounded range: $1 the
 * context, $2 the last token of the previous range, $3 the range's size.
 * Returns one row: the range's last token (NULL: done), tokens deleted.
 * NULL when the tenant has no wcs_search_tokens or the table no fts.
 */
char *plan_purge_tokens(const struct form *f);
/* The search-token context of a form ("formdata_<id>", "carddata_<id>"); NULL for test copies. */
char *plan_token_context(const struct form *f);

#endif
