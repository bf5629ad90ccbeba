/*
 * report_model.c: what the report model owns, and the helpers every
 * renderer shares (see report_model.h).
 */
#include "report_model.h"
#include "ax.h"
#include "classify.h"
#include "escape.h"
#include "i18n.h"
#include "pack.h"
#include "strbuf.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int report_parse_format(const char *text)
{
    static const char *const names[] = {"text", "json", "csv", "html", "nagios"};
    for (size_t i = 0; i < AX_ARRAY_LEN(names); i++)
        if (strcmp(text, names[i]) == 0)
            return (int)i;
    return -1;
}

bool report_is_field_entry(const char *column)
{
    return classify_is_field_column(column) || strchr(column, '.') != NULL;
}

char *report_period(int days)
{
    if (days % 365 == 0)
        return ax_asprintf(ngettext("%d year", "%d years", (unsigned long)(days / 365)), days / 365);
    if (days % 30 == 0)
        return ax_asprintf(ngettext("%d month", "%d months", (unsigned long)(days / 30)), days / 30);
    if (days % 7 == 0)
        return ax_asprintf(ngettext("%d week", "%d weeks", (unsigned long)(days / 7)), days / 7);
    return ax_asprintf(ngettext("%d day", "%d days", (unsigned long)days), days);
}

void report_local_time(const char *iso_utc, char buf[40])
{
    time_t t;
    if (!iso_utc || tm_parse_utc(iso_utc, &t) != 0)
        snprintf(buf, 40, "%s", iso_utc ? iso_utc : "-");
    else
        tm_format_local(t, buf);
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
    free(fr->oldest_open_inactive);
    free(fr->open_limit);
    free(fr->in_backups_until);
    free(fr->testdefs_oldest);
    free(fr->error);
    free(fr->failed_last_run);
    free(fr->evo_table);
    free(fr->vacuum_owed_since);
    free(fr->bi_limiting);
    collist_free(&fr->keep);
    collist_free(&fr->blank);
    collist_free(&fr->unclassified);
}

void report_holds_free(struct report_hold *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].slug);
        free(h[i].table);
        free(h[i].reason);
        free(h[i].created_at);
        free(h[i].until);
        free(h[i].os_user);
        free(h[i].db_role);
    }
    free(h);
}

void tenant_report_free(struct tenant_report *tr)
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
    free(tr->chain_state);
    report_holds_free(tr->holds, tr->nholds);
    free(tr->chain_text);
    free(tr->fetch_error);
    free(tr->run_in_progress);
    free(tr->audit_oldest);
    free(tr->errors_oldest);
    free(tr->unused_files);
    free(tr->audit_days);
    free(tr->site_options_error);
    for (size_t i = 0; i < tr->nowed; i++) {
        free(tr->owed_tables[i]);
        free(tr->owed_since[i]);
    }
    free(tr->owed_tables);
    free(tr->owed_since);
}


/* -- packed: a report worker's findings for one tenant ------------------------------- */

static const struct pack_field colref_fields[] = {
    PACK_FIELD(PACK_STR, struct colref, column),
    PACK_FIELD(PACK_STR, struct colref, reason),
    PACK_FIELD(PACK_STR, struct colref, label),
    PACK_FIELD(PACK_STR, struct colref, varname),
    PACK_FIELD(PACK_BOOL, struct colref, personal),
};

