/*
 * history.c: the "history" command: the runs of every tenant, from the audit
 * tables (anonymizer.runs), so that the DPO can answer "were we running every
 * night in March, and what did each run do".  Read-only; text and HTML in
 * the reader's language and the configured time zone, JSON and CSV for
 * programs.
 */
#include "history.h"
#include "audit.h"
#include "chain.h"
#include "escape.h"
#include "ax.h"
#include "i18n.h"
#include "report_model.h"
#include "log.h"
#include "strbuf.h"
#include "tenant.h"
#include "timeutil.h"
#include "version.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


struct tenant_history {
    const char *name;
    char *error; /* could not be read */
    struct audit_run *runs;
    size_t nruns;
    char **missing; /* local dates with no successful run, from the first recorded run on */
    size_t nmissing;
    char *first_run; /* the first recorded run (ISO UTC), NULL: none; nights before it are not counted */
    struct chain_status chain;
};

/* The local date of a successful nightly run, or "" for any other row. */
static void run_date(const struct audit_run *r, char date[16])
{
    time_t t;
    date[0] = '\0';
    if (strcmp(r->command, "run") == 0 && strcmp(r->outcome, "ok") == 0 && tm_parse_utc(r->started_at, &t) == 0)
        tm_format_local_date(t, date);
}

/*
 * The local dates from since up to yesterday on which no successful run
 * started.  The runs come ordered by start, so one walk over both lists.
 */
size_t history_missing_nights(const struct audit_run *runs, size_t nruns, time_t since, time_t now, char ***out)
{
    char today[16], ran[16] = "";
    size_t k = 0, nmissing = 0;
    *out = NULL;
    tm_format_local_date(now, today);
    /* calendar days at local noon: a day of 23 or 25 hours skips or repeats none */
    struct tm day;
    localtime_r(&since, &day);
    day.tm_hour = 12;
    day.tm_min = day.tm_sec = 0;
    for (; nmissing <= HISTORY_MAX_NIGHTS; day.tm_mday++) {
        char date[16];
        day.tm_isdst = -1;
        time_t noon = mktime(&day);
        tm_format_local_date(noon, date);
        if (strcmp(date, today) >= 0)
            break;
        /* skip the runs of earlier dates; stop at the first success on this date or later */
        while (strcmp(ran, date) < 0 && k < nruns)
            run_date(&runs[k++], ran);
        if (strcmp(ran, date) != 0) {
            *out = ax_reallocarray(*out, nmissing + 1, sizeof **out);
            (*out)[nmissing++] = ax_strdup(date);
        }
    }
    return nmissing;
}

static enum tenant_outcome read_tenant(const struct app *app, struct app_tenant *at, const char *since,
                                       time_t since_t, struct tenant_history *th)
{
    struct tenant t;
    enum tenant_outcome outcome = TENANT_OK;
    th->name = at->cfg->name;
    if (tenant_open(&t, app, at, true) != AX_OK) {
        outcome = PQstatus(t.db.conn) == CONNECTION_OK ? TENANT_FAILED : TENANT_UNREACHABLE;
        th->error = outcome == TENANT_UNREACHABLE ? ax_asprintf(_("cannot connect: %s"), t.db.error)
                                                     : ax_strdup(t.db.error);
    } else if (audit_history(&t, since, &th->runs, &th->nruns, &th->first_run) != AX_OK ||
               chain_verify(&t, app, &th->chain) != AX_OK) {
        outcome = TENANT_FAILED;
        th->error = ax_strdup(t.db.error);
    } else if (th->first_run) {
        /* the nights before the tool ran here at all are not nights it missed */
        time_t first;
        if (tm_parse_utc(th->first_run, &first) == 0 && first > since_t)
            since_t = first;
        th->nmissing = history_missing_nights(th->runs, th->nruns, since_t, time(NULL), &th->missing);
    }
    if (th->error)
        log_error("%s: %s", th->name, th->error);
    tenant_close(&t);
    return outcome;
}

