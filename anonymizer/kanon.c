/*
 * kanon.c: statistical disclosure control of the BI export (see kanon.h).
 *
 * Every statement runs on the BI side, in the form's export transaction: a
 * reader sees the rows of a form together with the decisions that let
 * them in.  Groups are compared by their whole pub value (jsonb equality);
 * pub_hash only finds them through an index, so a hash collision can never
 * merge two groups.
 *
 * Parameters of every statement: $1 tenant, $2 form id, $3 min_k, $4
 * min_l, $5 sensitive keys, $6 date keys, $7 date precision, $8 the
 * counted keys of fields, $9 a time precision (the step's, or the
 * configured one), $10 the number of fields suppressed.
 */
#include "kanon.h"
#include "ax.h"
#include "log.h"
#include "sqltext.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const kanon_levels[] = {"minute", "hour", "day", "week", "month", "quarter", "year"};
/* The coarsest level tried before every field is suppressed. */
#define LAST_WITH_FIELDS 4
const size_t kanon_nlevels = AX_ARRAY_LEN(kanon_levels);

#define FORM_OF(a) a ".tenant OPERATOR(pg_catalog.=) $1 AND " a ".form_id OPERATOR(pg_catalog.=) $2"
/* A candidate c not decided yet (anonymizer_dec holds the decisions: the wide candidates are never rewritten). */
#define WAITING "NOT EXISTS (SELECT 1 FROM pg_temp.anonymizer_dec dd WHERE dd.submission_id OPERATOR(pg_catalog.=)" \
                " c.submission_id)"

/* The staged rows, with the group they are published in now (old_hash), and the form's held-back rows. */
static const char staged_from[] =
    " FROM (SELECT s.submission_id, true AS staged, s.receipt_local AS rt, s.done_local AS dt, s.channel,"
    " s.backoffice_submission AS bo, s.criticality_level AS crit, s.fields, b.pub_hash AS old_hash"
    " FROM pg_temp.anonymizer_stage s LEFT JOIN @S.submission_rows b ON " FORM_OF("b")
    " AND b.submission_id OPERATOR(pg_catalog.=) s.submission_id) r";
static const char held_from[] =
    " FROM (SELECT b.submission_id, false AS staged, b.receipt_local AS rt, b.done_local AS dt, b.channel,"
    " b.backoffice_submission AS bo, b.criticality_level AS crit, b.fields, NULL::bigint AS old_hash"
    " FROM @S.submission_rows b WHERE " FORM_OF("b") " AND b.pub IS NULL AND b.deleted_at IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM pg_temp.anonymizer_stage s WHERE s.submission_id OPERATOR(pg_catalog.=)"
    " b.submission_id)) r";

/*
 * The order fields are suppressed in, fixed at a full export once the rows
 * that need no suppression are decided: most distinct values first among
 * those that still wait; channel, back-office flag and criticality are
 * suppressible too.  A field with one value among them is never suppressed
 * (it would not make any group larger).
 */
static const char order_sql[] =
    "UPDATE @S.export_state x SET suppression_order = (SELECT COALESCE(pg_catalog.jsonb_agg(k.base"
    " ORDER BY k.n DESC, k.base), '[]'::jsonb) FROM (SELECT pg_catalog.regexp_replace(e.key, '_display$', '') AS base,"
    " pg_catalog.count(DISTINCT e.value) AS n FROM pg_temp.anonymizer_cand c, pg_catalog.jsonb_each(c.qf) e"
    " WHERE " WAITING " GROUP BY 1"
    " UNION ALL SELECT 'channel', pg_catalog.count(DISTINCT c.channel) FROM pg_temp.anonymizer_cand c"
    " WHERE " WAITING
    " UNION ALL SELECT 'backoffice_submission', pg_catalog.count(DISTINCT c.bo) FROM pg_temp.anonymizer_cand c"
    " WHERE " WAITING
    " UNION ALL SELECT 'criticality_level', pg_catalog.count(DISTINCT c.crit) FROM pg_temp.anonymizer_cand c"
    " WHERE " WAITING ") k WHERE k.n OPERATOR(pg_catalog.>) 1) WHERE " FORM_OF("x")
    " AND x.suppression_order IS NULL";

