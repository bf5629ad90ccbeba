/*
 * kanon.c: k-anonymity of the BI export (see kanon.h).
 *
 * Every statement runs on the BI side, on the staging table and the form's
 * rows, in the form's export transaction: a consumer sees the rows of a
 * form together with the decision that let them in.
 *
 * A group is the set of rows of one form whose published quasi-identifiers
 * are equal.  It is named by qi_group, a 64-bit hash of the published
 * receipt and done times, channel and of the kept fields that are not
 * harmless (hash_record_extended over the times, the channel and
 * jsonb_hash_extended of those fields): rows are grouped and counted by
 * that hash, set-wise, without looking at wide rows again.  Two different
 * groups would only merge if their hashes collided (for a form with a
 * million different groups, a chance of about one in 37 million, n^2/2^65),
 * which could only make a group look larger than it is; documented in
 * anonymizer-bi(7).
 *
 * The staged rows' quasi-identifiers are first copied into a narrow table
 * (anonymizer_cand): deciding, level by level, updates that table only.
 *
 * Parameters of every statement: $1 tenant, $2 form id, $3 harmless keys
 * (text[]), $4 min_k, $5 time zone, then what the statement needs.
 */
#include "kanon.h"
#include "ax.h"
#include "log.h"
#include "sqltext.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The group of published values: times, channel, and the hash of the quasi-identifying fields. */
#define QI_OF(rt, dt, ch, qh) "pg_catalog.hash_record_extended(ROW(" rt ", " dt ", " ch ", " qh "), 0)"
#define FIELDS_HASH(x) "pg_catalog.jsonb_hash_extended(" x ".fields OPERATOR(pg_catalog.-) $3::text[], 0)"

/* The rows of the form in BI, alias b. */
#define FORM_ROWS "@S.submissions b WHERE b.tenant OPERATOR(pg_catalog.=) $1 AND b.form_id OPERATOR(pg_catalog.=) $2"

/* The staged rows' quasi-identifiers, undecided. */
static const char candidates_sql[] =
    "INSERT INTO pg_temp.anonymizer_cand (submission_id, receipt_time, done_time, channel, qh)"
    " SELECT s.submission_id, s.receipt_time, s.done_time, s.channel, " FIELDS_HASH("s")
    " FROM pg_temp.anonymizer_stage s";

/*
 * The candidates still undecided whose group, with their times truncated
 * to level ($6; NULL: as they are), reaches min_k, counting with them the
 * rows of BI that are not being replaced and the candidates already decided
 * into the same group: decided at that level.
 */
static const char decide_sql[] =
    "WITH h AS MATERIALIZED (SELECT c.submission_id, x.rt, x.dt, " QI_OF("x.rt", "x.dt", "c.channel", "c.qh") " AS qi"
    "   FROM pg_temp.anonymizer_cand c,"
    "   LATERAL (SELECT COALESCE(pg_catalog.date_trunc($6, c.receipt_time, $5), c.receipt_time) AS rt,"
    "   COALESCE(pg_catalog.date_trunc($6, c.done_time, $5), c.done_time) AS dt) x WHERE c.level IS NULL),"
    " pool AS (SELECT h.qi, true AS candidate FROM h"
    "   UNION ALL SELECT b.qi_group, false FROM " FORM_ROWS " AND b.qi_group OPERATOR(pg_catalog.=) ANY (SELECT qi FROM h)"
    "   AND NOT EXISTS (SELECT 1 FROM pg_temp.anonymizer_cand s"
    "    WHERE s.submission_id OPERATOR(pg_catalog.=) b.submission_id)"
    "   UNION ALL SELECT d.qi, false FROM pg_temp.anonymizer_cand d WHERE d.level IS NOT NULL"
    "   AND d.qi OPERATOR(pg_catalog.=) ANY (SELECT qi FROM h)),"
    " big AS (SELECT qi FROM pool GROUP BY qi"
    "   HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>=) $4 AND pg_catalog.bool_or(candidate)),"
    " u AS (UPDATE pg_temp.anonymizer_cand c SET level = COALESCE($6, ''), qi = h.qi, receipt_time = h.rt,"
    "   done_time = h.dt FROM h JOIN big ON big.qi OPERATOR(pg_catalog.=) h.qi"
    "   WHERE c.submission_id OPERATOR(pg_catalog.=) h.submission_id RETURNING 1)"
    "SELECT pg_catalog.count(*) FROM u";