/* Seconds between two ISO UTC instants; -1 when either is missing. */
static long duration(const struct audit_run *r)
{
    time_t a, b;
    if (!r->finished_at || tm_parse_utc(r->started_at, &a) || tm_parse_utc(r->finished_at, &b))
        return -1;
    return (long)(b - a);
}

/*
 * The words a run stores in its audit row (outcome, and the fixed errors of
 * run.c and app.c), for the catalogue: a stored value is shown translated
 * when the catalogue has it, as it is otherwise (a server's condition, a
 * form's name).
 */
static const char *const stored_words[] __attribute__((unused)) = {
    N_("ok"), N_("failed"), N_("unreachable"), N_("peer"), N_("interrupted"), N_("crashed"), N_("running"),
    N_("some forms could not be processed"), N_("the export to the BI database failed"),
    N_("time budget exhausted"), N_("interrupted by a signal"),
    N_("the run died: counted from its committed batches"),
};

/* -- what was in force ---------------------------------------------------------------------------- */

/* One setting as "path=value": objects walked, arrays joined with ",". */
static void flatten(json_object *o, const char *path, char ***lines, size_t *n)
{
    if (o && json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v) {
            char *sub = *path ? ax_asprintf("%s.%s", path, k) : ax_strdup(k);
            flatten(v, sub, lines, n);
            free(sub);
        }
        return;
    }
    struct strbuf sb;
    sb_init(&sb);
    if (!o)
        sb_append(&sb, "-");
    else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            sb_appendf(&sb, "%s%s", i ? "," : "", json_object_get_string(json_object_array_get_idx(o, i)));
        if (json_object_array_length(o) == 0)
            sb_append(&sb, "(none)");
    } else
        sb_append(&sb, json_object_get_string(o));
    *lines = ax_reallocarray(*lines, *n + 1, sizeof **lines);
    (*lines)[(*n)++] = ax_asprintf("%s=%s", path, sb.buf);
    sb_free(&sb);
}

static int key_cmp(const char *a, const char *b)
{
    size_t la = strcspn(a, "="), lb = strcspn(b, "=");
    int c = strncmp(a, b, la < lb ? la : lb);
    return c ? c : la < lb ? -1 : la > lb;
}

static int line_cmp(const void *a, const void *b)
{
    return key_cmp(*(const char *const *)a, *(const char *const *)b);
}

struct settings {
    char **lines;
    size_t n;
};

static void settings_read(const char *text, struct settings *out)
{
    memset(out, 0, sizeof *out);
    json_object *o = text ? json_tokener_parse(text) : NULL;
    if (o)
        flatten(o, "", &out->lines, &out->n);
    json_object_put(o);
    if (out->n)
        qsort(out->lines, out->n, sizeof *out->lines, line_cmp);
}

static void settings_free(struct settings *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->lines[i]);
    free(s->lines);
    memset(s, 0, sizeof *s);
}

/* Calls change(key, before, after) for each setting that differs (NULL: absent on that side). */
static size_t settings_diff(const struct settings *a, const struct settings *b,
                            void (*change)(void *arg, const char *key, size_t klen, const char *before,
                                           const char *after),
                            void *arg)
{
    size_t i = 0, k = 0, n = 0;
    while (i < a->n || k < b->n) {
        int c = i == a->n ? 1 : k == b->n ? -1 : key_cmp(a->lines[i], b->lines[k]);
        const char *l = c <= 0 ? a->lines[i] : b->lines[k];
        size_t klen = strcspn(l, "=");
        const char *before = c <= 0 ? a->lines[i] + klen + 1 : NULL, *after = c >= 0 ? b->lines[k] + klen + 1 : NULL;
        if (!before || !after || strcmp(before, after) != 0) {
            change(arg, l, klen, before, after);
            n++;
        }
        i += c <= 0;
        k += c >= 0;
    }
    return n;
}

static void change_text(void *arg, const char *key, size_t klen, const char *before, const char *after)
{
    struct strbuf *sb = arg;
    sb_appendf(sb, "%s%.*s %s -> %s", sb->len ? "; " : "", (int)klen, key, before ? before : "-", after ? after : "-");
}