/*
 * The step's suppressed fields: s their names ($10 first ones of the
 * order), o the list as published and the object that nulls them (their
 * _display keys too) in a row's counted fields.
 */
#define STEP_PRELUDE                                                                                               \
    "WITH s AS MATERIALIZED (SELECT x.k, x.i FROM pg_catalog.jsonb_array_elements_text(COALESCE((SELECT"          \
    " e.suppression_order FROM @S.export_state e WHERE " FORM_OF("e") "), '[]'::jsonb)) WITH ORDINALITY x(k, i)"   \
    " WHERE x.i OPERATOR(pg_catalog.<=) $10),"                                                                     \
    " o AS MATERIALIZED (SELECT (SELECT COALESCE(pg_catalog.jsonb_agg(s.k ORDER BY s.i), '[]'::jsonb) FROM s)"      \
    " AS supp, ARRAY(SELECT s.k FROM s) AS keys, (SELECT COALESCE(pg_catalog.jsonb_object_agg(q.k, NULL::jsonb), '{}'::jsonb)"                       \
    " FROM pg_catalog.unnest($8::text[]) q(k) WHERE q.k OPERATOR(pg_catalog.=) ANY (SELECT s.k FROM s UNION ALL"  \
    " SELECT s.k OPERATOR(pg_catalog.||) '_display' FROM s)) AS nulls)"

/* A candidate c as published at the step's precision ($9) with o's fields suppressed. */
#define LOCAL_TIME(t)                                                                                              \
    "CASE WHEN $9 OPERATOR(pg_catalog.=) ANY ('{minute,hour}'::text[]) THEN pg_catalog.date_trunc($9, " t ")::time END"
#define UNLESS_SUPPRESSED(name, v) "CASE WHEN NOT ('" name "' OPERATOR(pg_catalog.=) ANY (o.keys)) THEN " v " END"
#define PUB                                                                                                        \
    "pg_catalog.jsonb_build_object('precision', $9::text, 'receipt_date', pg_catalog.date_trunc($9, c.rt)::date,"  \
    " 'receipt_time', " LOCAL_TIME("c.rt") ", 'done_date', pg_catalog.date_trunc($9, c.dt)::date,"                 \
    " 'done_time', " LOCAL_TIME("c.dt") ", 'channel', " UNLESS_SUPPRESSED("channel", "c.channel") ","              \
    " 'backoffice', " UNLESS_SUPPRESSED("backoffice_submission", "c.bo") ","                                      \
    " 'criticality', " UNLESS_SUPPRESSED("criticality_level", "c.crit") ","                                       \
    " 'fields', c.qf OPERATOR(pg_catalog.||) o.nulls, 'suppressed', o.supp)"

/*
 * The candidates still undecided whose group at this step reaches min_k
 * (and min_l), counting with them the published rows of the form that are
 * not being decided again and the candidates decided at earlier steps:
 * decided at this step.  The HAVING clause is completed by the caller
 * (l-diversity), then DECIDE_TAIL.
 */
