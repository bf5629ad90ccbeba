/*
 * test_classify.c: classification precedence: known w.c.s. columns, then
 * configuration blank, then keep, then the definition, then unclassified.
 */
#include "ax.h"
#include "classify.h"
#include "definition.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static const char definition_json[] =
    "{\"url_name\": \"f\", \"fields\": ["
    "{\"id\": \"1\", \"type\": \"string\", \"varname\": \"nom\", \"anonymise\": \"final\"},"
    "{\"id\": \"2\", \"type\": \"item\", \"varname\": \"motif\", \"anonymise\": \"no\"},"
    "{\"id\": \"3\", \"type\": \"text\", \"varname\": \"commentaire\", \"anonymise\": \"intermediate\"},"
    "{\"id\": \"4\", \"type\": \"string\", \"varname\": \"ville\"},"
    "{\"id\": \"5\", \"type\": \"bool\", \"varname\": \"accord\"}"
    "]}";

static const char *const column_names[] = {
    "id", "status", "receipt_time", "user_id", "fts", "geoloc_base", "statistics_data", "f1", "f2", "f2_display",
    "f2_structured", "f3", "f4", "f5", "f99", "editable_by",
};

struct fixture {
    struct definition *def;
    struct column cols[AX_ARRAY_LEN(column_names)];
};

static struct fixture *setup(int with_definition)
{
    static struct fixture fx;
    char err[256];
    memset(&fx, 0, sizeof fx);
    if (with_definition)
        assert_int_equal(def_parse(definition_json, strlen(definition_json), "f.json", &fx.def, err, sizeof err),
                         AX_OK);
    for (size_t i = 0; i < AX_ARRAY_LEN(column_names); i++)
        fx.cols[i].name = (char *)column_names[i];
    return &fx;
}

static const struct column *col(const struct fixture *fx, const char *name)
{
    for (size_t i = 0; i < AX_ARRAY_LEN(column_names); i++)
        if (strcmp(fx->cols[i].name, name) == 0)
            return &fx->cols[i];
    fail_msg("no column %s", name);
    return NULL;
}

#define ASSERT_CLASS(fx, name, cls_, reason_)                                                                     \
    do {                                                                                                           \
        const struct column *c_ = col(fx, name);                                                                   \
        if (c_->cls != (cls_) || c_->reason != (reason_))                                                          \
            fail_msg("%s: got %s (%s)", name, col_class_str(c_->cls), col_reason_str(c_->reason));                 \
    } while (0)

static void test_definition_only(void **state)
{
    (void)state;
    struct fixture *fx = setup(1);
    struct cfg_resolved pol = {0};
    classify_columns(fx->cols, AX_ARRAY_LEN(column_names), fx->def, &pol);
    ASSERT_CLASS(fx, "id", COL_SYSTEM, REASON_SYSTEM);
    ASSERT_CLASS(fx, "status", COL_SYSTEM, REASON_SYSTEM);
    ASSERT_CLASS(fx, "user_id", COL_METADATA, REASON_METADATA);
    ASSERT_CLASS(fx, "fts", COL_METADATA, REASON_METADATA); /* starts with f, is not a field */
    ASSERT_CLASS(fx, "geoloc_base", COL_METADATA, REASON_METADATA);
    ASSERT_CLASS(fx, "statistics_data", COL_STATISTICS, REASON_STATISTICS);
    ASSERT_CLASS(fx, "f1", COL_BLANK, REASON_DEF_FINAL);
    ASSERT_CLASS(fx, "f2", COL_KEEP, REASON_DEF_NO);
    ASSERT_CLASS(fx, "f2_display", COL_KEEP, REASON_DEF_NO);
    /* the whole record of the chosen item: blanked unless kept by name */
    ASSERT_CLASS(fx, "f2_structured", COL_BLANK, REASON_STRUCTURED);
    ASSERT_CLASS(fx, "f3", COL_BLANK, REASON_DEF_INTERMEDIATE);
    ASSERT_CLASS(fx, "f4", COL_BLANK, REASON_DEF_FINAL); /* string default */
    ASSERT_CLASS(fx, "f5", COL_KEEP, REASON_DEF_NO);     /* bool default */
    ASSERT_CLASS(fx, "f99", COL_UNCLASSIFIED, REASON_NOT_IN_DEFINITION);
    ASSERT_CLASS(fx, "editable_by", COL_UNCLASSIFIED, REASON_UNKNOWN_COLUMN);
    assert_string_equal(col(fx, "f2_display")->field->varname, "motif");
    def_free(fx->def);
}

