/*
 * config.c: loading and validating the configuration file.
 *
 * Validation is strict on purpose: an unknown key is more likely a typo of a
 * privacy setting than something to ignore, and a retention past the legal
 * cap is refused, never clamped.
 */
#include "config.h"
#include "ax.h"
#include "http.h"
#include "i18n.h"
#include "strbuf.h"
#include "timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct loader {
    const char *path;
    char *err;
    size_t errlen;
    bool file_readable_by_others;
    bool uncapped; /* reading a cards entry: registers are not held to the three-month cap */
};

const char *cfg_source_str(enum cfg_source src)
{
    switch (src) {
    /* marked for translation: the text report translates them */
    case CFG_SRC_DEFAULT: return N_("default");
    case CFG_SRC_GLOBAL: return N_("global");
    case CFG_SRC_TENANT: return N_("tenant");
    case CFG_SRC_FORM: return N_("form");
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

/* The policy settings shared by the global, tenant and form levels. */
static int policy_setting(struct loader *ld, const config_setting_t *s, struct cfg_policy *pol)
{
    const char *name = config_setting_name(s);
    const char *text;
    char msg[256];
    int rc;

    if ((rc = get_string(ld, s, &text)))
        return rc;
    if (strcmp(name, "retention") == 0) {
        int days;
        if (tm_parse_period(text, &days, msg, sizeof msg) != AX_OK)
            return bad(ld, s, "%s", msg);
        if (days > RETENTION_CAP_DAYS && !ld->uncapped)
            return bad(ld, s,
                       "\"%s\" exceeds the legal cap of three months (" RETENTION_CAP_TEXT
                       ", a month counting 30 days)",
                       text);
        pol->has_retention = true;
        pol->retention_days = days;
        free(pol->retention_text);
        pol->retention_text = ax_strdup(text);
    } else if (strcmp(name, "open_limit") == 0) {
        int days;
        /* not capped: it says when an open submission is to be reviewed */
        if (tm_parse_period(text, &days, msg, sizeof msg) != AX_OK)
            return bad(ld, s, "%s", msg);
        pol->has_open_limit = true;
        pol->open_limit_days = days;
        free(pol->open_limit_text);
        pol->open_limit_text = ax_strdup(text);
    } else if (strcmp(name, "drafts") == 0) {
        if (strcmp(text, "delete") == 0)
            pol->drafts = CFG_DRAFTS_DELETE;
        else if (strcmp(text, "anonymise") == 0)
            pol->drafts = CFG_DRAFTS_ANONYMISE;
        else
            return bad(ld, s, "\"%s\" is not one of \"delete\", \"anonymise\"", text);
        pol->has_drafts = true;
    } else { /* open_submissions */
        if (strcmp(text, "skip") == 0)
            pol->open_submissions = CFG_OPEN_SKIP;
        else if (strcmp(text, "anonymise") == 0)
            pol->open_submissions = CFG_OPEN_ANONYMISE;
        else
            return bad(ld, s, "\"%s\" is not one of \"skip\", \"anonymise\"", text);
        pol->has_open = true;
    }
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
    free(cfg->backup_retention_text);
    free(cfg->timezone);
    free(cfg->bi.conninfo);
    free(cfg->bi.schema);
    free(cfg->bi.time_precision);
    free(cfg->bi.reader_role);
    for (size_t i = 0; i < cfg->bi.nharmless; i++)
        free(cfg->bi.harmless[i]);
    free(cfg->bi.harmless);
    free(cfg->wcs_api.orig);
    if (cfg->wcs_api.key)
        explicit_bzero(cfg->wcs_api.key, cfg->wcs_api.keylen);
    free(cfg->wcs_api.key);
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

/*
 * Groups are read through tables: each setting name with the function that
 * reads it into the group's object.  A name not in the table is an error
 * that lists the known ones.
 */
struct key {
    const char *name;
    int (*load)(struct loader *ld, const config_setting_t *s, void *obj);
};

static int load_keys(struct loader *ld, const config_setting_t *g, const struct key *keys, size_t nkeys, void *obj,
                     const char *what)
{
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const struct key *k = NULL;
        for (size_t j = 0; j < nkeys && !k; j++)
            if (strcmp(keys[j].name, config_setting_name(s)) == 0)
                k = &keys[j];
        if (!k) {
            if (!what)
                return bad(ld, s, "unknown setting (see anonymizer.conf(5))");
            struct strbuf names;
            sb_init(&names);
            for (size_t j = 0; j < nkeys; j++)
                sb_appendf(&names, "%s%s", j ? ", " : "", keys[j].name);
            int rc = bad(ld, s, "unknown setting (%s settings: %s)", what, names.buf);
            sb_free(&names);
            return rc;
        }
        int rc = k->load(ld, s, obj);
        if (rc)
            return rc;
    }
    return AX_OK;
}

static int load_group(struct loader *ld, const config_setting_t *g, const struct key *keys, size_t nkeys, void *obj,
                      const char *what, const char *shape)
{
    if (!config_setting_is_group(g))
        return bad(ld, g, "must be a group %s", shape);
    return load_keys(ld, g, keys, nkeys, obj, what);
}

/* A list of groups into a new array of n items of size bytes, each read by load_one. */
static int load_list(struct loader *ld, const config_setting_t *s, size_t size, void **items, size_t *n,
                     int (*load_one)(struct loader *ld, const config_setting_t *g, void *item), const char *shape)
{
    if (!config_setting_is_list(s) && !config_setting_is_array(s))
        return bad(ld, s, "must be a list of groups: %s", shape);
    size_t len = (size_t)config_setting_length(s);
    *items = ax_calloc(len, size);
    for (size_t j = 0; j < len; j++) {
        *n = j + 1; /* counted as soon as allocated: cfg_free frees what was read */
        int rc = load_one(ld, config_setting_get_elem(s, (unsigned)j), (char *)*items + j * size);
        if (rc)
            return rc;
    }
    return AX_OK;
}

static void set_string(char **dst, const char *value)
{
    free(*dst);
    *dst = ax_strdup(value);
}

static int load_nonempty(struct loader *ld, const config_setting_t *s, char **dst)
{
    const char *text;
    int rc = get_nonempty_string(ld, s, &text);
    if (rc == AX_OK)
        set_string(dst, text);
    return rc;
}

static int load_conninfo(struct loader *ld, const config_setting_t *s, char **dst)
{
    const char *text;
    int rc = get_nonempty_string(ld, s, &text);
    if (rc == AX_OK && (rc = check_conninfo(ld, s, text)) == AX_OK)
        set_string(dst, text);
    return rc;
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

/* -- tenants -- */

static int tenant_name(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *text;
    int rc = get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (!cfg_valid_tenant_name(text))
        return bad(ld, s, "\"%s\" cannot name a directory (no \"/\", no leading \".\")", text);
    set_string(&((struct cfg_tenant *)obj)->name, text);
    return AX_OK;
}

static int tenant_conninfo(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_conninfo(ld, s, &((struct cfg_tenant *)obj)->conninfo);
}

/* A tenant's w.c.s. address: https (or http to a loopback host), normalised to end in "/". */
static int load_url(struct loader *ld, const config_setting_t *s, char **dst, bool pattern)
{
    const char *text;
    char msg[256];
    int rc = get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (pattern) {
        const char *pct = strstr(text, "%s");
        if (!pct || strchr(pct + 2, '%') || strchr(text, '%') != pct)
            return bad(ld, s, "\"%s\" must contain \"%%s\" once (the host taken from the database name)", text);
    }
    char *probe = pattern ? ax_asprintf("%.*sx%s", (int)(strstr(text, "%s") - text), text, strstr(text, "%s") + 2)
                          : ax_strdup(text);
    bool ok = http_url_allowed(probe, msg, sizeof msg);
    free(probe);
    if (!ok)
        return bad(ld, s, "\"%s\": %s", text, msg);
    size_t n = strlen(text);
    set_string(dst, text);
    if (text[n - 1] != '/') {
        free(*dst);
        *dst = ax_asprintf("%s/", text);
    }
    return AX_OK;
}

static int tenant_url(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_url(ld, s, &((struct cfg_tenant *)obj)->url, false);
}

static int tenant_policy(struct loader *ld, const config_setting_t *s, void *obj)
{
    return policy_setting(ld, s, &((struct cfg_tenant *)obj)->policy);
}

static const struct key tenant_keys[] = {
    {"name", tenant_name}, {"conninfo", tenant_conninfo}, {"url", tenant_url}, {"retention", tenant_policy},
    {"drafts", tenant_policy}, {"open_submissions", tenant_policy}, {"open_limit", tenant_policy},
};

static int load_tenant(struct loader *ld, const config_setting_t *g, void *item)
{
    struct cfg_tenant *t = item;
    int rc = load_group(ld, g, tenant_keys, AX_ARRAY_LEN(tenant_keys), t, "tenant",
                        "{ name = ...; conninfo = ...; }");
    if (rc)
        return rc;
    if (!t->name)
        return bad(ld, g, "missing \"name\"");
    if (!t->conninfo)
        return bad(ld, g, "missing \"conninfo\"");
    return AX_OK;
}

/* -- forms -- */

static int form_tenant(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_nonempty(ld, s, &((struct cfg_form *)obj)->tenant);
}

static int form_slug(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_nonempty(ld, s, &((struct cfg_form *)obj)->slug);
}

static int form_policy(struct loader *ld, const config_setting_t *s, void *obj)
{
    return policy_setting(ld, s, &((struct cfg_form *)obj)->policy);
}

static int form_keep(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_form *f = obj;
    f->has_keep = true;
    return load_name_list(ld, s, &f->keep, &f->nkeep);
}

static int form_blank(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_form *f = obj;
    f->has_blank = true;
    return load_name_list(ld, s, &f->blank, &f->nblank);
}

static const struct key form_keys[] = {
    {"tenant", form_tenant}, {"slug", form_slug},       {"retention", form_policy}, {"drafts", form_policy},
    {"open_submissions", form_policy}, {"open_limit", form_policy}, {"keep", form_keep}, {"blank", form_blank},
};

static int load_form(struct loader *ld, const config_setting_t *g, void *item)
{
    struct cfg_form *f = item;
    int rc = load_group(ld, g, form_keys, AX_ARRAY_LEN(form_keys), f, "form", "{ tenant = ...; slug = ...; }");
    if (rc)
        return rc;
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

/* -- discover -- */

static int discover_conninfo(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_conninfo(ld, s, &((struct cfg_discover *)obj)->conninfo);
}

static int discover_databases(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_nonempty(ld, s, &((struct cfg_discover *)obj)->databases);
}

static int discover_exclude(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_discover *d = obj;
    return load_name_list(ld, s, &d->exclude, &d->nexclude);
}

static int discover_url(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_url(ld, s, &((struct cfg_discover *)obj)->url, true);
}

static const struct key discover_keys[] = {
    {"conninfo", discover_conninfo}, {"databases", discover_databases}, {"exclude", discover_exclude},
    {"url", discover_url},
};

static int load_discover(struct loader *ld, const config_setting_t *g, void *item)
{
    struct cfg_discover *d = item;
    int rc = load_group(ld, g, discover_keys, AX_ARRAY_LEN(discover_keys), d, "discover",
                        "{ conninfo = ...; databases = \"wcs_%%\"; }");
    if (rc)
        return rc;
    if (!d->conninfo)
        return bad(ld, g, "missing \"conninfo\"");
    if (!d->databases)
        return bad(ld, g, "missing \"databases\" (a LIKE pattern, like \"wcs_%%\")");
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
    return load_conninfo(ld, s, &((struct cfg_bi *)obj)->conninfo);
}

static int bi_schema(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *text;
    int rc = get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (!simple_identifier(text))
        return bad(ld, s, "\"%s\" is not a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63)", text);
    set_string(&((struct cfg_bi *)obj)->schema, text);
    return AX_OK;
}

static int bi_time_precision(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *text;
    int rc = get_string(ld, s, &text);
    if (rc)
        return rc;
    if (strcmp(text, "minute") != 0 && strcmp(text, "hour") != 0 && strcmp(text, "day") != 0)
        return bad(ld, s, "\"%s\" is not one of \"minute\", \"hour\", \"day\"", text);
    set_string(&((struct cfg_bi *)obj)->time_precision, text);
    return AX_OK;
}

static int bi_min_k(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_int_range(ld, s, 1, 1000, &((struct cfg_bi *)obj)->min_k);
}

static int bi_harmless(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_bi *bi = obj;
    return load_name_list(ld, s, &bi->harmless, &bi->nharmless);
}

static int bi_generalise(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_bool(ld, s, &((struct cfg_bi *)obj)->generalise);
}

/* A role name: granted with a quoted identifier, so any name PostgreSQL takes, but not an empty one. */
static int bi_reader_role(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *text;
    int rc = get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (strlen(text) > 63)
        return bad(ld, s, "\"%s\" is longer than a PostgreSQL role name can be (63 bytes)", text);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return bad(ld, s, "a role name without control characters is expected");
    set_string(&((struct cfg_bi *)obj)->reader_role, text);
    return AX_OK;
}

static const struct key bi_keys[] = {
    {"conninfo", bi_conninfo}, {"schema", bi_schema},       {"time_precision", bi_time_precision},
    {"min_k", bi_min_k},       {"harmless", bi_harmless}, {"generalise", bi_generalise},
    {"reader_role", bi_reader_role},
};

/* -- wcs_api -- */

static int api_orig(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_nonempty(ld, s, &((struct cfg_wcs_api *)obj)->orig);
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
    int rc = get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (ld->file_readable_by_others)
        return bad(ld, s, "holds the API key but the file is readable by other users; use key_file, or make the "
                          "file private (chmod 600)");
    set_key(api, text, strlen(text));
    return AX_OK;
}

static int api_key_file(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *path;
    struct stat st;
    int rc = get_nonempty_string(ld, s, &path);
    if (rc)
        return rc;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return bad(ld, s, "cannot read %s: %s", path, strerror(errno));
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return bad(ld, s, "%s is not a regular file", path);
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        fclose(fp);
        return bad(ld, s, "%s is readable by other users: make it private (chmod 600)", path);
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    bool more = fgetc(fp) != EOF;
    fclose(fp);
    /* one line: the key, then at most line ends */
    size_t line = 0;
    while (line < n && buf[line] != '\n' && buf[line] != '\r')
        line++;
    bool extra = false;
    for (size_t i = line; i < n; i++)
        extra |= buf[i] != '\n' && buf[i] != '\r';
    rc = AX_OK;
    if (more)
        rc = bad(ld, s, "%s is too large for a key", path);
    else if (extra)
        rc = bad(ld, s, "%s must hold the key on one line", path);
    else
        set_key(obj, buf, line);
    explicit_bzero(buf, sizeof buf);
    if (rc == AX_OK && ((struct cfg_wcs_api *)obj)->keylen == 0)
        rc = bad(ld, s, "%s is empty", path);
    return rc;
}

static int api_ca_file(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_nonempty(ld, s, &((struct cfg_wcs_api *)obj)->ca_file);
}

static int api_timeout(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_duration(ld, s, &((struct cfg_wcs_api *)obj)->timeout_ms);
}

static const struct key api_keys[] = {
    {"orig", api_orig}, {"key_file", api_key_file}, {"key", api_key}, {"ca_file", api_ca_file},
    {"timeout", api_timeout},
};

/* -- the top level -- */

static int root_policy(struct loader *ld, const config_setting_t *s, void *obj)
{
    return policy_setting(ld, s, &((struct cfg *)obj)->policy);
}

static int root_timezone(struct loader *ld, const config_setting_t *s, void *obj)
{
    const char *text;
    int rc = get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (!tm_valid_timezone(text))
        return bad(ld, s, "\"%s\" is not a time zone this system knows (like \"Europe/Paris\" or \"UTC\")", text);
    set_string(&((struct cfg *)obj)->timezone, text);
    return AX_OK;
}

static int root_batch_size(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_int_range(ld, s, 1, 100000, &((struct cfg *)obj)->batch_size);
}

static int root_jobs(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_int_range(ld, s, 1, 64, &((struct cfg *)obj)->jobs);
}

/* A duration that must not be zero (for lock_timeout, PostgreSQL would read 0 as "wait forever"). */
static int get_positive_duration(struct loader *ld, const config_setting_t *s, int *out_ms, const char *why)
{
    int ms;
    int rc = get_duration(ld, s, &ms);
    if (rc)
        return rc;
    if (ms <= 0)
        return bad(ld, s, "must be more than 0 (%s)", why);
    *out_ms = ms;
    return AX_OK;
}

static int root_lock_timeout(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_positive_duration(ld, s, &((struct cfg *)obj)->lock_timeout_ms, "0 would wait for w.c.s.'s locks forever");
}

/* How long a batch transaction should take: from 10 ms to 1 s (the limit no batch may pass). */
static int root_batch_target(struct loader *ld, const config_setting_t *s, void *obj)
{
    int ms;
    int rc = get_duration(ld, s, &ms);
    if (rc)
        return rc;
    if (ms < 10 || ms > 1000)
        return bad(ld, s, "must be from 10ms to 1s (a batch transaction never takes longer than a second)");
    ((struct cfg *)obj)->batch_target_ms = ms;
    return AX_OK;
}

static int root_statement_timeout(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_duration(ld, s, &((struct cfg *)obj)->statement_timeout_ms);
}

static int root_max_runtime(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_positive_duration(ld, s, &((struct cfg *)obj)->max_runtime_ms, "leave it out for no budget");
}

static int root_vacuum(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_bool(ld, s, &((struct cfg *)obj)->vacuum);
}

static int root_log_syslog(struct loader *ld, const config_setting_t *s, void *obj)
{
    return get_bool(ld, s, &((struct cfg *)obj)->log_syslog);
}

static int root_schemas(struct loader *ld, const config_setting_t *s, void *obj)
{
    return load_nonempty(ld, s, &((struct cfg *)obj)->schemas);
}

static int root_backup_retention(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    const char *text;
    char msg[256];
    int days, rc = get_string(ld, s, &text);
    if (rc)
        return rc;
    /* not capped: it describes the backups, it does not set them */
    if (tm_parse_period(text, &days, msg, sizeof msg) != AX_OK)
        return bad(ld, s, "%s", msg);
    cfg->backup_retention_days = days;
    set_string(&cfg->backup_retention_text, text);
    return AX_OK;
}

static int root_bi(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_bi *bi = &((struct cfg *)obj)->bi;
    int rc = load_group(ld, s, bi_keys, AX_ARRAY_LEN(bi_keys), bi, "bi",
                        "{ conninfo = ...; schema = ...; time_precision = ...; min_k = ...; harmless = [...]; generalise = ...;"
                        " reader_role = ...; }");
    if (rc == AX_OK && !bi->conninfo)
        rc = bad(ld, s, "missing \"conninfo\"");
    return rc;
}

static int root_wcs_api(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg_wcs_api *api = &((struct cfg *)obj)->wcs_api;
    int rc = load_group(ld, s, api_keys, AX_ARRAY_LEN(api_keys), api, "wcs_api",
                        "{ orig = ...; key_file = ...; }");
    if (rc == AX_OK && !api->orig)
        rc = bad(ld, s, "missing \"orig\" (the API client name declared in w.c.s.)");
    if (rc == AX_OK && !api->key)
        rc = bad(ld, s, "missing \"key_file\" (or \"key\")");
    return rc;
}

static int root_discover(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    return load_list(ld, s, sizeof *cfg->discover, (void **)&cfg->discover, &cfg->ndiscover, load_discover,
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
    int rc = load_list(ld, s, sizeof *cfg->tenants, (void **)&cfg->tenants, &cfg->ntenants, load_tenant,
                       "( { name = ...; conninfo = ...; } )");
    for (size_t j = 0; rc == AX_OK && j < cfg->ntenants; j++)
        for (size_t k = 0; rc == AX_OK && k < j; k++)
            if (strcmp(cfg->tenants[k].name, cfg->tenants[j].name) == 0)
                rc = bad(ld, config_setting_get_elem(s, (unsigned)j), "tenant \"%s\" is listed twice",
                         cfg->tenants[j].name);
    /* a tenant's lock and audit live in its database: two tenants on one would keep each other off */
    char **keys = ax_calloc(cfg->ntenants + 1, sizeof *keys);
    for (size_t j = 0; rc == AX_OK && j < cfg->ntenants; j++) {
        keys[j] = database_key(cfg->tenants[j].conninfo);
        for (size_t k = 0; rc == AX_OK && keys[j] && k < j; k++)
            if (keys[k] && strcmp(keys[k], keys[j]) == 0)
                rc = bad(ld, config_setting_get_elem(s, (unsigned)j),
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
    return load_list(ld, s, sizeof *cfg->forms, (void **)&cfg->forms, &cfg->nforms, load_form,
                     "( { tenant = \"*\"; slug = ...; } )");
}

/* Cards have the shape of forms; their retention is not capped (registers have their own legal basis). */
static int root_cards(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    ld->uncapped = true;
    int rc = load_list(ld, s, sizeof *cfg->cards, (void **)&cfg->cards, &cfg->ncards, load_form,
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
    {"log_syslog", root_log_syslog},
    {"schemas", root_schemas},
    {"backup_retention", root_backup_retention},
    {"jobs", root_jobs},
    {"max_runtime", root_max_runtime},
    {"discover", root_discover},
    {"bi", root_bi},
    {"wcs_api", root_wcs_api},
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
            return bad(ld, config_setting_get_member(g, "tenant"), "unknown tenant \"%s\"", f->tenant);
        for (size_t k = 0; k < j; k++)
            if (strcmp(entries[k].tenant, f->tenant) == 0 && strcmp(entries[k].slug, f->slug) == 0)
                return bad(ld, g, "%s \"%s\" of tenant \"%s\" is configured twice", what, f->slug, f->tenant);
    }
    return AX_OK;
}

static int load_root(struct loader *ld, const config_setting_t *root, struct cfg *cfg)
{
    int rc = load_keys(ld, root, root_keys, AX_ARRAY_LEN(root_keys), cfg, NULL);
    if (rc)
        return rc;

    /* cross checks, once everything is read */
    if (!cfg->wcs_api.orig) {
        for (size_t j = 0; j < cfg->ntenants; j++)
            if (cfg->tenants[j].url)
                return bad(ld, config_setting_get_elem(config_setting_get_member(root, "tenants"), (unsigned)j),
                           "tenant \"%s\" has a url but there is no wcs_api group to sign requests with",
                           cfg->tenants[j].name);
        for (size_t j = 0; j < cfg->ndiscover; j++)
            if (cfg->discover[j].url)
                return bad(ld, config_setting_get_elem(config_setting_get_member(root, "discover"), (unsigned)j),
                           "has a url but there is no wcs_api group to sign requests with");
    }
    if ((rc = check_entries(ld, cfg, config_setting_get_member(root, "forms"), cfg->forms, cfg->nforms, "form")))
        return rc;
    return check_entries(ld, cfg, config_setting_get_member(root, "cards"), cfg->cards, cfg->ncards, "card");
}

char *cfg_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    /* non-blocking: a FIFO must not hang the run before it is refused */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        close(fd);
        return NULL;
    }
    struct strbuf sb;
    char chunk[65536];
    ssize_t n;
    sb_init(&sb);
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || sb.len + (size_t)n > max) {
            if (n < 0)
                snprintf(err, errlen, "%s", strerror(errno));
            else
                snprintf(err, errlen, "larger than %zu %s", max >= 1024 * 1024 ? max / (1024 * 1024) : max,
                         max >= 1024 * 1024 ? "MiB" : "bytes");
            close(fd);
            sb_free(&sb);
            return NULL;
        }
        sb_appendn(&sb, chunk, (size_t)n);
    }
    close(fd);
    *len = sb.len;
    return sb.buf; /* ownership passes to the caller */
}

/* The line (1-based) of offset off. */
static int line_at(const char *text, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off; i++)
        line += text[i] == '\n';
    return line;
}

/*
 * libconfig reads an integer past 64 bits as -1 (then "-1 is out of
 * range" names a number nobody wrote): such literals are found first, in
 * the text, outside strings and comments.
 */
static int check_integers(const char *path, const char *text, char *err, size_t errlen)
{
    for (const char *p = text; *p;) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            p += *p == '"';
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            p = strchrnul(p, '\n');
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            p = end ? end + 2 : p + strlen(p);
        } else if (isdigit((unsigned char)*p) && (p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' ||
                                                                  p[-1] == '.'))) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p, &end, 0);
            bool number = *end != '.' && *end != 'e' && *end != 'E';
            if (number && (errno == ERANGE || v > (unsigned long long)INT64_MAX)) {
                snprintf(err, errlen, "%s:%d: %.*s: integer out of range", path, line_at(text, (size_t)(p - text)),
                         (int)(end - p > 40 ? 40 : end - p), p);
                return AX_ERR_CONFIG;
            }
            p = end > p ? end : p + 1;
        } else {
            p++;
        }
    }
    return AX_OK;
}

