/*
 * config.c: loading and validating the configuration file.
 *
 * Validation is strict on purpose: an unknown key is more likely a typo of a
 * privacy setting than something to ignore, and a retention past the legal
 * cap is refused, never clamped.
 */
#include "config.h"
#include "ax.h"
#include "strbuf.h"
#include "timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct loader {
    const char *path;
    char *err;
    size_t errlen;
    bool file_readable_by_others;
};

const char *cfg_source_str(enum cfg_source src)
{
    switch (src) {
    case CFG_SRC_DEFAULT: return "default";
    case CFG_SRC_GLOBAL: return "global";
    case CFG_SRC_TENANT: return "tenant";
    case CFG_SRC_FORM: return "form";
    }
    return "?";
}

/* "tenants[1].retention" for a setting */
static void setting_path(const config_setting_t *s, struct strbuf *out)
{
    if (!s || config_setting_is_root(s))
        return;
    const config_setting_t *parent = config_setting_parent(s);
    setting_path(parent, out);
    if (config_setting_name(s)) {
        if (out->len)
            sb_appendc(out, '.');
        sb_append(out, config_setting_name(s));
    } else {
        sb_appendf(out, "[%d]", config_setting_index(s));
    }
}

static int bad(struct loader *ld, const config_setting_t *s, const char *fmt, ...) AX_PRINTF(3, 4);

static int bad(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
    struct strbuf line;
    va_list ap;
    char msg[512];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sb_init(&line);
    const char *file = s && config_setting_source_file(s) ? config_setting_source_file(s) : ld->path;
    sb_append(&line, file);
    if (s && config_setting_source_line(s))
        sb_appendf(&line, ":%u", config_setting_source_line(s));
    sb_append(&line, ": ");
    struct strbuf spath;
    sb_init(&spath);
    setting_path(s, &spath);
    if (spath.len)
        sb_appendf(&line, "%s: ", spath.buf);
    sb_free(&spath);
    sb_append(&line, msg);
    snprintf(ld->err, ld->errlen, "%s", line.buf);
    sb_free(&line);
    return AX_ERR_CONFIG;
}

static int get_string(struct loader *ld, const config_setting_t *s, const char **out)
{
    *out = "";
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return bad(ld, s, "must be a string");
    *out = config_setting_get_string(s);
    return AX_OK;
}

static int get_nonempty_string(struct loader *ld, const config_setting_t *s, const char **out)
{
    int rc = get_string(ld, s, out);
    if (rc == AX_OK && (*out)[0] == '\0')
        return bad(ld, s, "must not be empty");
    return rc;
}

static int get_bool(struct loader *ld, const config_setting_t *s, bool *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return bad(ld, s, "must be true or false");
    *out = config_setting_get_bool(s) != 0;
    return AX_OK;
}

static int get_int_range(struct loader *ld, const config_setting_t *s, long long min, long long max, int *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return bad(ld, s, "must be an integer");
    long long v = config_setting_get_int64(s);
    if (v < min || v > max)
        return bad(ld, s, "%lld is out of range (%lld to %lld)", v, min, max);
    *out = (int)v;
    return AX_OK;
}

static int get_duration(struct loader *ld, const config_setting_t *s, int *out_ms)
{
    const char *text;
    char msg[256];
    long long ms;
    int rc = get_string(ld, s, &text);
    if (rc)
        return rc;
    if (tm_parse_duration_ms(text, &ms, msg, sizeof msg) != AX_OK)
        return bad(ld, s, "%s", msg);
    *out_ms = (int)ms;
    return AX_OK;
}

