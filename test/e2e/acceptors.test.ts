// Acceptor processes (workers: 2): real child processes run the sessions while this process keeps
// the sockets and the queue. Mail from many parallel connections is spread over both and
// delivered; connection limits hold across them; bytes read past a PROXY header travel with the
// socket (implicit TLS right behind it); a killed acceptor is replaced; a reload reaches them;
// their log lines arrive in the one log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { dial, type Dialog } from '../harness/dial.ts';
import { startServer, testConfig, type TestServer } from '../harness/server.ts';
import { SpoolIntake } from '../../src/queue/intake.ts';

const WORKERS = { workers: 2 };

async function sendOne(srv: TestServer, n: number): Promise<void> {
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('MAIL FROM:<someone@example.net>').expect('250');
  await c.say('RCPT TO:<alice@example.org>').expect('250');
  await c.say('DATA').expect('354');
  await c.say(`Subject: parallel ${n}\r\n\r\nmessage ${n}\r\n.`).expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
}

const acceptorPids = (srv: TestServer): Promise<number[]> => srv.waitForLog((l) => l.event === 'acceptors').then((l) => l.pids as number[]);

test('acceptors: parallel sessions run in two child processes, every message is delivered, their log lines and events reach the one log and /metrics', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-acceptors-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const token = 'a-long-random-admin-token-0123456789';
  writeFileSync(path.join(dir, 'token'), `${token}\n`);
  const srv = await startServer(t, { users: [['alice@example.org', 'alice password 1']], config: { ...WORKERS, admin: { enabled: true, port: 0, tokenFile: path.join(dir, 'token') } } });
  const pids = await acceptorPids(srv);
  assert.equal(pids.length, 2);
  assert.equal(pids.includes(process.pid), false);
  // Ten connections at a time: the least busy acceptor gets each, so both serve.
  await Promise.all(Array.from({ length: 10 }, (_, i) => sendOne(srv, i)));
  await Promise.all(Array.from({ length: 10 }, (_, i) => sendOne(srv, 10 + i)));
  const mail = await srv.waitForMail('alice@example.org', 20);
  assert.equal(mail.length, 20);
  assert.deepEqual(mail.map((m) => /Subject: parallel (\d+)/.exec(m)?.[1]).map(Number).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
  const queued = srv.logs.filter((l) => l.event === 'queued');
  assert.equal(queued.length, 20);
  // Written by the acceptors (their pid on each line), both of them.
  assert.deepEqual([...new Set(queued.map((l) => l.pid as number))].sort(), [...pids].sort());
  // Delivered by this process, which owns the queue.
  await srv.waitForLog(() => srv.logs.filter((l) => l.event === 'delivered').length >= 20);
  const delivered = srv.logs.filter((l) => l.event === 'delivered');
  assert.equal(delivered.length, 20);
  assert.deepEqual([...new Set(delivered.map((l) => l.pid))], [process.pid]);
  // The acceptors' mail events feed this process's metrics.
  const metrics = await (await fetch(`http://127.0.0.1:${srv.server.adminPort()}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  assert.match(metrics, /^mailward_events_total\{event="queued",listener="mx"\} 20$/m);
  assert.match(metrics, /^mailward_events_total\{event="connect",listener="mx"\} 20$/m);
});

test('acceptors: the listener answers before the acceptor processes are up; this process runs those sessions, then hands new ones to the acceptors', async (t) => {
  let release!: () => void;
  const holdAcceptors = new Promise<void>((r) => (release = r));
  t.after(() => release());
  const srv = await startServer(t, { users: [['alice@example.org', 'alice password 1']], config: WORKERS, holdAcceptors });
  // Served while the hand-over is held: written and logged by this process.
  await sendOne(srv, 0);
  await srv.waitForLog((l) => l.event === 'queued');
  assert.deepEqual(srv.logs.filter((l) => l.event === 'queued').map((l) => l.pid), [process.pid]);
  assert.equal(srv.logs.some((l) => l.event === 'acceptors'), false);
  release();
  const pids = await acceptorPids(srv);
  await sendOne(srv, 1);
  const mail = await srv.waitForMail('alice@example.org', 2);
  assert.deepEqual(mail.map((m) => /Subject: parallel (\d+)/.exec(m)?.[1]).sort(), ['0', '1']);
  const queued = srv.logs.filter((l) => l.event === 'queued');
  assert.equal(queued.length, 2);
  assert.equal(pids.includes(queued[1]!.pid as number), true);
});

test('acceptors: the per-client connection limit counts connections in every acceptor', async (t) => {
  const srv = await startServer(t, { config: { ...WORKERS, limits: { maxConnectionsPerClient: 3 } } });
  await acceptorPids(srv);
  const open: Dialog[] = [];
  t.after(() => open.forEach((c) => c.close()));
  for (let i = 0; i < 3; i++) {
    const c = await dial(srv.port('mx'));
    open.push(c);
    await c.expect('220');
  }
  const fourth = await dial(srv.port('mx'));
  open.push(fourth);
  await fourth.expect('421 4.7.0');
  await fourth.closed();
  // One goes: a new one is let in again.
  open[0]!.say('QUIT');
  await open[0]!.closed();
  await srv.waitForLog((l) => l.event === 'disconnect');
  const fifth = await dial(srv.port('mx'));
  open.push(fifth);
  await fifth.expect('220');
});

test('acceptors: a PROXY header and the TLS ClientHello behind it in one packet; the real client is judged', async (t) => {
  const srv = await startServer(t, {
    users: [['alice@example.org', 'alice password 1']],
    config: { ...WORKERS, listeners: { mx: { kind: 'mx', port: 0 }, submission: { kind: 'submission', port: 0 }, submissions: { kind: 'submissions', port: 0, proxy: { trusted: ['127.0.0.1/32'] } } } },
  });
  await acceptorPids(srv);
  for (let round = 0; round < 4; round++) {
    const raw = net.connect({ host: '127.0.0.1', port: srv.port('submissions') });
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    // Corked: the header and the ClientHello leave in one write, so the primary reads both.
    raw.cork();
    raw.write(`PROXY TCP4 203.0.113.${9 + round} 198.51.100.1 5555 465\r\n`);
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    process.nextTick(() => raw.uncork());
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    const greeting = await new Promise<string>((resolve) => secure.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    assert.match(greeting, /^220 mx\.example\.org /);
    secure.end('QUIT\r\n');
    const connect = await srv.waitForLog((l) => l.event === 'connect' && l.client === `203.0.113.${9 + round}`);
    assert.equal(connect.proxy, '127.0.0.1');
  }
});

test('acceptors: a signal to the whole process group (Ctrl-C, systemd) leaves the stopping to the primary', async (t) => {
  const srv = await startServer(t, { users: [['alice@example.org', 'alice password 1']], config: WORKERS });
  const pids = await acceptorPids(srv);
  for (const pid of pids) for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.kill(pid, signal);
  await new Promise((r) => setTimeout(r, 300));
  for (const pid of pids) process.kill(pid, 0); // still there
  assert.deepEqual(srv.logs.filter((l) => l.event === 'acceptor-exit'), []);
  await sendOne(srv, 1);
  await srv.stop();
  // The primary's stop ends them, without an unexpected-exit line.
  assert.deepEqual(srv.logs.filter((l) => l.event === 'acceptor-exit' || l.event === 'acceptor-kill'), []);
});

test('acceptors: a killed acceptor is replaced and mail keeps flowing; a reload reaches the new one too', async (t) => {
  const srv = await startServer(t, { users: [['alice@example.org', 'alice password 1']], config: WORKERS });
  const [first] = await acceptorPids(srv);
  process.kill(first!, 'SIGKILL');
  const exit = await srv.waitForLog((l) => l.event === 'acceptor-exit');
  assert.equal(exit.signal, 'SIGKILL');
  // Meanwhile the other one serves.
  await sendOne(srv, 1);
  // Relaying from loopback is refused, until a reload lists it by hand; every acceptor applies it
  // (four connections at once, so each acceptor gets some, once the replacement runs).
  const relayAttempt = async (): Promise<string> => {
    const c = await dial(srv.port('mx'));
    await c.expect('220');
    await c.say('EHLO client.example.net').expect('250');
    await c.say('MAIL FROM:<someone@example.net>').expect('250');
    const r = await c.say('RCPT TO:<bob@elsewhere.example>').read();
    c.say('QUIT');
    return String(r.code);
  };
  const restarted = Date.now();
  for (;;) {
    // The replacement announces itself by serving: wait until two acceptors answer again.
    await new Promise((r) => setTimeout(r, 100));
    if (Date.now() - restarted > 10_000) assert.fail('the killed acceptor was not replaced within 10 s');
    if (srv.logs.filter((l) => l.event === 'acceptor-ready').length >= 3) break;
  }
  assert.deepEqual(await Promise.all(Array.from({ length: 4 }, relayAttempt)), ['554', '554', '554', '554']);
  srv.server.reload(testConfig(srv.dataDir, { ...WORKERS, relay: { trustedNetworks: ['127.0.0.1/32'] } }));
  assert.deepEqual(await Promise.all(Array.from({ length: 4 }, relayAttempt)), ['250', '250', '250', '250']);
  await sendOne(srv, 2);
  assert.equal((await srv.waitForMail('alice@example.org', 2)).length, 2);
});

test('acceptors: clients that reset refused connections do not take an acceptor down', async (t) => {
  const srv = await startServer(t, { users: [['alice@example.org', 'alice password 1']], config: { ...WORKERS, limits: { maxConnectionsPerClient: 2 } } });
  const pids = await acceptorPids(srv);
  const open: Dialog[] = [];
  t.after(() => open.forEach((c) => c.close()));
  for (let i = 0; i < 2; i++) {
    const c = await dial(srv.port('mx'));
    open.push(c);
    await c.expect('220');
  }
  // Over the limit: the acceptor answers 421 and lingers; the client resets at once.
  for (let i = 0; i < 20; i++) {
    const s = net.connect({ host: '127.0.0.1', port: srv.port('mx') });
    await new Promise<void>((resolve) => s.once('connect', resolve));
    s.resetAndDestroy();
  }
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(srv.logs.filter((l) => l.event === 'acceptor-exit'), []);
  for (const pid of pids) process.kill(pid, 0); // both still run
  open[0]!.say('QUIT');
  await open[0]!.closed();
  await srv.waitForLog((l) => l.event === 'disconnect');
  await sendOne(srv, 1);
});

test('acceptors: a message an acceptor committed but could not announce is scheduled when it dies', async (t) => {
  const srv = await startServer(t, { users: [['alice@example.org', 'alice password 1']], config: WORKERS });
  const [victim] = await acceptorPids(srv);
  // The start-up scan runs after the listeners open; once it is done, only a dead acceptor's
  // stray search can find the file below.
  await srv.waitForLog((l) => l.event === 'queue-loaded');
  // What an acceptor does up to its 250, without telling the primary (it dies right after).
  const intake = new SpoolIntake(srv.config.paths.spool, { committed: () => undefined });
  t.after(() => intake.close());
  const w = intake.begin({
    mailFrom: 'someone@example.net',
    recipients: [{ address: 'alice@example.org', mailbox: 'alice@example.org', transport: 'local' }],
    client: { address: '192.0.2.7', helo: 'stray.example.net', listener: 'mx', sessionId: 'stray' },
    smtputf8: false,
    body: '7BIT',
  });
  await w.write(Buffer.from('Subject: stray\r\n\r\ncommitted, never announced\r\n'));
  await w.commit();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(srv.mailbox('alice@example.org').length, 0, 'not delivered while nobody knows of it');
  process.kill(victim!, 'SIGKILL');
  const [m] = await srv.waitForMail('alice@example.org', 1);
  assert.match(m!, /committed, never announced/);
  assert.equal((await srv.waitForLog((l) => l.event === 'acceptor-strays')).adopted, 1);
});
