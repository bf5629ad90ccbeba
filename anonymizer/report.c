/*
 * report.c: the DPO report.
 *
 * Each tenant is read in one REPEATABLE READ READ ONLY transaction (a
 * consistent picture, and the server refuses any write), with one aggregate
 * statement per form: the counting happens in the server, in one pass over
 * the table, never row by row here.  The predicates are those of the run
 * (tenant.c), so "due" is exactly what the next run anonymises.
 *
 * Everything is collected first, then rendered as text, JSON or CSV.
 */
#include "report.h"
#include "audit.h"
#include "fetch.h"
#include "ax.h"
#include "classify.h"
#include "log.h"
#include "strbuf.h"
#include "tenant.h"
#include "timeutil.h"
#include "version.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ISO 8601 in UTC, to the second */
#define ISO(x) "pg_catalog.to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

struct colref {
    char *column;
    char *reason;
    char *label;   /* may be NULL */
    char *varname; /* may be NULL */
};

struct collist {
    struct colref *items;
    size_t n;
};

enum { C_SUBMISSIONS, C_ANONYMISED, C_DUE, C_DRAFTS_DUE, C_OPEN_PAST, C_INCOMPLETE, C_COUNT };

struct form_report {
    char *slug, *name, *table;
    char *label;            /* "form <slug>", "test copy of <slug>", "card <slug>" */
    enum form_kind kind;
    bool anonymised_by_run; /* false: a card without a cards entry (only its drafts) */
    char *definition;       /* the definition file, or NULL */
    char *retention;
    int retention_days;
    const char *retention_source;
    char *cutoff;
    long long counts[C_COUNT];
    char *oldest_pending; /* NULL: nothing pending */
    long long days_past_limit;
    bool locked_known;
    long long locked_last_run;
    long long in_backups;   /* anonymised within the backup retention */
    char *in_backups_until; /* when the last of them leaves the backups */
    char *error; /* the form could not be assessed */
    struct collist keep, blank, unclassified;
};

struct tenant_report {
    char *name;
    enum tenant_outcome outcome;
    char *error;
    char *at;            /* the instant evaluated, ISO */
    char *legal_limit;   /* at minus three months, ISO */
    char *backups_until; /* at plus backup_retention, a date */
    char *last_run;      /* ISO, NULL when never */
    bool last_run_unknown;
    const char *url;     /* its w.c.s., NULL: definitions from files only */
    bool fetched;        /* definitions fetched from it now */
    char *fetch_error;   /* the fetch failed: files were used */
    double files_age;    /* seconds since those files were fetched (-1: unknown) */
    struct form_report *forms;
    size_t nforms;
};

struct report {
    char *generated_at;
    char *at; /* as given, or generated_at */
    const char *backup_retention;
    struct tenant_report *tenants;
    size_t ntenants;
};

int report_parse_format(const char *text)
{
    if (strcmp(text, "text") == 0)
        return REPORT_TEXT;
    if (strcmp(text, "json") == 0)
        return REPORT_JSON;
    if (strcmp(text, "csv") == 0)
        return REPORT_CSV;
    return -1;
}

static bool digits(const char **p, int n)
{
    for (int i = 0; i < n; i++, (*p)++)
        if (!isdigit((unsigned char)**p))
            return false;
    return true;
}

int report_check_timestamp(const char *text)
{
    /* YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][Z|(+|-)HH[[:]MM]]: what the server will
     * read the same way whatever its DateStyle */
    const char *p = text;
    if (!digits(&p, 4) || *p++ != '-' || !digits(&p, 2) || *p++ != '-' || !digits(&p, 2))
        return -1;
    int month = atoi(text + 5), day = atoi(text + 8);
    if (month < 1 || month > 12 || day < 1 || day > 31)
        return -1;
    if (*p == '\0')
        return 0;
    if (*p != 'T' && *p != ' ')
        return -1;
    p++;
    if (!digits(&p, 2) || *p++ != ':' || !digits(&p, 2))
        return -1;
    if (*p == ':') {
        p++;
        if (!digits(&p, 2))
            return -1;
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return -1;
            while (isdigit((unsigned char)*p))
                p++;
        }
    }
    if (*p == 'Z')
        p++;
    else if (*p == '+' || *p == '-') {
        p++;
        if (!digits(&p, 2))
            return -1;
        if (*p == ':' && (p++, !digits(&p, 2)))
            return -1;
        if (isdigit((unsigned char)*p) && !digits(&p, 2))
            return -1;
    }
    return *p == '\0' ? 0 : -1;
}

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

