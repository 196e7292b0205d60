// A real `mailward serve` process: the files it creates are not world-readable (umask 0027,
// dataDir 0750, keys 0600), `doctor` names a file whose mode is too open, and — started as root
// with `user:` set — it binds, hands dataDir over and runs (acceptors too) as that user before
// it answers a client. Uses the system's own nobody/nogroup: nothing on the machine is changed.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { dial } from '../harness/dial.ts';
import { spawnOwned, stopGroup } from '../harness/processes.ts';
import { mailwardArgv, ROOT, runMailward } from '../harness/cli.ts';
import { watchLog } from '../harness/log-watch.ts';

interface Served {
  readonly pid: number;
  waitLog(pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

/** Starts `mailward serve` on a config written to a fresh folder; stopped by the test's after hook. */
async function serve(t: TestContext, extra: Record<string, unknown>): Promise<{ dir: string; dataDir: string; configFile: string; served: Served }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-unpriv-'));
  // Another user must be able to reach dataDir inside it (as /var/lib is).
  chmodSync(dir, 0o755);
  const dataDir = path.join(dir, 'data');
  const configFile = path.join(dir, 'mailward.yaml');
  const config = { hostname: 'mx.example.org', domains: ['example.org'], dataDir, log: { level: 'info', format: 'json' }, listeners: { mx: { kind: 'mx', port: 0 }, submission: { kind: 'submission', port: 0 } }, ...extra };
  writeFileSync(configFile, stringify(config));
  // A mailbox to send to, made before the start as an operator would (as root, in the root test).
  const added = await runMailward(['user', 'add', 'alice@example.org', '--password-stdin', '--config', configFile], 'correct horse battery\n');
  assert.equal(added.code, 0, added.stderr);
  const child = spawnOwned(t, process.execPath, mailwardArgv(['serve', '--config', configFile]), { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => stopGroup(child));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { waitLog } = watchLog(child);
  return { dir, dataDir, configFile, served: { pid: child.pid!, waitLog } };
}

/** One message to alice over SMTP; resolves on its 250. */
async function sendOne(t: TestContext, port: number, subject: string): Promise<void> {
  const c = await dial(port);
  t.after(() => c.close());
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('MAIL FROM:<someone@example.net>').expect('250');
  await c.say('RCPT TO:<alice@example.org>').expect('250');
  await c.say('DATA').expect('354');
  await c.say(`Subject: ${subject}\r\n\r\nbody\r\n.`).expect('250');
}

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8).padStart(4, '0');

/** The real, effective, saved and file-system ids of a process (/proc/PID/status: Uid:, Gid:). */
function ids(pid: number): { uid: number[]; gid: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = (k: string): number[] => status.match(new RegExp(`^${k}:\\s+(.*)$`, 'm'))![1]!.trim().split(/\s+/).map(Number);
  return { uid: line('Uid'), gid: line('Gid') };
}

test('files a started server creates are not world-readable, and doctor names one that is', async (t) => {
  const { dataDir, configFile, served } = await serve(t, {});
  const started = served.waitLog((l) => l.event === 'started');
  const mx = await served.waitLog((l) => l.event === 'listening' && l.listener === 'mx');
  await started;
  // A message in the spool, so its files exist too.
  await sendOne(t, mx.port as number, 'modes');
  assert.equal(mode(dataDir), '0750');
  for (const f of ['state.sqlite', 'directory.sqlite']) {
    assert.equal(statSync(path.join(dataDir, f)).mode & 0o007, 0, `${f} is ${mode(path.join(dataDir, f))}`);
  }
  assert.equal(statSync(path.join(dataDir, 'spool')).mode & 0o077, 0);
  const keyFile = path.join(dataDir, 'tls', 'selfsigned-key.pem');
  assert.equal(mode(keyFile), '0600');

  const clean = await runMailward(['doctor', '--json', '--config', configFile]);
  const ids0 = (JSON.parse(clean.stdout) as { findings: Array<{ id: string }> }).findings.map((f) => f.id);
  assert.ok(!ids0.some((id) => id.startsWith('file-mode') || id === 'data-dir-open'), clean.stdout);

  chmodSync(path.join(dataDir, 'state.sqlite'), 0o644);
  chmodSync(keyFile, 0o640);
  const run = await runMailward(['doctor', '--json', '--config', configFile]);
  const findings = (JSON.parse(run.stdout) as { findings: Array<{ id: string; setting: string; message: string; fix: string }> }).findings;
  const sqlite = findings.find((f) => f.id === 'file-mode-open' && f.message.includes('state.sqlite'));
  assert.ok(sqlite, run.stdout);
  assert.match(sqlite.message, /0644/);
  assert.equal(sqlite.fix, `chmod 640 ${path.join(dataDir, 'state.sqlite')}`);
  const key = findings.find((f) => f.id === 'file-mode-secret' && f.message.includes('selfsigned-key.pem'));
  assert.ok(key, run.stdout);
  assert.match(key.message, /0640/);
  assert.equal(key.fix, `chmod 600 ${keyFile}`);
});

test('started as root with user: nobody, the server and its acceptors run as nobody and own dataDir', async (t) => {
  if (process.getuid!() !== 0) {
    if (process.env.MAILWARD_REQUIRE_ALL_TESTS === '1') assert.fail('MAILWARD_REQUIRE_ALL_TESTS=1 but the tests do not run as root: the privilege drop cannot be tested');
    t.skip('needs root (to switch to nobody)');
    return;
  }
  const { dataDir, served } = await serve(t, { user: 'nobody', group: 'nogroup', workers: 2 });
  const dropped = await served.waitLog((l) => l.event === 'privileges');
  const acceptors = await served.waitLog((l) => l.event === 'acceptors');
  const mx = await served.waitLog((l) => l.event === 'listening' && l.listener === 'mx');
  await served.waitLog((l) => l.event === 'started');
  const nobody = dropped.uid as number;
  const nogroup = dropped.gid as number;
  assert.notEqual(nobody, 0);
  for (const pid of [served.pid, ...(acceptors.pids as number[])]) {
    const { uid, gid } = ids(pid);
    assert.deepEqual(uid, [nobody, nobody, nobody, nobody], `process ${pid}`);
    assert.deepEqual(gid, [nogroup, nogroup, nogroup, nogroup], `process ${pid}`);
  }
  for (const p of [dataDir, path.join(dataDir, 'spool'), path.join(dataDir, 'state.sqlite'), path.join(dataDir, 'tls', 'selfsigned-key.pem')]) {
    assert.equal(statSync(p).uid, nobody, p);
  }
  // And it serves mail: the session (in an acceptor) writes the spool as nobody.
  await sendOne(t, mx.port as number, 'as nobody');
});
