/*
 * export.c: the BI export.
 *
 * What is exported: submissions that are anonymised and hold nothing the
 * run blanks (the run's own "dirty" predicate, negated), not drafts, with
 * only the columns classification keeps.  The tenant query names no other
 * column in its output, so nothing blanked can reach the BI database.
 *
 * Exactly once: the BI primary key (tenant, form_id, submission_id) makes a
 * second copy impossible; an upsert that only writes rows whose content
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
 */
#include "export.h"
#include "audit.h"
#include "ax.h"
#include "classify.h"
#include "log.h"
#include "strbuf.h"
#include "timeutil.h"
#include "version.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The submissions columns sent by the tenant, in order (exported_at is set on the BI side). */
#define SUBMISSION_COLUMNS                                                                                       \
    "tenant, form_id, form_slug, submission_id, receipt_time, last_update_time, anonymised_at, status, "         \
    "status_name, is_final, channel, backoffice_submission, criticality_level, processing_time, fields"

struct bi {
    struct db db;
    const char *schema; /* from the configuration (validated as a plain identifier) */
    char *schema_q;     /* the same, quoted */
};

/* -- the BI side ---------------------------------------------------------------- */

/* A BI statement: it names the staging schema as @S, replaced by the quoted name. */
static int bi_query(struct bi *bi, PGresult **res, struct db_shape shape, const char *fmt_sql, int nparams,
                    const Oid *types, const char *const *values)
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
    int rc = db_query(&bi->db, res, shape, sb.buf, nparams, types, values);
    sb_free(&sb);
    return rc;
}

static int bi_command(struct bi *bi, const char *fmt_sql, int nparams, const Oid *types, const char *const *values)
{
    return bi_query(bi, NULL, DB_ANY, fmt_sql, nparams, types, values);
}

