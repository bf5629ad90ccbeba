/*
 * report.c: the DPO report: what a run would do now, per tenant and form,
 * and whether any personal data is held past the three-month limit.
 *
 * Each tenant is read in one REPEATABLE READ READ ONLY transaction (a
 * consistent picture, and the server refuses any write), with one aggregate
 * statement per form (plan_report): the counting happens in the server, in
 * one pass over the table, never row by row here.  The predicates are those
 * of the run, so "due" is exactly what the next run anonymises.
 *
 * Everything is collected first (report_model.h), the verdict drawn, then
 * rendered as text, HTML, JSON or CSV.  Each tenant is read in a worker
 * process of its own (executor.h), --jobs N of them side by side, which
 * hands its tenant_report back as bytes (report_model.h); the rendering, in
 * configuration order, is the same whatever N.
 */
#include "report.h"
#include "audit.h"
#include "chain.h"
#include "hold.h"
#include "ax.h"
#include "candidates.h"
#include "classify.h"
#include "defs.h"
#include "executor.h"
#include "i18n.h"
#include "log.h"
#include "report_model.h"
#include "sqltext.h"
#include "strbuf.h"
#include "tenant.h"
#include "testdefs.h"
#include "timeutil.h"
#include "wcs_logs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* -- collection ------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s ? ax_strdup(s) : NULL;
}

static void collist_add(struct collist *l, const struct column *c)
{
    l->items = ax_reallocarray(l->items, l->n + 1, sizeof *l->items);
    struct colref *r = &l->items[l->n++];
    r->column = ax_strdup(c->name);
    r->reason = ax_strdup(col_reason_str(c->reason));
    r->label = dup_or_null(c->field ? c->field->label : NULL);
    r->varname = dup_or_null(c->field ? c->field->varname : NULL);
    char buf[96];
    r->personal = col_is_kept(c->cls) && c->cls != COL_BLOCK && classify_personal_by_nature(c->field, buf, sizeof buf);
}

/* A block's subfield, listed like a field: "f9.1", its label, "enfants.prenom". */
static void collist_add_sub(struct collist *l, const struct column *c, const struct col_sub *sub)
{
    l->items = ax_reallocarray(l->items, l->n + 1, sizeof *l->items);
    struct colref *r = &l->items[l->n++];
    r->column = classify_sub_name(c, sub);
    r->reason = ax_strdup(col_reason_str(sub->reason));
    r->label = dup_or_null(sub->field->label);
    r->varname = classify_sub_varname(c, sub);
    char buf[96];
    r->personal = sub->kept && classify_personal_by_nature(sub->field, buf, sizeof buf);
}

/* Every column and subfield of a form, in the kept, blanked and unclassified lists. */
static void collect_columns(const struct form *f, struct form_report *fr)
{
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls == COL_UNCLASSIFIED)
            collist_add(&fr->unclassified, c);
        else if (col_is_nulled(c->cls))
            collist_add(&fr->blank, c);
        else
            collist_add(&fr->keep, c);
        for (size_t k = 0; k < c->nsubs; k++)
            collist_add_sub(c->subs[k].kept ? &fr->keep : &fr->blank, c, &c->subs[k]);
    }
}

/* path below dir, as "<tenant>/<slug>.json"; path itself when it is elsewhere. */
static const char *relative_to(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && path[n] == '/' ? path + n + 1 : path;
}

/* The instant evaluated minus open_limit: open submissions inactive since before are to review. */
static int open_limit_instant(struct tenant *t, const struct form *f, char *out, size_t outlen)
{
    PGresult *res;
    char days[16];
    snprintf(days, sizeof days, "%d", f->pol.open_limit_days);
    const char *values[2] = {t->now, days};
    const Oid types[2] = {DB_TIMESTAMPTZOID, DB_INT4OID};
    int rc = db_query(&t->db, &res, DB_ONE_ROW(1), "SELECT ($1 OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => $2))::text", 2,
                      types, values);
    if (rc)
        return rc;
    snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return AX_OK;
}

