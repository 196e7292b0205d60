// Learning and scoring against a real SQLite store in a temporary folder: learn a few spam and
// ham messages, then a similar spam scores high and a similar ham low; forgetting undoes
// learning; a message is never counted twice; rare old tokens expire; two nodes share counts,
// on one SQLite file and on a real Redis.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../src/observe/log.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { AnalysisPool } from '../../src/spam/analysis-pool.ts';
import { SpamFilter } from '../../src/spam/filter.ts';
import { startRedis } from '../harness/redis.ts';

let dir: string;
let n = 0;
const stores: SqliteStore[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailward-spam-'));
});
after(async () => {
  for (const s of stores) await s.close();
  await rm(dir, { recursive: true, force: true });
});

function newStore(path = join(dir, `bayes-${++n}.sqlite`)): SqliteStore {
  const s = new SqliteStore({ path }, silentLogger());
  stores.push(s);
  return s;
}

const crlf = (lines: string[]): string => lines.join('\r\n');
function mail(from: string, subject: string, body: string, id: string): string {
  return crlf([`From: ${from}`, 'To: team@example.org', `Subject: ${subject}`, 'Date: Tue, 3 Sep 2002 10:00:00 +0200', `Message-ID: <${id}@example.net>`, '', body]);
}

const SPAM = [
  mail('Deals <deals@cheap-pills.example>', 'Cheap meds, no prescription', 'Buy cheap viagra and cialis online. Discount pharmacy, no prescription needed. Order now!', 's1'),
  mail('Winner <lotto@prize.example>', 'You won the lottery', 'Claim your prize money now. Send your bank account details to receive the transfer. Act now!', 's2'),
  mail('Offers <offer@loans.example>', 'Lowest mortgage rates', 'Refinance today at the lowest rates. Guaranteed approval, no credit check. Click here to order now!', 's3'),
  mail('Deals <deals@replica.example>', 'Replica watches', 'Luxury replica watches at discount prices. Order now, free shipping, money back guarantee!', 's4'),
];
const HAM = [
  mail('Carol <carol@example.net>', 'Meeting notes', 'Here are the notes from the planning meeting. The release branch is frozen on Friday; please review the patch.', 'h1'),
  mail('Dave <dave@example.net>', 'Re: build failure', 'The nightly build failed in the parser tests. I pushed a fix to the branch, please review before the release.', 'h2'),
  mail('Erin <erin@example.net>', 'Lunch on Thursday?', 'Shall we discuss the release plan over lunch on Thursday? The meeting room is booked too.', 'h3'),
  mail('Frank <frank@example.net>', 'Patch for the tokenizer', 'Attached is the patch for the tokenizer tests; the review comments from the meeting are addressed.', 'h4'),
];
const NEW_SPAM = mail('Deals <deals@cheap-pills.example>', 'Discount viagra', 'Cheap viagra, discount prices, no prescription. Order now and claim your free shipping!', 'n1');
const NEW_HAM = mail('Carol <carol@example.net>', 'Re: Meeting notes', 'Thanks for the notes. I will review the patch for the release branch before the meeting on Friday.', 'n2');

async function trained(opts: { clock?: () => number } = {}): Promise<SpamFilter> {
  const f = new SpamFilter({ store: newStore(), minLearned: 1, ...opts });
  for (const m of SPAM) assert.equal(await f.learn(m, 'spam'), 'learned');
  for (const m of HAM) assert.equal(await f.learn(m, 'ham'), 'learned');
  return f;
}

test('after learning a few of each, a similar spam scores high and a similar ham low', async () => {
  const f = await trained();
  assert.deepEqual(await f.totals(), { nspam: 4, nham: 4 });
  const s = await f.score(NEW_SPAM);
  const h = await f.score(NEW_HAM);
  assert.ok(s.bayes && h.bayes);
  assert.ok(s.bayes.probability > 0.99, `spam probability ${s.bayes.probability}`);
  assert.ok(h.bayes.probability < 0.01, `ham probability ${h.bayes.probability}`);
  assert.ok(s.score >= 5, `spam score ${s.score}`);
  assert.equal(h.score, -2);
  assert.deepEqual(h.hits.map((x) => x.name), ['BAYES_00']);
  assert.ok(s.bayes.clues.some((c) => c.token === 'viagra' && c.spam === 1 && c.ham === 0));
});

