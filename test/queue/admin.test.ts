// The operator's queue commands over a real spool: hold, release, delete, flush and requeue by id
// and by filter, on a stopped server's spool and through the control socket of a running one —
// where a delivery under way finishes (and records its outcome) before its file moves or goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { QueueAdmin } from '../../src/queue/admin.ts';
import { controlRequest, controlSocketPath, startControlServer } from '../../src/queue/control.ts';
import { Worker } from '../../src/delivery/worker.ts';
import type { Transport } from '../../src/delivery/transport.ts';
import { captureLog, envelope, queueMessage, tempDir } from './helpers.ts';

const rcpt = (address: string) => ({ address, mailbox: address, transport: 'remote' as const });

async function ids(spool: Spool, area: 'queue' | 'hold' = 'queue'): Promise<string[]> {
  const out: string[] = [];
  for await (const m of spool.list(area)) out.push(m.envelope.id);
  return out.sort();
}

test('admin on a stopped server\'s spool: hold, release, delete by filter and id, requeue, flush', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log, fsync: false });
  t.after(() => spool.close());
  const spam: string[] = [];
  for (let i = 0; i < 3; i++) spam.push(await queueMessage(spool, envelope({ mailFrom: 'spam@bad.example', recipients: [rcpt(`v${i}@example.net`)] }), 'Subject: buy\r\n\r\nx\r\n'));
  const good = await queueMessage(spool, envelope({ mailFrom: 'alice@example.org', recipients: [rcpt('bob@example.net'), rcpt('carol@example.com')] }), 'Subject: hi\r\n\r\nx\r\n');
  const later = Date.now() + 3_600_000;
  await spool.markRecipients(good, [
    { index: 0, state: { status: 'deferred', attempts: 3, nextAttemptAt: later, lastReply: '451 4.4.1 no answer' } },
    { index: 1, state: { status: 'delivered', attempts: 1 } },
  ]);
  const admin = new QueueAdmin(spool, undefined, cap.log);

  assert.deepEqual(await admin.run('hold', { filter: { sender: '@bad.example' } }), { matched: 3, changed: 3, missing: 0 });
  assert.deepEqual(await ids(spool, 'hold'), [...spam].sort());
  assert.deepEqual(await ids(spool), [good]);
  assert.deepEqual(await admin.run('release', { ids: [spam[0]!, '1k8fn2k50f5t0l8zz', 'not-an-id'] }), { matched: 1, changed: 1, missing: 2 });
  assert.deepEqual(await ids(spool), [good, spam[0]!].sort());
  assert.deepEqual(await admin.run('delete', { filter: { sender: 'SPAM@bad.example' } }), { matched: 3, changed: 3, missing: 0 });
  assert.deepEqual(await ids(spool, 'hold'), []);
  assert.deepEqual(await ids(spool), [good]);

  assert.deepEqual(await admin.run('flush', { all: true }), { matched: 1, changed: 1, missing: 0 });
  let m = (await spool.get(good))!;
  assert.ok(m.states[0]!.nextAttemptAt! <= Date.now(), 'offline flush makes the retry time now, durably');
  assert.equal(m.states[1]!.status, 'delivered');
  assert.deepEqual(await admin.run('requeue', { ids: [good] }), { matched: 1, changed: 1, missing: 0 });
  m = (await spool.get(good))!;
  assert.deepEqual(m.states[0], { status: 'pending', attempts: 0, lastReply: '451 4.4.1 no answer', updatedAt: m.states[0]!.updatedAt });
  assert.equal(m.states[1]!.status, 'delivered', 'a final state never changes');
  await assert.rejects(admin.run('delete', {}), /no messages selected/);
});

