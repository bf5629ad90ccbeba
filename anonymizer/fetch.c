/*
 * fetch.c: the "fetch" command: every tenant's definitions fetched from its
 * w.c.s. (defs.h does the work), what changed printed.
 */
#include "fetch.h"
#include "ax.h"
#include "defs.h"
#include "executor.h"

#include <stdlib.h>

static enum tenant_outcome fetch_job(const struct app *app, struct app_tenant *at, struct job_ctx *ctx)
{
    if (!at->cfg->url) {
        char *line = ax_asprintf("%s: no url: definitions are read from the files only", at->cfg->name);
        progress_print(ctx->progress, line);
        free(line);
        return TENANT_OK;
    }
    return defs_prepare(app, at, DEFS_FETCH_COMMAND, ctx->progress) == AX_OK ? TENANT_OK : TENANT_FAILED;
}

int cmd_fetch(const struct app *app)
{
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);
    struct run_totals tot = {0};
    exec_outcomes(app, fetch_job, outcomes, &tot);
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return status;
}
