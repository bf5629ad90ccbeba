/*
 * grants.h: the "grants" command: the SQL that gives each role exactly what
 * it needs on each tenant and on the BI database (privileges.h says what),
 * for psql, to be run by a superuser.  It reads the catalogs only.
 */
#ifndef GRANTS_H
#define GRANTS_H

#include "app.h"

#include <stdio.h>

struct grants_options {
    const char *run;       /* the run role; NULL: the role of each tenant's connection */
    const char *report;    /* the report role */
    const char *bi;        /* the export's role on the BI database; NULL: the role of the bi connection */
    const char *bi_reader; /* the BI readers' role */
    const char *admin;     /* --admin-conninfo: the connection that reads the catalogs (a superuser's, before the
                              roles exist); each database is the tenant's (or the BI one); NULL: the configuration's */
};

#define GRANTS_DEFAULT_REPORT "anonymizer_report"
#define GRANTS_DEFAULT_BI_READER "anonymizer_bi_reader"

/* A role name the output can carry: 1 to 63 bytes, no control character, no '$'. */
bool grants_valid_role(const char *name);

/* Writes the SQL to out; returns the exit status. */
/* Whether an --admin-conninfo parses and carries no password (a command line is visible to every user). */
bool grants_admin_conninfo_ok(const char *conninfo);

int cmd_grants(const struct app *app, const struct grants_options *opts, FILE *out);

#endif
