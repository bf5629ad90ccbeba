/*
 * sqlcheck.c: the rules of sqlcheck.h, on the tokens PostgreSQL's lexer
 * would cut (strings, quoted identifiers, dollar quotes and comments are
 * opaque; operators are cut as scan.l cuts them).
 */
#include "sqlcheck.h"
#include "ax.h"
#include "strbuf.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum tok_kind {
    T_WORD,   /* keyword, identifier, $n */
    T_QUOTED, /* '...', E'...', $$...$$ */
    T_IDENT,  /* "..." */
    T_OP,
    T_QOP,    /* OPERATOR(schema.op), as one token */
    T_OPEN,
    T_CLOSE,
    T_COMMA,
    T_DOT,
    T_CAST,   /* :: */
    T_SEMI,
    T_OTHER,
};

struct tok {
    enum tok_kind kind;
    const char *s;
    size_t n;
    bool glued;      /* no space before it */
    bool assignment; /* the "=" of a SET list */
};

static bool op_char(char c)
{
    return c && strchr("+-*/<>=~!@#%^&|`?", c) != NULL;
}

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* The end of a quoted string or identifier opening at p (quote q). */
static const char *quoted_end(const char *p, char q, bool backslashes)
{
    const char *s = p + 1;
    while (*s) {
        if (backslashes && *s == '\\' && s[1])
            s += 2;
        else if (*s == q && s[1] == q)
            s += 2;
        else if (*s == q)
            return s + 1;
        else
            s++;
    }
    return s;
}

/* The end of a $tag$...$tag$ string opening at p, or NULL when p does not open one. */
static const char *dollar_end(const char *p)
{
    const char *s = p + 1;
    if (isdigit((unsigned char)*s))
        return NULL;
    while (isalnum((unsigned char)*s) || *s == '_')
        s++;
    if (*s != '$')
        return NULL;
    size_t taglen = (size_t)(s - p) + 1;
    const char *end = s + 1;
    while ((end = strchr(end, '$')) && strncmp(end, p, taglen) != 0)
        end++;
    return end ? end + taglen : p + strlen(p);
}

/* The length of the operator token at p, as PostgreSQL's lexer cuts it. */
static size_t op_length(const char *p)
{
    size_t n = 0;
    while (op_char(p[n]) && !(p[n] == '-' && p[n + 1] == '-') && !(p[n] == '/' && p[n + 1] == '*'))
        n++;
    /* a multi-character operator ends in + or - only when it holds one of ~!@#%^&|`? */
    bool special = false;
    for (size_t i = 0; i < n; i++)
        special |= strchr("~!@#%^&|`?", p[i]) != NULL;
    while (n > 1 && !special && (p[n - 1] == '+' || p[n - 1] == '-'))
        n--;
    return n;
}

/* One token at p (not space nor comment); *kind set, returns its end. */
static const char *next_token(const char *p, bool after_e_word, enum tok_kind *kind)
{
    const char *e;
    if (*p == '\'') {
        *kind = T_QUOTED;
        return quoted_end(p, '\'', after_e_word);
    }
    if (*p == '"') {
        *kind = T_IDENT;
        return quoted_end(p, '"', false);
    }
    if (*p == '$' && (e = dollar_end(p))) {
        *kind = T_QUOTED;
        return e;
    }
    if (ident_char(*p)) {
        for (e = p; ident_char(*e); e++)
            ;
        *kind = T_WORD;
        return e;
    }
    if (p[0] == ':' && p[1] == ':') {
        *kind = T_CAST;
        return p + 2;
    }
    if (op_char(*p) && op_length(p) > 0) {
        *kind = T_OP;
        return p + op_length(p);
    }
    *kind = *p == '(' || *p == '[' ? T_OPEN
            : *p == ')' || *p == ']' ? T_CLOSE
            : *p == ','              ? T_COMMA
            : *p == '.'              ? T_DOT
            : *p == ';'              ? T_SEMI
                                     : T_OTHER;
    return p + 1;
}

