"""w.c.s.-faithful tenant fixtures (SQL layout level 168, see ../shared/wcs-schema.md).

Builds the tables w.c.s. creates: formdefs, carddefs, users, test_result,
tracking_codes, wcs_all_forms with one AFTER INSERT OR UPDATE OR DELETE trigger
per form, workflow_traces, wcs_search_tokens (pg_trgm index, fed by triggers on
wcs_all_forms and on each card table), wcs_meta; per form the main table
formdata_<id>_<slug> with its static columns, field columns and indexes, and
the history table <main>_evolutions whose rows cascade on delete; per card the
same as carddata_<id>_<slug>; test copies test_formdata_<id>_<slug> (no
trigger, no history).  Also writes the JSON definitions w.c.s. serves at
/api/formdefs/<slug>/schema (and /api/cards/<slug>/schema).
"""

import base64
import json
import os
import re

from psycopg2.extras import Json

# w.c.s. SQL_TYPE_MAPPING (None: no column)
SQL_TYPES = {
    'title': None, 'subtitle': None, 'comment': None, 'page': None,
    'text': 'text', 'bool': 'boolean', 'numeric': 'numeric', 'file': 'bytea', 'date': 'date',
    'map': 'jsonb', 'items': 'text[]', 'table': 'text[][]', 'table-select': 'text[][]',
    'tablerows': 'text[][]', 'time-range': 'jsonb', 'ranked-items': 'text[][]', 'password': 'text[][]',
    'block': 'jsonb', 'computed': 'jsonb',
}
DISPLAY_TYPES = {'item', 'items', 'block'}
STRUCTURED_TYPES = {'item', 'items'}


class Field:
    def __init__(self, id, type, label=None, varname=None, anonymise=None, backoffice=False, **extra):
        self.id = str(id)
        self.type = type
        self.label = label or f'Field {id}'
        self.varname = varname
        self.anonymise = anonymise  # None: not in the export (w.c.s. default)
        self.backoffice = backoffice
        self.extra = extra

    @property
    def column(self):
        return 'f' + self.id.replace('-', '_').lower()

    @property
    def sql_type(self):
        return SQL_TYPES.get(self.type, 'varchar')

    def columns(self):
        if self.sql_type is None:
            return []
        cols = [(self.column, self.sql_type)]
        if self.type in DISPLAY_TYPES:
            cols.append((self.column + '_display', 'varchar'))
        if self.type in STRUCTURED_TYPES:
            cols.append((self.column + '_structured', 'bytea'))
        return cols

    @property
    def subfields(self):
        """The subfields of a block (schema=[Field, ...])."""
        return self.extra.get('schema') or []

    def export(self, with_ids=True, legacy=False):
        d = {'type': self.type, 'label': self.label}
        if with_ids:
            d['id'] = self.id
        if self.varname:
            d['varname'] = self.varname
        if self.anonymise is not None:
            a = self.anonymise
            if legacy and isinstance(a, str):
                a = a != 'no'
            d['anonymise'] = a
        if self.type == 'block':
            # as the schema endpoint exports a block: its subfields under schema.fields
            d['block_slug'] = self.varname or f'block{self.id}'
            d['schema'] = {'name': self.label, 'slug': d['block_slug'],
                           'fields': [sub.export(with_ids, legacy) for sub in self.subfields]}
            # as w.c.s. exports it: a string
            d['max_items'] = str(self.extra.get('max_items', 5))
        else:
            d.update(self.extra)
        return d

    def block_value(self, rows, digests=None):
        """The jsonb w.c.s. stores for a block: rows are dicts of subfield id (or varname) to value."""
        data = []
        for row in rows:
            item = {}
            for key, value in row.items():
                suffix = ''
                for sfx in ('_display', '_structured'):
                    if key.endswith(sfx):
                        key, suffix = key[:-len(sfx)], sfx
                sub = next(x for x in self.subfields if x.id == str(key) or x.varname == key)
                item[sub.id + suffix] = value
            data.append(item)
        value = {'data': data, 'schema': {sub.id: sub.type for sub in self.subfields}}
        if digests is not None:
            value['digests'] = digests
        return value


DEFAULT_STATUSES = [('new', 'Nouveau', False), ('accepted', 'En cours', False), ('done', 'Terminé', True),
                    ('rejected', 'Refusé', True)]


def sql_identifier(slug):
    # w.c.s. get_name_as_sql_identifier, for the ASCII slugs used here
    name = slug
    for char in "<>|{}!?^*+/='":
        name = name.replace(char, '')
    return name.replace('-', '_')


class Form:
    kind = 'formdata'     # 'carddata' for cards
    defs_table = 'formdefs'

    def __init__(self, formdef_id, slug, name, fields, statuses=None, geolocations=('base',), category_id=None,
                 table=None, criticality_levels=0, id_template=None):
        self.id = formdef_id
        self.id_template = id_template
        self.slug = slug
        self.name = name
        self.fields = fields
        self.statuses = statuses if statuses is not None else DEFAULT_STATUSES
        self.geolocations = list(geolocations)
        self.category_id = category_id
        self.table = table or f'{self.kind}_{formdef_id}_{sql_identifier(slug)[:30]}'
        self.criticality_levels = criticality_levels

    @property
    def evolutions(self):
        return self.table + '_evolutions'

    @property
    def endpoints(self):
        return ['wf-' + s[0] for s in self.statuses if s[2]]

    def field(self, key):
        for f in self.fields:
            if f.id == str(key) or f.varname == key:
                return f
        raise KeyError(key)

    @property
    def test_table(self):
        """The table of its test copies (TestDef.create_from_formdata)."""
        return 'test_' + self.table

    @property
    def search_context(self):
        return f'{self.kind}_{self.id}'

    def definition(self, with_ids=True, legacy=False):
        return {
            'name': self.name,
            'url_name': self.slug,
            'id': str(self.id),
            'id_template': self.id_template,
            'fields': [f.export(with_ids, legacy) for f in self.fields if not f.backoffice],
            'workflow': {
                'name': 'Workflow',
                'statuses': [{'id': s[0], 'name': s[1], 'endpoint': s[2], 'forced_endpoint': False}
                             for s in self.statuses],
                'fields': [f.export(with_ids, legacy) for f in self.fields if f.backoffice],
            },
        }

    def write_definition(self, schemas_dir, tenant, **kw):
        d = os.path.join(schemas_dir, tenant, *(['cards'] if self.kind == 'carddata' else []))
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, self.slug + '.json')
        with open(path, 'w') as fp:
            json.dump(self.definition(**kw), fp, ensure_ascii=False, indent=1)
        return path


