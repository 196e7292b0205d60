// The spam filter's background jobs on real files and a real SQLite store: a message a user moved
// into .Junk is learned as spam (and one moved out of it as ham) in one pass, the next pass goes
// on from a mark kept in dataDir; the quarantine is purged by age on an injected clock; the token
// expiry runs once a day; a failing job logs and does not throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { testConfig } from '../harness/server.ts';
import { captureLog, envelope, queueMessage, tempDir } from '../queue/helpers.ts';
import { openStore } from '../../src/app/store.ts';
import { localMaildirs, startSpamJobs } from '../../src/app/spam-jobs.ts';
import { Spool } from '../../src/queue/spool.ts';
import { quarantinePath } from '../../src/queue/quarantine.ts';
import { SpamFilter } from '../../src/spam/filter.ts';
import { silentLogger } from '../../src/observe/log.ts';

const DAY = 86_400_000;

function maildir(dir: string): string {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(path.join(dir, sub), { recursive: true });
  return dir;
}

const mail = (subject: string, extra: string[] = []): string => [...extra, 'From: Someone <someone@example.net>', 'To: bob@example.org', `Subject: ${subject}`, `Message-ID: <${subject.replace(/\W/g, '')}@example.net>`, '', `Text of ${subject}.`, ''].join('\r\n');

test('one pass learns a move into .Junk as spam and a move out of it as ham; the next pass goes on from the mark', async (t) => {
  const dir = await tempDir(t, 'mailward-jobs-');
  const config = testConfig(dir);
  const store = await openStore(config, silentLogger());
  t.after(() => store.close());
  const filter = new SpamFilter({ store });
  const cap = captureLog();
  const bob = maildir(path.join(config.paths.mail, 'example.org', 'bob', 'Maildir'));
  const junk = maildir(path.join(bob, '.Junk'));
  maildir(path.join(config.paths.mail, 'example.org', 'carol', 'Maildir'));
  const moved = mail('cheap watches, moved into Junk');
  writeFileSync(path.join(junk, 'cur', '1700000001.M1P1.mx:2,S'), moved);
  const rescued = mail('invoice marked by us, moved out of Junk', ['X-Spam-Flag: YES', 'X-Spam-Status: Yes, score=6.1 required=5.0 tests=BAYES_80 autolearn=no']);
  writeFileSync(path.join(bob, 'cur', '1700000002.M2P1.mx:2,S'), rescued);
  writeFileSync(path.join(bob, 'new', '1700000003.M3P1.mx'), mail('ordinary mail in the inbox'));
  assert.deepEqual(await localMaildirs(config.paths.mail), [bob, path.join(config.paths.mail, 'example.org', 'carol', 'Maildir')]);

  const jobs = startSpamJobs({ config, store, filter, log: cap.log });
  t.after(() => jobs.stop());
  const first = await jobs.learnFolders();
  assert.deepEqual(first, { mailboxes: 2, read: 2, learned: 2, failed: 0, since: undefined });
  assert.equal(await filter.db.seen(filter.analyze(moved).digest), 'spam');
  assert.equal(await filter.db.seen(filter.analyze(rescued).digest), 'ham');
  assert.deepEqual(await filter.totals(), { nspam: 1, nham: 1 });
  const mark = JSON.parse(readFileSync(path.join(dir, 'spam-folders.json'), 'utf8')) as { since: number };
  assert.equal(typeof mark.since, 'number');
  assert.equal(cap.events('spam-folders').length, 1);

  // Another move into Junk: the next pass, from the mark, learns only that one.
  const later = mail('lottery prize, moved into Junk later');
  writeFileSync(path.join(bob, 'new', '1700000004.M4P1.mx'), later);
  renameSync(path.join(bob, 'new', '1700000004.M4P1.mx'), path.join(junk, 'cur', '1700000004.M4P1.mx:2,S'));
  const second = await jobs.learnFolders();
  assert.equal(second?.since, mark.since);
  assert.equal(second?.learned, 1);
  assert.equal(await filter.db.seen(filter.analyze(later).digest), 'spam');
  assert.deepEqual(await filter.totals(), { nspam: 2, nham: 1 });
});

