/*
 * report_html.c: the report as a document a DPO can hand to an auditor.
 *
 * One self-contained HTML file (no external resource, no script), that
 * prints on A4 without cut tables: the verdict and a summary in plain words
 * first, then one section per tenant (with an inline SVG chart of the
 * personal data it holds by age, and the same numbers as a table), then the
 * details and a glossary of every term.  Times in the configured time zone,
 * forms named by their title, technical names in small print.  Everything
 * that comes from the tenants is HTML-escaped (control characters shown as
 * \xNN).
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes s escaped for HTML text and attributes. */
static const char style[] =
    "@page{size:A4;margin:14mm 12mm}"
    "body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:10pt;color:#1a1a1a;max-width:190mm;margin:0 auto;"
    "line-height:1.4}"
    "h1{font-size:17pt;margin:0 0 4pt}h2{font-size:13pt;margin:14pt 0 4pt;border-bottom:1px solid #999}"
    "h3{font-size:11pt;margin:10pt 0 2pt}"
    ".tool,.small,small{font-size:8pt;color:#555}"
    ".verdict{font-size:15pt;font-weight:bold;padding:6pt 10pt;border:2px solid;display:inline-block;margin:6pt 0}"
    ".compliant{color:#1b5e20;border-color:#1b5e20}.not-compliant{color:#b71c1c;border-color:#b71c1c}"
    ".incomplete{color:#8a5300;border-color:#8a5300}"
    "table{width:100%;border-collapse:collapse;table-layout:fixed;margin:4pt 0 8pt}"
    "th,td{border:1px solid #bbb;padding:2pt 4pt;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
    "th{background:#eee}td.n,th.n{text-align:right}"
    "tr,figure,dl.facts div{break-inside:avoid}section.tenant{break-before:auto}"
    ".past{color:#b71c1c;font-weight:bold}.review{color:#8a5300;font-weight:bold}"
    "figure{margin:6pt 0}figcaption{font-size:9pt}dl.facts{display:grid;grid-template-columns:28% 72%;gap:3pt 8pt}"
    "dl.facts dt{font-weight:bold}dl.facts dd{margin:0}dt,dd{break-inside:avoid}"
    "dl.glossary dt{font-weight:bold;margin-top:4pt}dl.glossary dd{margin-left:12pt}"
    "p.cols{font-size:8.5pt;overflow-wrap:anywhere}time{white-space:nowrap}";

/* "Demande de rendez-vous", then "form demande-rdv, table formdata_1_..." in small print */
static void form_title(FILE *out, const struct form_report *fr)
{
    esc_html(out, fr->name);
    fputs(" <small>(", out);
    switch (fr->kind) {
    case FORM_KIND_TEST: esc_htmlf(out, _("test copy of %s"), fr->slug); break;
    case FORM_KIND_CARD: esc_htmlf(out, _("card %s"), fr->slug); break;
    default: esc_htmlf(out, _("form %s"), fr->slug); break;
    }
    fputs(", ", out);
    esc_htmlf(out, "%s %s", _("table"), fr->table);
    fputs(")</small>", out);
}

static const char *verdict_class(enum verdict v)
{
    return v == VERDICT_COMPLIANT ? "compliant" : v == VERDICT_INCOMPLETE ? "incomplete" : "not-compliant";
}

static const char *verdict_text(enum verdict v)
{
    return v == VERDICT_COMPLIANT ? _("COMPLIANT") : v == VERDICT_INCOMPLETE ? _("INCOMPLETE") : _("NOT COMPLIANT");
}

/* Totals over every form that could be read. */
struct totals {
    long long counts[C_COUNT];
    long long open_inactive;
    size_t forms_past, tenants_reached, not_checked, runs_in_progress;
    long long most_days_past;
    const char *oldest; /* ISO UTC of the oldest pending data past the limit */
};

static void add_up(const struct report *r, struct totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < r->ntenants; i++) {
        const struct tenant_report *tr = &r->tenants[i];
        t->tenants_reached += tr->outcome != TENANT_UNREACHABLE;
        t->not_checked += tr->outcome != TENANT_OK;
        t->runs_in_progress += tr->run_in_progress != NULL;
        for (size_t k = 0; k < tr->nforms; k++) {
            const struct form_report *fr = &tr->forms[k];
            if (fr->error) {
                t->not_checked++;
                continue;
            }
            for (int c = 0; c < C_COUNT; c++)
                t->counts[c] += fr->counts[c];
            t->open_inactive += fr->open_inactive;
            if (form_past_limit(fr)) {
                t->forms_past++;
                if (fr->days_past_limit > t->most_days_past) {
                    t->most_days_past = fr->days_past_limit;
                    t->oldest = fr->oldest_pending;
                }
            }
        }
    }
}

