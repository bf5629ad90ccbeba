"""The BI schema dashboards use (per-form typed views, comments, statuses,
deletions, local days, readers, migration from contract 1) and its
re-identification guarantee (k-anonymity: held back, generalised, checked
independently with GROUP BY)."""

import datetime
import decimal
import json
import os

import harness
import wcs
from forms import F, full_submission, standard_form


def ago(days, hours=0):
    return f"now() - interval '{days} days' - interval '{hours} hours'"


def survey_form(formdef_id=3, slug='enquete'):
    """Kept fields of every type a dashboard filters on, a personal one, and a one-element block."""
    return wcs.Form(formdef_id, slug, 'Enquête de satisfaction', [
        F('1', 'string', 'Nom', 'nom', 'final'),
        F('2', 'item', 'Quartier', 'quartier', 'no'),
        F('3', 'numeric', 'Note', 'note', 'no'),
        F('4', 'bool', 'Recommande', 'recommande', 'no'),
        F('5', 'items', 'Services', 'services', 'no'),
        F('6', 'date', 'Date de visite', 'visite', 'no'),
        F('7', 'block', 'Foyer', 'foyer', 'no', max_items='1',
          schema=[F('1', 'string', 'Prénom', 'prenom', 'final'), F('2', 'item', 'Taille', 'taille', 'no'),
                  F('3', 'numeric', 'Enfants', 'enfants', 'no')]),
    ])


