// The `spam` data-stage check with a real SQLite store: its score verdict (the session writes the
// X-Spam-* fields from the total), auto-learning, a forged own-domain sender, and its option checks;
// and the report helpers the session and CLI use (classify, subject prefix, explanation).
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { spam, SpamOptions } from '../../src/checks/spam.ts';
import type { CheckContext, CheckEnv, MessageFacts } from '../../src/pipeline/check.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { chi2Q, combine, tokenProbability } from '../../src/spam/bayes.ts';
import { SpamFilter } from '../../src/spam/filter.ts';
import { classify, explain, formatExplanation, formatScore, markSubject } from '../../src/spam/report.ts';
import { statusFields } from '../../src/core/spam-verdict.ts';

let dir: string;
let store: SqliteStore;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailward-spam-check-'));
  store = new SqliteStore({ path: join(dir, 'state.sqlite') }, silentLogger());
});
after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const env = (): CheckEnv => ({
  log: silentLogger(),
  clock: () => Date.UTC(2024, 5, 1),
  hostname: 'mx.example.org',
  domains: ['example.org'],
  directory: { isLocalDomain: (d) => d === 'example.org', resolveRecipient: () => ({ kind: 'unknown' }), sendAsAllowed: () => [] },
  dns: new Resolver(),
  store,
});
const ctx = (login?: string): CheckContext => ({
  session: { id: 'S1', listener: 'mx', listenerKind: 'mx', clientAddress: '192.0.2.1', clientPort: 2525, tls: false, ...(login ? { login } : {}) },
  signal: new AbortController().signal,
});
const facts = (raw: string): MessageFacts => ({ size: raw.length, headers: [], raw: async () => Buffer.from(raw) });
const crlf = (lines: string[]): string => lines.join('\r\n');

test('scores every message; the X-Spam-* fields are left to the session', async () => {
  const h = spam.create(SpamOptions.parse({}), env());
  const raw = crlf(['From: Carol <carol@example.net>', 'To: dave@example.org', 'Subject: Minutes', 'Date: Tue, 3 Sep 2002 10:00:00 +0200', 'Message-ID: <a@example.net>', '', 'See you tomorrow.']);
  const v = await h.data!(ctx(), facts(raw));
  assert.deepEqual(v, { kind: 'score', points: 0, rule: 'spam()' });
});

test('a forged own-domain sender without login, with no Date: a score, with the tests named', async () => {
  const h = spam.create(SpamOptions.parse({ spam: 3.5, kill: 8 }), env());
  const raw = crlf(['From: "IT desk" <it@example.org>', 'To: dave@example.org', 'Subject: Password expiry', '', 'Confirm your password at http://198.51.100.7/login now.']);
  const v = await h.data!(ctx(), facts(raw));
  assert.deepEqual(v, { kind: 'score', points: 7, rule: 'spam(FORGED_OWN_DOMAIN,MISSING_DATE,MISSING_MID,URI_NUMERIC_IP,MISSING_DATE_AND_MID)' });
  const loggedIn = await h.data!(ctx('it@example.org'), facts(raw));
  assert.equal(loggedIn.kind === 'score' && loggedIn.points, 3);
});

test('auto-learning learns clear cases once and says so in X-Spam-Autolearn', async () => {
  const h = spam.create(SpamOptions.parse({ tag: 1, autolearn: { spamAbove: 6, hamBelow: -1 } }), env());
  const raw = crlf(['From: "IT desk" <it@example.org>', 'To: dave@example.org', 'Subject: Password expiry', '', 'Confirm at http://198.51.100.7/login now.']);
  const v = await h.data!(ctx(), facts(raw));
  assert.equal(v.kind, 'score');
  assert.deepEqual(v.kind === 'score' && v.headers, ['X-Spam-Autolearn: spam']);
  const f = new SpamFilter({ store, minLearned: 1 });
  assert.deepEqual(await f.totals(), { nspam: 1, nham: 0 });
  const again = await h.data!(ctx(), facts(raw));
  assert.ok(again.kind === 'score' && again.headers === undefined, 'learned once only');
  const low = await h.data!(ctx(), facts(crlf(['From: a@example.net', 'Date: Tue, 3 Sep 2002 10:00:00 +0200', 'Message-ID: <b@example.net>', '', 'hi'])));
  assert.deepEqual(low, { kind: 'score', points: 0, rule: 'spam()' });
});

