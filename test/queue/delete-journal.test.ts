// Deletes through the deletion journal (deleted.log): a journaled message is hidden from every
// reader and never delivered, also after kill -9 between the journal append and the unlinks; a
// restart finishes the removal and empties the journal; and the server's in-memory catalog picks
// exactly the messages the on-disk filter picks, on a mixed queue that changes while it runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Spool, SpoolNotFoundError, type NewEnvelope, type SpoolArea } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { QueueAdmin } from '../../src/queue/admin.ts';
import { compileFilter, type QueueFilter } from '../../src/queue/filter.ts';
import { inspectMessage, inspectSpool } from '../../src/queue/inspect.ts';
import { journalPath, parseJournal, readJournalSync } from '../../src/queue/journal.ts';
import { Worker } from '../../src/delivery/worker.ts';
import type { Transport } from '../../src/delivery/transport.ts';
import { newQueueId } from '../../src/core/ids.ts';
import { captureLog, envelope, queueMessage, readAll, runUntilLines, tempDir, waitFor } from './helpers.ts';

const child = fileURLToPath(new URL('./delete-journal-child.ts', import.meta.url));
const SPAMMER = 'bulk@spam.example';
const remote = (address: string, mailbox?: string) => ({ address, ...(mailbox ? { mailbox } : {}), transport: 'remote' as const });

/** Every message file in queue/, hold/ and quarantine/, whatever the journal says. */
async function filesOnDisk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const area of ['queue', 'hold', 'quarantine']) for (const b of await readdir(join(dir, area))) out.push(...(await readdir(join(dir, area, b))));
  return out.sort();
}

async function listed(spool: Spool, area: SpoolArea = 'queue'): Promise<string[]> {
  const out: string[] = [];
  for await (const m of spool.list(area)) out.push(m.envelope.id);
  return out.sort();
}

/** A transport that delivers everything and records which messages it was given. */
function recording(): Transport & { ids: string[] } {
  const ids: string[] = [];
  return {
    ids,
    async deliver(msg, indexes) {
      ids.push(msg.envelope.id);
      await readAll(msg.body());
      return indexes.map((index) => ({ index, outcome: 'ok' as const, reply: '250 ok' }));
    },
  };
}

/** A spool with `spam` messages from SPAMMER and `good` from others, all due now; closed again. */
async function fill(dir: string, spam: number, good: number): Promise<{ spam: string[]; good: string[] }> {
  const spool = await Spool.open(dir, { log: captureLog().log, fsync: false });
  const out = { spam: [] as string[], good: [] as string[] };
  try {
    for (let i = 0; i < spam + good; i++) {
      const isSpam = i < spam;
      const env = envelope({ mailFrom: isSpam ? SPAMMER : `user${i}@example.org`, recipients: [remote(`r${i}@victim.example`)] });
      (isSpam ? out.spam : out.good).push(await queueMessage(spool, env, `Subject: ${i}\r\n\r\nx\r\n`));
    }
  } finally {
    await spool.close();
  }
  return out;
}

/** Runs the child until it printed its result, then kills it with SIGKILL. */
async function deleteAndKill(dir: string, mode: 'paused' | 'running'): Promise<number> {
  const [first] = await runUntilLines(child, [dir, mode, SPAMMER], 1);
  const m = /^deleted (\d+)$/.exec(first ?? '');
  assert.ok(m, `unexpected child output ${JSON.stringify(first)}`);
  return Number(m[1]);
}

