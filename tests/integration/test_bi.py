"""The BI schema dashboards use (per-form typed views, comments, statuses,
deletions, local days, the reader and loader roles, migration from contract
2) and its re-identification guarantee (anonymizer-bi(7)), checked from the
reader's side by an independent checker (tests/lib/bicheck.py) after every
export: small groups held back, mixed precisions, w.c.s. ids, erasure,
generalisation and suppression, l-diversity, four nights of incremental
export, and the defaults on realistic data."""

import datetime
import decimal
import json
import os
import re

import bicheck
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


# fields not counted in the tests that look at times and districts only
OTHERS_SENSITIVE = 'sensitive = ["services", "foyer", "note", "visite", "recommande"];'



# export_state's figures of the one form, counted from its rows
RECOUNT = """SELECT count(*) FILTER (WHERE b.pub IS NOT NULL), count(*) FILTER (WHERE b.pub IS NULL),
    count(*) FILTER (WHERE b.pub->>'precision' <> f.time_precision),
    count(*) FILTER (WHERE jsonb_array_length(b.pub->'suppressed') > 0),
    (SELECT min(n) FROM (SELECT count(*) AS n FROM anonymised.submission_rows r WHERE r.pub IS NOT NULL
     GROUP BY r.pub) g)
    FROM anonymised.submission_rows b JOIN anonymised.forms f USING (tenant, form_id) WHERE b.deleted_at IS NULL"""

