// The on-disk spool with real files: round trip, spilling, commit ordering, abort, corrupt and
// truncated files, per-recipient state, group commit and the one-process lock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool, SpoolCorruptError, type SpooledMessage } from '../../src/queue/spool.ts';
import { isQueueId, newQueueId, queueIdTime } from '../../src/core/ids.ts';
import { captureLog, envelope, queueMessage, readAll, tempDir } from './helpers.ts';

async function listAll(spool: Spool): Promise<SpooledMessage[]> {
  const out: SpooledMessage[] = [];
  for await (const m of spool.list()) out.push(m);
  return out;
}

test('queue ids are unique, sort by time and are file-name safe', () => {
  const ids = Array.from({ length: 10_000 }, () => newQueueId(1_700_000_000_123));
  assert.equal(new Set(ids).size, 10_000);
  assert.deepEqual([...ids].sort(), ids);
  assert.ok(ids.every(isQueueId));
  assert.equal(ids[0]!.length, 17);
  const later = newQueueId(1_800_000_000_000);
  assert.ok(later > ids[ids.length - 1]!);
  assert.equal(queueIdTime(later), 1_800_000_000_000);
  assert.equal(isQueueId('../../etc/passwd'), false);
});

test('write, commit, list, get and openBody round trip', async (t) => {
  const dir = await tempDir(t);
  const { log } = captureLog();
  const spool = await Spool.open(dir, { log });
  t.after(() => spool.close());
  const env = envelope({
    receivedAt: 1_700_000_000_000,
    recipients: [
      { address: 'bob@example.net', mailbox: 'bob@example.net', transport: 'local' },
      { address: 'carol@remote.example', transport: 'remote' },
    ],
    client: { address: '192.0.2.7', helo: 'client.example.org', login: 'alice', listener: 'submission', sessionId: 'sess1', proxyPeer: '10.0.0.5' },
    relayReason: 'login',
    smtputf8: true,
  });
  const body = 'Subject: hi\r\n\r\nHello, wörld\r\n';
  const id = await queueMessage(spool, env, body);
  const expected = Buffer.concat([Buffer.from(`Received: from client.example.org by mx.example.net with ESMTP id ${id}\r\n`), Buffer.from(body)]);

  const listed = await listAll(spool);
  assert.equal(listed.length, 1);
  assert.deepEqual(listed[0]!.envelope, { ...env, id, size: expected.length });
  assert.deepEqual(listed[0]!.states, [
    { status: 'pending', attempts: 0 },
    { status: 'pending', attempts: 0 },
  ]);
  assert.deepEqual(await spool.get(id), listed[0]);
  assert.deepEqual(await readAll(spool.openBody(id)), expected);
  assert.equal(await spool.get(newQueueId()), undefined);
  assert.equal(await spool.get('../lock'), undefined);
  assert.deepEqual(await readdir(join(dir, 'incoming')), []);
});

test('a 5 MB message spills to disk instead of staying in memory', async (t) => {
  const dir = await tempDir(t);
  const memoryLimit = 256 * 1024;
  const spool = await Spool.open(dir, { log: captureLog().log, memoryLimit });
  t.after(() => spool.close());
  const w = spool.begin(envelope());
  const hash = createHash('sha256');
  const chunk = 64 * 1024;
  for (let i = 0; i < 80; i++) {
    const part = Buffer.alloc(chunk, i % 251);
    hash.update(part);
    await w.write(part);
  }
  assert.equal(w.size, 80 * chunk);
  assert.equal(w.spilled, true);
  assert.ok(w.peakBufferedBytes <= memoryLimit + chunk, `peak ${w.peakBufferedBytes} bytes in memory`);
  assert.ok(w.bufferedBytes < chunk + 1);
  // Before the commit the bytes are in incoming/, not in memory.
  const inFile = (await stat(join(dir, 'incoming', w.id))).size;
  assert.ok(inFile >= 80 * chunk - 64 * 1024, `incoming file has ${inFile} bytes`);
  await w.commit();
  const body = await readAll(spool.openBody(w.id));
  assert.equal(body.length, 80 * chunk);
  assert.equal(createHash('sha256').update(body).digest('hex'), hash.digest('hex'));
  assert.deepEqual(await readdir(join(dir, 'incoming')), []);
});

