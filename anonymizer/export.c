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
#include "jobs.h"
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

/* Transaction advisory lock serialising contract setup on the BI side. */
#define BI_SETUP_LOCK "1634627438, 2"

/* The submissions columns sent by the tenant, in order (exported_at is set on the BI side). */
#define SUBMISSION_COLUMNS                                                                                       \
    "tenant, form_id, form_slug, submission_id, receipt_time, last_update_time, anonymised_at, status, "         \
    "status_name, is_final, channel, backoffice_submission, criticality_level, processing_time, fields"

/* Parameters of the tenant query (see tenant_build_preds): columns of the
 * one-row CTE "p" that reads them once with current_setting(), instead of
 * once per row.  The cutoff ($1) is not used by the export. */
static const char *const copy_params[FORM_NPARAMS + 1] = {
    "", "NULL::timestamptz", "p.p2", "p.p3", "p.p4", "NULL", "NULL", "NULL",
};

struct bi {
    struct db db;
    const char *schema; /* from the configuration (validated as a plain identifier) */
    char *schema_q;     /* the same, quoted */
};

/* -- the BI side ---------------------------------------------------------------- */

static int bi_exec(struct bi *bi, PGresult **res, const char *fmt_sql, int nparams, const Oid *types,
                   const char *const *values)
{
    /* BI statements name the staging schema as @S, replaced by the quoted name */
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
    int rc = db_exec(&bi->db, res, sb.buf, nparams, types, values);
    sb_free(&sb);
    return rc;
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

/* Creates the schema and the contract's tables when missing; refuses a newer contract. */
static int bi_setup(struct bi *bi)
{
    PGresult *res;
    const char *values[1] = {bi->schema};
    const Oid types[1] = {DB_TEXTOID};
    int rc;

    if ((rc = db_cmd(&bi->db, "BEGIN")))
        return rc;
    if ((rc = db_cmd(&bi->db, "SELECT pg_catalog.pg_advisory_xact_lock(" BI_SETUP_LOCK ")")))
        goto fail;
    /* from the catalog: CREATE SCHEMA IF NOT EXISTS would need CREATE on the database */
    rc = db_exec(&bi->db, &res, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", 1,
                 types, values);
    if (rc)
        goto fail;
    bool has_schema = strcmp(PQgetvalue(res, 0, 0), "t") == 0, has_contract;
    PQclear(res);
    if ((rc = db_relation(&bi->db, bi->schema, "contract", &has_contract, NULL)))
        goto fail;
    if (!has_schema && (rc = bi_exec(bi, NULL, "CREATE SCHEMA @S", 0, NULL, NULL)))
        goto fail;
    if (!has_contract) {
        for (size_t i = 0; i < AX_ARRAY_LEN(contract_v1); i++)
            if ((rc = bi_exec(bi, NULL, contract_v1[i], 0, NULL, NULL)))
                goto fail;
        const char *v[1] = {ANONYMIZER_VERSION};
        if ((rc = bi_exec(bi, NULL, "INSERT INTO @S.contract (version, tool_version) VALUES (1, $1)", 1, types, v)))
            goto fail;
        log_info("bi: contract version %d installed in schema %s", EXPORT_CONTRACT_VERSION, bi->schema);
    }
    if ((rc = bi_exec(bi, &res, "SELECT max(version) FROM @S.contract", 0, NULL, NULL)))
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
    rc = bi_exec(bi, NULL,
                 "CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_stage ON COMMIT DELETE ROWS AS"
                 " SELECT " SUBMISSION_COLUMNS " FROM @S.submissions WITH NO DATA",
                 0, NULL, NULL);
    if (rc)
        goto fail;
    return db_cmd(&bi->db, "COMMIT");
fail:
    db_rollback_quietly(&bi->db);
    return rc;
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
    rc = db_exec(&bi->db, NULL,
                 "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),"
                 " pg_catalog.set_config('TimeZone', 'UTC', false),"
                 " pg_catalog.set_config('lock_timeout', $1, false),"
                 " pg_catalog.set_config('statement_timeout', $2, false)",
                 2, types, values);
    if (rc)
        return rc;
    return bi_setup(bi);
}

/* -- one form ---------------------------------------------------------------------- */

struct kept_field {
    char *key;    /* JSON key: varname, or the column's base name; "_display" for the display column */
    const struct column *col;
};

static bool is_display(const char *column)
{
    size_t n = strlen(column);
    return n > 8 && strcmp(column + n - 8, "_display") == 0;
}

/* The kept columns that go into "fields": not the pickled ones (bytea: file references, structured values). */
static size_t kept_fields(const struct form *f, struct kept_field **out)
{
    size_t n = 0;
    *out = NULL;
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls != COL_KEEP || strcmp(c->type, "bytea") == 0)
            continue;
        char *base;
        if (c->field && c->field->varname)
            base = ax_strdup(c->field->varname);
        else if (c->field)
            base = ax_strdup(c->field->column);
        else
            base = is_display(c->name) ? ax_strndup(c->name, strlen(c->name) - 8) : ax_strdup(c->name);
        *out = ax_reallocarray(*out, n + 1, sizeof **out);
        (*out)[n].key = is_display(c->name) ? ax_asprintf("%s_display", base) : ax_strdup(base);
        (*out)[n].col = c;
        free(base);
        n++;
    }
    return n;
}

