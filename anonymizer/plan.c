/*
 * plan.c: the SQL of a form (see plan.h).
 *
 * Every name comes quoted from the catalog (column qname, q_table, q_evo);
 * every value is a parameter.  Statements are laid out one clause per line
 * so that the golden files read as SQL.
 */
#include "plan.h"
#include "ax.h"
#include "sqltext.h"
#include "strbuf.h"

#include <json-c/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const plan_dollar_params[PLAN_NPARAMS + 1] = {"", "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10"};

static const Oid param_types[PLAN_NPARAMS] = {
    DB_TIMESTAMPTZOID, DB_INT4OID, DB_TEXTARRAYOID, DB_TEXTARRAYOID, DB_INT8OID, DB_INT8OID, DB_TIMESTAMPTZOID,
    DB_JSONBOID, DB_INT8OID, DB_TEXTOID,
};

static const Oid report_param_types[PLAN_NPARAMS] = {
    DB_TIMESTAMPTZOID, DB_INT4OID, DB_TEXTARRAYOID, DB_TEXTARRAYOID, DB_TIMESTAMPTZOID, DB_TIMESTAMPTZOID,
    DB_INT4OID, DB_JSONBOID, DB_TIMESTAMPTZOID, DB_TIMESTAMPTZOID,
};

static void add_key(char ***keys, size_t *n, const char *key)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*keys)[i], key) == 0)
            return;
    *keys = ax_reallocarray(*keys, *n + 1, sizeof **keys);
    (*keys)[(*n)++] = ax_strdup(key);
}

/* Why the form cannot be processed safely, or NULL. */
static char *unsupported(const struct form *f)
{
    static const char *const required[] = {"id", "status", "receipt_time", "last_update_time", "anonymised"};
    for (size_t i = 0; i < AX_ARRAY_LEN(required); i++)
        if (!form_column(f, required[i]))
            return ax_asprintf("table %s has no column %s: not a w.c.s. form table", f->table, required[i]);
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (col_is_nulled(c->cls) && c->notnull)
            return ax_asprintf("column %s of %s is NOT NULL and cannot be blanked", c->name, f->table);
        if (c->cls == COL_STATISTICS && strcmp(c->type, "jsonb") != 0)
            return ax_asprintf("column statistics_data of %s is %s, not jsonb", f->table, c->type);
    }
    return NULL;
}

/* The final statuses, as a text[] literal; NULL without a definition that lists statuses. */
static char *endpoints(const struct form *f)
{
    if (!f->def || f->def->nstatuses == 0)
        return NULL;
    char **ends = NULL;
    size_t n = 0;
    for (size_t i = 0; i < f->def->nstatuses; i++) {
        if (!f->def->statuses[i].endpoint)
            continue;
        ends = ax_reallocarray(ends, n + 1, sizeof *ends);
        ends[n++] = ax_asprintf("wf-%s", f->def->statuses[i].id);
    }
    return pg_text_array_taking(ends, n);
}

/* The statistics_data keys that survive: done-datetime and those of the kept fields. */
static char *stat_keys(const struct form *f)
{
    char **keys = NULL;
    size_t n = 0;
    add_key(&keys, &n, "done-datetime");
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        for (size_t k = 0; c->cls == COL_BLOCK && k < c->nsubs; k++)
            if (c->subs[k].kept && c->subs[k].field->varname)
                add_key(&keys, &n, c->subs[k].field->varname);
        if (c->cls != COL_KEEP)
            continue;
        if (c->field) {
            if (c->field->varname)
                add_key(&keys, &n, c->field->varname);
            add_key(&keys, &n, c->field->id);
        }
        add_key(&keys, &n, c->name);
    }
    return pg_text_array_taking(keys, n);
}

/*
 * The keys kept in the elements of each trimmed block, a jsonb array of
 * arrays in column order: a kept subfield keeps its value and its display
 * value, its structured value only when kept by name.
 */
static char *block_keys(const struct form *f)
{
    json_object *all = json_object_new_array();
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls != COL_BLOCK)
            continue;
        json_object *keys = json_object_new_array();
        for (size_t k = 0; k < c->nsubs; k++) {
            const struct col_sub *sub = &c->subs[k];
            if (!sub->kept)
                continue;
            json_object_array_add(keys, json_object_new_string(sub->field->id));
            char *display = ax_asprintf("%s_display", sub->field->id);
            json_object_array_add(keys, json_object_new_string(display));
            free(display);
            if (sub->structured_kept) {
                char *structured = ax_asprintf("%s_structured", sub->field->id);
                json_object_array_add(keys, json_object_new_string(structured));
                free(structured);
            }
        }
        json_object_array_add(all, keys);
    }
    char *out = ax_strdup(json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN));
    json_object_put(all);
    return out;
}

/*
 * A trimmed block value: only "data" and "schema" stay (digests, computed
 * from every subfield, go), and in every element of data only the kept keys
 * (keys: a jsonb array).  Whatever does not have the shape w.c.s. gives it
 * becomes NULL.
 */
