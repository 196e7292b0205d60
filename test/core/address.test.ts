// RFC 5321 path parsing: a table of valid, hostile and malformed paths with their exact results,
// and property tests that no input throws and that valid mailboxes round-trip.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  isValidDomain,
  normaliseDomain,
  parseMailbox,
  parsePath,
  type AddressFlag,
  type ParseResult,
  type PathOptions,
} from '../../src/core/address.ts';

const RCPT: PathOptions = { allowNull: false, smtputf8: false };
const RCPT8: PathOptions = { allowNull: false, smtputf8: true };
const MAIL: PathOptions = { allowNull: true, smtputf8: false };

function ok(local: string, domain: string, flags: AddressFlag[] = [], ipLiteral?: string): ParseResult {
  const mailbox = { local, domain, address: `${local}@${domain}`, flags };
  return { ok: true, mailbox: ipLiteral === undefined ? mailbox : { ...mailbox, ipLiteral } };
}
function bad(error: string, code: 501 | 553 = 501, enhanced = '5.1.3'): ParseResult {
  return { ok: false, error, code, enhanced };
}
const utf8Refused = bad('non-ASCII address without SMTPUTF8', 553, '5.6.7');

const L64 = 'l'.repeat(64);
// 254 octets between the brackets: 64 + '@' + 189 (RFC 5321 §4.5.3.1.3: 256 with brackets).
const D189 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(57)}.org`;

const cases: [string, PathOptions, ParseResult][] = [
  // plain and case
  ['<user@example.org>', RCPT, ok('user', 'example.org')],
  ['<User@Example.ORG>', RCPT, ok('User', 'example.org')],
  ['<A@EXAMPLE.ORG>', RCPT, ok('A', 'example.org')],
  ['<first.last+tag@sub.example.org>', RCPT, ok('first.last+tag', 'sub.example.org')],
  ["<o'brien{x}=y@example.org>", RCPT, ok("o'brien{x}=y", 'example.org')],
  ['<a@localhost>', RCPT, ok('a', 'localhost')],
  ['<a@xn--bcher-kva.example>', RCPT, ok('a', 'xn--bcher-kva.example')],
  ['<a@1example.org>', RCPT, ok('a', '1example.org')],
  // whitespace around the path
  ['  <a@b.example>  ', RCPT, ok('a', 'b.example')],
  ['\t<a@b.example>', RCPT, ok('a', 'b.example')],
  // no brackets
  ['user@x.org', RCPT, ok('user', 'x.org', ['no-brackets'])],
  ['user@x.org', { ...RCPT, allowNoBrackets: false }, bad('angle brackets required')],
  // null path
  ['<>', MAIL, { ok: true, mailbox: null }],
  [' <> ', MAIL, { ok: true, mailbox: null }],
  ['<>', RCPT, bad('null path not allowed')],
  ['', MAIL, bad('empty path', 501, '5.1.7')],
  ['   ', RCPT, bad('empty path')],
  // relay tricks in the local part
  ['<a%b@c.example>', RCPT, ok('a%b', 'c.example', ['percent-hack'])],
  ['<b!a@c.example>', RCPT, ok('b!a', 'c.example', ['bang-path'])],
  ['<x!a%b@c.example>', RCPT, ok('x!a%b', 'c.example', ['percent-hack', 'bang-path'])],
  ['<"a@b"@c.example>', RCPT, ok('"a@b"', 'c.example', ['percent-hack', 'quoted-local'])],
  ['<"a%b"@c.example>', RCPT, ok('a%b', 'c.example', ['percent-hack', 'quoted-local'])],
  ['<"a!b"@c.example>', RCPT, ok('a!b', 'c.example', ['bang-path', 'quoted-local'])],
  // source routes: accepted, route ignored (RFC 5321 §4.1.1.3, Appendix C)
  ['<@c.example:a@b.example>', RCPT, ok('a', 'b.example', ['source-route'])],
  ['<@c.example,@d.example:a@b.example>', RCPT, ok('a', 'b.example', ['source-route'])],
  ['@c.example:a@b.example', RCPT, ok('a', 'b.example', ['source-route', 'no-brackets'])],
  ['<@c.example,d.example:a@b.example>', RCPT, bad('malformed source route')],
  ['<@c_d.example:a@b.example>', RCPT, bad('malformed source route')],
  ['<@c.example:>', RCPT, bad('missing @')],
  ['<@b.example>', RCPT, bad('malformed source route')],
  ['<@bücher.example:a@b.example>', RCPT, utf8Refused],
  // quoted local parts
  ['<"a b"@c.example>', RCPT, ok('"a b"', 'c.example', ['quoted-local'])],
  ['<"abc"@c.example>', RCPT, ok('abc', 'c.example', ['quoted-local'])],
  ['<"a.b"@c.example>', RCPT, ok('a.b', 'c.example', ['quoted-local'])],
  ['<"a..b"@c.example>', RCPT, ok('"a..b"', 'c.example', ['quoted-local'])],
  ['<"a\\"b"@c.example>', RCPT, ok('"a\\"b"', 'c.example', ['quoted-local'])],
  ['<"a\\b"@c.example>', RCPT, ok('ab', 'c.example', ['quoted-local'])],
  ['<"a\\\\b"@c.example>', RCPT, ok('"a\\\\b"', 'c.example', ['quoted-local'])],
  ['<"a<b>"@c.example>', RCPT, ok('"a<b>"', 'c.example', ['quoted-local'])],
  ['<""@c.example>', RCPT, bad('empty local part')],
  ['<"abc@c.example>', RCPT, bad('unterminated quoted string')],
  ['<"a"b@c.example>', RCPT, bad('missing @')],
  ['<"a\tb"@c.example>', RCPT, bad('invalid character in local part')],
  ['<"a\\\u00e9"@c.example>', RCPT8, bad('invalid quoted pair')],
  // address literals (RFC 5321 §4.1.3)
  ['<a@[127.0.0.1]>', RCPT, ok('a', '[127.0.0.1]', ['ip-literal'], '127.0.0.1')],
  ['<a@[IPv6:::1]>', RCPT, ok('a', '[ipv6:::1]', ['ip-literal'], '::1')],
  ['<a@[IPv6:2001:DB8:0:0:0:0:0:1]>', RCPT, ok('a', '[ipv6:2001:db8::1]', ['ip-literal'], '2001:db8::1')],
  ['<a@[ipv6:::ffff:127.0.0.1]>', RCPT, ok('a', '[ipv6:::ffff:127.0.0.1]', ['ip-literal'], '::ffff:127.0.0.1')],
  ['<a@[999.1.1.1]>', RCPT, bad('invalid IPv4 address literal')],
  ['<a@[1.2.3]>', RCPT, bad('invalid IPv4 address literal')],
  ['<a@[010.0.0.1]>', RCPT, bad('invalid IPv4 address literal')],
  ['<a@[IPv6:fe80::1%eth0]>', RCPT, bad('invalid IPv6 address literal')],
  ['<a@[IPv6:1.2.3.4]>', RCPT, bad('invalid IPv6 address literal')],
  ['<a@[x400:c=us;a=x]>', RCPT, bad('general address literal not supported', 553)],
  ['<a@[x400 c]>', RCPT, bad('invalid IPv4 address literal')],
  ['<a@[:x]>', RCPT, bad('invalid address literal')],
  ['<a@[127.0.0.1>', RCPT, bad('unterminated address literal')],
  // domains
  ['<a@example.org.>', RCPT, ok('a', 'example.org', ['trailing-dot'])],
  ['<a@example.org..>', RCPT, bad('empty label in domain')],
  ['<a@.example.org>', RCPT, bad('empty label in domain')],
  ['<a@-bad.org>', RCPT, bad('invalid label in domain')],
  ['<a@bad-.org>', RCPT, bad('invalid label in domain')],
  ['<a@b_c.org>', RCPT, bad('invalid character in domain')],
  ['<a@b c.org>', RCPT, bad('invalid character in domain')],
  ['<a@a.example,b.example>', RCPT, bad('invalid character in domain')],
  ['<a@127.0.0.1>', RCPT, bad('numeric top-level label')],
  ['<a@1.2.3.4.>', RCPT, bad('numeric top-level label')],
  ['<a@>', RCPT, bad('empty domain')],
  [`<a@${'x'.repeat(63)}.org>`, RCPT, ok('a', `${'x'.repeat(63)}.org`)],
  [`<a@${'x'.repeat(64)}.org>`, RCPT, bad('label too long in domain')],
  [`<a@${'abc.'.repeat(64)}org>`, RCPT, bad('path too long')],
  // local parts
  ['<a..b@c.example>', RCPT, bad('misplaced dot in local part')],
  ['<.a@c.example>', RCPT, bad('misplaced dot in local part')],
  ['<a.@c.example>', RCPT, bad('misplaced dot in local part')],
  ['<a b@c.example>', RCPT, bad('invalid character in local part')],
  ['<a,b@c.example>', RCPT, bad('invalid character in local part')],
  ['<ab.example>', RCPT, bad('missing @')],
  ['< >', RCPT, bad('missing @')],
  [`<${L64}@c.example>`, RCPT, ok(L64, 'c.example')],
  [`<${L64}l@c.example>`, RCPT, bad('local part too long')],
  [`<"${'q'.repeat(63)}"@c.example>`, RCPT, bad('local part too long')],
  // path length (RFC 5321 §4.5.3.1.3)
  [`<${L64}@${D189}>`, RCPT, ok(L64, D189)],
  [`<${L64}@x${D189}>`, RCPT, bad('path too long')],
  // brackets and trailing garbage
  ['<a@b.example> SIZE=10', RCPT, bad('text after path')],
  ['<a@b.example', RCPT, bad('unbalanced angle brackets')],
  ['<', RCPT, bad('unbalanced angle brackets')],
  ['<<a@b.example>>', RCPT, bad('invalid character in local part')],
  ['a@b.example>', RCPT, bad('invalid character in domain')],
  ['<a@b.example>>', RCPT, bad('invalid character in domain')],
  // control characters and smuggling attempts
  ['<a\r\n@b.example>', RCPT, bad('invalid character in local part')],
  ['<a@b.example\r\nRCPT TO:<x@y.example>>', RCPT, bad('invalid character in domain')],
  ['<a\u0000@b.example>', RCPT, bad('invalid character in local part')],
  ['<a\u007f@b.example>', RCPT, bad('invalid character in local part')],
  // UTF-8 (RFC 6531)
  ['<ü@example.org>', RCPT, utf8Refused],
  ['<ü@example.org>', RCPT8, ok('ü', 'example.org', ['utf8'])],
  ['<a@bücher.example>', RCPT, utf8Refused],
  ['<a@Bücher.example>', RCPT8, ok('a', 'xn--bcher-kva.example', ['utf8'])],
  ['<用户@例子.广告>', RCPT8, ok('用户', 'xn--fsqu00a.xn--4rr70v', ['utf8'])],
  ['<"ü x"@a.example>', RCPT8, ok('"ü x"', 'a.example', ['quoted-local', 'utf8'])],
  ['<"ü x"@a.example>', RCPT, utf8Refused],
  ['<a@ｅｘａｍｐｌｅ.org>', RCPT8, ok('a', 'example.org', ['utf8'])],
  ['<a\u00a0b@c.example>', RCPT8, bad('invalid character in local part')],
  ['<a\u0085b@c.example>', RCPT8, bad('invalid character in local part')],
  ['<\ud800@c.example>', RCPT8, bad('invalid character in local part')],
  ['<a@\ufffd.example>', RCPT8, bad('invalid character in domain')],
  ['<a@ex%41ü.example>', RCPT8, bad('invalid character in domain')],
  // roles: 5.1.7 for a sender, 5.1.3 for a recipient (RFC 3463 §3.2)
  ['<a..b@c.example>', MAIL, bad('misplaced dot in local part', 501, '5.1.7')],
  ['<a..b@c.example>', { ...MAIL, role: 'recipient' }, bad('misplaced dot in local part')],
  ['<a@[x400:c=us]>', MAIL, bad('general address literal not supported', 553, '5.1.7')],
  ['<ü@example.org>', MAIL, utf8Refused],
  // RCPT TO:<Postmaster> (RFC 5321 §4.1.1.3)
  ['<Postmaster>', { ...RCPT, postmasterDomain: 'Example.ORG' }, ok('Postmaster', 'example.org')],
  ['<Postmaster>', RCPT, bad('missing @')],
  ['<postmaster>', { ...MAIL, postmasterDomain: 'example.org' }, bad('missing @', 501, '5.1.7')],
];

void describe('parsePath table', () => {
  void test('has at least 60 cases', () => assert.ok(cases.length >= 60, String(cases.length)));
  for (const [input, opts, expected] of cases) {
    void test(`${JSON.stringify(input)} ${JSON.stringify(opts)}`, () => {
      assert.deepStrictEqual(parsePath(input, opts), expected);
    });
  }
});

void describe('parseMailbox', () => {
  void test('parses a bare address with UTF-8 allowed by default', () => {
    assert.deepStrictEqual(parseMailbox(' Alice@Bücher.Example '), {
      ok: true,
      mailbox: { local: 'Alice', domain: 'xn--bcher-kva.example', address: 'Alice@xn--bcher-kva.example', flags: ['utf8'] },
    });
  });
  void test('refuses brackets, routes and UTF-8 when told', () => {
    assert.deepStrictEqual(parseMailbox('<a@b.example>'), bad('invalid character in local part'));
    assert.deepStrictEqual(parseMailbox('@r.example:a@b.example'), bad('empty local part'));
    assert.deepStrictEqual(parseMailbox('ü@b.example', { smtputf8: false }), utf8Refused);
    assert.deepStrictEqual(parseMailbox('a', { role: 'sender' }), bad('missing @', 501, '5.1.7'));
  });
});

void describe('normaliseDomain and isValidDomain', () => {
  const norm: [string, string][] = [
    ['Example.ORG', 'example.org'],
    ['example.org.', 'example.org'],
    ['Bücher.example', 'xn--bcher-kva.example'],
    ['münchen.de.', 'xn--mnchen-3ya.de'],
    ['[IPv6:0:0::1]', '[ipv6:::1]'],
    ['Not_Valid.Example', 'not_valid.example'],
    ['ex%41ü.example', 'ex%41ü.example'],
  ];
  for (const [input, want] of norm) void test(`normaliseDomain(${input})`, () => assert.equal(normaliseDomain(input), want));

  const valid: [string, boolean][] = [
    ['example.org', true],
    ['example.org.', true],
    ['localhost', true],
    ['bücher.example', true],
    ['', false],
    ['.', false],
    ['a..b', false],
    ['-a.example', false],
    ['1.2.3.4', false],
    ['[127.0.0.1]', false],
    ['a_b.example', false],
    [`${'x'.repeat(64)}.example`, false],
    // RFC 5321 §4.5.3.1.2: 255 octets at most
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`, true],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}.e`, false],
  ];
  for (const [input, want] of valid) void test(`isValidDomain(${JSON.stringify(input)})`, () => assert.equal(isValidDomain(input), want));
});

// ── properties ─────────────────────────────────────────────────────────────

const INTERESTING = [...'<>@"\\.,:[]%! \t\r\n\u0000aZ09-_üＡ', '\ud800', '\u00a0', 'IPv6:', '::1', '127.0.0.1'];
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'binary-ascii', maxLength: 80 }),
  fc.string({ unit: fc.constantFrom(...INTERESTING), maxLength: 40 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 250, maxLength: 300 }),
);
const anyOpts = fc.record({
  allowNull: fc.boolean(),
  smtputf8: fc.boolean(),
  allowNoBrackets: fc.boolean(),
  role: fc.constantFrom('sender' as const, 'recipient' as const),
});

const ATEXT = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', ..."!#$%&'*+-/=?^_`{|}~"];
const atom = fc.string({ unit: fc.constantFrom(...ATEXT), minLength: 1, maxLength: 10 });
const localPart = fc.array(atom, { minLength: 1, maxLength: 4 }).map((a) => a.join('.'));
const LDH = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'];
const label = fc
  .tuple(fc.constantFrom(...LDH), fc.string({ unit: fc.constantFrom(...LDH, '-'), maxLength: 10 }), fc.constantFrom(...LDH))
  .map(([a, mid, z]) => `${a}${mid}${z}`);