static const char *const contract_v1[] = {
    "CREATE TABLE @S.contract (version integer PRIMARY KEY, installed_at timestamptz NOT NULL DEFAULT now(),"
    " tool_version text NOT NULL)",
    "CREATE TABLE @S.submissions ("
    " tenant text NOT NULL, form_id integer NOT NULL, form_slug text NOT NULL, submission_id integer NOT NULL,"
    " receipt_time timestamptz, last_update_time timestamptz, anonymised_at timestamptz NOT NULL,"
    " status text, status_name text, is_final boolean NOT NULL, channel text, backoffice_submission boolean,"
    " criticality_level integer, processing_time interval, fields jsonb NOT NULL,"
    " exported_at timestamptz NOT NULL DEFAULT now(),"
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

/* Creates the contract's tables (and the schema) when missing; *installed: it did. */
static int bi_install(struct bi *bi, bool *installed)
{
    PGresult *res;
    const char *values[1] = {bi->schema};
    const Oid types[1] = {DB_TEXTOID};
    bool has_contract;
    int rc;

    *installed = false;
    /* from the catalog: CREATE SCHEMA IF NOT EXISTS would need CREATE on the database */
    if ((rc = db_query(&bi->db, &res, DB_ONE_ROW(1),
                       "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", 1, types, values)))
        return rc;
    bool has_schema = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if ((rc = db_relation(&bi->db, bi->schema, "contract", &has_contract, NULL)))
        return rc;
    if (!has_schema && (rc = bi_command(bi, "CREATE SCHEMA @S", 0, NULL, NULL)))
        return rc;
    if (has_contract)
        return AX_OK;
    for (size_t i = 0; i < AX_ARRAY_LEN(contract_v1); i++)
        if ((rc = bi_command(bi, contract_v1[i], 0, NULL, NULL)))
            return rc;
    const char *v[1] = {ANONYMIZER_VERSION};
    if ((rc = bi_command(bi, "INSERT INTO @S.contract (version, tool_version) VALUES (1, $1)", 1, types, v)))
        return rc;
    *installed = true;
    return AX_OK;
}

/* Creates the schema and the contract's tables when missing; refuses another contract version. */
static int bi_setup(struct bi *bi)
{
    PGresult *res;
    bool installed = false;
    int rc;

    if ((rc = db_cmd(&bi->db, "BEGIN")))
        return rc;
    if ((rc = db_cmd(&bi->db, "SELECT pg_catalog.pg_advisory_xact_lock(" LOCK_BI_SETUP ")")) ||
        (rc = bi_install(bi, &installed)))
        goto fail;
    if ((rc = bi_query(bi, &res, DB_ONE_ROW(1), "SELECT max(version) FROM @S.contract", 0, NULL, NULL)))
        goto fail;
    int version = PQgetisnull(res, 0, 0) ? 0 : atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (version != EXPORT_CONTRACT_VERSION) {
        /* a later version means a newer anonymizer migrated the schema: never write an older shape into it */
        db_set_error(&bi->db, "schema %s holds contract version %d; this anonymizer writes version %d", bi->schema,
                     version, EXPORT_CONTRACT_VERSION);
        rc = AX_ERR_DATA;
        goto fail;
    }
    /* staging table for COPY, private to this session */
    rc = bi_command(bi,
                    "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_stage ON COMMIT DELETE ROWS AS"
                    " SELECT " SUBMISSION_COLUMNS " FROM @S.submissions WITH NO DATA",
                    0, NULL, NULL);
    if (rc == AX_OK)
        rc = db_cmd(&bi->db, "COMMIT");
    if (rc)
        goto fail;
    /* only once committed */
    if (installed)
        log_info("bi: contract version %d installed in schema %s", EXPORT_CONTRACT_VERSION, bi->schema);
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
                      "  FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'S')"
                      "  AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE'))"
                      "  FROM pg_catalog.pg_namespace n WHERE n.nspname = $1),"
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

static void bi_close(struct bi *bi)
{
    db_close(&bi->db);
    free(bi->schema_q);
    bi->schema_q = NULL;
}

static int bi_open(const struct app *app, struct bi *bi)
{
    char stmt_ms[32], lock_ms[32];
    const Oid types[2] = {DB_TEXTOID, DB_TEXTOID};

    memset(bi, 0, sizeof *bi);
    bi->schema = app->cfg->bi.schema;
    int rc = db_connect(&bi->db, app->cfg->bi.conninfo, NULL, "bi");
    if (rc)
        return rc;
    bi->schema_q = db_quote_ident(&bi->db, bi->schema);
    snprintf(lock_ms, sizeof lock_ms, "%d", app->cfg->lock_timeout_ms);
    snprintf(stmt_ms, sizeof stmt_ms, "%d", app->cfg->statement_timeout_ms);
    const char *values[2] = {lock_ms, stmt_ms};
    rc = db_query(&bi->db, NULL, DB_ONE_ROW(4),
                  "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),"
                  " pg_catalog.set_config('TimeZone', 'UTC', false),"
                  " pg_catalog.set_config('lock_timeout', $1, false),"
                  " pg_catalog.set_config('statement_timeout', $2, false)",
                  2, types, values);
    if (rc || (rc = bi_check_privileges(bi)))
        return rc;
    return bi_setup(bi);
}

/* -- streaming ---------------------------------------------------------------------- */

/* Ends the destination's COPY (aborting it when abort_msg is not NULL) and reads its final result. */
static int end_copy_in(struct db *dst, const char *dst_sql, const char *abort_msg, long long *copied)
{
    int rc = AX_OK;
    if (PQputCopyEnd(dst->conn, abort_msg) != 1) {
        db_set_conn_error(dst, dst_sql);
        rc = AX_ERR_DB;
    }
    PGresult *r;
    while ((r = PQgetResult(dst->conn))) {
        if (rc == AX_OK && !abort_msg && (rc = db_check_result(dst, r, dst_sql, PGRES_COMMAND_OK)) == AX_OK)
            *copied = atoll(PQcmdTuples(r)); /* "COPY n" */
        PQclear(r);
    }
    return rc;
}

/* Copies the source's COPY OUT data into the destination's COPY IN. */
static int pump_data(struct db *src, struct db *dst, const char *src_sql, const char *dst_sql)
{
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(src->conn, &buf, 0);
        if (n == -1)
            break;
        if (n == -2) {
            db_set_conn_error(src, src_sql);
            return AX_ERR_DB;
        }
        int ok = PQputCopyData(dst->conn, buf, n);
        PQfreemem(buf);
        if (ok != 1) {
            db_set_conn_error(dst, dst_sql);
            /* stop the source and drain what it already sent */
            db_cancel(src);
            while ((n = PQgetCopyData(src->conn, &buf, 0)) > 0)
                PQfreemem(buf);
            return AX_ERR_DB;
        }
    }
    return AX_OK;
}

/*
 * Streams the tenant's COPY output into the BI's COPY input.  Both sides are
 * left out of COPY mode whatever happens; an error on either side is
 * recorded on that side's db (through db_check_result).
 */
static int pump(struct db *src, struct db *dst, const char *src_sql, const char *dst_sql, long long *copied)
{
    PGresult *r = PQexec(dst->conn, dst_sql);
    int rc = db_check_result(dst, r, dst_sql, PGRES_COPY_IN);
    PQclear(r);
    if (rc)
        return rc;
    r = PQexec(src->conn, src_sql);
    rc = db_check_result(src, r, src_sql, PGRES_COPY_OUT);
    PQclear(r);
    if (rc) {
        end_copy_in(dst, dst_sql, "source query failed", copied);
        return rc;
    }
    rc = pump_data(src, dst, src_sql, dst_sql);
    /* the source's final status */
    while ((r = PQgetResult(src->conn))) {
        if (rc == AX_OK)
            rc = db_check_result(src, r, src_sql, PGRES_COMMAND_OK);
        PQclear(r);
    }
    int end_rc = end_copy_in(dst, dst_sql, rc == AX_OK ? NULL : "source failed", copied);
    return rc ? rc : end_rc;
}

/* -- one form ---------------------------------------------------------------------- */

struct tenant_snapshot {
    bool has_changes;  /* anonymizer.changes exists and is readable */
    char seq[32];      /* highest change recorded, visible in the snapshot */
    char now[64];      /* the snapshot's time */
};

/* Where a form's export stands (export_state), locked for the BI transaction. */
struct watermark {
    bool incremental; /* exported before: only what changed since */
    char since[64];   /* anonymised after this (the last snapshot minus a day) */
    char seq[32];     /* change log position already exported */
};

/* What export_form works with. */
struct form_export {
    const struct app *app;
    struct tenant *t;
    struct bi *bi;
    const struct form *f;
    const struct tenant_snapshot *snap;
    char fid[16];
    struct plan_field *fields;
    size_t nfields;
};

static json_object *fields_json(const struct plan_field *fields, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        const struct column *c = fields[i].col;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "key", json_object_new_string(fields[i].key));
        json_object_object_add(o, "column", json_object_new_string(c->name));
        json_object_object_add(o, "label", c->field && c->field->label ? json_object_new_string(c->field->label) : NULL);
        json_object_object_add(o, "type", json_object_new_string(c->field ? c->field->type : c->type));
        json_object_array_add(a, o);
    }
    return a;
}

