/*
 * audit.c: the anonymizer schema (see audit.h).
 */
#include "audit.h"
#include "ax.h"
#include "chain.h"
#include "sqltext.h"
#include "strbuf.h"
#include "timeutil.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char *const schema_ddl[] = {
    "CREATE SCHEMA IF NOT EXISTS anonymizer",
    "CREATE TABLE IF NOT EXISTS anonymizer.runs ("
    " run_id uuid NOT NULL,"
    " tenant text NOT NULL,"
    " command text NOT NULL,"
    " started_at timestamptz NOT NULL,"
    " finished_at timestamptz,"
    " version text NOT NULL,"
    " host text NOT NULL,"
    " config_sha256 text NOT NULL,"
    " forms jsonb NOT NULL DEFAULT '[]'::jsonb,"
    " outcome text NOT NULL,"
    " error text,"
    " exported bigint,"
    " PRIMARY KEY (run_id, tenant))",
    "CREATE TABLE IF NOT EXISTS anonymizer.changes ("
    " seq bigserial PRIMARY KEY,"
    " run_id uuid NOT NULL,"
    " table_name text NOT NULL,"
    " lo bigint NOT NULL,"
    " hi bigint NOT NULL,"
    " changed_at timestamptz NOT NULL DEFAULT pg_catalog.now())",
    "CREATE INDEX IF NOT EXISTS changes_table_seq ON anonymizer.changes (table_name, seq)",
    /* added in 0.2: the rows a run exported (history) */
    "ALTER TABLE anonymizer.runs ADD COLUMN IF NOT EXISTS exported bigint",
    /* the tables a run changed and no VACUUM has cleaned since: old row versions keep personal data */
    "CREATE TABLE IF NOT EXISTS anonymizer.vacuum_owed ("
    " table_name text PRIMARY KEY,"
    " since timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    " run_id uuid NOT NULL)",
    /* what each committed batch of a run still going did, written in the batch's transaction: a run
     * killed before it could write a form's entry is accounted for by the next run (audit_begin) */
    "CREATE TABLE IF NOT EXISTS anonymizer.batches ("
    " run_id uuid NOT NULL,"
    " table_name text NOT NULL,"
    " anonymised bigint NOT NULL,"
    " completed bigint NOT NULL,"
    " drafts bigint NOT NULL,"
    " drafts_deleted boolean NOT NULL,"
    " history_cleared bigint NOT NULL,"
    " tracking_codes_deleted bigint NOT NULL,"
    " committed_at timestamptz NOT NULL DEFAULT pg_catalog.now())",
    /* the rows of each form a run can have work on, found once per run through w.c.s.'s index on anonymised
     * (units.c): rebuilt by every run, so unlogged */
    "CREATE UNLOGGED TABLE IF NOT EXISTS anonymizer.candidates ("
    " table_name text NOT NULL,"
    " id bigint NOT NULL,"
    " PRIMARY KEY (table_name, id))",
    /* per form: the rows anonymised before checked_until were all found clean under the rule (a digest of
     * what the run blanks) by a run that left nothing behind */
    /* the history's chain (chain.h) and the settings in force; added in 0.9 */
    "ALTER TABLE anonymizer.runs ADD COLUMN IF NOT EXISTS seq bigint, ADD COLUMN IF NOT EXISTS details jsonb,"
    " ADD COLUMN IF NOT EXISTS sealed_at timestamptz, ADD COLUMN IF NOT EXISTS key_id text,"
    " ADD COLUMN IF NOT EXISTS prev_mac text, ADD COLUMN IF NOT EXISTS mac text, ADD COLUMN IF NOT EXISTS chain_note text",
    /* legal holds (hold.h): submissions, or whole forms, kept out of anonymisation */
    "CREATE TABLE IF NOT EXISTS anonymizer.holds ("
    " hold_id bigserial PRIMARY KEY,"
    " table_name text NOT NULL,"
    " slug text NOT NULL,"
    " submission_id bigint,"
    " reason text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    " until timestamptz,"
    " os_user text NOT NULL,"
    " db_role text NOT NULL DEFAULT CURRENT_USER)",
    "CREATE TABLE IF NOT EXISTS anonymizer.checked ("
    " table_name text PRIMARY KEY,"
    " rule text NOT NULL,"
    " checked_until timestamptz NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT pg_catalog.now())",
};