static void change_json(void *arg, const char *key, size_t klen, const char *before, const char *after)
{
    json_object *o = json_object_new_object();
    char *k = ax_strndup(key, klen);
    json_object_object_add(o, "setting", json_object_new_string(k));
    json_object_object_add(o, "before", before ? json_object_new_string(before) : NULL);
    json_object_object_add(o, "after", after ? json_object_new_string(after) : NULL);
    json_object_array_add(arg, o);
    free(k);
}

/* The settings of the run before r among the tenant's runs (NULL: r is the first listed). */
static const struct audit_run *previous_settings(const struct tenant_history *th, size_t k)
{
    while (k-- > 0)
        if (th->runs[k].settings)
            return &th->runs[k];
    return NULL;
}

/* What changed since the run before, for people ("" when nothing; NULL for the first run listed). */
static char *settings_changes(const struct tenant_history *th, size_t k)
{
    const struct audit_run *prev = previous_settings(th, k);
    if (!prev || !th->runs[k].settings)
        return NULL;
    struct settings a, b;
    struct strbuf sb;
    sb_init(&sb);
    settings_read(prev->settings, &a);
    settings_read(th->runs[k].settings, &b);
    settings_diff(&a, &b, change_text, &sb);
    settings_free(&a);
    settings_free(&b);
    return sb_finish(&sb);
}

/* What a hold entry recorded, for people: "hold 3 on form, submission 12: reason (os user, role)". */
static char *hold_summary(const struct audit_run *r)
{
    json_object *d = r->details ? json_tokener_parse(r->details) : NULL, *holds = NULL;
    struct strbuf sb;
    sb_init(&sb);
    if (d && json_object_object_get_ex(d, "holds", &holds) && json_object_is_type(holds, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(holds); i++) {
            json_object *h = json_object_array_get_idx(holds, i), *v;
#define FIELD(k) (json_object_object_get_ex(h, k, &v) && json_object_get_string(v) ? json_object_get_string(v) : "")
            char what[64];
            if (*FIELD("submission_id"))
                snprintf(what, sizeof what, _("submission %s"), FIELD("submission_id"));
            else
                snprintf(what, sizeof what, "%s", _("every submission"));
            sb_appendf(&sb, "%s", i ? "; " : "");
            sb_appendf(&sb, _("hold %s on %s, %s: \"%s\" (%s, role %s)"), FIELD("hold_id"), FIELD("form"), what,
                       FIELD("reason"), FIELD("os_user"), FIELD("db_role"));
            if (*FIELD("removal_reason"))
                sb_appendf(&sb, _(", removed: \"%s\""), FIELD("removal_reason"));
#undef FIELD
        }
    }
    json_object_put(d);
    return sb_finish(&sb);
}

static const char *shown(const char *stored)
{
    return stored && *stored ? _(stored) : stored;
}

/* -- text ------------------------------------------------------------------------------ */

