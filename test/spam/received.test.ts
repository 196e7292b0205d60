// Dates in Received and Date fields: comments are dropped before parsing, in one linear pass
// (a run of "(" once made the comment pattern quadratic: seconds of CPU for one message).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDate } from '../../src/spam/received.ts';

test('received: parseDate drops comments, including nested ones', () => {
  assert.equal(parseDate('Tue, 1 Jan 2019 10:00:00 +0000 (UTC)'), Date.UTC(2019, 0, 1, 10));
  assert.equal(parseDate('Tue, 1 Jan 2019 10:00:00 +0100 (CET (winter))'), Date.UTC(2019, 0, 1, 9));
  assert.equal(parseDate('not a date'), undefined);
});

// 200,000 unclosed "(" made the old pattern take about 2×10^10 steps; it must finish at once.
test('received: parseDate is linear on a run of "("', { timeout: 10_000 }, () => {
  assert.equal(parseDate(`${'('.repeat(200_000)} Tue, 1 Jan 2019 10:00:00 +0000`), undefined);
});
