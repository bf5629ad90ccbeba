/*
 * config.c: loading and validating the configuration file: what each
 * setting is, in key tables read by config_loader.c.
 *
 * Validation is strict on purpose: an unknown key is more likely a typo of a
 * privacy setting than something to ignore, and a retention past the legal
 * cap is refused, never clamped.
 */
#include "config_loader.h"
#include "http.h"
#include "log.h"
#include "i18n.h"
#include "timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void policy_free(struct cfg_policy *p)
{
    free(p->retention_text);
    free(p->open_limit_text);
}
/* A forms (or cards) list. */
static void entries_free(struct cfg_form *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct cfg_form *f = &entries[i];
        free(f->tenant);
        free(f->slug);
        policy_free(&f->policy);
        for (size_t j = 0; j < f->nkeep; j++)
            free(f->keep[j]);
        free(f->keep);
        for (size_t j = 0; j < f->nblank; j++)
            free(f->blank[j]);
        free(f->blank);
    }
    free(entries);
}
void cfg_free(struct cfg *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->schemas);
    cfg_audit_free(&cfg->audit);
    free(cfg->wcs_sites);
    free(cfg->backup_retention_text);
    free(cfg->timezone);
    free(cfg->bi.conninfo);
    free(cfg->bi.schema);
    free(cfg->bi.time_precision);
    free(cfg->bi.date_precision);
    free(cfg->bi.reader_role);
    free(cfg->bi.loader_role);
    for (size_t i = 0; i < cfg->bi.nsensitive; i++)
        free(cfg->bi.sensitive[i]);
    free(cfg->bi.sensitive);
    free(cfg->wcs_api.orig);
    if (cfg->wcs_api.key)
        explicit_bzero(cfg->wcs_api.key, cfg->wcs_api.keylen);
    free(cfg->wcs_api.key);
    free(cfg->wcs_api.key_error);
    free(cfg->wcs_api.ca_file);
    policy_free(&cfg->policy);
    for (size_t i = 0; i < cfg->ntenants; i++) {
        free(cfg->tenants[i].name);
        free(cfg->tenants[i].conninfo);
        free(cfg->tenants[i].url);
        free(cfg->tenants[i].dbname);
        policy_free(&cfg->tenants[i].policy);
    }
    for (size_t i = 0; i < cfg->ndiscover; i++) {
        free(cfg->discover[i].conninfo);
        free(cfg->discover[i].databases);
        free(cfg->discover[i].url);
        for (size_t j = 0; j < cfg->discover[i].nexclude; j++)
            free(cfg->discover[i].exclude[j]);
        free(cfg->discover[i].exclude);
    }
    free(cfg->discover);
    free(cfg->tenants);
    entries_free(cfg->forms, cfg->nforms);
    entries_free(cfg->cards, cfg->ncards);
    free(cfg);
}
/* -- tenants -- */

static int tenant_name(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *text;
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (!cfg_valid_tenant_name(text))
        return ld_bad(ld, s, "\"%s\" cannot name a directory (no \"/\", no leading \".\")", text);
    ld_set_string(&((struct cfg_tenant *)obj)->name, text);
    return AX_OK;
}
static int tenant_conninfo(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_conninfo(ld, s, &((struct cfg_tenant *)obj)->conninfo);
}
static int tenant_url(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_url(ld, s, &((struct cfg_tenant *)obj)->url, false);
}
static int tenant_policy(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_policy_setting(ld, s, &((struct cfg_tenant *)obj)->policy);
}
static const struct key tenant_keys[] = {
    {"name", tenant_name}, {"conninfo", tenant_conninfo}, {"url", tenant_url}, {"retention", tenant_policy},
    {"drafts", tenant_policy}, {"open_submissions", tenant_policy}, {"open_limit", tenant_policy},
};
static int load_tenant(struct loader *ld, const config_setting_t *g, void *item)
{
    struct cfg_tenant *t = item;
    int rc = ld_load_group(ld, g, tenant_keys, AX_ARRAY_LEN(tenant_keys), t, "tenant",
                        "{ name = ...; conninfo = ...; }");
    if (rc)
        return rc;
    if (!t->name)
        return ld_bad(ld, g, "missing \"name\"");
    if (!t->conninfo)
        return ld_bad(ld, g, "missing \"conninfo\"");
    return AX_OK;
}
/* -- forms -- */

