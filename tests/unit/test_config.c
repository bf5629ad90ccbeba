/*
 * test_config.c: loading, validation errors (one line naming file, line and
 * setting), the retention cap at every level, and precedence.
 */
#include "ax.h"
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[4096];
static char err[1024];

/* Writes text to a private temporary file; mode applies afterwards. */
static const char *write_conf(const char *text, mode_t mode)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof path, "%s/anonymizer-test-XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
    return path;
}

static int load(const char *text, struct cfg **cfg)
{
    err[0] = '\0';
    int rc = cfg_load(write_conf(text, 0600), cfg, err, sizeof err);
    unlink(path);
    return rc;
}

/* Asserts that text fails with a message containing every needle. */
static void expect_error(const char *text, const char *needle1, const char *needle2)
{
    struct cfg *cfg = NULL;
    int rc = load(text, &cfg);
    if (rc != AX_ERR_CONFIG)
        fail_msg("expected a configuration error for:\n%s\ngot %d", text, rc);
    assert_null(cfg);
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, path));
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err, needle1, needle2 ? needle2 : "");
}

/* Asserts that text loads. */
static void expect_ok_text(const char *text)
{
    struct cfg *cfg = NULL;
    if (load(text, &cfg) != AX_OK)
        fail_msg("expected to load:\n%s\ngot: %s", text, err);
    cfg_free(cfg);
}

static const char example[] =
    "retention = \"90 days\";\n"
    "drafts = \"delete\";\n"
    "open_submissions = \"skip\";\n"
    "batch_size = 500;\n"
    "lock_timeout = \"2s\";\n"
    "statement_timeout = \"10min\";\n"
    "vacuum = false;\n"
    "log_syslog = true;\n"
    "schemas = \"/srv/schemas\";\n"
    "tenants = (\n"
    "  { name = \"demarches.example.org\"; conninfo = \"dbname=wcs_demarches\"; retention = \"60 days\"; },\n"
    "  { name = \"other.example.org\"; conninfo = \"service=other\"; drafts = \"anonymise\"; }\n"
    ");\n"
    "forms = (\n"
    "  { tenant = \"*\"; slug = \"demande-rdv\"; retention = \"30 days\"; keep = [\"motif\"]; blank = [\"commentaire\"]; },\n"
    "  { tenant = \"other.example.org\"; slug = \"demande-rdv\"; retention = \"2 weeks\"; keep = [\"3\"]; }\n"
    ");\n";

