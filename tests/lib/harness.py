"""Integration test harness: the real binary against a real PostgreSQL.

One throwaway cluster per test module (started lazily, stopped at exit, kept
on failure); each test builds its own tenant databases, definitions and
configuration in a private directory, runs the binary and asserts on the
data.  Sanitizer reports in the binary's stderr fail the test whatever its
exit status.
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))

import pgcluster  # noqa: E402
import wcs  # noqa: E402

BINARY = os.environ.get('ANONYMIZER_BIN') or os.path.join(os.path.dirname(__file__), '..', '..', 'build',
                                                          'anonymizer', 'anonymizer')
SANITIZER_MARKERS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:',
                     'ERROR: UndefinedBehaviorSanitizer')

_clusters = {}
_failed = [False]


def cluster(name='main', settings=None):
    """The module's shared cluster (a second name gives a second server); settings: postgresql.conf lines of
    its own, given when it is first asked for."""
    if name not in _clusters:
        pgcluster.install_sigterm_handler()
        _clusters[name] = pgcluster.Cluster(f'anonymizer-it-{name}', settings=settings).start()
    return _clusters[name]


def stop_clusters():
    for c in _clusters.values():
        c.keep = _failed[0] and os.environ.get('KEEP_CLUSTER_ON_FAILURE', '1') == '1'
        c.stop()
    _clusters.clear()


class Result:
    def __init__(self, proc, stdout, stderr):
        self.returncode = proc.returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return f'<exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}>'


_counter = [0]


def unique(prefix):
    _counter[0] += 1
    return f'{prefix}_{os.getpid()}_{_counter[0]}'


def table_checksums(conn, schemas=('public',)):
    """md5 of every table's rows (ordered), keyed by schema.table."""
    out = {}
    with conn.cursor() as cur:
        cur.execute("""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind = 'r' AND n.nspname = ANY(%s) ORDER BY 1, 2""", (list(schemas),))
        for nsp, rel in cur.fetchall():
            cur.execute(f'SELECT md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), \'\'))'
                        f' FROM {wcs.qi(nsp)}.{wcs.qi(rel)} t')
            out[f'{nsp}.{rel}'] = cur.fetchone()[0]
    return out


class Tenant:
    """A w.c.s. tenant database on a cluster."""

    def __init__(self, case, name, cluster_name='main', dbname=None, create=True):
        """create False: the database exists already (a copy of another tenant's)."""
        self.case = case
        self.name = name
        self.cluster = cluster(cluster_name)
        self.dbname = dbname or unique('wcs')
        if create:
            self.cluster.createdb(self.dbname)
        self.conn = self.cluster.connect(self.dbname)
        if create:
            with self.conn.cursor() as cur:
                wcs.create_tenant(cur)
        self.forms = []
        case.addCleanup(self.close)

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass

    @property
    def conninfo(self):
        return self.cluster.conninfo(self.dbname)

    def copy_database(self, name):
        """A copy of this tenant's database under another name (CREATE DATABASE ... TEMPLATE)."""
        self.conn.close()
        admin = self.cluster.connect('postgres')
        try:
            admin.cursor().execute(f'CREATE DATABASE {wcs.qi(name)} TEMPLATE {wcs.qi(self.dbname)}')
        finally:
            admin.close()
            self.conn = self.cluster.connect(self.dbname)

    def add_form(self, form, definition=True, **def_kw):
        with self.conn.cursor() as cur:
            wcs.create_form(cur, form)
        if definition:
            form.write_definition(self.case.schemas, self.name, **def_kw)
        self.forms.append(form)
        return form

    def insert(self, form, **kw):
        with self.conn.cursor() as cur:
            return wcs.insert_submission(cur, form, **kw)

    def query(self, sql, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def one(self, sql, params=None):
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def row(self, form, fid):
        with self.conn.cursor() as cur:
            cur.execute(f'SELECT * FROM {wcs.qi(form.table)} WHERE id = %s', (fid,))
            r = cur.fetchone()
            if r is None:
                return None
            return dict(zip([d[0] for d in cur.description], r))

    def allforms(self, form, fid):
        with self.conn.cursor() as cur:
            cur.execute('SELECT * FROM wcs_all_forms WHERE formdef_id = %s AND id = %s', (form.id, fid))
            r = cur.fetchone()
            if r is None:
                return None
            return dict(zip([d[0] for d in cur.description], r))

    def history(self, form, fid):
        with self.conn.cursor() as cur:
            cur.execute(f'SELECT who, status, time, comment, parts FROM {wcs.qi(form.evolutions)}'
                        f' WHERE formdata_id = %s ORDER BY id', (fid,))
            return cur.fetchall()

    def anonymizer_waiting(self, longer_than='0'):
        """True while an anonymizer session of this database waits for a lock (in a statement running for
        longer_than, an interval: a batch's first try, without locks taken first, gives up after 100 ms)."""
        return self.one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = 'anonymizer' AND wait_event_type = 'Lock'"
                        " AND now() - query_start > %s::interval", (longer_than,))[0] > 0

    def checksums(self):
        return table_checksums(self.conn)

    def runs(self):
        return self.query('SELECT run_id, outcome, forms, error, started_at, finished_at, config_sha256, version, host'
                          ' FROM anonymizer.runs ORDER BY started_at')


