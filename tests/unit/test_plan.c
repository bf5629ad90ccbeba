/*
 * test_plan.c: golden SQL.  For fixed forms (a definition with kept, blanked
 * and unclassified fields, a block and a backoffice field, a table name that
 * needs quoting), every statement plan.c generates is written out and
 * compared with tests/unit/golden/<name>.sql, so that a change to the SQL
 * shows up in review as a diff of SQL.  UPDATE_GOLDEN=1 rewrites the files.
 *
 * Identifiers are quoted by libpq's PQescapeIdentifier on a connection that
 * never reached a server (quoting needs no server).  The golden files are
 * exactly what is sent, and every statement passes the checker of
 * tests/sqlcheck (every operator, function and table qualified).
 */
#include "audit.h"
#include "ax.h"
#include "classify.h"
#include "config.h"
#include "definition.h"
#include "plan.h"
#include "plan_export.h"
#include "sqlcheck.h"
#include "strbuf.h"
#include "tenant.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char definition_json[] =
    "{\"name\": \"L'été \\\"spécial\\\"\", \"url_name\": \"ete-special\", \"id\": \"7\","
    " \"id_template\": \"{{ form_var_nom }}-{{ form_number_raw }}\", \"fields\": ["
    "{\"id\": \"1\", \"type\": \"string\", \"label\": \"Nom\", \"varname\": \"nom\", \"anonymise\": \"final\"},"
    "{\"id\": \"2\", \"type\": \"item\", \"label\": \"Motif\", \"varname\": \"motif\", \"anonymise\": \"no\"},"
    "{\"id\": \"3\", \"type\": \"text\", \"label\": \"Commentaire\", \"varname\": \"commentaire\"},"
    "{\"id\": \"4\", \"type\": \"numeric\", \"label\": \"Montant\", \"varname\": \"montant\", \"anonymise\": \"no\"},"
    "{\"id\": \"5\", \"type\": \"page\", \"label\": \"Page 2\"},"
    "{\"id\": \"9\", \"type\": \"block\", \"label\": \"Enfants\", \"varname\": \"enfants\", \"anonymise\": \"no\","
    " \"block_slug\": \"enfant\", \"schema\": {\"slug\": \"enfant\", \"fields\": ["
    "  {\"id\": \"1\", \"type\": \"string\", \"label\": \"Prénom\", \"varname\": \"prenom\", \"anonymise\": \"final\"},"
    "  {\"id\": \"2\", \"type\": \"numeric\", \"label\": \"Âge\", \"varname\": \"age\", \"anonymise\": \"no\"}]}}"
    "], \"workflow\": {\"statuses\": ["
    "{\"id\": \"new\", \"name\": \"Nouveau\", \"endpoint\": false},"
    "{\"id\": \"done\", \"name\": \"Terminé\", \"endpoint\": true}],"
    " \"fields\": [{\"id\": \"bo1\", \"type\": \"string\", \"label\": \"Note\", \"anonymise\": \"final\"}]}}";

/* The columns w.c.s. creates for that form (tests/lib/wcs.py), plus one the definition does not know. */
static const struct {
    const char *name, *type;
    bool notnull;
} table_columns[] = {
    {"id", "integer", true}, {"user_id", "character varying", false},
    {"receipt_time", "timestamp with time zone", false}, {"anonymised", "timestamp with time zone", false},
    {"status", "character varying", false}, {"page_no", "character varying", false},
    {"workflow_data", "bytea", false}, {"id_display", "character varying", false}, {"fts", "tsvector", false},
    {"criticality_level", "integer", true}, {"test_result_id", "integer", false},
    {"last_update_time", "timestamp with time zone", false}, {"digests", "jsonb", false},
    {"user_label", "character varying", false}, {"submission_context", "bytea", false},
    {"submission_agent_id", "character varying", false}, {"submission_channel", "character varying", false},
    {"backoffice_submission", "boolean", false}, {"workflow_roles", "bytea", false},
    {"workflow_roles_array", "text[]", false}, {"concerned_roles_array", "text[]", false},
    {"actions_roles_array", "text[]", false}, {"tracking_code", "character varying", false},
    {"workflow_merged_roles_dict", "jsonb", false}, {"prefilling_data", "bytea", false},
    {"page_id", "character varying", false}, {"statistics_data", "jsonb", false},
    {"relations_data", "jsonb", false}, {"uuid", "uuid", true},
    {"workflow_processing_timestamp", "timestamp with time zone", false},
    {"workflow_processing_afterjob_id", "character varying", false}, {"auto_geoloc", "point", false},
    {"f1", "character varying", false}, {"f2", "character varying", false},
    {"f2_display", "character varying", false}, {"f2_structured", "bytea", false}, {"f3", "text", false},
    {"f4", "numeric", false}, {"f9", "jsonb", false}, {"f9_display", "character varying", false},
    {"fbo1", "character varying", false}, {"f99", "character varying", false}, {"geoloc_base", "point", false},
};

