// Training input: single files, folders (recursively), Maildirs (cur/ and new/, not tmp/ and not
// their subfolders) and mbox files with mboxrd quoting; learnPaths over all of them with progress
// and a summary, relearning and forgetting; learning from moves in and out of Junk. Real SQLite.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../src/observe/log.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { SpamFilter } from '../../src/spam/filter.ts';
import { learnFolderMoves, markedSpam } from '../../src/spam/folders.ts';
import { isMaildir, readMbox, readMessages } from '../../src/spam/sources.ts';
import { formatSummary, learnPaths, type LearnProgress } from '../../src/spam/train.ts';

let dir: string;
const stores: SqliteStore[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailward-spam-src-'));
});
after(async () => {
  for (const s of stores) await s.close();
  await rm(dir, { recursive: true, force: true });
});

const msg = (n: string, body = `body of ${n}`): string => `From: ${n}@example.net\nSubject: message ${n}\nMessage-ID: <${n}@example.net>\n\n${body}\n`;

async function collect(path: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for await (const m of readMessages(path)) out.push([m.source.slice(dir.length + 1), m.raw.toString()]);
  return out;
}

test('an mbox: messages split at "From " lines after an empty line, >From unquoted once', async () => {
  const path = join(dir, 'inbox.mbox');
  await writeFile(
    path,
    [
      'From alice@example.net Thu Aug 22 13:17:22 2002',
      'Subject: one',
      '',
      'first line',
      '>From the start, quoted',
      '>>From twice quoted',
      'From inside a paragraph is not a separator',
      '',
      'From bob@example.net Thu Aug 22 13:18:00 2002',
      'Subject: two',
      '',
      'second',
      '',
      'From carol@example.net Thu Aug 22 13:19:00 2002',
      'Subject: three',
      '',
      'no newline at the end',
    ].join('\n'),
  );
  const got = await collect(path);
  assert.deepEqual(got, [
    ['inbox.mbox#1', 'From alice@example.net Thu Aug 22 13:17:22 2002\nSubject: one\n\nfirst line\nFrom the start, quoted\n>From twice quoted\nFrom inside a paragraph is not a separator\n'],
    ['inbox.mbox#2', 'From bob@example.net Thu Aug 22 13:18:00 2002\nSubject: two\n\nsecond\n'],
    ['inbox.mbox#3', 'From carol@example.net Thu Aug 22 13:19:00 2002\nSubject: three\n\nno newline at the end'],
  ]);
});

test('an mbox larger than the stream chunk, with CRLF lines, splits the same', async () => {
  const path = join(dir, 'big.mbox');
  const body = 'x'.repeat(700_000);
  await writeFile(path, `From a@x Mon Jan  1 00:00:00 2024\r\nSubject: a\r\n\r\n${body}\r\n\r\nFrom b@x Mon Jan  1 00:00:00 2024\r\nSubject: b\r\n\r\nsmall\r\n`);
  const sizes: number[] = [];
  for await (const m of readMbox(path)) sizes.push(m.raw.length);
  assert.deepEqual(sizes, [`From a@x Mon Jan  1 00:00:00 2024\r\nSubject: a\r\n\r\n${body}\r\n`.length, `From b@x Mon Jan  1 00:00:00 2024\r\nSubject: b\r\n\r\nsmall\r\n`.length]);
  const skipped: string[] = [];
  const small: number[] = [];
  for await (const m of readMbox(path, { maxBytes: 1000, onSkip: (s, why) => skipped.push(`${s.slice(dir.length + 1)}: ${why}`) })) small.push(m.raw.length);
  assert.deepEqual(skipped, ['big.mbox#1: larger than 1000 bytes']);
  assert.equal(small.length, 1);
});

test('a Maildir yields cur/ and new/, never tmp/, dot-files or its Maildir++ subfolders', async () => {
  const md = join(dir, 'Maildir');
  for (const sub of ['cur', 'new', 'tmp', '.Junk/cur', '.Junk/new', '.Junk/tmp']) await mkdir(join(md, sub), { recursive: true });
  await writeFile(join(md, 'cur', '1000.M1.host:2,S'), msg('c1'));
  await writeFile(join(md, 'new', '1001.M2.host'), msg('n1'));
  await writeFile(join(md, 'tmp', '1002.M3.host'), msg('t1'));
  await writeFile(join(md, 'cur', '.hidden'), msg('h1'));
  await writeFile(join(md, '.Junk', 'cur', '1003.M4.host:2,S'), msg('j1'));
  assert.equal(await isMaildir(md), true);
  assert.equal(await isMaildir(join(md, 'cur')), false);
  assert.deepEqual((await collect(md)).map(([s]) => s), ['Maildir/cur/1000.M1.host:2,S', 'Maildir/new/1001.M2.host']);
  assert.deepEqual((await collect(join(md, '.Junk'))).map(([s]) => s), ['Maildir/.Junk/cur/1003.M4.host:2,S']);
});

test('a folder is walked recursively in name order; a Maildir inside it is read as one', async () => {
  const f = join(dir, 'folder');
  await mkdir(join(f, 'b', 'md', 'cur'), { recursive: true });
  await mkdir(join(f, 'b', 'md', 'new'), { recursive: true });
  await mkdir(join(f, 'b', 'md', 'tmp'), { recursive: true });
  await writeFile(join(f, 'a.eml'), msg('a'));
  await writeFile(join(f, 'b', 'c.eml'), msg('c'));
  await writeFile(join(f, 'b', 'md', 'new', '1.host'), msg('m'));
  await writeFile(join(f, 'b', 'md', 'tmp', '2.host'), msg('t'));
  await writeFile(join(f, '.DS_Store'), 'junk');
  await writeFile(join(f, 'empty.eml'), '');
  assert.deepEqual((await collect(f)).map(([s]) => s), ['folder/a.eml', 'folder/b/c.eml', 'folder/b/md/new/1.host']);
});

