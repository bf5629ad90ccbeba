/*
 * audit.h: the "anonymizer" schema of each tenant database, and the only
 * module that creates, writes, reads or prunes it.
 *
 *   anonymizer.runs     the audit trail: one row per run and tenant, written
 *                       when the tenant starts (outcome "running"), completed
 *                       form by form, closed at the end.  A row left
 *                       "running" by a killed run is marked "crashed" by the
 *                       next run, which holds the tenant lock and so knows
 *                       nobody else is running.
 *   anonymizer.changes  the change log the export reads: the id range of
 *                       every anonymisation batch, written in the batch's
 *                       own transaction, pruned once every form has
 *                       exported it.
 */
#ifndef AUDIT_H
#define AUDIT_H

#include "tenant.h"

#include <json-c/json.h>

/* Fills buf with a random (version 4) UUID. */
void audit_new_run_id(char buf[37]);

/* -- the audit trail (run) ----------------------------------------------------- */

/* Creates what is missing of the schema and its tables (a role that cannot is refused by the server). */
int audit_ensure_schema(struct tenant *t);

/*
 * An entry that is final when written (a hold added or removed): command,
 * details (a JSON object, not consumed), in the caller's transaction, with
 * app's run id; the caller seals it (chain_seal_in).
 */
int audit_record(struct tenant *t, const struct app *app, const char *command, json_object *details);

/* The settings that decide what a run does, as its entry's details (the forms' own, retention and fields
 * kept and blanked, are in their entries). */
json_object *audit_settings(const struct app *app);

/* Creates the schema and tables when missing, closes stale rows and inserts
 * this run's row. */
int audit_begin(struct tenant *t, const struct app *app, const char *command);

/* Appends one form's entry (a JSON object; not consumed). */
int audit_add_form(struct tenant *t, const struct app *app, json_object *entry);

/* Closes this run's row; error may be NULL; exported: rows exported (-1: no export).  Rolls back a
 * transaction left open. */
int audit_finish(struct tenant *t, const struct app *app, enum tenant_outcome outcome, const char *error,
                 long long exported);

/* One run of one tenant, as the history shows it. */
struct audit_run {
    char *run_id, *command, *outcome, *error, *version, *host;
    char *started_at, *finished_at; /* ISO UTC; finished NULL while running */
    char *details; /* what a hold entry recorded (JSON text), or NULL */
    char *config_sha256;
    char *settings; /* a run's: what was in force (JSON text: "run", its settings, "forms", per table), or NULL */
    long long anonymised, completed, drafts, exported; /* exported -1: unknown */
};

/* The runs of the tenant since an instant (ISO UTC), oldest first; *n 0 without an audit table; and
 * *first_run, when its first recorded run started (ISO UTC, caller frees; NULL: none). */
int audit_history(struct tenant *t, const char *since, struct audit_run **runs, size_t *n, char **first_run);
void audit_runs_free(struct audit_run *runs, size_t n);

/* -- the change log ------------------------------------------------------------ */

/* Records the ids a batch of table changed (an int8[] literal; NULL or "": none), in the caller's transaction. */
int audit_log_change(struct tenant *t, const struct app *app, const char *table, const char *ids);

/*
 * The counters of one committed batch (a plan_batch result row), in the
 * batch's own transaction: the next run turns those of a run that died into
 * its form entries (audit_begin).  drafts_deleted: the drafts column counts
 * deletions, else anonymisations.
 */
int audit_log_batch(struct tenant *t, const struct app *app, const char *table, bool drafts_deleted,
                    const PGresult *res);

/* Forgets the changes up to seq (every form has exported them). */
int audit_prune_changes(struct tenant *t, long long seq);

/*
 * Where the change log stands in the current snapshot: *available false
 * when there is none yet (seq "0"); an error when it exists but cannot be
 * read (the export would miss submissions).
 */
int audit_changes_position(struct tenant *t, bool *available, char *seq, size_t seqlen);

/*
 * A SELECT of the ids of the table (quoted name) that the change log lists
 * after the position in setting anonymizer.change_seq, for the table named
 * in setting anonymizer.table (see plan_export.h).  Caller frees.
 */
char *audit_changed_ids_sql(const char *q_table);

/*
 * VACUUM owed: a batch that changes rows records, in its own transaction,
 * the tables whose old row versions now hold personal data (tables: a text
 * array literal of catalog names); only a successful VACUUM clears one.
 */
int audit_owe_vacuum(struct tenant *t, const struct app *app, const char *tables);
int audit_vacuum_owed(struct tenant *t, const char *table, bool *owed);
int audit_vacuum_paid(struct tenant *t, const char *table);

/* -- what the report reads ---------------------------------------------------- */

struct audit_locked {
    char *table;
    long long locked;
    bool not_vacuumed; /* the run could not vacuum its tables (the role does not own them) */
    char *failed;      /* why the form failed in that run, or NULL */
};

struct audit_view {
    bool exists;   /* anonymizer.runs exists */
    bool readable; /* and this role may read it */
    char *last_ok; /* end of the last successful run, ISO 8601 UTC; NULL: never */
    char *running_since; /* start of a run that is still working on the tenant (its lock is held); NULL */
    struct audit_locked *locked; /* per table, what the last finished run found locked */
    size_t nlocked;
    char **owed_tables, **owed_since; /* tables that still owe a VACUUM, and since when (ISO UTC) */
    size_t nowed;
};

/* Reads the audit trail; a missing or unreadable table is not an error. */
int audit_read(struct tenant *t, struct audit_view *out);
void audit_view_free(struct audit_view *v);

/*
 * A debt of row o of anonymizer.vacuum_owed is paid by any VACUUM of its
 * table after it was recorded: the tool's, an administrator's or
 * autovacuum's (pg_stat_all_tables).  A table that is gone owes nothing.
 */
#define AUDIT_VACUUM_PAID(o)                                                                                       \
    "COALESCE((SELECT COALESCE(GREATEST(s.last_vacuum, s.last_autovacuum) OPERATOR(pg_catalog.>) " o ".since,"   \
    " false) FROM pg_catalog.pg_stat_all_tables s WHERE s.relid OPERATOR(pg_catalog.=)"                                   \
    " pg_catalog.to_regclass(pg_catalog.format('public.%I', " o ".table_name))), true)"

/* Forgets the debts a VACUUM from outside paid (AUDIT_VACUUM_PAID). */
int audit_vacuum_paid_outside(struct tenant *t);

#endif
