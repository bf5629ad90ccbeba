"""Work units within a tenant: --jobs N spreads one tenant's forms, and the
id ranges of a large form, over helper processes; the same result as
--jobs 1, a SIGKILL that the next run completes, and the tenant lock still
keeps a second run off."""

import os
import signal
import time

import harness
import wcs
from forms import standard_form

AUDIT_KEYS = ('anonymised', 'completed', 'drafts_deleted', 'drafts_anonymised', 'history_cleared',
              'tracking_codes_deleted', 'locked', 'search_tokens_deleted')


def normalised_state(t):
    """Every w.c.s. table's rows, as JSON, with the time a run stamps them with (anonymised) left out."""
    out = {}
    for (table,) in t.query("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                            " WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1"):
        out[table] = t.one(f"SELECT md5(coalesce(string_agg(j::text, chr(10) ORDER BY j::text), ''))"
                           f" FROM (SELECT CASE WHEN to_jsonb(x) ? 'anonymised' THEN (to_jsonb(x) - 'anonymised')"
                           f" || jsonb_build_object('is_anonymised', to_jsonb(x)->'anonymised' <> 'null')"
                           f" ELSE to_jsonb(x) END AS j FROM {wcs.qi(table)} x) y")[0]
    return out


def audit_totals(t):
    totals = dict.fromkeys(AUDIT_KEYS, 0)
    for (forms,) in t.query("SELECT forms FROM anonymizer.runs WHERE outcome = 'ok'"):
        for entry in forms:
            for k in AUDIT_KEYS:
                totals[k] += entry.get(k) or 0
    return totals


class ParallelTests(harness.TestCase):

    def big_tenant(self, name=None, n=6000):
        """One large form and two small ones, with nothing near the cutoff (the two runs compared happen
        seconds apart: a submission within those seconds of its cutoff would be due in one and not the other)."""
        t = self.tenant(name=name)
        forms = [t.add_form(standard_form(1, 'grande', 'Grande')), t.add_form(standard_form(2, 'petite', 'Petite')),
                 t.add_form(standard_form(3, 'autre', 'Autre'))]
        with t.conn.cursor() as cur:
            for f, count in zip(forms, (n, n // 20, n // 20)):
                wcs.populate(cur, f, count, max_age_days=200)
                # away from the 30-day cutoff: young ones a day old, old ones more than 31 days
                cur.execute(f"""UPDATE {wcs.qi(f.table)} SET last_update_time = now() - interval '1 day',
                                receipt_time = LEAST(receipt_time, now() - interval '1 day')
                                WHERE last_update_time > now() - interval '31 days'""")
                cur.execute(f"""UPDATE {wcs.qi(f.table)} SET statistics_data = statistics_data
                                || jsonb_build_object('done-datetime', to_jsonb(last_update_time))
                                WHERE statistics_data ? 'done-datetime'""")
        return t, forms

    def clone(self, t, name):
        """A second tenant, an exact copy (CREATE DATABASE ... TEMPLATE)."""
        db = harness.unique('wcs')
        t.conn.close()
        admin = t.cluster.connect('postgres')
        admin.cursor().execute(f'CREATE DATABASE {wcs.qi(db)} TEMPLATE {wcs.qi(t.dbname)}')
        admin.close()
        t.conn = t.cluster.connect(t.dbname)
        other = harness.Tenant(self, name, dbname=db, create=False)
        return other

    def twins(self, extra):
        """Two identical tenants; the first one run with --jobs 1 (the reference), the configuration left on
        the second."""
        a, forms = self.big_tenant()
        for f in forms:
            f.write_definition(self.schemas, a.name)
        b = self.clone(a, harness.unique('clone'))
        for f in forms:
            f.write_definition(self.schemas, b.name)
        self.write_config([a], extra=extra)
        self.anonymizer('--jobs', '1', 'run', expect=0)
        self.write_config([b], extra=extra)
        return a, b, forms

    def test_jobs_2_on_one_tenant_is_jobs_1(self):
        a, b, forms = self.twins('retention = "30 days"; batch_size = 100; vacuum = false;')
        res = self.anonymizer('-v', '--jobs', '2', 'run', expect=0)
        # the large form was cut into units, some of them done by a helper process
        self.assertIn('a helper process takes units too', res.stderr)
        self.assertEqual(normalised_state(b), normalised_state(a))
        self.assertEqual(audit_totals(b), audit_totals(a))
        self.assertGreater(audit_totals(a)['anonymised'], 1000)
        # one audit row for the tenant, one entry per form
        self.assertEqual(b.one("SELECT count(*), sum(jsonb_array_length(forms)) FROM anonymizer.runs"), (1, 3))

    def test_sigkill_during_a_parallel_run_then_the_next_run_completes(self):
        a, b, forms = self.twins('retention = "30 days"; batch_size = 50; vacuum = false; lock_timeout = "1min";')
        # a w.c.s. request holds the wcs_all_forms row of a due submission in the middle of the large form:
        # the run cannot finish, whatever the speed of the machine, while the other units go on
        fid = b.one(f"SELECT id FROM {wcs.qi(forms[0].table)} WHERE status = 'wf-done' AND anonymised IS NULL"
                    f" AND last_update_time < now() - interval '40 days' ORDER BY id"
                    f" OFFSET (SELECT count(*) / 2 FROM {wcs.qi(forms[0].table)} WHERE status = 'wf-done'"
                    f" AND last_update_time < now() - interval '40 days') LIMIT 1")[0]
        holder = b.cluster.connect(b.dbname, autocommit=False)
        try:
            holder.cursor().execute('SELECT 1 FROM wcs_all_forms WHERE formdef_id = %s AND id = %s FOR UPDATE',
                                    (forms[0].id, fid))
            proc = self.start_anonymizer('-v', '--jobs', '2', 'run')
            # kill everything once a batch waits (its rows locked first) and others have committed
            self.assertTrue(self.wait_until(lambda: b.anonymizer_waiting('1s'), timeout=60))
            self.assertTrue(self.wait_until(lambda: b.one(f"SELECT count(*) FROM {wcs.qi(forms[0].table)}"
                                                          f" WHERE anonymised IS NOT NULL")[0] > 0, timeout=60))
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            # the helpers die with their coordinator, which dies with the parent; their sessions end, the
            # one waiting for the row too (client_connection_check_interval)
            self.assertTrue(self.wait_until(lambda: b.one("SELECT count(*) FROM pg_stat_activity WHERE datname ="
                                                          " current_database() AND application_name = 'anonymizer'")[0]
                                            == 0, timeout=30))
        finally:
            holder.rollback()
            holder.close()
        # killed half way: some of the large form done, not all
        self.assertNotEqual(normalised_state(b), normalised_state(a))
        done = sum(b.one(f"SELECT count(*) FROM {wcs.qi(f.table)} WHERE anonymised > now() - interval '1 hour'")[0]
                   for f in forms)
        res = self.anonymizer('--jobs', '2', 'run', expect=0)
        self.assertIn('crashed', [r[1] for r in b.runs()])
        # the killed run's audit accounts for every batch its helpers committed
        crashed = [r for r in b.runs() if r[1] == 'crashed'][0][2]
        self.assertEqual(sum(e['anonymised'] for e in crashed), done, crashed)
        self.assertEqual(normalised_state(b), normalised_state(a))
        self.assertIn('1 of 1 tenants done', res.stderr)

    def test_the_lock_keeps_a_second_run_off(self):
        a, forms = self.big_tenant()
        for f in forms:
            f.write_definition(self.schemas, a.name)
        self.write_config([a], extra='retention = "30 days"; batch_size = 20; vacuum = false; lock_timeout = "1min";')
        holder = a.cluster.connect(a.dbname, autocommit=False)
        try:
            # a w.c.s. request holds the wcs_all_forms row of a due submission of the large form: the run waits
            # on it (its trigger), helpers at work
            fid = a.one(f"SELECT min(id) FROM {wcs.qi(forms[0].table)} WHERE status = 'wf-done'"
                        f" AND last_update_time < now() - interval '40 days' AND anonymised IS NULL")[0]
            holder.cursor().execute('SELECT 1 FROM wcs_all_forms WHERE formdef_id = %s AND id = %s FOR UPDATE',
                                    (forms[0].id, fid))
            proc = self.start_anonymizer('--jobs', '2', 'run')
            self.assertTrue(self.wait_until(a.anonymizer_waiting, timeout=60))
            second = self.anonymizer('--jobs', '2', 'run', expect=0)
            self.assertIn('another anonymizer run holds this tenant\'s lock', second.stderr)
        finally:
            holder.rollback()
            holder.close()
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 0, err)

    def test_report_jobs_4_is_jobs_1(self):
        """report --jobs N reads tenants side by side in threads; the report is the same, in the same order,
        an unreachable tenant included."""
        tenants = []
        for k in range(4):
            t = self.tenant()
            f = t.add_form(standard_form(1, 'demande', 'Demande'))
            with t.conn.cursor() as cur:
                wcs.populate(cur, f, 200 * (k + 1), max_age_days=200)
            f.write_definition(self.schemas, t.name)
            tenants.append(t)
        tenants.insert(2, ('down.example.org', 'host=/nonexistent dbname=x'))
        self.write_config(tenants, extra='retention = "30 days";')
        env = {'SOURCE_DATE_EPOCH': '2095891200'}
        at = ('--at', '2036-06-01T00:00:00Z')
        one = self.anonymizer('--jobs', '1', 'report', '--format', 'json', *at, env=env, expect=1)
        four = self.anonymizer('--jobs', '4', 'report', '--format', 'json', *at, env=env, expect=1)
        self.assertEqual(four.stdout, one.stdout)
        self.assertIn('down.example.org', four.stdout)
        self.assertGreater(four.stdout.count('"due"'), 3)
        text = self.anonymizer('--jobs', '4', 'run', '--dry-run', '--at', '2036-06-01T00:00:00Z', env=env, expect=1)
        self.assertEqual(text.stdout, self.anonymizer('report', *at, env=env, expect=1).stdout)
        # nothing was written: not even the audit schema
        for t in tenants:
            if not isinstance(t, tuple):
                self.assertIsNone(t.one("SELECT to_regclass('anonymizer.runs')")[0])


if __name__ == '__main__':
    harness.main()