static void trimmed_block(struct strbuf *sb, const char *value, const char *keys)
{
    sb_appendf(sb,
               "CASE WHEN pg_catalog.jsonb_typeof(%s) OPERATOR(pg_catalog.=) 'object' THEN"
               " (SELECT pg_catalog.jsonb_object_agg(k.key,"
               " CASE WHEN k.key OPERATOR(pg_catalog.=) 'data' THEN"
               " CASE WHEN pg_catalog.jsonb_typeof(k.value) OPERATOR(pg_catalog.=) 'array' THEN"
               " (SELECT COALESCE(pg_catalog.jsonb_agg(CASE WHEN pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.=)"
               " 'object' THEN (SELECT COALESCE(pg_catalog.jsonb_object_agg(s.key, s.value), '{}'::jsonb)"
               " FROM pg_catalog.jsonb_each(e.value) s WHERE %s OPERATOR(pg_catalog.?) s.key) END ORDER BY e.n),"
               " '[]'::jsonb)"
               " FROM pg_catalog.jsonb_array_elements(k.value) WITH ORDINALITY e (value, n)) END"
               " ELSE k.value END) FROM pg_catalog.jsonb_each(%s) k"
               " WHERE k.key OPERATOR(pg_catalog.=) ANY ('{data,schema}'::pg_catalog.text[])) END",
               value, keys, value);
}

/* The id_display w.c.s. gives a submission without id_template, on alias (t or m). */
static void default_id_display(struct strbuf *sb, const char *alias, const char *formdef_id)
{
    sb_appendf(sb, "pg_catalog.concat(%s, '-', %s.id)", formdef_id, alias);
}

/* Whether id_display may hold field values (the definition sets an id_template). */
static bool resets_id_display(const struct form *f)
{
    return f->def && f->def->id_template && form_column(f, "id_display");
}

/*
 * The role arrays w.c.s. keeps on a submission (role ids its functions give,
 * which agents' back-office lists filter on) hold a person only as a
 * "_user:<id>" entry: that entry is removed, the role ids stay.
 */
static bool is_roles_array(const char *name)
{
    return strcmp(name, "concerned_roles_array") == 0 || strcmp(name, "actions_roles_array") == 0;
}
/* alias.qname's role ids without its person's entry (NULL when nothing is left). */
static void roles_kept(struct strbuf *sb, const char *alias, const char *qname)
{
    sb_appendf(sb, "(SELECT pg_catalog.array_agg(x ORDER BY n) FROM pg_catalog.unnest(%s.%s) WITH ORDINALITY r(x, n)"
                   " WHERE NOT pg_catalog.starts_with(x, '_user:'))",
               alias, qname);
}
/* Whether alias.qname still names a person. */
static void roles_personal(struct strbuf *sb, const char *alias, const char *qname)
{
    sb_appendf(sb, "COALESCE((SELECT pg_catalog.bool_or(pg_catalog.starts_with(x, '_user:'))"
                   " FROM pg_catalog.unnest(%s.%s) x), false)",
               alias, qname);
}
/* The SET list of the final anonymisation, alias m. */
static char *set_list(const struct form *f)
{
    struct strbuf sb;
    size_t block = 0;
    sb_init(&sb);
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls == COL_METADATA && is_roles_array(c->name)) {
            sb_appendf(&sb, "%s = ", c->qname);
            roles_kept(&sb, "m", c->qname);
            sb_append(&sb, ",\n  ");
        } else if (col_is_nulled(c->cls)) {
            sb_appendf(&sb, "%s = NULL,\n  ", c->qname);
        } else if (c->cls == COL_BLOCK) {
            char *value = ax_asprintf("m.%s", c->qname), *keys = ax_asprintf("($8 OPERATOR(pg_catalog.->) %zu)", block++);
            sb_appendf(&sb, "%s = ", c->qname);
            trimmed_block(&sb, value, keys);
            sb_append(&sb, ",\n  ");
            free(value);
            free(keys);
        }
    }
    if (resets_id_display(f)) {
        sb_append(&sb, "id_display = ");
        default_id_display(&sb, "m", "$2");
        sb_append(&sb, ",\n  ");
    }
    if (form_column(f, "statistics_data"))
        sb_append(&sb, "statistics_data = CASE WHEN pg_catalog.jsonb_typeof(m.statistics_data) OPERATOR(pg_catalog.=)"
                       " 'object' THEN (SELECT COALESCE(pg_catalog.jsonb_object_agg(s.key, s.value), '{}'::jsonb)"
                       " FROM pg_catalog.jsonb_each(m.statistics_data) s WHERE s.key OPERATOR(pg_catalog.=) ANY ($4))"
                       " END,\n  ");
    sb_append(&sb, "anonymised = COALESCE(m.anonymised, $7)");
    return sb_finish(&sb);
}

