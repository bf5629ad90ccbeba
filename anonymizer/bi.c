/*
 * bi.c: the BI database side of the export (see bi.h).
 *
 * The contract is the staging schema's tables.  Version 1 is installed as
 * it was, then each later version's migration, in order, in the setup
 * transaction (under an advisory lock, so that two exports never install
 * twice): a schema of any earlier version is migrated the same way a new
 * one is built.
 */
#include "bi.h"
#include "ax.h"
#include "log.h"
#include "strbuf.h"
#include "tenant.h"
#include "timeutil.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const contract_v1[] = {
    "CREATE TABLE @S.contract (version integer PRIMARY KEY, installed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    " tool_version text NOT NULL)",
    "CREATE TABLE @S.submissions ("
    " tenant text NOT NULL, form_id integer NOT NULL, form_slug text NOT NULL, submission_id integer NOT NULL,"
    " receipt_time timestamptz, last_update_time timestamptz, anonymised_at timestamptz NOT NULL,"
    " status text, status_name text, is_final boolean NOT NULL, channel text, backoffice_submission boolean,"
    " criticality_level integer, processing_time interval, fields jsonb NOT NULL,"
    " exported_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    " PRIMARY KEY (tenant, form_id, submission_id))",
    "CREATE INDEX submissions_exported_at ON @S.submissions (exported_at)",
    "CREATE TABLE @S.forms (tenant text NOT NULL, form_id integer NOT NULL, form_slug text NOT NULL,"
    " form_name text NOT NULL, kept_fields jsonb NOT NULL, updated_at timestamptz NOT NULL,"
    " PRIMARY KEY (tenant, form_id))",
    "CREATE TABLE @S.export_state (tenant text NOT NULL, form_id integer NOT NULL, form_slug text NOT NULL,"
    " change_seq bigint, anonymised_until timestamptz, rows_exported bigint NOT NULL DEFAULT 0,"
    " updated_at timestamptz NOT NULL, PRIMARY KEY (tenant, form_id))",
    "CREATE TABLE @S.runs (run_id uuid NOT NULL, tenant text NOT NULL, started_at timestamptz NOT NULL,"
    " finished_at timestamptz, rows_exported bigint NOT NULL DEFAULT 0, outcome text NOT NULL, error text,"
    " PRIMARY KEY (run_id, tenant))",
};

/* Version 2: per-form views, statuses, deletions, local-time truncation, k-anonymity. */
static const char *const migration_v2[] = {
    "ALTER TABLE @S.submissions ADD COLUMN done_time timestamptz, ADD COLUMN time_precision text,"
    " ADD COLUMN deleted_at timestamptz, ADD COLUMN qi_group bigint",
    "ALTER TABLE @S.forms ADD COLUMN view_name text, ADD COLUMN deleted_at timestamptz,"
    " ADD COLUMN quasi_identifiers jsonb, ADD COLUMN min_k integer, ADD COLUMN view_sql text",
    "CREATE UNIQUE INDEX forms_view_name ON @S.forms (view_name)",
    "ALTER TABLE @S.submissions ADD CONSTRAINT submissions_form_fkey FOREIGN KEY (tenant, form_id)"
    " REFERENCES @S.forms (tenant, form_id)",
    "CREATE INDEX submissions_receipt ON @S.submissions (tenant, form_id, receipt_time)",
    "CREATE INDEX submissions_receipt_time ON @S.submissions (receipt_time)",
    "CREATE INDEX submissions_qi_group ON @S.submissions (tenant, form_id, qi_group)",
    "CREATE TABLE @S.statuses (tenant text NOT NULL, form_id integer NOT NULL, status text NOT NULL,"
    " status_name text, is_final boolean NOT NULL, PRIMARY KEY (tenant, form_id, status),"
    " FOREIGN KEY (tenant, form_id) REFERENCES @S.forms (tenant, form_id))",
    "CREATE TABLE @S.held_back (tenant text NOT NULL, form_id integer NOT NULL, submission_id integer NOT NULL,"
    " held_since timestamptz NOT NULL DEFAULT pg_catalog.now(), PRIMARY KEY (tenant, form_id, submission_id))",
    "ALTER TABLE @S.export_state ADD COLUMN smallest_group bigint, ADD COLUMN held_back bigint NOT NULL DEFAULT 0",
    /* everything is read again: local times, done times and the k-anonymity check apply to every row */
    "UPDATE @S.export_state SET change_seq = NULL, anonymised_until = NULL",
};