/* The tokens of sql, spaces and comments left out. */
static size_t tokenize(const char *sql, struct tok **out)
{
    size_t n = 0, cap = 64;
    struct tok *t = ax_malloc(cap * sizeof *t);
    bool glued = true;
    for (const char *p = sql; *p;) {
        if (isspace((unsigned char)*p)) {
            p++;
            glued = false;
            continue;
        }
        if (p[0] == '-' && p[1] == '-') {
            p += strcspn(p, "\n");
            glued = false;
            continue;
        }
        if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
            glued = false;
            continue;
        }
        bool e_word = n > 0 && glued && t[n - 1].kind == T_WORD && t[n - 1].n == 1 &&
                      toupper((unsigned char)*t[n - 1].s) == 'E';
        enum tok_kind kind;
        const char *e = next_token(p, e_word, &kind);
        if (n == cap)
            t = ax_reallocarray(t, cap *= 2, sizeof *t);
        t[n++] = (struct tok){kind, p, (size_t)(e - p), glued, false};
        p = e;
        glued = true;
    }
    *out = t;
    return n;
}

static bool is_word(const struct tok *t, const char *w)
{
    return t && t->kind == T_WORD && t->n == strlen(w) && strncasecmp(t->s, w, t->n) == 0;
}

static bool is_any_word(const struct tok *t, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (is_word(t, words[i]))
            return true;
    return false;
}

static bool is_op(const struct tok *t, const char *op)
{
    return t && t->kind == T_OP && t->n == strlen(op) && strncmp(t->s, op, t->n) == 0;
}

/* Folds OPERATOR(schema.op) into one T_QOP token; what is not pg_catalog's is a problem. */
static size_t fold_operators(struct tok *t, size_t n, const char *sql, struct strbuf *out, size_t *problems)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_word(&t[i], "OPERATOR") && i + 1 < n && t[i + 1].kind == T_OPEN) {
            size_t k = i + 2;
            while (k < n && t[k].kind != T_CLOSE)
                k++;
            bool catalog = k == i + 5 && is_word(&t[i + 2], "pg_catalog") && t[i + 3].kind == T_DOT &&
                           t[i + 4].kind == T_OP;
            if (!catalog) {
                (*problems)++;
                sb_appendf(out, "operator not pg_catalog's: %.*s at offset %zu\n",
                           (int)((k < n ? t[k].s + 1 : sql + strlen(sql)) - t[i].s), t[i].s, (size_t)(t[i].s - sql));
            }
            struct tok q = t[i];
            q.kind = T_QOP;
            q.n = (size_t)((k < n ? t[k].s + t[k].n : sql + strlen(sql)) - t[i].s);
            t[w++] = q;
            i = k < n ? k : n - 1;
            continue;
        }
        t[w++] = t[i];
    }
    return w;
}

/*
 * The "=" of "SET column = value" (UPDATE, ON CONFLICT DO UPDATE) assigns:
 * the first "=" after SET, or after a comma of its list, at the list's
 * depth; the list ends at FROM, WHERE or RETURNING.
 */
static void mark_assignments(struct tok *t, size_t n)
{
    static const char *const ends[] = {"FROM", "WHERE", "RETURNING", NULL};
    int depth = 0, set_depth = -1;
    bool expect = false;
    for (size_t i = 0; i < n; i++) {
        if (t[i].kind == T_OPEN) {
            depth++;
        } else if (t[i].kind == T_CLOSE) {
            if (--depth < set_depth)
                set_depth = -1;
        } else if (is_word(&t[i], "SET")) {
            set_depth = depth;
            expect = true;
        } else if (set_depth == depth && (is_any_word(&t[i], ends) || t[i].kind == T_SEMI)) {
            set_depth = -1;
        } else if (set_depth == depth && t[i].kind == T_COMMA) {
            expect = true;
        } else if (set_depth == depth && expect && is_op(&t[i], "=")) {
            t[i].assignment = true;
            expect = false;
        }
    }
}

/*
 * The names a WITH clause defines: "name AS (", "name AS MATERIALIZED (",
 * "name (columns) AS (", after WITH or a comma.
 */
