/*
 * check.c: the "check" command.
 */
#include "check.h"
#include "ax.h"
#include "escape.h"
#include "defs.h"
#include "log.h"
#include "privileges.h"
#include "strbuf.h"
#include "tenant.h"
#include "testdefs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A name for the terminal: tenant, form, table and column names come from
 * the configuration and the catalog, and may hold control characters (a
 * newline would forge a line): they are written \xNN.  From a ring of
 * buffers, so that one printf may take several.
 */
static const char *for_terminal(const char *s)
{
    static char *ring[8];
    static size_t next;
    free(ring[next]);
    ring[next] = esc_text(s);
    const char *out = ring[next];
    next = (next + 1) % 8;
    return out;
}

static void print_list(FILE *out, const struct form *f, enum col_class cls, const char *title)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < f->ncols; i++)
        if (f->cols[i].cls == cls)
            sb_appendf(&sb, "%s%s", sb.len ? ", " : "", f->cols[i].name);
    if (sb.len)
        fprintf(out, "    %s: %s\n", title, for_terminal(sb.buf));
    sb_free(&sb);
}

static void print_column(FILE *out, const char *name, const char *cls, enum col_reason reason, const char *label,
                         const char *varname)
{
    fprintf(out, "    %-32s %-13s %-36s", for_terminal(name), cls, col_reason_str(reason));
    if (label || varname)
        fprintf(out, " %s%s%s%s", for_terminal(label), varname ? " [" : "", varname ? for_terminal(varname) : "", varname ? "]" : "");
    fprintf(out, "\n");
}

/* Rows and drafts due of a card (the report's count), for the operator to see what a register holds. */
static void print_card(FILE *out, struct tenant *t, const struct form *f)
{
    struct plan_values pv;
    PGresult *res;
    /* only the rows and drafts are shown: the limits are those of now */
    plan_bind_report(f, &(struct plan_report_args){.legal_limit = t->now, .at = t->now, .backup_days = "0",
                                                   .open_limit = t->now}, &pv);
    char *sql = plan_report(f, PLAN_HELD_ANY);
    int rc = f->sql.unsupported ? AX_ERR_DATA
                                : db_query(&t->db, &res, DB_ONE_ROW(PLAN_REPORT_NCOLS), sql, PLAN_NPARAMS, pv.types,
                                           pv.values);
    free(sql);
    fprintf(out, "    card: %s; ", f->anonymise ? "anonymised (cards entry)" : "not anonymised (no cards entry): drafts only");
    if (rc == AX_OK) {
        fprintf(out, "%s rows, %s drafts due\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 3));
        PQclear(res);
    } else {
        fprintf(out, "rows unknown: %s\n", for_terminal(f->sql.unsupported ? f->sql.unsupported : t->db.error));
    }
}

/* One kept field that is personal by nature: loudly, whether a keep entry or the definition kept it. */
static void warn_personal_kept(const struct tenant *t, const struct form *f, const struct def_field *fld,
                               enum col_reason reason)
{
    char buf[96];
    const char *why = classify_personal_by_nature(fld, buf, sizeof buf);
    if (!why)
        return;
    const char *name = fld->varname ? fld->varname : fld->id;
    if (reason == REASON_CONFIG_KEEP)
        log_loud_warning("%s: %s: a keep entry keeps field \"%s\", which is personal by nature (%s)", t->name,
                         f->label, name, why);
    else
        log_loud_warning("%s: %s: the definition marks field \"%s\" anonymise \"no\", and it is personal by nature"
                         " (%s): it is kept; mark it \"final\" in w.c.s. or blank it in the configuration",
                         t->name, f->label, name, why);
}

/* Warns of every kept field (and block subfield) that is personal by nature, and of kept back-office
 * blocks that w.c.s. exported without their block schema (every subfield is then blanked). */
static void warn_personal_keeps(const struct tenant *t, const struct form *f)
{
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        const struct def_field *fld = c->field;
        if (fld && fld->block && fld->backoffice && fld->nsubs == 0 &&
            (fld->anonymise == DEF_ANON_NO || c->reason == REASON_CONFIG_KEEP) && c->reason != REASON_CONFIG_BLANK)
            log_loud_warning("%s: %s: back-office block field \"%s\" is kept, but w.c.s. exports back-office blocks"
                             " without their block schema: no subfield can be told kept, every one is blanked",
                             t->name, f->label, fld->varname ? fld->varname : fld->id);
        if (c->cls == COL_KEEP && c->field)
            warn_personal_kept(t, f, c->field, c->reason);
        for (size_t k = 0; k < c->nsubs; k++)
            if (c->subs[k].kept)
                warn_personal_kept(t, f, c->subs[k].field, c->subs[k].reason);
    }
}