/* Policy keys shared by the global, tenant and form levels. */
static int policy_key(struct loader *ld, const config_setting_t *s, struct cfg_policy *pol, bool *handled)
{
    const char *name = config_setting_name(s);
    const char *text;
    char msg[256];
    int rc;

    *handled = true;
    if (strcmp(name, "retention") == 0) {
        if ((rc = get_string(ld, s, &text)))
            return rc;
        int days;
        if (tm_parse_period(text, &days, msg, sizeof msg) != AX_OK)
            return bad(ld, s, "%s", msg);
        if (days > RETENTION_CAP_DAYS)
            return bad(ld, s,
                       "\"%s\" exceeds the legal cap of three months (90 days, a month counting 30 days)",
                       text);
        pol->has_retention = true;
        pol->retention_days = days;
        free(pol->retention_text);
        pol->retention_text = ax_strdup(text);
        return AX_OK;
    }
    if (strcmp(name, "drafts") == 0) {
        if ((rc = get_string(ld, s, &text)))
            return rc;
        if (strcmp(text, "delete") == 0)
            pol->drafts = CFG_DRAFTS_DELETE;
        else if (strcmp(text, "anonymise") == 0)
            pol->drafts = CFG_DRAFTS_ANONYMISE;
        else
            return bad(ld, s, "\"%s\" is not one of \"delete\", \"anonymise\"", text);
        pol->has_drafts = true;
        return AX_OK;
    }
    if (strcmp(name, "open_submissions") == 0) {
        if ((rc = get_string(ld, s, &text)))
            return rc;
        if (strcmp(text, "skip") == 0)
            pol->open_submissions = CFG_OPEN_SKIP;
        else if (strcmp(text, "anonymise") == 0)
            pol->open_submissions = CFG_OPEN_ANONYMISE;
        else
            return bad(ld, s, "\"%s\" is not one of \"skip\", \"anonymise\"", text);
        pol->has_open = true;
        return AX_OK;
    }
    *handled = false;
    return AX_OK;
}

static bool has_password(const char *conninfo)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    bool found = false;

    PQfreemem(errmsg);
    if (!opts)
        return false;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            found = true;
    PQconninfoFree(opts);
    return found;
}

static int check_conninfo(struct loader *ld, const config_setting_t *s, const char *conninfo)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);

    /* libpq's message may quote part of the string, password included: it
     * is not repeated */
    PQfreemem(errmsg);
    if (!opts)
        return bad(ld, s, "is not a valid connection string (see \"Connection Strings\" in the libpq documentation)");
    PQconninfoFree(opts);
    if (has_password(conninfo) && ld->file_readable_by_others)
        return bad(ld, s,
                   "holds a password but the file is readable by other users; use ~/.pgpass or a "
                   "service file, or make the file private (chmod 600)");
    return AX_OK;
}

static int load_tenant(struct loader *ld, const config_setting_t *g, struct cfg_tenant *t)
{
    int rc;
    const char *text;

    if (!config_setting_is_group(g))
        return bad(ld, g, "must be a group { name = ...; conninfo = ...; }");
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        bool handled;
        if ((rc = policy_key(ld, s, &t->policy, &handled)))
            return rc;
        if (handled)
            continue;
        if (strcmp(name, "name") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)))
                return rc;
            if (!cfg_valid_tenant_name(text))
                return bad(ld, s, "\"%s\" cannot name a directory (no \"/\", no leading \".\")", text);
            t->name = ax_strdup(text);
        } else if (strcmp(name, "conninfo") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)))
                return rc;
            if ((rc = check_conninfo(ld, s, text)))
                return rc;
            t->conninfo = ax_strdup(text);
        } else {
            return bad(ld, s, "unknown setting (tenant settings: name, conninfo, retention, drafts, open_submissions)");
        }
    }
    if (!t->name)
        return bad(ld, g, "missing \"name\"");
    if (!t->conninfo)
        return bad(ld, g, "missing \"conninfo\"");
    return AX_OK;
}

