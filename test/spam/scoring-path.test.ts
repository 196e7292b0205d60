// The scoring path's parts, each against its plain counterpart: the typed-array count cache, reads
// coalesced within a turn of the event loop (on a real SQLite store), classification over packed
// counts with clues made on demand, tokens packed for the trip back from a worker, and the bands.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../src/observe/log.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { StoreUnavailableError } from '../../src/store/store.ts';
import { analyzeData, packAnalysisData, toAnalysis } from '../../src/spam/analysis.ts';
import { DEFAULT_BAYES, classify, classifyCounts } from '../../src/spam/bayes.ts';
import { unpack, unpackAll } from '../../src/spam/bayes-db.ts';
import { CountCache } from '../../src/spam/cache.ts';
import { BAYES_BANDS, SpamFilter, bayesBand } from '../../src/spam/filter.ts';
import { HashReadBatcher } from '../../src/spam/read-batch.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailward-spam-path-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('count cache: get, overwrite, delete, keys alike in their low 32 bits, start over when full or old', () => {
  let now = 1000;
  const c = new CountCache({ entries: 3, ttlMs: 50 }, () => now);
  assert.equal(c.get(7), undefined);
  c.set(0, 5);
  c.set(7, 2 ** 26 + 3);
  c.set(7 + 2 ** 32, 9); // same low 32 bits as 7: another slot
  assert.equal(c.get(0), 5);
  assert.equal(c.get(7), 2 ** 26 + 3);
  assert.equal(c.get(7 + 2 ** 32), 9);
  c.set(7, 4);
  assert.equal(c.get(7), 4);
  assert.equal(c.size, 3);
  c.delete(7);
  assert.equal(c.get(7), undefined);
  assert.equal(c.get(7 + 2 ** 32), 9);
  c.set(2 ** 49 + 11, 1); // full (3 keys held): starts over, then holds this one
  assert.equal(c.size, 1);
  assert.equal(c.get(0), undefined);
  assert.equal(c.get(2 ** 49 + 11), 1);
  now += 49;
  c.tick();
  assert.equal(c.get(2 ** 49 + 11), 1);
  now += 1;
  c.tick();
  assert.equal(c.get(2 ** 49 + 11), undefined);
  assert.equal(c.size, 0);
});

test('reads asked for in one turn go to the store as one hmget per hash, each field once', async () => {
  const store = new SqliteStore({ path: join(dir, 'batch.sqlite') }, silentLogger());
  await store.hincrMany('t:0', [
    ['a', 1],
    ['b', 2],
    ['c', 3],
  ]);
  await store.hincrMany('t:1', [['x', 7]]);
  const calls: Array<[string, string[]]> = [];
  const batcher = new HashReadBatcher({
    hmget: (key, fields) => {
      calls.push([key, [...fields]]);
      return store.hmget(key, fields);
    },
  });
  const [r1, r2, r3, r4] = await Promise.all([batcher.read('t:0', ['a', 'b']), batcher.read('t:0', ['c', 'a', 'zz']), batcher.read('t:1', ['x', 'y']), batcher.read('t:0', [])]);
  assert.deepEqual(r1, [1, 2]);
  assert.deepEqual(r2, [3, 1, 0]);
  assert.deepEqual(r3, [7, 0]);
  assert.deepEqual(r4, []);
  assert.deepEqual(calls, [
    ['t:0', ['a', 'b', 'c', 'zz']],
    ['t:1', ['x', 'y']],
  ]);
  // A later turn is a new read.
  assert.deepEqual(await batcher.read('t:0', ['b']), [2]);
  assert.equal(calls.length, 3);
  // A failed read fails every caller that shared it.
  await store.close();
  const results = await Promise.allSettled([batcher.read('t:0', ['a']), batcher.read('t:0', ['b'])]);
  assert.deepEqual(
    results.map((r) => r.status === 'rejected' && r.reason instanceof StoreUnavailableError),
    [true, true],
  );
});

test('classifyCounts gives what classify gives, and names tokens only when the clues are read', () => {
  const tokens = Array.from({ length: 400 }, (_, i) => `t${i}`);
  // Spread-out counts, some unknown, some weak, more strong ones than maxClues.
  const counts = tokens.map((_, i) => ({ spam: (i * 7) % 13, ham: (i * 11) % 17 }));
  const plain = classify(tokens, counts, 40, 60, DEFAULT_BAYES);
  const named: number[] = [];
  const fast = classifyCounts(
    Float64Array.from(counts, (c) => c.spam),
    Float64Array.from(counts, (c) => c.ham),
    40,
    60,
    DEFAULT_BAYES,
    (i) => {
      named.push(i);
      return tokens[i]!;
    },
  );
  assert.equal(fast.probability, plain.probability);
  assert.deepEqual(named, []);
  assert.equal(fast.clues.length, DEFAULT_BAYES.maxClues);
  assert.deepEqual(fast.clues, plain.clues);
  assert.equal(named.length, DEFAULT_BAYES.maxClues);
  assert.equal(fast.clues, fast.clues, 'made once');
});

