/*
 * report_text.c: the report for a terminal or a printer, in the reader's
 * language (gettext); times in the configured time zone.  Names from the
 * tenants (forms, fields, errors) are written with their control characters
 * escaped: a newline in a form's name cannot forge a report line.
 */
#include "ax.h"
#include "escape.h"
#include "defs.h"
#include "i18n.h"
#include "report_model.h"
#include "hold.h"
#include "strbuf.h"
#include "timeutil.h"
#include "version.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Characters (not bytes) of a UTF-8 string, for alignment. */
static size_t width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xc0) != 0x80;
    return n;
}

/* "    label                  " then the value: labels translate to other widths. */
static void item_label(FILE *out, int indent, const char *text)
{
    fprintf(out, "%*s%s", indent, "", text);
    for (size_t w = width(text); w < 23; w++)
        fputc(' ', out);
    if (width(text) >= 23)
        fputc(' ', out);
}

static void line(FILE *out, int indent, const char *name, const char *fmt, ...) AX_PRINTF(4, 5);

static void line(FILE *out, int indent, const char *name, const char *fmt, ...)
{
    va_list ap;
    item_label(out, indent, name);
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
}

/* "form demande-rdv", "formulaire demande-rdv", "test copy of ...", "card ..." */
static char *kind_label(const struct form_report *fr)
{
    char *slug = esc_text(fr->slug), *out;
    switch (fr->kind) {
    case FORM_KIND_TEST: out = ax_asprintf(_("test copy of %s"), slug); break;
    case FORM_KIND_CARD: out = ax_asprintf(_("card %s"), slug); break;
    default: out = ax_asprintf(_("form %s"), slug); break;
    }
    free(slug);
    return out;
}

static void columns(FILE *out, const char *title, const struct collist *l, bool fields_only)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < l->n; i++) {
        const struct colref *c = &l->items[i];
        if (fields_only && !report_is_field_entry(c->column))
            continue;
        char *col = esc_text(c->column), *lab = esc_text(c->label), *var = esc_text(c->varname);
        sb_appendf(&sb, "%s%s", sb.len ? ", " : "", col);
        if (c->label)
            sb_appendf(&sb, " %s", lab);
        if (c->varname)
            sb_appendf(&sb, " [%s]", var);
        free(col);
        free(lab);
        free(var);
    }
    line(out, 4, title, "%s", sb.len ? sb.buf : _("none"));
    sb_free(&sb);
}

static void header(FILE *out, const struct report *r)
{
    char gen[40], at[40];
    report_local_time(r->generated_at, gen);
    report_local_time(r->at, at);
    fprintf(out, _("anonymizer %s report\n"), ANONYMIZER_VERSION);
    fprintf(out, _("generated %s, cutoffs as of %s\n"), gen, at);
    fprintf(out, _("legal limit: personal data of a done submission is kept at most three months (%d days)\n"),
            RETENTION_CAP_DAYS);
    fputs(_("periods run from the time a submission was done (done-datetime), else its last update, else its\n"
            "receipt; cards are registers with their own legal basis: not held to the limit\n"),
          out);
    if (r->at_future)
        fputs(_("note: this instant is in the future: the figures assume that no run happens before then\n"), out);
}

static void oldest(FILE *out, const struct form_report *fr)
{
    char when[40];
    report_local_time(fr->oldest_pending, when);
    if (!fr->oldest_pending)
        line(out, 4, _("oldest pending"), "%s", _("none"));
    else if (form_past_limit(fr))
        line(out, 4, _("oldest pending"),
             ngettext("%s, %lld day PAST THE LIMIT", "%s, %lld days PAST THE LIMIT", (unsigned long)fr->days_past_limit),
             when, fr->days_past_limit);
    else
        line(out, 4, _("oldest pending"), _("%s, within the limit"), when);
}

static void backups(FILE *out, const struct tenant_report *tr, const struct form_report *fr)
{
    const char *name = _("backups");
    if (pending_of(fr) > 0) {
        line(out, 4, name,
             ngettext("personal data of the %lld submission due remains in backups until %s",
                      "personal data of the %lld submissions due remains in backups until %s",
                      (unsigned long)pending_of(fr)),
             pending_of(fr), tr->backups_until);
        name = "";
    }
    if (fr->in_backups > 0)
        line(out, 4, name,
             ngettext("%lld anonymised submission still in backups, until %s at the latest",
                      "%lld anonymised submissions still in backups, until %s at the latest",
                      (unsigned long)fr->in_backups),
             fr->in_backups, fr->in_backups_until);
}