static void render_text(FILE *out, const struct tenant_history *ths, size_t n, const char *since)
{
    char when[40];
    report_local_time(since, when);
    fprintf(out, _("anonymizer %s history\n"), ANONYMIZER_VERSION);
    fprintf(out, _("runs since %s\n"), when);
    for (size_t i = 0; i < n; i++) {
        const struct tenant_history *th = &ths[i];
        char *name = esc_text(th->name);
        fprintf(out, "\n%s %s\n", _("tenant"), name);
        free(name);
        if (th->error) {
            char *error = esc_text(th->error);
            fprintf(out, "  %s: %s\n", _("ERROR"), error);
            free(error);
            continue;
        }
        char *chain = chain_status_text(&th->chain);
        fprintf(out, _("  history's chain: %s\n"), chain);
        free(chain);
        if (th->nruns == 0)
            fprintf(out, "  %s\n", _("no run recorded"));
        for (size_t k = 0; k < th->nruns; k++) {
            const struct audit_run *r = &th->runs[k];
            long d = duration(r);
            char exported[32] = "-";
            if (r->exported >= 0)
                snprintf(exported, sizeof exported, "%lld", r->exported);
            report_local_time(r->started_at, when);
            char *host = esc_text(r->host ? r->host : "?");
            fprintf(out, _("  %s  %-7s %-12s %6ld s  anonymised %lld, completed %lld, drafts %lld, exported %s"
                           " (on %s, version %s)\n"),
                    when, r->command, shown(r->outcome), d, r->anonymised, r->completed, r->drafts, exported, host,
                    r->version);
            free(host);
            if (strncmp(r->command, "hold", 4) == 0) {
                char *summary = hold_summary(r), *text = esc_text(summary);
                fprintf(out, "      %s\n", text);
                free(summary);
                free(text);
            }
            char *changes = settings_changes(th, k);
            if (!changes && r->settings && r->config_sha256)
                fprintf(out, _("      settings: configuration %.12s (the JSON history lists them)\n"), r->config_sha256);
            else if (changes && *changes) {
                char *text = esc_text(changes);
                fprintf(out, _("      settings changed: %s\n"), text);
                free(text);
            }
            free(changes);
            if (r->error) {
                char *error = esc_text(shown(r->error));
                fprintf(out, "      %s\n", error);
                free(error);
            }
        }
        struct strbuf sb;
        sb_init(&sb);
        for (size_t k = 0; k < th->nmissing && k < HISTORY_MAX_NIGHTS; k++)
            sb_appendf(&sb, "%s%s", k ? ", " : "", th->missing[k]);
        if (th->nmissing > HISTORY_MAX_NIGHTS)
            sb_append(&sb, _(", and more"));
        fprintf(out, "  %s: %s\n", _("nights without a successful run"), th->nmissing ? sb.buf : _("none"));
        sb_free(&sb);
        if (th->first_run && strcmp(th->first_run, since) > 0) {
            report_local_time(th->first_run, when);
            fprintf(out, _("  (counted from the first recorded run, %s)\n"), when);
        }
    }
}

/* -- JSON, CSV ------------------------------------------------------------------------------- */

static json_object *jstr(const char *s)
{
    return esc_json_string(s);
}

static json_object *chain_json(const struct chain_status *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "state", json_object_new_string(chain_state_str(c->state)));
    json_object_object_add(o, "fault", c->fault ? json_object_new_string(chain_fault_str(c->fault)) : NULL);
    json_object_object_add(o, "bad_entry", c->fault && c->bad_seq >= 0 ? json_object_new_int64(c->bad_seq) : NULL);
    json_object_object_add(o, "bad_run_id", jstr(c->bad_run_id));
    json_object_object_add(o, "bad_started_at", jstr(c->bad_started));
    json_object_object_add(o, "entries", json_object_new_int64(c->entries));
    json_object_object_add(o, "unchained_entries", json_object_new_int64(c->unchained));
    json_object_object_add(o, "since", jstr(c->since));
    json_object_object_add(o, "key_id", jstr(c->key_id));
    json_object_object_add(o, "not_verified", jstr(c->unverified));
    char *text = chain_status_text(c);
    json_object_object_add(o, "text", jstr(text));
    free(text);
    return o;
}

