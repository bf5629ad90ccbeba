/*
 * candidates.h: the rows of a form a run can have work on, found once per
 * run and form without walking the table.
 *
 * In steady state nearly every row of a form is anonymised already.  The
 * rows that can need work are those not anonymised yet, and those
 * anonymised since the form was last checked whole (w.c.s. anonymises
 * without blanking everything the run blanks): both are ranges of w.c.s.'s
 * own index on anonymised (IS NULL, >= a date), so finding them costs what
 * they are, not what the table holds.  They are written, as ids, into the
 * unlogged anonymizer.candidates; the work units (units.c) are cut by
 * their quantiles and the batches (plan.c) walk them in id order.
 *
 * anonymizer.checked holds, per form, the instant before which every
 * anonymised row was found clean, and under which rule (a digest of what
 * the run blanks and how it decides it): a run that leaves nothing behind
 * moves it to a day before its own candidate pass (a margin for w.c.s.
 * transactions that commit a row whose anonymised time is earlier); a new
 * rule checks the whole form again.
 */
#ifndef CANDIDATES_H
#define CANDIDATES_H

#include "tenant.h"

#include <stddef.h>

/* One form's candidate pass. */
struct form_candidates {
    char rule[65];  /* the digest of the form's rule (hex), "" before the pass */
    char since[64]; /* anonymised rows from then are candidates ("-infinity": the whole form) */
    char next[64];  /* what checked_until becomes if the run leaves nothing behind ("" before the pass) */
    long long count;
    long long held; /* left out: under a legal hold (hold.h), and not anonymised or not found clean */
};

/* Fills anonymizer.candidates with the form's candidates, in one transaction. */
int candidates_fill(struct tenant *t, const struct form *f, struct form_candidates *fc);
/*
 * The ids that cut the form's candidates into parts of per_unit each (the
 * last id of each part but the last, ascending): *n of them in *bounds
 * (caller frees), at most max.
 */
int candidates_bounds(struct tenant *t, const struct form *f, long long per_unit, size_t max, long long **bounds,
                      size_t *n);
/*
 * The instant before which the form's anonymised rows were found clean
 * under its current rule ("-infinity": none, or anonymizer.checked cannot
 * be read), for the report.
 */
int candidates_since(struct tenant *t, const struct form *f, char *since, size_t len);
/* The form's candidates, once its units are done (the next run finds its own). */
int candidates_clear(struct tenant *t, const struct form *f);
/* The form was done whole under fc's rule: anonymised rows before fc->next need not be looked at again. */
int candidates_checked(struct tenant *t, const struct form *f, const struct form_candidates *fc);

#endif
