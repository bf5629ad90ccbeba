"""Everything a real w.c.s. tenant keeps: blocks and their subfields, search
tokens, structured values of items, id_display from an id_template, the time
a submission was done, test copies and cards.  The real binary against
fixtures built the way w.c.s. builds them (triggers included)."""

import json
import subprocess
import os

import harness
import pgcluster
import wcs
from forms import full_submission, set_done_datetime, standard_form

F = wcs.Field


def ago(days, minutes=0):
    return f"now() - interval '{days} days' - interval '{minutes} minutes'"


def block_form(formdef_id=4, slug='inscription-enfants', id_template=None):
    """A block kept (anonymise no) whose subfields are one final, one no, one item kept by default."""
    return wcs.Form(formdef_id, slug, 'Inscription des enfants', [
        F('1', 'string', 'Nom du parent', 'nom', 'final'),
        F('2', 'item', 'École', 'ecole', 'no'),
        F('3', 'block', 'Enfants', 'enfants', 'no', schema=[
            F('1', 'string', 'Prénom', 'prenom', 'final'),
            F('2', 'numeric', 'Âge', 'age', 'no'),
            F('3', 'item', 'Classe', 'classe'),
        ]),
        F('4', 'block', 'Adultes', 'adultes', 'final', schema=[F('1', 'string', 'Nom', 'nom', 'no')]),
    ], id_template=id_template)


