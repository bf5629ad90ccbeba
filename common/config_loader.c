/*
 * config_loader.c: reading values and groups of the configuration, each
 * with one message that names the file, the line and the setting.
 */
#include "config_loader.h"
#include "http.h"
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

/* "tenants[1].retention" for a setting */
void ld_setting_path(const config_setting_t *s, struct strbuf *out)
{
    if (!s || config_setting_is_root(s))
        return;
    const config_setting_t *parent = config_setting_parent(s);
    ld_setting_path(parent, out);
    if (config_setting_name(s)) {
        if (out->len)
            sb_appendc(out, '.');
        sb_append(out, config_setting_name(s));
    } else {
        sb_appendf(out, "[%d]", config_setting_index(s));
    }
}
int ld_bad(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
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
    ld_setting_path(s, &spath);
    if (spath.len)
        sb_appendf(&line, "%s: ", spath.buf);
    sb_free(&spath);
    sb_append(&line, msg);
    snprintf(ld->err, ld->errlen, "%s", line.buf);
    sb_free(&line);
    return AX_ERR_CONFIG;
}
int ld_get_string(struct loader *ld, const config_setting_t *s, const char **out)
{
    *out = "";
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return ld_bad(ld, s, "must be a string");
    *out = config_setting_get_string(s);
    return AX_OK;
}
int ld_get_nonempty_string(struct loader *ld, const config_setting_t *s, const char **out)
{
    int rc = ld_get_string(ld, s, out);
    if (rc == AX_OK && (*out)[0] == '\0')
        return ld_bad(ld, s, "must not be empty");
    return rc;
}
int ld_get_bool(struct loader *ld, const config_setting_t *s, bool *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return ld_bad(ld, s, "must be true or false");
    *out = config_setting_get_bool(s) != 0;
    return AX_OK;
}
int ld_get_int_range(struct loader *ld, const config_setting_t *s, long long min, long long max, int *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return ld_bad(ld, s, "must be an integer");
    long long v = config_setting_get_int64(s);
    if (v < min || v > max)
        return ld_bad(ld, s, "%lld is out of range (%lld to %lld)", v, min, max);
    *out = (int)v;
    return AX_OK;
}
int ld_get_duration(struct loader *ld, const config_setting_t *s, int *out_ms)
{
    const char *text;
    char msg[256];
    long long ms;
    int rc = ld_get_string(ld, s, &text);
    if (rc)
        return rc;
    if (tm_parse_duration_ms(text, &ms, msg, sizeof msg) != AX_OK)
        return ld_bad(ld, s, "%s", msg);
    *out_ms = (int)ms;
    return AX_OK;
}
/* The policy settings shared by the global, tenant and form levels. */
int ld_policy_setting(struct loader *ld, const config_setting_t *s, struct cfg_policy *pol)
{
    const char *name = config_setting_name(s);
    const char *text;
    char msg[256];
    int rc;

    if ((rc = ld_get_string(ld, s, &text)))
        return rc;
    if (strcmp(name, "retention") == 0) {
        int days;
        if (tm_parse_period(text, &days, msg, sizeof msg) != AX_OK)
            return ld_bad(ld, s, "%s", msg);
        if (days > RETENTION_CAP_DAYS && !ld->uncapped)
            return ld_bad(ld, s,
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
            return ld_bad(ld, s, "%s", msg);
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
            return ld_bad(ld, s, "\"%s\" is not one of \"delete\", \"anonymise\"", text);
        pol->has_drafts = true;
    } else { /* open_submissions */
        if (strcmp(text, "skip") == 0)
            pol->open_submissions = CFG_OPEN_SKIP;
        else if (strcmp(text, "anonymise") == 0)
            pol->open_submissions = CFG_OPEN_ANONYMISE;
        else
            return ld_bad(ld, s, "\"%s\" is not one of \"skip\", \"anonymise\"", text);
        pol->has_open = true;
    }
    return AX_OK;
}
int ld_get_one_of(struct loader *ld, const config_setting_t *s, const char *const *choices, const char **out)
{
    int rc = ld_get_string(ld, s, out);
    if (rc)
        return rc;
    struct strbuf names;
    sb_init(&names);
    for (const char *const *c = choices; *c; c++) {
        if (strcmp(*out, *c) == 0) {
            sb_free(&names);
            return AX_OK;
        }
        sb_appendf(&names, "%s\"%s\"", c == choices ? "" : ", ", *c);
    }
    rc = ld_bad(ld, s, "\"%s\" is not one of %s", *out, names.buf);
    sb_free(&names);
    return rc;
}
static bool ld_has_password(const char *conninfo)
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
static int ld_check_conninfo(struct loader *ld, const config_setting_t *s, const char *conninfo)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);

    /* libpq's message may quote part of the string, password included: it
     * is not repeated */
    PQfreemem(errmsg);
    if (!opts)
        return ld_bad(ld, s, "is not a valid connection string (see \"Connection Strings\" in the libpq documentation)");
    PQconninfoFree(opts);
    if (ld_has_password(conninfo) && ld->file_readable_by_others)
        return ld_bad(ld, s,
                   "holds a password but the file is readable by other users; use ~/.pgpass or a "
                   "service file, or make the file private (chmod 600)");
    return AX_OK;
}
int ld_load_keys(struct loader *ld, const config_setting_t *g, const struct key *keys, size_t nkeys, void *obj,
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
                return ld_bad(ld, s, "unknown setting (see anonymizer.conf(5))");
            struct strbuf names;
            sb_init(&names);
            for (size_t j = 0; j < nkeys; j++)
                sb_appendf(&names, "%s%s", j ? ", " : "", keys[j].name);
            int rc = ld_bad(ld, s, "unknown setting (%s settings: %s)", what, names.buf);
            sb_free(&names);
            return rc;
        }
        int rc = k->load(ld, s, obj);
        if (rc)
            return rc;
    }
    return AX_OK;
}
int ld_load_group(struct loader *ld, const config_setting_t *g, const struct key *keys, size_t nkeys, void *obj,
                      const char *what, const char *shape)
{
    if (!config_setting_is_group(g))
        return ld_bad(ld, g, "must be a group %s", shape);
    return ld_load_keys(ld, g, keys, nkeys, obj, what);
}
/* A list of groups into a new array of n items of size bytes, each read by load_one. */
int ld_load_list(struct loader *ld, const config_setting_t *s, size_t size, void **items, size_t *n,
                     int (*load_one)(struct loader *ld, const config_setting_t *g, void *item), const char *shape)
{
    if (!config_setting_is_list(s) && !config_setting_is_array(s))
        return ld_bad(ld, s, "must be a list of groups: %s", shape);
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
void ld_set_string(char **dst, const char *value)
{
    free(*dst);
    *dst = ax_strdup(value);
}
int ld_load_nonempty(struct loader *ld, const config_setting_t *s, char **dst)
{
    const char *text;
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc == AX_OK)
        ld_set_string(dst, text);
    return rc;
}
int ld_load_conninfo(struct loader *ld, const config_setting_t *s, char **dst)
{
    const char *text;
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc == AX_OK && (rc = ld_check_conninfo(ld, s, text)) == AX_OK)
        ld_set_string(dst, text);
    return rc;
}
int ld_load_name_list(struct loader *ld, const config_setting_t *s, char ***out, size_t *n)
{
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return ld_bad(ld, s, "must be a list of field varnames or ids, like [\"nom\", \"3\"]");
    int len = config_setting_length(s);
    *out = ax_calloc((size_t)len, sizeof(char *));
    *n = 0;
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *text;
        int rc = ld_get_nonempty_string(ld, e, &text);
        if (rc)
            return rc;
        (*out)[(*n)++] = ax_strdup(text);
    }
    return AX_OK;
}
/* A tenant's w.c.s. address: https (or http to a loopback host), normalised to end in "/". */
int ld_load_url(struct loader *ld, const config_setting_t *s, char **dst, bool pattern)
{
    const char *text;
    char msg[256];
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (pattern) {
        const char *pct = strstr(text, "%s");
        if (!pct || strchr(pct + 2, '%') || strchr(text, '%') != pct)
            return ld_bad(ld, s, "\"%s\" must contain \"%%s\" once (the host taken from the database name)", text);
    }
    char *probe = pattern ? ax_asprintf("%.*sx%s", (int)(strstr(text, "%s") - text), text, strstr(text, "%s") + 2)
                          : ax_strdup(text);
    bool ok = http_url_allowed(probe, msg, sizeof msg);
    free(probe);
    if (!ok)
        return ld_bad(ld, s, "\"%s\": %s", text, msg);
    size_t n = strlen(text);
    ld_set_string(dst, text);
    if (text[n - 1] != '/') {
        free(*dst);
        *dst = ax_asprintf("%s/", text);
    }
    return AX_OK;
}
/* A duration that must not be zero (for lock_timeout, PostgreSQL would read 0 as "wait forever"). */
int ld_get_positive_duration(struct loader *ld, const config_setting_t *s, int *out_ms, const char *why)
{
    int ms;
    int rc = ld_get_duration(ld, s, &ms);
    if (rc)
        return rc;
    if (ms <= 0)
        return ld_bad(ld, s, "must be more than 0 (%s)", why);
    *out_ms = ms;
    return AX_OK;
}