static bool simple_identifier(const char *s)
{
    if (!s[0] || strlen(s) > 63 || !(islower((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

static int load_bi(struct loader *ld, const config_setting_t *g, struct cfg_bi *bi)
{
    int rc;
    const char *text;

    if (!config_setting_is_group(g))
        return bad(ld, g, "must be a group { conninfo = ...; schema = ...; time_precision = ...; }");
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        if (strcmp(name, "conninfo") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)) || (rc = check_conninfo(ld, s, text)))
                return rc;
            bi->conninfo = ax_strdup(text);
        } else if (strcmp(name, "schema") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)))
                return rc;
            if (!simple_identifier(text))
                return bad(ld, s, "\"%s\" is not a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63)", text);
            free(bi->schema);
            bi->schema = ax_strdup(text);
        } else if (strcmp(name, "time_precision") == 0) {
            if ((rc = get_string(ld, s, &text)))
                return rc;
            if (strcmp(text, "minute") != 0 && strcmp(text, "hour") != 0 && strcmp(text, "day") != 0)
                return bad(ld, s, "\"%s\" is not one of \"minute\", \"hour\", \"day\"", text);
            free(bi->time_precision);
            bi->time_precision = ax_strdup(text);
        } else {
            return bad(ld, s, "unknown setting (bi settings: conninfo, schema, time_precision)");
        }
    }
    if (!bi->conninfo)
        return bad(ld, g, "missing \"conninfo\"");
    return AX_OK;
}

static int load_name_list(struct loader *ld, const config_setting_t *s, char ***out, size_t *n);

static int load_discover(struct loader *ld, const config_setting_t *g, struct cfg_discover *d)
{
    int rc;
    const char *text;

    if (!config_setting_is_group(g))
        return bad(ld, g, "must be a group { conninfo = ...; databases = \"wcs_%%\"; }");
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        if (strcmp(name, "conninfo") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)) || (rc = check_conninfo(ld, s, text)))
                return rc;
            d->conninfo = ax_strdup(text);
        } else if (strcmp(name, "databases") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)))
                return rc;
            d->databases = ax_strdup(text);
        } else if (strcmp(name, "exclude") == 0) {
            if ((rc = load_name_list(ld, s, &d->exclude, &d->nexclude)))
                return rc;
        } else {
            return bad(ld, s, "unknown setting (discover settings: conninfo, databases, exclude)");
        }
    }
    if (!d->conninfo)
        return bad(ld, g, "missing \"conninfo\"");
    if (!d->databases)
        return bad(ld, g, "missing \"databases\" (a LIKE pattern, like \"wcs_%%\")");
    return AX_OK;
}

static int load_name_list(struct loader *ld, const config_setting_t *s, char ***out, size_t *n)
{
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return bad(ld, s, "must be a list of field varnames or ids, like [\"nom\", \"3\"]");
    int len = config_setting_length(s);
    *out = ax_calloc((size_t)len, sizeof(char *));
    *n = 0;
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *text;
        int rc = get_nonempty_string(ld, e, &text);
        if (rc)
            return rc;
        (*out)[(*n)++] = ax_strdup(text);
    }
    return AX_OK;
}

static int load_form(struct loader *ld, const config_setting_t *g, struct cfg_form *f)
{
    int rc;
    const char *text;

    if (!config_setting_is_group(g))
        return bad(ld, g, "must be a group { tenant = ...; slug = ...; }");
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        bool handled;
        if ((rc = policy_key(ld, s, &f->policy, &handled)))
            return rc;
        if (handled)
            continue;
        if (strcmp(name, "tenant") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)))
                return rc;
            f->tenant = ax_strdup(text);
        } else if (strcmp(name, "slug") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)))
                return rc;
            f->slug = ax_strdup(text);
        } else if (strcmp(name, "keep") == 0) {
            if ((rc = load_name_list(ld, s, &f->keep, &f->nkeep)))
                return rc;
            f->has_keep = true;
        } else if (strcmp(name, "blank") == 0) {
            if ((rc = load_name_list(ld, s, &f->blank, &f->nblank)))
                return rc;
            f->has_blank = true;
        } else {
            return bad(ld, s,
                       "unknown setting (form settings: tenant, slug, retention, drafts, open_submissions, keep, blank)");
        }
    }
    if (!f->tenant)
        return bad(ld, g, "missing \"tenant\" (a tenant name, or \"*\" for every tenant)");
    if (!f->slug)
        return bad(ld, g, "missing \"slug\"");
    for (size_t i = 0; i < f->nkeep; i++)
        for (size_t j = 0; j < f->nblank; j++)
            if (strcmp(f->keep[i], f->blank[j]) == 0)
                return bad(ld, g, "field \"%s\" is both in keep and in blank", f->keep[i]);
    return AX_OK;
}