/* The columns of plan_report's row after the counts (see plan.h). */
static void read_form_row(const PGresult *res, struct form_report *fr)
{
    int c = C_COUNT;
    for (int i = 0; i < C_COUNT; i++)
        fr->counts[i] = atoll(PQgetvalue(res, 0, i));
    fr->oldest_pending = PQgetisnull(res, 0, c) ? NULL : ax_strdup(PQgetvalue(res, 0, c));
    fr->days_past_limit = PQgetisnull(res, 0, c + 1) ? 0 : atoll(PQgetvalue(res, 0, c + 1));
    fr->in_backups = atoll(PQgetvalue(res, 0, c + 2));
    fr->in_backups_until = PQgetisnull(res, 0, c + 3) ? NULL : ax_strdup(PQgetvalue(res, 0, c + 3));
    fr->open_inactive = atoll(PQgetvalue(res, 0, c + 4));
    fr->oldest_open_inactive = PQgetisnull(res, 0, c + 5) ? NULL : ax_strdup(PQgetvalue(res, 0, c + 5));
    for (int k = 0; k < 2; k++)
        for (int a = 0; a < AGE_COUNT; a++)
            fr->ages[k][a] = atoll(PQgetvalue(res, 0, c + 6 + k * AGE_COUNT + a));
    c += 6 + 2 * AGE_COUNT;
    fr->undated = atoll(PQgetvalue(res, 0, c));
    fr->status_unknown = atoll(PQgetvalue(res, 0, c + 1));
    fr->status_unknown_past = atoll(PQgetvalue(res, 0, c + 2));
    fr->open_intermediate = atoll(PQgetvalue(res, 0, c + 3));
}

/*
 * The rows a run found clean (anonymised before the form's last complete
 * check), counted on w.c.s.'s index: submissions, anonymised, in backups.
 */
