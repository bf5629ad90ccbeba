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
#include <unistd.h>
#include <strings.h>
#include <sys/stat.h>
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

/*
 * One grammar for every duration, setting or option: a number, optional
 * spaces, a unit (any case): ms; s, sec, second(s); min, minute(s); h,
 * hour(s); d, day(s); w, week(s); month(s) (30 days); y, year(s) (365
 * days).  "90 days", "90d", "4 hours", "4h", "90min" all read the same
 * everywhere.
 */
static const struct unit duration_units[] = {
    {"ms", 1LL},
    {"millisecond", 1LL},
    {"milliseconds", 1LL},
    {"s", 1000LL},
    {"sec", 1000LL},
    {"second", 1000LL},
    {"seconds", 1000LL},
    {"min", 60000LL},
    {"minute", 60000LL},
    {"minutes", 60000LL},
    {"h", 3600000LL},
    {"hour", 3600000LL},
    {"hours", 3600000LL},
    {"d", 86400000LL},
    {"day", 86400000LL},
    {"days", 86400000LL},
    {"w", 7 * 86400000LL},
    {"week", 7 * 86400000LL},
    {"weeks", 7 * 86400000LL},
    {"month", 30 * 86400000LL},
    {"months", 30 * 86400000LL},
    {"y", 365 * 86400000LL},
    {"year", 365 * 86400000LL},
    {"years", 365 * 86400000LL},
};

#define DURATION_SYNTAX "a number and a unit: ms, s, min, h, d, w, months, years (or their names: 4 hours, 90 days)"

/* n in the unit at index u, in milliseconds; false when out of range */
static bool amount_ms(long long n, int u, long long *ms)
{
    if (n > 100000LL * 86400000LL / duration_units[u].factor)
        return false;
    *ms = n * duration_units[u].factor;
    return true;
}

int tm_parse_period(const char *text, int *days, char *err, size_t errlen)
{
    long long n, ms;
    int u = parse_amount(text, duration_units, AX_ARRAY_LEN(duration_units), true, &n);

    if (u < 0) {
        snprintf(err, errlen, "invalid period \"%s\" (expected " DURATION_SYNTAX ")", text);
        return AX_ERR_CONFIG;
    }
    if (duration_units[u].factor < 86400000LL) {
        snprintf(err, errlen, "period \"%s\" must be counted in days, weeks, months or years", text);
        return AX_ERR_CONFIG;
    }
    if (n < 1) {
        snprintf(err, errlen, "period \"%s\" must be at least one day", text);
        return AX_ERR_CONFIG;
    }
    if (!amount_ms(n, u, &ms)) {
        snprintf(err, errlen, "period \"%s\" is out of range", text);
        return AX_ERR_CONFIG;
    }
    *days = (int)(ms / 86400000LL);
    return AX_OK;
}

int tm_parse_duration_ms(const char *text, long long *ms, char *err, size_t errlen)
{
    long long n, v;
    int u = parse_amount(text, duration_units, AX_ARRAY_LEN(duration_units), true, &n);

    if (u < 0) {
        snprintf(err, errlen, "invalid duration \"%s\" (expected " DURATION_SYNTAX ")", text);
        return AX_ERR_CONFIG;
    }
    /* PostgreSQL keeps timeouts in an int of milliseconds */
    if (!amount_ms(n, u, &v) || v > 2147483647LL) {
        snprintf(err, errlen, "duration \"%s\" is out of range (at most 24 days)", text);
        return AX_ERR_CONFIG;
    }
    *ms = v;
    return AX_OK;
}

double tm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* n digits into *v; advances *p */
static bool number(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return false;
        *v = *v * 10 + (**p - '0');
    }
    return true;
}

static int instant_error(char *err, size_t errlen, const char *text, const char *why)
{
    snprintf(err, errlen, "invalid instant \"%s\": %s (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])",
             text, why);
    return -1;
}