static void print_form(FILE *out, struct tenant *t, const struct form *f)
{
    warn_personal_keeps(t, f);
    fprintf(out, "  %s \"%s\" (table %s)\n", for_terminal(f->label), for_terminal(f->name), for_terminal(f->table));
    if (f->kind == FORM_KIND_CARD)
        print_card(out, t, f);
    fprintf(out, "    retention %s (%s), drafts %s (%s), open submissions %s (%s)\n", f->pol.retention_text,
           cfg_source_str(f->pol.retention_source), f->pol.drafts == CFG_DRAFTS_DELETE ? "delete" : "anonymise",
           cfg_source_str(f->pol.drafts_source), f->pol.open_submissions == CFG_OPEN_SKIP ? "skip" : "anonymise",
           cfg_source_str(f->pol.open_source));
    fprintf(out, "    definition: %s\n", f->def ? for_terminal(f->def->path) : "none (every field column is unclassified)");
    struct testdef_counts tc;
    if (testdefs_present(t) && f->kind != FORM_KIND_TEST && testdefs_count(t, f, NULL, &tc) == AX_OK) {
        if (tc.total > 0)
            fprintf(out, "    test definitions made from submissions: %lld, %lld holding personal data past the period (%s)\n",
                    tc.total, tc.due, !f->anonymise || !t->facts.anonymise_testdefs ? "left" : "the next run blanks them");
        free(tc.oldest);
    }
    if (f->sql.endpoints) {
        fprintf(out, "    final statuses:");
        for (size_t i = 0; i < f->def->nstatuses; i++)
            if (f->def->statuses[i].endpoint)
                fprintf(out, " wf-%s", for_terminal(f->def->statuses[i].id));
        fprintf(out, "\n");
    }
    else
        fprintf(out, "    final statuses: %s\n", t->facts.has_allforms ? "from wcs_all_forms.is_at_endpoint" : "unknown");
    if (f->sql.unsupported)
        fprintf(out, "    UNSUPPORTED: %s\n", for_terminal(f->sql.unsupported));
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls != COL_KEEP && c->cls != COL_BLANK && c->cls != COL_UNCLASSIFIED && c->cls != COL_BLOCK)
            continue;
        print_column(out, c->name, col_class_str(c->cls), c->reason, c->field ? c->field->label : NULL,
                     c->field ? c->field->varname : NULL);
        for (size_t k = 0; k < c->nsubs; k++) {
            const struct col_sub *sub = &c->subs[k];
            char *name = classify_sub_name(c, sub), *varname = classify_sub_varname(c, sub);
            print_column(out, name, sub->kept ? "keep" : "blank", sub->reason, sub->field->label, varname);
            free(name);
            free(varname);
        }
    }
    print_list(out, f, COL_METADATA, "metadata set to NULL");
    print_list(out, f, COL_STATISTICS, "trimmed");
    print_list(out, f, COL_SYSTEM, "kept");
}

/* "n things" with the right plural; nothing when n is 0 and optional. */
static void print_count(FILE *out, size_t n, const char *one, const char *many, bool optional)
{
    if (n || !optional)
        fprintf(out, ", %zu %s", n, n == 1 ? one : many);
}

static void print_tenant(FILE *out, const struct tenant *t, const struct app_tenant *at)
{
    size_t kinds[3] = {0};
    for (size_t k = 0; k < t->nforms; k++)
        kinds[t->forms[k].kind]++;
    fprintf(out, "tenant %s: reachable", for_terminal(t->name));
    print_count(out, kinds[FORM_KIND_FORM], "form", "forms", false);
    print_count(out, kinds[FORM_KIND_TEST], "test copy table", "test copy tables", true);
    print_count(out, kinds[FORM_KIND_CARD], "card", "cards", true);
    print_count(out, at->defs.n, "definition", "definitions", false);
    print_count(out, at->card_defs.n, "card definition", "card definitions", true);
    if (at->cfg->discovered)
        fprintf(out, ", discovered by discover entry %d\n", at->cfg->discovered);
    else
        fprintf(out, ", listed in tenants\n");
    char *defs = defs_describe(at->cfg->url, at->fetched, at->fetch_error, at->files_age);
    fprintf(out, "  definitions: %s\n", for_terminal(defs));
    free(defs);
}

/* Definitions no table uses (a form deleted in w.c.s., or a file named wrong). */
static void print_unused(FILE *out, const struct tenant *t, const struct def_set *defs, const char *what)
{
    for (size_t k = 0; k < defs->n; k++) {
        bool used = false;
        for (size_t j = 0; j < t->nforms; j++)
            used |= t->forms[j].def == defs->defs[k];
        if (!used)
            fprintf(out, "  definition %s matches no %s table\n", for_terminal(defs->defs[k]->path), what);
    }
}

