// Fuzzing the spam filter's message reader (fast-check): random and mutated messages — truncated
// multiparts, deep nesting, bogus charsets, broken base64 and quoted-printable, huge header
// lines, ISO-2022-JP escapes cut halfway, HTML with unclosed tags — must never throw, and what
// comes out (parts, text, links, tokens) stays within fixed bounds whatever goes in.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { analyzeData } from '../../src/spam/analysis.ts';
import { decodeBytes, decodeHeaderValue } from '../../src/spam/charset.ts';
import { htmlToText } from '../../src/spam/html.ts';
import { parseMessage } from '../../src/spam/mime.ts';
import type { RuleContext } from '../../src/spam/rules.ts';
import { tokenize } from '../../src/spam/tokenize.ts';
import { collector } from '../harness/gc.ts';

const CTX: RuleContext = { ourDomains: ['example.org'], authenticated: false, now: Date.UTC(2025, 0, 1) };
const MAX_BYTES = 512 * 1024;
// The reader's documented caps (mime.ts, tokenize.ts, html.ts).
const MAX_PARTS = 64;
const MAX_TOKENS = 3000;
const MAX_LINKS = 500;
const MAX_TEXT = 256 * 1024;

/** Binary strings throughout (one char per byte); Unicode goes in as UTF-8 bytes. */
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64');

// ---- generators ---------------------------------------------------------------------------

const bytes = (max: number): fc.Arbitrary<string> => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b).toString('latin1'));

const charset = fc.oneof(
  fc.constantFrom('utf-8', 'UTF-8', 'us-ascii', 'iso-8859-1', 'windows-1252', 'iso-2022-jp', 'ISO-2022-JP-2', 'shift_jis', 'euc-kr', 'gb18030', 'big5', 'koi8-r', 'utf-16', 'utf-16le', 'utf-7', 'x-unknown', '"utf-8"', "'", '', 'replacement', 'x-user-defined'),
  fc.string({ maxLength: 30 }),
  fc.integer({ min: 100, max: 5000 }).map((n) => 'x'.repeat(n)),
);

const encoding = fc.constantFrom('7bit', '8bit', 'binary', 'base64', 'BASE64', 'quoted-printable', 'x-uuencode', 'junk', ' base64 ');

/** Text pieces that stress the decoders. */
const nasty = fc.constantFrom(
  '\x1b$B', // ISO-2022-JP: to JIS X 0208 …
  '\x1b$B%3%s', // … with half a character pair
  '\x1b$', // an escape cut halfway
  '\x1b(B',
  '\x1b(J\x1b$@\x1b',
  '=',
  '=\r\n',
  '=Z1',
  '=4',
  '==3D=',
  '====',
  '@@@@',
  'QUJD\r\nRE=',
  '=?utf-8?B?',
  '=?utf-8?Q?=C3?=',
  '=?iso-2022-jp?B?GyRC?=',
  '=?x?b??=',
  '<',
  '<a href="',
  "<a href='http://x.example/",
  '<img src=',
  '<!--',
  '<script>',
  '<style>',
  '</',
  '<<<<<<<<',
  '&#x',
  '&#99999999;',
  '&#xd800;',
  '&amp',
  '&nbsp',
  'http://',
  'www.',
  'a@b.',
  'v i a g r a ',
  '\u00e9\u00e8',
  utf8('日本語のテキスト'),
  utf8('\u200b\u00ad\ufeff'),
  '\0',
  '\r',
  '\n',
  '\r\n\r\n',
  '--',
);

const text = fc.array(fc.oneof({ arbitrary: nasty, weight: 3 }, { arbitrary: fc.string({ maxLength: 40 }), weight: 3 }, { arbitrary: bytes(40), weight: 1 }, { arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }).map(utf8), weight: 1 }), { maxLength: 30 }).map((a) => a.join(''));

const html = fc
  .array(fc.oneof(text, fc.constantFrom('<p>', '</p>', '<div', '<br/>', '<a href="http://a.example/x?y=1">', '</a>', '<img src="cid:1">', '<td background=x>', '<b>', '<', '>', '<!DOCTYPE html>', '<html><body>', '<script>var x = "</scr" + "ipt>";', '<style>p{}</style>', '<!-- c -->')), { maxLength: 30 })
  .map((a) => a.join(''));

