/*
 * bi_contract.c: the statements of each BI contract version (see
 * bi_contract.h): version 1 as it was installed, then each migration and
 * the comments that go with it.  Never edited once released: a change is
 * a new version.
 */
#include "bi_contract.h"
#include "ax.h"

static const char *const contract_v1[] = {
    "CREATE TABLE @S.contract (version integer PRIMARY KEY, installed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    " tool_version text NOT NULL)",
    "CREATE TABLE @S.submissions ("
    " tenant text NOT NULL, form_id integer NOT NULL, form_slug text NOT NULL, submission_id integer NOT NULL,"
    " receipt_time timestamptz, last_update_time timestamptz, anonymised_at timestamptz NOT NULL,"
    " status text, status_name text, is_final boolean NOT NULL, channel text, backoffice_submission boolean,"
    " criticality_level integer, processing_time interval, fields jsonb NOT NULL,"
    " exported_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    " PRIMARY KEY (tenant, form_id, submission_id))",
    "CREATE INDEX submissions_exported_at ON @S.submissions (exported_at)",
    "CREATE TABLE @S.forms (tenant text NOT NULL, form_id integer NOT NULL, form_slug text NOT NULL,"
    " form_name text NOT NULL, kept_fields jsonb NOT NULL, updated_at timestamptz NOT NULL,"
    " PRIMARY KEY (tenant, form_id))",
    "CREATE TABLE @S.export_state (tenant text NOT NULL, form_id integer NOT NULL, form_slug text NOT NULL,"
    " change_seq bigint, anonymised_until timestamptz, rows_exported bigint NOT NULL DEFAULT 0,"
    " updated_at timestamptz NOT NULL, PRIMARY KEY (tenant, form_id))",
    "CREATE TABLE @S.runs (run_id uuid NOT NULL, tenant text NOT NULL, started_at timestamptz NOT NULL,"
    " finished_at timestamptz, rows_exported bigint NOT NULL DEFAULT 0, outcome text NOT NULL, error text,"
    " PRIMARY KEY (run_id, tenant))",
};

/* Version 2: per-form views, statuses, deletions, local-time truncation, k-anonymity. */
static const char *const migration_v2[] = {
    "ALTER TABLE @S.submissions ADD COLUMN done_time timestamptz, ADD COLUMN time_precision text,"
    " ADD COLUMN deleted_at timestamptz, ADD COLUMN qi_group bigint",
    "ALTER TABLE @S.forms ADD COLUMN view_name text, ADD COLUMN deleted_at timestamptz,"
    " ADD COLUMN quasi_identifiers jsonb, ADD COLUMN min_k integer, ADD COLUMN view_sql text",
    "CREATE UNIQUE INDEX forms_view_name ON @S.forms (view_name)",
    "ALTER TABLE @S.submissions ADD CONSTRAINT submissions_form_fkey FOREIGN KEY (tenant, form_id)"
    " REFERENCES @S.forms (tenant, form_id)",
    "CREATE INDEX submissions_receipt ON @S.submissions (tenant, form_id, receipt_time)",
    "CREATE INDEX submissions_receipt_time ON @S.submissions (receipt_time)",
    "CREATE INDEX submissions_qi_group ON @S.submissions (tenant, form_id, qi_group)",
    "CREATE TABLE @S.statuses (tenant text NOT NULL, form_id integer NOT NULL, status text NOT NULL,"
    " status_name text, is_final boolean NOT NULL, PRIMARY KEY (tenant, form_id, status),"
    " FOREIGN KEY (tenant, form_id) REFERENCES @S.forms (tenant, form_id))",
    "CREATE TABLE @S.held_back (tenant text NOT NULL, form_id integer NOT NULL, submission_id integer NOT NULL,"
    " held_since timestamptz NOT NULL DEFAULT pg_catalog.now(), PRIMARY KEY (tenant, form_id, submission_id))",
    "ALTER TABLE @S.export_state ADD COLUMN smallest_group bigint, ADD COLUMN held_back bigint NOT NULL DEFAULT 0",
    /* everything is read again: local times, done times and the k-anonymity check apply to every row */
    "UPDATE @S.export_state SET change_seq = NULL, anonymised_until = NULL",
};