test('kill -9 after the journal append: deleted messages stay hidden, are never delivered, and a restart removes them', async (t) => {
  for (const mode of ['paused', 'running'] as const) {
    const dir = await tempDir(t);
    // More than a delete removes before it returns: the removal runs in the background.
    const { spam, good } = await fill(dir, 300, 5);
    assert.equal(await deleteAndKill(dir, mode), 300);

    // The journal names every deleted message (unless a running removal finished and emptied it).
    const journaled = [...readJournalSync(dir)].sort();
    const left = await filesOnDisk(dir);
    if (mode === 'paused') {
      assert.deepEqual(journaled, [...spam].sort());
      assert.deepEqual(left, [...spam, ...good].sort(), 'no file was removed before the kill');
    } else {
      assert.ok(left.every((id) => good.includes(id) || journaled.includes(id)), 'every spam file left is journaled');
    }
    // Operator tools reading the spool without the lock skip them already.
    assert.deepEqual([...inspectSpool(dir)].map((e) => (e.ok ? e.message.envelope.id : e.id)).sort(), [...good].sort());
    assert.equal(inspectMessage(dir, spam[0]!), undefined);
    assert.equal(inspectMessage(dir, good[0]!)?.ok, true);

    // The restart: nothing deleted is scheduled or delivered; the removal finishes.
    const cap = captureLog();
    const spool = await Spool.open(dir, { log: cap.log });
    const queue = new Queue(spool, { log: cap.log });
    const transport = recording();
    const worker = new Worker({ spool, queue, transports: { remote: transport }, log: cap.log });
    try {
      assert.deepEqual(await queue.start(), { scheduled: 5, removed: 0 });
      worker.start();
      await waitFor('the good messages delivered', async () => (await listed(spool)).length === 0);
      await spool.whenRemoved();
      assert.deepEqual([...transport.ids].sort(), [...good].sort(), 'only the messages not deleted were delivered');
      assert.deepEqual(await filesOnDisk(dir), []);
      assert.equal((await stat(journalPath(dir))).size, 0, 'the journal is emptied once every file is gone');
      if (mode === 'paused') assert.deepEqual(cap.events('spool-journal-resumed').map((l) => [l.journaled, l.files]), [[300, 300]]);
    } finally {
      await worker.stop();
      queue.stop();
      await spool.close();
    }
  }
});

test('a journaled message is gone for every reader and for delivery, even while its file is still there', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  // Removal paused: the files stay, as after a crash right after the journal append.
  let spool = await Spool.open(dir, { log: cap.log, fsync: false, removeConcurrency: 0 });
  const queue = new Queue(spool, { log: cap.log, minBackoffMs: 3_600_000, maxBackoffMs: 3_600_000 });
  await queue.start();
  const spam: string[] = [];
  for (let i = 0; i < 4; i++) spam.push(await queueMessage(spool, envelope({ mailFrom: SPAMMER, recipients: [remote(`v${i}@victim.example`)] }), 'Subject: buy\r\n\r\nx\r\n'));
  const good = await queueMessage(spool, envelope({ mailFrom: 'alice@example.org', recipients: [remote('bob@example.net')] }), 'Subject: hi\r\n\r\nx\r\n');
  const admin = new QueueAdmin(spool, queue, cap.log);
  await admin.run('hold', { ids: [spam[3]!] });
  assert.equal(queue.scheduled, 4);

  // Four messages, one of them on hold: the delete covers both folders; a small delete removes
  // its files before it returns, but removal is paused here.
  assert.deepEqual(await admin.run('delete', { filter: { sender: SPAMMER.toUpperCase() } }), { matched: 4, changed: 4, missing: 0 });
  assert.deepEqual(parseJournal(await readFile(journalPath(dir), 'latin1')), new Set(spam));
  assert.deepEqual(await filesOnDisk(dir), [...spam, good].sort(), 'the files are still there');
  assert.equal(queue.scheduled, 1, 'dropped from the schedule at once');
  assert.equal(queue.catalogued, 1);
  assert.deepEqual((await queue.select({}, ['queue', 'hold'])).map((s) => s.id), [good]);
  assert.deepEqual(await listed(spool), [good]);
  assert.deepEqual(await listed(spool, 'hold'), []);
  assert.equal(await spool.get(spam[0]!), undefined);
  assert.equal(await spool.get(spam[3]!, 'hold'), undefined);
  assert.equal(spool.isDeleted(spam[0]!), true);
  await assert.rejects(spool.markRecipient(spam[0]!, 0, { status: 'deferred', attempts: 1 }), SpoolNotFoundError);
  await assert.rejects(readAll(spool.openBody(spam[0]!)), /not in the spool \(deleted\)/);
  assert.equal(await spool.move(spam[3]!, 'hold', 'queue'), false, 'a deleted message cannot be released');
  assert.equal(await spool.discard(spam[1]!), false);
  assert.deepEqual(await admin.run('delete', { ids: [spam[0]!] }), { matched: 0, changed: 0, missing: 1 }, 'deleted already');
  assert.equal(inspectMessage(dir, spam[1]!), undefined);

  // Whatever schedules it again, the worker is never handed a deleted message.
  queue.enqueue(spam[0]!);
  queue.flushAll();
  const transport = recording();
  const worker = new Worker({ spool, queue, transports: { remote: transport }, log: cap.log });
  worker.start();
  await waitFor('the good message delivered', () => transport.ids.length === 1);
  await worker.stop();
  queue.stop();
  assert.deepEqual(transport.ids, [good]);
  await spool.close();

  // The "restart": the journal is read first, and the files go.
  spool = await Spool.open(dir, { log: cap.log, fsync: false });
  t.after(() => spool.close());
  assert.deepEqual(await listed(spool), []);
  await spool.whenRemoved();
  assert.deepEqual(await filesOnDisk(dir), []);
  assert.equal((await stat(journalPath(dir))).size, 0);
  assert.deepEqual(cap.events('spool-journal-emptied').length, 1);
});

