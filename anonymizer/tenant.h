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

/* The predicates that select submissions, on alias m (see tenant_build_preds). */
struct form_preds {
    char *final;    /* at a final status */
    char *due_base; /* past the cutoff, at a status the run anonymises */
    char *dirty;    /* still holds something the run blanks */
    char *work;     /* due and not yet anonymised, or anonymised but incomplete */
};

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
    struct form_preds pred;  /* with $1..$7 parameters */
    char *sql_set;           /* SET list of the final anonymisation (alias t) */
    char *sql_allforms_set;  /* SET list for wcs_all_forms (alias w, main row m); NULL when absent */
    char *sql_allforms_dirty; /* its row still holds personal data (alias w, main row m) */
    char *unsupported;      /* why the form cannot be processed safely, or NULL */

    char cutoff[64];        /* computed once per run */
};

struct tenant {
    struct app_tenant *app_tenant;
    const char *name;
    struct db db;
    bool has_tracking_codes;
    bool has_allforms;
    char **allforms_cols; /* personal columns of wcs_all_forms */
    size_t nallforms;
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
/* "$1".."$7" (index 0 unused), for tenant_build_preds */
extern const char *const form_dollar_params[FORM_NPARAMS + 1];

/*
 * Builds the predicates of a form with p[n] as the text of parameter n
 * ($1 cutoff, $2 formdef id, $3 final statuses, $4 kept statistics keys):
 * "$n", or an expression reading the value where parameters cannot go
 * (COPY).  set_oriented: for one pass over a whole table (report, export),
 * related rows may be tested by hashing their table; otherwise (batches,
 * f->pred) by one index probe per row.  The rows selected are the same.
 * Free with tenant_free_preds.
 */
void tenant_build_preds(struct tenant *t, const struct form *f, const char *const p[FORM_NPARAMS + 1],
                        bool set_oriented, struct form_preds *out);
void tenant_free_preds(struct form_preds *p);
void form_params(const struct form *f, const char *values[FORM_NPARAMS], const char *lo, const char *hi,
                 const char *run_ts, char *formdef_id_buf, size_t buflen);

#endif
