"""anonymizer report --format nagios: one status line with perfdata, long
output, exit status 0 to 3, in every state; parsed as a Nagios plugin parser
reads it (plugin guidelines: "SERVICE STATUS - text | perfdata", perfdata
'label'=value[UOM];[warn];[crit];[min];[max])."""

import re

import harness
from forms import full_submission, standard_form

STATES = {'OK': 0, 'WARNING': 1, 'CRITICAL': 2, 'UNKNOWN': 3}
PERF_ITEM = re.compile(r"""^('(?:[^'=]|'')+'|[^'=\s]+)=(U|-?\d+(?:\.\d+)?)(s|us|ms|%|B|KB|MB|TB|c)?"""
                       r"""(?:;(-?\d+(?:\.\d+)?)?)?(?:;(-?\d+(?:\.\d+)?)?)?(?:;(-?\d+(?:\.\d+)?)?)?"""
                       r"""(?:;(-?\d+(?:\.\d+)?)?)?$""")


def ago(days, hours=0):
    return f"now() - interval '{days} days' - interval '{hours} hours'"


def parse_plugin_output(text):
    """As Nagios does: the first line is the status text and perfdata (after '|'), the rest long output."""
    lines = text.split('\n')
    assert lines[-1] == '', 'output must end with a newline'
    first, long_output = lines[0], lines[1:-1]
    assert first.count('|') <= 1, f'at most one "|" on the status line: {first!r}'
    status, _, perf = (p.strip() for p in first.partition('|'))
    m = re.match(r'^ANONYMIZER (OK|WARNING|CRITICAL|UNKNOWN) - (\S.*)$', status)
    assert m, f'status line: {status!r}'
    items = {}
    for item in perf.split():
        pm = PERF_ITEM.match(item)
        assert pm, f'perfdata item {item!r}'
        items[pm.group(1).strip("'")] = {'value': pm.group(2), 'warn': pm.group(4), 'crit': pm.group(5)}
    for line in long_output:
        assert '|' not in line, f'long output: {line!r}'
    return m.group(1), m.group(2), items, long_output


