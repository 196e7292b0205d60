// Queue + worker + Maildir over a real spool: delivery and removal, retries with backoff, no
// second delivery after a restart, exactly-once after a crash mid-delivery, bounce at max age, and
// mail the outbound guard refuses moved to hold/ (never retried or bounced there) until released.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool, type NewEnvelope } from '../../src/queue/spool.ts';
import type { QueueOptions } from '../../src/queue/queue.ts';
import { MaildirTransport } from '../../src/delivery/maildir.ts';
import { remoteNotConfigured, type DeliverableMessage, type RecipientOutcome, type Transport } from '../../src/delivery/transport.ts';
import { captureLog, envelope, queueMessage, readAll, startDelivery, tempDir, waitFor, type CapturedLog, type DeliveryRig } from '../queue/helpers.ts';
import { pino } from 'pino';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { guardedTransport } from '../../src/delivery/guarded-transport.ts';
import { QueueAdmin } from '../../src/queue/admin.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';

/** One "process life": spool, queue and worker on `dir`; stop() is the shutdown (or the crash). */
async function start(t: TestContext, dir: string, cap: CapturedLog, transports: Record<string, Transport>, opts: Partial<QueueOptions> = {}): Promise<DeliveryRig> {
  return startDelivery(t, await Spool.open(join(dir, 'spool'), { log: cap.log }), cap, transports, opts);
}

async function spoolIds(spool: Spool): Promise<string[]> {
  const ids: string[] = [];
  for await (const m of spool.list()) ids.push(m.envelope.id);
  return ids;
}

/** A transport that answers from a script and records what it was asked. */
function scripted(answers: Array<RecipientOutcome['outcome']>, calls: Array<{ at: number; indexes: number[]; recovered: boolean }> = []): Transport & { calls: typeof calls } {
  return {
    calls,
    async deliver(msg: DeliverableMessage, indexes: readonly number[]) {
      await readAll(msg.body());
      calls.push({ at: Date.now(), indexes: [...indexes], recovered: msg.recovered });
      const outcome = answers[calls.length - 1] ?? 'ok';
      const reply = outcome === 'ok' ? '250 2.0.0 Ok' : outcome === 'temporary' ? '451 4.4.1 Try later' : '550 5.1.1 No such user';
      return indexes.map((index) => ({ index, outcome, reply }));
    },
  };
}

const two: NewEnvelope['recipients'] = [
  { address: 'bob@example.net', mailbox: 'bob@example.net', transport: 'local' },
  { address: 'carol@remote.example', transport: 'remote' },
];

test('queued messages are delivered to Maildir, logged, and removed from the spool', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const root = join(dir, 'mail');
  const rig = await start(t, dir, cap, { local: new MaildirTransport({ root, hostname: 'mx' }), remote: remoteNotConfigured });
  const env = envelope({ recipients: [two[0]!, { address: 'dave@example.net', mailbox: 'dave@example.net', transport: 'local' }] });
  const id = await queueMessage(rig.spool, env, 'Subject: hi\r\n\r\nHello\r\n');
  // The outcome lines follow the durable removal: wait for what is asserted, both.
  await waitFor('removal from the spool and both delivered lines', async () => (await rig.spool.get(id)) === undefined && cap.events('delivered').length === 2);
  for (const who of ['bob', 'dave']) {
    const box = join(root, 'example.net', who, 'Maildir', 'new');
    const files = await readdir(box);
    assert.equal(files.length, 1);
    assert.match(await readFile(join(box, files[0]!), 'utf8'), new RegExp(`^Return-Path: <alice@example\\.org>\\r\\nDelivered-To: ${who}@example\\.net\\r\\nReceived: .* id ${id}\\r\\nSubject: hi`));
  }
  const lines = cap.events('delivered').map(({ event, queueId, rcpt, transport, reply, attempts }) => ({ event, queueId, rcpt, transport, reply, attempts }));
  assert.deepEqual(lines, [
    { event: 'delivered', queueId: id, rcpt: 'bob@example.net', transport: 'local', reply: '250 2.0.0 Delivered to mailbox', attempts: 1 },
    { event: 'delivered', queueId: id, rcpt: 'dave@example.net', transport: 'local', reply: '250 2.0.0 Delivered to mailbox', attempts: 1 },
  ]);
  assert.deepEqual(await spoolIds(rig.spool), []);
});