class Card(Form):
    """A card model: carddefs row, carddata_<id>_<slug>, not in wcs_all_forms, its own search tokens."""
    kind = 'carddata'
    defs_table = 'carddefs'


TENANT_DDL = """
CREATE TABLE wcs_meta (id serial PRIMARY KEY, key varchar, value varchar,
    created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
INSERT INTO wcs_meta (key, value) VALUES ('sql_level', '168');
CREATE TABLE users (id serial PRIMARY KEY, name varchar, ascii_name varchar, email varchar, roles text[],
    is_active bool, is_admin bool, verified_fields text[], name_identifiers text[], lasso_dump text,
    last_seen timestamp, deleted_timestamp timestamp, preferences jsonb, test_uuid varchar);
CREATE TABLE audit (id bigserial PRIMARY KEY, timestamp timestamptz, action varchar, url varchar,
    user_id integer, object_type varchar, object_id varchar, data_id integer, extra_data jsonb, frozen jsonb);
CREATE INDEX audit_timestamp_idx ON audit (timestamp);
CREATE TABLE loggederrors (id serial PRIMARY KEY, kind varchar, tech_id varchar UNIQUE, summary varchar,
    formdef_class varchar, formdata_id varchar, formdef_id varchar, workflow_id varchar, status_id varchar,
    status_item_id varchar, expression varchar, expression_type varchar, context jsonb, traceback text,
    exception_class varchar, exception_message varchar, occurences_count integer,
    first_occurence_timestamp timestamptz, latest_occurence_timestamp timestamptz, deleted_timestamp timestamptz,
    documentation text);
CREATE TABLE roles (id varchar PRIMARY KEY, name varchar, uuid varchar, slug varchar, internal boolean,
    details text, emails varchar[], emails_to_members boolean, allows_backoffice_access boolean);
CREATE TABLE test_results (id serial PRIMARY KEY, object_type varchar, object_id varchar, timestamp timestamptz,
    success boolean, reason varchar, coverage jsonb);
CREATE TABLE test_result (id serial PRIMARY KEY, test_results_id integer REFERENCES test_results(id) ON DELETE CASCADE,
    test_id integer, timestamp timestamptz, success boolean, reason varchar);
CREATE TABLE testdef (id serial PRIMARY KEY, uuid varchar, name varchar, object_type varchar, object_id varchar,
    data jsonb, is_in_backoffice boolean, query_parameters jsonb, expected_error varchar, user_uuid varchar,
    submission_agent_uuid varchar, agent_id varchar, frozen_submission_datetime timestamptz, dependencies text[],
    workflow_options jsonb);
CREATE TABLE snapshots (id serial PRIMARY KEY, object_type varchar, object_id varchar, timestamp timestamptz,
    user_id varchar, comment text, serialization text, patch text, label varchar, test_results_id integer,
    application_slug varchar, application_version varchar, application_ignore_change boolean,
    deleted_object boolean);
CREATE TABLE formdefs (id serial PRIMARY KEY, slug varchar NOT NULL, name varchar NOT NULL,
    category_id varchar, workflow_id varchar, backoffice_submission_roles text[], params bytea, fields bytea);
CREATE TABLE tracking_codes (id varchar PRIMARY KEY, formdef_id varchar, formdata_id varchar);
CREATE TABLE wcs_all_forms (
    category_id integer,
    formdef_id integer NOT NULL,
    id integer NOT NULL,
    user_id character varying,
    receipt_time timestamp with time zone,
    status character varying,
    id_display character varying,
    submission_agent_id character varying,
    submission_channel character varying,
    backoffice_submission boolean,
    last_update_time timestamp with time zone,
    digests jsonb,
    user_label character varying,
    concerned_roles_array text[],
    actions_roles_array text[],
    fts tsvector,
    is_at_endpoint boolean,
    formdef_name text,
    user_name character varying,
    criticality_level integer,
    geoloc_base_x double precision,
    geoloc_base_y double precision,
    anonymised timestamp with time zone,
    statistics_data jsonb,
    relations_data jsonb,
    PRIMARY KEY (formdef_id, id));
CREATE INDEX wcs_all_forms_receipt_time ON wcs_all_forms (receipt_time);
CREATE INDEX wcs_all_forms_anonymised ON wcs_all_forms (anonymised);
CREATE INDEX wcs_all_forms_user_id ON wcs_all_forms (user_id);
CREATE INDEX wcs_all_forms_status ON wcs_all_forms (status);
CREATE INDEX wcs_all_forms_category_id ON wcs_all_forms (category_id);
CREATE INDEX wcs_all_forms_fts ON wcs_all_forms USING gin (fts);
CREATE INDEX wcs_all_forms_concerned_roles_array ON wcs_all_forms USING gin (concerned_roles_array);
CREATE INDEX wcs_all_forms_actions_roles_array ON wcs_all_forms USING gin (actions_roles_array);
CREATE INDEX wcs_all_forms_actions_roles_live ON wcs_all_forms USING gin (actions_roles_array)
    WHERE (anonymised IS NULL AND is_at_endpoint = false);
CREATE TABLE carddefs (id serial PRIMARY KEY, slug varchar NOT NULL, name varchar NOT NULL,
    category_id varchar, workflow_id varchar, backoffice_submission_roles text[], params bytea, fields bytea);
CREATE TABLE wcs_search_tokens (token TEXT NOT NULL, context TEXT NOT NULL, PRIMARY KEY (context, token));
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX wcs_search_tokens_trgm ON wcs_search_tokens USING gin (token gin_trgm_ops);
CREATE FUNCTION wcs_search_tokens_trigger_fn() RETURNS trigger LANGUAGE plpgsql AS $function$
DECLARE
    trg_context TEXT;
BEGIN
    IF TG_NARGS <> 1 THEN
        RAISE EXCEPTION 'Missing context for wcs_search_tokens trigger';
    END IF;
    trg_context := TG_ARGV[0];
    IF right(trg_context, 1) = '_' THEN
        trg_context := trg_context || NEW.formdef_id;
    END IF;
    INSERT INTO wcs_search_tokens
        SELECT token, trg_context FROM
            (SELECT unnest(tsvector_to_array(NEW.fts)) token) tokens
        WHERE token not similar to '%[0-9]{2,}%'
        ON CONFLICT(token, context) DO NOTHING;
    RETURN NEW;
END;
$function$;
CREATE TRIGGER wcs_all_forms_fts_trg_ins AFTER INSERT ON wcs_all_forms
    FOR EACH ROW WHEN (NEW.fts IS NOT NULL) EXECUTE PROCEDURE wcs_search_tokens_trigger_fn('formdata_');
CREATE TRIGGER wcs_all_forms_fts_trg_upd AFTER UPDATE OF fts ON wcs_all_forms
    FOR EACH ROW WHEN (NEW.fts IS NOT NULL) EXECUTE PROCEDURE wcs_search_tokens_trigger_fn('formdata_');
CREATE TYPE workflow_trace_event AS (status_id varchar, event varchar, event_args jsonb,
    timestamp timestamptz, action_item_key varchar, action_item_id varchar);
CREATE TABLE workflow_traces (id serial PRIMARY KEY, formdef_type varchar NOT NULL, formdef_id integer NOT NULL,
    formdata_id integer NOT NULL, status_id varchar, event varchar, event_args jsonb, timestamp timestamptz,
    action_item_key varchar, action_item_id varchar);
CREATE INDEX workflow_traces_idx ON workflow_traces (formdef_type, formdef_id, formdata_id);
CREATE TABLE workflow_traces_archive (id serial PRIMARY KEY, formdef_type varchar NOT NULL,
    formdef_id integer NOT NULL, formdata_id integer NOT NULL, traces workflow_trace_event[]);
CREATE UNIQUE INDEX workflow_traces_archive_idx ON workflow_traces_archive (formdef_type, formdef_id, formdata_id);
CREATE TABLE test_workflow_traces (LIKE workflow_traces INCLUDING ALL);
CREATE TABLE test_workflow_traces_archive (LIKE workflow_traces_archive INCLUDING ALL);
-- the BEFORE DELETE trigger of every data table (forms, cards, test copies): whoever deletes a row needs
-- DELETE (and SELECT) on both trace tables
CREATE FUNCTION wcs_remove_workflow_traces() RETURNS trigger LANGUAGE plpgsql AS $function$
BEGIN
    DELETE FROM workflow_traces_archive WHERE formdef_type = TG_ARGV[0] AND formdef_id = TG_ARGV[1]::int
        AND formdata_id = OLD.id;
    DELETE FROM workflow_traces WHERE formdef_type = TG_ARGV[0] AND formdef_id = TG_ARGV[1]::int
        AND formdata_id = OLD.id;
    RETURN OLD;
END;
$function$;
CREATE FUNCTION wcs_remove_test_workflow_traces() RETURNS trigger LANGUAGE plpgsql AS $function$
BEGIN
    DELETE FROM test_workflow_traces_archive WHERE formdef_type = TG_ARGV[0] AND formdef_id = TG_ARGV[1]::int
        AND formdata_id = OLD.id;
    DELETE FROM test_workflow_traces WHERE formdef_type = TG_ARGV[0] AND formdef_id = TG_ARGV[1]::int
        AND formdata_id = OLD.id;
    RETURN OLD;
END;
$function$;
"""

