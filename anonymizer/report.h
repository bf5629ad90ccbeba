/*
 * report.h: the "report" command (and "run --dry-run"): what a run would do
 * now, per tenant and form, and whether any personal data is held past the
 * three-month limit.  It writes nothing: every query runs in a read-only
 * transaction.
 */
#ifndef REPORT_H
#define REPORT_H

#include "app.h"

#include <stdio.h>

enum report_format { REPORT_TEXT = 0, REPORT_JSON, REPORT_CSV };

struct report_options {
    enum report_format format;
    const char *at; /* ISO 8601 instant the cutoffs are computed from; NULL: now */
};

/* Parses a --format value; returns -1 when unknown. */
int report_parse_format(const char *text);

/* Checks an --at value (ISO 8601 date or date and time, optional zone);
 * returns 0 or -1. */
int report_check_timestamp(const char *text);

/* Writes the report to out; returns the exit status. */
int cmd_report(const struct app *app, const struct report_options *opts, FILE *out);

#endif
