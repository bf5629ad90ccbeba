/*
 * export.h: the BI export: anonymised submissions, kept fields only, into
 * the staging schema of a BI database, incrementally and exactly once.
 * The contract is documented in man/anonymizer-bi.7.
 */
#ifndef EXPORT_H
#define EXPORT_H

#include "app.h"
#include "executor.h"
#include "tenant.h"

struct export_totals {
    long long inserted;
    long long updated;
    long long full_forms; /* forms exported whole (first export, new rule) */
};

/*
 * Exports one tenant whose session is open, locked and discovered.  The
 * tenant is only read, in one REPEATABLE READ READ ONLY transaction; each
 * form is one BI transaction (rows, watermark, run counters together).
 * dry_run: every BI transaction is rolled back, what it would do is printed.
 * On success *watermark_seq is the change-log position now exported for
 * every form (-1 when some form was not exported).  Returns the outcome.
 */
enum tenant_outcome export_tenant(const struct app *app, struct tenant *t, bool dry_run, struct progress *progress,
                                  struct export_totals *tot, long long *watermark_seq, char **why);

/* The "export" command; returns the exit status. */
int cmd_export(const struct app *app);

#endif
