"""The history's chain: every entry of anonymizer.runs sealed with HMAC-SHA256 under the audit key, linked to
the one before it; `history --verify` names the first entry a database owner without the key edited, inserted,
deleted or reordered, verifies across a key rotation, and sees a deleted history."""

import json
import os
import secrets

import harness
from forms import full_submission, standard_form


def ago(days):
    return f"now() - interval '{days} days'"


class ChainTests(harness.TestCase):

    def key(self, name):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(secrets.token_hex(32) + '\n')
        os.chmod(path, 0o600)
        return path

    def configure(self, key, old=()):
        olds = ', '.join(f'"{harness.cfgstr(p)}"' for p in old)
        extra = (f'retention = "30 days"; audit_key_file = "{harness.cfgstr(key)}";'
                 f' audit_head_directory = "{harness.cfgstr(self.heads)}";')
        if old:
            extra += f' audit_old_key_files = [{olds}];'
        self.write_config([self.t], extra=extra)

    def setUp(self):
        super().setUp()
        self.heads = os.path.join(self.dir, 'heads')
        self.t = self.tenant()
        self.f = self.t.add_form(standard_form())
        self.key1 = self.key('audit.key')
        self.configure(self.key1)

    def nights(self, n):
        for i in range(n):
            full_submission(self.t, self.f, ref=ago(40 + i), marker=f'n{i}')
            self.anonymizer('run', expect=0)

    def verify(self, expect):
        res = self.anonymizer('history', '--verify', '--format', 'json', expect=expect)
        [tenant] = json.loads(res.stdout)
        self.assertEqual(tenant['tenant'], self.t.name)
        return tenant

    def entry(self, seq):
        return self.t.one('SELECT run_id::text FROM anonymizer.runs WHERE seq = %s', (seq,))[0]

    def snapshot(self):
        self.t.query('CREATE TABLE public.runs_copy AS SELECT * FROM anonymizer.runs')

    def restore(self):
        self.t.query('DELETE FROM anonymizer.runs; INSERT INTO anonymizer.runs SELECT * FROM public.runs_copy')
        self.assertEqual(self.verify(0)['state'], 'intact')

    def assert_fault(self, fault, seq):
        v = self.verify(1)
        self.assertEqual((v['state'], v['fault'], v['bad_entry']), ('broken', fault, seq), v)
        if seq is not None:
            self.assertEqual(v['bad_run_id'], self.entry(seq))
        res = self.anonymizer('history', '--verify', expect=1)
        self.assertIn('BROKEN', res.stdout)
        return v

    def test_every_change_without_the_key_is_named(self):
        self.nights(5)
        v = self.verify(0)
        self.assertEqual((v['state'], v['entries'], v['unchained_entries']), ('intact', 5, 0), v)
        text = self.anonymizer('history', expect=0).stdout
        self.assertIn("history's chain: intact since", text)
        self.snapshot()

        # edited: a count changed
        self.t.query("UPDATE anonymizer.runs SET forms = '[]' WHERE seq = 3")
        self.assert_fault('edited', 3)
        # the report says so, briefly
        report = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        self.assertEqual(report['tenants'][0]['history_chain']['state'], 'broken')
        self.assertIn('entry 3', report['tenants'][0]['history_chain']['text'])
        self.restore()
        report = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        self.assertEqual(report['tenants'][0]['history_chain']['state'], 'intact')
        # the outcome of the last entry changed
        self.t.query("UPDATE anonymizer.runs SET outcome = 'failed' WHERE seq = 5")
        self.assert_fault('edited', 5)
        self.restore()

        # deleted: the entry before 4 is gone
        self.t.query('DELETE FROM anonymizer.runs WHERE seq = 3')
        self.assert_fault('deleted', 4)
        self.restore()
        # the first one
        self.t.query('DELETE FROM anonymizer.runs WHERE seq = 1')
        self.assert_fault('deleted', 2)
        self.restore()

        # inserted: a copy of entry 3 slipped in after it, with a seal of its own making
        self.t.query('UPDATE anonymizer.runs SET seq = seq + 1 WHERE seq >= 4')
        self.t.query("""INSERT INTO anonymizer.runs SELECT gen_random_uuid(), tenant, command, started_at + interval '1 second',
                        finished_at, version, host, config_sha256, forms, outcome, error, exported, 4, details,
                        sealed_at, key_id, mac, md5(mac) || md5(mac), chain_note
                        FROM anonymizer.runs WHERE seq = 3""")
        self.assert_fault('inserted', 4)
        self.restore()
        # an entry without a seal
        self.t.query("""INSERT INTO anonymizer.runs (run_id, tenant, command, started_at, finished_at, version, host,
                        config_sha256, outcome) VALUES (gen_random_uuid(), %s, 'run', now(), now(), '0.9', 'h', 'x', 'ok')""",
                     (self.t.name,))
        v = self.assert_fault('unsealed', None)
        self.assertIsNotNone(v['bad_run_id'])
        self.restore()

        # reordered: entries 2 and 3 swapped
        self.t.query('UPDATE anonymizer.runs SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END WHERE seq IN (2, 3)')
        self.assert_fault('reordered', 2)
        self.restore()

    def test_columns_the_tool_reads_are_all_sealed(self):
        """every column of an entry but its position is under the seal"""
        self.nights(2)
        self.snapshot()
        for column, value in [('error', "'x'"), ('host', "'elsewhere'"), ('exported', '12'),
                              ('finished_at', "finished_at + interval '1 microsecond'"), ('details', "'{}'"),
                              ('config_sha256', "'y'"), ('version', "'0'"), ('command', "'export'"),
                              ('key_id', "'0000000000000000'"), ('chain_note', "'start'"),
                              ('sealed_at', "sealed_at - interval '1 day'")]:
            self.t.query(f'UPDATE anonymizer.runs SET {column} = {value} WHERE seq = 1')
            v = self.verify(1)
            self.assertEqual((v['fault'], v['bad_entry']), ('edited', 1), column)
            self.restore()

    def test_a_deleted_history_is_seen(self):
        self.nights(2)
        self.t.query('DELETE FROM anonymizer.runs')
        # before the next run: the head this host sealed last is gone
        v = self.assert_fault('head_missing', None)
        self.assertIn('last entries were deleted', v['text'])
        # the next run says so, and starts a new chain that says so for ever
        full_submission(self.t, self.f, ref=ago(50), marker='after')
        res = self.anonymizer('run', expect=0)
        self.assertIn("the history's chain head (entry 2, sealed by this host) is missing", res.stderr)
        self.assert_fault('history_deleted', 1)
        # only the last entries: the same
        self.t.query('TRUNCATE anonymizer.runs')
        os.unlink(os.path.join(self.heads, os.listdir(self.heads)[0]))
        self.nights(3)
        self.t.query('DELETE FROM anonymizer.runs WHERE seq = 3')
        self.assert_fault('head_missing', None)

    def test_a_key_rotation_keeps_the_chain(self):
        self.nights(2)
        key2 = self.key('audit.key.2')
        os.rename(self.key1, self.key1 + '.old')
        self.configure(key2, old=[self.key1 + '.old'])
        self.nights(2)
        v = self.verify(0)
        self.assertEqual((v['state'], v['entries']), ('intact', 4), v)
        notes = self.t.query('SELECT chain_note FROM anonymizer.runs ORDER BY seq')
        self.assertEqual(notes[0][0], 'start 0')
        self.assertTrue(notes[2][0].startswith('key-change '), notes)
        # a lost old key: what it sealed cannot be checked, which is not a tampering
        self.configure(key2)
        v = self.verify(3)
        self.assertEqual(v['state'], 'unverified')
        self.assertIn('cannot be checked without it', v['not_verified'])
        # tampering with an entry of the new key is still seen
        self.t.query("UPDATE anonymizer.runs SET error = 'x' WHERE seq = 4")
        self.assert_fault('edited', 4)

    def test_without_a_key(self):
        self.write_config([self.t], extra='retention = "30 days";')
        self.nights(1)
        res = self.anonymizer('history', '--verify', expect=78)
        self.assertIn('no audit_key_file', res.stderr)
        self.assertIn('not chained', self.anonymizer('history', expect=0).stdout)
        # the chain starts when a key is configured; what came before is counted apart
        self.configure(self.key1)
        self.nights(1)
        v = self.verify(0)
        self.assertEqual((v['entries'], v['unchained_entries']), (1, 1), v)
        # a key readable by others is refused
        os.chmod(self.key1, 0o644)
        res = self.anonymizer('history', '--verify', expect=78)
        self.assertIn('readable by other users', res.stderr)


if __name__ == '__main__':
    harness.main()