static const struct pack_field form_fields[] = {
    PACK_FIELD(PACK_STR, struct form_report, slug),
    PACK_FIELD(PACK_STR, struct form_report, name),
    PACK_FIELD(PACK_STR, struct form_report, table),
    PACK_FIELD(PACK_STR, struct form_report, label),
    PACK_FIELD(PACK_INT, struct form_report, kind),
    PACK_FIELD(PACK_BOOL, struct form_report, of_card),
    PACK_FIELD(PACK_BOOL, struct form_report, anonymised_by_run),
    PACK_FIELD(PACK_STR, struct form_report, definition),
    PACK_FIELD(PACK_STR, struct form_report, retention),
    PACK_FIELD(PACK_INT, struct form_report, retention_days),
    PACK_FIELD(PACK_INT, struct form_report, retention_source),
    PACK_FIELD(PACK_STR, struct form_report, open_limit),
    PACK_FIELD(PACK_INT, struct form_report, open_limit_days),
    PACK_FIELD(PACK_STR, struct form_report, cutoff),
    PACK_ARRAY(PACK_LL, struct form_report, counts, C_COUNT),
    PACK_FIELD(PACK_STR, struct form_report, oldest_pending),
    PACK_FIELD(PACK_LL, struct form_report, days_past_limit),
    PACK_FIELD(PACK_LL, struct form_report, open_inactive),
    PACK_FIELD(PACK_STR, struct form_report, oldest_open_inactive),
    PACK_ARRAY(PACK_LL, struct form_report, ages, 2 * AGE_COUNT),
    PACK_FIELD(PACK_BOOL, struct form_report, locked_known),
    PACK_FIELD(PACK_LL, struct form_report, locked_last_run),
    PACK_FIELD(PACK_BOOL, struct form_report, not_vacuumed),
    PACK_FIELD(PACK_LL, struct form_report, undated),
    PACK_FIELD(PACK_LL, struct form_report, status_unknown),
    PACK_FIELD(PACK_LL, struct form_report, status_unknown_past),
    PACK_FIELD(PACK_LL, struct form_report, open_intermediate),
    PACK_FIELD(PACK_LL, struct form_report, testdefs),
    PACK_FIELD(PACK_LL, struct form_report, testdefs_due),
    PACK_FIELD(PACK_LL, struct form_report, testdefs_past_limit),
    PACK_FIELD(PACK_STR, struct form_report, testdefs_oldest),
    PACK_FIELD(PACK_STR, struct form_report, failed_last_run),
    PACK_FIELD(PACK_STR, struct form_report, evo_table),
    PACK_FIELD(PACK_STR, struct form_report, vacuum_owed_since),
    PACK_FIELD(PACK_INT, struct form_report, formdef_id),
    PACK_FIELD(PACK_BOOL, struct form_report, bi_known),
    PACK_FIELD(PACK_LL, struct form_report, bi_smallest_group),
    PACK_FIELD(PACK_LL, struct form_report, bi_held_back),
    PACK_FIELD(PACK_LL, struct form_report, bi_published),
    PACK_FIELD(PACK_STR, struct form_report, bi_limiting),
    PACK_FIELD(PACK_LL, struct form_report, in_backups),
    PACK_FIELD(PACK_STR, struct form_report, in_backups_until),
    PACK_FIELD(PACK_LL, struct form_report, held),
    PACK_FIELD(PACK_LL, struct form_report, held_due),
    PACK_FIELD(PACK_LL, struct form_report, held_past_limit),
    PACK_FIELD(PACK_STR, struct form_report, error),
};

static const struct pack_field hold_fields[] = {
    PACK_FIELD(PACK_LL, struct report_hold, id),          PACK_FIELD(PACK_STR, struct report_hold, slug),
    PACK_FIELD(PACK_STR, struct report_hold, table),      PACK_FIELD(PACK_STR, struct report_hold, reason),
    PACK_FIELD(PACK_STR, struct report_hold, created_at), PACK_FIELD(PACK_STR, struct report_hold, until),
    PACK_FIELD(PACK_STR, struct report_hold, os_user),    PACK_FIELD(PACK_STR, struct report_hold, db_role),
    PACK_FIELD(PACK_LL, struct report_hold, submission_id), PACK_FIELD(PACK_LL, struct report_hold, age_days),
    PACK_FIELD(PACK_BOOL, struct report_hold, expired),   PACK_FIELD(PACK_BOOL, struct report_hold, over_a_year),
};

