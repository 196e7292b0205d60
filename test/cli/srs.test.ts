// SRS keys: made on first use (mode 0600), rotated with the new key first, old keys verifying the
// return addresses they made until forwarding.srs.maxAge days after they were replaced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { mailward, setupConfig } from './inprocess.ts';
import { createSrs, SrsKeyFile } from '../../src/app/srs-keys.ts';

const DAY = 86_400_000;

test('srs cli: keys makes the key file, rotate puts a new key first and the old one still verifies', async (t) => {
  const { dataDir, config } = setupConfig(t);
  const file = path.join(dataDir, 'srs-keys');
  assert.equal((await mailward(['-c', config, 'srs', 'keys'])).code, 0);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const first = new SrsKeyFile(file).keys();
  assert.equal(first.length, 1);
  const srs = createSrs({ keys: new SrsKeyFile(file), domain: 'example.org', maxAgeDays: 21, ownDomains: ['example.org'], clock: Date.now });
  const address = srs.forward('bob@example.net')!;
  assert.equal(srs.forward('alice@example.org'), undefined, 'our own senders are not rewritten');

  assert.equal((await mailward(['-c', config, 'srs', 'rotate'])).code, 0);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const after = new SrsKeyFile(file).keys();
  assert.equal(after.length, 2);
  assert.equal(after[1]!.secret, first[0]!.secret, 'the old key is kept, second');
  assert.ok(!readFileSync(file, 'utf8').includes('undefined'));
  // The same Srs object sees the rotation (the file changed) and still reverses the old address.
  assert.deepEqual(srs.reverse(address), { ok: true, address: 'bob@example.net' });
  assert.notEqual(srs.forward('bob@example.net'), address, 'the new key signs');
});

test('srs keys: a key replaced more than maxAge days ago is dropped at the next rotation', (t) => {
  const { dataDir } = setupConfig(t);
  let now = Date.parse('2026-01-01T00:00:00Z');
  const keys = new SrsKeyFile(path.join(dataDir, '..', 'srs-keys'), () => now);
  const k0 = keys.keys()[0]!;
  now += DAY;
  const r1 = keys.rotate(21);
  assert.equal(r1.keys.length, 2);
  now += 10 * DAY;
  assert.equal(keys.rotate(21).keys.length, 3, 'k0 was replaced 10 days ago: kept');
  now += 30 * DAY;
  const r3 = keys.rotate(21);
  assert.deepEqual(r3.dropped.map((k) => k.secret).sort(), [k0.secret, r1.added.secret].sort(), 'keys replaced more than 21 days ago are gone');
  assert.equal(r3.keys.length, 2);
});