static const char decide_head[] =
    STEP_PRELUDE ","
    /* a step past the end of the suppression order would only repeat the one before: nothing to do */
    " h AS MATERIALIZED (SELECT c.submission_id, c.sens, x.pub, pg_catalog.jsonb_hash_extended(x.pub, 0) AS ph"
    "  FROM pg_temp.anonymizer_cand c CROSS JOIN o, LATERAL (SELECT " PUB " AS pub) x WHERE " WAITING
    "  AND (SELECT pg_catalog.count(*) FROM s) OPERATOR(pg_catalog.=) $10),"
    " pool AS (SELECT h.pub, h.sens, true AS candidate FROM h"
    /* the published rows of those groups, found by index group by group: as many lookups as groups tried */
    "  UNION ALL SELECT b.pub, b.sensitive, false FROM (SELECT DISTINCT h.ph FROM h) hp CROSS JOIN LATERAL"
    "  (SELECT r.pub, r.sensitive FROM @S.submission_rows r WHERE " FORM_OF("r") " AND r.pub IS NOT NULL"
    "  AND r.pub_hash OPERATOR(pg_catalog.=) hp.ph AND NOT EXISTS (SELECT 1 FROM pg_temp.anonymizer_cand s"
    "  WHERE s.submission_id OPERATOR(pg_catalog.=) r.submission_id) OFFSET 0) b"
    "  UNION ALL SELECT d.pub, e.sens, false FROM pg_temp.anonymizer_dec d JOIN pg_temp.anonymizer_cand e"
    "  ON e.submission_id OPERATOR(pg_catalog.=) d.submission_id"
    "  WHERE d.pub_hash OPERATOR(pg_catalog.=) ANY (SELECT h.ph FROM h)),"
    " big AS (SELECT pool.pub FROM pool GROUP BY pool.pub"
    "  HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>=) $3 AND pg_catalog.bool_or(pool.candidate)";
static const char decide_tail[] =
    "),"
    " u AS (INSERT INTO pg_temp.anonymizer_dec (submission_id, pub, pub_hash)"
    "  SELECT h.submission_id, h.pub, h.ph FROM h JOIN big ON big.pub OPERATOR(pg_catalog.=) h.pub RETURNING 1)"
    " SELECT pg_catalog.count(*) FROM u";

/* The groups staged rows leave (published before, in another group or held back now): checked after the merge. */
static const char left_groups_sql[] =
    "INSERT INTO pg_temp.anonymizer_groups (pub_hash) SELECT DISTINCT c.old_hash FROM pg_temp.anonymizer_cand c"
    " LEFT JOIN pg_temp.anonymizer_dec d ON d.submission_id OPERATOR(pg_catalog.=) c.submission_id"
    " WHERE c.staged AND c.old_hash IS NOT NULL AND (d.submission_id IS NULL OR "
    SQL_DISTINCT("d.pub_hash", "c.old_hash") ")";

/* A row key: HMAC-SHA-256 of tenant, form and number with the schema's secret, 128 bits in hex. */
#define ROW_KEY(id)                                                                                                \
    "pg_catalog.substr(pg_catalog.encode(pg_catalog.sha256(k.outer_key OPERATOR(pg_catalog.||)"                   \
    " pg_catalog.sha256(k.inner_key OPERATOR(pg_catalog.||) pg_catalog.convert_to(pg_catalog.concat($1::text, ':',"\
    " $2::text, ':', " id "), 'UTF8'))), 'hex'), 1, 32)"

/*
 * The staged rows, written in the order of their keys (nothing of w.c.s.'s
 * order survives in the table): new ones inserted, changed ones updated,
 * the same left alone.  exported_at moves only when what a reader sees of
 * the row changed.
 */
#define MERGE_HEAD                                                                                                 \
    "INSERT INTO @S.submission_rows AS b (tenant, form_id, submission_id, submission_key, status,"                 \
    " status_name, is_final, receipt_local, done_local, channel, backoffice_submission, criticality_level, fields,"  \
    " pub, pub_hash, sensitive, exported_at, deleted_at, held_since)"
