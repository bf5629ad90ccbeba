/*
 * test_render.c: the report's renderers from a struct report built here (no
 * database): text, JSON, CSV, HTML and the Nagios check, each compared with
 * tests/unit/golden/render.<format> (UPDATE_GOLDEN=1 rewrites them); and a
 * tenant's findings, packed as a report worker hands them back and read
 * again, render exactly the same.
 */
#include "ax.h"
#include "config.h"
#include "pack.h"
#include "report_model.h"
#include "timeutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_col(struct collist *l, const char *column, const char *reason, const char *label, const char *varname)
{
    l->items = ax_reallocarray(l->items, l->n + 1, sizeof *l->items);
    l->items[l->n++] = (struct colref){ax_strdup(column), ax_strdup(reason), label ? ax_strdup(label) : NULL,
                                      varname ? ax_strdup(varname) : NULL, false};
}

static char *sdup(const char *s)
{
    return s ? ax_strdup(s) : NULL;
}

/* A form past the limit, with every count, and a card. */
static void forms(struct tenant_report *tr)
{
    tr->nforms = 2;
    tr->forms = ax_calloc(2, sizeof *tr->forms);
    struct form_report *f = &tr->forms[0];
    *f = (struct form_report){.slug = sdup("demande-rdv"), .name = sdup("Demande de rendez-vous"),
                              .table = sdup("formdata_1_demande_rdv"), .label = sdup("form demande-rdv"),
                              .kind = FORM_KIND_FORM, .anonymised_by_run = true,
                              .definition = sdup("t.example.org/demande-rdv.json"), .retention = sdup("30 days"),
                              .retention_days = 30, .retention_source = CFG_SRC_GLOBAL, .open_limit = sdup("1 year"),
                              .open_limit_days = 365, .cutoff = sdup("2036-05-02T00:00:00Z"),
                              .counts = {8, 1, 2, 1, 2, 1}, .oldest_pending = sdup("2036-02-01T08:30:00Z"),
                              .days_past_limit = 31, .open_inactive = 1,
                              .oldest_open_inactive = sdup("2035-03-01T09:00:00Z"), .ages = {{1, 2, 1}, {0, 1, 2}},
                              .locked_known = true, .locked_last_run = 2, .formdef_id = 1, .bi_known = true,
                              .bi_smallest_group = 5, .bi_held_back = 3, .bi_published = 40, .in_backups = 2,
                              .in_backups_until = sdup("2036-08-18"), .failed_last_run = sdup("submission 4: 22P02"),
                              .held = 2, .held_due = 1, .held_past_limit = 1};
    add_col(&f->keep, "f2", "definition: anonymise no", "Motif", "motif");
    add_col(&f->blank, "f1", "definition: anonymise final", "Nom", "nom");
    add_col(&f->unclassified, "f99", "not in the definition", NULL, NULL);
    struct form_report *c = &tr->forms[1];
    *c = (struct form_report){.slug = sdup("eleves"), .name = sdup("Élèves, \"inscrits\""),
                              .table = sdup("carddata_5_eleves"), .label = sdup("card eleves"), .kind = FORM_KIND_CARD,
                              .retention = sdup("90 days"), .retention_days = 90, .retention_source = CFG_SRC_DEFAULT,
                              .open_limit = sdup("1 year"), .open_limit_days = 365, .cutoff = sdup("2036-03-03T00:00:00Z"),
                              .counts = {3, 0, 0, 1, 0, 0}, .formdef_id = 5, .bi_smallest_group = -1};
}