/* What every table and column means: for people who browse the schema from their BI tool. */
static const char *const comments_v2[] = {
    "COMMENT ON SCHEMA @S IS 'Anonymised w.c.s. form submissions, exported by anonymizer(1); contract in"
    " anonymizer-bi(7). Per-form views form_<tenant>_<form> have one typed column per kept field.'",
    "COMMENT ON TABLE @S.contract IS 'The contract versions installed in this schema (anonymizer-bi(7)).'",
    "COMMENT ON COLUMN @S.contract.version IS 'Contract version.'",
    "COMMENT ON COLUMN @S.contract.installed_at IS 'When it was installed (timestamptz).'",
    "COMMENT ON COLUMN @S.contract.tool_version IS 'The anonymizer version that installed it.'",
    "COMMENT ON TABLE @S.submissions IS 'One row per exported submission: anonymised, kept fields only; every"
    " combination of quasi-identifiers shared by at least min_k rows of its form.'",
    "COMMENT ON COLUMN @S.submissions.tenant IS 'The w.c.s. site (tenant) the submission comes from.'",
    "COMMENT ON COLUMN @S.submissions.form_id IS 'The form''s id in w.c.s. (formdefs.id); see forms.'",
    "COMMENT ON COLUMN @S.submissions.form_slug IS 'The form''s slug (url name).'",
    "COMMENT ON COLUMN @S.submissions.submission_id IS 'The submission''s number in its form.'",
    "COMMENT ON COLUMN @S.submissions.receipt_time IS 'When it was submitted (timestamptz), truncated to"
    " time_precision in the configured time zone.'",
    "COMMENT ON COLUMN @S.submissions.last_update_time IS 'Its last activity (timestamptz), truncated likewise.'",
    "COMMENT ON COLUMN @S.submissions.anonymised_at IS 'When it was anonymised (timestamptz), truncated likewise.'",
    "COMMENT ON COLUMN @S.submissions.status IS 'Workflow status id, without the wf- prefix; see statuses.'",
    "COMMENT ON COLUMN @S.submissions.status_name IS 'Workflow status name from the form definition.'",
    "COMMENT ON COLUMN @S.submissions.is_final IS 'The status is final (the submission is done).'",
    "COMMENT ON COLUMN @S.submissions.channel IS 'Submission channel: web, mail, phone, counter, fax, email,"
    " social-network.'",
    "COMMENT ON COLUMN @S.submissions.backoffice_submission IS 'Submitted by an agent in the back office.'",
    "COMMENT ON COLUMN @S.submissions.criticality_level IS 'w.c.s. criticality level (integer).'",
    "COMMENT ON COLUMN @S.submissions.processing_time IS 'Done time (else last update) minus receipt time"
    " (interval), from the truncated times.'",
    "COMMENT ON COLUMN @S.submissions.fields IS 'The kept fields (jsonb), keyed by varname or f<id>; the"
    " per-form views give them typed columns.'",
    "COMMENT ON COLUMN @S.submissions.exported_at IS 'When this version of the row was written (timestamptz):"
    " load incrementally on it.'",
    "COMMENT ON COLUMN @S.submissions.done_time IS 'When it reached a final status (timestamptz, w.c.s."
    " done-datetime), truncated likewise; NULL while open.'",
    "COMMENT ON COLUMN @S.submissions.time_precision IS 'What its times are truncated to: minute, hour, day, or"
    " coarser (week, month) where k-anonymity generalised them.'",
    "COMMENT ON COLUMN @S.submissions.deleted_at IS 'When the export found the submission deleted in w.c.s."
    " (timestamptz); NULL while it exists.'",
    "COMMENT ON COLUMN @S.submissions.qi_group IS 'Hash of its quasi-identifiers (k-anonymity group).'",
    "COMMENT ON TABLE @S.forms IS 'One row per tenant and exported form.'",
    "COMMENT ON COLUMN @S.forms.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.forms.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.forms.form_slug IS 'The form''s slug.'",
    "COMMENT ON COLUMN @S.forms.form_name IS 'The form''s title.'",
    "COMMENT ON COLUMN @S.forms.kept_fields IS 'The exported fields (jsonb list of key, column, label, type).'",
    "COMMENT ON COLUMN @S.forms.updated_at IS 'When this row last changed (timestamptz).'",
    "COMMENT ON COLUMN @S.forms.view_name IS 'The per-form view in this schema, one typed column per kept"
    " field.'",
    "COMMENT ON COLUMN @S.forms.deleted_at IS 'When the export found the form deleted in w.c.s. (timestamptz).'",
    "COMMENT ON COLUMN @S.forms.quasi_identifiers IS 'The kept fields counted as quasi-identifiers (jsonb).'",
    "COMMENT ON COLUMN @S.forms.min_k IS 'The k of k-anonymity its rows were checked against.'",
    "COMMENT ON COLUMN @S.forms.view_sql IS 'The statement that made the view (the export recreates it when the"
    " definition changes).'",
    "COMMENT ON TABLE @S.statuses IS 'The workflow statuses of each form: a dimension for submissions.status.'",
    "COMMENT ON COLUMN @S.statuses.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.statuses.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.statuses.status IS 'Status id, without the wf- prefix.'",
    "COMMENT ON COLUMN @S.statuses.status_name IS 'Status name.'",
    "COMMENT ON COLUMN @S.statuses.is_final IS 'A final status (endpoint).'",
    "COMMENT ON TABLE @S.held_back IS 'Submissions not exported yet: their combination of quasi-identifiers is"
    " shared by fewer than min_k rows. Ids only.'",
    "COMMENT ON COLUMN @S.held_back.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.held_back.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.held_back.submission_id IS 'The submission''s number in its form.'",
    "COMMENT ON COLUMN @S.held_back.held_since IS 'Since when it is held back (timestamptz).'",
    "COMMENT ON TABLE @S.export_state IS 'Per tenant and form, the watermark of what has been exported.'",
    "COMMENT ON COLUMN @S.export_state.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.export_state.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.export_state.form_slug IS 'The form''s slug.'",
    "COMMENT ON COLUMN @S.export_state.change_seq IS 'Position in the tenant''s anonymizer.changes log.'",
    "COMMENT ON COLUMN @S.export_state.anonymised_until IS 'The tenant''s clock at the last export"
    " (timestamptz).'",
    "COMMENT ON COLUMN @S.export_state.rows_exported IS 'Rows written for this form, in all.'",
    "COMMENT ON COLUMN @S.export_state.updated_at IS 'When it last moved (timestamptz).'",
    "COMMENT ON COLUMN @S.export_state.smallest_group IS 'The smallest group of rows sharing quasi-identifiers"
    " in this schema, after the last export.'",
    "COMMENT ON COLUMN @S.export_state.held_back IS 'Rows held back after the last export.'",
    "COMMENT ON TABLE @S.runs IS 'One row per export and tenant.'",
    "COMMENT ON COLUMN @S.runs.run_id IS 'The anonymizer run id (the same in the tenant''s anonymizer.runs).'",
    "COMMENT ON COLUMN @S.runs.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.runs.started_at IS 'When the export of this tenant started (timestamptz).'",
    "COMMENT ON COLUMN @S.runs.finished_at IS 'When it finished (timestamptz): load rows exported until then.'",
    "COMMENT ON COLUMN @S.runs.rows_exported IS 'Rows written.'",
    "COMMENT ON COLUMN @S.runs.outcome IS 'running, ok, failed, interrupted, or crashed (found dead by the next"
    " export).'",
    "COMMENT ON COLUMN @S.runs.error IS 'What failed.'",
};

