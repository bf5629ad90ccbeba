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

/* Where a job reports its progress: the pipe to the parent (opaque). */
struct progress;

/* What a job is given besides its tenant. */
struct job_ctx {
    struct run_totals tot;     /* the job adds what it did */
    struct progress *progress; /* never NULL inside jobs_run */
};

typedef enum tenant_outcome (*job_fn)(const struct app *app, struct app_tenant *at, struct job_ctx *ctx);

/*
 * Runs fn for every tenant of app; fills outcomes (one per tenant) and
 * adds the workers' totals to tot.  Tenants not started because of a signal
 * or the time budget are TENANT_INTERRUPTED.
 */
void jobs_run(const struct app *app, int jobs, job_fn fn, enum tenant_outcome *outcomes, struct run_totals *tot);

/* Progress of a job's tenant, called by the work itself; p may be NULL (nobody watches). */
void progress_form_start(struct progress *p, const char *form, long long due);
void progress_add(struct progress *p, long long done);
void progress_form_end(struct progress *p);
/* A line of the command's output (stdout): the parent writes it whole; p NULL: straight to stdout. */
void progress_print(struct progress *p, const char *line);

/* The signal handler's part (see main.c): forward to workers, or kill them on a second signal. */
void jobs_on_signal(void);

#endif
