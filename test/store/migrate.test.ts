// migrateStore: SQLite → Redis keeps every live key's value and (roughly) its remaining TTL,
// overwrites what the target already held, and leaves expired keys behind.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { migrateStore, type MigrateProgress } from '../../src/store/migrate.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { startRedis } from '../harness/redis.ts';

const silent = pino({ level: 'silent' });

function assertTtlNear(actual: number | null, expected: number, key: string): void {
  assert.ok(actual !== null && actual <= expected && actual > expected - 5_000, `${key}: ttl ${actual}, expected about ${expected}`);
}

test('migrate copies counters, values, sets, hashes and windows with their TTLs into Redis', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mailward-migrate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const redis = await startRedis(t);

  const from = new SqliteStore({ path: join(dir, 'state.db') }, silent);
  t.after(() => from.close());
  const to = new RedisStore({ url: redis.url, keyPrefix: 'mailward:', timeoutMs: 1000 }, silent);
  t.after(() => to.close());
  assert.equal(await to.waitReady(), true);

  // Source data: every kind, with and without TTLs, plus keys that expire before the copy.
  await from.incr('rl:ip:192.0.2.1', 17, 3_600_000);
  await from.incr('quota:global', 12345);
  await from.set('grey:192.0.2.0|a@example.org|b@example.net', '1700000000000', 30 * 86_400_000);
  await from.set('note', 'ünïcødé');
  await from.sadd('breaker:domains', ['a.example', 'b.example', 'c.example'], 600_000);
  const members = Array.from({ length: 2100 }, (_, i) => `m${i}`);
  await from.sadd('big-set', members);
  const tokens = Array.from({ length: 2500 }, (_, i) => [`tok${i}`, i - 100] as const);
  await from.hincrMany('bayes:spam', tokens);
  await from.hit('rate:sender', 1e12, 9);
  await from.set('gone', 'x', 50);
  await from.sadd('gone-set', ['x'], 50);
  // The target already holds different data under some of the keys: the copy replaces it.
  await to.sadd('breaker:domains', ['stale.example']);
  await to.hincrMany('bayes:spam', [['tok5', 1000], ['stale', 1]]);
  await sleep(100);

  const progress: MigrateProgress[] = [];
  const result = await migrateStore(from, to, (p) => progress.push(p));
  assert.deepEqual(result, { migrated: 8, skipped: 0 });
  assert.equal(progress.length, 8);
  assert.equal(progress.at(-1)?.migrated, 8);

  assert.equal(await to.get('rl:ip:192.0.2.1'), '17');
  assertTtlNear(await to.ttl('rl:ip:192.0.2.1'), 3_600_000, 'rl');
  assert.equal(await to.incr('quota:global'), 12346);
  assert.equal(await to.ttl('quota:global'), Infinity);
  assert.equal(await to.get('grey:192.0.2.0|a@example.org|b@example.net'), '1700000000000');
  assertTtlNear(await to.ttl('grey:192.0.2.0|a@example.org|b@example.net'), 30 * 86_400_000, 'grey');
  assert.equal(await to.get('note'), 'ünïcødé');
  assert.deepEqual((await to.smembers('breaker:domains')).sort(), ['a.example', 'b.example', 'c.example']);
  assertTtlNear(await to.ttl('breaker:domains'), 600_000, 'breaker');
  assert.equal(await to.scard('big-set'), 2100);
  assert.equal(await to.ttl('big-set'), Infinity);
  const spam = await to.hgetall('bayes:spam');
  assert.equal(spam.size, 2500);
  assert.deepEqual(await to.hmget('bayes:spam', ['tok0', 'tok5', 'tok2499', 'stale']), [-100, -95, 2399, 0]);
  // The window state moved as is, so the rate keeps counting where it was.
  assert.equal(await to.hit('rate:sender', 1e12), 10);
  assert.equal(await to.get('gone'), null);
  assert.equal(await to.type('gone-set'), null);

  const keys = new Set<string>();
  for await (const k of to.scan('')) keys.add(k);
  assert.equal(keys.size, 8);

  // Running it again changes nothing (each key is overwritten, not added to).
  assert.deepEqual(await migrateStore(from, to), { migrated: 8, skipped: 0 });
  assert.equal(await to.scard('big-set'), 2100);
  assert.deepEqual(await to.hmget('bayes:spam', ['tok5']), [-95]);
});