static void collist_free(struct collist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].column);
        free(l->items[i].reason);
        free(l->items[i].label);
        free(l->items[i].varname);
    }
    free(l->items);
}

static void form_report_free(struct form_report *fr)
{
    free(fr->slug);
    free(fr->name);
    free(fr->table);
    free(fr->label);
    free(fr->definition);
    free(fr->retention);
    free(fr->cutoff);
    free(fr->oldest_pending);
    free(fr->in_backups_until);
    free(fr->error);
    collist_free(&fr->keep);
    collist_free(&fr->blank);
    collist_free(&fr->unclassified);
}

static void tenant_report_free(struct tenant_report *tr)
{
    for (size_t i = 0; i < tr->nforms; i++)
        form_report_free(&tr->forms[i]);
    free(tr->forms);
    free(tr->name);
    free(tr->error);
    free(tr->at);
    free(tr->legal_limit);
    free(tr->backups_until);
    free(tr->last_run);
    free(tr->fetch_error);
}

/* path below dir, as "<tenant>/<slug>.json"; path itself when it is elsewhere. */
static const char *relative_to(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && path[n] == '/' ? path + n + 1 : path;
}

static int collect_form(struct tenant *t, const struct tenant_report *tr, const struct form *f,
                        struct form_report *fr, int backup_days, const char *schemas)
{
    char fid[16], days[16];
    PGresult *res;

    fr->slug = ax_strdup(f->slug);
    fr->name = ax_strdup(f->name);
    fr->table = ax_strdup(f->table);
    fr->retention = ax_strdup(f->pol.retention_text);
    fr->retention_days = f->pol.retention_days;
    fr->retention_source = cfg_source_str(f->pol.retention_source);
    fr->label = ax_strdup(f->label);
    fr->kind = f->kind;
    fr->anonymised_by_run = f->anonymise;
    fr->definition = f->def ? ax_strdup(relative_to(f->def->path, schemas)) : NULL;
    collect_columns(f, fr);
    if (f->sql.unsupported) {
        fr->error = ax_strdup(f->sql.unsupported);
        return AX_OK;
    }

    const char *values[PLAN_NPARAMS];
    snprintf(days, sizeof days, "%d", backup_days);
    plan_params(f, values, tr->legal_limit, t->now, days, fid, sizeof fid);
    char *sql = plan_report(f);
    int rc = db_query(&t->db, &res, DB_ONE_ROW(PLAN_REPORT_NCOLS), sql, PLAN_NPARAMS, plan_report_param_types, values);
    free(sql);
    if (rc)
        return rc;
    for (int i = 0; i < C_COUNT; i++)
        fr->counts[i] = atoll(PQgetvalue(res, 0, i));
    fr->oldest_pending = PQgetisnull(res, 0, C_COUNT) ? NULL : ax_strdup(PQgetvalue(res, 0, C_COUNT));
    fr->days_past_limit = PQgetisnull(res, 0, C_COUNT + 1) ? 0 : atoll(PQgetvalue(res, 0, C_COUNT + 1));
    fr->in_backups = atoll(PQgetvalue(res, 0, C_COUNT + 2));
    fr->in_backups_until = PQgetisnull(res, 0, C_COUNT + 3) ? NULL : ax_strdup(PQgetvalue(res, 0, C_COUNT + 3));
    PQclear(res);

    values[0] = f->cutoff;
    rc = db_query(&t->db, &res, DB_ONE_ROW(1), "SELECT " ISO("$1::timestamptz"), 1, plan_report_param_types, values);
    if (rc)
        return rc;
    fr->cutoff = ax_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return AX_OK;
}