void audit_new_run_id(char buf[37])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n <= 0) {
            /* no entropy source: time and pid still make a run id unique enough */
            unsigned long long seed = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
            for (size_t i = got; i < sizeof b; i++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                b[i] = (unsigned char)(seed >> 56);
            }
            break;
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Whether each piece of schema_ddl is there already (a column of runs: attribute of runs). */
#define RUNS_COLUMN(c)                                                                                             \
    "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attname OPERATOR(pg_catalog.=) '" c "'"               \
    " AND a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('anonymizer.runs') AND NOT a.attisdropped)"
static const char *const schema_present[AX_ARRAY_LEN(schema_ddl)] = {
    "EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) 'anonymizer')",
    "pg_catalog.to_regclass('anonymizer.runs') IS NOT NULL",
    "pg_catalog.to_regclass('anonymizer.changes') IS NOT NULL",
    "pg_catalog.to_regclass('anonymizer.changes') IS NOT NULL",
    /* a runs table from before the column: added by its owner (a new one has it) */
    "pg_catalog.to_regclass('anonymizer.runs') IS NULL OR " RUNS_COLUMN("exported"),
    "pg_catalog.to_regclass('anonymizer.vacuum_owed') IS NOT NULL",
    "pg_catalog.to_regclass('anonymizer.batches') IS NOT NULL",
    "pg_catalog.to_regclass('anonymizer.candidates') IS NOT NULL",
    RUNS_COLUMN("chain_note"),
    "pg_catalog.to_regclass('anonymizer.holds') IS NOT NULL",
    "pg_catalog.to_regclass('anonymizer.checked') IS NOT NULL",
};

/*
 * Creates what is missing of the schema: only that, so that a role without
 * CREATE on the database works once the schema exists (CREATE SCHEMA IF NOT
 * EXISTS checks the privilege first).
 */
int audit_ensure_schema(struct tenant *t)
{
    PGresult *res;
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, "SELECT ");
    for (size_t i = 0; i < AX_ARRAY_LEN(schema_present); i++)
        sb_appendf(&sb, "%s(%s)", i ? ", " : "", schema_present[i]);
    int rc = db_query(&t->db, &res, DB_ONE_ROW((int)AX_ARRAY_LEN(schema_present)), sb.buf, 0, NULL, NULL);
    sb_free(&sb);
    if (rc)
        return rc;
    bool have[AX_ARRAY_LEN(schema_present)];
    for (size_t i = 0; i < AX_ARRAY_LEN(schema_present); i++)
        have[i] = strcmp(PQgetvalue(res, 0, (int)i), "t") == 0;
    PQclear(res);
    /* in order: a runs table created now has the columns added later to older ones */
    for (size_t i = 0; i < AX_ARRAY_LEN(schema_ddl); i++)
        if (!have[i] && (rc = db_cmd(&t->db, schema_ddl[i])))
            return rc;
    return AX_OK;
}

json_object *audit_settings(const struct app *app)
{
    const struct cfg *c = app->cfg;
    json_object *o = json_object_new_object(), *bi = json_object_new_object(), *sensitive = json_object_new_array();
    json_object_object_add(o, "config_sha256", json_object_new_string(c->digest));
    json_object_object_add(o, "retention_cap_days", json_object_new_int(RETENTION_CAP_DAYS));
    json_object_object_add(o, "retention", c->policy.has_retention ? json_object_new_string(c->policy.retention_text)
                                                                   : NULL);
    json_object_object_add(o, "backup_retention_days", json_object_new_int(c->backup_retention_days));
    json_object_object_add(o, "wcs_logs", json_object_new_string(c->wcs_logs_anonymise ? "anonymise" : "report"));
    json_object_object_add(o, "testdefs", json_object_new_string(c->testdefs_report_only ? "report" : "anonymise"));
    json_object_object_add(o, "audit_key_id", c->audit.key.key ? json_object_new_string(c->audit.key.id) : NULL);
    if (c->bi.conninfo) {
        json_object_object_add(bi, "min_k", json_object_new_int(c->bi.min_k));
        json_object_object_add(bi, "min_l", json_object_new_int(c->bi.min_l));
        json_object_object_add(bi, "time_precision", json_object_new_string(c->bi.time_precision));
        json_object_object_add(bi, "date_precision", json_object_new_string(c->bi.date_precision));
        json_object_object_add(bi, "generalise", json_object_new_boolean(c->bi.generalise));
        for (size_t i = 0; i < c->bi.nsensitive; i++)
            json_object_array_add(sensitive, json_object_new_string(c->bi.sensitive[i]));
    }
    json_object_object_add(bi, "sensitive", sensitive);
    json_object_object_add(o, "bi", c->bi.conninfo ? bi : NULL);
    if (!c->bi.conninfo)
        json_object_put(bi);
    return o;
}

