// Each of Mailward's own spam rules fires on a message built to show it, and none fires on a
// plain, well-formed message.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMessage } from '../../src/spam/mime.ts';
import { RULES, runRules, type RuleContext } from '../../src/spam/rules.ts';
import { tokenize } from '../../src/spam/tokenize.ts';

const crlf = (lines: string[]): string => lines.join('\r\n');
const OURS: RuleContext = { ourDomains: ['example.org'], authenticated: false };

function fired(raw: string, ctx: RuleContext = OURS): string[] {
  const m = parseMessage(raw);
  return runRules(m, tokenize(m).facts, ctx).map((h) => h.name);
}

const HEAD = ['From: Carol <carol@example.net>', 'To: dave@example.org', 'Subject: Minutes of Tuesday', 'Date: Tue, 3 Sep 2002 10:00:00 +0200', 'Message-ID: <abc@example.net>'];

test('a plain, well-formed message fires no rule', () => {
  assert.deepEqual(fired(crlf([...HEAD, '', 'Here are the minutes of the meeting.'])), []);
});

test('OBFUSCATED_WORDS: a word split letter by letter among ordinary words', () => {
  assert.deepEqual(fired(crlf([...HEAD, '', 'Get your v i a g r a and c-i-a-l-i-s here today'])), ['OBFUSCATED_WORDS']);
});

test('HTML_ONLY and HTML_IMAGE_ONLY: HTML without a text part; mostly a picture', () => {
  const head = [...HEAD.filter((h) => !h.startsWith('Subject')), 'Subject: news', 'Content-Type: text/html'];
  assert.deepEqual(fired(crlf([...head, '', `<p>${'Plenty of words in this newsletter. '.repeat(20)}</p>`])), ['HTML_ONLY']);
  assert.deepEqual(fired(crlf([...head, '', '<a href="http://x.example/"><img src="http://x.example/offer.gif"></a><p>Click</p>'])), ['HTML_ONLY', 'HTML_IMAGE_ONLY']);
});

test('FORGED_OWN_DOMAIN: From one of our domains (or a subdomain) without a login', () => {
  const forged = crlf(['From: "Support" <support@mail.example.org>', ...HEAD.slice(1), '', 'Please confirm your password.']);
  assert.deepEqual(fired(forged), ['FORGED_OWN_DOMAIN']);
  assert.deepEqual(fired(forged, { ...OURS, authenticated: true }), [], 'a logged-in user may send as our domain');
  assert.deepEqual(fired(forged, { ourDomains: [], authenticated: false }), []);
  assert.deepEqual(fired(crlf(['From: a@notexample.org', ...HEAD.slice(1), '', 'x'])), [], 'a suffix that is not a subdomain');
});

test('MISSING_DATE, MISSING_MID, MISSING_FROM', () => {
  assert.deepEqual(fired(crlf([...HEAD.filter((h) => !h.startsWith('Date')), '', 'hello'])), ['MISSING_DATE']);
  assert.deepEqual(fired(crlf([...HEAD.filter((h) => !h.startsWith('Message-ID')), '', 'hello'])), ['MISSING_MID']);
  assert.deepEqual(fired(crlf([...HEAD.filter((h) => !h.startsWith('From')), '', 'hello'])), ['MISSING_FROM']);
});

test('INVALID_DATE: a zone no place uses, or no date at all', () => {
  const withDate = (d: string): string => crlf([...HEAD.filter((h) => !h.startsWith('Date')), `Date: ${d}`, '', 'x']);
  assert.deepEqual(fired(withDate('Wed, 21 Aug 2002 20:31:57 -1600')), ['INVALID_DATE']);
  assert.deepEqual(fired(withDate('sometime last week')), ['INVALID_DATE']);
  assert.deepEqual(fired(withDate('Wed, 21 Aug 2002 20:31:57 +1400 (LINT)')), []);
});

test('SUBJ_ALL_CAPS and URI_NUMERIC_IP', () => {
  assert.deepEqual(fired(crlf([...HEAD.filter((h) => !h.startsWith('Subject')), 'Subject: MAKE MONEY FAST NOW', '', 'x'])), ['SUBJ_ALL_CAPS']);
  assert.deepEqual(fired(crlf([...HEAD, '', 'Order at http://203.0.113.9/shop/ today'])), ['URI_NUMERIC_IP']);
});

test('DATE_IN_FUTURE: a Date hours ahead of the newest relay (or of now, without relays)', () => {
  const rcvd = 'Received: from a.example.net (a.example.net [192.0.2.5]) by mx.example.org; Tue, 3 Sep 2002 08:00:00 +0000';
  const base = HEAD.filter((h) => !h.startsWith('Date'));
  assert.deepEqual(fired(crlf([rcvd, ...base, 'Date: Tue, 3 Sep 2002 13:00:00 +0000', '', 'x'])), ['DATE_IN_FUTURE']);
  assert.deepEqual(fired(crlf([rcvd, ...base, 'Date: Tue, 3 Sep 2002 10:00:00 +0000', '', 'x'])), []);
  assert.deepEqual(fired(crlf([...base, 'Date: Tue, 3 Sep 2002 13:00:00 +0000', '', 'x']), { ...OURS, now: Date.UTC(2002, 8, 3, 8) }), ['DATE_IN_FUTURE']);
});