char *bi_sql(const struct bi *bi, const char *fmt_sql)
{
    struct strbuf sb;
    sb_init(&sb);
    for (const char *p = fmt_sql; *p; p++) {
        if (p[0] == '@' && p[1] == 'S') {
            sb_append(&sb, bi->schema_q);
            p++;
        } else {
            sb_appendc(&sb, *p);
        }
    }
    return sb_finish(&sb);
}

int bi_query(struct bi *bi, PGresult **res, struct db_shape shape, const char *fmt_sql, int nparams,
             const Oid *types, const char *const *values)
{
    char *sql = bi_sql(bi, fmt_sql);
    int rc = db_query(&bi->db, res, shape, sql, nparams, types, values);
    free(sql);
    return rc;
}

int bi_command(struct bi *bi, const char *fmt_sql, int nparams, const Oid *types, const char *const *values)
{
    return bi_query(bi, NULL, DB_ANY, fmt_sql, nparams, types, values);
}

static int run_all(struct bi *bi, const char *const *stmts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = bi_command(bi, stmts[i], 0, NULL, NULL);
        if (rc)
            return rc;
    }
    return AX_OK;
}

static int record_version(struct bi *bi, int version)
{
    char v[16];
    snprintf(v, sizeof v, "%d", version);
    const char *values[2] = {v, ANONYMIZER_VERSION};
    const Oid types[2] = {DB_INT4OID, DB_TEXTOID};
    return bi_command(bi, "INSERT INTO @S.contract (version, tool_version) VALUES ($1, $2)", 2, types, values);
}