test('control socket: commands reach the running server; a delivery under way ends before its file goes', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(join(dir, 'spool'), { log: cap.log, fsync: false });
  const queue = new Queue(spool, { log: cap.log, minBackoffMs: 3_600_000, maxBackoffMs: 3_600_000 });
  let unblock!: () => void;
  const blocked = new Promise<void>((r) => (unblock = r));
  const calls: Array<{ id: string; indexes: number[] }> = [];
  const transport: Transport = {
    async deliver(msg, indexes) {
      calls.push({ id: msg.envelope.id, indexes: [...indexes] });
      if (msg.envelope.mailFrom === 'slow@example.org') await blocked;
      const first = calls.filter((c) => c.id === msg.envelope.id).length === 1;
      const outcome = msg.envelope.mailFrom === 'slow@example.org' || (msg.envelope.mailFrom === 'defer@example.org' && first) ? 'temporary' : 'ok';
      return indexes.map((index) => ({ index, outcome, reply: outcome === 'ok' ? '250 ok' : '451 later' }));
    },
  };
  const worker = new Worker({ spool, queue, transports: { remote: transport }, log: cap.log });
  await queue.start();
  worker.start();
  const control = await startControlServer({ spoolDir: spool.dir, admin: new QueueAdmin(spool, queue, cap.log), log: cap.log });
  t.after(async () => {
    await control.close();
    await worker.stop();
    queue.stop();
    await spool.close();
  });
  assert.equal(control.path, controlSocketPath(spool.dir));

  // A delivery hangs (and will defer); deleting its message waits for the pass to record its
  // outcome, then removes the file.
  const slow = await queueMessage(spool, envelope({ mailFrom: 'slow@example.org', recipients: [rcpt('a@example.net'), rcpt('b@example.net')] }), 'Subject: s\r\n\r\nx\r\n');
  for (let i = 0; i < 100 && !queue.isInFlight(slow); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(queue.isInFlight(slow));
  let deleted = false;
  const del = controlRequest(spool.dir, { op: 'delete', ids: [slow] }).then((r) => {
    deleted = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(deleted, false, 'the delete waits for the delivery under way');
  unblock();
  assert.deepEqual(await del, { matched: 1, changed: 1, missing: 0 });
  assert.deepEqual(await readdir(join(spool.dir, 'queue', slow[7]!)), []);
  assert.equal(cap.events('delivery-error').length, 0, 'the pass recorded its outcome before the file went');
  assert.deepEqual(cap.events('deferred').map((l) => l.queueId), [slow, slow]);
  assert.equal(queue.dueAt(slow), undefined, 'not scheduled again');

  // A deferred message: flush makes the worker try it now, not in an hour.
  const deferred = await queueMessage(spool, envelope({ mailFrom: 'defer@example.org', recipients: [rcpt('c@example.net')] }), 'Subject: d\r\n\r\nx\r\n');
  for (let i = 0; i < 100 && cap.events('deferred').length === 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(queue.dueAt(deferred)! > Date.now() + 3_000_000, true);
  assert.deepEqual(await controlRequest(spool.dir, { op: 'flush', filter: { sender: 'defer@example.org' } }), { matched: 1, changed: 1, missing: 0 });
  for (let i = 0; i < 100 && (await spool.get(deferred)) !== undefined; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(await spool.get(deferred), undefined, 'delivered after the flush');

  // Hold keeps a message from being scheduled; release brings it back and it is delivered.
  const held = await queueMessage(spool, envelope({ mailFrom: 'defer@example.org', recipients: [rcpt('d@example.net')] }), 'Subject: h\r\n\r\nx\r\n');
  for (let i = 0; i < 100 && cap.events('deferred').length < 4; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(await controlRequest(spool.dir, { op: 'hold', filter: { state: 'deferred' } }), { matched: 1, changed: 1, missing: 0 });
  assert.equal(queue.dueAt(held), undefined);
  assert.deepEqual(await ids(spool, 'hold'), [held]);
  assert.deepEqual(await controlRequest(spool.dir, { op: 'requeue', all: true }), { matched: 0, changed: 0, missing: 0 }, 'requeue works on the queue, not on hold');
  assert.deepEqual(await controlRequest(spool.dir, { op: 'release', ids: [held] }), { matched: 1, changed: 1, missing: 0 });
  assert.deepEqual(await controlRequest(spool.dir, { op: 'requeue', ids: [held] }), { matched: 1, changed: 1, missing: 0 });
  for (let i = 0; i < 100 && (await spool.get(held)) !== undefined; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(await spool.get(held), undefined, 'delivered after release and requeue');

  await assert.rejects(controlRequest(spool.dir, { op: 'bogus' as 'hold', all: true }), /the server refused the command: unknown op "bogus"/);
});