#define MERGE_TAIL                                                                                                 \
    " ON CONFLICT (tenant, form_id, submission_id) DO UPDATE SET status = EXCLUDED.status,"                         \
    " status_name = EXCLUDED.status_name, is_final = EXCLUDED.is_final, receipt_local = EXCLUDED.receipt_local,"   \
    " done_local = EXCLUDED.done_local, channel = EXCLUDED.channel,"                                                \
    " backoffice_submission = EXCLUDED.backoffice_submission, criticality_level = EXCLUDED.criticality_level,"     \
    " fields = EXCLUDED.fields, pub = EXCLUDED.pub, pub_hash = EXCLUDED.pub_hash, sensitive = EXCLUDED.sensitive,"  \
    " exported_at = CASE WHEN ROW(b.pub, b.sensitive, b.status, b.status_name, b.is_final,"                        \
    "  b.deleted_at IS NULL)::text OPERATOR(pg_catalog.=) ROW(EXCLUDED.pub, EXCLUDED.sensitive, EXCLUDED.status,"  \
    "  EXCLUDED.status_name, EXCLUDED.is_final, true)::text THEN b.exported_at ELSE EXCLUDED.exported_at END,"     \
    " deleted_at = NULL,"                                                                                          \
    " held_since = CASE WHEN EXCLUDED.pub IS NULL THEN COALESCE(b.held_since, EXCLUDED.held_since) END"           \
    " WHERE ROW(b.status, b.status_name, b.is_final, b.receipt_local, b.done_local, b.channel,"                   \
    "  b.backoffice_submission, b.criticality_level, b.fields, b.pub, b.sensitive, b.deleted_at IS NULL)::text"     \
    " OPERATOR(pg_catalog.<>) ROW(EXCLUDED.status, EXCLUDED.status_name, EXCLUDED.is_final,"                       \
    "  EXCLUDED.receipt_local, EXCLUDED.done_local, EXCLUDED.channel, EXCLUDED.backoffice_submission,"             \
    "  EXCLUDED.criticality_level, EXCLUDED.fields, EXCLUDED.pub, EXCLUDED.sensitive, true)::text"                 \
    " RETURNING b.xmax OPERATOR(pg_catalog.=) '0'::xid AS inserted, b.pub IS NOT NULL AS published)"             \
    " SELECT pg_catalog.count(*) FILTER (WHERE inserted AND published),"                                           \
    " pg_catalog.count(*) FILTER (WHERE NOT inserted AND published) FROM up"

static const char merge_sql[] =
    "WITH up AS (" MERGE_HEAD
    " SELECT $1, $2, s.submission_id, " ROW_KEY("s.submission_id") ", s.status, s.status_name, s.is_final,"
    " s.receipt_local, s.done_local, s.channel, s.backoffice_submission, s.criticality_level, s.fields, d.pub,"
    " d.pub_hash, CASE WHEN d.pub IS NOT NULL THEN c.sens END, pg_catalog.now(), NULL,"
    " CASE WHEN d.pub IS NULL THEN pg_catalog.now() END"
    " FROM pg_temp.anonymizer_stage s JOIN pg_temp.anonymizer_cand c"
    " ON c.submission_id OPERATOR(pg_catalog.=) s.submission_id LEFT JOIN pg_temp.anonymizer_dec d"
    " ON d.submission_id OPERATOR(pg_catalog.=) s.submission_id CROSS JOIN @S.secret k ORDER BY 4" MERGE_TAIL;

/* Held back earlier, published now. */
static const char release_sql[] =
    "WITH u AS (UPDATE @S.submission_rows b SET pub = c.pub, pub_hash = c.pub_hash, sensitive = c.sens,"
    " exported_at = pg_catalog.now(), held_since = NULL FROM (SELECT d.submission_id, d.pub, d.pub_hash, e.sens"
    " FROM pg_temp.anonymizer_dec d JOIN pg_temp.anonymizer_cand e ON e.submission_id OPERATOR(pg_catalog.=)"
    " d.submission_id WHERE NOT e.staged) c WHERE " FORM_OF("b")
    " AND b.submission_id OPERATOR(pg_catalog.=) c.submission_id RETURNING 1) SELECT pg_catalog.count(*) FROM u";