static void build(struct report *r)
{
    memset(r, 0, sizeof *r);
    r->generated_at = sdup("2036-06-01T00:00:00Z");
    r->at = sdup("2036-06-01T00:00:00Z");
    r->backup_retention = "4 months";
    r->timezone = "Europe/Paris";
    r->min_k = 5;
    r->ntenants = 2;
    r->tenants = ax_calloc(2, sizeof *r->tenants);
    struct tenant_report *t = &r->tenants[0];
    *t = (struct tenant_report){.name = sdup("t.example.org"), .outcome = TENANT_OK, .at = sdup(r->at),
                                .legal_limit = sdup("2036-03-03 00:00:00+00"), .backups_until = sdup("2036-09-29"),
                                .last_run = sdup("2036-05-31T02:15:07Z"), .files_age = -1,
                                .chain_state = sdup("intact"),
                                .chain_text = sdup("intact since 2036-01-01T02:15:07+00:00: 151 entries sealed and linked")};
    forms(t);
    t->nholds = 2;
    t->holds = ax_calloc(3, sizeof *t->holds);
    t->holds[0] = (struct report_hold){.id = 3, .slug = sdup("demande-rdv"), .table = sdup("formdata_1_demande_rdv"),
                                       .reason = sdup("Recours TA n°2036-118"), .created_at = sdup("2036-04-01T09:00:00Z"),
                                       .os_user = sdup("root (sudo by dpo)"), .db_role = sdup("anonymizer"),
                                       .submission_id = 12, .age_days = 61};
    t->holds[1] = (struct report_hold){.id = 1, .slug = sdup("demande-rdv"), .table = sdup("formdata_1_demande_rdv"),
                                       .reason = sdup("enquête"), .created_at = sdup("2035-01-01T09:00:00Z"),
                                       .until = sdup("2036-05-01T00:00:00Z"), .os_user = sdup("dpo"),
                                       .db_role = sdup("anonymizer"), .age_days = 517, .expired = true,
                                       .over_a_year = true};
    t->nowed = 1;
    t->owed_tables = ax_calloc(2, sizeof(char *));
    t->owed_since = ax_calloc(2, sizeof(char *));
    t->owed_tables[0] = sdup("formdata_1_demande_rdv");
    t->owed_since[0] = sdup("2036-05-31T02:15:05Z");
    r->tenants[1] = (struct tenant_report){.name = sdup("down.example.org"), .outcome = TENANT_UNREACHABLE,
                                           .error = sdup("cannot connect: no such host"), .files_age = -1};
    r->verdict = VERDICT_NOT_COMPLIANT;
}

static void destroy(struct report *r)
{
    for (size_t i = 0; i < r->ntenants; i++)
        tenant_report_free(&r->tenants[i]);
    free(r->tenants);
    free(r->generated_at);
    free(r->at);
}

static char *render(const struct report *r, const struct cfg *cfg, enum report_format format)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    struct nagios_options no = {.warning_days = 10, .stale_hours = 36};
    switch (format) {
    case REPORT_TEXT: report_render_text(out, r, cfg); break;
    case REPORT_HTML: report_render_html(out, r, cfg); break;
    case REPORT_JSON: report_render_json(out, r); break;
    case REPORT_CSV: report_render_csv(out, r); break;
    case REPORT_NAGIOS: fprintf(out, "state %d\n", report_render_nagios(out, r, &no)); break;
    }
    fclose(out);
    return text;
}

static void check_golden(const char *name, const char *text)
{
    char *path = ax_asprintf("%s/%s", GOLDEN_DIR, name);
    const char *update = getenv("UPDATE_GOLDEN");
    if (update && *update) {
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
    }
    size_t len;
    char why[128];
    char *want = cfg_read_file(path, 16 * 1024 * 1024, &len, why, sizeof why);
    if (!want)
        fail_msg("no golden file %s (UPDATE_GOLDEN=1 writes it)", path);
    if (strcmp(want, text) != 0)
        fail_msg("%s differs from what the renderer wrote (UPDATE_GOLDEN=1 rewrites it, for review)", path);
    free(want);
    free(path);
}

static void test_renderers(void **state)
{
    (void)state;
    static const struct {
        enum report_format format;
        const char *golden;
    } cases[] = {{REPORT_TEXT, "render.txt"}, {REPORT_JSON, "render.json"}, {REPORT_CSV, "render.csv"},
                 {REPORT_HTML, "render.html"}, {REPORT_NAGIOS, "render.nagios"}};
    struct cfg cfg = {.backup_retention_text = "4 months", .timezone = "Europe/Paris"};
    struct report r;
    tm_set_timezone("Europe/Paris");
    build(&r);
    for (size_t i = 0; i < AX_ARRAY_LEN(cases); i++) {
        char *text = render(&r, &cfg, cases[i].format);
        check_golden(cases[i].golden, text);
        free(text);
    }
    destroy(&r);
    tm_set_timezone(NULL);
}

static void test_packed_findings_render_the_same(void **state)
{
    (void)state;
    struct cfg cfg = {.backup_retention_text = "4 months"};
    struct report r, back;
    build(&r);
    build(&back);
    for (size_t i = 0; i < r.ntenants; i++) {
        struct strbuf sb;
        sb_init(&sb);
        tenant_report_pack(&sb, &r.tenants[i]);
        tenant_report_free(&back.tenants[i]);
        assert_true(tenant_report_unpack(sb.buf, sb.len, &back.tenants[i]));
        /* a short read is refused, never half a tenant */
        struct tenant_report cut;
        assert_false(tenant_report_unpack(sb.buf, sb.len - 1, &cut));
        tenant_report_free(&cut);
        sb_free(&sb);
    }
    for (enum report_format f = REPORT_TEXT; f <= REPORT_NAGIOS; f++) {
        char *a = render(&r, &cfg, f), *b = render(&back, &cfg, f);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    destroy(&r);
    destroy(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renderers),
        cmocka_unit_test(test_packed_findings_render_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