test('after commit() resolves the file is in the queue folder, not before', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log });
  t.after(() => spool.close());
  const w = spool.begin(envelope());
  await w.write(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
  await assert.rejects(stat(spool.messagePath(w.id)), { code: 'ENOENT' });
  await w.commit();
  const s = await stat(spool.messagePath(w.id));
  assert.ok(s.isFile());
  assert.equal(spool.messagePath(w.id), join(dir, 'queue', w.id[7]!, w.id));
  await assert.rejects(stat(join(dir, 'incoming', w.id)), { code: 'ENOENT' });
  await assert.rejects(w.write(Buffer.from('more')), /committed/);
});

test('abort removes the temporary file and queues nothing', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log, memoryLimit: 1024 });
  t.after(() => spool.close());
  const w = spool.begin(envelope());
  await w.write(Buffer.alloc(4096, 0x61));
  assert.deepEqual(await readdir(join(dir, 'incoming')), [w.id]);
  await w.abort();
  assert.deepEqual(await readdir(join(dir, 'incoming')), []);
  await assert.rejects(w.commit(), /aborted/);
  const small = spool.begin(envelope());
  await small.write(Buffer.from('tiny'));
  await small.abort();
  assert.deepEqual(await listAll(spool), []);
});

test('corrupt and truncated files are moved aside and reported; the others still load', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log });
  t.after(() => spool.close());
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push(await queueMessage(spool, envelope(), `Subject: ${i}\r\n\r\nbody ${i}\r\n`));
  const [good, truncated, badHeader, longer, unfinished, good2] = ids as [string, string, string, string, string, string];
  const p = (id: string) => spool.messagePath(id);
  await truncate(p(truncated), (await stat(p(truncated))).size - 5);
  const raw = await readFile(p(badHeader));
  raw[100] = raw[100]! ^ 0x01;
  await writeFile(p(badHeader), raw);
  await appendFile(p(longer), 'garbage after the body');
  const u = await readFile(p(unfinished));
  u.write('MWSPOOL-', 0, 'latin1');
  await writeFile(p(unfinished), u);
  const stray = join(dir, 'queue', '0', 'notes.txt');
  await writeFile(stray, 'hello');

  const listed = (await listAll(spool)).map((m) => m.envelope.id).sort();
  assert.deepEqual(listed, [good, good2].sort());
  assert.deepEqual((await readdir(join(dir, 'corrupt'))).sort(), [truncated, badHeader, longer, unfinished, 'notes.txt'].sort());
  const reasons = Object.fromEntries(cap.events('spool-corrupt').map((l) => [l.path as string, l.reason]));
  assert.deepEqual(reasons, {
    [p(truncated)]: `truncated: ${(await stat(join(dir, 'corrupt', truncated))).size} bytes, the prefix records ${(await stat(join(dir, 'corrupt', truncated))).size + 5}`,
    [p(badHeader)]: 'header checksum mismatch',
    [p(longer)]: 'unexpected bytes after the message (body longer than recorded)',
    [p(unfinished)]: 'unfinished file (never committed)',
    [stray]: 'unexpected file name in the queue folder',
  });
  for (const l of cap.events('spool-corrupt')) assert.equal(l.movedTo, join(dir, 'corrupt', (l.path as string).split('/').pop()!));
  assert.equal(await spool.get(truncated), undefined);
});

test('a body byte flipped on disk fails the body stream and moves the file aside', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  // No copy kept in memory at commit: the body is read from the (damaged) file.
  const spool = await Spool.open(dir, { log: cap.log, freshCacheBytes: 0 });
  t.after(() => spool.close());
  const id = await queueMessage(spool, envelope(), 'Subject: x\r\n\r\nimportant words\r\n');
  const raw = await readFile(spool.messagePath(id));
  const at = raw.indexOf('important');
  raw[at] = 0x49; // 'I'
  await writeFile(spool.messagePath(id), raw);
  // The envelope is still readable (a listing does not read bodies) ...
  assert.equal((await spool.get(id))?.envelope.id, id);
  // ... but the message bytes never reach a clean end.
  await assert.rejects(readAll(spool.openBody(id)), (err: unknown) => err instanceof SpoolCorruptError && err.reason === 'message checksum mismatch');
  assert.deepEqual(await readdir(join(dir, 'corrupt')), [id]);
  assert.equal(await spool.get(id), undefined);
  assert.equal(cap.events('spool-corrupt')[0]?.reason, 'message checksum mismatch');
});

