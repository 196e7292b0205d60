// The behaviour every Store implementation must show, written once and run against SQLite and
// Redis (sqlite.test.ts, redis.test.ts). `open(prefix)` must return a new store object on the
// same backend each time, so two calls with one prefix are two nodes sharing one view.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { StoreTypeError, StoreUnavailableError, type Store } from '../../src/store/store.ts';

export type OpenStore = (prefix: string) => Promise<Store>;

// A window so long that its bucket boundary (at 2e12 ms, in 2033) cannot fall inside a test run:
// counts inside it are exact.
const HUGE_WINDOW = 1e12;

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out = new Set<string>();
  for await (const k of it) out.add(k);
  return [...out].sort();
}

export function storeContract(open: OpenStore): void {
  let n = 0;
  const fresh = async (t: TestContext, prefix = `c${++n}-${process.pid}-${Date.now()}:`): Promise<Store> => {
    const s = await open(prefix);
    t.after(() => s.close());
    return s;
  };

  test('incr counts, sets the TTL only when the key is new, and get reads the counter', async (t) => {
    const s = await fresh(t);
    assert.equal(await s.incr('n'), 1);
    assert.equal(await s.incr('n'), 2);
    assert.equal(await s.incr('n', 5), 7);
    assert.equal(await s.incr('n', -10), -3);
    assert.equal(await s.get('n'), '-3');
    assert.equal(await s.ttl('n'), Infinity);

    assert.equal(await s.incr('w', 1, 10_000), 1);
    assert.equal(await s.incr('w', 1, 60_000), 2);
    const ttl = await s.ttl('w');
    assert.ok(ttl !== null && ttl > 9_000 && ttl <= 10_000, `ttl ${ttl}`);
    assert.equal(await s.ttl('absent'), null);
  });

  test('setMany writes every key with its own TTL, replacing what was there', async (t) => {
    const s = await fresh(t);
    await s.sadd('was-a-set', ['m']);
    await s.set('a', 'old');
    await s.setMany([
      ['a', '1'],
      ['b', '2', 60_000],
      ['was-a-set', '3'],
    ]);
    assert.deepEqual([await s.get('a'), await s.get('b'), await s.get('was-a-set')], ['1', '2', '3']);
    assert.equal(await s.ttl('a'), Infinity);
    const ttl = await s.ttl('b');
    assert.ok(ttl !== null && ttl > 50_000 && ttl <= 60_000, `ttl ${ttl}`);
    await s.setMany([]);
  });

  test('keys of every kind disappear when their TTL runs out', async (t) => {
    const s = await fresh(t);
    await s.incr('ctr', 1, 200);
    await s.set('kv', 'x', 200);
    assert.equal(await s.setIfAbsent('once', 'x', 200), true);
    await s.sadd('set', ['a', 'b'], 200);
    await s.hincrMany('hash', [['f', 3]], 200);
    await s.set('keep', 'y');
    assert.deepEqual(await collect(s.scan()), ['ctr', 'hash', 'keep', 'kv', 'once', 'set']);

    await sleep(300);
    assert.equal(await s.get('kv'), null);
    assert.equal(await s.get('ctr'), null);
    assert.equal(await s.ttl('kv'), null);
    assert.equal(await s.type('set'), null);
    assert.equal(await s.scard('set'), 0);
    assert.equal(await s.sismember('set', 'a'), false);
    assert.deepEqual(await s.hmget('hash', ['f']), [0]);
    assert.deepEqual(await collect(s.scan()), ['keep']);
    // An expired key is reusable, and starts from scratch.
    assert.equal(await s.incr('ctr', 1, 200), 1);
    assert.equal(await s.setIfAbsent('once', 'z'), true);
    assert.equal(await s.sadd('set', ['a']), 1);
    assert.deepEqual(await s.smembers('set'), ['a']);
    assert.equal(await s.ttl('set'), Infinity);
    await s.hincrMany('hash', [['g', 1]]);
    assert.deepEqual([...(await s.hgetall('hash')).entries()], [['g', 1]]);
  });

  test('set, get, del, ttl and type on plain values', async (t) => {
    const s = await fresh(t);
    assert.equal(await s.get('k'), null);
    await s.set('k', 'v1', 60_000);
    assert.equal(await s.get('k'), 'v1');
    assert.equal(await s.type('k'), 'string');
    const ttl = await s.ttl('k');
    assert.ok(ttl !== null && ttl > 59_000 && ttl <= 60_000, `ttl ${ttl}`);
    await s.set('k', 'v2'); // replaces the TTL too
    assert.equal(await s.get('k'), 'v2');
    assert.equal(await s.ttl('k'), Infinity);
    await s.set('k', 'ünïcødé ✉ \u{1F4EC}');
    assert.equal(await s.get('k'), 'ünïcødé ✉ \u{1F4EC}');
    assert.equal(await s.del('k'), true);
    assert.equal(await s.del('k'), false);
    assert.equal(await s.get('k'), null);
    assert.equal(await s.type('k'), null);

    // set replaces a key of another kind entirely.
    await s.sadd('was-set', ['m']);
    await s.set('was-set', 'now a string');
    assert.equal(await s.get('was-set'), 'now a string');
    assert.equal(await s.type('was-set'), 'string');
  });

  test('setIfAbsent: of many concurrent calls exactly one wins', async (t) => {
    const s = await fresh(t);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.setIfAbsent('grey', `caller-${i}`, 60_000)));
    assert.equal(results.filter(Boolean).length, 1);
    const winner = results.indexOf(true);
    assert.equal(await s.get('grey'), `caller-${winner}`);
    assert.equal(await s.setIfAbsent('grey', 'late'), false);
    assert.equal(await s.get('grey'), `caller-${winner}`);
  });

  test('two store objects with one prefix share counters and race fairly', async (t) => {
    const prefix = `shared-${process.pid}-${Date.now()}:`;
    const a = await fresh(t, prefix);
    const b = await fresh(t, prefix);
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).incr('quota', 1, 60_000)));
    assert.equal(await a.get('quota'), '40');
    assert.equal(await b.get('quota'), '40');
    const wins = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).setIfAbsent('triplet', String(i), 60_000)));
    assert.equal(wins.filter(Boolean).length, 1);
    await b.sadd('domains', ['a.example', 'b.example']);
    await a.sadd('domains', ['b.example', 'c.example']);
    assert.equal(await b.scard('domains'), 3);
    assert.equal(await a.hit('rate', HUGE_WINDOW), 1);
    assert.equal(await b.hit('rate', HUGE_WINDOW), 2);
  });

  test('hit counts exactly inside one bucket; by=0 only reads', async (t) => {
    const s = await fresh(t);
    assert.equal(await s.hit('r', HUGE_WINDOW, 0), 0);
    assert.equal(await s.type('r'), null, 'a pure read must not create the key');
    assert.equal(await s.hit('r', HUGE_WINDOW), 1);
    assert.equal(await s.hit('r', HUGE_WINDOW), 2);
    assert.equal(await s.hit('r', HUGE_WINDOW, 5), 7);
    assert.equal(await s.hit('r', HUGE_WINDOW, 0), 7);
    assert.equal(await s.type('r'), 'hash');
    const results = await Promise.all(Array.from({ length: 20 }, () => s.hit('r2', HUGE_WINDOW)));
    assert.deepEqual(
      results.sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  });

  test('hit slides: the previous bucket fades out, and is dropped after two windows', async (t) => {
    const s = await fresh(t);
    const w = 400;
    // A short-window key that must be forgotten by the end of this test.
    assert.equal(await s.hit('short', 100, 3), 3);
    // Start just after a bucket boundary (the Redis server shares this machine's clock).
    await sleep(w - (Date.now() % w) + 20);
    for (let i = 1; i <= 4; i++) assert.equal(await s.hit('r', w), i);
    await sleep(w - (Date.now() % w) + 20); // into the next bucket
    const v1 = await s.hit('r', w, 0);
    assert.ok(v1 > 2 && v1 < 4, `previous bucket mostly still in the window: ${v1}`);
    await sleep(150);
    const v2 = await s.hit('r', w, 0);
    assert.ok(v2 > 0 && v2 < v1, `it fades as time passes: ${v2} < ${v1}`);
    const v3 = await s.hit('r', w);
    assert.ok(v3 > 1 && v3 < v1 + 1, `a new hit adds 1 to what is left: ${v3}`);
    assert.equal(await s.hit('short', 100), 1);
  });

  test('sets: sadd counts new members, scard, sismember, smembers', async (t) => {
    const s = await fresh(t);
    assert.equal(await s.sadd('d', ['a.example', 'b.example', 'a.example']), 2);
    assert.equal(await s.sadd('d', ['b.example', 'c.example']), 1);
    assert.equal(await s.sadd('d', []), 0);
    assert.equal(await s.scard('d'), 3);
    assert.equal(await s.sismember('d', 'c.example'), true);
    assert.equal(await s.sismember('d', 'z.example'), false);
    assert.deepEqual((await s.smembers('d')).sort(), ['a.example', 'b.example', 'c.example']);
    assert.equal(await s.type('d'), 'set');
    assert.equal(await s.sadd('empty', []), 0);
    assert.equal(await s.type('empty'), null);

    const many = Array.from({ length: 2500 }, (_, i) => `m${i}`);
    assert.equal(await s.sadd('big', many, 60_000), 2500);
    assert.equal(await s.scard('big'), 2500);
    assert.equal(await s.sadd('big', ['m0', 'm2499', 'new']), 1);
  });

  test('hashes: hincrMany and hmget in bulk, hgetall', async (t) => {
    const s = await fresh(t);
    const tokens = Array.from({ length: 1500 }, (_, i) => `tok${i}`);
    await s.hincrMany('spam', tokens.map((f, i) => [f, i + 1] as const));
    await s.hincrMany('spam', [
      ['tok0', 10],
      ['tok1', -2],
      ['tok0', 100], // the same field twice in one batch adds both
    ]);
    const fields = ['tok0', 'tok1', 'absent', 'tok1499', 'tok0'];
    assert.deepEqual(await s.hmget('spam', fields), [111, 0, 0, 1500, 111]);
    const all = await s.hmget('spam', tokens);
    assert.equal(all.length, 1500);
    assert.equal(all[700], 701);
    assert.deepEqual(await s.hmget('spam', []), []);
    assert.deepEqual(await s.hmget('absent-hash', ['a', 'b']), [0, 0]);
    const map = await s.hgetall('spam');
    assert.equal(map.size, 1500);
    assert.equal(map.get('tok1'), 0);
    assert.equal(map.get('tok42'), 43);
    assert.equal(await s.type('spam'), 'hash');
    await s.hincrMany('nothing', []);
    assert.equal(await s.type('nothing'), null);
  });

  test('using a key as the wrong kind is a StoreTypeError', async (t) => {
    const s = await fresh(t);
    await s.set('str', 'not a number');
    await s.sadd('set', ['a']);
    await s.hincrMany('hash', [['f', 1]]);
    await assert.rejects(s.incr('str'), StoreTypeError);
    await assert.rejects(s.get('set'), StoreTypeError);
    await assert.rejects(s.scard('str'), StoreTypeError);
    await assert.rejects(s.sadd('hash', ['x']), StoreTypeError);
    await assert.rejects(s.hincrMany('set', [['f', 1]]), StoreTypeError);
    await assert.rejects(s.hmget('str', ['f']), StoreTypeError);
    await assert.rejects(s.hit('str', 1000), StoreTypeError);
    await assert.rejects(s.incr('hash'), StoreTypeError);
    // Nothing was changed by the failed calls.
    assert.equal(await s.get('str'), 'not a number');
    assert.deepEqual(await s.smembers('set'), ['a']);
  });

  test('bad arguments are rejected before reaching the backend', async (t) => {
    const s = await fresh(t);
    await assert.rejects(s.incr('k', 1.5), RangeError);
    await assert.rejects(s.set('k', 'v', -1), RangeError);
    await assert.rejects(s.hit('k', 0), RangeError);
    await assert.rejects(s.hincrMany('k', [['f', Number.NaN]]), RangeError);
    assert.equal(await s.type('k'), null);
  });

  test('scan lists live keys by prefix, across pages, with glob characters taken literally', async (t) => {
    const s = await fresh(t);
    await Promise.all(Array.from({ length: 1200 }, (_, i) => s.set(`page:${String(i).padStart(4, '0')}`, 'x')));
    await s.set('x*1', 'a');
    await s.set('x*2', 'a');
    await s.set('xy', 'a');
    await s.set('[b]', 'a');
    await s.set('b', 'a');
    await s.set('ü:1', 'a');
    await s.sadd('set:1', ['m']);
    await s.hincrMany('hash:1', [['f', 1]]);
    const pages = await collect(s.scan('page:'));
    assert.equal(pages.length, 1200);
    assert.equal(pages[0], 'page:0000');
    assert.equal(pages[1199], 'page:1199');
    assert.deepEqual(await collect(s.scan('x*')), ['x*1', 'x*2']);
    assert.deepEqual(await collect(s.scan('[b')), ['[b]']);
    assert.deepEqual(await collect(s.scan('ü')), ['ü:1']);
    assert.deepEqual(await collect(s.scan('set:')), ['set:1']);
    assert.deepEqual(await collect(s.scan('nothing')), []);
    assert.equal((await collect(s.scan())).length, 1208);
  });

  test('stores with different prefixes do not see each other', async (t) => {
    const a = await fresh(t, `iso-a-${process.pid}-${Date.now()}:`);
    const b = await fresh(t, `iso-b-${process.pid}-${Date.now()}:`);
    await a.set('k', 'from a');
    await a.incr('n', 5);
    await a.sadd('s', ['x']);
    assert.equal(await b.get('k'), null);
    assert.equal(await b.incr('n'), 1);
    assert.equal(await b.scard('s'), 0);
    assert.equal(await b.setIfAbsent('k', 'from b'), true);
    assert.equal(await a.get('k'), 'from a');
    assert.deepEqual(await collect(a.scan()), ['k', 'n', 's']);
    assert.deepEqual(await collect(b.scan()), ['k', 'n']);
  });

  test('health reports ok; a closed store rejects with StoreUnavailableError', async (t) => {
    const s = await open(`closed-${process.pid}-${Date.now()}:`);
    t.after(() => s.close());
    const h = await s.health();
    assert.equal(h.ok, true);
    assert.equal(h.backend, s.backend);
    await s.close();
    await assert.rejects(s.get('k'), StoreUnavailableError);
    assert.equal((await s.health()).ok, false);
  });
}