test('INVALID_DATE: a year a relay says lies long past', () => {
  const rcvd = 'Received: from a.example.net (a.example.net [192.0.2.5]) by mx.example.org; Wed, 7 Aug 2002 08:00:00 +0000';
  const base = HEAD.filter((h) => !h.startsWith('Date'));
  assert.deepEqual(fired(crlf([rcvd, ...base, 'Date: Wed, 07 Aug 0102 16:11:22 +1000', '', 'x'])), ['INVALID_DATE']);
  assert.deepEqual(fired(crlf([...base, 'Date: Wed, 07 Aug 2001 16:11:22 +1000', '', 'x']), { ...OURS, now: Date.UTC(2026, 0, 1) }), [], 'no relay: an old saved message is not invalid');
});

test('FORGED_FREEMAIL: From a free mail provider, never through its relays, and not a reply', () => {
  const from = (addr: string, rcvd: string, extra: string[] = []): string =>
    crlf([rcvd, `From: Someone <${addr}>`, 'To: dave@example.org', 'Subject: Business proposal', 'Date: Tue, 3 Sep 2002 10:00:00 +0000', 'Message-ID: <x@y.example>', ...extra, '', 'x']);
  const dsl = 'Received: from pc1 (adsl-192-0-2-9.dsl.example.net [192.0.2.9]) by mx.example.org; Tue, 3 Sep 2002 10:00:00 +0000';
  const yahoo = 'Received: from web1.mail.yahoo.com (web1.mail.yahoo.com [192.0.2.10]) by mx.example.org; Tue, 3 Sep 2002 10:00:00 +0000';
  assert.deepEqual(fired(from('winner@yahoo.co.uk', dsl)), ['FORGED_FREEMAIL']);
  assert.deepEqual(fired(from('winner@yahoo.co.uk', yahoo)), []);
  assert.deepEqual(fired(from('bob@example.com', dsl)), [], 'not a free mail domain');
  assert.deepEqual(fired(from('winner@gmail.com', dsl, ['In-Reply-To: <a@b>'])), [], 'a reply in a thread');
});

test('FORGED_HELO: a client greeting as a big provider whose address has another name', () => {
  const msg = (rcvd: string): string => crlf([rcvd, ...HEAD, '', 'x']);
  assert.deepEqual(fired(msg('Received: from mail.hotmail.com (adsl-1-2-3-4.example.net [192.0.2.4]) by mx.example.org; Tue, 3 Sep 2002 10:00:00 +0200')), ['FORGED_HELO']);
  assert.deepEqual(fired(msg('Received: from mail.hotmail.com (mx1.hotmail.com [192.0.2.4]) by mx.example.org; Tue, 3 Sep 2002 10:00:00 +0200')), []);
  assert.deepEqual(fired(msg('Received: from a.hotmail.com by b.hotmail.com; Tue, 3 Sep 2002 10:00:00 +0200')), [], 'a hop inside the provider');
});

test('FREEMAIL_REPLYTO: replies go to a free mail address that is not the sender', () => {
  assert.deepEqual(fired(crlf([...HEAD, 'Reply-To: claims.agent77@hotmail.com', '', 'x'])), ['FREEMAIL_REPLYTO']);
  assert.deepEqual(fired(crlf([...HEAD, 'Reply-To: carol@example.net', '', 'x'])), []);
});

test('every rule has a name in capitals, a description and points', () => {
  const names = new Set<string>();
  for (const r of RULES) {
    assert.match(r.name, /^[A-Z][A-Z0-9_]+$/);
    assert.ok(!names.has(r.name));
    names.add(r.name);
    assert.ok(r.description.length > 10);
    assert.ok(Number.isFinite(r.points));
  }
});

test('HTML_ONLY: HTML without a text alternative, at 0.5 points; a newsletter with a text part does not fire', () => {
  const head = [...HEAD.filter((h) => !h.startsWith('Subject')), 'Subject: news', 'MIME-Version: 1.0'];
  const words = 'Plenty of words in this newsletter. '.repeat(20);
  const htmlOnly = parseMessage(crlf([...head, 'Content-Type: text/html', '', `<p>${words}</p>`]));
  assert.deepEqual(runRules(htmlOnly, tokenize(htmlOnly).facts, OURS), [{ name: 'HTML_ONLY', points: 0.5, description: 'HTML without a plain-text alternative' }]);
  const alternative = crlf([
    ...head,
    'Content-Type: multipart/alternative; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    words,
    '--b1',
    'Content-Type: text/html',
    '',
    `<p>${words}</p>`,
    '--b1--',
  ]);
  assert.deepEqual(fired(alternative), []);
});

test('OBFUSCATED_WORDS: 0.5 points; a letter-spaced heading on its own line does not fire', () => {
  const hit = parseMessage(crlf([...HEAD, '', 'Get your v i a g r a and c-i-a-l-i-s here today']));
  assert.deepEqual(
    runRules(hit, tokenize(hit).facts, OURS).map((h) => [h.name, h.points]),
    [['OBFUSCATED_WORDS', 0.5]],
  );
  assert.deepEqual(fired(crlf([...HEAD, '', 'N E W S L E T T E R', 'Here is what happened this week in the club.'])), []);
});
