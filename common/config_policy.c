/*
 * config_policy.c: what the configuration says of one tenant or form at
 * run time: the tenants by name, their definitions directories, and the
 * global, tenant and form levels folded into what applies.
 */
#include "config.h"
#include "ax.h"
#include "i18n.h"
#include "strbuf.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
