"""Findings of an attack session (issue 15), each with the test that failed
before its fix: undated submissions, status unknown, hostile operators,
signals, discovered names, unknown wcs_all_forms columns...  The real
binary against a real PostgreSQL with w.c.s.-faithful tenants."""

import json
import os

import harness
import wcs
from forms import full_submission, standard_form


def ago(days):
    return f"now() - interval '{days} days'"


class HardeningTests(harness.TestCase):

    def one_form(self, definition=True):
        t = self.tenant()
        f = t.add_form(standard_form(), definition=definition)
        self.write_config([t], extra='retention = "30 days";')
        return t, f

    def report_form(self, expect):
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=expect).stdout)
        return report, report['tenants'][0]['forms'][0]

    # -- 5. undated submissions ------------------------------------------------------------

    def test_a_done_submission_with_no_date_is_past_the_limit_and_anonymised(self):
        t, f = self.one_form()
        undated = full_submission(t, f, ref=ago(10), marker='undated')
        young = full_submission(t, f, ref=ago(10), marker='young')
        t.query(f'UPDATE {wcs.qi(f.table)} SET receipt_time = NULL, last_update_time = NULL,'
                f" statistics_data = statistics_data - 'done-datetime' WHERE id = %s", (undated,))
        report, fr = self.report_form(expect=1)
        self.assertEqual(report['verdict'], 'NOT COMPLIANT')
        self.assertEqual(fr['undated'], 1)
        self.assertEqual(fr['due'], 1)
        text = self.anonymizer('report', expect=1).stdout
        self.assertIn('1 done with no date at all: counted past the limit', text)
        self.anonymizer('run', expect=0)
        self.assertIsNotNone(t.row(f, undated)['anonymised'])
        self.assertIsNone(t.row(f, young)['anonymised'])
        report, fr = self.report_form(expect=0)
        self.assertEqual(fr['undated'], 0)

    # -- 6. status unknown -------------------------------------------------------------------

    def test_without_definition_or_wcs_all_forms_row_the_status_is_unknown(self):
        t, f = self.one_form(definition=False)
        old = full_submission(t, f, ref=ago(200), marker='old')
        recent = full_submission(t, f, ref=ago(10), marker='recent')
        t.query('DELETE FROM wcs_all_forms WHERE formdef_id = %s', (f.id,))
        report, fr = self.report_form(expect=1)
        self.assertEqual((fr['status_unknown'], fr['status_unknown_past_limit']), (2, 1))
        self.assertEqual(report['verdict'], 'NOT COMPLIANT')
        self.assertIn('status unknown', self.anonymizer('report', expect=1).stdout)
        # only the recent one: not past the limit, but still unknown, and said
        t.query(f'DELETE FROM {wcs.qi(f.table)} WHERE id = %s', (old,))
        report, fr = self.report_form(expect=0)
        self.assertEqual((fr['status_unknown'], fr['status_unknown_past_limit']), (1, 0))
        self.assertIsNone(t.row(f, recent)['anonymised'])

    # -- 8. the configuration digest ----------------------------------------------------------

    def test_config_digest_covers_settings_not_secrets(self):
        t, f = self.one_form()
        full_submission(t, f, ref=ago(40))

        def digest(extra, password=None, comment=''):
            conninfo = t.conninfo + (f' password={password}' if password else '')
            self.write_config([(t.name, conninfo)], extra=comment + 'retention = "30 days";' + extra)
            self.anonymizer('run', expect=0)
            return t.runs()[-1][6]

        base = digest('')
        self.assertRegex(base, r'^[0-9a-f]{64}$')
        import hashlib
        with open(self.config_path, 'rb') as fp:
            self.assertNotEqual(base, hashlib.sha256(fp.read()).hexdigest(), 'the raw file, secrets included')
        # a password (trust authentication ignores it) and comments change nothing; a setting does
        self.assertEqual(digest('', password='S3cret-one'), base)
        self.assertEqual(digest('', password='S3cret-two', comment='# a comment\n'), base)
        self.assertNotEqual(digest(' batch_size = 100;'), base)
        self.assertNotIn('S3cret', ''.join(str(r) for r in t.runs()))

    # -- 16. unknown columns of wcs_all_forms ------------------------------------------------

    def test_an_unknown_wcs_all_forms_column_is_cleared(self):
        t, f = self.one_form()
        due = full_submission(t, f, ref=ago(40), marker='due')
        young = full_submission(t, f, ref=ago(10), marker='young')
        # a later w.c.s. (or a site's patch) copies something new into wcs_all_forms
        t.query('ALTER TABLE wcs_all_forms ADD COLUMN submitter_phone text')
        t.query("UPDATE wcs_all_forms SET submitter_phone = '06 12 34 56 78' WHERE formdef_id = %s", (f.id,))
        res = self.anonymizer('run', expect=0)
        self.assertIn('wcs_all_forms.submitter_phone: unknown column, cleared for anonymised submissions', res.stderr)
        phone = "SELECT submitter_phone FROM wcs_all_forms WHERE formdef_id = %s AND id = %s"
        self.assertIsNone(t.one(phone, (f.id, due))[0])
        self.assertEqual(t.one(phone, (f.id, young))[0], '06 12 34 56 78')
        # one that cannot be cleared stops the tenant before anything is touched
        t.query("ALTER TABLE wcs_all_forms ADD COLUMN mandatory_note text NOT NULL DEFAULT 'x'")
        res = self.anonymizer('run', expect=1)
        self.assertIn('wcs_all_forms.mandatory_note: unknown column that is NOT NULL', res.stderr)

    # -- 9. control characters in names ------------------------------------------------------

    def test_control_characters_in_names_are_escaped_in_every_text_output(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(40))
        forged = 'verdict: COMPLIANT'
        # a form name and a column name with a newline and a terminal escape sequence
        t.query("UPDATE formdefs SET name = %s WHERE id = %s", (f'Demande\n\n{forged}\x1b[2J', f.id))
        t.query(f'ALTER TABLE {wcs.qi(f.table)} ADD COLUMN "odd name\nx" text')
        name = 'ville\n  ' + forged + '\x1b[31m'
        self.write_config([(name.replace('\n', '\\n').replace('\x1b', '\\x1b'), t.conninfo)],
                          extra='retention = "30 days";')
        outputs = []
        for args in (['report'], ['check'], ['history'], ['run', '--dry-run'], ['run']):
            res = self.anonymizer(*args)
            self.assertIn(res.returncode, (0, 1), res)
            outputs.append((args, res.stdout + res.stderr))
        for args, text in outputs:
            with self.subTest(args=args):
                self.assertNotIn('\x1b', text)
                lines = [line.strip() for line in text.splitlines()]
                self.assertNotIn(forged, lines)
        self.assertIn('\\x1b[31m', outputs[0][1])
        # CSV: a column list splits on spaces, whatever the names
        csv = self.anonymizer('report', '--format', 'csv').stdout
        self.assertIn('odd\\x20name\\x0ax', csv)

    # -- 2. VACUUM owed ------------------------------------------------------------------------

    def test_a_vacuum_missed_is_owed_until_one_succeeds(self):
        t, f = self.one_form()
        full_submission(t, f, ref=ago(40))
        # a night that changes rows but does not vacuum (here: vacuum = false; in life a failure, a kill)
        self.write_config([t], extra='retention = "30 days"; vacuum = false;')
        self.anonymizer('run', expect=0)
        owed = dict(t.query('SELECT table_name, since FROM anonymizer.vacuum_owed'))
        self.assertIn(f.table, owed)
        self.assertIn('wcs_all_forms', owed)
        report = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        self.assertIsNotNone(report['tenants'][0]['forms'][0]['vacuum_owed_since'])
        self.assertIn(f.table, [o['table'] for o in report['tenants'][0]['vacuum_owed']])
        # said calmly, one line per tenant: pending maintenance, not yet a warning
        self.assertRegex(self.anonymizer('report').stdout, r'maintenance pending: VACUUM owed by \d+ tables since')
        self.assertRegex(self.anonymizer('report', '--format', 'html').stdout,
                         r'<p>maintenance pending: VACUUM owed by \d+ tables since')

        def vacuums(table):
            t.query('SELECT pg_stat_clear_snapshot()')
            return t.one('SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s', (table,))[0]

        before = vacuums(f.table)
        # the next night has nothing left to change, and still pays the debt
        self.write_config([t], extra='retention = "30 days";')
        self.anonymizer('run', expect=0)
        self.assertTrue(self.wait_until(lambda: vacuums(f.table) > before, timeout=10))
        self.assertEqual(t.query('SELECT table_name FROM anonymizer.vacuum_owed'), [])
        report = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        self.assertEqual(report['tenants'][0]['vacuum_owed'], [])

    # -- 3. operator shadowing (CVE-2018-1058) ------------------------------------------------

    def test_a_shadowing_operator_in_public_changes_nothing(self):
        t, f = self.one_form()
        due = [full_submission(t, f, ref=ago(40 + k), marker=f'due{k}') for k in range(3)]
        old = full_submission(t, f, ref=ago(200), marker='old')
        young = full_submission(t, f, ref=ago(10), marker='young')
        draft = full_submission(t, f, ref=ago(200), status='draft', marker='draft')
        # exact argument types win over the built-in operators, which need an implicit cast
        for op, result in (('=', 'false'), ('<>', 'true'), ('<', 'false'), ('>', 'false'), ('~~', 'false')):
            for left, right in (('varchar', 'text'), ('varchar', 'varchar'), ('text', 'varchar')):
                fn = harness.unique('evil')
                t.query(f"CREATE FUNCTION public.{fn}({left}, {right}) RETURNS boolean LANGUAGE sql IMMUTABLE"
                        f" AS 'SELECT {result}'")
                t.query(f'CREATE OPERATOR public.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = public.{fn})')
        # the operator does shadow the built-in one in a session with public on its path
        self.assertFalse(t.one("SELECT 'draft'::varchar = 'draft'::text")[0])
        report, fr = self.report_form(expect=1)
        self.assertEqual(report['verdict'], 'NOT COMPLIANT')
        self.assertEqual((fr['due'], fr['drafts_due']), (4, 1))
        self.anonymizer('run', expect=0)
        for fid in due + [old]:
            self.assertIsNotNone(t.row(f, fid)['anonymised'], fid)
        self.assertIsNone(t.row(f, young)['anonymised'])
        self.assertEqual(t.query(f'SELECT id FROM {wcs.qi(f.table)} WHERE id = %s', (draft,)), [])
        report, fr = self.report_form(expect=0)
        self.assertEqual((fr['due'], fr['drafts_due'], fr['anonymised']), (0, 0, 4))

    # -- 11. definition files: only regular files, bounded -----------------------------------

    def test_definition_files_that_are_not_regular_files_are_refused_at_once(self):
        t, f = self.one_form()
        full_submission(t, f, ref=ago(40))
        folder = os.path.join(self.schemas, t.name)
        for name, make in (('fifo.json', lambda p: os.mkfifo(p)), ('zero.json', lambda p: os.symlink('/dev/zero', p))):
            with self.subTest(name=name):
                path = os.path.join(folder, name)
                make(path)
                # a FIFO would block before connecting, /dev/zero end in out-of-memory
                res = self.anonymizer('run', expect=1, timeout=30)
                self.assertIn(f'{name}: cannot read form definition: not a regular file', res.stderr)
                os.unlink(path)
        big = os.path.join(folder, 'big.json')
        with open(big, 'w') as fp:
            fp.write('{"url_name": "big", "fields": [], "pad": "' + 'x' * (16 * 1024 * 1024) + '"}')
        res = self.anonymizer('run', expect=1, timeout=60)
        self.assertIn('big.json: cannot read form definition: larger than 16 MiB', res.stderr)

    # -- 15. a discovered database with "/" in its name ---------------------------------------

    def test_a_discovered_database_named_with_a_slash_is_a_tenant(self):
        t, f = self.one_form(definition=False)
        full_submission(t, f, ref=ago(40))
        prefix = harness.unique('wcs_slash')
        name = f'{prefix}/../x'
        t.copy_database(name)
        # its definitions under an encoded directory name, never a path that climbs out of schemas
        encoded = name.replace('/', '%2F')
        f.write_definition(self.schemas, encoded)
        self.write_config([], extra=f'retention = "30 days"; discover = ( {{ conninfo = '
                                    f'"{harness.cfgstr(t.cluster.conninfo("postgres"))}"; databases = "{prefix}%"; }} );')
        res = self.anonymizer('check', expect=0)
        self.assertIn(f'tenant {name}: reachable', res.stdout)
        self.assertIn(f'{encoded}/demande-rdv.json', res.stdout)
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        self.assertEqual([x['name'] for x in report['tenants']], [name])
        self.anonymizer('run', expect=0)
        other = t.cluster.connect(name)
        try:
            with other.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM {wcs.qi(f.table)} WHERE anonymised IS NULL AND status <> 'draft'"
                            f" AND last_update_time < now() - interval '31 days'")
                self.assertEqual(cur.fetchone()[0], 0)
        finally:
            other.close()
        self.assertFalse(os.path.exists(os.path.join(self.schemas, 'x')))


if __name__ == '__main__':
    harness.main()
