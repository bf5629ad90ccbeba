/*
 * test_sqlcheck.c: the test-time checker of tests/sqlcheck/sqlcheck.h finds
 * every unqualified operator, function and table, and every construct that
 * looks an operator up on the search path; what is written safe passes.
 */
#include "sqlcheck.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static void expect_problems(const char *sql, size_t want, const char *mention)
{
    char *problems;
    size_t got = sql_check(sql, &problems);
    if (got != want || (mention && !strstr(problems, mention)))
        fail_msg("\n  sql: %s\n  %zu problems, want %zu%s%s:\n%s", sql, got, want, mention ? " naming " : "",
                 mention ? mention : "", problems);
    free(problems);
}

static void expect_clean(const char *sql)
{
    expect_problems(sql, 0, NULL);
}

static void test_unqualified_operators(void **state)
{
    (void)state;
    expect_problems("SELECT 1 FROM public.t m WHERE m.a = $1", 1, "unqualified operator: =");
    expect_problems("SELECT a.x || 'y' FROM public.a", 1, "||");
    expect_problems("SELECT m.d #>> '{}', j ? 'k', w ->> 'k' FROM public.t m", 3, "#>>");
    expect_problems("SELECT $1 - 2 * 3", 2, "-");
    expect_problems("SELECT 1 WHERE x OPERATOR(public.=) y", 1, "not pg_catalog's");
    expect_clean("SELECT 1 FROM public.t m WHERE (m.a) OPERATOR(pg_catalog.=) ($1)");
    expect_clean("SELECT pg_catalog.count(*), t.* FROM public.t");
    expect_clean("SELECT pg_catalog.make_interval(days => $3)");
}

static void test_names_a_statement_defines(void **state)
{
    (void)state;
    /* a WITH name, with or without its column names, is not a table of the search path */
    expect_clean("WITH t(a, b) AS (VALUES (1, 2)) SELECT t.a FROM t");
    expect_clean("WITH t AS MATERIALIZED (SELECT 1) SELECT 1 FROM t");
    expect_problems("WITH t(a) AS (VALUES (1)) SELECT 1 FROM u", 1, "table not schema-qualified: u");
    /* a statement trigger's events and transition tables are no tables (the checker does not look at its
     * table: ON is not followed by a table elsewhere) */
    expect_clean("CREATE TRIGGER c AFTER UPDATE ON s.t REFERENCING OLD TABLE AS o NEW TABLE AS n"
                 " FOR EACH STATEMENT EXECUTE FUNCTION s.f()");
    expect_problems("SELECT 1 FROM t AS x", 1, "table not schema-qualified: t");
    /* REVOKE ... FROM names a role; the next statement's FROM is a table again */
    expect_clean("REVOKE ALL ON ALL TABLES IN SCHEMA \"s\" FROM \"reader\"");
    expect_problems("REVOKE ALL ON public.t FROM r; SELECT 1 FROM t", 1, "table not schema-qualified: t");
}

static void test_constructs(void **state)
{
    (void)state;
    /* every one of these resolves an operator on the search path */
    expect_problems("SELECT 1 FROM public.t WHERE a BETWEEN 1 AND 2", 1, "BETWEEN");
    expect_problems("SELECT 1 FROM public.t WHERE a ILIKE 'x%'", 1, "ILIKE");
    expect_problems("SELECT 1 FROM public.t WHERE a NOT LIKE 'x%'", 1, "LIKE");
    expect_problems("SELECT NULLIF(a, b) FROM public.t", 1, "NULLIF");
    expect_problems("SELECT CASE a WHEN 1 THEN 2 END FROM public.t", 1, "CASE");
    expect_problems("SELECT 1 FROM public.a JOIN public.b USING (id)", 1, "USING");
    expect_problems("SELECT 1 FROM public.t WHERE a IN ('a', 'b')", 1, "IN (...)");
    expect_problems("SELECT 1 FROM public.t WHERE x NOT IN (SELECT y FROM public.u)", 1, "IN (...)");
    expect_problems("SELECT 1 FROM public.t WHERE a IS DISTINCT FROM b", 1, "DISTINCT");
    expect_problems("SELECT 1 FROM public.t WHERE a IS NOT DISTINCT FROM b", 1, "DISTINCT");
    expect_problems("SELECT U&'d\\0061t'", 2, "U&");
    expect_clean("SELECT CASE WHEN (a) OPERATOR(pg_catalog.=) (1) THEN 2 END FROM public.t");
    expect_clean("SELECT 1 FROM public.t WHERE (a) OPERATOR(pg_catalog.=) ANY ('{a,b}'::text[])");
    expect_clean("GRANT SELECT ON ALL TABLES IN SCHEMA s TO r");
}