/* The form's row of export_state, created when missing, locked for this transaction. */
static int lock_watermark(struct form_export *x, struct watermark *w)
{
    PGresult *res;
    const char *v[3] = {x->t->name, x->fid, x->f->slug};
    const Oid ty[3] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID};
    int rc = bi_command(x->bi,
                        "INSERT INTO @S.export_state (tenant, form_id, form_slug, updated_at)"
                        " VALUES ($1, $2, $3, now()) ON CONFLICT (tenant, form_id) DO NOTHING",
                        3, ty, v);
    if (rc == AX_OK)
        rc = bi_query(x->bi, &res, DB_ONE_ROW(2),
                      "SELECT change_seq, anonymised_until - interval '1 day' FROM @S.export_state"
                      " WHERE tenant = $1 AND form_id = $2 FOR UPDATE",
                      2, ty, v);
    if (rc)
        return rc;
    w->incremental = !PQgetisnull(res, 0, 1);
    snprintf(w->since, sizeof w->since, "%s", w->incremental ? PQgetvalue(res, 0, 1) : "-infinity");
    snprintf(w->seq, sizeof w->seq, "%s", w->incremental && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "0");
    PQclear(res);
    return AX_OK;
}

/* A text[] literal of n strings. */
static char *text_array(char *const *items, size_t n)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append_pg_text_array(&sb, items, n);
    return sb_finish(&sb);
}