void plan_prepare(struct form *f, const struct plan_tenant *t)
{
    struct form_sql *s = &f->sql;
    memset(s, 0, sizeof *s);
    if ((s->unsupported = unsupported(f)))
        return;
    /* test copies and cards have no wcs_all_forms rows (a test copy's id is
     * another submission's); test copies share their tracking codes with
     * the real submissions they were copied from */
    s->allforms = t->has_allforms && f->kind == FORM_KIND_FORM;
    s->search_tokens = t->has_search_tokens;
    s->tracking_codes = t->has_tracking_codes && f->kind != FORM_KIND_TEST && form_column(f, "tracking_code") != NULL;
    s->endpoints = endpoints(f);
    s->stat_keys = stat_keys(f);
    s->block_keys = block_keys(f);
    s->set = set_list(f);
    if (s->allforms && t->nallforms_personal > 0) {
        struct strbuf set, dirty;
        sb_init(&set);
        sb_init(&dirty);
        sb_append(&dirty, "(");
        for (size_t i = 0; i < t->nallforms_personal; i++) {
            const char *q = t->allforms_personal[i];
            /* quoted (db_quote_ident), as every name of that list */
            bool roles = strcmp(q, "\"concerned_roles_array\"") == 0 || strcmp(q, "\"actions_roles_array\"") == 0;
            if (roles) {
                /* the same role ids as the submission's row, without its person */
                sb_appendf(&set, "%s = ", q);
                roles_kept(&set, "w", q);
                sb_append(&set, ", ");
                roles_personal(&dirty, "w", q);
                sb_append(&dirty, " OR ");
            } else {
                sb_appendf(&set, "%s = NULL, ", q);
                sb_appendf(&dirty, "w.%s IS NOT NULL OR ", q);
            }
        }
        sb_append(&set, "statistics_data = m.statistics_data, anonymised = m.anonymised");
        sb_append(&dirty, SQL_DISTINCT("w.statistics_data", "m.statistics_data")
                          " OR " SQL_DISTINCT("w.anonymised", "m.anonymised"));
        if (resets_id_display(f) && t->allforms_has_id_display) {
            sb_append(&set, ", id_display = m.id_display");
            sb_append(&dirty, " OR " SQL_DISTINCT("w.id_display::pg_catalog.text", "m.id_display::pg_catalog.text"));
        }
        sb_append(&dirty, ")");
        s->allforms_set = sb_finish(&set);
        s->allforms_dirty = sb_finish(&dirty);
    }
    plan_preds(f, plan_dollar_params, PLAN_PROBE, &s->pred);
}

/* -- predicates --------------------------------------------------------------- */

/* A test on related rows (see enum plan_style). */
static void related(struct strbuf *sb, enum plan_style style, const char *from_where)
{
    if (style != PLAN_PROBE)
        sb_appendf(sb, "EXISTS (SELECT 1 FROM %s)", from_where);
    else
        sb_appendf(sb, "((SELECT 1 FROM %s LIMIT 1) IS NOT NULL)", from_where);
}

static char *pred_final(const struct form *f, const char *const p[], enum plan_style style)
{
    struct strbuf sb, tmp;
    sb_init(&sb);
    if (f->sql.endpoints) {
        sb_appendf(&sb, "COALESCE(m.status OPERATOR(pg_catalog.=) ANY (%s), false)", p[3]);
    } else if (f->sql.allforms) {
        /* without a definition, the w.c.s. trigger's verdict */
        sb_init(&tmp);
        sb_appendf(&tmp, "public.wcs_all_forms w WHERE w.formdef_id OPERATOR(pg_catalog.=) %s"
                         " AND w.id OPERATOR(pg_catalog.=) m.id AND w.is_at_endpoint", p[2]);
        related(&sb, style, tmp.buf);
        sb_free(&tmp);
    } else {
        sb_append(&sb, "false");
    }
    return sb_finish(&sb);
}

/* Whether the status of a submission cannot be known: no definition, and no wcs_all_forms verdict for it. */
static char *pred_unknown(const struct form *f, const char *const p[], enum plan_style style)
{
    struct strbuf sb, tmp;
    if (f->sql.endpoints)
        return ax_strdup("false");
    if (!f->sql.allforms)
        return ax_strdup("true");
    sb_init(&sb);
    sb_init(&tmp);
    sb_appendf(&tmp, "public.wcs_all_forms w WHERE w.formdef_id OPERATOR(pg_catalog.=) %s"
                     " AND w.id OPERATOR(pg_catalog.=) m.id", p[2]);
    sb_append(&sb, "NOT ");
    related(&sb, style, tmp.buf);
    sb_free(&tmp);
    return sb_finish(&sb);
}

/* One test of related rows, an arm of dirty (none with PLAN_ROW). */
static void dirty_related(struct strbuf *sb, const char **sep, enum plan_style style, const char *from_where)
{
    if (style == PLAN_ROW)
        return;
    sb_append(sb, *sep);
    related(sb, style, from_where);
    *sep = "\n    OR ";
}