test('recipient states are durable, torn records are skipped, final states stay final', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  let spool = await Spool.open(dir, { log: cap.log });
  const env = envelope({
    recipients: [
      { address: 'a@example.net', transport: 'local' },
      { address: 'b@example.net', transport: 'local' },
      { address: 'c@remote.example', transport: 'remote' },
    ],
  });
  const id = await queueMessage(spool, env, 'Subject: s\r\n\r\nx\r\n');
  await spool.markRecipients(id, [
    { index: 0, state: { status: 'delivered', attempts: 1, lastReply: '250 2.0.0 ok', updatedAt: 5 } },
    { index: 2, state: { status: 'deferred', attempts: 1, nextAttemptAt: 1000, lastReply: '451 4.3.5 later', updatedAt: 5 } },
  ]);
  // A crash in the middle of an append leaves a partial record ...
  await appendFile(spool.messagePath(id), '\nS1 0123456789abcdef {"u":[{"i":[1],"s":{"sta');
  await spool.close();
  spool = await Spool.open(dir, { log: cap.log });
  t.after(() => spool.close());
  // ... which the next append closes off, so it stays readable.
  await spool.markRecipient(id, 1, { status: 'bounced', attempts: 1, lastReply: '550 5.1.1 no', updatedAt: 6 });
  // A later record cannot make a delivered recipient due again.
  await spool.markRecipient(id, 0, { status: 'deferred', attempts: 2, nextAttemptAt: 9, updatedAt: 7 });
  const m = await spool.get(id);
  assert.deepEqual(m?.states, [
    { status: 'delivered', attempts: 1, lastReply: '250 2.0.0 ok', updatedAt: 5 },
    { status: 'bounced', attempts: 1, lastReply: '550 5.1.1 no', updatedAt: 6 },
    { status: 'deferred', attempts: 1, nextAttemptAt: 1000, lastReply: '451 4.3.5 later', updatedAt: 5 },
  ]);
  assert.equal(cap.events('spool-torn-record')[0]?.records, 1);
  assert.deepEqual(await readAll(spool.openBody(id)), Buffer.from(`Received: from client.example.org by mx.example.net with ESMTP id ${id}\r\nSubject: s\r\n\r\nx\r\n`));
  await spool.remove(id);
  await assert.rejects(spool.markRecipient(id, 2, { status: 'delivered', attempts: 2 }), { name: 'SpoolNotFoundError' });
  await assert.rejects(stat(spool.messagePath(id)), { code: 'ENOENT' });
});

test('removeDelivered: the file goes with a folder fsync and no state record; a removed message is not found', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log });
  t.after(() => spool.close());
  const id = await queueMessage(spool, envelope(), 'Subject: s\r\n\r\nx\r\n');
  const path = spool.messagePath(id);
  const requests = spool.syncer.requests;
  const changes: string[] = [];
  spool.onChange((c) => changes.push(c.kind));
  await spool.removeDelivered(id);
  await assert.rejects(stat(path), { code: 'ENOENT' });
  assert.equal(spool.syncer.requests, requests + 1, 'the folder is fsync\'d before it resolves');
  assert.deepEqual(changes, ['removed']);
  await assert.rejects(spool.removeDelivered(id), { name: 'SpoolNotFoundError' });
});

test('1,000 concurrent commits all land and share folder fsyncs', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log });
  t.after(() => spool.close());
  const before = spool.dirFsyncs;
  const ids = await Promise.all(Array.from({ length: 1000 }, (_, i) => queueMessage(spool, envelope(), `Subject: ${i}\r\n\r\nmessage ${i}\r\n`)));
  assert.equal(new Set(ids).size, 1000);
  const listed = new Set<string>();
  for await (const m of spool.list()) listed.add(m.envelope.id);
  assert.equal(listed.size, 1000);
  assert.ok(ids.every((id) => listed.has(id)));
  const fsyncs = spool.dirFsyncs - before;
  t.diagnostic(`1000 commits, ${fsyncs} folder fsyncs`);
  assert.equal(spool.syncer.requests, 1000);
  assert.ok(fsyncs >= 1 && fsyncs < 500, `${fsyncs} folder fsyncs for 1000 commits`);
});