const tld = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'), minLength: 2, maxLength: 6 });
const domain = fc.tuple(fc.array(label, { maxLength: 3 }), tld).map(([ls, t]) => [...ls, t].join('.'));
const validPath = fc.tuple(localPart, domain).map(([l, d]) => `<${l}@${d}>`);

function assertShape(r: ParseResult): void {
  if (r.ok) {
    if (r.mailbox === null) return;
    const m = r.mailbox;
    assert.equal(m.address, `${m.local}@${m.domain}`);
    assert.equal(m.domain, m.domain.toLowerCase());
    assert.doesNotMatch(m.address, /[\u0000-\u001f\u007f]/);
    assert.ok(m.local.length > 0 && m.domain.length > 0);
    assert.deepStrictEqual(Object.keys(r).sort(), ['mailbox', 'ok']);
  } else {
    assert.ok(r.error.length > 0);
    assert.ok(r.code === 501 || r.code === 553);
    assert.match(r.enhanced, /^5\.[16]\.[37]$/);
    assert.deepStrictEqual(Object.keys(r).sort(), ['code', 'enhanced', 'error', 'ok']);
  }
}

/** A mailbox that parsed must parse again, bracketed, to the same address. */
function assertStable(r: ParseResult, smtputf8: boolean): void {
  if (!r.ok || r.mailbox === null) return;
  const again = parsePath(`<${r.mailbox.address}>`, { allowNull: false, smtputf8 });
  assert.ok(again.ok, JSON.stringify(again));
  assert.equal(again.mailbox?.address, r.mailbox.address);
}

