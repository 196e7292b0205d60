// MIME decoding for the spam filter on whole messages: multipart/alternative, quoted-printable,
// base64, ISO-2022-JP and Shift_JIS bodies and subjects, HTML-only mail turned into text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeHeaderValue, decodeQuotedPrintable } from '../../src/spam/charset.ts';
import { decodeEntities, htmlToText } from '../../src/spam/html.ts';
import { header, parseMessage, splitMultipart } from '../../src/spam/mime.ts';

const crlf = (lines: string[]): string => lines.join('\r\n');

test('multipart/alternative with a quoted-printable text part and a base64 HTML part', () => {
  const html = Buffer.from('<html><body><p>Hello <b>W</b>orld &amp; friends</p><a href="http://example.com/x">link</a></body></html>').toString('base64');
  const raw = crlf([
    'From: Alice <alice@example.org>',
    'To: bob@example.net',
    'Subject: =?UTF-8?Q?Caf=C3=A9_cr=C3=A8me?=',
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b1"',
    '',
    'preamble is ignored',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Caf=C3=A9 cr=C3=A8me =E2=80=94 na=C3=AFve fa=C3=A7ade, a soft=',
    ' break',
    '--b1',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    html,
    '--b1--',
    'epilogue is ignored',
  ]);
  const m = parseMessage(Buffer.from(raw));
  assert.equal(header(m, 'subject'), 'Café crème');
  assert.equal(m.plain, 'Café crème — naïve façade, a soft break');
  assert.equal(m.html, 'Hello World & friends\nlink');
  assert.deepEqual(m.links, ['http://example.com/x']);
  assert.equal(m.hasPlain, true);
  assert.equal(m.hasHtml, true);
  assert.deepEqual(
    m.parts.map((p) => [p.type, p.encoding, p.charset]),
    [
      ['multipart/alternative', '7bit', undefined],
      ['text/plain', 'quoted-printable', 'utf-8'],
      ['text/html', 'base64', 'utf-8'],
    ],
  );
});

test('ISO-2022-JP: base64 body and an encoded-word subject split across two words', () => {
  const raw = crlf([
    'From: =?ISO-2022-JP?B?GyRCIVo9RU1XIVskKkNOJGkkOxsoQg==?= <info@example.jp>',
    // One Japanese string split into two encoded words: the escape sequence must carry over.
    'Subject: =?ISO-2022-JP?B?GyRCIVo9RU1XIVsbKEI=?=',
    ' =?ISO-2022-JP?B?GyRCJCpDTiRpJDsbKEI=?=',
    'Content-Type: text/plain; charset=ISO-2022-JP',
    'Content-Transfer-Encoding: base64',
    '',
    'GyRCRnxLXDhsJE4lYSE8JWskRyQ5ISNMNU5BJEc6IyQ5JDAkKjtuJDckLyRAJDUkJBsoQg==',
  ]);
  const m = parseMessage(Buffer.from(raw));
  assert.equal(header(m, 'subject'), '【重要】お知らせ');
  assert.equal(header(m, 'from'), '【重要】お知らせ <info@example.jp>');
  assert.equal(m.plain, '日本語のメールです。無料で今すぐお試しください');
});

test('ISO-2022-JP in 7bit (no transfer encoding), as Japanese mail programs send it', () => {
  const head = Buffer.from(crlf(['Subject: test', 'Content-Type: text/plain; charset="iso-2022-jp"', '', '']));
  const body = Buffer.from('1b2442467c4b5c386c244e2561213c256b2447243921231b2842', 'hex');
  assert.equal(parseMessage(Buffer.concat([head, body])).plain, '日本語のメールです。');
});

test('Shift_JIS: 8-bit body and a B-encoded subject', () => {
  const head = Buffer.from(crlf(['Subject: =?Shift_JIS?B?jMCS6INJg3SDQIFb?=', 'Content-Type: text/plain; charset=Shift_JIS', 'Content-Transfer-Encoding: 8bit', '', '']));
  const body = Buffer.from('8c8388c0835a815b838b8a4a8dc3928681498da182b782ae834e838a8362834e', 'hex');
  const m = parseMessage(Buffer.concat([head, body]));
  assert.equal(header(m, 'subject'), '限定オファー');
  assert.equal(m.plain, '激安セール開催中！今すぐクリック');
});

