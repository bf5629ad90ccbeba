"""A local HTTPS server that plays w.c.s.'s signed API, for the fetch tests.

It serves, per tenant (the first path segment: https://localhost:PORT/<tenant>/):
  GET api/formdefs/?include-disabled=on      {"err": 0, "data": [{"slug": ..., "title": ...}]}
  GET api/formdefs/<slug>/schema?include-id=on   the form's JSON export
  GET api/cards/@list                        {"err": 0, "data": [...]}
  GET api/cards/<slug>/@schema?include-id=on the card's JSON export
and checks every request as w.c.s.'s is_url_signed does: orig known, algo
known, signature (HMAC of the raw query up to "&signature=") compared in
constant time, timestamp within 30 seconds either way, a nonce used once.
Every refusal is HTTP 403 with {"err": 1, "err_desc": ...}.

Its certificate comes from a throwaway CA made with the openssl command
(make_ca), whose certificate the client is given as ca_file.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_ca(directory):
    """A CA and a server certificate for localhost and 127.0.0.1; returns (ca_cert, cert, key) paths."""
    ca_key, ca_cert = os.path.join(directory, 'ca.key'), os.path.join(directory, 'ca.pem')
    key, csr, cert = (os.path.join(directory, n) for n in ('server.key', 'server.csr', 'server.pem'))
    ext = os.path.join(directory, 'server.ext')
    with open(ext, 'w') as fp:
        fp.write('subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\n'
                 'keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n')

    def openssl(*args):
        subprocess.run(['openssl'] + list(args), check=True, capture_output=True)

    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', ca_key, '-out', ca_cert, '-days', '2',
            '-subj', '/CN=anonymizer test CA')
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=localhost')
    openssl('x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key, '-CAcreateserial', '-out', cert,
            '-days', '2', '-extfile', ext)
    return ca_cert, cert, key


class Site:
    """What one tenant's w.c.s. serves, and how it misbehaves when asked to."""

    def __init__(self, forms=None, cards=None):
        self.forms = dict(forms or {})   # slug -> definition (dict), as /schema serves it
        self.cards = dict(cards or {})
        self.failure = None              # None, '500', 'badjson', 'replay', 'redirect', 'huge'
        self.clock_offset = 0            # seconds added to the server's clock (a skewed server)
        self.strip_ids = False           # serve definitions without ids (no include-id)
        self.delay = 0                   # seconds each answer waits (a slow server)


class WcsApi:
    def __init__(self, directory, secrets):
        """secrets: orig -> key (the [api-secrets] of the tenants)."""
        self.secrets = dict(secrets)
        self.sites = {}
        self.nonces = set()
        self.requests = []   # (tenant, path, raw query) of every request
        self.lock = threading.Lock()
        self.ca_cert, cert, key = make_ca(directory)
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, tenant, host='localhost'):
        return f'https://{host}:{self.port}/{tenant}/'

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the checks w.c.s. makes (wcs/api_utils.py is_url_signed) ---------------------------
    def check_signature(self, query, site):
        form = urllib.parse.parse_qs(query)

        def one(name):
            values = form.get(name)
            return values[0] if values and len(values) == 1 else None

        signature = one('signature')
        if not signature:
            return 'Missing signature.'
        orig = one('orig')
        if orig is None:
            return 'Missing/multiple orig field.'
        key = self.secrets.get(orig)
        if not key:
            return 'Invalid orig.'
        algo = one('algo')
        if algo not in hashlib.algorithms_guaranteed:
            return 'Invalid algo.'
        expected = base64.standard_b64encode(
            hmac.new(key.encode(), query[:query.find('&signature=')].encode(), getattr(hashlib, algo)).digest())
        if not hmac.compare_digest(signature.encode(), expected):
            return 'Invalid signature.'
        timestamp = one('timestamp')
        try:
            timestamp = datetime.datetime.strptime(timestamp or '', '%Y-%m-%dT%H:%M:%SZ')
        except ValueError as e:
            return f'Invalid timestamp field; {e}.'
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + \
            datetime.timedelta(seconds=site.clock_offset)
        if abs(now - timestamp) > datetime.timedelta(seconds=30):
            return 'timestamp is more than 30 seconds away'
        nonce = one('nonce')
        if nonce:
            with self.lock:
                if nonce in self.nonces or site.failure == 'replay':
                    return 'Nonce already used.'
                self.nonces.add(nonce)
        return None

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body, content_type='application/json', headers=()):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', content_type)
                self.send_header('Content-Length', str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path, _, query = self.path.partition('?')
                parts = path.lstrip('/').split('/', 1)
                tenant, rest = parts[0], (parts[1] if len(parts) > 1 else '')
                api.requests.append((tenant, '/' + rest, query))
                site = api.sites.get(tenant)
                if site is None:
                    return self.reply(404, {'err': 1, 'err_desc': 'no such site'})
                refusal = api.check_signature(query, site)
                if refusal:
                    return self.reply(403, {'err': 1, 'err_desc': refusal})
                if site.delay:
                    time.sleep(site.delay)
                if site.failure == '500':
                    return self.reply(500, b'<html><body>Internal Server Error</body></html>', 'text/html')
                if site.failure == 'redirect':
                    return self.reply(302, b'', headers=[('Location', 'https://example.org/')])
                if site.failure == 'huge':
                    return self.reply(200, b'[' + b'0,' * (9 * 1024 * 1024) + b'0]')
                if site.failure == 'badjson':
                    return self.reply(200, b'{"err": 0, "data": [', 'application/json')
                args = urllib.parse.parse_qs(query)
                if rest == 'api/formdefs/':
                    return self.reply(200, {'err': 0, 'data': [
                        {'slug': s, 'title': d['name'], 'url': api.url(tenant) + s + '/'}
                        for s, d in site.forms.items()]})
                if rest == 'api/cards/@list':
                    return self.reply(200, {'err': 0, 'data': [{'slug': s, 'title': d['name']}
                                                                for s, d in site.cards.items()]})
                for prefix, suffix, defs in (('api/formdefs/', '/schema', site.forms),
                                             ('api/cards/', '/@schema', site.cards)):
                    if rest.startswith(prefix) and rest.endswith(suffix):
                        slug = rest[len(prefix):-len(suffix)]
                        if slug not in defs:
                            return self.reply(404, {'err': 1, 'err_desc': 'not found'})
                        definition = defs[slug]
                        if site.strip_ids or args.get('include-id') != ['on']:
                            definition = strip_ids(definition)
                        return self.reply(200, definition)
                return self.reply(404, {'err': 1, 'err_desc': 'not found'})

        return Handler


def strip_ids(definition):
    """The export without include-id: no field ids."""
    d = json.loads(json.dumps(definition))
    for f in d.get('fields', []) + d.get('workflow', {}).get('fields', []):
        f.pop('id', None)
    return d
