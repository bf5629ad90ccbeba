"""anonymizer history: the runs of every tenant from the audit tables, and the
nights without a successful run; text, JSON, CSV and HTML; read-only."""

import csv
import io
import json
import os
import subprocess
import uuid

import harness
from forms import full_submission, standard_form


def ago(days):
    return f"now() - interval '{days} days'"


def night(days_ago, hour=2):
    """hour:15 UTC, days_ago days before today (UTC): a fixed local date in UTC"""
    return f"date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '{days_ago} days'" \
           f" + interval '{hour} hours 15 minutes'"


class HistoryTests(harness.TestCase):

    def tenant_with_runs(self, name=None):
        """A real run (with export), then older audit rows written as the tool writes them."""
        t = self.tenant(name=name)
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(40), marker='a')
        full_submission(t, f, ref=ago(45), status='draft', marker='d')
        bi_cluster = harness.cluster('main')
        self.bi_db = harness.unique('bi')
        bi_cluster.createdb(self.bi_db)
        bi = bi_cluster.conninfo(self.bi_db)
        self.write_config([t], extra=f'retention = "30 days"; timezone = "UTC";'
                                     f' bi = {{ conninfo = "{harness.cfgstr(bi)}"; min_k = 1; }};')
        self.anonymizer('run', expect=0)
        # the nights before: every one from 6 days ago to yesterday has a successful run, except
        # 3 days ago (failed) and 4 days ago (none at all); 2 days ago ran twice
        rows = [(6, 'ok', 'run'), (5, 'ok', 'run'), (3, 'failed', 'run'), (2, 'ok', 'run'),
                (1, 'ok', 'run'), (4, 'ok', 'export')]
        for days, outcome, command in rows:
            forms = json.dumps([{'table': f.table, 'anonymised': days, 'completed': 1, 'drafts_deleted': 2}])
            t.query(f"""INSERT INTO anonymizer.runs (run_id, tenant, command, started_at, finished_at, version,
                        host, config_sha256, forms, outcome, error, exported)
                        VALUES (%s, %s, %s, {night(days)}, {night(days)} + interval '42 seconds', '0.0.9',
                        'cron-host', 'x', %s, %s, %s, %s)""",
                    (str(uuid.uuid4()), t.name, command, forms, outcome,
                     'could not lock' if outcome == 'failed' else None, 7))
        t.query(f"""INSERT INTO anonymizer.runs (run_id, tenant, command, started_at, finished_at, version, host,
                    config_sha256, forms, outcome) VALUES (%s, %s, 'run', {night(2, 3)},
                    {night(2, 3)} + interval '1 second', '0.0.9', 'cron-host', 'x', '[]', 'ok')""",
                (str(uuid.uuid4()), t.name))
        return t, f

    def since(self, days_ago):
        return self.one_date(days_ago)

    def one_date(self, days_ago):
        import datetime
        return (datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=days_ago)).isoformat()

    def test_json_runs_and_nights_without_a_run(self):
        t, f = self.tenant_with_runs()
        before = t.checksums()
        doc = json.loads(self.anonymizer('history', '--since', self.since(7), '--format', 'json',
                                         expect=0).stdout)
        self.assertEqual(t.checksums(), before, 'history wrote to the tenant')
        self.assertEqual(doc['since'], self.since(7) + 'T00:00:00Z')
        [tenant] = doc['tenants']
        self.assertIsNone(tenant['error'])
        runs = tenant['runs']
        self.assertEqual(len(runs), 8)
        self.assertEqual([r['started_at'] for r in runs], sorted(r['started_at'] for r in runs))
        # the real run, as the tool recorded it: 1 anonymised, the draft deleted, 1 row exported
        real = runs[-1]
        self.assertEqual((real['command'], real['outcome'], real['anonymised'], real['drafts'], real['exported']),
                         ('run', 'ok', 1, 1, 1))
        self.assertRegex(real['version'], r'^\d+\.\d+')
        self.assertEqual(real['host'], os.uname().nodename)
        self.assertGreaterEqual(real['seconds'], 0)
        failed = [r for r in runs if r['outcome'] == 'failed']
        self.assertEqual(len(failed), 1)
        self.assertEqual((failed[0]['error'], failed[0]['anonymised'], failed[0]['completed'], failed[0]['drafts'],
                          failed[0]['seconds'], failed[0]['exported']), ('could not lock', 3, 1, 2, 42, 7))
        # a failed run and an export do not count as a night's run; today is not over
        self.assertEqual(tenant['nights_without_successful_run'],
                         [self.one_date(4), self.one_date(3)])
        # --since cuts the list
        doc = json.loads(self.anonymizer('history', '--since', self.since(2), '--format', 'json', expect=0).stdout)
        self.assertEqual(len(doc['tenants'][0]['runs']), 4)
        self.assertEqual(doc['tenants'][0]['nights_without_successful_run'], [])

    def test_text_csv_html_and_french(self):
        t, f = self.tenant_with_runs(name='ville.example.org')
        text = self.anonymizer('history', '--since', self.since(7), expect=0).stdout
        self.assertIn('tenant ville.example.org', text)
        self.assertIn('failed', text)
        self.assertIn('could not lock', text)
        # the night before the first recorded run is not one the tool missed
        self.assertIn(f'nights without a successful run: {self.one_date(4)}, {self.one_date(3)}\n'
                      f'  (counted from the first recorded run, ', text)
        self.assertIn('anonymised 1, completed 0, drafts 1, exported 1', text)
        fr = self.anonymizer('history', '--since', self.since(7), '--lang', 'fr', expect=0).stdout
        self.assertIn('site ville.example.org', fr)
        self.assertIn('nuits sans passage réussi', fr)
        # the stored outcome words in the reader's language (issue 24), in text and HTML
        self.assertIn('échouée', fr)
        self.assertNotRegex(fr, r'\bfailed\b')
        html_fr = self.anonymizer('history', '--since', self.since(7), '--format', 'html', '--lang', 'fr',
                                  expect=0).stdout
        self.assertIn('échouée', html_fr)
        self.assertNotRegex(html_fr, r'\b(failed|ok)\b')
        self.assertNotIn('\\x0a', html_fr, 'a line end of the text document shown as an escape')
        rows = list(csv.DictReader(io.StringIO(
            self.anonymizer('history', '--since', self.since(7), '--format', 'csv', expect=0).stdout, newline='')))
        self.assertEqual(len(rows), 8)
        self.assertEqual({r['tenant'] for r in rows}, {'ville.example.org'})
        self.assertEqual(sorted(r['outcome'] for r in rows).count('failed'), 1)
        html = self.anonymizer('history', '--since', self.since(7), '--format', 'html', expect=0).stdout
        self.assertIn('<section class="tenant" id="tenant-1">', html)
        self.assertEqual(html.count('<tr><td>'), 8)
        path = os.path.join(self.dir, 'history.html')
        with open(path, 'w') as fp:
            fp.write(html)
        tidy = subprocess.run(['tidy', '-e', '-q', path], capture_output=True, text=True)
        self.assertLess(tidy.returncode, 2, tidy.stderr)

    def test_tenant_without_audit_table_and_unreachable(self):
        t = self.tenant()
        self.write_config([t, ('down', 'host=/nonexistent/anonymizer-history dbname=x')])
        res = self.anonymizer('history', '--format', 'json', expect=1)
        doc = json.loads(res.stdout)
        first, down = doc['tenants']
        self.assertEqual(first['runs'], [])
        # never ran: nights before the tool ran at all are not nights it missed (issue 24: 31 were listed)
        self.assertEqual(first['nights_without_successful_run'], [])
        self.assertIsNone(first['first_run'])
        self.assertIn('cannot connect', down['error'])
        self.assertIn('down: cannot connect', res.stderr)

    def test_what_was_in_force_and_how_it_changed(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(40), marker='a')
        self.write_config([t], extra='retention = "30 days"; timezone = "UTC";')
        self.anonymizer('run', expect=0)
        self.write_config([t], extra='retention = "60 days"; timezone = "UTC";',
                          forms=[f'{{ tenant = "*"; slug = "{f.slug}"; keep = ["commentaire"]; }}'])
        self.anonymizer('run', expect=0)
        doc = json.loads(self.anonymizer('history', '--format', 'json', expect=0).stdout)
        first, second = doc['tenants'][0]['runs']
        self.assertNotEqual(first['config_sha256'], second['config_sha256'])
        self.assertEqual(first['settings']['run']['retention'], '30 days')
        self.assertEqual(first['settings']['run']['retention_cap_days'], 90)
        self.assertEqual(first['settings']['forms'][f.table]['retention_days'], 30)
        self.assertIsNone(first['settings_changed'])
        changed = {c['setting']: (c['before'], c['after']) for c in second['settings_changed']}
        self.assertEqual(changed[f'forms.{f.table}.retention_days'], ('30', '60'))
        self.assertEqual(changed['run.retention'], ('30 days', '60 days'))
        self.assertIn('run.config_sha256', changed)
        self.assertIn('f3', changed[f'forms.{f.table}.kept'][1].split(','))
        text = self.anonymizer('history', expect=0).stdout
        self.assertIn(f'settings: configuration {first["config_sha256"][:12]}', text)
        self.assertIn(f'settings changed: forms.{f.table}.blanked', text)
        self.assertIn(f'forms.{f.table}.retention_days 30 -> 60', text)
        self.assertIn('run.retention 30 days -> 60 days', text)

    def test_bad_options(self):
        t = self.tenant()
        self.write_config([t])
        for args in (['--since', '2026-02-30'], ['--since', 'yesterday'], ['--since', '2999-01-01'],
                     ['--format', 'pdf'], ['--at', '2030-01-01'], ['--sinc', '2026-01-01']):
            res = self.anonymizer('history', *args, expect=64)
            self.assertTrue(res.stderr.startswith('anonymizer: error: '), res.stderr)
            self.assertEqual(res.stdout, '')


if __name__ == '__main__':
    harness.main()