test('learnPaths: learns files, folders and an mbox, reports progress, dedupes, then forgets', async () => {
  const store = new SqliteStore({ path: join(dir, 'learn.sqlite') }, silentLogger());
  stores.push(store);
  const filter = new SpamFilter({ store, minLearned: 1 });
  const spamDir = join(dir, 'spam');
  await mkdir(spamDir);
  for (const n of ['s1', 's2', 's3']) await writeFile(join(spamDir, `${n}.eml`), msg(n, 'cheap pills, order now'));
  await writeFile(join(spamDir, 's1-copy.eml'), msg('s1', 'cheap pills, order now'));
  const mbox = join(dir, 'more-spam.mbox');
  await writeFile(mbox, `From x Thu Aug 22 13:17:22 2002\n${msg('s4')}\nFrom y Thu Aug 22 13:17:22 2002\n${msg('s5')}`);
  const progress: LearnProgress[] = [];
  const s = await learnPaths(filter, [spamDir, mbox, join(dir, 'no-such-file')], { as: 'spam', onProgress: (p) => progress.push(p), batchSize: 2 });
  assert.equal(s.messages, 6);
  assert.equal(s.learned, 5);
  assert.equal(s.already, 1);
  assert.equal(s.failed, 1);
  assert.match(s.failures[0]!.error, /ENOENT/);
  assert.equal(s.failures[0]!.source, join(dir, 'no-such-file'));
  assert.equal(progress.length, 6);
  assert.equal(progress.at(-1)!.source, `${mbox}#2`);
  assert.deepEqual(await filter.totals(), { nspam: 5, nham: 0 });
  assert.match(formatSummary(s), /^6 messages: 5 learned, 1 already learned, 1 failed \(\d+\.\d s\)$/);

  const moved = await learnPaths(filter, [mbox], { as: 'ham' });
  assert.equal(moved.relearned, 2);
  assert.deepEqual(await filter.totals(), { nspam: 3, nham: 2 });

  const forgot = await learnPaths(filter, [spamDir, mbox], { forget: true });
  assert.deepEqual([forgot.forgotten, forgot.notLearned], [5, 1]);
  assert.deepEqual(await filter.totals(), { nspam: 0, nham: 0 });
  await assert.rejects(learnPaths(filter, [mbox], {}), /as: "spam"/);
});

test('learnFolderMoves: moved into Junk → spam, marked spam but moved out → ham, the rest untouched', async () => {
  const store = new SqliteStore({ path: join(dir, 'moves.sqlite') }, silentLogger());
  stores.push(store);
  const filter = new SpamFilter({ store, minLearned: 1 });
  const md = join(dir, 'user', 'Maildir');
  for (const sub of ['cur', 'new', 'tmp', '.Junk/cur', '.Junk/new', '.Junk/tmp', '.Trash/cur', '.Trash/new', '.Trash/tmp']) await mkdir(join(md, sub), { recursive: true });
  const yes = 'X-Spam-Score: 7.0\nX-Spam-Status: Yes, score=7.0 required=5.0 tests=BAYES_99\nX-Spam-Flag: YES\n';
  const no = 'X-Spam-Score: -2.0\nX-Spam-Status: No, score=-2.0 required=5.0 tests=BAYES_00\n';
  await writeFile(join(md, '.Junk', 'cur', 'a:2,S'), no + msg('missed-spam'));
  await writeFile(join(md, '.Junk', 'new', 'b'), yes + msg('caught-spam'));
  await writeFile(join(md, 'cur', 'c:2,S'), yes + msg('false-positive'));
  await writeFile(join(md, 'cur', 'd:2,S'), no + msg('plain-ham'));
  await writeFile(join(md, '.Trash', 'cur', 'e:2,S'), yes + msg('deleted'));
  assert.equal(markedSpam(Buffer.from(yes + msg('x'))), true);
  assert.equal(markedSpam(Buffer.from(no + msg('x'))), false);
  assert.equal(markedSpam(Buffer.from(msg('x'))), undefined);

  const first = await learnFolderMoves(filter, md);
  assert.deepEqual([first.messages, first.learned, first.failed], [2, 2, 0]);
  assert.deepEqual(await filter.totals(), { nspam: 1, nham: 1 });
  assert.equal(await filter.db.seen(filter.analyze(no + msg('missed-spam')).digest), 'spam');
  assert.equal(await filter.db.seen(filter.analyze(yes + msg('false-positive')).digest), 'ham');

  const again = await learnFolderMoves(filter, md);
  assert.deepEqual([again.messages, again.already], [2, 2], 'running again changes nothing');

  // The user moves the false positive back into Junk after all.
  await writeFile(join(md, '.Junk', 'cur', 'c:2,S'), yes + msg('false-positive'));
  await rm(join(md, 'cur', 'c:2,S'));
  const back = await learnFolderMoves(filter, md);
  assert.equal(back.relearned, 1);
  assert.deepEqual(await filter.totals(), { nspam: 2, nham: 0 });
  const none = await learnFolderMoves(filter, md, { since: Date.now() + 60_000 });
  assert.equal(none.messages, 0);
});