static void test_example_loads(void **state)
{
    (void)state;
    struct cfg *cfg;
    assert_int_equal(load(example, &cfg), AX_OK);
    assert_int_equal(cfg->batch_size, 500);
    assert_int_equal(cfg->lock_timeout_ms, 2000);
    assert_int_equal(cfg->statement_timeout_ms, 600000);
    assert_false(cfg->vacuum);
    assert_true(cfg->log_syslog);
    assert_string_equal(cfg->schemas, "/srv/schemas");
    assert_int_equal(cfg->ntenants, 2);
    assert_string_equal(cfg->tenants[0].name, "demarches.example.org");
    assert_int_equal(cfg->nforms, 2);
    assert_int_equal(cfg->forms[0].nkeep, 1);
    assert_string_equal(cfg->forms[0].blank[0], "commentaire");
    cfg_free(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg *cfg;
    assert_int_equal(load("tenants = ( { name = \"a\"; conninfo = \"dbname=a\"; } );\n", &cfg), AX_OK);
    assert_int_equal(cfg->batch_size, 2000);
    assert_int_equal(cfg->lock_timeout_ms, 2000);
    assert_int_equal(cfg->statement_timeout_ms, 600000);
    assert_true(cfg->vacuum);
    assert_false(cfg->log_syslog);
    assert_string_equal(cfg->schemas, "/var/lib/anonymizer/schemas");
    assert_null(cfg->bi.conninfo);
    assert_string_equal(cfg->bi.schema, "anonymised");
    /* defaults that publish (anonymizer-bi(7)) */
    assert_string_equal(cfg->bi.time_precision, "day");
    assert_string_equal(cfg->bi.date_precision, "month");
    assert_int_equal(cfg->bi.min_k, 5);
    assert_int_equal(cfg->bi.min_l, 1);
    assert_int_equal(cfg->bi.nsensitive, 0);
    assert_true(cfg->bi.generalise);
    assert_null(cfg->bi.reader_role);
    assert_null(cfg->bi.loader_role);
    assert_int_equal(cfg->backup_retention_days, 120);
    cfg_free(cfg);
    assert_int_equal(load("tenants = ( { name = \"a\"; conninfo = \"dbname=a\"; } );\n"
                          "bi = { conninfo = \"dbname=bi\"; min_k = 3; min_l = 2; sensitive = [\"motif\", \"4\"];"
                          " generalise = false; reader_role = \"Metabase Readers\"; loader_role = \"etl\";"
                          " date_precision = \"year\"; };\n",
                          &cfg),
                     AX_OK);
    assert_int_equal(cfg->bi.min_k, 3);
    assert_int_equal(cfg->bi.min_l, 2);
    assert_int_equal(cfg->bi.nsensitive, 2);
    assert_string_equal(cfg->bi.sensitive[1], "4");
    assert_false(cfg->bi.generalise);
    assert_string_equal(cfg->bi.reader_role, "Metabase Readers");
    assert_string_equal(cfg->bi.loader_role, "etl");
    assert_string_equal(cfg->bi.date_precision, "year");
    struct cfg_resolved r;
    cfg_resolve(cfg, &cfg->tenants[0], "x", &r);
    assert_int_equal(r.retention_days, 90);
    assert_int_equal(r.retention_source, CFG_SRC_DEFAULT);
    assert_int_equal(r.drafts, CFG_DRAFTS_DELETE);
    assert_int_equal(r.open_submissions, CFG_OPEN_SKIP);
    cfg_free(cfg);
}

static void test_precedence(void **state)
{
    (void)state;
    struct cfg *cfg;
    struct cfg_resolved r;
    assert_int_equal(load(example, &cfg), AX_OK);
    const struct cfg_tenant *dem = cfg_find_tenant(cfg, "demarches.example.org");
    const struct cfg_tenant *other = cfg_find_tenant(cfg, "other.example.org");

    /* tenant beats global */
    cfg_resolve(cfg, dem, "autre-formulaire", &r);
    assert_int_equal(r.retention_days, 60);
    assert_int_equal(r.retention_source, CFG_SRC_TENANT);
    assert_int_equal(r.drafts_source, CFG_SRC_GLOBAL);
    assert_int_equal(r.nkeep, 0);

    /* a "*" form entry beats the tenant */
    cfg_resolve(cfg, dem, "demande-rdv", &r);
    assert_int_equal(r.retention_days, 30);
    assert_int_equal(r.retention_source, CFG_SRC_FORM);
    assert_int_equal(r.nkeep, 1);
    assert_string_equal(r.keep[0], "motif");
    assert_int_equal(r.nblank, 1);

    /* the tenant's own form entry beats "*", setting by setting */
    cfg_resolve(cfg, other, "demande-rdv", &r);
    assert_int_equal(r.retention_days, 14);
    assert_string_equal(r.retention_text, "2 weeks");
    assert_int_equal(r.nkeep, 1);
    assert_string_equal(r.keep[0], "3");
    assert_int_equal(r.nblank, 1); /* inherited from the "*" entry */
    assert_int_equal(r.drafts, CFG_DRAFTS_ANONYMISE);
    assert_int_equal(r.drafts_source, CFG_SRC_TENANT);
    cfg_free(cfg);
}

/* A configuration with retention set at the global (0), tenant (1) or form (2) level. */
static void level_text(char *text, size_t len, size_t level, const char *retention)
{
    if (level == 0)
        snprintf(text, len, "retention = \"%s\";\ntenants = ( { name = \"a\"; conninfo = \"dbname=a\"; } );\n",
                 retention);
    else if (level == 1)
        snprintf(text, len, "tenants = ( { name = \"a\"; conninfo = \"dbname=a\";\n retention = \"%s\"; } );\n",
                 retention);
    else
        snprintf(text, len,
                 "tenants = ( { name = \"a\"; conninfo = \"dbname=a\"; } );\n"
                 "forms = ( { tenant = \"*\"; slug = \"s\";\n retention = \"%s\"; } );\n",
                 retention);
}

static void test_retention_cap_edges(void **state)
{
    (void)state;
    static const char *const ok[] = {"90 days", "3 months", "12 weeks"};
    static const char *const too_long[] = {"91 days", "13 weeks", "4 months"};
    char text[512];
    for (size_t l = 0; l < 3; l++) {
        for (size_t i = 0; i < AX_ARRAY_LEN(ok); i++) {
            struct cfg *cfg;
            level_text(text, sizeof text, l, ok[i]);
            assert_int_equal(load(text, &cfg), AX_OK);
            cfg_free(cfg);
        }
        for (size_t i = 0; i < AX_ARRAY_LEN(too_long); i++) {
            level_text(text, sizeof text, l, too_long[i]);
            /* the line of the setting, its name, and the value */
            expect_error(text, l == 0 ? ":1: retention:" : l == 1 ? ":2: tenants[0].retention:" : ":3: forms[0].retention:",
                         too_long[i]);
            assert_non_null(strstr(err, "retention"));
            assert_non_null(strstr(err, "three months"));
        }
    }
}

static void test_errors(void **state)
{
    (void)state;
    const char *t = "tenants = ( { name = \"a\"; conninfo = \"dbname=a\"; } );\n";
    char text[1024];

#define WITH(extra) (snprintf(text, sizeof text, "%s%s", t, extra), text)
    expect_error(WITH("retension = \"30 days\";\n"), ":2: retension: unknown setting", NULL);
    expect_error("tenants = ( { name = \"a\"; conninfo = \"dbname=a\"; colour = 1; } );\n", "tenants[0].colour", "unknown setting");
    expect_error(WITH("forms = ( { tenant = \"*\"; slug = \"s\"; kept = [\"x\"]; } );\n"), "kept", "unknown setting");
    expect_error(WITH("retention = 90;\n"), "retention: must be a string", NULL);
    expect_error(WITH("batch_size = \"big\";\n"), "batch_size: must be an integer", NULL);
    expect_error(WITH("batch_size = 0;\n"), "batch_size: 0 is out of range", NULL);
    expect_error(WITH("batch_size = 1000000;\n"), "batch_size: 1000000 is out of range", NULL);
    expect_error(WITH("vacuum = \"yes\";\n"), "vacuum: must be true or false", NULL);
    expect_error(WITH("drafts = \"keep\";\n"), "drafts", "\"keep\" is not one of");
    expect_error(WITH("open_submissions = \"always\";\n"), "open_submissions", "not one of");
    expect_error(WITH("lock_timeout = \"2 fortnights\";\n"), "lock_timeout", "invalid duration");
    /* one tenant per database: two would keep each other off (the lock) every night */
    expect_error("tenants = ( { name = \"a\"; conninfo = \"host=db1 dbname=wcs_a\"; },\n"
                 "  { name = \"b\"; conninfo = \"dbname=wcs_a   host=db1 user=other\"; } );\n",
                 "tenants \"a\" and \"b\" name the same database", NULL);
    expect_ok_text("tenants = ( { name = \"a\"; conninfo = \"host=db1 dbname=wcs_a\"; },\n"
                   "  { name = \"b\"; conninfo = \"host=db2 dbname=wcs_a\"; } );\n");
    /* past 64 bits: named as written, not as libconfig's -1 */
    expect_error(WITH("batch_size = 9223372036854775808;\n"), "9223372036854775808: integer out of range", NULL);
    expect_error(WITH("jobs = 0x1FFFFFFFFFFFFFFFF;\n"), "integer out of range", NULL);
    /* 0 would wait forever (lock_timeout), or stop at once (max_runtime) */
    expect_error(WITH("lock_timeout = \"0s\";\n"), "lock_timeout", "must be more than 0");
    expect_error(WITH("max_runtime = \"0s\";\n"), "max_runtime", "must be more than 0");
    /* one syntax for every duration: these are fine */
    expect_ok_text(WITH("max_runtime = \"4 hours\"; lock_timeout = \"2 seconds\"; retention = \"90d\";\n"));
    expect_error(WITH("retention = \"ninety days\";\n"), "retention", "invalid period");
    expect_error(WITH("forms = ( { tenant = \"nobody\"; slug = \"s\"; } );\n"), "unknown tenant \"nobody\"", ":2:");
    expect_error(WITH("forms = ( { tenant = \"*\"; slug = \"s\"; keep = [\"x\"]; blank = [\"x\"]; } );\n"), "both in keep and in blank", NULL);
    expect_error(WITH("forms = ( { tenant = \"*\"; slug = \"s\"; keep = \"x\"; } );\n"), "keep: must be a list", NULL);
    expect_error(WITH("forms = ( { tenant = \"*\"; slug = \"s\"; }, { tenant = \"*\"; slug = \"s\"; } );\n"), "configured twice", NULL);
    expect_error(WITH("forms = ( { slug = \"s\"; } );\n"), "missing \"tenant\"", NULL);
    expect_error("tenants = ( { name = \"a\"; } );\n", "missing \"conninfo\"", NULL);
    expect_error("tenants = ( { name = \"a\"; conninfo = \"dbname=a\"; }, { name = \"a\"; conninfo = \"dbname=b\"; } );\n", "listed twice", NULL);
    expect_error("tenants = ( { name = \"../etc\"; conninfo = \"dbname=a\"; } );\n", "cannot name a directory", NULL);
    expect_error("tenants = ( { name = \"a\"; conninfo = \"dbname\"; } );\n", "not a valid connection string", NULL);
    expect_error("tenants = ( { name = \"a\";\n conninfo = ; } );\n", ":2: syntax error", NULL);
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; schema = \"Anonymised; DROP\"; };\n"), "bi.schema",
                 "not a lower-case SQL identifier");
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; time_precision = \"second\"; };\n"), "bi.time_precision",
                 "not one of");
    expect_error(WITH("bi = { schema = \"x\"; };\n"), "bi: missing \"conninfo\"", NULL);
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; host = \"x\"; };\n"), "bi.host: unknown setting", NULL);
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; min_k = 0; };\n"), "bi.min_k: 0 is out of range", NULL);
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; min_k = 1001; };\n"), "bi.min_k", "out of range");
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; harmless = \"motif\"; };\n"), "bi.harmless", "a list");
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; sensitive = [\"a\"]; harmless = [\"b\"]; };\n"),
                 "bi.harmless", "given twice");
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; min_l = 2; };\n"), "bi", "sensitive names none");
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; date_precision = \"week\"; };\n"), "bi.date_precision",
                 "not one of");
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; reader_role = \"r\"; loader_role = \"r\"; };\n"), "bi",
                 "the same role");
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; generalise = \"yes\"; };\n"), "bi.generalise", NULL);
    expect_error(WITH("bi = { conninfo = \"dbname=bi\"; reader_role = \"\"; };\n"), "bi.reader_role", NULL);
    expect_error(WITH("backup_retention = \"forever\";\n"), "backup_retention", "invalid period");
    expect_error(WITH("jobs = 0;\n"), "jobs: 0 is out of range", NULL);
    expect_error(WITH("jobs = 65;\n"), "jobs: 65 is out of range", NULL);
    expect_error(WITH("max_runtime = \"4 eons\";\n"), "max_runtime", "invalid duration");
    expect_error(WITH("discover = ( { conninfo = \"host=db1\"; } );\n"), "missing \"databases\"", NULL);
    expect_error(WITH("discover = ( { databases = \"wcs_%\"; } );\n"), "missing \"conninfo\"", NULL);
    expect_error(WITH("discover = ( { conninfo = \"host=db1\"; databases = \"wcs_%\"; pattern = \"x\"; } );\n"),
                 "discover[0].pattern: unknown setting", NULL);