/*
 * Brings the schema to this version's contract: creates the schema and
 * version 1 when missing, then every migration after the installed
 * version.  *from: the version found (0: none).
 */
static int bi_install(struct bi *bi, int *from)
{
    PGresult *res;
    const char *values[1] = {bi->schema};
    const Oid types[1] = {DB_TEXTOID};
    bool has_contract;
    int rc;

    *from = 0;
    /* from the catalog: CREATE SCHEMA IF NOT EXISTS would need CREATE on the database */
    if ((rc = db_query(&bi->db, &res, DB_ONE_ROW(1),
                       "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) $1)", 1,
                       types, values)))
        return rc;
    bool has_schema = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if ((rc = db_relation(&bi->db, bi->schema, "contract", &has_contract, NULL)))
        return rc;
    if (!has_schema && (rc = bi_command(bi, "CREATE SCHEMA @S", 0, NULL, NULL)))
        return rc;
    if (has_contract) {
        if ((rc = bi_query(bi, &res, DB_ONE_ROW(1), "SELECT pg_catalog.max(version) FROM @S.contract", 0, NULL, NULL)))
            return rc;
        *from = PQgetisnull(res, 0, 0) ? 0 : atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    if (*from > BI_CONTRACT_VERSION) {
        /* a newer anonymizer migrated the schema: never write an older shape into it */
        db_set_error(&bi->db, "schema %s holds contract version %d; this anonymizer writes version %d", bi->schema,
                     *from, BI_CONTRACT_VERSION);
        return AX_ERR_DATA;
    }
    if (*from < 1 && ((rc = run_all(bi, contract_v1, AX_ARRAY_LEN(contract_v1))) || (rc = record_version(bi, 1))))
        return rc;
    if (*from < 2 && ((rc = run_all(bi, migration_v2, AX_ARRAY_LEN(migration_v2))) ||
                      (rc = run_all(bi, comments_v2, AX_ARRAY_LEN(comments_v2))) || (rc = record_version(bi, 2))))
        return rc;
    return AX_OK;
}

/* The readers' role may read everything in the schema, including what the export creates later. */
static int grant_readers(struct bi *bi, const char *role)
{
    PGresult *res;
    const char *values[1] = {role};
    int rc = db_query(&bi->db, &res, DB_ONE_ROW(1), "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles"
                      " WHERE rolname OPERATOR(pg_catalog.=) $1)",
                      1, NULL, values);
    if (rc)
        return rc;
    bool exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists) {
        db_set_error(&bi->db, "bi.reader_role: role \"%s\" does not exist on the BI server", role);
        return AX_ERR_DATA;
    }
    char *q = db_quote_ident(&bi->db, role);
    char *sql = ax_asprintf("GRANT USAGE ON SCHEMA @S TO %s;"
                            " GRANT SELECT ON ALL TABLES IN SCHEMA @S TO %s;"
                            " ALTER DEFAULT PRIVILEGES IN SCHEMA @S GRANT SELECT ON TABLES TO %s",
                            q, q, q);
    char *script = bi_sql(bi, sql);
    rc = db_script(&bi->db, script);
    free(script);
    free(sql);
    free(q);
    return rc;
}

/* Creates or migrates the contract's tables; refuses another contract version; the session's staging tables. */
static int bi_setup(struct bi *bi, const struct app *app)
{
    int from = 0;
    int rc;

    if ((rc = db_cmd(&bi->db, "BEGIN")))
        return rc;
    if ((rc = db_cmd(&bi->db, "SELECT pg_catalog.pg_advisory_xact_lock(" LOCK_BI_SETUP ")")) ||
        (rc = bi_install(bi, &from)))
        goto fail;
    /* staging tables for COPY, private to this session */
    rc = bi_command(bi,
                    "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_stage ON COMMIT DELETE ROWS AS"
                    " SELECT " BI_SUBMISSION_COLUMNS " FROM @S.submissions WITH NO DATA",
                    0, NULL, NULL);
    /* the staged rows' quasi-identifiers, and the level k-anonymity publishes them at (kanon.c) */
    if (rc == AX_OK)
        rc = bi_command(bi,
                        "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_cand (submission_id integer PRIMARY KEY,"
                        " receipt_time timestamptz, done_time timestamptz, channel text, qh bigint, qi bigint,"
                        " level text) ON COMMIT DELETE ROWS",
                        0, NULL, NULL);
    if (rc == AX_OK)
        rc = bi_command(bi, "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_ids (id integer PRIMARY KEY)"
                            " ON COMMIT DELETE ROWS", 0, NULL, NULL);
    if (rc == AX_OK)
        rc = bi_command(bi, "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_groups (qi_group bigint)"
                            " ON COMMIT DELETE ROWS", 0, NULL, NULL);
    if (rc == AX_OK && app->cfg->bi.reader_role)
        rc = grant_readers(bi, app->cfg->bi.reader_role);
    /* a dry run keeps this transaction open, and never commits it */
    if (rc == AX_OK && !bi->dry_run)
        rc = db_cmd(&bi->db, "COMMIT");
    if (rc)
        goto fail;
    /* only once committed */
    if (bi->dry_run)
        return AX_OK;
    if (from == 0)
        log_info("bi: contract version %d installed in schema %s", BI_CONTRACT_VERSION, bi->schema);
    else if (from < BI_CONTRACT_VERSION)
        log_info("bi: schema %s migrated from contract version %d to %d (every form is exported again)",
                 bi->schema, from, BI_CONTRACT_VERSION);
    return AX_OK;
fail:
    db_rollback_quietly(&bi->db);
    return rc;
}

