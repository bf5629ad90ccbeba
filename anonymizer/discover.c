/*
 * discover.c: finding tenant databases on servers.
 */
#include "discover.h"
#include "ax.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether the conninfo names a database (else the listing connects to "postgres"). */
static bool names_database(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    bool found = false;
    PQfreemem(err);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "dbname") == 0 && o->val && o->val[0])
            found = true;
    PQconninfoFree(opts);
    return found;
}

static int list_entry(struct cfg *cfg, size_t index)
{
    const struct cfg_discover *d = &cfg->discover[index];
    struct db db;
    PGresult *res;
    char label[48], *exclude;
    struct strbuf sb;

    snprintf(label, sizeof label, "discover entry %zu", index + 1);
    int rc = db_connect(&db, d->conninfo, names_database(d->conninfo) ? NULL : "postgres", label);
    if (rc) {
        log_error("%s: cannot connect: %s", label, db.error);
        db_close(&db);
        return rc;
    }
    sb_init(&sb);
    sb_append_pg_text_array(&sb, d->exclude, d->nexclude);
    exclude = sb_finish(&sb);
    const char *values[2] = {d->databases, exclude};
    const Oid types[2] = {DB_TEXTOID, DB_TEXTARRAYOID};
    rc = db_query(&db, &res, DB_ROWS(1),
                  "SELECT datname FROM pg_catalog.pg_database"
                  " WHERE datname LIKE $1 AND NOT datistemplate AND datallowconn"
                  " AND pg_catalog.has_database_privilege(datname, 'CONNECT')"
                  " AND datname <> ALL ($2) ORDER BY datname",
                  2, types, values);
    free(exclude);
    if (rc) {
        log_error("%s: cannot list databases: %s", label, db.error);
        db_close(&db);
        return rc;
    }
    int found = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);
        const struct cfg_tenant *known = cfg_find_tenant(cfg, name);
        if (!cfg_valid_tenant_name(name)) {
            log_warning("%s: database \"%s\" cannot be a tenant name (\"/\" or leading \".\"); skipped", label, name);
        } else if (known && !known->discovered) {
            log_debug("%s: database %s is listed in tenants: that entry wins", label, name);
        } else if (known) {
            log_warning("%s: database %s was already found by discover entry %d; skipped", label, name,
                        known->discovered);
        } else {
            cfg_add_discovered(cfg, name, d->conninfo, name, (int)index + 1);
            found++;
        }
    }
    log_debug("%s: %d tenant%s found", label, found, found == 1 ? "" : "s");
    PQclear(res);
    db_close(&db);
    return AX_OK;
}

size_t discover_tenants(struct cfg *cfg)
{
    size_t failed = 0;
    for (size_t i = 0; i < cfg->ndiscover; i++)
        if (list_entry(cfg, i) != AX_OK)
            failed++;
    return failed;
}