#undef WITH
}

static void test_discovery_defers_form_tenants(void **state)
{
    (void)state;
    struct cfg *cfg;
    /* with discovery, a forms entry may name a tenant found later */
    assert_int_equal(load("discover = ( { conninfo = \"host=db1\"; databases = \"wcs_%\"; exclude = [\"wcs_t\"]; } );\n"
                          "forms = ( { tenant = \"wcs_ville\"; slug = \"s\"; } );\n",
                          &cfg),
                     AX_OK);
    assert_int_equal(cfg->ntenants, 0);
    assert_int_equal(cfg->ndiscover, 1);
    assert_string_equal(cfg->discover[0].exclude[0], "wcs_t");
    assert_non_null(cfg_unknown_form_tenant(cfg));
    cfg_add_discovered(cfg, "wcs_ville", "host=db1", "wcs_ville", NULL, 1);
    assert_null(cfg_unknown_form_tenant(cfg));
    assert_int_equal(cfg_find_tenant(cfg, "wcs_ville")->discovered, 1);
    assert_int_equal(cfg->jobs, 1);
    assert_int_equal(cfg->max_runtime_ms, 0);
    cfg_free(cfg);
}

static void test_password_permissions(void **state)
{
    (void)state;
    static const char text[] = "tenants = ( { name = \"a\"; conninfo = \"dbname=a password=s3cret\"; } );\n";
    struct cfg *cfg = NULL;

    /* readable by others: refused, and the password is not repeated */
    assert_int_equal(cfg_load(write_conf(text, 0644), &cfg, err, sizeof err), AX_ERR_CONFIG);
    unlink(path);
    assert_null(cfg);
    assert_non_null(strstr(err, "readable by other users"));
    assert_null(strstr(err, "s3cret"));

    /* private: accepted */
    assert_int_equal(cfg_load(write_conf(text, 0600), &cfg, err, sizeof err), AX_OK);
    unlink(path);
    cfg_free(cfg);

    /* no password: any mode */
    assert_int_equal(cfg_load(write_conf("tenants = ( { name = \"a\"; conninfo = \"service=a\"; } );\n", 0644), &cfg,
                              err, sizeof err),
                     AX_OK);
    unlink(path);
    cfg_free(cfg);
}

