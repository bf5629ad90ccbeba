/*
 * run.h: the "run" command, the nightly job.
 */
#ifndef RUN_H
#define RUN_H

#include "app.h"
#include "executor.h"

/* Returns the exit status. */
int cmd_run(const struct app *app);

#endif
