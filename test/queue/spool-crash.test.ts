// Crash safety at the storage level: a child process commits messages and prints each id once
// commit() resolved; it is killed with SIGKILL; every printed id must then load intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { captureLog, readAll, runUntilLines, tempDir } from './helpers.ts';

const child = fileURLToPath(new URL('./spool-crash-child.ts', import.meta.url));

function runAndKill(dir: string, killAfterLines: number): Promise<string[]> {
  return runUntilLines(child, [dir], killAfterLines);
}

test('every message acknowledged before kill -9 is present and intact', async (t) => {
  const dir = await tempDir(t);
  for (const killAfter of [40, 97]) {
    const acked = await runAndKill(dir, killAfter);
    assert.ok(acked.length >= killAfter);
    const cap = captureLog();
    const spool = await Spool.open(dir, { log: cap.log });
    try {
      for (const line of acked) {
        const [id, size, hash] = line.split(' ') as [string, string, string];
        const m = await spool.get(id);
        assert.ok(m, `acknowledged message ${id} is missing`);
        assert.equal(m.envelope.size, Number(size));
        const body = await readAll(spool.openBody(id));
        assert.equal(createHash('sha256').update(body).digest('hex'), hash, `message ${id} differs`);
      }
      let listed = 0;
      for await (const _ of spool.list()) listed++;
      assert.ok(listed >= acked.length);
      assert.deepEqual(cap.events('spool-corrupt'), []);
      assert.deepEqual(await readdir(join(dir, 'corrupt')), []);
      assert.deepEqual(await readdir(join(dir, 'incoming')), []);
    } finally {
      await spool.close();
    }
  }
});
