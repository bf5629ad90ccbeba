/*
 * report_data.c: the report for programs: JSON (one document) and CSV
 * (RFC 4180, one row per tenant and form).  English keys, UTC times: a
 * contract, whose keys are only ever added.
 */
#include "ax.h"
#include "escape.h"
#include "report_model.h"
#include "hold.h"
#include "strbuf.h"
#include "timeutil.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- JSON -------------------------------------------------------------------------- */

static json_object *jstr(const char *s)
{
    return esc_json_string(s);
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
        json_object_object_add(o, "personal_by_nature", json_object_new_boolean(l->items[i].personal));
        json_object_array_add(a, o);
    }
    return a;
}

static json_object *json_definitions(const struct tenant_report *tr)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "source", json_object_new_string(tr->fetched ? "fetched" : "files"));
    json_object_object_add(d, "url", jstr(tr->url));
    json_object_object_add(d, "fetch_error", jstr(tr->fetch_error));
    json_object_object_add(d, "age_days", tr->fetch_error && tr->files_age >= 0
                                              ? json_object_new_int64((long long)((tr->files_age + 43200) / 86400))
                                              : NULL);
    return d;
}

static const char *verdict_str(enum verdict v)
{
    switch (v) {
    case VERDICT_COMPLIANT: return "COMPLIANT";
    case VERDICT_INCOMPLETE: return "INCOMPLETE";
    case VERDICT_NOT_COMPLIANT: return "NOT COMPLIANT";
    }
    return "?";
}

/* Personal data by age: {"done": [within, to_limit, past], "not_done": [...]} */
static json_object *json_ages(const struct form_report *fr)
{
    json_object *o = json_object_new_object();
    static const char *const names[2] = {"done", "not_done"};
    for (int k = 0; k < 2; k++) {
        json_object *a = json_object_new_array();
        for (int i = 0; i < AGE_COUNT; i++)
            json_object_array_add(a, json_object_new_int64(fr->ages[k][i]));
        json_object_object_add(o, names[k], a);
    }
    return o;
}

static json_object *json_form(const struct tenant_report *tr, const struct form_report *fr)
{
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
    json_object_object_add(f, "retention_source", jstr(cfg_source_str(fr->retention_source)));
    json_object_object_add(f, "cutoff", jstr(fr->cutoff));
    static const char *const names[C_COUNT] = {"submissions", "anonymised", "due", "drafts_due", "open_past_cutoff",
                                               "incomplete"};
    for (int c = 0; c < C_COUNT; c++)
        json_object_object_add(f, names[c], fr->error ? NULL : json_object_new_int64(fr->counts[c]));
    json_object_object_add(f, "oldest_pending", jstr(fr->oldest_pending));
    json_object_object_add(f, "days_past_limit", json_object_new_int64(fr->days_past_limit));
    json_object_object_add(f, "locked_last_run", fr->locked_known ? json_object_new_int64(fr->locked_last_run) : NULL);
    json_object_object_add(f, "backups_until", jstr(pending_of(fr) > 0 ? tr->backups_until : NULL));
    json_object_object_add(f, "anonymised_in_backups", json_object_new_int64(fr->in_backups));
    json_object_object_add(f, "anonymised_in_backups_until", jstr(fr->in_backups_until));
    json_object *cols = json_object_new_object();
    json_object_object_add(cols, "keep", json_collist(&fr->keep));
    json_object_object_add(cols, "blank", json_collist(&fr->blank));
    json_object_object_add(cols, "unclassified", json_collist(&fr->unclassified));
    json_object_object_add(f, "columns", cols);
    json_object_object_add(f, "open_limit", jstr(fr->open_limit));
    json_object_object_add(f, "open_inactive", fr->error ? NULL : json_object_new_int64(fr->open_inactive));
    json_object_object_add(f, "oldest_open_inactive", jstr(fr->oldest_open_inactive));
    json_object_object_add(f, "personal_data_by_age", fr->error ? NULL : json_ages(fr));
    json_object_object_add(f, "vacuumed_by_last_run",
                           fr->locked_known ? json_object_new_boolean(!fr->not_vacuumed) : NULL);
    json_object_object_add(f, "bi_smallest_group",
                           fr->bi_known && fr->bi_smallest_group >= 0 ? json_object_new_int64(fr->bi_smallest_group) : NULL);
    json_object_object_add(f, "bi_held_back", fr->bi_known ? json_object_new_int64(fr->bi_held_back) : NULL);
    json_object_object_add(f, "bi_published", fr->bi_known ? json_object_new_int64(fr->bi_published) : NULL);
    json_object_object_add(f, "bi_mostly_held_back",
                           fr->bi_known ? json_object_new_boolean(fr->bi_held_back > fr->bi_published) : NULL);
    json_object_object_add(f, "bi_limiting_field",
                           fr->bi_known && fr->bi_limiting ? jstr(fr->bi_limiting) : NULL);
    json_object_object_add(f, "failed_in_last_run", jstr(fr->failed_last_run));
    json_object_object_add(f, "vacuum_owed_since", jstr(fr->vacuum_owed_since));
    json_object_object_add(f, "undated", fr->error ? NULL : json_object_new_int64(fr->undated));
    json_object_object_add(f, "status_unknown", fr->error ? NULL : json_object_new_int64(fr->status_unknown));
    json_object_object_add(f, "status_unknown_past_limit",
                           fr->error ? NULL : json_object_new_int64(fr->status_unknown_past));
    json_object_object_add(f, "open_with_intermediate_fields",
                           fr->error ? NULL : json_object_new_int64(fr->open_intermediate));
    json_object_object_add(f, "test_definitions", fr->error ? NULL : json_object_new_int64(fr->testdefs));
    json_object_object_add(f, "test_definitions_due", fr->error ? NULL : json_object_new_int64(fr->testdefs_due));
    json_object_object_add(f, "test_definitions_past_limit",
                           fr->error ? NULL : json_object_new_int64(fr->testdefs_past_limit));
    json_object_object_add(f, "test_definitions_oldest", jstr(fr->testdefs_oldest));
    /* under a legal hold: apart from the verdict */
    json_object_object_add(f, "held", fr->error ? NULL : json_object_new_int64(fr->held));
    json_object_object_add(f, "held_due", fr->error ? NULL : json_object_new_int64(fr->held_due));
    json_object_object_add(f, "held_past_limit", fr->error ? NULL : json_object_new_int64(fr->held_past_limit));
    return f;
}