static void kept_fields_free(struct kept_field *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(k[i].key);
    free(k);
}

/* The tenant's COPY statement for one form (values come from current_setting()). */
static char *tenant_copy_sql(struct tenant *t, const struct form *f, const struct kept_field *kept, size_t nkept,
                             bool incremental, bool has_changes)
{
    struct form_preds p;
    struct strbuf sb;

    tenant_build_preds(t, f, copy_params, true, &p);
    sb_init(&sb);
    sb_append(&sb, "COPY (WITH p AS MATERIALIZED (SELECT"
                   " pg_catalog.current_setting('anonymizer.p2')::integer AS p2,"
                   " pg_catalog.current_setting('anonymizer.p3')::text[] AS p3,"
                   " pg_catalog.current_setting('anonymizer.p4')::text[] AS p4,"
                   " pg_catalog.current_setting('anonymizer.tenant') AS tenant,"
                   " pg_catalog.current_setting('anonymizer.slug') AS slug,"
                   " pg_catalog.current_setting('anonymizer.precision') AS prec,"
                   " pg_catalog.current_setting('anonymizer.keys')::text[] AS keys,"
                   " pg_catalog.current_setting('anonymizer.status_ids')::text[] AS status_ids,"
                   " pg_catalog.current_setting('anonymizer.status_names')::text[] AS status_names)"
                   " SELECT p.tenant, p.p2, p.slug, m.id,"
                   " pg_catalog.date_trunc(p.prec, m.receipt_time), pg_catalog.date_trunc(p.prec, m.last_update_time),"
                   " pg_catalog.date_trunc(p.prec, m.anonymised),"
                   " CASE WHEN m.status LIKE 'wf-%' THEN pg_catalog.substr(m.status, 4) ELSE m.status END,"
                   " p.status_names[pg_catalog.array_position(p.status_ids, m.status::text)],");
    sb_appendf(&sb, " COALESCE(%s, false),", p.final);
    sb_append(&sb, " m.submission_channel, m.backoffice_submission, m.criticality_level,"
                   " m.last_update_time - m.receipt_time, ");
    /* jsonb_build_object takes at most 100 arguments: chunks of 40 pairs */
    if (nkept == 0)
        sb_append(&sb, "'{}'::jsonb");
    for (size_t i = 0; i < nkept; i++) {
        if (i % 40 == 0)
            sb_append(&sb, i ? ") || pg_catalog.jsonb_build_object(" : "pg_catalog.jsonb_build_object(");
        else
            sb_append(&sb, ", ");
        char *q = db_quote_ident(&t->db, kept[i].col->name);
        sb_appendf(&sb, "p.keys[%zu], m.%s", i + 1, q);
        free(q);
    }
    if (nkept)
        sb_append(&sb, ")");
    sb_appendf(&sb, " FROM public.%s m CROSS JOIN p WHERE m.anonymised IS NOT NULL"
                    " AND m.status IS DISTINCT FROM 'draft' AND NOT (%s)",
               f->q_table, p.dirty);
    if (incremental) {
        /* not correlated: the settings are read once, and can drive the index scans */
        sb_appendf(&sb, " AND m.id IN (SELECT a.id FROM public.%s a"
                        " WHERE a.anonymised > pg_catalog.current_setting('anonymizer.since')::timestamptz",
                   f->q_table);
        if (has_changes)
            sb_appendf(&sb, " UNION SELECT b.id FROM anonymizer.changes c JOIN public.%s b"
                            " ON b.id BETWEEN c.lo AND c.hi"
                            " WHERE c.table_name = pg_catalog.current_setting('anonymizer.table')"
                            " AND c.seq > pg_catalog.current_setting('anonymizer.seq')::bigint",
                       f->q_table);
        sb_append(&sb, ")");
    }
    sb_append(&sb, ") TO STDOUT");
    tenant_free_preds(&p);
    return sb_finish(&sb);
}