class BITests(harness.TestCase):

    def setup_pair(self, form=None, bi_extra='', extra='retention = "30 days";', roles=False):
        t = self.tenant()
        f = t.add_form(form or survey_form())
        self.bi_cluster = harness.cluster('main')
        self.bi_db = harness.unique('bi')
        self.bi_cluster.createdb(self.bi_db)
        self.bi = self.bi_cluster.connect(self.bi_db)
        self.addCleanup(self.bi.close)
        self.reader = self.loader = None
        if roles:
            bi_extra += self.make_roles()
        self.bi_extra = bi_extra
        self.extra = extra
        self.write_bi_config([t])
        return t, f

    def make_roles(self):
        """A dashboards' role and a loading role; their settings."""
        self.reader, self.loader = harness.unique('metabase'), harness.unique('loader')
        with self.bi_cluster.connect('postgres').cursor() as cur:
            cur.execute(f'CREATE ROLE {self.reader} LOGIN')
            cur.execute(f'CREATE ROLE {self.loader} LOGIN')
        return f' reader_role = "{self.reader}"; loader_role = "{self.loader}";'

    def write_bi_config(self, tenants, bi_extra=None, forms=None):
        bi = self.bi_cluster.conninfo(self.bi_db)
        self.write_config(tenants, forms=forms,
                          extra=self.extra + f' bi = {{ conninfo = "{harness.cfgstr(bi)}";'
                                             f' {self.bi_extra if bi_extra is None else bi_extra} }};')

    def q(self, sql, params=None):
        with self.bi.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def connect_as(self, role):
        conn = self.bi_cluster.connect(self.bi_db, user=role)
        conn.autocommit = True
        self.addCleanup(conn.close)
        return conn

    def view(self):
        return self.q('SELECT view_name FROM anonymised.forms')[0][0]

    def published(self, form_id=None):
        """The w.c.s. numbers of the rows readers see (the tool's private table maps their keys back)."""
        return sorted(r[0] for r in self.q(
            'SELECT r.submission_id FROM anonymised.submissions s JOIN anonymised.submission_rows r'
            ' USING (submission_key) WHERE %s IS NULL OR s.form_id = %s', (form_id, form_id)))

    def held(self):
        return sorted(r[0] for r in self.q('SELECT submission_id FROM anonymised.submission_rows'
                                           ' WHERE pub IS NULL AND deleted_at IS NULL'))

    def assert_guarantee(self, k, l=1):
        """The independent checker, as the reader role when there is one (else as the owner)."""
        conn = self.connect_as(self.reader) if self.reader else self.bi
        self.assertEqual(bicheck.violations(conn, k, l), [], bicheck.group_sizes(self.bi))

    def answer(self, t, f, *, days=40, quartier='nord', note='4', recommande=True, visite='2026-03-04',
               foyer=None, channel='web', status='wf-done', receipt=None):
        block = f.fields[6].block_value([foyer or {'prenom': 'Léa', 'taille': '3', 'enfants': '1'}])
        return t.insert(f, status=status, receipt_time=receipt or ago(days + 2), last_update_time=ago(days),
                        values={'1': 'Durand', '2': quartier, '2_display': quartier.title(), '3': note,
                                '4': recommande, '5': ['piscine', 'bibliotheque'], '6': visite, '7': block},
                        submission_channel=channel)

    def fix_times(self, t, f, ids, receipt, done=None):
        t.query(f'UPDATE {wcs.qi(f.table)} SET receipt_time = {receipt}, last_update_time = {done or receipt}'
                f' WHERE id = ANY(%s)', (ids,))

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
        # the personal fields are not there, not even as columns; the blanked subfield neither; no w.c.s. number
        self.assertNotIn('nom', types)
        self.assertNotIn('foyer_prenom', types)
        self.assertNotIn('submission_id', types)
        self.assertEqual([c for c in types if c.startswith('receipt')], ['receipt_date', 'receipt_time'])
        self.assertEqual([c for c, _, d in cols if not d], [], 'a column without a comment')
        self.assertIn('Quartier', dict((c, d) for c, _, d in cols)['quartier'])
        rows = self.q(f'SELECT r.submission_id, v.quartier, v.note, v.recommande, v.services, v.visite,'
                      f' v.foyer_taille FROM anonymised.{wcs.qi(view)} v JOIN anonymised.submission_rows r'
                      f' USING (submission_key) ORDER BY 1')
        self.assertEqual([r[0] for r in rows], ids)
        # the date of visit to its month (bi.date_precision)
        self.assertEqual(rows[0][1:], ('nord', 4, True, ['piscine', 'bibliotheque'], datetime.date(2026, 3, 1), '3'))
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
        self.assertNotIn('quartier', self.q('SELECT fields FROM anonymised.submission_rows')[0][0])
        # nothing changed: the view is left alone (same oid)
        oid = self.q('SELECT %s::regclass::oid', (f'anonymised.{view}',))[0][0]
        self.anonymizer('run', expect=0)
        self.assertEqual(self.q('SELECT %s::regclass::oid', (f'anonymised.{view}',))[0][0], oid)

    def test_each_role_sees_what_it_should_and_writes_nothing(self):
        t, f = self.setup_pair(bi_extra='min_k = 1;', roles=True)
        # what contract 2 granted readers: every table, and every table made later
        self.anonymizer('export', expect=0)
        self.q(f'GRANT SELECT ON ALL TABLES IN SCHEMA anonymised TO {self.reader}')
        self.q(f'ALTER DEFAULT PRIVILEGES IN SCHEMA anonymised GRANT SELECT ON TABLES TO {self.reader}')
        self.answer(t, f)
        self.anonymizer('run', expect=0)
        reader, loader = self.connect_as(self.reader), self.connect_as(self.loader)
        public = ['contract', 'forms', 'statuses', 'submissions', self.view()]
        private = ['submission_rows', 'secret', 'export_state', 'runs', 'submissions_load']
        for conn, readable in ((reader, public), (loader, public + ['export_state', 'runs', 'submissions_load'])):
            for rel in public + private:
                with conn.cursor() as cur:
                    if rel in readable:
                        cur.execute(f'SELECT count(*) FROM anonymised.{wcs.qi(rel)}')
                    else:
                        with self.assertRaises(Exception, msg=rel):
                            cur.execute(f'SELECT count(*) FROM anonymised.{wcs.qi(rel)}')
        with reader.cursor() as cur:
            for sql in ('DELETE FROM anonymised.submission_rows', 'UPDATE anonymised.forms SET form_name = NULL',
                        'CREATE TABLE anonymised.x (i int)'):
                with self.assertRaises(Exception, msg=sql):
                    cur.execute(sql)
        # the loader follows the rows by their export time, and takes them from submissions
        with loader.cursor() as cur:
            cur.execute('SELECT l.state, s.fields IS NOT NULL FROM anonymised.submissions_load l'
                        ' JOIN anonymised.submissions s USING (submission_key)')
            self.assertEqual(cur.fetchall(), [('published', True)])
        # a view made later is readable too, by both
        g = t.add_form(survey_form(4, 'autre'))
        self.answer(t, g)
        self.anonymizer('run', expect=0)
        for conn in (reader, loader):
            with conn.cursor() as cur:
                cur.execute(f'SELECT count(*) FROM anonymised.{wcs.qi("form_" + t.name + "_autre")}')
                self.assertEqual(cur.fetchone()[0], 1)
        # a role that does not exist is one clear error
        self.write_bi_config([t], bi_extra='min_k = 1; reader_role = "nobody_like_this";')
        res = self.anonymizer('export', expect=1)
        self.assertIn('bi.reader_role: role "nobody_like_this" does not exist', res.stderr)

    def test_deleted_submissions_and_forms_leave_the_readers_view(self):
        t, f = self.setup_pair(bi_extra='min_k = 1;', roles=True)
        ids = [self.answer(t, f) for _ in range(3)]
        g = t.add_form(survey_form(4, 'autre'))
        other = self.answer(t, g)
        self.anonymizer('run', expect=0)
        key = self.q('SELECT submission_key FROM anonymised.submission_rows WHERE submission_id = %s'
                     ' AND form_id = 3', (ids[1],))[0][0]
        exported = self.q('SELECT exported_at FROM anonymised.submissions_load WHERE submission_key = %s',
                          (key,))[0][0]
        t.query(f'DELETE FROM {wcs.qi(f.table)} WHERE id = %s', (ids[1],))
        self.anonymizer('export', expect=0)
        self.assertEqual(self.published(3), [ids[0], ids[2]])
        # its content is gone; the loader sees it deleted, later than it was exported
        self.assertEqual(self.q('SELECT fields, pub FROM anonymised.submission_rows WHERE submission_key = %s',
                                (key,)), [({}, None)])
        with self.connect_as(self.loader).cursor() as cur:
            cur.execute('SELECT state, exported_at > %s FROM anonymised.submissions_load WHERE submission_key = %s',
                        (exported, key))
            self.assertEqual(cur.fetchall(), [('deleted', True)])
        # a whole form deleted in w.c.s.
        t.query(f'DROP TABLE {wcs.qi(g.evolutions)}, {wcs.qi(g.table)}')
        t.query('DELETE FROM formdefs WHERE id = 4')
        self.anonymizer('export', expect=0)
        self.assertEqual(self.q('SELECT deleted_at IS NOT NULL FROM anonymised.forms WHERE form_id = 4'), [(True,)])
        self.assertEqual(self.published(4), [])
        self.assertEqual(self.q('SELECT deleted_at IS NOT NULL FROM anonymised.submission_rows WHERE form_id = 4'),
                         [(True,)])
        self.assertEqual(self.published(3), [ids[0], ids[2]])
        del other

    def test_a_local_day_whatever_the_session_time_zone(self):
        # 23:30 UTC on 31 March is already 1 April in Paris (UTC+2 in summer)
        t, f = self.setup_pair(bi_extra='min_k = 1; time_precision = "day";',
                               extra='retention = "30 days"; timezone = "Europe/Paris";')
        self.answer(t, f, receipt="'2026-03-31 23:30:00+00'")
        self.anonymizer('run', expect=0)
        for zone in ('UTC', 'America/Los_Angeles', 'Asia/Tokyo'):
            self.q(f"SET TimeZone = '{zone}'")
            self.assertEqual(self.q('SELECT receipt_date, receipt_time, time_precision FROM anonymised.submissions'),
                             [(datetime.date(2026, 4, 1), None, 'day')])
        self.q('RESET TimeZone')

    def test_migration_from_contract_2(self):
        t, f = self.setup_pair(bi_extra='min_k = 1;')
        ids = [self.answer(t, f) for _ in range(2)]
        # what an anonymizer of contract 2 left: its tables, rows keyed by w.c.s. numbers, a held-back list,
        # a per-form view and the readers' grants on everything
        with open(os.path.join(os.path.dirname(__file__), 'golden', 'bi_contract2.sql')) as fp:
            self.q(fp.read())
        self.q("INSERT INTO anonymised.forms (tenant, form_id, form_slug, form_name, kept_fields, updated_at,"
               " view_name) VALUES (%s, 3, 'enquete', 'Enquête', '[]', now(), 'form_old')", (t.name,))
        self.q("INSERT INTO anonymised.submissions (tenant, form_id, form_slug, submission_id, anonymised_at,"
               " is_final, fields, time_precision, qi_group) VALUES (%s, 3, 'enquete', %s, now(), true, '{}',"
               " 'hour', 1)", (t.name, ids[0]))
        self.q('INSERT INTO anonymised.held_back (tenant, form_id, submission_id) VALUES (%s, 3, %s)',
               (t.name, ids[1]))
        self.q('CREATE VIEW anonymised.form_old AS SELECT submission_id FROM anonymised.submissions')
        self.q("INSERT INTO anonymised.export_state (tenant, form_id, form_slug, change_seq, anonymised_until,"
               " updated_at) VALUES (%s, 3, 'enquete', 99, now(), now())", (t.name,))
        res = self.anonymizer('run', expect=0)
        self.assertIn('migrated from contract version 2 to 3', res.stderr)
        self.assertEqual(self.q('SELECT version FROM anonymised.contract ORDER BY 1'), [(1,), (2,), (3,)])
        # every form read again: each row once, under its new key; nothing of contract 2 left
        self.assertEqual(self.published(), sorted(ids))
        self.assertEqual(self.q("SELECT count(*) FROM pg_class WHERE relnamespace = 'anonymised'::regnamespace"
                                " AND relname IN ('held_back', 'form_old')"), [(0,)])
        keys = [r[0] for r in self.q('SELECT submission_key FROM anonymised.submissions')]
        self.assertEqual(len(set(keys)), 2)
        self.assertTrue(all(re.fullmatch('[0-9a-f]{32}', k) for k in keys), keys)
        self.assertEqual(self.q("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'anonymised'"
                                " AND table_name = 'submissions' AND column_name = 'submission_id'"), [(0,)])
        self.assertEqual(self.q(f'SELECT count(*) FROM anonymised.{wcs.qi(self.view())}'), [(2,)])

    # -- the guarantee -------------------------------------------------------------------------

    def test_small_groups_are_held_back_then_published_exactly_once(self):
        t, f = self.setup_pair(bi_extra='min_k = 3; generalise = false; time_precision = "hour";'
                                        ' sensitive = ["services", "foyer"];', roles=True)
        common = dict(quartier='nord', note='4', visite='2026-03-04')
        crowd = [self.answer(t, f, **common) for _ in range(4)]
        rare = [self.answer(t, f, quartier='hameau', note='1', visite='2026-02-01')]
        pair = [self.answer(t, f, quartier='sud', note='2', visite='2026-03-04') for _ in range(2)]
        self.fix_times(t, f, crowd + rare + pair, "'2026-04-10 09:12:00+00'", "'2026-04-12 15:40:00+00'")
        self.anonymizer('run', expect=0)
        self.assertEqual(self.published(), sorted(crowd))
        self.assertEqual(self.held(), sorted(rare + pair))
        self.assert_guarantee(3)
        state = self.q('SELECT smallest_group, held_back, published FROM anonymised.export_state')[0]
        self.assertEqual(state, (4, 3, 4))
        # the report says it, from BI
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        form = doc['tenants'][0]['forms'][0]
        self.assertEqual((form['bi_smallest_group'], form['bi_held_back'], form['bi_published']), (4, 3, 4))
        # one more like the pair: now three of them, published; the rare one still waits
        late = self.answer(t, f, quartier='sud', note='2', visite='2026-03-04')
        self.fix_times(t, f, [late], "'2026-04-10 09:50:00+00'", "'2026-04-12 15:05:00+00'")
        self.anonymizer('run', expect=0)
        self.assertEqual(self.published(), sorted(crowd + pair + [late]))
        self.assertEqual(self.held(), rare)
        self.assert_guarantee(3)
        # exactly once: a run with nothing new changes nothing
        before = self.q('SELECT submission_key, exported_at FROM anonymised.submission_rows ORDER BY 1')
        self.anonymizer('run', expect=0)
        self.assertEqual(self.q('SELECT submission_key, exported_at FROM anonymised.submission_rows ORDER BY 1'),
                         before)
        # one of a published group changes: the group falls to 2, so both its rows and the changed one wait
        t.query(f"UPDATE {wcs.qi(f.table)} SET f3 = '5', anonymised = now() WHERE id = %s", (pair[0],))
        self.anonymizer('run', expect=0)
        self.assert_guarantee(3)
        self.assertEqual(self.published(), sorted(crowd))

    def test_mixed_precisions_never_share_a_group(self):
        """Three rows of Monday 5 October at day level and one of Thursday 8 October: the Thursday one is not
        published at week level beside them (that would make a group of 4 in which it alone is a week)."""
        t, f = self.setup_pair(bi_extra=f'min_k = 3; time_precision = "day"; {OTHERS_SENSITIVE}', roles=True)
        monday = [self.answer(t, f) for _ in range(3)]
        thursday = self.answer(t, f)
        self.fix_times(t, f, monday, "'2026-10-05 10:00:00+00'")
        self.fix_times(t, f, [thursday], "'2026-10-08 10:00:00+00'")
        self.anonymizer('run', expect=0)
        self.assertEqual(self.published(), sorted(monday))
        self.assertEqual(self.held(), [thursday])
        self.assertEqual(self.q('SELECT DISTINCT time_precision, receipt_date FROM anonymised.submissions'),
                         [('day', datetime.date(2026, 10, 5))])
        self.assert_guarantee(3)
        # two more on Wednesday: the three of that week are published at week level, a group of their own
        wednesday = [self.answer(t, f) for _ in range(2)]
        self.fix_times(t, f, wednesday, "'2026-10-07 10:00:00+00'")
        self.anonymizer('run', expect=0)
        self.assertEqual(self.published(), sorted(monday + wednesday + [thursday]))
        self.assertEqual(sorted(self.q('SELECT time_precision, receipt_date, count(*) FROM anonymised.submissions'
                                       ' GROUP BY 1, 2')),
                         [('day', datetime.date(2026, 10, 5), 3), ('week', datetime.date(2026, 10, 5), 3)])
        self.assert_guarantee(3)

    def test_no_wcs_number_reaches_the_reader(self):
        t, f = self.setup_pair(bi_extra=f'min_k = 2; {OTHERS_SENSITIVE}', roles=True)
        ids = []
        for i in range(60):
            ids.append(self.answer(t, f, quartier=('nord', 'sud', 'est')[i % 3]))
            self.fix_times(t, f, [ids[-1]], f"'2026-09-01 08:00:00+00'::timestamptz + interval '{i} hours'")
        self.anonymizer('run', expect=0)
        self.assertGreater(len(self.published()), 50)
        self.assert_guarantee(2)
        key_to_id = dict(self.q('SELECT submission_key, submission_id FROM anonymised.submission_rows'))
        reader = self.connect_as(self.reader)
        for rel in bicheck.per_submission_relations(reader, 'anonymised'):
            with reader.cursor() as cur:
                cur.execute(f'SELECT * FROM anonymised.{wcs.qi(rel)}')
                names = [d[0] for d in cur.description]
                rows = cur.fetchall()
            order = [key_to_id[r[names.index('submission_key')]] for r in rows]
            # no column holds the rows' numbers (a handful may match by chance: a criticality of 1...)
            for c, name in enumerate(names):
                same = sum(str(r[c]) == str(key_to_id[r[names.index('submission_key')]]) for r in rows)
                self.assertLessEqual(same, 2, f'{rel}.{name} holds w.c.s. numbers')
            # rows come in no order of the numbers
            ups = sum(b > a for a, b in zip(order, order[1:])) / (len(order) - 1)
            self.assertTrue(0.25 < ups < 0.75, f'{rel}: {ups:.2f} of the rows follow w.c.s. order')
        # the held-back rows and the watermarks are the tool's (and the loader's) only
        with reader.cursor() as cur:
            for rel in ('submission_rows', 'export_state', 'submissions_load', 'secret'):
                with self.assertRaises(Exception, msg=rel):
                    cur.execute(f'SELECT * FROM anonymised.{rel}')
        # nor does any reader-visible column say when a row was exported
        cols = self.q("""SELECT table_name, column_name FROM (SELECT table_name, column_name
                         FROM information_schema.columns c WHERE table_schema = 'anonymised' AND column_name IN
                         ('exported_at', 'deleted_at', 'anonymised_at', 'last_update_time', 'submission_id')
                         AND EXISTS (SELECT 1 FROM information_schema.columns k WHERE k.table_schema = c.table_schema
                         AND k.table_name = c.table_name AND k.column_name = 'submission_key') OFFSET 0) c
                         WHERE has_table_privilege(%s, 'anonymised.' || quote_ident(table_name), 'SELECT')""",
                      (self.reader,))
        self.assertEqual(cols, [])

    def test_an_erasure_leaves_no_trace_for_the_reader(self):
        t, f = self.setup_pair(bi_extra=f'min_k = 3; generalise = false; {OTHERS_SENSITIVE}', roles=True)
        trio = [self.answer(t, f, quartier='nord') for _ in range(3)]
        four = [self.answer(t, f, quartier='sud') for _ in range(4)]
        self.fix_times(t, f, trio + four, "'2026-09-01 08:00:00+00'")
        self.anonymizer('run', expect=0)
        self.assertEqual(self.published(), sorted(trio + four))
        # one of each group asks for erasure: w.c.s. deletes it
        t.query(f'DELETE FROM {wcs.qi(f.table)} WHERE id = ANY(%s)', ([trio[0], four[0]],))
        self.anonymizer('export', expect=0)
        # the three left of the four stay; the two left of the trio are a group under k: withdrawn with it
        self.assertEqual(self.published(), sorted(four[1:]))
        self.assertEqual(self.held(), sorted(trio[1:]))
        self.assert_guarantee(3)
        with self.connect_as(self.loader).cursor() as cur:
            cur.execute('SELECT state, count(*) FROM anonymised.submissions_load GROUP BY 1 ORDER BY 1')
            self.assertEqual(cur.fetchall(), [('deleted', 2), ('held', 2), ('published', 3)])

    def test_generalise_then_suppress_before_holding_back(self):
        t, f = self.setup_pair(bi_extra='min_k = 3; sensitive = ["services", "foyer", "recommande"];', roles=True)
        # six answers the same month on two days, two districts; one of them with a rare note
        days = ["'2026-09-07 10:00:00+00'"] * 3 + ["'2026-09-21 10:00:00+00'"] * 3
        ids = []
        for i, day in enumerate(days):
            ids.append(self.answer(t, f, quartier='nord', note='9' if i == 5 else '4', visite='2026-08-15'))
            self.fix_times(t, f, [ids[-1]], day)
        self.anonymizer('run', expect=0)
        rows = {r[0]: r[1:] for r in self.q(
            "SELECT r.submission_id, s.time_precision, s.receipt_date, s.suppressed::text, s.fields -> 'note'"
            ' FROM anonymised.submissions s JOIN anonymised.submission_rows r USING (submission_key)')}
        # the first three: as they are, at day level
        self.assertEqual({rows[i] for i in ids[:3]}, {('day', datetime.date(2026, 9, 7), '{}', 4)})
        # the other three cannot make a group at day, week or month level (the rare note): the note, the most
        # varied field, is suppressed for them, and they are published by day with it null
        self.assertEqual({rows[i] for i in ids[3:]}, {('day', datetime.date(2026, 9, 21), '{note}', None)})
        self.assert_guarantee(3)
        self.assertEqual(self.q('SELECT published, held_back, suppressed FROM anonymised.export_state'),
                         [(6, 0, 3)])

    def test_l_diversity(self):
        t, f = self.setup_pair(bi_extra='min_k = 2; min_l = 2; generalise = false; sensitive = ["note"];',
                               roles=True)
        same = [self.answer(t, f, quartier='nord', note='3') for _ in range(3)]
        mixed = [self.answer(t, f, quartier='sud', note=n) for n in ('1', '5')]
        self.fix_times(t, f, same + mixed, "'2026-09-01 08:00:00+00'")
        self.anonymizer('run', expect=0)
        # three people of the north who all gave 3: publishing them would tell their note
        self.assertEqual(self.published(), sorted(mixed))
        self.assert_guarantee(2, l=2)
        # min_l without sensitive fields is a configuration error
        self.write_bi_config([t], bi_extra='min_l = 2;')
        res = self.anonymizer('export', expect=78)
        self.assertIn('min_l', res.stderr)

    def test_four_nights_of_incremental_export(self):
        """New submissions, deletions, a field kept then blanked then sensitive, and a change of min_k: after
        every night the checker, as the reader, finds no group under k, and the reader no w.c.s. number."""
        t, f = self.setup_pair(bi_extra='min_k = 3;', roles=True)
        rng = [0]

        def batch(n, day):
            ids = []
            for _ in range(n):
                rng[0] += 1
                i = rng[0]
                ids.append(self.answer(t, f, quartier=('nord', 'nord', 'sud', 'est', 'ouest')[i % 5],
                                       note=str(1 + i % 3), recommande=i % 4 != 0,
                                       visite=f'2026-0{1 + i % 6}-{1 + i % 27:02d}',
                                       channel=('web', 'web', 'web', 'phone')[i % 4]))
                self.fix_times(t, f, [ids[-1]], f"'2026-{day}'::timestamptz + interval '{(i * 7) % 48} hours'",
                               f"'2026-{day}'::timestamptz + interval '{(i * 7) % 48 + 30} hours'")
            return ids

        def night(k):
            self.anonymizer('run', expect=0)
            self.assert_guarantee(k)
            # the figures the triggers keep are those of the rows, counted whole
            self.assertEqual(self.q('SELECT published, held_back, generalised, suppressed, smallest_group'
                                    ' FROM anonymised.export_state'), self.q(RECOUNT))
            published = len(self.published())
            self.assertGreater(published, 0)
            return published

        # night 1: two months of answers
        ids = batch(40, '08-03') + batch(40, '09-07')
        night(3)
        # night 2: new answers, two deletions
        ids += batch(25, '09-21')
        t.query(f'DELETE FROM {wcs.qi(f.table)} WHERE id = ANY(%s)', (ids[:2],))
        night(3)
        # night 3: the district is blanked after all (the definition changes), and more answers
        f.fields[1].anonymise = 'final'
        f.write_definition(self.schemas, t.name)
        ids += batch(10, '09-28')
        night(3)
        self.assertFalse(self.q("SELECT count(*) FROM anonymised.submissions WHERE fields ? 'quartier'")[0][0])
        # night 4: the note becomes sensitive, k goes up to 5, one more deletion
        self.bi_extra = 'min_k = 5; sensitive = ["note"];' + self.bi_extra.replace('min_k = 3;', '')
        self.write_bi_config([t])
        t.query(f'DELETE FROM {wcs.qi(f.table)} WHERE id = %s', (ids[10],))
        night(5)
        self.assertEqual(self.q('SELECT min_k, sensitive FROM anonymised.forms'), [(5, ['note'])])

    def test_defaults_publish_most_rows_of_realistic_tenants(self):
        """With only bi.conninfo set: skewed categorical answers, a kept date, small counts, a year of
        submissions; at least 80 % of the anonymised rows reach the reader."""
        t = self.tenant()
        forms = [
            (wcs.Form(21, 'signalement', 'Signalement', [
                F('1', 'item', 'Type', 'type', 'no'), F('2', 'text', 'Description', 'description', 'final'),
                F('3', 'date', 'Constaté le', 'constat', 'no'), F('4', 'bool', 'Urgent', 'urgent', 'no'),
                F('5', 'string', 'Nom', 'nom', 'final')]), 2500,
             {'1': ['voirie'] * 6 + ['eclairage'] * 3 + ['proprete'] * 2 + ['graffiti', 'arbre', 'mobilier']}),
            (wcs.Form(22, 'cantine', 'Cantine', [
                F('1', 'item', 'École', 'ecole', 'no'), F('2', 'items', 'Jours', 'jours', 'no'),
                F('3', 'string', 'Nom', 'nom', 'final')]), 900,
             {'1': ['ferry'] * 5 + ['mace'] * 3 + ['michel'], '2': ['lundi', 'mardi', 'jeudi', 'vendredi']}),
        ]
        with t.conn.cursor() as cur:
            for form, n, options in forms:
                wcs.create_form(cur, form)
                wcs.populate(cur, form, n, options=options, max_age_days=365)
                form.write_definition(self.schemas, t.name)
        self.bi_cluster = harness.cluster('main')
        self.bi_db = harness.unique('bi')
        self.bi_cluster.createdb(self.bi_db)
        self.bi = self.bi_cluster.connect(self.bi_db)
        self.addCleanup(self.bi.close)
        # only the connection, and the roles the checker and a dashboard use
        self.extra, self.bi_extra = 'retention = "30 days";', self.make_roles()
        self.write_bi_config([t])
        self.anonymizer('run', expect=0)
        published, held = self.q('SELECT sum(published), sum(held_back) FROM anonymised.export_state')[0]
        print(f'defaults: {published} of {published + held} anonymised rows reach the reader'
              f' ({100 * published / (published + held):.1f} %)')
        self.assertGreater(published + held, 1500)
        self.assertGreaterEqual(published / (published + held), 0.8, (published, held))
        self.assert_guarantee(5)
        # what was generalised or suppressed, counted per form: the figures are what readers see
        figures = self.q('SELECT form_id, published, generalised, suppressed FROM anonymised.export_state'
                         ' ORDER BY 1')
        seen = self.q("SELECT form_id, count(*), count(*) FILTER (WHERE time_precision <> 'day'),"
                      " count(*) FILTER (WHERE cardinality(suppressed) > 0) FROM anonymised.submissions"
                      " GROUP BY 1 ORDER BY 1")
        self.assertEqual(figures, seen)
        self.assertTrue(all(gen + sup > 0 for _, _, gen, sup in figures), figures)

    def test_a_form_holding_back_most_rows_is_flagged(self):
        t, f = self.setup_pair(bi_extra='min_k = 5; generalise = false;')
        for i in range(6):
            self.answer(t, f, quartier=f'q{i}', channel=('web', 'phone', 'mail')[i % 3], days=40 + 40 * i)
        res = self.anonymizer('-q', 'run', expect=0)
        self.assertIn('held back from BI', res.stderr)
        self.assertRegex(res.stderr, r'the field that makes them small: \S+')
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        form = doc['tenants'][0]['forms'][0]
        self.assertTrue(form['bi_mostly_held_back'])
        self.assertIsNotNone(form['bi_limiting_field'])
        self.assertIn('more than half held back', self.anonymizer('report').stdout)

    def test_the_old_name_harmless_is_read_as_sensitive(self):
        t, f = self.setup_pair(bi_extra='min_k = 1; harmless = ["services"];')
        self.answer(t, f)
        res = self.anonymizer('run', expect=0)
        self.assertRegex(res.stderr, r'warning: .*bi\.harmless is read as bi\.sensitive, its new name')
        self.assertEqual(self.q('SELECT sensitive FROM anonymised.forms'), [(['services', 'services_display'],)])

    def test_dry_run_says_and_writes_nothing(self):
        t, f = self.setup_pair(bi_extra=f'min_k = 2; {OTHERS_SENSITIVE}')
        ids = [self.answer(t, f) for _ in range(2)] + [self.answer(t, f, quartier='loin')]
        self.anonymizer('-q', 'run', expect=0)
        before = self.q('SELECT count(*) FROM anonymised.submission_rows')[0][0]
        t.query(f'UPDATE {wcs.qi(f.table)} SET anonymised = now() WHERE id = ANY(%s)', (ids,))
        dump = self.q("SELECT md5(string_agg(t::text, '' ORDER BY t::text)) FROM anonymised.submission_rows t")
        res = self.anonymizer('export', '--dry-run', expect=0)
        self.assertIn('would export', res.stdout)
        self.assertIn('held back', res.stdout)
        self.assertEqual(self.q('SELECT count(*) FROM anonymised.submission_rows')[0][0], before)
        self.assertEqual(self.q("SELECT md5(string_agg(t::text, '' ORDER BY t::text))"
                                " FROM anonymised.submission_rows t"), dump)
        self.assertEqual(self.q("SELECT count(*) FROM anonymised.runs WHERE rows_exported > 0 AND started_at >"
                                " now() - interval '5 seconds' AND outcome = 'running'")[0][0], 0)


if __name__ == '__main__':
    harness.main()
