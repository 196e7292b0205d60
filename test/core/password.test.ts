// scrypt password hashes: format, round trip, wrong and tampered input, and parse errors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HashPool, HashPoolFullError, hashPassword, parsePasswordHash, verifyAgainstDummy, verifyPassword } from '../../src/core/password.ts';

const FORMAT = /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/;

void describe('password hashing', async () => {
  const stored = await hashPassword('correct horse battery staple');

  void test('writes the self-describing format with a fresh salt each time', async () => {
    assert.match(stored, FORMAT);
    const again = await hashPassword('correct horse battery staple');
    assert.match(again, FORMAT);
    assert.notEqual(again, stored);
  });

  void test('round trip: the right password verifies, a wrong one does not', async () => {
    assert.equal(await verifyPassword('correct horse battery staple', stored), true);
    assert.equal(await verifyPassword('correct horse battery stapl', stored), false);
    assert.equal(await verifyPassword('Correct horse battery staple', stored), false);
    assert.equal(await verifyPassword('', stored), false);
  });

  void test('compares passwords in Unicode NFC (RFC 8265)', async () => {
    const h = await hashPassword('caf\u00e9'); // precomposed é
    assert.equal(await verifyPassword('cafe\u0301', h), true); // e + combining acute
    assert.equal(await verifyPassword('cafe', h), false);
  });

  void test('honours the parameters written in the stored string', async () => {
    const h = await hashPassword('pw', { ln: 10, r: 8, p: 1 });
    assert.match(h, /^\$scrypt\$ln=10,r=8,p=1\$/);
    assert.equal(await verifyPassword('pw', h), true);
  });

  void test('a tampered or malformed stored string gives false, never an exception', async () => {
    const [, , params = '', salt = '', hash = ''] = stored.split('$');
    // Change the FIRST character: the last one of unpadded base64 carries spare bits, so changing
    // it may decode to the same bytes (a flaky test, seen once).
    const flip = (s: string): string => `${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`;
    const tampered = [
      `$scrypt$${params}$${salt}$${flip(hash)}`,
      `$scrypt$${params}$${flip(salt)}$${hash}`,
      `$scrypt$ln=14,r=8,p=1$${salt}$${hash}`,
      `$scrypt$${params}$${salt}$${hash.slice(0, 30)}`,
      `$scrypt$${params}$${salt}`,
      `$scrypt$ln=99,r=8,p=1$${salt}$${hash}`,
      `$argon2id$v=19$m=65536,t=3,p=4$${salt}$${hash}`,
      '',
      'correct horse battery staple',
      `${stored}\n`,
    ];
    for (const t of tampered) assert.equal(await verifyPassword('correct horse battery staple', t), false, t);
  });

  void test('no stored hash (unknown user) gives false', async () => {
    assert.equal(await verifyPassword('anything', undefined), false);
    assert.equal(await verifyAgainstDummy('anything'), false);
  });

  void test('refuses to hash an empty password', async () => {
    await assert.rejects(hashPassword(''), { message: 'password must not be empty' });
  });
});

void describe('parsePasswordHash', () => {
  const salt = 'c2FsdHNhbHRzYWx0c2FsdA'; // 16 bytes
  const hash = 'aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g'; // 32 bytes

  void test('parses a valid string', () => {
    const r = parsePasswordHash(`$scrypt$ln=15,r=8,p=1$${salt}$${hash}`);
    assert.ok(r.ok);
    assert.deepStrictEqual([r.value.ln, r.value.r, r.value.p, r.value.salt.length, r.value.hash.length], [15, 8, 1, 16, 32]);
    assert.equal(r.value.salt.toString(), 'saltsaltsaltsalt');
  });

  const errors: [string, string][] = [
    ['', 'not a $scrypt$ln=..,r=..,p=..$salt$hash string'],
    [`$scrypt$ln=15,r=8$${salt}$${hash}`, 'not a $scrypt$ln=..,r=..,p=..$salt$hash string'],
    [`$scrypt$ln=15,r=8,p=1$${salt}$${hash}=`, 'not a $scrypt$ln=..,r=..,p=..$salt$hash string'],
    [`$scrypt$ln=15,r=8,p=1$${salt}$${hash}$`, 'not a $scrypt$ln=..,r=..,p=..$salt$hash string'],
    [`$scrypt$ln=9,r=8,p=1$${salt}$${hash}`, 'scrypt parameters out of range (ln 10..20, r 1..32, p 1..16)'],
    [`$scrypt$ln=15,r=0,p=1$${salt}$${hash}`, 'scrypt parameters out of range (ln 10..20, r 1..32, p 1..16)'],
    [`$scrypt$ln=15,r=8,p=17$${salt}$${hash}`, 'scrypt parameters out of range (ln 10..20, r 1..32, p 1..16)'],
    [`$scrypt$ln=20,r=32,p=1$${salt}$${hash}`, 'scrypt parameters need too much memory'],
    [`$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2Fs$${hash}`, 'salt length out of range'],
    [`$scrypt$ln=15,r=8,p=1$${salt}$aGFzaA`, 'hash is not 32 bytes'],
    [`$scrypt$ln=15,r=8,p=1$${salt}$${hash}aGFz`, 'hash is not 32 bytes'],
  ];
  for (const [input, error] of errors) {
    void test(`refuses ${JSON.stringify(input)}`, () => assert.deepStrictEqual(parsePasswordHash(input), { ok: false, error }));
  }
});

void describe('password hashing on a HashPool', () => {
  void test('verifies on its own threads exactly as on the calling thread', async (t) => {
    const pool = new HashPool({ threads: 1, maxQueued: 4 });
    t.after(() => pool.close());
    const stored = await hashPassword('pool password');
    assert.equal(await pool.verify('pool password', stored), true);
    assert.equal(await pool.verify('pool passwore', stored), false);
    assert.equal(await pool.verify('pool password', undefined), false);
    assert.equal(await pool.verify('cafe\u0301', await hashPassword('caf\u00e9')), true);
  });

  void test('refuses at once, with HashPoolFullError, past its threads and queue', async (t) => {
    const pool = new HashPool({ threads: 1, maxQueued: 1 });
    t.after(() => pool.close());
    const running = [pool.verify('a', undefined), pool.verify('b', undefined)];
    await assert.rejects(pool.verify('c', undefined), HashPoolFullError);
    assert.deepEqual(await Promise.all(running), [false, false]);
    // Room again once they are done.
    assert.equal(await pool.verify('d', undefined), false);
  });
});