/*
 * Streams the tenant's COPY output into the BI's COPY input.  Both sides are
 * left out of COPY mode whatever happens; an error on either side is
 * recorded on that side's db.
 */
static int pump(struct db *src, struct db *dst, const char *src_sql, const char *dst_sql, long long *copied)
{
    PGresult *r;
    int rc = AX_OK;

    r = PQexec(dst->conn, dst_sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        db_set_error(dst, "%s", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                                                                             : PQerrorMessage(dst->conn));
        PQclear(r);
        return AX_ERR_DB;
    }
    PQclear(r);
    r = PQexec(src->conn, src_sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        db_set_error(src, "%s", msg ? msg : PQerrorMessage(src->conn));
        snprintf(src->sqlstate, sizeof src->sqlstate, "%s", state ? state : "");
        log_debug("%s: statement failed: %.300s", src->label, src_sql);
        PQclear(r);
        PQputCopyEnd(dst->conn, "source query failed");
        while ((r = PQgetResult(dst->conn)))
            PQclear(r);
        return AX_ERR_DB;
    }
    PQclear(r);

    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(src->conn, &buf, 0);
        if (n > 0) {
            int ok = PQputCopyData(dst->conn, buf, n);
            PQfreemem(buf);
            if (ok != 1) {
                db_set_error(dst, "%s", PQerrorMessage(dst->conn));
                rc = AX_ERR_DB;
                /* stop the source and drain what it already sent */
                db_cancel(src);
                while ((n = PQgetCopyData(src->conn, &buf, 0)) > 0)
                    PQfreemem(buf);
                break;
            }
            continue;
        }
        if (n == -2) {
            db_set_error(src, "%s", PQerrorMessage(src->conn));
            rc = AX_ERR_DB;
        }
        break;
    }
    /* the source's final status */
    while ((r = PQgetResult(src->conn))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == AX_OK) {
            const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            db_set_error(src, "%s", msg ? msg : PQerrorMessage(src->conn));
            rc = AX_ERR_DB;
        }
        PQclear(r);
    }
    /* end (or abort) the destination's COPY */
    if (PQputCopyEnd(dst->conn, rc == AX_OK ? NULL : "source failed") != 1 && rc == AX_OK) {
        db_set_error(dst, "%s", PQerrorMessage(dst->conn));
        rc = AX_ERR_DB;
    }
    while ((r = PQgetResult(dst->conn))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == AX_OK) {
            const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            db_set_error(dst, "%s", msg ? msg : PQerrorMessage(dst->conn));
            rc = AX_ERR_DB;
        } else if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            *copied = atoll(PQcmdTuples(r)); /* "COPY n" */
        }
        PQclear(r);
    }
    return rc;
}