static void fact(FILE *out, const char *term, const char *text)
{
    fputs("<dt>", out);
    esc_html(out, term);
    fputs("</dt><dd>", out);
    esc_html(out, text);
    fputs("</dd>\n", out);
}

/* The opening: verdict, then in plain words what a non-programmer needs. */
static void summary(FILE *out, const struct report *r)
{
    struct totals t;
    char at[40], buf[512], when[40];
    add_up(r, &t);
    report_local_time(r->at, at);
    fprintf(out, "<p class=\"verdict %s\" id=\"verdict\">", verdict_class(r->verdict));
    esc_html(out, verdict_text(r->verdict));
    fputs("</p>\n<section id=\"summary\"><h2>", out);
    esc_html(out, _("Summary"));
    fputs("</h2>\n<dl class=\"facts\">\n", out);
    snprintf(buf, sizeof buf, ngettext("%zu tenant (w.c.s. site), %zu of them read", "%zu tenants (w.c.s. sites), %zu of them read",
                                       r->ntenants),
             r->ntenants, t.tenants_reached);
    fact(out, _("Platform"), buf);
    fact(out, _("Situation as of"), at);
    snprintf(buf, sizeof buf, _("the personal data of a done submission is kept at most three months (%d days)"),
             RETENTION_CAP_DAYS);
    fact(out, _("Legal limit"), buf);
    if (t.forms_past > 0) {
        report_local_time(t.oldest, when);
        snprintf(buf, sizeof buf,
                 ngettext("personal data is kept past the limit in %zu form; the oldest dates from %s, %lld days past"
                          " the limit",
                          "personal data is kept past the limit in %zu forms; the oldest dates from %s, %lld days past"
                          " the limit",
                          t.forms_past),
                 t.forms_past, when, t.most_days_past);
    } else {
        snprintf(buf, sizeof buf, "%s", _("no personal data is kept past the limit"));
    }
    fact(out, _("Past the limit"), buf);
    if (t.open_inactive > 0) {
        snprintf(buf, sizeof buf,
                 ngettext("%lld submission still open has been inactive for longer than allowed: to review",
                          "%lld submissions still open have been inactive for longer than allowed: to review",
                          (unsigned long)t.open_inactive),
                 t.open_inactive);
        fact(out, _("To review"), buf);
    }
    if (t.not_checked > 0) {
        snprintf(buf, sizeof buf, ngettext("%zu tenant or form could not be checked (see below)",
                                           "%zu tenants or forms could not be checked (see below)", t.not_checked),
                 t.not_checked);
        fact(out, _("Not checked"), buf);
    }
    snprintf(buf, sizeof buf, _("anonymise %lld submissions, complete %lld, and delete or anonymise %lld drafts"),
             t.counts[C_DUE], t.counts[C_INCOMPLETE], t.counts[C_DRAFTS_DUE]);
    fact(out, _("The next run will"), buf);
    if (t.runs_in_progress > 0)
        fact(out, _("In progress"), _("a run is working now: the figures change as it goes"));
    if (r->at_future)
        fact(out, _("Note"), _("this date is in the future: the figures assume that no run happens before then"));
    fputs("</dl>\n</section>\n", out);
}

