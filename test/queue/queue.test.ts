// The retry schedule (pure) and the in-memory queue over a real spool: due order, the
// concurrency limit, notification on commit and the start-up scan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { backoffMs, defaultRetryPolicy, messageDueAt, nextState } from '../../src/queue/schedule.ts';
import { captureLog, envelope, queueMessage, tempDir } from './helpers.ts';

test('backoff doubles from 5 minutes up to an hour; 5 days then bounce', () => {
  const p = defaultRetryPolicy;
  assert.deepEqual([1, 2, 3, 4, 5, 6, 50].map((n) => backoffMs(n, p) / 60_000), [5, 10, 20, 40, 60, 60, 60]);
  const pending = { status: 'pending', attempts: 0 } as const;
  assert.deepEqual(nextState(pending, 'temporary', '451 later', 0, 1000, p), { status: 'deferred', attempts: 1, nextAttemptAt: 1000 + 300_000, lastReply: '451 later', updatedAt: 1000 });
  assert.deepEqual(nextState({ status: 'deferred', attempts: 2 }, 'temporary', '451 x', 0, 1000, p), { status: 'deferred', attempts: 3, nextAttemptAt: 1000 + 1_200_000, lastReply: '451 x', updatedAt: 1000 });
  assert.deepEqual(nextState(pending, 'ok', '250 ok', 0, 7, p), { status: 'delivered', attempts: 1, lastReply: '250 ok', updatedAt: 7 });
  assert.deepEqual(nextState(pending, 'permanent', '550 no', 0, 7, p), { status: 'bounced', attempts: 1, lastReply: '550 no', updatedAt: 7 });
  const fiveDays = 5 * 24 * 3600_000;
  assert.equal(nextState({ status: 'deferred', attempts: 9 }, 'temporary', '451 x', 0, fiveDays - 1, p).status, 'deferred');
  assert.deepEqual(nextState({ status: 'deferred', attempts: 9 }, 'temporary', '451 x', 0, fiveDays, p), { status: 'bounced', attempts: 10, lastReply: '451 x', updatedAt: fiveDays });
  assert.equal(messageDueAt([{ status: 'delivered', attempts: 1 }, { status: 'deferred', attempts: 1, nextAttemptAt: 50 }, { status: 'deferred', attempts: 1, nextAttemptAt: 40 }], 10), 40);
  assert.equal(messageDueAt([{ status: 'deferred', attempts: 1, nextAttemptAt: 50 }, { status: 'pending', attempts: 0 }], 10), 10);
  assert.equal(messageDueAt([{ status: 'delivered', attempts: 1 }, { status: 'bounced', attempts: 1 }], 10), undefined);
});

test('take hands out due messages in time order and never more than `concurrency` at once', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log, fsync: false });
  t.after(() => spool.close());
  const q = new Queue(spool, { log: captureLog().log, concurrency: 2 });
  t.after(() => q.stop());
  const now = Date.now();
  q.enqueue('c', now - 1);
  q.enqueue('a', now - 3);
  q.enqueue('b', now - 2);
  q.enqueue('a', now + 10_000); // a later time does not postpone an earlier one
  q.enqueue('later', now + 60);
  assert.equal(q.scheduled, 4);
  assert.deepEqual(await q.take(), { id: 'a', recovered: false });
  assert.deepEqual(await q.take(), { id: 'b', recovered: false });
  let third: string | undefined;
  const pending = q.take().then((i) => (third = i?.id));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(third, undefined, 'a third delivery started above the concurrency limit');
  assert.equal(q.inFlight, 2);
  q.release('a');
  await pending;
  assert.equal(third, 'c');
  // Times relative to the test's start, so a slow machine cannot reorder them.
  q.release('b', { dueAt: now + 30 });
  // 'later' (due at +60 ms) and 'b' again (due at +30 ms) come when due, earliest first.
  assert.deepEqual(await q.take(), { id: 'b', recovered: false });
  q.release('c');
  assert.deepEqual(await q.take(), { id: 'later', recovered: false });
  assert.ok(Date.now() >= now + 60);
  const ac = new AbortController();
  const waiting = q.take(ac.signal);
  ac.abort();
  assert.equal(await waiting, undefined);
});

test('start schedules queued messages as recovered and new commits at once', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  let spool = await Spool.open(dir, { log: cap.log });
  const pendingId = await queueMessage(spool, envelope(), 'Subject: 1\r\n\r\nx\r\n');
  const deferredId = await queueMessage(spool, envelope(), 'Subject: 2\r\n\r\nx\r\n');
  const doneId = await queueMessage(spool, envelope(), 'Subject: 3\r\n\r\nx\r\n');
  await spool.markRecipient(deferredId, 0, { status: 'deferred', attempts: 1, nextAttemptAt: 4_000_000_000_000 });
  await spool.markRecipient(doneId, 0, { status: 'delivered', attempts: 1 });
  await spool.close();

  spool = await Spool.open(dir, { log: cap.log });
  t.after(() => spool.close());
  const q = new Queue(spool, { log: cap.log });
  t.after(() => q.stop());
  assert.deepEqual(await q.start(), { scheduled: 2, removed: 1 });
  assert.equal(await spool.get(doneId), undefined, 'a message with only final recipients is removed');
  assert.equal(q.dueAt(deferredId), 4_000_000_000_000);
  assert.deepEqual(await q.take(), { id: pendingId, recovered: true });
  const fresh = await queueMessage(spool, envelope(), 'Subject: 4\r\n\r\nx\r\n');
  assert.deepEqual(await q.take(), { id: fresh, recovered: false });
  assert.deepEqual(cap.events('queue-loaded').map((l) => [l.scheduled, l.removed]), [[2, 1]]);
});