/* The audit trail: last successful run, and what the last run found locked. */
static int collect_audit(struct tenant *t, struct tenant_report *tr)
{
    struct audit_view v;
    int rc = audit_read(t, &v);
    if (rc == AX_OK && v.exists && !v.readable) {
        log_warning("%s: no SELECT privilege on anonymizer.runs: last run unknown", tr->name);
        tr->last_run_unknown = true;
    }
    if (rc == AX_OK) {
        tr->last_run = v.last_ok ? ax_strdup(v.last_ok) : NULL;
        for (size_t i = 0; i < v.nlocked; i++) {
            for (size_t k = 0; k < tr->nforms; k++) {
                if (strcmp(tr->forms[k].table, v.locked[i].table) == 0) {
                    tr->forms[k].locked_known = true;
                    tr->forms[k].locked_last_run = v.locked[i].locked;
                }
            }
        }
    }
    audit_view_free(&v);
    return rc;
}

/* The instant evaluated, the legal limit and until when backups hold what a run removes. */
static int collect_dates(struct tenant *t, const struct app *app, struct tenant_report *tr)
{
    PGresult *res;
    char backup_days[16], cap[16];
    snprintf(backup_days, sizeof backup_days, "%d", app->cfg->backup_retention_days);
    snprintf(cap, sizeof cap, "%d", RETENTION_CAP_DAYS);
    const char *values[3] = {t->now, backup_days, cap};
    const Oid types[3] = {DB_TIMESTAMPTZOID, DB_INT4OID, DB_INT4OID};
    int rc = db_query(&t->db, &res, DB_ONE_ROW(3),
                      "SELECT " ISO("$1") ", ($1 - pg_catalog.make_interval(days => $3))::text,"
                      " pg_catalog.to_char(($1 + pg_catalog.make_interval(days => $2)) AT TIME ZONE 'UTC',"
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

static void collect_tenant(const struct app *app, struct app_tenant *at, const struct report_options *opts,
                           struct tenant_report *tr)
{
    struct tenant t;
    int rc = AX_OK;

    tr->name = ax_strdup(at->cfg->name);
    tr->url = at->cfg->url;
    tr->outcome = tenant_begin(&t, app, at, TB_FETCH | TB_READ_ONLY | TB_SNAPSHOT | TB_CUTOFFS, opts->at);
    tr->fetched = at->fetched;
    tr->fetch_error = at->fetch_error ? ax_strdup(at->fetch_error) : NULL;
    tr->files_age = at->files_age;
    if (tr->outcome != TENANT_OK) {
        tr->error = tr->outcome == TENANT_UNREACHABLE ? ax_asprintf("cannot connect: %s", t.db.error)
                                                      : ax_strdup(t.db.error);
        tenant_close(&t);
        return;
    }
    rc = collect_dates(&t, app, tr);
    tr->forms = ax_calloc(t.nforms, sizeof *tr->forms);
    for (size_t i = 0; rc == AX_OK && i < t.nforms; i++) {
        tr->nforms = i + 1;
        rc = collect_form(&t, tr, &t.forms[i], &tr->forms[i], app->cfg->backup_retention_days, app->cfg->schemas);
    }
    if (rc == AX_OK)
        rc = collect_audit(&t, tr);
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

/* -- verdict ------------------------------------------------------------------ */

/* Cards are registers with their own legal basis: the three-month limit is about submissions. */
static bool form_past_limit(const struct form_report *fr)
{
    return fr->kind != FORM_KIND_CARD && fr->days_past_limit > 0;
}

static bool report_compliant(const struct report *r)
{
    for (size_t i = 0; i < r->ntenants; i++) {
        const struct tenant_report *tr = &r->tenants[i];
        if (tr->outcome != TENANT_OK)
            return false;
        for (size_t k = 0; k < tr->nforms; k++)
            if (form_past_limit(&tr->forms[k]))
                return false;
    }
    return true;
}

/* A field column or a block's subfield ("f9.1"), not a w.c.s. metadata column. */
static bool is_field_entry(const char *column)
{
    return classify_is_field_column(column) || strchr(column, '.') != NULL;
}

static long long pending_of(const struct form_report *fr)
{
    return fr->counts[C_DUE] + fr->counts[C_DRAFTS_DUE] + fr->counts[C_INCOMPLETE];
}

/* -- text ------------------------------------------------------------------------ */

static void text_columns(FILE *out, const char *title, const struct collist *l, bool fields_only)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < l->n; i++) {
        const struct colref *c = &l->items[i];
        if (fields_only && !is_field_entry(c->column))
            continue;
        sb_appendf(&sb, "%s%s", sb.len ? ", " : "", c->column);
        if (c->label)
            sb_appendf(&sb, " %s", c->label);
        if (c->varname)
            sb_appendf(&sb, " [%s]", c->varname);
    }
    fprintf(out, "    %-22s %s\n", title, sb.len ? sb.buf : "none");
    sb_free(&sb);
}

/* Where the tenant's definitions come from, and how old they are. */
static void text_definitions(FILE *out, const struct tenant_report *tr)
{
    char *text = fetch_describe(tr->url, tr->fetched, tr->fetch_error, tr->files_age);
    fprintf(out, "  definitions: %s\n", text);
    free(text);
}

static json_object *json_definitions(const struct tenant_report *tr)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "source", json_object_new_string(tr->fetched ? "fetched" : "files"));
    json_object_object_add(d, "url", tr->url ? json_object_new_string(tr->url) : NULL);
    json_object_object_add(d, "fetch_error", tr->fetch_error ? json_object_new_string(tr->fetch_error) : NULL);
    json_object_object_add(d, "age_days",
                           tr->fetch_error && tr->files_age >= 0 ? json_object_new_int64((long long)((tr->files_age + 43200) / 86400))
                                                                 : NULL);
    return d;
}