static const struct pack_field tenant_fields[] = {
    PACK_FIELD(PACK_STR, struct tenant_report, name),
    PACK_FIELD(PACK_INT, struct tenant_report, outcome),
    PACK_FIELD(PACK_STR, struct tenant_report, error),
    PACK_FIELD(PACK_STR, struct tenant_report, at),
    PACK_FIELD(PACK_STR, struct tenant_report, legal_limit),
    PACK_FIELD(PACK_STR, struct tenant_report, backups_until),
    PACK_FIELD(PACK_STR, struct tenant_report, last_run),
    PACK_FIELD(PACK_BOOL, struct tenant_report, last_run_unknown),
    PACK_FIELD(PACK_STR, struct tenant_report, run_in_progress),
    PACK_FIELD(PACK_STR, struct tenant_report, chain_state),
    PACK_FIELD(PACK_STR, struct tenant_report, chain_text),
    PACK_FIELD(PACK_BOOL, struct tenant_report, holds_unknown),
    PACK_FIELD(PACK_BOOL, struct tenant_report, fetched),
    PACK_FIELD(PACK_STR, struct tenant_report, fetch_error),
    PACK_FIELD(PACK_DBL, struct tenant_report, files_age),
    PACK_FIELD(PACK_BOOL, struct tenant_report, superuser),
    PACK_FIELD(PACK_BOOL, struct tenant_report, audit_exists),
    PACK_FIELD(PACK_BOOL, struct tenant_report, audit_read),
    PACK_FIELD(PACK_BOOL, struct tenant_report, errors_exists),
    PACK_FIELD(PACK_BOOL, struct tenant_report, errors_read),
    PACK_FIELD(PACK_LL, struct tenant_report, audit_old),
    PACK_FIELD(PACK_LL, struct tenant_report, errors_old),
    PACK_FIELD(PACK_STR, struct tenant_report, audit_oldest),
    PACK_FIELD(PACK_STR, struct tenant_report, errors_oldest),
    PACK_FIELD(PACK_BOOL, struct tenant_report, site_options_read),
    PACK_FIELD(PACK_STR, struct tenant_report, unused_files),
    PACK_FIELD(PACK_STR, struct tenant_report, audit_days),
    PACK_FIELD(PACK_STR, struct tenant_report, site_options_error),
};

static void pack_collist(struct strbuf *out, const struct collist *l)
{
    pack_size(out, l->n);
    for (size_t i = 0; i < l->n; i++)
        pack_fields(out, &l->items[i], colref_fields, AX_ARRAY_LEN(colref_fields));
}

static void unpack_collist(struct unpack *in, struct collist *l)
{
    l->n = unpack_size(in);
    l->items = ax_calloc(l->n + 1, sizeof *l->items);
    for (size_t i = 0; i < l->n; i++)
        unpack_fields(in, &l->items[i], colref_fields, AX_ARRAY_LEN(colref_fields));
}

void tenant_report_pack(struct strbuf *out, const struct tenant_report *tr)
{
    pack_fields(out, tr, tenant_fields, AX_ARRAY_LEN(tenant_fields));
    pack_size(out, tr->nforms);
    for (size_t i = 0; i < tr->nforms; i++) {
        const struct form_report *fr = &tr->forms[i];
        pack_fields(out, fr, form_fields, AX_ARRAY_LEN(form_fields));
        pack_collist(out, &fr->keep);
        pack_collist(out, &fr->blank);
        pack_collist(out, &fr->unclassified);
    }
    pack_size(out, tr->nholds);
    for (size_t i = 0; i < tr->nholds; i++)
        pack_fields(out, &tr->holds[i], hold_fields, AX_ARRAY_LEN(hold_fields));
    pack_size(out, tr->nowed);
    for (size_t i = 0; i < tr->nowed; i++) {
        const struct pack_field owed[] = {{PACK_STR, 0, 1}};
        pack_fields(out, &tr->owed_tables[i], owed, 1);
        pack_fields(out, &tr->owed_since[i], owed, 1);
    }
}

