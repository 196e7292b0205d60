// Holds by mark (held.log): a bulk hold moves no file, is listed as held by every reader (the
// server's catalog, the spool, `queue list`'s reader), survives kill -9 once acknowledged, is
// never scheduled after a restart, and a release schedules the messages again when they are due.
// Each bulk command logs one summary line; the server answers `queue list --summary` from memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { QueueAdmin } from '../../src/queue/admin.ts';
import { inspectSpool } from '../../src/queue/inspect.ts';
import { compileFilter } from '../../src/queue/filter.ts';
import { controlSummary, startControlServer } from '../../src/queue/control.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { captureLog, envelope, queueMessage, runUntilLines, tempDir } from './helpers.ts';

const rcpt = (address: string) => ({ address, mailbox: address, transport: 'remote' as const });
const SPAMMER = 'bulk@spam.example';

async function fill(spool: Spool, spam: number, other: number): Promise<{ spam: string[]; other: string[] }> {
  const out = { spam: [] as string[], other: [] as string[] };
  for (let i = 0; i < spam; i++) out.spam.push(await queueMessage(spool, envelope({ mailFrom: SPAMMER, recipients: [rcpt(`v${i}@dest${i % 3}.example`)], client: { address: '192.0.2.7', listener: 'submission', sessionId: `s${i}`, login: 'Stolen@Example.org' } }), 'Subject: buy\r\n\r\nx\r\n'));
  for (let i = 0; i < other; i++) out.other.push(await queueMessage(spool, envelope({ mailFrom: `user${i}@example.org`, recipients: [rcpt(`r${i}@example.net`), rcpt(`s${i}@Example.COM`)] }), 'Subject: hi\r\n\r\nx\r\n'));
  return out;
}

async function listed(spool: Spool, area: 'queue' | 'hold'): Promise<string[]> {
  const out: string[] = [];
  for await (const m of spool.list(area)) out.push(m.envelope.id);
  return out.sort();
}

test('a hold acknowledged to the operator survives kill -9: the messages stay held, in place, and are not scheduled after the restart; a release schedules them again', async (t) => {
  const dir = await tempDir(t);
  let ids: { spam: string[]; other: string[] };
  {
    const spool = await Spool.open(dir, { log: silentLogger(), fsync: false });
    ids = await fill(spool, 40, 5);
    await spool.close();
  }
  const lines = await runUntilLines(fileURLToPath(new URL('./holds-child.ts', import.meta.url)), [dir, SPAMMER], 1);
  assert.deepEqual(lines, ['held 40']);
  // No file moved: the hold is the marks.
  assert.deepEqual(await readdir(join(dir, 'hold', ids.spam[0]![7]!)), []);
  const marks = (await readFile(join(dir, 'held.log'), 'latin1')).split('\n').filter((l) => l.startsWith('+'));
  assert.equal(marks.length, 40);
  // The CLI's reader (no lock) sees them held.
  const inspected = [...inspectSpool(dir)].flatMap((e) => (e.ok ? [e.message] : []));
  assert.equal(inspected.filter((m) => m.held).length, 40);
  assert.ok(inspected.filter((m) => m.held).every((m) => m.envelope.mailFrom === SPAMMER));

  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log });
  t.after(() => spool.close());
  const queue = new Queue(spool, { log: cap.log });
  t.after(() => queue.stop());
  const loaded = await queue.start();
  assert.equal(loaded.scheduled, 5, 'only the other sender is scheduled after the restart');
  assert.deepEqual(await listed(spool, 'hold'), [...ids.spam].sort());
  assert.deepEqual(await listed(spool, 'queue'), [...ids.other].sort());
  assert.equal((await queue.select({ state: 'held' }, ['hold'])).length, 40);
  for (const id of ids.spam) assert.equal(queue.dueAt(id), undefined);

  const admin = new QueueAdmin(spool, queue, cap.log);
  // Holding again changes nothing; a flush does not reach held mail.
  assert.deepEqual(await admin.run('hold', { filter: { sender: SPAMMER } }), { matched: 0, changed: 0, missing: 0 });
  await admin.run('flush', { all: true });
  for (const id of ids.spam) assert.equal(queue.dueAt(id), undefined);

  const r = await admin.run('release', { filter: { sender: SPAMMER }, operator: 'alice (uid 1000, cli)' });
  assert.deepEqual(r, { matched: 40, changed: 40, missing: 0 });
  for (const id of ids.spam) assert.ok(queue.dueAt(id) !== undefined, `released ${id} is scheduled`);
  assert.deepEqual(await listed(spool, 'hold'), []);
  assert.equal(spool.markedHeld, 0);

  // One summary line per bulk command, with the count, the selector and the operator.
  const summaries = cap.events('queue-admin');
  assert.deepEqual(
    summaries.map((l) => [l.op, l.changed, l.operator]),
    [
      ['hold', 0, 'unknown'],
      ['flush', 5, 'unknown'],
      ['release', 40, 'alice (uid 1000, cli)'],
    ],
  );
  assert.deepEqual(summaries[2]!.selector, { filter: { sender: SPAMMER } });
});

