/*
 * history.h: the "history" command: the runs of every tenant from the audit
 * tables, and the nights without a successful run.
 */
#ifndef HISTORY_H
#define HISTORY_H

#include "app.h"
#include "audit.h"
#include "report_model.h"

#include <stdio.h>
#include <time.h>

struct history_options {
    enum report_format format;
    time_t since; /* runs started at or after this instant */
    bool verify;  /* --verify: only the chain's verification; the exit status says whether it holds */
};

/* At most this many nights without a run are listed one by one. */
#define HISTORY_MAX_NIGHTS 62

/*
 * The local dates (YYYY-MM-DD, the configured time zone) from since up to
 * the day before now on which no successful run started; runs ordered by
 * start.  Returns how many (at most HISTORY_MAX_NIGHTS + 1), *out a new
 * array of new strings (caller frees).
 */
size_t history_missing_nights(const struct audit_run *runs, size_t nruns, time_t since, time_t now, char ***out);

/* Writes the history to out; returns the exit status (--verify: 0 intact, 1 broken or unreadable, 3 some
 * part could not be checked). */
int cmd_history(const struct app *app, const struct history_options *opts, FILE *out);

#endif
