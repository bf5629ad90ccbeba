/*
 * units.c: a tenant's work cut into units, and their scheduling (see
 * units.h).
 *
 * A unit is a form's candidates (candidates.h), or when there are more
 * than about 18 x batch_size of them, a range of them.  The tenant's process (its coordinator, which holds
 * the tenant lock for the run) starts helper processes while the run's
 * --jobs leaves tokens free (executor.h); it and its helpers take units one
 * after another from a counter in shared memory, so that no helper waits
 * for the coordinator to hand one out.  A form's search tokens, VACUUM and
 * audit entry come once, in the coordinator, after all its units (the
 * hooks).
 */
#include "units.h"
#include "ax.h"
#include "ipc.h"
#include "log.h"
#include "strbuf.h"
#include "timeutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

/* -- work units ------------------------------------------------------------------------ */

/* A form's candidates are cut into units of about this many batches (a few seconds of work). */
#define UNIT_BATCHES 12
/* One unit: the ids (lo, end] of one form. */
struct unit {
    size_t form;
    char lo[32], end[32];
};
/* What a unit did, as a helper sends it. */
struct unit_result {
    uint64_t unit; /* its index */
    int32_t rc;
    struct form_counts c;
    char error[1024];
};
/* Appends the unit (lo, end] of form fi ("0" and PLAN_NO_END for the open bounds). */
static void add_unit(struct unit **units, size_t *n, size_t fi, long long lo, long long end)
{
    *units = ax_reallocarray(*units, *n + 1, sizeof **units);
    struct unit *u = &(*units)[(*n)++];
    u->form = fi;
    snprintf(u->lo, sizeof u->lo, "%lld", lo);
    if (end < 0)
        snprintf(u->end, sizeof u->end, "%s", PLAN_NO_END);
    else
        snprintf(u->end, sizeof u->end, "%lld", end);
}
/*
 * The units of one form: its candidates (candidates.h), found once, cut
 * into parts of about UNIT_BATCHES batches each (the last one open-ended).
 */
static int plan_units(struct tenant *t, const struct app *app, size_t fi, struct form_candidates *fc,
                      struct unit **units, size_t *n)
{
    const struct form *f = &t->forms[fi];
    const long long unit_rows = (long long)UNIT_BATCHES * app->cfg->batch_size;
    double t0 = tm_now();
    int rc = candidates_fill(t, f, fc);
    if (rc)
        return rc;
    long long *bounds = NULL;
    size_t nb = 0;
    if (fc->count > unit_rows + unit_rows / 2 && (rc = candidates_bounds(t, f, unit_rows, 999, &bounds, &nb)))
        return rc;
    log_debug("%s: %s: %lld candidates (anonymised rows from %s), %zu units, in %.3f s", t->name, f->label, fc->count,
              fc->since, nb + 1, tm_now() - t0);
    long long lo = 0;
    for (size_t k = 0; k < nb; k++) {
        add_unit(units, n, fi, lo, bounds[k]);
        lo = bounds[k];
    }
    add_unit(units, n, fi, lo, -1);
    free(bounds);
    return AX_OK;
}
/*
 * One unit: the anonymisation of its range, then the deletion of its
 * expired drafts.  *failure: what kept submissions or the table from being
 * done (the first such thing), or NULL; the caller frees it.
 */
static int run_unit(struct tenant *t, const struct app *app, const struct unit *u, struct progress *progress,
                    struct form_counts *c, char **failure)
{
    const struct form *f = &t->forms[u->form];
    struct batcher b;
    *failure = NULL;
    progress_phase(progress, "anonymise");
    batcher_init(&b, t, app, f, PLAN_ANONYMISE, u->lo, u->end, progress);
    int locked = c->table_locked;
    int rc = run_batches(&b, c);
    *failure = b.failure;
    b.failure = NULL;
    batcher_free(&b);
    /* a table locked is left whole: its drafts too */
    if (rc == AX_OK && f->pol.drafts == CFG_DRAFTS_DELETE && c->table_locked == locked) {
        progress_phase(progress, "drafts");
        batcher_init(&b, t, app, f, PLAN_DELETE_DRAFTS, u->lo, u->end, progress);
        rc = run_batches(&b, c);
        if (!*failure) {
            *failure = b.failure;
            b.failure = NULL;
        }
        batcher_free(&b);
    }
    return rc;
}
struct unit_job {
    struct tenant *t;
    const struct app *app;
    const struct unit *units;
    size_t nunits;
    size_t *claim; /* shared by the coordinator and its helpers: the next unit to take */
    struct progress *progress;
};
/* The next unit nobody has taken (nunits: none left); shared memory, so helpers and coordinator never both
 * take one, and nobody waits for the coordinator to hand out work. */
