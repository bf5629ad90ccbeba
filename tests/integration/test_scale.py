"""Platform scale: discovered tenants, parallel workers, the time budget,
SIGTERM, progress."""

import os
import pty
import re
import select
import signal
import subprocess
import time

import harness
import wcs
from forms import full_submission, standard_form

AGES = (10, 20, 45, 50, 100)   # days, away from the 30-day cutoff


def ago(days, hours=0):
    return f"now() - interval '{days} days' - interval '{hours} hours'"


class ScaleTests(harness.TestCase):

    # -- discovery -------------------------------------------------------------------

    def discovery_cluster(self):
        c = harness.cluster()
        prefix = harness.unique('wcs').lower()
        names = {k: f'{prefix}_{k}' for k in ('a', 'b', 'c', 'tpl', 'closed', 'skipme')}
        for n in names.values():
            c.createdb(n)
            conn = c.connect(n)
            with conn.cursor() as cur:
                wcs.create_tenant(cur)
                f = standard_form()
                wcs.create_form(cur, f)
                for d in AGES:
                    wcs.insert_submission(cur, f, status='wf-done', receipt_time=ago(d, 2), last_update_time=ago(d),
                                          values={'1': 'Nom', '2': 'x'}, user_id='7')
            conn.close()
            self.addCleanup(c.dropdb, n)
        admin = c.connect()
        with admin.cursor() as cur:
            cur.execute(f"UPDATE pg_database SET datistemplate = true WHERE datname = '{names['tpl']}'")
            cur.execute(f"ALTER DATABASE {names['closed']} ALLOW_CONNECTIONS false")
        admin.close()
        self.addCleanup(self._untemplate, c, names)
        return c, prefix, names

    def _untemplate(self, c, names):
        admin = c.connect()
        with admin.cursor() as cur:
            cur.execute(f"UPDATE pg_database SET datistemplate = false WHERE datname = '{names['tpl']}'")
            cur.execute(f"ALTER DATABASE {names['closed']} ALLOW_CONNECTIONS true")
        admin.close()

    def anonymised(self, c, db, form=None):
        conn = c.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(f'SELECT count(*) FROM {wcs.qi((form or standard_form()).table)} WHERE anonymised IS NOT NULL')
                return cur.fetchone()[0]
        finally:
            conn.close()

    def test_discovery(self):
        c, prefix, names = self.discovery_cluster()
        server = c.conninfo('postgres')
        # an explicit tenant named like a discovered database wins: its own retention applies
        self.write_config([(names['b'], c.conninfo(names['b']), 'retention = "15 days";')],
                          extra=f'retention = "30 days"; discover = ( {{ conninfo = "{harness.cfgstr(server)}";'
                                f' databases = "{prefix}\\\\_%"; exclude = ["{names["skipme"]}"]; }} );')
        res = self.anonymizer('check', expect=0)
        listed = re.findall(r'^tenant (\S+): reachable', res.stdout, re.M)
        self.assertEqual(sorted(listed), sorted([names['a'], names['b'], names['c']]))
        self.assertIn(f'tenant {names["a"]}: reachable', res.stdout)
        self.assertRegex(res.stdout, rf'tenant {names["a"]}: .*discovered by discover entry 1')
        self.assertRegex(res.stdout, rf'tenant {names["b"]}: .*listed')
        self.anonymizer('run', expect=0)
        self.assertEqual(self.anonymised(c, names['a']), 3)       # 45, 50, 100 days past 30
        self.assertEqual(self.anonymised(c, names['b']), 4)       # 20 too, past 15
        self.assertEqual(self.anonymised(c, names['c']), 3)
        for k in ('tpl', 'skipme'):
            self._untemplate(c, names)
            self.assertEqual(self.anonymised(c, names[k]), 0, k)
        # a forms entry naming a tenant neither listed nor discovered is a configuration error
        self.write_config([], extra=f'discover = ( {{ conninfo = "{harness.cfgstr(server)}";'
                                    f' databases = "{prefix}\\_%"; }} );',
                          forms=['{ tenant = "nowhere"; slug = "demande-rdv"; }'])
        res = self.anonymizer('check', expect=78)
        self.assertIn('unknown tenant "nowhere" (neither listed nor discovered)', res.stderr)
        self.write_config([], extra=f'discover = ( {{ conninfo = "{harness.cfgstr(server)}";'
                                    f' databases = "{prefix}\\_%"; }} );',
                          forms=[f'{{ tenant = "{names["a"]}"; slug = "demande-rdv"; retention = "10 days"; }}'])
        self.assertIn('retention 10 days (form)', self.anonymizer('-t', names['a'], 'check', expect=0).stdout)
        # definitions are looked up under the database name
        form = standard_form()
        form.write_definition(self.schemas, names['c'])
        res = self.anonymizer('-t', names['c'], 'check', expect=0)
        self.assertIn(f'{names["c"]}/demande-rdv.json', res.stdout)

    def test_discovery_respects_connect_privilege(self):
        c, prefix, names = self.discovery_cluster()
        role = harness.unique('disc')
        admin = c.connect()
        with admin.cursor() as cur:
            cur.execute(f'CREATE ROLE {role} LOGIN')
            cur.execute(f'REVOKE CONNECT ON DATABASE {names["c"]} FROM PUBLIC')
        admin.close()
        for k in ('a', 'b', 'c', 'skipme'):
            conn = c.connect(names[k])
            conn.cursor().execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}')
            conn.close()
        self.write_config([], extra=f'discover = ( {{ conninfo = "{harness.cfgstr(c.conninfo("postgres", user=role))}";'
                                    f' databases = "{prefix}\\\\_%"; }} );')
        # a SELECT-only role: check says what a run would lack (exit 1), tenant by tenant
        res = self.anonymizer('check', expect=1)
        listed = sorted(re.findall(r'^tenant (\S+): reachable', res.stdout, re.M))
        self.assertEqual(listed, sorted([names['a'], names['b'], names['skipme']]))
        self.assertEqual(res.stdout.count(f'privileges: role "{role}" lacks UPDATE on table public."formdata_'), 3)

    def test_discovery_server_down(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(40))
        self.write_config([t], extra='retention = "30 days"; discover = ( { conninfo = "host=/nonexistent dbname=x";'
                                     ' databases = "wcs_%"; } );')
        res = self.anonymizer('run', expect=1)
        self.assertIn('discover entry 1: cannot connect', res.stderr)
        self.assertEqual(self.anonymised(t.cluster, t.dbname), 1)

    # -- parallel ------------------------------------------------------------------------

    def fleet(self, base, n=4):
        """n tenants with the same data (times from base, an absolute instant)."""
        tenants = []
        for i in range(n):
            t = self.tenant(name=f'fleet{i}-{os.getpid()}-{harness.unique("x")}')
            forms = [t.add_form(standard_form(1, 'demande-rdv', 'RDV')),
                     t.add_form(standard_form(2, 'inscription', 'Inscription'))]
            for f in forms:
                for d in AGES:
                    for status in ('wf-done', 'wf-new', 'draft'):
                        full_submission(t, f, ref=f"'{base}'::timestamptz - interval '{d} days'", status=status,
                                        marker=f'{i}{d}{status}')
            tenants.append(t)
        return tenants

    def normalized_state(self, t):
        """Everything but what differs between two runs by nature (uuids, run timestamps)."""
        out = {}
        for f in t.forms:
            out[f.table] = t.query(
                f"SELECT md5(string_agg((to_jsonb(m) - 'uuid' - 'anonymised' - 'id_display' - 'tracking_code')::text"
                f" || (m.anonymised IS NULL)::text || (m.tracking_code IS NULL)::text, ',' ORDER BY m.id))"
                f" FROM {wcs.qi(f.table)} m")[0][0]
            out[f.evolutions] = t.query(f'SELECT md5(string_agg(e::text, \',\' ORDER BY e.id))'
                                        f' FROM {wcs.qi(f.evolutions)} e')[0][0]
        out['tracking_codes'] = t.query("SELECT count(*) FROM tracking_codes")[0][0]
        out['wcs_all_forms'] = t.query("SELECT md5(string_agg((to_jsonb(w) - 'anonymised' - 'id_display')::text,"
                                       " ',' ORDER BY formdef_id, id)) FROM wcs_all_forms w")[0][0]
        audit = t.query("SELECT outcome, forms FROM anonymizer.runs ORDER BY started_at")
        # entries come in the order the forms finished: with --jobs, a helper's form may finish first
        out['audit'] = [(o, sorted(({k: v for k, v in e.items() if k not in ('seconds', 'cutoff', 'definition')}
                                    for e in forms), key=lambda e: e['table'])) for o, forms in audit]
        return out

    def test_jobs_two_same_as_one(self):
        base = harness.cluster().connect().cursor()
        base.execute("SELECT date_trunc('hour', now())::text")
        base = base.fetchone()[0]
        serial, parallel = self.fleet(base), self.fleet(base)
        cfg1 = self.write_config(serial, extra='retention = "30 days";', path=os.path.join(self.dir, 'one.conf'))
        cfg2 = self.write_config(parallel, extra='retention = "30 days"; jobs = 1;',
                                 path=os.path.join(self.dir, 'two.conf'))
        r1 = self.anonymizer('run', config=cfg1, expect=0)
        r2 = self.anonymizer('--jobs', '2', 'run', config=cfg2, expect=0)
        for a, b in zip(serial, parallel):
            self.assertEqual(self.normalized_state(a), self.normalized_state(b))
        summary = re.compile(r'run \S+: 4 of 4 tenants done, (\d+) submissions anonymised, (\d+) completed, '
                             r'(\d+) drafts, 0 locked, 0 failed, (\d+) search tokens deleted, 0 rows exported, [\d.]+ s,'
                             r' \d+ submissions/s')
        m1, m2 = summary.search(r1.stderr), summary.search(r2.stderr)
        self.assertIsNotNone(m1, r1.stderr)
        self.assertIsNotNone(m2, r2.stderr)
        self.assertEqual(m1.groups(), m2.groups())
        self.assertEqual(m1.group(1), str(4 * 2 * 3))   # 4 tenants x 2 forms x 3 ages past 30 days
        # each line is whole: every stderr line starts with the prefix
        for line in r2.stderr.splitlines():
            self.assertTrue(line.startswith('anonymizer: '), line)

    def test_two_workers_really_overlap(self):
        tenants = []
        for i in range(2):
            t = self.tenant()
            f = t.add_form(standard_form())
            with t.conn.cursor() as cur:
                wcs.populate(cur, f, 6000, max_age_days=300)
            tenants.append(t)
        self.write_config(tenants, extra='retention = "30 days"; batch_size = 20; vacuum = false;')
        self.anonymizer('--jobs', '2', 'run', expect=0)
        spans = []
        for t in tenants:
            started, finished = t.one('SELECT started_at, finished_at FROM anonymizer.runs')
            spans.append((started, finished))
        self.assertLess(max(s for s, _ in spans), min(f for _, f in spans), 'the two tenants did not run at once')

    def test_a_worker_that_dies(self):
        """A worker killed outright fails its tenant only; the next run completes it."""
        victim, other = self.tenant(), self.tenant()
        fv, fo = victim.add_form(standard_form()), other.add_form(standard_form())
        v = [full_submission(victim, fv, ref=ago(40), marker=f'v{i}') for i in range(3)]
        o = [full_submission(other, fo, ref=ago(40), marker=f'o{i}') for i in range(3)]
        self.write_config([victim, other], extra='retention = "30 days"; lock_timeout = "2min"; jobs = 2;')
        holder = victim.cluster.connect(victim.dbname, autocommit=False)
        holder.cursor().execute('SELECT 1 FROM wcs_all_forms WHERE formdef_id = %s AND id = %s FOR UPDATE',
                                (fv.id, v[0]))
        proc = self.start_anonymizer('run')
        try:
            # the victim's worker waits for the row while the other tenant finishes: then it is the only child
            self.assertTrue(self.wait_until(victim.anonymizer_waiting, timeout=60))
            self.assertTrue(self.wait_until(lambda: other.one("SELECT to_regclass('anonymizer.runs') IS NOT NULL")[0]
                                            and other.one("SELECT count(*) FROM anonymizer.runs"
                                                          " WHERE outcome = 'ok'")[0] == 1, timeout=60))
            self.assertTrue(self.wait_until(lambda: len(self.children(proc.pid)) == 1, timeout=60))
            os.kill(self.children(proc.pid)[0], signal.SIGKILL)
            out, err = proc.communicate(timeout=120)
        finally:
            holder.rollback()
            holder.close()
        self.assert_no_sanitizer_report(err)
        self.assertEqual(proc.returncode, 1, err)
        self.assertIn(f'{victim.name}: the worker died of signal 9', err)
        self.assertRegex(err, r'run \S+: 1 of 2 tenants done')
        self.assertTrue(all(other.row(fo, i)['anonymised'] for i in o))
        self.assertTrue(all(victim.row(fv, i)['anonymised'] is None for i in v), 'the batch in flight rolled back')
        self.assertEqual([r[1] for r in victim.runs()], ['running'])
        self.anonymizer('run', expect=0)
        self.assertTrue(all(victim.row(fv, i)['anonymised'] for i in v))
        self.assertEqual([r[1] for r in victim.runs()], ['crashed', 'ok'])

    @staticmethod
    def children(pid):
        out = subprocess.run(['ps', '-o', 'pid=', '--ppid', str(pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    # -- the time budget ------------------------------------------------------------------

    def big_tenant(self, n=6000):
        t = self.tenant()
        f = t.add_form(standard_form())
        with t.conn.cursor() as cur:
            wcs.populate(cur, f, n, max_age_days=400)
        return t, f

    def due_left(self, t, f):
        return t.one(f"""SELECT count(*) FROM {wcs.qi(f.table)} WHERE anonymised IS NULL
                         AND status IN ('wf-done', 'wf-rejected') AND last_update_time < now() - interval '30 days'""")[0]

    def test_max_runtime_stops_early_then_completes(self):
        t, f = self.big_tenant()
        t2 = self.tenant()
        f2 = t2.add_form(standard_form())
        full_submission(t2, f2, ref=ago(40))
        self.write_config([t, t2], extra='retention = "30 days"; batch_size = 10;')
        res = self.anonymizer('--max-runtime', '1s', 'run', expect=75)
        self.assertGreater(self.due_left(t, f), 0)
        self.assertGreater(t.one(f'SELECT count(*) FROM {wcs.qi(f.table)} WHERE anonymised IS NOT NULL'
                                 f" AND anonymised > now() - interval '1 hour'")[0], 0)
        self.assertRegex(res.stderr, r'time budget exhausted, \d+ submissions left for the next run')
        self.assertIn('1 tenant not started', res.stderr)
        self.assertEqual(t.runs()[-1][1:4:2], ('interrupted', 'time budget exhausted'))
        self.assertIsNone(t2.one("SELECT to_regclass('anonymizer.runs')")[0])
        # the next run without a budget (and with batches of the default size) completes
        self.write_config([t, t2], extra='retention = "30 days";')
        self.anonymizer('run', expect=0)
        self.assertEqual(self.due_left(t, f), 0)
        self.assertEqual(self.due_left(t2, f2), 0)

    # -- SIGTERM ---------------------------------------------------------------------------

    def sigterm_mid_run(self, jobs, sig=signal.SIGTERM):
        t, f = self.big_tenant()
        self.write_config([t], extra=f'retention = "30 days"; batch_size = 10; jobs = {jobs};')
        proc = self.start_anonymizer('run')
        table = wcs.qi(f.table)
        try:
            self.assertTrue(self.wait_until(
                lambda: t.one(f"SELECT count(*) FROM {table} WHERE anonymised > now() - interval '1 hour'")[0] > 100,
                timeout=120), 'no batch committed')
        finally:
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=120)
        self.assert_no_sanitizer_report(err)
        self.assertEqual(proc.returncode, 75, err)
        self.assertGreater(self.due_left(t, f), 0, 'the run finished before the signal: nothing was tested')
        self.assertEqual(t.runs()[-1][1:4:2], ('interrupted', 'interrupted by a signal'))
        # the lock was released and the state is consistent: the next run (batches of the default size) completes
        self.write_config([t], extra=f'retention = "30 days"; jobs = {jobs};')
        self.anonymizer('run', expect=0)
        self.assertEqual(self.due_left(t, f), 0)
        half = t.one(f"""SELECT count(*) FROM {table} WHERE anonymised IS NOT NULL
                         AND (user_id IS NOT NULL OR f1 IS NOT NULL OR prefilling_data IS NOT NULL)
                         AND last_update_time < now() - interval '30 days'""")[0]
        self.assertEqual(half, 0)

    def test_sigterm_mid_run_then_rerun(self):
        self.sigterm_mid_run(jobs=1)

    def test_sigterm_with_two_jobs(self):
        self.sigterm_mid_run(jobs=2)

    def test_sighup_sigquit_sigusr1_stop_like_sigterm(self):
        """A closed terminal, the quit key, a stray signal: the batch in flight rolls back, exit 75, never a kill
        midway."""
        for sig, jobs in ((signal.SIGHUP, 1), (signal.SIGQUIT, 2), (signal.SIGUSR1, 1)):
            with self.subTest(signal=sig.name):
                self.sigterm_mid_run(jobs=jobs, sig=sig)

    # -- progress ----------------------------------------------------------------------------

    def test_progress_lines_when_not_a_terminal(self):
        """A tenant that runs long gets a progress line every interval (30 s; 2 s here, through
        $ANONYMIZER_PROGRESS_INTERVAL)."""
        t = self.tenant()
        f = t.add_form(standard_form())
        ids = [full_submission(t, f, ref=ago(40), marker=str(i)) for i in range(3)]
        self.write_config([t], extra='retention = "30 days"; lock_timeout = "2min";')
        holder = t.cluster.connect(t.dbname, autocommit=False)
        try:
            # the w.c.s. trigger of the first batch waits for this row of wcs_all_forms
            holder.cursor().execute('SELECT 1 FROM wcs_all_forms WHERE formdef_id = %s AND id = %s FOR UPDATE',
                                    (f.id, ids[0]))
            proc = self.start_anonymizer('run', env={'ANONYMIZER_PROGRESS_INTERVAL': '2'})
            time.sleep(5)
        finally:
            holder.rollback()
            holder.close()
        out, err = proc.communicate(timeout=120)
        self.assert_no_sanitizer_report(err)
        self.assertEqual(proc.returncode, 0, err)
        self.assertRegex(err, rf'anonymizer: progress: {re.escape(t.name)}: anonymise demande-rdv 0 \(tenant running for'
                              rf' [2-5] s\)')
        self.assertNotIn('\r', err)
        self.assertTrue(all(t.row(f, i)['anonymised'] for i in ids))

    def test_live_progress_on_a_terminal(self):
        t, f = self.big_tenant(n=8000)
        self.write_config([t], extra='retention = "30 days"; batch_size = 20; vacuum = false; lock_timeout = "1min";')
        # the run pauses half-way for two seconds (a w.c.s. request holds a row), whatever the machine's speed
        middle = t.one(f"""SELECT id FROM {wcs.qi(f.table)} WHERE anonymised IS NULL AND status IN ('wf-done', 'wf-rejected')
                           AND last_update_time < now() - interval '30 days' ORDER BY id OFFSET 2000 LIMIT 1""")[0]
        holder = t.cluster.connect(t.dbname, autocommit=False)
        holder.cursor().execute('SELECT 1 FROM wcs_all_forms WHERE formdef_id = %s AND id = %s FOR UPDATE',
                                (f.id, middle))
        master, slave = pty.openpty()
        proc = subprocess.Popen([harness.BINARY, '-c', self.config_path, 'run'], stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=slave)
        os.close(slave)
        out = b''
        released_at = time.time() + 2
        while True:
            r, _, _ = select.select([master], [], [], 0.1)
            if holder is not None and time.time() > released_at:
                holder.rollback()
                holder.close()
                holder = None
            if not r:
                if proc.poll() is not None and holder is None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=60)
        os.close(master)
        text = out.decode(errors='replace')
        self.assert_no_sanitizer_report(text)
        self.assertEqual(proc.returncode, 0, text)
        # a live line: tenant, phase, form, done/due, rate, time left, redrawn in place
        self.assertRegex(text, rf'\r\x1b\[K\[0/1\] {re.escape(t.name)}: anonymise demande-rdv \d+/\d+ \d+/s \d+s left')
        self.assertRegex(text, r'run \S+: 1 of 1 tenants done')
        # the total counts every kind of work (drafts too): never overshot, and reached
        pairs = [(int(a), int(b)) for a, b in re.findall(r' demande-rdv (\d+)/(\d+)', text)]
        self.assertTrue(pairs)
        self.assertTrue(all(done <= due for done, due in pairs), pairs)
        # phases are said; plurals are right
        self.assertIn(f'{t.name}: search tokens demande-rdv', text)
        self.assertIn('done: 1 form in', text)


if __name__ == '__main__':
    harness.main()
