/*
 * privileges.c: what each role needs on a tenant (see privileges.h).
 */
#include "privileges.h"
#include "ax.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_need(struct priv_list *l, const char *quoted, const char *privileges, bool optional)
{
    l->items = ax_reallocarray(l->items, l->n + 1, sizeof *l->items);
    l->items[l->n++] = (struct priv_need){ax_asprintf("public.%s", quoted), privileges, optional};
}

static void add(struct priv_list *l, const char *quoted, const char *privileges)
{
    add_need(l, quoted, privileges, false);
}

/* A form's own tables: a run blanks submissions and their history, deletes drafts (with their history). */
static void add_form(struct priv_list *out, const struct form *f, bool run)
{
    const char *data = run ? "SELECT, UPDATE, DELETE" : "SELECT";
    add(out, f->q_table, data);
    if (f->q_evo)
        add(out, f->q_evo, data);
}

/* What every form needs: the tenant-wide tables. */
static void add_shared(const struct plan_tenant *facts, enum priv_role role, struct priv_list *out)
{
    bool run = role == PRIV_RUN;
    const char *data = run ? "SELECT, UPDATE, DELETE" : "SELECT";
    if (facts->has_tracking_codes)
        add(out, "tracking_codes", run ? "SELECT, DELETE" : "SELECT");
    /* w.c.s.'s triggers keep it in step with the form tables: updates and deletes reach it */
    if (facts->has_allforms)
        add(out, "wcs_all_forms", data);
    if (facts->has_search_tokens)
        add(out, "wcs_search_tokens", run ? "SELECT, DELETE" : "SELECT");
    if (facts->has_defs[0])
        add(out, "formdefs", "SELECT");
    if (facts->has_defs[1])
        add(out, "carddefs", "SELECT");
    /* read by w.c.s.'s triggers when a run updates a submission */
    if (run && facts->has_users)
        add(out, "users", facts->has_testdef && facts->anonymise_testdefs ? "SELECT, UPDATE" : "SELECT");
    /* written by w.c.s.'s trigger when a run deletes a draft (of a form, card or test table) */
    static const char *const traces[4] = {"workflow_traces", "workflow_traces_archive", "test_workflow_traces",
                                          "test_workflow_traces_archive"};
    for (int i = 0; run && i < 4; i++)
        if (facts->has_traces[i])
            add(out, traces[i], "SELECT, DELETE");
    /* w.c.s.'s own logs: the report shows what they keep of anonymised submissions (when it may read them);
     * with wcs_logs = "anonymise" the run blanks the errors' texts */
    /* read by the report, whichever role runs it (a platform may report with the run's configuration) */
    if (run && facts->anonymise_wcs_logs && facts->has_loggederrors)
        add(out, "loggederrors", "SELECT, UPDATE");
    else if (run && facts->has_loggederrors)
        add_need(out, "loggederrors", "SELECT", true);
    if (run && facts->has_audit)
        add_need(out, "audit", "SELECT", true);
    /* test definitions made from submissions: their data, their test users, their snapshots */
    if (facts->has_testdef && (!run || facts->anonymise_testdefs))
        add(out, "testdef", run ? "SELECT, UPDATE" : "SELECT");
    if (facts->has_snapshots && facts->has_testdef && (!run || facts->anonymise_testdefs))
        add(out, "snapshots", run ? "SELECT, UPDATE" : "SELECT");
    if (!run && facts->has_users && facts->has_testdef)
        add(out, "users", "SELECT");
    if (!run && facts->has_audit)
        add_need(out, "audit", "SELECT", true);
    if (!run && facts->has_loggederrors)
        add_need(out, "loggederrors", "SELECT", true);
}

void privileges_needed(const struct plan_tenant *facts, const struct form *forms, size_t nforms, enum priv_role role,
                       struct priv_list *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < nforms; i++)
        add_form(out, &forms[i], role == PRIV_RUN);
    add_shared(facts, role, out);
}

void priv_list_free(struct priv_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].table);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/*
 * One statement: every (table, privilege) pair ($1, $2, then $3, $4...), in
 * order, with the schema public first and, for a run, its audit schema
 * last; the rows are what the role lacks.  Objects are parameters (text),
 * parsed by the server's has_*_privilege functions.
 */