/* The zone part: Z, +HH, +HH:MM or +HHMM; *offset in seconds east of UTC. */
static int parse_zone(const char **p, long *offset)
{
    *offset = 0;
    if (**p == 'Z') {
        (*p)++;
        return 0;
    }
    if (**p != '+' && **p != '-')
        return **p ? -1 : 0;
    int sign = **p == '-' ? -1 : 1, oh, om = 0;
    (*p)++;
    if (!number(p, 2, &oh))
        return -1;
    if (**p == ':') {
        (*p)++;
        if (!number(p, 2, &om))
            return -1;
    } else if (isdigit((unsigned char)**p) && !number(p, 2, &om)) {
        return -1;
    }
    if (oh > 14 || om > 59 || (oh == 14 && om > 0))
        return -2;
    *offset = sign * (oh * 3600L + om * 60L);
    return 0;
}

int tm_parse_instant(const char *text, time_t *out, char *err, size_t errlen)
{
    const char *p = text;
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    long offset = 0;

    memset(&tm, 0, sizeof tm);
    if (!number(&p, 4, &y) || *p++ != '-' || !number(&p, 2, &mo) || *p++ != '-' || !number(&p, 2, &d))
        return instant_error(err, errlen, text, "not a date");
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return instant_error(err, errlen, text, "no such day");
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!number(&p, 2, &h) || *p++ != ':' || !number(&p, 2, &mi))
            return instant_error(err, errlen, text, "not a time");
        if (*p == ':') {
            p++;
            if (!number(&p, 2, &sec))
                return instant_error(err, errlen, text, "not a time");
            if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                    return instant_error(err, errlen, text, "not a time");
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return instant_error(err, errlen, text, "no such time");
        int z = parse_zone(&p, &offset);
        if (z == -2)
            return instant_error(err, errlen, text, "no such offset");
        if (z != 0)
            return instant_error(err, errlen, text, "not a time zone");
    }
    if (*p != '\0')
        return instant_error(err, errlen, text, "trailing characters");
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = timegm(&tm) - offset;
    return 0;
}

void tm_format_utc(time_t t, char buf[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int tm_parse_utc(const char *text, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return -1;
    *out = timegm(&tm);
    return 0;
}

int tm_valid_timezone(const char *name)
{
    if (strcmp(name, "UTC") == 0)
        return 1;
    if (!name[0] || name[0] == '/' || strstr(name, ".."))
        return 0;
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tm_set_timezone(const char *name)
{
    if (name && !tm_valid_timezone(name))
        return -1;
    /* none configured: the system's ($TZ, else /etc/localtime) */
    if (name)
        setenv("TZ", name, 1);
    tzset();
    return 0;
}

void tm_format_local(time_t t, char buf[40])
{
    struct tm tm;
    localtime_r(&t, &tm);
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 40 - n, "%c%02ld:%02ld", sign, off / 3600, (off % 3600) / 60);
}

void tm_zone_name(const char *configured, char *buf, size_t len)
{
    const char *tz = getenv("TZ");
    char link[512];
    if (configured) {
        snprintf(buf, len, "%s", configured);
        return;
    }
    if (tz && *tz == ':')
        tz++;
    if (tz && *tz && tm_valid_timezone(tz)) {
        snprintf(buf, len, "%s", tz);
        return;
    }
    ssize_t n = readlink("/etc/localtime", link, sizeof link - 1);
    const char *zi = NULL;
    if (n > 0) {
        link[n] = '\0';
        zi = strstr(link, "zoneinfo/");
    }
    if (zi && tm_valid_timezone(zi + 9)) {
        snprintf(buf, len, "%s", zi + 9);
        return;
    }
    FILE *fp = fopen("/etc/timezone", "r");
    if (fp) {
        char line[128] = "";
        bool ok = fgets(line, sizeof line, fp) != NULL;
        fclose(fp);
        line[strcspn(line, "\r\n")] = '\0';
        if (ok && tm_valid_timezone(line)) {
            snprintf(buf, len, "%s", line);
            return;
        }
    }
    snprintf(buf, len, "UTC");
}

time_t tm_local_midnight(time_t t, bool date_in_utc)
{
    struct tm tm;
    if (date_in_utc)
        gmtime_r(&t, &tm);
    else
        localtime_r(&t, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return mktime(&tm);
}

void tm_format_local_date(time_t t, char buf[16])
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, 16, "%Y-%m-%d", &tm);
}