static void render_text(FILE *out, const struct report *r, const struct cfg *cfg)
{
    long long totals[C_COUNT] = {0};
    size_t reached = 0;

    fprintf(out, "anonymizer %s report\n", ANONYMIZER_VERSION);
    fprintf(out, "generated %s, cutoffs as of %s\n", r->generated_at, r->at);
    fprintf(out, "legal limit: personal data of a done submission is kept at most three months (" RETENTION_CAP_TEXT
                 ")\n");
    fprintf(out, "periods run from the time a submission was done (done-datetime), else its last update, else its\n"
                 "receipt; cards are registers with their own legal basis: not held to the limit\n");

    for (size_t i = 0; i < r->ntenants; i++) {
        const struct tenant_report *tr = &r->tenants[i];
        fprintf(out, "\ntenant %s\n", tr->name);
        if (tr->outcome == TENANT_UNREACHABLE || (tr->outcome == TENANT_FAILED && tr->nforms == 0 && tr->error)) {
            fprintf(out, "  ERROR: %s\n", tr->error);
            continue;
        }
        reached++;
        if (tr->error)
            fprintf(out, "  ERROR: %s\n", tr->error);
        text_definitions(out, tr);
        fprintf(out, "  last successful run: %s\n",
                tr->last_run_unknown ? "unknown (no access to anonymizer.runs)" : tr->last_run ? tr->last_run : "never");
        if (tr->nforms == 0)
            fprintf(out, "  no form tables\n");
        for (size_t k = 0; k < tr->nforms; k++) {
            const struct form_report *fr = &tr->forms[k];
            fprintf(out, "\n  %s \"%s\" (table %s)\n", fr->label, fr->name, fr->table);
            if (fr->kind == FORM_KIND_CARD)
                fprintf(out, "    %-22s %s; definition %s\n", "card",
                        fr->anonymised_by_run ? "anonymised (cards entry)" : "not anonymised (no cards entry): drafts only",
                        fr->definition ? fr->definition : "none");
            if (fr->error) {
                fprintf(out, "    ERROR: %s\n", fr->error);
                continue;
            }
            for (int c = 0; c < C_COUNT; c++)
                totals[c] += fr->counts[c];
            fprintf(out, "    %-22s %s (%s), cutoff %s\n", "retention", fr->retention, fr->retention_source,
                    fr->cutoff);
            fprintf(out, "    %-22s %lld\n", "submissions", fr->counts[C_SUBMISSIONS]);
            fprintf(out, "    %-22s %lld\n", "anonymised", fr->counts[C_ANONYMISED]);
            fprintf(out, "    %-22s %lld\n", "due now", fr->counts[C_DUE]);
            fprintf(out, "    %-22s %lld\n", "drafts due", fr->counts[C_DRAFTS_DUE]);
            fprintf(out, "    %-22s %lld\n", "open past cutoff", fr->counts[C_OPEN_PAST]);
            fprintf(out, "    %-22s %lld\n", "incomplete", fr->counts[C_INCOMPLETE]);
            if (!fr->oldest_pending)
                fprintf(out, "    %-22s none\n", "oldest pending");
            else if (form_past_limit(fr))
                fprintf(out, "    %-22s %s, %lld day%s PAST THE LIMIT\n", "oldest pending", fr->oldest_pending,
                        fr->days_past_limit, fr->days_past_limit == 1 ? "" : "s");
            else
                fprintf(out, "    %-22s %s, within the limit\n", "oldest pending", fr->oldest_pending);
            if (fr->locked_known)
                fprintf(out, "    %-22s %lld\n", "locked in last run", fr->locked_last_run);
            else
                fprintf(out, "    %-22s -\n", "locked in last run");
            text_columns(out, "kept fields", &fr->keep, true);
            text_columns(out, "blanked fields", &fr->blank, true);
            text_columns(out, "unclassified", &fr->unclassified, false);
            if (pending_of(fr) > 0)
                fprintf(out, "    %-22s personal data of the %lld submission%s due remains in backups until %s\n",
                        "backups", pending_of(fr), pending_of(fr) == 1 ? "" : "s", tr->backups_until);
            if (fr->in_backups > 0)
                fprintf(out, "    %-22s %lld anonymised submission%s still in backups, until %s at the latest\n", "",
                        fr->in_backups, fr->in_backups == 1 ? "" : "s", fr->in_backups_until);
        }
    }

    fprintf(out, "\nsummary\n");
    fprintf(out, "  %-22s %zu of %zu\n", "tenants reached", reached, r->ntenants);
    fprintf(out, "  %-22s %lld\n", "submissions", totals[C_SUBMISSIONS]);
    fprintf(out, "  %-22s %lld\n", "anonymised", totals[C_ANONYMISED]);
    fprintf(out, "  %-22s %lld\n", "due now", totals[C_DUE]);
    fprintf(out, "  %-22s %lld\n", "drafts due", totals[C_DRAFTS_DUE]);
    fprintf(out, "  %-22s %lld\n", "open past cutoff", totals[C_OPEN_PAST]);
    fprintf(out, "  %-22s %lld\n", "incomplete", totals[C_INCOMPLETE]);

    if (report_compliant(r)) {
        fprintf(out, "\nverdict: COMPLIANT: no personal data is held past the three-month limit\n");
    } else {
        fprintf(out, "\nverdict: NOT COMPLIANT\n");
        for (size_t i = 0; i < r->ntenants; i++) {
            const struct tenant_report *tr = &r->tenants[i];
            if (tr->outcome != TENANT_OK && tr->error)
                fprintf(out, "  %s: could not be checked: %s\n", tr->name, tr->error);
            for (size_t k = 0; k < tr->nforms; k++) {
                const struct form_report *fr = &tr->forms[k];
                const char *what = fr->kind == FORM_KIND_FORM ? fr->slug : fr->label;
                if (fr->error)
                    fprintf(out, "  %s / %s: could not be checked: %s\n", tr->name, what, fr->error);
                else if (form_past_limit(fr))
                    fprintf(out, "  %s / %s: %lld day%s past the limit (oldest pending %s)\n", tr->name, what,
                            fr->days_past_limit, fr->days_past_limit == 1 ? "" : "s", fr->oldest_pending);
            }
        }
    }
    fprintf(out,
            "\nnote: copies outside the database keep personal data until they expire.  With backups kept %s\n"
            "(backup_retention), what a run removes today remains in backups for that long: the dates are given\n"
            "per form.\n",
            cfg->backup_retention_text);
}