static size_t claim_unit(size_t *claim, size_t nunits)
{
    size_t ui = __atomic_fetch_add(claim, 1, __ATOMIC_SEQ_CST);
    return ui < nunits ? ui : nunits;
}
/* In a helper process: units, taken one after another, on a session of its own; each result to the coordinator. */
static void unit_helper(void *arg, int fd)
{
    struct unit_job *j = arg;
    int rc = tenant_helper_session(j->t, j->app);
    for (;;) {
        if (app_interrupted || app_out_of_time(j->app))
            break;
        size_t ui = claim_unit(j->claim, j->nunits);
        if (ui == j->nunits)
            break;
        struct unit_result r;
        memset(&r, 0, sizeof r);
        r.unit = ui;
        char *failure = NULL;
        r.rc = rc;
        if (rc == AX_OK)
            r.rc = run_unit(j->t, j->app, &j->units[ui], j->progress, &r.c, &failure);
        if (failure)
            snprintf(r.error, sizeof r.error, "%s", failure);
        else if (r.rc && j->t->db.error)
            snprintf(r.error, sizeof r.error, "%s", j->t->db.error);
        free(failure);
        ipc_send(fd, IPC_RESULT, &r, sizeof r);
        /* its session lost (or never opened): the coordinator sees the others through */
        if (r.rc == AX_ERR_DB && failure_scope(&j->t->db) == FAIL_SESSION)
            break;
    }
}
/* How much of the tenant's work a live progress line can count on (it costs a pass over each table). */
static long long count_due(struct tenant *t, const struct form *f)
{
    long long n = -1, drafts = 0;
    if (batch_count_work(t, f, &n) != AX_OK)
        return -1;
    if (f->pol.drafts == CFG_DRAFTS_DELETE && batch_count_drafts(t, f, &drafts) != AX_OK)
        return -1;
    return n + drafts;
}
/* Names the forms a stop left for the next run. */
static void log_forms_left(const struct tenant *t, const struct form_state *fs)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t k = 0; k < t->nforms; k++)
        if (fs[k].units_left > 0 && !fs[k].started)
            sb_appendf(&sb, "%s%s", sb.len ? ", " : "", t->forms[k].slug);
    if (sb.len)
        log_info("%s: forms not started, left for the next run: %s", t->name, sb.buf);
    sb_free(&sb);
}
/* The scheduling of a tenant's units: in helpers while tokens allow, one at a time in the coordinator. */
struct scheduler {
    struct tenant *t;
    const struct app *app;
    struct job_ctx *ctx;
    const struct unit_hooks *hooks;
    struct unit *units;
    size_t nunits;
    size_t *claim;   /* the next unit to take, shared with the helpers (claim_unit) */
    size_t started_upto; /* the forms of units below it are marked started */
    struct form_state *fs;
    int fatal;    /* a failure that ends the tenant (AX_ERR_DB from finishing a form) */
    char *fatal_error;
    char *helper_error; /* a helper died: the forms it left unfinished fail with this */
};
/* A unit is done (rc, counts): its form finishes with its last unit. */
static void unit_done(struct scheduler *s, size_t ui, int rc, const struct form_counts *c, const char *error)
{
    struct form_state *fs = &s->fs[s->units[ui].form];
    form_counts_add(&fs->c, c);
    if (error && *error && !fs->error)
        fs->error = ax_strdup(error);
    if (rc && !fs->rc)
        fs->rc = rc;
    if (--fs->units_left > 0)
        return;
    int done = s->hooks->form_finished(s->hooks->arg, s->units[ui].form, fs);
    if (done == AX_ERR_DB && !s->fatal) {
        s->fatal = AX_ERR_DB;
        s->fatal_error = ax_strdup(fs->error ? fs->error : s->t->db.error ? s->t->db.error : "?");
    }
}
static bool stop_starting(const struct scheduler *s)
{
    return app_interrupted || app_out_of_time(s->app) || s->fatal;
}
/* How many units have been taken, by anyone. */
static size_t claimed(const struct scheduler *s)
{
    size_t n = __atomic_load_n(s->claim, __ATOMIC_SEQ_CST);
    return n < s->nunits ? n : s->nunits;
}
static void report_unclassified(const struct tenant *t, const struct form *f)
{
    if (f->nunclassified == 0)
        return;
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < f->ncols; i++) {
        if (f->cols[i].cls != COL_UNCLASSIFIED)
            continue;
        sb_appendf(&sb, "%s%s", sb.len ? ", " : "", f->cols[i].name);
    }
    log_warning("%s: %s: %zu unclassified column%s blanked (%s): %s", t->name, f->label, f->nunclassified,
                f->nunclassified > 1 ? "s" : "", f->def ? "not in the definition" : "no definition", sb.buf);
    sb_free(&sb);
}
/* Marks the form started: its progress line and the time its summary counts from. */
static void start_form(struct scheduler *s, size_t fi)
{
    struct form_state *fs = &s->fs[fi];
    if (fs->started)
        return;
    fs->started = true;
    fs->started_at = tm_now();
    const struct form *f = &s->t->forms[fi];
    report_unclassified(s->t, f);
    progress_form_start(s->ctx->progress, f->kind == FORM_KIND_FORM ? f->slug : f->label,
                        s->app->progress_live ? count_due(s->t, f) : -1);
}
/* The forms of every unit taken so far, helpers' included, are started. */
static void mark_started(struct scheduler *s)
{
    for (size_t upto = claimed(s); s->started_upto < upto; s->started_upto++)
        start_form(s, s->units[s->started_upto].form);
}
/* Starts helpers while tokens allow (keeping one for the coordinator itself); each takes units until none is
 * left, as the coordinator does. */