/* Anything left that the final anonymisation removes (with PLAN_ROW, in the row itself). */
static char *pred_dirty(const struct form *f, const char *const p[], enum plan_style style)
{
    struct strbuf sb, tmp;
    const char *sep = "";
    sb_init(&sb);
    sb_init(&tmp);
    size_t block = 0;
    for (size_t i = 0; i < f->ncols; i++) {
        const struct column *c = &f->cols[i];
        if (c->cls == COL_METADATA && is_roles_array(c->name)) {
            sb_append(&sb, sep);
            roles_personal(&sb, "m", c->qname);
        } else if (col_is_nulled(c->cls)) {
            sb_appendf(&sb, "%sm.%s IS NOT NULL", sep, c->qname);
        } else if (c->cls == COL_BLOCK) {
            char *value = ax_asprintf("m.%s", c->qname);
            char *keys = ax_asprintf("(%s OPERATOR(pg_catalog.->) %zu)", p[8], block++);
            struct strbuf trimmed;
            sb_init(&trimmed);
            trimmed_block(&trimmed, value, keys);
            sb_append(&sb, sep);
            sql_distinct(&sb, value, trimmed.buf);
            sb_free(&trimmed);
            free(value);
            free(keys);
        } else {
            continue;
        }
        sep = "\n    OR ";
    }
    if (resets_id_display(f)) {
        struct strbuf reset;
        sb_init(&reset);
        default_id_display(&reset, "m", p[2]);
        sb_append(&sb, sep);
        sql_distinct(&sb, "m.id_display::pg_catalog.text", reset.buf);
        sb_free(&reset);
        sep = "\n    OR ";
    }
    if (form_column(f, "statistics_data")) {
        sb_appendf(&sb,
                   "%s(CASE WHEN pg_catalog.jsonb_typeof(m.statistics_data) OPERATOR(pg_catalog.=) 'object'"
                   " THEN EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(m.statistics_data) k"
                   " WHERE k OPERATOR(pg_catalog.<>) ALL (%s)) ELSE m.statistics_data IS NOT NULL END)",
                   sep, p[4]);
        sep = "\n    OR ";
    }
    if (f->q_evo) {
        sb_appendf(&tmp, "public.%s e WHERE e.formdata_id OPERATOR(pg_catalog.=) m.id"
                         " AND (e.who IS NOT NULL OR e.comment IS NOT NULL OR e.parts IS NOT NULL)", f->q_evo);
        dirty_related(&sb, &sep, style, tmp.buf);
        sb_reset(&tmp);
    }
    if (f->sql.allforms_dirty) {
        sb_appendf(&tmp, "public.wcs_all_forms w WHERE w.formdef_id OPERATOR(pg_catalog.=) %s"
                         " AND w.id OPERATOR(pg_catalog.=) m.id AND %s", p[2], f->sql.allforms_dirty);
        dirty_related(&sb, &sep, style, tmp.buf);
    }
    sb_free(&tmp);
    if (!*sep)
        sb_append(&sb, "false");
    return sb_finish(&sb);
}

/*
 * When a submission's period started: the moment it first reached a final
 * status (statistics_data's done-datetime, which a later note or global
 * action does not move) when it is at one, else its last activity.  A
 * done-datetime that is not a date is ignored, never an error (silent
 * jsonpath).
 */
static char *pred_ref(const struct form *f, const char *final)
{
    if (!form_column(f, "statistics_data"))
        return ax_strdup(PLAN_ACTIVITY);
    return ax_asprintf("CASE WHEN %s THEN COALESCE((pg_catalog.jsonb_path_query_first(m.statistics_data,"
                       " '$.\"done-datetime\".datetime()', '{}', true) OPERATOR(pg_catalog.#>>) '{}')::timestamptz, "
                       PLAN_ACTIVITY
                       ") ELSE " PLAN_ACTIVITY " END",
                       final);
}

void plan_preds(const struct form *f, const char *const p[PLAN_NPARAMS + 1], enum plan_style style,
                struct form_preds *out)
{
    struct strbuf sb;
    sb_init(&sb);
    out->final = pred_final(f, p, style);
    out->ref = pred_ref(f, out->final);
    /* which submissions the final anonymisation applies to: none of a card
     * that is not configured, but its drafts when they are anonymised */
    /* a submission with no date at all has no age to spare it: due (privacy by default) */
    if (f->anonymise)
        sb_appendf(&sb,
                   "COALESCE((%s) OPERATOR(pg_catalog.<) %s, true) AND ((" PLAN_NOT_DRAFT " AND %s)%s)",
                   out->ref, p[1],
                   f->pol.open_submissions == CFG_OPEN_ANONYMISE ? "true" : out->final,
                   f->pol.drafts == CFG_DRAFTS_ANONYMISE ? " OR m.status OPERATOR(pg_catalog.=) 'draft'" : "");
    else if (f->pol.drafts == CFG_DRAFTS_ANONYMISE)
        sb_appendf(&sb, "COALESCE(" PLAN_ACTIVITY " OPERATOR(pg_catalog.<) %s, true)"
                        " AND m.status OPERATOR(pg_catalog.=) 'draft'", p[1]);
    else
        sb_append(&sb, "false");
    out->due_base = sb_detach(&sb);
    out->dirty = pred_dirty(f, p, style);
    sb_appendf(&sb, "(%s)\n  AND (m.anonymised IS NULL\n    OR %s)", out->due_base, out->dirty);
    out->work = sb_finish(&sb);
}

/* What every form statement takes from the form: $1 to $4 and $8. */
static void bind_form(const struct form *f, struct plan_values *out)
{
    snprintf(out->formdef_id, sizeof out->formdef_id, "%d", f->formdef_id);
    out->values[0] = f->cutoff;
    out->values[1] = out->formdef_id;
    out->values[2] = f->sql.endpoints ? f->sql.endpoints : "{}";
    out->values[3] = f->sql.stat_keys;
    out->values[7] = f->sql.block_keys;
    out->values[9] = f->table;
}