static void test_functions(void **state)
{
    (void)state;
    expect_problems("SELECT count(*) FROM public.t", 1, "unqualified function: count");
    expect_problems("SELECT bool_or(a) FROM public.t", 1, "bool_or");
    expect_problems("SELECT 1 FROM public.t WHERE lower(a) OPERATOR(pg_catalog.=) ('x')", 1, "lower");
    expect_problems("SELECT x FROM unnest($1::text[]) x", 1, "unnest");
    expect_problems("SELECT EXTRACT(epoch FROM $1::interval)", 1, "EXTRACT");
    expect_problems("SELECT \"f\"(1)", 1, "\"f\"");
    /* aliases with column lists, keywords, casts with typmods, DDL */
    expect_clean("SELECT u.n FROM pg_catalog.unnest($1::pg_catalog.oid[]) WITH ORDINALITY u (oid, n)");
    expect_clean("SELECT g.id FROM pg_catalog.generate_series(1, 2) g(id)");
    expect_clean("SELECT v.kind FROM (VALUES (0, 'a')) AS v(ord, kind)");
    expect_clean("SELECT COALESCE(GREATEST(a, b), 0), ARRAY(SELECT 1), ROW(a, b), EXISTS (SELECT 1) FROM public.t");
    expect_clean("SELECT pg_catalog.count(*) FILTER (WHERE a) OVER (PARTITION BY b) FROM public.t");
    expect_clean("SELECT $1::numeric(10, 2)");
    expect_clean("CREATE TABLE IF NOT EXISTS anonymizer.runs (id integer PRIMARY KEY, v numeric(10, 2))");
    expect_clean("CREATE TEMPORARY TABLE IF NOT EXISTS anonymizer_ids (id integer PRIMARY KEY) ON COMMIT DELETE ROWS");
    expect_clean("VACUUM (ANALYZE) public.\"formdata_1_x\"");
}

static void test_tables(void **state)
{
    (void)state;
    expect_problems("SELECT 1 FROM formdefs", 1, "table not schema-qualified: formdefs");
    expect_problems("UPDATE runs SET a = 1", 1, "runs");
    expect_problems("DELETE FROM \"formdata_1_x\" m", 1, "formdata_1_x");
    expect_problems("INSERT INTO changes (a) VALUES (1)", 1, "changes");
    /* what a WITH clause defines is the statement's own */
    expect_clean("WITH cand AS MATERIALIZED (SELECT 1 AS id), d AS (DELETE FROM public.t m WHERE (m.id) "
                 "OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.id FROM cand c)) RETURNING 1) SELECT pg_catalog.count(*) FROM d");
    expect_clean("UPDATE public.t SET a = NULL, b = x.y WHERE (id) OPERATOR(pg_catalog.=) (1)");
    expect_clean("INSERT INTO anonymizer.x (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a");
    expect_clean("COPY pg_temp.anonymizer_stage FROM STDIN");
    expect_clean("SELECT 'FROM x', \"FROM\", $$ = $$ -- = \n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unqualified_operators),
        cmocka_unit_test(test_names_a_statement_defines),
        cmocka_unit_test(test_constructs),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
