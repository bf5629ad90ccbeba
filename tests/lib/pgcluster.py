"""A throwaway PostgreSQL cluster for tests and the demo.

initdb into a temporary directory (as user postgres when running as root),
trust authentication, fsync off, listening only on a private Unix socket
directory, started with pg_ctl -w.  The cluster is stopped whatever happens:
on normal exit, on an exception, on SIGTERM, and by a watchdog process if
the Python process is killed outright.  The directory is kept when
keep=True (a failed test) so its server log can be read.
"""

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2
from psycopg2 import sql


def bindir():
    out = subprocess.run(['pg_config', '--bindir'], check=True, capture_output=True, text=True).stdout.strip()
    # pg_config of the client package may point at /usr/bin; the server
    # binaries live in the versioned directory on Debian
    if not os.path.exists(os.path.join(out, 'initdb')):
        for version in ('17', '16', '15'):
            candidate = f'/usr/lib/postgresql/{version}/bin'
            if os.path.exists(os.path.join(candidate, 'initdb')):
                return candidate
    return out


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, name='anonymizer-test', settings=None):
        self.name = name
        self.settings = settings or {}
        self.bindir = bindir()
        self.base = None
        self.port = None
        self.running = False
        self.keep = False
        self._watchdog = None
        self._as_postgres = os.geteuid() == 0

    # -- helpers
    def _run(self, args, **kw):
        if self._as_postgres:
            pw = pwd.getpwnam('postgres')

            def demote():
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)

            kw['preexec_fn'] = demote
            kw.setdefault('cwd', '/')
        return subprocess.run(args, check=True, capture_output=True, text=True, **kw)

    @property
    def datadir(self):
        return os.path.join(self.base, 'data')

    @property
    def sockdir(self):
        return os.path.join(self.base, 'sock')

    @property
    def logfile(self):
        return os.path.join(self.base, 'server.log')

    def conninfo(self, dbname='postgres', user='postgres'):
        def q(v):
            return "'" + str(v).replace('\\', '\\\\').replace("'", "\\'") + "'"
        return f'host={q(self.sockdir)} port={self.port} dbname={q(dbname)} user={q(user)}'

    def connect(self, dbname='postgres', user='postgres', autocommit=True):
        conn = psycopg2.connect(host=self.sockdir, port=self.port, dbname=dbname, user=user)
        conn.autocommit = autocommit
        return conn

    # -- lifecycle
    def start(self):
        self.base = tempfile.mkdtemp(prefix=f'{self.name}-')
        os.chmod(self.base, 0o755)
        os.mkdir(self.sockdir)
        if self._as_postgres:
            pw = pwd.getpwnam('postgres')
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            os.chown(self.sockdir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self._run([os.path.join(self.bindir, 'initdb'), '-D', self.datadir, '-U', 'postgres', '--auth=trust',
                   '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'])
        conf = {
            'listen_addresses': "''",
            'unix_socket_directories': f"'{self.sockdir}'",
            'port': str(self.port),
            'fsync': 'off',
            'synchronous_commit': 'off',
            'full_page_writes': 'off',
            'max_connections': '60',
            'shared_buffers': '64MB',
            'log_line_prefix': "'%m [%p] %a '",
            'log_lock_waits': 'on',
            'autovacuum': 'off',
        }
        conf.update(self.settings)
        with open(os.path.join(self.datadir, 'postgresql.conf'), 'a') as f:
            for k, v in conf.items():
                f.write(f'{k} = {v}\n')
        self._run([os.path.join(self.bindir, 'pg_ctl'), '-D', self.datadir, '-l', self.logfile, '-w', '-t', '60',
                   'start'])
        self.running = True
        atexit.register(self.stop)
        self._start_watchdog()
        return self

    def _start_watchdog(self):
        # stops the cluster if this process dies without running atexit (SIGKILL)
        pg_ctl = os.path.join(self.bindir, 'pg_ctl')
        stop = f'{pg_ctl} -D {self.datadir} -m immediate stop'
        if self._as_postgres:
            stop = f'runuser -u postgres -- {stop}'
        script = (f'while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; '
                  f'if [ -f {self.datadir}/postmaster.pid ]; then {stop} >/dev/null 2>&1; '
                  f'rm -rf {self.base}; fi')
        self._watchdog = subprocess.Popen(['sh', '-c', script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        if self.running:
            try:
                self._run([os.path.join(self.bindir, 'pg_ctl'), '-D', self.datadir, '-m', 'immediate', '-w',
                           'stop'])
            except subprocess.CalledProcessError:
                pass
            self.running = False
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self.base and os.path.exists(self.base):
            if self.keep:
                sys.stderr.write(f'kept cluster directory {self.base} (server log: {self.logfile})\n')
            else:
                shutil.rmtree(self.base, ignore_errors=True)
        self.base = None if not self.keep else self.base
        self.keep = False

    def server_log(self):
        try:
            with open(self.logfile) as f:
                return f.read()
        except OSError:
            return ''

    def createdb(self, name):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL('CREATE DATABASE {}').format(sql.Identifier(name)))
        finally:
            conn.close()

    def dropdb(self, name):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))
        finally:
            conn.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def install_sigterm_handler():
    """Turns SIGTERM into SystemExit so that atexit and finally blocks run."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