MAIN_STATIC = [
    ('user_id', 'varchar'), ('receipt_time', 'timestamptz'), ('anonymised', 'timestamptz'), ('status', 'varchar'),
    ('page_no', 'varchar'), ('workflow_data', 'bytea'), ('id_display', 'varchar'), ('fts', 'tsvector'),
    ('criticality_level', 'integer NOT NULL DEFAULT(0)'),
    ('test_result_id', 'integer REFERENCES test_result(id) ON DELETE CASCADE'),
    ('last_update_time', 'timestamptz'), ('digests', 'jsonb'), ('user_label', 'varchar'),
    ('submission_context', 'bytea'), ('submission_agent_id', 'varchar'), ('submission_channel', 'varchar'),
    ('backoffice_submission', 'boolean'), ('workflow_roles', 'bytea'), ('workflow_roles_array', 'text[]'),
    ('concerned_roles_array', 'text[]'), ('actions_roles_array', 'text[]'), ('tracking_code', 'varchar'),
    ('workflow_merged_roles_dict', 'jsonb'), ('prefilling_data', 'bytea'), ('page_id', 'varchar'),
    ('statistics_data', 'jsonb'), ('relations_data', 'jsonb'), ('uuid', 'uuid UNIQUE NOT NULL DEFAULT gen_random_uuid()'),
    ('workflow_processing_timestamp', 'timestamptz'), ('workflow_processing_afterjob_id', 'varchar'),
    ('auto_geoloc', 'point'),
]