static void policy_free(struct cfg_policy *p)
{
    free(p->retention_text);
}

void cfg_free(struct cfg *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->schemas);
    free(cfg->backup_retention_text);
    free(cfg->bi.conninfo);
    free(cfg->bi.schema);
    free(cfg->bi.time_precision);
    policy_free(&cfg->policy);
    for (size_t i = 0; i < cfg->ntenants; i++) {
        free(cfg->tenants[i].name);
        free(cfg->tenants[i].conninfo);
        free(cfg->tenants[i].dbname);
        policy_free(&cfg->tenants[i].policy);
    }
    for (size_t i = 0; i < cfg->ndiscover; i++) {
        free(cfg->discover[i].conninfo);
        free(cfg->discover[i].databases);
        for (size_t j = 0; j < cfg->discover[i].nexclude; j++)
            free(cfg->discover[i].exclude[j]);
        free(cfg->discover[i].exclude);
    }
    free(cfg->discover);
    free(cfg->tenants);
    for (size_t i = 0; i < cfg->nforms; i++) {
        struct cfg_form *f = &cfg->forms[i];
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
    free(cfg->forms);
    free(cfg);
}

static int load_root(struct loader *ld, const config_setting_t *root, struct cfg *cfg)
{
    int rc;
    const char *text;

    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        bool handled;
        if ((rc = policy_key(ld, s, &cfg->policy, &handled)))
            return rc;
        if (handled)
            continue;
        if (strcmp(name, "batch_size") == 0) {
            if ((rc = get_int_range(ld, s, 1, 100000, &cfg->batch_size)))
                return rc;
        } else if (strcmp(name, "lock_timeout") == 0) {
            if ((rc = get_duration(ld, s, &cfg->lock_timeout_ms)))
                return rc;
        } else if (strcmp(name, "statement_timeout") == 0) {
            if ((rc = get_duration(ld, s, &cfg->statement_timeout_ms)))
                return rc;
        } else if (strcmp(name, "vacuum") == 0) {
            if ((rc = get_bool(ld, s, &cfg->vacuum)))
                return rc;
        } else if (strcmp(name, "log_syslog") == 0) {
            if ((rc = get_bool(ld, s, &cfg->log_syslog)))
                return rc;
        } else if (strcmp(name, "schemas") == 0) {
            if ((rc = get_nonempty_string(ld, s, &text)))
                return rc;
            free(cfg->schemas);
            cfg->schemas = ax_strdup(text);
        } else if (strcmp(name, "backup_retention") == 0) {
            char msg[256];
            int days;
            if ((rc = get_string(ld, s, &text)))
                return rc;
            /* not capped: it describes the backups, it does not set them */
            if (tm_parse_period(text, &days, msg, sizeof msg) != AX_OK)
                return bad(ld, s, "%s", msg);
            cfg->backup_retention_days = days;
            free(cfg->backup_retention_text);
            cfg->backup_retention_text = ax_strdup(text);
        } else if (strcmp(name, "jobs") == 0) {
            if ((rc = get_int_range(ld, s, 1, 64, &cfg->jobs)))
                return rc;
        } else if (strcmp(name, "max_runtime") == 0) {
            if ((rc = get_duration(ld, s, &cfg->max_runtime_ms)))
                return rc;
        } else if (strcmp(name, "discover") == 0) {
            if (!config_setting_is_list(s) && !config_setting_is_array(s))
                return bad(ld, s, "must be a list of groups: ( { conninfo = ...; databases = \"wcs_%%\"; } )");
            size_t n = (size_t)config_setting_length(s);
            cfg->discover = ax_calloc(n, sizeof *cfg->discover);
            for (size_t j = 0; j < n; j++) {
                cfg->ndiscover = j + 1;
                if ((rc = load_discover(ld, config_setting_get_elem(s, (unsigned)j), &cfg->discover[j])))
                    return rc;
            }
        } else if (strcmp(name, "bi") == 0) {
            if ((rc = load_bi(ld, s, &cfg->bi)))
                return rc;
        } else if (strcmp(name, "tenants") == 0) {
            if (!config_setting_is_list(s) && !config_setting_is_array(s))
                return bad(ld, s, "must be a list of groups: ( { name = ...; conninfo = ...; } )");
            size_t n = (size_t)config_setting_length(s);
            cfg->tenants = ax_calloc(n, sizeof *cfg->tenants);
            for (size_t j = 0; j < n; j++) {
                cfg->ntenants = j + 1;
                if ((rc = load_tenant(ld, config_setting_get_elem(s, (unsigned)j), &cfg->tenants[j])))
                    return rc;
                for (size_t k = 0; k < j; k++)
                    if (strcmp(cfg->tenants[k].name, cfg->tenants[j].name) == 0)
                        return bad(ld, config_setting_get_elem(s, (unsigned)j), "tenant \"%s\" is listed twice",
                                   cfg->tenants[j].name);
            }
        } else if (strcmp(name, "forms") == 0) {
            if (!config_setting_is_list(s) && !config_setting_is_array(s))
                return bad(ld, s, "must be a list of groups: ( { tenant = \"*\"; slug = ...; } )");
            size_t n = (size_t)config_setting_length(s);
            cfg->forms = ax_calloc(n, sizeof *cfg->forms);
            for (size_t j = 0; j < n; j++) {
                cfg->nforms = j + 1;
                if ((rc = load_form(ld, config_setting_get_elem(s, (unsigned)j), &cfg->forms[j])))
                    return rc;
            }
        } else {
            return bad(ld, s, "unknown setting (see anonymizer.conf(5))");
        }
    }

    /* cross checks, once everything is read */
    const config_setting_t *forms = config_setting_get_member(root, "forms");
    for (size_t j = 0; j < cfg->nforms; j++) {
        struct cfg_form *f = &cfg->forms[j];
        const config_setting_t *g = config_setting_get_elem(forms, (unsigned)j);
        /* with discovery, tenant names are known only once the servers answered */
        if (cfg->ndiscover == 0 && strcmp(f->tenant, "*") != 0 && !cfg_find_tenant(cfg, f->tenant))
            return bad(ld, config_setting_get_member(g, "tenant"), "unknown tenant \"%s\"", f->tenant);
        for (size_t k = 0; k < j; k++)
            if (strcmp(cfg->forms[k].tenant, f->tenant) == 0 && strcmp(cfg->forms[k].slug, f->slug) == 0)
                return bad(ld, g, "form \"%s\" of tenant \"%s\" is configured twice", f->slug, f->tenant);
    }
    return AX_OK;
}

