/*
 * sqltext.h: fragments of SQL text that every module writes the same way,
 * safe by construction (see tests/sqlcheck/sqlcheck.h): operators
 * qualified OPERATOR(pg_catalog.op), functions pg_catalog.f, no construct
 * that looks an operator up on the search path.
 */
#ifndef SQLTEXT_H
#define SQLTEXT_H

#include "strbuf.h"

/* An instant as ISO 8601 in UTC, to the second ("2026-06-01T00:00:00Z"). */
#define SQL_ISO_UTC(x) "pg_catalog.to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/*
 * a IS DISTINCT FROM b, without the construct (it looks "=" up on the search
 * path): different when both are known and differ, or when one only is NULL.
 * Operands of the same built-in type.
 */
#define SQL_DISTINCT(a, b)                                                                                   \
    "COALESCE((" a ") OPERATOR(pg_catalog.<>) (" b "), ((" a ") IS NULL) OPERATOR(pg_catalog.<>) ((" b ") IS NULL))"
/* The same, appended to sb for operands known at run time. */
void sql_distinct(struct strbuf *sb, const char *a, const char *b);

#endif