void plan_bind(const struct form *f, const struct plan_args *a, struct plan_values *out)
{
    bind_form(f, out);
    out->types = param_types;
    out->values[4] = a->lo ? a->lo : "0";
    out->values[5] = a->upto ? a->upto : "0";
    out->values[6] = a->run_ts;
    out->values[8] = a->unit_end ? a->unit_end : PLAN_NO_END;
}

void plan_bind_report(const struct form *f, const struct plan_report_args *a, struct plan_values *out)
{
    bind_form(f, out);
    out->types = report_param_types;
    out->values[4] = a->legal_limit;
    out->values[5] = a->at;
    out->values[6] = a->backup_days;
    out->values[8] = a->open_limit;
    out->values[9] = a->since ? a->since : "-infinity";
}

/* -- batches ---------------------------------------------------------------------- */

/* The form's candidates ($10) in the work unit's range ($5, $9], and in a batch's range ($5, $6]. */
#define CANDIDATES_IN(hi)                                                                                          \
    "(SELECT c.id FROM anonymizer.candidates c WHERE c.table_name OPERATOR(pg_catalog.=) $10"                      \
    " AND c.id OPERATOR(pg_catalog.>) $5 AND c.id OPERATOR(pg_catalog.<=) " hi ") k"
#define CANDIDATES_IN_UNIT CANDIDATES_IN("$9")
/* The row of candidate k, looked up by its id: one primary-key lookup per candidate whatever the planner makes
 * of the candidates' statistics (a join it could reorder might walk the form's index from its first id). */
#define ROW_OF_CANDIDATE(table)                                                                                    \
    "CROSS JOIN LATERAL (SELECT r.ctid AS anonymizer_ctid, r.* FROM public." table " r"                            \
    " WHERE r.id OPERATOR(pg_catalog.=) k.id OFFSET 0) m"
#define CANDIDATES_IN_BATCH CANDIDATES_IN("$6")

static const char drafts_pred[] =
    "m.status OPERATOR(pg_catalog.=) 'draft' AND COALESCE(" PLAN_ACTIVITY " OPERATOR(pg_catalog.<) $1, true)";

static const char *batch_pred(const struct form *f, enum plan_batch kind)
{
    return kind == PLAN_ANONYMISE ? f->sql.pred.work : drafts_pred;
}

/* What follows a batch's change of its rows (alias of the changed rows: c, with id and tracking_code). */
static void batch_tail(struct strbuf *sb, const struct form *f, bool anonymise, const char *rows)
{
    bool tc = f->sql.tracking_codes;
    bool evo = anonymise && f->q_evo;
    /* every join to the batch's rows by key (= ANY of an array): a join the
     * planner is free to hash reads the whole table, at every batch */
    if (evo)
        sb_appendf(sb,
                   ",\nevo AS (UPDATE public.%s e SET who = NULL, comment = NULL, parts = NULL"
                   " WHERE e.formdata_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT l.id FROM %s l))"
                   " AND (e.who IS NOT NULL OR e.comment IS NOT NULL OR e.parts IS NOT NULL) RETURNING 1)",
                   f->q_evo, rows);
    /* by primary key: a join could read the whole tenant-wide table per batch */
    if (tc)
        sb_appendf(sb, ",\ntc AS (DELETE FROM public.tracking_codes c WHERE c.id OPERATOR(pg_catalog.=) ANY (ARRAY("
                       "SELECT l.tracking_code FROM %s l WHERE l.tracking_code IS NOT NULL)) RETURNING 1)",
                   rows);
    sb_appendf(sb,
               "\nSELECT (SELECT pg_catalog.max(id) FROM cand), (SELECT pg_catalog.count(*) FROM cand),"
               " pg_catalog.count(*) FILTER (WHERE fresh AND NOT draft), pg_catalog.count(*) FILTER (WHERE NOT fresh),"
               " pg_catalog.count(*) FILTER (WHERE fresh AND draft), %s, %s,"
               " pg_catalog.array_agg(id ORDER BY id) FROM chg",
               evo ? "(SELECT pg_catalog.count(*) FROM evo)" : "0", tc ? "(SELECT pg_catalog.count(*) FROM tc)" : "0");
}

