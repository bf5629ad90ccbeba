/*
 * wcs_logs.h: what w.c.s.'s own logs keep of anonymised submissions.
 *
 * w.c.s.'s security log (audit: agents' e-mails and object names in
 * "frozen") is pruned by w.c.s. after the site option audit-retention-days
 * (default 365); its error log (loggederrors: submission values may be in
 * "context" and the exception message) keeps an error until an agent
 * deletes it, then 30 days.  The report counts, per tenant, the rows of
 * both older than the legal limit that are about anonymised submissions
 * (counts and ages, never their content), outside the verdict; with
 * wcs_logs = "anonymise" the run blanks the texts of the errors about
 * anonymised submissions.
 */
#ifndef WCS_LOGS_H
#define WCS_LOGS_H

#include "tenant.h"

struct wcs_logs_counts {
    bool audit_read, errors_read; /* the table exists and the role may read it */
    bool audit_exists, errors_exists;
    long long audit_old, errors_old; /* older than the limit, about anonymised submissions */
    char *audit_oldest, *errors_oldest; /* ISO UTC, or NULL */
};

/* What a tenant's site-options.cfg says of w.c.s.'s own retention ([options] section). */
struct wcs_site_options {
    char *unused_files; /* unused-files-behaviour, or NULL when not set (w.c.s.: "remove") */
    char *audit_days;   /* audit-retention-days, or NULL when not set (w.c.s.: 365) */
    char *error;        /* the file could not be read, or NULL */
};

/* Reads <sites>/<tenant>/site-options.cfg (an INI file, at most 1 MiB); a tenant name that is not a plain
 * host name is refused. */
void wcs_site_options_read(const char *sites, const char *tenant, struct wcs_site_options *out);
void wcs_site_options_free(struct wcs_site_options *o);

/* Counts as of the legal limit (a timestamptz the server reads). */
int wcs_logs_count(struct tenant *t, const char *limit, struct wcs_logs_counts *out);
void wcs_logs_counts_free(struct wcs_logs_counts *c);

/* wcs_logs = "anonymise": blanks context, exception_message and traceback of the errors about
 * anonymised submissions, in one transaction; *blanked receives how many. */
int wcs_logs_anonymise(struct tenant *t, long long *blanked);

#endif