const headerName = fc.oneof(fc.constantFrom('Subject', 'From', 'To', 'Cc', 'Reply-To', 'Return-Path', 'Message-ID', 'Date', 'Received', 'X-Mailer', 'Content-Type', 'Content-Transfer-Encoding', 'Content-Disposition', 'List-Id', 'MIME-Version'), fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/));
const headerValue = fc.oneof(
  { arbitrary: text, weight: 4 },
  { arbitrary: fc.tuple(charset, fc.constantFrom('B', 'Q', 'b', 'x'), text).map(([c, e, t]) => `=?${c}?${e}?${e === 'B' ? b64(t) : t}?=`), weight: 2 },
  { arbitrary: fc.constantFrom('Alice <alice@example.org>', '"x" <a@b.example>', '<>', 'from mx.example (dsl-1-2-3-4.isp.example [1.2.3.4]) by mx.example.org with ESMTP', 'Mon, 1 Jan 2024 00:00:00 +0000'), weight: 1 },
  { arbitrary: fc.integer({ min: 1000, max: 60_000 }).map((n) => 'h'.repeat(n)), weight: 1 },
  { arbitrary: fc.integer({ min: 100, max: 3000 }).map((n) => 'a\r\n '.repeat(n)), weight: 1 }, // folded many times
);
const headers = fc.array(fc.tuple(headerName, headerValue).map(([n, v]) => `${n}: ${v}`), { maxLength: 8 });

/** A MIME part as text, built recursively: leaves, multiparts (maybe truncated), messages. */
interface PartArb {
  part: string;
}
const mime = fc.letrec<PartArb>((tie) => {
  const child = tie('part') as fc.Arbitrary<string>;
  return {
    part: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      // A leaf: a text, HTML or binary part in some transfer encoding and charset.
      // Its body is encoded as declared, or (broken) not.
      fc.tuple(fc.constantFrom('text/plain', 'text/html', 'TEXT/HTML', 'image/png', 'application/pdf', 'text/x-junk', 'junk', ''), charset, encoding, fc.oneof(text, html), fc.boolean(), headers, fc.boolean()).map(([type, cs, enc, body, attach, extra, honest]) => {
        const encoded = honest && enc.trim().toLowerCase() === 'base64' ? b64(body) : body;
        return [
          ...extra,
          `Content-Type: ${type}; charset=${cs}; name="f.txt"`,
          `Content-Transfer-Encoding: ${enc}`,
          ...(attach ? ['Content-Disposition: attachment; filename*=utf-8\'\'%E2%82%AC.exe'] : []),
          '',
          encoded,
        ].join('\r\n');
      }),
      // A multipart: its children between delimiter lines; the close delimiter may be missing, and
      // the boundary may be reused by a child (nested boundaries).
      fc.tuple(fc.constantFrom('mixed', 'alternative', 'related', 'digest', 'x-junk'), fc.oneof(fc.constantFrom('b', 'b1', '=_x', '----', ' ', ''), fc.string({ maxLength: 20 })), fc.array(child, { maxLength: 4 }), fc.constantFrom('--\r\n', '--', '\r\n', ''), fc.boolean()).map(([sub, boundary, children, close, quoted]) => {
        const b = quoted ? `"${boundary}"` : boundary;
        return [`Content-Type: multipart/${sub}; boundary=${b}`, '', 'preamble', ...children.flatMap((c) => [`--${boundary}`, c]), `--${boundary}${close}`].join('\r\n');
      }),
      // A forwarded message, maybe itself encoded.
      fc.tuple(child, fc.constantFrom('7bit', 'base64', 'quoted-printable')).map(([inner, enc]) => ['Content-Type: message/rfc822', `Content-Transfer-Encoding: ${enc}`, '', enc === 'base64' ? b64(`Subject: fwd\r\n${inner}`) : `Subject: fwd\r\n${inner}`].join('\r\n')),
    ),
  };
});

const message = fc.tuple(headers, mime.part).map(([h, body]) => [...h, body].join('\r\n'));

/** Mutations of a message: cut, cut out, repeated, bytes put in, line ends changed. */
const mutation = fc.oneof(
  fc.nat().map((at) => (s: string) => s.slice(0, s.length === 0 ? 0 : at % s.length)),
  fc.tuple(fc.nat(), fc.nat({ max: 200 })).map(([at, n]) => (s: string) => {
    const i = s.length === 0 ? 0 : at % s.length;
    return s.slice(0, i) + s.slice(i + n);
  }),
  fc.tuple(fc.nat(), fc.nat({ max: 200 }), fc.integer({ min: 2, max: 50 })).map(([at, n, times]) => (s: string) => {
    const i = s.length === 0 ? 0 : at % s.length;
    return s.slice(0, i) + s.slice(i, i + n).repeat(times) + s.slice(i);
  }),
  fc.tuple(fc.nat(), fc.oneof(nasty, bytes(20))).map(([at, ins]) => (s: string) => {
    const i = s.length === 0 ? 0 : at % (s.length + 1);
    return s.slice(0, i) + ins + s.slice(i);
  }),
  fc.constant((s: string) => s.replace(/\r\n/g, '\n')),
  fc.constant((s: string) => s.replace(/\r\n/g, '\r')),
);
const mutated = fc.tuple(message, fc.array(mutation, { maxLength: 4 })).map(([m, ms]) => ms.reduce((s, f) => f(s), m));