static bool is_cte_name(const struct tok *t, size_t n, const struct tok *name)
{
    for (size_t i = 1; i + 2 < n; i++) {
        if ((t[i].kind != T_WORD && t[i].kind != T_IDENT) || t[i].n != name->n ||
            strncasecmp(t[i].s, name->s, name->n) != 0)
            continue;
        if (!(is_word(&t[i - 1], "WITH") || is_word(&t[i - 1], "RECURSIVE") || t[i - 1].kind == T_COMMA))
            continue;
        size_t as = i + 1;
        if (t[as].kind == T_OPEN) /* its column names */
            while (as < n && t[as].kind != T_CLOSE)
                as++;
        if (as < n && t[as].kind == T_CLOSE)
            as++;
        if (as >= n || !is_word(&t[as], "AS"))
            continue;
        size_t k = as + 1;
        if (is_word(&t[k], "NOT"))
            k++;
        if (k < n && is_word(&t[k], "MATERIALIZED"))
            k++;
        if (k < n && t[k].kind == T_OPEN)
            return true;
    }
    return false;
}

/* Words a "(" may follow that are not functions: keywords, constructs the grammar resolves by type. */
static const char *const not_functions[] = {
    "ANY", "ALL", "SOME", "ARRAY", "ROW", "EXISTS", "COALESCE", "GREATEST", "LEAST", "CAST", "VALUES", "FILTER",
    "OVER", "WITHIN", "MATERIALIZED", "NOT", "AND", "OR", "WHERE", "SELECT", "ON", "KEY", "UNIQUE", "CONFLICT",
    "INTO", "TABLE", "INDEX", "REFERENCES", "ORDINALITY", "VACUUM", "ANALYZE", "EXPLAIN", "COPY", "WITH",
    "DISTINCT", "BY", "THEN", "ELSE", "WHEN", "JOIN", "LATERAL", "FROM", "SET", "RETURNING", "HAVING", "LIMIT",
    "OFFSET", "IF", "TO", "CHECK", "DEFAULT", "AS", "IS", "FOR", "DO", "IN", "USING", "VIEW", NULL,
};

/* What may precede an expression: after it, a word and "(" is a function call. */
static bool expression_start(const struct tok *prev)
{
    static const char *const words[] = {
        "SELECT", "WHERE", "AND", "OR", "NOT", "WHEN", "THEN", "ELSE", "BY", "HAVING", "RETURNING", "FROM",
        "JOIN", "LATERAL", "ON", "IS", "DISTINCT", "LIMIT", "OFFSET", "DEFAULT", "CHECK", "SET", "USING",
        "CASE", "VALUES", NULL,
    };
    if (!prev)
        return false;
    switch (prev->kind) {
    case T_OPEN:
    case T_COMMA:
    case T_OP:
    case T_QOP: return true;
    case T_WORD: return is_any_word(prev, words);
    default: return false;
    }
}

/* Words that take a table after them, and those that may follow them instead of a table. */
static const char *const before_table[] = {"FROM", "JOIN", "UPDATE", "INTO", "USING", "TABLE", "TRUNCATE", "COPY",
                                           NULL};
static const char *const not_tables[] = {"LATERAL", "ONLY", "STDIN", "STDOUT", "IF", "SELECT", "TABLES", "SET", "OF", "SKIP", "NOWAIT", "ROWS",
                                            /* reserved words: a trigger's "UPDATE ON t", "OLD TABLE AS x" */
                                            "ON", "AS", NULL};

struct checker {
    const char *sql;
    const struct tok *t;
    size_t n;
    struct strbuf out;
    size_t problems;
};

static void problem(struct checker *c, const char *what, const struct tok *at)
{
    c->problems++;
    sb_appendf(&c->out, "%s: %.*s at offset %zu\n", what, (int)(at->n > 60 ? 60 : at->n), at->s,
               (size_t)(at->s - c->sql));
}

/* "*" as in count(*), t.* or SELECT *: not a multiplication. */
static bool is_star(const struct checker *c, size_t i)
{
    const struct tok *prev = i > 0 ? &c->t[i - 1] : NULL, *next = i + 1 < c->n ? &c->t[i + 1] : NULL;
    bool before = !prev || prev->kind == T_OPEN || prev->kind == T_DOT || prev->kind == T_COMMA ||
                  is_word(prev, "SELECT") || is_word(prev, "DISTINCT");
    bool after = !next || next->kind == T_CLOSE || next->kind == T_COMMA || next->kind == T_SEMI ||
                 is_word(next, "FROM");
    return before && after;
}

static void check_operator(struct checker *c, size_t i)
{
    const struct tok *t = &c->t[i];
    if (t->assignment || is_op(t, "=>") || (is_op(t, "*") && is_star(c, i)))
        return;
    problem(c, "unqualified operator", t);
}

