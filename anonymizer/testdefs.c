/*
 * testdefs.c: the test definitions w.c.s. makes from real submissions (see
 * testdefs.h).
 */
#include "testdefs.h"
#include "ax.h"
#include "escape.h"
#include "log.h"
#include "sqltext.h"
#include "strbuf.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* Values shorter than this are not searched in snapshots: "12" or "Non" would match the XML itself. */
#define MIN_SEARCHED 4

/* When a test definition was made (alias d): its first snapshot, else the real submission's receipt. */
static void made_sql(const struct tenant *t, struct strbuf *sb)
{
    if (t->facts.has_snapshots)
        sb_append(sb, "COALESCE((SELECT pg_catalog.min(s.\"timestamp\") FROM public.snapshots s"
                      " WHERE s.object_type OPERATOR(pg_catalog.=) 'testdef'"
                      " AND s.object_id OPERATOR(pg_catalog.=) d.id::text), d.frozen_submission_datetime)");
    else
        sb_append(sb, "d.frozen_submission_datetime");
}

/* The answers of a test definition (alias d), an object whatever is stored. */
#define FIELDS_OF_D                                                                                           \
    "(CASE WHEN pg_catalog.jsonb_typeof(d.data OPERATOR(pg_catalog.->) 'fields') OPERATOR(pg_catalog.=) 'object'" \
    " THEN d.data OPERATOR(pg_catalog.->) 'fields' ELSE '{}'::jsonb END)"

/* The keys of testdef.data's fields the form keeps: "<id>", "<id>_display", ... of its kept columns. */
static char *kept_keys(const struct form *f)
{
    char **keys = ax_calloc(f->ncols + 1, sizeof *keys);
    size_t n = 0;
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls != COL_KEEP || !c->field || !c->field->column)
            continue;
        size_t plen = strlen(c->field->column);
        if (strncmp(c->name, c->field->column, plen) == 0)
            keys[n++] = ax_asprintf("%s%s", c->field->id, c->name + plen);
    }
    return pg_text_array_taking(keys, n);
}

/* The SELECT of a form's test definitions with made, holds and due ($1 object type, $2 object id, $3 kept
 * keys, $4 cutoff). */
static char *base_sql(const struct tenant *t, const char *user_holds)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, "SELECT d.id, d.user_uuid, ");
    made_sql(t, &sb);
    sb_append(&sb, " AS made, (EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(" FIELDS_OF_D ") e"
                   " WHERE e.key OPERATOR(pg_catalog.<>) ALL ($3::text[])"
                   " AND e.value OPERATOR(pg_catalog.<>) 'null'::jsonb)");
    if (user_holds)
        sb_appendf(&sb, " OR EXISTS (SELECT 1 FROM public.users u WHERE u.test_uuid OPERATOR(pg_catalog.=) d.user_uuid"
                        " AND (%s))", user_holds);
    sb_append(&sb, ") AS holds FROM public.testdef d"
                   " WHERE d.object_type OPERATOR(pg_catalog.=) $1 AND d.object_id OPERATOR(pg_catalog.=) $2");
    return sb_finish(&sb);
}

bool testdefs_present(const struct tenant *t)
{
    return t->facts.has_testdef;
}

/* One statement over a form's test definitions (head, base_sql, tail) and its
 * parameters: $1 object type, $2 object id, $3 kept keys, $4 cutoff, $5 extra (a timestamptz, or NULL). */
struct query {
    char *sql, id[16], *kept;
    const char *values[5];
    Oid types[5];
};

static void query_init(struct query *q, const struct tenant *t, const struct form *f, const char *head,
                       const char *tail, const char *extra)
{
    char *base = base_sql(t, t->facts.users_holds);
    q->sql = ax_asprintf("%s%s%s", head, base, tail);
    free(base);
    snprintf(q->id, sizeof q->id, "%d", f->formdef_id);
    q->kept = kept_keys(f);
    const char *values[5] = {f->of_card ? "carddefs" : "formdefs", q->id, q->kept, f->cutoff, extra};
    const Oid types[5] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TIMESTAMPTZOID, DB_TIMESTAMPTZOID};
    memcpy(q->values, values, sizeof values);
    memcpy(q->types, types, sizeof types);
}

