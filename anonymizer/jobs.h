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

#include <stdbool.h>
#include <sys/types.h>

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
/* What the tenant is doing now: "anonymise", "drafts", "search tokens", "vacuum", "export". */
void progress_phase(struct progress *p, const char *phase);
void progress_form_end(struct progress *p);
/* A line of the command's output (stdout): the parent writes it whole; p NULL: straight to stdout. */
void progress_print(struct progress *p, const char *line);

/*
 * Work units in helper processes.  A job (a tenant's coordinator) may run
 * some of its work units in helpers, as many at once as the run's --jobs
 * leaves free: every process that works, coordinators and helpers, holds
 * one of --jobs tokens.  A helper is forked from the coordinator, so it
 * shares its memory as it was (the tenant's forms, cutoffs); it must open
 * its own database connection and never touch the coordinator's.  It
 * writes its result with helper_write; the coordinator reads it in out/len.
 */
struct helper {
    bool active;
    pid_t pid;
    int fd;
    char *out;  /* what it wrote (caller frees) */
    size_t len, cap;
    int status; /* its wait status, once ended */
};
typedef void (*helper_fn)(void *arg, int fd);

/* Starts fn(arg) in hs[i] if a token is free; false otherwise (run it yourself). */
bool helper_start(struct helper *hs, size_t n, size_t i, helper_fn fn, void *arg);
void helper_write(int fd, const void *buf, size_t len);
/*
 * Waits until one of the active helpers ends, at most timeout_ms (-1: no
 * limit); returns its index (its token given back), or -1 when none ended
 * (or none is active).
 */
int helper_wait(struct helper *hs, size_t n, int timeout_ms);

/* The signal handler's part (see main.c): forward to workers, or kill them on a second signal. */
void jobs_on_signal(void);

#endif