/* -- JSON -------------------------------------------------------------------------- */

static json_object *jstr(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static json_object *json_collist(const struct collist *l)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < l->n; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "column", jstr(l->items[i].column));
        json_object_object_add(o, "label", jstr(l->items[i].label));
        json_object_object_add(o, "varname", jstr(l->items[i].varname));
        json_object_object_add(o, "reason", jstr(l->items[i].reason));
        json_object_array_add(a, o);
    }
    return a;
}

static void render_json(FILE *out, const struct report *r)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "generated_at", jstr(r->generated_at));
    json_object_object_add(root, "at", jstr(r->at));
    json_object_object_add(root, "retention_cap", jstr(RETENTION_CAP_TEXT));
    json_object_object_add(root, "compliant", json_object_new_boolean(report_compliant(r)));
    json_object_object_add(root, "backup_retention", jstr(r->backup_retention));
    json_object *tenants = json_object_new_array();
    for (size_t i = 0; i < r->ntenants; i++) {
        const struct tenant_report *tr = &r->tenants[i];
        json_object *t = json_object_new_object();
        json_object_object_add(t, "name", jstr(tr->name));
        json_object_object_add(t, "status", jstr(tr->outcome == TENANT_OK ? "ok" : "error"));
        json_object_object_add(t, "error", jstr(tr->error));
        json_object_object_add(t, "last_run", jstr(tr->last_run_unknown ? "unknown" : tr->last_run));
        json_object_object_add(t, "backups_until", jstr(tr->backups_until));
        json_object_object_add(t, "definitions", json_definitions(tr));
        json_object *forms = json_object_new_array();
        for (size_t k = 0; k < tr->nforms; k++) {
            const struct form_report *fr = &tr->forms[k];
            json_object *f = json_object_new_object();
            json_object_object_add(f, "slug", jstr(fr->slug));
            json_object_object_add(f, "name", jstr(fr->name));
            json_object_object_add(f, "table", jstr(fr->table));
            json_object_object_add(f, "kind", jstr(form_kind_str(fr->kind)));
            json_object_object_add(f, "anonymised_by_run", json_object_new_boolean(fr->anonymised_by_run));
            json_object_object_add(f, "definition", jstr(fr->definition));
            json_object_object_add(f, "error", jstr(fr->error));
            json_object_object_add(f, "retention", jstr(fr->retention));
            json_object_object_add(f, "retention_days", json_object_new_int(fr->retention_days));
            json_object_object_add(f, "retention_source", jstr(fr->retention_source));
            json_object_object_add(f, "cutoff", jstr(fr->cutoff));
            static const char *const names[C_COUNT] = {"submissions", "anonymised", "due", "drafts_due",
                                                       "open_past_cutoff", "incomplete"};
            for (int c = 0; c < C_COUNT; c++)
                json_object_object_add(f, names[c], fr->error ? NULL : json_object_new_int64(fr->counts[c]));
            json_object_object_add(f, "oldest_pending", jstr(fr->oldest_pending));
            json_object_object_add(f, "days_past_limit", json_object_new_int64(fr->days_past_limit));
            json_object_object_add(f, "locked_last_run",
                                   fr->locked_known ? json_object_new_int64(fr->locked_last_run) : NULL);
            json_object_object_add(f, "backups_until", jstr(pending_of(fr) > 0 ? tr->backups_until : NULL));
            json_object_object_add(f, "anonymised_in_backups", json_object_new_int64(fr->in_backups));
            json_object_object_add(f, "anonymised_in_backups_until", jstr(fr->in_backups_until));
            json_object *cols = json_object_new_object();
            json_object_object_add(cols, "keep", json_collist(&fr->keep));
            json_object_object_add(cols, "blank", json_collist(&fr->blank));
            json_object_object_add(cols, "unclassified", json_collist(&fr->unclassified));
            json_object_object_add(f, "columns", cols);
            json_object_array_add(forms, f);
        }
        json_object_object_add(t, "forms", forms);
        json_object_array_add(tenants, t);
    }
    json_object_object_add(root, "tenants", tenants);
    fputs(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE),
          out);
    fputc('\n', out);
    json_object_put(root);
}

