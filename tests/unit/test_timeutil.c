/*
 * test_timeutil.c: periods, durations and the three-month cap.
 */
#include "ax.h"
#include "timeutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static int period(const char *text, int *days)
{
    char err[256];
    return tm_parse_period(text, days, err, sizeof err);
}

static void test_period_units(void **state)
{
    (void)state;
    int days = -1;
    assert_int_equal(period("90 days", &days), AX_OK);
    assert_int_equal(days, 90);
    assert_int_equal(period("3 months", &days), AX_OK);
    assert_int_equal(days, 90);
    assert_int_equal(period("12 weeks", &days), AX_OK);
    assert_int_equal(days, 84);
    assert_int_equal(period("1 day", &days), AX_OK);
    assert_int_equal(days, 1);
    assert_int_equal(period("1 week", &days), AX_OK);
    assert_int_equal(days, 7);
    assert_int_equal(period("1 month", &days), AX_OK);
    assert_int_equal(days, 30);
    assert_int_equal(period("90 Days", &days), AX_OK);
    assert_int_equal(days, 90);
    assert_int_equal(period("  30days  ", &days), AX_OK);
    assert_int_equal(days, 30);
}

/* The cap edges of the issue: the parser gives the days, the cap compares. */
static void test_period_cap_edges(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int days;
        int within_cap;
    } cases[] = {
        {"90 days", 90, 1}, {"3 months", 90, 1}, {"12 weeks", 84, 1},
        {"91 days", 91, 0}, {"13 weeks", 91, 0}, {"4 months", 120, 0}, {"1 year", 365, 0}, {"2 years", 730, 0},
    };
    for (size_t i = 0; i < AX_ARRAY_LEN(cases); i++) {
        int days = -1;
        assert_int_equal(period(cases[i].text, &days), AX_OK);
        assert_int_equal(days, cases[i].days);
        assert_int_equal(days <= RETENTION_CAP_DAYS, cases[i].within_cap);
    }
}

static void test_period_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "days", "90", "90 decades", "-1 days", "1.5 days", "0 days", "90 days extra", "ninety days",
        "99999999999 days", "4000 months", "300 years",
    };
    for (size_t i = 0; i < AX_ARRAY_LEN(bad); i++) {
        int days = 12345;
        char err[256] = "";
        assert_int_equal(tm_parse_period(bad[i], &days, err, sizeof err), AX_ERR_CONFIG);
        assert_int_equal(days, 12345);
        assert_non_null(strstr(err, bad[i]));
    }
}

static void test_period_forms(void **state)
{
    (void)state;
    char err[256];
    int days = 0;
    static const struct { const char *text; int days; } ok[] = {
        {"90 days", 90}, {"90d", 90}, {"90 D", 90}, {"3 months", 90}, {"2w", 14}, {"1y", 365}, {"1 day", 1},
    };
    for (size_t i = 0; i < AX_ARRAY_LEN(ok); i++) {
        assert_int_equal(tm_parse_period(ok[i].text, &days, err, sizeof err), AX_OK);
        assert_int_equal(days, ok[i].days);
    }
    /* a period is whole days */
    assert_int_equal(tm_parse_period("36h", &days, err, sizeof err), AX_ERR_CONFIG);
    assert_non_null(strstr(err, "days, weeks, months or years"));
}

static void test_duration(void **state)
{
    (void)state;
    char err[256];
    long long ms = 0;
    assert_int_equal(tm_parse_duration_ms("2s", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 2000);
    assert_int_equal(tm_parse_duration_ms("10min", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 600000);
    assert_int_equal(tm_parse_duration_ms("250 ms", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 250);
    assert_int_equal(tm_parse_duration_ms("1h", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 3600000);
    assert_int_equal(tm_parse_duration_ms("0", &ms, err, sizeof err), AX_ERR_CONFIG);
    assert_int_equal(tm_parse_duration_ms("0s", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 0);
    /* one syntax for every duration: names and short forms, any case */
    assert_int_equal(tm_parse_duration_ms("2 sec", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 2000);
    assert_int_equal(tm_parse_duration_ms("4 hours", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 4 * 3600000);
    assert_int_equal(tm_parse_duration_ms("90MIN", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 90 * 60000);
    assert_int_equal(tm_parse_duration_ms("2 days", &ms, err, sizeof err), AX_OK);
    assert_int_equal(ms, 2 * 86400000);
    assert_int_equal(tm_parse_duration_ms("4 lightyears", &ms, err, sizeof err), AX_ERR_CONFIG);
    assert_int_equal(tm_parse_duration_ms("s", &ms, err, sizeof err), AX_ERR_CONFIG);
    assert_int_equal(tm_parse_duration_ms("30d", &ms, err, sizeof err), AX_ERR_CONFIG); /* past int milliseconds */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_period_units),
        cmocka_unit_test(test_period_cap_edges),
        cmocka_unit_test(test_period_invalid),
        cmocka_unit_test(test_period_forms),
        cmocka_unit_test(test_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