int audit_record(struct tenant *t, const struct app *app, const char *command, json_object *details)
{
    const char *values[7] = {app->run_id, t->name, command, ANONYMIZER_VERSION, app->host, app->cfg->digest,
                             json_object_to_json_string_ext(details, JSON_C_TO_STRING_PLAIN)};
    return db_command(&t->db,
                      "INSERT INTO anonymizer.runs (run_id, tenant, command, started_at, finished_at, version, host,"
                      " config_sha256, outcome, details)"
                      " VALUES ($1::uuid, $2, $3, pg_catalog.clock_timestamp(), pg_catalog.clock_timestamp(), $4, $5, $6,"
                      " 'ok', $7::jsonb)",
                      7, NULL, values);
}

int audit_begin(struct tenant *t, const struct app *app, const char *command)
{
    int rc = audit_ensure_schema(t);
    if (rc)
        return rc;
    /* we hold the tenant lock: a row still "running" belongs to a run that died; its committed
     * batches of forms it had no time to write an entry for become entries, so that the audit
     * accounts for every batch that committed, whatever killed the run */
    PGresult *crashed;
    if ((rc = db_query(&t->db, &crashed, DB_ROWS(1),
                     "UPDATE anonymizer.runs r SET outcome = 'crashed', forms = r.forms OPERATOR(pg_catalog.||)"
                     " COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('slug', b.table_name,"
                     "  'table', b.table_name, 'anonymised', b.anonymised, 'completed', b.completed,"
                     "  'drafts_deleted', b.drafts_deleted, 'drafts_anonymised', b.drafts_anonymised,"
                     "  'history_cleared', b.history_cleared, 'tracking_codes_deleted', b.tracking_codes_deleted,"
                     "  'outcome', 'crashed', 'error', 'the run died: counted from its committed batches')"
                     "  ORDER BY b.table_name)"
                     "  FROM (SELECT table_name, pg_catalog.sum(anonymised) AS anonymised,"
                     "   pg_catalog.sum(completed) AS completed,"
                     "   pg_catalog.sum(drafts) FILTER (WHERE drafts_deleted) AS drafts_deleted,"
                     "   pg_catalog.sum(drafts) FILTER (WHERE NOT drafts_deleted) AS drafts_anonymised,"
                     "   pg_catalog.sum(history_cleared) AS history_cleared,"
                     "   pg_catalog.sum(tracking_codes_deleted) AS tracking_codes_deleted"
                     "   FROM anonymizer.batches WHERE run_id OPERATOR(pg_catalog.=) r.run_id"
                     "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(r.forms) e"
                     "    WHERE e OPERATOR(pg_catalog.->>) 'table' OPERATOR(pg_catalog.=) table_name)"
                     "   GROUP BY table_name) b), '[]'::jsonb)"
                     " WHERE r.outcome OPERATOR(pg_catalog.=) 'running' RETURNING r.run_id::text", 0, NULL, NULL)))
        return rc;
    /* their entries are final now: sealed, in the order they started */
    for (int i = 0; i < PQntuples(crashed) && rc == AX_OK; i++)
        rc = chain_seal(t, app, PQgetvalue(crashed, i, 0));
    PQclear(crashed);
    if (rc ||
        (rc = db_cmd(&t->db, "DELETE FROM anonymizer.batches")))
        return rc;

    json_object *settings = audit_settings(app);
    const char *values[7] = {app->run_id, t->name, command, ANONYMIZER_VERSION, app->host, app->cfg->digest,
                             json_object_to_json_string_ext(settings, JSON_C_TO_STRING_PLAIN)};
    rc = db_command(&t->db,
                    "INSERT INTO anonymizer.runs (run_id, tenant, command, started_at, version, host,"
                    " config_sha256, outcome, details)"
                    " VALUES ($1::uuid, $2, $3, pg_catalog.clock_timestamp(), $4, $5, $6, 'running', $7::jsonb)",
                    7, NULL, values);
    json_object_put(settings);
    return rc;
}

