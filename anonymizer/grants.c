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
#include "escape.h"
#include "log.h"
#include "privileges.h"
#include "strbuf.h"
#include "tenant.h"

#include <stdarg.h>
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

/* psql's \connect to this session's database, keeping the user psql runs as.
 * The connection string is one single-quoted psql argument: a quote or a
 * backslash is escaped, and a control character written as an octal escape,
 * so that a name with a newline cannot end the line and start a
 * meta-command of its own (psql(1), "Meta-Commands"). */
static void connect_line(FILE *out, struct db *db)
{
    struct strbuf ci;
    sb_init(&ci);
    conninfo_value(&ci, "dbname", PQdb(db->conn));
    conninfo_value(&ci, "host", PQhost(db->conn));
    conninfo_value(&ci, "port", PQport(db->conn));
    fputs("\\connect -reuse-previous=on '", out);
    for (const unsigned char *p = (const unsigned char *)ci.buf; *p; p++) {
        if (*p == '\'' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\%03o", *p);
        else
            fputc(*p, out);
    }
    fputs("'\n", out);
    sb_free(&ci);
}

/* One comment line: whatever the names in it hold, it stays one line (a
 * newline would end the comment and make the rest a command). */
static void comment(FILE *out, const char *fmt, ...) AX_PRINTF(2, 3);
static void comment(FILE *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *text = ax_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    char *safe = esc_text(text);
    fprintf(out, "-- %s\n", safe);
    free(safe);
    free(text);
}

/* Roles that do not exist on this server yet, created (once, whichever section runs first). */
static int create_missing_roles(FILE *out, struct db *db, const char *const *roles, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool exists;
        int rc = db_role_exists(db, roles[i], &exists);
        if (rc)
            return rc;
        if (exists)
            continue;
        char *q = db_quote_ident(db, roles[i]);
        /* a dollar-quote tag the name does not hold, or the name would end the body */
        char tag[32] = "$anonymizer$";
        for (unsigned k = 1; strstr(q, tag); k++)
            snprintf(tag, sizeof tag, "$anonymizer%u$", k);
        fprintf(out, "DO %sBEGIN CREATE ROLE %s LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END%s;\n", tag, q,
                tag);
        free(q);
    }
    return AX_OK;
}

/*
 * The schema a role keeps its own tables in: created for it, or handed to
 * it with the tables already there; readers may read it, and what it
 * creates later.
 */
static int owned_schema(FILE *out, struct db *db, const char *schema, const char *q_owner,
                        const char *const *q_readers, size_t nreaders, bool reader_reads_all)
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
    for (size_t r = 0; r < nreaders; r++) {
        const char *q_reader = q_readers[r];
        fprintf(out, "GRANT USAGE ON SCHEMA %s TO %s;\n", q_schema, q_reader);
        if (reader_reads_all) {
            fprintf(out, "GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s;\n", q_schema, q_reader);
            fprintf(out, "ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %s GRANT SELECT ON TABLES TO %s;\n",
                    q_owner, q_schema, q_reader);
        } else {
            /* what earlier versions granted: every table, the private ones included */
            fprintf(out, "REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %s;\n", q_schema, q_reader);
            fprintf(out, "ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %s REVOKE ALL ON TABLES FROM %s;\n",
                    q_owner, q_schema, q_reader);
        }
    }
    if (!reader_reads_all)
        fputs("-- the export itself grants SELECT on the published views only (anonymizer-bi(7), PRIVILEGES)\n", out);
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

/*
 * Tables w.c.s. creates later (a new form, card or test table) are its
 * role's: default privileges of that role give the run and the report what
 * they need on them, so that a new form needs no one to run grants again.
 */
