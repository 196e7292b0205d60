// Bounces: the RFC 3464 report (parts, per-recipient fields, original headers), who gets one and
// who never does, and the worker's order: the notice is queued before the bounce is recorded, and
// when it cannot be queued the recipient stays deferred.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { buildDsn, Bouncer, rfc5322Date } from '../../src/delivery/dsn.ts';
import { Spool, type NewEnvelope } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { Worker } from '../../src/delivery/worker.ts';
import type { Envelope, EnvelopeRecipient } from '../../src/queue/envelope.ts';
import type { Transport } from '../../src/delivery/transport.ts';
import { captureLog, envelope, queueMessage, readAll, tempDir } from '../queue/helpers.ts';

const ORIGINAL: Envelope = {
  id: '1k8fn2k50f5t0l8a4',
  receivedAt: Date.UTC(2025, 6, 1, 10, 0, 0),
  mailFrom: 'alice@example.org',
  recipients: [
    { address: 'team@example.org', mailbox: 'bob@example.net', transport: 'remote' },
    { address: 'carol@example.com', mailbox: 'carol@example.com', transport: 'remote' },
  ],
  client: { address: '192.0.2.1', listener: 'submission', sessionId: 's', login: 'alice@example.org' },
  smtputf8: false,
  body: '7BIT',
  size: 100,
};

test('dsn: multipart/report with a human part, message/delivery-status and the original headers', async () => {
  const raw = buildDsn({
    kind: 'failed',
    envelope: ORIGINAL,
    headers: Buffer.from('Received: from x\r\nFrom: alice@example.org\r\nSubject: Quarterly report\r\n\r\n'),
    recipients: [
      { index: 0, state: { status: 'bounced', attempts: 1, lastReply: '550 5.1.1 <bob@example.net>: No such user', updatedAt: Date.UTC(2025, 6, 1, 10, 5, 0) }, remoteMta: 'mx1.example.net' },
      { index: 1, state: { status: 'bounced', attempts: 9, lastReply: '451 4.4.1 connect to mx.example.com[192.0.2.9]:25: ETIMEDOUT', updatedAt: Date.UTC(2025, 6, 6, 10, 0, 0) } },
    ],
    reportingMta: 'mx.example.org',
    date: new Date(Date.UTC(2025, 6, 6, 10, 0, 1)),
    messageId: 'dsn1@mx.example.org',
    boundary: 'BOUNDARY',
  });
  const text = raw.toString();
  assert.ok(!/[^\r]\n/.test(text), 'CRLF only');
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  assert.equal(
    head,
    [
      'Date: Sun, 6 Jul 2025 10:00:01 +0000',
      'From: Mail Delivery System <MAILER-DAEMON@mx.example.org>',
      'To: <alice@example.org>',
      'Subject: Undelivered Mail Returned to Sender',
      'Message-ID: <dsn1@mx.example.org>',
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"',
    ].join('\r\n'),
  );
  const status = text.slice(text.indexOf('Content-Type: message/delivery-status\r\n\r\n') + 41, text.indexOf('\r\n\r\n--BOUNDARY\r\nContent-Description: Undelivered Message Headers'));
  assert.equal(
    status,
    [
      'Reporting-MTA: dns; mx.example.org',
      'X-Mailward-Queue-ID: 1k8fn2k50f5t0l8a4',
      'Arrival-Date: Tue, 1 Jul 2025 10:00:00 +0000',
      '',
      'Original-Recipient: rfc822; team@example.org',
      'Final-Recipient: rfc822; bob@example.net',
      'Action: failed',
      'Status: 5.1.1',
      'Remote-MTA: dns; mx1.example.net',
      'Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: No such user',
      'Last-Attempt-Date: Tue, 1 Jul 2025 10:05:00 +0000',
      '',
      'Final-Recipient: rfc822; carol@example.com',
      'Action: failed',
      'Status: 5.4.7',
      'Diagnostic-Code: smtp; 451 4.4.1 connect to mx.example.com[192.0.2.9]:25: ETIMEDOUT',
      'Last-Attempt-Date: Sun, 6 Jul 2025 10:00:00 +0000',
    ].join('\r\n'),
  );
  const parsed = await simpleParser(raw);
  assert.equal(parsed.headers.get('content-type') && (parsed.headers.get('content-type') as { value: string }).value, 'multipart/report');
  assert.match(parsed.text ?? '', /<bob@example\.net>: host mx1\.example\.net said: 550 5\.1\.1 <bob@example\.net>: No such user/);
  const parts = text.split('\r\n--BOUNDARY').slice(1);
  assert.equal(parts.length, 4, 'three parts and the closing delimiter');
  assert.deepEqual(
    parts.slice(0, 3).map((p) => /Content-Type: ([^;\r]+)/.exec(p)?.[1]),
    ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
  );
  assert.equal(parts[3], '--\r\n');
  const headersPart = parsed.attachments.find((a) => a.contentType === 'text/rfc822-headers');
  assert.equal(headersPart?.content.toString(), 'Received: from x\r\nFrom: alice@example.org\r\nSubject: Quarterly report\r\n');
  assert.equal(rfc5322Date(new Date(Date.UTC(2025, 0, 9, 3, 4, 5))), 'Thu, 9 Jan 2025 03:04:05 +0000');
});