/* The submissions a form's counts single out: undated, status unknown, intermediate fields left, test
 * definitions made from them. */
static void exceptions(FILE *out, const struct report *r, const struct form_report *fr)
{
    if (fr->testdefs > 0) {
        char when[40];
        report_local_time(fr->testdefs_oldest, when);
        line(out, 4, _("test definitions"),
             _("%lld made from submissions, %lld holding personal data past the period (%lld past the legal limit%s%s):"
               " %s"),
             fr->testdefs, fr->testdefs_due, fr->testdefs_past_limit, fr->testdefs_oldest ? _("; the oldest made ") : "",
             fr->testdefs_oldest ? when : "",
             fr->testdefs_due == 0             ? _("nothing to do")
             : r->testdefs_report_only ? _("left (testdefs = \"report\")")
                                               : _("the next run blanks them (data, test user, snapshots)"));
    }
    if (fr->undated > 0)
        line(out, 4, _("undated"), _("%lld done with no date at all: counted past the limit"), fr->undated);
    if (fr->status_unknown > 0)
        line(out, 4, _("status unknown"),
             _("%lld with no definition and no wcs_all_forms row (done or not cannot be told), %lld of them"
               " inactive past the limit"),
             fr->status_unknown, fr->status_unknown_past);
    if (fr->open_intermediate > 0)
        line(out, 4, _("intermediate fields"),
             _("%lld open past the period still hold fields marked \"intermediate\": the workflow lacks w.c.s.'s"
               " intermediate anonymisation action"),
             fr->open_intermediate);
}

static void form_section(FILE *out, const struct report *r, const struct tenant_report *tr,
                         const struct form_report *fr)
{
    char *title = kind_label(fr), *name = esc_text(fr->name), *table = esc_text(fr->table), cutoff[40], since[40];
    fprintf(out, "\n  %s \"%s\" (%s %s)\n", title, name, _("table"), table);
    free(title);
    free(name);
    free(table);
    if (fr->kind == FORM_KIND_CARD) {
        char *def = esc_text(fr->definition);
        line(out, 4, _("card"), _("%s; definition %s"),
             fr->anonymised_by_run ? _("anonymised (cards entry)") : _("not anonymised (no cards entry): drafts only"),
             fr->definition ? def : _("none"));
        free(def);
    }
    if (fr->error) {
        char *err = esc_text(fr->error);
        fprintf(out, _("    ERROR: %s\n"), err);
        free(err);
        return;
    }
    report_local_time(fr->cutoff, cutoff);
    char *period = report_period(fr->retention_days), *open_limit = report_period(fr->open_limit_days);
    line(out, 4, _("retention"), _("%s (%s), cutoff %s"), period, _(cfg_source_str(fr->retention_source)), cutoff);
    line(out, 4, _("submissions"), "%lld", fr->counts[C_SUBMISSIONS]);
    line(out, 4, _("anonymised"), "%lld", fr->counts[C_ANONYMISED]);
    line(out, 4, _("due now"), "%lld", fr->counts[C_DUE]);
    line(out, 4, _("drafts due"), "%lld", fr->counts[C_DRAFTS_DUE]);
    line(out, 4, _("open past cutoff"), "%lld", fr->counts[C_OPEN_PAST]);
    if (fr->open_inactive > 0) {
        report_local_time(fr->oldest_open_inactive, since);
        line(out, 4, _("open and inactive"),
             _("%lld for more than %s (inactive since %s at the oldest): TO REVIEW"), fr->open_inactive, open_limit,
             since);
    }
    free(period);
    free(open_limit);
    line(out, 4, _("incomplete"), "%lld", fr->counts[C_INCOMPLETE]);
    if (fr->held > 0)
        line(out, 4, _("under a legal hold"),
             _("%lld kept (%lld due, %lld done past the legal limit: lawful while the hold lasts, not in the verdict)"),
             fr->held, fr->held_due, fr->held_past_limit);
    exceptions(out, r, fr);
    oldest(out, fr);
    if (fr->locked_known)
        line(out, 4, _("locked in last run"), "%lld", fr->locked_last_run);
    else
        line(out, 4, _("locked in last run"), "-");
    if (fr->failed_last_run) {
        char *failed = esc_text(fr->failed_last_run);
        line(out, 4, _("failed in last run"), "%s", failed);
        free(failed);
    }
    if (fr->not_vacuumed)
        line(out, 4, _("vacuum"), "%s",
             _("not vacuumed by the last run (the role does not own the tables): old row versions keep personal"
               " data until autovacuum"));
    if (fr->bi_known) {
        char text[512];
        report_bi_text(r, fr, text, sizeof text);
        char *safe = esc_text(text);
        line(out, 4, _("BI"), "%s", safe);
        free(safe);
    }
    columns(out, _("kept fields"), &fr->keep, true);
    char *personal = report_personal_kept(fr);
    if (personal)
        line(out, 4, _("personal data kept"), _("%s: personal by nature, kept by the definition or the configuration:"
                                                 " TO REVIEW"), personal);
    free(personal);
    columns(out, _("blanked fields"), &fr->blank, true);
    columns(out, _("unclassified"), &fr->unclassified, false);
    backups(out, tr, fr);
}