/* What every table and column means: for people who browse the schema from their BI tool. */
static const char *const comments_v2[] = {
    "COMMENT ON SCHEMA @S IS 'Anonymised w.c.s. form submissions, exported by anonymizer(1); contract in"
    " anonymizer-bi(7). Per-form views form_<tenant>_<form> have one typed column per kept field.'",
    "COMMENT ON TABLE @S.contract IS 'The contract versions installed in this schema (anonymizer-bi(7)).'",
    "COMMENT ON COLUMN @S.contract.version IS 'Contract version.'",
    "COMMENT ON COLUMN @S.contract.installed_at IS 'When it was installed (timestamptz).'",
    "COMMENT ON COLUMN @S.contract.tool_version IS 'The anonymizer version that installed it.'",
    "COMMENT ON TABLE @S.submissions IS 'One row per exported submission: anonymised, kept fields only; every"
    " combination of quasi-identifiers shared by at least min_k rows of its form.'",
    "COMMENT ON COLUMN @S.submissions.tenant IS 'The w.c.s. site (tenant) the submission comes from.'",
    "COMMENT ON COLUMN @S.submissions.form_id IS 'The form''s id in w.c.s. (formdefs.id); see forms.'",
    "COMMENT ON COLUMN @S.submissions.form_slug IS 'The form''s slug (url name).'",
    "COMMENT ON COLUMN @S.submissions.submission_id IS 'The submission''s number in its form.'",
    "COMMENT ON COLUMN @S.submissions.receipt_time IS 'When it was submitted (timestamptz), truncated to"
    " time_precision in the configured time zone.'",
    "COMMENT ON COLUMN @S.submissions.last_update_time IS 'Its last activity (timestamptz), truncated likewise.'",
    "COMMENT ON COLUMN @S.submissions.anonymised_at IS 'When it was anonymised (timestamptz), truncated likewise.'",
    "COMMENT ON COLUMN @S.submissions.status IS 'Workflow status id, without the wf- prefix; see statuses.'",
    "COMMENT ON COLUMN @S.submissions.status_name IS 'Workflow status name from the form definition.'",
    "COMMENT ON COLUMN @S.submissions.is_final IS 'The status is final (the submission is done).'",
    "COMMENT ON COLUMN @S.submissions.channel IS 'Submission channel: web, mail, phone, counter, fax, email,"
    " social-network.'",
    "COMMENT ON COLUMN @S.submissions.backoffice_submission IS 'Submitted by an agent in the back office.'",
    "COMMENT ON COLUMN @S.submissions.criticality_level IS 'w.c.s. criticality level (integer).'",
    "COMMENT ON COLUMN @S.submissions.processing_time IS 'Done time (else last update) minus receipt time"
    " (interval), from the truncated times.'",
    "COMMENT ON COLUMN @S.submissions.fields IS 'The kept fields (jsonb), keyed by varname or f<id>; the"
    " per-form views give them typed columns.'",
    "COMMENT ON COLUMN @S.submissions.exported_at IS 'When this version of the row was written (timestamptz):"
    " load incrementally on it.'",
    "COMMENT ON COLUMN @S.submissions.done_time IS 'When it reached a final status (timestamptz, w.c.s."
    " done-datetime), truncated likewise; NULL while open.'",
    "COMMENT ON COLUMN @S.submissions.time_precision IS 'What its times are truncated to: minute, hour, day, or"
    " coarser (week, month) where k-anonymity generalised them.'",
    "COMMENT ON COLUMN @S.submissions.deleted_at IS 'When the export found the submission deleted in w.c.s."
    " (timestamptz); NULL while it exists.'",
    "COMMENT ON COLUMN @S.submissions.qi_group IS 'Hash of its quasi-identifiers (k-anonymity group).'",
    "COMMENT ON TABLE @S.forms IS 'One row per tenant and exported form.'",
    "COMMENT ON COLUMN @S.forms.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.forms.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.forms.form_slug IS 'The form''s slug.'",
    "COMMENT ON COLUMN @S.forms.form_name IS 'The form''s title.'",
    "COMMENT ON COLUMN @S.forms.kept_fields IS 'The exported fields (jsonb list of key, column, label, type).'",
    "COMMENT ON COLUMN @S.forms.updated_at IS 'When this row last changed (timestamptz).'",
    "COMMENT ON COLUMN @S.forms.view_name IS 'The per-form view in this schema, one typed column per kept"
    " field.'",
    "COMMENT ON COLUMN @S.forms.deleted_at IS 'When the export found the form deleted in w.c.s. (timestamptz).'",
    "COMMENT ON COLUMN @S.forms.quasi_identifiers IS 'The kept fields counted as quasi-identifiers (jsonb).'",
    "COMMENT ON COLUMN @S.forms.min_k IS 'The k of k-anonymity its rows were checked against.'",
    "COMMENT ON COLUMN @S.forms.view_sql IS 'The statement that made the view (the export recreates it when the"
    " definition changes).'",
    "COMMENT ON TABLE @S.statuses IS 'The workflow statuses of each form: a dimension for submissions.status.'",
    "COMMENT ON COLUMN @S.statuses.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.statuses.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.statuses.status IS 'Status id, without the wf- prefix.'",
    "COMMENT ON COLUMN @S.statuses.status_name IS 'Status name.'",
    "COMMENT ON COLUMN @S.statuses.is_final IS 'A final status (endpoint).'",
    "COMMENT ON TABLE @S.held_back IS 'Submissions not exported yet: their combination of quasi-identifiers is"
    " shared by fewer than min_k rows. Ids only.'",
    "COMMENT ON COLUMN @S.held_back.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.held_back.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.held_back.submission_id IS 'The submission''s number in its form.'",
    "COMMENT ON COLUMN @S.held_back.held_since IS 'Since when it is held back (timestamptz).'",
    "COMMENT ON TABLE @S.export_state IS 'Per tenant and form, the watermark of what has been exported.'",
    "COMMENT ON COLUMN @S.export_state.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.export_state.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.export_state.form_slug IS 'The form''s slug.'",
    "COMMENT ON COLUMN @S.export_state.change_seq IS 'Position in the tenant''s anonymizer.changes log.'",
    "COMMENT ON COLUMN @S.export_state.anonymised_until IS 'The tenant''s clock at the last export"
    " (timestamptz).'",
    "COMMENT ON COLUMN @S.export_state.rows_exported IS 'Rows written for this form, in all.'",
    "COMMENT ON COLUMN @S.export_state.updated_at IS 'When it last moved (timestamptz).'",
    "COMMENT ON COLUMN @S.export_state.smallest_group IS 'The smallest group of rows sharing quasi-identifiers"
    " in this schema, after the last export.'",
    "COMMENT ON COLUMN @S.export_state.held_back IS 'Rows held back after the last export.'",
    "COMMENT ON TABLE @S.runs IS 'One row per export and tenant.'",
    "COMMENT ON COLUMN @S.runs.run_id IS 'The anonymizer run id (the same in the tenant''s anonymizer.runs).'",
    "COMMENT ON COLUMN @S.runs.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.runs.started_at IS 'When the export of this tenant started (timestamptz).'",
    "COMMENT ON COLUMN @S.runs.finished_at IS 'When it finished (timestamptz): load rows exported until then.'",
    "COMMENT ON COLUMN @S.runs.rows_exported IS 'Rows written.'",
    "COMMENT ON COLUMN @S.runs.outcome IS 'running, ok, failed, interrupted, or crashed (found dead by the next"
    " export).'",
    "COMMENT ON COLUMN @S.runs.error IS 'What failed.'",
};


