// The CLI's progress line: on a terminal one line redrawn at most every interval with the rate
// and, when the total is known, the time left, ended with a newline; off a terminal nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, progressText } from '../../src/shells/cli/progress.ts';

function terminal(isTTY: boolean): { isTTY: boolean; chunks: string[]; write(s: string): void } {
  const chunks: string[] = [];
  return { isTTY, chunks, write: (s) => void chunks.push(s) };
}

test('on a terminal: throttled redraws, rate and time left, a final line with a newline', () => {
  let now = 1000;
  const stream = terminal(true);
  const p = createProgress({ verb: 'learned', stream, clock: () => now, intervalMs: 200 });
  assert.equal(p.active, true);
  p.setTotal(5000, true);
  now = 1100;
  p.update(10);
  assert.deepEqual(stream.chunks, [], 'nothing before the first interval');
  now = 4000;
  p.update(1200);
  now = 4100;
  p.update(1300);
  assert.deepEqual(stream.chunks, ['\rlearned 1,200 of ~5,000 (400/s, 10s left)\x1b[K'], 'one redraw per interval');
  now = 4200;
  p.finish();
  p.update(1400);
  assert.deepEqual(stream.chunks, ['\rlearned 1,200 of ~5,000 (400/s, 10s left)\x1b[K', '\rlearned 1,300 of ~5,000 (406/s, 10s left)\x1b[K', '\n']);
});

test('off a terminal nothing is written; a command done within one interval shows nothing either', () => {
  let now = 0;
  const pipe = terminal(false);
  const p = createProgress({ verb: 'deleted', stream: pipe, clock: () => now });
  assert.equal(p.active, false);
  for (let i = 1; i <= 5; i++) {
    now += 1000;
    p.update(i * 100);
  }
  p.finish();
  assert.deepEqual(pipe.chunks, []);
  const tty = terminal(true);
  const quick = createProgress({ verb: 'deleted', stream: tty, clock: () => now });
  now += 50;
  quick.update(3);
  quick.finish();
  assert.deepEqual(tty.chunks, []);
});

test('progressText without a total, with an exact total and a note, and long times left', () => {
  assert.equal(progressText('deleted', 0, 0), 'deleted 0');
  assert.equal(progressText('deleted', 25_000, 10_000, undefined, '- 30,000 matched'), 'deleted 25,000 (2,500/s) - 30,000 matched');
  assert.equal(progressText('released', 10, 1000, { n: 100_000, approximate: false }), 'released 10 of 100,000 (10/s, 2h46m left)');
  assert.equal(progressText('learned', 600, 60_000, { n: 1500, approximate: true }), 'learned 600 of ~1,500 (10/s, 1m30s left)');
  assert.equal(progressText('learned', 1600, 2000, { n: 1500, approximate: true }), 'learned 1,600 of ~1,600 (800/s)', 'an estimate below the count so far is raised to it');
});
