/*
 * report_nagios.c: the report as a Nagios (or Icinga) check, following the
 * plugin guidelines: one status line "ANONYMIZER <STATE> - <text> | <perfdata>",
 * then long output lines that explain the state, and the state as the exit
 * status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
 *
 * CRITICAL: the verdict is NOT COMPLIANT (personal data past the legal
 * limit, or an open submission inactive past open_limit), or a tenant or
 * form could not be checked, or its last run cannot be known.  Else
 * WARNING: the process is slipping: a tenant's last successful run is older
 * than --stale hours (or it never ran), the last run left behind personal
 * data that was already due when it started (in a form where it found no
 * row locked by w.c.s.), a form failed in the last run, or the BI export
 * holds back more than half a form.  --warning sets the oldest_days
 * perfdata threshold only.  Else OK: right after a normal night, whatever the retention.
 * UNKNOWN is for the plugin's own failures (main.c).  English only: it is
 * read by machines first.
 */
#include "report_model.h"
#include "ax.h"
#include "strbuf.h"
#include "timeutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct nagios_state {
    int state;
    long long tenants, unchecked, stale, due, drafts_due, incomplete, past_forms, open_inactive;
    long long left_behind, failed, held_back; /* forms: due data the last run left, failed in it, mostly held in BI */
    long long holds_to_review;   /* legal holds expired (still listed) or in force for over a year */
    long long chains_broken;     /* tenants whose history's chain is broken */
    long long max_past_days;     /* days past the limit of the oldest data past it */
    long long oldest_days;       /* age of the oldest personal data the limit applies to */
    long long last_run_hours;    /* the longest since a tenant's last successful run */
    bool last_run_unknown;       /* some tenant never ran, or its runs cannot be read */
    struct strbuf critical, unknown, warning; /* long output, by state */
};

static const char *const state_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

/* Appends one long-output line: '|' would start perfdata, control characters would break lines. */
static void add_line(struct strbuf *sb, const char *fmt, ...) AX_PRINTF(2, 3);

static void add_line(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = ax_vasprintf(fmt, ap);
    va_end(ap);
    for (char *p = text; *p; p++)
        if (*p == '|')
            *p = '/';
        else if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    sb_appendf(sb, "%s\n", text);
    free(text);
}

static long long seconds_between(const char *from_iso, const char *to_iso)
{
    time_t a, b;
    if (!from_iso || !to_iso || tm_parse_utc(from_iso, &a) || tm_parse_utc(to_iso, &b))
        return -1;
    return (long long)(b - a);
}

static long long hours_between(const char *from_iso, const char *to_iso)
{
    long long s = seconds_between(from_iso, to_iso);
    return s < 0 ? -1 : s / 3600;
}

static const char *plural(long long n)
{
    return n == 1 ? "" : "s";
}

/* What says the process is slipping in one form (see the top of this file). */
static void assess_slipping(struct nagios_state *s, const struct report *r, const struct tenant_report *tr,
                            const struct form_report *fr)
{
    if (fr->failed_last_run) {
        add_line(&s->warning, "WARNING: %s/%s: failed in the last run: %s", tr->name, fr->slug, fr->failed_last_run);
        s->failed++;
    }
    if (fr->bi_known && fr->bi_held_back > fr->bi_published) {
        add_line(&s->warning, "WARNING: %s/%s: the BI export holds back %lld of %lld rows (field: %s)", tr->name,
                 fr->slug, fr->bi_held_back, fr->bi_held_back + fr->bi_published,
                 fr->bi_limiting ? fr->bi_limiting : "none");
        s->held_back++;
    }
    if (fr->of_card || !fr->oldest_pending || !tr->last_run || fr->locked_last_run > 0)
        return;
    /* due when the last run started (an hour's slack for the run's own length): it was its to do */
    long long since_run = seconds_between(tr->last_run, r->at);
    if (since_run >= 0 && seconds_between(fr->oldest_pending, fr->cutoff) > since_run + 3600) {
        add_line(&s->warning, "WARNING: %s/%s: personal data due since %s left by the last run (%s)", tr->name,
                 fr->slug, fr->oldest_pending, tr->last_run);
        s->left_behind++;
    }
}

