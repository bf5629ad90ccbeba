/*
 * audit.h: the audit trail kept in each tenant database, table
 * anonymizer.runs: one row per run and tenant, written when the tenant
 * starts (outcome "running"), completed form by form, closed at the end.
 * A row left "running" by a killed run is marked "crashed" by the next run,
 * which holds the tenant lock and so knows nobody else is running.
 */
#ifndef AUDIT_H
#define AUDIT_H

#include "tenant.h"

#include <json-c/json.h>

/* Creates the schema and table when missing, closes stale rows and inserts
 * this run's row. */
int audit_begin(struct tenant *t, const struct app *app, const char *command);

/* Appends one form's entry (a JSON object; not consumed). */
int audit_add_form(struct tenant *t, const struct app *app, json_object *entry);

/* outcome: "ok", "failed", "interrupted"; error may be NULL. */
int audit_finish(struct tenant *t, const struct app *app, const char *outcome, const char *error);

/* Fills buf with a random (version 4) UUID. */
void audit_new_run_id(char buf[37]);

#endif
