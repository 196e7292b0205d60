// A recipient Dovecot accepted by LMTP is recorded the moment its 250 arrives, not when the whole
// delivery pass ends: a kill -9 later in the pass (here: while a second recipient's smarthost is
// still taking the message) must not deliver the first one again at the next start.
// RFC 2033 §4.2: one reply per recipient after the final dot.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { buildConfig } from '../../src/config/load.ts';
import { openDirectory } from '../../src/app/accounts.ts';
import { reply } from '../../src/core/reply.ts';
import { loginPlain } from '../harness/auth.ts';
import { mailwardArgv, ROOT } from '../harness/cli.ts';
import { startDns } from '../harness/dns.ts';
import { dovecotInstalled, startDovecot } from '../harness/dovecot.ts';
import { exited, killGroup, spawnOwned } from '../harness/processes.ts';
import { localhostCert, startSink } from '../delivery/sink.ts';

const skip = dovecotInstalled() || process.env.MAILWARD_REQUIRE_ALL_TESTS === '1' ? false : 'dovecot-core and dovecot-lmtpd are not installed';

type Line = Record<string, unknown>;

interface Serve {
  readonly logs: Line[];
  waitFor(pred: (l: Line) => boolean): Promise<Line>;
  kill(): Promise<void>;
}

/** `mailward serve` as a child process (its own process group), its JSON log lines heard. */
function serve(t: TestContext, configFile: string): Serve {
  const child = spawnOwned(t, process.execPath, mailwardArgv(['serve', '--config', configFile]), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Line[] = [];
  let waiters: Array<() => void> = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    if (process.env.LMTP_CRASH_DEBUG) console.error(text.slice(0, 400));
    try {
      logs.push(JSON.parse(text) as Line);
    } catch {
      return;
    }
    const w = waiters;
    waiters = [];
    w.forEach((fn) => fn());
  });
  let gone = false;
  child.once('exit', () => {
    gone = true;
    waiters.forEach((fn) => fn());
  });
  const waitFor = (pred: (l: Line) => boolean): Promise<Line> =>
    new Promise((resolve, reject) => {
      const look = (): void => {
        const hit = logs.find(pred);
        if (hit) resolve(hit);
        else if (gone) reject(new Error(`the server exited first: ${stderr}`));
        else waiters.push(look);
      };
      look();
    });
  return {
    logs,
    waitFor,
    kill: async () => {
      killGroup(child);
      await exited(child);
    },
  };
}

test('lmtp crash: a recipient whose 250 came is not delivered again after a kill -9 later in the pass', { skip }, async (t) => {
  const dv = await startDovecot(t, [{ address: 'bob@example.org', password: 'b-pass' }]);
  // The smarthost takes the second recipient's message and answers only when told to.
  let answer: (() => void) | undefined;
  let hang = true;
  const cert = localhostCert();
  const sink = await startSink(t, {
    tls: cert.context,
    implicitTls: true,
    data: () => (hang ? new Promise((resolve) => (answer = () => resolve(reply(451, '4.3.0', 'Try again')))) : undefined),
  });
  const dataDir = mkdtempSync(path.join(tmpdir(), 'mailward-lmtp-crash-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const caFile = path.join(dataDir, 'smarthost-ca.pem');
  writeFileSync(caFile, cert.certPem);
  const dns = await startDns(t, {});
  const raw = {
    hostname: 'mx.example.org',
    domains: ['example.org'],
    dataDir,
    log: { level: 'debug', format: 'json' },
    listeners: { submissions: { kind: 'submissions', port: 0 } },
    dns: { servers: [dns.address], timeout: 500, tries: 1 },
    queue: { minBackoff: '200ms', maxBackoff: '1s' },
    delivery: {
      local: { transport: 'lmtp', lmtp: { address: `unix:${dv.lmtpSocket}` } },
      routes: { '*': 'smarthost:relay' },
      smarthosts: { relay: { host: 'localhost', port: sink.port, tls: 'implicit', ca: caFile } },
    },
  };
  const configFile = path.join(dataDir, 'mailward.yaml');
  writeFileSync(configFile, JSON.stringify(raw)); // JSON is YAML
  const dir = openDirectory(buildConfig(raw, configFile, dataDir));
  await dir.addUser('alice@example.org', 'alice password 1');
  await dir.addUser('bob@example.org', 'bob password 12');
  dir.close();

  const first = serve(t, configFile);
  const listening = await first.waitFor((l) => l.event === 'listening' && l.listener === 'submissions');
  const c = await loginPlain(listening.port as number, 'alice@example.org', 'alice password 1');
  await c.say('MAIL FROM:<alice@example.org>').expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('RCPT TO:<far@remote.example>').expect('250');
  await c.say('DATA').expect('354');
  c.send('From: <alice@example.org>\r\nTo: <bob@example.org>\r\nSubject: once\r\n\r\nhello\r\n.\r\n');
  const queued = await c.expect('250 2.0.0 Ok: queued as ');
  const id = queued.text.split(' ').pop()!;
  await c.say('QUIT').expect('221');

  // Dovecot's 250 for bob is on disk in the spool; the pass still waits for the smarthost.
  await first.waitFor((l) => l.event === 'recipients-recorded' && l.queueId === id && (l.rcpts as string[]).includes('bob@example.org'));
  assert.equal(dv.mailbox('bob@example.org').length, 1);
  assert.equal(first.logs.filter((l) => l.event === 'delivered').length, 0, 'the pass has not ended: the kill lands inside it');
  await first.kill();
  // The dead server's session at the sink ends too (its answer goes nowhere).
  hang = false;
  answer?.();
  const second = serve(t, configFile);
  await second.waitFor((l) => l.event === 'delivered' && l.queueId === id && l.rcpt === 'far@remote.example');
  // bob's delivery would have been in that same pass: it is over, and bob has his one copy.
  assert.equal(dv.mailbox('bob@example.org').length, 1, 'bob got a second copy after the restart');
  assert.equal(second.logs.filter((l) => l.queueId === id && l.rcpt === 'bob@example.org' && (l.event === 'delivered' || l.event === 'deferred')).length, 0);
  assert.equal(sink.messages.length, 1);
  await second.kill();
});