/* The groups the staged rows leave or change (their BI rows are replaced or withdrawn): checked after. */
static const char old_groups_sql[] =
    "INSERT INTO pg_temp.anonymizer_groups SELECT DISTINCT b.qi_group FROM " FORM_ROWS
    " AND b.qi_group IS NOT NULL AND EXISTS (SELECT 1 FROM pg_temp.anonymizer_cand c"
    " WHERE c.submission_id OPERATOR(pg_catalog.=) b.submission_id"
    " AND (c.level IS NULL OR " SQL_DISTINCT("c.qi", "b.qi_group") "))";

static const char all_groups_sql[] =
    "INSERT INTO pg_temp.anonymizer_groups SELECT DISTINCT b.qi_group FROM " FORM_ROWS;

/* Rows of BI whose new version is held back: out of BI until their group is large enough. */
static const char withdraw_staged_sql[] =
    "WITH d AS (DELETE FROM @S.submissions b USING pg_temp.anonymizer_cand c"
    " WHERE b.tenant OPERATOR(pg_catalog.=) $1 AND b.form_id OPERATOR(pg_catalog.=) $2"
    " AND b.submission_id OPERATOR(pg_catalog.=) c.submission_id AND c.level IS NULL RETURNING 1)"
    " SELECT pg_catalog.count(*) FROM d";

/* What a merge writes: new rows inserted, changed ones updated, identical ones left alone. */
#define MERGE_TAIL                                                                                                 \
    " ON CONFLICT (tenant, form_id, submission_id) DO UPDATE SET"                                                 \
    " form_slug = EXCLUDED.form_slug, receipt_time = EXCLUDED.receipt_time,"                                      \
    " last_update_time = EXCLUDED.last_update_time, anonymised_at = EXCLUDED.anonymised_at,"                      \
    " status = EXCLUDED.status, status_name = EXCLUDED.status_name, is_final = EXCLUDED.is_final,"                \
    " channel = EXCLUDED.channel, backoffice_submission = EXCLUDED.backoffice_submission,"                        \
    " criticality_level = EXCLUDED.criticality_level, processing_time = EXCLUDED.processing_time,"                \
    " fields = EXCLUDED.fields, done_time = EXCLUDED.done_time, time_precision = EXCLUDED.time_precision,"         \
    " exported_at = EXCLUDED.exported_at, deleted_at = NULL, qi_group = EXCLUDED.qi_group"                        \
    " WHERE ROW(b.form_slug, b.receipt_time, b.last_update_time, b.anonymised_at, b.status, b.status_name,"      \
    "  b.is_final, b.channel, b.backoffice_submission, b.criticality_level, b.processing_time, b.fields,"         \
    "  b.done_time, b.time_precision, b.deleted_at IS NULL, b.qi_group)::text"                                    \
    " OPERATOR(pg_catalog.<>) ROW(EXCLUDED.form_slug, EXCLUDED.receipt_time, EXCLUDED.last_update_time,"          \
    "  EXCLUDED.anonymised_at, EXCLUDED.status, EXCLUDED.status_name, EXCLUDED.is_final, EXCLUDED.channel,"       \
    "  EXCLUDED.backoffice_submission, EXCLUDED.criticality_level, EXCLUDED.processing_time,"                     \
    "  EXCLUDED.fields, EXCLUDED.done_time, EXCLUDED.time_precision, true, EXCLUDED.qi_group)::text"              \
    " RETURNING b.xmax OPERATOR(pg_catalog.=) '0'::xid AS inserted)"                                              \
    " SELECT pg_catalog.count(*) FILTER (WHERE inserted), pg_catalog.count(*) FILTER (WHERE NOT inserted) FROM up"

/* Every staged row as it is (min_k 1). */
static const char merge_all_sql[] =
    "WITH up AS (INSERT INTO @S.submissions AS b (" BI_SUBMISSION_COLUMNS ", exported_at, deleted_at, qi_group)"
    " SELECT " BI_SUBMISSION_COLUMNS ", pg_catalog.now(), NULL, NULL FROM pg_temp.anonymizer_stage" MERGE_TAIL;

/* The decided rows, their times truncated to the level of their decision ('': as staged). */
#define AT_LEVEL(col)                                                                                        \
    "CASE WHEN c.level OPERATOR(pg_catalog.=) '' THEN s." col " ELSE pg_catalog.date_trunc(c.level, s." col ", $5) END"
static const char merge_decided_sql[] =
    "WITH up AS (INSERT INTO @S.submissions AS b (" BI_SUBMISSION_COLUMNS ", exported_at, deleted_at, qi_group)"
    " SELECT s.tenant, s.form_id, s.form_slug, s.submission_id, c.receipt_time, " AT_LEVEL("last_update_time") ","
    " " AT_LEVEL("anonymised_at") ", s.status, s.status_name, s.is_final, s.channel, s.backoffice_submission,"
    " s.criticality_level, COALESCE(c.done_time, " AT_LEVEL("last_update_time") ") OPERATOR(pg_catalog.-)"
    " c.receipt_time, s.fields,"
    " c.done_time, CASE WHEN c.level OPERATOR(pg_catalog.=) '' THEN s.time_precision ELSE c.level END,"
    " pg_catalog.now(), NULL, c.qi"
    " FROM pg_temp.anonymizer_stage s JOIN pg_temp.anonymizer_cand c"
    " ON c.submission_id OPERATOR(pg_catalog.=) s.submission_id"
    " WHERE c.level IS NOT NULL" MERGE_TAIL;