/* The chart: submissions holding personal data by age, done and not done, the legal limit as a line. */
static void chart(FILE *out, const struct tenant_report *tr, size_t index)
{
    long long ages[2][AGE_COUNT] = {{0}}, max = 1;
    for (size_t k = 0; k < tr->nforms; k++)
        for (int d = 0; d < 2 && !tr->forms[k].error && !tr->forms[k].of_card; d++)
            for (int a = 0; a < AGE_COUNT; a++)
                ages[d][a] += tr->forms[k].ages[d][a];
    for (int d = 0; d < 2; d++)
        for (int a = 0; a < AGE_COUNT; a++)
            max = ages[d][a] > max ? ages[d][a] : max;
    const char *groups[AGE_COUNT] = {_("within the period"), _("period to legal limit"), _("past the legal limit")};
    const char *series[2] = {_("done"), _("not done")};
    const char *colors[2] = {"#1f4e79", "#c55a11"};

    fprintf(out, "<figure class=\"chart\" id=\"chart-%zu\">\n", index);
    /* named for screen readers; the table below says the same in text */
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"230\" viewBox=\"0 0 600 230\""
                 " role=\"img\" aria-describedby=\"chart-%zu-numbers\" aria-label=\"",
            index);
    esc_html(out, _("Submissions holding personal data, by age"));
    fputs("\">\n", out);
    /* three groups of two bars; the legal limit between the second and the third */
    const int base = 180, height = 140, group_w = 180, left = 40;
    fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"580\" y2=\"%d\" stroke=\"#555\"/>\n", left, base, base);
    for (int a = 0; a < AGE_COUNT; a++) {
        for (int d = 0; d < 2; d++) {
            int bh = (int)(ages[d][a] * height / max), x = left + a * group_w + 30 + d * 60;
            fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"50\" height=\"%d\" fill=\"%s\"/>\n", x, base - bh, bh,
                    colors[d]);
            fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%lld</text>\n", x + 25,
                    base - bh - 4, ages[d][a]);
        }
        fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\"%s>", left + a * group_w + 85,
                base + 16, a == AGE_PAST ? " fill=\"#b71c1c\"" : "");
        esc_html(out, groups[a]);
        fputs("</text>\n", out);
    }
    int limit_x = left + 2 * group_w;
    fprintf(out, "<line x1=\"%d\" y1=\"20\" x2=\"%d\" y2=\"%d\" stroke=\"#b71c1c\" stroke-width=\"2\""
                 " stroke-dasharray=\"6 4\"/>\n",
            limit_x, limit_x, base + 4);
    fprintf(out, "<text x=\"%d\" y=\"14\" font-size=\"11\" fill=\"#b71c1c\" text-anchor=\"middle\">", limit_x);
    esc_htmlf(out, _("legal limit (%d days)"), RETENTION_CAP_DAYS);
    fputs("</text>\n", out);
    for (int d = 0; d < 2; d++) {
        fprintf(out, "<rect x=\"%d\" y=\"212\" width=\"12\" height=\"12\" fill=\"%s\"/>", left + d * 150, colors[d]);
        fprintf(out, "<text x=\"%d\" y=\"222\" font-size=\"11\">", left + d * 150 + 18);
        esc_html(out, series[d]);
        fputs("</text>\n", out);
    }
    fputs("</svg>\n<figcaption>", out);
    esc_html(out, _("The same numbers:"));
    fprintf(out, "<table id=\"chart-%zu-numbers\"><thead><tr><th></th>", index);
    for (int a = 0; a < AGE_COUNT; a++) {
        fputs("<th class=\"n\">", out);
        esc_html(out, groups[a]);
        fputs("</th>", out);
    }
    fputs("</tr></thead><tbody>", out);
    for (int d = 0; d < 2; d++) {
        fputs("<tr><th>", out);
        esc_html(out, series[d]);
        fputs("</th>", out);
        for (int a = 0; a < AGE_COUNT; a++)
            fprintf(out, "<td class=\"n\">%lld</td>", ages[d][a]);
        fputs("</tr>", out);
    }
    fputs("</tbody></table></figcaption>\n</figure>\n", out);
}

static void th(FILE *out, const char *text, bool number)
{
    fputs(number ? "<th class=\"n\">" : "<th>", out);
    esc_html(out, text);
    fputs("</th>", out);
}

