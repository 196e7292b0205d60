// check-config checks what serve checks (app/preflight.ts): dataDir and the folders under it,
// the TLS pair, smarthost password files, DKIM keys — each problem names the setting, the value
// and the fix, and serve says the same instead of a raw EACCES/EEXIST/ENOTDIR.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { localhostCert } from '../delivery/sink.ts';
import { execFileSync } from 'node:child_process';
import { mailwardArgv, ROOT, runMailward } from '../harness/cli.ts';
import { runOwned } from '../harness/processes.ts';
import { mailward, setupConfig, writeConfig } from './inprocess.ts';

const isRoot = process.getuid?.() === 0;

/** A config whose dataDir is `dataDir` (setupConfig's own is replaced). */
function withDataDir(t: Parameters<typeof setupConfig>[0], dataDir: (dir: string) => string, extra = ''): { dir: string; dataDir: string; config: string } {
  const s = setupConfig(t, extra);
  const d = dataDir(s.dir);
  writeConfig(s.config, d, extra);
  return { ...s, dataDir: d };
}

test('preflight: a dataDir that is a file — check-config and serve both name dataDir, the value and the fix', async (t) => {
  const { dataDir, config } = withDataDir(t, (dir) => path.join(dir, 'data'));
  writeFileSync(dataDir, 'not a folder');
  const c = await mailward(['check-config', '--config', config]);
  assert.equal(c.code, 2, c.out);
  const expected = `config error at dataDir: ${JSON.stringify(dataDir)} is a file, not a folder (in ${config}). Fix: point dataDir at a folder`;
  assert.ok(c.err.startsWith(expected), c.err);
  // serve as an operator runs it: the same line, no EEXIST, exit 2, nothing listening.
  const s = await runMailward(['serve', '--config', config]);
  assert.equal(s.code, 2, s.stderr);
  assert.ok(s.stderr.includes(expected), s.stderr);
  assert.doesNotMatch(s.stderr, /EEXIST|ENOTDIR|at .*\.ts:\d+/);
});

test('preflight: a dataDir under a regular file cannot be created (ENOTDIR) — named, with the file in the way', async (t) => {
  const { dir, dataDir, config } = withDataDir(t, (d) => path.join(d, 'blocker', 'data'));
  writeFileSync(path.join(dir, 'blocker'), '');
  const c = await mailward(['check-config', '--config', config]);
  assert.equal(c.code, 2);
  assert.match(c.err, new RegExp(`^config error at dataDir: ${JSON.stringify(dataDir).replace(/[/.]/g, '\\$&')} cannot be created: ".*blocker" is a file, not a folder`));
  assert.doesNotMatch(c.err, /ENOTDIR/);
});

test('preflight: a spool folder that is a file is named too', async (t) => {
  const { dataDir, config } = setupConfig(t);
  mkdirSync(dataDir);
  writeFileSync(path.join(dataDir, 'spool'), '');
  const c = await mailward(['check-config', '--config', config]);
  assert.equal(c.code, 2);
  assert.match(c.err, /^config error at dataDir: the spool folder ".*\/data\/spool" is a file, not a folder/);
});

test('preflight: a dataDir this user cannot write (as root: check-config run as nobody, as the server would run)', async (t) => {
  const { dir, dataDir, config } = setupConfig(t);
  let uid = process.getuid!();
  let c: { code: number | null; err: string };
  if (isRoot) {
    // Root may write everywhere, so the case is made as the unprivileged user the server runs as:
    // the folder stays root's (readable, not writable), the config readable.
    const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    // A checkout under a private folder (say /root) cannot be run by nobody: nothing to test then.
    const readable = await runOwned(undefined, 'setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'test', '-r', path.join(ROOT, 'src/main.ts')]);
    if (readable.code !== 0) return t.skip(`nobody cannot read the checkout at ${ROOT}`);
    chmodSync(dir, 0o755);
    chmodSync(config, 0o644);
    const r = await runOwned(undefined, 'setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, ...mailwardArgv(['check-config', '--config', config])], { cwd: ROOT });
    c = { code: r.code, err: r.stderr };
    uid = nobody;
  } else {
    chmodSync(dir, 0o500);
    t.after(() => chmodSync(dir, 0o700));
    c = await mailward(['check-config', '--config', config]);
  }
  assert.equal(c.code, 2, c.err);
  assert.ok(c.err.startsWith(`config error at dataDir: ${JSON.stringify(dataDir)} cannot be created: its parent ${JSON.stringify(dir)} is not writable by uid ${uid} (EACCES)`), c.err);
});

test('preflight: check-config reads the TLS pair, smarthost password files and DKIM keys as serve does, and lists every problem', async (t) => {
  const a = localhostCert();
  const b = localhostCert();
  const { dir, dataDir, config } = setupConfig(t);
  writeFileSync(path.join(dir, 'cert.pem'), a.certPem);
  writeFileSync(path.join(dir, 'other-key.pem'), b.keyPem);
  mkdirSync(path.join(dataDir, 'dkim'), { recursive: true });
  writeFileSync(path.join(dataDir, 'dkim', 'example.org.s1.key'), 'not a key\n');
  writeConfig(
    config,
    dataDir,
    [
      `tls: { cert: ${path.join(dir, 'cert.pem')}, key: ${path.join(dir, 'other-key.pem')} }`,
      'delivery:',
      '  smarthosts:',
      `    relay: { host: relay.example.net, tls: starttls, auth: { user: u, passwordFile: ${path.join(dir, 'missing.pass')} } }`,
    ].join('\n'),
  );
  const c = await mailward(['check-config', '--config', config]);
  assert.equal(c.code, 2, c.out);
  const lines = c.err.trim().split('\n');
  assert.equal(lines.length, 3, c.err);
  assert.match(lines[0]!, /^config error at tls\.cert: the certificate and key cannot be used together/);
  assert.match(lines[1]!, /^config error at delivery\.smarthosts\.relay\.auth\.passwordFile: cannot read ".*missing\.pass": ENOENT/);
  assert.match(lines[2]!, /^config error at dataDir\/dkim: the DKIM key .*example\.org\.s1\.key is not a PEM private key/);
  for (const l of lines) assert.match(l, /\. Fix: \S/);

  // Repaired one by one: a missing key file is named; then everything passes.
  writeFileSync(path.join(dir, 'missing.pass'), 'secret\n', { mode: 0o600 });
  writeFileSync(path.join(dir, 'other-key.pem'), a.keyPem);
  writeFileSync(path.join(dataDir, 'dkim', 'example.org.s1.key'), '');
  const c2 = await mailward(['check-config', '--config', config]);
  assert.equal(c2.code, 2);
  assert.equal(c2.err.trim().split('\n').length, 1, c2.err);
  writeFileSync(config, readFileSync(config, 'utf8').replace(path.join(dir, 'other-key.pem'), path.join(dir, 'nope.pem')));
  const c3 = await mailward(['check-config', '--config', config]);
  assert.match(c3.err, /^config error at tls\.key: cannot read ".*nope\.pem": ENOENT/m);
});

test('preflight: a good config whose dataDir does not exist yet passes, and check-config creates nothing', async (t) => {
  const { dataDir, config } = setupConfig(t);
  const c = await mailward(['check-config', '--config', config]);
  assert.equal(c.code, 0, c.err);
  assert.equal(existsSync(dataDir), false, 'check-config must not create dataDir');
});