/* One tenant; returns whether it was reached. */
static bool tenant_section(FILE *out, const struct report *r, const struct tenant_report *tr, long long totals[C_COUNT])
{
    char *name = esc_text(tr->name), *err = esc_text(tr->error), when[40];
    fprintf(out, "\n%s %s\n", _("tenant"), name);
    free(name);
    if (tr->outcome == TENANT_UNREACHABLE || (tr->outcome == TENANT_FAILED && tr->nforms == 0 && tr->error)) {
        fprintf(out, _("  ERROR: %s\n"), err);
        free(err);
        return false;
    }
    if (tr->error)
        fprintf(out, _("  ERROR: %s\n"), err);
    free(err);
    char *defs = defs_describe(tr->url, tr->fetched, tr->fetch_error, tr->files_age), *edefs = esc_text(defs);
    fprintf(out, _("  definitions: %s\n"), edefs);
    free(defs);
    free(edefs);
    report_local_time(tr->last_run, when);
    fprintf(out, _("  last successful run: %s\n"),
            tr->last_run_unknown ? _("unknown (no access to anonymizer.runs)") : tr->last_run ? when : _("never"));
    if (tr->run_in_progress) {
        report_local_time(tr->run_in_progress, when);
        fprintf(out, _("  a run started at %s is in progress: the figures change as it goes\n"), when);
    }
    if (tr->chain_text) {
        char *chain = esc_text(tr->chain_text);
        fprintf(out, _("  history's chain: %s\n"), chain);
        free(chain);
    }
    if (tr->holds_unknown)
        fprintf(out, _("  legal holds: %s\n"), _("unknown (no access to anonymizer.holds)"));
    for (size_t i = 0; i < tr->nholds; i++) {
        char *text = hold_text(&tr->holds[i]), *shown = esc_text(text);
        fprintf(out, _("  legal hold: %s\n"), shown);
        free(text);
        free(shown);
    }
    char vacuum[512];
    report_vacuum_text(r, tr, vacuum, sizeof vacuum);
    if (vacuum[0])
        fprintf(out, "  %s\n", vacuum);
    if (tr->superuser)
        fprintf(out, "  %s\n", report_superuser_text());
    char audit[768], errors[768], files[768];
    report_wcs_logs_text(tr, audit, sizeof audit, errors, sizeof errors);
    report_files_text(tr, files, sizeof files);
    for (int i = 0; i < 3; i++) {
        char *safe = esc_text(i == 0 ? audit : i == 1 ? errors : files);
        if (safe[0])
            fprintf(out, "  %s\n", safe);
        free(safe);
    }
    if (tr->nforms == 0)
        fprintf(out, "  %s\n", _("no form tables"));
    for (size_t k = 0; k < tr->nforms; k++) {
        form_section(out, r, tr, &tr->forms[k]);
        for (int c = 0; c < C_COUNT && !tr->forms[k].error; c++)
            totals[c] += tr->forms[k].counts[c];
    }
    return true;
}