/* The commented template shipped in etc/ loads as it is. */
static void test_shipped_example_loads(void **state)
{
    (void)state;
    struct cfg *cfg = NULL;
    assert_int_equal(cfg_load(SOURCE_DIR "/etc/anonymizer.conf", &cfg, err, sizeof err), AX_OK);
    cfg_free(cfg);
}

/* Cards are registers: their retention is not capped, and an entry opts a card in. */
static void test_cards(void **state)
{
    (void)state;
    struct cfg *cfg = NULL;
    struct cfg_resolved r;
    const char *text = "tenants = ( { name = \"t\"; conninfo = \"dbname=x\"; } );\n"
                       "cards = ( { tenant = \"*\"; slug = \"registre\"; retention = \"5 years\"; keep = [\"nom\"]; } );\n";
    assert_int_equal(load(text, &cfg), AX_OK);
    assert_true(cfg_resolve_card(cfg, &cfg->tenants[0], "registre", &r));
    assert_int_equal(r.retention_days, 5 * 365);
    assert_int_equal(r.nkeep, 1);
    assert_false(cfg_resolve_card(cfg, &cfg->tenants[0], "autre", &r));
    assert_int_equal(r.retention_days, 90);
    /* the forms entries are not the cards' */
    cfg_resolve(cfg, &cfg->tenants[0], "registre", &r);
    assert_int_equal(r.nkeep, 0);
    cfg_free(cfg);
    expect_error("tenants = ( { name = \"t\"; conninfo = \"dbname=x\"; } );\n"
                 "forms = ( { tenant = \"*\"; slug = \"f\"; retention = \"5 years\"; } );\n",
                 "forms[0].retention", "three months");
    expect_error("tenants = ( { name = \"t\"; conninfo = \"dbname=x\"; } );\n"
                 "cards = ( { tenant = \"nobody\"; slug = \"f\"; } );\n",
                 "unknown tenant \"nobody\"", NULL);
}

static void test_missing_file(void **state)
{
    (void)state;
    struct cfg *cfg = NULL;
    assert_int_equal(cfg_load("/nonexistent/anonymizer.conf", &cfg, err, sizeof err), AX_ERR_IO);
    assert_non_null(strstr(err, "/nonexistent/anonymizer.conf"));
    assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_retention_cap_edges),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_discovery_defers_form_tenants),
        cmocka_unit_test(test_password_permissions),
        cmocka_unit_test(test_shipped_example_loads),
        cmocka_unit_test(test_cards),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