/* Constructs that look an operator up on the search path, with no way to name its schema. */
static const char *const forbidden[] = {"BETWEEN", "ILIKE", "LIKE", "SIMILAR", "NULLIF", "OVERLAPS", NULL};

static void check_construct(struct checker *c, size_t i)
{
    const struct tok *t = &c->t[i], *next = i + 1 < c->n ? &c->t[i + 1] : NULL;
    if (is_any_word(t, forbidden))
        problem(c, "construct that looks an operator up on the search path", t);
    else if (is_word(t, "IN") && next && next->kind == T_OPEN)
        problem(c, "IN (...) looks \"=\" up on the search path", t);
    else if (is_word(t, "USING") && next && next->kind == T_OPEN)
        problem(c, "JOIN ... USING looks \"=\" up on the search path", t);
    else if (is_word(t, "IS") && next && (is_word(next, "DISTINCT") ||
                                          (is_word(next, "NOT") && i + 2 < c->n && is_word(&c->t[i + 2], "DISTINCT"))))
        problem(c, "IS [NOT] DISTINCT FROM looks \"=\" up on the search path", t);
    else if (is_word(t, "CASE") && next && !is_word(next, "WHEN"))
        problem(c, "CASE x WHEN looks \"=\" up on the search path", t);
    else if (t->n == 1 && toupper((unsigned char)*t->s) == 'U' && next && is_op(next, "&") && next->glued)
        problem(c, "U&'' string", t);
}

/* A word or quoted identifier followed by "(" where an expression may start: a function, which must be
 * schema-qualified. */
static void check_function(struct checker *c, size_t i)
{
    const struct tok *t = &c->t[i], *prev = i > 0 ? &c->t[i - 1] : NULL;
    if (i + 1 >= c->n || c->t[i + 1].kind != T_OPEN || (prev && prev->kind == T_DOT))
        return;
    if (t->kind == T_WORD && (is_any_word(t, not_functions) || is_any_word(t, forbidden) || *t->s == '$'))
        return;
    if (expression_start(prev))
        problem(c, "unqualified function", t);
}

/* Whether token i is in a REVOKE statement (its FROM names roles, not tables). */
static bool in_revoke(const struct checker *c, size_t i)
{
    while (i-- > 0 && c->t[i].kind != T_SEMI)
        if (is_word(&c->t[i], "REVOKE"))
            return true;
    return false;
}

/* A table after FROM, JOIN, UPDATE, INTO, USING...: schema-qualified, or a name the statement defines. */
static void check_table(struct checker *c, size_t i)
{
    const struct tok *t = &c->t[i], *prev = i > 0 ? &c->t[i - 1] : NULL;
    if (!prev || !is_any_word(prev, before_table) || (t->kind == T_WORD && is_any_word(t, not_tables)))
        return;
    if (is_word(prev, "FROM") && in_revoke(c, i))
        return;
    /* IS DISTINCT FROM x; "x." qualified; a function in FROM, JOIN or USING (checked as one) */
    if (i >= 2 && is_word(&c->t[i - 2], "DISTINCT"))
        return;
    const struct tok *next = i + 1 < c->n ? &c->t[i + 1] : NULL;
    if (next && (next->kind == T_DOT || (next->kind == T_OPEN && (is_word(prev, "FROM") || is_word(prev, "JOIN") ||
                                                                  is_word(prev, "USING")))))
        return;
    if (*t->s == '$' || is_cte_name(c->t, c->n, t))
        return;
    problem(c, "table not schema-qualified", t);
}

size_t sql_check(const char *sql, char **problems)
{
    struct checker c = {.sql = sql};
    struct tok *t;
    sb_init(&c.out);
    size_t n = tokenize(sql, &t);
    n = fold_operators(t, n, sql, &c.out, &c.problems);
    mark_assignments(t, n);
    c.t = t;
    c.n = n;
    for (size_t i = 0; i < n; i++) {
        switch (t[i].kind) {
        case T_OP: check_operator(&c, i); break;
        case T_WORD:
            check_construct(&c, i);
            check_function(&c, i);
            check_table(&c, i);
            break;
        case T_IDENT:
            check_function(&c, i);
            check_table(&c, i);
            break;
        default: break;
        }
    }
    free(t);
    if (problems)
        *problems = sb_finish(&c.out);
    else
        sb_free(&c.out);
    return c.problems;
}