static char *check_sql(size_t npairs, bool run)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, "SELECT kind, obj, priv FROM (VALUES (0, 'schema', 'public', 'USAGE')");
    for (size_t i = 0; i < npairs; i++)
        sb_appendf(&sb, ", (%zu, 'table', $%zu, $%zu)", i + 1, 2 * i + 1, 2 * i + 2);
    /* the run's audit schema: its own (tables included), or one it may create */
    if (run)
        sb_appendf(&sb, ", (%zu, 'anonymizer', 'anonymizer', 'own')", npairs + 1);
    sb_append(&sb, ") AS v(ord, kind, obj, priv)\n"
                   "WHERE NOT CASE\n"
                   "  WHEN kind OPERATOR(pg_catalog.=) 'schema' THEN pg_catalog.has_schema_privilege(obj, priv)\n"
                   "  WHEN kind OPERATOR(pg_catalog.=) 'table' THEN pg_catalog.has_table_privilege(obj, priv)\n"
                   "  ELSE COALESCE((SELECT pg_catalog.pg_has_role(n.nspowner, 'USAGE')"
                   " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
                   " WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid"
                   " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,S}'::pg_catalog.\"char\"[])"
                   " AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE'))"
                   " FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'anonymizer'),"
                   " pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE'))\n"
                   "END\nORDER BY ord");
    return sb.buf;
}

/* The first missing privilege (and how many more), as one line. */
static int missing_error(struct db *db, PGresult *res)
{
    const char *kind = PQgetvalue(res, 0, 0), *obj = PQgetvalue(res, 0, 1), *priv = PQgetvalue(res, 0, 2);
    char more[64] = "";
    if (PQntuples(res) > 1)
        snprintf(more, sizeof more, " (and %d more)", PQntuples(res) - 1);
    if (strcmp(kind, "anonymizer") == 0)
        db_set_error(db, "role \"%s\" neither owns the anonymizer schema and its tables nor may create it%s"
                             " (\"anonymizer grants\" prints what each role needs)",
                     PQuser(db->conn), more);
    else
        db_set_error(db, "role \"%s\" lacks %s on %s %s%s (\"anonymizer grants\" prints what each role needs)",
                     PQuser(db->conn), priv, kind, obj, more);
    return AX_ERR_DB;
}

/* What the role lacks of the list (and for a run, of its audit schema): rows (kind, object, privilege). */
static int query_missing(struct db *db, const struct priv_list *list, bool run, PGresult **res)
{
    const struct priv_list l = *list;
    /* one (table, privilege) pair per privilege of each need */
    size_t npairs = 0;
    const char **values = NULL;
    char **privs = NULL;
    for (size_t i = 0; i < l.n; i++) {
        for (const char *p = l.items[i].optional ? "" : l.items[i].privileges; *p; p += strspn(p, ", ")) {
            size_t len = strcspn(p, ",");
            values = ax_reallocarray(values, 2 * (npairs + 1), sizeof *values);
            privs = ax_reallocarray(privs, npairs + 1, sizeof *privs);
            privs[npairs] = ax_strndup(p, len);
            values[2 * npairs] = l.items[i].table;
            values[2 * npairs + 1] = privs[npairs];
            npairs++;
            p += len;
        }
    }
    char *sql = check_sql(npairs, run);
    int rc = db_query(db, res, DB_ROWS(3), sql, (int)(2 * npairs), NULL, values);
    for (size_t i = 0; i < npairs; i++)
        free(privs[i]);
    free(privs);
    free(values);
    free(sql);
    return rc;
}

/* Checks the list (and for a run, its audit schema); see privileges_check. */
static int check_list(struct db *db, const struct priv_list *list, bool run)
{
    PGresult *res;
    int rc = query_missing(db, list, run, &res);
    if (rc == AX_OK) {
        if (PQntuples(res) > 0)
            rc = missing_error(db, res);
        PQclear(res);
    }
    return rc;
}

int privileges_check(struct db *db, const struct plan_tenant *facts, const struct form *forms, size_t nforms,
                     enum priv_role role)
{
    struct priv_list l;
    if (role == PRIV_RUN) {
        memset(&l, 0, sizeof l);
        add_shared(facts, role, &l);
    } else {
        privileges_needed(facts, forms, nforms, role, &l);
    }
    int rc = check_list(db, &l, role == PRIV_RUN);
    priv_list_free(&l);
    return rc;
}