static const char *const allforms_personal[] = {
    "user_id", "user_label", "user_name", "submission_agent_id", "digests", "fts", "concerned_roles_array",
    "actions_roles_array", "geoloc_base_x", "geoloc_base_y", "relations_data",
};

struct fixture {
    struct db db; /* never connected: only quotes */
    struct definition *def;
    struct cfg_form cfg_form;
    struct form form;
    struct plan_tenant facts;
};

static void build(struct fixture *fx, bool with_definition, bool anonymise_open_and_drafts)
{
    char err[256];
    memset(fx, 0, sizeof *fx);
    fx->db.conn = PQconnectdb("host=/nonexistent-anonymizer-unit-test connect_timeout=1");
    if (with_definition)
        assert_int_equal(def_parse(definition_json, strlen(definition_json), "ete-special.json", &fx->def, err,
                                   sizeof err),
                         AX_OK);
    fx->facts.has_allforms = true;
    fx->facts.has_tracking_codes = true;
    fx->facts.has_search_tokens = true;
    fx->facts.allforms_has_id_display = true;
    for (size_t i = 0; i < AX_ARRAY_LEN(allforms_personal); i++) {
        fx->facts.allforms_personal = ax_reallocarray(fx->facts.allforms_personal, i + 1, sizeof(char *));
        fx->facts.allforms_personal[i] = db_quote_ident(&fx->db, allforms_personal[i]);
    }
    fx->facts.nallforms_personal = AX_ARRAY_LEN(allforms_personal);

    struct form *f = &fx->form;
    f->kind = FORM_KIND_FORM;
    f->anonymise = true;
    f->formdef_id = 7;
    f->table = ax_strdup("formdata_7_Été \"spécial\"");
    f->evo_table = ax_strdup("formdata_7_Été \"spécial\"_evolutions");
    f->q_table = db_quote_ident(&fx->db, f->table);
    f->q_evo = db_quote_ident(&fx->db, f->evo_table);
    f->slug = ax_strdup("ete-special");
    f->name = ax_strdup("L'été \"spécial\"");
    f->def = fx->def;
    /* the configuration keeps the comment and blanks the amount */
    static char *keep[] = {"commentaire"}, *blank[] = {"4"};
    f->pol.retention_days = 30;
    f->pol.retention_text = "30 days";
    f->pol.keep = keep;
    f->pol.nkeep = 1;
    f->pol.blank = blank;
    f->pol.nblank = 1;
    if (anonymise_open_and_drafts) {
        f->pol.open_submissions = CFG_OPEN_ANONYMISE;
        f->pol.drafts = CFG_DRAFTS_ANONYMISE;
    }
    f->ncols = AX_ARRAY_LEN(table_columns);
    f->cols = ax_calloc(f->ncols, sizeof *f->cols);
    for (size_t i = 0; i < f->ncols; i++) {
        f->cols[i].name = ax_strdup(table_columns[i].name);
        f->cols[i].qname = db_quote_ident(&fx->db, table_columns[i].name);
        f->cols[i].type = ax_strdup(table_columns[i].type);
        f->cols[i].notnull = table_columns[i].notnull;
    }
    classify_columns(f->cols, f->ncols, f->def, &f->pol);
    plan_prepare(f, &fx->facts);
}

static void destroy(struct fixture *fx)
{
    form_free(&fx->form);
    for (size_t i = 0; i < fx->facts.nallforms_personal; i++)
        free(fx->facts.allforms_personal[i]);
    free(fx->facts.allforms_personal);
    def_free(fx->def);
    PQfinish(fx->db.conn);
}

static void section(struct strbuf *out, const char *title, char *sql)
{
    char *problems;
    if (sql && sql_check(sql, &problems) > 0)
        fail_msg("%s: a statement the checker refuses:\n%s", title, problems);
    if (sql)
        free(problems);
    sb_appendf(out, "-- %s\n%s;\n\n", title, sql ? sql : "-- (none)");
    free(sql);
}