test('each outcome is recorded in the spool; remote is deferred until configured', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const rig = await start(t, dir, cap, { local: new MaildirTransport({ root: join(dir, 'mail'), hostname: 'mx' }), remote: remoteNotConfigured }, { minBackoffMs: 60_000, maxBackoffMs: 120_000 });
  const id = await queueMessage(rig.spool, envelope({ recipients: two }), 'Subject: s\r\n\r\nx\r\n');
  await waitFor('the deferral', () => cap.events('deferred').length === 1);
  await waitFor('the queue to take it back', () => rig.queue.inFlight === 0);
  const m = await rig.spool.get(id);
  const [bob, carol] = m!.states;
  assert.deepEqual({ ...bob, updatedAt: 0 }, { status: 'delivered', attempts: 1, lastReply: '250 2.0.0 Delivered to mailbox', updatedAt: 0 });
  assert.equal(carol?.status, 'deferred');
  assert.equal(carol?.attempts, 1);
  assert.equal(carol?.lastReply, '451 4.3.5 remote delivery is not configured');
  assert.equal((carol?.nextAttemptAt ?? 0) - (carol?.updatedAt ?? 0), 60_000);
  assert.equal(rig.queue.dueAt(id), carol?.nextAttemptAt);
  const d = cap.events('deferred')[0]!;
  assert.deepEqual([d.queueId, d.rcpt, d.transport, d.reply, d.attempts], [id, 'carol@remote.example', 'remote', '451 4.3.5 remote delivery is not configured', 1]);
});

test('a temporary failure is retried with exponential backoff until it succeeds', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const remote = scripted(['temporary', 'temporary', 'ok']);
  const rig = await start(t, dir, cap, { remote }, { minBackoffMs: 40, maxBackoffMs: 1000 });
  const id = await queueMessage(rig.spool, envelope({ recipients: [two[1]!] }), 'Subject: s\r\n\r\nx\r\n');
  await waitFor('removal from the spool and the delivered line', async () => (await rig.spool.get(id)) === undefined && cap.events('delivered').length === 1);
  assert.equal(remote.calls.length, 3);
  const [a, b, c] = remote.calls as [(typeof remote.calls)[0], (typeof remote.calls)[0], (typeof remote.calls)[0]];
  assert.ok(b.at - a.at >= 40, `second attempt ${b.at - a.at} ms after the first`);
  assert.ok(c.at - b.at >= 80, `third attempt ${c.at - b.at} ms after the second`);
  assert.deepEqual(cap.events('deferred').map((l) => l.attempts), [1, 2]);
  assert.deepEqual(cap.events('delivered').map((l) => [l.rcpt, l.attempts, l.reply]), [['carol@remote.example', 3, '250 2.0.0 Ok']]);
});

test('a recipient delivered before a restart is not delivered again after it', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const root = join(dir, 'mail');
  const first = await start(t, dir, cap, { local: new MaildirTransport({ root, hostname: 'mx' }), remote: remoteNotConfigured }, { minBackoffMs: 50 });
  const id = await queueMessage(first.spool, envelope({ recipients: two }), 'Subject: s\r\n\r\nx\r\n');
  await waitFor('first pass', () => cap.events('deferred').length === 1 && first.queue.inFlight === 0);
  await first.stop();

  const local = scripted([]);
  const remote = scripted(['ok']);
  const second = await start(t, dir, cap, { local, remote });
  await waitFor('removal from the spool', async () => (await second.spool.get(id)) === undefined);
  assert.deepEqual(local.calls, []);
  assert.deepEqual(remote.calls.map((c) => [c.indexes, c.recovered]), [[[1], true]]);
  assert.equal((await readdir(join(root, 'example.net', 'bob', 'Maildir', 'new'))).length, 1);
});

test('exactly once: a crash after the Maildir rename, before the state record, delivers no second copy', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const root = join(dir, 'mail');
  // The life that crashed: it delivered but never recorded the outcome.
  const spool = await Spool.open(join(dir, 'spool'), { log: cap.log });
  const id = await queueMessage(spool, envelope(), 'Subject: s\r\n\r\nx\r\n');
  const m = (await spool.get(id))!;
  await new MaildirTransport({ root, hostname: 'mx' }).deliver({ envelope: m.envelope, body: () => spool.openBody(id), recovered: false }, [0]);
  await spool.close();

  const rig = await start(t, dir, cap, { local: new MaildirTransport({ root, hostname: 'mx' }) });
  await waitFor('removal from the spool and the delivered line', async () => (await rig.spool.get(id)) === undefined && cap.events('delivered').length === 1);
  assert.equal((await readdir(join(root, 'example.net', 'bob', 'Maildir', 'new'))).length, 1);
  assert.deepEqual(cap.events('delivered').map((l) => [l.queueId, l.reply]), [[id, '250 2.0.0 Delivered to mailbox before a restart']]);
});

