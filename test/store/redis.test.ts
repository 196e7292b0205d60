// The Redis store: the shared contract against a real redis-server, plus the Redis-only parts —
// keys really carry the prefix, and address settings are checked with errors naming the setting.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createStore } from '../../src/store/create.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { storeContract } from './store.contract.ts';

const silent = pino({ level: 'silent' });
let redis: RedisServer;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
});

describe('redis store contract', () => {
  storeContract(async (prefix) => {
    const s = new RedisStore({ url: redis.url, keyPrefix: prefix, timeoutMs: 1000 }, silent);
    assert.equal(await s.waitReady(), true);
    return s;
  });
});

test('keys are stored under the configured prefix, with Lua-updated values', async (t) => {
  const store = await createStore(
    { backend: 'redis', sqlite: { path: '/unused' }, redis: { url: redis.url, keyPrefix: 'mw-prefix-test:', timeoutMs: 1000 } },
    silent,
  );
  t.after(() => store.close());
  await store.incr('ctr', 2, 60_000);
  await store.hit('rate', 1e12, 3);
  const raw = new Redis(redis.url);
  t.after(() => raw.disconnect());
  assert.deepEqual((await raw.keys('mw-prefix-test:*')).sort(), ['mw-prefix-test:ctr', 'mw-prefix-test:rate']);
  assert.equal(await raw.get('mw-prefix-test:ctr'), '2');
  const pttl = await raw.pttl('mw-prefix-test:ctr');
  assert.ok(pttl > 59_000 && pttl <= 60_000, `pttl ${pttl}`);
  assert.deepEqual(await raw.hmget('mw-prefix-test:rate', 'c', 'p'), ['3', '0']);
});

test('the Lua scripts are reloaded after the server forgets them', async (t) => {
  const store = new RedisStore({ url: redis.url, keyPrefix: 'flush-test:', timeoutMs: 1000 }, silent);
  t.after(() => store.close());
  await store.waitReady();
  assert.equal(await store.incr('n'), 1);
  const raw = new Redis(redis.url);
  t.after(() => raw.disconnect());
  await raw.script('FLUSH');
  assert.equal(await store.incr('n'), 2);
});

test('address settings are checked, and errors name the setting without echoing the URL', () => {
  const base = { keyPrefix: 'x:', timeoutMs: 1000 };
  assert.throws(() => new RedisStore(base, silent), /store\.redis: no address set/);
  assert.throws(() => new RedisStore({ ...base, sentinels: [{ host: '127.0.0.1', port: 1 }] }, silent), /store\.redis\.name: required/);
  assert.throws(
    () => new RedisStore({ ...base, url: 'http://user:s3cret@127.0.0.1:6379' }, silent),
    (err: Error) => /store\.redis\.url: the scheme is 'http:'/.test(err.message) && !err.message.includes('s3cret'),
  );
  assert.throws(() => new RedisStore({ ...base, url: 'redis://127.0.0.1:1', timeoutMs: 0 }, silent), /store\.redis\.timeoutMs/);
});