struct tenant_snapshot {
    bool has_changes;  /* anonymizer.changes exists and is readable */
    char seq[32];      /* highest change recorded, visible in the snapshot */
    char now[64];      /* the snapshot's time */
};

static json_object *kept_fields_json(const struct kept_field *kept, size_t nkept)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < nkept; i++) {
        const struct column *c = kept[i].col;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "key", json_object_new_string(kept[i].key));
        json_object_object_add(o, "column", json_object_new_string(c->name));
        json_object_object_add(o, "label", c->field && c->field->label ? json_object_new_string(c->field->label) : NULL);
        json_object_object_add(o, "type", json_object_new_string(c->field ? c->field->type : c->type));
        json_object_array_add(a, o);
    }
    return a;
}

/*
 * One form: one BI transaction holding the rows, the forms row, the
 * watermark and the run's counter.  The tenant transaction stays open (the
 * snapshot is shared by all forms).
 */
static int export_form(const struct app *app, struct tenant *t, struct bi *bi, const struct form *f,
                       const struct tenant_snapshot *snap, struct export_totals *tot)
{
    struct kept_field *kept;
    size_t nkept = kept_fields(f, &kept);
    PGresult *res;
    char fid[16];
    int rc;
    char *copy_sql = NULL, *keys = NULL, *status_ids = NULL, *status_names = NULL, *kept_json = NULL;
    double started = tm_now();

    snprintf(fid, sizeof fid, "%d", f->formdef_id);
    if ((rc = db_cmd(&bi->db, "BEGIN")))
        goto out;

    /* the watermark, locked for this transaction */
    {
        const char *v[3] = {t->name, fid, f->slug};
        const Oid ty[3] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID};
        rc = bi_exec(bi, NULL,
                     "INSERT INTO @S.export_state (tenant, form_id, form_slug, updated_at)"
                     " VALUES ($1, $2, $3, now()) ON CONFLICT (tenant, form_id) DO NOTHING",
                     3, ty, v);
        if (rc == AX_OK)
            rc = bi_exec(bi, &res,
                         "SELECT change_seq, anonymised_until - interval '1 day' FROM @S.export_state"
                         " WHERE tenant = $1 AND form_id = $2 FOR UPDATE",
                         2, ty, v);
        if (rc)
            goto out;
    }
    bool incremental = !PQgetisnull(res, 0, 1);
    char since[64] = "", seq[32] = "0";
    if (incremental) {
        snprintf(since, sizeof since, "%s", PQgetvalue(res, 0, 1));
        snprintf(seq, sizeof seq, "%s", PQgetisnull(res, 0, 0) ? "0" : PQgetvalue(res, 0, 0));
    }
    PQclear(res);

    /* the tenant query's values */
    {
        struct strbuf sb;
        sb_init(&sb);
        char **items = ax_calloc(nkept + 1, sizeof *items);
        for (size_t i = 0; i < nkept; i++)
            items[i] = kept[i].key;
        sb_append_pg_text_array(&sb, items, nkept);
        keys = sb_detach(&sb);
        size_t ns = f->def ? f->def->nstatuses : 0;
        char **ids = ax_calloc(ns + 1, sizeof *ids), **names = ax_calloc(ns + 1, sizeof *names);
        for (size_t i = 0; i < ns; i++) {
            ids[i] = ax_asprintf("wf-%s", f->def->statuses[i].id);
            names[i] = f->def->statuses[i].name;
        }
        sb_append_pg_text_array(&sb, ids, ns);
        status_ids = sb_detach(&sb);
        sb_append_pg_text_array(&sb, names, ns);
        status_names = sb_finish(&sb);
        for (size_t i = 0; i < ns; i++)
            free(ids[i]);
        free(ids);
        free(names);
        free(items);
    }
    {
        const char *v[12] = {fid, f->endpoints ? f->endpoints : "{}", f->stat_keys, t->name, f->slug,
                             app->cfg->bi.time_precision, keys, status_ids, status_names,
                             incremental ? since : "-infinity", seq, f->table};
        const Oid ty[12] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID,
                            DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
        rc = db_exec(&t->db, NULL,
                     "SELECT pg_catalog.set_config('anonymizer.p2', $1, true),"
                     " pg_catalog.set_config('anonymizer.p3', $2, true),"
                     " pg_catalog.set_config('anonymizer.p4', $3, true),"
                     " pg_catalog.set_config('anonymizer.tenant', $4, true),"
                     " pg_catalog.set_config('anonymizer.slug', $5, true),"
                     " pg_catalog.set_config('anonymizer.precision', $6, true),"
                     " pg_catalog.set_config('anonymizer.keys', $7, true),"
                     " pg_catalog.set_config('anonymizer.status_ids', $8, true),"
                     " pg_catalog.set_config('anonymizer.status_names', $9, true),"
                     " pg_catalog.set_config('anonymizer.since', $10, true),"
                     " pg_catalog.set_config('anonymizer.seq', $11, true),"
                     " pg_catalog.set_config('anonymizer.table', $12, true)",
                     12, ty, v);
        if (rc)
            goto out;
    }

    copy_sql = tenant_copy_sql(t, f, kept, nkept, incremental, snap->has_changes);

    /* Nothing of this form in the BI database yet (a first export, or one
     * after the rows were removed): nothing to merge with, so the rows go
     * straight into submissions, which is as fast as a bare COPY.  The
     * watermark row is locked above, so nobody else is filling it. */
    bool empty = false;
    if (!incremental) {
        const char *v[2] = {t->name, fid};
        const Oid ty[2] = {DB_TEXTOID, DB_INT4OID};
        rc = bi_exec(bi, &res, "SELECT NOT EXISTS (SELECT 1 FROM @S.submissions WHERE tenant = $1 AND form_id = $2)", 2,
                     ty, v);
        if (rc)
            goto out;
        empty = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
    }
    long long inserted, updated, read = 0;
    if (empty) {
        struct strbuf dst;
        sb_init(&dst);
        sb_appendf(&dst, "COPY %s.submissions (" SUBMISSION_COLUMNS ") FROM STDIN", bi->schema_q);
        rc = pump(&t->db, &bi->db, copy_sql, dst.buf, &read);
        sb_free(&dst);
        if (rc)
            goto out;
        inserted = read;
        updated = 0;
        goto merged;
    }
    rc = pump(&t->db, &bi->db, copy_sql, "COPY pg_temp.anonymizer_stage (" SUBMISSION_COLUMNS ") FROM STDIN", &read);
    if (rc)
        goto out;

    /* merge: new rows inserted, changed rows updated, identical rows left alone */
    rc = bi_exec(bi, &res,
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
        goto out;
    inserted = atoll(PQgetvalue(res, 0, 0));
    updated = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);
