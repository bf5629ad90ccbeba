/*
 * defs.h: where a tenant's form and card definitions come from: straight
 * from its w.c.s., over Publik's signed API, cached as files:
 *   <schemas>/<tenant>/<slug>.json        GET <url>api/formdefs/<slug>/schema?include-id=on
 *   <schemas>/<tenant>/cards/<slug>.json  GET <url>api/cards/<slug>/@schema?include-id=on
 * listed by GET <url>api/formdefs/?include-disabled=on and <url>api/cards/@list.
 *
 * A fetch is all or nothing for a tenant: every answer is validated (JSON,
 * ids, url_name) before any file changes; then changed files are replaced
 * atomically (temporary file, then rename) and those of removed forms
 * deleted.  When the API cannot be reached or refuses, the last fetched
 * files are used, with a warning that gives their age.
 */
#ifndef DEFS_H
#define DEFS_H

#include "app.h"
#include "progress.h"

/*
 * Makes a tenant's definitions ready: fetched first when it has a url and
 * mode says so, then loaded from the files.  Sets at->defs, card_defs and
 * what the report says of them; returns 0, or AX_ERR_CONFIG with
 * at->defs_error set when they cannot be used (the tenant fails, the others
 * go on).  progress (may be NULL) receives the fetch command's output.
 */
enum defs_mode {
    DEFS_FILES = 0,     /* the files only (export) */
    DEFS_FETCH_FIRST,   /* fetch, and fall back to the files with a warning (run, check, report) */
    DEFS_FETCH_COMMAND, /* the fetch command: report every change, a failed fetch fails the tenant */
};
int defs_prepare(const struct app *app, struct app_tenant *at, enum defs_mode mode, struct progress *progress);

/* Where a tenant's definitions came from, for people: "fetched from <url>", "files (no url)", "fetch failed
 * (<why>); files fetched 3 days ago" (caller frees). */
char *defs_describe(const char *url, bool fetched, const char *fetch_error, double files_age);

/* A slug that can name a file and a URL path segment as it is ([A-Za-z0-9._-], not starting with "."). */
bool defs_safe_slug(const char *slug);

/* An age for people: "3 days", "5 hours", "12 minutes" (in the reader's language). */
void defs_format_age(double seconds, char *buf, size_t len);

#endif
