"""Two hosts, one platform: the same nightly job on both application
servers (as Puppet deploys it), the tenants shared through PostgreSQL's
advisory locks and the runs' audit; a tenant done or being done by the
other is not an error; each tenant done exactly once, the host that did it
in the history."""

import json
import socket

import harness
import wcs
from forms import standard_form


class PlatformTests(harness.TestCase):

    def test_two_hosts_at_once_do_each_tenant_once_and_say_nothing(self):
        tenants = []
        for i in range(6):
            t = self.tenant()
            f = t.add_form(standard_form())
            with t.conn.cursor() as cur:
                wcs.populate(cur, f, 800, max_age_days=300)
            tenants.append(t)
        # a "*" entry that every tenant has: no host may call it a typo for the tenants it left to the other
        self.write_config(tenants, extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "demande-rdv"; retention = "40 days"; }'])
        procs = [self.start_anonymizer('-q', 'run') for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assert_no_sanitizer_report(err)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual((out, harness.without_superuser_warning(err)), ('', ''))
        run_ids = set()
        for t in tenants:
            runs = t.query("SELECT run_id, outcome, host FROM anonymizer.runs WHERE command = 'run'")
            self.assertEqual([r[1] for r in runs], ['ok'], t.name)
            self.assertEqual(runs[0][2], socket.gethostname())
            run_ids.add(runs[0][0])
        # both hosts took part (each started with the tenants the other had not taken)
        self.assertEqual(len(run_ids), 2, run_ids)
        # the history names the host of each tenant's run
        text = self.anonymizer('history').stdout
        self.assertIn(f'(on {socket.gethostname()}, version', text)
        doc = json.loads(self.anonymizer('history', '--format', 'json').stdout)
        self.assertTrue(all(r['host'] == socket.gethostname() for t in doc['tenants'] for r in t['runs']))
        # a run after them: not skipped (only a run that finished while this one was going was a peer's)
        self.anonymizer('-q', 'run', expect=0)
        for t in tenants:
            self.assertEqual(t.one("SELECT count(*) FROM anonymizer.runs WHERE command = 'run'")[0], 2)


if __name__ == '__main__':
    harness.main()