test('hold by mark and delete: a held message deleted is gone for every reader and its mark is dropped; a release by id of a file in hold/ still moves it', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log, fsync: false });
  t.after(() => spool.close());
  const ids = await fill(spool, 6, 2);
  const queue = new Queue(spool, { log: cap.log });
  t.after(() => queue.stop());
  await queue.start();
  const admin = new QueueAdmin(spool, queue, cap.log);
  assert.equal((await admin.run('hold', { filter: { sender: SPAMMER } })).changed, 6);
  assert.equal((await admin.run('delete', { ids: ids.spam.slice(0, 2) })).changed, 2);
  assert.equal(spool.markedHeld, 4);
  assert.deepEqual(await listed(spool, 'hold'), ids.spam.slice(2).sort());
  // A message held by moving its file (as the guard does) is released by moving it back.
  assert.equal(await spool.move(ids.other[0]!, 'queue', 'hold'), true);
  assert.deepEqual(await admin.run('release', { all: true }), { matched: 5, changed: 5, missing: 0 });
  assert.deepEqual(await listed(spool, 'queue'), [...ids.spam.slice(2), ...ids.other].sort());
  assert.equal(cap.events('queue-admin').length, 3, 'one line per command, none per message');
});

test('the control socket answers `queue list --summary` from the catalog: the same counts as the files give', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log, fsync: false });
  t.after(() => spool.close());
  const ids = await fill(spool, 9, 4);
  await spool.markRecipients(ids.other[0]!, [{ index: 0, state: { status: 'delivered', attempts: 1 } }]);
  await spool.markRecipients(ids.other[1]!, [{ index: 1, state: { status: 'deferred', attempts: 1, nextAttemptAt: Date.now() + 3_600_000 } }]);
  const queue = new Queue(spool, { log: cap.log });
  t.after(() => queue.stop());
  await queue.start();
  const admin = new QueueAdmin(spool, queue, cap.log);
  await admin.run('hold', { ids: ids.spam.slice(0, 3) });
  const control = await startControlServer({ spoolDir: dir, admin, log: cap.log });
  t.after(() => control.close());
  const s = await controlSummary(dir, { op: 'summary', top: 2 });
  assert.deepEqual(s, {
    messages: 13,
    held: 3,
    deferred: 1,
    pending: 9,
    toGo: 9 + 4 * 2 - 1,
    senders: [
      [SPAMMER, 9],
      ['user0@example.org', 1],
    ],
    sendersTotal: 5,
    domains: [
      ['example.com', 4],
      ['dest0.example', 3],
    ],
    domainsTotal: 5,
    logins: [
      ['stolen@example.org', 9],
      ['', 4],
    ],
    loginsTotal: 2,
  });
  const held = await controlSummary(dir, { op: 'summary', filter: { state: 'held' }, top: 10 });
  assert.equal(held?.messages, 3);
  // By login, as the catalog and the files see it.
  assert.equal((await controlSummary(dir, { op: 'summary', filter: { login: 'STOLEN@example.org' } }))?.messages, 9);
  assert.equal((await controlSummary(dir, { op: 'summary', filter: { login: 'nobody@example.org' } }))?.messages, 0);
  const onDisk = compileFilter({ login: 'stolen@example.ORG' });
  assert.equal([...inspectSpool(dir)].filter((e) => e.ok && onDisk(e.message.envelope, e.message.states, e.message.held)).length, 9);
});