static int add_settled(struct tenant *t, const struct form *f, const struct plan_values *pv, struct form_report *fr)
{
    PGresult *res;
    char *sql = plan_report_settled(f);
    int rc = db_query(&t->db, &res, DB_ONE_ROW(PLAN_REPORT_SETTLED_NCOLS), sql, PLAN_NPARAMS, pv->types, pv->values);
    free(sql);
    if (rc)
        return rc;
    long long n = atoll(PQgetvalue(res, 0, 0));
    fr->counts[C_SUBMISSIONS] += n;
    fr->counts[C_ANONYMISED] += n;
    fr->in_backups += atoll(PQgetvalue(res, 0, 1));
    /* ISO dates: the later one is the greater string */
    if (!PQgetisnull(res, 0, 2) && (!fr->in_backups_until || strcmp(PQgetvalue(res, 0, 2), fr->in_backups_until) > 0)) {
        free(fr->in_backups_until);
        fr->in_backups_until = ax_strdup(PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    return AX_OK;
}

static int aggregate(struct tenant *t, const struct form *f, const struct plan_values *pv, enum plan_held held,
                     struct form_report *fr)
{
    PGresult *res;
    char *sql = plan_report(f, held);
    int rc = db_query(&t->db, &res, DB_ONE_ROW(PLAN_REPORT_NCOLS), sql, PLAN_NPARAMS, pv->types, pv->values);
    free(sql);
    if (rc == AX_OK) {
        read_form_row(res, fr);
        PQclear(res);
    }
    return rc;
}

/*
 * The form's rows counted: those under a legal hold in force apart (held data past the limit is lawful
 * while the hold lasts: not in the verdict), the others as the verdict sees them.
 */
static int count_rows(struct tenant *t, const struct tenant_report *tr, const struct form *f,
                      const struct plan_values *pv, struct form_report *fr)
{
    bool whole = false;
    struct strbuf ids;
    sb_init(&ids);
    sb_append(&ids, "{");
    for (size_t i = 0; i < tr->nholds; i++) {
        const struct report_hold *h = &tr->holds[i];
        if (h->expired || strcmp(h->table, f->table) != 0)
            continue;
        whole |= h->submission_id == 0;
        if (h->submission_id)
            sb_appendf(&ids, "%s%lld", ids.len > 1 ? "," : "", h->submission_id);
    }
    sb_append(&ids, "}");
    int rc;
    if (!whole && ids.len == 2) {
        sb_free(&ids);
        return aggregate(t, f, pv, PLAN_HELD_ANY, fr);
    }
    rc = db_query(&t->db, NULL, DB_ONE_ROW(2),
                  "SELECT pg_catalog.set_config('anonymizer.held_all', $1, false),"
                  " pg_catalog.set_config('anonymizer.held', $2, false)",
                  2, NULL, (const char *const[]){whole ? "true" : "false", ids.buf});
    sb_free(&ids);
    struct form_report held = {0};
    if (rc == AX_OK && (rc = aggregate(t, f, pv, PLAN_HELD_NOT, fr)) == AX_OK &&
        (rc = aggregate(t, f, pv, PLAN_HELD_ONLY, &held)) == AX_OK) {
        fr->held = held.counts[C_SUBMISSIONS] - held.counts[C_ANONYMISED];
        fr->held_due = pending_of(&held);
        fr->held_past_limit = f->of_card ? 0 : held.ages[0][AGE_PAST];
        /* they are the form's submissions all the same */
        for (int c = 0; c < C_COUNT; c++)
            if (c == C_SUBMISSIONS || c == C_ANONYMISED)
                fr->counts[c] += held.counts[c];
    }
    free(held.oldest_pending);
    free(held.in_backups_until);
    free(held.oldest_open_inactive);
    return rc;
}

static int collect_form(struct tenant *t, const struct tenant_report *tr, const struct form *f,
                        struct form_report *fr, int backup_days, const char *schemas)
{
    char days[16], open_limit[64];
    PGresult *res;

    fr->slug = ax_strdup(f->slug);
    fr->name = ax_strdup(f->name);
    fr->table = ax_strdup(f->table);
    fr->evo_table = f->evo_table ? ax_strdup(f->evo_table) : NULL;
    fr->retention = ax_strdup(f->pol.retention_text);
    fr->retention_days = f->pol.retention_days;
    fr->retention_source = f->pol.retention_source;
    fr->label = ax_strdup(f->label);
    fr->open_limit = ax_strdup(f->pol.open_limit_text);
    fr->open_limit_days = f->pol.open_limit_days;
    fr->kind = f->kind;
    fr->of_card = f->of_card;
    fr->formdef_id = f->formdef_id;
    fr->anonymised_by_run = f->anonymise;
    fr->definition = f->def ? ax_strdup(relative_to(f->def->path, schemas)) : NULL;
    collect_columns(f, fr);
    if (f->sql.unsupported) {
        fr->error = ax_strdup(f->sql.unsupported);
        return AX_OK;
    }

    struct plan_values pv;
    int rc = open_limit_instant(t, f, open_limit, sizeof open_limit);
    if (rc)
        return rc;
    char since[64];
    if ((rc = candidates_since(t, f, since, sizeof since)))
        return rc;
    snprintf(days, sizeof days, "%d", backup_days);
    plan_bind_report(f, &(struct plan_report_args){.legal_limit = tr->legal_limit, .at = t->now, .backup_days = days,
                                                   .open_limit = open_limit, .since = since}, &pv);
    if ((rc = count_rows(t, tr, f, &pv, fr)))
        return rc;
    if (strcmp(since, "-infinity") != 0 && (rc = add_settled(t, f, &pv, fr)))
        return rc;

    const char *cutoff[1] = {f->cutoff};
    rc = db_query(&t->db, &res, DB_ONE_ROW(1), "SELECT " SQL_ISO_UTC("$1::timestamptz"), 1, NULL, cutoff);
    if (rc)
        return rc;
    fr->cutoff = ax_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    /* the test definitions made from its submissions: counted in the verdict */
    struct testdef_counts tc;
    if ((rc = testdefs_count(t, f, tr->legal_limit, &tc)) != AX_OK)
        return rc;
    fr->testdefs = tc.total;
    fr->testdefs_due = tc.due;
    fr->testdefs_past_limit = tc.past_limit;
    fr->testdefs_oldest = tc.oldest;
    return AX_OK;
}

/* The audit trail: last successful run, and what the last run found locked. */
static int collect_audit(struct tenant *t, const struct app *app, struct tenant_report *tr)
{
    struct audit_view v;
    int rc = audit_read(t, &v);
    if (rc == AX_OK && v.exists && !v.readable) {
        log_warning("%s: no SELECT privilege on anonymizer.runs: last run unknown", tr->name);
        tr->last_run_unknown = true;
    }
    struct chain_status cs;
    if (rc == AX_OK && chain_verify(t, app, &cs) == AX_OK) {
        tr->chain_state = ax_strdup(chain_state_str(cs.state));
        tr->chain_text = chain_status_text(&cs);
        chain_status_free(&cs);
    } else if (rc == AX_OK) {
        log_warning("%s: the history's chain cannot be verified: %s", tr->name, t->db.error);
    }
    if (rc == AX_OK) {
        tr->last_run = v.last_ok ? ax_strdup(v.last_ok) : NULL;
        tr->run_in_progress = v.running_since ? ax_strdup(v.running_since) : NULL;
        for (size_t i = 0; i < v.nlocked; i++) {
            for (size_t k = 0; k < tr->nforms; k++) {
                if (strcmp(tr->forms[k].table, v.locked[i].table) == 0) {
                    tr->forms[k].locked_known = true;
                    tr->forms[k].locked_last_run = v.locked[i].locked;
                    tr->forms[k].not_vacuumed = v.locked[i].not_vacuumed;
                    free(tr->forms[k].failed_last_run);
                    tr->forms[k].failed_last_run = v.locked[i].failed ? ax_strdup(v.locked[i].failed) : NULL;
                }
            }
        }
    }
    /* what still owes a VACUUM: per form, and every table for the tenant */
    for (size_t i = 0; rc == AX_OK && i < v.nowed; i++) {
        for (size_t k = 0; k < tr->nforms; k++) {
            struct form_report *fr = &tr->forms[k];
            if (!fr->vacuum_owed_since && (strcmp(fr->table, v.owed_tables[i]) == 0 ||
                                           (fr->evo_table && strcmp(fr->evo_table, v.owed_tables[i]) == 0)))
                fr->vacuum_owed_since = ax_strdup(v.owed_since[i]);
        }
    }
    if (rc == AX_OK) {
        tr->nowed = v.nowed;
        tr->owed_tables = v.owed_tables;
        tr->owed_since = v.owed_since;
        v.owed_tables = v.owed_since = NULL;
        v.nowed = 0;
    }
    audit_view_free(&v);
    return rc;
}

/* The instant evaluated, the legal limit and until when backups hold what a run removes. */
/* What w.c.s.'s own logs keep past the legal limit about anonymised submissions (outside the verdict). */
static int collect_wcs_logs(struct tenant *t, struct tenant_report *tr)
{
    struct wcs_logs_counts c;
    int rc = wcs_logs_count(t, tr->legal_limit, &c);
    if (rc == AX_OK) {
        tr->audit_exists = c.audit_exists;
        tr->audit_read = c.audit_read;
        tr->errors_exists = c.errors_exists;
        tr->errors_read = c.errors_read;
        tr->audit_old = c.audit_old;
        tr->errors_old = c.errors_old;
        tr->audit_oldest = c.audit_oldest;
        tr->errors_oldest = c.errors_oldest;
    } else {
        wcs_logs_counts_free(&c);
    }
    return rc;
}

static int collect_dates(struct tenant *t, const struct app *app, struct tenant_report *tr)
{
    PGresult *res;
    char backup_days[16], cap[16];
    snprintf(backup_days, sizeof backup_days, "%d", app->cfg->backup_retention_days);
    snprintf(cap, sizeof cap, "%d", RETENTION_CAP_DAYS);
    const char *values[3] = {t->now, backup_days, cap};
    const Oid types[3] = {DB_TIMESTAMPTZOID, DB_INT4OID, DB_INT4OID};
    int rc = db_query(&t->db, &res, DB_ONE_ROW(3),
                      "SELECT " SQL_ISO_UTC("$1") ", ($1 OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => $3))::text,"
                      " pg_catalog.to_char(($1 OPERATOR(pg_catalog.+) pg_catalog.make_interval(days => $2)) AT TIME ZONE 'UTC',"
                      " 'YYYY-MM-DD')",
                      3, types, values);
    if (rc)
        return rc;
    tr->at = ax_strdup(PQgetvalue(res, 0, 0));
    tr->legal_limit = ax_strdup(PQgetvalue(res, 0, 1));
    tr->backups_until = ax_strdup(PQgetvalue(res, 0, 2));
    PQclear(res);
    return AX_OK;
}

/* --form: only these slugs (their test copies included); all without it. */
static bool wanted(const struct report_options *opts, const char *slug)
{
    for (size_t i = 0; i < opts->nforms; i++)
        if (strcmp(opts->forms[i], slug) == 0)
            return true;
    return opts->nforms == 0;
}

static void collect_tenant(const struct app *app, struct app_tenant *at, const struct report_options *opts,
                           struct tenant_report *tr)
{
    struct tenant t;
    int rc = AX_OK;

    tr->name = ax_strdup(at->cfg->name);
    tr->url = at->cfg->url;
    tr->outcome = tenant_begin(&t, app, at, TB_FETCH | TB_READ_ONLY | TB_SNAPSHOT | TB_PRIV_READ | TB_CUTOFFS, opts->at);
    tr->fetched = at->fetched;
    tr->fetch_error = at->fetch_error ? ax_strdup(at->fetch_error) : NULL;
    tr->files_age = at->files_age;
    if (tr->outcome != TENANT_OK) {
        tr->error = tr->outcome == TENANT_UNREACHABLE ? ax_asprintf(_("cannot connect: %s"), t.db.error)
                                                      : ax_strdup(t.db.error);
        tenant_close(&t);
        return;
    }
    tr->superuser = db_is_superuser(&t.db);
    rc = collect_dates(&t, app, tr);
    /* the legal holds first: the forms' figures count what they keep apart */
    if (rc == AX_OK && hold_read(&t, tr->at, &tr->holds, &tr->nholds) != AX_OK) {
        log_warning("%s: legal holds unknown: %s; held submissions are counted as any other", tr->name, t.db.error);
        tr->holds_unknown = true;
    }
    tr->forms = ax_calloc(t.nforms, sizeof *tr->forms);
    for (size_t i = 0; rc == AX_OK && i < t.nforms; i++) {
        if (!wanted(opts, t.forms[i].slug))
            continue;
        rc = collect_form(&t, tr, &t.forms[i], &tr->forms[tr->nforms++], app->cfg->backup_retention_days,
                          app->cfg->schemas);
    }
    if (rc == AX_OK)
        rc = collect_audit(&t, app, tr);
    if (rc == AX_OK)
        rc = collect_wcs_logs(&t, tr);
    if (rc == AX_OK && app->cfg->wcs_sites) {
        struct wcs_site_options so;
        wcs_site_options_read(app->cfg->wcs_sites, tr->name, &so);
        tr->site_options_read = true;
        tr->unused_files = so.unused_files;
        tr->audit_days = so.audit_days;
        tr->site_options_error = so.error;
    }
    if (rc == AX_OK)
        rc = db_cmd(&t.db, "COMMIT");
    if (rc != AX_OK) {
        tr->outcome = TENANT_FAILED;
        tr->error = ax_strdup(t.db.error ? t.db.error : ax_status_str(rc));
        log_error("%s: %s", tr->name, tr->error);
        db_rollback_quietly(&t.db);
    } else {
        for (size_t i = 0; i < tr->nforms; i++)
            if (tr->forms[i].error)
                tr->outcome = TENANT_FAILED;
    }
    tenant_close(&t);
}

/* In a worker (executor.h): one tenant's findings, handed back as bytes. */
static enum tenant_outcome report_job(const struct app *app, struct app_tenant *at, struct job_ctx *ctx)
{
    struct tenant_report tr = {0};
    struct strbuf out;
    collect_tenant(app, at, ctx->arg, &tr);
    sb_init(&out);
    tenant_report_pack(&out, &tr);
    ctx->result_len = out.len;
    ctx->result = sb_finish(&out);
    enum tenant_outcome outcome = tr.outcome;
    tenant_report_free(&tr);
    return outcome;
}

/* Every tenant, read by workers side by side (--jobs); a tenant whose worker handed nothing back is said so. */
static void collect_tenants(const struct app *app, const struct report_options *opts, struct report *r)
{
    struct exec_result *res = ax_calloc(app->ntenants + 1, sizeof *res);
    struct run_totals none = {0};
    exec_tenants(app, report_job, opts, res, &none);
    for (size_t i = 0; i < r->ntenants; i++) {
        struct tenant_report *tr = &r->tenants[i];
        if (!res[i].data || !tenant_report_unpack(res[i].data, res[i].len, tr)) {
            tenant_report_free(tr);
            memset(tr, 0, sizeof *tr);
            tr->name = ax_strdup(app->tenants[i].cfg->name);
            tr->outcome = res[i].outcome == TENANT_OK ? TENANT_FAILED : res[i].outcome;
            tr->error = ax_strdup(res[i].outcome == TENANT_INTERRUPTED ? app_interruption_str()
                                                                       : "the worker that read it ended without a result");
        }
        tr->url = app->tenants[i].cfg->url;
        free(res[i].data);
    }
    free(res);
}

/* generated_at: the wall clock, or $SOURCE_DATE_EPOCH (reproducible output). */
static char *now_iso(void)
{
    time_t now = time(NULL);
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end;
        long long v = strtoll(sde, &end, 10);
        if (*end == '\0' && v >= 0)
            now = (time_t)v;
    }
    struct tm tm;
    char buf[32];
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return ax_strdup(buf);
}

/* -- the BI database: what k-anonymity holds back ------------------------------- */

static void bi_state(struct report *r, PGresult *res)
{
    for (int row = 0; row < PQntuples(res); row++) {
        const char *tenant = PQgetvalue(res, row, 0);
        int fid = atoi(PQgetvalue(res, row, 1));
        for (size_t i = 0; i < r->ntenants; i++) {
            if (strcmp(r->tenants[i].name, tenant) != 0)
                continue;
            for (size_t k = 0; k < r->tenants[i].nforms; k++) {
                struct form_report *fr = &r->tenants[i].forms[k];
                if (fr->kind != FORM_KIND_FORM || fr->formdef_id != fid)
                    continue;
                fr->bi_known = true;
                fr->bi_smallest_group = PQgetisnull(res, row, 2) ? -1 : atoll(PQgetvalue(res, row, 2));
                fr->bi_held_back = atoll(PQgetvalue(res, row, 3));
                fr->bi_published = atoll(PQgetvalue(res, row, 4));
                free(fr->bi_limiting);
                fr->bi_limiting = PQgetisnull(res, row, 5) ? NULL : ax_strdup(PQgetvalue(res, row, 5));
            }
        }
    }
}

/*
 * Per form, the smallest group of rows sharing quasi-identifiers in BI and
 * the rows held back, as the last export left them (export_state), in a
 * read-only session.  A BI database that cannot be read is said, and does
 * not change the verdict: the limit is about the tenants.
 */
static void collect_bi(const struct app *app, struct report *r)
{
    if (!app->cfg->bi.conninfo)
        return;
    r->min_k = app->cfg->bi.min_k;
    struct db db;
    PGresult *res = NULL;
    struct db_profile profile = app_db_profile(app->cfg, true);
    int rc = db_connect(&db, app->cfg->bi.conninfo, NULL, "bi", &profile);
    bool exists = false, readable = false;
    if (rc == AX_OK)
        rc = db_relation(&db, app->cfg->bi.schema, "export_state", &exists, &readable);
    if (rc == AX_OK && exists && readable) {
        char *schema = db_quote_ident(&db, app->cfg->bi.schema);
        char *sql = ax_asprintf("SELECT tenant, form_id, smallest_group, held_back, published, limiting_field"
                                " FROM %s.export_state", schema);
        rc = db_query(&db, &res, DB_ROWS(6), sql, 0, NULL, NULL);
        if (rc == AX_OK) {
            bi_state(r, res);
            PQclear(res);
        }
        free(sql);
        free(schema);
    } else if (rc == AX_OK && exists) {
        db_set_error(&db, "no SELECT privilege on %s.export_state", app->cfg->bi.schema);
        rc = AX_ERR_DB;
    }
    if (rc) {
        r->bi_error = ax_strdup(db.error ? db.error : ax_status_str(rc));
        log_warning("bi: %s", r->bi_error);
    }
    db_close(&db);
}

/* -- verdict ------------------------------------------------------------------ */

/*
 * NOT COMPLIANT when personal data is past the limit somewhere (or an open
 * submission inactive past open_limit waits for review); else INCOMPLETE
 * when a tenant or form could not be checked; else COMPLIANT.
 */
static enum verdict draw_verdict(const struct report *r)
{
    bool incomplete = false;
    for (size_t i = 0; i < r->ntenants; i++) {
        const struct tenant_report *tr = &r->tenants[i];
        incomplete |= tr->outcome != TENANT_OK;
        for (size_t k = 0; k < tr->nforms; k++) {
            const struct form_report *fr = &tr->forms[k];
            if (form_past_limit(fr) || fr->open_inactive > 0)
                return VERDICT_NOT_COMPLIANT;
            incomplete |= fr->error != NULL;
        }
    }
    return incomplete ? VERDICT_INCOMPLETE : VERDICT_COMPLIANT;
}

/* -- command ------------------------------------------------------------------------ */

/* A --form slug found in no tenant, when every tenant could be read (an
 * unreachable one might have it); NULL when all were found. */
static const char *unmatched_form(const struct report *r, const struct report_options *opts)
{
    for (size_t i = 0; i < r->ntenants; i++)
        if (r->tenants[i].outcome != TENANT_OK)
            return NULL;
    for (size_t k = 0; k < opts->nforms; k++) {
        bool found = false;
        for (size_t i = 0; i < r->ntenants && !found; i++)
            for (size_t j = 0; j < r->tenants[i].nforms && !found; j++)
                found = r->tenants[i].forms[j].slug && strcmp(r->tenants[i].forms[j].slug, opts->forms[k]) == 0;
        if (!found)
            return opts->forms[k];
    }
    return NULL;
}

static void report_free(struct report *r, enum tenant_outcome *outcomes)
{
    for (size_t i = 0; i < r->ntenants; i++)
        tenant_report_free(&r->tenants[i]);
    free(r->tenants);
    free(r->generated_at);
    free(r->at);
    free(r->bi_error);
    free(outcomes);
}

int cmd_report(const struct app *app, const struct report_options *opts, FILE *out)
{
    struct report r = {0};
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);

    r.generated_at = now_iso();
    r.at = ax_strdup(opts->at ? opts->at : r.generated_at);
    r.at_future = opts->at_future;
    r.backup_retention = app->cfg->backup_retention_text;
    r.testdefs_report_only = app->cfg->testdefs_report_only;
    r.timezone = app->cfg->timezone;
    r.tenants = ax_calloc(app->ntenants, sizeof *r.tenants);
    r.ntenants = app->ntenants;
    collect_tenants(app, opts, &r);
    for (size_t i = 0; i < app->ntenants; i++)
        outcomes[i] = r.tenants[i].outcome;
    const char *unmatched = unmatched_form(&r, opts);
    if (unmatched) {
        /* a typo must not read as "COMPLIANT" over an empty list */
        log_error("--form %s: no such form, card or test copy in the selected tenants", unmatched);
        report_free(&r, outcomes);
        return EXIT_USAGE;
    }
    collect_bi(app, &r);
    r.verdict = draw_verdict(&r);
    int nagios_state = 3;

    switch (opts->format) {
    case REPORT_TEXT: report_render_text(out, &r, app->cfg); break;
    case REPORT_HTML: report_render_html(out, &r, app->cfg); break;
    case REPORT_JSON: report_render_json(out, &r); break;
    case REPORT_CSV: report_render_csv(out, &r); break;
    case REPORT_NAGIOS: nagios_state = report_render_nagios(out, &r, &opts->nagios); break;
    }
    fflush(out);
    if (opts->format == REPORT_NAGIOS) {
        report_free(&r, outcomes);
        return nagios_state;
    }

    int status = app_exit_status(outcomes, app->ntenants);
    if (status != EXIT_UNAVAILABLE)
        status = r.verdict == VERDICT_NOT_COMPLIANT ? EXIT_SOME_FAILED
                 : r.verdict == VERDICT_INCOMPLETE  ? EXIT_INCOMPLETE
                                                    : EXIT_OK;
    report_free(&r, outcomes);
    return status;
}