static void test_config_overrides_definition(void **state)
{
    (void)state;
    struct fixture *fx = setup(1);
    char *keep[] = {"nom", "4", "99", "editable_by"};
    char *blank[] = {"motif", "5"};
    struct cfg_resolved pol = {.keep = keep, .nkeep = 4, .blank = blank, .nblank = 2};
    classify_columns(fx->cols, AX_ARRAY_LEN(column_names), fx->def, &pol);
    ASSERT_CLASS(fx, "f1", COL_KEEP, REASON_CONFIG_KEEP);       /* by varname, over final */
    ASSERT_CLASS(fx, "f4", COL_KEEP, REASON_CONFIG_KEEP);       /* by id */
    ASSERT_CLASS(fx, "f2", COL_BLANK, REASON_CONFIG_BLANK);     /* over no */
    ASSERT_CLASS(fx, "f2_display", COL_BLANK, REASON_CONFIG_BLANK);
    ASSERT_CLASS(fx, "f5", COL_BLANK, REASON_CONFIG_BLANK);
    ASSERT_CLASS(fx, "f99", COL_KEEP, REASON_CONFIG_KEEP);      /* a column the definition lacks, by id */
    ASSERT_CLASS(fx, "f3", COL_BLANK, REASON_DEF_INTERMEDIATE); /* untouched by configuration */
    /* known metadata and unknown columns are not the configuration's to keep */
    ASSERT_CLASS(fx, "user_id", COL_METADATA, REASON_METADATA);
    ASSERT_CLASS(fx, "editable_by", COL_UNCLASSIFIED, REASON_UNKNOWN_COLUMN);
    def_free(fx->def);
}

static void test_blank_wins_over_keep(void **state)
{
    (void)state;
    struct fixture *fx = setup(1);
    char *keep[] = {"nom"};
    char *blank[] = {"1"};
    struct cfg_resolved pol = {.keep = keep, .nkeep = 1, .blank = blank, .nblank = 1};
    classify_columns(fx->cols, AX_ARRAY_LEN(column_names), fx->def, &pol);
    ASSERT_CLASS(fx, "f1", COL_BLANK, REASON_CONFIG_BLANK);
    def_free(fx->def);
}

static void test_without_definition(void **state)
{
    (void)state;
    struct fixture *fx = setup(0);
    char *keep[] = {"2", "motif"};
    struct cfg_resolved pol = {.keep = keep, .nkeep = 2};
    classify_columns(fx->cols, AX_ARRAY_LEN(column_names), NULL, &pol);
    ASSERT_CLASS(fx, "f1", COL_UNCLASSIFIED, REASON_NO_DEFINITION);
    ASSERT_CLASS(fx, "f2", COL_KEEP, REASON_CONFIG_KEEP);
    ASSERT_CLASS(fx, "f2_display", COL_KEEP, REASON_CONFIG_KEEP);
    ASSERT_CLASS(fx, "f5", COL_UNCLASSIFIED, REASON_NO_DEFINITION);
    ASSERT_CLASS(fx, "user_id", COL_METADATA, REASON_METADATA);

    /* a varname cannot be resolved without a definition: reported */
    const char **unmatched;
    size_t n = classify_unmatched_names(fx->cols, AX_ARRAY_LEN(column_names), NULL, &pol, &unmatched);
    assert_int_equal(n, 1);
    assert_string_equal(unmatched[0], "motif");
    free(unmatched);
}

static void test_structured_kept_by_name(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct fixture *fx = setup(1);
        char *names[] = {"f2_structured", "motif_structured", "2_structured"};
        char *keep[] = {names[i]};
        struct cfg_resolved pol = {.keep = keep, .nkeep = 1};
        classify_columns(fx->cols, AX_ARRAY_LEN(column_names), fx->def, &pol);
        ASSERT_CLASS(fx, "f2_structured", COL_KEEP, REASON_CONFIG_KEEP);
        ASSERT_CLASS(fx, "f2", COL_KEEP, REASON_DEF_NO);
        const char **unmatched;
        assert_int_equal(classify_unmatched_names(fx->cols, AX_ARRAY_LEN(column_names), fx->def, &pol, &unmatched), 0);
        free(unmatched);
        def_free(fx->def);
    }
    /* keeping the field does not keep its structured value; blanking it blanks everything */
    struct fixture *fx = setup(1);
    char *keep[] = {"motif"}, *blank[] = {"motif_structured"};
    struct cfg_resolved pol = {.keep = keep, .nkeep = 1};
    classify_columns(fx->cols, AX_ARRAY_LEN(column_names), fx->def, &pol);
    ASSERT_CLASS(fx, "f2_structured", COL_BLANK, REASON_STRUCTURED);
    ASSERT_CLASS(fx, "f2_display", COL_KEEP, REASON_CONFIG_KEEP);
    struct cfg_resolved pol2 = {.blank = blank, .nblank = 1};
    classify_columns(fx->cols, AX_ARRAY_LEN(column_names), fx->def, &pol2);
    ASSERT_CLASS(fx, "f2_structured", COL_BLANK, REASON_CONFIG_BLANK);
    ASSERT_CLASS(fx, "f2", COL_KEEP, REASON_DEF_NO);
    def_free(fx->def);
}

