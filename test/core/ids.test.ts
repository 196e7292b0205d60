// Queue ids from processes sharing one spool (the primary and its acceptors) never collide: each
// draws from its own slice of the random part, also when bursts in one millisecond count up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newQueueId, useQueueIdSlice } from '../../src/core/ids.ts';

const randomPart = (id: string): number => [...id.slice(9)].reduce((v, c) => v * 32 + '0123456789abcdefghijklmnopqrstuv'.indexOf(c), 0);

test('queue id slices: three processes in one millisecond make disjoint, increasing ids', (t) => {
  t.after(() => useQueueIdSlice(0, 1));
  const space = 2 ** 40;
  const perSlice: string[][] = [];
  for (let index = 0; index < 3; index++) {
    useQueueIdSlice(index, 3);
    const ids = Array.from({ length: 5000 }, () => newQueueId(1_800_000_000_000));
    assert.deepEqual([...ids].sort(), ids, 'increasing within a process');
    for (const id of ids) {
      const r = randomPart(id);
      assert.ok(r >= index * Math.floor(space / 3) && r < (index + 1) * Math.floor(space / 3), `${id} lies in slice ${index}`);
    }
    perSlice.push(ids);
  }
  assert.equal(new Set(perSlice.flat()).size, 15_000);
  assert.throws(() => useQueueIdSlice(3, 3), /queue id slice 3 of 3 does not exist/);
});
