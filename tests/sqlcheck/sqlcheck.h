/*
 * sqlcheck.h: a test-time check that a statement means the same whatever a
 * database holds in its schemas (what PostgreSQL's own client programs do
 * since CVE-2018-1058).
 *
 * The tool writes its statements safe at the source: every operator
 * OPERATOR(pg_catalog.op), every function pg_catalog.f (or another schema),
 * every table schema-qualified, and none of the constructs that look an
 * operator up on the search path without a way to name its schema (BETWEEN,
 * [NOT] LIKE, ILIKE, SIMILAR TO, NULLIF, CASE x WHEN, JOIN ... USING, IN
 * (...), IS [NOT] DISTINCT FROM, OVERLAPS, U&'...').  This checker reads
 * statements as PostgreSQL's lexer cuts them and names whatever breaks
 * those rules.  Type names in casts are left alone: every session puts
 * pg_catalog first on its path, and a type name, unlike an operator or a
 * function, goes to the first schema that has it.
 */
#ifndef SQLCHECK_H
#define SQLCHECK_H

#include <stddef.h>

/*
 * Checks one statement (or several separated by ";").  Returns how many
 * problems were found; each is appended to problems (when not NULL) as one
 * line "<what>: <token> at offset <n>\n".  Caller frees *problems.
 */
size_t sql_check(const char *sql, char **problems);

#endif
