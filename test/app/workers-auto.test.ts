// `workers: auto` on small machines: on 2 cores or fewer it means one process (no acceptors),
// because acceptors were slower there in every bench/smtp run (docs/decisions/0012).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { workerCount } from '../../src/app/compose.ts';

test('workers: auto is 1 on 1 and 2 cores, one per core above', () => {
  assert.equal(workerCount({ workers: 'auto' }, 1), 1);
  assert.equal(workerCount({ workers: 'auto' }, 2), 1);
  assert.equal(workerCount({ workers: 'auto' }, 4), 4);
  assert.equal(workerCount({ workers: 'auto' }, 16), 16);
});

test('an explicit number of workers is kept, whatever the cores', () => {
  assert.equal(workerCount({ workers: 3 }, 2), 3);
  assert.equal(workerCount({ workers: 1 }, 8), 1);
});
