"""Legal holds: a held submission (or a whole held form) past its cutoff survives the runs, counted; the first run
after the hold ends anonymises it; adding and removing are entries of the chained history; the report lists every
hold and counts held data past the limit apart from its verdict; the Nagios check warns of holds expired or over a
year old."""

import datetime
import json
import os
import secrets
import time

import harness
from forms import full_submission, standard_form


def ago(days):
    return f"now() - interval '{days} days'"


class HoldTests(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.t = self.tenant()
        self.f = self.t.add_form(standard_form())
        key = os.path.join(self.dir, 'audit.key')
        with open(key, 'w') as fp:
            fp.write(secrets.token_hex(32))
        os.chmod(key, 0o600)
        self.write_config([self.t], extra=f'retention = "30 days"; audit_key_file = "{harness.cfgstr(key)}";'
                                          f' audit_head_directory = "{harness.cfgstr(self.dir)}/heads";')

    def hold(self, *args, expect=0):
        return self.anonymizer('hold', *args, expect=expect)

    def anonymised(self, fid):
        return self.t.row(self.f, fid)['anonymised'] is not None

    def test_a_held_submission_survives_until_its_hold_ends(self):
        held = full_submission(self.t, self.f, ref=ago(120), marker='held')
        other = full_submission(self.t, self.f, ref=ago(120), marker='other')
        until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=6)).strftime(
            '%Y-%m-%dT%H:%M:%SZ')
        res = self.hold('add', '-t', self.t.name, '--form', self.f.slug, '--id', str(held),
                        '--reason', 'Recours TA Lyon n°2026-118', '--until', until)
        self.assertRegex(res.stdout, rf'hold 1 added: form {self.f.slug}, submission {held}\n')
        res = self.anonymizer('run', expect=0)
        self.assertFalse(self.anonymised(held))
        self.assertTrue(self.anonymised(other))
        self.assertIn(f'{self.f.label if hasattr(self.f, "label") else ""}', res.stderr)
        self.assertIn('1 submission left alone: under a legal hold', res.stderr)
        [(forms,)] = self.t.query("SELECT forms FROM anonymizer.runs WHERE command = 'run'")
        self.assertEqual(forms[0]['held'], 1)
        # the hold is in the chained history: who, when, why
        [(details, outcome)] = self.t.query("SELECT details, outcome FROM anonymizer.runs WHERE command = 'hold add'")
        h = details['holds'][0]
        self.assertEqual((h['form'], h['submission_id'], h['reason'], outcome),
                         (self.f.slug, str(held), 'Recours TA Lyon n°2026-118', 'ok'))
        self.assertTrue(h['os_user'] and h['db_role'] and h['until'])
        self.assertEqual(json.loads(self.anonymizer('history', '--verify', '--format', 'json', expect=0).stdout)[0]
                         ['entries'], 2)
        # it ends by itself: the first run after anonymises it
        time.sleep(max(0, 7 - 0))
        res = self.anonymizer('run', expect=0)
        self.assertTrue(self.anonymised(held))
        self.assertNotIn('legal hold', res.stderr)
        listed = json.loads(self.hold('list', '--format', 'json').stdout)
        self.assertEqual(listed[0]['holds'][0]['expired'], True)
        self.assertIn('EXPIRED', self.hold('list').stdout)

    def test_the_report_counts_held_data_apart_and_nagios_warns(self):
        held = full_submission(self.t, self.f, ref=ago(120), marker='held')
        full_submission(self.t, self.f, ref=ago(120), marker='other')
        self.hold('add', '-t', self.t.name, '--form', self.f.slug, '--id', str(held), '--reason', 'contentieux')
        # before the run: the other one is past the limit, the held one is not in the verdict
        doc = json.loads(self.anonymizer('report', '--format', 'json', expect=1).stdout)
        [form] = doc['tenants'][0]['forms']
        self.assertEqual((form['held'], form['held_past_limit']), (1, 1))
        self.assertEqual(form['due'], 1)
        self.anonymizer('run', expect=0)
        doc = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        [form] = doc['tenants'][0]['forms']
        self.assertEqual((doc['verdict'], form['held'], form['held_due'], form['held_past_limit'], form['due']),
                         ('COMPLIANT', 1, 1, 1, 0))
        self.assertEqual(form['submissions'], 2)
        [h] = doc['tenants'][0]['legal_holds']
        self.assertEqual((h['submission_id'], h['reason'], h['expired'], h['over_a_year']), (held, 'contentieux',
                                                                                              False, False))
        text = self.anonymizer('report', expect=0).stdout
        self.assertIn('legal hold: hold 1 on demande-rdv, submission', text)
        self.assertIn('1 kept (1 due, 1 done past the legal limit: lawful while the hold lasts, not in the verdict)',
                      text)
        fr = self.anonymizer('report', '--lang', 'fr', expect=0).stdout
        self.assertIn('conservation légale : conservation 1 sur demande-rdv, demande', fr)
        self.assertIn('sous conservation légale', fr)
        html = self.anonymizer('report', '--format', 'html', expect=0).stdout
        self.assertIn('Kept under a legal hold', html)
        res = self.anonymizer('report', '--format', 'nagios', expect=0)
        self.assertIn('holds_to_review=0;0', res.stdout)
        # a hold in force for over a year is to review
        self.t.query("UPDATE anonymizer.holds SET created_at = now() - interval '400 days'")
        res = self.anonymizer('report', '--format', 'nagios', expect=1)
        self.assertTrue(res.stdout.startswith('ANONYMIZER WARNING - 1 legal hold to review'), res.stdout)
        self.assertIn('legal hold 1 is over a year old', res.stdout)
        # and one whose end has passed
        self.t.query("UPDATE anonymizer.holds SET created_at = now() - interval '2 days',"
                     " until = now() - interval '1 hour'")
        # (the submission it kept is past the limit now, as any other: CRITICAL until a run anonymises it)
        res = self.anonymizer('report', '--format', 'nagios', expect=2)
        self.assertIn('legal hold 1 has expired and is still listed', res.stdout)
        # expired, the held submission is past the limit like any other
        doc = json.loads(self.anonymizer('report', '--format', 'json', expect=1).stdout)
        self.assertEqual(doc['tenants'][0]['forms'][0]['held'], 0)

    def test_a_whole_form_held_and_removed(self):
        a = full_submission(self.t, self.f, ref=ago(120), marker='a')
        d = full_submission(self.t, self.f, ref=ago(120), status='draft', marker='d')
        self.hold('add', '-t', self.t.name, '--form', self.f.slug, '--reason', 'enquête CNIL')
        res = self.anonymizer('run', expect=0)
        self.assertFalse(self.anonymised(a))
        self.assertIsNotNone(self.t.row(self.f, d))
        self.assertIn('2 submissions left alone', res.stderr)
        res = self.hold('remove', '-t', self.t.name, '--form', self.f.slug, '--reason', 'enquête close')
        self.assertIn('hold 1 removed', res.stdout)
        self.assertEqual(self.t.one('SELECT count(*) FROM anonymizer.holds')[0], 0)
        [(details,)] = self.t.query("SELECT details FROM anonymizer.runs WHERE command = 'hold remove'")
        self.assertEqual(details['holds'][0]['removal_reason'], 'enquête close')
        self.anonymizer('run', expect=0)
        self.assertTrue(self.anonymised(a))
        self.assertIsNone(self.t.row(self.f, d))
        self.assertEqual(json.loads(self.anonymizer('history', '--verify', '--format', 'json', expect=0).stdout)[0]
                         ['state'], 'intact')
        # the history shows them
        text = self.anonymizer('history').stdout
        self.assertIn('hold add', text)
        self.assertIn('enquête CNIL', text)

    def test_bad_holds_are_refused_and_change_nothing(self):
        fid = full_submission(self.t, self.f, ref=ago(120), marker='x')
        cases = [
            (('add', '-t', self.t.name, '--form', self.f.slug), 64, 'needs --reason'),
            (('add', '-t', self.t.name, '--reason', 'x'), 64, 'need --form'),
            (('add', '--form', self.f.slug, '--reason', 'x'), 64, 'name one tenant with -t'),
            (('add', '-t', self.t.name, '--form', 'nope', '--reason', 'x'), 64, 'no form or card "nope"'),
            (('add', '-t', self.t.name, '--form', self.f.slug, '--id', '999', '--reason', 'x'), 64,
             'has no submission 999'),
            (('add', '-t', self.t.name, '--form', self.f.slug, '--id', 'x', '--reason', 'x'), 64, '--id must be'),
            (('add', '-t', self.t.name, '--form', self.f.slug, '--reason', 'a\nb'), 64, 'control characters'),
            (('add', '-t', self.t.name, '--form', self.f.slug, '--reason', 'x', '--until', '2001-01-01'), 64,
             'not in the future'),
            (('remove', '-t', self.t.name, '--form', self.f.slug), 64, 'no hold on'),
            (('frobnicate',), 64, 'needs an action'),
        ]
        for args, status, message in cases:
            res = self.hold(*args, expect=status)
            self.assertIn(message, res.stderr, args)
            self.assertEqual(len(res.stderr.strip().splitlines()) <= 2, True, res.stderr)
        self.assertEqual(self.t.one("SELECT count(*) FROM anonymizer.holds")[0] if self.t.one(
            "SELECT to_regclass('anonymizer.holds') IS NOT NULL")[0] else 0, 0)
        self.anonymizer('run', expect=0)
        # an anonymised submission cannot be held
        res = self.hold('add', '-t', self.t.name, '--form', self.f.slug, '--id', str(fid), '--reason', 'x', expect=64)
        self.assertIn('anonymised already', res.stderr)


if __name__ == '__main__':
    harness.main()
