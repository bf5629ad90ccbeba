"""Definitions straight from each tenant's w.c.s., over Publik's signed API,
against a local HTTPS server that checks signatures as w.c.s. does; one
tenant's trouble stays its own; mistakes are loud."""

import json
import os
import pwd
import subprocess
import sys
import time

import harness
import wcs
import wcsapi
from forms import full_submission, standard_form

KEY = 'Zk3y-S3cr3t-shared-with-wcs-0123456789'


def ago(days):
    return f"now() - interval '{days} days'"


class FetchTests(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.api = wcsapi.WcsApi(self.dir, {'anonymizer': KEY})
        self.addCleanup(self.api.stop)
        self.key_file = os.path.join(self.dir, 'wcs-api.key')
        with open(self.key_file, 'w') as fp:
            fp.write(KEY + '\n')
        os.chmod(self.key_file, 0o600)

    def api_group(self, key_file=None):
        return (f'wcs_api = {{ orig = "anonymizer"; key_file = "{harness.cfgstr(key_file or self.key_file)}";'
                f' ca_file = "{harness.cfgstr(self.api.ca_cert)}"; timeout = "5s"; }};')

    def site_tenant(self, site_name, forms=()):
        """A tenant database, and its w.c.s. serving the forms' definitions."""
        t = self.tenant()
        for f in forms:
            t.add_form(f, definition=False)
        self.api.sites[site_name] = wcsapi.Site(forms={f.slug: f.definition() for f in forms})
        return t

    def config(self, tenants, extra=''):
        """tenants: (Tenant, site name) pairs."""
        self.write_config([(t.name, t.conninfo, f'url = "{self.api.url(site)}";') for t, site in tenants],
                          extra=self.api_group() + ' retention = "30 days"; ' + extra)

    def defs_dir(self, t):
        return os.path.join(self.schemas, t.name)

    # -- fetch ---------------------------------------------------------------------------------

    def test_fetch_writes_files_then_reports_changes_and_the_run_uses_them(self):
        f1, f2 = standard_form(1, 'demande-rdv', 'RDV'), standard_form(2, 'inscription', 'Inscription')
        a = self.site_tenant('a', [f1, f2])
        card = wcs.Card(3, 'registre', 'Registre', [wcs.Field('1', 'string', 'Nom', 'nom', 'final')])
        self.api.sites['a'].cards = {'registre': card.definition()}
        b = self.site_tenant('b', [standard_form(1, 'demande-rdv', 'RDV')])
        self.config([(a, 'a'), (b, 'b')])

        res = self.anonymizer('fetch', expect=0)
        for t, slugs in ((a, ['demande-rdv', 'inscription']), (b, ['demande-rdv'])):
            self.assertEqual(sorted(x for x in os.listdir(self.defs_dir(t)) if x.endswith('.json')),
                             [s + '.json' for s in slugs])
            for s in slugs:
                with open(os.path.join(self.defs_dir(t), s + '.json')) as fp:
                    doc = json.load(fp)
                self.assertEqual(doc['url_name'], s)
                self.assertTrue(all('id' in fld for fld in doc['fields']), 'fetched with include-id')
        with open(os.path.join(self.defs_dir(a), 'cards', 'registre.json')) as fp:
            self.assertEqual(json.load(fp)['url_name'], 'registre')
        self.assertIn(f'{a.name}: new form demande-rdv', res.stdout)
        self.assertIn(f'{a.name}: new card registre', res.stdout)
        self.assertIn(f'{a.name}: 2 forms and 1 card fetched from {self.api.url("a")}, 3 changed', res.stdout)
        # every request was signed and accepted; disabled forms were asked for
        self.assertIn(('a', '/api/formdefs/', None), [(t, p, None) for t, p, q in self.api.requests])
        self.assertTrue(all('orig=anonymizer' in q and '&signature=' in q for _, _, q in self.api.requests))
        self.assertTrue(any(q.startswith('include-disabled=on&') for _, p, q in self.api.requests
                            if p == '/api/formdefs/'))

        # an agent switches motif to "final" in w.c.s.: the next fetch says so, and the run blanks it
        self.api.sites['a'].forms['demande-rdv']['fields'][1]['anonymise'] = 'final'
        res = self.anonymizer('fetch', expect=0)
        self.assertIn(f'{a.name}: changed form demande-rdv: field 2 [motif] anonymise no -> final', res.stdout)
        self.assertIn('1 changed', res.stdout)
        fid = full_submission(a, f1, ref=ago(40))
        self.anonymizer('run', expect=0)
        self.assertIsNone(a.row(f1, fid)['f2'])
        # and a form deleted in w.c.s. (its formdefs row gone) loses its file
        del self.api.sites['a'].forms['inscription']
        a.query("DELETE FROM formdefs WHERE slug = 'inscription'")
        res = self.anonymizer('fetch', expect=0)
        self.assertIn(f'{a.name}: removed form inscription', res.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.defs_dir(a), 'inscription.json')))

    def test_run_check_and_report_fetch_first(self):
        f = standard_form()
        t = self.site_tenant('s', [f])
        fid = full_submission(t, f, ref=ago(40))
        self.config([(t, 's')])
        self.assertIn('definition: ', self.anonymizer('check', expect=0).stdout)
        self.assertTrue(os.path.exists(os.path.join(self.defs_dir(t), 'demande-rdv.json')))
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        self.assertEqual(report['tenants'][0]['definitions']['source'], 'fetched')
        self.anonymizer('run', expect=0)
        self.assertEqual(t.row(f, fid)['f2'], 'rdv', 'kept per the fetched definition')

    # -- failures --------------------------------------------------------------------------------

    def two_sites(self):
        f = standard_form()
        good = self.site_tenant('good', [f])
        bad = self.site_tenant('bad', [standard_form()])
        gid = full_submission(good, f, ref=ago(40))
        bid = full_submission(bad, bad.forms[0], ref=ago(40))
        return f, good, bad, gid, bid

    FAILURES = [
        ('wrong key', lambda s, api: api.secrets.update({'anonymizer': 'another key'}), 'HTTP 403 (Invalid signature.)'),
        ('replayed nonce', lambda s, api: setattr(s, 'failure', 'replay'), 'HTTP 403 (Nonce already used.)'),
        ('clock skew', lambda s, api: setattr(s, 'clock_offset', 45), 'HTTP 403 (timestamp is more than 30 seconds'),
        ('server error', lambda s, api: setattr(s, 'failure', '500'), 'HTTP 500 (<html><body>Internal Server Error'),
        ('invalid JSON', lambda s, api: setattr(s, 'failure', 'badjson'), 'the answer is not JSON'),
        ('no ids', lambda s, api: setattr(s, 'strip_ids', True), 'has no id'),
        ('redirect', lambda s, api: setattr(s, 'failure', 'redirect'), 'redirected (HTTP 302), which is not followed'),
        ('too large', lambda s, api: setattr(s, 'failure', 'huge'), 'larger than 16777216 bytes'),
    ]

    def test_each_failure_stays_its_tenants(self):
        for name, break_it, needle in self.FAILURES:
            with self.subTest(failure=name):
                f, good, bad, gid, bid = self.two_sites()
                # the wrong key breaks every site: give the good one its own client
                self.config([(good, 'good'), (bad, 'bad')])
                if name == 'wrong key':
                    self.api.secrets = {'anonymizer': 'another key'}
                    with open(self.key_file, 'w') as fp:
                        fp.write('a key w.c.s. does not know\n')
                else:
                    break_it(self.api.sites['bad'], self.api)
                res = self.anonymizer('fetch', expect=1)
                errors = [line for line in res.stderr.splitlines() if line.startswith('anonymizer: error: ')]
                self.assertEqual(len(errors), 1 if name != 'wrong key' else 2, res)
                self.assertIn(f'error: {bad.name}: cannot fetch definitions: ', errors[-1])
                self.assertIn(needle, errors[-1])
                self.assertNotIn('signature=', res.stderr)
                # without cached files the failing tenant is still processed: every field blanked
                res = self.anonymizer('run', expect=0)
                self.assertRegex(res.stderr, rf'warning: {bad.name}: cannot fetch definitions: .*no definition'
                                             r' files either')
                self.assertIsNotNone(bad.row(bad.forms[0], bid)['anonymised'])
                self.assertIsNone(bad.row(bad.forms[0], bid)['f2'], 'no definition: blanked')
                if name != 'wrong key':
                    self.assertEqual(good.row(f, gid)['f2'], 'rdv', 'the other tenant used its fetched definition')
                self.api.secrets = {'anonymizer': KEY}
                with open(self.key_file, 'w') as fp:
                    fp.write(KEY + '\n')

    def test_cached_files_are_used_with_their_age(self):
        f, good, bad, gid, bid = self.two_sites()
        self.config([(good, 'good'), (bad, 'bad')])
        self.anonymizer('fetch', expect=0)
        stamp = os.path.join(self.defs_dir(bad), '.fetched')
        three_days = time.time() - 3 * 86400
        os.utime(stamp, (three_days, three_days))
        self.api.sites['bad'].failure = '500'
        res = self.anonymizer('-q', 'run', expect=0)
        self.assertRegex(res.stderr, rf'warning: {bad.name}: cannot fetch definitions: .*HTTP 500.*; using the files'
                                     r' fetched 3 days ago')
        self.assertEqual(bad.row(bad.forms[0], bid)['f2'], 'rdv', 'the cached definition applied')
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        by_name = {x['name']: x['definitions'] for x in report['tenants']}
        self.assertEqual(by_name[bad.name]['source'], 'files')
        self.assertEqual(by_name[bad.name]['age_days'], 3)
        self.assertIn('HTTP 500', by_name[bad.name]['fetch_error'])
        self.assertEqual(by_name[good.name]['source'], 'fetched')
        text = self.anonymizer('report', expect=0).stdout
        self.assertIn('definitions: fetch failed', text)
        self.assertIn('files fetched 3 days ago', text)

    def test_a_key_file_for_a_service_and_an_unreadable_one(self):
        """root:anonymizer 0640 is how Debian gives a service a secret; a key that cannot be read fails the
        fetches that need it, not the night (issue 23)."""
        f, good, bad, gid, bid = self.two_sites()
        plain = self.tenant()
        pf = plain.add_form(standard_form())
        pid = full_submission(plain, pf, ref=ago(40))
        tenants = [(good.name, good.conninfo, f'url = "{self.api.url("good")}";'), (plain.name, plain.conninfo)]
        self.write_config(tenants, extra=self.api_group() + ' retention = "30 days";')
        if os.geteuid() == 0:
            os.chown(self.key_file, 0, pwd.getpwnam('postgres').pw_gid)
            os.chmod(self.key_file, 0o640)
            self.anonymizer('fetch', expect=0)
            # the group may read only a file root owns, and never write it
            for uid, mode in ((pwd.getpwnam('postgres').pw_uid, 0o640), (0, 0o660), (0, 0o644)):
                os.chown(self.key_file, uid, -1)
                os.chmod(self.key_file, mode)
                res = self.anonymizer('check', expect=78)
                self.assertIn('is readable by other users', res.stderr)
            os.chown(self.key_file, 0, 0)
            os.chmod(self.key_file, 0o600)
        # the key gone: the tenant that needs it uses its files, the other one does not notice
        self.write_config(tenants, extra=self.api_group(os.path.join(self.dir, 'gone.key')) + ' retention = "30 days";')
        res = self.anonymizer('fetch', expect=1)
        self.assertIn(f'error: {good.name}: cannot fetch definitions: cannot read the API key file', res.stderr)
        res = self.anonymizer('-q', 'run')
        self.assertIn(f'warning: {good.name}: cannot fetch definitions: cannot read the API key file', res.stderr)
        self.assertIsNotNone(good.row(f, gid)['anonymised'])
        self.assertEqual(good.row(f, gid)['f2'], 'rdv', 'the fetched definition applied')
        self.assertIsNotNone(plain.row(pf, pid)['anonymised'])
        self.assertEqual([r[1] for r in plain.runs()], ['ok'])

    def test_what_fetch_prints_from_wcs_is_escaped(self):
        """A varname from w.c.s. with an escape sequence and a newline reaches no terminal raw (issue 23)."""
        f = standard_form()
        a = self.site_tenant('a', [f])
        self.config([(a, 'a')])
        self.anonymizer('fetch', expect=0)
        self.api.sites['a'].forms['demande-rdv']['fields'][1]['varname'] = 'motif\x1b[2J\nforged: removed form x'
        self.api.sites['a'].forms['demande-rdv']['fields'][1]['anonymise'] = 'final'
        res = self.anonymizer('fetch', expect=0)
        self.assertIn('changed form demande-rdv', res.stdout)
        self.assertNotIn('\x1b', res.stdout + res.stderr)
        self.assertFalse(any(line.startswith('forged') for line in res.stdout.splitlines()), res.stdout)
        self.assertIn('motif\\x1b[2J\\x0aforged', res.stdout)

    def test_a_slow_server_gets_the_run_budget_and_a_deadline(self):
        """The run's time budget covers fetching, and a tenant's fetch has a deadline (issue 23)."""
        forms = [standard_form(i, f'form-{i}', f'Form {i}') for i in range(1, 6)]
        a = self.site_tenant('a', forms)
        self.config([(a, 'a')])
        self.anonymizer('fetch', expect=0)
        before = {n: os.path.getmtime(os.path.join(self.defs_dir(a), n)) for n in os.listdir(self.defs_dir(a))}
        self.api.sites['a'].delay = 1.0   # 6 requests: 6 s
        for f in forms:
            self.api.sites['a'].forms[f.slug]['name'] += ' (renamed)'
        started = time.time()
        res = self.anonymizer('run', '--max-runtime', '2s')
        took = time.time() - started
        self.assertIn("the fetch's deadline passed", res.stderr)
        self.assertLess(took, 5, f'the run took {took:.1f} s on a 2 s budget')
        # the deadline of the configuration, for the fetch command; nothing half stored, nothing staged
        self.config([(a, 'a')], extra='wcs_api_deadline_placeholder')
        with open(self.config_path) as fp:
            text = fp.read().replace('wcs_api_deadline_placeholder', '').replace('timeout = "5s";',
                                                                                   'timeout = "5s"; deadline = "2s";')
        with open(self.config_path, 'w') as fp:
            fp.write(text)
        started = time.time()
        res = self.anonymizer('fetch', expect=1)
        self.assertLess(time.time() - started, 5)
        self.assertIn(f"error: {a.name}: cannot fetch definitions: the fetch's deadline passed", res.stderr)
        after = {n: os.path.getmtime(os.path.join(self.defs_dir(a), n)) for n in os.listdir(self.defs_dir(a))}
        self.assertEqual(after, before)

    def test_definitions_are_held_one_at_a_time(self):
        """Three big definitions take no more memory than one (issue 23: 819 MB for three of 15.8 MB)."""
        def peak_kib(count):
            t = self.tenant()
            site = f'big{count}'
            defs = {}
            for i in range(count):
                d = standard_form(i + 1, f'big-{i}', f'Big {i}').definition()
                d['description'] = 'x' * (15 * 1024 * 1024)
                defs[d['url_name']] = d
            self.api.sites[site] = wcsapi.Site(forms=defs)
            self.config([(t, site)])
            probe = ('import resource, subprocess, sys\n'
                     'sys.exit(subprocess.run(sys.argv[1:]).returncode or'
                     ' print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))')
            proc = subprocess.run([sys.executable, '-c', probe, harness.BINARY, '-c', self.config_path, 'fetch'],
                                  capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return int(proc.stdout.strip().splitlines()[-1])
        one, three = peak_kib(1), peak_kib(3)
        self.assertLess(three, one * 1.4, f'one definition: {one} KiB, three: {three} KiB')

    def test_a_form_the_listing_hides_is_not_a_deleted_form(self):
        """An API access with roles does not list forms restricted to other roles: such a form is an error,
        its last definition kept and used (issue 22)."""
        f = standard_form(1, 'demande-rdv', 'RDV')
        hidden = standard_form(2, 'interne', 'Interne')
        a = self.site_tenant('a', [f, hidden])
        self.config([(a, 'a')])
        self.anonymizer('fetch', expect=0)
        del self.api.sites['a'].forms['interne']      # still in the tenant's formdefs
        res = self.anonymizer('fetch', expect=1)
        self.assertIn(f'error: {a.name}: cannot fetch definitions: form interne: in the tenant\'s database but not'
                      f' listed by {self.api.url("a")}: hidden from this API access (one with roles?', res.stderr)
        self.assertNotIn('removed form interne', res.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.defs_dir(a), 'interne.json')))
        # the run uses the kept definition: its kept field stays
        sid = full_submission(a, hidden, ref=ago(40))
        res = self.anonymizer('run')
        self.assertIn('form interne: in the tenant\'s database but not listed', res.stderr)
        row = a.row(hidden, sid)
        self.assertIsNotNone(row['anonymised'])
        self.assertEqual(row['f2'], 'rdv', 'the kept definition applied')
        self.assertIsNone(row['f1'])

    def test_server_down(self):
        f, good, bad, gid, bid = self.two_sites()
        self.write_config([(good.name, good.conninfo, f'url = "{self.api.url("good")}";'),
                           (bad.name, bad.conninfo, 'url = "https://localhost:1/bad/";')],
                          extra=self.api_group() + ' retention = "30 days";')
        res = self.anonymizer('fetch', expect=1)
        self.assertRegex(res.stderr, rf'error: {bad.name}: cannot fetch definitions: https://localhost:1/bad/api/'
                                     r'formdefs/: .*(onnect|refused)')

    # -- secrets --------------------------------------------------------------------------------

    def test_the_key_is_never_shown(self):
        f = standard_form()
        t = self.site_tenant('s', [f])
        fid = full_submission(t, f, ref=ago(40))
        self.config([(t, 's')], extra='lock_timeout = "1min";')
        outputs = []
        holder = t.cluster.connect(t.dbname, autocommit=False)
        try:
            # the run waits for this row (the w.c.s. trigger updates it): time to look at its process
            holder.cursor().execute('SELECT 1 FROM wcs_all_forms WHERE formdef_id = %s AND id = %s FOR UPDATE',
                                    (f.id, fid))
            proc = self.start_anonymizer('-v', 'run')
            self.assertTrue(self.wait_until(t.anonymizer_waiting, timeout=60), 'the run never waited')
            ps = subprocess.run(['ps', '-eww', '-o', 'args'], capture_output=True, text=True).stdout
            environ = open(f'/proc/{proc.pid}/environ', 'rb').read().decode(errors='replace')
            self.assertIn('anonymizer', ps)
        finally:
            holder.rollback()
            holder.close()
        out, err = proc.communicate(timeout=120)
        outputs += [out, err, ps, environ]
        for cmd in (['check'], ['report', '--format', 'json'], ['fetch'], ['-v', 'export']):
            res = self.anonymizer(*cmd)
            outputs += [res.stdout, res.stderr]
        audit = t.query('SELECT r::text FROM anonymizer.runs r')
        outputs += [row[0] for row in audit]
        for root, _, files in os.walk(self.schemas):
            for name in files:
                with open(os.path.join(root, name), errors='replace') as fp:
                    outputs.append(fp.read())
        self.assertTrue(any('fetched from' in o for o in outputs), 'nothing was fetched: nothing tested')
        for o in outputs:
            self.assertNotIn(KEY, o)
        # the URLs logged carry no query (no signature)
        self.assertNotIn('signature=', ''.join(outputs))

    # -- configuration ---------------------------------------------------------------------------

    def test_configuration_of_the_api(self):
        t = self.tenant()
        cases = [
            ('url = "http://demarches.example.org/";', self.api_group(), 'plain http:// is allowed only to localhost'),
            ('url = "ftp://x/";', self.api_group(), 'is not https'),
            (f'url = "{self.api.url("s")}";', '', 'has a url but there is no wcs_api group'),
        ]
        for tenant_extra, extra, needle in cases:
            with self.subTest(needle=needle):
                self.write_config([(t.name, t.conninfo, tenant_extra)], extra=extra)
                res = self.anonymizer('check', expect=78)
                self.assertIn(needle, res.stderr)
        os.chmod(self.key_file, 0o644)
        self.write_config([(t.name, t.conninfo)], extra=self.api_group())
        res = self.anonymizer('check', expect=78)
        self.assertIn('is readable by other users: make it private', res.stderr)
        self.assertNotIn(KEY, res.stderr)
        os.chmod(self.key_file, 0o600)
        # an inline key follows the rule of passwords
        self.write_config([(t.name, t.conninfo)], extra=f'wcs_api = {{ orig = "anonymizer"; key = "{KEY}"; }};',
                          mode=0o644)
        res = self.anonymizer('check', expect=78)
        self.assertIn('holds the API key but the file is readable by other users', res.stderr)
        self.assertNotIn(KEY, res.stderr)

    def test_discovered_tenants_get_host_names_and_urls(self):
        c = harness.cluster()
        prefix = harness.unique('wcs').lower()
        db = f'{prefix}_localhost'
        c.createdb(db)
        self.addCleanup(c.dropdb, db)
        conn = c.connect(db)
        with conn.cursor() as cur:
            wcs.create_tenant(cur)
            f = standard_form()
            wcs.create_form(cur, f)
            fid = wcs.insert_submission(cur, f, status='wf-done', receipt_time=ago(45), last_update_time=ago(40),
                                        values={'1': 'Nom', '2': 'rdv'}, user_id='7')
        conn.close()
        self.api.sites['localhost'] = wcsapi.Site(forms={f.slug: f.definition()})
        # a LIKE pattern whose literal part (underscores escaped) is the prefix w.c.s. gave the names
        pattern = prefix.replace('_', '\\\\_') + '\\\\_%'
        # the site is served below its host name; the pattern puts it there
        url = f'https://%s:{self.api.port}/%s/'.replace('%s/', 'localhost/', 1)
        self.write_config([], extra=self.api_group() + ' retention = "30 days";'
                          f' discover = ( {{ conninfo = "{harness.cfgstr(c.conninfo("postgres"))}";'
                          f' databases = "{pattern}"; url = "{url}"; }} );')
        res = self.anonymizer('check', expect=0)
        self.assertIn('tenant localhost: reachable', res.stdout)
        self.assertIn(os.path.join(self.schemas, 'localhost', 'demande-rdv.json'), res.stdout)
        self.anonymizer('run', expect=0)
        conn = c.connect(db)
        with conn.cursor() as cur:
            cur.execute(f'SELECT f2, anonymised, (SELECT tenant FROM anonymizer.runs) FROM {wcs.qi(f.table)}'
                        f' WHERE id = %s', (fid,))
            f2, anonymised, tenant = cur.fetchone()
        conn.close()
        self.assertEqual((f2, tenant), ('rdv', 'localhost'))
        self.assertIsNotNone(anonymised)

    # -- loud warnings -----------------------------------------------------------------------------

    def test_mistakes_are_loud(self):
        t = self.tenant()
        f = t.add_form(standard_form(), definition=False)
        full_submission(t, f, ref=ago(40))
        self.write_config([t], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "demande-rvd"; keep = ["motif"]; }'])
        os.rmdir(self.schemas)
        res = self.anonymizer('-q', 'run', expect=0)
        self.assertIn(f'warning: schemas directory {self.schemas} does not exist', res.stderr)
        self.assertIn(f'warning: {t.name}: 1 form table but no definition at all', res.stderr)
        self.assertIn('warning: forms entry for tenant "*", slug "demande-rvd" matches no table', res.stderr)
        # with -t, a "*" entry may be meant for a tenant that was not looked at
        other = self.tenant()
        g = other.add_form(standard_form(2, 'demande-rvd', 'Autre'), definition=False)
        self.write_config([t, other], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "demande-rvd"; keep = ["motif"]; }',
                                 f'{{ tenant = "{t.name}"; slug = "inscriptoin"; }}'])
        res = self.anonymizer('-q', '-t', t.name, 'report', expect=0)
        self.assertNotIn('slug "demande-rvd" matches no table', res.stderr)
        self.assertIn(f'warning: forms entry for tenant "{t.name}", slug "inscriptoin" matches no table', res.stderr)
        self.assertIsNotNone(g)
        os.makedirs(self.schemas)
        f.write_definition(self.schemas, t.name)
        self.write_config([t], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "demande-rdv"; keep = ["nom", "4"]; }'])
        res = self.anonymizer('-q', 'check', expect=0)
        self.assertIn('warning: ' + t.name + ': form demande-rdv: a keep entry keeps field "nom", which is personal by nature',
                      res.stderr)
        self.assertIn('a keep entry keeps field "email", which is personal by nature (an email field)', res.stderr)


if __name__ == '__main__':
    harness.main()
