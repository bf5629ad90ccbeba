/*
 * test_definition.c: reading w.c.s. JSON exports: modes and their legacy
 * booleans, type defaults, column names, statuses, and refusals (no field
 * ids, malformed JSON, unknown modes).
 */
#include "ax.h"
#include "definition.h"
#include "strbuf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[1024];

static int parse(const char *text, struct definition **def)
{
    err[0] = '\0';
    return def_parse(text, strlen(text), "test.json", def, err, sizeof err);
}

static const char schema_doc_example[] =
    "{\"name\": \"Demande de rendez-vous\", \"url_name\": \"demande-rdv\", \"id\": \"12\",\n"
    " \"fields\": [\n"
    "   {\"id\": \"1\", \"type\": \"string\", \"label\": \"Nom\", \"varname\": \"nom\", \"anonymise\": \"final\"},\n"
    "   {\"id\": \"2\", \"type\": \"item\", \"label\": \"Motif\", \"varname\": \"motif\", \"anonymise\": \"no\"},\n"
    "   {\"id\": \"3\", \"type\": \"page\", \"label\": \"Etape 2\"},\n"
    "   {\"id\": \"4\", \"type\": \"block\", \"label\": \"Enfants\", \"block_slug\": \"enfant\", \"anonymise\": \"final\",\n"
    "    \"schema\": {\"slug\": \"enfant\", \"fields\": [{\"id\": \"1\", \"type\": \"string\", \"varname\": \"prenom\"}]}}],\n"
    " \"workflow\": {\"name\": \"Simple\",\n"
    "   \"statuses\": [{\"id\": \"new\", \"name\": \"Nouveau\", \"endpoint\": false, \"forced_endpoint\": false},\n"
    "                {\"id\": \"done\", \"name\": \"Terminé\", \"endpoint\": true, \"forced_endpoint\": false}],\n"
    "   \"fields\": [{\"id\": \"bo1\", \"type\": \"string\", \"label\": \"Note agent\", \"anonymise\": \"final\"}]}}\n";

static void test_schema_example(void **state)
{
    (void)state;
    struct definition *def;
    assert_int_equal(parse(schema_doc_example, &def), AX_OK);
    assert_string_equal(def->slug, "demande-rdv");
    assert_string_equal(def->name, "Demande de rendez-vous");
    /* the page has no column; the block is one jsonb column; bo1 is a backoffice field */
    assert_int_equal(def->nfields, 4);
    assert_string_equal(def->fields[0].column, "f1");
    assert_int_equal(def->fields[0].anonymise, DEF_ANON_FINAL);
    assert_string_equal(def->fields[0].varname, "nom");
    assert_int_equal(def->fields[1].anonymise, DEF_ANON_NO);
    assert_string_equal(def->fields[2].column, "f4");
    assert_string_equal(def->fields[2].type, "block");
    assert_string_equal(def->fields[3].column, "fbo1");
    assert_true(def->fields[3].backoffice);
    assert_null(def->fields[3].varname);
    assert_int_equal(def->nstatuses, 2);
    assert_false(def_find_status(def, "new")->endpoint);
    assert_true(def_find_status(def, "done")->endpoint);
    assert_ptr_equal(def_find_column(def, "f4"), &def->fields[2]);
    assert_null(def_find_column(def, "f3"));
    def_free(def);
}

static void test_legacy_booleans_and_defaults(void **state)
{
    (void)state;
    struct definition *def;
    assert_int_equal(parse("{\"url_name\": \"x\", \"fields\": ["
                           "{\"id\": \"1\", \"type\": \"string\", \"anonymise\": true},"
                           "{\"id\": \"2\", \"type\": \"string\", \"anonymise\": false},"
                           "{\"id\": \"3\", \"type\": \"string\"},"
                           "{\"id\": \"4\", \"type\": \"bool\"},"
                           "{\"id\": \"5\", \"type\": \"item\"},"
                           "{\"id\": \"6\", \"type\": \"ranked-items\"},"
                           "{\"id\": \"7\", \"type\": \"items\"},"
                           "{\"id\": \"8\", \"type\": \"text\", \"anonymise\": \"intermediate\"},"
                           "{\"id\": \"9\", \"type\": \"bool\", \"anonymise\": \"final\"}"
                           "], \"workflow\": {\"statuses\": [{\"id\": \"x\", \"forced_endpoint\": true}]}}",
                           &def),
                     AX_OK);
    static const enum def_anonymise expected[] = {
        DEF_ANON_FINAL, DEF_ANON_NO, DEF_ANON_FINAL, DEF_ANON_NO, DEF_ANON_NO,
        DEF_ANON_NO,    DEF_ANON_FINAL, DEF_ANON_INTERMEDIATE, DEF_ANON_FINAL,
    };
    assert_int_equal(def->nfields, AX_ARRAY_LEN(expected));
    for (size_t i = 0; i < AX_ARRAY_LEN(expected); i++)
        assert_int_equal(def->fields[i].anonymise, expected[i]);
    assert_true(def->fields[0].anonymise_explicit);
    assert_false(def->fields[2].anonymise_explicit);
    /* forced_endpoint makes a status final */
    assert_true(def->statuses[0].endpoint);
    def_free(def);
}

