// The start-up scan with reader threads (docs/decisions/0045) against the same scan on the event
// loop: two copies of one spool with good, deferred, finished, held, torn, corrupt and stray files
// must come out with the same catalog, the same schedule counts and the same files moved aside.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, cp, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { Queue, type ScanOptions } from '../../src/queue/queue.ts';
import { captureLog, envelope, queueMessage, tempDir } from './helpers.ts';

async function scanned(dir: string, opts: ScanOptions) {
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log });
  const queue = new Queue(spool, { log: cap.log, concurrency: 1 });
  const result = await queue.start(opts);
  const ids = [...(await readdir(join(dir, 'queue'), { recursive: true })), ...(await readdir(join(dir, 'hold'), { recursive: true }))].map((p) => p.split('/').pop()!).sort();
  const facts = Object.fromEntries(ids.map((id) => [id, queue.facts(id)]));
  const corrupt = Object.fromEntries(cap.events('spool-corrupt').map((l) => [(l.path as string).slice(dir.length), l.reason]));
  const torn = cap.events('spool-torn-record').map((l) => [(l.path as string).slice(dir.length), l.records]);
  const progress = queue.loadProgress;
  await queue.close();
  await spool.close();
  return { result, facts, corrupt, torn, read: progress.read, catalogued: queue.catalogued, moved: (await readdir(join(dir, 'corrupt'))).sort() };
}

test('reader threads give the catalog, schedule and quarantine the event-loop scan gives', async (t) => {
  const dir = await tempDir(t);
  const { log } = captureLog();
  const spool = await Spool.open(dir, { log });
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const recipients = [{ address: `r${i}@dest${i % 3}.example`, transport: 'remote' as const }, ...(i % 4 === 0 ? [{ address: `local${i}@example.net`, mailbox: `box${i % 2}@example.net`, transport: 'local' as const }] : [])];
    ids.push(await queueMessage(spool, envelope({ mailFrom: i % 2 ? 'bulk@spam.example' : '', recipients, client: { address: '192.0.2.1', helo: 'h', listener: 'submission', sessionId: `s${i}`, ...(i % 5 === 0 ? { login: 'User@Example.org' } : {}) } }), `Subject: ${i}\r\n\r\nbody ${i}\r\n`));
  }
  await spool.markRecipient(ids[1]!, 0, { status: 'deferred', attempts: 1, nextAttemptAt: 4_000_000_000_000, updatedAt: 1 });
  await spool.markRecipient(ids[3]!, 0, { status: 'delivered', attempts: 1, updatedAt: 1 }); // all final: removed by the scan
  await spool.holdMany([ids[5]!]);
  await spool.close();
  const p = (id: string) => join(dir, 'queue', id[7]!, id);
  await appendFile(p(ids[7]!), '\nS1 0123456789abcdef {"u":[{"i":[0],"s":{"sta'); // torn record
  const raw = await readFile(p(ids[9]!));
  raw[100] = raw[100]! ^ 0x01;
  await writeFile(p(ids[9]!), raw); // header checksum mismatch
  await truncate(p(ids[11]!), (await stat(p(ids[11]!))).size - 5);
  await writeFile(join(dir, 'queue', ids[13]![7]!, 'notes.txt'), 'hello');
  const copy = `${dir}-copy`;
  await cp(dir, copy, { recursive: true });
  t.after(() => import('node:fs/promises').then((fs) => fs.rm(copy, { recursive: true, force: true })));

  const inline = await scanned(dir, { readerThreads: 0 });
  const threaded = await scanned(copy, { readerThreads: 2, threadsFrom: 1 });
  assert.deepEqual(threaded, inline);
  // The comparison means something: the scan read the files and saw each kind.
  assert.equal(inline.read, 38);
  assert.deepEqual(Object.values(inline.corrupt).sort(), ['header checksum mismatch', 'truncated: ' + (await stat(join(dir, 'corrupt', ids[11]!))).size + ' bytes, the prefix records ' + ((await stat(join(dir, 'corrupt', ids[11]!))).size + 5), 'unexpected file name in the queue folder'].sort());
  assert.equal(inline.torn.length, 1);
  assert.equal(inline.result.removed, 1);
  assert.equal(inline.catalogued, 37);
  assert.equal(inline.facts[ids[5]!]?.held, true);
  assert.equal(inline.facts[ids[1]!]?.recipients[0]?.status, 'deferred');
});

test('a file appended to after a reader thread read it is read again, not catalogued stale', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log });
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) ids.push(await queueMessage(spool, envelope(), `Subject: ${i}\r\n\r\nbody\r\n`));
  const queue = new Queue(spool, { log: cap.log, concurrency: 1 });
  let appended = false;
  await queue.start({
    readerThreads: 1,
    threadsFrom: 1,
    // At the first row taken, every batch has been sent and its own has been read: an operator's
    // requeue-like append now is newer than what the thread read for the rest of that batch.
    scanned: async () => {
      if (appended) return;
      appended = true;
      for (const id of ids) await spool.markRecipient(id, 0, { status: 'deferred', attempts: 1, nextAttemptAt: 4_000_000_000_123, updatedAt: 1 });
    },
  });
  assert.equal(queue.catalogued, 30);
  for (const id of ids.filter((id) => queue.facts(id)?.recipients[0]?.next !== 4_000_000_000_123)) {
    // Only the row taken first (before the append) may be older; its states change was heard live.
    assert.fail(`${id} catalogued with ${JSON.stringify(queue.facts(id)?.recipients[0])}`);
  }
  await queue.close();
  await spool.close();
});
