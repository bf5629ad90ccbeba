"""Least privilege: run, report and export under roles that have exactly
what "anonymizer grants" gives them and nothing else (no superuser, no
ownership of w.c.s.'s tables, PUBLIC's default privileges revoked); one
grant less is one clear error naming the privilege and the table, before
anything is touched."""

import json
import os
import re
import subprocess

import harness
import pgcluster
import wcs
from forms import F, full_submission, standard_form

RUN, REPORT, BI, READER = 'anonymizer_run', 'anonymizer_report', 'anonymizer_bi', 'anonymizer_bi_reader'


def ago(days):
    return f"now() - interval '{days} days'"


class PrivilegeTests(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.cluster = harness.cluster('main')
        self.admin = self.cluster.connect('postgres')
        self.addCleanup(self.admin.close)
        # roles are cluster-wide: unique names per test
        suffix = harness.unique('r')
        self.roles = {k: f'{k}_{suffix}' for k in (RUN, REPORT, BI, READER)}
        self.admin_sql(f'CREATE ROLE {self.roles[RUN]} LOGIN')
        self.admin_sql(f'CREATE ROLE {self.roles[BI]} LOGIN')

    def admin_sql(self, sql, db=None):
        conn = self.cluster.connect(db) if db else self.admin
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            if db:
                conn.close()

    def platform(self):
        """A tenant with a form (due submissions), a test copy and a card with a cards entry; a BI database;
        PUBLIC's default privileges revoked on both, so that the grants are all there is."""
        t = self.tenant()
        f = t.add_form(standard_form())
        due = full_submission(t, f, ref=ago(40), marker='due')
        full_submission(t, f, ref=ago(40), status='draft', marker='draft')
        with t.conn.cursor() as cur:
            wcs.create_test_copy(cur, f, due)
        card = t.add_form(wcs.Card(1, 'ecoles', 'Écoles', [F('1', 'string', 'Nom', 'nom', 'final')]))
        t.insert(card, status='wf-done', receipt_time=ago(400), last_update_time=ago(400), values={'nom': 'X'})
        self.bi_db = harness.unique('bi')
        self.cluster.createdb(self.bi_db)
        for db in (t.dbname, self.bi_db):
            self.admin_sql(f'REVOKE ALL ON DATABASE {wcs.qi(db)} FROM PUBLIC')
            self.admin_sql('REVOKE ALL ON SCHEMA public FROM PUBLIC', db=db)
        # w.c.s.'s tables belong to w.c.s.'s own role, as on a real platform
        self.wcs_role = harness.unique('wcs')
        self.admin_sql(f'CREATE ROLE {self.wcs_role}')
        self.admin_sql(f'GRANT USAGE, CREATE ON SCHEMA public TO {self.wcs_role}', db=t.dbname)
        self.admin_sql(f"""DO $$ DECLARE r record; BEGIN
                             FOR r IN SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
                                      AND c.relkind IN ('r', 'p') LOOP
                               EXECUTE format('ALTER TABLE public.%I OWNER TO {self.wcs_role}', r.relname);
                             END LOOP; END $$""", db=t.dbname)
        self.t, self.f, self.due = t, f, due
        return t, f

    def as_wcs(self, t, work):
        """What w.c.s. does later, as its own role (a new form: its tables are that role's)."""
        with t.conn.cursor() as cur:
            cur.execute(f'SET ROLE {self.wcs_role}')
            try:
                return work(cur)
            finally:
                cur.execute('RESET ROLE')

    def config_as(self, role, bi_role=None, path=None):
        t = self.t
        bi = self.cluster.conninfo(self.bi_db, user=bi_role or self.roles[BI])
        return self.write_config(
            [(t.name, self.cluster.conninfo(t.dbname, user=role))],
            extra=f'retention = "30 days"; bi = {{ conninfo = "{harness.cfgstr(bi)}"; min_k = 1;'
                  f' reader_role = "{self.roles[READER]}"; }};',
            path=path or os.path.join(self.dir, f'{role}.conf')) and (path or os.path.join(self.dir, f'{role}.conf'))

    def apply_grants(self):
        """An administrator's configuration (PUBLIC may not even connect) prints the grants for the roles it names;
        a superuser applies them with psql."""
        run_conf = self.config_as(self.roles[RUN])
        for conf in (run_conf, self.config_as('postgres', bi_role='postgres')):
            with open(conf, 'a') as fp:
                fp.write('cards = ( { tenant = "*"; slug = "ecoles"; retention = "1 year"; } );\n')
        res = self.anonymizer('-c', os.path.join(self.dir, 'postgres.conf'), 'grants',
                              '--role-run', self.roles[RUN], '--role-report', self.roles[REPORT],
                              '--role-bi', self.roles[BI], '--role-bi-reader', self.roles[READER],
                              config=False, expect=0)
        sql = os.path.join(self.dir, 'grants.sql')
        with open(sql, 'w') as fp:
            fp.write(res.stdout)
        psql = os.path.join(pgcluster.bindir(), 'psql')
        if not os.path.exists(psql):
            psql = 'psql'
        proc = subprocess.run([psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', self.cluster.conninfo('postgres'),
                               '-f', sql], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr + res.stdout)
        return run_conf, res.stdout

    def test_run_report_export_with_exactly_the_grants(self):
        t, f = self.platform()
        run_conf, sql = self.apply_grants()
        # what the output says, and what it does not
        q = {k: wcs.qi(v) for k, v in self.roles.items()}
        self.assertIn(f'GRANT SELECT, UPDATE, DELETE ON public.{wcs.qi(f.table)} TO {q[RUN]};', sql)
        self.assertIn(f'GRANT SELECT ON public.{wcs.qi(f.table)} TO {q[REPORT]};', sql)
        self.assertIn(f'CREATE SCHEMA "anonymizer" AUTHORIZATION {q[RUN]};', sql)
        self.assertIn(f'GRANT CONNECT, TEMPORARY ON DATABASE {wcs.qi(self.bi_db)} TO {q[BI]};', sql)
        self.assertNotIn('SUPERUSER', sql)
        self.assertNotIn('ALL PRIVILEGES', sql)
        rows = self.admin.cursor()
        rows.execute('SELECT rolname, rolsuper FROM pg_roles WHERE rolname = ANY(%s)', (list(self.roles.values()),))
        self.assertEqual(sorted(rows.fetchall()), sorted((r, False) for r in self.roles.values()))

        res = self.anonymizer('-c', run_conf, 'run', config=False, expect=0)
        self.assertIsNotNone(t.row(f, self.due)['anonymised'])
        # VACUUM needs ownership, which w.c.s. keeps: skipped, and said
        self.assertRegex(res.stderr, r'warning: .*: \d+ tables not vacuumed: the role does not own them, and old row'
                                     r' versions keep personal data until autovacuum')
        self.assertEqual(t.one('SELECT outcome FROM anonymizer.runs')[0], 'ok')
        # the roles grants makes are no superusers: nothing to warn about
        self.assertNotIn('superuser', res.stderr)
        bi = self.cluster.connect(self.bi_db)
        self.addCleanup(bi.close)
        with bi.cursor() as cur:
            cur.execute('SELECT count(*) FROM anonymised.submissions')
            self.assertGreater(cur.fetchone()[0], 0)

        report_conf = self.config_as(self.roles[REPORT])
        doc = json.loads(self.anonymizer('-c', report_conf, 'report', '--format', 'json', config=False).stdout)
        self.assertEqual(doc['tenants'][0]['status'], 'ok', doc['tenants'][0]['error'])
        form = [x for x in doc['tenants'][0]['forms'] if x['slug'] == 'demande-rdv' and x['kind'] == 'form'][0]
        self.assertIsNotNone(doc['tenants'][0]['last_run'])
        self.assertIs(form['vacuumed_by_last_run'], False)
        self.assertIs(doc['tenants'][0]['superuser'], False)
        text = self.anonymizer('-c', report_conf, 'report', config=False).stdout
        self.assertIn('old row versions keep personal data until autovacuum', text)
        # the debt, calmly; any VACUUM after it pays it (an administrator's here, autovacuum's alike)
        self.assertIn('maintenance pending: VACUUM owed by', text)
        self.admin_sql('VACUUM', db=t.dbname)
        self.assertTrue(self.wait_until(lambda: 'VACUUM owed' not in self.anonymizer(
            '-c', report_conf, 'report', config=False).stdout, timeout=30), 'the debt stayed after a VACUUM')
        # legal holds: the run role places them, the report role lists them and cannot place one
        hold = ('hold', 'add', '-t', t.name, '--form', f.slug, '--reason', 'recours')
        self.anonymizer('-c', run_conf, *hold, config=False, expect=0)
        res = self.anonymizer('-c', report_conf, *hold, config=False, expect=1)
        self.assertIn('insufficient privilege', res.stderr)
        self.assertEqual(t.one('SELECT count(*) FROM anonymizer.holds')[0], 1)
        listed = self.anonymizer('-c', report_conf, 'hold', 'list', '--format', 'json', config=False, expect=0)
        self.assertEqual(len(json.loads(listed.stdout)[0]['holds']), 1)
        doc = json.loads(self.anonymizer('-c', report_conf, 'report', '--format', 'json', config=False).stdout)
        self.assertEqual(len(doc['tenants'][0]['legal_holds']), 1)
        # the report role cannot write
        conn = self.cluster.connect(t.dbname, user=self.roles[REPORT])
        self.addCleanup(conn.close)
        with conn.cursor() as cur:
            with self.assertRaises(Exception):
                cur.execute(f'UPDATE {wcs.qi(f.table)} SET user_id = NULL')
        conn.rollback()

        # BI readers read, and only that
        reader = self.cluster.connect(self.bi_db, user=self.roles[READER])
        self.addCleanup(reader.close)
        with reader.cursor() as cur:
            cur.execute('SELECT count(*) FROM anonymised.submissions')
            self.assertGreater(cur.fetchone()[0], 0)
            with self.assertRaises(Exception):
                cur.execute('DELETE FROM anonymised.submissions')
        reader.rollback()
        # and not the rows behind the views (w.c.s. numbers, held-back rows, export times)
        with reader.cursor() as cur:
            with self.assertRaises(Exception):
                cur.execute('SELECT count(*) FROM anonymised.submission_rows')
        reader.rollback()
        # the export alone, incremental, as the run role
        self.anonymizer('-c', run_conf, 'export', config=False, expect=0)

    def test_one_grant_less_is_one_clear_error_and_nothing_done(self):
        t, f = self.platform()
        run_conf, _ = self.apply_grants()
        res = self.anonymizer('-c', run_conf, 'check', config=False, expect=0)
        self.assertIn(f'privileges: the role "{self.roles[RUN]}" has what a run needs', res.stdout)
        self.admin_sql(f'REVOKE UPDATE ON {wcs.qi(f.table)} FROM {self.roles[RUN]}', db=t.dbname)
        # check says it before the night does
        res = self.anonymizer('-c', run_conf, 'check', config=False, expect=1)
        self.assertIn(f'privileges: role "{self.roles[RUN]}" lacks UPDATE on table public.{wcs.qi(f.table)}',
                      res.stdout)
        before = t.checksums()
        res = self.anonymizer('-c', run_conf, 'run', config=False, expect=1)
        self.assertIn(f'error: {t.name}: form {f.slug}: role "{self.roles[RUN]}" lacks UPDATE on table'
                      f' public.{wcs.qi(f.table)}', res.stderr)
        self.assertEqual([line for line in res.stderr.splitlines() if 'error:' in line and 'lacks' in line].__len__(),
                         1)
        # that form is left whole (checked before anything is touched); the other tables go on
        after = t.checksums()
        self.assertEqual(after[f'public.{f.table}'], before[f'public.{f.table}'], 'a run without UPDATE changed it')
        self.assertEqual(after[f'public.{f.evolutions}'], before[f'public.{f.evolutions}'])
        self.assertIsNone(t.row(f, self.due)['anonymised'])
        # and the audit says so
        self.assertEqual({e['slug']: e['outcome'] for e in t.runs()[-1][2] if e['kind'] == 'form'}[f.slug], 'failed')

        # the report role without SELECT on a history table: that tenant is INCOMPLETE, and says why
        self.admin_sql(f'REVOKE SELECT ON {wcs.qi(f.evolutions)} FROM {self.roles[REPORT]}', db=t.dbname)
        report_conf = self.config_as(self.roles[REPORT])
        res = self.anonymizer('-c', report_conf, 'report', config=False, expect=3)
        self.assertIn(f'lacks SELECT on table public.{wcs.qi(f.evolutions)}', res.stdout)

        # the BI role without TEMPORARY: the export stops before writing anything
        self.admin_sql(f'GRANT UPDATE ON {wcs.qi(f.table)} TO {self.roles[RUN]}', db=t.dbname)
        self.admin_sql(f'REVOKE TEMPORARY ON DATABASE {wcs.qi(self.bi_db)} FROM {self.roles[BI]}')
        bi = self.cluster.connect(self.bi_db)
        self.addCleanup(bi.close)
        # (the run above exported the forms it did: the BI schema exists, and must not change)
        bi_before = harness.table_checksums(bi, schemas=('anonymised',))
        res = self.anonymizer('-c', run_conf, 'export', config=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(f'role "{self.roles[BI]}" lacks TEMPORARY on database {self.bi_db}', res.stderr)
        self.assertEqual(harness.table_checksums(bi, schemas=('anonymised',)), bi_before)
        # only what was committed is said (issue 15, 17)
        self.assertNotIn('installed', res.stderr)
        self.assertNotIn('migrated', res.stderr)


    def test_a_form_made_after_grants_is_processed_and_its_drafts_deleted(self):
        """Default privileges of w.c.s.'s role cover a form it creates later; w.c.s.'s trace trigger deletes a
        draft's traces with the run role's rights."""
        t, f = self.platform()
        run_conf, sql = self.apply_grants()
        q = {k: wcs.qi(v) for k, v in self.roles.items()}
        self.assertIn(f'ALTER DEFAULT PRIVILEGES FOR ROLE {wcs.qi(self.wcs_role)} IN SCHEMA public GRANT SELECT,'
                      f' UPDATE, DELETE ON TABLES TO {q[RUN]};', sql)
        self.assertIn(f'GRANT SELECT, DELETE ON public.workflow_traces_archive TO {q[RUN]};', sql)
        res = self.anonymizer('-c', run_conf, 'check', config=False, expect=0)
        self.assertIn('now and for tables w.c.s. creates later', res.stdout)
        g = standard_form(21, 'demande-badge-parking', 'Badge de stationnement')

        def new_form(cur):
            wcs.create_form(cur, g)
            ids = [wcs.insert_submission(cur, g, status='wf-done', receipt_time=ago(50), last_update_time=ago(40),
                                         values={'1': 'Durand'}, user_id='42'),
                   wcs.insert_submission(cur, g, status='draft', receipt_time=ago(50), last_update_time=ago(40),
                                         values={'1': 'Martin'})]
            for fid in ids:
                cur.execute("INSERT INTO workflow_traces (formdef_type, formdef_id, formdata_id, event)"
                            " VALUES ('formdata', 21, %s, 'frontoffice-created')", (fid,))
            cur.execute("INSERT INTO workflow_traces_archive (formdef_type, formdef_id, formdata_id)"
                        " VALUES ('formdata', 21, %s)", (ids[1],))
            return ids
        done, draft = self.as_wcs(t, new_form)
        g.write_definition(self.schemas, t.name)
        self.assertEqual(t.one('SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_class WHERE relname = %s',
                               (g.table,))[0], self.wcs_role)
        # no one runs grants again: the next run does the new form too
        res = self.anonymizer('-c', run_conf, 'run', config=False, expect=0)
        self.assertNotIn('lacks', res.stderr)
        self.assertIsNotNone(t.row(g, done)['anonymised'])
        self.assertIsNone(t.one(f'SELECT id FROM {wcs.qi(g.table)} WHERE id = %s', (draft,)))
        # the draft's traces went with it (w.c.s.'s trigger), the submission's stay
        self.assertEqual(t.one('SELECT count(*) FROM workflow_traces WHERE formdef_id = 21 AND formdata_id = %s',
                               (draft,))[0], 0)
        self.assertEqual(t.one('SELECT count(*) FROM workflow_traces_archive WHERE formdef_id = 21')[0], 0)
        self.assertEqual(t.one('SELECT count(*) FROM workflow_traces WHERE formdef_id = 21')[0], 1)

    def test_grants_names_its_roles_and_reads_through_an_admin_connection(self):
        t, f = self.platform()
        admin_conf = self.config_as('postgres', bi_role='postgres', path=os.path.join(self.dir, 'admin.conf'))
        # an administrator's configuration and no role named: granting to the superuser would be no grant at all
        res = self.anonymizer('-c', admin_conf, 'grants', config=False, expect=1)
        self.assertIn('role "postgres" is a superuser: name the role the job runs as with --role-run', res.stderr)
        # the run role's configuration, the catalogs read through an administrator's connection
        run_conf = self.config_as(self.roles[RUN])
        admin = f'host={self.cluster.sockdir} port={self.cluster.port} user=postgres'
        res = self.anonymizer('-c', run_conf, 'grants', '--admin-conninfo', admin, '--role-run', self.roles[RUN],
                              '--role-bi', self.roles[BI], config=False, expect=0)
        self.assertIn(f'-- to role {self.roles[RUN]} (run: --role-run), role anonymizer_report', res.stdout)
        self.assertIn(f'ALTER DEFAULT PRIVILEGES FOR ROLE {wcs.qi(self.wcs_role)}', res.stdout)
        # a password on a command line is for every user of the machine to read
        res = self.anonymizer('-c', run_conf, 'grants', '--admin-conninfo', admin + ' password=secret',
                              config=False, expect=64)
        self.assertNotIn('secret', res.stderr)

    def test_check_says_what_a_later_form_or_the_bi_side_would_lack(self):
        t, f = self.platform()
        run_conf, _ = self.apply_grants()
        self.admin_sql(f'ALTER DEFAULT PRIVILEGES FOR ROLE {self.wcs_role} IN SCHEMA public'
                       f' REVOKE DELETE ON TABLES FROM {self.roles[RUN]}', db=t.dbname)
        res = self.anonymizer('-c', run_conf, 'check', config=False, expect=1)
        self.assertIn(f'tables w.c.s. creates later (a new form) will not be role "{self.roles[RUN]}"\'s to'
                      f' anonymise: role "{self.wcs_role}"', res.stdout)
        # a BI role the configuration names and the server does not have: said before any export
        with open(run_conf) as fp:
            text = fp.read()
        with open(run_conf, 'w') as fp:
            fp.write(text.replace(f'reader_role = "{self.roles[READER]}";', 'reader_role = "nobody_like_this";'))
        res = self.anonymizer('-c', run_conf, 'check', config=False, expect=1)
        self.assertIn('bi: bi.reader_role: role "nobody_like_this" does not exist on the BI server', res.stdout)

    def test_every_table_grant_is_checked_before_anything_is_touched(self):
        """Each (privilege, table) of the run and report roles taken away in turn: one error that names it."""
        t, f = self.platform()
        run_conf, sql = self.apply_grants()
        report_conf = self.config_as(self.roles[REPORT])
        grants = re.findall(r'^GRANT ([A-Z, ]+) ON (public\.\S+) TO ("[^"]+");$', sql, re.M)
        checked = 0
        for privileges, table, role in grants:
            for privilege in privileges.split(', '):
                before = t.checksums()
                self.admin_sql(f'REVOKE {privilege} ON {table} FROM {role}', db=t.dbname)
                try:
                    if table in ('public.audit', 'public.loggederrors'):
                        # w.c.s.'s own logs: the report reads them when it may, and says so when not; the
                        # run does not need them (wcs_logs = "report")
                        conf = report_conf if role != wcs.qi(self.roles[RUN]) else run_conf
                        res = self.anonymizer('-c', conf, 'report', config=False)
                        self.assertIn('not counted (this role may not read it', res.stdout)
                        continue
                    if role == wcs.qi(self.roles[RUN]):
                        res = self.anonymizer('-c', run_conf, 'run', config=False, expect=1)
                        out = res.stderr
                    else:
                        res = self.anonymizer('-c', report_conf, 'report', config=False, expect=3)
                        out = res.stdout
                    self.assertIn(f'lacks {privilege} on table {table}', out, (privilege, table, role))
                finally:
                    self.admin_sql(f'GRANT {privilege} ON {table} TO {role}', db=t.dbname)
                # the table named is left untouched (a form's own table: that form; a shared one: everything)
                self.assertEqual(t.checksums().get(table.replace('"', '')), before.get(table.replace('"', '')),
                                 (privilege, table, role))
                checked += 1
        self.assertGreater(checked, 20)
        # and with all of them back, the run does its work
        self.anonymizer('-c', run_conf, 'run', config=False, expect=0)
        self.assertIsNotNone(t.row(f, self.due)['anonymised'])


if __name__ == '__main__':
    harness.main()