/* The tenant query's values (plan_export_settings_sql), transaction-local. */
static int set_copy_settings(struct form_export *x, const struct watermark *w)
{
    const struct form *f = x->f;
    char **keys = ax_calloc(x->nfields + 1, sizeof *keys);
    for (size_t i = 0; i < x->nfields; i++)
        keys[i] = x->fields[i].key;
    size_t ns = f->def ? f->def->nstatuses : 0;
    char **ids = ax_calloc(ns + 1, sizeof *ids), **names = ax_calloc(ns + 1, sizeof *names);
    for (size_t i = 0; i < ns; i++) {
        ids[i] = ax_asprintf("wf-%s", f->def->statuses[i].id);
        names[i] = f->def->statuses[i].name;
    }
    char *keys_a = text_array(keys, x->nfields), *ids_a = text_array(ids, ns), *names_a = text_array(names, ns);
    const char *v[PLAN_EXPORT_NSETTINGS] = {
        x->fid, f->sql.endpoints ? f->sql.endpoints : "{}", f->sql.stat_keys, x->t->name, f->slug,
        x->app->cfg->bi.time_precision, keys_a, ids_a, names_a, w->since, w->seq, f->table, f->sql.block_keys};
    Oid ty[PLAN_EXPORT_NSETTINGS];
    for (size_t i = 0; i < PLAN_EXPORT_NSETTINGS; i++)
        ty[i] = DB_TEXTOID;
    int rc = db_query(&x->t->db, NULL, DB_ONE_ROW(PLAN_EXPORT_NSETTINGS), plan_export_settings_sql,
                      PLAN_EXPORT_NSETTINGS, ty, v);
    for (size_t i = 0; i < ns; i++)
        free(ids[i]);
    free(ids);
    free(names);
    free(keys);
    free(keys_a);
    free(ids_a);
    free(names_a);
    return rc;
}

/* Whether BI holds nothing of this form yet. */
static int bi_form_empty(struct form_export *x, bool *empty)
{
    PGresult *res;
    const char *v[2] = {x->t->name, x->fid};
    const Oid ty[2] = {DB_TEXTOID, DB_INT4OID};
    int rc = bi_query(x->bi, &res, DB_ONE_ROW(1),
                      "SELECT NOT EXISTS (SELECT 1 FROM @S.submissions WHERE tenant = $1 AND form_id = $2)", 2, ty, v);
    if (rc)
        return rc;
    *empty = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

/* The staged rows into submissions: new rows inserted, changed rows updated, identical rows left alone. */
static int merge_stage(struct bi *bi, long long *inserted, long long *updated)
{
    PGresult *res;
    int rc = bi_query(bi, &res, DB_ONE_ROW(2),
                      "WITH up AS (INSERT INTO @S.submissions AS b (" SUBMISSION_COLUMNS ", exported_at)"
                      " SELECT " SUBMISSION_COLUMNS ", now() FROM pg_temp.anonymizer_stage"
                      " ON CONFLICT (tenant, form_id, submission_id) DO UPDATE SET"
                      " form_slug = EXCLUDED.form_slug, receipt_time = EXCLUDED.receipt_time,"
                      " last_update_time = EXCLUDED.last_update_time, anonymised_at = EXCLUDED.anonymised_at,"
                      " status = EXCLUDED.status, status_name = EXCLUDED.status_name, is_final = EXCLUDED.is_final,"
                      " channel = EXCLUDED.channel, backoffice_submission = EXCLUDED.backoffice_submission,"
                      " criticality_level = EXCLUDED.criticality_level, processing_time = EXCLUDED.processing_time,"
                      " fields = EXCLUDED.fields, exported_at = EXCLUDED.exported_at"
                      " WHERE (b.form_slug, b.receipt_time, b.last_update_time, b.anonymised_at, b.status, b.status_name,"
                      "  b.is_final, b.channel, b.backoffice_submission, b.criticality_level, b.processing_time, b.fields)"
                      " IS DISTINCT FROM (EXCLUDED.form_slug, EXCLUDED.receipt_time, EXCLUDED.last_update_time,"
                      "  EXCLUDED.anonymised_at, EXCLUDED.status, EXCLUDED.status_name, EXCLUDED.is_final, EXCLUDED.channel,"
                      "  EXCLUDED.backoffice_submission, EXCLUDED.criticality_level, EXCLUDED.processing_time,"
                      "  EXCLUDED.fields)"
                      " RETURNING b.xmax = 0 AS inserted)"
                      " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up",
                      0, NULL, NULL);
    if (rc)
        return rc;
    *inserted = atoll(PQgetvalue(res, 0, 0));
    *updated = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);
    return AX_OK;
}

