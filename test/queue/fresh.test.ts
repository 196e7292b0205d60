// The copy of a just-committed message kept for its first delivery pass: the same bytes and
// envelope the file holds (also after header edits and an amended envelope), within its byte
// bound, never for spilled or quarantined messages, gone once the file changes; and the folder
// descriptors the spool holds open for its folder fsyncs are closed with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { loadMessage } from '../../src/queue/reader.ts';
import { bodyOffset, decodePrefix } from '../../src/queue/format.ts';
import { captureLog, envelope, queueMessage, readAll, tempDir } from './helpers.ts';

/** The message bytes as the file holds them, read without the spool. */
async function fileBody(path: string): Promise<Buffer> {
  const raw = await readFile(path);
  const p = decodePrefix(raw);
  if (typeof p === 'string') throw new Error(p);
  return raw.subarray(bodyOffset(p), bodyOffset(p) + p.bodyLength);
}

test('a message committed from memory is delivered from memory: the bytes and envelope of its file', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log });
  t.after(() => spool.close());
  const w = spool.begin(envelope());
  await w.write(Buffer.from(`Received: by mx.example.net id ${w.id}\r\n`));
  await w.write(Buffer.from('X-Spam-Flag: forged\r\nSubject: hi\r\n\r\nbody\r\n'));
  await w.rewriteHead((head) => Buffer.from(head.toString('latin1').replace('X-Spam-Flag: forged\r\n', ''), 'latin1'));
  await w.prepend(Buffer.from('Authentication-Results: mx.example.net; spf=pass\r\n'));
  await w.commit({ folder: 'Junk', noBounce: 'spam' });
  const path = spool.messagePath(w.id);
  const expected = `Authentication-Results: mx.example.net; spf=pass\r\nReceived: by mx.example.net id ${w.id}\r\nSubject: hi\r\n\r\nbody\r\n`;
  assert.equal((await fileBody(path)).toString('latin1'), expected);
  assert.deepEqual(spool.freshStats, { bodiesFromMemory: 0, bodiesFromFile: 0, cachedMessages: 1, cachedBytes: Buffer.byteLength(expected) });

  const fromFile = await loadMessage(path, w.id);
  const got = await spool.get(w.id);
  assert.deepEqual(got, { envelope: fromFile!.envelope, states: fromFile!.states });
  assert.equal(got?.envelope.folder, 'Junk');
  assert.equal((await readAll(spool.openBody(w.id))).toString('latin1'), expected);
  assert.equal(spool.freshStats.bodiesFromMemory, 1);
  assert.equal(spool.freshStats.bodiesFromFile, 0);

  // A state record ends the copy: the next pass reads the file.
  await spool.markRecipient(w.id, 0, { status: 'deferred', attempts: 1, nextAttemptAt: 1, updatedAt: 1 });
  assert.equal(spool.freshStats.cachedMessages, 0);
  assert.equal((await spool.get(w.id))?.states[0]?.status, 'deferred');
  assert.equal((await readAll(spool.openBody(w.id))).toString('latin1'), expected);
  assert.deepEqual(spool.freshStats, { bodiesFromMemory: 1, bodiesFromFile: 1, cachedMessages: 0, cachedBytes: 0 });
});

test('the copies stay within their byte bound; spilled, quarantined, held and deleted messages are read from the file', async (t) => {
  const dir = await tempDir(t);
  const bound = 1024 * 1024;
  const spool = await Spool.open(dir, { log: captureLog().log, freshCacheBytes: bound, memoryLimit: 256 * 1024 });
  t.after(() => spool.close());
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push(await queueMessage(spool, envelope(), Buffer.alloc(200_000, 0x61 + i)));
  const size = (await spool.get(ids[0]!))!.envelope.size;
  // 5 × ~200 KB fit in 1 MiB, the 6th would not; the first ones are kept (they are delivered first).
  assert.equal(spool.freshStats.cachedMessages, 5);
  assert.equal(spool.freshStats.cachedBytes, 5 * size);
  assert.ok(spool.freshStats.cachedBytes <= bound);
  for (const id of [ids[0]!, ids[5]!]) assert.deepEqual(await readAll(spool.openBody(id)), await fileBody(spool.messagePath(id)));
  assert.equal(spool.freshStats.bodiesFromMemory, 1);
  assert.equal(spool.freshStats.bodiesFromFile, 1);
  // Removal makes room again.
  for (const id of ids.slice(0, 5)) await spool.remove(id);
  assert.equal(spool.freshStats.cachedBytes, 0);
  const spilled = await queueMessage(spool, envelope(), Buffer.alloc(300 * 1024, 0x62));
  assert.equal(spool.freshStats.cachedMessages, 0, 'a spilled message is not kept');
  const w = spool.begin(envelope());
  await w.write(Buffer.from('Subject: spam\r\n\r\nx\r\n'));
  await w.commit({ area: 'quarantine' });
  assert.equal(spool.freshStats.cachedMessages, 0, 'a quarantined message is not kept');
  const held = await queueMessage(spool, envelope(), 'Subject: a\r\n\r\na\r\n');
  const deleted = await queueMessage(spool, envelope(), 'Subject: b\r\n\r\nb\r\n');
  assert.equal(spool.freshStats.cachedMessages, 2);
  assert.equal(await spool.move(held, 'queue', 'hold'), true);
  assert.equal(await spool.get(held), undefined);
  assert.equal((await spool.get(held, 'hold'))?.envelope.id, held);
  assert.equal(await spool.deleteMany([{ id: deleted, area: 'queue' }], { removeNow: true }), 1);
  await assert.rejects(readAll(spool.openBody(deleted)), /not in the spool/);
  assert.equal(spool.freshStats.cachedMessages, 0);
  assert.deepEqual(await readAll(spool.openBody(spilled)), await fileBody(spool.messagePath(spilled)));
});

test('the spool holds its bucket folders open for folder fsyncs and closes them with itself', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log });
  const queueDirs = async () => {
    const out: string[] = [];
    for (const fd of await readdir('/proc/self/fd')) {
      const target = await readlink(join('/proc/self/fd', fd)).catch(() => '');
      if (target.startsWith(join(dir, 'queue'))) out.push(target);
    }
    return out.sort();
  };
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await queueMessage(spool, envelope(), `Subject: ${i}\r\n\r\nx\r\n`));
  const folders = [...new Set(ids.map((id) => join(spool.messagePath(id), '..')))].sort();
  // One descriptor per folder used, however many commits went into it.
  assert.equal(spool.syncer.heldOpen, folders.length);
  assert.deepEqual(await queueDirs(), folders);
  assert.equal(spool.dirFsyncs, 5);
  await spool.close();
  assert.equal(spool.syncer.heldOpen, 0);
  assert.deepEqual(await queueDirs(), []);
});