void describe('parsePath properties', () => {
  void test('any text gives one of the two shapes and never throws', () => {
    fc.assert(
      fc.property(anyText, anyOpts, (text, opts) => {
        const r = parsePath(text, opts);
        assertShape(r);
        assertStable(r, opts.smtputf8);
      }),
      { numRuns: 2000 },
    );
  });

  void test('mutations of valid paths give one of the two shapes and never throw', () => {
    const mutation = fc.tuple(fc.nat(), fc.constantFrom(...INTERESTING), fc.constantFrom('insert', 'delete', 'replace', 'double'));
    fc.assert(
      fc.property(validPath, fc.array(mutation, { minLength: 1, maxLength: 4 }), anyOpts, (path, muts, opts) => {
        let s = path;
        for (const [n, ch, kind] of muts) {
          const i = n % (s.length + 1);
          if (kind === 'insert') s = s.slice(0, i) + ch + s.slice(i);
          else if (kind === 'delete') s = s.slice(0, i) + s.slice(i + 1);
          else if (kind === 'replace') s = s.slice(0, i) + ch + s.slice(i + 1);
          else s = s + s;
        }
        const r = parsePath(s, opts);
        assertShape(r);
        assertStable(r, opts.smtputf8);
      }),
      { numRuns: 2000 },
    );
  });

  void test('a valid generated mailbox round-trips', () => {
    fc.assert(
      fc.property(localPart, domain, (l, d) => {
        const flags: AddressFlag[] = [];
        if (l.includes('%')) flags.push('percent-hack');
        if (l.includes('!')) flags.push('bang-path');
        assert.deepStrictEqual(parsePath(`<${l}@${d}>`, RCPT), ok(l, d.toLowerCase(), flags));
      }),
      { numRuns: 1000 },
    );
  });

  void test('a quoted local part round-trips to a fixed point', () => {
    const qcontent = fc.string({ unit: fc.constantFrom(...ATEXT, ' ', '.', '"', '\\', '@', '(', ')', ',', ';', ':', '<', '>', '[', ']'), minLength: 1, maxLength: 30 });
    fc.assert(
      fc.property(qcontent, domain, (content, d) => {
        const quoted = `"${content.replace(/["\\]/g, '\\$&')}"`;
        const r = parsePath(`<${quoted}@${d}>`, RCPT);
        assert.ok(r.ok && r.mailbox, JSON.stringify(r));
        assert.ok(r.mailbox.flags.includes('quoted-local'));
        const again = parsePath(`<${r.mailbox.address}>`, RCPT);
        assert.ok(again.ok && again.mailbox);
        assert.equal(again.mailbox.address, r.mailbox.address);
        assert.equal(again.mailbox.local, r.mailbox.local);
      }),
      { numRuns: 1000 },
    );
  });
});