static int future_grants(FILE *out, struct db *db, const char *q_run, const char *q_report)
{
    PGresult *res;
    int rc = db_query(db, &res, DB_ROWS(1),
                      "SELECT pg_catalog.pg_get_userbyid(o.owner) FROM (" WCS_OWNERS ") o ORDER BY 1", 0, NULL, NULL);
    if (rc)
        return rc;
    if (PQntuples(res) > 0)
        fputs("-- tables w.c.s. creates later (a new form, card or test table): theirs by default\n", out);
    for (int i = 0; i < PQntuples(res); i++) {
        char *q_owner = db_quote_ident(db, PQgetvalue(res, i, 0));
        fprintf(out, "ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA public GRANT SELECT, UPDATE, DELETE ON TABLES"
                     " TO %s;\n", q_owner, q_run);
        fprintf(out, "ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA public GRANT SELECT ON TABLES TO %s;\n",
                q_owner, q_report);
        free(q_owner);
    }
    PQclear(res);
    return AX_OK;
}

/* The database a connection string names (NULL: it names none, or a service does). */
static char *conninfo_dbname(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        PQfreemem(err);
        return NULL;
    }
    char *name = NULL;
    for (PQconninfoOption *opt = opts; opt->keyword; opt++)
        if (strcmp(opt->keyword, "dbname") == 0 && opt->val && *opt->val)
            name = ax_strdup(opt->val);
    PQconninfoFree(opts);
    return name;
}

bool grants_admin_conninfo_ok(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        PQfreemem(err);
        return false;
    }
    bool ok = true;
    for (PQconninfoOption *opt = opts; opt->keyword; opt++)
        if (strcmp(opt->keyword, "password") == 0 && opt->val && *opt->val)
            ok = false;
    PQconninfoFree(opts);
    return ok;
}

/* Whether role is a superuser: granting to it would say nothing (and hide that no role was named). */
static int refuse_superuser(struct db *db, const char *role, const char *option)
{
    PGresult *res;
    const char *v[1] = {role};
    int rc = db_query(db, &res, DB_ROWS(1), "SELECT rolsuper FROM pg_catalog.pg_roles"
                      " WHERE rolname OPERATOR(pg_catalog.=) $1", 1, NULL, v);
    if (rc)
        return rc;
    bool super = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (super) {
        db_set_error(db, "role \"%s\" is a superuser: name the role the job runs as with %s (least privilege is"
                         " for another role than the administrator's)", role, option);
        return AX_ERR_DATA;
    }
    return AX_OK;
}