/* -- CSV (RFC 4180) ---------------------------------------------------------------- */

static void csv_field(FILE *out, const char *s, bool last)
{
    s = s ? s : "";
    if (strpbrk(s, ",\"\r\n")) {
        fputc('"', out);
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                fputc('"', out);
            fputc(*p, out);
        }
        fputc('"', out);
    } else {
        fputs(s, out);
    }
    fputs(last ? "\r\n" : ",", out);
}

static void csv_int(FILE *out, bool known, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    csv_field(out, known ? buf : "", false);
}

static char *csv_columns(const struct collist *l, bool fields_only)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < l->n; i++)
        if (!fields_only || is_field_entry(l->items[i].column))
            sb_appendf(&sb, "%s%s", sb.len ? " " : "", l->items[i].column);
    return sb_finish(&sb);
}

static void render_csv(FILE *out, const struct report *r)
{
    static const char *const header[] = {
        "tenant", "tenant_status", "tenant_error", "last_run", "slug", "name", "table", "form_error", "retention",
        "retention_source", "cutoff", "submissions", "anonymised", "due", "drafts_due", "open_past_cutoff",
        "incomplete", "oldest_pending", "days_past_limit", "locked_last_run", "backups_until", "anonymised_in_backups",
        "anonymised_in_backups_until", "kept_fields",
        "blanked_fields", "unclassified_columns", "kind",
    };
    for (size_t i = 0; i < AX_ARRAY_LEN(header); i++)
        csv_field(out, header[i], i + 1 == AX_ARRAY_LEN(header));
    for (size_t i = 0; i < r->ntenants; i++) {
        const struct tenant_report *tr = &r->tenants[i];
        const char *status = tr->outcome == TENANT_OK ? "ok" : "error";
        const char *last = tr->last_run_unknown ? "unknown" : tr->last_run ? tr->last_run : "never";
        if (tr->nforms == 0) {
            csv_field(out, tr->name, false);
            csv_field(out, status, false);
            csv_field(out, tr->error, false);
            csv_field(out, tr->outcome == TENANT_UNREACHABLE ? "" : last, false);
            for (size_t k = 4; k < AX_ARRAY_LEN(header); k++)
                csv_field(out, "", k + 1 == AX_ARRAY_LEN(header));
            continue;
        }
        for (size_t k = 0; k < tr->nforms; k++) {
            const struct form_report *fr = &tr->forms[k];
            bool ok = fr->error == NULL;
            csv_field(out, tr->name, false);
            csv_field(out, status, false);
            csv_field(out, tr->error, false);
            csv_field(out, last, false);
            csv_field(out, fr->slug, false);
            csv_field(out, fr->name, false);
            csv_field(out, fr->table, false);
            csv_field(out, fr->error, false);
            csv_field(out, fr->retention, false);
            csv_field(out, fr->retention_source, false);
            csv_field(out, fr->cutoff, false);
            for (int c = 0; c < C_COUNT; c++)
                csv_int(out, ok, fr->counts[c]);
            csv_field(out, fr->oldest_pending, false);
            csv_int(out, ok, fr->days_past_limit);
            csv_int(out, fr->locked_known, fr->locked_last_run);
            csv_field(out, pending_of(fr) > 0 ? tr->backups_until : NULL, false);
            csv_int(out, ok, fr->in_backups);
            csv_field(out, fr->in_backups_until, false);
            char *kept = csv_columns(&fr->keep, true), *blanked = csv_columns(&fr->blank, true),
                 *uncl = csv_columns(&fr->unclassified, false);
            csv_field(out, kept, false);
            csv_field(out, blanked, false);
            csv_field(out, uncl, false);
            csv_field(out, form_kind_str(fr->kind), true);
            free(kept);
            free(blanked);
            free(uncl);
        }
    }
}

