/*
 * report.h: the "report" command (and "run --dry-run"): what a run would do
 * now, per tenant and form, and whether any personal data is held past the
 * three-month limit.  It writes nothing: every query runs in a read-only
 * transaction.
 */
#ifndef REPORT_H
#define REPORT_H

#include "app.h"
#include "report_model.h"

#include <stdio.h>


struct report_options {
    enum report_format format;
    const char *at;    /* the instant the cutoffs are computed from, ISO UTC; NULL: now */
    bool at_future;    /* it is in the future: the report says it assumes no run before then */
    char **forms;      /* --form: only these slugs (borrowed); nforms 0: every form */
    size_t nforms;
    struct nagios_options nagios;
};

/* Writes the report to out; returns the exit status (for nagios: the state, 0 to 3). */
int cmd_report(const struct app *app, const struct report_options *opts, FILE *out);

#endif
