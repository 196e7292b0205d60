// The operator commands' gate: never more than the limit at once, and drain waits for the last.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGate } from '../../src/queue/gate.ts';

test('gate: at most `limit` tasks run at once; drain resolves after the last one settles', async () => {
  const gate = createGate(3);
  let running = 0;
  let peak = 0;
  const done: number[] = [];
  for (let i = 0; i < 20; i++) {
    await gate.run(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 1 + (i % 4)));
      running--;
      done.push(i);
    });
    assert.ok(running <= 3, `running ${running} after starting task ${i}`);
  }
  await gate.drain();
  assert.equal(peak, 3);
  assert.equal(running, 0);
  assert.deepEqual([...done].sort((a, b) => a - b), [...Array(20).keys()]);
});