/*
 * A group that lost rows and fell under min_k (or min_l): taken back, its
 * rows held back until it is large enough again.  The HAVING clause is
 * completed by the caller, then WITHDRAW_TAIL.
 */
static const char withdraw_head[] =
    "WITH small AS (SELECT b.pub_hash, b.pub FROM (SELECT DISTINCT g.pub_hash AS ph FROM pg_temp.anonymizer_groups g)"
    " gp CROSS JOIN LATERAL (SELECT r.pub_hash, r.pub, r.sensitive FROM @S.submission_rows r WHERE " FORM_OF("r")
    " AND r.pub IS NOT NULL AND r.pub_hash OPERATOR(pg_catalog.=) gp.ph OFFSET 0) b"
    " GROUP BY b.pub_hash, b.pub HAVING pg_catalog.count(*) OPERATOR(pg_catalog.<) $3";
static const char withdraw_tail[] =
    "),"
    " w AS (UPDATE @S.submission_rows b SET pub = NULL, pub_hash = NULL, sensitive = NULL,"
    " exported_at = pg_catalog.now(), held_since = pg_catalog.now() FROM small WHERE " FORM_OF("b")
    " AND b.pub IS NOT NULL AND b.pub_hash OPERATOR(pg_catalog.=) small.pub_hash"
    " AND b.pub OPERATOR(pg_catalog.=) small.pub RETURNING 1)"
    " SELECT pg_catalog.count(*) FROM w";

/*
 * The form's figures, for the report and the warning: rows published and
 * held back, how many published generalised or with a suppressed field,
 * the smallest group (by pub_hash), and the most varied quasi-identifier
 * among the rows still held back.
 */
static const char figures_sql[] =
    "UPDATE @S.export_state x SET published = f.published, held_back = f.held, generalised = f.generalised,"
    " suppressed = f.suppressed, smallest_group = f.smallest,"
    " limiting_field = (SELECT d.name FROM (SELECT 'receipt time' AS name, pg_catalog.count(DISTINCT c.rt) AS n"
    "  FROM pg_temp.anonymizer_cand c WHERE " WAITING
    "  UNION ALL SELECT 'done time', pg_catalog.count(DISTINCT c.dt) FROM pg_temp.anonymizer_cand c"
    "  WHERE " WAITING
    "  UNION ALL SELECT 'channel', pg_catalog.count(DISTINCT c.channel) FROM pg_temp.anonymizer_cand c"
    "  WHERE " WAITING
    "  UNION ALL SELECT pg_catalog.regexp_replace(e.key, '_display$', ''), pg_catalog.count(DISTINCT e.value)"
    "  FROM pg_temp.anonymizer_cand c, pg_catalog.jsonb_each(c.qf) e WHERE " WAITING " GROUP BY 1) d"
    "  WHERE d.n OPERATOR(pg_catalog.>) 1 ORDER BY d.n DESC, d.name LIMIT 1)"
    /* kept by the triggers on submission_rows (bi_contract.h): a night costs what it changed */
    " FROM (SELECT COALESCE(pg_catalog.sum(c.n) FILTER (WHERE c.kind OPERATOR(pg_catalog.<>) 'held'), 0) AS published,"
    "  COALESCE(pg_catalog.sum(c.n) FILTER (WHERE c.kind OPERATOR(pg_catalog.=) 'held'), 0) AS held,"
    "  COALESCE(pg_catalog.sum(c.n) FILTER (WHERE c.kind OPERATOR(pg_catalog.<>) 'held'"
    "  AND pg_catalog.split_part(c.kind, ':', 1) OPERATOR(pg_catalog.<>) $9), 0) AS generalised,"
    "  COALESCE(pg_catalog.sum(c.n) FILTER (WHERE c.kind OPERATOR(pg_catalog.~~) '%:suppressed'), 0) AS suppressed,"
    "  (SELECT g.n FROM @S.group_sizes g WHERE " FORM_OF("g") " ORDER BY g.n LIMIT 1) AS smallest"
    "  FROM @S.form_counts c WHERE " FORM_OF("c") ") f"
    " WHERE " FORM_OF("x");