SUPERUSER_WARNING = re.compile(r'^anonymizer: warning: [^\n]*: connected as "[^"]*", a superuser: [^\n]*\n', re.M)


def without_superuser_warning(stderr):
    """stderr less the warning of a superuser connection (the test clusters' own role is one): what a test
    about something else must find empty"""
    return SUPERUSER_WARNING.sub('', stderr)


def cfgstr(value):
    """value as the inside of a libconfig string"""
    return value.replace('\\', '\\\\').replace('"', '\\"')


class TestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='anonymizer-it-')
        self.schemas = os.path.join(self.dir, 'schemas')
        os.makedirs(self.schemas)
        self.config_path = os.path.join(self.dir, 'anonymizer.conf')

    def run(self, result=None):
        # remember failures so the cluster (and this test's directory) are kept for inspection
        before = (len(result.failures), len(result.errors)) if result else (0, 0)
        out = super().run(result)
        if result and (len(result.failures), len(result.errors)) != before:
            _failed[0] = True
            sys.stderr.write(f'kept test directory {getattr(self, "dir", "?")}\n')
        elif getattr(self, 'dir', None):
            shutil.rmtree(self.dir, ignore_errors=True)
        return out

    def tenant(self, name=None, **kw):
        return Tenant(self, name or unique('tenant'), **kw)

    def write_config(self, tenants, extra='', mode=0o600, forms=None, path=None):
        """tenants: list of Tenant or (name, conninfo, extra settings) tuples."""
        lines = [f'schemas = "{cfgstr(self.schemas)}";', extra, 'tenants = (']
        items = []
        for t in tenants:
            if isinstance(t, Tenant):
                items.append(f'  {{ name = "{cfgstr(t.name)}"; conninfo = "{cfgstr(t.conninfo)}"; }}')
            else:
                name, conninfo, more = (t + ('',))[:3]
                items.append(f'  {{ name = "{cfgstr(name)}"; conninfo = "{cfgstr(conninfo)}"; {more} }}')
        lines.append(',\n'.join(items))
        lines.append(');')
        if forms:
            lines.append('forms = (' + ',\n'.join(forms) + ');')
        path = path or self.config_path
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        os.chmod(path, mode)
        return path

    def anonymizer(self, *args, config=None, expect=None, timeout=300, env=None):
        cmd = [BINARY]
        if config is not False:
            cmd += ['-c', config or self.config_path]
        cmd += list(args)
        full_env = dict(os.environ)
        full_env.update(env or {})
        # bytes, decoded without newline translation (CSV lines end with CRLF)
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=full_env)
        res = Result(proc, proc.stdout.decode(), proc.stderr.decode())
        self.assert_no_sanitizer_report(res.stderr)
        if expect is not None:
            self.assertEqual(res.returncode, expect, res)
        return res

    def start_anonymizer(self, *args, config=None, env=None):
        cmd = [BINARY, '-c', config or self.config_path] + list(args)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, **(env or {})))

    def assert_no_sanitizer_report(self, stderr):
        for marker in SANITIZER_MARKERS:
            if marker in stderr:
                self.fail(f'sanitizer report in the binary output:\n{stderr}')

    def wait_until(self, predicate, timeout=60, interval=0.01):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return False


def main():
    try:
        unittest.main(verbosity=2)
    finally:
        stop_clusters()
