/*
 * form.c: see form.h.
 */
#include "form.h"

#include <stdlib.h>
#include <string.h>

const char *form_kind_str(enum form_kind kind)
{
    switch (kind) {
    case FORM_KIND_FORM: return "form";
    case FORM_KIND_TEST: return "test copy";
    case FORM_KIND_CARD: return "card";
    }
    return "?";
}

void form_preds_free(struct form_preds *p)
{
    free(p->final);
    free(p->ref);
    free(p->due_base);
    free(p->dirty);
    free(p->work);
    memset(p, 0, sizeof *p);
}

void form_sql_free(struct form_sql *s)
{
    free(s->unsupported);
    free(s->endpoints);
    free(s->stat_keys);
    free(s->block_keys);
    free(s->set);
    free(s->allforms_set);
    free(s->allforms_dirty);
    form_preds_free(&s->pred);
    memset(s, 0, sizeof *s);
}

const struct column *form_column(const struct form *f, const char *name)
{
    for (size_t i = 0; i < f->ncols; i++)
        if (strcmp(f->cols[i].name, name) == 0)
            return &f->cols[i];
    return NULL;
}

void form_free(struct form *f)
{
    free(f->table);
    free(f->evo_table);
    free(f->slug);
    free(f->name);
    free(f->label);
    classify_columns_free(f->cols, f->ncols);
    for (size_t i = 0; i < f->ncols; i++) {
        free(f->cols[i].name);
        free(f->cols[i].qname);
        free(f->cols[i].type);
    }
    free(f->cols);
    free(f->q_table);
    free(f->q_evo);
    form_sql_free(&f->sql);
}
