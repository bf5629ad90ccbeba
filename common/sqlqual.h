/*
 * sqlqual.h: statements that mean the same whatever a tenant database
 * holds.
 *
 * A tenant session keeps public on its search path (w.c.s.'s triggers name
 * their tables without a schema), so an operator created in public with the
 * exact argument types of a comparison (CREATE OPERATOR public.= (varchar,
 * text)) would win over the built-in one, which needs an implicit cast: the
 * run would then do nothing and the report say COMPLIANT.  As PostgreSQL's
 * own client programs do since CVE-2018-1058, every operator of a statement
 * sent to a tenant is written OPERATOR(pg_catalog.op); LIKE becomes
 * OPERATOR(pg_catalog.~~) and IN (subquery) OPERATOR(pg_catalog.=) ANY
 * (subquery).  Functions are written pg_catalog.f in the sources; IS
 * DISTINCT FROM, which cannot be qualified, compares operands of exactly
 * the same built-in type (pg_catalog comes first on the path, and wins
 * between exact matches).
 */
#ifndef SQLQUAL_H
#define SQLQUAL_H

/* The statement with its operators qualified (outside strings, quoted
 * identifiers and comments); "*" (a star) and "=>" (named arguments) are
 * left alone.  Caller frees. */
char *sql_qualify_operators(const char *sql);

#endif
