/*
 * app.c: state shared by the commands.
 */
#include "app.h"
#include "log.h"
#include "form.h"
#include "timeutil.h"

#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t app_interrupted;
volatile sig_atomic_t app_signals;
volatile sig_atomic_t app_role;
volatile sig_atomic_t app_budget_exhausted;

bool app_out_of_time(const struct app *app)
{
    if (!app_budget_exhausted && app->deadline > 0 && tm_now() >= app->deadline)
        app_budget_exhausted = 1;
    return app_budget_exhausted;
}

struct db_profile app_db_profile(const struct cfg *cfg, bool read_only)
{
    return (struct db_profile){.lock_timeout_ms = cfg->lock_timeout_ms,
                               .statement_timeout_ms = cfg->statement_timeout_ms,
                               .read_only = read_only};
}

void app_free(struct app *app)
{
    for (size_t i = 0; i < app->ntenants; i++) {
        def_set_free(&app->tenants[i].defs);
        def_set_free(&app->tenants[i].card_defs);
        free(app->tenants[i].defs_error);
        free(app->tenants[i].fetch_error);
        free(app->tenants[i].hits.applies);
        free(app->tenants[i].hits.matched);
    }
    free(app->tenants);
    cfg_free(app->cfg);
}

void run_totals_add(struct run_totals *to, const struct run_totals *c)
{
    to->anonymised += c->anonymised;
    to->completed += c->completed;
    to->drafts += c->drafts;
    to->locked += c->locked;
    to->tokens += c->tokens;
    to->failed += c->failed;
    to->exported += c->exported;
}

const char *tenant_outcome_str(enum tenant_outcome outcome)
{
    switch (outcome) {
    case TENANT_OK: return "ok";
    case TENANT_FAILED: return "failed";
    case TENANT_UNREACHABLE: return "unreachable";
    case TENANT_PEER: return "peer";
    case TENANT_INTERRUPTED: return "interrupted";
    }
    return "?";
}

const char *app_interruption_str(void)
{
    return app_budget_exhausted && !app_interrupted ? "time budget exhausted" : "interrupted by a signal";
}

int app_exit_status(const enum tenant_outcome *outcomes, size_t n)
{
    size_t unreachable = 0, failed = 0, tempfail = 0;

    for (size_t i = 0; i < n; i++) {
        switch (outcomes[i]) {
        case TENANT_OK:
        case TENANT_PEER: break;
        case TENANT_UNREACHABLE: unreachable++; break;
        case TENANT_FAILED: failed++; break;
        case TENANT_INTERRUPTED: tempfail++; break;
        }
    }
    if (n > 0 && unreachable == n)
        return EXIT_UNAVAILABLE;
    if (unreachable || failed)
        return EXIT_SOME_FAILED;
    if (tempfail)
        return EXIT_TEMPFAIL;
    return EXIT_OK;
}

/* The entry at index i: forms first, then cards. */
static const struct cfg_form *entry_at(const struct cfg *cfg, size_t i, bool *card)
{
    *card = i >= cfg->nforms;
    return *card ? &cfg->cards[i - cfg->nforms] : &cfg->forms[i];
}

void app_note_slug(const struct app *app, struct app_tenant *at, const char *slug, bool card)
{
    for (size_t i = 0; i < app->cfg->nforms + app->cfg->ncards; i++) {
        bool is_card;
        const struct cfg_form *e = entry_at(app->cfg, i, &is_card);
        if (strcmp(e->tenant, "*") != 0 && strcmp(e->tenant, at->cfg->name) != 0)
            continue;
        at->hits.applies[i] = true;
        if (slug && is_card == card && strcmp(e->slug, slug) == 0)
            at->hits.matched[i] = true;
    }
}

void app_note_entries(const struct app *app, struct app_tenant *at, const struct form *forms, size_t nforms)
{
    app_note_slug(app, at, NULL, false); /* the entries apply, even to a tenant without tables */
    for (size_t k = 0; k < nforms; k++)
        app_note_slug(app, at, forms[k].slug, forms[k].of_card);
}

void app_warn_unmatched_entries(const struct app *app)
{
    /* with -t, a "*" entry may match in a tenant that was not looked at */
    bool all_tenants = app->ntenants == app->cfg->ntenants;
    for (size_t i = 0; i < app->cfg->nforms + app->cfg->ncards; i++) {
        bool card, applies = false, matched = false;
        const struct cfg_form *e = entry_at(app->cfg, i, &card);
        if (!all_tenants && strcmp(e->tenant, "*") == 0)
            continue;
        for (size_t t = 0; t < app->ntenants; t++) {
            applies |= app->tenants[t].hits.applies[i];
            matched |= app->tenants[t].hits.matched[i];
        }
        if (applies && !matched)
            log_loud_warning("%s entry for tenant \"%s\", slug \"%s\" matches no table (a typo of the slug?)",
                             card ? "cards" : "forms", e->tenant, e->slug);
    }
}

void app_warn_superuser(const char *label, const char *role)
{
    /* a table owner's trigger (w.c.s.'s, or one planted) runs as the role that fires it */
    log_loud_warning("%s: connected as \"%s\", a superuser: any trigger a table owner adds would run with superuser"
                     " rights; connect as the roles \"anonymizer grants\" prints (anonymizer(1), PRIVILEGES)",
                     label, role ? role : "?");
}