class NagiosTests(harness.TestCase):

    def check(self, *args, expect_state):
        res = self.anonymizer('report', '--format', 'nagios', *args)
        state, text, perf, long_output = parse_plugin_output(res.stdout)
        self.assertEqual(state, expect_state, res.stdout)
        self.assertEqual(res.returncode, STATES[state], res)
        return text, perf, long_output

    def tenant_that_ran(self, name=None, ran_hours_ago=2):
        """A tenant whose last successful run started ran_hours_ago hours ago."""
        t = self.tenant(name=name)
        f = t.add_form(standard_form())
        self.write_config([t], extra='retention = "90 days";')
        self.anonymizer('run', expect=0)
        t.query(f"UPDATE anonymizer.runs SET finished_at = now() - interval '{ran_hours_ago} hours',"
                f" started_at = now() - interval '{ran_hours_ago} hours' - interval '5 seconds'")
        return t, f

    def test_ok_right_after_a_normal_night_with_the_default_retention(self):
        """retention = 90 days, the legal limit: the oldest personal data is always about 89 days old after a
        night. That is the process working: OK."""
        t, f = self.tenant_that_ran()
        full_submission(t, f, ref=ago(89, 12), marker='oldest')
        text, perf, long_output = self.check(expect_state='OK')
        self.assertEqual(text, '1 tenant compliant, 0 due')
        self.assertEqual(perf['tenants']['value'], '1')
        self.assertEqual(perf['oldest_days'], {'value': '89', 'warn': '80', 'crit': '90'})
        self.assertEqual(perf['last_run_hours']['value'], '2')
        self.assertEqual(perf['last_run_hours']['warn'], '36')
        self.assertEqual(perf['past_limit']['value'], '0')
        self.assertEqual(long_output, [])
        # --warning 1 changes nothing: nothing was left behind
        self.check('--warning', '1', expect_state='OK')

    def test_warning_when_the_last_run_left_data_behind(self):
        t, f = self.tenant_that_ran()
        self.write_config([t], extra='retention = "30 days";')
        full_submission(t, f, ref=ago(40), marker='left')
        text, perf, long_output = self.check(expect_state='WARNING')
        self.assertEqual(text, '1 form with personal data the last run left behind')
        self.assertEqual(perf['left_behind']['value'], '1')
        self.assertRegex(long_output[0], rf'^WARNING: {t.name}/demande-rdv: personal data due since \S+ left by the'
                                         r' last run')

    def test_warning_after_a_missed_night(self):
        t, f = self.tenant_that_ran(ran_hours_ago=40)
        full_submission(t, f, ref=ago(3), marker='young')
        text, perf, long_output = self.check(expect_state='WARNING')
        self.assertEqual(text, '1 tenant without a successful run for 36 hours')
        self.assertEqual(perf['last_run_hours']['value'], '40')
        self.assertEqual(perf['stale_tenants']['value'], '1')
        self.assertRegex(long_output[0], rf'^WARNING: {t.name}: last successful run \S+, 40 hours ago')
        self.check('--stale', '48', expect_state='OK')
        # never ran: stale too, and the age of the last run is unknown
        other = self.tenant()
        self.write_config([t, other], extra='retention = "90 days";')
        text, perf, long_output = self.check('--stale', '48', expect_state='WARNING')
        self.assertEqual(perf['last_run_hours']['value'], 'U')
        self.assertIn(f'WARNING: {other.name}: no successful run recorded', long_output)

    def test_critical(self):
        t, f = self.tenant_that_ran()
        full_submission(t, f, ref=ago(99, 12), marker='late')   # 9.5 days past: rounded up
        full_submission(t, f, ref=ago(85), marker='old')
        text, perf, long_output = self.check(expect_state='CRITICAL')
        self.assertEqual(text, 'personal data past the legal limit in 1 form (10 days at most)')
        self.assertEqual(perf['past_limit']['value'], '1')
        self.assertEqual(perf['oldest_days']['value'], '99')
        self.assertRegex(long_output[0], rf'^CRITICAL: {t.name}/demande-rdv: personal data 10 days past the limit')
        # an open submission nobody touched for more than open_limit is critical too
        t2, f2 = self.tenant_that_ran()
        full_submission(t2, f2, ref=ago(400), status='wf-new', marker='forgotten')
        self.write_config([t2], extra='retention = "90 days";')
        text, perf, _ = self.check(expect_state='CRITICAL')
        self.assertEqual(text, '1 open submission inactive past open_limit')
        self.assertEqual(perf['open_inactive']['value'], '1')

    def test_a_tenant_that_cannot_be_checked_is_critical(self):
        t, f = self.tenant_that_ran()
        full_submission(t, f, ref=ago(3), marker='young')
        self.write_config([t, ('down|x', 'host=/nonexistent/anonymizer-nagios dbname=x')],
                          extra='retention = "90 days";')
        text, perf, long_output = self.check(expect_state='CRITICAL')
        self.assertEqual(text, '1 tenant or form could not be checked')
        self.assertEqual(perf['unchecked']['value'], '1')
        self.assertTrue(long_output[0].startswith('CRITICAL: down/x: could not be checked: cannot connect'))
        full_submission(t, f, ref=ago(100), marker='late')
        text, _, _ = self.check(expect_state='CRITICAL')
        self.assertRegex(text, r'^personal data past the legal limit in 1 form \(1[01] days at most\), 1 tenant or'
                               r' form could not be checked$')
        # no tenant reachable: nothing could be checked, critical too
        self.write_config([('down', 'host=/nonexistent/anonymizer-nagios dbname=x')])
        self.check(expect_state='CRITICAL')
        # the plugin's own failures, a broken configuration, a bad option: UNKNOWN, not 78 or 64
        with open(self.config_path, 'a') as fp:
            fp.write('retention = "6 months";\n')
        text, _, _ = self.check(expect_state='UNKNOWN')
        self.assertIn('retention', text)
        text, _, _ = self.check('--warning', 'x', expect_state='UNKNOWN')
        self.assertIn('--warning must be a number', text)

    def test_options_belong_to_nagios(self):
        t = self.tenant()
        self.write_config([t])
        self.anonymizer('report', '--warning', '5', expect=64)
        self.anonymizer('report', '--format', 'json', '--stale', '5', expect=64)


if __name__ == '__main__':
    harness.main()