test('Bayes is not consulted before minLearned messages of each kind', async () => {
  const f = new SpamFilter({ store: newStore(), minLearned: 5 });
  for (const m of SPAM) await f.learn(m, 'spam');
  for (const m of HAM) await f.learn(m, 'ham');
  const r = await f.score(NEW_SPAM);
  assert.equal(r.bayes, undefined);
  assert.equal(r.score, 0);
  assert.deepEqual(r.totals, { nspam: 4, nham: 4 });
});

test('the same message is learned once, also as a copy with other trace and X-Spam fields', async () => {
  const f = await trained();
  assert.equal(await f.learn(SPAM[0]!, 'spam'), 'already');
  const copy = crlf(['Received: from elsewhere (x [192.0.2.1]) by mx; Tue, 3 Sep 2002 10:00:01 +0200', 'X-Spam-Status: Yes, score=9.9', SPAM[0]!.replace(/\r\n/g, '\n')]);
  assert.equal(await f.learn(copy, 'spam'), 'already');
  assert.deepEqual(await f.totals(), { nspam: 4, nham: 4 });
});

test('forgetting takes back exactly what learning added', async () => {
  const f = await trained();
  const a = f.analyze(NEW_SPAM);
  const tokens = a.tokens;
  const beforeCounts = (await f.db.counts(f.db.hashes(tokens), true)).counts;
  assert.equal(await f.learn(NEW_SPAM, 'spam'), 'learned');
  const learned = (await f.db.counts(f.db.hashes(tokens), true)).counts;
  assert.deepEqual(
    learned.map((c, i) => c.spam - beforeCounts[i]!.spam),
    tokens.map(() => 1),
  );
  assert.deepEqual(await f.totals(), { nspam: 5, nham: 4 });
  assert.equal(await f.forget(NEW_SPAM), 'forgotten');
  assert.deepEqual((await f.db.counts(f.db.hashes(tokens), true)).counts, beforeCounts);
  assert.deepEqual(await f.totals(), { nspam: 4, nham: 4 });
  assert.equal(await f.forget(NEW_SPAM), 'not-learned');
  assert.equal(await f.learn(NEW_SPAM, 'spam'), 'learned', 'once forgotten, it may be learned again');
});

test('a message learned as spam and then as ham is moved, not counted twice', async () => {
  const f = await trained();
  const tokens = f.analyze(SPAM[1]!).tokens;
  assert.equal(await f.learn(SPAM[1]!, 'ham'), 'relearned');
  assert.deepEqual(await f.totals(), { nspam: 3, nham: 5 });
  const counts = (await f.db.counts(f.db.hashes(tokens), true)).counts;
  assert.ok(counts.every((c) => c.ham >= 1));
  assert.equal(await f.db.seen(f.analyze(SPAM[1]!).digest), 'ham');
});

test('a batch learns like single calls and dedupes within itself', async () => {
  const f = new SpamFilter({ store: newStore(), minLearned: 1 });
  const b = f.batch(3);
  const outcomes = [];
  for (const m of [...SPAM, SPAM[0]!]) outcomes.push(await b.learn(m, 'spam'));
  for (const m of HAM) outcomes.push(await b.learn(m, 'ham'));
  outcomes.push(await b.learn(SPAM[2]!, 'ham'));
  await b.flush();
  assert.deepEqual(outcomes, ['learned', 'learned', 'learned', 'learned', 'already', 'learned', 'learned', 'learned', 'learned', 'relearned']);
  assert.deepEqual(await f.totals(), { nspam: 3, nham: 5 });
  const single = await trained();
  await single.learn(SPAM[2]!, 'ham');
  const tokens = f.analyze(NEW_SPAM).tokens;
  const tokensSingle = single.analyze(NEW_SPAM).tokens;
  assert.deepEqual((await f.db.counts(f.db.hashes(tokens), true)).counts, (await single.db.counts(single.db.hashes(tokensSingle), true)).counts);
});

