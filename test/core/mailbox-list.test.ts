// The strict mailbox-list reader behind the header-From rule: what it must accept, what it must
// refuse, and that no input makes it throw or accept a list whose displayed text shows a foreign
// address. (The full table through SMTP is test/e2e/header-from.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { addressesShownIn, decodeEncodedWords, parseMailboxList } from '../../src/core/mailbox-list.ts';

test('mailbox-list: ordinary fields give their mailboxes and display names', () => {
  assert.deepEqual(parseMailboxList('"Alice A." <alice@Example.ORG>, bob@example.org (Bob)'), {
    ok: true,
    mailboxes: [
      { address: 'alice@example.org', display: 'Alice A.' },
      { address: 'bob@example.org', display: '' },
    ],
  });
  assert.deepEqual(parseMailboxList('=?utf-8?q?Al=C3=AFce?= =?utf-8?b?IEE=?= <alice@example.org>'), { ok: true, mailboxes: [{ address: 'alice@example.org', display: 'Alïce A' }] });
});

test('mailbox-list: tricks are refused with a reason', () => {
  for (const v of ['<a@x.test> <b@y.test>', '"x" <a@x.test>b@y.test', 'g: a@x.test;', 'a@x.test (b@y.test)', '"b@y.test" <a@x.test>', '=?utf-8?q?b=40y.test?= <a@x.test>', '<@r.test:a@x.test>', 'a @ x.test', 'a@x.test,', '', '<a@[192.0.2.1]>', '"\u202eb" <a@x.test>', '=?utf-8?b?!!?= <a@x.test>']) {
    const r = parseMailboxList(v);
    assert.equal(r.ok, false, v);
  }
});

test('mailbox-list: decoding and address spotting', () => {
  assert.equal(decodeEncodedWords('=?iso-8859-1?q?J=F6rg?='), 'Jörg');
  assert.throws(() => decodeEncodedWords('=?no-such-charset?q?x?='));
  assert.deepEqual(addressesShownIn('write to bob\uff20evil.test or eve @ x.test'), ['bob@evil.test', 'eve@x.test']);
});

test('mailbox-list: never throws, and what it accepts shows no address but its own', () => {
  const piece = fc.constantFrom('alice', 'bob', '@', '.', 'example.org', 'evil.test', '<', '>', ',', ':', ';', '"', '(', ')', ' ', '\\', '=?utf-8?q?', '?=', '=40', '\uff20', '\u202e', '\0', '[', ']');
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 24 }), (parts) => {
      const r = parseMailboxList(parts.join(''));
      if (!r.ok) return;
      for (const m of r.mailboxes) for (const a of addressesShownIn(m.display)) assert.equal(a, m.address);
    }),
    { numRuns: 3000 },
  );
});
