/*
 * candidates.c: the rows of a form a run can have work on (see
 * candidates.h).
 */
#include "candidates.h"
#include "hold.h"
#include "ax.h"
#include "plan.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything that decides whether an anonymised row is clean: the batch statement and the values it takes. */
static char *rule_text(const struct form *f)
{
    char *batch = plan_batch(f, PLAN_ANONYMISE);
    char *text = ax_asprintf("%s\n%s\n%s\n%s", batch, f->sql.endpoints ? f->sql.endpoints : "{}",
                             f->sql.stat_keys ? f->sql.stat_keys : "", f->sql.block_keys ? f->sql.block_keys : "");
    free(batch);
    return text;
}

/*
 * The digest of the form's rule (rule[65]) and the instant before which its
 * anonymised rows were found clean under it ("-infinity": never).
 */
static int read_check(struct tenant *t, const struct form *f, char *rule, char *since, size_t len)
{
    PGresult *res;
    char *text = rule_text(f);
    const char *v[2] = {f->table, text};
    int rc = db_query(&t->db, &res, DB_ONE_ROW(2),
                      "SELECT r.digest, COALESCE((SELECT c.checked_until::text FROM anonymizer.checked c"
                      "  WHERE c.table_name OPERATOR(pg_catalog.=) $1 AND c.rule OPERATOR(pg_catalog.=) r.digest),"
                      "  '-infinity')"
                      " FROM (SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to($2, 'UTF8')), 'hex')"
                      " AS digest) r",
                      2, NULL, v);
    free(text);
    if (rc)
        return rc;
    snprintf(rule, 65, "%s", PQgetvalue(res, 0, 0));
    snprintf(since, len, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return AX_OK;
}

int candidates_since(struct tenant *t, const struct form *f, char *since, size_t len)
{
    bool exists = false, readable = false;
    char rule[65];
    snprintf(since, len, "-infinity");
    int rc = db_relation(&t->db, "anonymizer", "checked", &exists, &readable);
    if (rc || !exists || !readable)
        return rc;
    return read_check(t, f, rule, since, len);
}

int candidates_clear(struct tenant *t, const struct form *f)
{
    const char *v[1] = {f->table};
    return db_command(&t->db, "DELETE FROM anonymizer.candidates WHERE table_name OPERATOR(pg_catalog.=) $1", 1, NULL,
                      v);
}

static int fill(struct tenant *t, const struct form *f, struct form_candidates *fc)
{
    PGresult *res;
    int rc = read_check(t, f, fc->rule, fc->since, sizeof fc->since);
    /* the transaction's start: the rows this pass sees were anonymised before it, or later */
    if (rc == AX_OK)
        rc = db_query(&t->db, &res, DB_ONE_ROW(1),
                      "SELECT (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::interval)::text", 0, NULL, NULL);
    if (rc)
        return rc;
    snprintf(fc->next, sizeof fc->next, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if ((rc = candidates_clear(t, f)))
        return rc;
    /* the holds in force: the whole form, or some submissions, kept out */
    const char *hv[1] = {f->table};
    if ((rc = db_query(&t->db, &res, DB_ONE_ROW(2),
                       "SELECT COALESCE(pg_catalog.bool_or(h.submission_id IS NULL), false),"
                       " COALESCE(pg_catalog.array_agg(h.submission_id) FILTER (WHERE h.submission_id IS NOT NULL), '{}')"
                       " FROM anonymizer.holds h WHERE " HOLD_IN_FORCE("$1"),
                       1, NULL, hv)))
        return rc;
    bool whole = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    char *held = ax_strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    bool some = strcmp(held, "{}") != 0;
    /* two ranges of w.c.s.'s index on anonymised (a bitmap of both), or the whole table the first time */
    const char *rows = " WHERE (m.anonymised IS NULL OR m.anonymised OPERATOR(pg_catalog.>=) $2::timestamptz)";
    char *sql = ax_asprintf("INSERT INTO anonymizer.candidates (table_name, id) SELECT $1, m.id FROM public.%s m%s%s",
                            f->q_table, rows, some ? " AND m.id OPERATOR(pg_catalog.<>) ALL ($3::bigint[])" : "");
    const char *iv[3] = {f->table, fc->since, held};
    rc = whole ? AX_OK : db_query(&t->db, &res, DB_ANY, sql, some ? 3 : 2, NULL, iv);
    free(sql);
    if (rc == AX_OK && !whole) {
        fc->count = atoll(PQcmdTuples(res));
        PQclear(res);
    }
    /* what the holds keep that a run would look at */
    if (rc == AX_OK && (whole || some)) {
        sql = ax_asprintf("SELECT pg_catalog.count(*) FROM public.%s m%s%s", f->q_table, rows,
                          whole ? "" : " AND m.id OPERATOR(pg_catalog.=) ANY ($3::bigint[])");
        /* $1 is not used there: typed, so that the server accepts it */
        rc = db_query(&t->db, &res, DB_ONE_ROW(1), sql, whole ? 2 : 3, (const Oid[]){DB_TEXTOID, 0, 0}, iv);
        free(sql);
        if (rc == AX_OK) {
            fc->held = atoll(PQgetvalue(res, 0, 0));
            PQclear(res);
        }
    }
    free(held);
    return rc;
}

int candidates_fill(struct tenant *t, const struct form *f, struct form_candidates *fc)
{
    memset(fc, 0, sizeof *fc);
    int rc = db_cmd(&t->db, "BEGIN");
    if (rc == AX_OK)
        rc = fill(t, f, fc);
    if (rc == AX_OK)
        rc = db_cmd(&t->db, "COMMIT");
    if (rc) {
        db_rollback_quietly(&t->db);
        memset(fc, 0, sizeof *fc);
    }
    return rc;
}

int candidates_bounds(struct tenant *t, const struct form *f, long long per_unit, size_t max, long long **bounds,
                      size_t *n)
{
    PGresult *res;
    char every[32], limit[32];
    snprintf(every, sizeof every, "%lld", per_unit < 1 ? 1 : per_unit);
    snprintf(limit, sizeof limit, "%zu", max);
    const char *v[3] = {f->table, every, limit};
    const Oid ty[3] = {DB_TEXTOID, DB_INT8OID, DB_INT8OID};
    *bounds = NULL;
    *n = 0;
    int rc = db_query(&t->db, &res, (struct db_shape){1, 0, -1},
                      "SELECT x.id FROM (SELECT c.id, pg_catalog.row_number() OVER (ORDER BY c.id) AS n,"
                      " pg_catalog.count(*) OVER () AS total FROM anonymizer.candidates c"
                      " WHERE c.table_name OPERATOR(pg_catalog.=) $1) x"
                      /* no part of less than half a unit at the end */
                      " WHERE (x.n OPERATOR(pg_catalog.%) $2) OPERATOR(pg_catalog.=) 0"
                      " AND (x.total OPERATOR(pg_catalog.-) x.n) OPERATOR(pg_catalog.>=) ($2 OPERATOR(pg_catalog./) 2)"
                      " ORDER BY x.id LIMIT $3",
                      3, ty, v);
    if (rc)
        return rc;
    *n = (size_t)PQntuples(res);
    *bounds = ax_calloc(*n + 1, sizeof **bounds);
    for (size_t i = 0; i < *n; i++)
        (*bounds)[i] = atoll(PQgetvalue(res, (int)i, 0));
    PQclear(res);
    return AX_OK;
}

int candidates_checked(struct tenant *t, const struct form *f, const struct form_candidates *fc)
{
    if (!fc->next[0] || !fc->rule[0])
        return AX_OK;
    const char *v[3] = {f->table, fc->rule, fc->next};
    return db_command(&t->db,
                      "INSERT INTO anonymizer.checked AS c (table_name, rule, checked_until) VALUES ($1, $2, $3::timestamptz)"
                      " ON CONFLICT (table_name) DO UPDATE SET rule = EXCLUDED.rule,"
                      " checked_until = EXCLUDED.checked_until, updated_at = pg_catalog.now()",
                      3, NULL, v);
}