static enum tenant_outcome tenant_grants(const struct app *app, struct app_tenant *at, const struct grants_options *o,
                                         FILE *out)
{
    struct tenant t;
    /* the administrator's connection, to the tenant's database */
    struct cfg_tenant admin_cfg = *at->cfg;
    const struct cfg_tenant *own_cfg = at->cfg;
    char *dbname = NULL;
    if (o->admin) {
        dbname = at->cfg->dbname ? ax_strdup(at->cfg->dbname) : conninfo_dbname(at->cfg->conninfo);
        if (!dbname) {
            log_error("%s: --admin-conninfo: the tenant's connection string names no database (give dbname=)",
                      at->cfg->name);
            return TENANT_FAILED;
        }
        admin_cfg.conninfo = (char *)o->admin;
        admin_cfg.dbname = dbname;
        at->cfg = &admin_cfg; /* for this connection only */
    }
    enum tenant_outcome outcome = tenant_begin(&t, app, at, TB_READ_ONLY | (o->admin ? 0 : TB_WARN_SUPERUSER), NULL);
    at->cfg = own_cfg;
    free(dbname);
    if (outcome != TENANT_OK) {
        tenant_close(&t);
        return outcome;
    }
    const char *run = o->run ? o->run : PQuser(t.db.conn);
    if (!o->run && o->admin) {
        log_error("%s: --admin-conninfo connects as the administrator: name the run role with --role-run", t.name);
        tenant_close(&t);
        return TENANT_FAILED;
    }
    if (refuse_superuser(&t.db, run, "--role-run") != AX_OK) {
        log_error("%s: %s", t.name, t.db.error);
        tenant_close(&t);
        return TENANT_FAILED;
    }
    fputc('\n', out);
    comment(out, "to role %s (run: %s), role %s (report: reads only)", run,
            o->run ? "--role-run" : "the role of the tenant's connection", o->report);
    const char *roles[2] = {run, o->report};
    char *q_run = db_quote_ident(&t.db, run), *q_report = db_quote_ident(&t.db, o->report),
         *q_db = db_quote_ident(&t.db, PQdb(t.db.conn));
    fputc('\n', out);
    comment(out, "tenant %s: %zu table%s of forms, test copies and cards", t.name, t.nforms, t.nforms == 1 ? "" : "s");
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
        rc = future_grants(out, &t.db, q_run, q_report);
        fputs("-- the audit of the runs (anonymizer.runs, anonymizer.changes) belongs to the run role\n", out);
        if (rc == AX_OK)
            rc = owned_schema(out, &t.db, "anonymizer", q_run, (const char *const[]){q_report}, 1, true);
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
    char *dbname = o->admin ? conninfo_dbname(app->cfg->bi.conninfo) : NULL;
    if (o->admin && !dbname) {
        log_error("bi: --admin-conninfo: bi.conninfo names no database (give dbname=)");
        return AX_ERR_DATA;
    }
    int rc = db_connect(&db, o->admin ? o->admin : app->cfg->bi.conninfo, dbname, "bi", &profile);
    free(dbname);
    if (rc) {
        log_error("bi: cannot connect: %s", db.error);
        db_close(&db);
        return rc;
    }
    if (o->admin && !o->bi) {
        log_error("bi: --admin-conninfo connects as the administrator: name the export's role with --role-bi");
        db_close(&db);
        return AX_ERR_DATA;
    }
    if (!o->admin && db_is_superuser(&db))
        app_warn_superuser("bi", PQuser(db.conn));
    const char *owner = o->bi ? o->bi : PQuser(db.conn);
    if ((rc = refuse_superuser(&db, owner, "--role-bi")) != AX_OK) {
        log_error("bi: %s", db.error);
        db_close(&db);
        return rc;
    }
    fputc('\n', out);
    comment(out, "to role %s (the export: %s), role %s (dashboards: reads the published views)%s%s", owner,
            o->bi ? "--role-bi" : "the role of the bi connection", o->bi_reader,
            app->cfg->bi.loader_role ? ", loading role " : "", app->cfg->bi.loader_role ? app->cfg->bi.loader_role : "");
    const char *roles[3] = {owner, o->bi_reader, app->cfg->bi.loader_role};
    char *q_owner = db_quote_ident(&db, owner), *q_reader = db_quote_ident(&db, o->bi_reader),
         *q_db = db_quote_ident(&db, PQdb(db.conn));
    fputc('\n', out);
    comment(out, "the BI database: the export writes schema %s, readers read it", app->cfg->bi.schema);
    connect_line(out, &db);
    fputs("BEGIN;\n", out);
    if ((rc = create_missing_roles(out, &db, roles, roles[2] ? 3 : 2)) == AX_OK) {
        /* TEMPORARY: the export stages each batch in a temporary table */
        fprintf(out, "GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s;\n", q_db, q_owner);
        /* the dashboards' role, and the loading pipeline's: its views are also granted by the export */
        char *q_loader = app->cfg->bi.loader_role ? db_quote_ident(&db, app->cfg->bi.loader_role) : NULL;
        const char *readers[2] = {q_reader, q_loader};
        size_t nreaders = q_loader ? 2 : 1;
        for (size_t i = 0; i < nreaders; i++)
            fprintf(out, "GRANT CONNECT ON DATABASE %s TO %s;\n", q_db, readers[i]);
        rc = owned_schema(out, &db, app->cfg->bi.schema, q_owner, readers, nreaders, false);
        free(q_loader);
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
