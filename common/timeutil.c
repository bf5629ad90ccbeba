/*
 * timeutil.c: parsing of periods and durations.
 */
#include "timeutil.h"
#include "ax.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct unit {
    const char *name;
    long long factor;
};

/*
 * Reads "<n> <unit>" (spaces optional around both) where unit is one of
 * units; returns the index of the unit and sets *n, or -1 when the text
 * does not have that shape.
 */
static int parse_amount(const char *text, const struct unit *units, size_t nunits, bool ignore_case, long long *n)
{
    const char *p = text;

    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    errno = 0;
    char *end;
    *n = strtoll(p, &end, 10);
    if (errno == ERANGE || *n > 1000000000LL)
        return -1;
    p = end;
    while (isspace((unsigned char)*p))
        p++;
    const char *unit = p;
    while (isalpha((unsigned char)*p))
        p++;
    size_t unit_len = (size_t)(p - unit);
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '\0')
        return -1;
    for (size_t i = 0; i < nunits; i++) {
        if (strlen(units[i].name) != unit_len)
            continue;
        if (ignore_case ? strncasecmp(unit, units[i].name, unit_len) == 0
                        : strncmp(unit, units[i].name, unit_len) == 0)
            return (int)i;
    }
    return -1;
}

int tm_parse_period(const char *text, int *days, char *err, size_t errlen)
{
    static const struct unit units[] = {
        {"day", 1}, {"days", 1}, {"week", 7}, {"weeks", 7}, {"month", 30}, {"months", 30}, {"year", 365}, {"years", 365},
    };
    long long n;
    int u = parse_amount(text, units, AX_ARRAY_LEN(units), true, &n);

    if (u < 0) {
        snprintf(err, errlen,
                 "invalid period \"%s\" (expected \"<n> days\", \"<n> weeks\", \"<n> months\" or \"<n> years\")",
                 text);
        return AX_ERR_CONFIG;
    }
    if (n < 1) {
        snprintf(err, errlen, "period \"%s\" must be at least one day", text);
        return AX_ERR_CONFIG;
    }
    if (n > 100000 / units[u].factor) {
        snprintf(err, errlen, "period \"%s\" is out of range", text);
        return AX_ERR_CONFIG;
    }
    *days = (int)(n * units[u].factor);
    return AX_OK;
}

int tm_parse_duration_ms(const char *text, long long *ms, char *err, size_t errlen)
{
    /* PostgreSQL's units, case-sensitive as in postgresql.conf */
    static const struct unit units[] = {
        {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    long long n;
    int u = parse_amount(text, units, AX_ARRAY_LEN(units), false, &n);

    if (u < 0) {
        snprintf(err, errlen, "invalid duration \"%s\" (expected a number and one of ms, s, min, h, d)", text);
        return AX_ERR_CONFIG;
    }
    /* PostgreSQL keeps timeouts in an int of milliseconds */
    if (n > 2147483647LL / units[u].factor) {
        snprintf(err, errlen, "duration \"%s\" is out of range", text);
        return AX_ERR_CONFIG;
    }
    *ms = n * units[u].factor;
    return AX_OK;
}

double tm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