test('one process per spool: a second open fails until the first closes', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log });
  await assert.rejects(Spool.open(dir, { log: captureLog().log }), new RegExp(`in use by process ${process.pid} \\(lock file ${join(dir, 'lock')}\\)`));
  await spool.close();
  const again = await Spool.open(dir, { log: captureLog().log });
  await again.close();
});

test('a pid in the lock file is only information: a live unrelated process (pid 1, this test) does not keep the spool', async (t) => {
  const dir = await tempDir(t);
  const lock = join(dir, 'lock');
  for (const pid of [1, process.pid]) {
    await writeFile(lock, `${pid} 00000000-0000-0000-0000-000000000000\n`);
    const s = await Spool.open(dir, { log: captureLog().log });
    assert.equal(await readFile(lock, 'utf8'), `${process.pid}\n`);
    await s.close();
  }
  await writeFile(lock, '');
  const s2 = await Spool.open(dir, { log: captureLog().log });
  await s2.close();
});

test('headers and state histories longer than the first read load the same on both read paths', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log, fsync: false });
  t.after(() => spool.close());
  const recipients = Array.from({ length: 300 }, (_, i) => ({ address: `user${i}@example.net`, mailbox: `user${i}@example.net`, transport: 'local' as const }));
  const id = await queueMessage(spool, envelope({ recipients }), 'Subject: many\r\n\r\nx\r\n');
  const expected = recipients.map((_, i) => ({ status: 'deferred' as const, attempts: 1, nextAttemptAt: 1000 + i, lastReply: `451 4.2.0 try ${i} later` }));
  for (const [i, state] of expected.entries()) await spool.markRecipient(id, i, state);
  const got = await spool.get(id);
  assert.equal(got?.envelope.recipients.length, 300);
  assert.deepEqual(got?.states, expected);
  assert.deepEqual(await listAll(spool), [got]);
});

test('incoming leftovers are cleared when the spool opens', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log, memoryLimit: 10 });
  const w = spool.begin(envelope());
  await w.write(Buffer.alloc(100, 0x62));
  await spool.close();
  const cap = captureLog();
  const reopened = await Spool.open(dir, { log: cap.log });
  t.after(() => reopened.close());
  assert.deepEqual(await readdir(join(dir, 'incoming')), []);
  assert.equal(cap.events('spool-incoming-cleared')[0]?.files, 1);
});

test('listing reads messages smaller and larger than the first read alike, with their states', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log });
  t.after(() => spool.close());
  // A small file is read once without a stat; one past 8 KiB takes the stat path.
  const small = await queueMessage(spool, envelope(), 'Subject: small\r\n\r\nbody\r\n');
  const large = await queueMessage(spool, envelope(), `Subject: large\r\n\r\n${'x'.repeat(20_000)}\r\n`);
  const state = { status: 'deferred' as const, attempts: 1, nextAttemptAt: Date.now() + 60_000, lastReply: '451 try later' };
  for (const id of [small, large]) await spool.markRecipient(id, 0, state);
  const byId = new Map((await listAll(spool)).map((m) => [m.envelope.id, m]));
  assert.deepEqual([...byId.keys()].sort(), [small, large].sort());
  for (const id of [small, large]) assert.deepEqual(byId.get(id)!.states[0], state);
  assert.deepEqual(await readdir(join(dir, 'corrupt')), []);
});

test('REQUIRETLS is kept in the spool header; a file without the field (older versions) reads as ordinary mail', async (t) => {
  const dir = await tempDir(t);
  const { log } = captureLog();
  const spool = await Spool.open(dir, { log });
  t.after(() => spool.close());
  const strict = await queueMessage(spool, envelope({ requireTls: true }), 'Subject: a\r\n\r\nx\r\n');
  const plain = await queueMessage(spool, envelope(), 'Subject: b\r\n\r\ny\r\n');
  assert.equal((await spool.get(strict))!.envelope.requireTls, true);
  assert.equal((await spool.get(plain))!.envelope.requireTls, undefined);
  // The ordinary file has no such field at all: byte for byte what older versions wrote.
  const files = await readdir(join(dir, 'queue'), { recursive: true });
  const texts = await Promise.all(files.filter((f) => String(f).endsWith(plain)).map((f) => readFile(join(dir, 'queue', String(f)), 'utf8')));
  assert.equal(texts.length, 1);
  assert.doesNotMatch(texts[0]!, /requireTls/);
});