/*
 * Version 3: nothing the reader can see names a w.c.s. id or says when a
 * row was exported.  The rows live in submission_rows, which only the
 * export's role reads; readers see the submissions view (published rows,
 * keyed by submission_key, their quasi-identifiers as published) and the
 * per-form views on it; a loading role also sees submissions_load.  Every
 * form is exported again (its rows re-keyed) by the first export after.
 */
static const char *const migration_v3[] = {
    "DROP TABLE @S.held_back",
    /* and the per-form views made on it: made again by the export, on the new view */
    "DROP TABLE @S.submissions CASCADE",
    "ALTER TABLE @S.forms ADD COLUMN sensitive jsonb, ADD COLUMN sensitive_columns jsonb, ADD COLUMN min_l integer,"
    " ADD COLUMN time_precision text, ADD COLUMN date_precision text, ADD COLUMN generalise boolean,"
    " ADD COLUMN rule jsonb",
    "UPDATE @S.forms SET view_sql = NULL, view_name = NULL, quasi_identifiers = NULL",
    /* the key of the row keys: two random 256-bit halves, as HMAC's inner and outer keys */
    "CREATE TABLE @S.secret (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), inner_key bytea NOT NULL,"
    " outer_key bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT pg_catalog.now())",
    BI_SECRET_SQL,
    "CREATE TABLE @S.submission_rows (tenant text NOT NULL, form_id integer NOT NULL, submission_id integer NOT NULL,"
    " submission_key text NOT NULL, status text, status_name text, is_final boolean NOT NULL,"
    " receipt_local timestamp, done_local timestamp, channel text, backoffice_submission boolean,"
    " criticality_level integer, fields jsonb NOT NULL, pub jsonb, pub_hash bigint, sensitive jsonb,"
    " exported_at timestamptz NOT NULL, deleted_at timestamptz, held_since timestamptz,"
    " PRIMARY KEY (tenant, form_id, submission_id), UNIQUE (submission_key),"
    " FOREIGN KEY (tenant, form_id) REFERENCES @S.forms (tenant, form_id))",
    "CREATE INDEX submission_rows_group ON @S.submission_rows (tenant, form_id, pub_hash) WHERE pub IS NOT NULL",
    "CREATE INDEX submission_rows_held ON @S.submission_rows (tenant, form_id) WHERE pub IS NULL AND deleted_at IS NULL",
    "CREATE INDEX submission_rows_exported_at ON @S.submission_rows (exported_at)",
    "ALTER TABLE @S.export_state ADD COLUMN published bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN generalised bigint NOT NULL DEFAULT 0, ADD COLUMN suppressed bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN limiting_field text, ADD COLUMN suppression_order jsonb",
    "UPDATE @S.export_state SET change_seq = NULL, anonymised_until = NULL, smallest_group = NULL, held_back = 0",
    /* security_barrier: a reader's own function in a WHERE never sees the rows the view leaves out */
    "CREATE VIEW @S.submissions WITH (security_barrier) AS SELECT r.tenant, r.form_id, f.form_slug, r.submission_key,"
    " (r.pub OPERATOR(pg_catalog.->>) 'receipt_date')::date AS receipt_date,"
    " (r.pub OPERATOR(pg_catalog.->>) 'receipt_time')::time AS receipt_time,"
    " (r.pub OPERATOR(pg_catalog.->>) 'done_date')::date AS done_date,"
    " (r.pub OPERATOR(pg_catalog.->>) 'done_time')::time AS done_time,"
    " r.pub OPERATOR(pg_catalog.->>) 'precision' AS time_precision,"
    " ((r.pub OPERATOR(pg_catalog.->>) 'done_date')::date OPERATOR(pg_catalog.+)"
    "  COALESCE((r.pub OPERATOR(pg_catalog.->>) 'done_time')::time, '00:00'::time)) OPERATOR(pg_catalog.-)"
    " ((r.pub OPERATOR(pg_catalog.->>) 'receipt_date')::date OPERATOR(pg_catalog.+)"
    "  COALESCE((r.pub OPERATOR(pg_catalog.->>) 'receipt_time')::time, '00:00'::time)) AS processing_time,"
    " r.status, r.status_name, r.is_final, r.pub OPERATOR(pg_catalog.->>) 'channel' AS channel,"
    " (r.pub OPERATOR(pg_catalog.->>) 'backoffice')::boolean AS backoffice_submission,"
    " (r.pub OPERATOR(pg_catalog.->>) 'criticality')::integer AS criticality_level,"
    " (r.pub OPERATOR(pg_catalog.->) 'fields') OPERATOR(pg_catalog.||) COALESCE(r.sensitive, '{}'::jsonb) AS fields,"
    " ARRAY(SELECT pg_catalog.jsonb_array_elements_text(r.pub OPERATOR(pg_catalog.->) 'suppressed')) AS suppressed"
    " FROM @S.submission_rows r JOIN @S.forms f ON f.tenant OPERATOR(pg_catalog.=) r.tenant"
    " AND f.form_id OPERATOR(pg_catalog.=) r.form_id WHERE r.pub IS NOT NULL"
    /* in no order w.c.s. or the export nights gave them: a row's place says nothing */
    " ORDER BY r.submission_key",
    "CREATE VIEW @S.submissions_load WITH (security_barrier) AS SELECT r.submission_key, r.tenant, r.form_id,"
    " r.exported_at, CASE WHEN r.deleted_at IS NOT NULL THEN 'deleted' WHEN r.pub IS NULL THEN 'held'"
    " ELSE 'published' END AS state FROM @S.submission_rows r",
};

