// `mailward learn` and `mailward spam score`, run in-process against a real SQLite store: learn
// spam from a Maildir and an mbox and ham from a folder, see the Bayes band of a new message move,
// --forget takes it back, nothing unreadable is a failure, and no progress line off a terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { mailward, setupConfig } from './inprocess.ts';
import { estimateMessages } from '../../src/shells/cli/spam.ts';

const SPAM_WORDS = 'viagra cheap pharmacy discount prescription lottery winner prize claim casino bonus loan mortgage refinance replica watches luxury offer limited guaranteed click unsubscribe money cash investment bitcoin profit deal pills order'.split(' ');
const HAM_WORDS = 'meeting release branch patch review build parser tests lunch thursday agenda notes deploy schedule project budget report draft slides customer invoice roadmap sprint ticket design question thanks team office conference'.split(' ');

/** A small deterministic generator, so each run learns the same messages. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function message(kind: 'spam' | 'ham', i: number, rand: () => number): string {
  const words = kind === 'spam' ? SPAM_WORDS : HAM_WORDS;
  const pick = (): string => words[Math.floor(rand() * words.length)]!;
  const body = Array.from({ length: 40 }, pick).join(' ');
  const from = kind === 'spam' ? `Deals <deals${i}@offers.example>` : `Carol <carol@example.net>`;
  return [`From: ${from}`, 'To: bob@example.org', `Subject: ${pick()} ${pick()} ${i}`, 'Date: Tue, 3 Sep 2024 10:00:00 +0200', `Message-ID: <${kind}${i}@example.net>`, '', body, ''].join('\r\n');
}

function mbox(messages: string[]): string {
  return messages.map((m) => `From sender@example.net Tue Sep  3 10:00:00 2024\n${m.replace(/\r\n/g, '\n').replace(/^From /gm, '>From ')}\n`).join('');
}

function corpus(dir: string): { spamMaildir: string; spamMbox: string; hamDir: string; probe: string } {
  const rand = rng(42);
  const spamMaildir = path.join(dir, 'Spam');
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(path.join(spamMaildir, sub), { recursive: true });
  for (let i = 0; i < 120; i++) writeFileSync(path.join(spamMaildir, i % 2 ? 'cur' : 'new', `${1700000000 + i}.M${i}P1.host${i % 2 ? ':2,S' : ''}`), message('spam', i, rand));
  const spamMbox = path.join(dir, 'spam.mbox');
  writeFileSync(spamMbox, mbox(Array.from({ length: 80 }, (_x, i) => message('spam', 120 + i, rand))));
  const hamDir = path.join(dir, 'ham');
  mkdirSync(path.join(hamDir, 'sub'), { recursive: true });
  for (let i = 0; i < 200; i++) writeFileSync(path.join(hamDir, i < 100 ? '' : 'sub', `${i}.eml`), message('ham', i, rand));
  const probe = path.join(dir, 'probe.eml');
  writeFileSync(probe, message('spam', 999, rand));
  return { spamMaildir, spamMbox, hamDir, probe };
}

test('learn from a Maildir, an mbox and a folder; spam score shows the Bayes band move; --forget reverses it', async (t) => {
  const { dir, config } = setupConfig(t);
  const c = corpus(dir);
  assert.equal(await estimateMessages([c.spamMaildir, c.spamMbox]), 200, 'the estimate for the progress line counts Maildir files and mbox messages');

  const before = await mailward(['spam', 'score', c.probe, '--config', config]);
  assert.equal(before.code, 0, before.err);
  assert.match(before.out, /^score -?\d+\.\d \(spam at 5\.0, kill at 10\.0\): ham\n/);
  assert.match(before.out, /\nBayes: not consulted yet \(learned 0 spam and 0 ham; it needs more of each — see mailward learn\)\n$/);
  assert.doesNotMatch(before.out, /BAYES_/);

  const spam = await mailward(['learn', '--spam', c.spamMaildir, c.spamMbox, '--config', config]);
  assert.equal(spam.code, 0, spam.err);
  assert.match(spam.out, /^200 messages: 200 learned \(\d+\.\d s\)\n$/);
  assert.equal(spam.err, '', 'no progress line when stderr is not a terminal');
  const ham = await mailward(['learn', '--ham', c.hamDir, '--config', config]);
  assert.equal(ham.code, 0, ham.err);
  assert.match(ham.out, /^200 messages: 200 learned \(\d+\.\d s\)\n$/);
  assert.equal(ham.err, '');
  const again = await mailward(['learn', '--spam', c.spamMbox, '--config', config]);
  assert.match(again.out, /^80 messages: 80 already learned \(\d+\.\d s\)\n$/);

  const after = await mailward(['spam', 'score', c.probe, '--config', config]);
  assert.equal(after.code, 0, after.err);
  assert.match(after.out, /^score 6\.0 \(spam at 5\.0, kill at 10\.0\): spam\n\n points {2}rule\n {4}6\.0 {2}BAYES_999 {10}Bayes spam probability 1\.0000\n/);
  assert.match(after.out, /\nBayes: spam probability 1\.0000 from \d+ of \d+ tokens \(learned 200 spam, 200 ham\)\n {2}spam signs:\n {4}0\.999 {2}from:domain:offers\.example {2}\(spam 200, ham 0\)\n/);

  const forget = await mailward(['learn', '--forget', c.spamMbox, c.spamMaildir, '--config', config]);
  assert.equal(forget.code, 0, forget.err);
  assert.match(forget.out, /^200 messages: 200 forgotten \(\d+\.\d s\)\n$/);
  const reversed = await mailward(['spam', 'score', c.probe, '--config', config]);
  assert.match(reversed.out, /\nBayes: not consulted yet \(learned 0 spam and 200 ham; it needs more of each — see mailward learn\)\n$/);
  assert.doesNotMatch(reversed.out, /BAYES_/);
});

test('learn: nothing readable is a failure; usage errors name the fix', async (t) => {
  const { dir, config } = setupConfig(t);
  const empty = path.join(dir, 'empty');
  mkdirSync(empty);
  const none = await mailward(['learn', '--spam', empty, '--config', config]);
  assert.equal(none.code, 1);
  assert.equal(none.out, '0 messages: nothing to do (0.0 s)\n');
  assert.equal(none.err, `mailward: no message could be read from ${JSON.stringify(empty)}; give message files, folders, Maildirs or mbox files\n`);

  const missing = path.join(dir, 'missing');
  const gone = await mailward(['learn', '--ham', missing, '--config', config]);
  assert.equal(gone.code, 1);
  assert.match(gone.out, /^0 messages: 1 failed \(\d\.\d s\)\n$/);
  assert.match(gone.err, new RegExp(`^${missing}: ENOENT: no such file or directory, stat '${missing}'\nmailward: no message could be read from`));

  const both = await mailward(['learn', '--spam', '--ham', empty, '--config', config]);
  assert.deepEqual(both, { code: 2, out: '', err: 'mailward: give --spam or --ham, not both\n' });
  const neither = await mailward(['learn', empty, '--config', config]);
  assert.deepEqual(neither, { code: 2, out: '', err: 'mailward: say what the messages are: --spam or --ham (or --forget to take them back out)\n' });
  const noFile = await mailward(['spam', 'score', path.join(dir, 'nope.eml'), '--config', config]);
  assert.equal(noFile.code, 1);
  assert.equal(noFile.err, `mailward: cannot read ${JSON.stringify(path.join(dir, 'nope.eml'))}: ENOENT; give a message file, or - to read it from stdin\n`);
});

test('spam score uses the thresholds of checks.spam in the config', async (t) => {
  const { dir, config } = setupConfig(t, 'checks:\n  spam: { spam: 0.5, kill: 1.5 }');
  const f = path.join(dir, 'm.eml');
  writeFileSync(f, 'From: a@example.net\r\nTo: b@example.org\r\nSubject: hello\r\n\r\nhi\r\n');
  const r = await mailward(['spam', 'score', f, '--config', config]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^score -?\d+\.\d \(spam at 0\.5, kill at 1\.5\): /);
});