/*
 * The rows.  Nothing of this form in BI yet (a first export, or one after the
 * rows were removed): nothing to merge with, so they go straight into
 * submissions, as fast as a bare COPY (the watermark row is locked, so nobody
 * else is filling it).  Otherwise through the staging table and a merge.
 */
static int copy_rows(struct form_export *x, const struct watermark *w, long long *read, long long *inserted,
                     long long *updated)
{
    char *changes = x->snap->has_changes ? audit_changed_ids_sql(x->f->q_table) : NULL;
    char *copy_sql = plan_export_copy(x->f, x->fields, x->nfields, w->incremental, changes);
    bool empty = false;
    int rc = w->incremental ? AX_OK : bi_form_empty(x, &empty);
    if (rc == AX_OK && empty) {
        char *dst = ax_asprintf("COPY %s.submissions (" SUBMISSION_COLUMNS ") FROM STDIN", x->bi->schema_q);
        rc = pump(&x->t->db, &x->bi->db, copy_sql, dst, read);
        free(dst);
        *inserted = *read;
        *updated = 0;
    } else if (rc == AX_OK) {
        rc = pump(&x->t->db, &x->bi->db, copy_sql,
                  "COPY pg_temp.anonymizer_stage (" SUBMISSION_COLUMNS ") FROM STDIN", read);
        if (rc == AX_OK)
            rc = merge_stage(x->bi, inserted, updated);
    }
    free(changes);
    free(copy_sql);
    return rc;
}

/* The forms row, the watermark and the run's counter, in the rows' transaction. */
static int record_form(struct form_export *x, long long written)
{
    json_object *j = fields_json(x->fields, x->nfields);
    char n[32];
    snprintf(n, sizeof n, "%lld", written);
    const char *v[9] = {x->t->name, x->fid, x->f->slug, x->f->name, json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN),
                        x->snap->seq, x->snap->now, n, x->app->run_id};
    const Oid ty[9] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID,
                       DB_INT8OID, DB_TIMESTAMPTZOID, DB_INT8OID, DB_TEXTOID};
    int rc = bi_command(x->bi,
                        "INSERT INTO @S.forms AS f (tenant, form_id, form_slug, form_name, kept_fields, updated_at)"
                        " VALUES ($1, $2, $3, $4, $5::jsonb, now()) ON CONFLICT (tenant, form_id) DO UPDATE SET"
                        " form_slug = EXCLUDED.form_slug, form_name = EXCLUDED.form_name,"
                        " kept_fields = EXCLUDED.kept_fields, updated_at = EXCLUDED.updated_at"
                        " WHERE (f.form_slug, f.form_name, f.kept_fields)"
                        " IS DISTINCT FROM (EXCLUDED.form_slug, EXCLUDED.form_name, EXCLUDED.kept_fields)",
                        5, ty, v);
    if (rc == AX_OK)
        rc = bi_command(x->bi,
                        "UPDATE @S.export_state SET form_slug = $3, change_seq = $6, anonymised_until = $7,"
                        " rows_exported = rows_exported + $8, updated_at = now()"
                        " WHERE tenant = $1 AND form_id = $2",
                        8, ty, v);
    if (rc == AX_OK) {
        const char *rv[3] = {x->app->run_id, x->t->name, n};
        const Oid rty[3] = {DB_TEXTOID, DB_TEXTOID, DB_INT8OID};
        rc = bi_command(x->bi, "UPDATE @S.runs SET rows_exported = rows_exported + $3 WHERE run_id = $1::uuid AND tenant = $2",
                        3, rty, rv);
    }
    json_object_put(j);
    return rc;
}