static const char *const comments_v3[] = {
    "COMMENT ON SCHEMA @S IS 'Anonymised w.c.s. form submissions, exported by anonymizer(1); contract and"
    " re-identification guarantee in anonymizer-bi(7). Read the submissions view and the per-form views"
    " form_<tenant>_<form>.'",
    "COMMENT ON TABLE @S.secret IS 'The key of the row keys (HMAC-SHA-256). The export''s role only.'",
    "COMMENT ON TABLE @S.submission_rows IS 'Every exported submission, published or held back, with its w.c.s."
    " number. The export''s role only: readers see the submissions view.'",
    "COMMENT ON COLUMN @S.secret.singleton IS 'Always true: one secret per schema.'",
    "COMMENT ON COLUMN @S.secret.inner_key IS 'HMAC inner key (256 random bits).'",
    "COMMENT ON COLUMN @S.secret.outer_key IS 'HMAC outer key (256 random bits).'",
    "COMMENT ON COLUMN @S.secret.created_at IS 'When it was made (timestamptz).'",
    "COMMENT ON COLUMN @S.submission_rows.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.submission_rows.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.submission_rows.submission_id IS 'The submission''s number in w.c.s.: never shown to"
    " readers.'",
    "COMMENT ON COLUMN @S.submission_rows.submission_key IS 'Its key as readers see it: HMAC-SHA-256 of tenant, form"
    " and number with the secret, 128 bits in hex.'",
    "COMMENT ON COLUMN @S.submission_rows.status IS 'Workflow status id, without the wf- prefix.'",
    "COMMENT ON COLUMN @S.submission_rows.status_name IS 'Workflow status name.'",
    "COMMENT ON COLUMN @S.submission_rows.is_final IS 'The status is final.'",
    "COMMENT ON COLUMN @S.submission_rows.receipt_local IS 'Receipt time, local, truncated to the configured"
    " precision (what generalisation starts from).'",
    "COMMENT ON COLUMN @S.submission_rows.done_local IS 'Done time, local, truncated likewise; NULL while open.'",
    "COMMENT ON COLUMN @S.submission_rows.channel IS 'Submission channel.'",
    "COMMENT ON COLUMN @S.submission_rows.backoffice_submission IS 'Submitted in the back office.'",
    "COMMENT ON COLUMN @S.submission_rows.criticality_level IS 'w.c.s. criticality level.'",
    "COMMENT ON COLUMN @S.submission_rows.fields IS 'Every kept field as exported (jsonb); blanked when the"
    " submission is deleted.'",
    "COMMENT ON COLUMN @S.submission_rows.sensitive IS 'Its sensitive fields as published (jsonb); NULL when not"
    " published.'",
    "COMMENT ON COLUMN @S.submission_rows.exported_at IS 'When what readers see of it last changed (timestamptz).'",
    "COMMENT ON COLUMN @S.submission_rows.deleted_at IS 'When the export found it deleted in w.c.s.'",
    "COMMENT ON COLUMN @S.submission_rows.held_since IS 'Since when it is held back (timestamptz); NULL when"
    " published.'",
    "COMMENT ON COLUMN @S.submissions_load.submission_key IS 'The row''s key, as in submissions.'",
    "COMMENT ON COLUMN @S.submissions_load.tenant IS 'The w.c.s. site (tenant).'",
    "COMMENT ON COLUMN @S.submissions_load.form_id IS 'The form''s id in w.c.s.'",
    "COMMENT ON COLUMN @S.submission_rows.pub IS 'Its quasi-identifiers as published (precision, dates, times,"
    " channel, fields, suppressed); NULL: not published (held back, or deleted).'",
    "COMMENT ON COLUMN @S.submission_rows.pub_hash IS 'jsonb_hash_extended(pub, 0): finds a group by index.'",
    "COMMENT ON VIEW @S.submissions IS 'One row per published submission, in the order of their keys: every row"
    " shares all it shows, except submission_key, the status columns and the sensitive fields, with at least"
    " min_k - 1 other rows of its form (anonymizer-bi(7)).'",
    "COMMENT ON COLUMN @S.submissions.tenant IS 'The w.c.s. site (tenant) the submission comes from.'",
    "COMMENT ON COLUMN @S.submissions.form_id IS 'The form''s id in w.c.s. (formdefs.id); see forms.'",
    "COMMENT ON COLUMN @S.submissions.form_slug IS 'The form''s slug (url name).'",
    "COMMENT ON COLUMN @S.submissions.submission_key IS 'The row''s key: a keyed hash that says nothing of the"
    " submission''s number in w.c.s. nor of its order; stable across exports.'",
    "COMMENT ON COLUMN @S.submissions.receipt_date IS 'The local day it was submitted (date), truncated to"
    " time_precision (week: its Monday; month, quarter, year: their first day).'",
    "COMMENT ON COLUMN @S.submissions.receipt_time IS 'The local time of day it was submitted (time), truncated to"
    " time_precision; NULL at day precision or coarser.'",
    "COMMENT ON COLUMN @S.submissions.done_date IS 'The local day it reached a final status (date), truncated"
    " likewise; NULL while open.'",
    "COMMENT ON COLUMN @S.submissions.done_time IS 'The local time of day it was done (time); NULL at day"
    " precision or coarser, or while open.'",
    "COMMENT ON COLUMN @S.submissions.time_precision IS 'What its dates and times are truncated to: minute, hour,"
    " day, week, month, quarter or year. Part of its group.'",
    "COMMENT ON COLUMN @S.submissions.processing_time IS 'Done minus receipt, from the truncated values"
    " (interval); NULL while open.'",
    "COMMENT ON COLUMN @S.submissions.status IS 'Workflow status id, without the wf- prefix; see statuses.'",
    "COMMENT ON COLUMN @S.submissions.status_name IS 'Workflow status name from the form definition.'",
    "COMMENT ON COLUMN @S.submissions.is_final IS 'The status is final (the submission is done).'",
    "COMMENT ON COLUMN @S.submissions.channel IS 'Submission channel: web, mail, phone, counter, fax, email,"
    " social-network.'",
    "COMMENT ON COLUMN @S.submissions.backoffice_submission IS 'Submitted by an agent in the back office.'",
    "COMMENT ON COLUMN @S.submissions.criticality_level IS 'w.c.s. criticality level (integer).'",
    "COMMENT ON COLUMN @S.submissions.fields IS 'The kept fields (jsonb), keyed by varname or f<id>; dates"
    " truncated to the form''s date_precision; a suppressed field is null (see suppressed); the per-form views"
    " give them typed columns.'",
    "COMMENT ON COLUMN @S.submissions.suppressed IS 'The fields whose value was suppressed (set to null) so that"
    " the row could be published.'",
    "COMMENT ON VIEW @S.submissions_load IS 'For the loading pipeline (bi.loader_role), not for dashboards: when"
    " each row last changed, and whether it is published, held back or deleted. Load incrementally on"
    " exported_at; take the content from submissions.'",
    "COMMENT ON COLUMN @S.submissions_load.exported_at IS 'When the row last changed as readers see it"
    " (timestamptz).'",
    "COMMENT ON COLUMN @S.submissions_load.state IS 'published (in submissions), held (not published: delete your"
    " copy), deleted (deleted in w.c.s.: delete your copy).'",
    "COMMENT ON COLUMN @S.forms.quasi_identifiers IS 'The kept fields counted in the groups (jsonb list of keys).'",
    "COMMENT ON COLUMN @S.forms.sensitive IS 'The kept fields declared sensitive (bi.sensitive): published, not"
    " counted in the groups (jsonb list of keys).'",
    "COMMENT ON COLUMN @S.forms.sensitive_columns IS 'The per-form view''s columns that hold sensitive fields"
    " (jsonb list).'",
    "COMMENT ON COLUMN @S.forms.min_l IS 'The l of l-diversity (1: off).'",
    "COMMENT ON COLUMN @S.forms.time_precision IS 'The finest precision its times are published at.'",
    "COMMENT ON COLUMN @S.forms.date_precision IS 'What its kept date fields are truncated to.'",
    "COMMENT ON COLUMN @S.forms.generalise IS 'Whether times are coarsened and rare values suppressed before rows"
    " are held back.'",
    "COMMENT ON COLUMN @S.forms.rule IS 'Everything that decides its groups: a change exports the form again.'",
    "COMMENT ON COLUMN @S.export_state.published IS 'Rows of the form readers see, after the last export.'",
    "COMMENT ON COLUMN @S.export_state.generalised IS 'Of those, rows published at a coarser time precision.'",
    "COMMENT ON COLUMN @S.export_state.suppressed IS 'Of those, rows with a suppressed field.'",
    "COMMENT ON COLUMN @S.export_state.limiting_field IS 'Among held-back rows, the quasi-identifier with the most"
    " distinct values: what makes their groups small.'",
    "COMMENT ON COLUMN @S.export_state.suppression_order IS 'The fields in the order they are suppressed (most"
    " distinct values first).'",
};