char *plan_batch(const struct form *f, enum plan_batch kind)
{
    struct strbuf sb;
    bool tc = f->sql.tracking_codes;
    bool anonymise = kind == PLAN_ANONYMISE;
    const char *pred = batch_pred(f, kind);
    const char *recheck = anonymise ? f->sql.pred.due_base : drafts_pred;

    sb_init(&sb);
    sb_appendf(&sb,
               "WITH cand AS MATERIALIZED (SELECT m.id FROM " CANDIDATES_IN_UNIT " " ROW_OF_CANDIDATE("%s") "\n"
               "  WHERE %s\n"
               "  ORDER BY k.id LIMIT $6),\n"
               "locked AS (SELECT m.id, %s AS tracking_code, m.anonymised IS NULL AS fresh,"
               " COALESCE(m.status OPERATOR(pg_catalog.=) 'draft', false) AS draft\n"
               "  FROM public.%s m\n"
               /* the candidates needed work a moment ago: what is checked again
                * under the lock is only that they are still due (blanking a row
                * twice changes nothing) */
               "  WHERE m.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM cand)) AND %s\n"
               /* the lock an UPDATE that changes no key takes: new history rows (which
                * reference the submission) are not blocked by it; a DELETE needs more */
               "  FOR %s OF m SKIP LOCKED),\n",
               f->q_table, pred, tc ? "m.tracking_code" : "NULL::varchar", f->q_table, recheck,
               anonymise ? "NO KEY UPDATE" : "UPDATE");
    if (anonymise)
        sb_appendf(&sb, "chg AS (UPDATE public.%s m SET\n  %s\n  FROM locked l"
                        " WHERE m.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM locked))"
                        " AND m.id OPERATOR(pg_catalog.=) l.id"
                        " RETURNING l.id, l.tracking_code, l.fresh, l.draft)",
                   f->q_table, f->sql.set);
    else
        /* history rows go with the submission (ON DELETE CASCADE), the
         * wcs_all_forms row with the w.c.s. trigger */
        sb_appendf(&sb, "chg AS (DELETE FROM public.%s t WHERE t.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM"
                        " locked))"
                        " RETURNING t.id, %s AS tracking_code, true AS fresh, true AS draft)",
                   f->q_table, tc ? "t.tracking_code" : "NULL::varchar");
    batch_tail(&sb, f, anonymise, "chg");
    return sb_finish(&sb);
}

char *plan_batch_unlocked(const struct form *f)
{
    struct strbuf sb;
    bool tc = f->sql.tracking_codes;
    sb_init(&sb);
    sb_appendf(&sb,
               "WITH cand AS MATERIALIZED (SELECT m.anonymizer_ctid AS t, m.id, %s AS tracking_code, m.anonymised IS NULL AS fresh,"
               " COALESCE(m.status OPERATOR(pg_catalog.=) 'draft', false) AS draft FROM " CANDIDATES_IN_UNIT
               " " ROW_OF_CANDIDATE("%s") "\n"
               "  WHERE %s\n"
               "  ORDER BY k.id LIMIT $6),\n"
               /* no lock taken first: the UPDATE locks as it goes, and waits for a
                * row a w.c.s. request holds (lock_timeout: the batch is then done
                * again the careful way, plan_batch); it checks again, on the row
                * it changes, that it is still due */
               "chg AS (UPDATE public.%s m SET\n  %s\n  FROM cand l"
               " WHERE m.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT t FROM cand)) AND m.ctid OPERATOR(pg_catalog.=) l.t"
               " AND %s"
               " RETURNING l.id, l.tracking_code, l.fresh, l.draft)",
               tc ? "m.tracking_code" : "NULL::varchar", f->q_table, f->sql.pred.work, f->q_table, f->sql.set,
               f->sql.pred.due_base);
    batch_tail(&sb, f, true, "chg");
    return sb_finish(&sb);
}

char *plan_count_drafts(const struct form *f)
{
    return ax_asprintf("SELECT pg_catalog.count(*) FROM public.%s m WHERE %s", f->q_table, drafts_pred);
}

char *plan_batch_range(const struct form *f, enum plan_batch kind)
{
    return ax_asprintf("SELECT pg_catalog.max(s.id), pg_catalog.count(*) FROM (SELECT m.id FROM " CANDIDATES_IN_UNIT
                       " " ROW_OF_CANDIDATE("%s") "\n"
                       "  WHERE %s\n"
                       "  ORDER BY k.id LIMIT $6) s",
                       f->q_table, batch_pred(f, kind));
}

char *plan_batch_allforms(const struct form *f, enum plan_batch kind)
{
    if (kind == PLAN_ANONYMISE) {
        /* makes sure wcs_all_forms carries nothing personal even where the trigger is missing */
        if (!f->sql.allforms_set)
            return NULL;
        return ax_asprintf("UPDATE public.wcs_all_forms w SET %s\n"
                           "  FROM " CANDIDATES_IN_BATCH " JOIN public.%s m ON m.id OPERATOR(pg_catalog.=) k.id\n"
                           "  WHERE w.formdef_id OPERATOR(pg_catalog.=) $2 AND w.id OPERATOR(pg_catalog.=) k.id"
                           " AND m.anonymised IS NOT NULL\n"
                           "  AND %s\n"
                           "  AND %s",
                           f->sql.allforms_set, f->q_table, f->sql.pred.due_base, f->sql.allforms_dirty);
    }
    /* a deleted draft leaves nothing in wcs_all_forms, trigger or not; only
     * the batch's candidates are looked at */
    if (!f->sql.allforms)
        return NULL;
    return ax_asprintf("DELETE FROM public.wcs_all_forms w\n"
                       "  WHERE w.formdef_id OPERATOR(pg_catalog.=) $2 AND w.id OPERATOR(pg_catalog.=) ANY (ARRAY("
                       "SELECT k.id FROM " CANDIDATES_IN_BATCH "\n"
                       "  WHERE NOT EXISTS (SELECT 1 FROM public.%s m WHERE m.id OPERATOR(pg_catalog.=) k.id)))",
                       f->q_table);
}