/* -- command ------------------------------------------------------------------------ */

int cmd_report(const struct app *app, const struct report_options *opts, FILE *out)
{
    struct report r = {0};
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);

    r.generated_at = now_iso();
    r.at = ax_strdup(opts->at ? opts->at : r.generated_at);
    r.backup_retention = app->cfg->backup_retention_text;
    r.tenants = ax_calloc(app->ntenants, sizeof *r.tenants);
    r.ntenants = app->ntenants;
    for (size_t i = 0; i < app->ntenants; i++) {
        collect_tenant(app, &app->tenants[i], opts, &r.tenants[i]);
        outcomes[i] = r.tenants[i].outcome;
        /* --at as the server read it, in the report's own format */
        if (opts->at && r.tenants[i].at && strcmp(r.at, opts->at) == 0) {
            free(r.at);
            r.at = ax_strdup(r.tenants[i].at);
        }
    }

    switch (opts->format) {
    case REPORT_TEXT: render_text(out, &r, app->cfg); break;
    case REPORT_JSON: render_json(out, &r); break;
    case REPORT_CSV: render_csv(out, &r); break;
    }
    fflush(out);

    int status = app_exit_status(outcomes, app->ntenants);
    if (status == EXIT_OK && !report_compliant(&r))
        status = EXIT_SOME_FAILED;
    for (size_t i = 0; i < r.ntenants; i++)
        tenant_report_free(&r.tenants[i]);
    free(r.tenants);
    free(r.generated_at);
    free(r.at);
    free(outcomes);
    return status;
}