test('large deletes remove files in the background; without a server the CLI removes them before returning', async (t) => {
  const dir = await tempDir(t);
  const { good } = await fill(dir, 300, 3);
  const cap = captureLog();
  let spool = await Spool.open(dir, { log: cap.log, fsync: false });
  const queue = new Queue(spool, { log: cap.log });
  await queue.start();
  const admin = new QueueAdmin(spool, queue, cap.log);
  assert.equal(await admin.count('delete', { filter: { sender: SPAMMER } }), 300, 'the count a confirmation shows, from the catalog');
  const r = await admin.run('delete', { filter: { sender: SPAMMER } });
  assert.deepEqual([r.matched, r.changed, r.missing], [300, 300, 0]);
  assert.ok(r.removing !== undefined && r.removing > 0 && r.removing <= 300, `removing ${r.removing}`);
  assert.deepEqual(await listed(spool), [...good].sort());
  // One summary line for the command (docs/decisions/0025-queue-control.md), none per message.
  assert.deepEqual(
    cap.events('queue-admin').map((l) => [l.op, l.changed, l.selector]),
    [['delete', 300, { filter: { sender: SPAMMER } }]],
  );
  await spool.whenRemoved();
  assert.deepEqual(await filesOnDisk(dir), [...good].sort());
  assert.equal((await stat(journalPath(dir))).size, 0);
  queue.stop();
  await spool.close();

  // No server: the same journal, then the files at once; nothing is left for the next start.
  spool = await Spool.open(dir, { log: cap.log, fsync: false });
  t.after(() => spool.close());
  assert.deepEqual(await new QueueAdmin(spool, undefined, cap.log).run('delete', { filter: { sender: '@example.org' } }), { matched: 3, changed: 3, missing: 0 });
  assert.deepEqual(await filesOnDisk(dir), []);
  assert.equal((await stat(journalPath(dir))).size, 0);
});

