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
#include "bi_contract.h"
#include "ax.h"
#include "log.h"
#include "strbuf.h"
#include "tenant.h"
#include "timeutil.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (int v = *from + 1; v <= BI_CONTRACT_VERSION; v++) {
        for (int part = 0; part < 2; part++) {
            size_t n;
            const char *const *stmts = bi_contract_step(v, part, &n);
            if ((rc = run_all(bi, stmts, n)))
                return rc;
        }
        if ((rc = record_version(bi, v)))
            return rc;
    }
    return AX_OK;
}

/* The form figures' tables and triggers (bi_counting), created and seeded once, under the setup's lock. */
static int bi_counting_install(struct bi *bi)
{
    bool exists;
    int rc = db_relation(&bi->db, bi->schema, "form_counts", &exists, NULL);
    if (rc || exists)
        return rc;
    return run_all(bi, bi_counting, bi_counting_n);
}

/* A role of the configuration, quoted, once checked to exist on the BI server (NULL: not configured). */
static int role_quoted(struct bi *bi, const char *setting, const char *role, char **q)
{
    bool exists;
    *q = NULL;
    if (!role)
        return AX_OK;
    int rc = db_role_exists(&bi->db, role, &exists);
    if (rc)
        return rc;
    if (!exists) {
        db_set_error(&bi->db, "%s: role \"%s\" does not exist on the BI server", setting, role);
        return AX_ERR_DATA;
    }
    *q = db_quote_ident(&bi->db, role);
    return AX_OK;
}

int bi_grant_select(struct bi *bi, const char *quoted_name, bool loader_only)
{
    int rc = AX_OK;
    const char *roles[2] = {loader_only ? NULL : bi->reader_q, bi->loader_q};
    for (int i = 0; i < 2 && rc == AX_OK; i++) {
        if (!roles[i])
            continue;
        char *sql = ax_asprintf("GRANT SELECT ON @S.%s TO %s", quoted_name, roles[i]);
        rc = bi_command(bi, sql, 0, NULL, NULL);
        free(sql);
    }
    return rc;
}

/*
 * Whether the roles see exactly what they should: the reader the published
 * views and not the rows, the held-back rows, the secret nor the export
 * times; the loader also submissions_load.
 */
