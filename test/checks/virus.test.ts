// The virus check against a real clamd (Debian's clamav-daemon): the test writes its own
// signature database for the EICAR test string (no download), starts clamd on a unix socket and
// a loopback TCP port, and scans clean, infected, MIME-encoded and oversized messages — at the
// check, and end to end over SMTP. clamd down, silent or aborted is answered per onError.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Replies } from '../../src/core/reply.ts';
import type { MessageFacts } from '../../src/pipeline/check.ts';
import { parseClamdAddress, ping, scanStream, type ClamdAddress } from '../../src/checks/lib/clamd.ts';
import { virus, VirusOptions } from '../../src/checks/virus.ts';
import { dial } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';
import { build, ctx, makeEnv } from './env.ts';
import { freePort } from '../harness/ports.ts';
import { spawnOwned } from '../harness/processes.ts';

const CLAMD = '/usr/sbin/clamd';
const NO_CLAMD = existsSync(CLAMD) ? false : `${CLAMD} is missing: install Debian's clamav-daemon package (apt-get install --no-install-recommends clamav-daemon) to run this test`;

// The EICAR anti-virus test string, put together here so that this file itself is not taken
// for the test virus by a scanner on a developer's machine.
const EICAR = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-', 'TEST-FILE!$H+H*'].join('');
// clamd adds ".UNOFFICIAL" to the names of signatures from databases it cannot verify.
const HASH_SIG = 'Mailward.Test.EICAR.UNOFFICIAL';
const MAIL_SIG = 'Mailward.Test.EICAR.Mail.UNOFFICIAL';
const REJECTED = { code: 554, enhanced: '5.7.1', text: 'Message rejected: virus found' };
// The test clamd refuses streams longer than this (StreamMaxLength).
const STREAM_MAX = 1024 * 1024;

const HEAD = 'From: alice@example.net\r\nTo: bob@example.org\r\nSubject: hello\r\nDate: Mon, 5 Jan 2026 12:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n';
const CLEAN = `${HEAD}\r\nHello Bob,\r\nsee you tomorrow.\r\n`;
const PLAIN = `${HEAD}\r\nHello Bob,\r\n${EICAR}\r\nbye\r\n`;
const ATTACHED = [
  HEAD + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n',
  '--b1\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n',
  '--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="eicar.com"\r\n',
  `${Buffer.from(EICAR).toString('base64')}\r\n--b1--\r\n`,
].join('\r\n');

/** A clean message of about `size` bytes (text lines), with `body` first in its body. */
function big(size: number, body = ''): string {
  const line = 'the quick brown fox jumps over the lazy dog 0123456789\r\n';
  return `${HEAD}\r\n${body}${body ? '\r\n' : ''}${line.repeat(Math.ceil(size / line.length))}`;
}

function message(text: string): MessageFacts {
  const raw = Buffer.from(text, 'latin1');
  return { size: raw.length, headers: [], raw: async () => raw };
}


interface Clamd {
  readonly unix: string;
  readonly tcp: string;
  stop(): Promise<void>;
}

/**
 * A private clamd: its own folder, a database of two signatures for EICAR — the MD5 of the whole
 * file (.hdb; matches the decoded attachment) and the bytes anywhere in a mail file (.ndb target
 * type 4; matches a plain body) — a unix socket and a loopback TCP port, mail decoding on.
 */
