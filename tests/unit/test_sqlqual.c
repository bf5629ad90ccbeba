/*
 * test_sqlqual.c: operators qualified with pg_catalog, and the meaning of
 * the statement kept (the integration tests run every statement of the
 * tool rewritten against PostgreSQL, and one with a hostile operator).
 */
#include "sqlqual.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static void expect(const char *sql, const char *want)
{
    char *got = sql_qualify_operators(sql);
    if (strcmp(got, want) != 0)
        fail_msg("\n  sql:  %s\n  got:  %s\n  want: %s", sql, got, want);
    free(got);
}

static void test_comparisons(void **state)
{
    (void)state;
    expect("SELECT 1 WHERE a = b", "SELECT 1 WHERE (a) OPERATOR(pg_catalog.=) (b)");
    /* OPERATOR() binds tighter than "=": the operands keep theirs */
    expect("WHERE e.relname = c.relname || '_x' AND k.kind < 2",
           "WHERE (e.relname) OPERATOR(pg_catalog.=) (c.relname OPERATOR(pg_catalog.||) '_x') AND (k.kind) "
           "OPERATOR(pg_catalog.<) (2)");
    expect("WHERE m.id > $5 + 1 OR NOT x <> y", "WHERE (m.id) OPERATOR(pg_catalog.>) ($5 + 1) OR NOT (x) OPERATOR(pg_catalog.<>) (y)");
    expect("COALESCE(a.b = 'x', false)", "COALESCE((a.b) OPERATOR(pg_catalog.=) ('x'), false)");
    expect("CASE WHEN f(x, y) >= 3 THEN 1 END", "CASE WHEN (f(x, y)) OPERATOR(pg_catalog.>=) (3) THEN 1 END");
    expect("SELECT a != b AS d", "SELECT (a) OPERATOR(pg_catalog.<>) (b) AS d");
    /* quantified: the right side stays ANY (...) */
    expect("WHERE m.status = ANY ($3)", "WHERE (m.status) OPERATOR(pg_catalog.=) ANY ($3)");
    expect("WHERE m.id IN (SELECT id FROM c)", "WHERE (m.id) OPERATOR(pg_catalog.=) ANY (SELECT id FROM c)");
    /* a list stays IN: built-in types only */
    expect("WHERE c.relkind IN ('r', 'p')", "WHERE c.relkind IN ('r', 'p')");
    expect("WHERE m.status LIKE 'wf-%'", "WHERE (m.status) OPERATOR(pg_catalog.~~) ('wf-%')");
    expect("ORDER BY k.kind = 2, k.id", "ORDER BY (k.kind) OPERATOR(pg_catalog.=) (2), k.id");
    expect("count(*) FILTER (WHERE x::int = 1)", "count(*) FILTER (WHERE (x::int) OPERATOR(pg_catalog.=) (1))");
    expect("WHERE (a, b) = (1, 2)", "WHERE ((a, b)) OPERATOR(pg_catalog.=) ((1, 2))");
}

static void test_left_alone(void **state)
{
    (void)state;
    /* assignments, named arguments, stars, arithmetic, strings, identifiers, comments */
    expect("UPDATE t SET a = NULL, b = x.y WHERE id = 1",
           "UPDATE t SET a = NULL, b = x.y WHERE (id) OPERATOR(pg_catalog.=) (1)");
    expect("UPDATE t SET a = CASE WHEN b = 1 THEN 2 END", "UPDATE t SET a = CASE WHEN (b) OPERATOR(pg_catalog.=) (1) THEN 2 END");
    expect("ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v WHERE t.v IS DISTINCT FROM EXCLUDED.v",
           "ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v WHERE t.v IS DISTINCT FROM EXCLUDED.v");
    expect("make_interval(days => $3)", "make_interval(days => $3)");
    expect("SELECT count(*), t.* FROM t", "SELECT count(*), t.* FROM t");
    expect("SELECT $1 - 2 * 3", "SELECT $1 - 2 * 3");
    expect("SELECT 'a = b', \"x=y\", E'it\\'s = ', $$ = $$ -- = \n", "SELECT 'a = b', \"x=y\", E'it\\'s = ', $$ = $$ -- = \n");
    expect("SELECT OPERATOR(pg_catalog.=) x", "SELECT OPERATOR(pg_catalog.=) x");
    /* other operators are only qualified: they share one precedence */
    expect("m.d #>> '{}' || w ->> 'k'", "m.d OPERATOR(pg_catalog.#>>) '{}' OPERATOR(pg_catalog.||) w OPERATOR(pg_catalog.->>) 'k'");
    expect("j ? 'k'", "j OPERATOR(pg_catalog.?) 'k'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_left_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