void report_render_json(FILE *out, const struct report *r)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "generated_at", jstr(r->generated_at));
    json_object_object_add(root, "at", jstr(r->at));
    json_object_object_add(root, "retention_cap", jstr(RETENTION_CAP_TEXT));
    json_object_object_add(root, "compliant", json_object_new_boolean(r->verdict == VERDICT_COMPLIANT));
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
        json_object *forms = json_object_new_array();
        for (size_t k = 0; k < tr->nforms; k++)
            json_object_array_add(forms, json_form(tr, &tr->forms[k]));
        json_object_object_add(t, "forms", forms);
        /* keys are only ever added, at the end */
        json_object_object_add(t, "definitions", json_definitions(tr));
        json_object_object_add(t, "run_in_progress_since", jstr(tr->run_in_progress));
        json_object *owed = json_object_new_array();
        for (size_t k = 0; k < tr->nowed; k++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "table", jstr(tr->owed_tables[k]));
            json_object_object_add(o, "since", jstr(tr->owed_since[k]));
            json_object_array_add(owed, o);
        }
        json_object_object_add(t, "vacuum_owed", owed);
        json_object_object_add(t, "superuser", json_object_new_boolean(tr->superuser));
        /* w.c.s.'s own logs: null when the tenant has no such table or the role may not read it */
        json_object *logs = json_object_new_object();
        json_object_object_add(logs, "audit_old_rows", tr->audit_read ? json_object_new_int64(tr->audit_old) : NULL);
        json_object_object_add(logs, "audit_oldest", jstr(tr->audit_oldest));
        json_object_object_add(logs, "errors_old_rows", tr->errors_read ? json_object_new_int64(tr->errors_old) : NULL);
        json_object_object_add(logs, "errors_oldest", jstr(tr->errors_oldest));
        json_object_object_add(t, "wcs_logs", logs);
        json_object *so = NULL;
        if (tr->site_options_read) {
            so = json_object_new_object();
            json_object_object_add(so, "unused_files_behaviour", jstr(tr->unused_files));
            json_object_object_add(so, "audit_retention_days", jstr(tr->audit_days));
            json_object_object_add(so, "error", jstr(tr->site_options_error));
        }
        json_object_object_add(t, "wcs_site_options", so);
        json_object *chain = json_object_new_object();
        json_object_object_add(chain, "state", jstr(tr->chain_state));
        json_object_object_add(chain, "text", jstr(tr->chain_text));
        json_object_object_add(t, "history_chain", chain);
        json_object_object_add(t, "legal_holds", tr->holds_unknown ? NULL : hold_list_json(tr->holds, tr->nholds));
        json_object_array_add(tenants, t);
    }
    json_object_object_add(root, "tenants", tenants);
    json_object_object_add(root, "verdict", jstr(verdict_str(r->verdict)));
    json_object_object_add(root, "at_in_future", json_object_new_boolean(r->at_future));
    json_object_object_add(root, "timezone", jstr(r->timezone));
    json_object_object_add(root, "bi_min_k", r->min_k ? json_object_new_int(r->min_k) : NULL);
    json_object_object_add(root, "bi_error", jstr(r->bi_error));
    esc_json_print(out, root);
    json_object_put(root);
}

/* -- CSV (RFC 4180) ---------------------------------------------------------------- */

static void csv_int_at(FILE *out, bool known, long long v, bool last)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    esc_csv_field(out, known ? buf : "", last);
}

static void csv_int(FILE *out, bool known, long long v)
{
    csv_int_at(out, known, v, false);
}

/*
 * Space-separated names; a name is a catalog identifier and may hold a
 * space, a backslash or a control character: those are written \x20, \\,
 * \xNN, so that the list splits on spaces unambiguously.
 */