int audit_add_form(struct tenant *t, const struct app *app, json_object *entry)
{
    json_object *arr = json_object_new_array();
    json_object_array_add(arr, json_object_get(entry));
    const char *values[3] = {app->run_id, t->name, json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN)};
    const Oid types[3] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    int rc = db_command(&t->db,
                        "UPDATE anonymizer.runs SET forms = forms OPERATOR(pg_catalog.||) $3::jsonb"
                        " WHERE run_id OPERATOR(pg_catalog.=) $1::uuid AND tenant OPERATOR(pg_catalog.=) $2",
                        3, types, values);
    json_object_put(arr);
    return rc;
}

int audit_finish(struct tenant *t, const struct app *app, enum tenant_outcome outcome, const char *error,
                 long long exported)
{
    char n[32];
    snprintf(n, sizeof n, "%lld", exported);
    const char *values[5] = {app->run_id, t->name, tenant_outcome_str(outcome), error, exported >= 0 ? n : NULL};
    const Oid types[5] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_INT8OID};
    db_rollback_quietly(&t->db);
    int rc = db_command(&t->db,
                        "UPDATE anonymizer.runs SET finished_at = pg_catalog.clock_timestamp(), outcome = $3, error = $4,"
                        " exported = $5 WHERE run_id OPERATOR(pg_catalog.=) $1::uuid AND tenant OPERATOR(pg_catalog.=) $2",
                        5, types, values);
    /* its entries are written: its batches' counters are no longer needed */
    if (rc == AX_OK)
        rc = db_command(&t->db, "DELETE FROM anonymizer.batches WHERE run_id OPERATOR(pg_catalog.=) $1::uuid", 1,
                        types, values);
    if (rc == AX_OK)
        rc = chain_seal(t, app, app->run_id);
    return rc;
}

/* -- the change log ------------------------------------------------------------ */

int audit_log_batch(struct tenant *t, const struct app *app, const char *table, bool drafts_deleted,
                    const PGresult *res)
{
    /* the batch's counters: anonymised, completed, drafts, history rows cleared, tracking codes deleted */
    const char *values[8] = {app->run_id,           table,
                             PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                             PQgetvalue(res, 0, 4), drafts_deleted ? "true" : "false",
                             PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6)};
    const Oid types[8] = {DB_TEXTOID, DB_TEXTOID, DB_INT8OID, DB_INT8OID, DB_INT8OID, DB_TEXTOID, DB_INT8OID, DB_INT8OID};
    return db_command(&t->db,
                      "INSERT INTO anonymizer.batches (run_id, table_name, anonymised, completed, drafts, drafts_deleted,"
                      " history_cleared, tracking_codes_deleted)"
                      " VALUES ($1::uuid, $2, $3, $4, $5, $6::boolean, $7, $8)",
                      8, types, values);
}

int audit_log_change(struct tenant *t, const struct app *app, const char *table, const char *ids)
{
    if (!ids || !*ids)
        return AX_OK;
    const char *values[3] = {app->run_id, table, ids};
    const Oid types[3] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    /* runs of consecutive ids, each one inclusive range: a night's ids spread over the table stay exact */
    return db_command(&t->db,
                      "INSERT INTO anonymizer.changes (run_id, table_name, lo, hi)"
                      " SELECT $1::uuid, $2, pg_catalog.min(r.id), pg_catalog.max(r.id)"
                      " FROM (SELECT x.id, x.id OPERATOR(pg_catalog.-) x.n AS island"
                      "  FROM pg_catalog.unnest($3::bigint[]) WITH ORDINALITY x(id, n)) r GROUP BY r.island",
                      3, types, values);
}

int audit_owe_vacuum(struct tenant *t, const struct app *app, const char *tables)
{
    const char *values[2] = {app->run_id, tables};
    const Oid types[2] = {DB_TEXTOID, DB_TEXTOID};
    return db_command(&t->db,
                      "INSERT INTO anonymizer.vacuum_owed (table_name, run_id)"
                      " SELECT x, $1::uuid FROM pg_catalog.unnest($2::text[]) x ON CONFLICT (table_name) DO NOTHING",
                      2, types, values);
}

