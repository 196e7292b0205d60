// Direct MX delivery against a loopback DNS server and loopback SMTP sinks playing the remote
// hosts: MX order and fallback when a host refuses connections, null MX, no MX (A fallback),
// DNS failures, the loop check, and per-recipient outcomes of one transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { reply } from '../../src/core/reply.ts';
import type { Envelope, EnvelopeRecipient } from '../../src/queue/envelope.ts';
import { MxTransport, planMx } from '../../src/delivery/mx.ts';
import type { DeliverableMessage } from '../../src/delivery/transport.ts';
import { startDns } from '../harness/dns.ts';
import { captureLog } from '../queue/helpers.ts';
import { localhostCert, startSink, type Sink } from './sink.ts';

const CLIENT = { heloName: 'mx.example.org', connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 5000 };

function message(recipients: EnvelopeRecipient[], body = 'From: a@example.org\r\nSubject: t\r\n\r\nhello\r\n', mailFrom = 'a@example.org'): DeliverableMessage {
  const bytes = Buffer.from(body);
  const envelope: Envelope = {
    id: '1k8fn2k50f5t0l8a1',
    receivedAt: Date.now(),
    mailFrom,
    recipients,
    client: { address: '192.0.2.1', listener: 'submission', sessionId: 's', login: 'a@example.org' },
    smtputf8: false,
    body: '8BITMIME',
    size: bytes.length,
  };
  return { envelope, body: () => Readable.from([bytes]), recovered: false };
}

const remote = (address: string): EnvelopeRecipient => ({ address, mailbox: address, transport: 'remote' });

test('planMx: preference order, null MX, implicit MX, NXDOMAIN, SERVFAIL, and our own name', async (t) => {
  const dns = await startDns(t, {
    'pref.example': { MX: ['20 b.pref.example.', '10 a.pref.example.', '30 c.pref.example.'] },
    'null.example': { MX: ['0 .'] },
    'bare.example': { A: ['127.0.0.1'] },
    'broken.example': { mode: 'servfail' },
    'self.example': { MX: ['10 better.self.example.', '20 mx.example.org.', '30 worse.self.example.'] },
    'loop.example': { MX: ['10 mx.example.org.'] },
  });
  const r = dns.resolver();
  assert.deepEqual(await planMx(r, 'pref.example'), {
    kind: 'hosts',
    hosts: [
      { name: 'a.pref.example', preference: 10 },
      { name: 'b.pref.example', preference: 20 },
      { name: 'c.pref.example', preference: 30 },
    ],
  });
  assert.deepEqual(await planMx(r, 'null.example'), { kind: 'fail', outcome: 'permanent', reply: '556 5.1.10 recipient domain null.example has a null MX and accepts no mail' });
  assert.deepEqual(await planMx(r, 'bare.example'), { kind: 'hosts', hosts: [{ name: 'bare.example', preference: 0 }] });
  assert.deepEqual(await planMx(r, 'nothere.bare.example'), { kind: 'fail', outcome: 'permanent', reply: '550 5.4.4 domain nothere.bare.example not found (no MX or address records)' });
  const broken = await planMx(r, 'broken.example');
  assert.equal(broken.kind === 'fail' && broken.outcome, 'temporary');
  assert.match(broken.kind === 'fail' ? broken.reply : '', /^451 4\.4\.3 MX lookup for broken\.example failed: /);
  assert.deepEqual(await planMx(r, 'self.example', ['mx.example.org']), { kind: 'hosts', hosts: [{ name: 'better.self.example', preference: 10 }] });
  assert.deepEqual(await planMx(r, 'loop.example', ['mx.example.org']), { kind: 'fail', outcome: 'permanent', reply: '550 5.4.6 mail for loop.example loops back to myself' });
  assert.deepEqual(await planMx(r, '[127.0.0.1]'), { kind: 'hosts', hosts: [{ name: '127.0.0.1', preference: 0, addresses: ['127.0.0.1'] }] });
});

/** Two sinks on one port: one on ::1, one on 127.0.0.1 (the MX port is one setting for all hosts). */
async function twoSinks(t: Parameters<typeof startSink>[0]): Promise<{ v4: Sink; v6: Sink; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const v4 = await startSink(t, { name: 'mx2' });
    try {
      const v6 = await startSink(t, { host: '::1', port: v4.port, name: 'mx1' });
      return { v4, v6, port: v4.port };
    } catch (err) {
      await v4.close();
      if (attempt > 5) throw err;
    }
  }
}