char *cfg_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    struct strbuf sb;
    char chunk[8192];
    size_t n;
    sb_init(&sb);
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        sb_appendn(&sb, chunk, n);
    int failed = ferror(fp);
    fclose(fp);
    if (failed) {
        sb_free(&sb);
        errno = EIO;
        return NULL;
    }
    *len = sb.len;
    return sb.buf; /* ownership passes to the caller */
}

int cfg_load(const char *path, struct cfg **out, char *err, size_t errlen)
{
    struct loader ld = {.path = path, .err = err, .errlen = errlen};
    struct stat st;
    config_t lc;
    int rc;

    *out = NULL;
    /* open it ourselves first: libconfig only says "file I/O error" */
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot read configuration file: %s", path, strerror(errno));
        return AX_ERR_IO;
    }
    if (fstat(fileno(fp), &st) == 0)
        ld.file_readable_by_others = (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
    fclose(fp);

    config_init(&lc);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read configuration file", path);
        else
            snprintf(err, errlen, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
                     config_error_line(&lc), config_error_text(&lc));
        config_destroy(&lc);
        return AX_ERR_CONFIG;
    }

    struct cfg *cfg = ax_calloc(1, sizeof *cfg);
    cfg->path = ax_strdup(path);
    cfg->batch_size = 2000;
    cfg->lock_timeout_ms = 2000;
    cfg->statement_timeout_ms = 600000;
    cfg->vacuum = true;
    cfg->schemas = ax_strdup("/var/lib/anonymizer/schemas");
    cfg->jobs = 1;
    cfg->bi.schema = ax_strdup("anonymised");
    cfg->bi.time_precision = ax_strdup("hour");
    cfg->backup_retention_days = 120;
    cfg->backup_retention_text = ax_strdup("4 months");
    rc = load_root(&ld, config_root_setting(&lc), cfg);
    config_destroy(&lc);
    if (rc) {
        cfg_free(cfg);
        return rc;
    }
    *out = cfg;
    return AX_OK;
}

