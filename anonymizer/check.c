/*
 * check.c: the "check" command.
 */
#include "check.h"
#include "ax.h"
#include "log.h"
#include "strbuf.h"
#include "tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_list(const struct form *f, enum col_class cls, const char *title)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < f->ncols; i++)
        if (f->cols[i].cls == cls)
            sb_appendf(&sb, "%s%s", sb.len ? ", " : "", f->cols[i].name);
    if (sb.len)
        printf("    %s: %s\n", title, sb.buf);
    sb_free(&sb);
}

static void print_form(const struct tenant *t, const struct form *f)
{
    printf("  form %s \"%s\" (table %s)\n", f->slug, f->name, f->table);
    printf("    retention %s (%s), drafts %s (%s), open submissions %s (%s)\n", f->pol.retention_text,
           cfg_source_str(f->pol.retention_source), f->pol.drafts == CFG_DRAFTS_DELETE ? "delete" : "anonymise",
           cfg_source_str(f->pol.drafts_source), f->pol.open_submissions == CFG_OPEN_SKIP ? "skip" : "anonymise",
           cfg_source_str(f->pol.open_source));
    printf("    definition: %s\n", f->def ? f->def->path : "none (every field column is unclassified)");
    if (f->sql.endpoints) {
        printf("    final statuses:");
        for (size_t i = 0; i < f->def->nstatuses; i++)
            if (f->def->statuses[i].endpoint)
                printf(" wf-%s", f->def->statuses[i].id);
        printf("\n");
    }
    else
        printf("    final statuses: %s\n", t->facts.has_allforms ? "from wcs_all_forms.is_at_endpoint" : "unknown");
    if (f->sql.unsupported)
        printf("    UNSUPPORTED: %s\n", f->sql.unsupported);
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls != COL_KEEP && c->cls != COL_BLANK && c->cls != COL_UNCLASSIFIED)
            continue;
        printf("    %-32s %-13s %-36s", c->name, col_class_str(c->cls), col_reason_str(c->reason));
        if (c->field)
            printf(" %s%s%s%s", c->field->label ? c->field->label : "", c->field->varname ? " [" : "",
                   c->field->varname ? c->field->varname : "", c->field->varname ? "]" : "");
        printf("\n");
    }
    print_list(f, COL_METADATA, "metadata set to NULL");
    print_list(f, COL_STATISTICS, "trimmed");
    print_list(f, COL_SYSTEM, "kept");
}

int cmd_check(const struct app *app)
{
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);

    printf("configuration %s: valid\n", app->cfg->path);
    for (size_t i = 0; i < app->ntenants; i++) {
        struct app_tenant *at = &app->tenants[i];
        struct tenant t;
        outcomes[i] = tenant_begin(&t, app, at, TB_READ_ONLY, NULL);
        if (outcomes[i] != TENANT_OK) {
            printf("tenant %s: %s: %s\n", at->cfg->name, outcomes[i] == TENANT_UNREACHABLE ? "UNREACHABLE" : "FAILED",
                   t.db.error);
            tenant_close(&t);
            continue;
        }
        printf("tenant %s: reachable, %zu form%s, %zu definition%s, ", t.name, t.nforms, t.nforms == 1 ? "" : "s",
               at->defs.n, at->defs.n == 1 ? "" : "s");
        if (at->cfg->discovered)
            printf("discovered by discover entry %d\n", at->cfg->discovered);
        else
            printf("listed in tenants\n");
        for (size_t k = 0; k < t.nforms; k++) {
            print_form(&t, &t.forms[k]);
            if (t.forms[k].sql.unsupported)
                outcomes[i] = TENANT_FAILED;
        }
        for (size_t k = 0; k < at->defs.n; k++) {
            bool used = false;
            for (size_t j = 0; j < t.nforms; j++)
                used |= t.forms[j].def == at->defs.defs[k];
            if (!used)
                printf("  definition %s matches no form table\n", at->defs.defs[k]->path);
        }
        tenant_close(&t);
    }
    fflush(stdout);
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