int audit_vacuum_owed(struct tenant *t, const char *table, bool *owed)
{
    PGresult *res;
    const char *values[1] = {table};
    *owed = false;
    int rc = db_query(&t->db, &res, DB_ONE_ROW(1),
                      "SELECT EXISTS (SELECT 1 FROM anonymizer.vacuum_owed WHERE table_name OPERATOR(pg_catalog.=) $1)", 1,
                      NULL, values);
    if (rc)
        return rc;
    *owed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

int audit_vacuum_paid_outside(struct tenant *t)
{
    return db_cmd(&t->db, "DELETE FROM anonymizer.vacuum_owed o WHERE " AUDIT_VACUUM_PAID("o"));
}

int audit_vacuum_paid(struct tenant *t, const char *table)
{
    const char *values[1] = {table};
    return db_command(&t->db, "DELETE FROM anonymizer.vacuum_owed WHERE table_name OPERATOR(pg_catalog.=) $1", 1, NULL,
                      values);
}

int audit_prune_changes(struct tenant *t, long long seq)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", seq);
    const char *values[1] = {s};
    const Oid types[1] = {DB_INT8OID};
    return db_command(&t->db, "DELETE FROM anonymizer.changes WHERE seq OPERATOR(pg_catalog.<=) $1", 1, types, values);
}

int audit_changes_position(struct tenant *t, bool *available, char *seq, size_t seqlen)
{
    PGresult *res;
    bool exists, readable;
    int rc = db_relation(&t->db, "anonymizer", "changes", &exists, &readable);
    if (rc)
        return rc;
    snprintf(seq, seqlen, "0");
    *available = false;
    if (!exists)
        return AX_OK;
    if (!readable) {
        /* without it, submissions the run completed would be missed: no guess */
        db_set_error(&t->db, "no SELECT privilege on anonymizer.changes, which the export needs");
        return AX_ERR_DB;
    }
    *available = true;
    if ((rc = db_query(&t->db, &res, DB_ONE_ROW(1), "SELECT COALESCE(pg_catalog.max(seq), 0) FROM anonymizer.changes", 0,
                       NULL, NULL)))
        return rc;
    snprintf(seq, seqlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return AX_OK;
}

char *audit_changed_ids_sql(const char *q_table)
{
    return ax_asprintf("SELECT b.id FROM anonymizer.changes c JOIN public.%s b"
                       " ON b.id OPERATOR(pg_catalog.>=) c.lo AND b.id OPERATOR(pg_catalog.<=) c.hi"
                       " WHERE c.table_name OPERATOR(pg_catalog.=) pg_catalog.current_setting('anonymizer.table')"
                       " AND c.seq OPERATOR(pg_catalog.>) pg_catalog.current_setting('anonymizer.change_seq')::bigint",
                       q_table);
}

/* -- reading ----------------------------------------------------------------------- */

static char *value_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : ax_strdup(PQgetvalue(res, row, col));
}