static char *csv_columns(const struct collist *l, bool fields_only)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < l->n; i++) {
        if (fields_only && !report_is_field_entry(l->items[i].column))
            continue;
        if (sb.len)
            sb_appendc(&sb, ' ');
        for (const unsigned char *p = (const unsigned char *)l->items[i].column; *p; p++) {
            if (*p == '\\')
                sb_append(&sb, "\\\\");
            else if (*p <= 0x20 || *p == 0x7f)
                sb_appendf(&sb, "\\x%02x", *p);
            else
                sb_appendc(&sb, (char)*p);
        }
    }
    return sb_finish(&sb);
}

void report_render_csv(FILE *out, const struct report *r)
{
    static const char *const header[] = {
        "tenant", "tenant_status", "tenant_error", "last_run", "slug", "name", "table", "form_error", "retention",
        "retention_source", "cutoff", "submissions", "anonymised", "due", "drafts_due", "open_past_cutoff",
        "incomplete", "oldest_pending", "days_past_limit", "locked_last_run", "backups_until", "anonymised_in_backups",
        "anonymised_in_backups_until", "kept_fields",
        "blanked_fields", "unclassified_columns", "kind", "open_inactive", "oldest_open_inactive",
        "vacuumed_by_last_run", "bi_smallest_group", "bi_held_back", "failed_in_last_run",
        "undated", "status_unknown", "status_unknown_past_limit", "open_with_intermediate_fields", "test_definitions",
        "test_definitions_due", "test_definitions_past_limit", "held", "held_past_limit",
    };
    for (size_t i = 0; i < AX_ARRAY_LEN(header); i++)
        esc_csv_field(out, header[i], i + 1 == AX_ARRAY_LEN(header));
    for (size_t i = 0; i < r->ntenants; i++) {
        const struct tenant_report *tr = &r->tenants[i];
        const char *status = tr->outcome == TENANT_OK ? "ok" : "error";
        const char *last = tr->last_run_unknown ? "unknown" : tr->last_run ? tr->last_run : "never";
        if (tr->nforms == 0) {
            esc_csv_field(out, tr->name, false);
            esc_csv_field(out, status, false);
            esc_csv_field(out, tr->error, false);
            esc_csv_field(out, tr->outcome == TENANT_UNREACHABLE ? "" : last, false);
            for (size_t k = 4; k < AX_ARRAY_LEN(header); k++)
                esc_csv_field(out, "", k + 1 == AX_ARRAY_LEN(header));
            continue;
        }
        for (size_t k = 0; k < tr->nforms; k++) {
            const struct form_report *fr = &tr->forms[k];
            bool ok = fr->error == NULL;
            esc_csv_field(out, tr->name, false);
            esc_csv_field(out, status, false);
            esc_csv_field(out, tr->error, false);
            esc_csv_field(out, last, false);
            esc_csv_field(out, fr->slug, false);
            esc_csv_field(out, fr->name, false);
            esc_csv_field(out, fr->table, false);
            esc_csv_field(out, fr->error, false);
            esc_csv_field(out, fr->retention, false);
            esc_csv_field(out, cfg_source_str(fr->retention_source), false);
            esc_csv_field(out, fr->cutoff, false);
            for (int c = 0; c < C_COUNT; c++)
                csv_int(out, ok, fr->counts[c]);
            esc_csv_field(out, fr->oldest_pending, false);
            csv_int(out, ok, fr->days_past_limit);
            csv_int(out, fr->locked_known, fr->locked_last_run);
            esc_csv_field(out, pending_of(fr) > 0 ? tr->backups_until : NULL, false);
            csv_int(out, ok, fr->in_backups);
            esc_csv_field(out, fr->in_backups_until, false);
            char *kept = csv_columns(&fr->keep, true), *blanked = csv_columns(&fr->blank, true),
                 *uncl = csv_columns(&fr->unclassified, false);
            esc_csv_field(out, kept, false);
            esc_csv_field(out, blanked, false);
            esc_csv_field(out, uncl, false);
            esc_csv_field(out, form_kind_str(fr->kind), false);
            csv_int(out, ok, fr->open_inactive);
            esc_csv_field(out, fr->oldest_open_inactive, false);
            esc_csv_field(out, !fr->locked_known ? NULL : fr->not_vacuumed ? "false" : "true", false);
            csv_int(out, fr->bi_known && fr->bi_smallest_group >= 0, fr->bi_smallest_group);
            char held[32] = "";
            if (fr->bi_known)
                snprintf(held, sizeof held, "%lld", fr->bi_held_back);
            esc_csv_field(out, held, false);
            esc_csv_field(out, fr->failed_last_run, false);
            csv_int(out, ok, fr->undated);
            csv_int(out, ok, fr->status_unknown);
            csv_int(out, ok, fr->status_unknown_past);
            csv_int(out, ok, fr->open_intermediate);
            csv_int(out, ok, fr->testdefs);
            csv_int(out, ok, fr->testdefs_due);
            csv_int(out, ok, fr->testdefs_past_limit);
            csv_int(out, ok, fr->held);
            csv_int_at(out, ok, fr->held_past_limit, true);
            free(kept);
            free(blanked);
            free(uncl);
        }
    }
}


