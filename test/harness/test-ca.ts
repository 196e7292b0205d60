// A throw-away certificate authority for TLS tests, made with the openssl command line: a CA
// certificate, and server certificates it signs for given names (valid, or expired), as PEM.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';

export interface TestCa {
  readonly caPem: string;
  /** A server certificate for `names` (DNS names or IP addresses; the first is the CN), signed by this CA. */
  issue(names: readonly string[], opts?: { readonly expired?: boolean }): { certPem: string; keyPem: string };
}

export function startCa(t: { after(fn: () => void): void }): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-ca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=Mailward Test CA']);
  writeFileSync(path.join(dir, 'index.txt'), '');
  writeFileSync(path.join(dir, 'serial'), '1000\n');
  writeFileSync(
    path.join(dir, 'ca.cnf'),
    ['[ca]', 'default_ca = d', '[d]', `dir = ${dir}`, `database = ${dir}/index.txt`, `new_certs_dir = ${dir}`, `serial = ${dir}/serial`, 'default_md = sha256', 'policy = p', 'copy_extensions = copy', 'unique_subject = no', '[p]', 'commonName = supplied', ''].join('\n'),
  );
  let n = 0;
  return {
    caPem: readFileSync(path.join(dir, 'ca.pem'), 'utf8'),
    issue(names, opts = {}) {
      const base = `leaf${++n}`;
      run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((x) => (isIP(x) ? `IP:${x}` : `DNS:${x}`)).join(',')}`]);
      const dates = opts.expired ? ['-startdate', '20200101000000Z', '-enddate', '20200201000000Z'] : ['-days', '30'];
      run(['ca', '-batch', '-notext', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', `${base}.csr`, '-out', `${base}.pem`, ...dates]);
      return { certPem: readFileSync(path.join(dir, `${base}.pem`), 'utf8'), keyPem: readFileSync(path.join(dir, `${base}.key`), 'utf8') };
    },
  };
}
