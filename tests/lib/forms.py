"""Forms and submissions shared by the integration tests."""

import wcs

F = wcs.Field


def standard_form(formdef_id=1, slug='demande-rdv', name='Demande de rendez-vous', **kw):
    """A form with one field of each kind that matters, and a backoffice field."""
    return wcs.Form(formdef_id, slug, name, [
        F('1', 'string', 'Nom', 'nom', 'final'),
        F('2', 'item', 'Motif', 'motif', 'no'),
        F('3', 'text', 'Commentaire', 'commentaire', 'final'),
        F('4', 'email', 'Courriel', 'email'),            # w.c.s. default for strings: final
        F('5', 'bool', 'Accord', 'accord'),              # w.c.s. default for bool: no
        F('6', 'date', 'Date de naissance', 'naissance', 'intermediate'),
        F('7', 'file', 'Justificatif', 'justificatif', True),   # legacy boolean in old exports
        F('8', 'items', 'Créneaux', 'creneaux', 'no'),
        F('9', 'block', 'Enfants', 'enfants', 'final'),
        F('10', 'page', 'Page 2'),
        F('11', 'map', 'Localisation', 'localisation', 'final'),
        F('bo1', 'string', 'Note agent', None, 'final', backoffice=True),
    ], **kw)


KEPT_COLUMNS = ['f2', 'f2_display', 'f5', 'f8', 'f8_display']
# structured values of kept items are blanked unless kept by name
BLANKED_COLUMNS = ['f1', 'f2_structured', 'f3', 'f4', 'f6', 'f7', 'f8_structured', 'f9', 'f9_display', 'f11', 'fbo1']
METADATA_COLUMNS = ['user_id', 'user_label', 'workflow_data', 'prefilling_data', 'workflow_roles',
                    'workflow_merged_roles_dict', 'workflow_roles_array', 'submission_context', 'submission_agent_id',
                    'tracking_code', 'digests', 'fts', 'auto_geoloc', 'geoloc_base', 'relations_data']
# role ids w.c.s. keeps (agents' lists filter on them): only the "_user:<id>" entry is a person
ROLE_ARRAYS = {'concerned_roles_array': ['3'], 'actions_roles_array': ['3']}
SYSTEM_COLUMNS = ['id', 'receipt_time', 'last_update_time', 'status', 'id_display', 'criticality_level',
                  'backoffice_submission', 'submission_channel', 'uuid', 'page_no', 'page_id']
ALLFORMS_PERSONAL = ['user_id', 'user_label', 'user_name', 'submission_agent_id', 'digests', 'fts',
                     'geoloc_base_x', 'geoloc_base_y', 'relations_data']

_code = [0]


def full_values(marker='X'):
    """Every field filled, values carrying a marker string."""
    return {
        '1': f'Martin-{marker}', '2': 'rdv', '2_display': 'Rendez-vous', '2_structured': b'struct-motif',
        '3': f'Mon fils est malade {marker}', '4': f'camille.{marker}@example.org', '5': True,
        '6': '1980-05-17', '7': f'file-{marker}'.encode(), '8': ['lundi', 'mardi'], '8_display': 'lundi, mardi',
        '8_structured': b'struct-items', '9': {'data': [{'1': f'Léo {marker}'}]}, '9_display': f'Léo {marker}',
        '11': {'lat': 45.76, 'lon': 4.83}, 'bo1': f'Appelé le 3, {marker}',
    }


def full_metadata(marker='X', user_id='42'):
    """Every personal metadata column filled."""
    return dict(
        user_id=user_id, user_label=f'Camille Martin {marker}', workflow_data=f'wfdata {marker}'.encode(),
        prefilling_data=f'prefill {marker}'.encode(), workflow_roles=b'roles', workflow_merged_roles_dict={
            '_receiver': ['3']},
        workflow_roles_array=['3'], concerned_roles_array=['3', f'_user:{user_id}'], actions_roles_array=['3'],
        submission_context=f'ctx {marker}'.encode(), submission_agent_id='901',
        digests={'default': f'Camille Martin {marker}'}, fts=f'camille martin {marker}',
        auto_geoloc='(4.83,45.76)', geoloc_base='(4.83,45.76)', relations_data={'data': [{'id': 'x'}]},
        statistics_data={'motif': ['rdv'], 'nom': f'Martin {marker}'},
        backoffice_submission=False, submission_channel='web', criticality_level=1, page_no='1',
    )


def tracking_code():
    _code[0] += 1
    return f'TC{_code[0]:06d}'


def full_submission(tenant, form, *, ref, status='wf-done', marker='X', receipt=None, anonymised=None,
                    with_tracking=True, **kw):
    """A submission with everything filled: fields, metadata, history with comments and attachments,
    a tracking code.  ref: SQL expression of its last update time."""
    tenant.query("INSERT INTO users (id, name, email) VALUES (42, 'Camille Martin', 'c@example.org')"
                 " ON CONFLICT DO NOTHING")
    meta = full_metadata(marker)
    meta.update(kw)
    receipt = receipt or f'({ref}) - interval \'2 days\''
    last = f'coalesce({ref}, {receipt})'
    fid = tenant.insert(
        form, status=status, receipt_time=receipt, last_update_time=ref,
        anonymised=anonymised, values=full_values(marker),
        tracking_code=tracking_code() if with_tracking else None,
        history=[
            {'who': '42', 'status': 'wf-new', 'time': receipt,
             'comment': f'Déposée par Camille {marker}', 'parts': f'attachment {marker}'.encode()},
            {'who': '901', 'status': status, 'time': last, 'comment': f'Traitée, appelé {marker}', 'parts': None},
        ],
        **meta)
    set_done_datetime(tenant, form, fid)
    return fid


def set_done_datetime(tenant, form, fid, when=None):
    """What w.c.s. records in statistics_data when a submission first reaches a final status: the time it
    entered it (here its last update, or when: an SQL expression)."""
    tenant.query(f"""UPDATE {wcs.qi(form.table)} SET statistics_data = CASE
                     WHEN status = ANY (%s) THEN COALESCE(statistics_data, '{{}}'::jsonb)
                          || jsonb_build_object('done-datetime', to_jsonb({when or 'last_update_time'}))
                     ELSE statistics_data - 'done-datetime' END WHERE id = %s""", (form.endpoints, fid))