/*
 * The BI side, before any export: the database is reachable, and the roles
 * the export grants its views to exist.  Returns the outcome.
 */
static enum tenant_outcome check_bi(const struct app *app, FILE *out)
{
    const struct cfg_bi *c = &app->cfg->bi;
    struct db db;
    struct db_profile profile = app_db_profile(app->cfg, true);
    int rc = db_connect(&db, c->conninfo, NULL, "bi", &profile);
    if (rc) {
        fprintf(out, "bi: UNREACHABLE: %s\n", for_terminal(db.error));
        db_close(&db);
        return TENANT_UNREACHABLE;
    }
    enum tenant_outcome outcome = TENANT_OK;
    const char *settings[2] = {"bi.reader_role", "bi.loader_role"}, *roles[2] = {c->reader_role, c->loader_role};
    for (int i = 0; i < 2 && outcome == TENANT_OK; i++) {
        if (!roles[i])
            continue;
        bool exists;
        if (db_role_exists(&db, roles[i], &exists) != AX_OK) {
            fprintf(out, "bi: FAILED: %s\n", for_terminal(db.error));
            outcome = TENANT_FAILED;
        } else if (!exists) {
            fprintf(out, "bi: %s: role \"%s\" does not exist on the BI server (\"anonymizer grants\" creates it)\n",
                    settings[i], for_terminal(roles[i]));
            outcome = TENANT_FAILED;
        }
    }
    if (outcome == TENANT_OK)
        fprintf(out, "bi: schema %s on the BI server as role \"%s\"%s\n", for_terminal(c->schema),
                for_terminal(PQuser(db.conn)), c->reader_role || c->loader_role ? ", its roles exist" : "");
    db_close(&db);
    return outcome;
}

int cmd_check(const struct app *app, FILE *out)
{
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);

    fprintf(out, "configuration %s: valid\n", for_terminal(app->cfg->path));
    for (size_t i = 0; i < app->ntenants; i++) {
        struct app_tenant *at = &app->tenants[i];
        struct tenant t;
        outcomes[i] = tenant_begin(&t, app, at, TB_FETCH | TB_READ_ONLY | TB_CUTOFFS, NULL);
        if (outcomes[i] != TENANT_OK) {
            fprintf(out, "tenant %s: %s: %s\n", for_terminal(at->cfg->name), outcomes[i] == TENANT_UNREACHABLE ? "UNREACHABLE" : "FAILED",
                   for_terminal(t.db.error));
            tenant_close(&t);
            continue;
        }
        print_tenant(out, &t, at);
        /* what a run would stop at: said here, before the night */
        bool shared_ok = privileges_check(&t.db, &t.facts, t.forms, t.nforms, PRIV_RUN) == AX_OK;
        char *shared_error = shared_ok ? NULL : ax_strdup(t.db.error);
        char *form_error = NULL;
        int lacking = privileges_check_forms(&t.db, t.forms, t.nforms, &form_error);
        for (size_t k = 0; k < t.nforms; k++) {
            print_form(out, &t, &t.forms[k]);
            if (t.forms[k].sql.unsupported)
                outcomes[i] = TENANT_FAILED;
        }
        print_unused(out, &t, &at->defs, "form");
        print_unused(out, &t, &at->card_defs, "card");
        char *future = NULL;
        if (shared_ok && privileges_check_future(&t.db, PRIV_RUN, &future) != AX_OK) {
            shared_ok = false;
            shared_error = ax_strdup(t.db.error);
        }
        if (future) {
            fprintf(out, "  privileges: %s\n", for_terminal(future));
            outcomes[i] = TENANT_FAILED;
        }
        if (shared_ok && lacking == 0) {
            if (!future)
                fprintf(out, "  privileges: the role \"%s\" has what a run needs, now and for tables w.c.s."
                             " creates later\n", PQuser(t.db.conn));
        } else {
            /* both: what every form needs, and the first form that would be left out */
            if (form_error)
                fprintf(out, "  privileges: %s\n", for_terminal(form_error));
            if (shared_error || !form_error)
                fprintf(out, "  privileges: %s\n", for_terminal(shared_error ? shared_error : t.db.error));
            outcomes[i] = TENANT_FAILED;
        }
        free(future);
        free(shared_error);
        free(form_error);
        tenant_close(&t);
    }
    size_t n = app->ntenants;
    if (app->cfg->bi.conninfo) {
        outcomes = ax_reallocarray(outcomes, n + 1, sizeof *outcomes);
        outcomes[n++] = check_bi(app, out);
    }
    fflush(out);
    int status = app_exit_status(outcomes, n);
    free(outcomes);
    return status;
}
