"""One failure never hides another: a form that fails (rows a server error
refuses, a table the role may not change, a table locked past lock_timeout)
is named on stderr, in the audit and in the report, exit 1; the other forms
are done in the same run, and the export still runs.  The real binary
against a real PostgreSQL with w.c.s.-faithful tenants."""

import json

import harness
import wcs
from forms import full_submission, standard_form


def ago(days):
    return f"now() - interval '{days} days'"


class FailureTests(harness.TestCase):

    def three_forms(self, extra='batch_size = 8;'):
        """A tenant of three forms, due submissions and expired drafts in each; the second and third come
        after the first in the run's order."""
        t = self.tenant()
        forms = [t.add_form(standard_form(k, slug, slug.title())) for k, slug in
                 ((1, 'alpha'), (2, 'beta'), (3, 'gamma'))]
        due = {}
        for f in forms:
            due[f.slug] = [full_submission(t, f, ref=ago(40), marker=f'{f.slug}{k}') for k in range(12)]
            full_submission(t, f, ref=ago(40), status='draft', marker=f'{f.slug}-draft')
        self.write_config([t], extra='retention = "30 days"; ' + extra)
        return t, forms, due

    def last_forms(self, t):
        return {e['slug']: e for e in t.runs()[-1][2]}

    def assert_done(self, t, f, ids):
        for fid in ids:
            self.assertIsNotNone(t.row(f, fid)['anonymised'], (f.slug, fid))

    def test_a_foreign_key_to_a_draft_skips_that_draft_only(self):
        t, forms, due = self.three_forms()
        alpha = forms[0]
        drafts = [r[0] for r in t.query(f"SELECT id FROM {wcs.qi(alpha.table)} WHERE status = 'draft'")]
        more = [full_submission(t, alpha, ref=ago(40), status='draft', marker=f'd{k}') for k in range(6)]
        # another application's table refers to one expired draft: deleting it is refused (23503)
        t.query(f'CREATE TABLE attachments_index (id serial PRIMARY KEY,'
                f' formdata_id integer REFERENCES {wcs.qi(alpha.table)} (id))')
        held = more[3]
        t.query('INSERT INTO attachments_index (formdata_id) VALUES (%s)', (held,))
        res = self.anonymizer('run', expect=1)
        # named: tenant, form, the draft, the SQLSTATE and the server's message
        self.assertRegex(res.stderr, rf'error: {t.name}: form alpha: draft {held} skipped: foreign key violation: .*constraint .*\(SQLSTATE 23503')
        # only it: the other drafts deleted in the same run, every due submission done, later forms too
        left = [r[0] for r in t.query(f"SELECT id FROM {wcs.qi(alpha.table)} WHERE status = 'draft'")]
        self.assertEqual(left, [held])
        self.assertEqual(self.last_forms(t)['alpha']['drafts_deleted'], len(drafts) + len(more) - 1)
        for f in forms:
            self.assert_done(t, f, due[f.slug])
        entries = self.last_forms(t)
        self.assertEqual(entries['alpha']['outcome'], 'failed')
        self.assertEqual(entries['alpha']['failed'], 1)
        self.assertIn('23503', entries['alpha']['error'])
        self.assertEqual([entries[s]['outcome'] for s in ('beta', 'gamma')], ['ok', 'ok'])
        self.assertEqual(t.runs()[-1][1], 'failed')
        report = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        by_slug = {f['slug']: f for f in report['tenants'][0]['forms']}
        self.assertIn(f'draft {held}', by_slug['alpha']['failed_in_last_run'])
        self.assertIsNone(by_slug['beta']['failed_in_last_run'])
        text = self.anonymizer('report').stdout
        self.assertIn('failed in last run', text)

    def test_a_failing_submission_is_isolated_by_halving(self):
        t, forms, due = self.three_forms('batch_size = 64;')
        alpha = forms[0]
        bad = due['alpha'][7]
        # a w.c.s. site's own trigger refuses to touch one submission (P0001)
        t.query(f"""CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN IF OLD.id = {int(bad)} THEN RAISE EXCEPTION 'submission under legal hold'; END IF;
                    RETURN NEW; END $$""")
        t.query(f'CREATE TRIGGER refuse_one BEFORE UPDATE ON {wcs.qi(alpha.table)}'
                f' FOR EACH ROW EXECUTE FUNCTION refuse_one()')
        res = self.anonymizer('-v', 'run', expect=1)
        self.assertIn(f'form alpha: submission {bad} skipped: raise exception (SQLSTATE P0001',
                      res.stderr)
        self.assertIsNone(t.row(alpha, bad)['anonymised'])
        self.assert_done(t, alpha, [i for i in due['alpha'] if i != bad])
        for f in forms[1:]:
            self.assert_done(t, f, due[f.slug])
        self.assertEqual(self.last_forms(t)['alpha']['failed'], 1)
        # the next night: the same one skipped again, nothing else to do, still named
        res = self.anonymizer('run', expect=1)
        self.assertIn(f'submission {bad} skipped', res.stderr)

    def test_a_revoked_update_fails_that_form_only(self):
        t, forms, due = self.three_forms()
        role = harness.unique('runner')
        t.query(f'CREATE ROLE {role} LOGIN')
        t.query(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}')
        t.query(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}')
        t.query(f'GRANT CREATE ON DATABASE {wcs.qi(t.dbname)} TO {role}')
        t.query(f'GRANT CREATE ON SCHEMA public TO {role}')
        t.query(f'REVOKE UPDATE ON {wcs.qi(forms[0].table)} FROM {role}')
        self.write_config([(t.name, t.cluster.conninfo(t.dbname, user=role))],
                          extra='retention = "30 days"; batch_size = 8;')
        before = t.one(f'SELECT md5(string_agg(x::text, chr(10) ORDER BY id)) FROM {wcs.qi(forms[0].table)} x')
        res = self.anonymizer('run', expect=1)
        self.assertIn(f'error: {t.name}: form alpha: role "{role}" lacks UPDATE on table'
                      f' public.{wcs.qi(forms[0].table)}', res.stderr)
        self.assertEqual(t.one(f'SELECT md5(string_agg(x::text, chr(10) ORDER BY id))'
                               f' FROM {wcs.qi(forms[0].table)} x'), before)
        for f in forms[1:]:
            self.assert_done(t, f, due[f.slug])
        entries = self.last_forms(t)
        self.assertEqual(entries['alpha']['outcome'], 'failed')
        self.assertIn('lacks UPDATE', entries['alpha']['error'])
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        by_slug = {f['slug']: f for f in report['tenants'][0]['forms']}
        self.assertIn('lacks UPDATE', by_slug['alpha']['failed_in_last_run'])

    def test_a_locked_table_is_left_for_the_next_run_and_the_others_are_done(self):
        t, forms, due = self.three_forms('batch_size = 8; lock_timeout = "300ms";')
        holder = t.cluster.connect(t.dbname, autocommit=False)
        try:
            holder.cursor().execute(f'LOCK TABLE {wcs.qi(forms[0].table)} IN ACCESS EXCLUSIVE MODE')
            res = self.anonymizer('run', expect=1)
        finally:
            holder.rollback()
            holder.close()
        self.assertRegex(res.stderr, rf'error: {t.name}: form alpha: table locked, ids after 0 left for the next'
                                     rf' run: lock not available \(SQLSTATE 55P03')
        self.assertIsNone(t.row(forms[0], due['alpha'][0])['anonymised'])
        for f in forms[1:]:
            self.assert_done(t, f, due[f.slug])
        entries = self.last_forms(t)
        self.assertEqual(entries['alpha']['outcome'], 'locked')
        self.assertTrue(entries['alpha']['table_locked'])
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        by_slug = {f['slug']: f for f in report['tenants'][0]['forms']}
        self.assertIn('table locked', by_slug['alpha']['failed_in_last_run'])
        # the lock gone, the next run completes it
        self.anonymizer('run', expect=0)
        self.assert_done(t, forms[0], due['alpha'])

    def test_the_export_still_runs_for_the_forms_that_succeeded(self):
        t, forms, due = self.three_forms()
        bi = harness.unique('bi')
        t.cluster.createdb(bi)
        t.query(f'CREATE TABLE attachments_index (formdata_id integer REFERENCES {wcs.qi(forms[0].table)} (id))')
        draft = t.one(f"SELECT id FROM {wcs.qi(forms[0].table)} WHERE status = 'draft'")[0]
        t.query('INSERT INTO attachments_index VALUES (%s)', (draft,))
        self.write_config([t], extra=f'retention = "30 days"; batch_size = 8;'
                                     f' bi = {{ conninfo = "{harness.cfgstr(t.cluster.conninfo(bi))}"; min_k = 1; }};')
        self.anonymizer('run', expect=1)
        conn = t.cluster.connect(bi)
        self.addCleanup(conn.close)
        with conn.cursor() as cur:
            cur.execute('SELECT form_slug, count(*) FROM anonymised.submissions GROUP BY 1 ORDER BY 1')
            self.assertEqual(cur.fetchall(), [('alpha', 12), ('beta', 12), ('gamma', 12)])


if __name__ == '__main__':
    harness.main()