static void query_free(struct query *q)
{
    free(q->sql);
    free(q->kept);
}

int testdefs_count(struct tenant *t, const struct form *f, const char *legal_limit, struct testdef_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!t->facts.has_testdef || f->kind == FORM_KIND_TEST)
        return AX_OK;
    struct query q;
    query_init(&q, t, f,
               "SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE due),"
               " pg_catalog.count(*) FILTER (WHERE due AND COALESCE(made OPERATOR(pg_catalog.<) $5, true)),"
               " " SQL_ISO_UTC("pg_catalog.min(made) FILTER (WHERE holds)")
               " FROM (SELECT made, holds, holds AND COALESCE(made OPERATOR(pg_catalog.<) $4, true) AS due"
               " FROM (",
               ") b) c", legal_limit);
    PGresult *res;
    int rc = db_query(&t->db, &res, DB_ONE_ROW(4), q.sql, 5, q.types, q.values);
    if (rc == AX_OK) {
        out->total = db_value_ll(res, 0, 0);
        out->due = db_value_ll(res, 0, 1);
        out->past_limit = db_value_ll(res, 0, 2);
        out->oldest = PQgetisnull(res, 0, 3) ? NULL : ax_strdup(PQgetvalue(res, 0, 3));
        PQclear(res);
    }
    query_free(&q);
    return rc;
}

/* -- the run ------------------------------------------------------------------------ */

/* s with every occurrence of needle removed; *changed set when there was one. */
static char *remove_all(char *s, const char *needle, bool *changed)
{
    size_t nl = strlen(needle);
    if (!s || nl == 0 || !strstr(s, needle))
        return s;
    struct strbuf sb;
    sb_init(&sb);
    const char *p = s, *hit;
    while ((hit = strstr(p, needle)) != NULL) {
        sb_appendn(&sb, p, (size_t)(hit - p));
        p = hit + nl;
    }
    sb_append(&sb, p);
    free(s);
    *changed = true;
    return sb_finish(&sb);
}

static char *xml_escaped(const char *v, bool quotes)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, "");
    for (const char *p = v; *p; p++) {
        switch (*p) {
        case '&': sb_append(&sb, "&amp;"); break;
        case '<': sb_append(&sb, "&lt;"); break;
        case '>': sb_append(&sb, "&gt;"); break;
        case '"':
            if (quotes) {
                sb_append(&sb, "&quot;");
                break;
            }
            /* fall through */
        default: sb_appendc(&sb, *p);
        }
    }
    return sb_finish(&sb);
}

/* v as inside a JSON string: as json-c writes it, or with every non-ASCII character \uXXXX (Python's default). */
static char *json_escaped(const char *v, bool ascii)
{
    json_object *o = json_object_new_string(v);
    const char *q = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, "");
    size_t n = strlen(q);
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)q[i];
        size_t len = c >= 0x80 ? esc_utf8_len((const unsigned char *)q + i) : 1;
        if (!ascii || c < 0x80 || len < 2) {
            sb_appendc(&sb, q[i]);
            continue;
        }
        unsigned cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
        for (size_t k = 1; k < len; k++)
            cp = (cp << 6) | ((unsigned char)q[i + k] & 0x3f);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            sb_appendf(&sb, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        } else {
            sb_appendf(&sb, "\\u%04x", cp);
        }
        i += len - 1;
    }
    json_object_put(o);
    return sb_finish(&sb);
}

