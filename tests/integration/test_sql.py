"""Every statement every command sends is safe by construction, and every session has one profile.

The cluster logs every statement (csvlog, log_statement = all), and auto_explain logs the settings each
statement was planned with.  Every command runs against a fixture that has what a real tenant has (forms
with and without a definition, a test copy, a card opted in, search tokens, a BI database with k-anonymity);
the statements the tool sent (application_name anonymizer) go through the checker of tests/sqlcheck, which
names any unqualified operator, function or table and any construct that looks an operator up on the search
path.  The settings show that every kind of connection (tenant, BI, discovery) runs with the tool's
search_path and without JIT."""

import csv
import glob
import os
import re
import subprocess

import harness
import wcs
from forms import full_submission, standard_form

SQLCHECK = os.environ.get('ANONYMIZER_SQLCHECK') or os.path.join(os.path.dirname(__file__), '..', '..', 'build',
                                                                   'tests', 'sqlcheck')
LOGGING = {
    'logging_collector': 'on',
    'log_destination': "'csvlog'",
    'log_directory': "'log'",
    'log_filename': "'postgresql.log'",
    'log_statement': "'all'",
    'session_preload_libraries': "'auto_explain'",
    'auto_explain.log_min_duration': '0',
    'auto_explain.log_settings': 'on',
    'auto_explain.log_nested_statements': 'off',
}
PROFILE_PATH = 'pg_catalog, pg_temp'
STATEMENT = re.compile(r'^(?:statement|execute [^:]*): (.*)$', re.S)
SETTINGS = re.compile(r'^Settings: (.*)$', re.M)


class Log:
    """The server's csvlog, read from where the last read stopped."""

    def __init__(self, cluster):
        self.path = os.path.join(cluster.datadir, 'log', 'postgresql.csv')
        self.offset = 0

    def rows(self):
        with open(self.path, newline='', encoding='utf-8', errors='replace') as fp:
            fp.seek(self.offset)
            text = fp.read()
            self.offset = fp.tell()
        return list(csv.reader(text.splitlines(keepends=True)))


class SqlTests(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = harness.cluster('main', settings=LOGGING)

    def fixture(self):
        t = self.tenant(name='sql.example.org')
        f = t.add_form(standard_form(1, 'demande-rdv', 'Demande de rendez-vous'))
        g = t.add_form(standard_form(2, 'inscription', 'Inscription'), definition=False)
        card = t.add_form(wcs.Card(5, 'eleves', 'Élèves', [wcs.Field('1', 'string', 'Nom', 'nom', 'final')]))
        for k in range(6):
            full_submission(t, f, ref=f"now() - interval '{40 + k} days'", marker=f'd{k}')
        full_submission(t, f, ref="now() - interval '40 days'", status='draft', marker='draft')
        full_submission(t, f, ref="now() - interval '50 days'", anonymised="now() - interval '45 days'",
                        marker='inc')
        full_submission(t, g, ref="now() - interval '40 days'", marker='g')
        src = full_submission(t, f, ref="now() - interval '40 days'", marker='copy')
        with t.conn.cursor() as cur:
            wcs.create_test_copy(cur, f, src)
        t.insert(card, status='wf-done', values={'1': 'Durand'}, receipt_time="now() - interval '50 days'",
                 last_update_time="now() - interval '50 days'")
        bi_db = harness.unique('bi')
        self.cluster.createdb(bi_db)
        self.cluster.connect(bi_db).cursor().execute('CREATE ROLE sql_bi_reader') \
            if not t.one("SELECT 1 FROM pg_roles WHERE rolname = 'sql_bi_reader'") else None
        bi = harness.cfgstr(self.cluster.conninfo(bi_db))
        discover = harness.cfgstr(self.cluster.conninfo('postgres'))
        self.write_config([t], extra=(
            'retention = "30 days"; timezone = "Europe/Paris";'
            f' bi = {{ conninfo = "{bi}"; min_k = 2; generalise = true; reader_role = "sql_bi_reader"; }};'
            f' discover = ( {{ conninfo = "{discover}"; databases = "{t.dbname}_nothing%"; }} );'),
            forms=['{ tenant = "*"; slug = "inscription"; retention = "60 days"; }'])
        with open(self.config_path, 'a') as fp:
            fp.write('cards = ( { tenant = "sql.example.org"; slug = "eleves"; retention = "30 days"; } );\n')
        return t, bi_db

    def commands(self):
        yield 'check', ('check',), None
        for fmt in ('text', 'json', 'csv', 'html', 'nagios'):
            yield f'report {fmt}', ('report', '--format', fmt), None
        yield 'report --jobs 2', ('report', '--jobs', '2'), None
        yield 'run --dry-run', ('run', '--dry-run'), None
        yield 'export --dry-run', ('export', '--dry-run'), None
        yield 'run', ('run',), 0
        yield 'run again', ('run',), 0
        yield 'export', ('export',), 0
        for fmt in ('text', 'json', 'csv', 'html'):
            yield f'history {fmt}', ('history', '--format', fmt), 0
        yield 'grants', ('grants', '--role-run', 'sql_run', '--role-report', 'sql_report', '--role-bi', 'sql_bi',
                         '--role-bi-reader', 'sql_bi_reader'), 0

    def test_every_statement_is_safe_and_every_session_has_the_profile(self):
        t, bi_db = self.fixture()
        log = Log(self.cluster)
        log.rows()
        statements, problems = [], []
        sessions = {}  # (database, command) -> the search_path values its statements were planned with
        for name, args, expect in self.commands():
            self.anonymizer(*args, expect=expect)
            for row in log.rows():
                if len(row) < 23 or row[22] != 'anonymizer':
                    continue
                m = STATEMENT.match(row[13])
                if m:
                    statements.append((name, m.group(1)))
                settings = SETTINGS.search(row[13])
                if row[11] == 'LOG' and row[13].startswith('duration:'):
                    path = re.search(r"search_path = '([^']*)'", settings.group(1)) if settings else None
                    jit = re.search(r"jit = '([^']*)'", settings.group(1)) if settings else None
                    sessions.setdefault((row[2], name), []).append(
                        (path.group(1) if path else None, jit.group(1) if jit else None))
        self.assertGreater(len(statements), 200)
        # the checker, over every statement sent
        payload = b'\0'.join(sql.encode() for _, sql in statements)
        proc = subprocess.run([SQLCHECK], input=payload, capture_output=True)
        self.assertEqual(proc.returncode, 0, proc.stdout.decode()[-6000:])
        # every kind of connection: the tenant, the BI database, the server's postgres database (discovery)
        for db in (t.dbname, bi_db, 'postgres'):
            seen = {v for (d, _), values in sessions.items() if d == db for v in values}
            self.assertTrue(seen, f'no statement explained on {db}')
            self.assertIn((PROFILE_PATH, 'off'), seen, db)
            # a batch that fires w.c.s.'s triggers adds public after pg_catalog, for its transaction only
            for path, jit in seen:
                self.assertEqual(jit, 'off', db)
                self.assertIn(path, (PROFILE_PATH, 'pg_catalog, public, pg_temp'), db)


if __name__ == '__main__':
    harness.main()
