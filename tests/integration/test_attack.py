"""Findings of an attacker's second look (issue 23), each with the test that
failed before its fix: names reaching a psql script, server messages quoting
values, superuser connections, the fetch's budget, hostile text from w.c.s.,
the audit of a killed run, the service's hardening, the key file.  The real
binary against a real PostgreSQL with w.c.s.-faithful tenants."""

import json
import os
import subprocess

import harness
import pgcluster
import wcs
from forms import full_submission, standard_form


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
        t.conn.close()
        admin = t.cluster.connect('postgres')
        admin.cursor().execute(f'CREATE DATABASE {wcs.qi(name)} TEMPLATE {wcs.qi(t.dbname)}')
        admin.close()
        t.conn = t.cluster.connect(t.dbname)
        self.write_config([], extra=f'retention = "30 days"; discover = ( {{ conninfo = '
                                    f'"{harness.cfgstr(t.cluster.conninfo("postgres"))}"; databases = "{prefix}%"; }} );')
        role = harness.unique('run_role')
        res = self.anonymizer('grants', '--role-run', role, expect=0)
        # the name's newlines stay inside quotes psql knows (an identifier, a meta-command's argument)
        # or are escaped (a comment)
        for line in res.stdout.splitlines():
            if line.startswith('-- '):
                self.assertNotIn(planted, line.split(prefix, 1)[0])
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


if __name__ == '__main__':
    harness.main()