/* Queues a statement with the common parameters, its step ($9, $10), its counts into out0, out1. */
static int queue(struct bi *bi, struct db_pipe *pipe, const struct kanon_params *kp, const char *sql,
                 const char *level, int suppressed, long long *out0, long long *out1)
{
    char k[16], l[16], n[16];
    snprintf(k, sizeof k, "%d", kp->min_k);
    snprintf(l, sizeof l, "%d", kp->min_l);
    snprintf(n, sizeof n, "%d", suppressed);
    const char *v[10] = {kp->tenant, kp->form_id,      k,          l,     kp->sensitive,
                         kp->dates,  kp->date_precision, kp->qi_keys, level, n};
    static const Oid ty[10] = {DB_TEXTOID, DB_INT4OID, DB_INT4OID, DB_INT4OID, DB_TEXTOID,
                               DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID, DB_INT4OID};
    char *text = bi_sql(bi, sql);
    int rc = db_pipe_queue(&bi->db, pipe, text, 10, ty, v, out0, out1);
    free(text);
    return rc;
}

/* head + the l-diversity condition on each sensitive key of the group's rows (alias a) + tail. */
static char *with_diversity(const struct kanon_params *kp, const char *head, const char *alias, const char *column,
                            const char *op, const char *join, const char *tail)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, head);
    for (size_t i = 1; kp->min_l > 1 && i <= kp->nsensitive; i++)
        sb_appendf(&sb, " %s pg_catalog.count(DISTINCT (%s.%s OPERATOR(pg_catalog.->>) ($5::text[])[%zu]))"
                        " OPERATOR(pg_catalog.%s) $4",
                   join, alias, column, i, op);
    sb_append(&sb, tail);
    return sb_finish(&sb);
}

/*
 * The counted fields of a row r: not sensitive, kept dates truncated to the
 * date precision (per key: cheaper than taking the object apart).
 */
static void append_counted(struct strbuf *sb, const struct kanon_params *kp)
{
    sb_append(sb, kp->nsensitive ? "(r.fields OPERATOR(pg_catalog.-) $5::text[])" : "r.fields");
    for (size_t i = 1; i <= kp->ndates; i++)
        sb_appendf(sb, " OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(($6::text[])[%zu], CASE WHEN"
                       " pg_catalog.jsonb_typeof(r.fields OPERATOR(pg_catalog.->) ($6::text[])[%zu])"
                       " OPERATOR(pg_catalog.=) 'string' THEN pg_catalog.to_jsonb(pg_catalog.date_trunc($7,"
                       " (r.fields OPERATOR(pg_catalog.->>) ($6::text[])[%zu])::date::timestamp)::date)"
                       " ELSE r.fields OPERATOR(pg_catalog.->) ($6::text[])[%zu] END)",
                   i, i, i, i);
}

/* Its sensitive fields (NULL: the form has none). */
static void append_sensitive(struct strbuf *sb, const struct kanon_params *kp)
{
    if (kp->nsensitive == 0) {
        sb_append(sb, "NULL::jsonb");
        return;
    }
    sb_append(sb, "pg_catalog.jsonb_build_object(");
    for (size_t i = 1; i <= kp->nsensitive; i++)
        sb_appendf(sb, "%s($5::text[])[%zu], r.fields OPERATOR(pg_catalog.->) ($5::text[])[%zu]", i > 1 ? ", " : "", i,
                   i);
    sb_append(sb, ")");
}

