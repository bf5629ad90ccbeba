/*
 * app.h: what every command gets from main(): the validated configuration,
 * the tenants selected on the command line with their form definitions, and
 * the identity of this run.
 */
#ifndef APP_H
#define APP_H

#include "config.h"
#include "db.h"
#include "definition.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* Exit statuses (sysexits.h values, documented in anonymizer(1)). */
enum app_exit {
    EXIT_OK = 0,
    EXIT_SOME_FAILED = 1,
    EXIT_INCOMPLETE = 3, /* report: nothing past the limit where it could look, but something could not be checked */
    EXIT_USAGE = 64,
    EXIT_UNAVAILABLE = 69,
    EXIT_IOERR = 74, /* the output (stdout) could not be written */
    EXIT_TEMPFAIL = 75,
    EXIT_CONFIG = 78,
};

/*
 * Which forms and cards entries of the configuration a tenant's tables
 * matched: an entry that matches no table on any tenant it applies to is
 * most likely a typo of a slug.  Indexes: forms entries, then cards entries
 * (cfg->nforms + cfg->ncards).
 */
struct entry_hits {
    bool *applies; /* the entry applies to this tenant, whose forms were discovered */
    bool *matched; /* and one of its tables has the entry's slug */
};

struct app_tenant {
    const struct cfg_tenant *cfg; /* borrowed from app.cfg */
    struct def_set defs;          /* <schemas>/<tenant>/<slug>.json */
    struct def_set card_defs;     /* <schemas>/<tenant>/cards/<slug>.json */
    bool defs_ready;              /* fetched (when it has a url) and loaded */
    char *defs_error;             /* the definitions cannot be used: the tenant fails */
    bool fetched;                 /* fetched from w.c.s. during this run */
    char *fetch_error;            /* the fetch failed, the last fetched files were used */
    double files_age;             /* seconds since those files were fetched (-1: unknown) */
    struct entry_hits hits;       /* what its discovered tables say of the entries */
};

struct app {
    struct cfg *cfg;
    int jobs;                  /* tenants at once */
    double deadline;           /* tm_now() past which no batch starts; 0: none */
    bool progress_live;        /* stderr is a terminal: draw a live progress line */
    size_t discovery_failures; /* discover entries that could not be read */
    struct app_tenant *tenants; /* the selected tenants, in configuration order */
    size_t ntenants;
    char run_id[37];
    char host[256];
    char started[40];          /* when this process started (ISO 8601 UTC, microseconds): a tenant another run finished
                                  since was done by a peer */
    bool export_dry_run;          /* export --dry-run: BI transactions rolled back */
};

/* Set from signal handlers: stop after the batch in flight; app_signals counts the signals. */
extern volatile sig_atomic_t app_interrupted;
extern volatile sig_atomic_t app_signals;

/* Which process this is, for the signal handler. */
enum app_role { APP_ROLE_SINGLE = 0, APP_ROLE_PARENT, APP_ROLE_WORKER, APP_ROLE_HELPER };
extern volatile sig_atomic_t app_role;

/* True once the time budget (max_runtime) is spent; remembers it. */
bool app_out_of_time(const struct app *app);
extern volatile sig_atomic_t app_budget_exhausted;

/* Records in at->hits what a tenant's discovered tables say of the entries. */
struct form;
/* The same for one table (a tenant a peer does: only its slug known); slug NULL: only where entries apply. */
void app_note_slug(const struct app *app, struct app_tenant *at, const char *slug, bool card);
void app_note_entries(const struct app *app, struct app_tenant *at, const struct form *forms, size_t nforms);
/* Warns (loudly) of the entries that applied somewhere and matched nothing
 * (a "*" entry only when every tenant was looked at). */
void app_warn_unmatched_entries(const struct app *app);

/* The warning (shown with -q) of a connection as a superuser: label is the
 * tenant's name, or "bi". */
void app_warn_superuser(const char *label, const char *role);

/* The session profile of every connection (db.h): the configuration's timeouts. */
struct db_profile app_db_profile(const struct cfg *cfg, bool read_only);

/* Frees everything main() put in app. */
void app_free(struct app *app);

/* Outcome of one tenant, for the exit status. */
enum tenant_outcome {
    TENANT_OK = 0,
    TENANT_FAILED,      /* reached, then something failed */
    TENANT_UNREACHABLE, /* could not connect */
    TENANT_PEER,        /* done or being done by another run, of this host or a peer: not an error */
    TENANT_INTERRUPTED,
};

/* The outcome's word in the audit and in messages: "ok", "failed", "unreachable", "peer", "interrupted". */
const char *tenant_outcome_str(enum tenant_outcome outcome);

/* Why the run stopped early: "time budget exhausted" or "interrupted by a signal". */
const char *app_interruption_str(void);

/* Folds tenant outcomes into the exit status, as documented. */
int app_exit_status(const enum tenant_outcome *outcomes, size_t n);

/* What a command did, summed over tenants (workers send theirs to the parent). */
struct run_totals {
    long long anonymised;
    long long completed;
    long long drafts;
    long long locked;
    long long tokens; /* search tokens deleted */
    long long failed; /* submissions a server error kept from being done */
    long long exported;
};

/* to += c, field by field. */
void run_totals_add(struct run_totals *to, const struct run_totals *c);

#endif