test('mx: the best host gets the mail; when it refuses connections the next one does', async (t) => {
  const { v4, v6, port } = await twoSinks(t);
  const dns = await startDns(t, {
    'example.net': { MX: ['20 mx2.example.net.', '10 mx1.example.net.'], names: { mx1: { AAAA: ['::1'] }, mx2: { A: ['127.0.0.1'] } } },
  });
  const cap = captureLog();
  const mx = new MxTransport({ dns: dns.resolver(), port, client: CLIENT, concurrencyPerDomain: 2, ownNames: ['mx.example.org'], log: cap.log });
  const first = await mx.deliver(message([remote('bob@example.net')]), [0]);
  assert.deepEqual(first, [{ index: 0, outcome: 'ok', reply: '250 2.0.0 Ok: queued as sink1', remoteMta: 'mx1.example.net' }]);
  assert.equal(v6.messages.length, 1);
  assert.equal(v4.messages.length, 0);
  assert.equal(v6.messages[0]!.helo, 'mx.example.org');

  await v6.close();
  const second = await mx.deliver(message([remote('bob@example.net')]), [0]);
  assert.deepEqual(second, [{ index: 0, outcome: 'ok', reply: '250 2.0.0 Ok: queued as sink1', remoteMta: 'mx2.example.net' }]);
  assert.equal(v4.messages.length, 1);
  const skipped = cap.events('mx-unreachable');
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0]!.host, 'mx1.example.net');
  assert.match(String(skipped[0]!.reply), /^451 4\.4\.1 connect to mx1\.example\.net\[::1\]:\d+: ECONNREFUSED$/);
});

test('mx: each recipient of one transaction gets its own outcome; duplicates share one RCPT', async (t) => {
  const sink = await startSink(t, {
    rcpt: (a) => (a === 'gone@example.net' ? reply(550, '5.1.1', 'No such user') : a === 'full@example.net' ? reply(452, '4.2.2', 'Mailbox full') : undefined),
  });
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const mx = new MxTransport({ dns: dns.resolver(), port: sink.port, client: CLIENT, concurrencyPerDomain: 2, ownNames: [], log: captureLog().log });
  const rcpts = [remote('ok@example.net'), remote('gone@example.net'), remote('full@example.net'), { address: 'alias@example.org', mailbox: 'ok@example.net', transport: 'remote' as const }];
  const out = await mx.deliver(message(rcpts), [0, 1, 2, 3]);
  assert.deepEqual(
    out.sort((a, b) => a.index - b.index),
    [
      { index: 0, outcome: 'ok', reply: '250 2.0.0 Ok: queued as sink1', remoteMta: 'mx.example.net' },
      { index: 1, outcome: 'permanent', reply: '550 5.1.1 No such user', remoteMta: 'mx.example.net' },
      { index: 2, outcome: 'temporary', reply: '452 4.2.2 Mailbox full', remoteMta: 'mx.example.net' },
      { index: 3, outcome: 'ok', reply: '250 2.0.0 Ok: queued as sink1', remoteMta: 'mx.example.net' },
    ],
  );
  assert.deepEqual(sink.rcpts.map((r) => r.address), ['ok@example.net', 'gone@example.net', 'full@example.net']);
  assert.deepEqual(sink.messages.map((m) => m.rcpts), [['ok@example.net']]);
});

test('mx: a refused message (5xx after DATA) fails every recipient; no MX host reachable is temporary', async (t) => {
  const sink = await startSink(t, { data: () => reply(554, '5.7.1', 'Message refused as spam') });
  const dns = await startDns(t, {
    'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } },
    'dead.example': { MX: ['10 nohost.dead.example.'] },
  });
  const mx = new MxTransport({ dns: dns.resolver(), port: sink.port, client: CLIENT, concurrencyPerDomain: 1, ownNames: [], log: captureLog().log });
  const out = await mx.deliver(message([remote('a@example.net'), remote('b@example.net'), remote('c@dead.example')]), [0, 1, 2]);
  assert.deepEqual(
    out.sort((a, b) => a.index - b.index),
    [
      { index: 0, outcome: 'permanent', reply: '554 5.7.1 Message refused as spam', remoteMta: 'mx.example.net' },
      { index: 1, outcome: 'permanent', reply: '554 5.7.1 Message refused as spam', remoteMta: 'mx.example.net' },
      { index: 2, outcome: 'temporary', reply: '451 4.4.3 MX host nohost.dead.example: host not found' },
    ],
  );
  assert.equal(sink.messages.length, 0);
});

test('mx: STARTTLS is used whenever offered, without checking the certificate (opportunistic, RFC 7435)', async (t) => {
  const sink = await startSink(t, { tls: localhostCert().context });
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const cap = captureLog();
  const mx = new MxTransport({ dns: dns.resolver(), port: sink.port, client: CLIENT, concurrencyPerDomain: 1, ownNames: [], log: cap.log });
  const out = await mx.deliver(message([remote('bob@example.net')]), [0]);
  assert.equal(out[0]!.outcome, 'ok');
  assert.equal(sink.messages[0]!.secure, true, 'the session was encrypted');
  assert.equal(cap.events('mx-session')[0]!.tls, true);
});
