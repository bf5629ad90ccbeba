/*
 * hold.h: legal holds.  GDPR's erasure duties yield to the establishment or
 * defence of legal claims: a DPO keeps one submission, or a whole form, out
 * of anonymisation while a dispute or an inquiry runs.  Holds live in the
 * tenant's anonymizer.holds; adding or removing one is an entry of the
 * chained history (who: the OS user and the database role; when; why);
 * a hold with an end stops by itself then.  The run leaves held submissions
 * out of its candidates (candidates.c) and counts them; the report lists
 * the holds and counts held data apart from its verdict.
 */
#ifndef HOLD_H
#define HOLD_H

#include "app.h"
#include "report_model.h"
#include "tenant.h"

#include <json-c/json.h>

#include <stdio.h>
#include <time.h>

enum hold_action { HOLD_ADD = 1, HOLD_REMOVE, HOLD_LIST };

struct hold_options {
    enum hold_action action;
    const char *form;   /* slug (add, remove) */
    long long id;       /* a submission's id; 0: the whole form */
    const char *reason; /* add: required; remove: optional */
    time_t until;       /* add: when the hold ends; 0: when removed */
    enum report_format format; /* list: text or json */
};

/* Parses the action word; 0 when unknown. */
enum hold_action hold_parse_action(const char *word);

/* Whether a reason can be stored and shown: 1 to 1000 bytes, no control character. */
bool hold_valid_reason(const char *text);

/* Every hold of the tenant, their expiry and age as of at (ISO UTC); none without the table. */
int hold_read(struct tenant *t, const char *at, struct report_hold **holds, size_t *n);
/* One hold for people, in their language (caller frees); every hold as a JSON array. */
char *hold_text(const struct report_hold *h);
json_object *hold_list_json(const struct report_hold *h, size_t n);

/* Runs the hold command; returns the exit status. */
int cmd_hold(const struct app *app, const struct hold_options *opts, FILE *out);

/* The SQL condition of the holds in force on table $n (a parameter's text, like "$1"), for the holds
 * table aliased h. */
#define HOLD_IN_FORCE(table)                                                                                       \
    "h.table_name OPERATOR(pg_catalog.=) " table " AND (h.until IS NULL OR h.until OPERATOR(pg_catalog.>)"          \
    " pg_catalog.now())"

#endif
