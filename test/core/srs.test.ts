// SRS addresses in the format of libsrs2 / postsrsd: the vectors are postsrsd's own test cases
// (secret "tops3cr3t", the time 2020-01-01 00:01:00 UTC, SRS domain example.com), so an address
// either makes is read by the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSrsLocal, srsForward, srsReverse, srsStamp, stampAgeDays } from '../../src/core/srs.ts';

const SECRET = 'tops3cr3t';
const NOW = 1577836860_000;
const DAY = 86_400_000;
const MAX_AGE = 21;

test('srs: forwarding writes the addresses postsrsd writes', () => {
  assert.equal(srsStamp(NOW), '2W');
  assert.equal(srsForward('test@otherdomain.com', 'example.com', SECRET, NOW), 'SRS0=vmyz=2W=otherdomain.com=test@example.com');
  // The URL-safe base64 alphabet.
  assert.equal(srsForward('hash234@somedomain.com', 'example.com', SECRET, NOW), 'SRS0=-3_5=2W=somedomain.com=hash234@example.com');
  // A sender in the SRS domain itself is kept.
  assert.equal(srsForward('test@example.com', 'example.com', SECRET, NOW), 'test@example.com');
  // Another forwarder's SRS0 becomes SRS1; an SRS1 is re-signed for us, the first forwarder kept.
  assert.equal(srsForward('SRS0=opaque+string@otherdomain.com', 'example.com', SECRET, NOW), 'SRS1=chaI=otherdomain.com==opaque+string@example.com');
  assert.equal(srsForward('SRS1=X=thirddomain.com==opaque+string@otherdomain.com', 'example.com', SECRET, NOW), 'SRS1=JIBX=thirddomain.com==opaque+string@example.com');
});

test('srs: reversing reads postsrsd\'s addresses, in any case and either base64 alphabet', () => {
  const rev = (a: string, now = NOW) => srsReverse(a, [SECRET], now, MAX_AGE);
  assert.deepEqual(rev('SRS0=XjO9=2V=otherdomain.com=test@example.com'), { ok: true, address: 'test@otherdomain.com' });
  assert.deepEqual(rev('srs0=xjo9=2v=otherdomain.com=test@example.com'), { ok: true, address: 'test@otherdomain.com' });
  assert.deepEqual(rev('SRS0=XJO9=2V=OTHERDOMAIN.COM=TEST@EXAMPLE.COM'), { ok: true, address: 'TEST@OTHERDOMAIN.COM' });
  assert.deepEqual(rev('SRS0=-3_5=2W=somedomain.com=hash234@example.com'), { ok: true, address: 'hash234@somedomain.com' });
  assert.deepEqual(rev('SRS0=+3/5=2W=somedomain.com=hash234@example.com'), { ok: true, address: 'hash234@somedomain.com' });
  assert.deepEqual(rev('SRS1=JIBX=thirddomain.com==opaque+string@example.com'), { ok: true, address: 'SRS0=opaque+string@thirddomain.com' });
});

test('srs: forged, expired, future and malformed addresses are refused with the reason', () => {
  const rev = (a: string, now = NOW) => srsReverse(a, [SECRET], now, MAX_AGE);
  assert.deepEqual(rev('SRS0=FAKE=2V=otherdomain.com=test@example.com'), { ok: false, reason: 'SRS0 hash invalid' });
  assert.deepEqual(rev('SRS0=FAKE=2V=otherdomain.com=test@foreign.example'), { ok: false, reason: 'SRS0 hash invalid' });
  assert.deepEqual(rev('SRS1=FAKE=thirddomain.com==opaque+string@example.com'), { ok: false, reason: 'SRS1 hash invalid' });
  // postsrsd's "older than 6 months" and "6 months in the future": both out of date.
  assert.equal(rev('SRS0=te87=T7=otherdomain.com=test@example.com').ok, false);
  assert.equal(rev('SRS0=VcIb=7N=otherdomain.com=test@example.com').ok, false);
  assert.match((rev('SRS0=VcIb=7N=otherdomain.com=test@example.com') as { reason: string }).reason, /expired/);
  // Our own address: valid for 21 days, then expired.
  const ours = srsForward('alice@example.net', 'srs.example.org', SECRET, NOW);
  assert.deepEqual(rev(ours, NOW + MAX_AGE * DAY), { ok: true, address: 'alice@example.net' });
  assert.match((rev(ours, NOW + (MAX_AGE + 1) * DAY) as { reason: string }).reason, /expired \(22 days old/);
  // Tampering with the original sender breaks the hash.
  assert.equal(rev(ours.replace('alice', 'mallory')).ok, false);
  assert.equal(rev(ours.replace('example.net', 'evil.test')).ok, false);
  for (const bad of ['SRS0=@example.com', 'SRS0=abcd=2W=@example.com', 'SRS0=abcd=!!=x.test=a@example.com', 'SRS1=x@example.com', 'plain@example.com']) {
    assert.equal(rev(bad).ok, false, bad);
  }
  assert.equal(srsReverse(ours, [], NOW, MAX_AGE).ok, false, 'no key verifies nothing');
});

test('srs: an address made with a rotated-out key still verifies while it is listed', () => {
  const old = srsForward('bob@example.net', 'example.org', 'old-key', NOW);
  assert.equal(srsReverse(old, ['new-key'], NOW, MAX_AGE).ok, false);
  assert.deepEqual(srsReverse(old, ['new-key', 'old-key'], NOW, MAX_AGE), { ok: true, address: 'bob@example.net' });
});

test('srs: stamps wrap around 1024 days; the shape test', () => {
  assert.equal(stampAgeDays(srsStamp(NOW), NOW + 3 * DAY), 3);
  assert.equal(stampAgeDays(srsStamp(NOW), NOW + 1030 * DAY), 6);
  assert.equal(stampAgeDays('1!', NOW), undefined);
  assert.ok(isSrsLocal('SRS0=x') && isSrsLocal('srs1+y') && isSrsLocal('SRS0-z'));
  assert.ok(!isSrsLocal('SRS2=x') && !isSrsLocal('srs0') && !isSrsLocal('SRS0x'));
});
