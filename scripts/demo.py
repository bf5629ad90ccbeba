"""The embedded demo: a throwaway PostgreSQL with two realistic w.c.s. tenants,
then the anonymizer run on them, its output shown.

Usage: demo.py BINARY
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'lib'))

import pgcluster  # noqa: E402
import wcs  # noqa: E402

F = wcs.Field

TENANTS = {
    'demarches.ville-exemple.fr': [
        (wcs.Form(12, 'demande-rdv', 'Demande de rendez-vous', [
            F('1', 'string', 'Nom', 'nom', 'final'), F('2', 'string', 'Prénom', 'prenom', 'final'),
            F('3', 'email', 'Courriel', 'email', 'final'), F('4', 'string', 'Téléphone', 'telephone', 'final'),
            F('5', 'item', 'Motif', 'motif', 'no'), F('6', 'page', 'Créneau'),
            F('7', 'date', 'Date souhaitée', 'date_souhaitee', 'no'),
            F('8', 'text', 'Précisions', 'precisions', 'final'),
            F('bo1', 'text', 'Note de l\'agent', 'note_agent', 'final', backoffice=True),
        ]), 3000, {'5': ['etat-civil', 'urbanisme', 'social', 'elections']}, True),
        (wcs.Form(15, 'inscription-cantine', 'Inscription à la cantine scolaire', [
            F('1', 'string', 'Nom de l\'enfant', 'nom', 'final'),
            F('2', 'string', 'Prénom de l\'enfant', 'prenom', 'final'),
            F('3', 'date', 'Date de naissance', 'naissance', 'final'),
            F('4', 'item', 'École', 'ecole', 'no'), F('5', 'items', 'Jours', 'jours', 'no'),
            F('6', 'bool', 'Régime sans porc', 'sans_porc'),
            F('7', 'text', 'Allergies', 'allergies', 'final'),
            F('8', 'file', 'Attestation CAF', 'attestation', 'final'),
            F('9', 'string', 'Adresse', 'adresse', 'final'),
        ]), 2000, {'4': ['jules-ferry', 'jean-mace', 'louise-michel'], '5': ['lundi', 'mardi', 'jeudi', 'vendredi']},
            True),
    ],
    'eservices.agglo-exemple.fr': [
        (wcs.Form(3, 'signalement-voirie', 'Signalement sur la voirie', [
            F('1', 'item', 'Type de problème', 'type', 'no'),
            F('2', 'text', 'Description', 'description', 'final'),
            F('3', 'map', 'Emplacement', 'emplacement', 'final'),
            F('4', 'string', 'Ville', 'ville', 'no'),
            F('5', 'string', 'Nom', 'nom', 'final'), F('6', 'email', 'Courriel', 'email', 'final'),
            F('7', 'file', 'Photo', 'photo', 'final'),
        ]), 2500, {'1': ['nid-de-poule', 'eclairage', 'depot-sauvage', 'signalisation']}, True),
        (wcs.Form(8, 'enquete-satisfaction', 'Enquête de satisfaction', [
            F('1', 'item', 'Note', 'note', 'no'), F('2', 'text', 'Commentaire', 'commentaire', 'final'),
            F('3', 'string', 'Courriel (facultatif)', 'email', 'final'),
        ]), 600, {'1': ['1', '2', '3', '4', '5']}, False),  # no definition exported: privacy by default
    ],
}

CONFIG = """# demo configuration
retention = "90 days";
drafts = "delete";
open_submissions = "skip";
batch_size = 500;
schemas = "{schemas}";
timezone = "Europe/Paris";
# the BI export with its defaults: every published row shares all a reader sees of it with at least
# 4 other rows of its form (anonymizer-bi(7))
bi = {{ conninfo = "{bi}"; }};
tenants = (
  {{ name = "demarches.ville-exemple.fr"; conninfo = "{c1}"; }},
  {{ name = "eservices.agglo-exemple.fr"; conninfo = "{c2}"; retention = "60 days"; }}
);
forms = (
  {{ tenant = "*"; slug = "demande-rdv"; retention = "30 days"; }},
  {{ tenant = "eservices.agglo-exemple.fr"; slug = "signalement-voirie"; keep = ["ville"]; blank = ["type"]; }}
);
"""


def banner(text):
    print('\n' + '=' * 78 + '\n' + text + '\n' + '=' * 78, flush=True)


def show(binary, config, *args):
    shown = ' '.join(['anonymizer', '-c', 'demo.conf'] + list(args))
    print(f'\n$ {shown}', flush=True)
    proc = subprocess.run([binary, '-c', config] + list(args), capture_output=True, text=True)
    if proc.stdout:
        print(proc.stdout, end='')
    if proc.stderr:
        print(proc.stderr, end='')
    print(f'(exit status {proc.returncode})', flush=True)
    return proc.returncode


def psql_show(cluster, db, sql, title):
    print(f'\n-- {title}', flush=True)
    conn = cluster.connect(db)
    with conn.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    conn.close()
    widths = [max(len(str(x)) for x in [n] + [r[i] for r in rows]) for i, n in enumerate(names)]
    print('  ' + ' | '.join(n.ljust(w) for n, w in zip(names, widths)))
    print('  ' + '-+-'.join('-' * w for w in widths))
    for r in rows:
        print('  ' + ' | '.join(str(x).ljust(w) for x, w in zip(r, widths)))


STATE_SQL = """
SELECT formdef_name AS form,
       count(*) AS submissions,
       count(*) FILTER (WHERE anonymised IS NOT NULL) AS anonymised,
       count(*) FILTER (WHERE user_id IS NOT NULL) AS with_user,
       count(*) FILTER (WHERE status = 'draft') AS drafts
  FROM wcs_all_forms GROUP BY 1 ORDER BY 1"""


def main():
    binary = os.path.abspath(sys.argv[1])
    pgcluster.install_sigterm_handler()
    work = tempfile.mkdtemp(prefix='anonymizer-demo-')
    schemas = os.path.join(work, 'schemas')
    config = os.path.join(work, 'demo.conf')
    try:
        return run_demo(binary, schemas, config)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_demo(binary, schemas, config):
    with pgcluster.Cluster('anonymizer-demo') as cluster:
        banner('A throwaway PostgreSQL with two w.c.s. tenants')
        dbs = {}
        for tenant, forms in TENANTS.items():
            db = 'wcs_' + tenant.replace('.', '_').replace('-', '_')
            dbs[tenant] = db
            cluster.createdb(db)
            conn = cluster.connect(db)
            with conn.cursor() as cur:
                wcs.create_tenant(cur)
                for form, n, options, definition in forms:
                    wcs.create_form(cur, form)
                    wcs.populate(cur, form, n, options=options, max_age_days=240)
                    if definition:
                        form.write_definition(schemas, tenant)
            conn.close()
            print(f'tenant {tenant}: database {db}, '
                  + ', '.join(f'{f.slug} ({n} submissions{"" if d else ", no definition"})'
                              for f, n, _, d in forms))
        cluster.createdb('bi')
        print('BI database: bi (empty)')
        with open(config, 'w') as fp:
            fp.write(CONFIG.format(schemas=schemas, c1=cluster.conninfo(dbs['demarches.ville-exemple.fr']),
                                   c2=cluster.conninfo(dbs['eservices.agglo-exemple.fr']),
                                   bi=cluster.conninfo('bi')))
        os.chmod(config, 0o600)
        # least privilege, as on a platform: a superuser applies what "grants" prints, then the job runs as
        # the roles it names (never as a superuser: a table owner's trigger would run with its rights)
        banner('The roles the job runs as: what "anonymizer grants" prints, applied by a superuser')
        roles = ['--role-run', 'anonymizer_run', '--role-report', 'anonymizer_report', '--role-bi', 'anonymizer_bi']
        grants = subprocess.run([binary, '-c', config, 'grants'] + roles, capture_output=True, text=True)
        print(f'$ anonymizer -c demo.conf grants {" ".join(roles)} | psql -U postgres')
        if grants.returncode != 0:
            print(grants.stderr, end='')
            return 1
        print(f'({len(grants.stdout.splitlines())} lines: roles, table privileges, default privileges, schemas)')
        psql = os.path.join(pgcluster.bindir(), 'psql')
        applied = subprocess.run([psql if os.path.exists(psql) else 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
                                  '-d', cluster.conninfo('postgres')], input=grants.stdout, capture_output=True,
                                 text=True)
        if applied.returncode != 0:
            print(applied.stderr, end='')
            return 1
        with open(config, 'w') as fp:
            fp.write(CONFIG.format(
                schemas=schemas, c1=cluster.conninfo(dbs['demarches.ville-exemple.fr'], user='anonymizer_run'),
                c2=cluster.conninfo(dbs['eservices.agglo-exemple.fr'], user='anonymizer_run'),
                bi=cluster.conninfo('bi', user='anonymizer_bi')))
        print(f'\nconfiguration ({config}):\n')
        print(CONFIG.format(schemas=schemas, c1='dbname=wcs_demarches_ville_exemple_fr user=anonymizer_run',
                            c2='dbname=wcs_eservices_agglo_exemple_fr user=anonymizer_run',
                            bi='dbname=bi user=anonymizer_bi'))
        for tenant, db in dbs.items():
            psql_show(cluster, db, STATE_SQL, f'{tenant} before the run')

        banner('What the run will do to each column')
        show(binary, config, 'check')

        banner('The DPO report before the run')
        show(binary, config, 'report')

        banner('The nightly run')
        status = show(binary, config, 'run')
        for tenant, db in dbs.items():
            psql_show(cluster, db, STATE_SQL, f'{tenant} after the run')

        banner('The DPO report after the run, as CSV and JSON')
        show(binary, config, 'report', '--format', 'csv')
        show(binary, config, '-t', 'eservices.agglo-exemple.fr', 'report', '--format', 'json')

        banner('The same run again: nothing left to do')
        status2 = show(binary, config, 'run')

        banner('For the DPO: the runs of the last month, and the report as a document')
        show(binary, config, 'history')
        show(binary, config, '-t', 'eservices.agglo-exemple.fr', 'report', '--lang', 'fr')
        html = os.path.join(os.getcwd(), 'build', 'demo-report.html')
        with open(html, 'w') as fp:
            subprocess.run([binary, '-c', config, 'report', '--format', 'html'], stdout=fp)
        print(f'\n$ anonymizer -c demo.conf report --format html > {html}\n(open it in a browser, print it to PDF)')

        banner('What the statistics team gets: the BI staging schema')
        psql_show(cluster, 'bi',
                  "SELECT tenant, form_slug, status, count(*) AS submissions,"
                  " avg(processing_time)::interval(0) AS avg_processing"
                  " FROM anonymised.submissions GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                  'anonymised.submissions, per tenant, form and status')
        psql_show(cluster, 'bi',
                  "SELECT form_slug, submission_key, receipt_date, time_precision, status_name, channel,"
                  " suppressed::text, fields::text AS fields FROM anonymised.submissions"
                  " WHERE form_slug = 'demande-rdv' LIMIT 4",
                  'a few rows: a key that says nothing of w.c.s.\'s number, local dates, kept fields only')
        psql_show(cluster, 'bi',
                  "SELECT ecole, sans_porc, count(*) AS submissions, min(receipt_date) AS first"
                  " FROM anonymised.form_demarches_ville_exemple_fr_inscription_cantine"
                  " GROUP BY 1, 2 ORDER BY 1, 2",
                  'a per-form view, as a BI tool queries it: typed columns, one per kept field')
        psql_show(cluster, 'bi',
                  "SELECT tenant, form_slug, published, generalised, suppressed, held_back, smallest_group,"
                  " limiting_field FROM anonymised.export_state ORDER BY 1, 2",
                  'the re-identification guarantee (k = 5): per form, rows published, generalised, with a'
                  ' suppressed value, held back')
        psql_show(cluster, 'bi',
                  "SELECT form_slug, time_precision, suppressed::text, count(*) AS rows"
                  " FROM anonymised.submissions GROUP BY 1, 2, 3 HAVING count(*) >= 20 ORDER BY 1, 4 DESC",
                  'how they were published: the precision of their dates, what was suppressed (20 rows or more)')
        conn = cluster.connect('bi')
        with conn.cursor() as cur:
            cur.execute('SELECT sum(published), sum(published + held_back) FROM anonymised.export_state')
            published, anonymised = cur.fetchone()
        conn.close()
        print(f'\n{published} of {anonymised} anonymised rows reach the reader'
              f' ({100 * published / max(anonymised, 1):.1f} %), with the default settings')
        psql_show(cluster, 'bi',
                  "SELECT tenant, outcome, rows_exported, started_at::timestamp(0) AS started FROM anonymised.runs"
                  " ORDER BY started_at", 'anonymised.runs')
    return 0 if status == 0 and status2 == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