/*
 * One form: one BI transaction holding the rows, the forms row, the
 * watermark and the run's counter.  The tenant transaction stays open (the
 * snapshot is shared by all forms).
 */
static int export_form(struct form_export *x, struct export_totals *tot)
{
    struct watermark w;
    long long read = 0, inserted = 0, updated = 0;
    double started = tm_now();

    snprintf(x->fid, sizeof x->fid, "%d", x->f->formdef_id);
    x->nfields = plan_export_fields(x->f, &x->fields);
    int rc = db_cmd(&x->bi->db, "BEGIN");
    if (rc == AX_OK)
        rc = lock_watermark(x, &w);
    if (rc == AX_OK)
        rc = set_copy_settings(x, &w);
    if (rc == AX_OK)
        rc = copy_rows(x, &w, &read, &inserted, &updated);
    if (rc == AX_OK)
        rc = record_form(x, inserted + updated);
    if (rc == AX_OK)
        rc = db_cmd(&x->bi->db, "COMMIT");
    if (rc == AX_OK) {
        tot->inserted += inserted;
        tot->updated += updated;
        log_info("%s: %s: exported %lld new, %lld updated (%lld read, %s) in %.2f s", x->t->name, x->f->label,
                 inserted, updated, read, w.incremental ? "incremental" : "first export", tm_now() - started);
    } else {
        db_rollback_quietly(&x->bi->db);
    }
    plan_fields_free(x->fields, x->nfields);
    x->fields = NULL;
    return rc;
}

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
                       const char *error)
{
    const char *v[4] = {app->run_id, tenant, outcome, error};
    const Oid ty[4] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    int rc;
    if (strcmp(outcome, "running") == 0) {
        /* rows of this tenant still running are from an export that died: we hold the tenant lock */
        rc = bi_command(bi, "UPDATE @S.runs SET outcome = 'crashed' WHERE tenant = $2 AND outcome = 'running'"
                            " AND run_id <> $1::uuid", 2, ty, v);
        if (rc == AX_OK)
            rc = bi_command(bi, "INSERT INTO @S.runs (run_id, tenant, started_at, outcome) VALUES ($1::uuid, $2, now(), $3)",
                            3, ty, v);
    } else {
        db_rollback_quietly(&bi->db);
        rc = bi_command(bi,
                        "UPDATE @S.runs SET finished_at = now(), outcome = $3, error = $4"
                        " WHERE run_id = $1::uuid AND tenant = $2",
                        4, ty, v);
    }
    if (rc)
        log_warning("%s: bi: cannot record the export in runs: %s", tenant, bi->db.error);
}

