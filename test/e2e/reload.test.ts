// SIGHUP reloads the config: new check lists and options apply to new sessions at once, a
// broken config is refused with the old one kept, and settings that need a restart are named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnOwned } from '../harness/processes.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { dial } from '../harness/dial.ts';
import { buildConfig } from '../../src/config/load.ts';
import { openDirectory } from '../../src/app/accounts.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

async function rcpt(port: number, to: string): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO x').expect('250');
  await c.say('MAIL FROM:<a@example.net>').expect('250');
  const r = await c.say(`RCPT TO:<${to}>`).read();
  c.close();
  return r.raw;
}

test('reload: SIGHUP applies new check options, refuses a broken file, names restart-only changes', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'mailward.yaml');
  const base = { hostname: 'mx.example.org', domains: ['example.org'], dataDir: dir, log: { level: 'info', format: 'json' }, listeners: { mx: { kind: 'mx', port: 0 } } };
  writeFileSync(file, JSON.stringify(base));
  const d = openDirectory(buildConfig(base, file, dir));
  await d.addUser('bob@example.org', 'bob password 1');
  d.close();

  const child = spawnOwned(t, process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), 'serve', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const logs: Array<Record<string, unknown>> = [];
  const waitLog = async (pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const found = logs.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error('timed out waiting for a log line');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON
    }
  });
  const port = (await waitLog((l) => l.event === 'listening' && l.listener === 'mx')).port as number;
  assert.match(await rcpt(port, 'bob@example.org'), /^250/);

  // A new check with options: bob is now refused, without a restart.
  writeFileSync(file, JSON.stringify({ ...base, pipeline: { rcpt: ['recipient-access', 'recipient'] }, checks: { 'recipient-access': { entries: { 'bob@example.org': 'reject Bob is away' } } } }));
  child.kill('SIGHUP');
  await waitLog((l) => l.event === 'reload' && l.applied === true);
  assert.match(await rcpt(port, 'bob@example.org'), /^5\d\d .*Bob is away/);

  // A broken file is refused; the config in force stays.
  writeFileSync(file, JSON.stringify({ ...base, relay: { trustedNetworks: ['0.0.0.0/0'] } }));
  child.kill('SIGHUP');
  const refused = await waitLog((l) => l.event === 'reload' && l.applied === false);
  assert.match(String(refused.err), /^config error at relay\.trustedNetworks\[0\]: "0\.0\.0\.0\/0" trusts every address/);
  assert.match(await rcpt(port, 'bob@example.org'), /Bob is away/);

  // A change that needs a restart is named; the rest applies.
  writeFileSync(file, JSON.stringify({ ...base, limits: { maxRecipients: 5 } }));
  child.kill('SIGHUP');
  const partial = await waitLog((l) => l.event === 'reload' && l.applied === true && Array.isArray(l.restartNeeded) && (l.restartNeeded as string[]).includes('limits'));
  assert.deepEqual(partial.restartNeeded, ['limits']);
  assert.match(await rcpt(port, 'bob@example.org'), /^250/);

  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
});
