/*
 * audit.c: the anonymizer.runs table.
 */
#include "audit.h"
#include "ax.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <time.h>

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

int audit_begin(struct tenant *t, const struct app *app, const char *command)
{
    bool exists;
    int rc = db_relation(&t->db, "anonymizer", "runs", &exists, NULL);
    if (rc)
        return rc;
    if (!exists) {
        rc = db_cmd(&t->db, "CREATE SCHEMA IF NOT EXISTS anonymizer");
        if (!rc)
            rc = db_cmd(&t->db,
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
                        " PRIMARY KEY (run_id, tenant))");
        if (rc)
            return rc;
    }
    /* the change log the export reads (see export.c): one row per batch */
    if ((rc = db_relation(&t->db, "anonymizer", "changes", &exists, NULL)))
        return rc;
    if (!exists) {
        rc = db_cmd(&t->db, "CREATE TABLE IF NOT EXISTS anonymizer.changes ("
                            " seq bigserial PRIMARY KEY,"
                            " run_id uuid NOT NULL,"
                            " table_name text NOT NULL,"
                            " lo bigint NOT NULL,"
                            " hi bigint NOT NULL,"
                            " changed_at timestamptz NOT NULL DEFAULT pg_catalog.now())");
        if (!rc)
            rc = db_cmd(&t->db, "CREATE INDEX IF NOT EXISTS changes_table_seq ON anonymizer.changes (table_name, seq)");
        if (rc)
            return rc;
    }
    /* we hold the tenant lock: a row still "running" belongs to a run that died */
    rc = db_cmd(&t->db, "UPDATE anonymizer.runs SET outcome = 'crashed' WHERE outcome = 'running'");
    if (rc)
        return rc;

    const char *values[6] = {app->run_id, t->name, command, ANONYMIZER_VERSION, app->host, app->config_bytes};
    const Oid types[6] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_BYTEAOID};
    const int lengths[6] = {0, 0, 0, 0, 0, (int)app->config_len};
    const int formats[6] = {0, 0, 0, 0, 0, 1};
    /* the server hashes the configuration: no crypto library needed here */
    return db_exec_binary(&t->db, NULL,
                          "INSERT INTO anonymizer.runs (run_id, tenant, command, started_at, version, host,"
                          " config_sha256, outcome)"
                          " VALUES ($1::uuid, $2, $3, pg_catalog.clock_timestamp(), $4, $5,"
                          " pg_catalog.encode(pg_catalog.sha256($6), 'hex'), 'running')",
                          6, types, values, lengths, formats);
}

int audit_add_form(struct tenant *t, const struct app *app, json_object *entry)
{
    json_object *arr = json_object_new_array();
    json_object_array_add(arr, json_object_get(entry));
    const char *values[3] = {app->run_id, t->name, json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN)};
    const Oid types[3] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    int rc = db_exec(&t->db, NULL,
                     "UPDATE anonymizer.runs SET forms = forms || $3::jsonb WHERE run_id = $1::uuid AND tenant = $2",
                     3, types, values);
    json_object_put(arr);
    return rc;
}

int audit_finish(struct tenant *t, const struct app *app, const char *outcome, const char *error)
{
    const char *values[4] = {app->run_id, t->name, outcome, error};
    const Oid types[4] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    db_rollback_quietly(&t->db);
    return db_exec(&t->db, NULL,
                   "UPDATE anonymizer.runs SET finished_at = pg_catalog.clock_timestamp(), outcome = $3, error = $4"
                   " WHERE run_id = $1::uuid AND tenant = $2",
                   4, types, values);
}