static void render_json(FILE *out, const struct tenant_history *ths, size_t n, const char *since)
{
    json_object *root = json_object_new_object(), *tenants = json_object_new_array();
    json_object_object_add(root, "since", jstr(since));
    for (size_t i = 0; i < n; i++) {
        const struct tenant_history *th = &ths[i];
        json_object *t = json_object_new_object(), *runs = json_object_new_array(), *missing = json_object_new_array();
        json_object_object_add(t, "name", jstr(th->name));
        json_object_object_add(t, "error", jstr(th->error));
        for (size_t k = 0; k < th->nruns; k++) {
            const struct audit_run *r = &th->runs[k];
            json_object *o = json_object_new_object();
            json_object_object_add(o, "run_id", jstr(r->run_id));
            json_object_object_add(o, "command", jstr(r->command));
            json_object_object_add(o, "started_at", jstr(r->started_at));
            json_object_object_add(o, "finished_at", jstr(r->finished_at));
            json_object_object_add(o, "seconds", duration(r) >= 0 ? json_object_new_int64(duration(r)) : NULL);
            json_object_object_add(o, "outcome", jstr(r->outcome));
            json_object_object_add(o, "error", jstr(r->error));
            json_object_object_add(o, "anonymised", json_object_new_int64(r->anonymised));
            json_object_object_add(o, "completed", json_object_new_int64(r->completed));
            json_object_object_add(o, "drafts", json_object_new_int64(r->drafts));
            json_object_object_add(o, "exported", r->exported >= 0 ? json_object_new_int64(r->exported) : NULL);
            json_object_object_add(o, "version", jstr(r->version));
            json_object_object_add(o, "host", jstr(r->host));
            json_object_object_add(o, "details",
                                   r->details && !r->settings ? json_tokener_parse(r->details) : NULL);
            json_object_object_add(o, "config_sha256", jstr(r->config_sha256));
            json_object_object_add(o, "settings", r->settings ? json_tokener_parse(r->settings) : NULL);
            const struct audit_run *prev = previous_settings(th, k);
            json_object *changed = NULL;
            if (prev && r->settings) {
                struct settings a, b;
                changed = json_object_new_array();
                settings_read(prev->settings, &a);
                settings_read(r->settings, &b);
                settings_diff(&a, &b, change_json, changed);
                settings_free(&a);
                settings_free(&b);
            }
            json_object_object_add(o, "settings_changed", changed);
            json_object_array_add(runs, o);
        }
        for (size_t k = 0; k < th->nmissing; k++)
            json_object_array_add(missing, json_object_new_string(th->missing[k]));
        json_object_object_add(t, "runs", runs);
        json_object_object_add(t, "nights_without_successful_run", missing);
        json_object_object_add(t, "first_run", jstr(th->first_run));
        json_object_object_add(t, "chain", chain_json(&th->chain));
        json_object_array_add(tenants, t);
    }
    json_object_object_add(root, "tenants", tenants);
    esc_json_print(out, root);
    json_object_put(root);
}

static void render_csv(FILE *out, const struct tenant_history *ths, size_t n)
{
    static const char *const header[] = {"tenant", "tenant_error", "run_id", "command", "started_at", "finished_at",
                                         "seconds", "outcome", "error", "anonymised", "completed", "drafts",
                                         "exported", "version", "host"};
    for (size_t i = 0; i < AX_ARRAY_LEN(header); i++)
        esc_csv_field(out, header[i], i + 1 == AX_ARRAY_LEN(header));
    for (size_t i = 0; i < n; i++) {
        const struct tenant_history *th = &ths[i];
        if (th->error) {
            esc_csv_field(out, th->name, false);
            esc_csv_field(out, th->error, false);
            for (size_t k = 2; k < AX_ARRAY_LEN(header); k++)
                esc_csv_field(out, "", k + 1 == AX_ARRAY_LEN(header));
            continue;
        }
        for (size_t k = 0; k < th->nruns; k++) {
            const struct audit_run *r = &th->runs[k];
            char secs[32] = "", a[32], c[32], d[32], e[32] = "";
            if (duration(r) >= 0)
                snprintf(secs, sizeof secs, "%ld", duration(r));
            snprintf(a, sizeof a, "%lld", r->anonymised);
            snprintf(c, sizeof c, "%lld", r->completed);
            snprintf(d, sizeof d, "%lld", r->drafts);
            if (r->exported >= 0)
                snprintf(e, sizeof e, "%lld", r->exported);
            const char *row[] = {th->name, "", r->run_id, r->command, r->started_at, r->finished_at, secs,
                                 r->outcome, r->error, a, c, d, e, r->version, r->host};
            for (size_t f = 0; f < AX_ARRAY_LEN(row); f++)
                esc_csv_field(out, row[f], f + 1 == AX_ARRAY_LEN(row));
        }
    }
}