static int grants_hold(struct bi *bi, const struct cfg_bi *c, bool *hold)
{
    PGresult *res;
    const char *v[3] = {bi->schema, c->reader_role, c->loader_role};
    int rc = db_query(&bi->db, &res, DB_ONE_ROW(1),
                      "WITH t(name, reader, loader) AS (VALUES ('submissions', true, true), ('forms', true, true),"
                      " ('contract', true, true), ('statuses', true, true), ('submissions_load', false, true),"
                      " ('runs', false, true), ('export_state', false, true), ('submission_rows', false, false),"
                      " ('secret', false, false))"
                      " SELECT pg_catalog.bool_and((r.rolname IS NULL OR pg_catalog.has_table_privilege(r.rolname,"
                      "  pg_catalog.format('%I.%I', $1::text, t.name), 'SELECT') OPERATOR(pg_catalog.=)"
                      "  CASE WHEN r.is_reader THEN t.reader ELSE t.loader END))"
                      " FROM t, (SELECT $2::text AS rolname, true AS is_reader UNION ALL SELECT $3::text, false) r",
                      3, NULL, v);
    if (rc)
        return rc;
    *hold = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

/*
 * The roles' grants, set again when they do not hold: everything taken
 * back (earlier versions granted every table of the schema, and default
 * privileges for later ones), then the published relations, the per-form
 * views included.
 */
static int grant_roles(struct bi *bi, const struct cfg_bi *c)
{
    bool hold;
    int rc = role_quoted(bi, "bi.reader_role", c->reader_role, &bi->reader_q);
    if (rc == AX_OK)
        rc = role_quoted(bi, "bi.loader_role", c->loader_role, &bi->loader_q);
    if (rc || (!bi->reader_q && !bi->loader_q) || (rc = grants_hold(bi, c, &hold)) || hold)
        return rc;
    const char *roles[2] = {bi->reader_q, bi->loader_q};
    for (int i = 0; i < 2 && rc == AX_OK; i++) {
        if (!roles[i])
            continue;
        char *sql = ax_asprintf("REVOKE ALL ON ALL TABLES IN SCHEMA @S FROM %s;"
                                " ALTER DEFAULT PRIVILEGES IN SCHEMA @S REVOKE ALL ON TABLES FROM %s;"
                                " GRANT USAGE ON SCHEMA @S TO %s",
                                roles[i], roles[i], roles[i]);
        char *script = bi_sql(bi, sql);
        rc = db_script(&bi->db, script);
        free(script);
        free(sql);
    }
    static const char *const shared[] = {"submissions", "forms", "contract", "statuses"};
    static const char *const loader_only[] = {"submissions_load", "runs", "export_state"};
    for (size_t i = 0; i < AX_ARRAY_LEN(shared) && rc == AX_OK; i++)
        rc = bi_grant_select(bi, shared[i], false);
    for (size_t i = 0; i < AX_ARRAY_LEN(loader_only) && rc == AX_OK; i++)
        rc = bi_grant_select(bi, loader_only[i], true);
    PGresult *res;
    if (rc == AX_OK)
        rc = bi_query(bi, &res, DB_ROWS(1),
                      "SELECT f.view_name FROM @S.forms f WHERE pg_catalog.to_regclass(pg_catalog.format('%I.%I',"
                      " $1::text, f.view_name)) IS NOT NULL ORDER BY 1",
                      1, NULL, (const char *const[]){bi->schema});
    if (rc)
        return rc;
    for (int i = 0; rc == AX_OK && i < PQntuples(res); i++) {
        char *q = db_quote_ident(&bi->db, PQgetvalue(res, i, 0));
        rc = bi_grant_select(bi, q, false);
        free(q);
    }
    PQclear(res);
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
        (rc = bi_install(bi, &from)) || (rc = bi_counting_install(bi)))
        goto fail;
    /* staging tables for COPY, private to this session (kanon.h says what each holds) */
    static const char *const temporary[] = {
        "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_stage (submission_id integer, receipt_local timestamp,"
        " done_local timestamp, status text, status_name text, is_final boolean, channel text,"
        " backoffice_submission boolean, criticality_level integer, fields jsonb) ON COMMIT DELETE ROWS",
        "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_cand (submission_id integer PRIMARY KEY, staged boolean,"
        " rt timestamp, dt timestamp, channel text, bo boolean, crit integer, qf jsonb, sens jsonb, old_hash bigint)"
        " ON COMMIT DELETE ROWS",
        "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_dec (submission_id integer PRIMARY KEY, pub jsonb,"
        " pub_hash bigint) ON COMMIT DELETE ROWS",
        "CREATE INDEX IF NOT EXISTS anonymizer_dec_hash ON pg_temp.anonymizer_dec (pub_hash)",
        "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_ids (id integer PRIMARY KEY) ON COMMIT DELETE ROWS",
        "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_groups (pub_hash bigint) ON COMMIT DELETE ROWS",
        BI_SECRET_SQL,
    };
    /* before any temporary table is used: a form's candidates stay in memory */
    rc = db_cmd(&bi->db, "SET temp_buffers = '128MB'");
    if (rc == AX_OK)
        rc = run_all(bi, temporary, AX_ARRAY_LEN(temporary));
    if (rc == AX_OK)
        rc = grant_roles(bi, &app->cfg->bi);
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
    free(bi->reader_q);
    free(bi->loader_q);
    bi->schema_q = bi->reader_q = bi->loader_q = NULL;
}

int bi_begin(struct bi *bi)
{
    int rc = db_cmd(&bi->db, bi->dry_run ? "SAVEPOINT anonymizer_unit" : "BEGIN");
    /* ON COMMIT DELETE ROWS empties them at each commit; a dry run never commits */
    if (rc == AX_OK && bi->dry_run)
        rc = db_cmd(&bi->db, "TRUNCATE pg_temp.anonymizer_stage, pg_temp.anonymizer_cand, pg_temp.anonymizer_dec,"
                             " pg_temp.anonymizer_ids,"
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