static void start_helpers(struct scheduler *s)
{
    for (;;) {
        if (stop_starting(s) || s->nunits - claimed(s) <= 1)
            return;
        struct unit_job job = {s->t, s->app, s->units, s->nunits, s->claim, s->ctx->progress};
        if (!helper_start(s->ctx->helpers, unit_helper, &job))
            return;
        log_debug("%s: a helper process takes units too", s->t->name);
    }
}
/* What a helper sent or did: a unit's result, or its end (one that died leaves its unit unfinished, said at the
 * end).  False when nothing happened within timeout_ms. */
static bool collect_helpers(struct scheduler *s, int timeout_ms)
{
    const char *payload;
    size_t len, pending;
    int status = 0;
    enum helper_event ev = helper_wait(s->ctx->helpers, timeout_ms, &payload, &len, &status, &pending);
    /* the forms of the units taken so far are started (their summary counts from then) */
    mark_started(s);
    if (ev == HELPER_MESSAGE && len == sizeof(struct unit_result)) {
        struct unit_result r;
        memcpy(&r, payload, sizeof r);
        r.error[sizeof r.error - 1] = '\0';
        if (r.unit < s->nunits)
            unit_done(s, (size_t)r.unit, r.rc, &r.c, r.error);
    } else if (ev == HELPER_ENDED) {
        bool died = !WIFEXITED(status) || WEXITSTATUS(status) != 0 || pending != 0;
        if (died && !app_interrupted && !s->helper_error) {
            s->helper_error = ax_asprintf("a helper process ended without a result (wait status %d)", status);
            log_error("%s: %s", s->t->name, s->helper_error);
        }
    }
    return ev != HELPER_NONE;
}
/* The coordinator's own share: the next unit nobody has taken, or false. */
static bool run_next_unit(struct scheduler *s)
{
    if (stop_starting(s))
        return false;
    size_t ui = claim_unit(s->claim, s->nunits);
    mark_started(s);
    if (ui == s->nunits)
        return false;
    struct form_counts c = {0};
    char *failure = NULL;
    int rc;
    if (s->fs[s->units[ui].form].rc == AX_ERR_DATA) {
        /* its table failed (privileges, disk full...): skipped */
        rc = AX_ERR_DATA;
    } else {
        rc = run_unit(s->t, s->app, &s->units[ui], s->ctx->progress, &c, &failure);
    }
    unit_done(s, ui, rc, &c, failure ? failure : rc && rc != AX_ERR_DATA ? s->t->db.error : NULL);
    free(failure);
    /* a failure that ends the tenant stops the helpers too */
    if (s->fatal)
        __atomic_store_n(s->claim, s->nunits, __ATOMIC_SEQ_CST);
    return true;
}
/*
 * The candidates could not be found (plan_units failed): a lock is waited for
 * again by the unit, which leaves the table for the next run; another error
 * fails the form.  False: the session is lost.
 */
static bool plan_one_unit(struct tenant *t, struct scheduler *s, size_t fi)
{
    if (failure_scope(&t->db) == FAIL_SESSION)
        return false;
    if (!batch_transient(&t->db)) {
        char *why = failure_text(&t->db);
        log_error("%s: %s: failed: %s", t->name, t->forms[fi].label, why);
        s->fs[fi].rc = AX_ERR_DATA;
        s->hooks->form_skipped(s->hooks->arg, fi, why);
        free(why);
        return true;
    }
    s->units = ax_reallocarray(s->units, s->nunits + 1, sizeof *s->units);
    struct unit *u = &s->units[s->nunits++];
    u->form = fi;
    snprintf(u->lo, sizeof u->lo, "0");
    snprintf(u->end, sizeof u->end, "%s", PLAN_NO_END);
    return true;
}
/* Every form's units, in order; false when a form's failure ends the tenant (s->fatal). */
static bool plan_forms(struct scheduler *s, enum tenant_outcome *outcome)
{
    struct tenant *t = s->t;
    for (size_t i = 0; i < t->nforms && !s->fatal; i++) {
        struct form *f = &t->forms[i];
        if (f->sql.unsupported) {
            /* this form is left alone; the others are safe to process */
            log_error("%s: %s: %s; skipped", t->name, f->label, f->sql.unsupported);
            if (s->hooks->form_skipped(s->hooks->arg, i, f->sql.unsupported) == AX_ERR_DB)
                s->fatal = AX_ERR_DB;
            *outcome = TENANT_FAILED;
            continue;
        }
        size_t before = s->nunits;
        if (plan_units(t, s->app, i, &s->fs[i].cand, &s->units, &s->nunits) != AX_OK && !plan_one_unit(t, s, i)) {
            s->fatal = AX_ERR_DB;
            s->fatal_error = ax_strdup(t->db.error);
            return false;
        }
        s->fs[i].units_left = s->nunits - before;
    }
    return !s->fatal;
}

