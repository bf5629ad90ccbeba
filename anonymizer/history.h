/*
 * history.h: the "history" command: the runs of every tenant from the audit
 * tables, and the nights without a successful run.
 */
#ifndef HISTORY_H
#define HISTORY_H

#include "app.h"
#include "report_model.h"

#include <stdio.h>
#include <time.h>

struct history_options {
    enum report_format format;
    time_t since; /* runs started at or after this instant */
};

/* Writes the history to out; returns the exit status. */
int cmd_history(const struct app *app, const struct history_options *opts, FILE *out);

#endif
