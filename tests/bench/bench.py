"""The performance benchmark (on demand, not in CI): tests/bench/run.

Builds w.c.s.-faithful tenants (default 4 tenants x 3 forms, 500,000
submissions in all, with history rows, tracking codes, wcs_all_forms with
its trigger, and a workflow trace per submission with w.c.s.'s BEFORE DELETE
trigger) as template databases, then measures on the same data, reset
from the templates between contestants:

  1. anonymizer run (anonymisation only, --jobs 1), and its longest batch;
  2. the same changes as one UPDATE/DELETE per table (a static-masking tool);
  3. one UPDATE per submission from a client (an ORM), on one form;
  4. anonymizer export versus a raw COPY TO STDOUT | COPY FROM STDIN pipe;
  5. anonymizer run then export;
  6. --jobs 2 versus --jobs 1;
  7. peak RSS and longest batch of a run at 20,000, 100,000 and 1,000,000
     submissions, and the report on the 1,000,000-submission tenant;
  8. one tenant of 200,000 submissions (one large form, two small):
     --jobs 1 and --jobs 2 against the single statement (with and without
     JIT), the four in turn over rounds (medians compared);
  9. steady nights on a form of 100,000 and one of 1,000,000 rows
     (tests/bench/steady.py).

The export against the raw pipe alternates over rounds too (--export-rounds).

Ratios, not absolute times, are the claim: every contestant runs in the same
process on the same machine, minutes apart.
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))

import pgcluster  # noqa: E402
import wcs  # noqa: E402
from forms import standard_form  # noqa: E402
from steady import Steady  # noqa: E402

RETENTION_DAYS = 30
SLUGS = ['demande-rdv', 'inscription-cantine', 'signalement-voirie']


def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.binary = os.path.abspath(args.binary)
        self.work = tempfile.mkdtemp(prefix='anonymizer-bench-')
        self.schemas = os.path.join(self.work, 'schemas')
        self.cluster = pgcluster.Cluster('anonymizer-bench', settings={
            'shared_buffers': "'512MB'", 'max_wal_size': "'8GB'", 'checkpoint_timeout': "'30min'",
            'work_mem': "'16MB'", 'maintenance_work_mem': "'256MB'"})
        self.results = {}
        self.rows = []

    # -- data ------------------------------------------------------------------------
    def forms(self):
        return [standard_form(i + 1, SLUGS[i % len(SLUGS)] + ('' if i < len(SLUGS) else f'-{i}'),
                              SLUGS[i % len(SLUGS)].replace('-', ' ').capitalize())
                for i in range(self.args.forms)]

    def build_template(self, name, per_form, max_age_days, copy_of=None, factor=1, sizes=None):
        """A template tenant; copy_of and factor: copies of another template's submissions; sizes: per form."""
        if copy_of:
            admin = self.cluster.connect()
            admin.cursor().execute(f'CREATE DATABASE {name} TEMPLATE {copy_of} STRATEGY FILE_COPY')
            admin.close()
        else:
            self.cluster.createdb(name)
        conn = self.cluster.connect(name)
        with conn.cursor() as cur:
            if not copy_of:
                wcs.create_tenant(cur)
            for i, f in enumerate(self.forms()):
                if copy_of:
                    wcs.replicate(cur, f, factor)
                else:
                    wcs.create_form(cur, f)
                    wcs.populate(cur, f, sizes[i] if sizes else per_form, max_age_days=max_age_days, bulk=True,
                                 traces=True)
            cur.execute('VACUUM ANALYZE')
        conn.close()

    def tenant_db(self, i):
        return f'bench_t{i}'

    def reset(self, pairs):
        """pairs: (template, database); copies the files, then a checkpoint so that runs start alike."""
        admin = self.cluster.connect()
        with admin.cursor() as cur:
            for tpl, db in pairs:
                cur.execute(f'DROP DATABASE IF EXISTS {db} WITH (FORCE)')
                cur.execute(f'CREATE DATABASE {db} TEMPLATE {tpl} STRATEGY FILE_COPY')
            cur.execute('CHECKPOINT')
        admin.close()

    def reset_main(self):
        self.reset([(f'tpl_t{i}', self.tenant_db(i)) for i in range(self.args.tenants)])

    def write_config(self, path, dbs, bi=None, extra='', min_k=1, bi_extra=''):
        lines = [f'retention = "{RETENTION_DAYS} days";', 'vacuum = false;', f'schemas = "{self.schemas}";', extra]
        if bi:
            lines.append(f'bi = {{ conninfo = "{self.cluster.conninfo(bi)}"; min_k = {min_k}; {bi_extra} }};')
        lines.append('tenants = (' + ',\n'.join(
            f'{{ name = "{db}"; conninfo = "{self.cluster.conninfo(db)}"; }}' for db in dbs) + ');')
        with open(path, 'w') as fp:
            fp.write('\n'.join(lines) + '\n')
        os.chmod(path, 0o600)
        for db in dbs:
            for f in self.forms():
                f.write_definition(self.schemas, db)
        return path

    def anonymizer(self, *args):
        """Runs the binary; returns (seconds, max RSS in KiB, stderr)."""
        t0 = time.monotonic()
        proc = subprocess.Popen([self.binary] + list(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - t0
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            raise SystemExit(f'anonymizer {" ".join(args)} failed ({code}):\n{err}')
        return seconds, usage.ru_maxrss, err

    def state(self, dbs):
        """A signature of the end state, to check that contestants did the same work."""
        out = []
        for db in dbs:
            conn = self.cluster.connect(db)
            with conn.cursor() as cur:
                for f in self.forms():
                    cur.execute(f"""SELECT count(*), count(*) FILTER (WHERE anonymised IS NOT NULL),
                                    count(*) FILTER (WHERE user_id IS NOT NULL OR f1 IS NOT NULL), count(*) FILTER
                                    (WHERE status = 'draft') FROM {wcs.qi(f.table)}""")
                    out.append(cur.fetchone())
                cur.execute('SELECT count(*) FROM tracking_codes')
                out.append(cur.fetchone())
            conn.close()
        return out

    # -- the baselines ------------------------------------------------------------------
    def sql_parts(self, f):
        blank = [c for fld in f.fields if fld.anonymise not in ('no', False) and fld.sql_type
                 for c, _ in fld.columns()]
        if 'block' in [fld.type for fld in f.fields]:
            pass
        meta = ['user_id', 'user_label', 'workflow_data', 'prefilling_data', 'workflow_roles',
                'workflow_merged_roles_dict', 'workflow_roles_array', 'concerned_roles_array', 'actions_roles_array',
                'submission_context', 'submission_agent_id', 'tracking_code', 'digests', 'fts', 'auto_geoloc',
                'geoloc_base', 'relations_data']
        keys = ['done-datetime'] + [k for fld in f.fields if fld.anonymise in ('no', False)
                                    for k in (fld.varname, fld.id, fld.column) if k]
        sets = ', '.join(f'{wcs.qi(c)} = NULL' for c in blank + meta)
        sets += (", statistics_data = (SELECT COALESCE(jsonb_object_agg(s.key, s.value), '{}'::jsonb)"
                 " FROM jsonb_each(m.statistics_data) s WHERE s.key = ANY (%(keys)s)), anonymised = COALESCE(m.anonymised, now())")
        due = (f"COALESCE(m.last_update_time, m.receipt_time) < now() - interval '{RETENTION_DAYS} days'"
               f" AND m.status IN ({', '.join(repr(e) for e in f.endpoints)})")
        dirty = ' OR '.join(f'm.{wcs.qi(c)} IS NOT NULL' for c in blank + meta)
        return sets, due, dirty, keys

    def single_statement(self, dbs, jit=True):
        for db in dbs:
            conn = self.cluster.connect(db, autocommit=False)
            with conn.cursor() as cur:
                if not jit:
                    # as anonymizer's own sessions: its statement's compilation is then not part of its cost
                    cur.execute('SET jit = off')
                for f in self.forms():
                    sets, due, dirty, keys = self.sql_parts(f)
                    t, e = wcs.qi(f.table), wcs.qi(f.evolutions)
                    cur.execute(f'DELETE FROM tracking_codes c USING {t} m WHERE c.id = m.tracking_code AND {due}')
                    cur.execute(f'UPDATE {e} e SET who = NULL, comment = NULL, parts = NULL FROM {t} m'
                                f' WHERE e.formdata_id = m.id AND {due}'
                                f' AND (e.who IS NOT NULL OR e.comment IS NOT NULL OR e.parts IS NOT NULL)')
                    cur.execute(f'UPDATE {t} m SET {sets} WHERE {due} AND (m.anonymised IS NULL OR {dirty})',
                                {'keys': keys})
                    cur.execute(f'DELETE FROM tracking_codes c USING {t} m WHERE c.id = m.tracking_code'
                                f" AND m.status = 'draft' AND COALESCE(m.last_update_time, m.receipt_time)"
                                f" < now() - interval '{RETENTION_DAYS} days'")
                    cur.execute(f"DELETE FROM {t} m WHERE m.status = 'draft' AND COALESCE(m.last_update_time,"
                                f" m.receipt_time) < now() - interval '{RETENTION_DAYS} days'")
            conn.commit()
            conn.close()

    def per_row(self, db, f, limit):
        """One transaction per submission, as an ORM saving objects one by one (the first limit ones)."""
        conn = self.cluster.connect(db, autocommit=False)
        sets, due, dirty, keys = self.sql_parts(f)
        t, e = wcs.qi(f.table), wcs.qi(f.evolutions)
        n = 0
        with conn.cursor() as cur:
            cur.execute(f'SELECT m.id, m.tracking_code FROM {t} m WHERE {due} AND (m.anonymised IS NULL OR {dirty})'
                        f' ORDER BY m.id LIMIT {int(limit)}')
            rows = cur.fetchall()
            conn.commit()
            for fid, code in rows:
                if code:
                    cur.execute('DELETE FROM tracking_codes WHERE id = %s', (code,))
                cur.execute(f'UPDATE {e} SET who = NULL, comment = NULL, parts = NULL WHERE formdata_id = %s', (fid,))
                cur.execute(f'UPDATE {t} m SET {sets} WHERE id = %(id)s', {'keys': keys, 'id': fid})
                conn.commit()
                n += 1
        conn.close()
        return n

    def raw_pipe(self, dbs, bi):
        """The same rows and columns as the export, by a bare COPY pipe into a plain table."""
        psql = shutil.which('psql')
        conn = self.cluster.connect(bi)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute('CREATE TABLE IF NOT EXISTS raw_forms (tenant text, form_id int, PRIMARY KEY (tenant, form_id))')
        cur.execute('CREATE TABLE IF NOT EXISTS raw_copy (tenant text, form_id int, form_slug text,'
                    ' submission_id int, receipt_time timestamptz, last_update_time timestamptz,'
                    ' anonymised_at timestamptz, status text, status_name text, is_final boolean,'
                    ' channel text, backoffice_submission boolean, criticality_level int,'
                    ' processing_time interval, fields jsonb, exported_at timestamptz NOT NULL DEFAULT now(),'
                    ' done_time timestamptz, time_precision text, deleted_at timestamptz, qi_group bigint,'
                    ' PRIMARY KEY (tenant, form_id, submission_id),'
                    ' FOREIGN KEY (tenant, form_id) REFERENCES raw_forms)')
        # the same keys, foreign key and indexes as the contract's submissions table: only the export's own
        # work differs
        cur.execute('CREATE INDEX IF NOT EXISTS raw_copy_exported_at ON raw_copy (exported_at)')
        cur.execute('CREATE INDEX IF NOT EXISTS raw_copy_receipt ON raw_copy (tenant, form_id, receipt_time)')
        cur.execute('CREATE INDEX IF NOT EXISTS raw_copy_receipt_time ON raw_copy (receipt_time)')
        cur.execute('CREATE INDEX IF NOT EXISTS raw_copy_qi ON raw_copy (tenant, form_id, qi_group)')
        for db in dbs:
            for f in self.forms():
                cur.execute('INSERT INTO raw_forms VALUES (%s, %s) ON CONFLICT DO NOTHING', (db, f.id))
        conn.close()
        n = 0
        for db in dbs:
            for f in self.forms():
                kept = [fld for fld in f.fields if fld.anonymise in ('no', False) and fld.sql_type
                        and fld.sql_type != 'bytea']
                fields = ', '.join(f"'{fld.varname}', m.{wcs.qi(fld.column)}" for fld in kept)
                query = (f"COPY (SELECT '{db}', {f.id}, '{f.slug}', m.id, date_trunc('hour', m.receipt_time, 'UTC'),"
                         f" date_trunc('hour', m.last_update_time, 'UTC'), date_trunc('hour', m.anonymised, 'UTC'),"
                         f" substr(m.status, 4), NULL, m.status IN ({', '.join(repr(x) for x in f.endpoints)}),"
                         f" m.submission_channel, m.backoffice_submission, m.criticality_level,"
                         f" m.last_update_time - m.receipt_time, jsonb_build_object({fields}),"
                         f" date_trunc('hour', m.last_update_time, 'UTC'), 'hour'"
                         f" FROM {wcs.qi(f.table)} m WHERE m.anonymised IS NOT NULL AND m.status <> 'draft') TO STDOUT")
                src = subprocess.Popen([psql, '-X', '-q', self.cluster.conninfo(db), '-c', query],
                                       stdout=subprocess.PIPE)
                dst = subprocess.run([psql, '-X', self.cluster.conninfo(bi), '-c',
                                      'COPY raw_copy (tenant, form_id, form_slug, submission_id, receipt_time,'
                                      ' last_update_time, anonymised_at, status, status_name, is_final, channel,'
                                      ' backoffice_submission, criticality_level, processing_time, fields,'
                                      ' done_time, time_precision) FROM STDIN'],
                                     stdin=src.stdout, capture_output=True, text=True)
                src.stdout.close()
                src.wait()
                if src.returncode or dst.returncode:
                    raise SystemExit(f'raw pipe failed: {dst.stderr}')
                n += int(dst.stdout.split()[-1]) if dst.stdout.strip() else 0
        return n

    # -- the run -----------------------------------------------------------------------------
    def record(self, name, seconds, rows, note=''):
        self.rows.append((name, seconds, rows, note))
        log(f'{name}: {seconds:.1f} s, {rows} rows, {rows / seconds if seconds else 0:.0f} rows/s {note}')

    def run(self):
        a = self.args
        total = a.submissions
        per_form = total // (a.tenants * a.forms)
        self.cluster.start()
        try:
            if a.one_tenant_only:
                self.one_tenant()
                self.print_one_tenant()
                return
            if a.two_hosts_only:
                self.two_hosts()
                return
            if a.steady_only:
                Steady(self).run()
                return
            log(f'building {a.tenants} tenants x {a.forms} forms x {per_form} submissions')
            t0 = time.monotonic()
            for i in range(a.tenants):
                self.build_template(f'tpl_t{i}', per_form, max_age_days=400)
            log(f'built in {time.monotonic() - t0:.0f} s')
            dbs = [self.tenant_db(i) for i in range(a.tenants)]
            conf = self.write_config(os.path.join(self.work, 'bench.conf'), dbs)
            conf_bi = self.write_config(os.path.join(self.work, 'bench-bi.conf'), dbs, bi='bench_bi')
            # k-anonymity as a platform would set it: groups of 5, times coarsened rather than rows held back
            conf_k5 = self.write_config(os.path.join(self.work, 'bench-k5.conf'), dbs, bi='bench_bi', min_k=5,
                                        bi_extra='generalise = true;')

            # 1. anonymizer, --jobs 1
            self.reset_main()
            secs, rss, err = self.anonymizer('-c', conf, '-v', 'run')
            m = re.search(r'(\d+) submissions anonymised, (\d+) completed, (\d+) drafts', err)
            done = sum(int(x) for x in m.groups())
            batches = [float(x) for x in re.findall(r': anonymise: ids .* done in ([\d.]+) s', err)]
            self.results['longest_batch'] = max(batches) if batches else 0
            self.results['batches'] = len(batches)
            self.results['anon'] = (secs, done)
            self.record('anonymizer run --jobs 1', secs, done)
            signature = self.state(dbs)

            # as on a platform, the rows were anonymised days before the exports (an export reads again what was
            # anonymised in the day before its last one, for transactions in flight then); then a VACUUM, as
            # autovacuum would, so that every contestant reads the same tables
            self.update_forms(dbs, "SET anonymised = anonymised - interval '2 days' WHERE anonymised IS NOT NULL")
            for db in dbs:
                conn = self.cluster.connect(db)
                conn.autocommit = True
                conn.cursor().execute('VACUUM ANALYZE')
                conn.close()
            # 4. export versus a raw COPY pipe, on this anonymised state: alternately, a.export_rounds times
            # (each into an empty BI database), the median of each kept: one round swings by 15% here
            exports, raws = [], []
            for _ in range(a.export_rounds):
                self.cluster.dropdb('bench_bi')
                self.cluster.createdb('bench_bi')
                secs, _, err = self.anonymizer('-c', conf_bi, 'export')
                exported = sum(int(x) for x in re.findall(r'exported (\d+) new', err))
                exports.append((secs, exported))
                self.record('anonymizer export', secs, exported)
                t0 = time.monotonic()
                raw = self.raw_pipe(dbs, 'bench_bi')
                raws.append((time.monotonic() - t0, raw))
                self.record('raw COPY pipe', raws[-1][0], raw)
            self.results['export'] = sorted(exports)[len(exports) // 2]
            self.results['raw'] = sorted(raws)[len(raws) // 2]
            self.results['export_ratios'] = [(r[0] / r[1]) / (e[0] / e[1]) if e[0] and r[1] else 0
                                             for e, r in zip(exports, raws)]
            # the same export with k-anonymity (min_k = 5, generalise), into an empty schema: its cost, and what it
            # holds back
            self.cluster.dropdb('bench_bi')
            self.cluster.createdb('bench_bi')
            secs, _, err = self.anonymizer('-c', conf_k5, 'export')
            published = sum(int(x) for x in re.findall(r'exported (\d+) new', err))
            held = sum(int(x) for x in re.findall(r', (\d+) held back, \d+ withdrawn', err))
            self.results['export_k5'] = (secs, published + held)
            self.results['k5_held'] = held
            self.record('anonymizer export, min_k = 5, generalise', secs, published + held, f'({held} held back)')
            # 5. the nights after: one with nothing new, one with 1 % of the rows anonymised again (w.c.s.
            # touched them): their cost should follow the work, not the size of the forms
            secs0, _, _ = self.anonymizer('-c', conf_k5, 'export')
            # (id % 100 = 3: done submissions, in the fixture's mix of statuses)
            touched = self.update_forms(dbs, 'SET anonymised = now() WHERE anonymised IS NOT NULL AND id % 100 = 3')
            secs1, _, err = self.anonymizer('-c', conf_k5, 'export')
            read = sum(int(x) for x in re.findall(r'\((\d+) read, incremental\)', err))
            self.results['night0'] = secs0
            self.results['night1'] = (secs1, read, touched)
            self.record('export, a night with nothing new', secs0, 0)
            self.record('export, a night with 1 % of rows again', secs1, read)

            if a.export_only:
                self.print_export()
                return

            # 2. single-statement SQL
            self.reset_main()
            t0 = time.monotonic()
            self.single_statement(dbs)
            self.results['sql'] = (time.monotonic() - t0, done)
            same = self.state(dbs) == signature
            self.record('single-statement SQL', self.results['sql'][0], done,
                        '' if same else '(END STATE DIFFERS from the anonymizer\'s)')

            # 3. per-row, one form
            self.reset_main()
            f = self.forms()[0]
            t0 = time.monotonic()
            n = self.per_row(dbs[0], f, a.per_row_sample)
            self.results['row'] = (time.monotonic() - t0, n)
            self.record(f'per-row UPDATE ({n} of one form)', self.results['row'][0], n)

            # 5. run then export
            self.reset_main()
            self.cluster.dropdb('bench_bi')
            self.cluster.createdb('bench_bi')
            secs, _, err = self.anonymizer('-c', conf_bi, 'run')
            self.results['anon_export'] = (secs, done)
            self.record('anonymizer run with export', secs, done)

            # 6. --jobs 2
            self.reset_main()
            secs, _, err = self.anonymizer('-c', conf, '--jobs', '2', 'run')
            self.results['jobs2'] = (secs, done)
            self.record('anonymizer run --jobs 2', secs, done)

            # 7. memory and longest batch at 20,000, 100,000 and 1,000,000 submissions, the report on the largest
            self.results['sizes'] = []
            for label, n_total in (('tiny', a.size_tiny), ('small', a.rss_small), ('large', a.rss_large)):
                if label != 'large':
                    self.build_template(f'tpl_{label}', n_total // a.forms, max_age_days=45)
                else:
                    # the small tenant's submissions, copied: a million in seconds
                    self.build_template('tpl_large', 0, 0, copy_of='tpl_small', factor=max(1, n_total // a.rss_small))
                self.reset([(f'tpl_{label}', f'bench_{label}')])
                c = self.write_config(os.path.join(self.work, f'{label}.conf'), [f'bench_{label}'])
                if label == 'large':
                    secs, _, _ = self.anonymizer('-c', c, 'report')
                    self.results['report_large'] = secs
                    log(f'report on {n_total} submissions: {secs:.2f} s')
                secs, _, err = self.anonymizer('-c', c, '-v', 'run')
                # measured by the anonymizer itself: a process forked from this Python one would count its pages
                rss = max(int(x) for x in re.search(r'peak memory \(max RSS\): main process (\d+) KiB, largest worker'
                                                      r' (\d+) KiB', err).groups())
                m = re.search(r'(\d+) submissions anonymised, (\d+) completed, (\d+) drafts', err)
                batches = [float(x) for x in re.findall(r': (?:anonymise|delete drafts): ids .* done in ([\d.]+) s', err)]
                longest = max(batches) if batches else 0
                self.results['sizes'].append((n_total, longest, len(batches)))
                self.results[f'rss_{label}'] = (rss, n_total, sum(int(x) for x in m.groups()), secs)
                log(f'run on {n_total} submissions: peak RSS {rss / 1024:.1f} MiB, {secs:.1f} s,'
                    f' longest batch {longest:.2f} s of {len(batches)}')
                self.cluster.dropdb(f'bench_{label}')

            # 8. one tenant: --jobs within a tenant
            self.one_tenant()
            # 9. steady nights (printed as they are measured)
            Steady(self).run()
        finally:
            self.cluster.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        self.print_table()
        self.print_one_tenant()

    def one_tenant(self):
        """One tenant, one large form and two small ones: where --jobs within a tenant pays."""
        n = self.args.one_tenant
        sizes = [n - 2 * (n // 20)] + [n // 20] * (self.args.forms - 1)
        log(f'building one tenant of {n} submissions ({", ".join(str(x) for x in sizes)})')
        self.build_template('tpl_one', 0, 400, sizes=sizes)
        conf = self.write_config(os.path.join(self.work, 'one.conf'), ['bench_one'])
        # the four contestants in turn, a.one_tenant_rounds times: medians, and the ratios round by round
        times = {k: [] for k in ('one_jobs1', 'one_jobs2', 'one_sql', 'one_sql_nojit')}
        longest = {'one_jobs1': 0.0, 'one_jobs2': 0.0}
        done = 0
        for _ in range(self.args.one_tenant_rounds):
            for key, jobs in (('one_jobs1', '1'), ('one_jobs2', '2')):
                self.reset([('tpl_one', 'bench_one')])
                secs, _, err = self.anonymizer('-c', conf, '-v', '--jobs', jobs, 'run')
                m = re.search(r'(\d+) submissions anonymised, (\d+) completed, (\d+) drafts', err)
                done = sum(int(x) for x in m.groups())
                batches = [float(x) for x in re.findall(r': (?:anonymise|delete drafts): ids .* done in ([\d.]+) s',
                                                        err)]
                longest[key] = max([longest[key]] + batches)
                times[key].append(secs)
                self.record(f'one tenant, anonymizer run --jobs {jobs}', secs, done,
                            f'(longest batch {max(batches) if batches else 0:.2f} s)')
            for key, jit, label in (('one_sql', True, ''), ('one_sql_nojit', False, ', jit = off')):
                self.reset([('tpl_one', 'bench_one')])
                t0 = time.monotonic()
                self.single_statement(['bench_one'], jit=jit)
                times[key].append(time.monotonic() - t0)
                self.record(f'one tenant, single-statement SQL{label}', times[key][-1], done)
        for key, values in times.items():
            self.results[key] = (sorted(values)[len(values) // 2], done)
        for key in longest:
            self.results[key + '_longest'] = longest[key]
        self.results['one_rounds'] = [(s / j1, s / j2) for j1, j2, s in
                                      zip(times['one_jobs1'], times['one_jobs2'], times['one_sql'])]
        self.cluster.dropdb('bench_one')

    def update_forms(self, dbs, assignment):
        """UPDATE <every form table of every tenant> <assignment>; the rows updated."""
        n = 0
        for db in dbs:
            conn = self.cluster.connect(db)
            with conn.cursor() as cur:
                for f in self.forms():
                    cur.execute(f'UPDATE {wcs.qi(f.table)} {assignment}')
                    n += cur.rowcount
            conn.close()
        return n

    def two_hosts(self):
        """20 tenants, done by one process with --jobs 1, then by two at once with --jobs 1 each (the same job on
        two application servers): the tenants are shared through the advisory locks and the runs' audit."""
        n = self.args.platform_tenants
        per_form = self.args.platform_submissions // (n * self.args.forms)
        log(f'building {n} tenants x {self.args.forms} forms x {per_form} submissions')
        self.build_template('tpl_p', per_form, 400)
        dbs = [f'bench_p{i}' for i in range(n)]
        conf = self.write_config(os.path.join(self.work, 'platform.conf'), dbs)
        times = {'one': [], 'two': []}
        for _ in range(self.args.platform_rounds):
            self.reset([('tpl_p', db) for db in dbs])
            secs, _, _ = self.anonymizer('-c', conf, '--jobs', '1', 'run')
            times['one'].append(secs)
            self.record('20 tenants, one host (--jobs 1)', secs, 0)
            self.reset([('tpl_p', db) for db in dbs])
            t0 = time.monotonic()
            procs = [subprocess.Popen([self.binary, '-c', conf, '-q', '--jobs', '1', 'run'],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
            for p in procs:
                err = p.communicate()[1]
                if p.returncode != 0:
                    raise SystemExit(f'a host failed ({p.returncode}):\n{err}')
            times['two'].append(time.monotonic() - t0)
            self.record('20 tenants, two hosts at once (--jobs 1 each)', times['two'][-1], 0)
        one, two = (sorted(v)[len(v) // 2] for v in (times['one'], times['two']))
        print(f'two hosts: one {one:.1f} s, two at once {two:.1f} s: {one / two:.2f}x as fast (medians of'
              f' {self.args.platform_rounds}; rounds ' + ', '.join(f'{a / b:.2f}x' for a, b in
                                                                  zip(times['one'], times['two'])) + ')')

    def print_one_tenant(self):
        r = self.results
        rate = lambda k: r[k][1] / r[k][0] if r[k][0] else 0  # noqa: E731
        print('one tenant, round by round (single statement time / --jobs 1, / --jobs 2): '
              + ', '.join(f'{a:.2f}x / {b:.2f}x' for a, b in r['one_rounds']))
        print(f'one tenant of {self.args.one_tenant}: --jobs 1 {rate("one_jobs1") / rate("one_sql"):.2f}x'
              f' single-statement (>= 0.8), --jobs 2 {rate("one_jobs2") / rate("one_sql"):.2f}x (>= 1.3),'
              f' longest batch {max(r["one_jobs1_longest"], r["one_jobs2_longest"]):.2f} s (< 1);'
              f' against the single statement with jit = off: --jobs 1 {rate("one_jobs1") / rate("one_sql_nojit"):.2f}x,'
              f' --jobs 2 {rate("one_jobs2") / rate("one_sql_nojit"):.2f}x')

    def print_export(self):
        r = self.results
        rate = lambda k: r[k][1] / r[k][0] if r[k][0] else 0  # noqa: E731
        print(f'export rounds: {", ".join(f"{x:.2f}x" for x in r["export_ratios"])} raw COPY')
        print(f'export {rate("export") / rate("raw"):.2f}x raw COPY (>= 0.8); export with min_k = 5 and generalise'
              f' {r["export_k5"][0] / r["export"][0]:.2f}x the time of min_k = 1 (<= 1.5), {r["k5_held"]} held back')
        n1 = r['night1']
        print(f'nights after: nothing new {r["night0"]:.2f} s ({r["night0"] / r["export_k5"][0]:.3f}x the first'
              f' export); {n1[1]} rows read again ({100 * n1[1] / r["export_k5"][1]:.1f} % of the rows)'
              f' {n1[0]:.2f} s ({n1[0] / r["export_k5"][0]:.3f}x the first export)')

    def print_table(self):
        r = self.results
        rate = lambda k: r[k][1] / r[k][0] if r[k][0] else 0  # noqa: E731
        anon = rate('anon')
        print()
        print(f'machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()},'
              f' {os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30} GiB, PostgreSQL '
              + subprocess.run(['pg_config', '--version'], capture_output=True, text=True).stdout.split()[-1])
        print(f'{"contestant":36} {"seconds":>9} {"rows":>9} {"rows/s":>9} {"anonymizer / it":>16}')
        for key, name in (('anon', 'anonymizer run --jobs 1'), ('sql', 'single-statement SQL'),
                          ('row', f'per-row UPDATE (sample of {r["row"][1]})'), ('jobs2', 'anonymizer run --jobs 2'),
                          ('anon_export', 'anonymizer run with export')):
            print(f'{name:36} {r[key][0]:9.1f} {r[key][1]:9} {rate(key):9.0f} {anon / rate(key):15.2f}x')
        print(f'{"anonymizer export":36} {r["export"][0]:9.1f} {r["export"][1]:9} {rate("export"):9.0f}'
              f' {1.0:15.2f}x')
        print(f'{"raw COPY pipe":36} {r["raw"][0]:9.1f} {r["raw"][1]:9} {rate("raw"):9.0f}'
              f' {rate("export") / rate("raw"):15.2f}x')
        print(f'export / raw COPY, round by round: {", ".join(f"{x:.2f}x" for x in r["export_ratios"])}'
              f' (medians above)')
        k5 = r['export_k5'][0] / r['export'][0] if r['export'][0] else 0
        print(f'{"anonymizer export, min_k 5, generalise":36} {r["export_k5"][0]:9.1f} {r["export_k5"][1]:9}'
              f' {rate("export_k5"):9.0f} {k5:14.2f}x the time of min_k = 1 ({r["k5_held"]} held back)')
        small, large = r['rss_small'], r['rss_large']
        print(f'peak RSS: {small[0] / 1024:.1f} MiB at {small[1]} submissions ({small[2]} processed),'
              f' {large[0] / 1024:.1f} MiB at {large[1]} ({large[2]} processed)')
        print(f'longest batch transaction: {r["longest_batch"]:.2f} s ({r["batches"]} batches);'
              + ''.join(f' {longest:.2f} s at {n} submissions ({k} batches);' for n, longest, k in r['sizes']))
        print(f'report on {large[1]} submissions: {r["report_large"]:.2f} s')
        worst = max([r['longest_batch']] + [x[1] for x in r['sizes']])
        summary = (f'summary: anonymisation {anon / rate("sql"):.2f}x single-statement,'
                   f' {anon / rate("row"):.1f}x per-row (>= 5), export {rate("export") / rate("raw"):.2f}x raw'
                   f' COPY (>= 0.8), peak RSS {small[0] / 1024:.1f} / {large[0] / 1024:.1f} MiB (< 32, flat),'
                   f' export with min_k = 5 {k5:.2f}x the time of min_k = 1 (<= 1.5),'
                   f' longest batch {worst:.2f} s at any size (< 1), --jobs 2 {rate("jobs2") / anon:.2f}x'
                   f' --jobs 1, report {r["report_large"]:.2f} s (< 3)')
        print(summary)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('binary', help='the anonymizer binary (a release build)')
    p.add_argument('--tenants', type=int, default=4)
    p.add_argument('--forms', type=int, default=3)
    p.add_argument('--submissions', type=int, default=500000, help='in all, over every tenant and form')
    p.add_argument('--rss-small', type=int, default=100000)
    p.add_argument('--rss-large', type=int, default=1000000)
    p.add_argument('--size-tiny', type=int, default=20000, help='the smallest tenant the longest batch is measured on')
    p.add_argument('--export-rounds', type=int, default=3,
                   help='export and raw COPY pipe, alternately, this many times (medians compared)')
    p.add_argument('--export-only', action='store_true', help='measure the export only (raw COPY, min_k 1 and 5)')
    p.add_argument('--two-hosts-only', action='store_true',
                   help='measure two hosts at once against one (20 tenants, --jobs 1 each)')
    p.add_argument('--platform-tenants', type=int, default=20)
    p.add_argument('--platform-submissions', type=int, default=120000, help='in all, over the 20 tenants')
    p.add_argument('--platform-rounds', type=int, default=3)
    p.add_argument('--one-tenant', type=int, default=200000,
                   help='submissions of the one-tenant measure (one large form and two small ones)')
    p.add_argument('--one-tenant-only', action='store_true', help='measure --jobs within one tenant only')
    p.add_argument('--one-tenant-rounds', type=int, default=3,
                   help='the one-tenant contestants, in turn, this many times (medians compared)')
    p.add_argument('--steady-only', action='store_true',
                   help='measure steady nights only (spread and clustered, a night and an empty one)')
    p.add_argument('--steady-small', type=int, default=100000)
    p.add_argument('--steady-large', type=int, default=1000000)
    p.add_argument('--steady-rounds', type=int, default=2)
    p.add_argument('--steady-due', type=int, default=10000, help='rows due on a steady night (as many not due yet)')
    p.add_argument('--per-row-sample', type=int, default=10000,
                   help='submissions the per-row baseline processes (its rate is what is compared)')
    args = p.parse_args()
    pgcluster.install_sigterm_handler()
    Bench(args).run()


if __name__ == '__main__':
    main()
