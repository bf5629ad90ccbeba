"""Findings of an attacker's second look (issue 23), each with the test that
failed before its fix: names reaching a psql script, server messages quoting
values, superuser connections, the fetch's budget, hostile text from w.c.s.,
the audit of a killed run, the service's hardening, the key file.  The real
binary against a real PostgreSQL with w.c.s.-faithful tenants."""

import json
import os
import pwd
import subprocess

import harness
import pgcluster
import wcs
from forms import F, full_submission, standard_form


def ago(days):
    return f"now() - interval '{days} days'"


def psql():
    path = os.path.join(pgcluster.bindir(), 'psql')
    return path if os.path.exists(path) else 'psql'


class AttackTests(harness.TestCase):

    def one_form(self, definition=True, extra=''):
        t = self.tenant()
        f = t.add_form(standard_form(), definition=definition)
        self.write_config([t], extra='retention = "30 days";' + extra)
        return t, f

    # -- High: grants output runs shell commands --------------------------------------------

    def test_a_database_name_cannot_run_a_command_through_the_grants_script(self):
        t, f = self.one_form(definition=False)
        prefix = harness.unique('wcs_evil')
        planted = os.path.join(self.dir, 'planted')
        name = f"{prefix}\n\\! touch {planted}\n-- '\" \\\\ $anonymizer$"
        t.copy_database(name)
        self.write_config([], extra=f'retention = "30 days"; discover = ( {{ conninfo = '
                                    f'"{harness.cfgstr(t.cluster.conninfo("postgres"))}"; databases = "{prefix}%"; }} );')
        role = harness.unique('run_role')
        res = self.anonymizer('grants', '--role-run', role, expect=0)
        # the name's newlines stay inside quotes psql knows (an identifier, a meta-command's argument)
        # or are escaped (the comment that names the tenant stays one line)
        self.assertIn(f'-- tenant {prefix}\\x0a\\! touch {planted}\\x0a', res.stdout)
        self.assertIn("\\connect -reuse-previous=on 'dbname=\\'" + prefix + "\\012", res.stdout)
        proc = subprocess.run([psql(), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', t.cluster.conninfo('postgres')],
                              input=res.stdout, capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr + res.stdout)
        self.assertFalse(os.path.exists(planted), 'the database name ran a command')
        # and the script did its work in the database of that name
        other = t.cluster.connect(name)
        try:
            with other.cursor() as cur:
                cur.execute('SELECT has_database_privilege(%s, current_database(), %s)', (role, 'CONNECT'))
                self.assertTrue(cur.fetchone()[0])
        finally:
            other.close()


    # -- Medium: personal data in logs and the audit -----------------------------------------

    def plant_value_quoting_trigger(self, t, f):
        t.query("""CREATE FUNCTION public.casts_a_value() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN
                     RAISE NOTICE 'about to change %', OLD.f1;
                     PERFORM (OLD.f3)::int;
                     RETURN NEW;
                   END $$""")
        t.query(f'CREATE TRIGGER casts_a_value BEFORE UPDATE ON {wcs.qi(f.table)}'
                f' FOR EACH ROW EXECUTE FUNCTION public.casts_a_value()')

    def audit_text(self, t):
        """Everything the tool stored in the tenant's database, as text."""
        return ''.join(str(r) for table in ('runs', 'changes')
                       for r in t.query(f'SELECT * FROM anonymizer.{table}'))

    def test_a_server_message_quoting_a_value_is_never_printed_nor_stored(self):
        t, f = self.one_form()
        marker = harness.unique('Mon fils est malade')
        fid = full_submission(t, f, ref=ago(40), marker=marker)
        self.plant_value_quoting_trigger(t, f)
        res = self.anonymizer('-v', 'run', expect=1)
        self.assertIsNone(t.row(f, fid)['anonymised'])
        # the cause is still told: the condition, its SQLSTATE, what it concerns
        self.assertIn('invalid text representation', res.stderr)
        self.assertIn('SQLSTATE 22P02', res.stderr)
        self.assertNotIn(marker, res.stdout + res.stderr)
        self.assertNotIn(marker, self.audit_text(t))
        for args in (('report',), ('report', '--format', 'html'), ('report', '--format', 'json'),
                     ('history',), ('history', '--format', 'html'), ('history', '--format', 'json')):
            out = self.anonymizer(*args)
            self.assertNotIn(marker, out.stdout + out.stderr, args)
        # asked for, the server's own words go to stderr, said to be possibly personal
        res = self.anonymizer('--debug-server-messages', 'run', expect=1)
        self.assertIn('may quote personal data', res.stderr)
        self.assertIn(marker, res.stderr)
        self.assertNotIn(marker, self.audit_text(t))


    # -- Medium: running as a superuser ------------------------------------------------------

    def test_a_superuser_connection_is_warned_about_even_quiet_and_reported(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        bi = harness.unique('bi')
        t.cluster.createdb(bi)
        self.write_config([t], extra=f'retention = "30 days"; bi = {{ conninfo = "{harness.cfgstr(t.cluster.conninfo(bi))}"; }};')
        full_submission(t, f, ref=ago(40))
        owner = harness.unique('owner')
        # a table owner who is no superuser plants a trigger that would make it one
        t.query(f'CREATE ROLE {wcs.qi(owner)} LOGIN')
        t.query(f'ALTER TABLE {wcs.qi(f.table)} OWNER TO {wcs.qi(owner)}')
        t.query(f"""CREATE FUNCTION public.promote() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN EXECUTE 'ALTER ROLE {wcs.qi(owner)} SUPERUSER'; RETURN NEW; END $$""")
        t.query(f'CREATE TRIGGER promote BEFORE UPDATE ON {wcs.qi(f.table)} FOR EACH ROW EXECUTE FUNCTION public.promote()')
        warning = 'connected as "postgres", a superuser: any trigger a table owner adds would run with superuser rights'
        for args in (('run',), ('export',), ('grants', '--role-run', 'anonymizer_run', '--role-bi', 'anonymizer_bi')):
            res = self.anonymizer('-q', *args)
            self.assertIn(warning, res.stderr, args)
            self.assertIn('anonymizer grants', res.stderr)
            # the tenant's connection and the BI database's
            self.assertIn('warning: bi: connected as "postgres", a superuser', res.stderr, args)
        # what the warning is about: the planted trigger ran as the superuser
        self.assertTrue(t.one('SELECT rolsuper FROM pg_roles WHERE rolname = %s', (owner,))[0])
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        self.assertIs(doc['tenants'][0]['superuser'], True)
        self.assertIn('connected as a superuser', self.anonymizer('report').stdout)
        self.assertIn('connecté en superutilisateur', self.anonymizer('report', '--format', 'html', '--lang', 'fr').stdout)

    # -- Low: invalid UTF-8 from a definition ---------------------------------------------------

    def test_invalid_utf8_from_a_definition_leaves_every_document_valid_utf8(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        path = os.path.join(self.schemas, t.name, f.slug + '.json')
        with open(path, 'rb') as fp:
            raw = fp.read()
        self.assertIn(b'"Commentaire"', raw)
        with open(path, 'wb') as fp:
            fp.write(raw.replace(b'"Commentaire"', b'"Comment\xffaire \xc3\x28 \xed\xa0\x80"'))
        self.write_config([t], extra='retention = "30 days";')
        full_submission(t, f, ref=ago(40))
        for fmt in ('json', 'html', 'text', 'csv'):
            raw = subprocess.run([harness.BINARY, '-c', self.config_path, 'report', '--format', fmt],
                                 capture_output=True).stdout
            self.assertTrue(raw), raw.decode('utf-8')  # strict: raises on any invalid byte
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        labels = [c['label'] for fr in doc['tenants'][0]['forms'] for c in fr['columns']['blank'] if c.get('label')]
        self.assertIn('Comment\ufffdaire \ufffd( \ufffd\ufffd\ufffd', labels)

    # -- Low: a core would hold the API key and row data -----------------------------------------

    def test_the_process_is_not_dumpable(self):
        """A process that is not dumpable has its /proc/<pid> files owned by root, whoever runs it
        (proc(5)): run as another user, the tool's own files there must be root's."""
        if os.geteuid() != 0:
            self.skipTest('needs root, to run the tool as another user')
        t, f = self.one_form(extra='lock_timeout = "20s";')
        full_submission(t, f, ref=ago(40))
        pw = pwd.getpwnam('postgres')
        os.chmod(self.dir, 0o755)
        os.chown(self.config_path, pw.pw_uid, pw.pw_gid)
        blocker = t.cluster.connect(t.dbname, autocommit=False)
        self.addCleanup(blocker.close)
        blocker.cursor().execute(f'LOCK TABLE {wcs.qi(f.table)} IN ACCESS EXCLUSIVE MODE')
        proc = subprocess.Popen([harness.BINARY, '-c', self.config_path, 'run'], user='postgres',
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # waiting for the lock: the tool is running, past its start
            self.assertTrue(self.wait_until(lambda: t.one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name LIKE 'anonymizer%%'")[0] > 0, timeout=30), 'the run never waited for the lock')
            st = os.stat(f'/proc/{proc.pid}/environ')
            self.assertEqual((st.st_uid, st.st_gid), (0, 0), 'the process is dumpable')
        finally:
            blocker.rollback()
            proc.communicate(timeout=120)

    # -- Low: fields personal by nature that a definition keeps ------------------------------------

    def test_a_definition_keeping_a_personal_field_is_warned_about_and_reported(self):
        t = self.tenant()
        f = t.add_form(wcs.Form(1, 'contact', 'Contact', [
            F('1', 'string', 'Nom', 'nom', 'no'),
            F('2', 'email', 'Courriel', 'contact_mail', 'no'),
            F('3', 'item', 'Motif', 'motif', 'no'),
            F('4', 'string', 'Prénom', 'prenom', 'final'),
        ]))
        self.write_config([t], extra='retention = "30 days";')
        res = self.anonymizer('-q', 'check', expect=0)
        self.assertIn('the definition marks field "nom" anonymise "no", and it is personal by nature (varname nom)',
                      res.stderr)
        self.assertIn('field "contact_mail" anonymise "no", and it is personal by nature (an email field)', res.stderr)
        self.assertNotIn('"motif"', res.stderr)
        self.assertNotIn('"prenom"', res.stderr)
        # a configuration keep, as before
        self.write_config([t], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "contact"; keep = ["prenom"]; }'])
        res = self.anonymizer('-q', 'check', expect=0)
        self.assertIn('a keep entry keeps field "prenom", which is personal by nature (varname prenom)', res.stderr)
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        kept = {c['column']: c['personal_by_nature'] for c in doc['tenants'][0]['forms'][0]['columns']['keep']}
        self.assertEqual((kept['f1'], kept['f2'], kept['f3'], kept['f4']), (True, True, False, True))
        text = self.anonymizer('report').stdout
        self.assertIn('personal data kept     f1 [nom], f2 [contact_mail], f4 [prenom]: personal by nature', text)
        html = self.anonymizer('report', '--format', 'html', '--lang', 'fr').stdout
        self.assertIn('Données personnelles conservées', html)

if __name__ == '__main__':
    harness.main()