static void assess_form(struct nagios_state *s, const struct report *r, const struct tenant_report *tr,
                        const struct form_report *fr)
{
    if (fr->error) {
        add_line(&s->unknown, "CRITICAL: %s/%s: could not be checked: %s", tr->name, fr->slug, fr->error);
        s->unchecked++;
        return;
    }
    s->due += fr->counts[C_DUE];
    s->drafts_due += fr->counts[C_DRAFTS_DUE];
    s->incomplete += fr->counts[C_INCOMPLETE];
    s->open_inactive += fr->open_inactive;
    if (fr->open_inactive > 0)
        add_line(&s->critical, "CRITICAL: %s/%s: %lld open submission%s inactive for more than %s (since %s): to review",
                 tr->name, fr->slug, fr->open_inactive, fr->open_inactive == 1 ? "" : "s", fr->open_limit,
                 fr->oldest_open_inactive ? fr->oldest_open_inactive : "?");
    if (fr->of_card || !fr->oldest_pending)
        return;
    long long age = hours_between(fr->oldest_pending, r->at);
    if (age >= 0 && age / 24 > s->oldest_days)
        s->oldest_days = age / 24;
    if (form_past_limit(fr)) {
        s->past_forms++;
        if (fr->days_past_limit > s->max_past_days)
            s->max_past_days = fr->days_past_limit;
        add_line(&s->critical, "CRITICAL: %s/%s: personal data %lld day%s past the limit (oldest %s)", tr->name,
                 fr->slug, fr->days_past_limit, fr->days_past_limit == 1 ? "" : "s", fr->oldest_pending);
    }
}

static void assess_tenant(struct nagios_state *s, const struct report *r, const struct tenant_report *tr,
                          const struct nagios_options *no)
{
    s->tenants++;
    if (tr->outcome != TENANT_OK && (tr->nforms == 0 || tr->error)) {
        add_line(&s->unknown, "CRITICAL: %s: could not be checked: %s", tr->name, tr->error ? tr->error : "?");
        s->unchecked++;
        return;
    }
    for (size_t k = 0; k < tr->nforms; k++) {
        assess_form(s, r, tr, &tr->forms[k]);
        if (!tr->forms[k].error)
            assess_slipping(s, r, tr, &tr->forms[k]);
    }
    for (size_t k = 0; k < tr->nholds; k++) {
        const struct report_hold *h = &tr->holds[k];
        if (!h->expired && !h->over_a_year)
            continue;
        add_line(&s->warning, "WARNING: %s/%s: legal hold %lld %s: review it (anonymizer hold list)", tr->name,
                 h->slug, h->id, h->expired ? "has expired and is still listed" : "is over a year old");
        s->holds_to_review++;
    }
    if (tr->chain_state && strcmp(tr->chain_state, "broken") == 0) {
        add_line(&s->warning, "WARNING: %s: the history's chain is broken: %s", tr->name,
                 tr->chain_text ? tr->chain_text : "?");
        s->chains_broken++;
    }
    if (tr->last_run_unknown) {
        add_line(&s->unknown, "CRITICAL: %s: last run unknown (no SELECT on anonymizer.runs)", tr->name);
        s->unchecked++;
        s->last_run_unknown = true;
        return;
    }
    if (!tr->last_run) {
        add_line(&s->warning, "WARNING: %s: no successful run recorded", tr->name);
        s->stale++;
        s->last_run_unknown = true;
        return;
    }
    long long hours = hours_between(tr->last_run, r->at);
    if (hours > s->last_run_hours)
        s->last_run_hours = hours;
    if (hours > no->stale_hours) {
        add_line(&s->warning, "WARNING: %s: last successful run %s, %lld hour%s ago (more than %d)", tr->name,
                 tr->last_run, hours, plural(hours), no->stale_hours);
        s->stale++;
    }
}