static const char block_json[] =
    "{\"url_name\": \"b\", \"fields\": ["
    "{\"id\": \"7\", \"type\": \"block\", \"varname\": \"enfants\", \"anonymise\": \"no\","
    " \"schema\": {\"fields\": ["
    "  {\"id\": \"1\", \"type\": \"string\", \"varname\": \"prenom\", \"anonymise\": \"final\"},"
    "  {\"id\": \"2\", \"type\": \"numeric\", \"varname\": \"age\", \"anonymise\": \"no\"},"
    "  {\"id\": \"3\", \"type\": \"item\", \"varname\": \"ecole\"},"
    "  {\"id\": \"4\", \"type\": \"string\", \"varname\": \"allergie\"}]}},"
    "{\"id\": \"8\", \"type\": \"block:adulte\", \"varname\": \"parents\", \"anonymise\": \"final\","
    " \"schema\": {\"fields\": [{\"id\": \"1\", \"type\": \"string\", \"anonymise\": \"no\"}]}}"
    "]}";

static const struct col_sub *sub(const struct column *c, const char *id)
{
    for (size_t i = 0; i < c->nsubs; i++)
        if (strcmp(c->subs[i].field->id, id) == 0)
            return &c->subs[i];
    fail_msg("no subfield %s", id);
    return NULL;
}

static void test_blocks(void **state)
{
    (void)state;
    char err[256];
    struct definition *def;
    assert_int_equal(def_parse(block_json, strlen(block_json), "b.json", &def, err, sizeof err), AX_OK);
    struct column cols[] = {{.name = "f7"}, {.name = "f7_display"}, {.name = "f8"}, {.name = "f8_display"}};
    /* by varnames and by ids, a structured value by name */
    char *keep[] = {"enfants.allergie", "7.3_structured"}, *blank[] = {"7.2"};
    struct cfg_resolved pol = {.keep = keep, .nkeep = 2, .blank = blank, .nblank = 1};
    classify_columns(cols, 4, def, &pol);
    assert_int_equal(cols[0].cls, COL_BLOCK);
    assert_int_equal(cols[0].nsubs, 4);
    assert_false(sub(&cols[0], "1")->kept);
    assert_int_equal(sub(&cols[0], "1")->reason, REASON_DEF_FINAL);
    assert_false(sub(&cols[0], "2")->kept);                  /* blanked by configuration over "no" */
    assert_int_equal(sub(&cols[0], "2")->reason, REASON_CONFIG_BLANK);
    assert_true(sub(&cols[0], "3")->kept);                   /* item: w.c.s. keeps it by default */
    assert_true(sub(&cols[0], "3")->structured_kept);
    assert_true(sub(&cols[0], "4")->kept);                   /* kept by configuration over "final" */
    assert_int_equal(sub(&cols[0], "4")->reason, REASON_CONFIG_KEEP);
    assert_int_equal(cols[1].cls, COL_BLANK);                /* computed from the removed subfields */
    assert_int_equal(cols[1].reason, REASON_BLOCK_DISPLAY);
    /* a block marked final is blanked whole, legacy type name included */
    assert_int_equal(cols[2].cls, COL_BLANK);
    assert_int_equal(cols[2].nsubs, 0);
    assert_int_equal(cols[3].cls, COL_BLANK);
    const char **unmatched;
    char *typo[] = {"enfants.prénom"};
    struct cfg_resolved pol3 = {.keep = typo, .nkeep = 1};
    assert_int_equal(classify_unmatched_names(cols, 4, def, &pol, &unmatched), 0);
    free(unmatched);
    assert_int_equal(classify_unmatched_names(cols, 4, def, &pol3, &unmatched), 1);
    free(unmatched);
    classify_columns_free(cols, 4);
    def_free(def);
}

static void test_nulled_classes(void **state)
{
    (void)state;
    assert_true(col_is_nulled(COL_METADATA));
    assert_true(col_is_nulled(COL_BLANK));
    assert_true(col_is_nulled(COL_UNCLASSIFIED));
    assert_false(col_is_nulled(COL_KEEP));
    assert_false(col_is_nulled(COL_SYSTEM));
    assert_false(col_is_nulled(COL_STATISTICS));
    assert_true(classify_is_field_column("f12"));
    assert_true(classify_is_field_column("f3fa85f64_5717"));
    assert_false(classify_is_field_column("fts"));
    assert_false(classify_is_field_column("f"));
    assert_false(classify_is_field_column("F12"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definition_only),
        cmocka_unit_test(test_config_overrides_definition),
        cmocka_unit_test(test_blank_wins_over_keep),
        cmocka_unit_test(test_without_definition),
        cmocka_unit_test(test_structured_kept_by_name),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_nulled_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
