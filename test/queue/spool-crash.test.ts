// Crash safety at the storage level: a child process commits messages and prints each id once
// commit() resolved; it is killed with SIGKILL; every printed id must then load intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { captureLog, readAll, tempDir } from './helpers.ts';

const child = fileURLToPath(new URL('./spool-crash-child.ts', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

async function runAndKill(dir: string, killAfterLines: number): Promise<string[]> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, dir], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(proc, 'exit');
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.split('\n').length - 1 >= killAfterLines) {
        proc.kill('SIGKILL');
        resolve();
      }
    });
    proc.on('exit', () => reject(new Error(`child exited before it was killed: ${err}`)));
  });
  const [, signal] = (await exited) as [number | null, string | null];
  assert.equal(signal, 'SIGKILL');
  // Only complete lines were acknowledged.
  return out.split('\n').slice(0, -1);
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
