/*
 * bi.h: the BI database side of the export: the session, the contract
 * (the staging schema's tables, installed or migrated, with a comment on
 * every table and column), the privileges it needs, the readers' grants.
 * The contract is documented in man/anonymizer-bi.7.
 */
#ifndef BI_H
#define BI_H

#include "app.h"
#include "db.h"

#include "bi_contract.h"

/*
 * The columns the tenant's COPY sends for each submission, in order, into
 * the session's staging table (pg_temp.anonymizer_stage): times are local
 * (the configured time zone), truncated to the configured precision.
 */
#define BI_STAGE_COLUMNS                                                                                         \
    "submission_id, receipt_local, done_local, status, status_name, is_final, channel, backoffice_submission, "  \
    "criticality_level, fields"

/*
 * What becomes of a row of submission_rows (alias b) deleted in w.c.s.: out
 * of every view, its content blanked, its export time moved so that the
 * loader sees it go; its number and key stay (the row stays deleted).
 */
#define BI_DELETED_SET                                                                                           \
    "deleted_at = pg_catalog.now(), exported_at = pg_catalog.now(), pub = NULL, pub_hash = NULL,"                \
    " sensitive = NULL, fields = '{}'::jsonb, receipt_local = NULL, done_local = NULL, channel = NULL,"          \
    " backoffice_submission = NULL, criticality_level = NULL, status = NULL, status_name = NULL, held_since = NULL"

struct bi {
    struct db db;
    bool dry_run;       /* one transaction for the whole session, rolled back: nothing is written */
    const char *schema; /* from the configuration (validated as a plain identifier) */
    char *schema_q;     /* the same, quoted */
    char tz[128];       /* the time zone times are truncated in */
    char *reader_q;     /* bi.reader_role, quoted; NULL: none */
    char *loader_q;     /* bi.loader_role, quoted; NULL: none */
};

/* Grants SELECT on a relation of the schema (@S.<quoted name>) to the reader and loader roles; loader_only: not
 * to the reader. */
int bi_grant_select(struct bi *bi, const char *quoted_name, bool loader_only);

/*
 * Connects, checks the role's privileges, installs or migrates the
 * contract, prepares the session's staging tables and the readers' grants
 * (each role sees only what anonymizer-bi(7) says).
 * Returns 0, AX_ERR_CONNECT, AX_ERR_DB or AX_ERR_DATA (a contract this
 * version does not know) with bi->db.error set; bi_close in every case.
 */
int bi_open(const struct app *app, struct bi *bi, bool dry_run);
void bi_close(struct bi *bi);

/* A BI statement that names the staging schema as @S (replaced by the quoted name). */
int bi_query(struct bi *bi, PGresult **res, struct db_shape shape, const char *fmt_sql, int nparams,
             const Oid *types, const char *const *values);
int bi_command(struct bi *bi, const char *fmt_sql, int nparams, const Oid *types, const char *const *values);
/* The statement with @S replaced (caller frees). */
char *bi_sql(const struct bi *bi, const char *fmt_sql);

/*
 * One unit of work (a form's export): a transaction, or with dry_run a
 * savepoint of the session's transaction.  bi_end commits it, or rolls it
 * back (dry run, or ok false).  The session's staging tables start empty.
 */
int bi_begin(struct bi *bi);
int bi_end(struct bi *bi, bool ok);

#endif