/* The same into a form BI holds nothing of yet (a first export): nothing to merge with, a plain insert. */
static const char insert_decided_sql[] =
    "INSERT INTO @S.submissions (" BI_SUBMISSION_COLUMNS ", exported_at, deleted_at, qi_group)"
    " SELECT s.tenant, s.form_id, s.form_slug, s.submission_id, c.receipt_time, " AT_LEVEL("last_update_time") ","
    " " AT_LEVEL("anonymised_at") ", s.status, s.status_name, s.is_final, s.channel, s.backoffice_submission,"
    " s.criticality_level, COALESCE(c.done_time, " AT_LEVEL("last_update_time") ") OPERATOR(pg_catalog.-)"
    " c.receipt_time, s.fields,"
    " c.done_time, CASE WHEN c.level OPERATOR(pg_catalog.=) '' THEN s.time_precision ELSE c.level END,"
    " pg_catalog.now(), NULL, c.qi"
    " FROM pg_temp.anonymizer_stage s JOIN pg_temp.anonymizer_cand c"
    " ON c.submission_id OPERATOR(pg_catalog.=) s.submission_id"
    " WHERE c.level IS NOT NULL";

/* Held back: their ids, and none of those now published. */
static const char hold_sql[] =
    "WITH i AS (INSERT INTO @S.held_back (tenant, form_id, submission_id)"
    " SELECT $1, $2, c.submission_id FROM pg_temp.anonymizer_cand c WHERE c.level IS NULL"
    " ON CONFLICT DO NOTHING RETURNING 1),"
    " d AS (DELETE FROM @S.held_back h USING pg_temp.anonymizer_cand c WHERE h.tenant OPERATOR(pg_catalog.=) $1"
    " AND h.form_id OPERATOR(pg_catalog.=) $2 AND h.submission_id OPERATOR(pg_catalog.=) c.submission_id"
    " AND c.level IS NOT NULL RETURNING 1)"
    " SELECT (SELECT pg_catalog.count(*) FROM i) OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM d)";

/* A group that fell under min_k (a row left it, or k grew): its rows go back to held_back. */
static const char withdraw_small_sql[] =
    "WITH small AS (SELECT b.qi_group FROM " FORM_ROWS
    "   AND b.qi_group OPERATOR(pg_catalog.=) ANY (SELECT qi_group FROM pg_temp.anonymizer_groups) GROUP BY 1"
    "   HAVING pg_catalog.count(*) OPERATOR(pg_catalog.<) $4),"
    " d AS (DELETE FROM @S.submissions b USING small WHERE b.tenant OPERATOR(pg_catalog.=) $1"
    "   AND b.form_id OPERATOR(pg_catalog.=) $2"
    "   AND b.qi_group OPERATOR(pg_catalog.=) small.qi_group RETURNING b.submission_id),"
    " i AS (INSERT INTO @S.held_back (tenant, form_id, submission_id) SELECT $1, $2, d.submission_id FROM d"
    "   ON CONFLICT DO NOTHING RETURNING 1)"
    " SELECT pg_catalog.count(*) FROM d";

/* Every row's group again (the harmless fields changed). */
static const char recompute_sql[] =
    "UPDATE @S.submissions b SET qi_group = " QI_OF("b.receipt_time", "b.done_time", "b.channel", FIELDS_HASH("b"))
    " WHERE b.tenant = $1 AND b.form_id = $2";

/* Queues a statement with the common parameters ($1 to $5) and extra ones, its counts into out0, out1. */
static int queue(struct bi *bi, struct db_pipe *pipe, const struct kanon_params *kp, const char *sql, int extra,
                 const char *const *xv, long long *out0, long long *out1)
{
    char k[16];
    snprintf(k, sizeof k, "%d", kp->min_k);
    const char *v[6] = {kp->tenant, kp->form_id, kp->harmless, k, bi->tz, NULL};
    Oid ty[6] = {DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_INT4OID, DB_TEXTOID, DB_TEXTOID};
    for (int i = 0; i < extra; i++)
        v[5 + i] = xv[i];
    char *text = bi_sql(bi, sql);
    int rc = db_pipe_queue(&bi->db, pipe, text, 5 + extra, ty, v, out0, out1);
    free(text);
    return rc;
}