TRIGGER_TEMPLATE = """
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM wcs_all_forms WHERE formdef_id = {formdef_id} AND id = OLD.id;
        RETURN OLD;
    ELSEIF TG_OP = 'INSERT' AND NEW.test_result_id IS NULL THEN
        INSERT INTO wcs_all_forms VALUES (
            {category_id}, {formdef_id}, NEW.id, NEW.user_id, NEW.receipt_time, NEW.status, NEW.id_display,
            NEW.submission_agent_id, NEW.submission_channel, NEW.backoffice_submission, NEW.last_update_time,
            NEW.digests, NEW.user_label, NEW.concerned_roles_array, NEW.actions_roles_array, NEW.fts,
            NEW.status IN ({endpoint_status}), {formdef_name},
            (SELECT name FROM users WHERE users.id = CAST(NEW.user_id AS INTEGER)),
            NEW.criticality_level - {criticality_levels}, {geoloc_base_x}, {geoloc_base_y},
            NEW.anonymised, NEW.statistics_data, NEW.relations_data);
        RETURN NEW;
    ELSE
        UPDATE wcs_all_forms SET
                user_id = NEW.user_id,
                receipt_time = NEW.receipt_time,
                status = NEW.status,
                id_display = NEW.id_display,
                submission_agent_id = NEW.submission_agent_id,
                submission_channel = NEW.submission_channel,
                backoffice_submission = NEW.backoffice_submission,
                last_update_time = NEW.last_update_time,
                digests = NEW.digests,
                user_label = NEW.user_label,
                concerned_roles_array = NEW.concerned_roles_array,
                actions_roles_array = NEW.actions_roles_array,
                fts = NEW.fts,
                is_at_endpoint = NEW.status IN ({endpoint_status}),
                formdef_name = {formdef_name},
                user_name = (SELECT name FROM users WHERE users.id = CAST(NEW.user_id AS INTEGER)),
                criticality_level = NEW.criticality_level - {criticality_levels},
                geoloc_base_x = {geoloc_base_x},
                geoloc_base_y = {geoloc_base_y},
                anonymised = NEW.anonymised,
                statistics_data = NEW.statistics_data,
                relations_data = NEW.relations_data
            WHERE formdef_id = {formdef_id} AND id = OLD.id;
        RETURN NEW;
    END IF;
END;
"""


def qi(name):
    return '"' + name.replace('"', '""') + '"'


def create_tenant(cur):
    cur.execute(TENANT_DDL)


def create_main_table(cur, form, table):
    """A form's (or card's) main table with its static columns, field columns and indexes."""
    t = qi(table)
    cols = [f'{c} {ty}' for c, ty in MAIN_STATIC]
    for f in form.fields:
        cols += [f'{qi(c)} {ty}' for c, ty in f.columns()]
    for g in form.geolocations:
        cols.append(f'{qi("geoloc_" + g)} point')
    cur.execute(f'CREATE TABLE {t} (id serial PRIMARY KEY, {", ".join(cols)})')
    cur.execute(f'CREATE INDEX {qi(table + "_fts")} ON {t} USING gin (fts)')
    for attr in ('receipt_time', 'anonymised', 'user_id', 'status'):
        cur.execute(f'CREATE INDEX {qi(table + "_" + attr + "_idx")} ON {t} ({attr})')
    for attr in ('concerned_roles_array', 'actions_roles_array', 'workflow_roles_array'):
        cur.execute(f'CREATE INDEX {qi("idx_" + attr + "_" + table)} ON {t} USING gin ({attr})')
    cur.execute(f'CREATE INDEX {qi("idx_workflow_processing_timestamp_" + table)} ON {t}'
                f' (workflow_processing_timestamp) WHERE (workflow_processing_timestamp IS NOT NULL)')
    # w.c.s.'s trace trigger, on every data table (not on the history)
    fn = 'wcs_remove_test_workflow_traces' if table.startswith('test_') else 'wcs_remove_workflow_traces'
    cur.execute(f'CREATE TRIGGER {qi(table[:40] + "__workflow_traces_trg_del")} BEFORE DELETE ON {t}'
                f' FOR EACH ROW EXECUTE PROCEDURE {fn}(%s, %s)', (form.kind, str(form.id)))


def create_form(cur, form):
    """Creates the formdefs (or carddefs) row, both tables, indexes and the triggers: wcs_all_forms for a
    form, search tokens for a card."""
    cur.execute(f'INSERT INTO {form.defs_table} (id, slug, name, category_id, workflow_id, params, fields)'
                " VALUES (%s, %s, %s, %s, '1', %s, %s)",
                (form.id, form.slug, form.name, form.category_id, b'\x80\x04}\x94.', b'\x80\x04]\x94.'))
    cur.execute(f"SELECT setval('{form.defs_table}_id_seq', (SELECT max(id) FROM {form.defs_table}))")
    create_main_table(cur, form, form.table)
    t = qi(form.table)
    cur.execute(f'CREATE TABLE {qi(form.evolutions)} (id serial PRIMARY KEY, who varchar, status varchar,'
                f' time timestamptz, last_jump_datetime timestamptz, comment text, parts bytea,'
                f' formdata_id integer REFERENCES {t} (id) ON DELETE CASCADE)')
    cur.execute(f'CREATE INDEX {qi(form.evolutions + "_fid")} ON {qi(form.evolutions)} (formdata_id, id)')
    if form.kind == 'carddata':
        # cards feed the search tokens themselves (init_search_tokens_triggers_carddef)
        prefix = form.table[:40]
        for op, event in (('ins', 'INSERT'), ('upd', 'UPDATE OF fts')):
            cur.execute(f'CREATE TRIGGER {qi(prefix + "__search_tokens_trg_" + op)} AFTER {event} ON {t}'
                        f' FOR EACH ROW WHEN (NEW.fts IS NOT NULL) EXECUTE PROCEDURE wcs_search_tokens_trigger_fn(%s)',
                        (form.search_context,))
    else:
        create_trigger(cur, form)