/*
 * What libconfig would take silently: a NUL byte (the rest of a string, or
 * of the file, ignored) and @include (a file the permission check never
 * saw, outside the configuration digest): both refused.
 */
static int check_text(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        snprintf(err, errlen, "%s:%d: a NUL byte in the configuration file", path, line_at(text, (size_t)(nul - text)));
        return AX_ERR_CONFIG;
    }
    if (check_integers(path, text, err, errlen) != AX_OK)
        return AX_ERR_CONFIG;
    for (size_t i = 0; i < len; i = (size_t)(strchrnul(text + i, '\n') - text) + 1) {
        size_t p = i + strspn(text + i, " \t");
        if (strncmp(text + p, "@include", 8) == 0) {
            snprintf(err, errlen, "%s:%d: @include is not supported: keep the configuration in one file (its owner"
                                  " and mode are checked)", path, line_at(text, p));
            return AX_ERR_CONFIG;
        }
        if (!text[i])
            break;
    }
    return AX_OK;
}

/* A connection string without its password (the digest's view of it). */
static void conninfo_public(struct strbuf *sb, const char *conninfo)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (!opts) {
        sb_append(sb, "(unparsable)");
        PQfreemem(msg);
        return;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && strcmp(o->keyword, "password") != 0)
            sb_appendf(sb, " %s=%s", o->keyword, o->val);
    PQconninfoFree(opts);
}