static void summary(FILE *out, const struct report *r, size_t reached, const long long totals[C_COUNT])
{
    fprintf(out, "\n%s\n", _("summary"));
    line(out, 2, _("tenants reached"), _("%zu of %zu"), reached, r->ntenants);
    line(out, 2, _("submissions"), "%lld", totals[C_SUBMISSIONS]);
    line(out, 2, _("anonymised"), "%lld", totals[C_ANONYMISED]);
    line(out, 2, _("due now"), "%lld", totals[C_DUE]);
    line(out, 2, _("drafts due"), "%lld", totals[C_DRAFTS_DUE]);
    line(out, 2, _("open past cutoff"), "%lld", totals[C_OPEN_PAST]);
    line(out, 2, _("incomplete"), "%lld", totals[C_INCOMPLETE]);
}

/* Why the verdict is what it is: every form past the limit or to review, everything not checked, runs in progress. */
static void reasons(FILE *out, const struct report *r)
{
    char when[40];
    for (size_t i = 0; i < r->ntenants; i++) {
        const struct tenant_report *tr = &r->tenants[i];
        char *tname = esc_text(tr->name);
        if (tr->outcome != TENANT_OK && tr->error) {
            char *err = esc_text(tr->error);
            fprintf(out, _("  %s: could not be checked: %s\n"), tname, err);
            free(err);
        }
        if (tr->run_in_progress) {
            report_local_time(tr->run_in_progress, when);
            fprintf(out, _("  %s: a run started at %s is in progress\n"), tname, when);
        }
        for (size_t k = 0; k < tr->nforms; k++) {
            const struct form_report *fr = &tr->forms[k];
            char *what = fr->kind == FORM_KIND_FORM ? esc_text(fr->slug) : kind_label(fr);
            if (fr->error) {
                char *err = esc_text(fr->error);
                fprintf(out, _("  %s / %s: could not be checked: %s\n"), tname, what, err);
                free(err);
            } else if (form_past_limit(fr)) {
                report_local_time(fr->oldest_pending, when);
                fprintf(out,
                        ngettext("  %s / %s: %lld day past the limit (oldest pending %s)\n",
                                 "  %s / %s: %lld days past the limit (oldest pending %s)\n",
                                 (unsigned long)fr->days_past_limit),
                        tname, what, fr->days_past_limit, when);
            }
            if (fr->open_inactive > 0) {
                char *limit = report_period(fr->open_limit_days);
                fprintf(out,
                        ngettext("  %s / %s: %lld submission open and inactive for more than %s: to review\n",
                                 "  %s / %s: %lld submissions open and inactive for more than %s: to review\n",
                                 (unsigned long)fr->open_inactive),
                        tname, what, fr->open_inactive, limit);
                free(limit);
            }
            free(what);
        }
        free(tname);
    }
}

void report_render_text(FILE *out, const struct report *r, const struct cfg *cfg)
{
    long long totals[C_COUNT] = {0};
    size_t reached = 0;

    header(out, r);
    for (size_t i = 0; i < r->ntenants; i++)
        reached += tenant_section(out, r, &r->tenants[i], totals);
    summary(out, r, reached, totals);
    if (r->bi_error) {
        char *e = esc_text(r->bi_error);
        fprintf(out, _("  BI database: could not be read: %s\n"), e);
        free(e);
    }
    switch (r->verdict) {
    case VERDICT_COMPLIANT:
        fprintf(out, "\n%s\n", _("verdict: COMPLIANT: no personal data is held past the three-month limit"));
        break;
    case VERDICT_INCOMPLETE:
        fprintf(out, "\n%s\n", _("verdict: INCOMPLETE: nothing is past the limit where it could be checked, but"
                                 " not everything could be"));
        break;
    case VERDICT_NOT_COMPLIANT: fprintf(out, "\n%s\n", _("verdict: NOT COMPLIANT")); break;
    }
    reasons(out, r);
    fprintf(out, "\n");
    char *backups = report_period(cfg->backup_retention_days);
    fprintf(out,
            _("note: copies outside the database keep personal data until they expire.  With backups kept %s\n"
              "(backup_retention), what a run removes today remains in backups for that long: the dates are given\n"
              "per form.\n"),
            backups);
    free(backups);
}