int audit_read(struct tenant *t, struct audit_view *out)
{
    PGresult *res;
    memset(out, 0, sizeof *out);
    int rc = db_relation(&t->db, "anonymizer", "runs", &out->exists, &out->readable);
    if (rc || !out->exists || !out->readable)
        return rc;
    rc = db_query(&t->db, &res, DB_ONE_ROW(1),
                  "SELECT " SQL_ISO_UTC("pg_catalog.max(finished_at)") " FROM anonymizer.runs"
                  " WHERE command OPERATOR(pg_catalog.=) 'run' AND outcome OPERATOR(pg_catalog.=) 'ok'",
                  0, NULL, NULL);
    if (rc)
        return rc;
    out->last_ok = PQgetisnull(res, 0, 0) ? NULL : ax_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);

    /* a "running" row is a run in progress only while its session holds the
     * tenant lock (else it died); the lock is looked at, never taken: the
     * report must not keep a run off the tenant */
    rc = db_query(&t->db, &res, DB_ONE_ROW(1),
                  "SELECT " SQL_ISO_UTC("pg_catalog.max(started_at)") " FROM anonymizer.runs"
                  " WHERE outcome OPERATOR(pg_catalog.=) 'running'"
                  " AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'"
                  "  AND l.granted AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
                  "   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
                  "  AND l.classid OPERATOR(pg_catalog.=) " LOCK_CLASSID "::pg_catalog.oid"
                  "  AND l.objid OPERATOR(pg_catalog.=) " LOCK_TENANT_OBJID "::pg_catalog.oid"
                  "  AND l.objsubid OPERATOR(pg_catalog.=) 2)",
                  0, NULL, NULL);
    if (rc)
        return rc;
    out->running_since = PQgetisnull(res, 0, 0) ? NULL : ax_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);

    rc = db_query(&t->db, &res, DB_ROWS(4),
                  "SELECT f OPERATOR(pg_catalog.->>) 'table', COALESCE((f OPERATOR(pg_catalog.->>) 'locked')::bigint, 0),"
                  " (f OPERATOR(pg_catalog.->>) 'vacuumed') OPERATOR(pg_catalog.=) 'false',"
                  " CASE WHEN (f OPERATOR(pg_catalog.->>) 'outcome') OPERATOR(pg_catalog.=) ANY ('{failed,locked}'::text[])"
                  " THEN COALESCE(f OPERATOR(pg_catalog.->>) 'error', 'failed') END FROM"
                  " (SELECT forms FROM anonymizer.runs WHERE command OPERATOR(pg_catalog.=) 'run'"
                  "  AND outcome OPERATOR(pg_catalog.<>) 'running'"
                  "  ORDER BY started_at DESC LIMIT 1) r, pg_catalog.jsonb_array_elements(r.forms) f",
                  0, NULL, NULL);
    if (rc)
        return rc;
    out->nlocked = (size_t)PQntuples(res);
    out->locked = ax_calloc(out->nlocked, sizeof *out->locked);
    for (size_t i = 0; i < out->nlocked; i++) {
        out->locked[i].table = ax_strdup(PQgetvalue(res, (int)i, 0));
        out->locked[i].locked = atoll(PQgetvalue(res, (int)i, 1));
        out->locked[i].not_vacuumed = strcmp(PQgetvalue(res, (int)i, 2), "t") == 0;
        out->locked[i].failed = value_or_null(res, (int)i, 3);
    }
    PQclear(res);
    /* a schema from before the table: nothing recorded */
    bool exists = false, readable = false;
    rc = db_relation(&t->db, "anonymizer", "vacuum_owed", &exists, &readable);
    if (rc || !exists || !readable)
        return rc;
    rc = db_query(&t->db, &res, DB_ROWS(2),
                  "SELECT o.table_name, " SQL_ISO_UTC("o.since") " FROM anonymizer.vacuum_owed o"
                  " WHERE NOT " AUDIT_VACUUM_PAID("o") " ORDER BY o.table_name", 0, NULL, NULL);
    if (rc)
        return rc;
    out->nowed = (size_t)PQntuples(res);
    out->owed_tables = ax_calloc(out->nowed + 1, sizeof *out->owed_tables);
    out->owed_since = ax_calloc(out->nowed + 1, sizeof *out->owed_since);
    for (size_t i = 0; i < out->nowed; i++) {
        out->owed_tables[i] = ax_strdup(PQgetvalue(res, (int)i, 0));
        out->owed_since[i] = ax_strdup(PQgetvalue(res, (int)i, 1));
    }
    PQclear(res);
    return AX_OK;
}

void audit_view_free(struct audit_view *v)
{
    free(v->last_ok);
    free(v->running_since);
    for (size_t i = 0; i < v->nlocked; i++) {
        free(v->locked[i].table);
        free(v->locked[i].failed);
    }
    free(v->locked);
    for (size_t i = 0; i < v->nowed; i++) {
        free(v->owed_tables[i]);
        free(v->owed_since[i]);
    }
    free(v->owed_tables);
    free(v->owed_since);
    memset(v, 0, sizeof *v);
}

/* -- history ------------------------------------------------------------------------- */