static int form_tenant(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_nonempty(ld, s, &((struct cfg_form *)obj)->tenant);
}
static int form_slug(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_nonempty(ld, s, &((struct cfg_form *)obj)->slug);
}
static int form_policy(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_policy_setting(ld, s, &((struct cfg_form *)obj)->policy);
}
static int form_keep(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_form *f = obj;
    f->has_keep = true;
    return ld_load_name_list(ld, s, &f->keep, &f->nkeep);
}
static int form_blank(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_form *f = obj;
    f->has_blank = true;
    return ld_load_name_list(ld, s, &f->blank, &f->nblank);
}
static const struct key form_keys[] = {
    {"tenant", form_tenant}, {"slug", form_slug},       {"retention", form_policy}, {"drafts", form_policy},
    {"open_submissions", form_policy}, {"open_limit", form_policy}, {"keep", form_keep}, {"blank", form_blank},
};
static int load_form(struct loader *ld, const config_setting_t *g, void *item)
{
    struct cfg_form *f = item;
    int rc = ld_load_group(ld, g, form_keys, AX_ARRAY_LEN(form_keys), f, "form", "{ tenant = ...; slug = ...; }");
    if (rc)
        return rc;
    if (!f->tenant)
        return ld_bad(ld, g, "missing \"tenant\" (a tenant name, or \"*\" for every tenant)");
    if (!f->slug)
        return ld_bad(ld, g, "missing \"slug\"");
    for (size_t i = 0; i < f->nkeep; i++)
        for (size_t j = 0; j < f->nblank; j++)
            if (strcmp(f->keep[i], f->blank[j]) == 0)
                return ld_bad(ld, g, "field \"%s\" is both in keep and in blank", f->keep[i]);
    return AX_OK;
}
/* -- discover -- */

static int discover_conninfo(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_conninfo(ld, s, &((struct cfg_discover *)obj)->conninfo);
}
static int discover_databases(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_nonempty(ld, s, &((struct cfg_discover *)obj)->databases);
}
static int discover_exclude(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_discover *d = obj;
    return ld_load_name_list(ld, s, &d->exclude, &d->nexclude);
}
static int discover_url(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_url(ld, s, &((struct cfg_discover *)obj)->url, true);
}
static const struct key discover_keys[] = {
    {"conninfo", discover_conninfo}, {"databases", discover_databases}, {"exclude", discover_exclude},
    {"url", discover_url},
};
static int load_discover(struct loader *ld, const config_setting_t *g, void *item)
{
    struct cfg_discover *d = item;
    int rc = ld_load_group(ld, g, discover_keys, AX_ARRAY_LEN(discover_keys), d, "discover",
                        "{ conninfo = ...; databases = \"wcs_%%\"; }");
    if (rc)
        return rc;
    if (!d->conninfo)
        return ld_bad(ld, g, "missing \"conninfo\"");
    if (!d->databases)
        return ld_bad(ld, g, "missing \"databases\" (a LIKE pattern, like \"wcs_%%\")");
    return AX_OK;
}
/* -- bi -- */

