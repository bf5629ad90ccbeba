/*
 * form.h: one table of submissions of a tenant (a form, its test copies, or
 * a card), as discovery finds it: its catalog names, its columns classified,
 * what the configuration resolves for it, and the SQL prepared for it
 * (plan.h builds that; this module only holds it).  Below plan and tenant:
 * both take forms, neither is needed to describe one.
 */
#ifndef FORM_H
#define FORM_H

#include "classify.h"
#include "config.h"
#include "definition.h"

#include <stdbool.h>
#include <stddef.h>

/* What a table holds. */
enum form_kind {
    FORM_KIND_FORM = 0, /* formdata_<id>_<slug>: citizens' submissions */
    FORM_KIND_TEST,     /* test_formdata_<id>_<slug> (test_carddata_ of cards): copies made to test workflows */
    FORM_KIND_CARD,     /* carddata_<id>_<slug>: a register, anonymised only when configured */
};
/* "form", "test copy", "card". */
const char *form_kind_str(enum form_kind kind);

/* The predicates that select submissions, on alias m (plan_preds builds them). */
struct form_preds {
    char *final;    /* at a final status */
    char *ref;      /* when its period started: done-datetime when final, else its last activity */
    char *due_base; /* past the cutoff, at a status the run anonymises */
    char *dirty;    /* still holds something the run blanks */
    char *work;     /* due and not yet anonymised, or anonymised but incomplete */
};

/* What discovery prepares once per form (owned by the form; plan_prepare fills it, form_sql_free frees it). */
struct form_sql {
    char *unsupported;    /* why the form cannot be processed safely, or NULL */
    bool allforms;        /* the tenant has wcs_all_forms */
    bool tracking_codes;  /* the form's tracking codes are deleted with its submissions */
    bool search_tokens;   /* the tenant has wcs_search_tokens */
    char *endpoints;      /* text[] literal of final statuses ("wf-<id>"); NULL without definition */
    char *stat_keys;      /* text[] literal of the statistics_data keys that are kept */
    char *block_keys;     /* jsonb literal of the keys kept in each trimmed block's elements */
    char *set;            /* SET list of the final anonymisation (alias m) */
    char *allforms_set;   /* SET list for wcs_all_forms (alias w, main row m); NULL without it */
    char *allforms_dirty; /* a wcs_all_forms row still holds personal data (alias w, main row m) */
    struct form_preds pred; /* PLAN_PROBE style, with $n parameters */
};

struct form {
    enum form_kind kind;
    bool of_card;   /* a card's (carddefs, cards entries): the card itself, or a test copy of a card */
    bool anonymise; /* its rows get the final anonymisation (false: a card without a cards entry) */
    int formdef_id; /* formdefs.id (carddefs.id for a card) */
    char *table;     /* catalog name of the main table */
    char *evo_table; /* catalog name of the history table, or NULL */
    char *slug;      /* formdefs.slug, or the table name's suffix when there is no formdefs row */
    char *name;
    char *label;     /* for messages: "form <slug>", "test copy of <slug>", "card <slug>" */
    bool has_formdef_row;
    const struct definition *def; /* borrowed from the tenant's def_set; may be NULL */
    struct column *cols;
    size_t ncols;
    size_t nunclassified;
    struct cfg_resolved pol;
    char *q_table, *q_evo; /* quoted identifiers */
    struct form_sql sql;   /* prepared at discovery (plan.h) */
    char cutoff[64];       /* computed once per run */
};

/* Free what they own, and clear them. */
void form_preds_free(struct form_preds *p);
void form_sql_free(struct form_sql *s);

/* The column of that name, or NULL. */
const struct column *form_column(const struct form *f, const char *name);

/* Frees what the form owns (names, columns, SQL), not the struct itself. */
void form_free(struct form *f);

#endif