/* -- HTML ------------------------------------------------------------------------------------- */


static void html_chain(FILE *out, const struct chain_status *c)
{
    char *chain = chain_status_text(c);
    fprintf(out, "<p class=\"chain%s\">", c->state == CHAIN_BROKEN ? " bad" : "");
    esc_htmlf(out, _("History's chain: %s"), chain);
    fputs("</p>\n", out);
    free(chain);
}

/* One run, a row of the table. */
static void html_run(FILE *out, const struct tenant_history *th, size_t k)
{
    const struct audit_run *r = &th->runs[k];
    char when[40];
    report_local_time(r->started_at, when);
    fputs("<tr><td>", out);
    esc_html(out, when);
    fprintf(out, "</td><td class=\"n\">%ld</td><td>", duration(r));
    esc_html(out, r->command);
    fprintf(out, "</td><td%s>", strcmp(r->outcome, "ok") == 0 ? "" : " class=\"bad\"");
    esc_html(out, shown(r->outcome));
    if (r->error) {
        fputs("<br>", out);
        esc_html(out, shown(r->error));
    }
    if (strncmp(r->command, "hold", 4) == 0) {
        char *summary = hold_summary(r);
        fputs("<br>", out);
        esc_html(out, summary);
        free(summary);
    }
    char *changes = settings_changes(th, k);
    if (changes && *changes) {
        fputs("<br>", out);
        esc_htmlf(out, _("settings changed: %s"), changes);
    }
    free(changes);
    fprintf(out, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td>",
            r->anonymised, r->completed, r->drafts);
    if (r->exported >= 0)
        fprintf(out, "<td class=\"n\">%lld</td><td>", r->exported);
    else
        fputs("<td class=\"n\">-</td><td>", out);
    esc_html(out, r->host ? r->host : "?");
    fputs("</td><td>", out);
    esc_html(out, r->version);
    fputs("</td></tr>\n", out);
}