int cfg_valid_tenant_name(const char *name)
{
    return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

void cfg_add_discovered(struct cfg *cfg, const char *name, const char *conninfo, const char *dbname, int entry)
{
    cfg->tenants = ax_reallocarray(cfg->tenants, cfg->ntenants + 1, sizeof *cfg->tenants);
    struct cfg_tenant *t = &cfg->tenants[cfg->ntenants++];
    memset(t, 0, sizeof *t);
    t->name = ax_strdup(name);
    t->conninfo = ax_strdup(conninfo);
    t->dbname = ax_strdup(dbname);
    t->discovered = entry;
}

const struct cfg_form *cfg_unknown_form_tenant(const struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->nforms; i++)
        if (strcmp(cfg->forms[i].tenant, "*") != 0 && !cfg_find_tenant(cfg, cfg->forms[i].tenant))
            return &cfg->forms[i];
    return NULL;
}

const struct cfg_tenant *cfg_find_tenant(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ntenants; i++)
        if (strcmp(cfg->tenants[i].name, name) == 0)
            return &cfg->tenants[i];
    return NULL;
}

static void fold(const struct cfg_policy *p, enum cfg_source src, struct cfg_resolved *out)
{
    if (p->has_retention) {
        out->retention_days = p->retention_days;
        out->retention_text = p->retention_text;
        out->retention_source = src;
    }
    if (p->has_drafts) {
        out->drafts = p->drafts;
        out->drafts_source = src;
    }
    if (p->has_open) {
        out->open_submissions = p->open_submissions;
        out->open_source = src;
    }
}

static void fold_form(const struct cfg_form *f, struct cfg_resolved *out)
{
    fold(&f->policy, CFG_SRC_FORM, out);
    if (f->has_keep) {
        out->keep = f->keep;
        out->nkeep = f->nkeep;
    }
    if (f->has_blank) {
        out->blank = f->blank;
        out->nblank = f->nblank;
    }
}

void cfg_resolve(const struct cfg *cfg, const struct cfg_tenant *tenant, const char *slug,
                 struct cfg_resolved *out)
{
    memset(out, 0, sizeof *out);
    out->retention_days = RETENTION_CAP_DAYS;
    out->retention_text = "90 days";
    out->retention_source = CFG_SRC_DEFAULT;
    out->drafts = CFG_DRAFTS_DELETE;
    out->open_submissions = CFG_OPEN_SKIP;
    fold(&cfg->policy, CFG_SRC_GLOBAL, out);
    if (tenant)
        fold(&tenant->policy, CFG_SRC_TENANT, out);
    /* "*" entries first, then the tenant's own: the more specific wins */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < cfg->nforms; i++) {
            const struct cfg_form *f = &cfg->forms[i];
            if (strcmp(f->slug, slug) != 0)
                continue;
            bool wildcard = strcmp(f->tenant, "*") == 0;
            if (pass == 0 && wildcard)
                fold_form(f, out);
            else if (pass == 1 && !wildcard && tenant && strcmp(f->tenant, tenant->name) == 0)
                fold_form(f, out);
        }
    }
}
