"""anonymizer run: what it changes, what it must leave alone, and how it survives
locks, kills and broken tenants.  The real binary against a real PostgreSQL
with w.c.s.-faithful tenants."""

import json
import re
import os
import signal
import subprocess
import time

import harness
import wcs
from forms import (ALLFORMS_PERSONAL, BLANKED_COLUMNS, KEPT_COLUMNS, METADATA_COLUMNS, ROLE_ARRAYS, SYSTEM_COLUMNS,
                   full_submission, standard_form)

DAY = "interval '1 day'"


def ago(days, minutes=0):
    return f"now() - interval '{days} days' - interval '{minutes} minutes'"


class RunTests(harness.TestCase):

    def one_tenant(self, extra='retention = "30 days";', forms=None, form=None):
        t = self.tenant()
        f = t.add_form(form or standard_form())
        self.write_config([t], extra=extra, forms=forms)
        return t, f

    # -- the cutoff ---------------------------------------------------------

    def test_one_minute_each_side_of_the_cutoff(self):
        t, f = self.one_tenant()
        due = full_submission(t, f, ref=ago(30, 1), marker='due')
        young = full_submission(t, f, ref=ago(30, -1), marker='young')
        # the reference time is last_update_time, then receipt_time
        old_receipt_young_update = full_submission(t, f, ref=ago(29), receipt=ago(60), marker='upd')
        no_update = full_submission(t, f, ref='NULL', receipt=ago(30, 1), marker='noupd')
        before = {i: t.row(f, i) for i in (young, old_receipt_young_update)}
        before_hist = {i: t.history(f, i) for i in (young, old_receipt_young_update)}

        res = self.anonymizer('run', expect=0)

        self.assertIsNotNone(t.row(f, due)['anonymised'])
        self.assertIsNotNone(t.row(f, no_update)['anonymised'])
        for i in (young, old_receipt_young_update):
            self.assertEqual(t.row(f, i), before[i], 'a submission younger than its cutoff was touched')
            self.assertEqual(t.history(f, i), before_hist[i])
        self.assertEqual(t.one('SELECT count(*) FROM tracking_codes')[0], 2)
        self.assertIn('2 anonymised', res.stderr)

    # -- what is due -----------------------------------------------------------

    def test_final_open_and_drafts(self):
        t, f = self.one_tenant()
        final = full_submission(t, f, ref=ago(40), status='wf-done', marker='final')
        rejected = full_submission(t, f, ref=ago(40), status='wf-rejected', marker='rejected')
        open_ = full_submission(t, f, ref=ago(40), status='wf-new', marker='open')
        draft = full_submission(t, f, ref=ago(40), status='draft', marker='draft')
        young_draft = full_submission(t, f, ref=ago(10), status='draft', marker='ydraft')
        draft_code = t.row(f, draft)['tracking_code']
        open_before = t.row(f, open_)

        self.anonymizer('run', expect=0)

        self.assertIsNotNone(t.row(f, final)['anonymised'])
        self.assertIsNotNone(t.row(f, rejected)['anonymised'])
        self.assertEqual(t.row(f, open_), open_before, 'open submissions are skipped by default')
        # the expired draft is gone, with its history, tracking code and wcs_all_forms row
        self.assertIsNone(t.row(f, draft))
        self.assertEqual(t.history(f, draft), [])
        self.assertIsNone(t.one('SELECT 1 FROM tracking_codes WHERE id = %s', (draft_code,)))
        self.assertIsNone(t.allforms(f, draft))
        self.assertIsNotNone(t.row(f, young_draft))
        runs = t.runs()
        entry = runs[-1][2][0]
        self.assertEqual((entry['anonymised'], entry['drafts_deleted']), (2, 1))

    def test_open_submissions_and_drafts_anonymised_when_configured(self):
        t, f = self.one_tenant(extra='retention = "30 days"; open_submissions = "anonymise"; drafts = "anonymise";')
        open_ = full_submission(t, f, ref=ago(40), status='wf-new', marker='open')
        draft = full_submission(t, f, ref=ago(40), status='draft', marker='draft')
        young_open = full_submission(t, f, ref=ago(3), status='wf-new', marker='yopen')

        res = self.anonymizer('run', expect=0)

        for i in (open_, draft):
            row = t.row(f, i)
            self.assertIsNotNone(row, 'an anonymised draft is kept')
            self.assertIsNotNone(row['anonymised'])
            self.assertIsNone(row['f1'])
            self.assertIsNone(row['user_id'])
        self.assertIsNone(t.row(f, young_open)['anonymised'])
        self.assertIn('1 drafts anonymised', res.stderr)

    # -- what a final anonymisation does ---------------------------------------

    def test_fields_metadata_history_tracking_and_all_forms(self):
        t, f = self.one_tenant()
        # a column the (stale) definition does not know: blanked and reported
        t.query(f'ALTER TABLE {wcs.qi(f.table)} ADD COLUMN f99 varchar')
        fid = full_submission(t, f, ref=ago(40), marker='M1')
        t.query(f"UPDATE {wcs.qi(f.table)} SET f99 = 'secret M1' WHERE id = %s", (fid,))
        code = t.row(f, fid)['tracking_code']
        before = t.row(f, fid)
        self.assertIsNotNone(t.allforms(f, fid)['user_name'])
        server_before = t.one('SELECT now()')[0]

        res = self.anonymizer('run', expect=0)

        after = t.row(f, fid)
        server_after = t.one('SELECT now()')[0]
        for c in KEPT_COLUMNS + SYSTEM_COLUMNS:
            self.assertEqual(after[c], before[c], f'{c} should be kept')
        for c in BLANKED_COLUMNS + METADATA_COLUMNS + ['f99']:
            self.assertIsNotNone(before[c], f'fixture should fill {c}')
            self.assertIsNone(after[c], f'{c} should be blanked')
        # the role ids stay (agents' back-office lists filter on them), the person's entry goes
        self.assertIn('_user:42', before['concerned_roles_array'])
        for c, kept in ROLE_ARRAYS.items():
            self.assertEqual(after[c], kept, c)
        self.assertEqual(after['statistics_data'], {'done-datetime': before['statistics_data']['done-datetime'],
                                                    'motif': ['rdv']})
        self.assertTrue(server_before <= after['anonymised'] <= server_after)
        # history keeps status and times only
        hist = t.history(f, fid)
        self.assertEqual(len(hist), 2)
        for who, status, tm, comment, parts in hist:
            self.assertEqual((who, comment, parts), (None, None, None))
            self.assertIsNotNone(status)
            self.assertIsNotNone(tm)
        self.assertIsNone(t.one('SELECT 1 FROM tracking_codes WHERE id = %s', (code,)))
        af = t.allforms(f, fid)
        for c in ALLFORMS_PERSONAL:
            self.assertIsNone(af[c], f'wcs_all_forms.{c} should be cleared')
        for c, kept in ROLE_ARRAYS.items():
            self.assertEqual(af[c], kept, f'wcs_all_forms.{c}')
        self.assertEqual(af['anonymised'], after['anonymised'])
        self.assertEqual(af['statistics_data'], after['statistics_data'])
        self.assertEqual(af['status'], 'wf-done')
        # the unclassified column is reported, on stderr and in the audit
        self.assertIn('unclassified column blanked', res.stderr)
        self.assertIn('f99', res.stderr)
        entry = t.runs()[-1][2][0]
        self.assertEqual(entry['unclassified'], ['f99'])
        self.assertEqual(entry['history_cleared'], 2)
        self.assertEqual(entry['tracking_codes_deleted'], 1)

    def test_all_forms_cleared_without_trigger(self):
        """The tool does not rely on the w.c.s. trigger to clear wcs_all_forms."""
        t, f = self.one_tenant()
        fid = full_submission(t, f, ref=ago(40))
        t.query(f'DROP TRIGGER formdata_{f.id}_trigger ON {wcs.qi(f.table)}')
        self.anonymizer('run', expect=0)
        af = t.allforms(f, fid)
        for c in ALLFORMS_PERSONAL:
            self.assertIsNone(af[c], c)
        for c, kept in ROLE_ARRAYS.items():
            self.assertEqual(af[c], kept, c)
        self.assertEqual(af['anonymised'], t.row(f, fid)['anonymised'])

    def test_wcs_anonymised_submission_is_completed(self):
        t, f = self.one_tenant()
        # what w.c.s. leaves after its own final anonymisation
        fid = full_submission(t, f, ref=ago(50), anonymised=ago(45), marker='W')
        t.query(f"""UPDATE {wcs.qi(f.table)} SET f1 = NULL, f3 = NULL, f4 = NULL, f7 = NULL, f9 = NULL,
                    fbo1 = NULL, user_id = NULL, user_label = NULL, workflow_data = NULL, workflow_roles = NULL,
                    submission_context = NULL, tracking_code = NULL WHERE id = %s""", (fid,))
        t.query(f'UPDATE {wcs.qi(f.evolutions)} SET who = NULL, comment = NULL, parts = NULL'
                f' WHERE formdata_id = %s', (fid,))
        t.query("DELETE FROM tracking_codes WHERE formdata_id = %s", (str(fid),))
        original = t.row(f, fid)['anonymised']
        # and one anonymised by w.c.s. but younger than the cutoff: not touched
        young = full_submission(t, f, ref=ago(5), anonymised=ago(1), marker='Y')
        young_before = t.row(f, young)
        self.assertIsNotNone(t.row(f, fid)['prefilling_data'])

        self.anonymizer('run', expect=0)

        row = t.row(f, fid)
        self.assertEqual(row['anonymised'], original, 'the original anonymisation time is kept')
        for c in ('prefilling_data', 'geoloc_base', 'auto_geoloc', 'submission_agent_id', 'f6', 'digests', 'fts'):
            self.assertIsNone(row[c], c)
        self.assertEqual(row['f2'], 'rdv')
        self.assertEqual(t.row(f, young), young_before)
        entry = t.runs()[-1][2][0]
        self.assertEqual((entry['anonymised'], entry['completed']), (0, 1))

    # -- steady nights: candidates found through w.c.s.'s index on anonymised ------------------

    def candidates(self, t, f, res):
        """The candidates the run's -v log counted; the table is emptied once the form is done."""
        self.assertEqual(t.query('SELECT id FROM anonymizer.candidates WHERE table_name = %s', (f.table,)), [])
        return int(re.search(r'form demande-rdv: (\d+) candidates', res.stderr).group(1))

    def test_a_steady_night_looks_at_candidates_only(self):
        t, f = self.one_tenant()
        done = [full_submission(t, f, ref=ago(40), marker=f'D{i}') for i in range(4)]
        res = self.anonymizer('run', '-v', expect=0)
        self.assertEqual(self.candidates(t, f, res), len(done), 'the first night looks at the whole form')
        self.assertIn('anonymised rows from -infinity', res.stderr)
        checked = t.one('SELECT checked_until FROM anonymizer.checked WHERE table_name = %s', (f.table,))[0]
        self.assertLess(checked, t.one("SELECT now() - interval '23 hours'")[0])
        # that night was yesterday: its rows were anonymised two days before the next one (a day of margin
        # before a check looks at the rows anonymised since it, and a day between the nights)
        t.query(f"UPDATE {wcs.qi(f.table)} SET anonymised = anonymised - interval '2 days'")

        # after it: one row w.c.s. anonymised today, incompletely (a candidate: anonymised after the check)...
        wcs_today = full_submission(t, f, ref=ago(50), anonymised=ago(0, 120), marker='T')
        # ...one young, one new due row...
        young = full_submission(t, f, ref=ago(2), marker='Y')
        due = full_submission(t, f, ref=ago(31), marker='N')
        # ...and one made to look anonymised long before the check, left dirty: the night does not look at it
        stale = full_submission(t, f, ref=ago(60), anonymised=ago(45), marker='S')
        res = self.anonymizer('run', '-v', expect=0)
        self.assertEqual(self.candidates(t, f, res), 3, 'wcs_today, due and young, not stale nor the night before')
        self.assertIsNotNone(t.row(f, due)['anonymised'])
        self.assertIsNone(t.row(f, wcs_today)['prefilling_data'], 'completed')
        self.assertIsNone(t.row(f, young)['anonymised'])
        self.assertIsNotNone(t.row(f, stale)['prefilling_data'], 'anonymised before the check: not looked at')
        entry = t.runs()[-1][2][0]
        self.assertEqual((entry['anonymised'], entry['completed']), (1, 1))
        # the change log holds the ids changed, not the range between them (the young row's)
        changes = t.query('SELECT lo, hi FROM anonymizer.changes c JOIN anonymizer.runs r USING (run_id)'
                          ' WHERE r.started_at = (SELECT max(started_at) FROM anonymizer.runs) ORDER BY lo')
        self.assertEqual(changes, [(wcs_today, wcs_today), (due, due)])

        # a new rule (a field kept before is blanked now) looks at the whole form again
        self.write_config([t], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "demande-rdv"; blank = ["motif"]; }'])
        self.anonymizer('run', expect=0)
        self.assertIsNone(t.row(f, stale)['prefilling_data'], 'a new rule checks every anonymised row')
        # the report counts the rows found clean on the index (as they will be the next night): the same
        # figures as counting every row
        t.query(f"UPDATE {wcs.qi(f.table)} SET anonymised = anonymised - interval '2 days'")
        settled_rows = t.one(f'SELECT count(*) FROM {wcs.qi(f.table)} WHERE anonymised < (SELECT checked_until'
                             ' FROM anonymizer.checked)')[0]
        self.assertEqual(settled_rows, 7)
        at = t.one("SELECT to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SSOF')")[0]
        settled = json.loads(self.anonymizer('report', '--format', 'json', '--at', at, expect=0).stdout)
        t.query('DELETE FROM anonymizer.checked')
        whole = json.loads(self.anonymizer('report', '--format', 'json', '--at', at, expect=0).stdout)
        self.assertEqual(settled['tenants'], whole['tenants'])
        self.assertEqual(settled['tenants'][0]['forms'][0]['submissions'], 8)


    def test_a_night_that_leaves_rows_behind_keeps_the_check(self):
        t, f = self.one_tenant()
        full_submission(t, f, ref=ago(40), marker='A')
        self.anonymizer('run', expect=0)
        t.query("UPDATE anonymizer.checked SET checked_until = checked_until - interval '10 days'")
        before = t.one('SELECT checked_until FROM anonymizer.checked WHERE table_name = %s', (f.table,))[0]
        held = full_submission(t, f, ref=ago(40), marker='H')
        other = t.cluster.connect(t.dbname, autocommit=False)
        try:
            with other.cursor() as cur:
                cur.execute(f'SELECT id FROM {wcs.qi(f.table)} WHERE id = %s FOR UPDATE', (held,))
            self.anonymizer('run', expect=0)
        finally:
            other.rollback()
            other.close()
        self.assertEqual(t.one('SELECT checked_until FROM anonymizer.checked WHERE table_name = %s', (f.table,))[0],
                         before, 'a row left locked: the check stays where it was')

    # -- retention overrides -------------------------------------------------------

    def test_per_tenant_and_per_form_retention(self):
        t1 = self.tenant()
        t2 = self.tenant()
        for t in (t1, t2):
            t.add_form(standard_form(1, 'forma', 'Form A'))
            t.add_form(standard_form(2, 'formb', 'Form B'))
        ages = (20, 45, 70)
        ids = {}
        for t in (t1, t2):
            for f in t.forms:
                for a in ages:
                    ids[(t.name, f.slug, a)] = full_submission(t, f, ref=ago(a), marker=f'{f.slug}{a}')
        self.write_config([(t1.name, t1.conninfo, 'retention = "10 days";'), (t2.name, t2.conninfo)],
                          extra='retention = "30 days";',
                          forms=[f'{{ tenant = "*"; slug = "formb"; retention = "60 days"; }}'])
        self.anonymizer('run', expect=0)
        expected = {
            (t1.name, 'forma'): {20, 45, 70},   # tenant: 10 days
            (t1.name, 'formb'): {70},           # form beats tenant: 60 days
            (t2.name, 'forma'): {45, 70},       # global: 30 days
            (t2.name, 'formb'): {70},
        }
        for t in (t1, t2):
            for f in t.forms:
                done = {a for a in ages if t.row(f, ids[(t.name, f.slug, a)])['anonymised'] is not None}
                self.assertEqual(done, expected[(t.name, f.slug)], (t.name, f.slug))
        sources = {e['slug']: (e['retention_days'], e['retention_source']) for e in t1.runs()[-1][2]}
        self.assertEqual(sources, {'forma': (10, 'tenant'), 'formb': (60, 'form')})

    # -- idempotence -----------------------------------------------------------

    def test_second_run_changes_nothing(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        with t.conn.cursor() as cur:
            wcs.populate(cur, f, 1500)
        self.write_config([t], extra='retention = "30 days"; batch_size = 100;')
        first = self.anonymizer('run', expect=0)
        self.assertRegex(first.stderr, r'[1-9][0-9]* anonymised')
        sums = t.checksums()
        second = self.anonymizer('run', expect=0)
        self.assertEqual(t.checksums(), sums)
        self.assertIn('0 anonymised, 0 completed, 0 drafts deleted, 0 locked', second.stderr)
        entry = t.runs()[-1][2][0]
        self.assertEqual(entry['anonymised'] + entry['completed'] + entry['drafts_deleted'], 0)

    # -- locks -------------------------------------------------------------------------

    def test_row_locked_by_another_session_is_skipped_then_done(self):
        t, f = self.one_tenant()
        a = full_submission(t, f, ref=ago(40), marker='A')
        b = full_submission(t, f, ref=ago(40), marker='B')
        other = t.cluster.connect(t.dbname, autocommit=False)
        try:
            with other.cursor() as cur:
                cur.execute(f'SELECT id FROM {wcs.qi(f.table)} WHERE id = %s FOR UPDATE', (b,))
            res = self.anonymizer('run', expect=0)
            self.assertIsNotNone(t.row(f, a)['anonymised'])
            self.assertIsNone(t.row(f, b)['anonymised'])
            self.assertIn('1 locked', res.stderr)
            self.assertEqual(t.runs()[-1][2][0]['locked'], 1)
        finally:
            other.rollback()
            other.close()
        self.anonymizer('run', expect=0)
        self.assertIsNotNone(t.row(f, b)['anonymised'])

    def test_two_runs_at_once(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        with t.conn.cursor() as cur:
            wcs.populate(cur, f, 20000, max_age_days=400)
        self.write_config([t], extra='retention = "30 days"; batch_size = 10; vacuum = false;')
        first = self.start_anonymizer('run')
        try:
            started = self.wait_until(lambda: t.one("SELECT to_regclass('anonymizer.runs') IS NOT NULL")[0] and
                                      t.one("SELECT count(*) FROM anonymizer.runs WHERE outcome = 'running'")[0] > 0,
                                      timeout=60)
            self.assertTrue(started, 'the first run did not start')
            # done by another run: not an error (two hosts are one platform)
            second = self.anonymizer('run', expect=0)
            self.assertIn('holds this tenant', second.stderr)
        finally:
            out, err = first.communicate(timeout=300)
        self.assert_no_sanitizer_report(err)
        self.assertEqual(first.returncode, 0, err)
        self.assertEqual([r[1] for r in t.runs()], ['ok'])

    def test_lock_held_changes_nothing(self):
        t, f = self.one_tenant()
        full_submission(t, f, ref=ago(40))
        sums = t.checksums()
        holder = t.cluster.connect(t.dbname)
        try:
            holder.cursor().execute('SELECT pg_advisory_lock(1634627438, 1)')
            self.anonymizer('run', expect=0)
            self.assertEqual(t.checksums(), sums)
        finally:
            holder.close()

    def test_batch_past_lock_timeout_is_left_and_counted(self):
        t, f = self.one_tenant(extra='retention = "30 days"; batch_size = 2; lock_timeout = "300ms";')
        ids = [full_submission(t, f, ref=ago(40), marker=str(i)) for i in range(6)]
        holder = t.cluster.connect(t.dbname, autocommit=False)
        try:
            # the w.c.s. trigger of the batch holding ids[2] and ids[3] waits for this row, past lock_timeout
            holder.cursor().execute('SELECT 1 FROM wcs_all_forms WHERE formdef_id = %s AND id = %s FOR UPDATE',
                                    (f.id, ids[3]))
            res = self.anonymizer('run', expect=0)
        finally:
            holder.rollback()
            holder.close()
        done = [t.row(f, i)['anonymised'] is not None for i in ids]
        self.assertEqual(done, [True, True, False, False, True, True])
        self.assertRegex(res.stderr, rf'form demande-rdv: ids {ids[1]} to {ids[3]} left for the next run: '
                                     r'lock not available \(SQLSTATE 55P03')
        self.assertIn('4 anonymised, 0 completed, 0 drafts deleted, 2 locked', res.stderr)
        self.assertEqual(t.runs()[-1][2][0]['locked'], 2)
        # nothing half done in the range that was left
        self.assertIsNotNone(t.row(f, ids[2])['user_id'])
        self.assertIsNotNone(t.one('SELECT 1 FROM tracking_codes WHERE formdata_id = %s', (str(ids[2]),)))
        self.anonymizer('run', expect=0)
        self.assertTrue(all(t.row(f, i)['anonymised'] for i in ids))

    def test_batch_in_a_deadlock_is_left_and_counted(self):
        import threading
        t, f = self.one_tenant(extra='retention = "30 days"; batch_size = 10; lock_timeout = "1min";')
        ids = [full_submission(t, f, ref=ago(40), marker=str(i)) for i in range(3)]
        victim = ids[1]
        # the batch's backend detects the deadlock (it looks once, deadlock_timeout after it starts
        # waiting: 5 s, time enough to form the cycle); ours waits much longer
        admin = t.cluster.connect('postgres')
        admin.cursor().execute(f"ALTER DATABASE {wcs.qi(t.dbname)} SET deadlock_timeout = '5s'")
        admin.close()
        holder = t.cluster.connect(t.dbname, autocommit=False)
        cur = holder.cursor()
        cur.execute("SET deadlock_timeout = '60s'")
        cur.execute('SELECT 1 FROM wcs_all_forms WHERE formdef_id = %s AND id = %s FOR UPDATE', (f.id, victim))
        proc = self.start_anonymizer('run')
        try:
            # the first try, without locks taken first, gives up after a moment; the
            # batch done again the careful way (its rows locked first) waits
            self.assertTrue(self.wait_until(lambda: t.anonymizer_waiting('300ms'), timeout=60),
                            'the batch never waited')
            # now wait for the submission row the batch has locked: a cycle
            blocked = threading.Thread(target=cur.execute,
                                       args=(f'SELECT 1 FROM {wcs.qi(f.table)} WHERE id = %s FOR UPDATE', (victim,)))
            blocked.start()
            blocked.join(timeout=60)
            self.assertFalse(blocked.is_alive(), 'the deadlock was not resolved')
        finally:
            holder.rollback()
            holder.close()
            out, err = proc.communicate(timeout=120)
        self.assert_no_sanitizer_report(err)
        self.assertEqual(proc.returncode, 0, err)
        self.assertRegex(err, r'left for the next run: deadlock detected \(SQLSTATE 40P01')
        self.assertIn('0 anonymised, 0 completed, 0 drafts deleted, 3 locked', err)
        self.assertEqual(t.runs()[-1][2][0]['locked'], 3)
        self.assertTrue(all(t.row(f, i)['anonymised'] is None for i in ids))
        self.anonymizer('run', expect=0)
        self.assertTrue(all(t.row(f, i)['anonymised'] for i in ids))

    def test_form_table_without_formdefs_row(self):
        t = self.tenant()
        f = t.add_form(standard_form(3, 'vieux-formulaire', 'Vieux'))
        fid = full_submission(t, f, ref=ago(40), marker='orphan')
        t.query('DELETE FROM formdefs WHERE id = %s', (f.id,))
        self.write_config([t], extra='retention = "30 days";')
        res = self.anonymizer('run', expect=0)
        self.assertIn(f'table {f.table} has no formdefs row; processing it as form "vieux-formulaire"', res.stderr)
        row = t.row(f, fid)
        self.assertIsNotNone(row['anonymised'])
        # the definition is found under the slug taken from the table name: kept fields stay
        self.assertEqual(row['f2'], 'rdv')
        self.assertIsNone(row['f1'])
        self.assertEqual(t.runs()[-1][2][0]['slug'], 'vieux-formulaire')

    # -- kill -9 -------------------------------------------------------------------

    def test_sigkill_mid_run_then_rerun(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        with t.conn.cursor() as cur:
            wcs.populate(cur, f, 30000, max_age_days=400)
        self.write_config([t], extra='retention = "30 days"; batch_size = 20;')
        proc = self.start_anonymizer('run')
        table = wcs.qi(f.table)
        try:
            self.assertTrue(self.wait_until(
                lambda: t.one(f"SELECT count(*) FROM {table} WHERE anonymised > now() - interval '1 hour'")[0] > 200,
                timeout=120), 'no batch committed')
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        done = t.one(f"SELECT count(*) FROM {table} WHERE anonymised > now() - interval '1 hour'")[0]
        still_due = t.one(f"""SELECT count(*) FROM {table} WHERE anonymised IS NULL AND status IN ('wf-done', 'wf-rejected')
                              AND last_update_time < now() - interval '30 days'""")[0]
        self.assertGreater(still_due, 0, 'the run finished before the kill: nothing was tested')
        self.assert_consistent(t, f)
        self.assertEqual([r[1] for r in t.runs()], ['running'])

        self.anonymizer('run', expect=0)
        self.assert_consistent(t, f)
        left = t.one(f"""SELECT count(*) FROM {table} WHERE status IN ('wf-done', 'wf-rejected')
                         AND last_update_time < now() - interval '30 days'
                         AND (anonymised IS NULL OR user_id IS NOT NULL OR f1 IS NOT NULL OR prefilling_data IS NOT NULL)""")[0]
        self.assertEqual(left, 0)
        self.assertEqual(t.one(f"SELECT count(*) FROM {table} WHERE status = 'draft'"
                               f" AND last_update_time < now() - interval '30 days'")[0], 0)
        self.assertEqual([r[1] for r in t.runs()], ['crashed', 'ok'])
        self.assertGreater(done, 0)
        # the audit of the killed run accounts for every batch it committed (issue 23: it had none)
        crashed = t.runs()[0][2]
        self.assertEqual(sum(e['anonymised'] for e in crashed), done, crashed)
        self.assertEqual([e['outcome'] for e in crashed], ['crashed'])
        self.assertEqual(t.one('SELECT count(*) FROM anonymizer.batches')[0], 0, 'the counters outlived their runs')

    def assert_consistent(self, t, f):
        """Every submission is either untouched or completely anonymised, everywhere."""
        table, evo = wcs.qi(f.table), wcs.qi(f.evolutions)
        half = t.one(f"""SELECT count(*) FROM {table} m WHERE m.anonymised > now() - interval '1 hour'
                         AND (m.user_id IS NOT NULL OR m.f1 IS NOT NULL OR m.tracking_code IS NOT NULL
                              OR m.prefilling_data IS NOT NULL OR m.fts IS NOT NULL
                              OR EXISTS (SELECT 1 FROM {evo} e WHERE e.formdata_id = m.id AND e.comment IS NOT NULL)
                              OR EXISTS (SELECT 1 FROM wcs_all_forms w WHERE w.formdef_id = {f.id} AND w.id = m.id
                                         AND (w.user_id IS NOT NULL OR w.anonymised IS DISTINCT FROM m.anonymised)))""")[0]
        self.assertEqual(half, 0, 'a submission is half anonymised')
        untouched_broken = t.one(f"""SELECT count(*) FROM {table} m WHERE m.anonymised IS NULL
                                     AND (m.user_id IS NULL OR m.prefilling_data IS NULL)""")[0]
        self.assertEqual(untouched_broken, 0, 'a submission lost data without being anonymised')
        orphan_codes = t.one(f"""SELECT count(*) FROM tracking_codes c WHERE c.formdef_id = '{f.id}'
                                 AND NOT EXISTS (SELECT 1 FROM {table} m WHERE m.tracking_code = c.id)""")[0]
        self.assertEqual(orphan_codes, 0)
        mismatch = t.one(f"""SELECT count(*) FROM wcs_all_forms w WHERE w.formdef_id = {f.id}
                             AND NOT EXISTS (SELECT 1 FROM {table} m WHERE m.id = w.id)""")[0]
        self.assertEqual(mismatch, 0)

    # -- names that need quoting ------------------------------------------------

    def test_table_and_slug_that_need_quoting(self):
        t = self.tenant(name="ville-d'été.example.org", dbname=harness.unique("wcs ville-d'été \"x\""))
        slug = 'été-"spécial"'
        f = t.add_form(standard_form(7, slug, "L'été \"spécial\"",
                                     table='formdata_7_Été "spécial"; DROP TABLE users; --'))
        fid = full_submission(t, f, ref=ago(40))
        self.write_config([t], extra='retention = "30 days";',
                          forms=[f'{{ tenant = "*"; slug = "{harness.cfgstr(slug)}"; keep = ["nom"]; }}'])
        res = self.anonymizer('run', expect=0)
        row = t.row(f, fid)
        self.assertIsNotNone(row['anonymised'])
        self.assertIsNotNone(row['f1'], 'the per-form keep applies to the quoted slug')
        self.assertIsNone(row['f3'])
        self.assertIsNotNone(t.one("SELECT to_regclass('public.users')")[0])
        self.assertIn('1 anonymised', res.stderr)

    # -- tenants that fail ---------------------------------------------------------

    def test_unreachable_tenant_others_done(self):
        t, f = self.one_tenant()
        fid = full_submission(t, f, ref=ago(40))
        self.write_config([('down.example.org', 'host=/nonexistent-socket-dir dbname=x password=Sup3rS3cret'), t],
                          extra='retention = "30 days";')
        res = self.anonymizer('run', expect=1)
        self.assertIsNotNone(t.row(f, fid)['anonymised'])
        self.assertIn('down.example.org: cannot connect', res.stderr)
        self.assertNotIn('Sup3rS3cret', res.stderr + res.stdout)

    def test_no_tenant_reachable(self):
        self.write_config([('a', 'host=/nonexistent-a dbname=x'), ('b', 'host=/nonexistent-b dbname=x')])
        self.anonymizer('run', expect=69)

    def test_tenant_limit(self):
        t1, f1 = self.one_tenant()
        t2 = self.tenant()
        f2 = t2.add_form(standard_form())
        a = full_submission(t1, f1, ref=ago(40))
        b = full_submission(t2, f2, ref=ago(40))
        self.write_config([t1, t2], extra='retention = "30 days";')
        self.anonymizer('-t', t2.name, 'run', expect=0)
        self.assertIsNone(t1.row(f1, a)['anonymised'])
        self.assertIsNotNone(t2.row(f2, b)['anonymised'])

    # -- without a definition ----------------------------------------------------

    def test_form_without_definition(self):
        t = self.tenant()
        f = t.add_form(standard_form(), definition=False)
        done = full_submission(t, f, ref=ago(40), status='wf-done')
        open_ = full_submission(t, f, ref=ago(40), status='wf-new')
        self.write_config([t], extra='retention = "30 days";')
        res = self.anonymizer('run', expect=0)
        row = t.row(f, done)
        self.assertIsNotNone(row['anonymised'])
        # privacy by default: every field column blanked, kept ones included
        for c in KEPT_COLUMNS + BLANKED_COLUMNS:
            self.assertIsNone(row[c], c)
        # final status read from wcs_all_forms.is_at_endpoint
        self.assertIsNone(t.row(f, open_)['anonymised'])
        self.assertIn('no definition', res.stderr)

    # -- batches and vacuum ----------------------------------------------------

    def test_small_batches_and_verbose(self):
        t, f = self.one_tenant(extra='retention = "30 days"; batch_size = 3;')
        ids = [full_submission(t, f, ref=ago(40), marker=str(i)) for i in range(10)]
        res = self.anonymizer('-v', 'run', expect=0)
        self.assertTrue(all(t.row(f, i)['anonymised'] for i in ids))
        self.assertEqual(res.stderr.count(': anonymise: ids '), 4)
        self.assertEqual(len({t.row(f, i)['anonymised'] for i in ids}), 1, 'one run, one timestamp')

    def test_quiet(self):
        t, f = self.one_tenant()
        full_submission(t, f, ref=ago(40))
        res = self.anonymizer('-q', 'run', expect=0)
        # the tests' role is a superuser: that warning is what -q must still show, and all it shows
        self.assertIn('a superuser', res.stderr)
        self.assertEqual(harness.without_superuser_warning(res.stderr), '')

    def test_vacuum_setting(self):
        for setting, expect_vacuum in (('true', True), ('false', False)):
            with self.subTest(vacuum=setting):
                t, f = self.one_tenant(extra=f'retention = "30 days"; vacuum = {setting};')
                full_submission(t, f, ref=ago(40))
                self.anonymizer('run', expect=0)
                last = t.one('SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = %s', (f.table,))[0]
                self.assertEqual(last is not None, expect_vacuum)

    def test_bulk_fixture_matches_the_trigger(self):
        """The benchmark's bulk load fills wcs_all_forms as the w.c.s. trigger does."""
        now = "'2026-06-01 00:00:00+00'::timestamptz"
        rows = []
        for bulk in (False, True):
            t = self.tenant()
            f = t.add_form(standard_form(), definition=False)
            with t.conn.cursor() as cur:
                wcs.populate(cur, f, 300, now=now, bulk=bulk)
            rows.append(t.query('SELECT w::text FROM wcs_all_forms w ORDER BY formdef_id, id'))
        self.assertEqual(len(rows[0]), 300)
        self.assertEqual(rows[0], rows[1])

    def test_audit_row(self):
        t, f = self.one_tenant()
        full_submission(t, f, ref=ago(40))
        self.anonymizer('run', expect=0)
        run_id, outcome, forms_, error, started, finished, sha, version, host = t.runs()[-1]
        # of the settings with their secrets removed (test_hardening tests what it covers)
        self.assertRegex(sha, r'^[0-9a-f]{64}$')
        self.assertEqual(outcome, 'ok')
        self.assertIsNone(error)
        self.assertLess(started, finished)
        self.assertEqual(version, subprocess.run([harness.BINARY, '--version'], capture_output=True,
                                                 text=True).stdout.split()[1])
        self.assertEqual(host, os.uname().nodename)
        entry = forms_[0]
        self.assertEqual(entry['slug'], 'demande-rdv')
        self.assertEqual(entry['table'], f.table)
        self.assertEqual(entry['retention_days'], 30)
        self.assertEqual(entry['anonymised'], 1)
        self.assertTrue(entry['cutoff'])


if __name__ == '__main__':
    harness.main()
