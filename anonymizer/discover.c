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

/* The literal start of a LIKE pattern, up to its first wildcard ("wcs_%" -> "wcs"; "wcs\\_%" -> "wcs_"). */
static char *like_prefix(const char *pattern)
{
    struct strbuf sb;
    sb_init(&sb);
    for (const char *p = pattern; *p && *p != '%' && *p != '_'; p++) {
        if (*p == '\\' && p[1])
            p++;
        sb_appendc(&sb, *p);
    }
    return sb_finish(&sb);
}

/*
 * The host a database name stands for, as the url pattern gives it: the
 * name without the pattern's literal prefix (and the "_" that follows it),
 * each "_" turned to ".".  w.c.s. also turned "-" into "_" when it named the
 * database: such hosts cannot be recovered (see anonymizer.conf(5)).
 */
static char *host_of(const char *dbname, const char *pattern)
{
    char *prefix = like_prefix(pattern);
    const char *rest = dbname;
    size_t n = strlen(prefix);
    if (strncmp(dbname, prefix, n) == 0) {
        rest = dbname + n;
        if (*rest == '_' && (n == 0 || prefix[n - 1] != '_'))
            rest++;
    }
    char *host = ax_strdup(rest);
    for (char *p = host; *p; p++)
        if (*p == '_')
            *p = '.';
    free(prefix);
    return host;
}

static int list_entry(struct cfg *cfg, size_t index, const struct db_profile *profile)
{
    const struct cfg_discover *d = &cfg->discover[index];
    struct db db;
    PGresult *res;
    char label[48], *exclude;
    struct strbuf sb;

    snprintf(label, sizeof label, "discover entry %zu", index + 1);
    int rc = db_connect(&db, d->conninfo, names_database(d->conninfo) ? NULL : "postgres", label, profile);
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
                  " WHERE datname OPERATOR(pg_catalog.~~) $1 AND NOT datistemplate AND datallowconn"
                  " AND pg_catalog.has_database_privilege(datname, 'CONNECT')"
                  " AND datname OPERATOR(pg_catalog.<>) ALL ($2) ORDER BY datname",
                  2, types, values);
    free(exclude);
    if (rc) {
        log_error("%s: cannot list databases: %s", label, db.error);
        db_close(&db);
        return rc;
    }
    int found = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *dbname = PQgetvalue(res, i, 0);
        /* with a url pattern, the tenant is named after its host, as everywhere else */
        char *host = d->url ? host_of(dbname, d->databases) : NULL, *url = NULL;
        if (host) {
            const char *pct = strstr(d->url, "%s");
            url = ax_asprintf("%.*s%s%s", (int)(pct - d->url), d->url, host, pct + 2);
        }
        const char *name = host ? host : dbname;
        const struct cfg_tenant *known = cfg_find_tenant(cfg, name);
        /* any name: its definitions directory is encoded (cfg_tenant_dirname) */
        if (known && !known->discovered) {
            log_debug("%s: database %s is listed in tenants: that entry wins", label, name);
        } else if (known) {
            log_warning("%s: database %s was already found by discover entry %d; skipped", label, name,
                        known->discovered);
        } else {
            cfg_add_discovered(cfg, name, d->conninfo, dbname, url, (int)index + 1);
            found++;
        }
        free(host);
        free(url);
    }
    log_debug("%s: %d tenant%s found", label, found, found == 1 ? "" : "s");
    PQclear(res);
    db_close(&db);
    return AX_OK;
}

size_t discover_tenants(struct cfg *cfg, const struct db_profile *profile)
{
    size_t failed = 0;
    for (size_t i = 0; i < cfg->ndiscover; i++)
        if (list_entry(cfg, i, profile) != AX_OK)
            failed++;
    return failed;
}