static void status_text(struct strbuf *sb, const struct nagios_state *s, const struct nagios_options *no)
{
    const char *sep = "";
    switch (s->state) {
    case 2:
        if (s->past_forms) {
            sb_appendf(sb, "personal data past the legal limit in %lld form%s (%lld day%s at most)", s->past_forms,
                       plural(s->past_forms), s->max_past_days, plural(s->max_past_days));
            sep = ", ";
        }
        if (s->open_inactive) {
            sb_appendf(sb, "%s%lld open submission%s inactive past open_limit", sep, s->open_inactive,
                       plural(s->open_inactive));
            sep = ", ";
        }
        if (s->unchecked)
            sb_appendf(sb, "%s%lld tenant%s or form%s could not be checked", sep, s->unchecked, plural(s->unchecked),
                       plural(s->unchecked));
        break;
    case 1:
        if (s->stale) {
            sb_appendf(sb, "%lld tenant%s without a successful run for %d hours", s->stale, plural(s->stale),
                       no->stale_hours);
            sep = ", ";
        }
        if (s->left_behind) {
            sb_appendf(sb, "%s%lld form%s with personal data the last run left behind", sep, s->left_behind,
                       plural(s->left_behind));
            sep = ", ";
        }
        if (s->failed) {
            sb_appendf(sb, "%s%lld form%s failed in the last run", sep, s->failed, plural(s->failed));
            sep = ", ";
        }
        if (s->held_back) {
            sb_appendf(sb, "%s%lld form%s mostly held back from BI", sep, s->held_back, plural(s->held_back));
            sep = ", ";
        }
        if (s->holds_to_review) {
            sb_appendf(sb, "%s%lld legal hold%s to review", sep, s->holds_to_review, plural(s->holds_to_review));
            sep = ", ";
        }
        if (s->chains_broken)
            sb_appendf(sb, "%s%lld tenant%s with a broken history chain", sep, s->chains_broken,
                       plural(s->chains_broken));
        break;
    default:
        sb_appendf(sb, "%lld tenant%s compliant, %lld due", s->tenants, plural(s->tenants), s->due);
    }
}

int report_render_nagios(FILE *out, const struct report *r, const struct nagios_options *no)
{
    const int cap = RETENTION_CAP_DAYS;
    struct nagios_state s = {.last_run_unknown = r->ntenants == 0};
    sb_init(&s.critical);
    sb_init(&s.unknown);
    sb_init(&s.warning);
    for (size_t i = 0; i < r->ntenants; i++)
        assess_tenant(&s, r, &r->tenants[i], no);

    s.state = r->verdict == VERDICT_NOT_COMPLIANT || s.unchecked ? 2
              : s.stale || s.left_behind || s.failed || s.held_back || s.holds_to_review || s.chains_broken ? 1
                                                                   : 0;

    struct strbuf line;
    sb_init(&line);
    status_text(&line, &s, no);
    fprintf(out, "ANONYMIZER %s - %s | tenants=%lld unchecked=%lld;;0 due=%lld drafts_due=%lld incomplete=%lld"
                 " past_limit=%lld;;0 open_inactive=%lld;;0 oldest_days=%lld;%d;%d;0",
            state_names[s.state], line.buf, s.tenants, s.unchecked, s.due, s.drafts_due, s.incomplete,
            s.past_forms, s.open_inactive, s.oldest_days, cap - no->warning_days, cap);
    if (s.last_run_unknown)
        fprintf(out, " last_run_hours=U;%d;;0", no->stale_hours);
    else
        fprintf(out, " last_run_hours=%lld;%d;;0", s.last_run_hours, no->stale_hours);
    fprintf(out, " stale_tenants=%lld;0 left_behind=%lld;0 failed_forms=%lld;0 holds_to_review=%lld;0\n", s.stale,
            s.left_behind, s.failed, s.holds_to_review);
    fputs(s.critical.buf, out);
    fputs(s.unknown.buf, out);
    fputs(s.warning.buf, out);
    sb_free(&line);
    sb_free(&s.critical);
    sb_free(&s.unknown);
    sb_free(&s.warning);
    return s.state;
}