def xml_text(value):
    return (str(value).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;'))


def json_value(v):
    if isinstance(v, (bytes, memoryview)):
        return base64.b64encode(bytes(v)).decode()
    if hasattr(v, 'isoformat'):
        return v.isoformat()
    return v


def create_test_definition(cur, form, fid, made="now()"):
    """What TestDef.create_from_formdata keeps of a real submission: a testdef row whose data holds its
    answers (files in base64) and its receipt time, a test user deep-copied from its submitter (test_uuid
    set), and snapshots of both (XML serialization, then a patch), made at `made` (an SQL expression).
    Returns the testdef id."""
    cur.execute(f'SELECT * FROM {qi(form.table)} WHERE id = %s', (fid,))
    row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
    fields = {}
    for f in form.fields:
        for col, _ in f.columns():
            key = f.id + col[len(f.column):]
            if row.get(col) is not None:
                fields[key] = json_value(row[col])
    user_uuid = None
    user_xml = None
    if row.get('user_id'):
        cur.execute('SELECT name, email, name_identifiers FROM users WHERE id = %s', (int(row['user_id']),))
        u = cur.fetchone()
        if u:
            user_uuid = f'test-{fid}-{form.id}-{form.kind}'
            cur.execute('INSERT INTO users (name, ascii_name, email, name_identifiers, verified_fields, is_active,'
                        ' test_uuid) VALUES (%s, %s, %s, %s, %s, true, %s) RETURNING id',
                        (u[0], u[0], u[1], u[2], ['email'], user_uuid))
            test_user_id = cur.fetchone()[0]
            user_xml = (test_user_id, f'<user><name>{xml_text(u[0])}</name><email>{xml_text(u[1])}</email>'
                                      f'<test_uuid>{user_uuid}</test_uuid></user>')
    data = {'fields': fields}
    cur.execute('INSERT INTO testdef (uuid, name, object_type, object_id, data, user_uuid,'
                ' frozen_submission_datetime, is_in_backoffice)'
                ' VALUES (gen_random_uuid()::text, %s, %s, %s, %s, %s, %s, false) RETURNING id',
                (f'Test from {fid}', 'carddefs' if form.kind == 'carddata' else 'formdefs', str(form.id),
                 Json(data), user_uuid, row['receipt_time']))
    testdef_id = cur.fetchone()[0]
    dumped = json.dumps(data, ensure_ascii=False)
    cur.execute(f'INSERT INTO snapshots (object_type, object_id, timestamp, comment, serialization)'
                f" VALUES ('testdef', %s, {made}, 'Creation', %s)",
                (str(testdef_id), f'<testdef><name>Test from {fid}</name><data>{xml_text(dumped)}</data></testdef>'))
    first_key = next(iter(fields), None)
    if first_key is not None:
        cur.execute(f'INSERT INTO snapshots (object_type, object_id, timestamp, comment, patch)'
                    f" VALUES ('testdef', %s, ({made}) + interval '1 minute', 'Change', %s)",
                    (str(testdef_id), f'-  "{first_key}": null\n+  "{first_key}": {xml_text(json.dumps(fields[first_key], ensure_ascii=False))}\n'))
    if user_xml:
        cur.execute(f"INSERT INTO snapshots (object_type, object_id, timestamp, comment, serialization)"
                    f" VALUES ('user', %s, {made}, 'Creation', %s)", (str(user_xml[0]), user_xml[1]))
    return testdef_id


def create_test_copy(cur, form, fid, made="now()"):
    """A real submission made into a workflow test, as w.c.s. does: its test definition
    (create_test_definition), then what a test run creates from it, a row of the form's test table
    (created on first use, without trigger nor history) tied to a test result.  Returns the test row's id."""
    create_test_definition(cur, form, fid, made)
    cur.execute('SELECT to_regclass(%s) IS NULL', (qi(form.test_table),))
    if cur.fetchone()[0]:
        create_main_table(cur, form, form.test_table)
    cur.execute("INSERT INTO test_results (object_type, object_id, timestamp, success) VALUES (%s, %s, now(), true)"
                " RETURNING id", ('carddefs' if form.kind == 'carddata' else 'formdefs', str(form.id)))
    results = cur.fetchone()[0]
    cur.execute('INSERT INTO test_result (test_results_id, timestamp, success) VALUES (%s, now(), true) RETURNING id',
                (results,))
    result = cur.fetchone()[0]
    cur.execute("SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)"
                " FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s"
                " AND column_name NOT IN ('id', 'uuid', 'test_result_id')", (form.test_table,))
    cols = cur.fetchone()[0]
    cur.execute(f'INSERT INTO {qi(form.test_table)} ({cols}, test_result_id) SELECT {cols}, %s FROM {qi(form.table)}'
                f' WHERE id = %s RETURNING id', (result, fid))
    return cur.fetchone()[0]


def create_trigger(cur, form):
    endpoint = ', '.join(f"'{e}'" for e in form.endpoints) or "'xxxx'"
    geo = 'base' in form.geolocations
    code = TRIGGER_TEMPLATE.format(
        formdef_id=form.id,
        category_id=form.category_id if form.category_id is not None else 'NULL',
        endpoint_status=endpoint,
        formdef_name="'" + form.name.replace("'", "''") + "'",
        criticality_levels=form.criticality_levels,
        geoloc_base_x='NEW.geoloc_base[0]' if geo else 'NULL',
        geoloc_base_y='NEW.geoloc_base[1]' if geo else 'NULL',
    )
    fn = f'formdata_{form.id}_trigger_fn'
    cur.execute(f'CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $${code}$$')
    cur.execute(f'CREATE TRIGGER formdata_{form.id}_trigger AFTER INSERT OR UPDATE OR DELETE ON {qi(form.table)}'
                f' FOR EACH ROW EXECUTE PROCEDURE {fn}()')


def insert_submission(cur, form, *, status='wf-done', receipt_time=None, last_update_time=None, anonymised=None,
                      values=None, history=None, tracking_code=None, **columns):
    """Inserts one submission; values maps field id or varname to a value.

    receipt_time / last_update_time are SQL expressions (strings) or None.
    history: list of dicts (who, status, time (SQL expr), comment, parts).
    Other keyword arguments set static columns (user_id='12', ...).
    Returns the submission id.
    """
    names, params, exprs = [], [], []

    def add(col, value, expr='%s'):
        names.append(qi(col))
        exprs.append(expr)
        params.append(value)

    add('status', status)
    if receipt_time is not None:
        names.append('receipt_time')
        exprs.append(receipt_time)
    if last_update_time is not None:
        names.append('last_update_time')
        exprs.append(last_update_time)
    if anonymised is not None:
        names.append('anonymised')
        exprs.append(anonymised)
    if tracking_code is not None:
        add('tracking_code', tracking_code)
    for k, v in (values or {}).items():
        if k.endswith('_display') or k.endswith('_structured'):
            base, suffix = k.rsplit('_', 1)
            add(form.field(base).column + '_' + suffix, v)
        else:
            f = form.field(k)
            if f.sql_type == 'jsonb' and v is not None:
                v = Json(v)
            add(f.column, v)
    for k, v in columns.items():
        if isinstance(v, dict):
            v = Json(v)
        if k in ('auto_geoloc',) or k.startswith('geoloc_'):
            add(k, v, '%s::point')
        elif k == 'fts':
            add(k, v, "to_tsvector('simple', %s)")
        else:
            add(k, v)
    cur.execute(f'INSERT INTO {qi(form.table)} ({", ".join(names)}) VALUES ({", ".join(exprs)}) RETURNING id',
                params)
    fid = cur.fetchone()[0]
    cur.execute(f"UPDATE {qi(form.table)} SET id_display = %s WHERE id = %s", (f'{form.id}-{fid}', fid))
    for h in history or []:
        cur.execute(f'INSERT INTO {qi(form.evolutions)} (who, status, time, comment, parts, formdata_id)'
                    f' VALUES (%s, %s, {h.get("time", "now()")}, %s, %s, %s)',
                    (h.get('who'), h.get('status'), h.get('comment'), h.get('parts'), fid))
    if tracking_code is not None:
        cur.execute('INSERT INTO tracking_codes (id, formdef_id, formdata_id) VALUES (%s, %s, %s)',
                    (tracking_code, str(form.id), str(fid)))
    return fid


# ---------------------------------------------------------------------------
# bulk data, realistic enough for the demo and the benchmark

FIRST_NAMES = ['Camille', 'Léa', 'Manon', 'Chloé', 'Inès', 'Jade', 'Louise', 'Emma', 'Lucas', 'Hugo', 'Louis',
               'Nathan', 'Gabriel', 'Jules', 'Arthur', 'Raphaël', 'Adam', 'Sacha', 'Zoé', 'Lina', 'Amine', 'Yanis',
               'Mathis', 'Nolan', 'Clara', 'Sarah', 'Anaïs', 'Baptiste', 'Théo', 'Maël']
LAST_NAMES = ['Martin', 'Bernard', 'Thomas', 'Petit', 'Robert', 'Richard', 'Durand', 'Dubois', 'Moreau',
              'Laurent', 'Simon', 'Michel', 'Lefebvre', 'Leroy', 'Roux', 'David', 'Bertrand', 'Morel', 'Fournier',
              'Girard', 'Bonnet', 'Dupont', 'Lambert', 'Fontaine', 'Rousseau', 'Vincent', 'Muller', 'Lefèvre',
              'Faure', 'Mercier', 'Nguyen', 'Benali', 'Haddad', 'Garcia', 'Da Silva']
STREETS = ['rue de la République', 'avenue Jean Jaurès', 'place de la Mairie', 'rue Victor Hugo',
           'boulevard Gambetta', 'rue des Écoles', 'chemin des Vignes', 'allée des Tilleuls', 'rue Pasteur',
           'impasse du Moulin', 'quai de Saône', 'cours Lafayette']
CITIES = ['Lyon', 'Villeurbanne', 'Vénissieux', 'Caluire-et-Cuire', 'Bron', 'Vaulx-en-Velin', 'Saint-Priest',
          'Oullins', 'Écully', 'Tassin-la-Demi-Lune']
COMMENTS = ['Merci de me rappeler en fin de journée.', 'Mon enfant a une allergie aux arachides.',
            'Je serai absent du 3 au 17.', 'Pièce jointe : justificatif de domicile.',
            'Voir avec ma voisine, Mme Roux, qui a les clés.', 'Urgent, fuite importante sous l\'évier.',
            'Je souhaite un rendez-vous le matin si possible.', 'Numéro de dossier CAF 1234567.']


def _arr(values):
    return 'ARRAY[' + ', '.join("'" + v.replace("'", "''") + "'" for v in values) + ']'


def _pick(values, salt, var='g'):
    return f'({_arr(values)})[1 + (({var} * {salt}) % {len(values)})::int]'


def kept_by_default(f):
    """What w.c.s. leaves when it anonymises: fields marked no (or false, or the type's default)."""
    if f.anonymise is None:
        return f.type in ('bool', 'item', 'ranked-items')
    return f.anonymise in ('no', False)


def field_expr(f, options=None):
    """SQL expression (in terms of g, the series index) for a realistic value of field f."""
    v = (f.varname or '').lower()
    if f.type in ('string', 'email') or f.sql_type == 'varchar' and f.type not in ('item',):
        if v in ('nom', 'nom_famille', 'last_name'):
            return _pick(LAST_NAMES, 7)
        if v in ('prenom', 'first_name'):
            return _pick(FIRST_NAMES, 11)
        if v in ('email', 'courriel') or f.type == 'email':
            return (f"lower(translate({_pick(FIRST_NAMES, 11)}, 'éèëïîç ', 'eeeiic-')) || '.' || "
                    f"lower(translate({_pick(LAST_NAMES, 7)}, 'éèëïîç ', 'eeeiic-')) || g || '@example.org'")
        if v in ('telephone', 'phone', 'tel'):
            return "'06' || lpad(((g::bigint * 7919) % 100000000)::text, 8, '0')"
        if v in ('adresse', 'address'):
            return f"(1 + g % 120)::text || ' ' || {_pick(STREETS, 13)}"
        if v in ('ville', 'city', 'commune'):
            return _pick(CITIES, 17)
        if v in ('code_postal', 'zipcode'):
            return "'69' || lpad((g % 1000)::text, 3, '0')"
        return f"'{f.label} ' || substr(md5(g::text), 1, 12)"
    if f.type == 'text':
        return f"{_pick(COMMENTS, 19)} || ' ' || repeat(md5(g::text), 1 + g % 4)"
    if f.type == 'bool':
        return '(g % 3 = 0)'
    if f.type == 'date':
        return "date '1940-01-01' + ((g * 37) % 25000)"
    if f.type == 'numeric':
        return '((g * 13) % 5000)::numeric / 10'
    if f.type == 'item':
        return _pick(options or ['a', 'b', 'c'], 23)
    if f.type == 'items':
        opts = options or ['a', 'b', 'c']
        return f"ARRAY[{_pick(opts, 29)}, {_pick(opts, 31)}]"
    if f.type == 'map':
        return ("jsonb_build_object('lat', 45.70 + (g % 1000) / 10000.0, 'lon', 4.80 + (g % 777) / 10000.0)")
    if f.type == 'file':
        return ("convert_to('(dp0\\nVfilename\\np1\\nVpiece-' || g || '.pdf\\np2\\ns.', 'UTF8')")
    if f.type == 'block':
        return (f"jsonb_build_object('data', jsonb_build_array(jsonb_build_object('1', {_pick(FIRST_NAMES, 37)})),"
                f" 'schema', jsonb_build_object('1', 'string'))")
    if f.sql_type == 'jsonb':
        return "jsonb_build_object('value', g)"
    if f.sql_type == 'text[][]':
        return "ARRAY[ARRAY['x', (g % 10)::text]]"
    return 'NULL'


def replicate(cur, form, factor):
    """Multiplies the form's submissions by factor (copies with new ids, uuids and tracking codes,
    with their history, tracking codes, workflow traces and wcs_all_forms rows): a large tenant in seconds."""
    cur.execute(f'SELECT max(id) FROM {qi(form.table)}')
    top = cur.fetchone()[0]
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name = %s AND column_name NOT IN ('id', 'uuid', 'tracking_code', 'id_display')"
                " ORDER BY ordinal_position", (form.table,))
    cols = [qi(r[0]) for r in cur.fetchall()]
    cur.execute(f'ALTER TABLE {qi(form.table)} DISABLE TRIGGER formdata_{form.id}_trigger')
    cur.execute(f"""INSERT INTO {qi(form.table)} (id, id_display, tracking_code, {', '.join(cols)})
                    SELECT m.id + k * {top}, '{form.id}-' || (m.id + k * {top}),
                           CASE WHEN m.tracking_code IS NOT NULL THEN m.tracking_code || '-' || k END,
                           {', '.join('m.' + c for c in cols)}
                      FROM {qi(form.table)} m, generate_series(1, {factor - 1}) k""")
    cur.execute(f'ALTER TABLE {qi(form.table)} ENABLE TRIGGER formdata_{form.id}_trigger')
    cur.execute(f"SELECT setval(pg_get_serial_sequence('{form.table}', 'id'), (SELECT max(id) FROM {qi(form.table)}))")
    cur.execute(f"""INSERT INTO {qi(form.evolutions)} (who, status, time, last_jump_datetime, comment, parts, formdata_id)
                    SELECT e.who, e.status, e.time, e.last_jump_datetime, e.comment, e.parts, e.formdata_id + k * {top}
                      FROM {qi(form.evolutions)} e, generate_series(1, {factor - 1}) k""")
    cur.execute(f"""INSERT INTO tracking_codes (id, formdef_id, formdata_id)
                    SELECT tracking_code, '{form.id}', id::text FROM {qi(form.table)}
                     WHERE id > {top} AND tracking_code IS NOT NULL""")
    kind = 'carddata' if isinstance(form, Card) else 'formdata'
    cur.execute(f"""INSERT INTO workflow_traces (formdef_type, formdef_id, formdata_id, status_id, event, event_args,
                        timestamp)
                    SELECT t.formdef_type, t.formdef_id, t.formdata_id + k * {top}, t.status_id, t.event, t.event_args,
                           t.timestamp
                      FROM workflow_traces t, generate_series(1, {factor - 1}) k
                     WHERE t.formdef_type = '{kind}' AND t.formdef_id = {form.id} AND t.formdata_id <= {top}""")
    fill_all_forms(cur, form, top)


