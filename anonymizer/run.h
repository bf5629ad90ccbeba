/*
 * run.h: the "run" command, the nightly job.
 */
#ifndef RUN_H
#define RUN_H

#include "app.h"
#include "executor.h"

/* Processes one tenant: never exits, reports failures in its outcome. */
enum tenant_outcome run_tenant(const struct app *app, struct app_tenant *at, struct job_ctx *ctx);

/* Returns the exit status. */
int cmd_run(const struct app *app);

#endif