test('the quarantine is purged by age on the injected clock, on the own spool or on its own', async (t) => {
  const dir = await tempDir(t, 'mailward-jobs-');
  const config = testConfig(dir, { checks: { spam: { quarantineDays: 30 } } });
  const store = await openStore(config, silentLogger());
  t.after(() => store.close());
  const t0 = Date.parse('2025-03-01T12:00:00Z');
  let now = t0;
  const spool = await Spool.open(config.paths.spool, { log: silentLogger(), fsync: false });
  const ids: string[] = [];
  for (const ageDays of [40, 29, 1]) {
    const id = await queueMessage(spool, envelope({ receivedAt: t0 - ageDays * DAY }), 'Subject: spam\r\n\r\nx\r\n');
    await spool.move(id, 'queue', 'quarantine');
    ids.push(id);
  }
  const there = (): boolean[] => ids.map((id) => existsSync(quarantinePath(config.paths.spool, id)));
  const cap = captureLog();
  const jobs = startSpamJobs({ config, store, log: cap.log, clock: () => now, spool });
  t.after(() => jobs.stop());
  assert.deepEqual(await jobs.purgeQuarantine(), { matched: 1, changed: 1, missing: 0 });
  assert.deepEqual(there(), [false, true, true]);
  assert.equal(cap.events('quarantine-purge')[0]?.deleted, 1);
  now = t0 + 2 * DAY;
  assert.deepEqual(await jobs.purgeQuarantine(), { matched: 1, changed: 1, missing: 0 });
  assert.deepEqual(there(), [false, false, true]);
  await spool.close();
  // Without a spool of its own (no server running): the job opens the spool itself.
  const alone = startSpamJobs({ config, store, log: cap.log, clock: () => t0 + 31 * DAY });
  t.after(() => alone.stop());
  assert.deepEqual(await alone.purgeQuarantine(), { matched: 1, changed: 1, missing: 0 });
  assert.deepEqual(there(), [false, false, false]);
});

test('token expiry runs once a day across nodes; a failing job logs once and resolves', async (t) => {
  const dir = await tempDir(t, 'mailward-jobs-');
  const config = testConfig(dir);
  const store = await openStore(config, silentLogger());
  let now = Date.parse('2025-03-01T12:00:00Z');
  const cap = captureLog();
  const jobs = startSpamJobs({ config, store, log: cap.log, clock: () => now });
  t.after(() => jobs.stop());
  assert.equal(await jobs.expireTokens(), true);
  assert.equal(await jobs.expireTokens(), false, 'done today already');
  const other = startSpamJobs({ config, store, log: cap.log, clock: () => now });
  t.after(() => other.stop());
  assert.equal(await other.expireTokens(), false, 'another node sharing the store does not repeat it');
  now += DAY;
  assert.equal(await other.expireTokens(), true);
  assert.deepEqual(cap.events('bayes-expire').map((l) => [l.level, l.dropped]), [[30, 0], [30, 0]]);

  // The store goes away: each job logs one line and resolves.
  const bob = maildir(path.join(config.paths.mail, 'example.org', 'bob', 'Maildir'));
  writeFileSync(path.join(maildir(path.join(bob, '.Junk')), 'cur', '1700000001.M1P1.mx:2,S'), mail('moved into Junk'));
  await store.close();
  now += DAY;
  assert.equal(await jobs.expireTokens(), false);
  assert.equal(await jobs.learnFolders(), undefined);
  const problems = cap.lines.filter((l) => (l.level as number) >= 40);
  assert.deepEqual(problems.map((l) => [l.level, l.event, l.err]), [
    [50, 'bayes-expire', 'the store is closed'],
    [50, 'spam-folders', 'the store is closed'],
  ]);
  assert.equal(existsSync(path.join(dir, 'spam-folders.json')), false, 'the mark does not move past a pass that failed');
});