test('after the maximum age a temporary failure bounces', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const rig = await start(t, dir, cap, { remote: remoteNotConfigured }, { maxAgeMs: 60_000 });
  const id = await queueMessage(rig.spool, envelope({ recipients: [two[1]!], receivedAt: Date.now() - 61_000 }), 'Subject: s\r\n\r\nx\r\n');
  await waitFor('removal from the spool and the bounced line', async () => (await rig.spool.get(id)) === undefined && cap.events('bounced').length === 1);
  const b = cap.events('bounced');
  assert.deepEqual(
    b.map(({ queueId, rcpt, transport, reply, attempts, reason }) => ({ queueId, rcpt, transport, reply, attempts, reason })),
    [{ queueId: id, rcpt: 'carol@remote.example', transport: 'remote', reply: '451 4.3.5 remote delivery is not configured', attempts: 1, reason: 'expired' }],
  );
  assert.deepEqual(cap.events('deferred'), []);
});

test('a permanent failure bounces at once; a message without a transport is deferred', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const rig = await start(t, dir, cap, { remote: scripted(['permanent']) }, { minBackoffMs: 60_000 });
  const bounced = await queueMessage(rig.spool, envelope({ recipients: [two[1]!] }), 'Subject: s\r\n\r\nx\r\n');
  const noRoute = await queueMessage(rig.spool, envelope({ recipients: [two[0]!] }), 'Subject: s\r\n\r\nx\r\n');
  await waitFor('both passes', () => cap.events('bounced').length === 1 && cap.events('deferred').length === 1);
  assert.deepEqual(cap.events('bounced').map((l) => [l.queueId, l.reply, l.attempts, l.reason]), [[bounced, '550 5.1.1 No such user', 1, undefined]]);
  assert.deepEqual(cap.events('deferred').map((l) => [l.queueId, l.transport, l.reply]), [[noRoute, 'local', '451 4.3.5 No transport configured for "local"']]);
});

test('a message whose bytes went bad on disk is not delivered and leaves the queue', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const root = join(dir, 'mail');
  const spool = await Spool.open(join(dir, 'spool'), { log: cap.log });
  const id = await queueMessage(spool, envelope(), 'Subject: s\r\n\r\nimportant\r\n');
  const path = spool.messagePath(id);
  await spool.close();
  const raw = await readFile(path);
  raw[raw.indexOf('important')] = 0x49;
  await writeFile(path, raw);

  const rig = await start(t, dir, cap, { local: new MaildirTransport({ root, hostname: 'mx' }) });
  await waitFor('the corrupt report', () => cap.events('delivery-corrupt').length === 1 && rig.queue.inFlight === 0);
  assert.equal(rig.queue.scheduled, 0);
  assert.deepEqual(await readdir(join(dir, 'spool', 'corrupt')), [id]);
  assert.deepEqual(await readdir(join(root, 'example.net', 'bob', 'Maildir', 'new')), []);
  assert.deepEqual(cap.events('delivered'), []);
});

/** The outbound guard on a real SQLite store, around `inner` as the remote transport. */
function guarded(t: TestContext, dir: string, inner: Transport): { guard: OutboundGuard; remote: Transport } {
  const store = new SqliteStore({ path: join(dir, 'state.db') }, pino({ level: 'silent' }));
  t.after(() => store.close());
  const log = pino({ level: 'silent' });
  const guard = new OutboundGuard({ store, clock: Date.now, log, hostname: 'mx.example.net', settings: GuardSchema.parse({ alerts: { postmaster: false } }) });
  return { guard, remote: guardedTransport(inner, guard, log) };
}