merged:

    {
        json_object *j = kept_fields_json(kept, nkept);
        kept_json = ax_strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        json_object_put(j);
        char n[32];
        snprintf(n, sizeof n, "%lld", inserted + updated);
        const char *v[9] = {t->name, fid, f->slug, f->name, kept_json, snap->seq, snap->now, n, app->run_id};
        const Oid ty[9] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID,
                           DB_INT8OID, DB_TIMESTAMPTZOID, DB_INT8OID, DB_TEXTOID};
        rc = bi_exec(bi, NULL,
                     "INSERT INTO @S.forms AS f (tenant, form_id, form_slug, form_name, kept_fields, updated_at)"
                     " VALUES ($1, $2, $3, $4, $5::jsonb, now()) ON CONFLICT (tenant, form_id) DO UPDATE SET"
                     " form_slug = EXCLUDED.form_slug, form_name = EXCLUDED.form_name,"
                     " kept_fields = EXCLUDED.kept_fields, updated_at = EXCLUDED.updated_at"
                     " WHERE (f.form_slug, f.form_name, f.kept_fields)"
                     " IS DISTINCT FROM (EXCLUDED.form_slug, EXCLUDED.form_name, EXCLUDED.kept_fields)",
                     5, ty, v);
        if (rc == AX_OK)
            rc = bi_exec(bi, NULL,
                         "UPDATE @S.export_state SET form_slug = $3, change_seq = $6, anonymised_until = $7,"
                         " rows_exported = rows_exported + $8, updated_at = now()"
                         " WHERE tenant = $1 AND form_id = $2",
                         8, ty, v);
        if (rc == AX_OK) {
            const char *rv[3] = {app->run_id, t->name, n};
            const Oid rty[3] = {DB_TEXTOID, DB_TEXTOID, DB_INT8OID};
            rc = bi_exec(bi, NULL,
                         "UPDATE @S.runs SET rows_exported = rows_exported + $3 WHERE run_id = $1::uuid AND tenant = $2",
                         3, rty, rv);
        }
        if (rc)
            goto out;
    }
    if ((rc = db_cmd(&bi->db, "COMMIT")))
        goto out;
    tot->inserted += inserted;
    tot->updated += updated;
    log_info("%s: form %s: exported %lld new, %lld updated (%lld read, %s) in %.2f s", t->name, f->slug, inserted,
             updated, read, incremental ? "incremental" : "first export", tm_now() - started);