/* The units, taken by the coordinator and its helpers until none is left (or a stop). */
static void take_units(struct scheduler *s)
{
    /* the next unit to take, in memory the helpers share */
    s->claim = mmap(NULL, sizeof *s->claim, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s->claim == MAP_FAILED) {
        s->claim = NULL;
        s->fatal = AX_ERR_NOMEM;
        s->fatal_error = ax_asprintf("cannot share the work units: %s", strerror(errno));
        return;
    }
    *s->claim = s->fatal ? s->nunits : 0;
    for (;;) {
        /* helpers that ended give their token back before more are asked for */
        while (collect_helpers(s, 0))
            ;
        start_helpers(s);
        if (run_next_unit(s))
            continue;
        if (!collect_helpers(s, -1))
            break;
    }
    mark_started(s);
}

/* What a stop left: forms partly done are recorded as interrupted (or failed with a dead helper), the others
 * named. */
static void finish_started_forms(struct scheduler *s)
{
    for (size_t i = 0; i < s->t->nforms; i++) {
        struct form_state *fs = &s->fs[i];
        if (fs->units_left == 0 || !fs->started)
            continue;
        fs->units_left = 1;
        if (!fs->rc && s->helper_error && !app_interrupted) {
            fs->rc = AX_ERR_DB;
            fs->error = ax_strdup(s->helper_error);
        }
        if (!fs->rc)
            fs->rc = s->fatal ? AX_ERR_DB : AX_ERR_INTERRUPTED;
        size_t ui = 0;
        while (ui < s->nunits && s->units[ui].form != i)
            ui++;
        struct form_counts none = {0};
        unit_done(s, ui, fs->rc, &none, NULL);
    }
    log_forms_left(s->t, s->fs);
}

/* The tenant's outcome from its forms'; *error the failure that ended it. */
static enum tenant_outcome tenant_outcome_of(struct scheduler *s, enum tenant_outcome outcome, size_t taken,
                                             char **error)
{
    for (size_t i = 0; i < s->t->nforms; i++) {
        if (s->fs[i].rc == AX_ERR_DATA || s->fs[i].rc == AX_ERR_LOCKED)
            outcome = TENANT_FAILED;
        else if (s->fs[i].rc == AX_ERR_DB && !s->fatal) {
            s->fatal = AX_ERR_DB;
            s->fatal_error = ax_strdup(s->fs[i].error ? s->fs[i].error : "?");
        }
    }
    if (s->fatal) {
        *error = s->fatal_error ? s->fatal_error : ax_strdup(ax_status_str(s->fatal));
        s->fatal_error = NULL;
        return TENANT_FAILED;
    }
    if (app_interrupted || taken < s->nunits || app_budget_exhausted) {
        bool left = taken < s->nunits;
        for (size_t i = 0; i < s->t->nforms && !left; i++)
            left = s->fs[i].rc == AX_ERR_INTERRUPTED;
        if (left)
            return TENANT_INTERRUPTED;
    }
    return outcome;
}

enum tenant_outcome units_run(struct tenant *t, const struct app *app, struct job_ctx *ctx,
                              const struct unit_hooks *hooks, char **error)
{
    struct scheduler s = {.t = t, .app = app, .ctx = ctx, .hooks = hooks};
    enum tenant_outcome outcome = TENANT_OK;
    s.fs = ax_calloc(t->nforms + 1, sizeof *s.fs);
    plan_forms(&s, &outcome);
    take_units(&s);
    size_t taken = s.claim ? claimed(&s) : 0;
    finish_started_forms(&s);
    outcome = tenant_outcome_of(&s, outcome, taken, error);
    for (size_t i = 0; i < t->nforms; i++)
        free(s.fs[i].error);
    free(s.fs);
    free(s.units);
    free(s.helper_error);
    free(s.fatal_error);
    if (s.claim)
        munmap(s.claim, sizeof *s.claim);
    return outcome;
}