test('held by the guard: the local recipient is delivered, the message is held by a mark in held.log and is never retried; released, only the remote recipient goes', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const root = join(dir, 'mail');
  const inner = scripted([]);
  const { guard, remote } = guarded(t, dir, inner);
  assert.equal(await guard.tripManually('global', 'test'), true);
  const transports = { local: new MaildirTransport({ root, hostname: 'mx' }), remote };
  const rig = await start(t, dir, cap, transports, { minBackoffMs: 20, maxBackoffMs: 40 });
  const id = await queueMessage(rig.spool, envelope({ recipients: two }), 'Subject: s\r\n\r\nx\r\n');

  await waitFor('the hold', () => cap.events('held-by-guard').length === 1 && rig.queue.inFlight === 0);
  const h = cap.events('held-by-guard')[0]!;
  assert.deepEqual([h.queueId, h.breaker, h.reason, h.from, h.recipients], [id, 'global', 'breaker global is open (manual)', 'alice@example.org', 1]);
  // Held as the operator's `queue hold` holds: a mark, the file left in queue/.
  assert.equal(rig.spool.isMarkedHeld(id), true);
  assert.match(await readFile(join(dir, 'spool', 'held.log'), 'latin1'), new RegExp(`^\\+${id}$`, 'm'));
  assert.deepEqual((await readdir(join(dir, 'spool', 'hold'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()), [], 'no file moved to hold/');
  const held = await rig.spool.get(id, 'queue');
  assert.deepEqual(
    held?.states.map((s) => [s.status, s.attempts, s.lastReply]),
    [
      ['delivered', 1, '250 2.0.0 Delivered to mailbox'],
      ['pending', 0, '451 4.3.2 Held by the outbound breaker (global)'],
    ],
  );
  assert.equal((await readdir(join(root, 'example.net', 'bob', 'Maildir', 'new'))).length, 1);
  assert.deepEqual(rig.queue.lookup(id), { id, area: 'hold', from: 'alice@example.org' });
  assert.equal(rig.queue.dueAt(id), undefined);
  // Many retry intervals later: not tried again, not deferred, still on hold.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual([cap.events('held-by-guard').length, cap.events('deferred').length, cap.events('delivered').length], [1, 0, 1]);
  assert.equal(inner.calls.length, 0);
  assert.equal(rig.queue.scheduled, 0);

  // The breaker reopens; held mail stays held until the operator releases it.
  await guard.release('global');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(inner.calls.length, 0);
  const admin = new QueueAdmin(rig.spool, rig.queue, cap.log);
  assert.deepEqual(await admin.run('release', { ids: [id] }), { matched: 1, changed: 1, missing: 0 });
  await waitFor('removal from the spool and the second delivered line', async () => (await rig.spool.get(id)) === undefined && (await rig.spool.get(id, 'hold')) === undefined && cap.events('delivered').length === 2);
  assert.deepEqual(inner.calls.map((c) => c.indexes), [[1]]);
  assert.deepEqual(cap.events('delivered').map((l) => [l.rcpt, l.transport]), [
    ['bob@example.net', 'local'],
    ['carol@remote.example', 'remote'],
  ]);
  assert.equal((await readdir(join(root, 'example.net', 'bob', 'Maildir', 'new'))).length, 1, 'the local recipient got one copy');
});

test('held by the guard: an old message is not bounced while held, stays held across a restart, and is deleted by the queue tools', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const inner = scripted([]);
  const { guard, remote } = guarded(t, dir, inner);
  assert.equal(await guard.tripManually('login:alice@example.org', 'test'), true);
  const first = await start(t, dir, cap, { remote }, { maxAgeMs: 60_000, minBackoffMs: 20 });
  const old = envelope({ recipients: [two[1]!], receivedAt: Date.now() - 61_000, client: { address: '192.0.2.7', listener: 'submission', sessionId: 's', login: 'alice@example.org' } });
  const id = await queueMessage(first.spool, old, 'Subject: s\r\n\r\nx\r\n');
  await waitFor('the hold', () => cap.events('held-by-guard').length === 1 && first.queue.inFlight === 0);
  assert.deepEqual([cap.events('held-by-guard')[0]!.breaker, cap.events('held-by-guard')[0]!.login], ['login:alice@example.org', 'alice@example.org']);
  assert.deepEqual([cap.events('bounced').length, cap.events('deferred').length], [0, 0]);
  await first.stop();

  const second = await start(t, dir, cap, { remote }, { maxAgeMs: 60_000, minBackoffMs: 20 });
  assert.equal(second.queue.scheduled, 0);
  assert.deepEqual(second.queue.lookup(id), { id, area: 'hold', from: 'alice@example.org' });
  const admin = new QueueAdmin(second.spool, second.queue, cap.log);
  assert.deepEqual(await admin.run('delete', { filter: { state: 'held', sender: 'alice@example.org' } }), { matched: 1, changed: 1, missing: 0 });
  assert.equal(await second.spool.get(id), undefined);
  assert.equal(inner.calls.length, 0);
  assert.deepEqual(cap.events('bounced'), []);
});
