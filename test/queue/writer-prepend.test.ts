// Header fields decided at end of DATA go before the message already written: in memory, and
// for a message that spilled to disk. readBack gives content checks the bytes before commit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { captureLog, envelope, readAll, tempDir } from './helpers.ts';

for (const [name, size] of [
  ['in memory', 1000],
  ['spilled to disk', 3 * 1024 * 1024 + 17],
] as const) {
  test(`writer: prepend and readBack, ${name}`, async (t) => {
    const dir = await tempDir(t);
    const spool = await Spool.open(dir, { log: captureLog().log, memoryLimit: 256 * 1024 });
    t.after(() => spool.close());
    const w = spool.begin(envelope());
    const body = Buffer.alloc(size, 'x');
    body.write('Subject: s\r\n\r\n', 0);
    for (let i = 0; i < body.length; i += 65536) await w.write(body.subarray(i, i + 65536));
    assert.equal(w.spilled, size > 256 * 1024);
    assert.deepEqual(await w.readBack(), body);
    const head = Buffer.from('X-Spam-Score: 1.5\r\nAuthentication-Results: mx; spf=pass\r\n');
    await w.prepend(head);
    assert.deepEqual(await w.readBack(), Buffer.concat([head, body]));
    await w.commit();
    const expected = Buffer.concat([head, body]);
    assert.deepEqual(await readAll(spool.openBody(w.id)), expected, 'the stored body (checksum verified by the reader) is header + message');
    const m = await spool.get(w.id);
    assert.equal(m?.envelope.size, expected.length);
    assert.deepEqual(readdirSync(join(dir, 'incoming')), [], 'no copy left behind');
  });
}

test('writer: abort after a spilled prepend removes the incoming file', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log, memoryLimit: 1024 });
  t.after(() => spool.close());
  const w = spool.begin(envelope());
  await w.write(Buffer.alloc(10_000, 'y'));
  await w.prepend(Buffer.from('X-A: 1\r\n'));
  assert.ok(existsSync(join(dir, 'incoming', w.id)));
  await w.abort();
  assert.deepEqual(readdirSync(join(dir, 'incoming')), []);
});