// ---- the properties -------------------------------------------------------------------------

/** Reads one message every way the filter does, and checks every bound. */
function readAndCheck(raw: string): void {
  const buf = Buffer.from(raw, 'latin1');
  const seen = Math.min(buf.length, MAX_BYTES);
  const m = parseMessage(buf, { maxBytes: MAX_BYTES });
  assert.ok(m.parts.length >= 1 && m.parts.length <= MAX_PARTS, `${m.parts.length} parts`);
  assert.ok(m.links.length <= MAX_LINKS, `${m.links.length} links`);
  // Decoding never makes text longer than the bytes it came from (one byte gives at most one
  // UTF-16 unit; QP, base64 and HTML only shrink), plus separators; and the text budget holds.
  const textLength = m.plain.length + m.html.length;
  assert.ok(textLength <= seen + MAX_PARTS * 2, `${textLength} chars of text from ${seen} bytes`);
  assert.ok(m.html.length <= MAX_TEXT + MAX_PARTS, `${m.html.length} chars of HTML text`);
  for (const [name, value] of m.headers) assert.ok(name.length + value.length <= seen, 'a header field longer than the message');
  const { tokens, facts } = tokenize(m);
  assert.ok(tokens.size <= MAX_TOKENS, `${tokens.size} tokens`);
  let chars = 0;
  for (const t of tokens) chars += t.length;
  // The work the classifier does is bounded by the input, not by anything it could multiply.
  assert.ok(chars <= 8 * seen + MAX_TOKENS * 64, `${chars} token chars from ${seen} bytes`);
  assert.ok(facts.urlHosts.length <= 200 + MAX_LINKS);
  assert.ok(facts.obfuscated.length <= 50);
  const a = analyzeData(buf, MAX_BYTES, CTX, 12345);
  assert.equal(a.tokens.length, tokens.size);
  assert.equal(a.hashes?.length, a.tokens.length);
}

