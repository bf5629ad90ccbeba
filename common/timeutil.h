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

/* Parses "<n> day(s)|week(s)|month(s)|year(s)" into days (n >= 1; a year counts 365).  Does not apply
 * the cap.  Returns 0, or AX_ERR_CONFIG with a message in err. */
int tm_parse_period(const char *text, int *days, char *err, size_t errlen);

/* Parses "<n>ms|s|min|h|d" (PostgreSQL units, optional space) into
 * milliseconds.  Returns 0, or AX_ERR_CONFIG with a message in err. */
int tm_parse_duration_ms(const char *text, long long *ms, char *err, size_t errlen);

/* Monotonic clock, in seconds. */
double tm_now(void);

#endif