int audit_history(struct tenant *t, const char *since, struct audit_run **runs, size_t *n, char **first_run)
{
    PGresult *res;
    bool exists, readable;
    *runs = NULL;
    *n = 0;
    *first_run = NULL;
    int rc = db_relation(&t->db, "anonymizer", "runs", &exists, &readable);
    if (rc || !exists)
        return rc;
    if (!readable) {
        db_set_error(&t->db, "no SELECT privilege on anonymizer.runs");
        return AX_ERR_DB;
    }
    /* runs written before the exported column: unknown; and when the first run of all started */
    rc = db_query(&t->db, &res, DB_ONE_ROW(3),
                  "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attname OPERATOR(pg_catalog.=) 'exported'"
                  " AND attrelid OPERATOR(pg_catalog.=) 'anonymizer.runs'::pg_catalog.regclass AND NOT attisdropped),"
                  " (SELECT " SQL_ISO_UTC("pg_catalog.min(started_at)") " FROM anonymizer.runs"
                  "  WHERE command OPERATOR(pg_catalog.=) 'run'),"
                  " EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attname OPERATOR(pg_catalog.=) 'details'"
                  " AND attrelid OPERATOR(pg_catalog.=) 'anonymizer.runs'::pg_catalog.regclass AND NOT attisdropped)",
                  0, NULL, NULL);
    if (rc)
        return rc;
    bool has_exported = strcmp(PQgetvalue(res, 0, 0), "t") == 0, has_details = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    *first_run = PQgetisnull(res, 0, 1) ? NULL : ax_strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    const char *values[1] = {since};
    const Oid types[1] = {DB_TIMESTAMPTZOID};
    char *sql = ax_asprintf(
        "SELECT run_id::text, command, outcome, error, version, host, " SQL_ISO_UTC("started_at") ", "
        SQL_ISO_UTC("finished_at") ","
        " (SELECT COALESCE(pg_catalog.sum((f OPERATOR(pg_catalog.->>) 'anonymised')::bigint), 0)"
        "  FROM pg_catalog.jsonb_array_elements(forms) f),"
        " (SELECT COALESCE(pg_catalog.sum((f OPERATOR(pg_catalog.->>) 'completed')::bigint), 0)"
        "  FROM pg_catalog.jsonb_array_elements(forms) f),"
        " (SELECT COALESCE(pg_catalog.sum(COALESCE((f OPERATOR(pg_catalog.->>) 'drafts_deleted')::bigint, 0)"
        "  OPERATOR(pg_catalog.+) COALESCE((f OPERATOR(pg_catalog.->>) 'drafts_anonymised')::bigint, 0)), 0)"
        "  FROM pg_catalog.jsonb_array_elements(forms) f), %s, %s, config_sha256,"
        /* what was in force: the run's settings, and each form's retention and fields */
        " CASE WHEN command OPERATOR(pg_catalog.=) 'run' THEN pg_catalog.jsonb_build_object('run', %s, 'forms',"
        "  (SELECT pg_catalog.jsonb_object_agg(f OPERATOR(pg_catalog.->>) 'table', pg_catalog.jsonb_build_object("
        "   'retention_days', f OPERATOR(pg_catalog.->) 'retention_days',"
        "   'retention_source', f OPERATOR(pg_catalog.->) 'retention_source',"
        "   'kept', f OPERATOR(pg_catalog.->) 'kept', 'blanked', f OPERATOR(pg_catalog.->) 'blanked'))"
        "   FROM pg_catalog.jsonb_array_elements(forms) f))::text END"
        " FROM anonymizer.runs WHERE started_at OPERATOR(pg_catalog.>=) $1 ORDER BY started_at",
        has_exported ? "exported" : "NULL::bigint", has_details ? "details::text" : "NULL::text",
        has_details ? "details" : "NULL::jsonb");
    rc = db_query(&t->db, &res, DB_ROWS(15), sql, 1, types, values);
    free(sql);
    if (rc)
        return rc;
    *n = (size_t)PQntuples(res);
    *runs = ax_calloc(*n, sizeof **runs);
    for (size_t i = 0; i < *n; i++) {
        struct audit_run *r = &(*runs)[i];
        int row = (int)i;
        r->run_id = value_or_null(res, row, 0);
        r->command = value_or_null(res, row, 1);
        r->outcome = value_or_null(res, row, 2);
        r->error = value_or_null(res, row, 3);
        r->version = value_or_null(res, row, 4);
        r->host = value_or_null(res, row, 5);
        r->started_at = value_or_null(res, row, 6);
        r->finished_at = value_or_null(res, row, 7);
        r->anonymised = atoll(PQgetvalue(res, row, 8));
        r->completed = atoll(PQgetvalue(res, row, 9));
        r->drafts = atoll(PQgetvalue(res, row, 10));
        r->exported = PQgetisnull(res, row, 11) ? -1 : atoll(PQgetvalue(res, row, 11));
        r->details = value_or_null(res, row, 12);
        r->config_sha256 = value_or_null(res, row, 13);
        r->settings = value_or_null(res, row, 14);
    }
    PQclear(res);
    return AX_OK;
}

void audit_runs_free(struct audit_run *runs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(runs[i].run_id);
        free(runs[i].command);
        free(runs[i].outcome);
        free(runs[i].error);
        free(runs[i].version);
        free(runs[i].host);
        free(runs[i].started_at);
        free(runs[i].finished_at);
        free(runs[i].details);
        free(runs[i].config_sha256);
        free(runs[i].settings);
    }
    free(runs);
}
