/*
 * bi_views.h: per exported form, a view of the BI staging schema with one
 * typed column per kept field (form_<tenant>_<form>), its comments, and the
 * statuses dimension; see man/anonymizer-bi.7.
 */
#ifndef BI_VIEWS_H
#define BI_VIEWS_H

#include "bi.h"
#include "plan_export.h"
#include "tenant.h"

/*
 * Creates the form's view, or recreates it when what it would be changed
 * (kept fields, types, labels), in the caller's BI transaction, after the
 * form's row of forms is written.  Returns 0 or an AX_ERR_* with
 * bi->db.error set.
 */
int bi_form_view(struct bi *bi, const char *tenant, const struct form *f, const struct plan_field *fields,
                 size_t nfields);

/* The form's statuses, from its definition, into the statuses dimension. */
int bi_form_statuses(struct bi *bi, const char *tenant, const struct form *f);

#endif
