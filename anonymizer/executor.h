/*
 * executor.h: the one way this program works in parallel: processes.
 *
 * Every command that works on tenants side by side (run, export, fetch,
 * report) runs one job per tenant, each in a worker process of its own, at
 * most --jobs at once, so that a tenant's failure, or crash, stays its own.
 * A job reports through its progress (progress.h) and, when it ends, hands
 * back its outcome, its totals and bytes of its own (the report's findings
 * for its tenant); the parent alone writes to stderr and stdout, so lines
 * never interleave.
 *
 * A job may run some of its work in helper processes (a large tenant's work
 * units), as many as --jobs leaves free: every process that works, workers
 * and helpers, holds one of --jobs tokens.  A helper is forked from its
 * job, so it shares the job's memory as it was; it must open its own
 * database connection, never touch the job's, and sends its results framed
 * as the workers' (ipc.h) on a pipe of its own.
 *
 * Signals: the handler (main.c) only sets app_interrupted and cancels the
 * statement in flight.  The parent's loop passes the stop on to its workers
 * and a job's helper_wait to its helpers; at a second signal the parent
 * kills its workers and exits 75, a worker or helper dies of it (and its
 * helpers with it).
 */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include "app.h"
#include "progress.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct helper_pool;

/* What a job is given besides its tenant. */
struct job_ctx {
    const void *arg;              /* what the command gave exec_tenants for its jobs */
    struct run_totals tot;        /* the job adds what it did */
    struct progress *progress;    /* never NULL inside a job */
    struct helper_pool *helpers;  /* for helper_start (helpers of this job only) */
    char *result;                 /* what the job hands back to the parent (ax_malloc'd, taken), or NULL */
    size_t result_len;
};

typedef enum tenant_outcome (*job_fn)(const struct app *app, struct app_tenant *at, struct job_ctx *ctx);

/* What one tenant's job ended with. */
struct exec_result {
    enum tenant_outcome outcome; /* TENANT_INTERRUPTED for a tenant never started (a signal, the time budget) */
    char *data;                  /* what the job handed back, or NULL (caller frees) */
    size_t len;
};

/*
 * Runs fn for every tenant of app, at most app->jobs at once, each job
 * given arg; out[i] is tenant i's result, and the jobs' totals are added to
 * tot.  The configuration entries a tenant matched come back into its
 * app_tenant.
 */
void exec_tenants(const struct app *app, job_fn fn, const void *arg, struct exec_result *out, struct run_totals *tot);

/* The same when only the outcomes matter (run, export, fetch). */
void exec_outcomes(const struct app *app, job_fn fn, enum tenant_outcome *outcomes, struct run_totals *tot);

/* -- a job's helpers ---------------------------------------------------------------- */

/* What a helper runs: arg as the job gave it, fd its pipe to the job (ipc_send). */
typedef void (*helper_fn)(void *arg, int fd);

/* Starts fn(arg) in a new helper if a token is free; false otherwise (the job runs it itself). */
bool helper_start(struct helper_pool *hp, helper_fn fn, void *arg);

enum helper_event {
    HELPER_NONE = 0, /* nothing within the time given, or no helper left */
    HELPER_MESSAGE,  /* a helper sent a message: *payload, *len (valid until the next call) */
    HELPER_ENDED,    /* a helper ended (its token given back): *status its wait status, *pending bytes it left
                        unfinished */
};

/*
 * Waits up to timeout_ms (-1: no limit) for the next message or end of one
 * of the pool's helpers.  Passes a stop on to the helpers first.
 */
enum helper_event helper_wait(struct helper_pool *hp, int timeout_ms, const char **payload, size_t *len, int *status,
                              size_t *pending);

#endif
