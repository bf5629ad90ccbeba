"""Steady nights (tests/bench/run --steady-only; also part of the full run).

A platform after years: nearly every row of a form anonymised, a few
thousand becoming due each night.  Two forms of the same shape, one of
--steady-small rows and one of --steady-large, both with the same recent
part: --steady-due rows (10,000) done ten days ago (due tonight) and as many
done two days ago (not due), either spread over the whole table (every n-th id: rows done
long after they were received) or clustered at its end (the newest ids).
Night 1 (retention 30 days) anonymises and exports everything else and is
the template; night 2 (retention 7 days) is the measured one: run --jobs 1
(with its VACUUM, the default), report after it, export with min_k 1, and
again from the same start run without VACUUM and export with min_k 5 (its
own night-1 export).  The empty night: night 2 with retention
30 days (nothing due).  Each figure is the median of --steady-rounds; the
claim is the ratio large / small, the same night on both.
"""

import os
import re
import time

import wcs
from forms import standard_form


def _form():
    # every status final: the old rows are done (open ones would stay candidates for good, on both sizes alike)
    f = standard_form(1, 'demande-rdv', 'Demande de rendez-vous')
    f.statuses = [s for s in f.statuses if s[2]]
    return f


class Steady:
    def __init__(self, bench):
        self.b = bench
        self.a = bench.args
        self.form = _form()
        self.results = {}

    def log(self, msg):
        print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)

    def config(self, name, db, bi, retention, min_k, vacuum=True):
        """bi None: the run alone (a run with a bi group exports too)."""
        path = os.path.join(self.b.work, f'{name}.conf')
        c = self.b.cluster
        with open(path, 'w') as fp:
            fp.write(f'retention = "{retention} days"; vacuum = {"true" if vacuum else "false"}; schemas = "{self.b.schemas}";\n'
                     + (f'bi = {{ conninfo = "{c.conninfo(bi)}"; min_k = {min_k}; }};\n' if bi else '')
                     # one tenant name whatever the copy: BI's rows are the tenant's
                     + f'tenants = ({{ name = "steady"; conninfo = "{c.conninfo(db)}"; }});\n')
        os.chmod(path, 0o600)
        self.form.write_definition(self.b.schemas, 'steady')
        return path

    def build(self, size, layout):
        """The tenant template after night 1, and its BI templates for min_k 1 and 5."""
        base = f'st_base_{size}'
        c = self.b.cluster
        if base not in self.built:
            self.log(f'steady: building a form of {size} rows')
            c.createdb(base)
            conn = c.connect(base)
            with conn.cursor() as cur:
                wcs.create_tenant(cur)
                wcs.create_form(cur, self.form)
                wcs.populate(cur, self.form, size, now="now() - interval '60 days'", max_age_days=730, bulk=True,
                             traces=True)
                cur.execute('VACUUM ANALYZE')
            conn.close()
            self.built.add(base)
        tpl = f'st_{size}_{layout}'
        admin = c.connect()
        admin.cursor().execute(f'CREATE DATABASE {tpl} TEMPLATE {base} STRATEGY FILE_COPY')
        admin.close()
        conn = c.connect(tpl)
        t = wcs.qi(self.form.table)
        recent = self.a.steady_due
        step = size // (2 * recent)
        # the recent part: the newest ids, or every step-th id over the table
        # (submissions, not drafts: every tenth id is a draft in the fixture)
        pick = (f'id > {size - 2 * recent}' if layout == 'clustered' else f'id % {step} = 1') + \
            " AND status <> 'draft'"
        rank = f'(row_number() OVER (ORDER BY id))'
        with conn.cursor() as cur:
            cur.execute(f"""WITH r AS (SELECT id, {rank} % 2 = 0 AS due FROM {t} WHERE {pick})
                UPDATE {t} m SET anonymised = NULL,
                    last_update_time = now() - CASE WHEN r.due THEN interval '10 days' ELSE interval '2 days' END,
                    receipt_time = now() - interval '12 days',
                    statistics_data = m.statistics_data || jsonb_build_object('done-datetime',
                        now() - CASE WHEN r.due THEN interval '10 days' ELSE interval '2 days' END)
                FROM r WHERE m.id = r.id""")
            cur.execute('VACUUM ANALYZE')
        conn.close()
        # night 1: the run once, then a first export for each min_k (the export command leaves the change log)
        db = f'{tpl}_t'
        self.b.reset([(tpl, db)])
        secs, _, _ = self.b.anonymizer('-c', self.config('steady-n1', db, None, 30, 1), '-q', 'run')
        self.log(f'steady: {size} {layout}: night 1 run in {secs:.0f} s')
        for k in (1, 5):
            c.createdb(f'{tpl}_bi{k}')
            secs, _, err = self.b.anonymizer('-c', self.config('steady-n1', db, f'{tpl}_bi{k}', 30, k), 'export')
            if 'error' in err:
                raise SystemExit(f'steady: the export of night 1 failed:\n{err}')
            self.log(f'steady: {size} {layout}: night 1 export (min_k {k}) in {secs:.0f} s')
        self.two_days_pass(db, [f'{tpl}_bi1', f'{tpl}_bi5'])
        return tpl

    def two_days_pass(self, db, bis):
        """Night 1 moved two days back (what it checked and exported), and what it anonymised a month back: the
        next night is a night later, as on a platform where the bulk was anonymised long ago (the run and the
        export look a day back from their last pass, for w.c.s. transactions in flight: on a platform they read
        the night before's rows again, not a backlog's)."""
        c = self.b.cluster
        t = wcs.qi(self.form.table)
        conn = c.connect(db)
        with conn.cursor() as cur:
            cur.execute(f'ALTER TABLE {t} DISABLE TRIGGER formdata_{self.form.id}_trigger')
            cur.execute(f"UPDATE {t} SET anonymised = anonymised - interval '30 days' WHERE anonymised IS NOT NULL")
            cur.execute(f'ALTER TABLE {t} ENABLE TRIGGER formdata_{self.form.id}_trigger')
            cur.execute(f"UPDATE wcs_all_forms SET anonymised = anonymised - interval '30 days'"
                        f" WHERE formdef_id = {self.form.id} AND anonymised IS NOT NULL")
            cur.execute("UPDATE anonymizer.checked SET checked_until = checked_until - interval '2 days'")
            cur.execute("UPDATE anonymizer.changes SET changed_at = changed_at - interval '2 days'")
            cur.execute("UPDATE anonymizer.runs SET started_at = started_at - interval '2 days',"
                        " finished_at = finished_at - interval '2 days'")
            cur.execute(f'VACUUM FULL ANALYZE {t}')
            cur.execute('VACUUM FULL ANALYZE wcs_all_forms')
        conn.close()
        for bi in bis:
            conn = c.connect(bi)
            conn.cursor().execute("UPDATE anonymised.export_state SET anonymised_until = anonymised_until"
                                  " - interval '2 days'")
            conn.close()

    def night(self, tpl, size, layout, retention):
        """One measured night from the templates: run, report, export (min_k 1); run, export (min_k 5)."""
        out = {}
        db, bi = f'{tpl}_m', f'{tpl}_mbi'
        for k in (1, 5):
            self.b.reset([(f'{tpl}_t', db), (f'{tpl}_bi{k}', bi)])
            conf = self.config('steady-n2', db, bi, retention, k)
            # the first run with its VACUUM (the default), the second without: PostgreSQL's part apart
            secs, _, err = self.b.anonymizer('-c', self.config('steady-n2-run', db, None, retention, k, vacuum=k == 1),
                                             '-v', 'run')
            out['run' if k == 1 else 'run_novac'] = secs
            m = re.search(r'(\d+) submissions anonymised, (\d+) completed, (\d+) drafts', err)
            out['done'] = sum(int(x) for x in m.groups()) if m else -1
            if k == 1:
                secs, _, _ = self.b.anonymizer('-c', conf, 'report')
                out['report'] = secs
            secs, _, err = self.b.anonymizer('-c', conf, '-v', 'export')
            out[f'export_k{k}'] = secs
            m = re.search(r'\((\d+) read, incremental\)', err)
            if not m:
                raise SystemExit(f'steady: the export of night 2 was not incremental:\n{err}')
            out[f'read_k{k}'] = int(m.group(1))
        return out

    def run(self):
        self.built = set()
        sizes = (self.a.steady_small, self.a.steady_large)
        rounds = self.a.steady_rounds
        for layout in ('spread', 'clustered'):
            tpls = {size: self.build(size, layout) for size in sizes}
            for label, retention in (('night', 7), ('empty night', 30)):
                per = {size: [] for size in sizes}
                for _ in range(rounds):
                    for size in sizes:
                        per[size].append(self.night(tpls[size], size, layout, retention))
                self.results[(layout, label)] = per
                self.print_one(layout, label, per)

    def print_one(self, layout, label, per):
        small, large = sorted(per)

        def med(size, key):
            v = sorted(x[key] for x in per[size])
            return v[len(v) // 2]

        parts = []
        for key, name in (('run', 'run --jobs 1'), ('run_novac', 'without its VACUUM'), ('report', 'report'), ('export_k1', 'export min_k 1'),
                          ('export_k5', 'export min_k 5')):
            a, b = med(small, key), med(large, key)
            parts.append(f'{name} {a:.2f} s / {b:.2f} s = {b / a:.2f}x')
        k5 = med(large, 'export_k5') / med(large, 'export_k1')
        print(f'steady {label}, {layout} ({per[large][0]["done"]} due; {small} / {large} rows): ' + '; '.join(parts)
              + f'; on {large}: export min_k 5 {k5:.2f}x min_k 1, rows read {per[large][0]["read_k1"]}'
              f' (small: {per[small][0]["read_k1"]})', flush=True)