int privileges_check_forms(struct db *db, struct form *forms, size_t nforms, char **first)
{
    struct priv_list l = {0};
    PGresult *res;
    *first = NULL;
    for (size_t i = 0; i < nforms; i++)
        add_form(&l, &forms[i], true);
    int rc = query_missing(db, &l, false, &res);
    priv_list_free(&l);
    if (rc)
        return -1;
    int flagged = 0;
    for (size_t i = 0; i < nforms; i++) {
        struct form *f = &forms[i];
        char *q_table = ax_asprintf("public.%s", f->q_table);
        char *q_evo = f->q_evo ? ax_asprintf("public.%s", f->q_evo) : NULL;
        for (int r = 0; r < PQntuples(res); r++) {
            const char *obj = PQgetvalue(res, r, 1);
            if (strcmp(PQgetvalue(res, r, 0), "table") != 0 ||
                (strcmp(obj, q_table) != 0 && (!q_evo || strcmp(obj, q_evo) != 0)))
                continue;
            char *why = ax_asprintf("role \"%s\" lacks %s on table %s (\"anonymizer grants\" prints what each role"
                                    " needs)", PQuser(db->conn), PQgetvalue(res, r, 2), obj);
            if (!*first)
                *first = ax_strdup(why);
            if (!f->sql.unsupported) {
                f->sql.unsupported = why;
                flagged++;
            } else {
                free(why);
            }
            break;
        }
        free(q_table);
        free(q_evo);
    }
    PQclear(res);
    return flagged;
}

int privileges_check_definitions(struct db *db, const struct plan_tenant *facts)
{
    struct priv_list l = {0};
    if (facts->has_defs[0])
        add(&l, "formdefs", "SELECT");
    if (facts->has_defs[1])
        add(&l, "carddefs", "SELECT");
    int rc = check_list(db, &l, false);
    priv_list_free(&l);
    return rc;
}

int privileges_owns(struct db *db, const char *quoted_table, bool *owns)
{
    PGresult *res;
    char *name = ax_asprintf("public.%s", quoted_table);
    const char *values[1] = {name};
    int rc = db_query(db, &res, DB_ONE_ROW(1),
                      "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c"
                      " WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
                      1, NULL, values);
    free(name);
    if (rc)
        return rc;
    *owns = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

int privileges_check_future(struct db *db, enum priv_role role, char **missing)
{
    PGresult *res;
    const char *values[1] = {role == PRIV_RUN ? "{SELECT,UPDATE,DELETE}" : "{SELECT}"};
    *missing = NULL;
    int rc = db_query(db, &res, DB_ROWS(1),
                      "SELECT pg_catalog.pg_get_userbyid(o.owner) FROM (" WCS_OWNERS ") o"
                      " WHERE NOT pg_catalog.pg_has_role(o.owner, 'USAGE')"
                      " AND (SELECT pg_catalog.count(DISTINCT a.privilege_type) FROM pg_catalog.pg_default_acl d,"
                      "  pg_catalog.aclexplode(d.defaclacl) a WHERE d.defaclrole OPERATOR(pg_catalog.=) o.owner"
                      "  AND d.defaclobjtype OPERATOR(pg_catalog.=) 'r'"
                      "  AND (d.defaclnamespace OPERATOR(pg_catalog.=) 0::pg_catalog.oid"
                      "   OR d.defaclnamespace OPERATOR(pg_catalog.=) 'public'::pg_catalog.regnamespace)"
                      "  AND CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN true"
                      "   ELSE pg_catalog.pg_has_role(a.grantee, 'USAGE') END"
                      "  AND a.privilege_type OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]))"
                      " OPERATOR(pg_catalog.<) pg_catalog.cardinality($1::pg_catalog.text[])"
                      " ORDER BY 1 LIMIT 1",
                      1, NULL, values);
    if (rc)
        return rc;
    if (PQntuples(res) > 0)
        *missing = ax_asprintf("tables w.c.s. creates later (a new form) will not be role \"%s\"'s to %s: role"
                               " \"%s\", which owns w.c.s.'s tables, gives it no default privileges in schema"
                               " public (\"anonymizer grants\" prints them)",
                               PQuser(db->conn), role == PRIV_RUN ? "anonymise" : "read", PQgetvalue(res, 0, 0));
    PQclear(res);
    return AX_OK;
}