char *plan_count_work(const struct form *f)
{
    return ax_asprintf("SELECT pg_catalog.count(*) FROM public.%s m\n  WHERE %s", f->q_table, f->sql.pred.work);
}

/* -- report ------------------------------------------------------------------------ */

/* Any column of a field the definition marks "intermediate" still set ("false" when there is none). */
static char *pred_intermediate(const struct form *f)
{
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < f->ncols; i++)
        if (f->cols[i].reason == REASON_DEF_INTERMEDIATE && f->cols[i].qname)
            sb_appendf(&sb, "%sm.%s IS NOT NULL", sb.len ? " OR " : "(", f->cols[i].qname);
    sb_append(&sb, sb.len ? ")" : "false");
    return sb_finish(&sb);
}

/* The rows under a legal hold in force, as the report's session set them (plan.h). */
#define HELD_ROWS                                                                                                  \
    "(pg_catalog.current_setting('anonymizer.held_all')::boolean OR m.id OPERATOR(pg_catalog.=)"                   \
    " ANY (pg_catalog.current_setting('anonymizer.held')::bigint[]))"

char *plan_report(const struct form *f, enum plan_held held)
{
    struct strbuf sb;
    struct form_preds p;
    /* one pass over the table: related rows may be hashed */
    plan_preds(f, plan_dollar_params, PLAN_SCAN, &p);
    char *unknown = pred_unknown(f, plan_dollar_params, PLAN_SCAN);
    char *inter = pred_intermediate(f);
    const char *open_anon = f->pol.open_submissions == CFG_OPEN_ANONYMISE ? "true" : "false";
    const char *drafts_anon = f->pol.drafts == CFG_DRAFTS_ANONYMISE ? "true" : "false";
    /* still holds personal data, and the limit applies to it */
    char *pending = ax_asprintf("(NOT anon OR dirty) AND (draft OR final OR %s)", open_anon);
    /* open_submissions = anonymise makes them due: the legal limit speaks for them then */
    char *inactive = ax_strdup(f->pol.open_submissions == CFG_OPEN_ANONYMISE || !f->anonymise
                                   ? "false"
                                   : "NOT draft AND NOT final AND (NOT anon OR dirty) AND ref OPERATOR(pg_catalog.<) $9");

    sb_init(&sb);
    sb_appendf(&sb,
               "SELECT pg_catalog.count(*),\n"
               "  pg_catalog.count(*) FILTER (WHERE anon AND NOT dirty),\n"
               "  pg_catalog.count(*) FILTER (WHERE NOT anon AND NOT draft AND past AND (final OR %s)),\n"
               "  pg_catalog.count(*) FILTER (WHERE draft AND past AND (%s OR NOT anon)),\n"
               "  pg_catalog.count(*) FILTER (WHERE NOT anon AND NOT draft AND past AND NOT final),\n"
               "  pg_catalog.count(*) FILTER (WHERE anon AND dirty AND past"
               " AND ((NOT draft AND (final OR %s)) OR (draft AND %s))),\n"
               "  " SQL_ISO_UTC("pg_catalog.min(ref) FILTER (WHERE %s)") ",\n"
               "  GREATEST(0, pg_catalog.ceil(pg_catalog.date_part('epoch', $5 OPERATOR(pg_catalog.-)"
               " pg_catalog.min(ref) FILTER (WHERE %s)) OPERATOR(pg_catalog./) 86400))::bigint,\n"
               /* anonymised recently enough that backups still hold what was removed */
               "  pg_catalog.count(*) FILTER (WHERE anonymised OPERATOR(pg_catalog.>) ($6 OPERATOR(pg_catalog.-)"
               " pg_catalog.make_interval(days => $7))),\n"
               "  pg_catalog.to_char((pg_catalog.max(anonymised) FILTER (WHERE anonymised OPERATOR(pg_catalog.>)"
               " ($6 OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => $7)))"
               " OPERATOR(pg_catalog.+) pg_catalog.make_interval(days => $7)) AT TIME ZONE 'UTC', 'YYYY-MM-DD'),\n"
               /* open, still holding personal data, and inactive past open_limit: to review */
               "  pg_catalog.count(*) FILTER (WHERE %s),\n"
               "  " SQL_ISO_UTC("pg_catalog.min(ref) FILTER (WHERE %s)") ",\n"
               /* what the chart shows: personal data by age, done and not done */
               "  pg_catalog.count(*) FILTER (WHERE holds AND final AND NOT past),\n"
               "  pg_catalog.count(*) FILTER (WHERE holds AND final AND past AND ref OPERATOR(pg_catalog.>=) $5),\n"
               "  pg_catalog.count(*) FILTER (WHERE holds AND final AND COALESCE(ref OPERATOR(pg_catalog.<) $5, true)),\n"
               "  pg_catalog.count(*) FILTER (WHERE holds AND NOT final AND NOT past),\n"
               "  pg_catalog.count(*) FILTER (WHERE holds AND NOT final AND past AND ref OPERATOR(pg_catalog.>=) $5),\n"
               "  pg_catalog.count(*) FILTER (WHERE holds AND NOT final"
               " AND COALESCE(ref OPERATOR(pg_catalog.<) $5, true)),\n"
               /* no date at all: counted past the limit (privacy by default), and shown */
               "  pg_catalog.count(*) FILTER (WHERE ref IS NULL AND %s),\n"
               /* open for want of a status anyone knows: shown, past the limit when inactive past it */
               "  pg_catalog.count(*) FILTER (WHERE unknown AND NOT draft AND holds),\n"
               "  pg_catalog.count(*) FILTER (WHERE unknown AND NOT draft AND holds"
               " AND COALESCE(ref OPERATOR(pg_catalog.<) $5, true)),\n"
               /* open past the period and still holding what the definition marks "intermediate": the
                * workflow lacks w.c.s.'s intermediate anonymisation action */
               "  pg_catalog.count(*) FILTER (WHERE NOT anon AND NOT draft AND NOT final AND past AND inter)\n"
               "FROM (SELECT ref, anonymised, draft, final, anon, COALESCE(ref OPERATOR(pg_catalog.<) $1, true) AS past,"
               " dirty,\n"
               "    (NOT anon OR dirty) AS holds, unknown, inter\n"
               "  FROM (SELECT %s AS ref, m.anonymised,\n"
               "    COALESCE(m.status OPERATOR(pg_catalog.=) 'draft', false) AS draft,\n"
               "    (" PLAN_NOT_DRAFT " AND %s) AS final,\n"
               "    m.anonymised IS NOT NULL AS anon,\n"
               "    CASE WHEN m.anonymised IS NOT NULL THEN %s ELSE false END AS dirty,\n"
               "    %s AS unknown,\n"
               "    %s AS inter\n"
               /* what a run found clean is not looked at again (plan_report_settled counts it) */
               "  FROM public.%s m WHERE (m.anonymised IS NULL OR m.anonymised OPERATOR(pg_catalog.>=) $10)%s%s"
               " OFFSET 0) r) s",
               open_anon, f->pol.drafts == CFG_DRAFTS_DELETE ? "true" : "false", open_anon, drafts_anon, pending,
               pending, inactive, inactive, pending, p.ref, p.final, p.dirty, unknown, inter, f->q_table,
               held == PLAN_HELD_NOT ? " AND NOT " : held == PLAN_HELD_ONLY ? " AND " : "",
               held == PLAN_HELD_ANY ? "" : HELD_ROWS);
    free(inter);
    free(unknown);
    free(pending);
    free(inactive);
    form_preds_free(&p);
    return sb_finish(&sb);
}

