"""The installed package, used as an operator would: the anonymizer system
user runs /usr/bin/anonymizer with the packaged configuration (mode 0640,
group anonymizer), here pointed at a throwaway cluster with one w.c.s.
tenant; check, report and run succeed.  Run as root by scripts/test-package,
after apt-get install and before purge."""

import os
import re
import subprocess
import sys

import pgcluster
import wcs
from forms import standard_form

CONF = '/etc/anonymizer/anonymizer.conf'


def as_anonymizer(*args):
    proc = subprocess.run(['runuser', '-u', 'anonymizer', '--', '/usr/bin/anonymizer', *args],
                          capture_output=True, text=True, cwd='/')
    print(f'$ anonymizer {" ".join(args)}  (as user anonymizer): exit {proc.returncode}')
    return proc


def main():
    with pgcluster.Cluster('anonymizer-package') as cluster:
        cluster.createdb('wcs_paquet')
        conn = cluster.connect('wcs_paquet')
        with conn.cursor() as cur:
            wcs.create_tenant(cur)
            form = standard_form()
            wcs.create_form(cur, form)
            wcs.populate(cur, form, 50, max_age_days=200)
        conn.close()
        form.write_definition('/var/lib/anonymizer/schemas', 'paquet.example.org')
        subprocess.run(['chown', '-R', 'anonymizer:anonymizer', '/var/lib/anonymizer/schemas'], check=True)
        # the packaged file, edited in place as an administrator would: its mode and group stay
        with open(CONF) as fp:
            text = fp.read()
        ours = f'tenants = ( {{ name = "paquet.example.org"; conninfo = "{cluster.conninfo("wcs_paquet")}"; }} );'
        text, n = re.subn(r'^tenants = \(.*?^\);', ours, text, count=1, flags=re.M | re.S)
        assert n == 1, 'no tenants list in the packaged configuration'
        with open(CONF, 'w') as fp:
            fp.write(text)
        st = os.stat(CONF)
        assert oct(st.st_mode & 0o777) == '0o640', oct(st.st_mode)
        failures = 0
        res = as_anonymizer('check')
        failures += res.returncode != 0 or 'paquet.example.org: reachable' not in res.stdout
        res = as_anonymizer('report', '--format', 'json')
        failures += res.returncode not in (0, 1) or '"paquet.example.org"' not in res.stdout
        res = as_anonymizer('-q', 'run')
        failures += res.returncode != 0
        conn = cluster.connect('wcs_paquet')
        with conn.cursor() as cur:
            cur.execute('SELECT count(*) FROM anonymizer.runs WHERE outcome = %s', ('ok',))
            ran = cur.fetchone()[0]
        conn.close()
        failures += ran != 1
        if failures:
            print(res.stdout, res.stderr, file=sys.stderr)
            return 1
    print('installed package: check, report and run work as user anonymizer')
    return 0


if __name__ == '__main__':
    sys.exit(main())