async function bouncerRig(t: Parameters<typeof tempDir>[0], route: (a: string) => EnvelopeRecipient[]) {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(join(dir, 'spool'), { log: cap.log, fsync: false });
  t.after(() => spool.close());
  const bouncer = new Bouncer({ spool, hostname: 'mx.example.org', routeSender: route, maxAgeMs: 5 * 86_400_000, log: cap.log });
  return { spool, bouncer, cap };
}

const asMessage = (spool: Spool, env: Envelope) => ({ envelope: env, body: () => spool.openBody(env.id), recovered: false });

test('bouncer: a notice from <> to the sender, routed as the directory says; never to <>, never for noBounce', async (t) => {
  const { spool, bouncer, cap } = await bouncerRig(t, (a) => (a === 'alice@example.org' ? [{ address: a, mailbox: 'alice@example.org', transport: 'local' }] : []));
  const id = await queueMessage(spool, envelope({ mailFrom: 'alice@example.org', recipients: [{ address: 'x@example.net', mailbox: 'x@example.net', transport: 'remote' }] }), 'From: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n');
  const env = (await spool.get(id))!.envelope;
  const failed = [{ index: 0, state: { status: 'bounced' as const, attempts: 1, lastReply: '550 5.1.1 No such user' } }];
  const dsnId = await bouncer.notify('failed', asMessage(spool, env), failed);
  assert.ok(dsnId);
  const dsn = (await spool.get(dsnId))!;
  assert.equal(dsn.envelope.mailFrom, '');
  assert.deepEqual(dsn.envelope.recipients, [{ address: 'alice@example.org', mailbox: 'alice@example.org', transport: 'local' }]);
  assert.equal(dsn.envelope.noBounce, 'delivery status notification');
  assert.equal(dsn.envelope.client.listener, 'bounce');
  const bytes = (await readAll(spool.openBody(dsnId))).toString();
  assert.match(bytes, /Subject: Undelivered Mail Returned to Sender\r\n/);
  assert.match(bytes, /Content-Type: text\/rfc822-headers\r\n\r\nReceived: from client\.example\.org by mx\.example\.net with ESMTP id \w+\r\nFrom: alice@example\.org\r\nSubject: hi\r\n\r\n--/);

  for (const [over, reason] of [
    [{ mailFrom: '' }, 'null sender'],
    [{ noBounce: 'spam' }, 'spam'],
    [{ mailFrom: 'nobody@example.org' }, undefined],
  ] as Array<[Partial<NewEnvelope>, string | undefined]>) {
    const other = await queueMessage(spool, envelope({ recipients: [{ address: 'x@example.net', transport: 'remote' }], ...over }), 'Subject: s\r\n\r\nx\r\n');
    assert.equal(await bouncer.notify('failed', asMessage(spool, (await spool.get(other))!.envelope), failed), undefined);
    if (reason) assert.equal(cap.events('bounce-suppressed').at(-1)!.reason, reason);
    else assert.equal(cap.events('bounce-undeliverable').at(-1)!.to, 'nobody@example.org');
  }
  const all: string[] = [];
  for await (const m of spool.list()) all.push(m.envelope.id);
  assert.equal(all.filter((x) => x === dsnId).length, 1);
  assert.equal(all.length, 5, 'the three suppressed cases queued nothing');
});