/* The forms of a tenant, one row each: what matters to a reader. */
static void forms_table(FILE *out, const struct tenant_report *tr)
{
    char when[40];
    fputs("<table class=\"forms\"><colgroup><col style=\"width:33%\"><col style=\"width:12%\">"
          "<col style=\"width:10%\"><col style=\"width:11%\"><col style=\"width:34%\"></colgroup><thead><tr>",
          out);
    th(out, _("Form"), false);
    th(out, _("Period"), false);
    th(out, _("Due now"), true);
    th(out, _("Drafts due"), true);
    th(out, _("Oldest personal data"), false);
    fputs("</tr></thead><tbody>\n", out);
    for (size_t k = 0; k < tr->nforms; k++) {
        const struct form_report *fr = &tr->forms[k];
        fputs("<tr><td>", out);
        form_title(out, fr);
        fputs("</td>", out);
        if (fr->error) {
            fputs("<td colspan=\"4\" class=\"review\">", out);
            esc_htmlf(out, _("could not be checked: %s"), fr->error);
            fputs("</td></tr>\n", out);
            continue;
        }
        fputs("<td>", out);
        char *period = report_period(fr->retention_days);
        esc_html(out, period);
        free(period);
        if (fr->kind == FORM_KIND_CARD) {
            fputs("<br><small>", out);
            esc_html(out, fr->anonymised_by_run ? _("card anonymised (cards entry)") : _("card not anonymised: drafts only"));
            fputs("</small>", out);
        }
        fprintf(out, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td>", fr->counts[C_DUE],
                fr->counts[C_DRAFTS_DUE]);
        report_local_time(fr->oldest_pending, when);
        if (!fr->oldest_pending) {
            esc_html(out, _("none"));
        } else if (form_past_limit(fr)) {
            fputs("<span class=\"past\"><time>", out);
            esc_html(out, when);
            fputs("</time><br>", out);
            esc_htmlf(out, ngettext("%lld day past the limit", "%lld days past the limit", (unsigned long)fr->days_past_limit),
               fr->days_past_limit);
            fputs("</span>", out);
        } else {
            fputs("<time>", out);
            esc_html(out, when);
            fputs("</time><br>", out);
            esc_html(out, _("within the limit"));
        }
        if (fr->open_inactive > 0) {
            char *limit = report_period(fr->open_limit_days);
            fputs("<br><span class=\"review\">", out);
            esc_htmlf(out, ngettext("%lld open and inactive for more than %s: to review",
                             "%lld open and inactive for more than %s: to review", (unsigned long)fr->open_inactive),
               fr->open_inactive, limit);
            fputs("</span>", out);
            free(limit);
        }
        fputs("</td></tr>\n", out);
    }
    fputs("</tbody></table>\n", out);
}

static void tenant_section(FILE *out, const struct report *r, const struct tenant_report *tr, size_t index)
{
    char when[40];
    fprintf(out, "<section class=\"tenant\" id=\"tenant-%zu\">\n<h2>", index);
    esc_htmlf(out, _("Tenant %s"), tr->name);
    fputs("</h2>\n", out);
    if (tr->outcome == TENANT_UNREACHABLE || (tr->outcome == TENANT_FAILED && tr->nforms == 0 && tr->error)) {
        fputs("<p class=\"review\">", out);
        esc_htmlf(out, _("could not be checked: %s"), tr->error);
        fputs("</p>\n</section>\n", out);
        return;
    }
    fputs("<p>", out);
    char *defs = defs_describe(tr->url, tr->fetched, tr->fetch_error, tr->files_age);
    esc_htmlf(out, _("Definitions: %s. "), defs);
    free(defs);
    report_local_time(tr->last_run, when);
    esc_htmlf(out, _("Last successful run: %s."),
       tr->last_run_unknown ? _("unknown (no access to anonymizer.runs)") : tr->last_run ? when : _("never"));
    if (tr->run_in_progress) {
        report_local_time(tr->run_in_progress, when);
        fputs(" <strong>", out);
        esc_htmlf(out, _("A run started at %s is in progress: the figures change as it goes."), when);
        fputs("</strong>", out);
    }
    fputs("</p>\n", out);
    for (size_t i = 0; i < tr->nholds; i++) {
        char *text = hold_text(&tr->holds[i]);
        fputs(tr->holds[i].expired || tr->holds[i].over_a_year ? "<p class=\"review\">" : "<p>", out);
        esc_htmlf(out, _("Legal hold: %s"), text);
        fputs("</p>\n", out);
        free(text);
    }
    if (tr->chain_text) {
        bool broken = tr->chain_state && strcmp(tr->chain_state, "broken") == 0;
        fputs(broken ? "<p class=\"review\">" : "<p>", out);
        esc_htmlf(out, _("History's chain: %s"), tr->chain_text);
        fputs("</p>\n", out);
    }
    if (tr->error) {
        fputs("<p class=\"review\">", out);
        esc_html(out, tr->error);
        fputs("</p>\n", out);
    }
    char vacuum[512];
    bool late = report_vacuum_text(r, tr, vacuum, sizeof vacuum);
    if (vacuum[0]) {
        fputs(late ? "<p class=\"review\">" : "<p>", out);
        esc_html(out, vacuum);
        fputs("</p>\n", out);
    }
    if (tr->superuser) {
        fputs("<p class=\"review\">", out);
        esc_html(out, report_superuser_text());
        fputs("</p>\n", out);
    }
    char audit[768], errors[768], files[768];
    report_wcs_logs_text(tr, audit, sizeof audit, errors, sizeof errors);
    report_files_text(tr, files, sizeof files);
    const char *notes[3] = {audit, errors, files};
    for (int i = 0; i < 3; i++)
        if (notes[i][0]) {
            fputs("<p>", out);
            esc_html(out, notes[i]);
            fputs("</p>\n", out);
        }
    chart(out, tr, index);
    forms_table(out, tr);
    fputs("</section>\n", out);
}