test('expiry drops rare tokens not learned for a while and keeps the rest', async () => {
  let now = Date.UTC(2024, 0, 1);
  const f = new SpamFilter({ store: newStore(), minLearned: 1, clock: () => now });
  await f.learn(mail('x@old.example', 'zzyzx quokka', 'Antediluvian flibbertigibbet', 'o1'), 'spam');
  await f.learn(SPAM[0]!, 'spam');
  now += 40 * 86_400_000;
  await f.learn(HAM[0]!, 'ham');
  await f.learn(SPAM[0]!.replace('<s1@', '<s1b@'), 'spam'); // SPAM[0]'s tokens now seen twice
  const beforeCount = await f.db.tokenCount();
  const r = await f.expire({ maxAgeDays: 30, rareBelow: 2 });
  assert.equal(r.before, beforeCount);
  assert.ok(r.dropped > 0);
  assert.equal(r.after, await f.db.tokenCount());
  const oldOnly = ['antediluvian', 'flibbertigibbet', 'subject:quokka'];
  assert.deepEqual((await f.db.counts(f.db.hashes(oldOnly), true)).counts, [
    { spam: 0, ham: 0 },
    { spam: 0, ham: 0 },
    { spam: 0, ham: 0 },
  ]);
  const kept = ['viagra', 'meeting'];
  assert.deepEqual((await f.db.counts(f.db.hashes(kept), true)).counts, [
    { spam: 2, ham: 0 },
    { spam: 0, ham: 1 },
  ]);
  // A limit on the number of tokens drops the least recently learned first, down to 3/4 of it.
  now += 5 * 86_400_000;
  await f.learn(HAM[1]!, 'ham');
  const recent = f.analyze(HAM[1]!).tokens.length;
  const maxTokens = Math.ceil(recent / 0.75) + 1;
  const r2 = await f.expire({ maxAgeDays: 365, maxTokens });
  assert.ok(r2.after <= Math.floor(maxTokens * 0.75), `${r2.after} tokens left of ${r2.before}, limit ${maxTokens}`);
  assert.deepEqual((await f.db.counts(f.db.hashes(['nightly', 'meeting']), true)).counts, [
    { spam: 0, ham: 1 },
    { spam: 0, ham: 0 },
  ]);
});

test('two nodes share one database; a node sees the other’s learning once its cache ages out', async () => {
  const path = join(dir, 'shared.sqlite');
  let now = 1_000_000;
  const clock = (): number => now;
  const a = new SpamFilter({ store: newStore(path), minLearned: 1, clock });
  const b = new SpamFilter({ store: newStore(path), minLearned: 1, clock, cache: { ttlMs: 10_000 } });
  for (const m of SPAM.slice(0, 2)) await a.learn(m, 'spam');
  for (const m of HAM.slice(0, 2)) await a.learn(m, 'ham');
  const first = await b.score(NEW_SPAM);
  assert.deepEqual(first.totals, { nspam: 2, nham: 2 });
  for (const m of SPAM.slice(2)) await a.learn(m, 'spam');
  now += 1_000;
  const stale = await b.score(NEW_SPAM);
  assert.equal(stale.bayes?.probability, first.bayes?.probability, 'within the TTL the cached counts answer');
  now += 20_000;
  const fresh = await b.score(NEW_SPAM);
  assert.deepEqual(fresh.totals, { nspam: 4, nham: 2 });
  assert.notEqual(fresh.bayes?.probability, first.bayes?.probability);
  // The learning node sees its own learning at once.
  assert.deepEqual((await a.score(NEW_SPAM)).totals, { nspam: 4, nham: 2 });
});

