"""The BI export: the contract, only anonymised rows and kept fields, time
truncation, exactly once across reruns and kills, two servers, restricted
roles."""

import datetime
import json
import os
import signal

import harness
import wcs
from forms import full_submission, standard_form

F = wcs.Field


def ago(days, minutes=0):
    return f"now() - interval '{days} days' - interval '{minutes} minutes'"


def typed_form(formdef_id=5, slug='typed'):
    """Kept fields of every JSON type, and personal ones."""
    return wcs.Form(formdef_id, slug, 'Typed', [
        F('1', 'string', 'Nom', 'nom', 'final'),
        F('2', 'item', 'Motif', 'motif', 'no'),
        F('3', 'numeric', 'Montant', 'montant', 'no'),
        F('4', 'bool', 'Accord', 'accord', 'no'),
        F('5', 'items', 'Jours', None, 'no'),            # no varname: keyed f5
        F('6', 'date', 'Date', 'date_rdv', 'no'),
        F('7', 'file', 'Pièce', 'piece', 'no'),          # kept but a pickled file reference: not exported
        F('8', 'text', 'Commentaire', 'commentaire', 'final'),
    ])


class ExportTests(harness.TestCase):

    def setup_pair(self, bi_cluster='main', extra='retention = "30 days";', bi_extra='', form=None, bi_user=None,
                   tenant_conninfo=None):
        t = self.tenant()
        f = t.add_form(form or standard_form())
        self.bi_cluster = harness.cluster(bi_cluster)
        self.bi_db = harness.unique('bi')
        self.bi_cluster.createdb(self.bi_db)
        self.bi = self.bi_cluster.connect(self.bi_db)
        self.addCleanup(self.bi.close)
        bi_conninfo = self.bi_cluster.conninfo(self.bi_db, user=bi_user or 'postgres')
        # disclosure control has its own tests (test_bi.py): these few rows would be held back
        if 'min_k' not in bi_extra:
            bi_extra += ' min_k = 1;'
        self.extra = extra + f' bi = {{ conninfo = "{harness.cfgstr(bi_conninfo)}"; {bi_extra} }};'
        if tenant_conninfo:
            self.write_config([(t.name, tenant_conninfo)], extra=self.extra)
        else:
            self.write_config([t], extra=self.extra)
        return t, f

    def bi_query(self, sql, params=None):
        with self.bi.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def bi_rows(self, schema='anonymised'):
        """The rows readers see, with the w.c.s. number and export time only the tool's role reads."""
        with self.bi.cursor() as cur:
            cur.execute(f'SELECT s.*, r.submission_id, r.exported_at FROM {schema}.submissions s'
                        f' JOIN {schema}.submission_rows r USING (submission_key)'
                        f' ORDER BY s.tenant, s.form_id, r.submission_id')
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def bi_dump(self):
        """Every row of every table of the BI database, as text."""
        out = []
        with self.bi.cursor() as cur:
            cur.execute("""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                           AND n.nspname NOT LIKE 'pg_toast%'
                           -- another session's temporary tables cannot be read, and die with it: the
                           -- export's staging table may still be listed an instant after it exits
                           AND n.nspname NOT LIKE 'pg\\_temp\\_%'""")
            for nsp, rel in cur.fetchall():
                cur.execute(f'SELECT t::text FROM {wcs.qi(nsp)}.{wcs.qi(rel)} t')
                out.extend(r[0] for r in cur.fetchall())
        return '\n'.join(out)

    # -- the contract ------------------------------------------------------------------

    def test_contract(self):
        t, f = self.setup_pair()
        full_submission(t, f, ref=ago(40))
        self.anonymizer('run', expect=0)
        cols = self.bi_query("""SELECT table_name, column_name, data_type FROM information_schema.columns
                                WHERE table_schema = 'anonymised' ORDER BY table_name, ordinal_position""")
        by_table = {}
        for table, col, typ in cols:
            by_table.setdefault(table, []).append((col, typ))
        self.assertEqual(by_table['submissions'], [
            ('tenant', 'text'), ('form_id', 'integer'), ('form_slug', 'text'), ('submission_key', 'text'),
            ('receipt_date', 'date'), ('receipt_time', 'time without time zone'), ('done_date', 'date'),
            ('done_time', 'time without time zone'), ('time_precision', 'text'), ('processing_time', 'interval'),
            ('status', 'text'), ('status_name', 'text'), ('is_final', 'boolean'), ('channel', 'text'),
            ('backoffice_submission', 'boolean'), ('criticality_level', 'integer'), ('fields', 'jsonb'),
            ('suppressed', 'ARRAY')])
        self.assertEqual(by_table['submissions_load'], [
            ('submission_key', 'text'), ('tenant', 'text'), ('form_id', 'integer'),
            ('exported_at', 'timestamp with time zone'), ('state', 'text')])
        self.assertEqual([c for c, _ in by_table['forms']], [
            'tenant', 'form_id', 'form_slug', 'form_name', 'kept_fields', 'updated_at', 'view_name', 'deleted_at',
            'quasi_identifiers', 'min_k', 'view_sql', 'sensitive', 'sensitive_columns', 'min_l', 'time_precision',
            'date_precision', 'generalise', 'rule'])
        self.assertEqual([c for c, _ in by_table['export_state']],
                         ['tenant', 'form_id', 'form_slug', 'change_seq', 'anonymised_until', 'rows_exported',
                          'updated_at', 'smallest_group', 'held_back', 'published', 'generalised', 'suppressed',
                          'limiting_field', 'suppression_order'])
        self.assertEqual([c for c, _ in by_table['statuses']], ['tenant', 'form_id', 'status', 'status_name',
                                                                 'is_final'])
        self.assertNotIn('held_back', by_table)
        self.assertEqual([c for c, _ in by_table['runs']],
                         ['run_id', 'tenant', 'started_at', 'finished_at', 'rows_exported', 'outcome', 'error'])
        self.assertEqual([c for c, _ in by_table['contract']], ['version', 'installed_at', 'tool_version'])
        pks = dict(self.bi_query("""SELECT tc.table_name, string_agg(kcu.column_name, ',' ORDER BY kcu.ordinal_position)
                                    FROM information_schema.table_constraints tc
                                    JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
                                    WHERE tc.table_schema = 'anonymised' AND tc.constraint_type = 'PRIMARY KEY'
                                    GROUP BY 1"""))
        self.assertEqual(pks['submission_rows'], 'tenant,form_id,submission_id')
        self.assertEqual(pks['forms'], 'tenant,form_id')
        self.assertEqual(pks['export_state'], 'tenant,form_id')
        self.assertEqual(pks['statuses'], 'tenant,form_id,status')
        self.assertEqual(self.bi_query('SELECT version FROM anonymised.contract ORDER BY 1'), [(1,), (2,), (3,)])
        fks = self.bi_query("""SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
                               WHERE contype = 'f' AND connamespace = 'anonymised'::regnamespace ORDER BY 1""")
        self.assertIn(('anonymised.submission_rows', 'anonymised.forms'), fks)
        # the views readers use cannot be made to leak the rows they leave out
        self.assertEqual(self.bi_query("""SELECT relname, reloptions FROM pg_class WHERE relkind = 'v'
                                          AND relnamespace = 'anonymised'::regnamespace
                                          AND relname LIKE 'submissions%%' ORDER BY 1"""),
                         [('submissions', ['security_barrier=true']), ('submissions_load', ['security_barrier=true'])])
        # every table, view and column says what it is
        missing = self.bi_query("""SELECT c.relname, a.attname FROM pg_class c
                                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                                   WHERE c.relnamespace = 'anonymised'::regnamespace AND c.relkind IN ('r', 'v')
                                   AND col_description(c.oid, a.attnum) IS NULL""")
        self.assertEqual(missing, [])
        missing = self.bi_query("""SELECT relname FROM pg_class WHERE relnamespace = 'anonymised'::regnamespace
                                   AND relkind IN ('r', 'v') AND obj_description(oid, 'pg_class') IS NULL""")
        self.assertEqual(missing, [])
        self.assertIsNotNone(self.bi_query("SELECT obj_description('anonymised'::regnamespace, 'pg_namespace')")[0][0])

    def test_newer_contract_is_refused(self):
        t, f = self.setup_pair()
        full_submission(t, f, ref=ago(40))
        self.anonymizer('export', expect=0)
        self.bi_query('INSERT INTO anonymised.contract (version, tool_version) VALUES (4, %s)', ('9.9',))
        res = self.anonymizer('run', expect=1)
        self.assertIn('contract version 4', res.stderr)
        self.assertEqual(self.bi_query('SELECT count(*) FROM anonymised.submission_rows'), [(0,)])

    # -- what reaches the BI database --------------------------------------------------

    def test_no_personal_data_reaches_bi(self):
        t, f = self.setup_pair()
        personal_text = ['user_label', 'submission_agent_id', 'tracking_code']
        markers = []
        ids = {}
        for kind, ref, status in (('due', ago(40), 'wf-done'), ('due2', ago(50), 'wf-rejected'),
                                  ('open', ago(40), 'wf-new'), ('young', ago(5), 'wf-done'),
                                  ('draft', ago(40), 'draft'), ('ydraft', ago(3), 'draft')):
            m = f'MRK{kind.upper()}'
            ids[kind] = full_submission(t, f, ref=ref, status=status, marker=m, with_tracking=False)
            sets = {c: f'{m}-{c}' for c in personal_text}
            # w.c.s. casts user_id to an integer in its trigger: a number nobody else uses
            user_id = str(1987650000 + len(markers))
            sets['user_id'] = user_id
            markers.append(user_id)
            sets.update({'f1': f'{m}-nom', 'f3': f'{m}-commentaire', 'f4': f'{m}-email', 'fbo1': f'{m}-bo',
                         'f9_display': f'{m}-enfants'})
            assignments = ', '.join(f'{wcs.qi(c)} = %s' for c in sets)
            t.query(f'UPDATE {wcs.qi(f.table)} SET {assignments},'
                    f" workflow_data = convert_to(%s, 'UTF8'), prefilling_data = convert_to(%s, 'UTF8'),"
                    f" submission_context = convert_to(%s, 'UTF8'), f7 = convert_to(%s, 'UTF8'),"
                    f" digests = jsonb_build_object('default', %s::text), fts = to_tsvector('simple', %s),"
                    f" relations_data = jsonb_build_object('x', %s::text),"
                    f" statistics_data = statistics_data || jsonb_build_object('nom', %s::text),"
                    f" f9 = jsonb_build_object('data', %s::text), f11 = jsonb_build_object('lat', %s::text)"
                    f' WHERE id = %s',
                    list(sets.values()) + [f'{m}-wfdata', f'{m}-prefill', f'{m}-ctx', f'{m}-file', f'{m}-digest',
                                           f'{m}fts', f'{m}-rel', f'{m}-stat', f'{m}-block', f'{m}-map',
                                           ids[kind]])
            markers.append(m)
            # kept fields carry a marker that must arrive
            t.query(f"UPDATE {wcs.qi(f.table)} SET f2 = %s WHERE id = %s", (f'KEEP{kind}', ids[kind]))
        self.anonymizer('run', expect=0)
        self.anonymizer('export', expect=0)
        dump = self.bi_dump()
        for m in markers:
            self.assertNotIn(m, dump)
            self.assertNotIn(m.encode().hex(), dump)     # bytea as hex
        self.assertIn('KEEPdue', dump)
        self.assertIn('KEEPdue2', dump)
        for kind in ('open', 'young', 'draft', 'ydraft'):
            self.assertNotIn(f'KEEP{kind}', dump, f'{kind} should not be exported')
        rows = self.bi_rows()
        self.assertEqual(sorted(r['submission_id'] for r in rows), sorted([ids['due'], ids['due2']]))
        row = {r['submission_id']: r for r in rows}[ids['due']]
        self.assertEqual(row['fields'], {'motif': 'KEEPdue', 'motif_display': 'Rendez-vous', 'accord': True,
                                         'creneaux': ['lundi', 'mardi'], 'creneaux_display': 'lundi, mardi'})
        self.assertEqual((row['status'], row['status_name'], row['is_final']), ('done', 'Terminé', True))
        self.assertEqual(row['form_slug'], 'demande-rdv')
        self.assertEqual(row['tenant'], t.name)

    def test_field_types(self):
        t, f = self.setup_pair(form=typed_form())
        fid = t.insert(f, status='wf-done', receipt_time=ago(50), last_update_time=ago(40), values={
            '1': 'Durand', '2': 'a', '2_display': 'Option A', '3': '12.50', '4': False, '5': ['lun', 'mar'],
            '6': '2026-03-04', '7': b'pickle', '8': 'secret'})
        self.anonymizer('run', expect=0)
        row = self.bi_rows()[0]
        self.assertEqual(row['submission_id'], fid)
        self.assertEqual(row['fields'], {'motif': 'a', 'motif_display': 'Option A', 'montant': 12.5,
                                         'accord': False, 'f5': ['lun', 'mar'], 'f5_display': None,
                                         'date_rdv': '2026-03-01'})   # a kept date, to its month
        kept = self.bi_query('SELECT kept_fields FROM anonymised.forms')[0][0]
        self.assertEqual([k['key'] for k in kept],
                         ['motif', 'motif_display', 'montant', 'accord', 'f5', 'f5_display', 'date_rdv'])
        self.assertEqual(kept[0], {'key': 'motif', 'column': 'f2', 'label': 'Motif', 'type': 'item',
                                   'sensitive': False})

    def test_wcs_anonymised_rows_are_exported(self):
        t, f = self.setup_pair()
        clean = t.insert(f, status='wf-done', receipt_time=ago(10), last_update_time=ago(9), anonymised=ago(8),
                         values={'2': 'x'})
        incomplete = full_submission(t, f, ref=ago(60), anonymised=ago(50))
        self.anonymizer('export', expect=0)
        self.assertEqual([r['submission_id'] for r in self.bi_rows()], [clean])
        # w.c.s. anonymises another one later: the incremental export finds it
        later = t.insert(f, status='wf-rejected', receipt_time=ago(3), last_update_time=ago(2), anonymised='now()')
        self.anonymizer('run', expect=0)   # completes the incomplete one, then exports
        self.assertEqual(sorted(r['submission_id'] for r in self.bi_rows()), sorted([clean, incomplete, later]))

    def test_a_row_done_in_itself_is_exported_whatever_its_history_holds(self):
        """What the export publishes comes from the row itself: a submission w.c.s. anonymised, whose row holds
        nothing the run blanks but whose history still has a comment, is exported; the run completes the
        history, which never reaches BI."""
        t, f = self.setup_pair()
        fid = t.insert(f, status='wf-done', receipt_time=ago(60), last_update_time=ago(50), anonymised=ago(45),
                       values={'2': 'x'}, history=[{'who': '42', 'status': 'wf-done', 'time': ago(50),
                                                     'comment': 'Appelé M. Martin', 'parts': None}])
        self.anonymizer('export', expect=0)
        rows = self.bi_rows()
        self.assertEqual([r['submission_id'] for r in rows], [fid])
        self.assertNotIn('Martin', repr(rows))
        self.anonymizer('run', expect=0)
        self.assertEqual([(h[0], h[3]) for h in t.history(f, fid)], [(None, None)])

    def test_time_precision(self):
        for precision, expected in (('minute', datetime.time(10, 47)), ('hour', datetime.time(10)), ('day', None)):
            with self.subTest(precision=precision):
                t, f = self.setup_pair(bi_extra=f'time_precision = "{precision}";')
                t.insert(f, status='wf-done', receipt_time="'2026-01-05 10:47:33.5+00'",
                         last_update_time="'2026-01-08 16:12:09+00'", values={'2': 'x'})
                self.anonymizer('run', expect=0)
                row = self.bi_rows()[0]
                # local dates and times (the system's zone here is UTC): no session time zone moves them
                self.assertEqual((row['receipt_date'], row['receipt_time']), (datetime.date(2026, 1, 5), expected))
                self.assertEqual(row['done_date'], datetime.date(2026, 1, 8))
                self.assertEqual(row['done_time'] is None, precision == 'day')
                if row['done_time']:
                    self.assertEqual(row['done_time'].second, 0)
                    self.assertEqual(row['done_time'].minute == 0, precision != 'minute')
                # from the published (truncated) values: it tells no more than they do
                start = datetime.datetime.combine(row['receipt_date'], row['receipt_time'] or datetime.time())
                end = datetime.datetime.combine(row['done_date'], row['done_time'] or datetime.time())
                self.assertEqual(row['processing_time'], end - start)
                self.assertEqual(row['time_precision'], precision)

    def test_names_that_need_quoting(self):
        slug = "l'été-\"spécial\""
        form = standard_form(7, slug, "L'été \"spécial\"", table='formdata_7_Été "Spécial"; --')
        t, f = self.setup_pair(form=form)
        ids = [full_submission(t, f, ref=ago(40), marker=str(i)) for i in range(2)]
        self.anonymizer('run', expect=0)
        rows = self.bi_rows()
        self.assertEqual(sorted(r['submission_id'] for r in rows), sorted(ids))
        self.assertEqual({r['form_slug'] for r in rows}, {slug})
        self.assertEqual(self.bi_query('SELECT form_slug, form_name FROM anonymised.forms'),
                         [(slug, "L'été \"spécial\"")])
        # incremental, through the change log of that table
        ids.append(full_submission(t, f, ref=ago(45), marker='late'))
        self.anonymizer('run', expect=0)
        self.assertEqual(sorted(r['submission_id'] for r in self.bi_rows()), sorted(ids))

    # -- exactly once --------------------------------------------------------------------

    def test_exactly_once_across_reruns(self):
        t, f = self.setup_pair(extra='retention = "30 days"; batch_size = 50;')
        with t.conn.cursor() as cur:
            wcs.populate(cur, f, 1200)
        self.anonymizer('run', expect=0)
        expected = t.one(f"""SELECT count(*) FROM {wcs.qi(f.table)} WHERE anonymised IS NOT NULL
                             AND status <> 'draft' AND user_id IS NULL AND prefilling_data IS NULL""")[0]
        rows = self.bi_rows()
        self.assertEqual(len(rows), expected)
        stamps = {r['submission_id']: r['exported_at'] for r in rows}
        for _ in range(2):
            res = self.anonymizer('run', expect=0)
            self.assertIn('exported 0 new, 0 updated', res.stderr)
            self.anonymizer('export', expect=0)
        rows = self.bi_rows()
        self.assertEqual(len(rows), expected)
        self.assertEqual({r['submission_id']: r['exported_at'] for r in rows}, stamps, 'rows were rewritten')
        self.assertEqual(self.bi_query("SELECT sum(rows_exported) FROM anonymised.runs WHERE outcome = 'ok'"),
                         [(expected,)])
        # the change log the export consumed is pruned
        self.assertEqual(t.one('SELECT count(*) FROM anonymizer.changes')[0], 0)

    def test_late_completion_updates_the_row(self):
        t, f = self.setup_pair()
        fid = full_submission(t, f, ref=ago(40))
        self.anonymizer('run', expect=0)
        self.assertEqual(self.bi_rows()[0]['fields']['motif'], 'rdv')
        first = self.bi_rows()[0]['exported_at']
        # the DPO decides motif is personal after all: the next run blanks it, the export follows
        self.write_config([t], extra=self.extra,
                          forms=['{ tenant = "*"; slug = "demande-rdv"; blank = ["motif"]; }'])
        res = self.anonymizer('run', expect=0)
        self.assertIn('1 completed', res.stderr)
        rows = self.bi_rows()
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]['submission_id'], fid)
        self.assertNotIn('motif', rows[0]['fields'])
        self.assertGreater(rows[0]['exported_at'], first)
        self.assertIn('exported 0 new, 1 updated', res.stderr)

    def wait_for_bi_lock_wait(self):
        return self.wait_until(lambda: self.bi_query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
            " AND application_name = 'anonymizer'", (self.bi_db,))[0][0] > 0, timeout=60)

    def test_sigkill_after_anonymisation_before_export(self):
        t, f = self.setup_pair(extra='retention = "30 days"; lock_timeout = "5min";')
        ids = [full_submission(t, f, ref=ago(40), marker=str(i)) for i in range(5)]
        self.anonymizer('export', expect=0)        # installs the contract
        holder = self.bi_cluster.connect(self.bi_db, autocommit=False)
        try:
            # the export's first write waits: anonymisation is committed, the export is not
            holder.cursor().execute('LOCK TABLE anonymised.export_state IN ACCESS EXCLUSIVE MODE')
            proc = self.start_anonymizer('run')
            self.assertTrue(self.wait_for_bi_lock_wait(), 'the export never started')
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        finally:
            holder.rollback()
            holder.close()
        self.assertTrue(all(t.row(f, i)['anonymised'] for i in ids))
        self.assertEqual(self.bi_rows(), [])
        self.anonymizer('run', expect=0)
        self.assertEqual(sorted(r['submission_id'] for r in self.bi_rows()), sorted(ids))
        self.assertEqual([r[0] for r in self.bi_query('SELECT outcome FROM anonymised.runs ORDER BY started_at')],
                         ['ok', 'crashed', 'ok'])

    def test_sigkill_during_export(self):
        t, f = self.setup_pair(extra='retention = "30 days"; lock_timeout = "5min";')
        g = t.add_form(standard_form(2, 'second', 'Second'))
        a = [full_submission(t, f, ref=ago(40), marker=f'a{i}') for i in range(4)]
        b = [full_submission(t, g, ref=ago(40), marker=f'b{i}') for i in range(3)]
        self.anonymizer('export', expect=0)
        holder = self.bi_cluster.connect(self.bi_db, autocommit=False)
        try:
            # rows are copied, the merge into submissions waits
            holder.cursor().execute('LOCK TABLE anonymised.submission_rows IN EXCLUSIVE MODE')
            proc = self.start_anonymizer('run')
            self.assertTrue(self.wait_for_bi_lock_wait(), 'the export never reached the merge')
            # both forms staged, each in its own BI session (the export pipelines them): both merges wait
            self.assertTrue(self.wait_until(lambda: self.bi_query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE '%%up AS (INSERT INTO%%'"
                " AND wait_event_type = 'Lock'", (self.bi_db,))[0][0] == 2, timeout=30))
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        finally:
            holder.rollback()
            holder.close()
        # nothing half visible
        self.assertTrue(self.wait_until(lambda: self.bi_query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'anonymizer'",
            (self.bi_db,))[0][0] == 0, timeout=30))
        self.assertEqual(self.bi_rows(), [])
        self.assertEqual(self.bi_query('SELECT sum(rows_exported) FROM anonymised.export_state'), [(0,)])
        self.anonymizer('export', expect=0)
        rows = self.bi_rows()
        self.assertEqual(sorted((r['form_id'], r['submission_id']) for r in rows),
                         sorted([(1, i) for i in a] + [(2, i) for i in b]))

    # -- servers and roles ----------------------------------------------------------------

    def test_tenant_and_bi_on_two_servers_with_restricted_roles(self):
        bi_cluster = harness.cluster('bi')
        bi_db = harness.unique('bi')
        bi_cluster.createdb(bi_db)
        admin = bi_cluster.connect(bi_db)
        role = harness.unique('bi_writer')
        with admin.cursor() as cur:
            cur.execute(f'CREATE ROLE {role} LOGIN')
            cur.execute(f'REVOKE CREATE ON DATABASE {wcs.qi(bi_db)} FROM PUBLIC')
            cur.execute(f'CREATE SCHEMA staging AUTHORIZATION {role}')
        admin.close()
        # the BI role is unknown to the tenant's server
        self.assertNotEqual(bi_cluster.port, harness.cluster('main').port)
        t = self.tenant()
        f = t.add_form(standard_form())
        reader = harness.unique('reader')
        t.query(f'CREATE ROLE {reader} LOGIN')
        t.query(f'GRANT USAGE ON SCHEMA public TO {reader}')
        t.query(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}')
        ids = [full_submission(t, f, ref=ago(40), marker=str(i)) for i in range(3)]
        # anonymise with the owner's rights, without export
        self.write_config([t], extra='retention = "30 days";')
        self.anonymizer('run', expect=0)
        t.query(f'GRANT USAGE ON SCHEMA anonymizer TO {reader}')
        t.query(f'GRANT SELECT ON ALL TABLES IN SCHEMA anonymizer TO {reader}')
        sums = t.checksums()
        bi_conninfo = bi_cluster.conninfo(bi_db, user=role)
        self.write_config([(t.name, t.cluster.conninfo(t.dbname, user=reader))],
                          extra=f'retention = "30 days"; bi = {{ conninfo = "{harness.cfgstr(bi_conninfo)}";'
                                f' schema = "staging"; min_k = 1; }};')
        self.anonymizer('export', expect=0)
        self.assertEqual(t.checksums(), sums, 'the export wrote to the tenant')
        bi = bi_cluster.connect(bi_db)
        self.addCleanup(bi.close)
        with bi.cursor() as cur:
            cur.execute('SELECT submission_id FROM staging.submission_rows ORDER BY 1')
            self.assertEqual([r[0] for r in cur.fetchall()], sorted(ids))
            cur.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'staging'"
                        " AND tablename = 'submission_rows'")
            self.assertEqual(cur.fetchone()[0], role)

    # -- without a bi group --------------------------------------------------------------------

    def test_a_form_that_fails_to_export_is_named_in_both_audits(self):
        """The audit's error names the cause, not only "the export failed", and the BI runs row carries it
        (issue 24: the real cause was only in the JSON, the BI row's error empty)."""
        t, f = self.setup_pair()
        g = t.add_form(standard_form(2, 'inscription', 'Inscription'))
        for form in (f, g):
            full_submission(t, form, ref=ago(40))
        self.anonymizer('run', expect=0)
        # the BI side refuses the rows of one form
        self.bi_query("""CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                         BEGIN RAISE EXCEPTION 'refused'; END $$""")
        self.bi_query('CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON anonymised.submission_rows FOR EACH ROW'
                      ' WHEN (NEW.form_id = 2) EXECUTE FUNCTION public.refuse()')
        full_submission(t, g, ref=ago(40))
        self.anonymizer('run', expect=1)
        run = t.runs()[-1]
        self.assertEqual(run[1], 'failed')
        self.assertIn('the export to the BI database failed: form inscription: raise exception (SQLSTATE P0001',
                      run[3])
        bi_run = self.bi_query('SELECT outcome, error FROM anonymised.runs ORDER BY started_at DESC LIMIT 1')[0]
        self.assertEqual(bi_run[0], 'failed')
        self.assertIn('form inscription: raise exception', bi_run[1] or '')

    def test_without_bi_group(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(40))
        self.write_config([t], extra='retention = "30 days";')
        res = self.anonymizer('run', expect=0)
        self.assertEqual(res.stderr.count('no bi group'), 1)
        res = self.anonymizer('export', expect=78)
        self.assertIn('no bi group', res.stderr)


if __name__ == '__main__':
    harness.main()
