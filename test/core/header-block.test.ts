// Editing a message's header block as raw bytes (core/header-block.ts) and the session's content
// decision (ingress/content.ts): where the block ends, fields removed with their folded lines,
// the Subject prefix once and RFC 2047-safe, and what a total score leads to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeWords, headerBlockEnd, prefixSubject, removeFields } from '../../src/core/header-block.ts';
import { authservId, decideContent, editHead, testNames } from '../../src/ingress/content.ts';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

test('headerBlockEnd: CRLF or bare LF empty line; none yet', () => {
  assert.equal(headerBlockEnd(b('A: 1\r\nB: 2\r\n\r\nbody')), 14);
  assert.equal(headerBlockEnd(b('A: 1\n\nbody')), 6);
  assert.equal(headerBlockEnd(b('\r\nbody')), 2);
  assert.equal(headerBlockEnd(b('A: 1\r\nB: 2\r\n')), undefined);
  assert.equal(headerBlockEnd(b('A: 1\r\n\r')), undefined);
});

test('removeFields drops a field with its folded lines and keeps every other byte', () => {
  const head = b('Received: x\r\nX-Spam-Status: No,\r\n\tscore=-9\r\nSubject: caf\xe9\r\nx-spam-flag: NO\r\n\r\n');
  const out = removeFields(head, (name) => name.toLowerCase().startsWith('x-spam-'));
  assert.equal(out.toString('latin1'), 'Received: x\r\nSubject: caf\xe9\r\n\r\n');
  assert.equal(removeFields(head, () => false), head, 'unchanged: the same buffer');
});

test('prefixSubject: once, after folding, encoded-words kept apart, a missing Subject added', () => {
  const p = '*****SPAM*****';
  assert.equal(prefixSubject(b('From: a\r\nSubject: Hello\r\n\r\n'), p).toString(), 'From: a\r\nSubject: *****SPAM***** Hello\r\n\r\n');
  const once = b('Subject: *****SPAM***** Hello\r\n\r\n');
  assert.equal(prefixSubject(once, p), once);
  assert.equal(prefixSubject(b('Subject:\r\n =?UTF-8?B?w6k=?=\r\n\r\n'), p).toString(), 'Subject: *****SPAM*****\r\n =?UTF-8?B?w6k=?=\r\n\r\n');
  assert.equal(prefixSubject(b('subject:=?UTF-8?Q?=C3=A9?=\n\n'), p).toString(), 'subject: *****SPAM***** =?UTF-8?Q?=C3=A9?=\n\n');
  assert.equal(prefixSubject(b('From: a\nTo: b\n\n'), p).toString(), 'From: a\nTo: b\nSubject: *****SPAM*****\n\n');
  assert.equal(prefixSubject(b('From: a'), p).toString(), 'From: a\r\nSubject: *****SPAM*****\r\n');
  // A first line that would pass 998 characters is folded after the prefix (RFC 5322 §2.1.1).
  const long = 'x'.repeat(980);
  assert.equal(prefixSubject(b(`Subject: ${long}\r\n\r\n`), p).toString(), `Subject: *****SPAM*****\r\n ${long}\r\n\r\n`);
  // A prefix that is not ASCII becomes encoded-words of at most 75 characters.
  const marked = prefixSubject(b('Subject: Hi\r\n\r\n'), '[Spam verdächtig]').toString();
  assert.equal(marked, 'Subject: =?UTF-8?B?W1NwYW0gdmVyZMOkY2h0aWdd?= Hi\r\n\r\n');
  assert.equal(prefixSubject(b(marked), '[Spam verdächtig]').toString(), marked);
  const words = encodeWords('ü'.repeat(60)).split(' ');
  assert.equal(words.length, 3);
  assert.ok(words.every((w) => w.length <= 75 && /^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=$/.test(w)));
  assert.equal(words.map((w) => Buffer.from(w.slice(10, -2), 'base64').toString('utf8')).join(''), 'ü'.repeat(60));
});

test('content: the total decides; tags stop bounces; rule names for tests=', () => {
  const policy = { tag: -999, spam: 5, kill: 10, subjectPrefix: '[SPAM]' };
  const none = new Set<'auth-failed'>();
  const ham = decideContent(policy, [{ score: 1, rules: ['spam(MISSING_MID)=0.5', 'spf:softfail=0.5'] }], none);
  assert.deepEqual(ham, { score: 1, rules: ['spam(MISSING_MID)=0.5', 'spf:softfail=0.5'], class: 'ham', fields: ['X-Spam-Score: 1.0', 'X-Spam-Status: No, score=1.0 required=5.0 tests=MISSING_MID,spf:softfail'], senderVerified: false, quarantine: false });
  const spam = decideContent(policy, [{ score: 3, rules: ['dnsbl:zen.test=3'] }, { score: 3, rules: ['spam(BAYES_95)=3'] }], new Set(['auth-failed']));
  assert.equal(spam.class, 'spam');
  assert.equal(spam.noBounce, 'spam');
  assert.equal(spam.folder, 'Junk');
  assert.equal(spam.quarantine, false);
  assert.deepEqual(spam.fields, ['X-Spam-Score: 6.0', 'X-Spam-Status: Yes, score=6.0 required=5.0 tests=BAYES_95,dnsbl:zen.test', 'X-Spam-Flag: YES']);
  const kill = decideContent(policy, [{ score: 12.5, rules: ['spam(X)=12.5'] }], none);
  assert.deepEqual([kill.class, kill.noBounce, kill.folder, kill.quarantine], ['kill', 'spam', 'Junk', true]);
  const forged = decideContent(undefined, [{ score: 7, rules: ['spf:fail=7'] }], new Set(['auth-failed']));
  assert.deepEqual(forged, { score: 7, rules: ['spf:fail=7'], class: undefined, fields: [], noBounce: 'auth-failed', senderVerified: false, quarantine: false });
  assert.deepEqual(decideContent(policy, [{ score: 0, rules: [] }], none).fields, [], 'nothing scored, nothing to show');
  assert.deepEqual(decideContent({ ...policy, tag: 2 }, [{ score: 1, rules: ['a=1'] }], none).fields, [], 'below tag');
  assert.deepEqual(testNames(['spam()=0', 'spam(A,B)=2', 'x:y=-1.5', 'A=1e-7']), ['A', 'B', 'x:y']);
});

test('content: Authentication-Results under our authserv-id are removed, others kept (RFC 8601 §5)', () => {
  assert.equal(authservId(' (c) MX.Example.org 1; spf=pass'), 'mx.example.org');
  assert.equal(authservId('mx.example.org;dkim=pass'), 'mx.example.org');
  const edit = editHead({ hostname: 'mx.example.org', stripSpam: false, add: ['X-Ours: 1'] });
  const head = b('Authentication-Results: mx.example.org; dkim=pass\r\nAuthentication-Results: mx.example.org.evil; dkim=pass\r\nX-Spam-Flag: NO\r\n\r\n');
  assert.equal(edit(head).toString(), 'X-Ours: 1\r\nAuthentication-Results: mx.example.org.evil; dkim=pass\r\nX-Spam-Flag: NO\r\n\r\n');
});