class BITests(harness.TestCase):

    def setup_pair(self, form=None, bi_extra='', extra='retention = "30 days";'):
        t = self.tenant()
        f = t.add_form(form or survey_form())
        self.bi_cluster = harness.cluster('main')
        self.bi_db = harness.unique('bi')
        self.bi_cluster.createdb(self.bi_db)
        self.bi = self.bi_cluster.connect(self.bi_db)
        self.addCleanup(self.bi.close)
        self.bi_extra = bi_extra
        self.extra = extra
        self.write_bi_config([t])
        return t, f

    def write_bi_config(self, tenants, bi_extra=None):
        bi = self.bi_cluster.conninfo(self.bi_db)
        self.write_config(tenants, extra=self.extra + f' bi = {{ conninfo = "{harness.cfgstr(bi)}";'
                                                       f' {self.bi_extra if bi_extra is None else bi_extra} }};')

    def q(self, sql, params=None):
        with self.bi.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def view(self):
        return self.q('SELECT view_name FROM anonymised.forms')[0][0]

    def answer(self, t, f, *, days=40, quartier='nord', note='4', recommande=True, visite='2026-03-04',
               foyer=None, channel='web', status='wf-done', receipt=None):
        block = f.fields[6].block_value([foyer or {'prenom': 'Léa', 'taille': '3', 'enfants': '1'}])
        return t.insert(f, status=status, receipt_time=receipt or ago(days + 2), last_update_time=ago(days),
                        values={'1': 'Durand', '2': quartier, '2_display': quartier.title(), '3': note,
                                '4': recommande, '5': ['piscine', 'bibliotheque'], '6': visite, '7': block},
                        submission_channel=channel)

    # -- the schema a dashboard uses -----------------------------------------------------------

    def test_view_types_rows_comments_and_a_dashboard_query(self):
        t, f = self.setup_pair(bi_extra='min_k = 1;')
        ids = [self.answer(t, f, quartier=q, note=n) for q, n in
               (('nord', '4'), ('nord', '5'), ('sud', '2'), ('sud', '3'), ('sud', '3'))]
        self.anonymizer('run', expect=0)
        view = self.view()
        self.assertEqual(view, f'form_{t.name}_enquete')
        cols = self.q("""SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum)
                         FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                         WHERE c.relnamespace = 'anonymised'::regnamespace AND c.relname = %s
                         ORDER BY a.attnum""", (view,))
        types = {name: typ for name, typ, _ in cols}
        self.assertEqual({k: types[k] for k in ('quartier', 'quartier_display', 'note', 'recommande', 'services',
                                                 'visite', 'foyer_taille', 'foyer_enfants')},
                         {'quartier': 'text', 'quartier_display': 'text', 'note': 'numeric', 'recommande': 'boolean',
                          'services': 'text[]', 'visite': 'date', 'foyer_taille': 'text', 'foyer_enfants': 'numeric'})
        # the personal fields are not there, not even as columns; the blanked subfield neither
        self.assertNotIn('nom', types)
        self.assertNotIn('foyer_prenom', types)
        self.assertEqual([t_ for t_ in types if t_.startswith('receipt')], ['receipt_time'])
        self.assertEqual([c for c, _, d in cols if not d], [], 'a column without a comment')
        self.assertIn('Quartier', dict((c, d) for c, _, d in cols)['quartier'])
        rows = self.q(f'SELECT submission_id, quartier, note, recommande, services, visite, foyer_taille'
                      f' FROM anonymised.{wcs.qi(view)} ORDER BY submission_id')
        self.assertEqual([r[0] for r in rows], ids)
        self.assertEqual(rows[0][1:], ('nord', 4, True, ['piscine', 'bibliotheque'], datetime.date(2026, 3, 4), '3'))
        # what Metabase sends for "average note by district": plain SQL, GROUP BY on typed columns
        self.assertEqual(self.q(f'SELECT quartier, count(*), avg(note)::numeric(3,1) FROM anonymised.{wcs.qi(view)}'
                                f' WHERE recommande GROUP BY quartier ORDER BY quartier'),
                         [('nord', 2, decimal.Decimal('4.5')), ('sud', 3, decimal.Decimal('2.7'))])
        # the status dimension, joined as a dashboard does
        self.assertEqual(self.q(f'SELECT s.status_name, count(*) FROM anonymised.{wcs.qi(view)} v'
                                f' JOIN anonymised.statuses s ON (s.tenant, s.status) = (v.tenant, v.status)'
                                f' GROUP BY 1'), [('Terminé', 5)])

    def test_a_definition_change_recreates_the_view_with_the_rows(self):
        t, f = self.setup_pair(bi_extra='min_k = 1;')
        self.answer(t, f)
        self.anonymizer('run', expect=0)
        view = self.view()
        before = self.q('SELECT view_sql FROM anonymised.forms')[0][0]
        # the district is no longer kept: the view loses its column in the export that carries the change
        f.fields[1].anonymise = 'final'
        f.write_definition(self.schemas, t.name)
        self.anonymizer('run', expect=0)
        cols = [r[0] for r in self.q("""SELECT column_name FROM information_schema.columns
                                        WHERE table_schema = 'anonymised' AND table_name = %s""", (view,))]
        self.assertNotIn('quartier', cols)
        self.assertNotEqual(self.q('SELECT view_sql FROM anonymised.forms')[0][0], before)
        self.assertEqual(self.q(f'SELECT count(*) FROM anonymised.{wcs.qi(view)}')[0][0], 1)
        # nothing changed: the view is left alone (same oid)
        oid = self.q('SELECT %s::regclass::oid', (f'anonymised.{view}',))[0][0]
        self.anonymizer('run', expect=0)
        self.assertEqual(self.q('SELECT %s::regclass::oid', (f'anonymised.{view}',))[0][0], oid)

    def test_reader_role_reads_everything_and_writes_nothing(self):
        reader = harness.unique('metabase')
        self.q_admin = None
        t, f = self.setup_pair(bi_extra=f'min_k = 1; reader_role = "{reader}";')
        self.bi_cluster.connect('postgres').cursor().execute(f'CREATE ROLE {reader} LOGIN')
        self.answer(t, f)
        self.anonymizer('run', expect=0)
        conn = self.bi_cluster.connect(self.bi_db, user=reader)
        self.addCleanup(conn.close)
        conn.autocommit = True
        rels = [r[0] for r in self.q("SELECT relname FROM pg_class WHERE relnamespace = 'anonymised'::regnamespace"
                                     " AND relkind IN ('r', 'v')")]
        self.assertIn(self.view(), rels)
        with conn.cursor() as cur:
            for rel in rels:
                cur.execute(f'SELECT count(*) FROM anonymised.{wcs.qi(rel)}')
            for sql in ('DELETE FROM anonymised.submissions', 'UPDATE anonymised.forms SET form_name = NULL',
                        'CREATE TABLE anonymised.x (i int)', 'INSERT INTO anonymised.held_back VALUES (1, 1, 1)'):
                with self.assertRaises(Exception, msg=sql):
                    cur.execute(sql)
        # a view made later is readable too
        g = t.add_form(survey_form(4, 'autre'))
        self.answer(t, g)
        self.anonymizer('run', expect=0)
        with conn.cursor() as cur:
            cur.execute(f'SELECT count(*) FROM anonymised.{wcs.qi("form_" + t.name + "_autre")}')
            self.assertEqual(cur.fetchone()[0], 1)
        # a reader role that does not exist is one clear error
        self.write_bi_config([t], bi_extra='min_k = 1; reader_role = "nobody_like_this";')
        res = self.anonymizer('export', expect=1)
        self.assertIn('bi.reader_role: role "nobody_like_this" does not exist', res.stderr)

    def test_deleted_submissions_and_forms_are_marked(self):
        t, f = self.setup_pair(bi_extra='min_k = 1;')
        ids = [self.answer(t, f) for _ in range(3)]
        g = t.add_form(survey_form(4, 'autre'))
        other = self.answer(t, g)
        self.anonymizer('run', expect=0)
        exported = self.q('SELECT exported_at FROM anonymised.submissions WHERE submission_id = %s AND form_id = 3',
                          (ids[1],))[0][0]
        t.query(f'DELETE FROM {wcs.qi(f.table)} WHERE id = %s', (ids[1],))
        self.anonymizer('export', expect=0)
        # an incremental loader sees the change
        self.assertGreater(self.q('SELECT exported_at FROM anonymised.submissions WHERE submission_id = %s'
                                  ' AND form_id = 3', (ids[1],))[0][0], exported)
        rows = dict(self.q('SELECT submission_id, deleted_at IS NOT NULL FROM anonymised.submissions'
                           ' WHERE form_id = 3'))
        self.assertEqual(rows, {ids[0]: False, ids[1]: True, ids[2]: False})
        # a whole form deleted in w.c.s.
        t.query(f'DROP TABLE {wcs.qi(g.evolutions)}, {wcs.qi(g.table)}')
        t.query('DELETE FROM formdefs WHERE id = 4')
        self.anonymizer('export', expect=0)
        self.assertEqual(self.q('SELECT deleted_at IS NOT NULL FROM anonymised.forms WHERE form_id = 4'), [(True,)])
        self.assertEqual(self.q('SELECT deleted_at IS NOT NULL FROM anonymised.submissions WHERE submission_id = %s'
                                ' AND form_id = 4', (other,)), [(True,)])
        self.assertEqual(self.q('SELECT deleted_at IS NULL FROM anonymised.forms WHERE form_id = 3'), [(True,)])

    def test_a_local_day(self):
        # 23:30 UTC on 31 March is already 1 April in Paris (UTC+2 in summer)
        t, f = self.setup_pair(bi_extra='min_k = 1; time_precision = "day";',
                               extra='retention = "30 days"; timezone = "Europe/Paris";')
        fid = self.answer(t, f, receipt="'2026-03-31 23:30:00+00'")
        self.anonymizer('run', expect=0)
        local = self.q("SELECT (receipt_time AT TIME ZONE 'Europe/Paris')::text FROM anonymised.submissions"
                       " WHERE submission_id = %s", (fid,))[0][0]
        self.assertEqual(local, '2026-04-01 00:00:00')
        # and a dashboard counting per local day puts it on 1 April
        self.assertEqual(self.q("SELECT (receipt_time AT TIME ZONE 'Europe/Paris')::date FROM anonymised.submissions")
                         [0][0], datetime.date(2026, 4, 1))

    def test_migration_from_contract_1(self):
        t, f = self.setup_pair(bi_extra='min_k = 1;')
        fid = self.answer(t, f)
        self.anonymizer('run', expect=0)
        # what an anonymizer of contract 1 left: its tables and rows, no view, times in UTC
        self.q('DROP VIEW anonymised.' + wcs.qi(self.view()))
        self.q('DROP INDEX anonymised.submissions_receipt, anonymised.submissions_receipt_time,'
               ' anonymised.submissions_qi_group')
        self.q('DROP TABLE anonymised.statuses, anonymised.held_back')
        self.q('ALTER TABLE anonymised.submissions DROP CONSTRAINT submissions_form_fkey')
        self.q('ALTER TABLE anonymised.submissions DROP COLUMN done_time, DROP COLUMN time_precision,'
               ' DROP COLUMN deleted_at, DROP COLUMN qi_group')
        self.q('ALTER TABLE anonymised.forms DROP COLUMN view_name, DROP COLUMN deleted_at,'
               ' DROP COLUMN quasi_identifiers, DROP COLUMN min_k, DROP COLUMN view_sql')
        self.q('ALTER TABLE anonymised.export_state DROP COLUMN smallest_group, DROP COLUMN held_back')
        self.q('DELETE FROM anonymised.contract WHERE version = 2')
        res = self.anonymizer('export', expect=0)
        self.assertIn('migrated from contract version 1 to 2', res.stderr)
        self.assertEqual(self.q('SELECT version FROM anonymised.contract ORDER BY 1'), [(1,), (2,)])
        # every form read again: the row is there once, with what contract 2 adds
        self.assertEqual(self.q('SELECT submission_id, time_precision, done_time IS NOT NULL'
                                ' FROM anonymised.submissions'), [(fid, 'hour', True)])
        self.assertEqual(self.q(f'SELECT count(*) FROM anonymised.{wcs.qi(self.view())}'), [(1,)])

    # -- k-anonymity ------------------------------------------------------------------------------

    def groups_under_k(self, k, harmless=()):
        """Independently of the tool: every combination of quasi-identifiers in BI, and its size."""
        keys = ['quartier', 'quartier_display', 'note', 'recommande', 'services', 'visite', 'foyer']
        qi_keys = [k_ for k_ in keys if k_ not in harmless and k_.replace('_display', '') not in harmless]
        fields = ', '.join(f"fields->'{k_}'" for k_ in qi_keys)
        return self.q(f"""SELECT tenant, form_id, receipt_time, done_time, channel, {fields}, count(*)
                          FROM anonymised.submissions GROUP BY tenant, form_id, receipt_time, done_time, channel,
                          {fields} HAVING count(*) < %s""", (k,))

    def crowd(self, t, f, n, **kw):
        """n submissions with the same answers, received and done in the same hour."""
        return [self.answer(t, f, receipt="date_trunc('hour', now()) - interval '42 days'", **kw) for _ in range(n)]

    def fix_hours(self, t, f, ids, receipt, done):
        t.query(f'UPDATE {wcs.qi(f.table)} SET receipt_time = {receipt}, last_update_time = {done}'
                f' WHERE id = ANY(%s)', (ids,))

    def test_small_groups_are_held_back_then_published_exactly_once(self):
        t, f = self.setup_pair(bi_extra='min_k = 3; harmless = ["services", "foyer"];')
        common = dict(quartier='nord', note='4', visite='2026-03-04')
        crowd = [self.answer(t, f, **common) for _ in range(4)]
        rare = [self.answer(t, f, quartier='hameau', note='1', visite='2026-02-01')]
        pair = [self.answer(t, f, quartier='sud', note='2', visite='2026-03-04') for _ in range(2)]
        for ids in (crowd, rare, pair):
            self.fix_hours(t, f, ids, "'2026-04-10 09:12:00+00'", "'2026-04-12 15:40:00+00'")
        self.anonymizer('run', expect=0)
        published = sorted(r[0] for r in self.q('SELECT submission_id FROM anonymised.submissions'))
        self.assertEqual(published, sorted(crowd))
        self.assertEqual(sorted(r[0] for r in self.q('SELECT submission_id FROM anonymised.held_back')),
                         sorted(rare + pair))
        self.assertEqual(self.groups_under_k(3, harmless=('services', 'foyer')), [])
        state = self.q('SELECT smallest_group, held_back FROM anonymised.export_state')[0]
        self.assertEqual(state, (4, 3))
        # the report says it, from BI
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        form = doc['tenants'][0]['forms'][0]
        self.assertEqual((form['bi_smallest_group'], form['bi_held_back']), (4, 3))
        # one more like the pair: now three of them, published; the rare one still waits
        late = self.answer(t, f, quartier='sud', note='2', visite='2026-03-04')
        self.fix_hours(t, f, [late], "'2026-04-10 09:50:00+00'", "'2026-04-12 15:05:00+00'")
        self.anonymizer('run', expect=0)
        published = sorted(r[0] for r in self.q('SELECT submission_id FROM anonymised.submissions'))
        self.assertEqual(published, sorted(crowd + pair + [late]))
        self.assertEqual([r[0] for r in self.q('SELECT submission_id FROM anonymised.held_back')], rare)
        self.assertEqual(self.groups_under_k(3, harmless=('services', 'foyer')), [])
        # exactly once: a run with nothing new changes nothing
        before = self.q('SELECT submission_id, exported_at FROM anonymised.submissions ORDER BY 1')
        self.anonymizer('run', expect=0)
        self.assertEqual(self.q('SELECT submission_id, exported_at FROM anonymised.submissions ORDER BY 1'), before)
        # one of a published group changes: the group falls to 2, so both its rows and the changed one wait
        t.query(f"UPDATE {wcs.qi(f.table)} SET f3 = '5' WHERE id = %s", (pair[0],))
        t.query(f'UPDATE {wcs.qi(f.table)} SET anonymised = now() WHERE id = %s', (pair[0],))
        self.anonymizer('run', expect=0)
        self.assertEqual(self.groups_under_k(3, harmless=('services', 'foyer')), [])
        self.assertNotIn(pair[0], [r[0] for r in self.q('SELECT submission_id FROM anonymised.submissions')])

    def test_generalise_coarsens_times_until_the_group_is_large_enough(self):
        t, f = self.setup_pair(bi_extra='min_k = 3; harmless = ["services", "foyer", "note", "visite"];'
                                        ' generalise = true;')
        # 6 April 2026 is a Monday; times in UTC (the system's zone here)
        hours = ["'2026-04-06 09:10:00+00'", "'2026-04-06 14:20:00+00'", "'2026-04-06 16:40:00+00'",  # one day
                 "'2026-04-08 10:00:00+00'",    # alone that day, in the week of the three above
                 "'2026-04-14 11:00:00+00'", "'2026-04-21 11:00:00+00'", "'2026-04-28 11:00:00+00'"]  # a month
        ids = []
        for h in hours:
            i = self.answer(t, f, quartier='nord')
            self.fix_hours(t, f, [i], h, h)
            ids.append(i)
        # far away alone: stays held back
        lonely = self.answer(t, f, quartier='nord')
        self.fix_hours(t, f, [lonely], "'2025-01-15 10:00:00+00'", "'2025-01-15 10:00:00+00'")
        self.anonymizer('run', expect=0)
        rows = {r[0]: r[1:] for r in self.q("SELECT submission_id, time_precision,"
                                            " (receipt_time AT TIME ZONE 'UTC')::text, (done_time AT TIME ZONE"
                                            " 'UTC')::text, (last_update_time AT TIME ZONE 'UTC')::text"
                                            " FROM anonymised.submissions")}
        # three on one day: truncated to the day
        self.assertEqual({rows[i] for i in ids[:3]},
                         {('day', '2026-04-06 00:00:00', '2026-04-06 00:00:00', '2026-04-06 00:00:00')})
        # the 8th, alone that day, to its week (Monday 6 April): the same values as those three
        self.assertEqual(rows[ids[3]], ('week', '2026-04-06 00:00:00', '2026-04-06 00:00:00', '2026-04-06 00:00:00'))
        # three alone in their weeks: to the month, every time of the row
        for i in ids[4:]:
            self.assertEqual(rows[i], ('month', '2026-04-01 00:00:00', '2026-04-01 00:00:00', '2026-04-01 00:00:00'))
        self.assertNotIn(lonely, rows)
        self.assertEqual([r[0] for r in self.q('SELECT submission_id FROM anonymised.held_back')], [lonely])
        self.assertEqual(self.groups_under_k(3, harmless=('services', 'foyer', 'note', 'visite')), [])

    def test_dry_run_says_and_writes_nothing(self):
        t, f = self.setup_pair(bi_extra='min_k = 2; harmless = ["services", "foyer", "note", "visite"];')
        ids = self.crowd(t, f, 2) + [self.answer(t, f, quartier='loin')]
        self.anonymizer('run', '--dry-run', expect=0)  # the report: nothing anonymised
        self.anonymizer('-q', 'run', expect=0)
        before = self.q("SELECT count(*) FROM anonymised.submissions")[0][0]
        t.query(f'UPDATE {wcs.qi(f.table)} SET anonymised = now() WHERE id = ANY(%s)', (ids,))
        dump = self.q("SELECT md5(string_agg(t::text, '')) FROM anonymised.submissions t")
        res = self.anonymizer('export', '--dry-run', expect=0)
        self.assertIn('would export', res.stdout)
        self.assertIn('held back', res.stdout)
        self.assertEqual(self.q("SELECT count(*) FROM anonymised.submissions")[0][0], before)
        self.assertEqual(self.q("SELECT md5(string_agg(t::text, '')) FROM anonymised.submissions t"), dump)
        self.assertEqual(self.q("SELECT count(*) FROM anonymised.runs WHERE rows_exported > 0 AND started_at >"
                                " now() - interval '5 seconds' AND outcome = 'running'")[0][0], 0)


if __name__ == '__main__':
    harness.main()