/* The candidates of from (staged_from or held_from) into anonymizer_cand, undecided. */
static char *candidates_sql(const struct kanon_params *kp, const char *from)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, "INSERT INTO pg_temp.anonymizer_cand (submission_id, staged, rt, dt, channel, bo, crit, qf, sens,"
                   " old_hash) SELECT r.submission_id, r.staged, r.rt, r.dt, r.channel, r.bo, r.crit, ");
    append_counted(&sb, kp);
    sb_append(&sb, ", ");
    append_sensitive(&sb, kp);
    sb_append(&sb, ", r.old_hash");
    sb_append(&sb, from);
    return sb_finish(&sb);
}

/*
 * min_k 1, min_l 1, nothing held back: every staged row published as it is,
 * straight from the staging table (nothing to decide, no group to check).
 */
static char *merge_direct_sql(const struct kanon_params *kp)
{
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, STEP_PRELUDE ", up AS (" MERGE_HEAD " SELECT $1, $2, c.submission_id, " ROW_KEY("c.submission_id")
                   ", c.status, c.status_name, c.is_final, c.receipt_local, c.done_local, c.channel,"
                   " c.backoffice_submission, c.criticality_level, c.fields, x.pub,"
                   " pg_catalog.jsonb_hash_extended(x.pub, 0), c.sens, pg_catalog.now(), NULL, NULL"
                   " FROM (SELECT r.submission_id, r.status, r.status_name, r.is_final, r.receipt_local, r.done_local,"
                   " r.channel, r.backoffice_submission, r.criticality_level, r.fields, r.receipt_local AS rt,"
                   " r.done_local AS dt, r.backoffice_submission AS bo, r.criticality_level AS crit, ");
    append_counted(&sb, kp);
    sb_append(&sb, " AS qf, ");
    append_sensitive(&sb, kp);
    sb_append(&sb, " AS sens FROM pg_temp.anonymizer_stage r) c CROSS JOIN @S.secret k CROSS JOIN o,"
                   " LATERAL (SELECT " PUB " AS pub) x ORDER BY 4" MERGE_TAIL);
    return sb_finish(&sb);
}

/*
 * Step by step: fields suppressed 0, 1, ... (with generalise), and for
 * each, the configured precision then every coarser one up to the month;
 * then, every field suppressed, the quarter and the year.  A step with
 * nothing left to decide costs next to nothing.
 */
static int queue_decide(struct bi *bi, struct db_pipe *pipe, const struct kanon_params *kp)
{
    size_t from = 0;
    while (from < kanon_nlevels && strcmp(kanon_levels[from], kp->precision) != 0)
        from++;
    char *decide = with_diversity(kp, decide_head, "pool", "sens", ">=", "AND", decide_tail);
    int rc = AX_OK;
    /* the fields, and channel, back-office flag and criticality */
    size_t all = kp->generalise ? kp->nqi + 3 : 0;
    for (size_t n = 0; rc == AX_OK && n <= all; n++) {
        for (size_t i = from; rc == AX_OK && i <= (kp->generalise ? LAST_WITH_FIELDS : from); i++) {
            rc = queue(bi, pipe, kp, decide, kanon_levels[i], (int)n, NULL, NULL);
            /* on a night after, most rows are decided by the first step: the planner must know it, or it
             * reads every decision for every candidate at each step after (a whole form's first export is
             * estimated from the table's size) */
            if (rc == AX_OK && n == 0 && i == from && !kp->full)
                rc = queue(bi, pipe, kp, "ANALYZE pg_temp.anonymizer_dec (submission_id, pub_hash)", kp->precision, 0,
                           NULL, NULL);
        }
        /* what to suppress is known once the rows that need nothing suppressed are decided */
        if (rc == AX_OK && n == 0 && kp->generalise)
            rc = queue(bi, pipe, kp, order_sql, kp->precision, 0, NULL, NULL);
    }
    for (size_t i = LAST_WITH_FIELDS + 1; rc == AX_OK && kp->generalise && i < kanon_nlevels; i++)
        rc = queue(bi, pipe, kp, decide, kanon_levels[i], (int)all, NULL, NULL);
    free(decide);
    return rc;
}