/* Every form, in the tenant's one snapshot; returns the outcome, *error the last failure. */
static enum tenant_outcome export_forms(const struct app *app, struct tenant *t, struct bi *bi,
                                        const struct tenant_snapshot *snap, struct progress *progress,
                                        struct export_totals *tot, char **error)
{
    enum tenant_outcome outcome = TENANT_OK;
    for (size_t i = 0; i < t->nforms; i++) {
        const struct form *f = &t->forms[i];
        if (app_interrupted || app_out_of_time(app))
            return TENANT_INTERRUPTED;
        if (f->kind != FORM_KIND_FORM)
            continue; /* test copies are test data; cards are registers, not submissions */
        if (f->sql.unsupported) {
            outcome = TENANT_FAILED;
            continue; /* already reported by discovery/run */
        }
        db_clear_error(&bi->db);
        db_clear_error(&t->db);
        progress_form_start(progress, f->slug, -1); /* forms only */
        struct form_export x = {.app = app, .t = t, .bi = bi, .f = f, .snap = snap};
        int rc = export_form(&x, tot);
        progress_form_end(progress);
        if (rc && app_interrupted)
            return TENANT_INTERRUPTED; /* its BI transaction rolled back */
        if (rc) {
            /* whichever side failed has the message */
            const char *msg = bi->db.error ? bi->db.error : t->db.error;
            log_error("%s: %s: export failed: %s", t->name, f->label, msg ? msg : ax_status_str(rc));
            free(*error);
            *error = ax_strdup(msg ? msg : ax_status_str(rc));
            outcome = TENANT_FAILED;
            /* the tenant transaction is unusable after a failed COPY: stop here */
            if (PQtransactionStatus(t->db.conn) != PQTRANS_INTRANS)
                break;
        }
    }
    return outcome;
}

enum tenant_outcome export_tenant(const struct app *app, struct tenant *t, struct progress *progress,
                                  struct export_totals *tot, long long *watermark_seq)
{
    struct bi bi;
    struct tenant_snapshot snap;
    enum tenant_outcome outcome;
    char *error = NULL;

    *watermark_seq = -1;
    int rc = bi_open(app, &bi);
    if (rc) {
        log_error("%s: bi: %s", t->name, bi.db.error ? bi.db.error : ax_status_str(rc));
        bi_close(&bi);
        return rc == AX_ERR_CONNECT ? TENANT_UNREACHABLE : TENANT_FAILED;
    }
    bi_run_row(&bi, app, t->name, "running", NULL);

    /* one snapshot of the tenant for every form; the server refuses any write */
    if ((rc = db_cmd(&t->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) || (rc = tenant_snapshot(t, &snap))) {
        error = ax_strdup(t->db.error);
        outcome = TENANT_FAILED;
    } else {
        outcome = export_forms(app, t, &bi, &snap, progress, tot, &error);
        if (outcome == TENANT_OK)
            *watermark_seq = atoll(snap.seq);
    }
    db_rollback_quietly(&t->db); /* read-only: nothing to commit */
    bi_run_row(&bi, app, t->name, tenant_outcome_str(outcome), error);
    free(error);
    bi_close(&bi);
    return outcome;
}

/* The export command's work for one tenant (run in a worker, see jobs.h). */
static enum tenant_outcome export_job(const struct app *app, struct app_tenant *at, struct job_ctx *ctx)
{
    struct tenant t;
    struct export_totals etot = {0};
    long long seq;

    enum tenant_outcome outcome = tenant_begin(&t, app, at, TB_READ_ONLY | TB_LOCK | TB_PRIV_READ, NULL);
    if (outcome == TENANT_OK)
        outcome = export_tenant(app, &t, ctx->progress, &etot, &seq);
    ctx->tot.exported += etot.inserted + etot.updated;
    tenant_close(&t);
    return outcome;
}

int cmd_export(const struct app *app)
{
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);
    struct run_totals tot = {0};
    double started = tm_now();

    jobs_run(app, app->jobs, export_job, outcomes, &tot);
    size_t ok = 0;
    for (size_t i = 0; i < app->ntenants; i++)
        ok += outcomes[i] == TENANT_OK;
    log_info("export %s: %zu of %zu tenants exported, %lld rows written, %.2f s%s", app->run_id, ok, app->ntenants,
             tot.exported, tm_now() - started,
             app_budget_exhausted ? " (time budget exhausted)" : app_interrupted ? " (interrupted)" : "");
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
