// "Stop all outbound" from the command line, with real SMTP: `mailward outbound stop` with no
// server running writes the state the next start obeys; a submission then stays queued without an
// attempt (local mail is delivered), also across a restart; `mailward outbound start` reaches the
// running server over its control socket, and the waiting mail goes out to the loopback MX.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { startSink } from '../delivery/sink.ts';
import { mailward, writeConfig } from '../cli/inprocess.ts';
import { controlOutbound } from '../../src/queue/control.ts';
import { authPlain } from '../harness/auth.ts';

const USER: [string, string] = ['alice@example.org', 'alice password 1'];

test('outbound stop|start|status: persisted across restarts, mail stays queued without attempts, local delivery goes on, start delivers', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-outbound-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');
  const cfg = path.join(dir, 'mailward.yaml');
  writeConfig(cfg, dataDir);
  const sink = await startSink(t);
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const config = { dns: { servers: [dns.address], timeout: '1s', tries: 1 }, delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } } };

  // No server runs: the CLI writes the state file.
  assert.equal((await mailward(['-c', cfg, 'outbound', 'stop', '--reason', 'incident 22'])).code, 0);
  const file = JSON.parse(readFileSync(path.join(dataDir, 'outbound.json'), 'utf8')) as { stopped: boolean; by: string; reason: string };
  assert.deepEqual([file.stopped, file.reason], [true, 'incident 22']);
  assert.match(file.by, /^cli /);

  const first = await startServer(t, { dataDir, users: [USER], config });
  await first.waitForLog((l) => l.event === 'outbound-stopped' && l.reason === 'incident 22');
  const c = await dial(first.port('submission'));
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('STARTTLS').expect('220');
  await c.startTls();
  await c.say('EHLO client.example.net').expect('250');
  await c.say(authPlain(USER[0], USER[1])).expect('235');
  await c.say('MAIL FROM:<alice@example.org>').expect('250');
  await c.say('RCPT TO:<far@example.net>').expect('250');
  await c.say('RCPT TO:<alice@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('From: alice@example.org\r\nSubject: while stopped\r\n\r\nHello.\r\n.\r\n');
  const id = (await c.expect('250 2.0.0 Ok: queued as ')).text.split(' ').pop()!;
  await c.say('QUIT').expect('221');
  // Local delivery goes on; the remote recipient is paused, not tried.
  await first.waitForMail('alice@example.org');
  await first.waitForLog((l) => l.event === 'outbound-paused' && l.queueId === id && l.rcpt === 'far@example.net');
  assert.equal(sink.connections, 0);
  assert.equal(first.logs.filter((l) => l.event === 'deferred' && l.queueId === id).length, 0, 'a pause is not a deferral with an attempt');
  // Status over the socket: the running server answers.
  assert.equal((await controlOutbound(first.config.paths.spool, { op: 'outbound', action: 'status' }))?.stopped, true);
  await first.stop();

  // A restart keeps it stopped; the message waits, queued, with no attempt made.
  const second = await startServer(t, { dataDir, config });
  await second.waitForLog((l) => l.event === 'outbound-stopped');
  assert.equal((await controlOutbound(second.config.paths.spool, { op: 'outbound', action: 'status' }))?.stopped, true);
  const waiting = await mailward(['-c', cfg, 'queue', 'show', id]);
  assert.equal(waiting.code, 0);
  assert.equal(sink.connections, 0);

  // Start, from the CLI over the control socket: the server flushes, the mail goes out.
  assert.equal((await mailward(['-c', cfg, 'outbound', 'start'])).code, 0);
  const started = await second.waitForLog((l) => l.event === 'outbound-started');
  assert.match(String(started.by), /^cli /);
  const [m] = await sink.waitForMessages(1);
  assert.deepEqual(m!.rcpts, ['far@example.net']);
  const delivered = await second.waitForLog((l) => l.event === 'delivered' && l.queueId === id && l.rcpt === 'far@example.net');
  assert.equal(delivered.attempts, 1, 'the paused passes made no attempt');
  assert.equal((JSON.parse(readFileSync(path.join(dataDir, 'outbound.json'), 'utf8')) as { stopped: boolean }).stopped, false);
});