char *plan_report_settled(const struct form *f)
{
    return ax_asprintf("SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE b),"
                       " pg_catalog.to_char((pg_catalog.max(anonymised) FILTER (WHERE b) OPERATOR(pg_catalog.+)"
                       " pg_catalog.make_interval(days => $7)) AT TIME ZONE 'UTC', 'YYYY-MM-DD')\n"
                       "FROM (SELECT m.anonymised, m.anonymised OPERATOR(pg_catalog.>) ($6 OPERATOR(pg_catalog.-)"
                       " pg_catalog.make_interval(days => $7)) AS b\n"
                       "  FROM public.%s m WHERE m.anonymised OPERATOR(pg_catalog.<) $10) s",
                       f->q_table);
}

/* -- search tokens ------------------------------------------------------------------ */

char *plan_token_context(const struct form *f)
{
    switch (f->kind) {
    case FORM_KIND_FORM: return ax_asprintf("formdata_%d", f->formdef_id);
    case FORM_KIND_CARD: return ax_asprintf("carddata_%d", f->formdef_id);
    case FORM_KIND_TEST: return NULL;
    }
    return NULL;
}

char *plan_purge_tokens(const struct form *f)
{
    if (!f->sql.search_tokens || f->kind == FORM_KIND_TEST || !form_column(f, "fts"))
        return NULL;
    /* a token whose query has no lexeme cannot be tested: it stays */
    return ax_asprintf("WITH r AS (SELECT w.token FROM public.wcs_search_tokens w\n"
                       "  WHERE w.context OPERATOR(pg_catalog.=) $1 AND w.token OPERATOR(pg_catalog.>) $2"
                       " ORDER BY w.token LIMIT $3),\n"
                       "d AS (DELETE FROM public.wcs_search_tokens w USING r\n"
                       "  WHERE w.context OPERATOR(pg_catalog.=) $1 AND w.token OPERATOR(pg_catalog.=) r.token\n"
                       "  AND pg_catalog.numnode(pg_catalog.plainto_tsquery('simple', w.token)) OPERATOR(pg_catalog.>) 0\n"
                       "  AND NOT EXISTS (SELECT 1 FROM public.%s m"
                       " WHERE m.fts OPERATOR(pg_catalog.@@) pg_catalog.plainto_tsquery('simple', w.token))\n"
                       "  RETURNING 1)\n"
                       "SELECT (SELECT pg_catalog.max(token) FROM r), (SELECT pg_catalog.count(*) FROM d)",
                       f->q_table);
}