def fill_all_forms(cur, form, start=0):
    """What the per-form trigger inserts into wcs_all_forms, for rows id > start, in one statement
    (bulk loads disable the trigger; the result is the same)."""
    endpoint = ', '.join(f"'{e}'" for e in form.endpoints) or "'xxxx'"
    geo = 'base' in form.geolocations
    cur.execute(f"""
        INSERT INTO wcs_all_forms
        SELECT {form.category_id if form.category_id is not None else 'NULL'}, {form.id}, m.id, m.user_id,
               m.receipt_time, m.status, m.id_display, m.submission_agent_id, m.submission_channel,
               m.backoffice_submission, m.last_update_time, m.digests, m.user_label, m.concerned_roles_array,
               m.actions_roles_array, m.fts, m.status IN ({endpoint}), '{form.name.replace("'", "''")}',
               (SELECT name FROM users WHERE users.id = CAST(m.user_id AS INTEGER)),
               m.criticality_level - {form.criticality_levels},
               {'m.geoloc_base[0]' if geo else 'NULL'}, {'m.geoloc_base[1]' if geo else 'NULL'},
               m.anonymised, m.statistics_data, m.relations_data
          FROM {qi(form.table)} m WHERE m.id > {start} AND m.test_result_id IS NULL""")


def populate(cur, form, n, *, start=0, now='now()', max_age_days=200, seed_users=True, history=True,
             tracking=True, options=None, bulk=False, traces=False):
    """Inserts n submissions with realistic values, history and tracking codes, with one set-based
    statement per table (the wcs_all_forms trigger fires per row, as in w.c.s.).

    Status mix: about 10% drafts, 25% open (new/accepted), 65% final; reference times spread over
    max_age_days; a few already anonymised by w.c.s. itself (fields marked final cleared, tracking
    code removed, prefilling data and geolocation left, as w.c.s. does).
    """
    options = options or {}
    cols, exprs = [], []
    for f in form.fields:
        if f.sql_type is None:
            continue
        e = field_expr(f, options.get(f.id))
        cols.append(qi(f.column))
        exprs.append(e if kept_by_default(f) else f"CASE WHEN NOT wcs_anon THEN {e} END")
        if f.type in DISPLAY_TYPES:
            cols.append(qi(f.column + '_display'))
            exprs.append(f"({e})::text" if kept_by_default(f) else f"CASE WHEN NOT wcs_anon THEN ({e})::text END")
        if f.type in STRUCTURED_TYPES:
            cols.append(qi(f.column + '_structured'))
            exprs.append(f"CASE WHEN NOT wcs_anon THEN convert_to('(dp0\\nVid\\np1\\n', 'UTF8') END")
    for g in form.geolocations:
        cols.append(qi('geoloc_' + g))
        exprs.append('point(4.80 + (g % 777) / 10000.0, 45.70 + (g % 1000) / 10000.0)')
    open_ids = ['wf-' + s[0] for s in form.statuses if not s[2]]
    final_ids = ['wf-' + s[0] for s in form.statuses if s[2]]
    if not open_ids:
        open_ids = final_ids
    status_expr = (f"CASE WHEN g % 10 = 0 THEN 'draft' WHEN g % 4 = 1 THEN {_pick(open_ids, 1, '(g / 4)')}"
                   f" ELSE {_pick(final_ids, 5)} END")
    sql = f"""
    INSERT INTO {qi(form.table)} (user_id, receipt_time, last_update_time, status, anonymised, id_display,
        user_label, workflow_data, prefilling_data, workflow_roles, workflow_merged_roles_dict,
        workflow_roles_array, concerned_roles_array, actions_roles_array, tracking_code, backoffice_submission,
        submission_context, submission_agent_id, submission_channel, criticality_level, digests, auto_geoloc,
        statistics_data, relations_data, fts, page_no {''.join(', ' + c for c in cols)})
    SELECT CASE WHEN wcs_anon THEN NULL ELSE (1 + g % 500)::text END,
           ref - interval '3 days', ref,
           CASE WHEN wcs_anon THEN {_pick(final_ids, 5)} ELSE {status_expr} END,
           CASE WHEN wcs_anon THEN ref + interval '1 day' END,
           '{form.id}-' || g,
           CASE WHEN wcs_anon THEN NULL ELSE {_pick(FIRST_NAMES, 11)} || ' ' || {_pick(LAST_NAMES, 7)} END,
           CASE WHEN wcs_anon THEN NULL ELSE convert_to('(dp0\\nVnom\\np1\\nV' || g || '\\np2\\ns.', 'UTF8') END,
           convert_to('(dp0\\nVemail\\np1\\nVuser' || g || '@example.org\\np2\\ns.', 'UTF8'),
           CASE WHEN wcs_anon THEN NULL ELSE convert_to('(dp0\\nV_receiver\\np1\\n(lp2\\nV' || (g % 9) || '\\nas.', 'UTF8') END,
           jsonb_build_object('_receiver', jsonb_build_array((g % 9)::text)),
           ARRAY[(g % 9)::text], ARRAY[(g % 9)::text, '_user:' || (1 + g % 500)], ARRAY[(g % 9)::text],
           CASE WHEN NOT wcs_anon AND {'true' if tracking else 'false'} AND g % 2 = 0
                THEN upper(substr(md5('tc' || {form.id} || '-' || g), 1, 16)) END,
           g % 5 = 0,
           CASE WHEN wcs_anon THEN NULL ELSE convert_to('(dp0\\nVlanguage\\np1\\nVfr\\ns.', 'UTF8') END,
           CASE WHEN g % 5 = 0 THEN (900 + g % 7)::text END,
           (ARRAY['web', 'web', 'web', 'mail', 'phone', 'counter'])[1 + g % 6],
           g % 3,
           jsonb_build_object('default', {_pick(FIRST_NAMES, 11)} || ' ' || {_pick(LAST_NAMES, 7)}),
           point(4.80 + (g % 777) / 10000.0, 45.70 + (g % 1000) / 10000.0),
           CASE WHEN wcs_anon OR (g % 10 <> 0 AND g % 4 <> 1) THEN jsonb_build_object('done-datetime', ref)
                ELSE '{{}}'::jsonb END || jsonb_build_object('ville', {_pick(CITIES, 17)}),
           jsonb_build_object('data', jsonb_build_array()),
           to_tsvector('simple', {_pick(FIRST_NAMES, 11)} || ' ' || {_pick(LAST_NAMES, 7)}),
           NULL {''.join(', ' + e for e in exprs)}
    FROM (SELECT g, {now} - ((g::bigint * 7919) % ({max_age_days} * 1440)) * interval '1 minute' AS ref,
                 (g % 97 = 3) AS wcs_anon
          FROM generate_series({start + 1}, {start + n}) g) s
    """
    if seed_users:
        cur.execute("""INSERT INTO users (id, name, email, is_active)
                       SELECT g, 'Usager ' || g, 'usager' || g || '@example.org', true
                       FROM generate_series(1, 500) g ON CONFLICT DO NOTHING""")
    if bulk:
        # the trigger's per-row work replaced by one equivalent statement
        cur.execute(f'ALTER TABLE {qi(form.table)} DISABLE TRIGGER formdata_{form.id}_trigger')
    cur.execute(sql)
    if bulk:
        cur.execute(f'ALTER TABLE {qi(form.table)} ENABLE TRIGGER formdata_{form.id}_trigger')
        fill_all_forms(cur, form, start)
    if history:
        cur.execute(f"""
        INSERT INTO {qi(form.evolutions)} (who, status, time, last_jump_datetime, comment, parts, formdata_id)
        SELECT CASE WHEN m.anonymised IS NULL THEN m.user_id END, 'wf-new', m.receipt_time, m.receipt_time,
               CASE WHEN m.anonymised IS NULL THEN 'Demande déposée par ' || m.user_label END, NULL, m.id
          FROM {qi(form.table)} m WHERE m.id > {start}
        UNION ALL
        SELECT CASE WHEN m.anonymised IS NULL THEN (900 + m.id % 7)::text END, m.status, m.last_update_time,
               m.last_update_time,
               CASE WHEN m.anonymised IS NULL THEN {_pick(COMMENTS, 41, 'm.id')} END,
               CASE WHEN m.anonymised IS NULL AND m.id % 3 = 0
                    THEN convert_to('(lp0\\nccopy_reg\\nAttachmentEvolutionPart\\n' || m.id, 'UTF8') END, m.id
          FROM {qi(form.table)} m WHERE m.id > {start} AND m.status <> 'draft'
        """)
    if traces:
        # one workflow trace per submission, as w.c.s. writes when a submission enters its workflow
        kind = 'carddata' if isinstance(form, Card) else 'formdata'
        cur.execute(f"""INSERT INTO workflow_traces (formdef_type, formdef_id, formdata_id, status_id, event, event_args,
                            timestamp)
                        SELECT '{kind}', {form.id}, m.id, 'new', 'frontoffice-created',
                               jsonb_build_object('user', m.user_id), m.receipt_time
                        FROM {qi(form.table)} m WHERE m.id > {start}""")
    if tracking:
        cur.execute(f"""INSERT INTO tracking_codes (id, formdef_id, formdata_id)
                        SELECT tracking_code, '{form.id}', id::text FROM {qi(form.table)}
                        WHERE id > {start} AND tracking_code IS NOT NULL""")
