/*
 * wcs_logs.c: what w.c.s.'s own logs keep of anonymised submissions (see
 * wcs_logs.h).
 */
#include "wcs_logs.h"
#include "ax.h"
#include "config.h"
#include "sqltext.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A w.c.s. id kept as text (audit.object_id, loggederrors.formdef_id...) as an integer, or NULL: the
 * index of wcs_all_forms serves, and a value that is not a number matches nothing instead of failing. */
#define SQL_INT_ID(x) "(CASE WHEN " x " OPERATOR(pg_catalog.~) '^[0-9]{1,9}$' THEN (" x ")::integer END)"

/* An error of loggederrors about a submission w.c.s. or this tool anonymised, still holding text. */
#define ERRORS_ABOUT_ANONYMISED                                                                             \
    " COALESCE(l.formdef_class, 'FormDef') OPERATOR(pg_catalog.=) 'FormDef'"                                \
    " AND (l.context IS NOT NULL OR l.exception_message IS NOT NULL OR l.traceback IS NOT NULL)"             \
    " AND EXISTS (SELECT 1 FROM public.wcs_all_forms w"                                                     \
    "  WHERE w.formdef_id OPERATOR(pg_catalog.=) " SQL_INT_ID("l.formdef_id")                              \
    "  AND w.id OPERATOR(pg_catalog.=) " SQL_INT_ID("l.formdata_id") " AND w.anonymised IS NOT NULL)"

static const char audit_sql[] =
    "SELECT pg_catalog.count(*), " SQL_ISO_UTC("pg_catalog.min(a.\"timestamp\")")
    " FROM public.audit a"
    " WHERE a.object_type OPERATOR(pg_catalog.=) 'formdef' AND a.\"timestamp\" OPERATOR(pg_catalog.<) $1"
    " AND EXISTS (SELECT 1 FROM public.wcs_all_forms w"
    "  WHERE w.formdef_id OPERATOR(pg_catalog.=) " SQL_INT_ID("a.object_id")
    "  AND w.id OPERATOR(pg_catalog.=) a.data_id AND w.anonymised IS NOT NULL)";

static const char errors_sql[] =
    "SELECT pg_catalog.count(*), " SQL_ISO_UTC("pg_catalog.min(l.latest_occurence_timestamp)")
    " FROM public.loggederrors l"
    " WHERE l.latest_occurence_timestamp OPERATOR(pg_catalog.<) $1 AND" ERRORS_ABOUT_ANONYMISED;

static int count_one(struct tenant *t, const char *table, const char *sql, const char *limit, bool *exists,
                     bool *read, long long *n, char **oldest)
{
    int rc = db_relation(&t->db, "public", table, exists, read);
    if (rc || !*exists || !*read || !t->facts.has_allforms) {
        *read = *read && t->facts.has_allforms;
        return rc;
    }
    PGresult *res;
    const char *values[1] = {limit};
    const Oid types[1] = {DB_TIMESTAMPTZOID};
    if ((rc = db_query(&t->db, &res, DB_ONE_ROW(2), sql, 1, types, values)))
        return rc;
    *n = db_value_ll(res, 0, 0);
    *oldest = PQgetisnull(res, 0, 1) ? NULL : ax_strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    return AX_OK;
}

int wcs_logs_count(struct tenant *t, const char *limit, struct wcs_logs_counts *out)
{
    memset(out, 0, sizeof *out);
    int rc = count_one(t, "audit", audit_sql, limit, &out->audit_exists, &out->audit_read, &out->audit_old,
                       &out->audit_oldest);
    if (rc == AX_OK)
        rc = count_one(t, "loggederrors", errors_sql, limit, &out->errors_exists, &out->errors_read,
                       &out->errors_old, &out->errors_oldest);
    return rc;
}

void wcs_logs_counts_free(struct wcs_logs_counts *c)
{
    free(c->audit_oldest);
    free(c->errors_oldest);
    memset(c, 0, sizeof *c);
}

int wcs_logs_anonymise(struct tenant *t, long long *blanked)
{
    *blanked = 0;
    if (!t->facts.has_loggederrors || !t->facts.has_allforms)
        return AX_OK;
    PGresult *res;
    int rc = db_query(&t->db, &res, DB_ROWS(0),
                      "UPDATE public.loggederrors l SET context = NULL, exception_message = NULL, traceback = NULL"
                      " WHERE" ERRORS_ABOUT_ANONYMISED,
                      0, NULL, NULL);
    if (rc == AX_OK) {
        *blanked = atoll(PQcmdTuples(res));
        PQclear(res);
    }
    return rc;
}

/* -- site-options.cfg ------------------------------------------------------------ */

static char *trimmed(char *s, char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

void wcs_site_options_read(const char *sites, const char *tenant, struct wcs_site_options *out)
{
    memset(out, 0, sizeof *out);
    if (!tenant[0] || tenant[0] == '.' || strchr(tenant, '/')) {
        out->error = ax_strdup("the tenant's name is not a directory name");
        return;
    }
    char *path = ax_asprintf("%s/%s/site-options.cfg", sites, tenant), why[256];
    size_t len;
    char *text = cfg_read_file(path, 1024 * 1024, &len, why, sizeof why);
    free(path);
    if (!text) {
        out->error = ax_strdup(why);
        return;
    }
    bool in_options = false;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        char *end = next ? next : line + strlen(line);
        if (next)
            next++;
        char *l = trimmed(line, end);
        if (*l == '[') {
            char *close = strchr(l, ']');
            in_options = close && strncmp(l + 1, "options", (size_t)(close - l - 1)) == 0 && close - l - 1 == 7;
            continue;
        }
        char *sep = strpbrk(l, "=:");
        if (!in_options || !sep || *l == '#' || *l == ';')
            continue;
        *sep = '\0';
        char *key = trimmed(l, sep), *value = trimmed(sep + 1, sep + 1 + strlen(sep + 1));
        char **slot = strcasecmp(key, "unused-files-behaviour") == 0 ? &out->unused_files
                      : strcasecmp(key, "audit-retention-days") == 0 ? &out->audit_days
                                                                       : NULL;
        if (slot) {
            free(*slot);
            *slot = ax_strdup(value);
        }
    }
    free(text);
}

void wcs_site_options_free(struct wcs_site_options *o)
{
    free(o->unused_files);
    free(o->audit_days);
    free(o->error);
    memset(o, 0, sizeof *o);
}