test('worker: the bounce is queued before the state; if it cannot be queued the recipient stays deferred', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(join(dir, 'spool'), { log: cap.log, fsync: false });
  const broken = await Spool.open(join(dir, 'other'), { log: cap.log, fsync: false });
  await broken.close(); // begin() now throws: a notice that cannot be queued
  const queue = new Queue(spool, { log: cap.log, minBackoffMs: 60_000, maxBackoffMs: 60_000 });
  const refusing: Transport = { deliver: async (_m, idx) => idx.map((index) => ({ index, outcome: 'permanent' as const, reply: '550 5.1.1 No such user', remoteMta: 'mx.example.net' })) };
  const bouncer = new Bouncer({ spool: broken, hostname: 'mx.example.org', routeSender: (a) => [{ address: a, mailbox: a, transport: 'remote' }], maxAgeMs: 86_400_000, log: cap.log });
  const worker = new Worker({ spool, queue, transports: { remote: refusing }, log: cap.log, bouncer });
  await queue.start();
  worker.start();
  t.after(async () => {
    await worker.stop();
    queue.stop();
    await spool.close();
  });
  const id = await queueMessage(spool, envelope({ recipients: [{ address: 'x@example.net', mailbox: 'x@example.net', transport: 'remote' }] }), 'Subject: s\r\n\r\nx\r\n');
  for (let i = 0; i < 200 && cap.events('deferred').length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(cap.events('bounce-failed').length, 1);
  const m = (await spool.get(id))!;
  assert.equal(m.states[0]!.status, 'deferred');
  assert.equal(m.states[0]!.lastReply, '550 5.1.1 No such user');
  assert.equal(cap.events('bounced').length, 0);
});

test('worker: with delay warnings on, one warning per recipient while it stays deferred', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(join(dir, 'spool'), { log: cap.log, fsync: false });
  const queue = new Queue(spool, { log: cap.log, minBackoffMs: 30, maxBackoffMs: 30 });
  let calls = 0;
  const deferring: Transport = {
    deliver: async (_m, idx) => {
      calls++;
      return idx.map((index) => ({ index, outcome: 'temporary' as const, reply: '451 4.4.1 connect to mx.example.net: ECONNREFUSED' }));
    },
  };
  const bouncer = new Bouncer({ spool, hostname: 'mx.example.org', routeSender: (a) => [{ address: a, mailbox: a, transport: 'local' }], maxAgeMs: 86_400_000, delayWarningAfterMs: 0, log: cap.log });
  // The warning itself goes to a local mailbox: a transport that keeps what it gets.
  const warnings: string[] = [];
  const local: Transport = {
    deliver: async (m, idx) => {
      warnings.push((await readAll(m.body())).toString());
      return idx.map((index) => ({ index, outcome: 'ok' as const, reply: '250 ok' }));
    },
  };
  const worker = new Worker({ spool, queue, transports: { remote: deferring, local }, log: cap.log, bouncer });
  await queue.start();
  worker.start();
  t.after(async () => {
    await worker.stop();
    queue.stop();
    await spool.close();
  });
  const id = await queueMessage(spool, envelope({ mailFrom: 'alice@example.org', recipients: [{ address: 'x@example.net', mailbox: 'x@example.net', transport: 'remote' }] }), 'Subject: slow\r\n\r\nx\r\n');
  for (let i = 0; i < 300 && calls < 4; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(calls >= 4);
  assert.equal(cap.events('delay-warning-queued').length, 1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /Subject: Delayed Mail \(still being retried\)\r\n/);
  assert.match(warnings[0]!, /Final-Recipient: rfc822; x@example\.net\r\nAction: delayed\r\nStatus: 4\.4\.1\r\n/);
  assert.match(warnings[0]!, /Will-Retry-Until: /);
  const m = (await spool.get(id))!;
  assert.equal(m.states[0]!.status, 'deferred');
  assert.equal(m.states[0]!.warned, true);
});