/*
 * Not part of the contract (no role but the export's reads them): the
 * form's figures kept up to date by every statement that changes its rows,
 * so that a night costs what it changes, not what the form holds.  Counts
 * of live rows per kind (held, or the precision published, ":suppressed"
 * when a field is), and the size of each published group (by pub_hash: a
 * collision could only make a group look larger; a figure, never a
 * decision).  Seeded from the rows when created (bi.c).
 */
const char *const bi_counting[] = {
    "CREATE TABLE @S.form_counts (tenant text NOT NULL, form_id integer NOT NULL, kind text NOT NULL,"
    " n bigint NOT NULL, PRIMARY KEY (tenant, form_id, kind))",
    "CREATE TABLE @S.group_sizes (tenant text NOT NULL, form_id integer NOT NULL, pub_hash bigint NOT NULL,"
    " n bigint NOT NULL, PRIMARY KEY (tenant, form_id, pub_hash))",
    "CREATE INDEX group_sizes_smallest ON @S.group_sizes (tenant, form_id, n)",
    /* a row's kind, one definition for the seeding and the trigger; every name qualified and no SET clause,
     * so that the planner inlines it (a function call per row otherwise) */
    "CREATE FUNCTION @S.count_kind(pub jsonb) RETURNS text LANGUAGE sql IMMUTABLE"
    " AS $anonymizer_kind$ SELECT CASE WHEN pub IS NULL THEN 'held'"
    " ELSE (pub OPERATOR(pg_catalog.->>) 'precision') OPERATOR(pg_catalog.||) CASE WHEN"
    " pg_catalog.jsonb_array_length(pub OPERATOR(pg_catalog.->) 'suppressed') OPERATOR(pg_catalog.>) 0"
    " THEN ':suppressed' ELSE '' END END $anonymizer_kind$",
    /* the schema is the trigger's table's (no name of it in the body); every name qualified */
    "CREATE FUNCTION @S.count_rows() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS"
    " $anonymizer_count$ DECLARE d text; BEGIN"
    " d := CASE TG_OP"
    "  WHEN 'INSERT' THEN 'SELECT tenant, form_id, pub, pub_hash, deleted_at, 1 AS s FROM new_rows'"
    "  WHEN 'DELETE' THEN 'SELECT tenant, form_id, pub, pub_hash, deleted_at, -1 AS s FROM old_rows'"
    "  ELSE 'SELECT tenant, form_id, pub, pub_hash, deleted_at, 1 AS s FROM new_rows UNION ALL"
    "   SELECT tenant, form_id, pub, pub_hash, deleted_at, -1 FROM old_rows' END;"
    " EXECUTE pg_catalog.format('INSERT INTO %1$I.form_counts AS c (tenant, form_id, kind, n)"
    "  SELECT d.tenant, d.form_id, %1$I.count_kind(d.pub), pg_catalog.sum(d.s)"
    "  FROM (%2$s) d WHERE d.deleted_at IS NULL GROUP BY 1, 2, 3 HAVING pg_catalog.sum(d.s) OPERATOR(pg_catalog.<>) 0"
    "  ON CONFLICT (tenant, form_id, kind) DO UPDATE SET n = c.n OPERATOR(pg_catalog.+) EXCLUDED.n',"
    "  TG_TABLE_SCHEMA, d);"
    " EXECUTE pg_catalog.format('INSERT INTO %1$I.group_sizes AS g (tenant, form_id, pub_hash, n)"
    "  SELECT d.tenant, d.form_id, d.pub_hash, pg_catalog.sum(d.s) FROM (%2$s) d WHERE d.deleted_at IS NULL"
    "  AND d.pub IS NOT NULL GROUP BY 1, 2, 3 HAVING pg_catalog.sum(d.s) OPERATOR(pg_catalog.<>) 0"
    "  ON CONFLICT (tenant, form_id, pub_hash) DO UPDATE SET n = g.n OPERATOR(pg_catalog.+) EXCLUDED.n',"
    "  TG_TABLE_SCHEMA, d);"
    /* a statement cannot see what its own CTE changed: the emptied groups go in a second one */
    " EXECUTE pg_catalog.format('DELETE FROM %1$I.group_sizes g USING (SELECT DISTINCT d.tenant, d.form_id,"
    "  d.pub_hash FROM (%2$s) d WHERE d.pub IS NOT NULL) u WHERE g.n OPERATOR(pg_catalog.<=) 0"
    "  AND g.tenant OPERATOR(pg_catalog.=) u.tenant AND g.form_id OPERATOR(pg_catalog.=) u.form_id"
    "  AND g.pub_hash OPERATOR(pg_catalog.=) u.pub_hash', TG_TABLE_SCHEMA, d);"
    " RETURN NULL; END $anonymizer_count$",
    "CREATE TRIGGER count_inserted AFTER INSERT ON @S.submission_rows REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION @S.count_rows()",
    "CREATE TRIGGER count_updated AFTER UPDATE ON @S.submission_rows REFERENCING OLD TABLE AS old_rows"
    " NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION @S.count_rows()",
    "CREATE TRIGGER count_deleted AFTER DELETE ON @S.submission_rows REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION @S.count_rows()",
    "COMMENT ON TABLE @S.form_counts IS 'Not in the contract, for the export only: live rows of each form per kind"
    " (held, or the precision published, :suppressed when a field is), kept by triggers on submission_rows.'",
    "COMMENT ON COLUMN @S.form_counts.tenant IS 'The tenant.'",
    "COMMENT ON COLUMN @S.form_counts.form_id IS 'The form.'",
    "COMMENT ON COLUMN @S.form_counts.kind IS 'held, or the precision published (:suppressed when a field is).'",
    "COMMENT ON COLUMN @S.form_counts.n IS 'Live rows of that kind.'",
    "COMMENT ON TABLE @S.group_sizes IS 'Not in the contract, for the export only: the rows of each published group"
    " (by pub_hash), kept by triggers on submission_rows; the smallest is the figure export_state.smallest_group.'",
    "COMMENT ON COLUMN @S.group_sizes.tenant IS 'The tenant.'",
    "COMMENT ON COLUMN @S.group_sizes.form_id IS 'The form.'",
    "COMMENT ON COLUMN @S.group_sizes.pub_hash IS 'The group, as submission_rows.pub_hash.'",
    "COMMENT ON COLUMN @S.group_sizes.n IS 'Its published rows.'",
    /* the rows already there, counted once (the setup's lock keeps other exports out) */
    "LOCK TABLE @S.submission_rows IN SHARE ROW EXCLUSIVE MODE",
    "INSERT INTO @S.form_counts (tenant, form_id, kind, n) SELECT b.tenant, b.form_id, @S.count_kind(b.pub),"
    " pg_catalog.count(*) FROM @S.submission_rows b WHERE b.deleted_at IS NULL GROUP BY 1, 2, 3",
    "INSERT INTO @S.group_sizes (tenant, form_id, pub_hash, n) SELECT b.tenant, b.form_id, b.pub_hash,"
    " pg_catalog.count(*) FROM @S.submission_rows b WHERE b.deleted_at IS NULL AND b.pub IS NOT NULL"
    " GROUP BY 1, 2, 3",
};
const size_t bi_counting_n = AX_ARRAY_LEN(bi_counting);

/* Version 1 (installed), then each migration with its comments. */
static const struct {
    const char *const *stmts[2];
    size_t n[2];
} versions[] = {
    {{contract_v1, NULL}, {AX_ARRAY_LEN(contract_v1), 0}},
    {{migration_v2, comments_v2}, {AX_ARRAY_LEN(migration_v2), AX_ARRAY_LEN(comments_v2)}},
    {{migration_v3, comments_v3}, {AX_ARRAY_LEN(migration_v3), AX_ARRAY_LEN(comments_v3)}},
};

_Static_assert(AX_ARRAY_LEN(versions) == BI_CONTRACT_VERSION, "one entry per contract version");

const char *const *bi_contract_step(int version, int part, size_t *n)
{
    *n = 0;
    if (version < 1 || version > (int)AX_ARRAY_LEN(versions) || part < 0 || part > 1)
        return NULL;
    *n = versions[version - 1].n[part];
    return versions[version - 1].stmts[part];
}
