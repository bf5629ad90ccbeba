/*
 * tenant.h: one tenant database: the session, its lock, and the forms found
 * in its catalog, each classified and with its SQL prepared.
 */
#ifndef TENANT_H
#define TENANT_H

#include "app.h"
#include "classify.h"
#include "db.h"

#include <stdbool.h>

/* A submission's reference time, and "before the cutoff" ($1), on alias m. */
#define SQL_REF "COALESCE(m.last_update_time, m.receipt_time)"
#define SQL_PAST SQL_REF " < $1"

/* Session-level advisory lock taken by run (classid 'anon' = 0x616e6f6e, objid 1). */
#define TENANT_LOCK_CLASSID "1634627438"
#define TENANT_LOCK_OBJID "1"

struct form {
    int formdef_id;
    char *table;     /* catalog name of the main table */
    char *evo_table; /* catalog name of the history table, or NULL */
    char *slug;      /* formdefs.slug, or the table name's suffix when there is no formdefs row */
    char *name;
    bool has_formdef_row;
    bool has_tracking_col; /* a tracking_code column whose codes are deleted with it */
    const struct definition *def; /* borrowed from the tenant's def_set; may be NULL */
    struct column *cols;
    size_t ncols;
    size_t nunclassified;
    struct cfg_resolved pol;

    /* prepared at discovery */
    char *q_table, *q_evo;  /* quoted identifiers */
    char *endpoints;        /* text[] literal of final statuses ("wf-<id>"); NULL without definition */
    char *stat_keys;        /* text[] literal of statistics_data keys that are kept */
    char *sql_final;        /* at a final status (alias m) */
    char *sql_due_base;     /* past the cutoff, at a status the run anonymises (alias m) */
    char *sql_dirty;        /* still holds something the run blanks (alias m) */
    char *sql_work;         /* due and not yet anonymised, or anonymised but incomplete (alias m) */
    char *sql_set;          /* SET list of the final anonymisation (alias t, locked row l) */
    char *sql_allforms_set; /* SET list for wcs_all_forms (alias w, main row m); NULL when absent */
    char *sql_allforms_dirty;
    char *unsupported;      /* why the form cannot be processed safely, or NULL */

    char cutoff[64];        /* computed once per run */
};

struct tenant {
    struct app_tenant *app_tenant;
    const char *name;
    struct db db;
    bool has_tracking_codes;
    bool has_allforms;
    char now[64]; /* the clock reading cutoffs derive from */
    struct form *forms;
    size_t nforms;
};

/*
 * Connects and prepares the session: safe search_path, UTC, lock and
 * statement timeouts; read_only sessions refuse every write on the server
 * side.  Returns 0 or AX_ERR_CONNECT / AX_ERR_DB with t->db.error set; call
 * tenant_close in both cases.
 */
int tenant_open(struct tenant *t, const struct app *app, struct app_tenant *at, bool read_only);
void tenant_close(struct tenant *t);

/* Tries the run lock: *acquired false when another session holds it. */
int tenant_try_lock(struct tenant *t, bool *acquired);

/* Finds, classifies and prepares every form of the tenant. */
int tenant_discover_forms(struct tenant *t, const struct app *app);

/* Sets every form's cutoff from one server clock reading: at (NULL: now()). */
int tenant_compute_cutoffs(struct tenant *t, const char *at);

/*
 * The seven parameters every form statement is given (only some are used):
 * $1 cutoff, $2 formdef id, $3 final statuses, $4 kept statistics keys,
 * $5 and $6 the keyset range (or a limit), $7 the run timestamp.
 */
#define FORM_NPARAMS 7
extern const Oid form_param_types[FORM_NPARAMS];
void form_params(const struct form *f, const char *values[FORM_NPARAMS], const char *lo, const char *hi,
                 const char *run_ts, char *formdef_id_buf, size_t buflen);

#endif