static bool simple_identifier(const char *s)
{
    if (!s[0] || strlen(s) > 63 || !(islower((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}
static int bi_conninfo(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_conninfo(ld, s, &((struct cfg_bi *)obj)->conninfo);
}
static int bi_schema(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *text;
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (!simple_identifier(text))
        return ld_bad(ld, s, "\"%s\" is not a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63)", text);
    ld_set_string(&((struct cfg_bi *)obj)->schema, text);
    return AX_OK;
}
static int bi_time_precision(struct loader *ld, const config_setting_t *s, void *obj)
{
    static const char *const choices[] = {"minute", "hour", "day", NULL};
    const char *text;
    int rc = ld_get_one_of(ld, s, choices, &text);
    if (rc == AX_OK)
        ld_set_string(&((struct cfg_bi *)obj)->time_precision, text);
    return rc;
}
static int bi_date_precision(struct loader *ld, const config_setting_t *s, void *obj)
{
    static const char *const choices[] = {"day", "month", "year", NULL};
    const char *text;
    int rc = ld_get_one_of(ld, s, choices, &text);
    if (rc == AX_OK)
        ld_set_string(&((struct cfg_bi *)obj)->date_precision, text);
    return rc;
}
static int bi_min_k(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_int_range(ld, s, 1, 1000, &((struct cfg_bi *)obj)->min_k);
}
static int bi_min_l(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_int_range(ld, s, 1, 1000, &((struct cfg_bi *)obj)->min_l);
}
static int bi_sensitive(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_bi *bi = obj;
    if (bi->sensitive)
        return ld_bad(ld, s, "given twice (as \"sensitive\" and its old name \"harmless\")");
    return ld_load_name_list(ld, s, &bi->sensitive, &bi->nsensitive);
}
/* The old name of sensitive: what it declared was always that (answers not counted in the groups). */
static int bi_harmless(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct strbuf where;
    sb_init(&where);
    ld_setting_path(s, &where);
    log_warning("%s:%d: %s is read as bi.sensitive, its new name (the answers an attacker wants to learn,"
                " not counted in the groups; see anonymizer-bi(7))", ld->path, config_setting_source_line(s),
                where.buf);
    sb_free(&where);
    return bi_sensitive(ld, s, obj);
}
static int bi_generalise(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_bool(ld, s, &((struct cfg_bi *)obj)->generalise);
}
/* A role name: granted with a quoted identifier, so any name PostgreSQL takes, but not an empty one. */
static int load_role(struct loader *ld, const config_setting_t *s, char **dst)
{
    const char *text;
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (strlen(text) > 63)
        return ld_bad(ld, s, "\"%s\" is longer than a PostgreSQL role name can be (63 bytes)", text);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return ld_bad(ld, s, "a role name without control characters is expected");
    ld_set_string(dst, text);
    return AX_OK;
}
static int bi_reader_role(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_role(ld, s, &((struct cfg_bi *)obj)->reader_role);
}
static int bi_loader_role(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_role(ld, s, &((struct cfg_bi *)obj)->loader_role);
}
static const struct key bi_keys[] = {
    {"conninfo", bi_conninfo},       {"schema", bi_schema},         {"time_precision", bi_time_precision},
    {"date_precision", bi_date_precision}, {"min_k", bi_min_k},     {"min_l", bi_min_l},
    {"sensitive", bi_sensitive},     {"harmless", bi_harmless},     {"generalise", bi_generalise},
    {"reader_role", bi_reader_role}, {"loader_role", bi_loader_role},
};
/* -- wcs_api -- */

static int api_orig(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_nonempty(ld, s, &((struct cfg_wcs_api *)obj)->orig);
}
/* The key, one line; a trailing newline is not part of it. */
static void set_key(struct cfg_wcs_api *api, const char *text, size_t len)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (api->key)
        explicit_bzero(api->key, api->keylen);
    free(api->key);
    api->key = ax_strndup(text, len);
    api->keylen = len;
}
static int api_key(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_wcs_api *api = obj;
    const char *text;
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (ld->file_readable_by_others)
        return ld_bad(ld, s, "holds the API key but the file is readable by other users; use key_file, or make the "
                          "file private (chmod 600)");
    set_key(api, text, strlen(text));
    return AX_OK;
}
static int api_key_file(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_wcs_api *api = obj;
    const char *path;
    char *key = NULL;
    size_t len = 0;
    int rc = ld_get_nonempty_string(ld, s, &path);
    if (rc)
        return rc;
    /* a key this process cannot read fails the fetches that need it, not the night: the tenants
     * are anonymised with the definitions already fetched (defs.c) */
    if ((rc = ld_read_key_file(ld, s, "API key", path, &key, &len, &api->key_error)) == AX_OK && key)
        set_key(api, key, len);
    if (key) {
        explicit_bzero(key, len);
        free(key);
    }
    return rc;
}
static int api_ca_file(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_nonempty(ld, s, &((struct cfg_wcs_api *)obj)->ca_file);
}
static int api_timeout(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_duration(ld, s, &((struct cfg_wcs_api *)obj)->timeout_ms);
}
static int api_deadline(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_positive_duration(ld, s, &((struct cfg_wcs_api *)obj)->deadline_ms,
                                    "0 would leave no time to fetch anything");
}
static const struct key api_keys[] = {
    {"orig", api_orig}, {"key_file", api_key_file}, {"key", api_key}, {"ca_file", api_ca_file},
    {"timeout", api_timeout}, {"deadline", api_deadline},
};
/* -- the top level -- */

static int root_policy(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_policy_setting(ld, s, &((struct cfg *)obj)->policy);
}
static int root_timezone(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *text;
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (!tm_valid_timezone(text))
        return ld_bad(ld, s, "\"%s\" is not a time zone this system knows (like \"Europe/Paris\" or \"UTC\")", text);
    ld_set_string(&((struct cfg *)obj)->timezone, text);
    return AX_OK;
}
static int root_batch_size(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_int_range(ld, s, 1, 100000, &((struct cfg *)obj)->batch_size);
}
static int root_jobs(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_int_range(ld, s, 1, 64, &((struct cfg *)obj)->jobs);
}
static int root_lock_timeout(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_positive_duration(ld, s, &((struct cfg *)obj)->lock_timeout_ms, "0 would wait for w.c.s.'s locks forever");
}
/* How long a batch transaction should take: from 10 ms to 1 s (the limit no batch may pass). */
static int root_batch_target(struct loader *ld, const config_setting_t *s, void *obj)
{
    int ms;
    int rc = ld_get_duration(ld, s, &ms);
    if (rc)
        return rc;
    if (ms < 10 || ms > 1000)
        return ld_bad(ld, s, "must be from 10ms to 1s (a batch transaction never takes longer than a second)");
    ((struct cfg *)obj)->batch_target_ms = ms;
    return AX_OK;
}
static int root_statement_timeout(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_duration(ld, s, &((struct cfg *)obj)->statement_timeout_ms);
}
static int root_max_runtime(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_positive_duration(ld, s, &((struct cfg *)obj)->max_runtime_ms, "leave it out for no budget");
}
/* A setting of two choices, "report" or "anonymise", as whether it says report. */
static int report_or_anonymise(struct loader *ld, const config_setting_t *s, bool *report)
{
    static const char *const choices[] = {"report", "anonymise", NULL};
    const char *text;
    int rc = ld_get_one_of(ld, s, choices, &text);
    if (rc == AX_OK)
        *report = strcmp(text, "report") == 0;
    return rc;
}
static int root_wcs_logs(struct loader *ld, const config_setting_t *s, void *obj)
{
    bool report = true;
    int rc = report_or_anonymise(ld, s, &report);
    if (rc == AX_OK)
        ((struct cfg *)obj)->wcs_logs_anonymise = !report;
    return rc;
}
static int root_testdefs(struct loader *ld, const config_setting_t *s, void *obj)
{
    return report_or_anonymise(ld, s, &((struct cfg *)obj)->testdefs_report_only);
}
static int root_vacuum(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_bool(ld, s, &((struct cfg *)obj)->vacuum);
}
static int root_log_syslog(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_get_bool(ld, s, &((struct cfg *)obj)->log_syslog);
}
static int root_schemas(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_nonempty(ld, s, &((struct cfg *)obj)->schemas);
}
static int root_wcs_sites(struct loader *ld, const config_setting_t *s, void *obj)
{
    return ld_load_nonempty(ld, s, &((struct cfg *)obj)->wcs_sites);
}
static int root_backup_retention(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    const char *text;
    char msg[256];
    int days, rc = ld_get_string(ld, s, &text);
    if (rc)
        return rc;
    /* not capped: it describes the backups, it does not set them */
    if (tm_parse_period(text, &days, msg, sizeof msg) != AX_OK)
        return ld_bad(ld, s, "%s", msg);
    cfg->backup_retention_days = days;
    ld_set_string(&cfg->backup_retention_text, text);
    return AX_OK;
}
static int root_bi(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_bi *bi = &((struct cfg *)obj)->bi;
    int rc = ld_load_group(ld, s, bi_keys, AX_ARRAY_LEN(bi_keys), bi, "bi",
                        "{ conninfo = ...; schema = ...; time_precision = ...; date_precision = ...; min_k = ...;"
                        " min_l = ...; sensitive = [...]; generalise = ...; reader_role = ...; loader_role = ...; }");
    if (rc == AX_OK && !bi->conninfo)
        rc = ld_bad(ld, s, "missing \"conninfo\"");
    if (rc == AX_OK && bi->min_l > 1 && bi->nsensitive == 0)
        rc = ld_bad(ld, s, "min_l = %d asks for diversity of sensitive fields, and sensitive names none", bi->min_l);
    if (rc == AX_OK && bi->reader_role && bi->loader_role && strcmp(bi->reader_role, bi->loader_role) == 0)
        rc = ld_bad(ld, s, "reader_role and loader_role are the same role: the loader's view shows the export times"
                           " dashboards must not see");
    return rc;
}
static int root_wcs_api(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_wcs_api *api = &((struct cfg *)obj)->wcs_api;
    int rc = ld_load_group(ld, s, api_keys, AX_ARRAY_LEN(api_keys), api, "wcs_api",
                        "{ orig = ...; key_file = ...; }");
    if (rc == AX_OK && !api->orig)
        rc = ld_bad(ld, s, "missing \"orig\" (the API client name declared in w.c.s.)");
    if (rc == AX_OK && !api->key && !api->key_error)
        rc = ld_bad(ld, s, "missing \"key_file\" (or \"key\")");
    return rc;
}
static int root_discover(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    return ld_load_list(ld, s, sizeof *cfg->discover, (void **)&cfg->discover, &cfg->ndiscover, load_discover,
                     "( { conninfo = ...; databases = \"wcs_%%\"; } )");
}
/* Which database a connection string reaches, as a comparable key (NULL: it does not parse). */
static char *database_key(const char *conninfo)
{
    static const char *const parts[] = {"host", "hostaddr", "port", "dbname"};
    const char *vals[AX_ARRAY_LEN(parts)] = {0}, *user = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (!opts)
        return NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        for (size_t i = 0; i < AX_ARRAY_LEN(parts); i++)
            if (strcmp(o->keyword, parts[i]) == 0)
                vals[i] = o->val;
        if (strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    /* without dbname, libpq takes the user's name */
    char *key = ax_asprintf("%s\x1f%s\x1f%s\x1f%s", vals[0] ? vals[0] : "", vals[1] ? vals[1] : "",
                            vals[2] ? vals[2] : "", vals[3] ? vals[3] : user ? user : "");
    PQconninfoFree(opts);
    return key;
}
static int root_tenants(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    int rc = ld_load_list(ld, s, sizeof *cfg->tenants, (void **)&cfg->tenants, &cfg->ntenants, load_tenant,
                       "( { name = ...; conninfo = ...; } )");
    for (size_t j = 0; rc == AX_OK && j < cfg->ntenants; j++)
        for (size_t k = 0; rc == AX_OK && k < j; k++)
            if (strcmp(cfg->tenants[k].name, cfg->tenants[j].name) == 0)
                rc = ld_bad(ld, config_setting_get_elem(s, (unsigned)j), "tenant \"%s\" is listed twice",
                         cfg->tenants[j].name);
    /* a tenant's lock and audit live in its database: two tenants on one would keep each other off */
    char **keys = ax_calloc(cfg->ntenants + 1, sizeof *keys);
    for (size_t j = 0; rc == AX_OK && j < cfg->ntenants; j++) {
        keys[j] = database_key(cfg->tenants[j].conninfo);
        for (size_t k = 0; rc == AX_OK && keys[j] && k < j; k++)
            if (keys[k] && strcmp(keys[k], keys[j]) == 0)
                rc = ld_bad(ld, config_setting_get_elem(s, (unsigned)j),
                         "tenants \"%s\" and \"%s\" name the same database (one tenant per database)",
                         cfg->tenants[k].name, cfg->tenants[j].name);
    }
    for (size_t j = 0; j < cfg->ntenants; j++)
        free(keys[j]);
    free(keys);
    return rc;
}
static int root_forms(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    return ld_load_list(ld, s, sizeof *cfg->forms, (void **)&cfg->forms, &cfg->nforms, load_form,
                     "( { tenant = \"*\"; slug = ...; } )");
}
/* Cards have the shape of forms; their retention is not capped (registers have their own legal basis). */
static int root_cards(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    ld->uncapped = true;
    int rc = ld_load_list(ld, s, sizeof *cfg->cards, (void **)&cfg->cards, &cfg->ncards, load_form,
                       "( { tenant = \"*\"; slug = ...; } )");
    ld->uncapped = false;
    return rc;
}
static const struct key root_keys[] = {
    {"retention", root_policy},
    {"drafts", root_policy},
    {"open_submissions", root_policy},
    {"open_limit", root_policy},
    {"timezone", root_timezone},
    {"batch_size", root_batch_size},
    {"lock_timeout", root_lock_timeout},
    {"batch_target", root_batch_target},
    {"statement_timeout", root_statement_timeout},
    {"vacuum", root_vacuum},
    {"wcs_logs", root_wcs_logs},
    {"testdefs", root_testdefs},
    {"log_syslog", root_log_syslog},
    {"schemas", root_schemas},
    {"wcs_sites", root_wcs_sites},
    {"backup_retention", root_backup_retention},
    {"jobs", root_jobs},
    {"max_runtime", root_max_runtime},
    {"discover", root_discover},
    {"bi", root_bi},
    {"wcs_api", root_wcs_api},
    {"audit_key_file", ld_root_audit_key_file},
    {"audit_old_key_files", ld_root_audit_old_key_files},
    {"audit_head_directory", ld_root_audit_head_directory},
    {"tenants", root_tenants},
    {"forms", root_forms},
    {"cards", root_cards},
};
/* Every forms (cards) entry names a known tenant, and no form twice. */
static int check_entries(struct loader *ld, const struct cfg *cfg, const config_setting_t *list,
                         const struct cfg_form *entries, size_t n, const char *what)
{
    for (size_t j = 0; j < n; j++) {
        const struct cfg_form *f = &entries[j];
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)j);
        /* with discovery, tenant names are known only once the servers answered */
        if (cfg->ndiscover == 0 && strcmp(f->tenant, "*") != 0 && !cfg_find_tenant(cfg, f->tenant))
            return ld_bad(ld, config_setting_get_member(g, "tenant"), "unknown tenant \"%s\"", f->tenant);
        for (size_t k = 0; k < j; k++)
            if (strcmp(entries[k].tenant, f->tenant) == 0 && strcmp(entries[k].slug, f->slug) == 0)
                return ld_bad(ld, g, "%s \"%s\" of tenant \"%s\" is configured twice", what, f->slug, f->tenant);
    }
    return AX_OK;
}
static int load_root(struct loader *ld, const config_setting_t *root, struct cfg *cfg)
{
    int rc = ld_load_keys(ld, root, root_keys, AX_ARRAY_LEN(root_keys), cfg, NULL);
    if (rc)
        return rc;

    /* cross checks, once everything is read */
    if (!cfg->wcs_api.orig) {
        for (size_t j = 0; j < cfg->ntenants; j++)
            if (cfg->tenants[j].url)
                return ld_bad(ld, config_setting_get_elem(config_setting_get_member(root, "tenants"), (unsigned)j),
                           "tenant \"%s\" has a url but there is no wcs_api group to sign requests with",
                           cfg->tenants[j].name);
        for (size_t j = 0; j < cfg->ndiscover; j++)
            if (cfg->discover[j].url)
                return ld_bad(ld, config_setting_get_elem(config_setting_get_member(root, "discover"), (unsigned)j),
                           "has a url but there is no wcs_api group to sign requests with");
    }
    if ((rc = check_entries(ld, cfg, config_setting_get_member(root, "forms"), cfg->forms, cfg->nforms, "form")))
        return rc;
    return check_entries(ld, cfg, config_setting_get_member(root, "cards"), cfg->cards, cfg->ncards, "card");
}
int cfg_load(const char *path, struct cfg **out, char *err, size_t errlen)
{
    struct loader ld = {.path = path, .err = err, .errlen = errlen};
    struct stat st;
    config_t lc;
    int rc;

    *out = NULL;
    /* read once, bounded, then parsed from memory: what is checked is what is parsed */
    char why[128];
    size_t len;
    char *text = cfg_read_file(path, CFG_MAX_CONFIG_BYTES, &len, why, sizeof why);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read configuration file: %s", path, why);
        return AX_ERR_IO;
    }
    if (stat(path, &st) == 0)
        ld.file_readable_by_others = (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
    if ((rc = cfg_check_text(path, text, len, err, errlen))) {
        free(text);
        return rc;
    }

    config_init(&lc);
    int parsed = config_read_string(&lc, text);
    free(text);
    if (parsed != CONFIG_TRUE) {
        snprintf(err, errlen, "%s:%d: %s", path, config_error_line(&lc), config_error_text(&lc));
        config_destroy(&lc);
        return AX_ERR_CONFIG;
    }

    struct cfg *cfg = ax_calloc(1, sizeof *cfg);
    cfg->path = ax_strdup(path);
    cfg->batch_size = 2000;
    cfg->lock_timeout_ms = 2000;
    cfg->batch_target_ms = 500;
    cfg->statement_timeout_ms = 600000;
    cfg->vacuum = true;
    cfg->schemas = ax_strdup("/var/lib/anonymizer/schemas");
    cfg->audit.head_directory = ax_strdup("/var/lib/anonymizer/audit");
    cfg->jobs = 1;
    cfg->bi.schema = ax_strdup("anonymised");
    cfg->bi.time_precision = ax_strdup("day");
    cfg->bi.date_precision = ax_strdup("month");
    cfg->bi.min_k = 5;
    cfg->bi.min_l = 1;
    cfg->bi.generalise = true;
    cfg->wcs_api.timeout_ms = 30000;
    cfg->wcs_api.deadline_ms = 300000;
    cfg->backup_retention_days = 120;
    cfg->backup_retention_text = ax_strdup("4 months");
    cfg_settings_digest(&lc, cfg->digest);
    rc = load_root(&ld, config_root_setting(&lc), cfg);
    config_destroy(&lc);
    if (rc) {
        cfg_free(cfg);
        return rc;
    }
    *out = cfg;
    return AX_OK;
}
