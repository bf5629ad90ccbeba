"""An independent check of the BI export's re-identification guarantee, from
the reader's side: connected as the reader role, every relation it can select
that holds one row per submission (a submission_key column) is grouped by
every column except the row key, the status columns and the sensitive fields
(read from the forms table; in submissions, the fields object minus the
sensitive keys), per form; no group may be smaller than k, and with l > 1
every group has at least l distinct values of each sensitive field.

Written from anonymizer-bi(7) alone: it shares no code or SQL with the tool.
"""

import json

NOT_COUNTED = ('submission_key', 'status', 'status_name', 'is_final')


def qi(name):
    return '"' + name.replace('"', '""') + '"'


def per_submission_relations(conn, schema):
    with conn.cursor() as cur:
        cur.execute("""SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                       WHERE c.relnamespace = %s::regnamespace AND a.attname = 'submission_key'
                       AND c.relkind IN ('r', 'v', 'm', 'p') AND has_table_privilege(c.oid, 'SELECT')
                       ORDER BY 1""", (schema,))
        return [r[0] for r in cur.fetchall()]


def columns(conn, schema, rel):
    with conn.cursor() as cur:
        cur.execute("""SELECT a.attname FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0
                       AND NOT a.attisdropped ORDER BY a.attnum""", (f'{qi(schema)}.{qi(rel)}',))
        return [r[0] for r in cur.fetchall()]


def violations(conn, k, l=1, schema='anonymised'):
    """[(relation, groups under k or under l)] for every relation that breaks the guarantee; [] when it holds."""
    bad = []
    with conn.cursor() as cur:
        cur.execute(f'SELECT view_name, sensitive, sensitive_columns FROM {qi(schema)}.forms')
        forms = cur.fetchall()
    sensitive_keys = sorted({k_ for _, keys, _ in forms for k_ in (keys or [])})
    sensitive_cols = {view: set(cols or []) for view, _, cols in forms}
    for rel in per_submission_relations(conn, schema):
        cols = columns(conn, schema, rel)
        if 'fields' in cols:
            group = [qi(c) for c in cols if c not in NOT_COUNTED and c != 'fields']
            group.append(f"r.fields - coalesce((SELECT array_agg(x) FROM jsonb_array_elements_text(f.sensitive) x),"
                         f" '{{}}')")
            sens = [f"r.fields ->> {quote(k_)}" for k_ in sensitive_keys]
            source = (f'{qi(schema)}.{qi(rel)} r JOIN {qi(schema)}.forms f ON f.tenant = r.tenant'
                      f' AND f.form_id = r.form_id')
            group = [g if g.startswith('r.') else f'r.{g}' for g in group]
        else:
            sens_here = sensitive_cols.get(rel, set())
            group = [f'r.{qi(c)}' for c in cols if c not in NOT_COUNTED and c not in sens_here]
            sens = [f'r.{qi(c)}' for c in cols if c in sens_here]
            source = f'{qi(schema)}.{qi(rel)} r'
        having = [f'count(*) < {int(k)}']
        if l > 1:
            having += [f'count(DISTINCT {s}) < {int(l)}' for s in sens]
        sql = (f"SELECT count(*) FROM (SELECT 1 FROM {source} GROUP BY {', '.join(group)}"
               f" HAVING {' OR '.join(having)}) x")
        with conn.cursor() as cur:
            cur.execute(sql)
            n = cur.fetchone()[0]
        if n:
            bad.append((rel, n))
    return bad


def quote(text):
    return "'" + text.replace("'", "''") + "'"


def group_sizes(conn, schema='anonymised'):
    """The size of every group of submissions (for messages)."""
    with conn.cursor() as cur:
        cur.execute(f'SELECT count(*) FROM {qi(schema)}.submissions GROUP BY tenant, form_id, receipt_date,'
                    f' receipt_time, done_date, done_time, time_precision, channel, backoffice_submission,'
                    f' criticality_level, fields, suppressed ORDER BY 1')
        return [r[0] for r in cur.fetchall()]


__all__ = ['violations', 'group_sizes', 'json']