test('packed counts unpack as unpack() does, a negative count as none', () => {
  const packed = [0, 3, 5 * 2 ** 26, 5 * 2 ** 26 + 9, -4];
  const { spam, ham } = unpackAll(packed);
  assert.deepEqual(
    packed.map((_, i) => ({ spam: spam[i], ham: ham[i] })),
    packed.map(unpack),
  );
});

test('tokens packed for the trip from a worker read back the same, one at a time or all', () => {
  const raw = 'From: a@example.net\r\nSubject: Grüße — ¡hola! 日本語\r\n\r\nplain words here, viagra v-i-a-g-r-a\r\n';
  const ctx = { ourDomains: [], authenticated: false, now: Date.UTC(2025, 0, 1) };
  const data = analyzeData(raw, 1 << 19, ctx, 42);
  const packed = packAnalysisData(data);
  assert.equal(packed.text, data.tokens.join(''));
  const a = toAnalysis(packed, raw, 1 << 19);
  assert.equal(a.tokenCount, data.tokens.length);
  assert.deepEqual(
    Array.from({ length: a.tokenCount }, (_, i) => a.tokenAt(i)),
    data.tokens,
  );
  assert.deepEqual(a.tokens, data.tokens);
  assert.deepEqual([...a.hashes!], [...data.hashes!]);
  assert.deepEqual(a.hits, data.hits);
  assert.equal(a.digest, toAnalysis(data, raw, 1 << 19).digest);
  const none = toAnalysis(packAnalysisData({ tokens: [], hits: [] }), '', 1 << 19);
  assert.equal(none.tokenCount, 0);
  assert.deepEqual(none.tokens, []);
});

test('bayesBand: each band from its lower bound up to the next one', () => {
  assert.equal(bayesBand(0).name, 'BAYES_00');
  assert.equal(bayesBand(0.0099).name, 'BAYES_00');
  assert.equal(bayesBand(0.01).name, 'BAYES_05');
  assert.equal(bayesBand(0.5).name, 'BAYES_50');
  assert.equal(bayesBand(0.989).name, 'BAYES_95');
  assert.equal(bayesBand(0.99).name, 'BAYES_99');
  assert.equal(bayesBand(0.999).name, 'BAYES_999');
  assert.equal(bayesBand(1).name, 'BAYES_999');
  assert.equal(bayesBand(0.3, [{ from: 0.5, name: 'HIGH', points: 1 }]).name, 'HIGH', 'below every bound: the first band');
  // Points as chosen by cross-validation (docs/decisions/0005-spam-filter.md).
  assert.deepEqual(
    BAYES_BANDS.map((b) => b.points),
    [-2, -1, -0.3, 0, 1.5, 2.5, 3.5, 4, 4.5, 6],
  );
});

test('messages scored together (reads coalesced) score as when scored one by one', async () => {
  const store = new SqliteStore({ path: join(dir, 'together.sqlite') }, silentLogger());
  const f = new SpamFilter({ store, minLearned: 1 });
  const mail = (subject: string, body: string, n: number): string => `From: x${n}@example.net\r\nSubject: ${subject}\r\nMessage-ID: <${n}@example.net>\r\n\r\n${body}\r\n`;
  const spam = ['cheap pills online now', 'win money prize claim now', 'discount pills order now'];
  const ham = ['meeting notes for the release', 'review the patch before friday', 'lunch on thursday with the team'];
  for (const [i, b] of spam.entries()) await f.learn(mail('offer', b, i), 'spam');
  for (const [i, b] of ham.entries()) await f.learn(mail('notes', b, 10 + i), 'ham');
  const probe = [mail('offer', 'cheap pills, claim your prize', 20), mail('notes', 'patch review at the meeting', 21), mail('hello', 'thursday pills meeting', 22)];
  const alone: number[] = [];
  for (const m of probe) alone.push((await new SpamFilter({ store, minLearned: 1 }).score(m)).bayes!.probability);
  const g = new SpamFilter({ store, minLearned: 1 });
  const together = await Promise.all(probe.map((m) => g.score(m)));
  assert.deepEqual(
    together.map((r) => r.bayes!.probability),
    alone,
  );
  assert.ok(alone[0]! > 0.9 && alone[1]! < 0.1, `probabilities ${alone.join(', ')}`);
  // The cache answers the second time, with the same counts.
  const again = await Promise.all(probe.map((m) => g.score(m)));
  assert.deepEqual(
    again.map((r) => r.bayes!.probability),
    alone,
  );
  await store.close();
});