bool tenant_report_unpack(const char *data, size_t len, struct tenant_report *tr)
{
    struct unpack in = {.p = data, .left = len};
    memset(tr, 0, sizeof *tr);
    unpack_fields(&in, tr, tenant_fields, AX_ARRAY_LEN(tenant_fields));
    tr->nforms = unpack_size(&in);
    tr->forms = ax_calloc(tr->nforms + 1, sizeof *tr->forms);
    for (size_t i = 0; i < tr->nforms; i++) {
        struct form_report *fr = &tr->forms[i];
        unpack_fields(&in, fr, form_fields, AX_ARRAY_LEN(form_fields));
        unpack_collist(&in, &fr->keep);
        unpack_collist(&in, &fr->blank);
        unpack_collist(&in, &fr->unclassified);
    }
    tr->nholds = unpack_size(&in);
    tr->holds = ax_calloc(tr->nholds + 1, sizeof *tr->holds);
    for (size_t i = 0; i < tr->nholds; i++)
        unpack_fields(&in, &tr->holds[i], hold_fields, AX_ARRAY_LEN(hold_fields));
    tr->nowed = unpack_size(&in);
    tr->owed_tables = ax_calloc(tr->nowed + 1, sizeof *tr->owed_tables);
    tr->owed_since = ax_calloc(tr->nowed + 1, sizeof *tr->owed_since);
    for (size_t i = 0; i < tr->nowed; i++) {
        const struct pack_field owed[] = {{PACK_STR, 0, 1}};
        unpack_fields(&in, &tr->owed_tables[i], owed, 1);
        unpack_fields(&in, &tr->owed_since[i], owed, 1);
    }
    return !in.bad && in.left == 0;
}

bool report_bi_text(const struct report *r, const struct form_report *fr, char *buf, size_t n)
{
    bool mostly_held = fr->bi_held_back > fr->bi_published;
    int used;
    if (fr->bi_smallest_group >= 0)
        used = snprintf(buf, n, _("%lld published, smallest group %lld (k = %d), %lld held back"), fr->bi_published,
                        fr->bi_smallest_group, r->min_k, fr->bi_held_back);
    else
        used = snprintf(buf, n, _("%lld published, %lld held back"), fr->bi_published, fr->bi_held_back);
    if (mostly_held && used >= 0 && (size_t)used < n)
        snprintf(buf + used, n - (size_t)used, _("; more than half held back, the field that makes the groups small: %s"),
                 fr->bi_limiting ? fr->bi_limiting : _("none (too few rows)"));
    return mostly_held;
}

bool report_vacuum_text(const struct report *r, const struct tenant_report *tr, char *buf, size_t n)
{
    buf[0] = '\0';
    if (tr->nowed == 0)
        return false;
    const char *oldest = tr->owed_since[0];
    for (size_t k = 1; k < tr->nowed; k++)
        if (strcmp(tr->owed_since[k], oldest) < 0)
            oldest = tr->owed_since[k];
    time_t since, at;
    bool late = tm_parse_utc(oldest, &since) == 0 && tm_parse_utc(r->at, &at) == 0 &&
                at - since > (time_t)VACUUM_WARN_DAYS * 86400;
    char when[64];
    report_local_time(oldest, when);
    snprintf(buf, n,
             late ? ngettext("VACUUM owed by %zu table since %s, more than %d days: old row versions keep personal"
                             " data until it is vacuumed",
                             "VACUUM owed by %zu tables since %s, more than %d days: old row versions keep personal"
                             " data until they are vacuumed",
                             (unsigned long)tr->nowed)
                  : ngettext("maintenance pending: VACUUM owed by %zu table since %s (autovacuum or an"
                             " administrator's VACUUM pays it; a warning after %d days)",
                             "maintenance pending: VACUUM owed by %zu tables since %s (autovacuum or an"
                             " administrator's VACUUM pays it; a warning after %d days)",
                             (unsigned long)tr->nowed),
             tr->nowed, when, VACUUM_WARN_DAYS);
    return late;
}

