/*
 * units.h: a tenant's work cut into units (a form, or a range of a large
 * form's ids), run by the tenant's process and its helpers side by side;
 * what happens when a form is done is the caller's (struct unit_hooks).
 */
#ifndef UNITS_H
#define UNITS_H

#include "batch.h"
#include "candidates.h"
#include "executor.h"

/* Where a form stands while its units run. */
struct form_state {
    struct form_counts c;
    size_t units_left;
    bool started;
    int rc;       /* the first failure of its units */
    char *error;
    double started_at;
    struct form_candidates cand; /* its candidate pass ("" rule: none) */
};

/* What the caller does with forms (run.c: search tokens, VACUUM, audit entry, summary line). */
struct unit_hooks {
    void *arg;
    /* every unit of the form is done (fs: what they did); AX_ERR_DB when the tenant cannot go on */
    int (*form_finished)(void *arg, size_t form, struct form_state *fs);
    /* the form is left out (it cannot be processed safely, or its table failed before any unit); why: one line */
    int (*form_skipped)(void *arg, size_t form, const char *why);
};

/* Every unit of the tenant; returns the outcome, *error the message of a failure that ends the tenant (caller
 * frees). */
enum tenant_outcome units_run(struct tenant *t, const struct app *app, struct job_ctx *ctx,
                              const struct unit_hooks *hooks, char **error);

#endif