/* Everything plan.c generates for the form, in one document. */
static char *render(const struct form *f)
{
    struct strbuf out;
    sb_init(&out);
    const struct form_sql *s = &f->sql;
    sb_appendf(&out, "-- generated by tests/unit/test_plan.c: every statement of form %s, table %s\n\n", f->slug,
               f->q_table);
    sb_appendf(&out, "-- final statuses ($3): %s\n-- kept statistics keys ($4): %s\n-- kept block keys ($8): %s\n\n",
               s->endpoints ? s->endpoints : "(none: from wcs_all_forms)", s->stat_keys, s->block_keys);
    section(&out, "what the run selects (predicate \"work\", batches)", ax_strdup(s->pred.work));
    section(&out, "batch: final anonymisation", plan_batch(f, PLAN_ANONYMISE));
    section(&out, "batch: range left when locked", plan_batch_range(f, PLAN_ANONYMISE));
    section(&out, "batch: wcs_all_forms after anonymisation", plan_batch_allforms(f, PLAN_ANONYMISE));
    section(&out, "batch: delete expired drafts", plan_batch(f, PLAN_DELETE_DRAFTS));
    section(&out, "batch: drafts range left when locked", plan_batch_range(f, PLAN_DELETE_DRAFTS));
    section(&out, "batch: wcs_all_forms after drafts", plan_batch_allforms(f, PLAN_DELETE_DRAFTS));
    section(&out, "work left (progress, time budget)", plan_count_work(f));
    section(&out, "search tokens no row matches any more", plan_purge_tokens(f));
    section(&out, "report: one pass over the table", plan_report(f, PLAN_HELD_ANY));
    struct plan_field *fields;
    size_t nfields = plan_export_fields(f, &fields);
    sb_append(&out, "-- export: fields (key = column)\n");
    for (size_t i = 0; i < nfields; i++)
        sb_appendf(&out, "--   %s = %s\n", fields[i].key, fields[i].col->qname);
    sb_append(&out, "\n");
    section(&out, "export: settings", ax_strdup(plan_export_settings_sql));
    section(&out, "export: first export", plan_export_copy(f, fields, nfields, false, NULL));
    char *changes = audit_changed_ids_sql(f->q_table);
    section(&out, "export: incremental", plan_export_copy(f, fields, nfields, true, changes));
    free(changes);
    plan_fields_free(fields, nfields);
    return sb_finish(&out);
}

/* Compares with the golden file, naming the first line that differs. */
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
    char *want = cfg_read_file(path, 64 * 1024 * 1024, &len, why, sizeof why);
    if (!want)
        fail_msg("no golden file %s (UPDATE_GOLDEN=1 writes it)", path);
    if (strcmp(want, text) != 0) {
        int line = 1;
        const char *a = want, *b = text;
        while (*a && *a == *b) {
            if (*a == '\n')
                line++;
            a++, b++;
        }
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        fail_msg("%s differs from the generated SQL at line %d:\n  golden:    %.*s\n  generated: %.*s\n"
                 "(review the change, then UPDATE_GOLDEN=1 rewrites the file)",
                 path, line, (int)(ea ? ea - a : (long)strlen(a)), a, (int)(eb ? eb - b : (long)strlen(b)), b);
    }
    free(want);
    free(path);
}

static void test_form_with_definition(void **state)
{
    (void)state;
    struct fixture fx;
    build(&fx, true, false);
    assert_null(fx.form.sql.unsupported);
    char *text = render(&fx.form);
    check_golden("plan.sql", text);
    free(text);
    destroy(&fx);
}

static void test_form_without_definition(void **state)
{
    (void)state;
    struct fixture fx;
    build(&fx, false, false);
    char *text = render(&fx.form);
    check_golden("plan-no-definition.sql", text);
    free(text);
    destroy(&fx);
}

static void test_open_and_drafts_anonymised(void **state)
{
    (void)state;
    struct fixture fx;
    build(&fx, true, true);
    char *text = render(&fx.form);
    check_golden("plan-open-drafts-anonymised.sql", text);
    free(text);
    destroy(&fx);
}

/* The three commands select the same rows: one predicate text, two styles of the same tests. */
static void test_one_predicate_for_every_command(void **state)
{
    (void)state;
    struct fixture fx;
    build(&fx, true, false);
    char *report = plan_report(&fx.form, PLAN_HELD_ANY), *batch = plan_batch(&fx.form, PLAN_ANONYMISE);
    struct form_preds scan;
    plan_preds(&fx.form, plan_dollar_params, PLAN_SCAN, &scan);
    assert_non_null(strstr(batch, fx.form.sql.pred.work));
    assert_non_null(strstr(report, scan.dirty));
    assert_non_null(strstr(report, scan.final));
    /* the styles differ only in how related rows are probed */
    assert_string_equal(scan.due_base, fx.form.sql.pred.due_base);
    form_preds_free(&scan);
    free(report);
    free(batch);
    destroy(&fx);
}

/* A NOT NULL column that cannot be classified makes the form unsupported: no SQL that would fail half-way. */
static void test_not_null_unclassified_is_unsupported(void **state)
{
    (void)state;
    struct fixture fx;
    build(&fx, true, false);
    form_sql_free(&fx.form.sql);
    for (size_t i = 0; i < fx.form.ncols; i++)
        if (strcmp(fx.form.cols[i].name, "f99") == 0)
            fx.form.cols[i].notnull = true;
    plan_prepare(&fx.form, &fx.facts);
    assert_non_null(fx.form.sql.unsupported);
    assert_non_null(strstr(fx.form.sql.unsupported, "f99"));
    destroy(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_with_definition),
        cmocka_unit_test(test_form_without_definition),
        cmocka_unit_test(test_open_and_drafts_anonymised),
        cmocka_unit_test(test_one_predicate_for_every_command),
        cmocka_unit_test(test_not_null_unclassified_is_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
