"""anonymizer report: counts, verdict, --at, formats, read-only guarantees.

Golden files (tests/integration/golden/) hold the exact output for a fixed
fixture, time made deterministic with --at and SOURCE_DATE_EPOCH.  Set
UPDATE_GOLDEN=1 to rewrite them after a deliberate change, then review the
diff."""

import csv
import io
import json
import os
import re
import shutil
import subprocess

import harness
import wcs
from forms import full_submission, standard_form

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'docs')
BROWSER_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--disable-dev-shm-usage', '--font-render-hinting=none']


def artefacts_dir():
    """where the browser's screenshot and PDF are kept (meson sets it to the build tree)"""
    path = os.environ.get('ANONYMIZER_ARTEFACTS') or os.path.join(os.getcwd(), 'artefacts')
    os.makedirs(path, exist_ok=True)
    return path


def browser(workdir, *args):
    """Debian's chromium, headless, with its own throwaway profile and nothing from the network"""
    profile = os.path.join(workdir, 'chromium-profile')
    cmd = ['chromium', *BROWSER_FLAGS, f'--user-data-dir={profile}', *args[:-1], 'file://' + args[-1]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise AssertionError(f'chromium failed ({proc.returncode}): {proc.stderr[-2000:]}')
    return proc
# a fixed instant in the future: the report refuses the past (it cannot know the past state)
AT = '2036-06-01T00:00:00Z'
SOURCE_DATE_EPOCH = '2095891200'  # 2036-06-01T00:00:00Z


def ago(days, minutes=0):
    return f"now() - interval '{days} days' - interval '{minutes} minutes'"


def ts(text):
    return f"'{text}'::timestamptz"


AUDIT_DDL = """CREATE SCHEMA anonymizer;
CREATE TABLE anonymizer.runs (run_id uuid NOT NULL, tenant text NOT NULL, command text NOT NULL,
  started_at timestamptz NOT NULL, finished_at timestamptz, version text NOT NULL, host text NOT NULL,
  config_sha256 text NOT NULL, forms jsonb NOT NULL DEFAULT '[]'::jsonb, outcome text NOT NULL, error text,
  PRIMARY KEY (run_id, tenant))"""


class ReportTests(harness.TestCase):

    def report(self, *args, expect=None, fmt='json', env=None):
        res = self.anonymizer('report', '--format', fmt, *args, expect=expect, env=env)
        return res

    def json_report(self, *args, expect=None):
        res = self.report(*args, expect=expect)
        return json.loads(res.stdout), res

    def form_entry(self, doc, tenant, slug):
        for t in doc['tenants']:
            if t['name'] == tenant:
                for f in t['forms']:
                    if f['slug'] == slug:
                        return f
        self.fail(f'no {tenant}/{slug} in the report')

    def mixed_tenant(self, extra='retention = "30 days";'):
        """One submission of each kind the report counts (relative to now)."""
        t = self.tenant()
        f = t.add_form(standard_form())
        ids = {
            'due': full_submission(t, f, ref=ago(40), marker='due'),
            'due2': full_submission(t, f, ref=ago(31), status='wf-rejected', marker='due2'),
            'open': full_submission(t, f, ref=ago(40), status='wf-new', marker='open'),
            'draft': full_submission(t, f, ref=ago(40), status='draft', marker='draft'),
            'young': full_submission(t, f, ref=ago(29, 58), marker='young'),
            'young_draft': full_submission(t, f, ref=ago(2), status='draft', marker='ydraft'),
            'incomplete': full_submission(t, f, ref=ago(60), anonymised=ago(50), marker='inc'),
            'clean': t.insert(f, status='wf-done', receipt_time=ago(70), last_update_time=ago(70),
                              anonymised=ago(65)),
        }
        self.write_config([t], extra=extra)
        return t, f, ids

    # -- counts -------------------------------------------------------------------

    def test_every_count_and_agreement_with_run(self):
        t, f, ids = self.mixed_tenant()
        sums = t.checksums()
        doc, res = self.json_report(expect=0)
        self.assertEqual(t.checksums(), sums, 'the report wrote something')
        e = self.form_entry(doc, t.name, 'demande-rdv')
        self.assertEqual((e['submissions'], e['anonymised'], e['due'], e['drafts_due'], e['open_past_cutoff'],
                          e['incomplete']), (8, 1, 2, 1, 1, 1))
        self.assertEqual(e['retention'], '30 days')
        self.assertEqual(e['retention_source'], 'global')
        self.assertEqual(e['days_past_limit'], 0)
        self.assertIsNone(e['locked_last_run'])
        self.assertEqual(doc['tenants'][0]['last_run'], None)
        # oldest pending: the incomplete one (60 days)
        oldest = t.one(f"SELECT to_char(last_update_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                       f" FROM {wcs.qi(f.table)} WHERE id = %s", (ids['incomplete'],))[0]
        self.assertEqual(e['oldest_pending'], oldest)

        run = self.anonymizer('run', expect=0)
        audit = t.runs()[-1][2][0]
        self.assertEqual(audit['anonymised'], e['due'])
        self.assertEqual(audit['completed'], e['incomplete'])
        self.assertEqual(audit['drafts_deleted'], e['drafts_due'])
        self.assertIn(f"{e['due']} anonymised, {e['incomplete']} completed, {e['drafts_due']} drafts deleted",
                      run.stderr)

        doc, _ = self.json_report(expect=0)
        e = self.form_entry(doc, t.name, 'demande-rdv')
        self.assertEqual((e['submissions'], e['anonymised'], e['due'], e['drafts_due'], e['open_past_cutoff'],
                          e['incomplete']), (7, 4, 0, 0, 1, 0))
        self.assertEqual(e['locked_last_run'], 0)
        self.assertIsNotNone(doc['tenants'][0]['last_run'])

    def test_counts_with_open_and_drafts_anonymised(self):
        t, f, ids = self.mixed_tenant(extra='retention = "30 days"; open_submissions = "anonymise";'
                                            ' drafts = "anonymise";')
        doc, _ = self.json_report(expect=0)
        e = self.form_entry(doc, t.name, 'demande-rdv')
        # the open one is due now; the draft is due to be anonymised
        self.assertEqual((e['due'], e['drafts_due'], e['open_past_cutoff'], e['incomplete']), (3, 1, 1, 1))
        self.anonymizer('run', expect=0)
        audit = t.runs()[-1][2][0]
        self.assertEqual((audit['anonymised'], audit['drafts_anonymised'], audit['completed']), (3, 1, 1))

    # -- verdict and exit status --------------------------------------------------------

    def test_verdict_both_ways(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(100, 1))  # ten days (and a minute) past the 90-day limit
        self.write_config([t], extra='retention = "30 days";')
        doc, res = self.json_report(expect=1)
        self.assertFalse(doc['compliant'])
        self.assertEqual(self.form_entry(doc, t.name, 'demande-rdv')['days_past_limit'], 11)
        text = self.report(fmt='text', expect=1).stdout
        self.assertIn('verdict: NOT COMPLIANT', text)
        self.assertIn(f'{t.name} / demande-rdv: 11 days past the limit', text)

        self.anonymizer('run', expect=0)
        doc, _ = self.json_report(expect=0)
        self.assertTrue(doc['compliant'])
        self.assertEqual(self.form_entry(doc, t.name, 'demande-rdv')['days_past_limit'], 0)
        self.assertIn('verdict: COMPLIANT', self.report(fmt='text', expect=0).stdout)

    def test_open_submissions_do_not_break_the_limit(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(300), status='wf-new')
        self.write_config([t], extra='retention = "30 days";')
        doc, _ = self.json_report(expect=0)
        self.assertTrue(doc['compliant'])
        self.assertEqual(self.form_entry(doc, t.name, 'demande-rdv')['open_past_cutoff'], 1)
        self.assertEqual(self.form_entry(doc, t.name, 'demande-rdv')['open_inactive'], 0)

    def test_open_and_inactive_past_open_limit_flips_the_verdict(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        g = t.add_form(standard_form(2, 'autre', 'Autre'))
        full_submission(t, f, ref=ago(300), status='wf-new')
        full_submission(t, f, ref=ago(400), status='wf-accepted', marker='old1')
        full_submission(t, g, ref=ago(200), status='wf-new', marker='old2')
        # the default is one year; a tenant or a form may say otherwise
        self.write_config([t], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "autre"; open_limit = "6 months"; }'])
        doc, _ = self.json_report(expect=1)
        self.assertEqual(doc['verdict'], 'NOT COMPLIANT')
        self.assertFalse(doc['compliant'])
        e = self.form_entry(doc, t.name, 'demande-rdv')
        self.assertEqual((e['open_inactive'], e['open_limit'], e['days_past_limit']), (1, '1 year', 0))
        self.assertEqual(self.form_entry(doc, t.name, 'autre')['open_inactive'], 1)
        text = self.report(fmt='text', expect=1).stdout
        self.assertIn('verdict: NOT COMPLIANT', text)
        self.assertIn(f'{t.name} / demande-rdv: 1 submission open and inactive for more than 1 year: to review', text)
        self.assertIn(f'{t.name} / autre: 1 submission open and inactive for more than 6 months: to review', text)
        self.assertRegex(text, r'open and inactive +1 for more than 1 year .*TO REVIEW')
        # open_submissions = "anonymise" keeps its meaning: they are due, the legal limit speaks for them
        self.write_config([t], extra='retention = "30 days"; open_submissions = "anonymise";')
        doc, _ = self.json_report(expect=1)
        e = self.form_entry(doc, t.name, 'demande-rdv')
        self.assertEqual((e['open_inactive'], e['due']), (0, 2))
        self.assertGreater(e['days_past_limit'], 0)

    def test_run_in_progress_is_shown(self):
        t, f, ids = self.mixed_tenant()
        t.query(AUDIT_DDL)
        t.query("""INSERT INTO anonymizer.runs VALUES ('7d0c3e5e-1111-4222-8333-944455556666', %s, 'run',
                   now() - interval '5 minutes', NULL, '0.1.0', 'host', 'abc', '[]', 'running', NULL)""", (t.name,))
        # a running row without its lock is a run that died: not in progress
        doc, _ = self.json_report(expect=0)
        self.assertIsNone(doc['tenants'][0]['run_in_progress_since'])
        holder = t.cluster.connect(t.dbname)
        try:
            holder.cursor().execute('SELECT pg_advisory_lock(1634627438, 1)')
            doc, _ = self.json_report(expect=0)
            self.assertIsNotNone(doc['tenants'][0]['run_in_progress_since'])
            text = self.report(fmt='text', expect=0).stdout
            self.assertRegex(text, r'  a run started at \S+ is in progress: the figures change as it goes')
            self.assertRegex(text, rf'verdict: COMPLIANT.*\n  {t.name}: a run started at \S+ is in progress')
            html = self.report(fmt='html', expect=0).stdout
            self.assertIn('is in progress', html)
        finally:
            holder.close()

    def test_at_in_the_past_is_refused_in_the_future_noted(self):
        t, f, ids = self.mixed_tenant()
        res = self.anonymizer('report', '--at', '2020-01-01', expect=64)
        self.assertIn('is in the past: the report cannot know the past state', res.stderr)
        self.assertIn('anonymizer history --since 2020-01-01', res.stderr)
        future = t.one("SELECT to_char((now() + interval '10 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD')")[0]
        text = self.report('--at', future, fmt='text', expect=0).stdout
        self.assertIn('the figures assume that no run happens before then', text)
        self.assertTrue(json.loads(self.report('--at', future, expect=0).stdout)['at_in_future'])

    def test_form_option_and_exact_options(self):
        t, f, ids = self.mixed_tenant()
        g = t.add_form(standard_form(2, 'autre', 'Autre'))
        full_submission(t, g, ref=ago(40))
        doc, _ = self.json_report('--form', 'autre', expect=0)
        self.assertEqual([x['slug'] for x in doc['tenants'][0]['forms']], ['autre'])
        doc, _ = self.json_report('--form', 'autre', '--form', 'demande-rdv', expect=0)
        self.assertEqual(sorted(x['slug'] for x in doc['tenants'][0]['forms']), ['autre', 'demande-rdv'])
        # a slug no tenant has is an error, not an empty COMPLIANT report
        res = self.anonymizer('report', '--form', 'autre', '--form', 'atre', expect=64)
        self.assertEqual(res.stdout, '')
        self.assertIn('--form atre: no such form', res.stderr)
        for args in (['--fo', 'autre'], ['--forma', 'json'], ['--tenan', t.name]):
            with self.subTest(args=args):
                res = self.anonymizer('report', *args, expect=64)
                self.assertIn(f'unrecognized option "{args[0]}"', res.stderr)

    def test_at(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(20))
        self.write_config([t], extra='retention = "30 days";')
        now, _ = self.json_report(expect=0)
        self.assertEqual(self.form_entry(now, t.name, 'demande-rdv')['due'], 0)
        later = t.one("SELECT to_char((now() + interval '15 days') AT TIME ZONE 'UTC',"
                      " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")[0]
        doc, _ = self.json_report('--at', later, expect=0)
        self.assertEqual(doc['at'], later)
        e = self.form_entry(doc, t.name, 'demande-rdv')
        self.assertEqual(e['due'], 1)
        self.assertEqual(e['cutoff'], t.one("SELECT to_char((%s::timestamptz - interval '30 days') AT TIME ZONE 'UTC',"
                                            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", (later,))[0])
        # far enough ahead, the same submission is past the legal limit
        far = t.one("SELECT to_char((now() + interval '80 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD')")[0]
        doc, _ = self.json_report('--at', far, expect=1)
        self.assertFalse(doc['compliant'])
        # bad --at values are usage errors
        for bad in ('tomorrow', '2026-13-01', '2026-06-01T25', '2026-06-01 10:00 Europe/Paris', '2036-02-30',
                    '2036-06-01T25:00', '2036-06-01T10:00+99:00'):
            with self.subTest(at=bad):
                res = self.anonymizer('report', '--at', bad, expect=64)
                self.assertIn('--at: invalid instant', res.stderr)

    # -- read-only ---------------------------------------------------------------

    def test_select_only_role(self):
        t, f, ids = self.mixed_tenant()
        self.anonymizer('run', expect=0)   # creates anonymizer.runs
        full_submission(t, f, ref=ago(45), marker='after')
        role = harness.unique('reader')
        t.query(f'CREATE ROLE {role} LOGIN')
        t.query(f'GRANT USAGE ON SCHEMA public TO {role}')
        t.query(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}')
        expected, _ = self.json_report(expect=0)
        sums = t.checksums()

        self.write_config([(t.name, t.cluster.conninfo(t.dbname, user=role))], extra='retention = "30 days";')
        # no access to the audit schema: reported as unknown, the rest works
        doc, res = self.json_report(expect=0)
        self.assertEqual(doc['tenants'][0]['last_run'], 'unknown')
        self.assertIn('no SELECT privilege on anonymizer.runs', res.stderr)
        self.assertEqual(self.form_entry(doc, t.name, 'demande-rdv')['due'], 1)
        t.query(f'GRANT USAGE ON SCHEMA anonymizer TO {role}')
        t.query(f'GRANT SELECT ON anonymizer.runs TO {role}')
        doc, _ = self.json_report(expect=0)
        for key in ('submissions', 'anonymised', 'due', 'drafts_due', 'open_past_cutoff', 'incomplete',
                    'oldest_pending', 'locked_last_run'):
            self.assertEqual(self.form_entry(doc, t.name, 'demande-rdv')[key],
                             self.form_entry(expected, t.name, 'demande-rdv')[key], key)
        self.assertEqual(doc['tenants'][0]['last_run'], expected['tenants'][0]['last_run'])
        # and the run, which needs to write, fails with that role without changing anything
        self.anonymizer('run', expect=1)
        self.assertEqual(t.checksums(), sums)

    def test_dry_run_is_the_report_and_writes_nothing(self):
        t, f, ids = self.mixed_tenant()
        sums = t.checksums()
        env = {'SOURCE_DATE_EPOCH': SOURCE_DATE_EPOCH}
        later = t.one("SELECT to_char((now() + interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD')")[0]
        for fmt in ('text', 'json', 'csv'):
            with self.subTest(fmt=fmt):
                a = self.anonymizer('report', '--format', fmt, '--at', later, env=env, expect=0)
                b = self.anonymizer('run', '--dry-run', '--format', fmt, '--at', later, env=env, expect=0)
                self.assertEqual(a.stdout, b.stdout)
                self.assertIn('demande-rdv', a.stdout)
        self.assertEqual(t.checksums(), sums)
        self.assertIsNone(t.one("SELECT to_regclass('anonymizer.runs')")[0])
        # --format without --dry-run makes no sense for run
        self.anonymizer('run', '--format', 'json', expect=64)
        self.anonymizer('check', '--at', AT, expect=64)
        self.anonymizer('report', '--format', 'xml', expect=64)

    def test_names_that_need_quoting(self):
        t = self.tenant(name="ville-d'été.example.org", dbname=harness.unique("wcs d'été \"Q\""))
        slug = "l'été-\"spécial\""
        f = t.add_form(standard_form(7, slug, "L'été \"spécial\"", table='formdata_7_Été "Spécial"; --'))
        full_submission(t, f, ref=ago(40), marker='due')
        full_submission(t, f, ref=ago(100), marker='late')
        full_submission(t, f, ref=ago(5), marker='young')
        self.write_config([t], extra='retention = "30 days";',
                          forms=[f'{{ tenant = "*"; slug = "{harness.cfgstr(slug)}"; retention = "20 days"; }}'])
        doc, _ = self.json_report(expect=1)
        e = self.form_entry(doc, t.name, slug)
        self.assertEqual(e['table'], f.table)
        self.assertEqual((e['submissions'], e['due'], e['retention_source']), (3, 2, 'form'))
        self.assertGreater(e['days_past_limit'], 0)
        text = self.report(fmt='text', expect=1).stdout
        self.assertIn(f'form {slug}', text)
        self.anonymizer('run', expect=0)
        doc, _ = self.json_report(expect=0)
        self.assertEqual(self.form_entry(doc, t.name, slug)['anonymised'], 2)

    # -- failing tenants ------------------------------------------------------------

    def test_unreachable_tenant_does_not_hide_the_others(self):
        t, f, ids = self.mixed_tenant()
        self.write_config([t, ('down.example.org', 'host=/nonexistent dbname=x password=S3cretPw')],
                          extra='retention = "30 days";')
        # nothing past the limit where it could look, but a tenant could not be checked: INCOMPLETE
        doc, res = self.json_report(expect=3)
        self.assertFalse(doc['compliant'])
        self.assertEqual(doc['verdict'], 'INCOMPLETE')
        by_name = {x['name']: x for x in doc['tenants']}
        self.assertEqual(by_name[t.name]['status'], 'ok')
        self.assertEqual(self.form_entry(doc, t.name, 'demande-rdv')['due'], 2)
        self.assertEqual(by_name['down.example.org']['status'], 'error')
        self.assertIn('cannot connect', by_name['down.example.org']['error'])
        self.assertNotIn('S3cretPw', res.stdout + res.stderr)
        text = self.report(fmt='text', expect=3).stdout
        self.assertIn('verdict: INCOMPLETE', text)
        self.assertIn('down.example.org: could not be checked', text)

    def test_no_tenant_reachable(self):
        self.write_config([('a', 'host=/nonexistent-a dbname=x')])
        self.report(expect=69)

    # -- formats: golden output ----------------------------------------------------

    def golden_fixture(self):
        t = self.tenant(name='golden.example.org')
        f = t.add_form(standard_form(1, 'demande-rdv', 'Demande de rendez-vous'))
        g = t.add_form(standard_form(2, 'inscription', 'Inscription, "périscolaire"'), definition=False)
        full_submission(t, f, ref=ts('2036-04-01 10:00:00+00'), marker='due')
        full_submission(t, f, ref=ts('2036-02-01 08:30:00+00'), marker='late')           # past the limit
        full_submission(t, f, ref=ts('2036-03-01 09:00:00+00'), status='wf-new', marker='open')
        full_submission(t, f, ref=ts('2036-04-15 12:00:00+00'), status='draft', marker='draft')
        full_submission(t, f, ref=ts('2036-04-10 12:00:00+00'), anonymised=ts('2036-04-20 12:00:00+00'),
                        marker='incomplete')
        t.insert(f, status='wf-done', receipt_time=ts('2036-01-05 10:00:00+00'),
                 last_update_time=ts('2036-01-06 10:00:00+00'), anonymised=ts('2036-02-10 02:15:00+00'))
        full_submission(t, f, ref=ts('2036-05-20 10:00:00+00'), marker='young')
        # open, and nobody has touched it for more than a year: to review
        full_submission(t, f, ref=ts('2035-03-01 09:00:00+00'), status='wf-accepted', marker='forgotten')
        full_submission(t, g, ref=ts('2036-03-01 10:00:00+00'), marker='g-due')
        full_submission(t, g, ref=ts('2036-05-01 10:00:00+00'), marker='g-young')
        t.query(AUDIT_DDL)
        t.query("""INSERT INTO anonymizer.runs VALUES ('7d0c3e5e-1111-4222-8333-944455556666', 'golden.example.org',
                   'run', '2036-05-31 02:15:00+00', '2036-05-31 02:15:07+00', '0.1.0', 'host', 'abc',
                   '[{"table": "formdata_1_demande_rdv", "locked": 2}]', 'ok', NULL)""")
        self.write_config([t, ('down.example.org', 'host=/nonexistent/anonymizer-golden dbname=x')],
                          extra='retention = "30 days"; backup_retention = "4 months"; timezone = "Europe/Paris";',
                          forms=['{ tenant = "*"; slug = "inscription"; retention = "60 days"; }',
                                 '{ tenant = "golden.example.org"; slug = "demande-rdv"; keep = ["nom"]; }'])
        return t

    def check_golden(self, name, output):
        path = os.path.join(GOLDEN, name)
        if os.environ.get('UPDATE_GOLDEN'):
            with open(path, 'w', newline='') as fp:
                fp.write(output)
        with open(path, newline='') as fp:
            self.assertEqual(output, fp.read())

    def test_golden_outputs(self):
        self.golden_fixture()
        env = {'SOURCE_DATE_EPOCH': SOURCE_DATE_EPOCH}
        outputs = {}
        for fmt, ext in (('text', 'txt'), ('json', 'json'), ('csv', 'csv')):
            res = self.anonymizer('report', '--format', fmt, '--at', AT, env=env, expect=1)
            outputs[fmt] = res.stdout
            self.check_golden(f'report.{ext}', res.stdout)
        # standard parsers read them
        doc = json.loads(outputs['json'])
        # keys are only ever added, at the end
        self.assertEqual(list(doc), ['generated_at', 'at', 'retention_cap', 'compliant', 'backup_retention',
                                     'tenants', 'verdict', 'at_in_future', 'timezone', 'bi_min_k', 'bi_error'])
        self.assertEqual(list(doc['tenants'][0]), ['name', 'status', 'error', 'last_run', 'backups_until', 'forms',
                                                   'definitions', 'run_in_progress_since', 'vacuum_owed', 'superuser',
                                                   'wcs_logs', 'wcs_site_options', 'history_chain', 'legal_holds'])
        self.assertEqual(doc['generated_at'], AT)
        rows = list(csv.DictReader(io.StringIO(outputs['csv'], newline='')))
        self.assertEqual(len(rows), 3)
        self.assertEqual(rows[1]['name'], 'Inscription, "périscolaire"')
        self.assertEqual(outputs['csv'].count('\r\n'), 4)
        by_slug = {r['slug']: r for r in rows if r['slug']}
        for f in doc['tenants'][0]['forms']:
            for key in ('submissions', 'anonymised', 'due', 'drafts_due', 'open_past_cutoff', 'incomplete',
                        'days_past_limit'):
                self.assertEqual(int(by_slug[f['slug']][key]), f[key])


    # -- the document: HTML, rendered by a real browser; French --------------------

    def test_golden_html_rendered_by_a_browser(self):
        self.golden_fixture()
        env = {'SOURCE_DATE_EPOCH': SOURCE_DATE_EPOCH}
        res = self.anonymizer('report', '--format', 'html', '--at', AT, env=env, expect=1)
        self.check_golden('report.html', res.stdout)
        html = res.stdout
        # self-contained: nothing fetched, no script
        for needle in ('<script', 'src="http', 'href="http', '@import', 'url('):
            self.assertNotIn(needle, html)
        path = os.path.join(self.dir, 'report.html')
        with open(path, 'w') as fp:
            fp.write(html)
        # an HTML validator from Debian: tidy exits 2 on errors, 1 on warnings only
        tidy = subprocess.run(['tidy', '-e', '-q', path], capture_output=True, text=True)
        self.assertLess(tidy.returncode, 2, tidy.stderr)
        self.assertNotIn('Error:', tidy.stderr)
        # the DOM as a real browser builds it
        dom = browser(self.dir, '--dump-dom', path).stdout
        self.assertRegex(dom, r'<[^>]* id="verdict"[^>]*>[^<]*NOT COMPLIANT')
        self.assertEqual(len(re.findall(r'<section[^>]* class="tenant"', dom)), 2)  # golden + unreachable
        self.assertIn('golden.example.org', dom)
        self.assertIn('down.example.org', dom)
        self.assertRegex(dom, r'<svg[^>]* role="img"[^>]* aria-label="[^"]+"')
        self.assertIn('id="chart-1-numbers"', dom)
        # artefacts: a screenshot and an A4 PDF, kept for people to look at (not compared pixel by pixel)
        out = artefacts_dir()
        png = os.path.join(out, 'report.png')
        pdf = os.path.join(out, 'report.pdf')
        for f in (png, pdf):
            if os.path.exists(f):
                os.unlink(f)
        browser(self.dir, f'--screenshot={png}', '--window-size=1000,1400', '--hide-scrollbars', path)
        browser(self.dir, f'--print-to-pdf={pdf}', '--no-pdf-header-footer', path)
        with open(png, 'rb') as fp:
            self.assertEqual(fp.read(8), b'\x89PNG\r\n\x1a\n')
        with open(pdf, 'rb') as fp:
            self.assertEqual(fp.read(5), b'%PDF-')
        self.assertGreater(os.path.getsize(png), 10000)
        if os.environ.get('UPDATE_GOLDEN'):
            shutil.copyfile(png, os.path.join(DOCS, 'report.png'))
        # the same document in French passes the validator too
        fr = self.anonymizer('report', '--format', 'html', '--lang', 'fr', '--at', AT, env=env, expect=1)
        self.assertIn('<html lang="fr"', fr.stdout)
        self.assertIn('NON CONFORME', fr.stdout)
        with open(path, 'w') as fp:
            fp.write(fr.stdout)
        tidy = subprocess.run(['tidy', '-e', '-q', path], capture_output=True, text=True)
        self.assertLess(tidy.returncode, 2, tidy.stderr)

    def test_golden_french_text_report(self):
        self.golden_fixture()
        env = {'SOURCE_DATE_EPOCH': SOURCE_DATE_EPOCH}
        res = self.anonymizer('report', '--lang', 'fr', '--at', AT, env=env, expect=1)
        self.check_golden('report-fr.txt', res.stdout)
        # chosen by the usual locale variables too; English in the C locale
        for lang_env in ({'LC_ALL': 'fr_FR.UTF-8'}, {'LC_MESSAGES': 'fr_FR.UTF-8'}, {'LANG': 'fr_FR.UTF-8'},
                         {'LANG': 'de_DE.UTF-8', 'LANGUAGE': 'fr:de'}, {'LANG': 'fr_BE'}):
            clean = {'LANGUAGE': '', 'LC_ALL': '', 'LC_MESSAGES': '', 'LANG': ''}
            clean.update(lang_env)
            clean.update(env)
            other = self.anonymizer('report', '--at', AT, env=clean, expect=1)
            self.assertEqual(other.stdout, res.stdout, lang_env)
        # English in the C locale, where gettext ignores LANGUAGE, and for other languages
        for lang_env in ({'LC_ALL': 'C', 'LANGUAGE': 'fr'}, {'LANG': 'C.UTF-8', 'LANGUAGE': 'fr'},
                         {'LANG': 'de_DE.UTF-8'}, {'LANG': 'fr_FR.UTF-8', 'LANGUAGE': 'en'}):
            clean = {'LANGUAGE': '', 'LC_ALL': '', 'LC_MESSAGES': '', 'LANG': ''}
            clean.update(lang_env)
            clean.update(env)
            c = self.anonymizer('report', '--at', AT, env=clean, expect=1)
            self.assertIn('verdict: NOT COMPLIANT', c.stdout, lang_env)
        # --lang wins over the environment
        c = self.anonymizer('report', '--lang', 'en', '--at', AT, expect=1, env=dict(env, LANG='fr_FR.UTF-8'))
        self.assertIn('verdict: NOT COMPLIANT', c.stdout)
        # machine formats keep English keys whatever the language
        doc = json.loads(self.anonymizer('report', '--format', 'json', '--lang', 'fr', '--at', AT,
                                         env=env, expect=1).stdout)
        self.assertEqual(doc['verdict'], 'NOT COMPLIANT')
        self.anonymizer('report', '--lang', 'de', expect=64)


if __name__ == '__main__':
    harness.main()
