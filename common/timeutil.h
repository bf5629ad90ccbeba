/*
 * timeutil.h: the periods and durations the configuration speaks in.
 *
 * A period ("90 days", "12 weeks", "3 months") is how long a finished
 * submission keeps its personal data.  It is held as a number of days, a
 * month counting 30 days as PostgreSQL does when it compares intervals, so
 * that the legal cap (three months) and every cutoff are the same arithmetic.
 */
#ifndef TIMEUTIL_H
#define TIMEUTIL_H

#include <stddef.h>

/* The promise made to the data protection authority: three months. */
#define RETENTION_CAP_DAYS 90
#define TM_STR_(x) #x
#define TM_STR(x) TM_STR_(x)
/* The same, as the configuration writes it: "90 days" */
#define RETENTION_CAP_TEXT TM_STR(RETENTION_CAP_DAYS) " days"

/*
 * Every duration, setting or option, has one syntax: a number, optional
 * spaces, a unit in any case: ms, s (sec, seconds), min (minutes), h
 * (hours), d (days), w (weeks), months (30 days), y (years, 365 days).
 */

/* A period in whole days ("90 days", "90d", "3 months"; n >= 1).  Does not apply the cap.  Returns 0, or
 * AX_ERR_CONFIG with a message in err. */
int tm_parse_period(const char *text, int *days, char *err, size_t errlen);

/* A duration in milliseconds ("4h", "4 hours", "90min", "2s"; at most 2^31-1 ms, PostgreSQL's int).
 * Returns 0, or AX_ERR_CONFIG with a message in err. */
int tm_parse_duration_ms(const char *text, long long *ms, char *err, size_t errlen);

/* Monotonic clock, in seconds. */
double tm_now(void);

#include <stdbool.h>
#include <time.h>

/*
 * Parses an instant: YYYY-MM-DD, or YYYY-MM-DD(T| )HH:MM[:SS[.fff]], then
 * Z, (+|-)HH[:MM] or (+|-)HHMM, UTC when no zone is given.  Every field is
 * checked (the day exists in its month, hours below 24, offsets within 14
 * hours).  Returns 0 with *out, or -1 with a message in err.
 */
int tm_parse_instant(const char *text, time_t *out, char *err, size_t errlen);

/*
 * The name of a time zone PostgreSQL knows: the configured one, else the
 * system's ($TZ when it names a zone, else where /etc/localtime points,
 * else /etc/timezone), else "UTC".
 */
void tm_zone_name(const char *configured, char *buf, size_t len);

/* Local midnight (tm_set_timezone) of the date t has in UTC (date_in_utc:
 * what tm_parse_instant makes of a bare YYYY-MM-DD) or locally. */
time_t tm_local_midnight(time_t t, bool date_in_utc);

/* The same instant as ISO 8601 in UTC ("2026-06-01T00:00:00Z"). */
void tm_format_utc(time_t t, char buf[32]);

/* Parses "YYYY-MM-DDTHH:MM:SSZ" (what the tool writes); -1 when it is not that. */
int tm_parse_utc(const char *text, time_t *out);

/*
 * The time zone of the times people read (report, history, BI days): an IANA
 * name ("Europe/Paris") whose zone file exists, or NULL for the system's.
 * Returns 0, or -1 when the name is not a known zone.
 */
int tm_set_timezone(const char *name);
/* Whether name is a zone this system knows (a file below /usr/share/zoneinfo, or "UTC"). */
int tm_valid_timezone(const char *name);

/* An instant in that zone, ISO 8601 with its offset ("2026-06-01T02:00:00+02:00"). */
void tm_format_local(time_t t, char buf[40]);
/* Just the date in that zone ("2026-06-01"). */
void tm_format_local_date(time_t t, char buf[16]);

#endif
