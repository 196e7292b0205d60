// Delivery of a message just committed from memory: the worker and Maildir get the committed
// bytes without reading the spool file; a deferred message's next pass, and every pass after a
// restart, read the file; both give the same Maildir file.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { MaildirTransport } from '../../src/delivery/maildir.ts';
import type { DeliverableMessage, Transport } from '../../src/delivery/transport.ts';
import { captureLog, envelope, queueMessage, readAll, startDelivery, tempDir, waitFor, type CapturedLog } from '../queue/helpers.ts';

async function start(t: TestContext, spool: Spool, cap: CapturedLog, transport: Transport): Promise<() => Promise<void>> {
  return (await startDelivery(t, spool, cap, { local: transport }, { maxBackoffMs: 80 })).stop;
}

const body = 'Subject: hello\r\n\r\nHi Bob\r\n';

async function maildirFiles(root: string): Promise<string[]> {
  const box = join(root, 'example.net', 'bob', 'Maildir', 'new');
  const names = await readdir(box).catch(() => []);
  return Promise.all(names.map((n) => readFile(join(box, n), 'latin1')));
}

test('the worker delivers a fresh message from memory, and from the file after a restart', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const root = join(dir, 'mail');
  // First life: committed and delivered at once.
  const spool = await Spool.open(join(dir, 'spool'), { log: cap.log });
  const stopFirst = await start(t, spool, cap, new MaildirTransport({ root, hostname: 'mx' }));
  const first = await queueMessage(spool, envelope(), body);
  await waitFor('the first delivery', () => cap.events('delivered').length === 1);
  await waitFor('the removal', async () => (await spool.get(first)) === undefined);
  assert.deepEqual(spool.freshStats, { bodiesFromMemory: 1, bodiesFromFile: 0, cachedMessages: 0, cachedBytes: 0 });
  const [fromMemory] = await maildirFiles(root);
  assert.ok(fromMemory?.endsWith(`Received: from client.example.org by mx.example.net with ESMTP id ${first}\r\n${body}`));

  // Committed while nothing delivers, then a restart: the copy in memory is gone with the process.
  const cap2 = captureLog();
  await stopFirst();
  const idle = await Spool.open(join(dir, 'spool'), { log: cap2.log });
  const second = await queueMessage(idle, envelope(), body);
  await idle.close();
  const again = await Spool.open(join(dir, 'spool'), { log: cap2.log });
  await start(t, again, cap2, new MaildirTransport({ root, hostname: 'mx' }));
  await waitFor('the delivery after the restart', () => cap2.events('delivered').length === 1);
  assert.deepEqual(again.freshStats, { bodiesFromMemory: 0, bodiesFromFile: 1, cachedMessages: 0, cachedBytes: 0 });
  const files = await maildirFiles(root);
  assert.equal(files.length, 2);
  const fromFile = files.find((f) => f.includes(second));
  assert.equal(fromFile, fromMemory!.replace(first, second));
});

test('a deferred message is retried from its file, with the same bytes', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const spool = await Spool.open(join(dir, 'spool'), { log: cap.log });
  const seen: string[] = [];
  const flaky: Transport = {
    async deliver(msg: DeliverableMessage, indexes: readonly number[]) {
      seen.push((await readAll(msg.body())).toString('latin1'));
      const outcome = seen.length === 1 ? 'temporary' : 'ok';
      return indexes.map((index) => ({ index, outcome, reply: outcome === 'ok' ? '250 ok' : '451 later' }));
    },
  };
  await start(t, spool, cap, flaky);
  const id = await queueMessage(spool, envelope(), body);
  await waitFor('the retry', () => cap.events('delivered').length === 1);
  assert.equal(cap.events('deferred').length, 1);
  assert.equal(seen.length, 2);
  assert.equal(seen[0], `Received: from client.example.org by mx.example.net with ESMTP id ${id}\r\n${body}`);
  assert.equal(seen[1], seen[0]);
  assert.equal(spool.freshStats.bodiesFromMemory, 1);
  assert.equal(spool.freshStats.bodiesFromFile, 1);
});