// First in the file: the decoder cache holds 256 names, and the fuzzing below fills it.
describe('regressions found by fuzzing', () => {
  it('finding an address in a long header run takes one pass (it was quadratic)', async () => {
    // Before the fix a 2 MB run took hours (a fresh scan from every character); it runs in a
    // worker so that a regression fails the test instead of hanging the file.
    const url = new URL('../../src/spam/tokenize.ts', import.meta.url).href;
    const code = `const { parentPort } = require('node:worker_threads');
      import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); }).then((m) => {
        parentPort.postMessage([m.addressOf('h'.repeat(2000000)) ?? null, m.addressOf('<' + 'a@'.repeat(1000000)), m.addressOf('"x" <a@b.example>'), m.addressOf('x a@b.example y')]);
      });`;
    const worker = new Worker(code, { eval: true });
    try {
      const result = await Promise.race([
        new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject)),
        new Promise((resolve) => setTimeout(() => resolve('no answer within 20 s'), 20_000).unref()),
      ]);
      assert.deepEqual(result, [null, 'a@'.repeat(1_000_000), 'a@b.example', 'a@b.example']);
    } finally {
      await worker.terminate();
    }
  });

  it('bogus charset names do not pile up in the decoder cache', (t) => {
    const gc = collector();
    if (!gc) return t.skip('no garbage collector available to measure the heap');
    const heap = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const before = heap();
    // Each message names its own 100 KB charset; a cache keyed by the name kept them all.
    for (let i = 0; i < 300; i++) {
      const name = `${i}-`.padEnd(100_000, 'q');
      parseMessage(Buffer.from(`Content-Type: text/plain; charset=${name}\r\n\r\nt\xe9xt`, 'latin1'));
    }
    const grown = heap() - before;
    assert.ok(grown < 4 * 1024 * 1024, `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
  });
});

describe('fuzzing the MIME reader', () => {
  it('random messages: no throw, every bound holds', () => {
    fc.assert(fc.property(message, (raw) => readAndCheck(raw)), { numRuns: 600 });
  });

  it('mutated messages: no throw, every bound holds', () => {
    fc.assert(fc.property(mutated, (raw) => readAndCheck(raw)), { numRuns: 600 });
  });

  it('raw bytes, and the decoders on their own: no throw', () => {
    fc.assert(
      fc.property(bytes(2000), charset, (b, cs) => {
        readAndCheck(b);
        const decoded = decodeBytes(Buffer.from(b, 'latin1'), cs);
        assert.ok(decoded.length <= b.length);
        assert.ok(decodeHeaderValue(b).length <= b.length);
        const h = htmlToText(b);
        assert.ok(h.text.length <= b.length && h.links.length <= MAX_LINKS);
      }),
      { numRuns: 800 },
    );
  });
});

describe('adversarial messages, each with a fixed bound', () => {
  const read = (raw: string): ReturnType<typeof parseMessage> => {
    readAndCheck(raw);
    return parseMessage(Buffer.from(raw, 'latin1'));
  };

  it('multiparts nested 1000 deep, distinct and reused boundaries', () => {
    for (const distinct of [true, false]) {
      let body = 'Content-Type: text/plain\r\n\r\ndeepest words';
      for (let i = 0; i < 1000; i++) {
        const b = distinct ? `b${i}` : 'b';
        body = `Content-Type: multipart/mixed; boundary="${b}"\r\n\r\n--${b}\r\n${body}\r\n--${b}--`;
      }
      const raw = `Subject: deep\r\n${body}`;
      const m = read(raw);
      if (distinct) {
        // Nine levels are walked (the top and eight below); below that, the multipart is read
        // as its text, as a mail client shows a multipart it cannot take apart.
        assert.equal(m.parts.length, 9);
        assert.ok(m.plain.startsWith('--b991\r\n'));
        assert.ok(m.plain.length < raw.length);
      } else {
        // One boundary for all: the outer delimiters cut every level into empty parts.
        assert.equal(m.parts.length, MAX_PARTS);
        assert.equal(m.plain, '');
      }
    }
  });

  it('message/rfc822 nested 1000 deep, and 30 deep with every level base64', () => {
    let inner = 'Subject: core\r\n\r\ncore text';
    for (let i = 0; i < 1000; i++) inner = `Subject: level\r\nContent-Type: message/rfc822\r\n\r\n${inner}`;
    assert.equal(read(inner).parts.length, 9);
    // Base64 makes each level 4/3 the size of the one below: 30 levels are 200 KB.
    inner = 'Subject: core\r\n\r\ncore text';
    for (let i = 0; i < 30; i++) inner = `Subject: level\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(inner)}`;
    assert.equal(read(inner).parts.length, 9);
  });

  it('10,000 parts: the first 64 are read', () => {
    const raw = ['Content-Type: multipart/mixed; boundary=x', ''];
    for (let i = 0; i < 10_000; i++) raw.push('--x', '', `part${i}`);
    raw.push('--x--');
    const m = read(raw.join('\r\n'));
    assert.equal(m.parts.length, MAX_PARTS);
  });

  it('a 400 KB header line, a 400 KB folded header, a 400 KB charset name', () => {
    const big = 'x'.repeat(400_000);
    read(`Subject: ${big}\r\n\r\nbody`);
    read(`Subject: a${'\r\n b'.repeat(100_000)}\r\n\r\nbody`);
    const m = read(`Content-Type: text/plain; charset=${big}\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64('hello there')}`);
    assert.equal(m.plain, 'hello there');
  });

  it('ISO-2022-JP escapes cut halfway, in the body and in encoded words', () => {
    const jp = '\x1b$B$3$s$K$A$O\x1b(B';
    for (let cut = 0; cut <= jp.length; cut++) {
      const piece = jp.slice(0, cut);
      const m = read(`Subject: =?ISO-2022-JP?B?${b64(piece)}?= tail\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n${piece}`);
      assert.ok(m.plain.length <= piece.length);
    }
  });

  it('HTML with unclosed tags, comments and scripts', () => {
    for (const h of ['<a href="http://x.example/' + 'a'.repeat(100_000), '<!--' + 'x'.repeat(100_000), '<script>' + '<'.repeat(100_000), '<'.repeat(200_000), '<b'.repeat(100_000), '<a href=x>'.repeat(20_000)]) {
      const m = read(`Content-Type: text/html\r\n\r\n${h}`);
      assert.ok(m.links.length <= MAX_LINKS);
    }
  });

  it('broken base64 and quoted-printable', () => {
    for (const [enc, body] of [
      ['base64', '===='.repeat(10_000)],
      ['base64', '@#$%'.repeat(10_000)],
      ['base64', 'QUJD'.repeat(10_000) + '='],
      ['quoted-printable', '='.repeat(100_000)],
      ['quoted-printable', '=\r\n'.repeat(30_000)],
      ['quoted-printable', '=4'.repeat(50_000)],
    ] as const) {
      read(`Content-Type: text/plain\r\nContent-Transfer-Encoding: ${enc}\r\n\r\n${body}`);
    }
  });
});
