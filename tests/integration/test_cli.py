"""Command line, configuration and definition errors, and the check command.

Bad input gets one clear error line and a documented exit status, and
changes nothing."""

import os
import re
import subprocess

import harness
from forms import full_submission, standard_form


def ago(days):
    return f"now() - interval '{days} days'"


class CliTests(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.t = self.tenant()
        self.f = self.t.add_form(standard_form())
        self.fid = full_submission(self.t, self.f, ref=ago(40))
        self.sums = self.t.checksums()

    def assert_unchanged(self):
        self.assertEqual(self.t.checksums(), self.sums)
        self.assertIsNone(self.t.one("SELECT to_regclass('anonymizer.runs')")[0])

    def assert_one_error_line(self, res, *needles):
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        self.assertTrue(lines and lines[0].startswith('anonymizer: error: '), res)
        errors = [line for line in lines if line.startswith('anonymizer: error: ')]
        self.assertEqual(len(errors), 1, res)
        for n in needles:
            self.assertIn(n, errors[0])

    # -- usage ---------------------------------------------------------------

    def test_help_and_version(self):
        res = self.anonymizer('--help', config=False, expect=0)
        for word in ('run', 'check', '--config', '--tenant', '--verbose', '--quiet', 'Exit status'):
            self.assertIn(word, res.stdout)
        res = self.anonymizer('--version', config=False, expect=0)
        self.assertRegex(res.stdout, r'^anonymizer \d+\.\d+\.\d+\n$')

    def test_output_that_cannot_be_written_is_an_error(self):
        """report > /dev/full: one error line and exit 74, never 0 over a report nobody got."""
        self.write_config([self.t], extra='retention = "30 days";')
        for args in (['report'], ['report', '--format', 'json'], ['check'], ['history'], ['--help'],
                     ['report', '--format', 'csv', '--jobs', '2']):
            with self.subTest(args=args), open('/dev/full', 'w') as full:
                cmd = [harness.BINARY] + ([] if args == ['--help'] else ['-c', self.config_path]) + args
                proc = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
                self.assert_no_sanitizer_report(proc.stderr)
                self.assertEqual(proc.returncode, 74, proc.stderr)
                self.assertRegex(proc.stderr, r'^anonymizer: error: cannot write the output: [^\n]+\n$')
        self.assert_unchanged()

    def test_usage_errors(self):
        self.write_config([self.t])
        for args in ([], ['frobnicate'], ['--frobnicate', 'run'], ['-v', '-q', 'run'], ['run', 'extra'],
                     ['-t', 'nobody', 'run'], ['-c']):
            with self.subTest(args=args):
                res = self.anonymizer(*args, expect=64)
                self.assert_one_error_line(res)
                self.assertIn('Try "anonymizer --help"', res.stderr)
        self.assert_unchanged()

    # -- configuration ------------------------------------------------------

    def test_retention_past_the_cap_is_refused(self):
        for value in ('91 days', '13 weeks', '4 months'):
            with self.subTest(value=value):
                self.write_config([self.t], extra=f'retention = "{value}";')
                res = self.anonymizer('run', expect=78)
                self.assert_one_error_line(res, self.config_path + ':2:', 'retention', value, 'three months')
        self.assert_unchanged()

    def test_configuration_errors(self):
        cases = [
            ('retension = "30 days";', 'retension: unknown setting'),
            ('batch_size = 0;', 'batch_size: 0 is out of range'),
            ('vacuum = "no";', 'vacuum: must be true or false'),
            ('forms = ( { tenant = "elsewhere"; slug = "x"; } );', 'unknown tenant "elsewhere"'),
            ('retention = 30;', 'retention: must be a string'),
            ('batch_size = ;', 'syntax error'),
        ]
        for extra, needle in cases:
            with self.subTest(extra=extra):
                self.write_config([self.t], extra=extra)
                res = self.anonymizer('run', expect=78)
                self.assert_one_error_line(res, needle)
        self.assert_unchanged()

    def test_configuration_files_that_are_not_plain_text(self):
        """@include (a file nobody checked), a NUL byte, a FIFO, /dev/zero, a huge file: one clear error, exit
        78, never a hang nor an out-of-memory."""
        secret = os.path.join(self.dir, 'secret.conf')
        with open(secret, 'w') as fp:
            fp.write('bi = { conninfo = "dbname=x password=WorldReadable1"; };\n')
        os.chmod(secret, 0o644)
        self.write_config([self.t], extra=f'@include "{secret}"')
        res = self.anonymizer('run', expect=78)
        self.assert_one_error_line(res, '@include is not supported')
        self.assertNotIn('WorldReadable1', res.stderr)
        self.write_config([self.t], extra='  @include "/etc/passwd"')
        self.assert_one_error_line(self.anonymizer('check', expect=78), 'anonymizer.conf:2: @include is not supported')
        # a NUL would cut the string there, silently
        path = self.write_config([self.t], extra='retention = "30 days";')
        with open(path, 'rb') as fp:
            text = fp.read()
        with open(path, 'wb') as fp:
            fp.write(text.replace(b'30 days', b'30\0 days'))
        self.assert_one_error_line(self.anonymizer('run', expect=78), 'a NUL byte in the configuration file')
        # not a regular file: refused before reading (a FIFO would block, /dev/zero never end)
        fifo = os.path.join(self.dir, 'fifo.conf')
        os.mkfifo(fifo)
        zero = os.path.join(self.dir, 'zero.conf')
        os.symlink('/dev/zero', zero)
        for special in (fifo, zero, self.dir):
            res = self.anonymizer('run', config=special, expect=78, timeout=30)
            self.assert_one_error_line(res, 'not a regular file')
        # at most 1 MiB
        big = os.path.join(self.dir, 'big.conf')
        with open(big, 'w') as fp:
            fp.write('# ' + 'x' * (1024 * 1024) + '\n')
        os.chmod(big, 0o600)
        self.assert_one_error_line(self.anonymizer('run', config=big, expect=78), 'larger than 1 MiB')
        self.assert_unchanged()

    def test_password_in_a_readable_file(self):
        self.write_config([('x', self.t.conninfo + ' password=Hunter2Secret')], mode=0o644)
        res = self.anonymizer('run', expect=78)
        self.assert_one_error_line(res, 'readable by other users', '.pgpass')
        self.assertNotIn('Hunter2Secret', res.stderr)
        self.assert_unchanged()

    def test_missing_configuration(self):
        res = self.anonymizer('run', config=os.path.join(self.dir, 'none.conf'), expect=78)
        self.assert_one_error_line(res, 'none.conf', 'No such file')

    def test_configuration_from_environment(self):
        self.write_config([self.t], extra='retention = "30 days";')
        other = self.write_config([self.t], extra='retention = "91 days";', path=os.path.join(self.dir, 'bad.conf'))
        # $ANONYMIZER_CONFIG is used without -c ...
        res = self.anonymizer('check', config=False, env={'ANONYMIZER_CONFIG': other}, expect=78)
        self.assertIn('bad.conf', res.stderr)
        # ... and -c wins over it
        self.anonymizer('check', env={'ANONYMIZER_CONFIG': other}, expect=0)

    # -- definitions -----------------------------------------------------------

    def test_bad_definitions_fail_their_tenant_only(self):
        path = os.path.join(self.schemas, self.t.name, 'demande-rdv.json')
        other = self.tenant()
        of = other.add_form(standard_form())
        ofid = full_submission(other, of, ref=ago(40))
        cases = [
            ('{"url_name": "demande-rdv", "fields": [', 'malformed JSON'),
            ('{"url_name": "demande-rdv", "fields": [{"type": "string", "label": "Nom"}]}', 'has no id'),
            ('{"url_name": "autre", "fields": []}', 'does not match the file name'),
        ]
        self.write_config([self.t, other], extra='retention = "30 days";')
        for text, needle in cases:
            with self.subTest(needle=needle):
                with open(path, 'w') as fp:
                    fp.write(text)
                res = self.anonymizer('run', expect=1)
                errors = [line for line in res.stderr.splitlines() if line.startswith('anonymizer: error: ')]
                self.assertEqual(len(errors), 1, res)
                for n in (f'error: {self.t.name}: ', path, needle):
                    self.assertIn(n, errors[0])
        self.assert_unchanged()
        # the other tenant was processed every time
        self.assertIsNotNone(other.row(of, ofid)['anonymised'])

    # -- check -------------------------------------------------------------------

    def test_check_prints_classification_and_writes_nothing(self):
        import wcs
        self.t.query(f'ALTER TABLE {wcs.qi(self.f.table)} ADD COLUMN f99 varchar')
        self.sums = self.t.checksums()
        self.write_config([self.t], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "demande-rdv"; keep = ["nom"]; }'])
        res = self.anonymizer('check', expect=0)
        out = res.stdout
        self.assertIn(f'tenant {self.t.name}: reachable, 1 form, 1 definition, listed in tenants', out)
        self.assertIn('form demande-rdv "Demande de rendez-vous"', out)
        self.assertIn('retention 30 days (global)', out)
        self.assertRegex(out, r'f1 +keep +configuration: keep +Nom \[nom\]')
        self.assertRegex(out, r'f2 +keep +definition: anonymise no +Motif \[motif\]')
        self.assertRegex(out, r'f3 +blank +definition: anonymise final')
        self.assertRegex(out, r'f99 +unclassified +not in the definition')
        self.assertIn('final statuses: wf-done wf-rejected', out)
        self.assertIn('metadata set to NULL: user_id', out)
        self.assert_unchanged()

    def test_log_priorities_when_stderr_is_the_journal(self):
        """Under systemd (JOURNAL_STREAM names stderr's device and inode), lines carry sd-daemon priorities, so
        that journalctl -p warning shows warnings and errors, and no program name (the journal has it)."""
        t = self.tenant()
        t.add_form(standard_form())
        self.write_config([t, ('down', 'host=/nonexistent/anonymizer-journal dbname=x')],
                          forms=['{ tenant = "*"; slug = "no-such-form"; retention = "30 days"; }'])
        as_journal = ('JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" -c "$1" check')
        res = subprocess.run(['sh', '-c', as_journal, harness.BINARY, self.config_path], capture_output=True,
                             text=True, timeout=120)
        lines = res.stderr.splitlines()
        self.assertTrue(lines, res)
        self.assertTrue(all(re.match(r'^<[3467]>', line) for line in lines), lines)
        self.assertFalse([line for line in lines if 'anonymizer:' in line.split(' ')[0]], lines)
        self.assertTrue(any(line.startswith('<4>warning: ') and 'matches no table' in line for line in lines), lines)
        # stderr redirected elsewhere (JOURNAL_STREAM inherited, but not this stream): plain lines
        res = subprocess.run([harness.BINARY, '-c', self.config_path, 'check'], capture_output=True, text=True,
                             env=dict(os.environ, JOURNAL_STREAM='1:1'), timeout=120)
        self.assertTrue(all(line.startswith('anonymizer: ') for line in res.stderr.splitlines()), res.stderr)

    def test_check_unreachable(self):
        self.write_config([('down', 'host=/nonexistent dbname=x')])
        res = self.anonymizer('check', expect=69)
        self.assertIn('tenant down: UNREACHABLE', res.stdout)


if __name__ == '__main__':
    harness.main()