const char *report_superuser_text(void)
{
    return _("connected as a superuser: a trigger any table owner adds would run with superuser rights; use the roles"
             " \"anonymizer grants\" prints (anonymizer(1), PRIVILEGES)");
}

char *report_personal_kept(const struct form_report *fr)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < fr->keep.n; i++) {
        const struct colref *c = &fr->keep.items[i];
        if (!c->personal)
            continue;
        char *col = esc_text(c->column), *var = esc_text(c->varname);
        sb_appendf(&sb, "%s%s", sb.len ? ", " : "", col);
        if (c->varname)
            sb_appendf(&sb, " [%s]", var);
        free(col);
        free(var);
    }
    if (!sb.len) {
        sb_free(&sb);
        return NULL;
    }
    return sb_finish(&sb);
}

/* One of w.c.s.'s logs: its old rows, or why they are not counted. */
static void wcs_log_line(char *buf, size_t n, const char *name, bool exists, bool read, long long old,
                         const char *oldest, const char *governs)
{
    char when[40];
    if (!exists)
        buf[0] = '\0';
    else if (!read)
        snprintf(buf, n, _("%s: not counted (this role may not read it, or the tenant has no wcs_all_forms;"
                           " \"anonymizer grants\" grants SELECT to the report role)"),
                 name);
    else if (old == 0)
        snprintf(buf, n, _("%s: nothing older than the legal limit about anonymised submissions (%s)"), name, governs);
    else {
        report_local_time(oldest, when);
        snprintf(buf, n,
                 ngettext("%s: %lld row older than the legal limit about anonymised submissions, the oldest of %s;"
                          " kept by w.c.s.'s own retention (%s)",
                          "%s: %lld rows older than the legal limit about anonymised submissions, the oldest of %s;"
                          " kept by w.c.s.'s own retention (%s)",
                          (unsigned long)old),
                 name, old, when, governs);
    }
}

void report_wcs_logs_text(const struct tenant_report *tr, char *audit, size_t na, char *errors, size_t ne)
{
    char governs[256];
    if (tr->audit_days)
        snprintf(governs, sizeof governs,
                 _("agents' e-mails and object names; w.c.s. deletes rows older than its site option"
                   " audit-retention-days, here %s"),
                 tr->audit_days);
    else
        snprintf(governs, sizeof governs, "%s",
                 _("agents' e-mails and object names; w.c.s. deletes rows older than its site option"
                   " audit-retention-days, default 365"));
    wcs_log_line(audit, na, _("w.c.s. audit log"), tr->audit_exists, tr->audit_read, tr->audit_old, tr->audit_oldest,
                 governs);
    wcs_log_line(errors, ne, _("w.c.s. error log"), tr->errors_exists, tr->errors_read, tr->errors_old,
                 tr->errors_oldest,
                 _("values in its context and messages; kept until an agent deletes the error, then 30 days;"
                   " wcs_logs = \"anonymise\" blanks them"));
}

void report_files_text(const struct tenant_report *tr, char *buf, size_t n)
{
    if (!tr->site_options_read)
        buf[0] = '\0';
    else if (tr->site_options_error)
        snprintf(buf, n, _("files of blanked fields: site-options.cfg not read (%s)"), tr->site_options_error);
    else if (!tr->unused_files || strcmp(tr->unused_files, "remove") == 0)
        snprintf(buf, n, "%s",
                 _("files of blanked fields: removed by w.c.s.'s nightly cleanup (02:00) once nothing refers to them"
                   " (unused-files-behaviour: remove); never on remote storage"));
    else if (strcmp(tr->unused_files, "move") == 0)
        snprintf(buf, n, "%s",
                 _("files of blanked fields: kept by w.c.s. under unused-files/ (unused-files-behaviour: move): TO"
                   " REVIEW"));
    else
        snprintf(buf, n, _("files of blanked fields: unused-files-behaviour is \"%s\": w.c.s. does not remove them:"
                           " TO REVIEW"),
                 tr->unused_files);
}