/* The levels of time precision, finest first: generalisation tries those coarser than the configured one. */
static const char *const levels[] = {"minute", "hour", "day", "week", "month"};

/*
 * Level by level, finest first; then again, twice, for what is still
 * undecided: a row published at a coarse level can make the group of a
 * row still waiting at a finer one (its values now equal theirs).  A round
 * with nothing left to decide costs next to nothing.
 */
static int queue_decide(struct bi *bi, struct db_pipe *pipe, const struct kanon_params *kp, struct kanon_result *r)
{
    size_t from = 0;
    while (from < AX_ARRAY_LEN(levels) && strcmp(levels[from], kp->precision) != 0)
        from++;
    int rc = AX_OK;
    int rounds = kp->generalise ? 3 : 1;
    for (int round = 0; rc == AX_OK && round < rounds; round++) {
        const char *base[1] = {NULL};
        rc = queue(bi, pipe, kp, decide_sql, 1, base, NULL, NULL);
        for (size_t i = from + 1; rc == AX_OK && kp->generalise && i < AX_ARRAY_LEN(levels); i++) {
            const char *lv[1] = {levels[i]};
            if (r->npasses < (int)AX_ARRAY_LEN(r->passes))
                rc = queue(bi, pipe, kp, decide_sql, 1, lv, &r->passes[r->npasses++], NULL);
        }
    }
    return rc;
}

int kanon_queue(struct bi *bi, struct db_pipe *pipe, const struct kanon_params *kp, struct kanon_result *r)
{
    memset(r, 0, sizeof *r);
    r->smallest = -1;
    if (kp->min_k <= 1) {
        int rc = queue(bi, pipe, kp, merge_all_sql, 0, NULL, &r->inserted, &r->updated);
        /* held back under a larger k earlier: published now */
        if (rc == AX_OK)
            rc = queue(bi, pipe, kp, "DELETE FROM @S.held_back WHERE tenant OPERATOR(pg_catalog.=) $1"
                                     " AND form_id OPERATOR(pg_catalog.=) $2", 0, NULL, NULL, NULL);
        return rc;
    }
    int rc = queue(bi, pipe, kp, candidates_sql, 0, NULL, NULL, NULL);
    /* a temporary table is never analysed by autovacuum: the planner needs its size for hash joins */
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, "ANALYZE pg_temp.anonymizer_cand", 0, NULL, NULL, NULL);
    /* the rule changed: every row's group is computed again, and every group checked */
    if (rc == AX_OK && kp->recheck_all && !kp->form_empty)
        rc = queue(bi, pipe, kp, recompute_sql, 0, NULL, NULL, NULL);
    if (rc == AX_OK)
        rc = queue_decide(bi, pipe, kp, r);
    if (!kp->form_empty) {
        if (rc == AX_OK)
            rc = queue(bi, pipe, kp, kp->recheck_all ? all_groups_sql : old_groups_sql, 0, NULL, NULL, NULL);
        if (rc == AX_OK)
            rc = queue(bi, pipe, kp, withdraw_staged_sql, 0, NULL, &r->withdrawn_parts[0], NULL);
        if (rc == AX_OK)
            rc = queue(bi, pipe, kp, merge_decided_sql, 0, NULL, &r->inserted, &r->updated);
    } else if (rc == AX_OK) {
        rc = queue(bi, pipe, kp, insert_decided_sql, 0, NULL, &r->inserted, NULL);
    }
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, hold_sql, 0, NULL, NULL, NULL);
    if (rc == AX_OK && !kp->form_empty)
        rc = queue(bi, pipe, kp, withdraw_small_sql, 0, NULL, &r->withdrawn_parts[1], NULL);
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, "SELECT pg_catalog.count(*) FROM pg_temp.anonymizer_cand WHERE level IS NULL", 0, NULL,
                   &r->held, NULL);
    /* by hash only: the same hash that groups the rows */
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, "SELECT pg_catalog.min(n) FROM (SELECT pg_catalog.count(*) AS n FROM " FORM_ROWS
                                 " GROUP BY b.qi_group) x", 0, NULL, &r->smallest, NULL);
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, "SELECT pg_catalog.count(*) FROM @S.held_back WHERE tenant OPERATOR(pg_catalog.=) $1"
                                 " AND form_id OPERATOR(pg_catalog.=) $2", 0, NULL, &r->held_total, NULL);
    return rc;
}

void kanon_done(struct kanon_result *r)
{
    r->generalised = 0;
    for (int i = 0; i < r->npasses; i++)
        r->generalised += r->passes[i];
    r->withdrawn = r->withdrawn_parts[0] + r->withdrawn_parts[1];
}
