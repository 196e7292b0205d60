// A validating resolver for DANE tests: unbound (Debian package `unbound`) on loopback, serving
// zones written by the test from its own auth-zone blocks as if they were upstream, so its
// validator checks them (RFC 4035 §5). A zone given `signed: true` is signed with a fresh
// ECDSA P-256 key by ldns-keygen/ldns-signzone (package `ldnsutils`), whose DS is unbound's
// trust anchor; a `tamper` function may then edit the signed text (a bogus signature). Zones
// without a key are insecure: no trust anchor covers them. Root hints point at loopback, which
// unbound refuses to query, so nothing leaves the machine. unbound runs in its own process group,
// killed when the test ends (passed, failed or timed out).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { freePort } from './ports.ts';
import { spawnOwned, stopGroup } from './processes.ts';

export interface ZoneSpec {
  readonly name: string;
  /** Records after SOA and NS, in master-file syntax with absolute names. */
  readonly records: readonly string[];
  readonly signed: boolean;
  /** Edits the signed zone text before unbound reads it. */
  readonly tamper?: (text: string) => string;
}

export interface Unbound {
  /** "127.0.0.1:<port>" for dns.servers. */
  readonly server: string;
  readonly port: number;
  /** unbound's log so far. */
  log(): string;
}

export interface UnboundOptions {
  /** false: no validator module — a recursive resolver that passes signatures on unchecked and
   *  never sets AD, as many a hoster's resolver does (default true). */
  readonly validate?: boolean;
}

export async function startUnbound(t: TestContext, zones: readonly ZoneSpec[], opts: UnboundOptions = {}): Promise<Unbound> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-unbound-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const anchors: string[] = [];
  const blocks: string[] = [];
  for (const z of zones) {
    const origin = `${z.name}.`;
    const file = path.join(dir, `${z.name}.zone`);
    const text = [`$ORIGIN ${origin}`, '$TTL 300', `@ IN SOA ns.${origin} hostmaster.${origin} 1 3600 600 86400 300`, `@ IN NS ns.${origin}`, `ns.${origin} IN A 127.0.0.1`, ...z.records, ''].join('\n');
    writeFileSync(file, text);
    let served = file;
    if (z.signed) {
      const key = execFileSync('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', z.name], { cwd: dir, encoding: 'utf8' }).trim();
      execFileSync('ldns-signzone', ['-o', origin, file, key], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
      served = `${file}.signed`;
      if (z.tamper) writeFileSync(served, z.tamper(readFileSync(served, 'utf8')));
      anchors.push(readFileSync(path.join(dir, `${key}.ds`), 'utf8').trim());
    }
    blocks.push('auth-zone:', `  name: "${z.name}"`, `  zonefile: "${served}"`, '  for-downstream: no', '  for-upstream: yes', '  fallback-enabled: no');
  }
  writeFileSync(path.join(dir, 'root.hints'), '.  3600000 NS a.root.\na.root. 3600000 A 127.0.0.1\n');
  const port = await freePort();
  const conf = [
    'server:',
    '  interface: 127.0.0.1',
    `  port: ${port}`,
    '  do-daemonize: no',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    '  pidfile: ""',
    '  use-syslog: no',
    '  logfile: ""',
    '  verbosity: 1',
    '  val-log-level: 2',
    '  do-ip6: no',
    '  access-control: 127.0.0.0/8 allow',
    `  module-config: "${opts.validate === false ? 'iterator' : 'validator iterator'}"`,
    `  root-hints: "${path.join(dir, 'root.hints')}"`,
    '  qname-minimisation: no',
    // unbound answers the special-use names (RFC 6761: test., invalid., …) itself with NXDOMAIN.
    ...['test', 'invalid', 'example'].map((n) => `  local-zone: "${n}." nodefault`),
    ...anchors.map((a) => `  trust-anchor: "${a.replace(/\s+/g, ' ')}"`),
    ...blocks,
    'remote-control:',
    '  control-enable: no',
    '',
  ].join('\n');
  const confFile = path.join(dir, 'unbound.conf');
  writeFileSync(confFile, conf);
  const child = spawnOwned(t, 'unbound', ['-d', '-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => stopGroup(child, 'SIGKILL'));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString('utf8');
      if (/start of service/.test(out)) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`unbound exited (${String(code)}) before it served:\n${out}`)));
  });
  return { server: `127.0.0.1:${port}`, port, log: () => out };
}
