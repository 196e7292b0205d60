// Tokens the Bayes classifier counts, from whole messages: body words, header tokens by field,
// URL hosts, Received facts, Japanese text in character pairs, split words joined again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMessage } from '../../src/spam/mime.ts';
import { tokenize } from '../../src/spam/tokenize.ts';

const crlf = (lines: string[]): string => lines.join('\r\n');
const tokensOf = (raw: string | Buffer): Set<string> => new Set(tokenize(parseMessage(raw)).tokens);

const PLAIN = crlf([
  'Received: from mail.shop.example (mail.shop.example [203.0.113.7])',
  '\tby mx.example.org with ESMTP id 123; Mon, 2 Sep 2002 10:00:00 +0000',
  'From: "Best Deals" <deals@shop.example>',
  'Reply-To: orders@other.example',
  'To: you@example.org',
  'Subject: FREE money!!! Act now',
  'Date: Mon, 2 Sep 2002 10:00:00 +0000',
  'Message-ID: <12345@shop.example>',
  'X-Spam-Status: No, score=-5.0',
  'X-Keywords: NonJunk',
  'X-Mailer: MassMailer 4.2',
  '',
  'Dear friend, visit http://www.deals.shop.example/cgi-bin/buy.php?id=7 today.',
  'Write to sales@shop.example for a V-I-A-G-R-A sample. Incomprehensibilities abound.',
  'CHEAP prices',
]);

test('body words are lower-cased, kept 3–12 characters long; longer ones become a skip token', () => {
  const t = tokensOf(PLAIN);
  for (const w of ['dear', 'friend', 'visit', 'today', 'write', 'sample', 'cheap', 'prices', 'abound']) assert.ok(t.has(w), w);
  assert.ok(t.has('upper:cheap'), 'an all-capital word also counts as shouting');
  assert.ok(t.has('skip:i20'), 'a 21-letter word is a skip token');
  assert.ok(!t.has('incomprehensibilities'));
  assert.ok(!t.has('a') && !t.has('to'), 'short words are not tokens');
  assert.ok(t.has('dear friend') && t.has('friend visit'), 'neighbouring words also count as pairs');
});

test('header tokens carry their field: subject words, sender parts, alignment, message-id domain', () => {
  const t = tokensOf(PLAIN);
  for (const x of [
    'subject:free',
    'subject:money!!!',
    'subject:act',
    'subject:now',
    'from:addr:deals@shop.example',
    'from:domain:shop.example',
    'from:name:best',
    'reply-to:domain:other.example',
    'align:from-reply-to:differs',
    'align:from-message-id:same',
    'message-id:@shop.example',
    'to:domain:example.org',
    'x-mailer:massmailer #.#',
    'date:tz:+0000',
  ]) {
    assert.ok(t.has(x), x);
  }
});

test('markings added on the receiving side and our own X-Spam fields are not tokens', () => {
  const t = tokensOf(PLAIN);
  assert.ok(![...t].some((x) => x.includes('x-spam') || x.includes('x-keywords')), [...t].filter((x) => x.includes('x-')).join(' '));
});

test('URLs give host, domain and path tokens; addresses in the text give their domain', () => {
  const t = tokensOf(PLAIN);
  for (const x of ['proto:http', 'url:www.deals.shop.example', 'url:shop.example', 'url:example', 'url-path:cgi', 'url-path:bin', 'url-path:buy', 'url-path:php', 'email:shop.example']) {
    assert.ok(t.has(x), x);
  }
  assert.deepEqual(tokenize(parseMessage(PLAIN)).facts.urlHosts, ['www.deals.shop.example']);
});

test('Received: the relay names and address prefixes, never ids or dates', () => {
  const t = tokensOf(PLAIN);
  for (const x of ['received:shop.example', 'received:example.org', 'received:ip:203.0', 'received:ip:203.0.113', 'received:with:esmtp']) assert.ok(t.has(x), x);
  assert.ok(![...t].some((x) => x.startsWith('received:') && x.includes('123')));
});

test('a word split by separators is joined again and reported as obfuscated', () => {
  const r = tokenize(parseMessage(PLAIN));
  assert.ok(r.tokens.has('viagra'));
  assert.deepEqual(r.facts.obfuscated, ['viagra']);
});

test('a letter-spaced heading on a line of its own, or a dotted acronym, is not obfuscation', () => {
  const r = tokenize(parseMessage(crlf(['Subject: news', '', 'N E W S L E T T E R', 'Issue 12 of the A.L.I.C.E. project notes'])));
  assert.ok(r.tokens.has('newsletter'));
  assert.deepEqual(r.facts.obfuscated, []);
});

test('Japanese text becomes overlapping character pairs', () => {
  const head = Buffer.from(crlf(['Subject: =?ISO-2022-JP?B?GyRCIVo9RU1XIVskKkNOJGkkOxsoQg==?=', 'Content-Type: text/plain; charset=ISO-2022-JP', '', '']));
  const body = Buffer.from('1b2442467c4b5c386c244e2561213c256b2447243921231b2842', 'hex'); // 日本語のメールです。
  const t = tokensOf(Buffer.concat([head, body]));
  for (const x of ['日本', '本語', '語の', 'のメ', 'メー', 'ール', 'ルで', 'です', 'subject:重要', 'subject:お知', 'subject:らせ']) assert.ok(t.has(x), x);
});

test('MIME structure tokens: part types, charsets, encodings, attachment extension, HTML-only', () => {
  const t = tokensOf(
    crlf([
      'Subject: x',
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      'Content-Type: text/html; charset="windows-1252"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('<p>hello there</p>').toString('base64'),
      '--b',
      'Content-Type: application/zip; name="invoice.zip"',
      'Content-Transfer-Encoding: base64',
      '',
      'UEsDBA==',
      '--b--',
    ]),
  );
  for (const x of ['ct:multipart/mixed', 'ct:text/html', 'charset:windows-1252', 'cte:base64', 'ct:application/zip', 'filename-ext:zip', 'mime:html-only', 'hello', 'there']) assert.ok(t.has(x), x);
});

test('hostile input is read in one pass: stray "<", endless punctuation, blanks and brackets', () => {
  // Each of these made a pattern quadratic once; here they must finish (within the test timeout)
  // and still give the expected tokens.
  const html = (body: string): string => `Content-Type: text/html\r\n\r\n${body}`;
  assert.ok(tokensOf(`Subject: x\r\n\r\n${'-'.repeat(200_000)}a`).has('skip:-100'));
  assert.ok(tokensOf(html(`${'<a '.repeat(50_000)}`)).has('ct:text/html'));
  assert.ok(tokensOf(html(`${'<script '.repeat(30_000)}`)).has('mime:html-only'));
  assert.ok(tokensOf(`From: ${'<a@b '.repeat(40_000)}\r\n\r\nx`).has('from:addr:a@b'));
  assert.ok(tokensOf(`Subject: ab${' '.repeat(100_000)}\u0001\r\n\r\nx`).has('subject:ab'));
});