/* Every value removed from a snapshot's text in each form it can take there (as is, XML, JSON, both). */
static char *blank_text(char *text, char **values, size_t n, bool *changed)
{
    for (size_t i = 0; text && i < n; i++) {
        char *j = json_escaped(values[i], false), *ja = json_escaped(values[i], true);
        char *forms[] = {ax_strdup(values[i]), xml_escaped(values[i], false), xml_escaped(values[i], true),
                         xml_escaped(j, false), xml_escaped(ja, false), j, ja};
        for (size_t k = 0; k < AX_ARRAY_LEN(forms); k++) {
            text = remove_all(text, forms[k], changed);
            free(forms[k]);
        }
    }
    return text;
}

static int by_length_desc(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* The values a test definition and its test user hold that are to go, longest first. */
static int values_to_blank(struct tenant *t, const char *id, const char *user_uuid, const char *kept,
                           const char *user_text, char ***out, size_t *n)
{
    struct strbuf sql;
    sb_init(&sql);
    sb_append(&sql, "SELECT DISTINCT v FROM (SELECT pg_catalog.jsonb_path_query(e.value,"
                    " '$.** ? (@.type() == \"string\" || @.type() == \"number\")') OPERATOR(pg_catalog.#>>) '{}' AS v"
                    " FROM public.testdef d, pg_catalog.jsonb_each(" FIELDS_OF_D ") e"
                    " WHERE d.id OPERATOR(pg_catalog.=) $1::integer AND e.key OPERATOR(pg_catalog.<>) ALL ($2::text[])");
    if (user_text)
        sb_appendf(&sql, " UNION ALL SELECT x FROM public.users u, pg_catalog.unnest(ARRAY[%s]) x"
                         " WHERE u.test_uuid OPERATOR(pg_catalog.=) $3",
                   user_text);
    sb_appendf(&sql, ") w WHERE v IS NOT NULL AND pg_catalog.length(v) OPERATOR(pg_catalog.>=) %d", MIN_SEARCHED);
    const char *values[3] = {id, kept, user_uuid};
    PGresult *res;
    int rc = db_query(&t->db, &res, DB_ROWS(1), sql.buf, user_text ? 3 : 2, NULL, values);
    sb_free(&sql);
    if (rc)
        return rc;
    *n = (size_t)PQntuples(res);
    *out = ax_calloc(*n + 1, sizeof **out);
    for (size_t i = 0; i < *n; i++)
        (*out)[i] = ax_strdup(PQgetvalue(res, (int)i, 0));
    PQclear(res);
    qsort(*out, *n, sizeof **out, by_length_desc);
    return AX_OK;
}

/* The snapshots of a test definition and of its test user, each without the values. */
static int blank_snapshots(struct tenant *t, const char *id, const char *user_uuid, char **vals, size_t nvals)
{
    PGresult *ids = NULL;
    const char *values[2] = {id, user_uuid};
    int rc = db_query(&t->db, &ids, DB_ROWS(1),
                      "SELECT s.id FROM public.snapshots s"
                      " WHERE (s.object_type OPERATOR(pg_catalog.=) 'testdef' AND s.object_id OPERATOR(pg_catalog.=) $1)"
                      " OR (s.object_type OPERATOR(pg_catalog.=) 'user' AND s.object_id OPERATOR(pg_catalog.=) ANY"
                      " (SELECT u.id::text FROM public.users u WHERE u.test_uuid OPERATOR(pg_catalog.=) $2))"
                      " ORDER BY s.id",
                      2, NULL, values);
    for (int i = 0; rc == AX_OK && i < PQntuples(ids); i++) {
        /* one snapshot in memory at a time */
        PGresult *res;
        const char *sid[1] = {PQgetvalue(ids, i, 0)};
        if ((rc = db_query(&t->db, &res, DB_ONE_ROW(2),
                           "SELECT serialization, patch FROM public.snapshots WHERE id OPERATOR(pg_catalog.=) $1::integer",
                           1, NULL, sid)))
            break;
        bool changed = false;
        char *ser = PQgetisnull(res, 0, 0) ? NULL : ax_strdup(PQgetvalue(res, 0, 0));
        char *patch = PQgetisnull(res, 0, 1) ? NULL : ax_strdup(PQgetvalue(res, 0, 1));
        PQclear(res);
        ser = blank_text(ser, vals, nvals, &changed);
        patch = blank_text(patch, vals, nvals, &changed);
        if (changed) {
            const char *upd[3] = {sid[0], ser, patch};
            rc = db_command(&t->db, "UPDATE public.snapshots SET serialization = $2, patch = $3"
                                    " WHERE id OPERATOR(pg_catalog.=) $1::integer",
                            3, NULL, upd);
        }
        free(ser);
        free(patch);
    }
    PQclear(ids);
    return rc;
}

/* One test definition, in one transaction: its values out of the snapshots, its data, its test user. */
static int treat_one(struct tenant *t, const char *id, const char *user_uuid, const char *kept)
{
    const char *set_null = t->facts.users_set_null, *user_text = t->facts.users_as_text;
    char **vals = NULL;
    size_t nvals = 0;
    int rc = db_cmd(&t->db, "BEGIN");
    if (rc == AX_OK)
        rc = values_to_blank(t, id, user_uuid, kept, user_uuid ? user_text : NULL, &vals, &nvals);
    if (rc == AX_OK && t->facts.has_snapshots)
        rc = blank_snapshots(t, id, user_uuid, vals, nvals);
    const char *values[2] = {id, kept};
    if (rc == AX_OK)
        rc = db_command(&t->db,
                        "UPDATE public.testdef d SET data = pg_catalog.jsonb_set(d.data, '{fields}'::text[],"
                        " (SELECT COALESCE(pg_catalog.jsonb_object_agg(e.key, CASE WHEN e.key OPERATOR(pg_catalog.=)"
                        " ANY ($2::text[]) THEN e.value ELSE 'null'::jsonb END), '{}'::jsonb)"
                        " FROM pg_catalog.jsonb_each(" FIELDS_OF_D ") e))"
                        " WHERE d.id OPERATOR(pg_catalog.=) $1::integer"
                        " AND pg_catalog.jsonb_typeof(d.data OPERATOR(pg_catalog.->) 'fields') OPERATOR(pg_catalog.=) 'object'",
                        2, NULL, values);
    if (rc == AX_OK && user_uuid && set_null) {
        char *sql = ax_asprintf("UPDATE public.users SET %s WHERE test_uuid OPERATOR(pg_catalog.=) $1"
                                " AND test_uuid IS NOT NULL",
                                set_null);
        const char *u[1] = {user_uuid};
        rc = db_command(&t->db, sql, 1, NULL, u);
        free(sql);
    }
    if (rc == AX_OK)
        rc = db_cmd(&t->db, "COMMIT");
    else
        db_rollback_quietly(&t->db);
    for (size_t i = 0; i < nvals; i++)
        free(vals[i]);
    free(vals);
    return rc;
}

int testdefs_anonymise(struct tenant *t, const struct form *f, long long *done)
{
    *done = 0;
    if (!t->facts.has_testdef || f->kind == FORM_KIND_TEST || !f->anonymise)
        return AX_OK;
    struct query q;
    query_init(&q, t, f,
               "SELECT id, user_uuid FROM (",
               ") b WHERE holds AND COALESCE(made OPERATOR(pg_catalog.<) $4, true) ORDER BY id", NULL);
    PGresult *res = NULL;
    int rc = db_query(&t->db, &res, DB_ROWS(2), q.sql, 4, q.types, q.values);
    for (int i = 0; rc == AX_OK && i < PQntuples(res); i++) {
        const char *user = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
        if ((rc = treat_one(t, PQgetvalue(res, i, 0), user, q.kept)) == AX_OK)
            (*done)++;
    }
    PQclear(res);
    query_free(&q);
    return rc;
}