static void render_html(FILE *out, const struct tenant_history *ths, size_t n, const char *since)
{
    char when[40];
    report_local_time(since, when);
    fprintf(out, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n<title>", i18n_lang());
    esc_html(out, _("Anonymisation runs"));
    fputs("</title>\n<style>@page{size:A4;margin:14mm 12mm}body{font-family:'DejaVu Sans',Arial,sans-serif;"
          "font-size:10pt}table{width:100%;border-collapse:collapse;table-layout:fixed}th,td{border:1px solid #bbb;"
          "padding:2pt 4pt;text-align:left;overflow-wrap:anywhere}th{background:#eee}tr{break-inside:avoid}"
          "td.n{text-align:right}.bad{color:#b71c1c;font-weight:bold}</style>\n</head>\n<body>\n<h1>",
          out);
    esc_html(out, _("Anonymisation runs"));
    fputs("</h1>\n<p>", out);
    char *line = ax_asprintf(_("runs since %s\n"), when);
    line[strcspn(line, "\n")] = '\0'; /* a line of the text document, a paragraph here */
    esc_html(out, line);
    free(line);
    fputs("</p>\n", out);
    for (size_t i = 0; i < n; i++) {
        const struct tenant_history *th = &ths[i];
        fprintf(out, "<section class=\"tenant\" id=\"tenant-%zu\">\n<h2>", i + 1);
        esc_html(out, th->name);
        fputs("</h2>\n", out);
        if (th->error) {
            fputs("<p class=\"bad\">", out);
            esc_html(out, th->error);
            fputs("</p>\n</section>\n", out);
            continue;
        }
        html_chain(out, &th->chain);
        fputs("<table><thead><tr>", out);
        const char *cols[] = {_("Started"), _("Duration (s)"), _("Command"), _("Outcome"), _("Anonymised"),
                              _("Completed"), _("Drafts"), _("Exported"), _("Host"), _("Version")};
        for (size_t c = 0; c < AX_ARRAY_LEN(cols); c++) {
            fputs("<th>", out);
            esc_html(out, cols[c]);
            fputs("</th>", out);
        }
        fputs("</tr></thead><tbody>\n", out);
        for (size_t k = 0; k < th->nruns; k++)
            html_run(out, th, k);
        fputs("</tbody></table>\n<p>", out);
        esc_html(out, _("nights without a successful run"));
        fputs(": ", out);
        for (size_t k = 0; k < th->nmissing && k < HISTORY_MAX_NIGHTS; k++) {
            if (k)
                fputs(", ", out);
            fputs("<span class=\"bad\">", out);
            esc_html(out, th->missing[k]);
            fputs("</span>", out);
        }
        if (th->nmissing == 0)
            esc_html(out, _("none"));
        fputs("</p>\n</section>\n", out);
    }
    fputs("</body>\n</html>\n", out);
}

/* --verify: each tenant's chain, and a status that says whether they all hold. */
static int render_verify(FILE *out, const struct tenant_history *ths, size_t n, enum report_format format)
{
    int status = EXIT_OK;
    json_object *root = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        const struct tenant_history *th = &ths[i];
        char *text = th->error ? ax_strdup(th->error) : chain_status_text(&th->chain);
        if (th->error || th->chain.state == CHAIN_BROKEN)
            status = EXIT_SOME_FAILED;
        else if (th->chain.state != CHAIN_INTACT && status == EXIT_OK)
            status = EXIT_INCOMPLETE;
        if (format == REPORT_JSON) {
            json_object *o = th->error ? json_object_new_object() : chain_json(&th->chain);
            json_object_object_add(o, "tenant", jstr(th->name));
            json_object_object_add(o, "error", jstr(th->error));
            json_object_array_add(root, o);
        } else {
            char *name = esc_text(th->name), *line = esc_text(text);
            fprintf(out, "%s: %s\n", name, line);
            free(name);
            free(line);
        }
        free(text);
    }
    if (format == REPORT_JSON) {
        esc_json_print(out, root);
    }
    json_object_put(root);
    return status;
}

int cmd_history(const struct app *app, const struct history_options *opts, FILE *out)
{
    if (opts->verify && !app->cfg->audit.key.path) {
        log_error("%s: no audit_key_file: the history is not chained, there is nothing to verify (see"
                  " anonymizer.conf(5))", app->cfg->path);
        return EXIT_CONFIG;
    }
    struct tenant_history *ths = ax_calloc(app->ntenants, sizeof *ths);
    enum tenant_outcome *outcomes = ax_calloc(app->ntenants, sizeof *outcomes);
    char since[32];
    tm_format_utc(opts->since, since);
    for (size_t i = 0; i < app->ntenants; i++)
        outcomes[i] = read_tenant(app, &app->tenants[i], since, opts->since, &ths[i]);
    int verified = EXIT_OK;
    switch (opts->verify ? REPORT_NAGIOS : opts->format) {
    case REPORT_TEXT: render_text(out, ths, app->ntenants, since); break;
    case REPORT_JSON: render_json(out, ths, app->ntenants, since); break;
    case REPORT_CSV: render_csv(out, ths, app->ntenants); break;
    case REPORT_HTML: render_html(out, ths, app->ntenants, since); break;
    case REPORT_NAGIOS: verified = render_verify(out, ths, app->ntenants, opts->format); break;
    }
    fflush(out);
    for (size_t i = 0; i < app->ntenants; i++) {
        free(ths[i].error);
        audit_runs_free(ths[i].runs, ths[i].nruns);
        for (size_t k = 0; k < ths[i].nmissing; k++)
            free(ths[i].missing[k]);
        free(ths[i].missing);
        free(ths[i].first_run);
        chain_status_free(&ths[i].chain);
    }
    free(ths);
    int status = app_exit_status(outcomes, app->ntenants);
    free(outcomes);
    return opts->verify && status == EXIT_OK ? verified : status;
}