static void test_column_names(void **state)
{
    (void)state;
    char *c = def_column_for_id("3fa85f64-5717-4562-B3FC-2c963f66afa6");
    assert_string_equal(c, "f3fa85f64_5717_4562_b3fc_2c963f66afa6");
    free(c);
    struct definition *def;
    assert_int_equal(parse("{\"url_name\": \"x\", \"fields\": [{\"id\": 7, \"type\": \"string\"}]}", &def), AX_OK);
    assert_string_equal(def->fields[0].column, "f7");
    def_free(def);
}

static void expect_refused(const char *text, const char *needle)
{
    struct definition *def = NULL;
    if (parse(text, &def) != AX_ERR_CONFIG)
        fail_msg("expected a refusal of %s", text);
    assert_null(def);
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, "test.json"));
    if (!strstr(err, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err, needle);
}

static void test_refusals(void **state)
{
    (void)state;
    /* without field ids, fields cannot be mapped to columns */
    expect_refused("{\"url_name\": \"x\", \"fields\": [{\"type\": \"string\", \"label\": \"Nom\"}]}",
                   "field \"Nom\" has no id");
    expect_refused("{\"url_name\": \"x\", \"fields\": [], \"workflow\": {\"fields\": [{\"type\": \"string\", \"label\": \"Note\"}]}}",
                   "field \"Note\" has no id");
    /* malformed JSON */
    expect_refused("{\"url_name\": \"x\", \"fields\": [", "malformed JSON");
    expect_refused("{\"url_name\": \"x\" \"fields\": []}", "malformed JSON");
    expect_refused("{\"url_name\": \"x\", \"fields\": []} trailing", "trailing data");
    expect_refused("", "malformed JSON");
    expect_refused("[1, 2]", "not a JSON object");
    expect_refused("{\"fields\": []}", "no \"url_name\"");
    expect_refused("{\"url_name\": \"x\"}", "no \"fields\"");
    expect_refused("{\"url_name\": \"x\", \"fields\": {}}", "\"fields\" is not a list");
    expect_refused("{\"url_name\": \"x\", \"fields\": [{\"id\": \"1\", \"type\": \"string\", \"anonymise\": \"sometimes\"}]}",
                   "unknown anonymise mode \"sometimes\"");
    expect_refused("{\"url_name\": \"x\", \"fields\": [{\"id\": \"1\", \"type\": \"string\", \"anonymise\": 1}]}",
                   "must be a string or a boolean");
    expect_refused("{\"url_name\": \"x\", \"fields\": [{\"id\": \"a-1\", \"type\": \"string\"}, {\"id\": \"A_1\", \"type\": \"string\"}]}",
                   "same column fa_1");
    expect_refused("{\"url_name\": \"x\", \"fields\": [{\"id\": \"1\"}]}", "has no type");
    /* a string "false" is not false (json-c would read it as true) */
    expect_refused("{\"url_name\": \"x\", \"fields\": [], \"workflow\": {\"statuses\": [{\"id\": \"new\","
                   " \"endpoint\": \"false\"}]}}",
                   "workflow status new: \"endpoint\" must be true or false");
    expect_refused("{\"url_name\": \"x\", \"fields\": [], \"workflow\": {\"statuses\": [{\"id\": \"new\","
                   " \"forced_endpoint\": 1}]}}",
                   "\"forced_endpoint\" must be true or false");
    /* a field whose column is another field's display column */
    expect_refused("{\"url_name\": \"x\", \"fields\": [{\"id\": \"9\", \"type\": \"item\"},"
                   " {\"id\": \"9_display\", \"type\": \"string\", \"anonymise\": \"no\"}]}",
                   "field 9_display's column f9_display is field 9's display column: ids collide");
    /* the same key twice: which one counts would be json-c's choice */
    expect_refused("{\"url_name\": \"x\", \"fields\": [{\"id\": \"1\", \"type\": \"string\","
                   " \"anonymise\": \"no\", \"anonymise\": \"final\"}]}",
                   "duplicate key \"anonymise\"");
    expect_refused("{\"url_name\": \"x\", \"url_name\": \"y\", \"fields\": []}", "duplicate key \"url_name\"");
    /* equal keys in different objects are fine */
    struct definition *def = NULL;
    const char *ok = "{\"url_name\": \"x\", \"fields\": [{\"id\": \"1\", \"type\": \"string\"},"
                     " {\"id\": \"2\", \"type\": \"string\", \"label\": \"a,\\\"b\\\"\"}]}";
    assert_int_equal(def_parse(ok, strlen(ok), "ok.json", &def, err, sizeof err), AX_OK);
    def_free(def);
}