/* Every setting as path=value, one per line, secrets left out. */
static void canonical(struct strbuf *sb, const config_setting_t *s, const char *path, bool secret)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY:
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *c = config_setting_get_elem(s, (unsigned)i);
            char *sub = c->name ? ax_asprintf("%s.%s", path, c->name) : ax_asprintf("%s[%d]", path, i);
            bool key = c->name && strcmp(c->name, "key") == 0 && strcmp(path, ".wcs_api") == 0;
            canonical(sb, c, sub, key);
            free(sub);
        }
        return;
    case CONFIG_TYPE_STRING:
        sb_appendf(sb, "%s=", path);
        if (secret)
            sb_append(sb, "(secret)");
        else if (s->name && strcmp(s->name, "conninfo") == 0)
            conninfo_public(sb, config_setting_get_string(s));
        else
            sb_append(sb, config_setting_get_string(s));
        break;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        sb_appendf(sb, "%s=%lld", path, config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        sb_appendf(sb, "%s=%.17g", path, config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        sb_appendf(sb, "%s=%s", path, config_setting_get_bool(s) ? "true" : "false");
        break;
    default:
        sb_appendf(sb, "%s=?", path);
    }
    sb_append(sb, "\n");
}

/* SHA-256 of the settings with their secrets removed, in hex (the audit's config_sha256). */
static void settings_digest(const config_t *lc, char out[65])
{
    struct strbuf sb;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    sb_init(&sb);
    canonical(&sb, config_root_setting(lc), "", false);
    EVP_Digest(sb.buf, sb.len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    sb_free(&sb);
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
    if ((rc = check_text(path, text, len, err, errlen))) {
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
    cfg->jobs = 1;
    cfg->bi.schema = ax_strdup("anonymised");
    cfg->bi.time_precision = ax_strdup("hour");
    cfg->bi.min_k = 5;
    cfg->wcs_api.timeout_ms = 30000;
    cfg->backup_retention_days = 120;
    cfg->backup_retention_text = ax_strdup("4 months");
    settings_digest(&lc, cfg->digest);
    rc = load_root(&ld, config_root_setting(&lc), cfg);
    config_destroy(&lc);
    if (rc) {
        cfg_free(cfg);
        return rc;
    }
    *out = cfg;
    return AX_OK;
}

char *cfg_tenant_dirname(const char *name)
{
    struct strbuf sb;
    sb_init(&sb);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p == '/' || *p == '%' || *p < 0x20 || *p == 0x7f || (p == (const unsigned char *)name && *p == '.'))
            sb_appendf(&sb, "%%%02X", *p);
        else
            sb_appendc(&sb, (char)*p);
    }
    if (sb.len == 0)
        sb_append(&sb, "%00");
    return sb_finish(&sb);
}