test('HTML-only: comments, script and style vanish, inline tags join, blocks separate', () => {
  const raw = crlf([
    'From: shop@example.com',
    'Subject: offer',
    'Content-Type: text/html; charset=iso-8859-1',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    '<html><head><style>p { color: red }</style><script>var x = "hidden";</script></head>',
    '<body><p>V<!-- x -->ia<font color=3D"red">gra</font> for caf=E9</p><div>cheap&nbsp;&#x70;ills</div>',
    '<img src=3D"http://img.example.com/a.gif"><a href=3D\'http://shop.example.com/buy?id=3D1\'>Buy</a></body></html>',
  ]);
  const m = parseMessage(Buffer.from(raw));
  assert.equal(m.hasHtml, true);
  assert.equal(m.hasPlain, false);
  assert.equal(m.html, 'Viagra for café\ncheap pills\nBuy');
  assert.equal(m.images, 1);
  assert.deepEqual(m.links, ['http://img.example.com/a.gif', 'http://shop.example.com/buy?id=1']);
});

test('an HTML body sent as text/plain is read as HTML', () => {
  const m = parseMessage(Buffer.from(crlf(['Subject: x', '', '<html><body><p>Hi <i>there</i></p></body></html>'])));
  assert.equal(m.hasHtml, true);
  assert.equal(m.html, 'Hi there');
});

test('mbox From line, bare LF line ends, nested message/rfc822 and attachments', () => {
  const raw = [
    'From someone@example.org  Thu Aug 22 13:17:22 2002',
    'Subject: fwd',
    'Content-Type: multipart/mixed; boundary=outer',
    '',
    '--outer',
    'Content-Type: text/plain',
    '',
    'see below',
    '--outer',
    'Content-Type: message/rfc822',
    '',
    'Subject: inner subject',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'inner body',
    '--outer',
    'Content-Type: application/octet-stream; name="setup.exe"',
    'Content-Disposition: attachment; filename="setup.exe"',
    'Content-Transfer-Encoding: base64',
    '',
    'TVqQAAMAAAAEAAAA',
    '--outer--',
    '',
  ].join('\n');
  const m = parseMessage(Buffer.from(raw));
  assert.deepEqual(m.headers, [
    ['Subject', 'fwd'],
    ['Content-Type', 'multipart/mixed; boundary=outer'],
  ]);
  assert.equal(m.plain, 'see below\ninner subject\ninner body');
  assert.deepEqual(
    m.parts.map((p) => [p.type, p.filename]),
    [
      ['multipart/mixed', undefined],
      ['text/plain', undefined],
      ['message/rfc822', undefined],
      ['text/plain', undefined],
      ['application/octet-stream', 'setup.exe'],
    ],
  );
});

test('encoded words: Q with underscores, adjacent words joined, text between kept, 8-bit raw UTF-8', () => {
  assert.equal(decodeHeaderValue('=?iso-8859-1?q?this_is_=E9t=E9?= =?utf-8?b?IHRlc3Q=?= and more'), 'this is été test and more');
  assert.equal(decodeHeaderValue('plain =?utf-8?q?w=C3=B6rd?= plain'), 'plain wörd plain');
  assert.equal(decodeHeaderValue(Buffer.from('Grüße', 'utf8').toString('latin1')), 'Grüße');
  assert.equal(decodeHeaderValue('=?x-unknown?q?abc?='), 'abc');
});

test('quoted-printable keeps a bad escape, multipart without close delimiter ends at the end', () => {
  assert.equal(decodeQuotedPrintable('a=3Db=ZZc=\r\nd'), 'a=b=ZZcd');
  assert.deepEqual(splitMultipart('--x\r\nA: 1\r\n\r\none\r\n--x\r\n\r\ntwo', 'x'), ['A: 1\r\n\r\none', '\r\ntwo']);
});

test('entities: numeric, hex, named, zero-width removed, unknown kept', () => {
  assert.equal(decodeEntities('&#86;&#x69;agra&shy;&#8203; &copy; &bogus; &lt;b&gt;'), 'Viagra © &bogus; <b>');
  assert.equal(htmlToText('<p>a</p><p>b</p>').text, 'a\nb');
});
