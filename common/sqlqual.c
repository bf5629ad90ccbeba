/*
 * sqlqual.c: the operators of a statement qualified with pg_catalog (see
 * sqlqual.h).
 *
 * OPERATOR(pg_catalog.=) does not have the precedence of "=": PostgreSQL
 * gives it that of "any other operator", above comparisons.  So a
 * comparison is rewritten with both operands in parentheses, an operand
 * running, at its own depth of parentheses, to the nearest boolean
 * connective, comma or clause keyword.  The other operators (||, ->, ->>,
 * #>>, ?, @>...) already share "any other operator"'s precedence and are
 * only qualified; arithmetic (+ - * / % ^), which has its own precedences
 * and only ever applies to operands of exactly matching built-in types in
 * the tool's statements, is left as written.
 */
#include "sqlqual.h"
#include "ax.h"
#include "strbuf.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum tok_kind { T_SPACE, T_WORD, T_QUOTED, T_OP, T_OPEN, T_CLOSE, T_COMMA, T_OTHER };

struct tok {
    enum tok_kind kind;
    const char *s;
    size_t n;
    int open_before, close_after; /* parentheses the rewrite adds around it */
    bool assignment;              /* the "=" of SET column = value: not an operator */
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
        if (backslashes && *s == '\\' && s[1]) {
            s += 2;
        } else if (*s == q && s[1] == q) {
            s += 2;
        } else if (*s == q) {
            return s + 1;
        } else {
            s++;
        }
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

static size_t tokenize(const char *sql, struct tok **out)
{
    size_t n = 0, cap = 64;
    struct tok *t = ax_malloc(cap * sizeof *t);
    for (const char *p = sql; *p;) {
        const char *e;
        enum tok_kind k;
        if (isspace((unsigned char)*p)) {
            for (e = p; isspace((unsigned char)*e); e++)
                ;
            k = T_SPACE;
        } else if (p[0] == '-' && p[1] == '-') {
            e = strchr(p, '\n');
            e = e ? e : p + strlen(p);
            k = T_SPACE;
        } else if (p[0] == '/' && p[1] == '*') {
            e = strstr(p + 2, "*/");
            e = e ? e + 2 : p + strlen(p);
            k = T_SPACE;
        } else if (*p == '\'') {
            bool escapes = n > 0 && t[n - 1].kind == T_WORD && t[n - 1].n == 1 && toupper((unsigned char)*t[n - 1].s) == 'E';
            e = quoted_end(p, '\'', escapes);
            k = T_QUOTED;
        } else if (*p == '"') {
            e = quoted_end(p, '"', false);
            k = T_QUOTED;
        } else if (*p == '$' && (e = dollar_end(p))) {
            k = T_QUOTED;
        } else if (ident_char(*p)) {
            for (e = p; ident_char(*e); e++)
                ;
            k = T_WORD;
        } else if (op_char(*p) && op_length(p) > 0) {
            e = p + op_length(p);
            k = T_OP;
        } else {
            e = p + 1;
            k = *p == '(' || *p == '[' ? T_OPEN : *p == ')' || *p == ']' ? T_CLOSE : *p == ',' ? T_COMMA : T_OTHER;
            /* "::" and "." bind an operand's parts together */
        }
        if (n == cap)
            t = ax_reallocarray(t, cap *= 2, sizeof *t);
        t[n++] = (struct tok){k, p, (size_t)(e - p), 0, 0, false};
        p = e;
    }
    *out = t;
    return n;
}

static bool is_word(const struct tok *t, const char *w)
{
    return t->kind == T_WORD && t->n == strlen(w) && strncasecmp(t->s, w, t->n) == 0;
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
    return t->kind == T_OP && t->n == strlen(op) && strncmp(t->s, op, t->n) == 0;
}

static bool comparison(const struct tok *t)
{
    static const char *const ops[] = {"=", "<>", "!=", "<", ">", "<=", ">="};
    for (size_t i = 0; i < AX_ARRAY_LEN(ops); i++)
        if (is_op(t, ops[i]))
            return true;
    return is_word(t, "LIKE");
}

/* Words an operand never crosses: connectives and clause keywords. */
static const char *const left_stops[] = {"AND", "OR", "NOT", "WHEN", "THEN", "ELSE", "WHERE", "ON", "SELECT",
                                         "CASE", "HAVING", "SET", "BY", "RETURN", "RETURNING", "USING", NULL};
static const char *const right_stops[] = {"AND", "OR", "THEN", "ELSE", "END", "WHEN", "FROM", "WHERE", "GROUP",
                                          "ORDER", "LIMIT", "OFFSET", "HAVING", "AS", "IS", "UNION", "EXCEPT",
                                          "INTERSECT", "RETURNING", "JOIN", "LEFT", "RIGHT", "INNER", "CROSS",
                                          "FULL", "ON", "NOT", "ASC", "DESC", "NULLS", "FOR", "WINDOW", "IN",
                                          "LIKE", "BETWEEN", "DO", NULL};

static bool stops(const struct tok *t, const char *const *words)
{
    return t->kind == T_COMMA || (t->kind == T_OTHER && *t->s == ';') || comparison(t) || is_any_word(t, words);
}

/* The first token of the left operand of the comparison at i (i itself when there is none). */
static size_t left_start(const struct tok *t, size_t i)
{
    int depth = 0;
    size_t start = i;
    for (size_t k = i; k-- > 0;) {
        if (t[k].kind == T_CLOSE) {
            depth++;
        } else if (t[k].kind == T_OPEN) {
            if (depth == 0)
                break;
            depth--;
        } else if (depth == 0 && stops(&t[k], left_stops)) {
            break;
        }
        if (t[k].kind != T_SPACE)
            start = k;
    }
    return start;
}

/* The last token of the right operand of the comparison at i (i itself when there is none). */
static size_t right_end(const struct tok *t, size_t n, size_t i)
{
    int depth = 0;
    size_t end = i;
    for (size_t k = i + 1; k < n; k++) {
        if (t[k].kind == T_OPEN) {
            depth++;
        } else if (t[k].kind == T_CLOSE) {
            if (depth == 0)
                break;
            depth--;
        } else if (depth == 0 && stops(&t[k], right_stops)) {
            break;
        }
        if (t[k].kind != T_SPACE)
            end = k;
    }
    return end;
}

/* The next token after i that is not space, or n. */
static size_t next_token(const struct tok *t, size_t n, size_t i)
{
    for (i++; i < n && t[i].kind == T_SPACE; i++)
        ;
    return i;
}

static bool subquery_at(const struct tok *t, size_t n, size_t i)
{
    static const char *const starts[] = {"SELECT", "WITH", "VALUES", NULL};
    return i < n && t[i].kind == T_OPEN && *t[i].s == '(' && next_token(t, n, i) < n &&
           is_any_word(&t[next_token(t, n, i)], starts);
}

/*
 * The "=" of "SET column = value" (UPDATE, ON CONFLICT DO UPDATE, SET
 * statements) assigns: the first "=" after SET, or after a comma of its
 * list, at the list's depth; the list ends at FROM, WHERE or RETURNING.
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
        } else if (set_depth == depth && (is_any_word(&t[i], ends) || (t[i].kind == T_OTHER && *t[i].s == ';'))) {
            set_depth = -1;
        } else if (set_depth == depth && t[i].kind == T_COMMA) {
            expect = true;
        } else if (set_depth == depth && expect && is_op(&t[i], "=")) {
            t[i].assignment = true;
            expect = false;
        }
    }
}

char *sql_qualify_operators(const char *sql)
{
    struct tok *t;
    size_t n = tokenize(sql, &t);
    /* what each token becomes: NULL, itself */
    const char **as = ax_calloc(n + 1, sizeof *as);
    char **owned = ax_calloc(n + 1, sizeof *owned);
    mark_assignments(t, n);
    for (size_t i = 0; i < n; i++) {
        if (t[i].assignment)
            continue;
        if (is_word(&t[i], "OPERATOR") && next_token(t, n, i) < n && t[next_token(t, n, i)].kind == T_OPEN) {
            /* already qualified: as written, through its closing parenthesis */
            size_t k = next_token(t, n, i);
            while (k < n && t[k].kind != T_CLOSE)
                k++;
            i = k;
            continue;
        }
        bool in_subquery = is_word(&t[i], "IN") && subquery_at(t, n, next_token(t, n, i));
        if (comparison(&t[i]) || in_subquery) {
            size_t l = left_start(t, i), r = right_end(t, n, i), next = next_token(t, n, i);
            if (l < i) {
                t[l].open_before++;
                /* closed after the last token before i that is not space */
                size_t last = i;
                while (last-- > l && t[last].kind == T_SPACE)
                    ;
                t[last].close_after++;
            }
            bool quantified = in_subquery || (next < n && (is_word(&t[next], "ANY") || is_word(&t[next], "ALL") ||
                                                           is_word(&t[next], "SOME")));
            if (r > i && !quantified) {
                t[next].open_before++;
                t[r].close_after++;
            }
            if (in_subquery)
                as[i] = "OPERATOR(pg_catalog.=) ANY";
            else if (is_word(&t[i], "LIKE"))
                as[i] = "OPERATOR(pg_catalog.~~)";
            else if (is_op(&t[i], "!="))
                as[i] = "OPERATOR(pg_catalog.<>)";
            else
                as[i] = owned[i] = ax_asprintf("OPERATOR(pg_catalog.%.*s)", (int)t[i].n, t[i].s);
        } else if (t[i].kind == T_OP && !(t[i].n == 1 && strchr("+-*/%^", *t[i].s)) && !is_op(&t[i], "=>")) {
            as[i] = owned[i] = ax_asprintf("OPERATOR(pg_catalog.%.*s)", (int)t[i].n, t[i].s);
        }
    }
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < t[i].open_before; k++)
            sb_appendc(&sb, '(');
        if (as[i]) {
            /* written apart from its operands: "f->>'k'" is "f OPERATOR(pg_catalog.->>) 'k'" */
            if (sb.len && !strchr(" \t\n(", sb.buf[sb.len - 1]))
                sb_appendc(&sb, ' ');
            sb_append(&sb, as[i]);
            if (i + 1 < n && !t[i].close_after && !strchr(" \t\n),", *t[i + 1].s))
                sb_appendc(&sb, ' ');
        } else
            sb_appendn(&sb, t[i].s, t[i].n);
        for (int k = 0; k < t[i].close_after; k++)
            sb_appendc(&sb, ')');
        free(owned[i]);
    }
    free(owned);
    free(as);
    free(t);
    return sb_finish(&sb);
}
