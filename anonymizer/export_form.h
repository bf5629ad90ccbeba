/*
 * export_form.h: the export of one form: its rows read from the tenant's
 * snapshot into the BI staging table, decided (kanon.h), merged, its view
 * and watermark, as one BI transaction.
 */
#ifndef EXPORT_FORM_H
#define EXPORT_FORM_H

#include "bi.h"
#include "export.h"
#include "kanon.h"
#include "plan_export.h"

struct tenant_snapshot {
    bool has_changes; /* anonymizer.changes exists and is readable */
    char seq[32];     /* highest change recorded, visible in the snapshot */
    char now[64];     /* the snapshot's time */
};

/* Where a form's export stands (export_state), locked for the BI transaction. */
struct watermark {
    bool incremental; /* exported before under the same rule: only what changed since */
    char since[64];   /* anonymised after this (the last snapshot minus a day) */
    char seq[32];     /* change log position already exported */
    bool has_held;    /* rows of the form are held back in BI */
};

/* The form's figures in BI after its export (export_state). */
struct form_figures {
    long long published, held, generalised, suppressed, smallest;
    char limiting[128]; /* "" when none */
};

struct form_export {
    const struct app *app;
    struct tenant *t;
    struct bi *bi;
    const struct form *f;
    const struct tenant_snapshot *snap;
    bool dry_run;
    struct progress *progress; /* where the dry run says what it would do */
    char fid[16];
    struct plan_field *fields;
    size_t nfields;
    /* the fields as k-anonymity sees them (text[] literals) */
    char *sensitive, *dates, *qi_keys;
    size_t nsensitive, nqi, ndates;
    bool rule_changed; /* kept fields, sensitive ones, k, l or precisions changed: every row is sent again */
    struct watermark w;
    struct kanon_result kr;
    struct form_figures fig;
    long long read, deleted;
    double started;
    struct db_pipe pipe; /* the BI-side statements, working on the server */
    bool queued;
    int rc; /* the first failure */
};

/* The first half: reads the tenant, queues the BI-side work; fe->rc says whether it went well. */
void export_form_start(struct form_export *fe);
/* The second half: collects, records the watermark, commits; returns 0 or an AX_ERR_*. */
int export_form_finish(struct form_export *fe, struct export_totals *tot);

#endif