int cfg_valid_tenant_name(const char *name)
{
    return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

void cfg_add_discovered(struct cfg *cfg, const char *name, const char *conninfo, const char *dbname, const char *url,
                        int entry)
{
    cfg->tenants = ax_reallocarray(cfg->tenants, cfg->ntenants + 1, sizeof *cfg->tenants);
    struct cfg_tenant *t = &cfg->tenants[cfg->ntenants++];
    memset(t, 0, sizeof *t);
    t->name = ax_strdup(name);
    t->conninfo = ax_strdup(conninfo);
    t->dbname = ax_strdup(dbname);
    t->url = url ? ax_strdup(url) : NULL;
    t->discovered = entry;
}

const struct cfg_form *cfg_unknown_form_tenant(const struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->nforms; i++)
        if (strcmp(cfg->forms[i].tenant, "*") != 0 && !cfg_find_tenant(cfg, cfg->forms[i].tenant))
            return &cfg->forms[i];
    for (size_t i = 0; i < cfg->ncards; i++)
        if (strcmp(cfg->cards[i].tenant, "*") != 0 && !cfg_find_tenant(cfg, cfg->cards[i].tenant))
            return &cfg->cards[i];
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
    if (p->has_open_limit) {
        out->open_limit_days = p->open_limit_days;
        out->open_limit_text = p->open_limit_text;
        out->open_limit_source = src;
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

/* Folds the global and tenant levels, then the entries of list for (tenant, slug); returns whether one matched. */
static bool resolve(const struct cfg *cfg, const struct cfg_tenant *tenant, const char *slug,
                    const struct cfg_form *entries, size_t n, struct cfg_resolved *out)
{
    bool matched = false;
    memset(out, 0, sizeof *out);
    out->retention_days = RETENTION_CAP_DAYS;
    out->retention_text = RETENTION_CAP_TEXT;
    out->retention_source = CFG_SRC_DEFAULT;
    out->drafts = CFG_DRAFTS_DELETE;
    out->open_submissions = CFG_OPEN_SKIP;
    out->open_limit_days = 365;
    out->open_limit_text = "1 year";
    fold(&cfg->policy, CFG_SRC_GLOBAL, out);
    if (tenant)
        fold(&tenant->policy, CFG_SRC_TENANT, out);
    /* "*" entries first, then the tenant's own: the more specific wins */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const struct cfg_form *f = &entries[i];
            if (strcmp(f->slug, slug) != 0)
                continue;
            bool wildcard = strcmp(f->tenant, "*") == 0;
            if ((pass == 0 && wildcard) || (pass == 1 && !wildcard && tenant && strcmp(f->tenant, tenant->name) == 0)) {
                fold_form(f, out);
                matched = true;
            }
        }
    }
    return matched;
}

void cfg_resolve(const struct cfg *cfg, const struct cfg_tenant *tenant, const char *slug,
                 struct cfg_resolved *out)
{
    resolve(cfg, tenant, slug, cfg->forms, cfg->nforms, out);
}

bool cfg_resolve_card(const struct cfg *cfg, const struct cfg_tenant *tenant, const char *slug,
                      struct cfg_resolved *out)
{
    return resolve(cfg, tenant, slug, cfg->cards, cfg->ncards, out);
}
