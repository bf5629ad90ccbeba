/*
 * test_report.c: the report's command-line values: formats, and instants
 * (tm_parse_instant: every field checked, the zone applied).
 */
#include "ax.h"
#include "report.h"
#include "timeutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

static void test_formats(void **state)
{
    (void)state;
    assert_int_equal(report_parse_format("text"), REPORT_TEXT);
    assert_int_equal(report_parse_format("json"), REPORT_JSON);
    assert_int_equal(report_parse_format("csv"), REPORT_CSV);
    assert_int_equal(report_parse_format("html"), REPORT_HTML);
    assert_int_equal(report_parse_format("JSON"), -1);
    assert_int_equal(report_parse_format(""), -1);
}

static void test_timestamps(void **state)
{
    (void)state;
    static const char *const good[] = {
        "2026-12-01", "2026-12-01T00:00", "2026-12-01 10:30:15", "2026-12-01T10:30:15Z",
        "2026-12-01T10:30:15.123456+01:00", "2026-12-01T10:30-05", "2026-02-28T23:59:59+0530",
        "2028-02-29", "2026-12-01T10:30+14:00",
    };
    static const char *const bad[] = {
        "", "tomorrow", "2026-12", "2026-13-01", "2026-00-10", "2026-12-32", "26-12-01", "2026-12-01T",
        "2026-12-01T25", "2026-12-01T10:3", "2026-12-01T10:30:1", "2026-12-01T10:30:15.", "2026-12-01Z1",
        "2026-12-01 10:00 Europe/Paris", "2026-12-01T10:30:15+1", "2026-12-01T10:30+01:", "2026-12-01T10:30+01:0", "2026-12-01; DROP TABLE x",
        /* the shape is right, the values are not */
        "2026-02-30", "2026-02-29", "2026-04-31", "2026-12-01T25:00", "2026-12-01T10:60", "2026-12-01T10:30:61",
        "2026-12-01T10:30+99:00", "2026-12-01T10:30+14:30", "2026-12-01T10:30-01:60",
    };
    char err[256];
    time_t t;
    for (size_t i = 0; i < AX_ARRAY_LEN(good); i++)
        if (tm_parse_instant(good[i], &t, err, sizeof err) != 0)
            fail_msg("refused %s: %s", good[i], err);
    for (size_t i = 0; i < AX_ARRAY_LEN(bad); i++) {
        if (tm_parse_instant(bad[i], &t, err, sizeof err) == 0)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err, "invalid instant"));
    }
}

/* The zone is applied: every spelling of one instant gives the same UTC. */
static void test_instant_values(void **state)
{
    (void)state;
    static const char *const same[] = {"2026-12-01T09:30:15Z", "2026-12-01T10:30:15+01:00",
                                       "2026-12-01 10:30:15.999+0100", "2026-12-01T04:30:15-05",
                                       "2026-12-01T09:30:15"};
    char err[256], buf[32];
    for (size_t i = 0; i < AX_ARRAY_LEN(same); i++) {
        time_t t;
        assert_int_equal(tm_parse_instant(same[i], &t, err, sizeof err), 0);
        tm_format_utc(t, buf);
        assert_string_equal(buf, "2026-12-01T09:30:15Z");
        time_t back;
        assert_int_equal(tm_parse_utc(buf, &back), 0);
        assert_true(back == t);
    }
    time_t day;
    assert_int_equal(tm_parse_instant("2028-02-29", &day, err, sizeof err), 0);
    tm_format_utc(day, buf);
    assert_string_equal(buf, "2028-02-29T00:00:00Z");
    /* the local rendering carries its offset */
    assert_int_equal(tm_set_timezone("Europe/Paris"), 0);
    char local[40];
    tm_format_local(day, local);
    assert_string_equal(local, "2028-02-29T01:00:00+01:00");
    assert_int_equal(tm_set_timezone("Nowhere/Atlantis"), -1);
    assert_int_equal(tm_set_timezone("UTC"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_instant_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