test('option errors name the setting and the fix', () => {
  const bad = SpamOptions.safeParse({ spam: 6, kill: 5 });
  assert.ok(!bad.success);
  assert.deepEqual(
    bad.error.issues.map((i) => [i.path.join('.'), i.message]),
    [['kill', 'kill (5) must be above spam (6); e.g. spam: 5.0, kill: 10.0']],
  );
  const learn = SpamOptions.safeParse({ autolearn: { spamAbove: 3, hamBelow: 6 } });
  assert.deepEqual(
    learn.error!.issues.map((i) => i.path.join('.')),
    ['autolearn.hamBelow', 'autolearn.spamAbove'],
  );
  assert.equal(SpamOptions.safeParse({ autolearn: false }).success, true);
  assert.equal(SpamOptions.safeParse({ unknown: 1 }).success, false);
});

test('classify, formatScore, markSubject and statusFields', () => {
  assert.deepEqual([classify(4.9), classify(5), classify(9.99), classify(10), classify(-3)], ['ham', 'spam', 'spam', 'kill', 'ham']);
  assert.equal(classify(6, { spam: 7, kill: 12 }), 'ham');
  assert.deepEqual([formatScore(6.849), formatScore(-0.04), formatScore(-1.95), formatScore(0)], ['6.8', '0.0', '-1.9', '0.0']);
  assert.equal(markSubject('Hello', '*****SPAM*****'), '*****SPAM***** Hello');
  assert.equal(markSubject('*****SPAM***** Hello', '*****SPAM*****'), '*****SPAM***** Hello');
  assert.equal(markSubject(undefined, '[SPAM]'), '[SPAM]');
  assert.deepEqual(
    statusFields(6.8, ['HTML_ONLY', 'BAYES_99'], { spam: 5 }),
    ['X-Spam-Score: 6.8', 'X-Spam-Status: Yes, score=6.8 required=5.0 tests=BAYES_99,HTML_ONLY', 'X-Spam-Flag: YES'],
  );
});

test('explain: score, class and the strongest tokens either way', async () => {
  const f = new SpamFilter({ store: new SqliteStore({ path: join(dir, 'explain.sqlite') }, silentLogger()), minLearned: 1 });
  for (const n of [1, 2, 3, 4, 5]) {
    await f.learn(crlf(['Subject: cheap pills', 'Date: Tue, 3 Sep 2002 10:00:00 +0200', `Message-ID: <s${n}@y>`, '', 'buy cheap pills now']), 'spam');
    await f.learn(crlf(['Subject: meeting notes', 'Date: Tue, 3 Sep 2002 10:00:00 +0200', `Message-ID: <h${n}@y>`, '', 'notes of the meeting']), 'ham');
  }
  const e = await explain(f, crlf(['Subject: cheap pills', 'Date: Tue, 3 Sep 2002 10:00:00 +0200', 'Message-ID: <w@y>', '', 'cheap pills here']));
  assert.equal(e.class, 'spam');
  assert.equal(e.result.bayes?.band, 'BAYES_999');
  const text = formatExplanation(e);
  assert.match(text, /^score 7\.5 \(spam at 5\.0, kill at 10\.0\): spam$/m);
  assert.match(text, /^ {4}1\.5 {2}MISSING_FROM {7}No From: header field/m);
  assert.match(text, /^Bayes: spam probability 0\.9998 from 5 of 16 tokens \(learned 5 spam, 5 ham\)$/m);
  assert.match(text, /^ {4}6\.0 {2}BAYES_999 +Bayes spam probability /m);
  assert.match(text, /^ {4}0\.\d{3} {2}subject:pills {2}\(spam 5, ham 0\)$/m);
  await f.db.store.close();
});

test('Bayes arithmetic: Robinson f(w), chi-square tail, Fisher combination', () => {
  // Seen once in 1 of 10 spam and never in 10 ham: (0.45·0.5 + 1·1) / (0.45 + 1).
  assert.equal(tokenProbability(1, 0, 10, 10), 1.225 / 1.45);
  assert.equal(tokenProbability(0, 0, 10, 10), 0.5);
  assert.equal(chi2Q(0, 4), 1);
  assert.ok(Math.abs(chi2Q(4, 4) - 3 * Math.exp(-2)) < 1e-12);
  assert.equal(combine([]), 0.5);
  assert.ok(combine([0.99, 0.99, 0.99]) > 0.99);
  assert.ok(combine([0.01, 0.01, 0.01]) < 0.01);
  assert.ok(Math.abs(combine([0.99, 0.01]) - 0.5) < 1e-9, 'evidence both ways is unsure');
});