/* 40,000 fields: the checks are not pairwise (they took 6 s), this takes well under a second. */
static void test_many_fields(void **state)
{
    (void)state;
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, "{\"url_name\": \"big\", \"fields\": [");
    for (int i = 0; i < 40000; i++)
        sb_appendf(&sb, "%s{\"id\": \"%d\", \"type\": \"string\", \"label\": \"F%d\"}", i ? ", " : "", i, i);
    sb_append(&sb, "]}");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct definition *def = NULL;
    assert_int_equal(def_parse(sb.buf, sb.len, "big.json", &def, err, sizeof err), AX_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_int_equal(def->nfields, 40000);
    double seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    /* generous for a sanitizer build on a busy machine (2 s failed once with two test runs at once);
     * quadratic was 6 s without sanitizers, several times that with them */
    assert_true(seconds < 4.0);
    def_free(def);
    sb_free(&sb);
}

static void test_set_load(void **state)
{
    (void)state;
    char dir[4096], file[4200];
    struct def_set set;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

    snprintf(dir, sizeof dir, "%s/anonymizer-defs-XXXXXX", tmp);
    assert_non_null(mkdtemp(dir));

    /* a missing directory is an empty set */
    snprintf(file, sizeof file, "%s/missing", dir);
    assert_int_equal(def_set_load(file, &set, err, sizeof err), AX_OK);
    assert_int_equal(set.n, 0);

    /* an existing directory without a definition is an empty set too (qsort of nothing: no NULL array) */
    snprintf(file, sizeof file, "%s/README", dir);
    FILE *fp = fopen(file, "w");
    fclose(fp);
    assert_int_equal(def_set_load(dir, &set, err, sizeof err), AX_OK);
    assert_int_equal(set.n, 0);
    def_set_free(&set);
    unlink(file);

    snprintf(file, sizeof file, "%s/demande-rdv.json", dir);
    fp = fopen(file, "w");
    fputs(schema_doc_example, fp);
    fclose(fp);
    assert_int_equal(def_set_load(dir, &set, err, sizeof err), AX_OK);
    assert_int_equal(set.n, 1);
    assert_non_null(def_set_find(&set, "demande-rdv"));
    assert_null(def_set_find(&set, "other"));
    def_set_free(&set);

    /* a file whose url_name is not its name is refused */
    snprintf(file, sizeof file, "%s/wrong-name.json", dir);
    fp = fopen(file, "w");
    fputs(schema_doc_example, fp);
    fclose(fp);
    assert_int_equal(def_set_load(dir, &set, err, sizeof err), AX_ERR_CONFIG);
    assert_non_null(strstr(err, "does not match the file name"));
    unlink(file);

    /* one malformed file fails the set */
    snprintf(file, sizeof file, "%s/broken.json", dir);
    fp = fopen(file, "w");
    fputs("{\"url_name\": ", fp);
    fclose(fp);
    assert_int_equal(def_set_load(dir, &set, err, sizeof err), AX_ERR_CONFIG);
    assert_non_null(strstr(err, "broken.json: malformed JSON"));
    unlink(file);

    snprintf(file, sizeof file, "%s/demande-rdv.json", dir);
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_example),
        cmocka_unit_test(test_legacy_booleans_and_defaults),
        cmocka_unit_test(test_column_names),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_many_fields),
        cmocka_unit_test(test_set_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
