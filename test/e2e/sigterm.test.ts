// SIGTERM on a real `mailward serve` process: a client idle after EHLO gets 421, a client in the
// middle of DATA may finish and gets 250, new connections are refused, the process exits 0 within
// the shutdown deadline, and the message that got its 250 is delivered (before exit or after a
// restart) exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { dial } from '../harness/dial.ts';
import { spawnOwned, stopGroup } from '../harness/processes.ts';
import { maildirPath, readMaildir } from '../harness/server.ts';
import { buildConfig } from '../../src/config/load.ts';
import { openDirectory } from '../../src/app/accounts.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** The listeners' own bound on waiting for sessions (ingress/listener.ts), plus start-up slack. */
const SHUTDOWN_DEADLINE_MS = 15_000;

interface Proc {
  readonly child: ChildProcess;
  readonly logs: Array<Record<string, unknown>>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

function serve(configFile: string): Proc {
  const child = spawnOwned(undefined, process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), 'serve', '--config', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const logs: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a log line
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    logs,
    exited,
    async waitLog(pred, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = logs.find(pred);
        if (found) return found;
        if (Date.now() > deadline) throw new Error('timed out waiting for a log line');
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test('SIGTERM: idle client 421, in-flight DATA finishes with 250, no new connections, exit 0, message kept', { timeout: 90_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-sigterm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'mailward.yaml');
  const base = { hostname: 'mx.example.org', domains: ['example.org'], dataDir: dir, log: { level: 'info', format: 'json' }, listeners: { mx: { kind: 'mx', port: 0 } } };
  writeFileSync(file, JSON.stringify(base));
  const config = buildConfig(base, file, dir);
  const d = openDirectory(config);
  await d.addUser('bob@example.org', 'bob password 1');
  d.close();

  const p = serve(file);
  t.after(() => stopGroup(p.child, 'SIGKILL'));
  const port = (await p.waitLog((l) => l.event === 'listening' && l.listener === 'mx')).port as number;

  const idle = await dial(port);
  await idle.expect('220');
  await idle.say('EHLO idle.example').expect('250');

  const busy = await dial(port);
  await busy.expect('220');
  await busy.say('EHLO busy.example').expect('250');
  await busy.say('MAIL FROM:<a@example.net>').expect('250');
  await busy.say('RCPT TO:<bob@example.org>').expect('250');
  await busy.say('DATA').expect('354');
  busy.send('Subject: in flight\r\n\r\nfirst half\r\n');

  p.child.kill('SIGTERM');
  await p.waitLog((l) => l.msg === 'stopping' && l.signal === 'SIGTERM');
  const bye = await idle.read();
  assert.equal(bye.code, 421);
  assert.match(bye.raw, /^421 4\.3\.2 /);
  await idle.closed();
  assert.equal(await refused(port), 'ECONNREFUSED', 'no new connections once stopping');

  busy.send('second half\r\n.\r\n');
  const done = await busy.read();
  assert.match(done.raw, /^250 2\.0\.0 /);
  // The session ends after its transaction (421: no further one is taken).
  assert.equal((await busy.read()).code, 421);

  const exit = await Promise.race([p.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), SHUTDOWN_DEADLINE_MS).unref())]);
  assert.deepEqual(exit, { code: 0, signal: null });

  // Delivered before exit, or still in the spool: a restart delivers it. Exactly once either way.
  const inbox = maildirPath(config.paths.mail, 'bob@example.org');
  if (readMaildir(inbox).length === 0) {
    const again = serve(file);
    t.after(() => stopGroup(again.child, 'SIGKILL'));
    const deadline = Date.now() + 15_000;
    while (readMaildir(inbox).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    again.child.kill('SIGTERM');
    assert.deepEqual(await again.exited, { code: 0, signal: null });
  }
  const mail = readMaildir(inbox);
  assert.equal(mail.length, 1);
  assert.ok(mail[0]!.includes('Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n'));
});
