// The readers against the real Postfix: for every fixture, each value main.cf sets reads the same
// as `postconf -c DIR -n -x` expands it; the built-in defaults table says what `postconf -d` says;
// master.cf's -o forms; and --dry-run writes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BUILT_IN_DEFAULTS } from '../../src/import/postfix/defaults.ts';
import { expand, listOf, parseMainCf, parseMainCfLines } from '../../src/import/postfix/main-cf.ts';
import { parseMasterCf } from '../../src/import/postfix/master-cf.ts';
import { literalKey } from '../../src/import/postfix/maps.ts';
import { PostfixSettings } from '../../src/import/postfix/settings.ts';
import { planImport } from '../../src/import/postfix/translate.ts';
import { runMailward } from '../harness/cli.ts';
import { FIXTURES } from './helpers.ts';

const POSTCONF = ['/usr/sbin/postconf', '/usr/bin/postconf'].find((p) => existsSync(p));
const skip = POSTCONF || process.env.MAILWARD_REQUIRE_ALL_TESTS === '1' ? false : 'postfix (postconf) is not installed';

test('main.cf values read as postconf -n -x expands them, for every fixture', { skip }, () => {
  for (const name of readdirSync(FIXTURES)) {
    const dir = path.join(FIXTURES, name, 'etc/postfix');
    const text = execFileSync(POSTCONF!, ['-c', dir, '-n', '-x'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const s = new PostfixSettings({ root: path.join(FIXTURES, name), configDir: '/etc/postfix', postconf: POSTCONF! });
    let compared = 0;
    for (const line of text.split('\n')) {
      const m = /^([a-z0-9_]+) = ?(.*)$/.exec(line);
      if (!m || m[1] === 'config_directory') continue; // -c DIR itself
      assert.equal(s.get(m[1]!), m[2]!.trim(), `${name}: ${m[1]}`);
      compared++;
    }
    assert.ok(compared >= 8, `${name}: ${compared} values compared`);
  }
});

test('the built-in defaults table says what postconf -d says', { skip }, () => {
  const text = execFileSync(POSTCONF!, ['-d', ...Object.keys(BUILT_IN_DEFAULTS)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  for (const line of text.split('\n')) {
    const m = /^([a-z0-9_]+) = ?(.*)$/.exec(line);
    if (!m || m[1] === 'myhostname' || m[1] === 'mydomain') continue; // this machine's names
    assert.equal(BUILT_IN_DEFAULTS[m[1]!], m[2], m[1]);
  }
});

test('expansion: $name, ${name}, conditionals and the compatibility_level forms', () => {
  const vars: Record<string, string> = { a: 'x', b: '$a-y', compatibility_level: '3.6', empty: '' };
  const get = (n: string): string | undefined => vars[n];
  assert.equal(expand('$a ${b} $(a)', get), 'x x-y x');
  assert.equal(expand('${a?set}${empty?unset}${empty:fallback}', get), 'setfallback');
  assert.equal(expand(BUILT_IN_DEFAULTS.mynetworks_style!, get), 'host');
  assert.equal(expand(BUILT_IN_DEFAULTS.mynetworks_style!, (n) => (n === 'compatibility_level' ? '0' : undefined)), 'subnet');
  assert.equal(expand(BUILT_IN_DEFAULTS.smtpd_relay_restrictions!, get), 'permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination');
  assert.deepEqual(listOf('permit_mynetworks,reject_rbl_client  zen.example check_policy_service { inet:127.0.0.1:10023, timeout=10s }'), ['permit_mynetworks', 'reject_rbl_client', 'zen.example', 'check_policy_service', '{ inet:127.0.0.1:10023, timeout=10s }']);
  const main = parseMainCf('a = 1\n# comment\nb = one,\n  two\n\n  three\nc=\n');
  assert.deepEqual([...main.values()].map((p) => [p.name, p.value, p.source]), [['a', '1', 'main.cf:1'], ['b', 'one, two three', 'main.cf:3'], ['c', '', 'main.cf:7']]);
});

test('master.cf: services, -o name=value and -o { name = value }, with their lines', () => {
  const svcs = parseMasterCf('smtp inet n - y - - smtpd\n#x\nsubmission inet n - y - - smtpd\n  -o smtpd_tls_security_level=encrypt\n  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }\n');
  assert.equal(svcs.length, 2);
  const sub = svcs[1]!;
  assert.equal(sub.overrides.get('smtpd_tls_security_level')?.value, 'encrypt');
  assert.equal(sub.overrides.get('smtpd_tls_security_level')?.source, 'master.cf:4 (-o)');
  assert.equal(sub.overrides.get('smtpd_client_restrictions')?.value, 'permit_sasl_authenticated, reject');
});

test('regexp keys: literals become access keys, real patterns do not', () => {
  assert.equal(literalKey('/^bad@evil\\.example$/'), 'bad@evil.example');
  assert.equal(literalKey('/@evil\\.example$/'), 'evil.example');
  assert.equal(literalKey('/\\.evil\\.example$/'), '.evil.example');
  assert.equal(literalKey('/^[0-9]{6,}@/'), undefined);
  assert.equal(literalKey('/evil/'), undefined, 'an unanchored pattern matches more than a key would');
});

test('without postconf the built-in table gives the same result', () => {
  for (const name of readdirSync(FIXTURES)) {
    const root = path.join(FIXTURES, name);
    const a = planImport({ root, configDir: '/etc/postfix', postconf: false });
    if (!POSTCONF) continue;
    const b = planImport({ root, configDir: '/etc/postfix', postconf: POSTCONF });
    assert.deepEqual(a.config, b.config, name);
  }
});

test('mailward import postfix --dry-run prints the report and the config and writes nothing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-import-dry-'));
  try {
    const out = path.join(dir, 'mailward.yaml');
    const run = await runMailward(['import', 'postfix', '--root', path.join(FIXTURES, 'incident-tunnel'), '--out', out, '--dry-run']);
    assert.match(run.stdout, /ERRORS \(unsafe in the Postfix config; not copied\)/);
    assert.match(run.stdout, /\[mynetworks-loopback\]/);
    assert.match(run.stdout, /MAILWARD DOCTOR ON THE RESULT/);
    assert.match(run.stdout, /--- .*mailward\.yaml \(not written\) ---/);
    assert.deepEqual(readdirSync(dir), [], 'nothing written');
    const missing = await runMailward(['import', 'postfix', '--root', dir, '--out', out]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no main\.cf in .*--config-dir/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lines Postfix refuses (no "=", a service without 8 fields) are listed, not skipped', () => {
  const bad: Array<{ source: string; text: string }> = [];
  parseMainCfLines('a = 1\nthis is garbage\nb = 2\n', 'main.cf', bad);
  parseMasterCf('smtp inet n - y - - smtpd\nbroken inet n\n', 'master.cf', bad);
  assert.deepEqual(bad, [{ source: 'main.cf:2', text: 'this is garbage' }, { source: 'master.cf:2', text: 'broken inet n' }]);
});
