/*
 * jobs.h: processing tenants in parallel, within a time budget, visibly.
 *
 * Each tenant is processed in its own worker process (at most "jobs" at
 * once), so that a tenant's failure, or crash, stays its own.  Workers send
 * their diagnostics, progress and result to the parent through a pipe; the
 * parent alone writes to stderr, so lines never interleave, and draws a live
 * progress line on a terminal (a log line every 30 s otherwise).
 */
#ifndef JOBS_H
#define JOBS_H

#include "app.h"
#include "run.h"

typedef enum tenant_outcome (*job_fn)(const struct app *app, struct app_tenant *at, struct run_totals *tot);

/*
 * Runs fn for every tenant of app; fills outcomes (one per tenant) and
 * adds the workers' totals to tot.  Tenants not started because of a signal
 * or the time budget are TENANT_INTERRUPTED.
 */
void jobs_run(const struct app *app, int jobs, job_fn fn, enum tenant_outcome *outcomes, struct run_totals *tot);

/* Progress of the worker's tenant, called by the work itself (no-ops outside a worker). */
void progress_form_start(const char *form, long long due);
void progress_add(long long done);
void progress_form_end(void);

/* The signal handler's part (see main.c): forward to workers, or kill them on a second signal. */
void jobs_on_signal(void);

#endif
