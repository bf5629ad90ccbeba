/*
 * test_report.c: the report's command-line values.
 */
#include "ax.h"
#include "report.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void test_formats(void **state)
{
    (void)state;
    assert_int_equal(report_parse_format("text"), REPORT_TEXT);
    assert_int_equal(report_parse_format("json"), REPORT_JSON);
    assert_int_equal(report_parse_format("csv"), REPORT_CSV);
    assert_int_equal(report_parse_format("JSON"), -1);
    assert_int_equal(report_parse_format(""), -1);
}

static void test_timestamps(void **state)
{
    (void)state;
    static const char *const good[] = {
        "2026-12-01", "2026-12-01T00:00", "2026-12-01 10:30:15", "2026-12-01T10:30:15Z",
        "2026-12-01T10:30:15.123456+01:00", "2026-12-01T10:30-05", "2026-02-28T23:59:59+0530",
    };
    static const char *const bad[] = {
        "", "tomorrow", "2026-12", "2026-13-01", "2026-00-10", "2026-12-32", "26-12-01", "2026-12-01T",
        "2026-12-01T25", "2026-12-01T10:3", "2026-12-01T10:30:1", "2026-12-01T10:30:15.", "2026-12-01Z1",
        "2026-12-01 10:00 Europe/Paris", "2026-12-01T10:30:15+1", "2026-12-01T10:30+01:", "2026-12-01T10:30+01:0", "2026-12-01; DROP TABLE x",
    };
    for (size_t i = 0; i < AX_ARRAY_LEN(good); i++)
        if (report_check_timestamp(good[i]) != 0)
            fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < AX_ARRAY_LEN(bad); i++)
        if (report_check_timestamp(bad[i]) == 0)
            fail_msg("accepted %s", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_timestamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
