// A server that has handled real traffic, with the dashboard's statistics and metrics fed from
// the mail events as the composition root feeds them: alice relays three messages after AUTH,
// a loopback client in relay.trustedNetworks relays one (which the "remote" host defers), two
// attempts are refused and one message arrives for a local mailbox.
import type { TestContext } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { reply } from '../../src/core/reply.ts';
import { mailEvents } from '../../src/observe/events.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { MailStats } from '../../src/observe/stats.ts';
import { spoolQueueStats } from '../../src/shells/admin/queue-stats.ts';
import { dial, type Dialog } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { startSink, type Sink } from '../delivery/sink.ts';

export const USERS: Array<[string, string]> = [
  ['alice@example.org', 'alice password 1'],
  ['bob@example.org', 'bob password 22'],
];

export const TOKEN = 'test-admin-token-0123456789abcdef';

export interface Traffic {
  srv: TestServer;
  sink: Sink;
  stats: MailStats;
  metrics: Metrics;
  /** Queue ids: alice's relayed messages, the trusted-network one (deferred), the local one. */
  ids: { alice: string[]; trusted: string; local: string };
  tokenFile: string;
  dir: string;
  /** Log lines of the admin server. */
  adminLog: pino.Logger;
  adminLines: string[];
}

async function ehlo(c: Dialog): Promise<void> {
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
}

async function data(c: Dialog, body: string): Promise<string> {
  await c.say('DATA').expect('354');
  c.send(`${body.replace(/\r?\n/g, '\r\n')}\r\n.\r\n`);
  const done = await c.expect('250 2.0.0 Ok: queued as ');
  return done.text.split(' ').pop()!;
}

/** `extraRelayed`: more messages alice relays, one recipient each (extra1@example.net …). */
export async function traffic(t: TestContext, extraRelayed = 0): Promise<Traffic> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-admin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = path.join(dir, 'admin.token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });

  const stats = new MailStats();
  const spool: { dir?: string } = {};
  const metrics = new Metrics({ queueStats: () => spoolQueueStats(spool.dir!, { minAgeMs: 0 })() });
  // As the composition root does: both subscribe to the process's mail events.
  const seen = new Set<string>();
  const unsubscribe = [stats.attach(), metrics.attach(), mailEvents.subscribe((e) => seen.add(deliveryKey(e.event, e.fields)))];
  t.after(() => unsubscribe.forEach((u) => u()));

  const sink = await startSink(t, { rcpt: (address) => (address === 'slow@example.net' ? reply(451, '4.2.0', 'Greylisted, try later') : undefined) });
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const srv = await startServer(t, {
    users: USERS,
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      relay: { trustedNetworks: ['127.0.0.1/32'] },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  spool.dir = srv.config.paths.spool;

  // alice: STARTTLS, AUTH, three relayed messages (the last one also to a local mailbox).
  const a = await dial(srv.port('submission'));
  await ehlo(a);
  await a.say('STARTTLS').expect('220');
  await a.startTls();
  await a.say('EHLO client.example.net').expect('250');
  await a.say(`AUTH PLAIN ${Buffer.from(`\0${USERS[0]![0]}\0${USERS[0]![1]}`).toString('base64')}`).expect('235');
  const alice: string[] = [];
  const extra = Array.from({ length: extraRelayed }, (_, i) => [`extra${i + 1}@example.net`]);
  for (const to of [['out1@example.net'], ['out2@example.net'], ['out3@example.net', 'bob@example.org'], ...extra]) {
    await a.say('MAIL FROM:<alice@example.org>').expect('250');
    for (const r of to) await a.say(`RCPT TO:<${r}>`).expect('250');
    alice.push(await data(a, `From: alice@example.org\nTo: ${to.join(', ')}\nSubject: hello\n\nHi.`));
  }
  await a.say('QUIT').expect('221');

  // A client in relay.trustedNetworks on the MX port: two refusals, one relayed, one local.
  const m = await dial(srv.port('mx'));
  await ehlo(m);
  await m.say('MAIL FROM:<someone@example.org>').expect('553 5.7.1');
  await m.say('MAIL FROM:<news@example.com>').expect('250');
  await m.say('RCPT TO:<nobody@example.org>').expect('550 5.1.1');
  await m.say('RCPT TO:<slow@example.net>').expect('250');
  const trusted = await data(m, 'From: news@example.com\nSubject: news\n\nNews.');
  await m.say('MAIL FROM:<friend@example.com>').expect('250');
  await m.say('RCPT TO:<alice@example.org>').expect('250');
  const local = await data(m, 'From: friend@example.com\nSubject: hi\n\nHi Alice.');
  await m.say('QUIT').expect('221');

  await sink.waitForMessages(3 + extraRelayed);
  await srv.waitForMail('alice@example.org');
  await srv.waitForMail('bob@example.org');
  for (const rcpt of ['out1@example.net', 'out2@example.net', 'out3@example.net', 'bob@example.org', 'alice@example.org', ...extra.flat()]) {
    await srv.waitForLog((l) => l.event === 'delivered' && l.rcpt === rcpt);
  }
  await srv.waitForLog((l) => l.event === 'deferred' && l.rcpt === 'slow@example.net');
  bridgeDeliveryLines(srv, seen);

  const adminLines: string[] = [];
  const adminLog = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _e, cb) {
        adminLines.push(chunk.toString('utf8'));
        cb();
      },
    }),
  );
  return { srv, sink, stats, metrics, ids: { alice, trusted, local }, tokenFile, dir, adminLog, adminLines };
}

function deliveryKey(event: string, f: Record<string, unknown>): string {
  return `${event}|${String(f.queueId)}|${String(f.rcpt ?? f.to)}`;
}

/**
 * The delivery worker writes its delivered / bounced / deferred lines with the logger itself, not
 * through mailEvent, so they do not reach the bus yet. Until it does, publish the lines it
 * logged (those the bus has not carried), exactly once, so the figures include deliveries.
 */
function bridgeDeliveryLines(srv: TestServer, seen: Set<string>): void {
  for (const l of srv.logs) {
    const event = l.event;
    if (event !== 'delivered' && event !== 'bounced' && !(event === 'deferred' && l.stage === undefined)) continue;
    if (seen.has(deliveryKey(event, l))) continue;
    const { level: _level, time, pid: _pid, hostname: _host, msg: _msg, event: _event, ...fields } = l;
    mailEvents.publish(event, fields, typeof time === 'number' ? time : Date.now());
  }
}
