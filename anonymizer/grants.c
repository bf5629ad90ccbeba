/*
 * grants.c: the "grants" command (see grants.h).
 *
 * For each tenant: a \connect line, then in one transaction the roles that
 * do not exist yet, CONNECT and USAGE on public, the table privileges of the
 * run role and of the report role (privileges_needed, the list run and
 * report check before they start), and the anonymizer schema owned by the
 * run role, readable by the report role.  Then the same for the BI
 * database: the export's role owns its schema, the readers' role may read
 * it.  Every name comes from the catalog or the command line and is quoted
 * with PQescapeIdentifier.
 */
#include "grants.h"
#include "ax.h"
#include "log.h"
#include "privileges.h"
#include "strbuf.h"
#include "tenant.h"

#include <stdlib.h>
#include <string.h>

bool grants_valid_role(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 63 || strchr(name, '$'))
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* A conninfo value, single-quoted as libpq wants it. */
static void conninfo_value(struct strbuf *sb, const char *key, const char *value)
{
    if (!value || !*value)
        return;
    sb_appendf(sb, "%s%s='", sb->len ? " " : "", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sb_append(sb, "\\");
        sb_appendn(sb, p, 1);
    }
    sb_append(sb, "'");
}

/* psql's \connect to this session's database, keeping the user psql runs as. */
static void connect_line(FILE *out, struct db *db)
{
    struct strbuf ci;
    sb_init(&ci);
    conninfo_value(&ci, "dbname", PQdb(db->conn));
    conninfo_value(&ci, "host", PQhost(db->conn));
    conninfo_value(&ci, "port", PQport(db->conn));
    fputs("\\connect -reuse-previous=on \"", out);
    for (const char *p = ci.buf; *p; p++) {
        if (*p == '"')
            fputc('"', out);
        fputc(*p, out);
    }
    fputs("\"\n", out);
    sb_free(&ci);
}

/* Roles that do not exist on this server yet, created (once, whichever section runs first). */
static int create_missing_roles(FILE *out, struct db *db, const char *const *roles, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        PGresult *res;
        const char *values[1] = {roles[i]};
        int rc = db_query(db, &res, DB_ONE_ROW(1), "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles"
                          " WHERE rolname OPERATOR(pg_catalog.=) $1)",
                          1, NULL, values);
        if (rc)
            return rc;
        bool exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (exists)
            continue;
        char *q = db_quote_ident(db, roles[i]);
        fprintf(out,
                "DO $anonymizer$BEGIN CREATE ROLE %s LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END"
                "$anonymizer$;\n",
                q);
        free(q);
    }
    return AX_OK;
}

/*
 * The schema a role keeps its own tables in: created for it, or handed to
 * it with the tables already there; readers may read it, and what it
 * creates later.
 */
static int owned_schema(FILE *out, struct db *db, const char *schema, const char *q_owner, const char *q_reader,
                        bool reader_reads_all)
{
    PGresult *res;
    const char *values[1] = {schema};
    int rc = db_query(db, &res, DB_ROWS(2),
                      "SELECT c.relname, c.relkind OPERATOR(pg_catalog.=) 'S' FROM pg_catalog.pg_class c"
                      " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
                      " WHERE n.nspname OPERATOR(pg_catalog.=) $1"
                      " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,S,v}'::pg_catalog.\"char\"[])"
                      " ORDER BY c.relname",
                      1, NULL, values);
    if (rc)
        return rc;
    PGresult *ns;
    if ((rc = db_query(db, &ns, DB_ONE_ROW(1), "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace"
                       " WHERE nspname OPERATOR(pg_catalog.=) $1)",
                       1, NULL, values))) {
        PQclear(res);
        return rc;
    }
    bool exists = strcmp(PQgetvalue(ns, 0, 0), "t") == 0;
    PQclear(ns);
    char *q_schema = db_quote_ident(db, schema);
    if (!exists)
        fprintf(out, "CREATE SCHEMA %s AUTHORIZATION %s;\n", q_schema, q_owner);
    else
        fprintf(out, "ALTER SCHEMA %s OWNER TO %s;\n", q_schema, q_owner);
    for (int i = 0; i < PQntuples(res); i++) {
        char *q = db_quote_ident(db, PQgetvalue(res, i, 0));
        /* a sequence goes with the table that owns it */
        if (strcmp(PQgetvalue(res, i, 1), "f") == 0)
            fprintf(out, "ALTER TABLE %s.%s OWNER TO %s;\n", q_schema, q, q_owner);
        free(q);
    }
    fprintf(out, "GRANT USAGE ON SCHEMA %s TO %s;\n", q_schema, q_reader);
    if (reader_reads_all) {
        fprintf(out, "GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s;\n", q_schema, q_reader);
        fprintf(out, "ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %s GRANT SELECT ON TABLES TO %s;\n", q_owner,
                q_schema, q_reader);
    } else {
        /* what earlier versions granted: every table, the private ones included */
        fprintf(out, "REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %s;\n", q_schema, q_reader);
        fprintf(out, "ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %s REVOKE ALL ON TABLES FROM %s;\n", q_owner,
                q_schema, q_reader);
        fputs("-- the export itself grants SELECT on the published views only (anonymizer-bi(7), PRIVILEGES)\n", out);
    }
    free(q_schema);
    PQclear(res);
    return AX_OK;
}

static void table_grants(FILE *out, const struct tenant *t, enum priv_role role, const char *q_role)
{
    struct priv_list l;
    privileges_needed(&t->facts, t->forms, t->nforms, role, &l);
    for (size_t i = 0; i < l.n; i++)
        fprintf(out, "GRANT %s ON %s TO %s;\n", l.items[i].privileges, l.items[i].table, q_role);
    priv_list_free(&l);
}