static void detail_row(FILE *out, const char *name, long long value)
{
    fputs("<tr><th>", out);
    esc_html(out, name);
    fprintf(out, "</th><td class=\"n\">%lld</td></tr>", value);
}

/* The field columns (and subfields) of a list; metadata columns are described once, in the man page. */
static void detail_columns(FILE *out, const char *title, const struct collist *l, bool fields_only)
{
    size_t shown = 0;
    fputs("<p class=\"cols\"><strong>", out);
    esc_html(out, title);
    fputs("</strong> ", out);
    for (size_t i = 0; i < l->n; i++) {
        if (fields_only && !report_is_field_entry(l->items[i].column))
            continue;
        if (shown++)
            fputs(", ", out);
        esc_html(out, l->items[i].label ? l->items[i].label : l->items[i].column);
        fputs(" <small>", out);
        esc_html(out, l->items[i].column);
        if (l->items[i].varname)
            esc_htmlf(out, " [%s]", l->items[i].varname);
        fputs("</small>", out);
    }
    if (shown == 0)
        esc_html(out, _("none"));
    fputs("</p>\n", out);
}

/* A row of the details whose value is text (escaped); cls: the cell's class, or NULL. */
static void detail_text(FILE *out, const char *name, const char *cls, const char *text)
{
    fputs("<tr><th>", out);
    esc_html(out, name);
    fprintf(out, "</th><td%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
    esc_html(out, text);
    fputs("</td></tr>", out);
}

/* The counts of one form. */
static void detail_counts(FILE *out, const struct form_report *fr)
{
    detail_row(out, _("Submissions"), fr->counts[C_SUBMISSIONS]);
    detail_row(out, _("Anonymised"), fr->counts[C_ANONYMISED]);
    detail_row(out, _("Due now"), fr->counts[C_DUE]);
    detail_row(out, _("Drafts due"), fr->counts[C_DRAFTS_DUE]);
    detail_row(out, _("Open past cutoff"), fr->counts[C_OPEN_PAST]);
    detail_row(out, _("Open and inactive"), fr->open_inactive);
    if (fr->open_intermediate > 0)
        detail_row(out, _("Open past the period with \"intermediate\" fields (no intermediate anonymisation in the"
                          " workflow)"),
                   fr->open_intermediate);
    detail_row(out, _("Incomplete"), fr->counts[C_INCOMPLETE]);
    if (fr->held > 0) {
        detail_row(out, _("Kept under a legal hold"), fr->held);
        detail_row(out, _("Kept under a legal hold, done past the legal limit (lawful while it lasts)"),
                   fr->held_past_limit);
    }
    if (fr->testdefs > 0) {
        detail_row(out, _("Test definitions made from submissions"), fr->testdefs);
        detail_row(out, _("Test definitions holding personal data past the period"), fr->testdefs_due);
        detail_row(out, _("Test definitions holding personal data past the legal limit"), fr->testdefs_past_limit);
    }
    if (fr->undated > 0)
        detail_row(out, _("Undated (counted past the limit)"), fr->undated);
    if (fr->status_unknown > 0) {
        detail_row(out, _("Status unknown"), fr->status_unknown);
        detail_row(out, _("Status unknown, inactive past the limit"), fr->status_unknown_past);
    }
    if (fr->locked_known)
        detail_row(out, _("Locked in last run"), fr->locked_last_run);
}

/* What the last run, the BI export and the backups say of one form. */
static void detail_aftermath(FILE *out, const struct report *r, const struct tenant_report *tr,
                             const struct form_report *fr)
{
    char text[512];
    if (fr->bi_known) {
        bool flagged = report_bi_text(r, fr, text, sizeof text);
        detail_text(out, _("BI database"), flagged ? "review" : NULL, text);
    }
    if (fr->failed_last_run)
        detail_text(out, _("Failed in last run"), "review", fr->failed_last_run);
    if (fr->not_vacuumed)
        detail_text(out, _("Vacuum"), "review",
                    _("not vacuumed by the last run (the role does not own the tables): old row versions keep personal"
                      " data until autovacuum"));
    if (pending_of(fr) > 0 || fr->in_backups > 0) {
        fputs("<tr><th>", out);
        esc_html(out, _("Backups"));
        fputs("</th><td>", out);
        if (pending_of(fr) > 0)
            esc_htmlf(out, _("what is due now remains in backups until %s. "), tr->backups_until);
        if (fr->in_backups > 0)
            esc_htmlf(out, _("%lld anonymised submissions still in backups, until %s at the latest."),
                      fr->in_backups, fr->in_backups_until);
        fputs("</td></tr>", out);
    }
}

/* One form's details. */
static void detail_form(FILE *out, const struct report *r, const struct tenant_report *tr,
                        const struct form_report *fr)
{
    char when[40];
    fputs("<h3>", out);
    esc_html(out, tr->name);
    fputs(" — ", out);
    form_title(out, fr);
    fputs("</h3>\n<table><tbody>", out);
    report_local_time(fr->cutoff, when);
    fputs("<tr><th>", out);
    esc_html(out, _("Retention period"));
    fputs("</th><td>", out);
    char *period = report_period(fr->retention_days);
    esc_htmlf(out, _("%s (%s), cutoff %s"), period, _(cfg_source_str(fr->retention_source)), when);
    free(period);
    fputs("</td></tr>", out);
    detail_counts(out, fr);
    detail_aftermath(out, r, tr, fr);
    fputs("</tbody></table>\n", out);
    detail_columns(out, _("Kept fields:"), &fr->keep, true);
    char *personal = report_personal_kept(fr);
    if (personal) {
        fputs("<p class=\"review\">", out);
        esc_htmlf(out, _("Personal data kept: %s: personal by nature, kept by the definition or the configuration."),
                  personal);
        fputs("</p>\n", out);
    }
    free(personal);
    detail_columns(out, _("Blanked fields:"), &fr->blank, true);
    detail_columns(out, _("Unclassified (blanked):"), &fr->unclassified, false);
}

/* Every count and column of every form: what an auditor checks figures against. */
static void details(FILE *out, const struct report *r)
{
    fputs("<section id=\"details\"><h2>", out);
    esc_html(out, _("Details"));
    fputs("</h2>\n", out);
    for (size_t i = 0; i < r->ntenants; i++)
        for (size_t k = 0; k < r->tenants[i].nforms; k++)
            if (!r->tenants[i].forms[k].error)
                detail_form(out, r, &r->tenants[i], &r->tenants[i].forms[k]);
    fputs("</section>\n", out);
}

/* Every term the report uses. */
static void glossary(FILE *out, const struct cfg *cfg)
{
    const char *terms[][2] = {
        {N_("Tenant"), N_("One w.c.s. site of the platform (a town, a county), with its own database.")},
        {N_("Form"), N_("A form of w.c.s.; its submissions are what citizens filled in and sent.")},
        {N_("VACUUM owed"), N_("A table the anonymisation changed keeps the old versions of its rows, with their"
                               " personal data, until PostgreSQL vacuums it. The tool vacuums what it owns; tables"
                               " w.c.s. owns are vacuumed by autovacuum or an administrator, which pays the debt"
                               " (shown as pending maintenance, a warning only after seven days).")},
        {N_("Test copy"), N_("A copy of real submissions that w.c.s. made to test a workflow: real data, same rules.")},
        {N_("Card"), N_("A register (people, places, schools) kept under its own legal basis: not held to the limit,"
                        " anonymised only when the configuration says so; its expired drafts are deleted.")},
        {N_("BI database"), N_("Where the statistics team reads anonymised submissions: kept answers only, times"
                               " rounded, and only where enough submissions look alike (k-anonymity).")},
        {N_("Smallest group"), N_("In the BI database, the fewest submissions of a form that share the same times,"
                                  " channel and kept answers; at least k, so that none can be singled out.")},
        {N_("Held back"), N_("Anonymised submissions not sent to the BI database yet: fewer than k others look like"
                             " them; they are sent once enough do.")},
        {N_("Done"), N_("A submission is done when it reached a final status; its period starts then"
                        " (w.c.s. records the moment as done-datetime).")},
        {N_("Retention period"), N_("How long a done submission keeps its personal data; at most three months.")},
        {N_("Cutoff"), N_("The moment before which a done submission is due: now minus the retention period.")},
        {N_("Legal limit"), N_("Three months (90 days) after a submission was done: personal data held longer"
                               " breaks the promise made to the data protection authority.")},
        {N_("Due"), N_("Done before the cutoff and still holding personal data: the next run anonymises it.")},
        {N_("Draft"), N_("A submission started and never sent; expired drafts are deleted (or anonymised).")},
        {N_("Open"), N_("A submission w.c.s. is still working on (not at a final status): legitimately kept.")},
        {N_("Open and inactive"), N_("An open submission without activity for longer than the configured"
                                     " open_limit: to review, as nobody seems to work on it.")},
        {N_("Anonymised"), N_("Its personal fields and metadata removed: what remains cannot identify a person.")},
        {N_("Incomplete"), N_("Anonymised by w.c.s. but still holding data the tool removes (prefilling data,"
                              " geolocation, the agent who submitted it).")},
        {N_("Locked"), N_("Being worked on in w.c.s. during the last run: left for the next one.")},
        {N_("Definition"), N_("What w.c.s. says of a form: which field holds personal data, which status is final.")},
        {N_("Kept, blanked, unclassified"), N_("What happens to a field: kept (business data), blanked (personal),"
                                                " or unknown to the definition, and then blanked too.")},
        {N_("Backups"), N_("Copies of the database kept for a while: they hold the data removed since they were"
                           " made, until they expire.")},
        {N_("COMPLIANT"), N_("No personal data is held past the legal limit anywhere the report could look.")},
        {N_("NOT COMPLIANT"), N_("Personal data is held past the limit somewhere, or an open submission waits"
                                 " for review.")},
        {N_("INCOMPLETE"), N_("Nothing is past the limit where the report could look, but some tenant or form"
                              " could not be checked.")},
    };
    fputs("<section id=\"glossary\"><h2>", out);
    esc_html(out, _("Glossary"));
    fputs("</h2>\n<dl class=\"glossary\">\n", out);
    for (size_t i = 0; i < AX_ARRAY_LEN(terms); i++) {
        fputs("<dt>", out);
        esc_html(out, _(terms[i][0]));
        fputs("</dt><dd>", out);
        esc_html(out, _(terms[i][1]));
        fputs("</dd>\n", out);
    }
    char *backups = report_period(cfg->backup_retention_days);
    fputs("<dt>", out);
    esc_html(out, _("Copies outside the database"));
    fputs("</dt><dd>", out);
    esc_htmlf(out, _("Backups are kept %s: what a run removes today remains in them for that long."),
       backups);
    free(backups);
    fputs("</dd>\n</dl>\n</section>\n", out);
}

void report_render_html(FILE *out, const struct report *r, const struct cfg *cfg)
{
    char generated[40];
    report_local_time(r->generated_at, generated);
    fprintf(out, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n<title>", i18n_lang());
    esc_html(out, _("Personal data retention report"));
    fprintf(out, "</title>\n<style>%s</style>\n</head>\n<body>\n<header>\n<p class=\"tool\">anonymizer %s</p>\n<h1>",
            style, ANONYMIZER_VERSION);
    esc_html(out, _("Personal data retention report"));
    fputs("</h1>\n<p class=\"small\">", out);
    esc_htmlf(out, _("Made on %s; times in %s."), generated, r->timezone ? r->timezone : _("the system's time zone"));
    fputs("</p>\n</header>\n<main>\n", out);
    summary(out, r);
    for (size_t i = 0; i < r->ntenants; i++)
        tenant_section(out, r, &r->tenants[i], i + 1);
    details(out, r);
    glossary(out, cfg);
    fputs("</main>\n</body>\n</html>\n", out);
}