test('on Redis: one node learns, another scores with the same counts; expiry rewrites buckets', async (t) => {
  const redis = await startRedis(t);
  const a = new RedisStore({ url: redis.url, keyPrefix: 'mw-spam-test:', timeoutMs: 2000 }, silentLogger());
  const b = new RedisStore({ url: redis.url, keyPrefix: 'mw-spam-test:', timeoutMs: 2000 }, silentLogger());
  t.after(async () => {
    await a.close();
    await b.close();
  });
  assert.equal(await a.waitReady(5000), true);
  assert.equal(await b.waitReady(5000), true);
  let now = Date.UTC(2024, 0, 1);
  const learner = new SpamFilter({ store: a, minLearned: 1, clock: () => now });
  const scorer = new SpamFilter({ store: b, minLearned: 1 });
  const batch = learner.batch(3);
  for (const m of SPAM) await batch.learn(m, 'spam');
  for (const m of HAM) await batch.learn(m, 'ham');
  await batch.flush();
  const s = await scorer.score(NEW_SPAM);
  const h = await scorer.score(NEW_HAM);
  assert.deepEqual(s.totals, { nspam: 4, nham: 4 });
  assert.ok(s.bayes && s.bayes.probability > 0.99);
  assert.ok(h.bayes && h.bayes.probability < 0.01);
  const local = new SpamFilter({ store: newStore(), minLearned: 1 });
  for (const m of SPAM) await local.learn(m, 'spam');
  for (const m of HAM) await local.learn(m, 'ham');
  assert.equal((await local.score(NEW_SPAM)).bayes?.probability, s.bayes.probability, 'the same counts on both backends');
  const tokens = await learner.db.tokenCount();
  now += 31 * 86_400_000;
  const r = await learner.expire({ maxAgeDays: 30, rareBelow: 2 });
  assert.equal(r.before, tokens);
  assert.equal(r.after, await learner.db.tokenCount());
  assert.ok(r.after < tokens && r.after > 0);
});

test('a worker pool reads messages exactly as the main thread does', async (t) => {
  const pool = new AnalysisPool({ size: 2 });
  t.after(() => pool.close());
  const local = await trained();
  const pooled = new SpamFilter({ store: local.db.store, minLearned: 1, pool, ourDomains: ['example.org'] });
  // Messages of 8 KiB or less are read on the calling thread (filter.ts INLINE_BYTES): these go past it.
  const big = (m: string): string => `${m}\r\n${'filler words for the pool '.repeat(400)}\r\n`;
  const forged = big(NEW_SPAM.replace('deals@cheap-pills.example', 'it@example.org'));
  for (const m of [big(NEW_SPAM), big(NEW_HAM), forged, ...SPAM.map(big)]) {
    const [a, b] = await Promise.all([pooled.analyzeAsync(m), Promise.resolve(new SpamFilter({ store: local.db.store, ourDomains: ['example.org'] }).analyze(m))]);
    assert.deepEqual(a.tokens, b.tokens);
    assert.ok(a.hashes, 'the worker hashes the tokens');
    assert.deepEqual([...a.hashes], [...pooled.db.hashes(b.tokens)]);
    assert.deepEqual(a.hits, b.hits);
    assert.equal(a.digest, b.digest);
  }
  assert.deepEqual((await pooled.analyzeAsync(forged)).hits.map((h) => h.name), ['FORGED_OWN_DOMAIN']);
  assert.deepEqual((await pooled.analyzeAsync(forged, { authenticated: true })).hits, []);
  assert.equal((await pooled.score(big(NEW_SPAM))).score, (await local.score(big(NEW_SPAM))).score);
  await pool.close();
  await assert.rejects(pooled.analyzeAsync(big(NEW_SPAM)), /closed/);
  // A small message never reaches the pool.
  assert.deepEqual((await pooled.analyzeAsync(NEW_SPAM)).tokens, local.analyze(NEW_SPAM).tokens);
});