/*
 * What the export needs on the BI database, checked before anything is
 * written: TEMPORARY (the staging table), and its schema with the tables in
 * it owned by the role, or CREATE to make it.  One clear error otherwise.
 */
static int bi_check_privileges(struct bi *bi)
{
    PGresult *res;
    const char *values[1] = {bi->schema};
    int rc = db_query(&bi->db, &res, DB_ONE_ROW(2),
                      "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY'),"
                      " COALESCE((SELECT pg_catalog.pg_has_role(n.nspowner, 'USAGE') AND NOT EXISTS (SELECT 1"
                      "  FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid"
                      "  AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,S,v}'::pg_catalog.\"char\"[])"
                      "  AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE'))"
                      "  FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $1),"
                      " pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE'))",
                      1, NULL, values);
    if (rc)
        return rc;
    bool temp = strcmp(PQgetvalue(res, 0, 0), "t") == 0, schema = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    if (!temp)
        db_set_error(&bi->db, "role \"%s\" lacks TEMPORARY on database %s (\"anonymizer grants\" prints what each"
                              " role needs)", PQuser(bi->db.conn), PQdb(bi->db.conn));
    else if (!schema)
        db_set_error(&bi->db, "role \"%s\" neither owns schema %s and its tables nor may create it (\"anonymizer"
                              " grants\" prints what each role needs)", PQuser(bi->db.conn), bi->schema);
    return temp && schema ? AX_OK : AX_ERR_DB;
}

static void bi_time_zone(const struct app *app, char buf[128])
{
    tm_zone_name(app->cfg->timezone, buf, 128);
}

void bi_close(struct bi *bi)
{
    db_close(&bi->db);
    free(bi->schema_q);
    bi->schema_q = NULL;
}

int bi_begin(struct bi *bi)
{
    int rc = db_cmd(&bi->db, bi->dry_run ? "SAVEPOINT anonymizer_unit" : "BEGIN");
    /* ON COMMIT DELETE ROWS empties them at each commit; a dry run never commits */
    if (rc == AX_OK && bi->dry_run)
        rc = db_cmd(&bi->db, "TRUNCATE pg_temp.anonymizer_stage, pg_temp.anonymizer_cand, pg_temp.anonymizer_ids,"
                             " pg_temp.anonymizer_groups");
    return rc;
}

int bi_end(struct bi *bi, bool ok)
{
    if (bi->dry_run) {
        int rc = db_cmd(&bi->db, "ROLLBACK TO SAVEPOINT anonymizer_unit");
        return rc == AX_OK ? db_cmd(&bi->db, "RELEASE SAVEPOINT anonymizer_unit") : rc;
    }
    if (ok)
        return db_cmd(&bi->db, "COMMIT");
    db_rollback_quietly(&bi->db);
    return AX_OK;
}

int bi_open(const struct app *app, struct bi *bi, bool dry_run)
{
    memset(bi, 0, sizeof *bi);
    bi->dry_run = dry_run;
    bi->schema = app->cfg->bi.schema;
    bi_time_zone(app, bi->tz);
    struct db_profile profile = app_db_profile(app->cfg, false);
    int rc = db_connect(&bi->db, app->cfg->bi.conninfo, NULL, "bi", &profile);
    if (rc == AX_ERR_CONNECT)
        return rc;
    bi->schema_q = db_quote_ident(&bi->db, bi->schema);
    if (rc || (rc = bi_check_privileges(bi)))
        return rc;
    return bi_setup(bi, app);
}