int kanon_queue(struct bi *bi, struct db_pipe *pipe, const struct kanon_params *kp, struct kanon_result *r)
{
    memset(r, 0, sizeof *r);
    /* every row as it is: nothing to decide */
    bool publish = kp->min_k <= 1 && kp->min_l <= 1;
    if (publish && !kp->has_held) {
        char *direct = merge_direct_sql(kp);
        int rc = queue(bi, pipe, kp, direct, kp->precision, 0, &r->inserted, &r->updated);
        free(direct);
        return rc == AX_OK ? queue(bi, pipe, kp, figures_sql, kp->precision, 0, NULL, NULL) : rc;
    }
    char *staged = candidates_sql(kp, staged_from), *held = candidates_sql(kp, held_from);
    int rc = queue(bi, pipe, kp, staged, kp->precision, 0, NULL, NULL);
    if (rc == AX_OK && kp->has_held)
        rc = queue(bi, pipe, kp, held, kp->precision, 0, NULL, NULL);
    free(staged);
    free(held);
    /* a temporary table is never analysed by autovacuum: the planner needs its size for its joins (the columns
     * joined and filtered on only: statistics of the jsonb ones would cost more than they help) */
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, "ANALYZE pg_temp.anonymizer_cand (submission_id, staged)",
                   kp->precision, 0, NULL, NULL);
    if (rc == AX_OK)
        rc = queue_decide(bi, pipe, kp);
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, left_groups_sql, kp->precision, 0, NULL, NULL);
    /* every group: a full export decides every row again (the rule may have changed) */
    if (rc == AX_OK && kp->full)
        rc = queue(bi, pipe, kp,
                   "INSERT INTO pg_temp.anonymizer_groups (pub_hash) SELECT DISTINCT b.pub_hash FROM"
                   " @S.submission_rows b WHERE " FORM_OF("b") " AND b.pub IS NOT NULL",
                   kp->precision, 0, NULL, NULL);
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp,
                   "SELECT pg_catalog.count(*) FILTER (WHERE c.staged AND d.submission_id IS NULL),"
                   " pg_catalog.count(*) FILTER (WHERE c.staged AND d.submission_id IS NULL AND c.old_hash IS NOT NULL)"
                   " FROM pg_temp.anonymizer_cand c LEFT JOIN pg_temp.anonymizer_dec d"
                   " ON d.submission_id OPERATOR(pg_catalog.=) c.submission_id",
                   kp->precision, 0, &r->held, &r->withdrawn_parts[0]);
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp,
                   "SELECT pg_catalog.count(*) FROM pg_temp.anonymizer_dec c WHERE"
                   " ((c.pub OPERATOR(pg_catalog.->>) 'precision') OPERATOR(pg_catalog.<>) $9"
                   " OR pg_catalog.jsonb_array_length(c.pub OPERATOR(pg_catalog.->) 'suppressed')"
                   " OPERATOR(pg_catalog.>) 0)",
                   kp->precision, 0, &r->generalised, NULL);
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, merge_sql, kp->precision, 0, &r->inserted, &r->updated);
    if (rc == AX_OK && kp->has_held)
        rc = queue(bi, pipe, kp, release_sql, kp->precision, 0, &r->released, NULL);
    if (rc == AX_OK) {
        char *withdraw = with_diversity(kp, withdraw_head, "b", "sensitive", "<", "OR", withdraw_tail);
        rc = queue(bi, pipe, kp, withdraw, kp->precision, 0, &r->withdrawn_parts[1], NULL);
        free(withdraw);
    }
    if (rc == AX_OK)
        rc = queue(bi, pipe, kp, figures_sql, kp->precision, 0, NULL, NULL);
    return rc;
}

void kanon_done(struct kanon_result *r)
{
    r->withdrawn = r->withdrawn_parts[0] + r->withdrawn_parts[1];
}