test('a torn journal tail is skipped and the next batch still reads', async (t) => {
  const dir = await tempDir(t);
  const a = newQueueId();
  const b = newQueueId();
  // A whole id, a torn one, and zeros a crash may leave on some file systems.
  await writeFile(join(dir, 'deleted.log'), `\n${a}\n${b.slice(0, 9)}`);
  await appendFile(join(dir, 'deleted.log'), Buffer.alloc(12));
  assert.deepEqual(readJournalSync(dir), new Set([a]));
  const spool = await Spool.open(dir, { log: captureLog().log, fsync: false, removeConcurrency: 0 });
  t.after(() => spool.close());
  await spool.deleteMany([{ id: b, area: 'queue' }]);
  assert.deepEqual(readJournalSync(dir), new Set([a, b]));
  assert.deepEqual(parseJournal(`${a}\n${a.toUpperCase()}\n../${a.slice(3)}\n${a}x\n`), new Set([a]));
});

test('the catalog selects exactly what the on-disk filter selects, on a mixed queue that changes while the server runs', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const now = Date.now();
  const hour = 3_600_000;
  const later = now + hour;
  const msgs: Array<{ env: NewEnvelope; defer?: number[]; deliver?: number[] }> = [
    { env: envelope({ mailFrom: 'Spam@Bad.example', receivedAt: now - 3 * 24 * hour, recipients: [remote('v1@victim.example')] }), defer: [0] },
    { env: envelope({ mailFrom: 'spam@bad.example', receivedAt: now - 3 * hour, recipients: [remote('v2@victim.example'), remote('carol@Example.NET')] }), deliver: [0], defer: [1] },
    { env: envelope({ mailFrom: 'spam@bad.example', receivedAt: now - 30 * 60_000, recipients: [remote('v3@VICTIM.example')] }) },
    { env: envelope({ mailFrom: 'other@bad.example', recipients: [{ address: 'list@example.org', mailbox: 'box@local.example', transport: 'local' }] }) },
    { env: envelope({ mailFrom: 'bob@sub.bad.example', recipients: [remote('carol@example.net')] }), defer: [0] },
    { env: envelope({ mailFrom: '', receivedAt: now - 5 * hour, recipients: [remote('x@victim.example'), remote('y@other.example'), remote('z@example.net')] }), defer: [0], deliver: [2] },
    { env: envelope({ mailFrom: 'alice@example.org', recipients: [{ address: 'Alias@Example.org', mailbox: 'carol@example.net', transport: 'local' }] }) },
  ];
  let spool = await Spool.open(dir, { log: cap.log, fsync: false });
  const ids: string[] = [];
  const put = async (i: number): Promise<string> => {
    const m = msgs[i]!;
    const id = await queueMessage(spool, m.env, `Subject: ${i}\r\n\r\nx\r\n`);
    const updates = [...(m.defer ?? []).map((index) => ({ index, state: { status: 'deferred' as const, attempts: 1, nextAttemptAt: later } })), ...(m.deliver ?? []).map((index) => ({ index, state: { status: 'delivered' as const, attempts: 1 } }))];
    await spool.markRecipients(id, updates);
    ids[i] = id;
    return id;
  };
  // Half the queue is there before the server starts (read by the start-up scan), one on hold.
  for (const i of [0, 1, 2, 3]) await put(i);
  assert.equal(await spool.move(ids[2]!, 'queue', 'hold'), true);
  await spool.close();
  spool = await Spool.open(dir, { log: cap.log, fsync: false });
  t.after(() => spool.close());
  const queue = new Queue(spool, { log: cap.log, minBackoffMs: hour, maxBackoffMs: hour });
  t.after(() => queue.stop());
  await queue.start();
  // The other half arrives while it runs; states change, messages are held, released, moved to
  // quarantine and back, deleted.
  for (const i of [4, 5, 6]) await put(i);
  const admin = new QueueAdmin(spool, queue, cap.log);
  await spool.markRecipient(ids[0]!, 0, { status: 'bounced', attempts: 2 });
  await spool.markRecipient(ids[0]!, 0, { status: 'deferred', attempts: 3 });
  assert.deepEqual(await admin.run('hold', { filter: { sender: '@sub.bad.example' } }), { matched: 1, changed: 1, missing: 0 });
  assert.deepEqual(await admin.run('release', { ids: [ids[2]!] }), { matched: 1, changed: 1, missing: 0 });
  assert.deepEqual(await admin.run('requeue', { ids: [ids[1]!] }), { matched: 1, changed: 1, missing: 0 });
  assert.equal(await spool.move(ids[3]!, 'queue', 'quarantine'), true);
  assert.equal(await spool.move(ids[6]!, 'queue', 'quarantine'), true);
  assert.equal(await spool.move(ids[6]!, 'quarantine', 'queue'), true);
  await waitFor('the released message catalogued', () => queue.lookup(ids[6]!) !== undefined);

  const filters: QueueFilter[] = [
    {},
    { sender: 'spam@bad.example' },
    { sender: '<SPAM@BAD.EXAMPLE>' },
    { sender: '@bad.example' },
    { sender: '@BAD.example', state: 'deferred' },
    { sender: '<>' },
    { sender: '@example.org' },
    { recipient: '@victim.example' },
    { recipient: 'carol@example.net' },
    { recipient: 'box@local.example' },
    { recipient: 'alias@example.org' },
    { domain: 'example.net' },
    { domain: '@EXAMPLE.NET.' },
    { domain: 'local.example' },
    { olderThanMs: 2 * hour },
    { olderThanMs: 2 * 24 * hour },
    { state: 'held' },
    { state: 'deferred' },
    { state: 'pending' },
    { sender: 'spam@bad.example', domain: 'victim.example', olderThanMs: 60 * 60_000 },
  ];
  const compare = async (label: string): Promise<void> => {
    for (const areas of [['queue'], ['hold'], ['queue', 'hold']] as Array<Array<'queue' | 'hold'>>) {
      for (const f of filters) {
        const match = compileFilter(f, now);
        const onDisk: string[] = [];
        for (const area of areas) for await (const m of spool.list(area)) if (match(m.envelope, m.states, area === 'hold')) onDisk.push(`${area}:${m.envelope.id}`);
        const fromCatalog = (await queue.select(f, areas, now)).map((s) => `${s.area}:${s.id}`);
        assert.deepEqual(fromCatalog.sort(), onDisk.sort(), `${label}: ${JSON.stringify(f)} in ${areas.join('+')}`);
      }
    }
  };
  await compare('mixed queue');
  // Exact answers too, so the comparison cannot pass by both sides being wrong the same way.
  const pick = async (f: QueueFilter, areas: Array<'queue' | 'hold'> = ['queue', 'hold']) => (await queue.select(f, areas, now)).map((s) => s.id).sort();
  assert.deepEqual(await pick({ sender: 'spam@bad.example' }), [ids[0]!, ids[1]!, ids[2]!].sort());
  // #0 bounced (final, the later deferral ignored), #1 requeued (pending again), #5 deferred.
  assert.deepEqual(await pick({ state: 'deferred' }), [ids[5]!]);
  assert.deepEqual(await pick({ state: 'pending' }), [ids[0]!, ids[1]!, ids[2]!, ids[6]!].sort());
  assert.deepEqual(await pick({ state: 'held' }), [ids[4]!]);
  assert.deepEqual(await pick({ domain: 'example.net' }), [ids[1]!, ids[4]!, ids[5]!, ids[6]!].sort());
  assert.deepEqual(await pick({ domain: 'example.net' }, ['queue']), [ids[1]!, ids[5]!, ids[6]!].sort());
  assert.equal(queue.lookup(ids[3]!), undefined, 'in quarantine: not catalogued');

  assert.deepEqual(await admin.run('delete', { filter: { sender: '@bad.example' } }), { matched: 3, changed: 3, missing: 0 });
  await compare('after the delete');
  assert.deepEqual(await pick({}), [ids[4]!, ids[5]!, ids[6]!].sort());
});