static enum tenant_outcome tenant_grants(const struct app *app, struct app_tenant *at, const struct grants_options *o,
                                         FILE *out)
{
    struct tenant t;
    enum tenant_outcome outcome = tenant_begin(&t, app, at, TB_READ_ONLY, NULL);
    if (outcome != TENANT_OK) {
        tenant_close(&t);
        return outcome;
    }
    const char *run = o->run ? o->run : PQuser(t.db.conn);
    const char *roles[2] = {run, o->report};
    char *q_run = db_quote_ident(&t.db, run), *q_report = db_quote_ident(&t.db, o->report),
         *q_db = db_quote_ident(&t.db, PQdb(t.db.conn));
    fprintf(out, "\n-- tenant %s: %zu tables of forms, test copies and cards\n", t.name, t.nforms);
    connect_line(out, &t.db);
    fputs("BEGIN;\n", out);
    int rc = create_missing_roles(out, &t.db, roles, 2);
    if (rc == AX_OK) {
        fprintf(out, "GRANT CONNECT ON DATABASE %s TO %s, %s;\n", q_db, q_run, q_report);
        fprintf(out, "GRANT USAGE ON SCHEMA public TO %s, %s;\n", q_run, q_report);
        fprintf(out, "-- run: blanks submissions and their history, deletes drafts and tracking codes and search"
                     " tokens;\n-- w.c.s.'s triggers on the form tables update wcs_all_forms and read users\n");
        table_grants(out, &t, PRIV_RUN, q_run);
        fputs("-- report: reads only\n", out);
        table_grants(out, &t, PRIV_READ, q_report);
        fputs("-- the audit of the runs (anonymizer.runs, anonymizer.changes) belongs to the run role\n", out);
        rc = owned_schema(out, &t.db, "anonymizer", q_run, q_report, true);
    }
    fputs("-- VACUUM needs ownership of the tables, which w.c.s. keeps: without it a run skips VACUUM with\n"
          "-- a warning, and old row versions keep personal data until autovacuum\n"
          "COMMIT;\n",
          out);
    if (rc) {
        log_error("%s: %s", t.name, t.db.error);
        outcome = TENANT_FAILED;
    }
    free(q_run);
    free(q_report);
    free(q_db);
    tenant_close(&t);
    return outcome;
}

static int bi_grants(const struct app *app, const struct grants_options *o, FILE *out)
{
    struct db db;
    struct db_profile profile = app_db_profile(app->cfg, true);
    int rc = db_connect(&db, app->cfg->bi.conninfo, NULL, "bi", &profile);
    if (rc) {
        log_error("bi: cannot connect: %s", db.error);
        db_close(&db);
        return rc;
    }
    const char *owner = o->bi ? o->bi : PQuser(db.conn);
    const char *roles[3] = {owner, o->bi_reader, app->cfg->bi.loader_role};
    char *q_owner = db_quote_ident(&db, owner), *q_reader = db_quote_ident(&db, o->bi_reader),
         *q_db = db_quote_ident(&db, PQdb(db.conn));
    fprintf(out, "\n-- the BI database: the export writes schema %s, readers read it\n", app->cfg->bi.schema);
    connect_line(out, &db);
    fputs("BEGIN;\n", out);
    if ((rc = create_missing_roles(out, &db, roles, roles[2] ? 3 : 2)) == AX_OK) {
        /* TEMPORARY: the export stages each batch in a temporary table */
        fprintf(out, "GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s;\n", q_db, q_owner);
        fprintf(out, "GRANT CONNECT ON DATABASE %s TO %s;\n", q_db, q_reader);
        rc = owned_schema(out, &db, app->cfg->bi.schema, q_owner, q_reader, false);
        if (rc == AX_OK && app->cfg->bi.loader_role) {
            /* the loading pipeline: the same, and the loader's views, also granted by the export */
            char *q_loader = db_quote_ident(&db, app->cfg->bi.loader_role);
            fprintf(out, "GRANT CONNECT ON DATABASE %s TO %s;\n", q_db, q_loader);
            rc = owned_schema(out, &db, app->cfg->bi.schema, q_owner, q_loader, false);
            free(q_loader);
        }
    }
    fputs("COMMIT;\n", out);
    if (rc)
        log_error("bi: %s", db.error);
    free(q_owner);
    free(q_reader);
    free(q_db);
    db_close(&db);
    return rc;
}

int cmd_grants(const struct app *app, const struct grants_options *opts, FILE *out)
{
    struct grants_options o = *opts;
    o.report = o.report ? o.report : GRANTS_DEFAULT_REPORT;
    o.bi_reader = o.bi_reader            ? o.bi_reader
                  : app->cfg->bi.reader_role ? app->cfg->bi.reader_role
                                             : GRANTS_DEFAULT_BI_READER;
    fputs("-- anonymizer grants: what each role needs, and nothing more (see anonymizer(1), PRIVILEGES).\n"
          "-- Run it as a superuser: anonymizer grants | psql -v ON_ERROR_STOP=1 -U postgres\n",
          out);
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants + 1, sizeof *outcomes);
    for (size_t i = 0; i < app->ntenants; i++)
        outcomes[i] = tenant_grants(app, &app->tenants[i], &o, out);
    size_t n = app->ntenants;
    if (app->cfg->bi.conninfo)
        outcomes[n++] = bi_grants(app, &o, out) == AX_OK ? TENANT_OK : TENANT_FAILED;
    fflush(out);
    int status = app_exit_status(outcomes, n);
    free(outcomes);
    return status;
}