out:
    if (rc)
        db_rollback_quietly(&bi->db);
    kept_fields_free(kept, nkept);
    free(copy_sql);
    free(keys);
    free(status_ids);
    free(status_names);
    free(kept_json);
    return rc;
}

/* -- one tenant ---------------------------------------------------------------------- */

static int tenant_snapshot(struct tenant *t, struct tenant_snapshot *snap)
{
    PGresult *res;
    bool exists, readable;
    int rc = db_exec(&t->db, &res, "SELECT pg_catalog.now()::text", 0, NULL, NULL);
    if (rc)
        return rc;
    snprintf(snap->now, sizeof snap->now, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if ((rc = db_relation(&t->db, "anonymizer", "changes", &exists, &readable)))
        return rc;
    snprintf(snap->seq, sizeof snap->seq, "0");
    snap->has_changes = false;
    if (!exists)
        return AX_OK;
    if (!readable) {
        /* without it, submissions the run completed would be missed: no guess */
        db_set_error(&t->db, "no SELECT privilege on anonymizer.changes, which the export needs");
        return AX_ERR_DB;
    }
    snap->has_changes = true;
    if ((rc = db_exec(&t->db, &res, "SELECT COALESCE(max(seq), 0) FROM anonymizer.changes", 0, NULL, NULL)))
        return rc;
    snprintf(snap->seq, sizeof snap->seq, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return AX_OK;
}

static void bi_run_row(struct bi *bi, const struct app *app, const char *tenant, const char *outcome,
                       const char *error)
{
    const char *v[4] = {app->run_id, tenant, outcome, error};
    const Oid ty[4] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    int rc;
    if (strcmp(outcome, "running") == 0) {
        /* rows of this tenant still running are from an export that died: we hold the tenant lock */
        rc = bi_exec(bi, NULL, "UPDATE @S.runs SET outcome = 'crashed' WHERE tenant = $2 AND outcome = 'running'"
                               " AND run_id <> $1::uuid", 2, ty, v);
        if (rc == AX_OK)
            rc = bi_exec(bi, NULL,
                         "INSERT INTO @S.runs (run_id, tenant, started_at, outcome) VALUES ($1::uuid, $2, now(), $3)",
                         3, ty, v);
    } else {
        db_rollback_quietly(&bi->db);
        rc = bi_exec(bi, NULL,
                     "UPDATE @S.runs SET finished_at = now(), outcome = $3, error = $4"
                     " WHERE run_id = $1::uuid AND tenant = $2",
                     4, ty, v);
    }
    if (rc)
        log_warning("%s: bi: cannot record the export in runs: %s", tenant, bi->db.error);
}

enum tenant_outcome export_tenant(const struct app *app, struct tenant *t, struct export_totals *tot,
                                  long long *watermark_seq)
{
    struct bi bi;
    struct tenant_snapshot snap;
    enum tenant_outcome outcome = TENANT_OK;
    char *error = NULL;
    int rc;

    *watermark_seq = -1;
    rc = bi_open(app, &bi);
    if (rc) {
        log_error("%s: bi: %s", t->name, bi.db.error ? bi.db.error : ax_status_str(rc));
        bi_close(&bi);
        return rc == AX_ERR_CONNECT ? TENANT_UNREACHABLE : TENANT_FAILED;
    }
    bi_run_row(&bi, app, t->name, "running", NULL);

    /* one snapshot of the tenant for every form; the server refuses any write */
    if ((rc = db_cmd(&t->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) || (rc = tenant_snapshot(t, &snap))) {
        error = ax_asprintf("%s", t->db.error);
        outcome = TENANT_FAILED;
        goto done;
    }
    for (size_t i = 0; i < t->nforms; i++) {
        const struct form *f = &t->forms[i];
        if (app_interrupted || app_out_of_time(app)) {
            outcome = TENANT_INTERRUPTED;
            break;
        }
        if (f->unsupported) {
            outcome = TENANT_FAILED;
            continue; /* already reported by discovery/run */
        }
        db_clear_error(&bi.db);
        db_clear_error(&t->db);
        progress_form_start(f->slug, -1);
        rc = export_form(app, t, &bi, f, &snap, tot);
        progress_form_end();
        if (rc && app_interrupted) {
            outcome = TENANT_INTERRUPTED; /* its BI transaction rolled back */
            break;
        }
        if (rc) {
            /* whichever side failed has the message */
            const char *msg = bi.db.error ? bi.db.error : t->db.error;
            log_error("%s: form %s: export failed: %s", t->name, f->slug, msg ? msg : ax_status_str(rc));
            free(error);
            error = ax_strdup(msg ? msg : ax_status_str(rc));
            outcome = TENANT_FAILED;
            /* the tenant transaction is unusable after a failed COPY: stop here */
            if (PQtransactionStatus(t->db.conn) != PQTRANS_INTRANS)
                break;
        }
    }
    db_rollback_quietly(&t->db); /* read-only: nothing to commit */
    if (outcome == TENANT_OK)
        *watermark_seq = atoll(snap.seq);
done:
    bi_run_row(&bi, app, t->name,
               outcome == TENANT_OK ? "ok" : outcome == TENANT_INTERRUPTED ? "interrupted" : "failed", error);
    free(error);
    bi_close(&bi);
    return outcome;
}

/* The export command's work for one tenant (run in a worker, see jobs.h). */
static enum tenant_outcome export_job(const struct app *app, struct app_tenant *at, struct run_totals *tot)
{
    struct tenant t;
    struct export_totals etot = {0};
    enum tenant_outcome outcome;
    bool locked = false;
    long long seq;

    if (tenant_open(&t, app, at, true) != AX_OK) {
        log_error("%s: cannot connect: %s", at->cfg->name, t.db.error);
        outcome = TENANT_UNREACHABLE;
    } else if (tenant_try_lock(&t, &locked) != AX_OK || (locked && tenant_discover_forms(&t, app) != AX_OK)) {
        log_error("%s: %s", t.name, t.db.error);
        outcome = TENANT_FAILED;
    } else if (!locked) {
        log_warning("%s: another anonymizer run holds this tenant's lock; tenant skipped", t.name);
        outcome = TENANT_LOCKED;
    } else {
        outcome = export_tenant(app, &t, &etot, &seq);
    }
    tot->exported += etot.inserted + etot.updated;
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