async function startClamd(t: TestContext): Promise<Clamd> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-clamd-'));
  const db = path.join(dir, 'db');
  mkdirSync(db);
  const md5 = createHash('md5').update(EICAR).digest('hex');
  writeFileSync(path.join(db, 'mailward-test.hdb'), `${md5}:${Buffer.byteLength(EICAR)}:Mailward.Test.EICAR\n`);
  writeFileSync(path.join(db, 'mailward-test.ndb'), `Mailward.Test.EICAR.Mail:4:*:${Buffer.from(EICAR).toString('hex')}\n`);
  const socket = path.join(dir, 'clamd.sock');
  const port = await freePort();
  const conf = path.join(dir, 'clamd.conf');
  writeFileSync(
    conf,
    [
      `LocalSocket ${socket}`,
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      `DatabaseDirectory ${db}`,
      'Foreground yes',
      `LogFile ${path.join(dir, 'clamd.log')}`,
      // Decode MIME parts (base64 attachments) of a whole RFC 5322 message; Debian's default too.
      'ScanMail yes',
      `StreamMaxLength ${STREAM_MAX}`,
      // Without a User line clamd keeps the user it was started as (root here, or the tester).
    ].join('\n') + '\n',
  );
  const child: ChildProcess = spawnOwned(t, CLAMD, [`--config-file=${conf}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => (running = false));
  const stop = async (): Promise<void> => {
    if (running) child.kill('SIGTERM');
    await exited;
  };
  t.after(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const unix = `unix:${socket}`;
  const address = parseClamdAddress(unix)!;
  const until = Date.now() + 30_000;
  for (;;) {
    if ((await ping(address, { timeoutMs: 1000 })).kind === 'ok') break;
    if (!running || Date.now() > until) {
      const log = existsSync(path.join(dir, 'clamd.log')) ? readFileSync(path.join(dir, 'clamd.log'), 'utf8') : '';
      throw new Error(`clamd did not answer PING on ${socket}:\n${stderr}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { unix, tcp: `tcp:127.0.0.1:${port}`, stop };
}

// CI (MAILWARD_REQUIRE_ALL_TESTS=1) installs clamd: there a missing one fails instead of skipping.
const REQUIRE_ALL = process.env.MAILWARD_REQUIRE_ALL_TESTS === '1';

test('virus: a real clamd over a unix socket and TCP — clean, infected, encoded, oversized, then stopped', { skip: REQUIRE_ALL ? false : NO_CLAMD }, async (t) => {
  if (NO_CLAMD) assert.fail(`MAILWARD_REQUIRE_ALL_TESTS=1 but ${NO_CLAMD}`);
  const clamd = await startClamd(t);
  const { env, logs } = await makeEnv(t);
  const scan = (opts: Record<string, unknown>, text: string) => build(virus, opts, env).data!(ctx(), message(text));

  for (const address of [clamd.unix, clamd.tcp]) {
    await t.test(`clean passes, EICAR plain and base64-attached is rejected (${address.split(':')[0]})`, async () => {
      assert.deepEqual(await scan({ clamd: address }, CLEAN), { kind: 'pass' });
      assert.deepEqual(await scan({ clamd: address }, PLAIN), { kind: 'reject', reply: REJECTED, reason: `virus: ${MAIL_SIG} found by clamd` });
      // The raw message holds no EICAR bytes: clamd found it by decoding the MIME part.
      assert.equal(ATTACHED.includes(EICAR), false);
      assert.deepEqual(await scan({ clamd: address }, ATTACHED), { kind: 'reject', reply: REJECTED, reason: `virus: ${HASH_SIG} found by clamd` });
    });
  }

  await t.test('the client itself: the answers as data, and PING', async () => {
    const a = parseClamdAddress(clamd.tcp)!;
    assert.deepEqual(await ping(a, { timeoutMs: 2000 }), { kind: 'ok' });
    assert.deepEqual(await scanStream(a, [Buffer.from(EICAR)], { timeoutMs: 2000 }), { kind: 'infected', name: HASH_SIG });
    // Chunks as an async stream, with an empty one that must not end the stream early.
    async function* parts(): AsyncGenerator<Buffer> {
      yield Buffer.from(EICAR.slice(0, 10));
      yield Buffer.alloc(0);
      yield Buffer.from(EICAR.slice(10));
    }
    assert.deepEqual(await scanStream(a, parts(), { timeoutMs: 2000 }), { kind: 'infected', name: HASH_SIG });
    assert.deepEqual(await scanStream(a, [Buffer.from('hello')], { timeoutMs: 2000 }), { kind: 'clean' });
  });

  await t.test('past clamd StreamMaxLength: defer by default, pass with onError: pass; maxBytes streams only the start', async () => {
    const large = big(STREAM_MAX + 512 * 1024);
    // clamd answers and closes while the rest is still being written: whether its answer or the
    // write's EPIPE/ECONNRESET reaches us first is a race of the kernel's; both are a failed scan.
    const refused = new RegExp(`^clamd at ${clamd.unix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?: answered "INSTREAM size limit exceeded\\. ERROR"|: (?:write )?(?:EPIPE|ECONNRESET|read ECONNRESET))$`);
    const deferred = await scan({ clamd: clamd.unix }, large);
    assert.equal(deferred.kind, 'defer');
    assert.deepEqual(deferred.kind === 'defer' && deferred.reply, Replies.tempFailure);
    assert.match(deferred.kind === 'defer' ? deferred.reason : '', new RegExp(`^virus: scan failed: ${refused.source.slice(1)}`));
    assert.match(String(logs.at(-1)?.err), refused);
    assert.deepEqual(await scan({ clamd: clamd.unix, onError: 'pass' }, large), { kind: 'pass' });
    assert.equal(logs.at(-1)?.msg, 'virus scan failed; message passed unscanned (checks.virus.onError is pass)');
    assert.deepEqual(await scan({ clamd: clamd.unix, maxBytes: '512KB' }, large), { kind: 'pass' });
    assert.deepEqual(await scan({ clamd: clamd.unix, maxBytes: '512KB' }, big(STREAM_MAX + 512 * 1024, EICAR)), { kind: 'reject', reply: REJECTED, reason: `virus: ${MAIL_SIG} found by clamd` });
  });

  await t.test('end to end over SMTP: 250 for a clean message, 554 5.7.1 for EICAR with the signature in the log', async (t2) => {
    const srv = await startServer(t2, { users: [['bob@example.org', 'bob password 1']], config: { pipeline: { data: ['virus'] }, checks: { virus: { clamd: clamd.unix } } } });
    const c = await dial(srv.port('mx'));
    await c.expect('220');
    await c.say('EHLO client.example.net').expect('250');
    for (const [text, answer] of [
      [CLEAN, '250 2.0.0 Ok: queued as '],
      [ATTACHED, '554 5.7.1 Message rejected: virus found'],
    ] as const) {
      await c.say('MAIL FROM:<alice@example.net>').expect('250');
      await c.say('RCPT TO:<bob@example.org>').expect('250');
      await c.say('DATA').expect('354');
      c.send(`${text}.\r\n`);
      await c.expect(answer);
    }
    await c.say('QUIT').expect('221');
    const line = await srv.waitForLog((l) => l.event === 'rejected' && l.check === 'virus');
    assert.equal(line.reason, `virus: ${HASH_SIG} found by clamd`);
    assert.equal(line.reply, '554 5.7.1 Message rejected: virus found');
  });

  await t.test('clamd stopped: defer by default, pass with onError: pass', async () => {
    await clamd.stop();
    for (const address of [clamd.unix, clamd.tcp]) {
      const v = await scan({ clamd: address }, PLAIN);
      assert.equal(v.kind, 'defer');
      assert.equal(v.kind === 'defer' && v.reason.startsWith(`virus: scan failed: clamd at ${address}: connect `), true, JSON.stringify(v));
      assert.deepEqual(await scan({ clamd: address, onError: 'pass' }, PLAIN), { kind: 'pass' });
    }
  });
});

test('virus: no clamd at the configured socket defers (default) or passes (onError: pass)', async (t) => {
  const { env, logs } = await makeEnv(t);
  const sock = path.join(tmpdir(), `mailward-no-clamd-${process.pid}.sock`);
  const check = (onError?: 'defer' | 'pass') => build(virus, { clamd: `unix:${sock}`, ...(onError ? { onError } : {}) }, env);
  assert.deepEqual(await check().data!(ctx(), message(PLAIN)), {
    kind: 'defer',
    reply: Replies.tempFailure,
    reason: `virus: scan failed: clamd at unix:${sock}: connect ENOENT ${sock}`,
  });
  assert.equal(logs.at(-1)?.msg, 'virus scan failed; deferring (checks.virus.onError is defer)');
  assert.equal(logs.at(-1)?.clamd, `unix:${sock}`);
  assert.deepEqual(await check('pass').data!(ctx(), message(PLAIN)), { kind: 'pass' });
});

/** A TCP server on loopback that accepts, reads and never answers; counts closed connections. */
async function silentServer(t: TestContext): Promise<{ address: string; closed: () => number }> {
  let closed = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => {
      closed++;
      sockets.delete(s);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { address: `tcp:127.0.0.1:${(server.address() as net.AddressInfo).port}`, closed: () => closed };
}

test('virus: a clamd that never answers — the time-out defers, an abort closes the socket', async (t) => {
  const { env } = await makeEnv(t);
  const silent = await silentServer(t);
  const v = await build(virus, { clamd: silent.address, timeout: '300ms' }, env).data!(ctx(), message(PLAIN));
  assert.deepEqual(v, { kind: 'defer', reply: Replies.tempFailure, reason: `virus: scan failed: clamd at ${silent.address} did not answer within 300 ms` });

  const ac = new AbortController();
  const scanning = build(virus, { clamd: silent.address }, env).data!(ctx({}, undefined, ac.signal), message(PLAIN));
  setTimeout(() => ac.abort(new Error('deadline')), 100);
  assert.deepEqual(await scanning, { kind: 'defer', reply: Replies.tempFailure, reason: `virus: scan failed: scan at ${silent.address} aborted` });
  // Both connections were closed by the client, not left open.
  for (let i = 0; i < 50 && silent.closed() < 2; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(silent.closed(), 2);
});

test('virus: options — safe defaults, and addresses that are refused', () => {
  assert.deepEqual(VirusOptions.parse({}), {
    clamd: 'unix:/var/run/clamav/clamd.ctl',
    timeout: 30_000,
    onError: 'defer',
    maxBytes: 25 * 1024 * 1024,
    rejectReply: 'Message rejected: virus found',
  });
  assert.deepEqual(parseClamdAddress('tcp:127.0.0.1:3310'), { kind: 'tcp', host: '127.0.0.1', port: 3310 } satisfies ClamdAddress);
  assert.deepEqual(parseClamdAddress('tcp:[::1]:3310'), { kind: 'tcp', host: '::1', port: 3310 });
  assert.deepEqual(parseClamdAddress('tcp:clamav.internal:3310'), { kind: 'tcp', host: 'clamav.internal', port: 3310 });
  for (const bad of ['127.0.0.1:3310', 'tcp:127.0.0.1', 'tcp:127.0.0.1:0', 'tcp:127.0.0.1:70000', 'tcp:::1:3310', 'unix:relative.sock', '/var/run/clamav/clamd.ctl']) {
    assert.equal(parseClamdAddress(bad), undefined, bad);
  }
  const r = VirusOptions.safeParse({ clamd: 'localhost:3310' });
  assert.equal(r.success, false);
  assert.equal(r.error?.issues[0]?.message, 'not a clamd address; write tcp:HOST:PORT (e.g. tcp:127.0.0.1:3310) or unix:/absolute/path (e.g. unix:/var/run/clamav/clamd.ctl)');
  assert.equal(VirusOptions.safeParse({ onError: 'accept' }).success, false);
  assert.equal(VirusOptions.safeParse({ rejectReply: 'two\r\nlines' }).success, false);
  assert.equal(VirusOptions.safeParse({ maxBytes: 0 }).success, false);
  assert.equal(VirusOptions.safeParse({ scan: true }).success, false);
});