class WcsTests(harness.TestCase):

    def setup_bi(self, t):
        self.bi_db = harness.unique('bi')
        t.cluster.createdb(self.bi_db)
        self.bi = t.cluster.connect(self.bi_db)
        self.addCleanup(self.bi.close)
        return f'bi = {{ conninfo = "{harness.cfgstr(t.cluster.conninfo(self.bi_db))}"; min_k = 1; }};'

    def bi_dump(self):
        with self.bi.cursor() as cur:
            cur.execute("SELECT string_agg(t::text, chr(10)) FROM anonymised.submissions t")
            return cur.fetchone()[0] or ''

    # -- blocks --------------------------------------------------------------------------

    def test_kept_block_keeps_only_its_kept_subfields(self):
        t = self.tenant()
        f = t.add_form(block_form())
        block = f.field('enfants')
        value = block.block_value([
            {'prenom': 'LéoSECRET1', 'age': 7, 'classe': 'CE1', 'classe_display': 'Cours élémentaire 1',
             'classe_structured': {'id': 'CE1', 'enseignant': 'Mme SECRET2'}},
            {'prenom': 'MiaSECRET3', 'prenom_display': 'MiaSECRET4', 'age': 9, 'classe': 'CM1'},
        ], digests=['LéoSECRET5 7', 'MiaSECRET6 9'])
        fid = t.insert(f, status='wf-done', receipt_time=ago(45), last_update_time=ago(40),
                       values={'nom': 'Durand', 'ecole': 'jules-ferry', 'enfants': value,
                               'enfants_display': 'LéoSECRET7, MiaSECRET8',
                               'adultes': f.field('adultes').block_value([{'nom': 'AdulteSECRET9'}]),
                               'adultes_display': 'AdulteSECRET10'})
        set_done_datetime(t, f, fid)
        self.write_config([t], extra='retention = "30 days"; ' + self.setup_bi(t))

        res = self.anonymizer('check', expect=0)
        self.assertRegex(res.stdout, r'f3 +keep \(trim\) +definition: anonymise no +Enfants \[enfants\]')
        self.assertRegex(res.stdout, r'f3\.1 +blank +definition: anonymise final +Prénom \[enfants\.prenom\]')
        self.assertRegex(res.stdout, r'f3\.2 +keep +definition: anonymise no +Âge \[enfants\.age\]')
        self.assertRegex(res.stdout, r'f3_display +blank +display of a block whose subfields are removed')
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        cols = report['tenants'][0]['forms'][0]['columns']
        self.assertIn({'column': 'f3.2', 'label': 'Âge', 'varname': 'enfants.age',
                       'reason': 'definition: anonymise no', 'personal_by_nature': False}, cols['keep'])
        self.assertIn('f3.1', [c['column'] for c in cols['blank']])

        self.anonymizer('run', expect=0)
        row = t.row(f, fid)
        self.assertEqual(row['f3'], {
            'data': [{'2': 7, '3': 'CE1', '3_display': 'Cours élémentaire 1'}, {'2': 9, '3': 'CM1'}],
            'schema': {'1': 'string', '2': 'numeric', '3': 'item'}})
        self.assertIsNone(row['f3_display'])
        self.assertIsNone(row['f4'], 'a block marked final is blanked whole')
        self.assertIsNone(row['f4_display'])
        self.assertEqual(row['f2'], 'jules-ferry')
        dump = self.bi_dump()
        self.assertIn('CE1', dump)
        for i in range(1, 11):
            self.assertNotIn(f'SECRET{i}', dump)
            self.assertNotIn(f'SECRET{i}', json.dumps(row, default=str))
        # nothing left to do: the next run changes nothing
        sums = t.checksums()
        self.anonymizer('run', expect=0)
        self.assertEqual(t.checksums(), sums)

    def test_subfields_named_in_the_configuration(self):
        t = self.tenant()
        f = t.add_form(block_form())
        value = f.field('enfants').block_value([{'prenom': 'Léo', 'age': 7, 'classe': 'CE1',
                                                 'classe_structured': {'id': 'CE1'}}])
        fid = t.insert(f, status='wf-done', receipt_time=ago(45), last_update_time=ago(40), values={'enfants': value})
        self.write_config([t], extra='retention = "30 days";', forms=[
            '{ tenant = "*"; slug = "inscription-enfants"; keep = ["enfants.prenom", "3.3_structured"];'
            ' blank = ["enfants.age"]; }'])
        self.anonymizer('run', expect=0)
        self.assertEqual(t.row(f, fid)['f3']['data'], [{'1': 'Léo', '3': 'CE1', '3_structured': {'id': 'CE1'}}])

    # -- search tokens -----------------------------------------------------------------------

    def tokens(self, t, f):
        return {r[0] for r in t.query('SELECT token FROM wcs_search_tokens WHERE context = %s', (f.search_context,))}

    def test_search_tokens_of_anonymised_submissions_are_purged(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        full_submission(t, f, ref=ago(40), fts='zoltan quixotic martin')
        full_submission(t, f, ref=ago(5), fts='young yvette martin')
        other = t.add_form(standard_form(2, 'autre', 'Autre'))
        full_submission(t, other, ref=ago(40), fts='zoltan elsewhere')
        self.assertTrue({'zoltan', 'quixotic', 'martin', 'young', 'yvette'} <= self.tokens(t, f))
        self.write_config([t], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "autre"; retention = "60 days"; }'])
        res = self.anonymizer('run', expect=0)
        left = self.tokens(t, f)
        self.assertNotIn('zoltan', left)
        self.assertNotIn('quixotic', left)
        # still matched by the young submission: no over-purge
        self.assertTrue({'martin', 'young', 'yvette'} <= left)
        # another form's context is its own
        self.assertIn('zoltan', self.tokens(t, other))
        self.assertIn('search tokens deleted', res.stderr)
        entry = [e for e in t.runs()[-1][2] if e['slug'] == 'demande-rdv'][0]
        self.assertEqual(entry['search_tokens_deleted'], 2)   # zoltan, quixotic
        # a run with nothing due purges nothing, even tokens nothing matches any more
        t.query("INSERT INTO wcs_search_tokens VALUES ('orphanword', %s)", (f.search_context,))
        self.anonymizer('run', expect=0)
        self.assertIn('orphanword', self.tokens(t, f))
        self.assertEqual(t.runs()[-1][2][0]['search_tokens_deleted'], 0)

    def test_tenant_without_search_tokens(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        fid = full_submission(t, f, ref=ago(40))
        t.query('DROP TABLE wcs_search_tokens CASCADE')
        self.write_config([t], extra='retention = "30 days";')
        self.anonymizer('run', expect=0)
        self.assertIsNotNone(t.row(f, fid)['anonymised'])

    # -- when a submission is done ------------------------------------------------------------

    def test_period_runs_from_done_datetime(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        # done 120 days ago, a note added 10 days ago: past a 90-day period
        done = full_submission(t, f, ref=ago(10), receipt=ago(125))
        set_done_datetime(t, f, done, when=ago(120))
        # an open submission is not done: its last activity counts
        open_ = full_submission(t, f, ref=ago(10), receipt=ago(125), status='wf-new')
        t.query(f"""UPDATE {wcs.qi(f.table)} SET statistics_data = statistics_data
                    || jsonb_build_object('done-datetime', to_jsonb({ago(120)})) WHERE id = %s""", (open_,))
        # a done-datetime that is not a date is ignored, never an error
        odd = full_submission(t, f, ref=ago(10), receipt=ago(125))
        t.query(f"""UPDATE {wcs.qi(f.table)} SET statistics_data = statistics_data
                    || '{{"done-datetime": "2026-02-30T25:00:00"}}' WHERE id = %s""", (odd,))
        self.write_config([t], extra='retention = "90 days";')
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=1).stdout)
        form = report['tenants'][0]['forms'][0]
        self.assertEqual((form['due'], form['days_past_limit']), (1, 31))   # 30 days and seconds, rounded up
        self.assertIn('periods run from the time a submission was done (done-datetime)',
                      self.anonymizer('report', expect=1).stdout)
        self.anonymizer('run', expect=0)
        self.assertIsNotNone(t.row(f, done)['anonymised'])
        self.assertIsNone(t.row(f, open_)['anonymised'])
        self.assertIsNone(t.row(f, odd)['anonymised'])

    # -- structured values, id_template ----------------------------------------------------------

    def test_structured_values_and_id_template(self):
        t = self.tenant()
        f = t.add_form(block_form(id_template='{{ form_var_nom }}-{{ form_number_raw }}'))
        fid = t.insert(f, status='wf-done', receipt_time=ago(45), last_update_time=ago(40),
                       values={'nom': 'Durand', 'ecole': 'jules-ferry', 'ecole_display': 'Jules Ferry',
                               'ecole_structured': b'(dp0\nVdirectrice\np1\nVMme Secret\ns.'},
                       id_display='Durand-1')
        t.query(f"UPDATE {wcs.qi(f.table)} SET id_display = 'Durand-' || id WHERE id = %s", (fid,))
        self.assertEqual(t.allforms(f, fid)['id_display'], f'Durand-{fid}')
        self.write_config([t], extra='retention = "30 days";')
        self.anonymizer('run', expect=0)
        row = t.row(f, fid)
        self.assertIsNone(row['f2_structured'])
        self.assertEqual((row['f2'], row['f2_display']), ('jules-ferry', 'Jules Ferry'))
        self.assertEqual(row['id_display'], f'{f.id}-{fid}')
        self.assertEqual(t.allforms(f, fid)['id_display'], f'{f.id}-{fid}')
        # kept by name, it stays
        g = t.add_form(block_form(5, 'autre-ecole'))
        gid = t.insert(g, status='wf-done', receipt_time=ago(45), last_update_time=ago(40),
                       values={'ecole': 'x', 'ecole_structured': b'pickle'})
        self.write_config([t], extra='retention = "30 days";',
                          forms=['{ tenant = "*"; slug = "autre-ecole"; keep = ["ecole_structured"]; }'])
        self.anonymizer('run', expect=0)
        self.assertEqual(bytes(t.row(g, gid)['f2_structured']), b'pickle')

    # -- test copies -------------------------------------------------------------------------------

    def test_test_copies_follow_their_form(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        young = full_submission(t, f, ref=ago(5), marker='YOUNG')
        real = full_submission(t, f, ref=ago(40), marker='REAL')
        with t.conn.cursor() as cur:
            copy = wcs.create_test_copy(cur, f, real)
            young_copy = wcs.create_test_copy(cur, f, young)
        # the copy's id is the young real submission's: its rows must not be touched
        self.assertEqual(copy, young)
        young_rows = (t.row(f, young), t.allforms(f, young), t.history(f, young))
        code = t.row(f, young)['tracking_code']
        self.write_config([t], extra='retention = "30 days";')
        res = self.anonymizer('check', expect=0)
        self.assertIn(f'test copy of demande-rdv "Demande de rendez-vous" (table {f.test_table})', res.stdout)
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        kinds = {x['table']: (x['kind'], x['due']) for x in report['tenants'][0]['forms']}
        self.assertEqual(kinds[f.test_table], ('test copy', 1))

        res = self.anonymizer('run', expect=0)
        self.assertIn('test copy of demande-rdv: 1 anonymised', res.stderr)
        with t.conn.cursor() as cur:
            cur.execute(f'SELECT * FROM {wcs.qi(f.test_table)} WHERE id = %s', (copy,))
            row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
            cur.execute(f'SELECT anonymised, f1 FROM {wcs.qi(f.test_table)} WHERE id = %s', (young_copy,))
            self.assertEqual(cur.fetchone(), (None, 'Martin-YOUNG'))
        self.assertIsNotNone(row['anonymised'])
        self.assertIsNone(row['f1'])
        self.assertIsNone(row['user_id'])
        self.assertEqual(row['f2'], 'rdv')
        self.assertEqual((t.row(f, young), t.allforms(f, young), t.history(f, young)), young_rows)
        self.assertIsNotNone(t.one('SELECT 1 FROM tracking_codes WHERE id = %s', (code,)))
        self.assertIsNotNone(t.row(f, real)['anonymised'])

    # -- cards ------------------------------------------------------------------------------------

    def card(self, formdef_id=1, slug='registre-familles'):
        return wcs.Card(formdef_id, slug, 'Registre des familles', [
            F('1', 'string', 'Nom', 'nom', 'final'), F('2', 'string', 'Quartier', 'quartier', 'no')])

    def test_cards_are_registers(self):
        t = self.tenant()
        f = t.add_form(standard_form())
        kept_card = t.add_form(self.card(1, 'registre-familles'), definition=False)
        opted = t.add_form(self.card(2, 'ecoles'))
        rows = {}
        for c in (kept_card, opted):
            rows[c.slug] = {
                'old': t.insert(c, status='wf-done', receipt_time=ago(400), last_update_time=ago(400),
                                values={'nom': 'Famille Secret', 'quartier': 'Nord'}, user_id='7',
                                fts="famille secret nord"),
                'draft': t.insert(c, status='draft', receipt_time=ago(400), last_update_time=ago(400),
                                  values={'nom': 'Brouillon'}),
                'young_draft': t.insert(c, status='draft', receipt_time=ago(2), last_update_time=ago(2)),
            }
        full_submission(t, f, ref=ago(40))
        self.assertIn('famille', self.tokens(t, kept_card))
        before = t.one(f"SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM {wcs.qi(kept_card.table)} c"
                       f" WHERE status <> 'draft'")[0]
        with open(self.write_config([t], extra='retention = "30 days";'), 'a') as fp:
            fp.write('cards = ( { tenant = "*"; slug = "ecoles"; retention = "1 year"; } );\n')

        res = self.anonymizer('check', expect=0)
        self.assertRegex(res.stdout, r'card registre-familles .*\n    card: not anonymised \(no cards entry\): '
                                     r'drafts only; 3 rows, 1 drafts due')
        self.assertRegex(res.stdout, r'card ecoles .*\n    card: anonymised \(cards entry\); 3 rows, 1 drafts due')
        self.assertIn('1 form, 2 cards, 1 definition, 1 card definition', res.stdout)
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        cards = {x['slug']: x for x in report['tenants'][0]['forms'] if x['kind'] == 'card'}
        self.assertEqual(cards['ecoles']['retention'], '1 year')
        self.assertEqual((cards['ecoles']['due'], cards['ecoles']['drafts_due']), (1, 1))
        self.assertEqual((cards['registre-familles']['due'], cards['registre-familles']['drafts_due']), (0, 1))
        self.assertIsNone(cards['registre-familles']['definition'])
        self.assertTrue(report['compliant'], 'a 400-day-old card is not past the legal limit')

        self.anonymizer('run', expect=0)
        for c in (kept_card, opted):
            self.assertIsNone(t.row(c, rows[c.slug]['draft']), 'expired card drafts are deleted')
            self.assertIsNotNone(t.row(c, rows[c.slug]['young_draft']))
        after = t.one(f"SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM {wcs.qi(kept_card.table)} c"
                      f" WHERE status <> 'draft'")[0]
        self.assertEqual(after, before, 'a card without a cards entry is untouched')
        row = t.row(opted, rows['ecoles']['old'])
        self.assertIsNotNone(row['anonymised'])
        self.assertEqual((row['f1'], row['f2'], row['user_id']), (None, 'Nord', None))
        self.assertNotIn('famille', self.tokens(t, opted))
        self.assertIn('famille', self.tokens(t, kept_card))

    def test_test_copies_of_an_opted_in_card_are_anonymised_the_others_untouched(self):
        """test_carddata_* hold copies of card rows: they follow their card's cards entry (issue 22)."""
        t = self.tenant()
        kept_card = t.add_form(self.card(1, 'registre-familles'), definition=False)
        opted = t.add_form(self.card(2, 'ecoles'))
        copies = {}
        for c in (kept_card, opted):
            rid = t.insert(c, status='wf-done', receipt_time=ago(400), last_update_time=ago(400),
                           values={'nom': 'Famille Secret', 'quartier': 'Nord'}, user_id='7')
            with t.conn.cursor() as cur:
                copies[c.slug] = wcs.create_test_copy(cur, c, rid)
        self.assertTrue(kept_card.test_table.startswith('test_carddata_'))
        untouched = t.one(f'SELECT md5(c::text) FROM {wcs.qi(kept_card.test_table)} c')[0]
        with open(self.write_config([t], extra='retention = "30 days";'), 'a') as fp:
            fp.write('cards = ( { tenant = "*"; slug = "ecoles"; retention = "1 year"; } );\n')
        res = self.anonymizer('check', expect=0)
        self.assertIn(f'test copy of ecoles "Registre des familles" (table {opted.test_table})', res.stdout)
        self.assertNotIn(kept_card.test_table, res.stdout)
        report = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        self.assertTrue(report['compliant'], 'a copy of a card row is a register too')
        self.anonymizer('run', expect=0)
        row = t.one(f'SELECT anonymised, f1, f2, user_id FROM {wcs.qi(opted.test_table)} WHERE id = %s',
                    (copies['ecoles'],))
        self.assertIsNotNone(row[0])
        self.assertEqual(row[1:], (None, 'Nord', None))
        self.assertEqual(t.one(f'SELECT md5(c::text) FROM {wcs.qi(kept_card.test_table)} c')[0], untouched)


    def test_a_kept_backoffice_block_without_its_schema_is_warned_about(self):
        """w.c.s. exports back-office blocks without their block schema: keeping one keeps nothing (issue 22)."""
        t = self.tenant()
        f = t.add_form(wcs.Form(1, 'suivi', 'Suivi', [
            wcs.Field('1', 'string', 'Nom', 'nom', 'final'),
            wcs.Field('bo1', 'block', 'Intervenants', 'intervenants', 'no', backoffice=True),
            wcs.Field('bo2', 'block', 'Notes', 'notes', 'final', backoffice=True),
        ]))
        self.write_config([t], extra='retention = "30 days";')
        res = self.anonymizer('-q', 'check', expect=0)
        self.assertIn('back-office block field "intervenants" is kept, but w.c.s. exports back-office blocks without'
                      ' their block schema', res.stderr)
        self.assertNotIn('"notes"', res.stderr)


    def test_report_counts_open_submissions_still_holding_intermediate_fields(self):
        """Intermediate anonymisation is a w.c.s. workflow action; the report shows where it is missing."""
        t = self.tenant()
        f = t.add_form(standard_form())       # field 6 (naissance) is "intermediate"
        self.write_config([t], extra='retention = "30 days";')
        stuck = full_submission(t, f, ref=ago(40), status='wf-new', marker='stuck')
        full_submission(t, f, ref=ago(10), status='wf-new', marker='young')
        cleared = full_submission(t, f, ref=ago(40), status='wf-new', marker='cleared')
        t.query(f'UPDATE {wcs.qi(f.table)} SET f6 = NULL WHERE id = %s', (cleared,))
        self.assertIsNotNone(t.row(f, stuck)['f6'])
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        self.assertEqual(doc['tenants'][0]['forms'][0]['open_with_intermediate_fields'], 1)
        self.assertIn('1 open past the period still hold fields marked "intermediate"',
                      self.anonymizer('report').stdout)


    # -- w.c.s.'s own logs ---------------------------------------------------------------------------

    def test_wcs_logs_old_rows_are_reported_and_errors_blanked_on_request(self):
        """audit and loggederrors keep what w.c.s.'s retention decides: reported (counts and ages only),
        outside the verdict; wcs_logs = "anonymise" blanks the errors' texts (issue 22)."""
        t = self.tenant()
        f = t.add_form(standard_form())
        old = full_submission(t, f, ref=ago(200), marker='OLD')
        young = full_submission(t, f, ref=ago(10), marker='YOUNG')
        self.write_config([t], extra='retention = "30 days";')
        self.anonymizer('run', expect=0)
        secret = harness.unique('Mon fils est malade')
        for sid, days in ((old, 150), (young, 150), (old, 20)):
            t.query("INSERT INTO audit (timestamp, action, object_type, object_id, data_id, frozen)"
                    " VALUES (now() - %s * interval '1 day', 'view', 'formdef', %s, %s, %s)",
                    (days, str(f.id), sid, json.dumps({'user_email': 'agent@example.org'})))
            t.query("INSERT INTO loggederrors (tech_id, summary, formdef_class, formdef_id, formdata_id, context,"
                    " traceback, exception_message, first_occurence_timestamp, latest_occurence_timestamp)"
                    " VALUES (%s, 'error', 'FormDef', %s, %s, %s, %s, %s, now() - %s * interval '1 day',"
                    " now() - %s * interval '1 day')",
                    (harness.unique('e'), str(f.id), str(sid), json.dumps({'form_var_nom': secret}), secret, secret,
                     days, days))
        doc = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        tr = doc['tenants'][0]
        # about the anonymised submission, older than the legal limit: one row each
        self.assertEqual((tr['wcs_logs']['audit_old_rows'], tr['wcs_logs']['errors_old_rows']), (1, 1))
        self.assertTrue(doc['compliant'], 'w.c.s.\'s own retention is outside the verdict')
        text = self.anonymizer('report', expect=0).stdout
        self.assertIn('w.c.s. audit log: 1 row older than the legal limit about anonymised submissions', text)
        self.assertIn('audit-retention-days', text)
        for fmt in ('text', 'html', 'json'):
            self.assertNotIn(secret, self.anonymizer('report', '--format', fmt).stdout)
        # on request, the run blanks the errors about anonymised submissions, whatever their age
        with open(self.config_path, 'a') as fp:
            fp.write('wcs_logs = "anonymise";\n')
        res = self.anonymizer('run', expect=0)
        self.assertIn('2 errors of w.c.s.\'s error log about anonymised submissions blanked', res.stderr)
        self.assertEqual(t.one("SELECT count(*) FROM loggederrors WHERE context IS NOT NULL")[0], 1)
        self.assertEqual(t.one("SELECT formdata_id FROM loggederrors WHERE context IS NOT NULL")[0], str(young))
        doc = json.loads(self.anonymizer('report', '--format', 'json', expect=0).stdout)
        self.assertEqual(doc['tenants'][0]['wcs_logs']['errors_old_rows'], 0)


    # -- test definitions made from submissions ------------------------------------------------------

    def dump(self, t):
        pg_dump = os.path.join(pgcluster.bindir(), 'pg_dump')
        proc = subprocess.run([pg_dump if os.path.exists(pg_dump) else 'pg_dump', '--data-only', '-d', t.conninfo],
                              capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc.stdout

    def test_test_definitions_made_from_submissions_are_anonymised_after_the_period(self):
        """TestDef.create_from_formdata keeps the answers, a copy of the submitter and snapshots of both: once
        the form's period has passed since the test was made, they go as the submission did (issue 22)."""
        t = self.tenant()
        f = t.add_form(standard_form())
        marker, young_marker = harness.unique('OLDTEST'), harness.unique('YOUNGTEST')
        account = harness.unique('Personne Unique')
        t.query("INSERT INTO users (id, name, email) VALUES (77, %s, %s)", (account, f'{account}@example.org'))
        real = full_submission(t, f, ref=ago(40), marker=marker, user_id='77')
        young = full_submission(t, f, ref=ago(40), marker=young_marker)
        with t.conn.cursor() as cur:
            wcs.create_test_copy(cur, f, real, made="now() - interval '35 days'")
            wcs.create_test_definition(cur, f, young, made="now() - interval '5 days'")
        old_td = t.one("SELECT min(id) FROM testdef")[0]
        old_user = t.one("SELECT user_uuid FROM testdef WHERE id = %s", (old_td,))[0]
        self.assertIn(marker, self.dump(t))

        # testdefs = "report": nothing changes, the report says what a run would do
        self.write_config([t], extra='retention = "30 days"; testdefs = "report";')
        before = t.one("SELECT md5(string_agg(d::text, ',' ORDER BY id)) FROM testdef d")[0]
        self.anonymizer('run', expect=0)
        self.assertEqual(t.one("SELECT md5(string_agg(d::text, ',' ORDER BY id)) FROM testdef d")[0], before)
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        fr = [x for x in doc['tenants'][0]['forms'] if x['kind'] == 'form'][0]
        self.assertEqual((fr['test_definitions'], fr['test_definitions_due'], fr['test_definitions_past_limit']),
                         (2, 1, 0))
        self.assertIn('left (testdefs = "report")', self.anonymizer('report').stdout)
        self.assertIn('test definitions made from submissions: 2, 1 holding personal data past the period (left)',
                      self.anonymizer('check').stdout)

        # the default: the old one is anonymised, the young one kept
        self.write_config([t], extra='retention = "30 days";')
        res = self.anonymizer('run', expect=0)
        self.assertIn('1 test definition made from submissions anonymised', res.stderr)
        data = t.one("SELECT data FROM testdef WHERE id = %s", (old_td,))[0]['fields']
        self.assertEqual(data['2'], 'rdv', 'a kept field stays')
        self.assertIsNone(data['1'])
        self.assertIsNone(data['3'])
        user = t.one("SELECT name, email, test_uuid FROM users WHERE test_uuid = %s", (old_user,))
        self.assertEqual(user, (None, None, old_user))
        dump = self.dump(t)
        self.assertNotIn(marker, dump)
        # the account the test user was copied from is the platform's, and the only place its name stays
        self.assertEqual([line.split('\t')[0] for line in dump.splitlines() if account in line], ['77'])
        self.assertIn(young_marker, t.one("SELECT data::text FROM testdef WHERE id <> %s", (old_td,))[0])
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        fr = [x for x in doc['tenants'][0]['forms'] if x['kind'] == 'form'][0]
        self.assertEqual(fr['test_definitions_due'], 0)


    def test_report_states_the_tenants_files_behaviour_from_its_site_options(self):
        """Files of blanked fields go only when w.c.s.'s unused-files-behaviour says so: the report reads the
        tenant's site-options.cfg where wcs_sites points (issue 22)."""
        t = self.tenant()
        t.add_form(standard_form())
        sites = os.path.join(self.dir, 'wcs')
        os.makedirs(os.path.join(sites, t.name))
        with open(os.path.join(sites, t.name, 'site-options.cfg'), 'w') as fp:
            fp.write('[variables]\nunused-files-behaviour = remove\n\n[options]\n'
                     'unused-files-behaviour = move\naudit-retention-days: 30\n')
        self.write_config([t], extra=f'retention = "30 days"; wcs_sites = "{harness.cfgstr(sites)}";')
        text = self.anonymizer('report').stdout
        self.assertIn('files of blanked fields: kept by w.c.s. under unused-files/ (unused-files-behaviour: move):'
                      ' TO REVIEW', text)
        self.assertIn('audit-retention-days, here 30', text)
        doc = json.loads(self.anonymizer('report', '--format', 'json').stdout)
        self.assertEqual(doc['tenants'][0]['wcs_site_options'],
                         {'unused_files_behaviour': 'move', 'audit_retention_days': '30', 'error': None})
        os.remove(os.path.join(sites, t.name, 'site-options.cfg'))
        self.assertIn('files of blanked fields: site-options.cfg not read (', self.anonymizer('report').stdout)
        # without wcs_sites, nothing is claimed
        self.write_config([t], extra='retention = "30 days";')
        self.assertNotIn('files of blanked fields', self.anonymizer('report').stdout)


if __name__ == '__main__':
    harness.main()
