// Redis going away under traffic: operations must fail fast with StoreUnavailableError (never
// hang), the outage and the recovery are each logged once, and the store recovers by itself.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createStore } from '../../src/store/create.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { startRedis } from '../harness/redis.ts';
import { captureLog } from './log-capture.ts';

const DEADLINE_MS = 2000;
// A regression must fail the test, not hang it.
const LIMIT = { timeout: 20_000 };

/** Runs one operation; returns how long it took and whether it failed as an outage. */
async function timed(op: () => Promise<unknown>): Promise<{ ms: number; unavailable: boolean; message?: string }> {
  const t0 = performance.now();
  try {
    await op();
    return { ms: performance.now() - t0, unavailable: false };
  } catch (err) {
    assert.ok(err instanceof StoreUnavailableError, `expected StoreUnavailableError, got ${String(err)}`);
    return { ms: performance.now() - t0, unavailable: true, message: err.message };
  }
}

async function untilOk(store: Store, withinMs: number): Promise<void> {
  const until = Date.now() + withinMs;
  for (;;) {
    try {
      await store.incr('probe');
      return;
    } catch (err) {
      assert.ok(err instanceof StoreUnavailableError);
      if (Date.now() > until) throw new Error(`store did not recover within ${withinMs} ms`);
      await sleep(50);
    }
  }
}

function redisOpts(url: string, timeoutMs = 1000) {
  return { backend: 'redis' as const, sqlite: { path: '/unused' }, redis: { url, keyPrefix: 'outage:', timeoutMs } };
}

test('Redis stopped mid-traffic: fast StoreUnavailableError, one outage line, recovery on restart', LIMIT, async (t) => {
  const redis = await startRedis(t);
  const cap = captureLog();
  const store = await createStore(redisOpts(redis.url), cap.log);
  t.after(() => store.close());

  // Traffic from 8 concurrent "sessions" for the whole test; they stop even if an assertion fails.
  let running = true;
  t.after(() => {
    running = false;
  });
  let ok = 0;
  let failed = 0;
  let wrongErrors = 0;
  let slowest = 0;
  const sessions = Array.from({ length: 8 }, async (_, i) => {
    while (running) {
      try {
        const r = await timed(() => (i % 2 === 0 ? store.incr('ctr', 1, 60_000) : store.setIfAbsent(`grey:${i}:${ok}`, 'x', 60_000)));
        slowest = Math.max(slowest, r.ms);
        if (r.unavailable) {
          failed++;
          await sleep(5);
        } else ok++;
      } catch {
        wrongErrors++; // an error other than StoreUnavailableError
        await sleep(5);
      }
    }
  });

  await sleep(200);
  assert.ok(ok > 0, 'traffic flows before the outage');
  assert.equal(failed, 0);

  await redis.kill();
  await sleep(600);
  const failedDuringOutage = failed;
  assert.ok(failedDuringOutage > 10, `operations fail during the outage (${failedDuringOutage})`);
  for (let i = 0; i < 5; i++) {
    const r = await timed(() => store.get('ctr'));
    assert.equal(r.unavailable, true);
    assert.ok(r.ms < DEADLINE_MS, `rejected in ${r.ms} ms`);
    // While the connection is known to be down, operations fail at once rather than waiting
    // (queued) for the deadline or for a reconnect attempt.
    assert.doesNotMatch(r.message ?? '', /no answer within|max retries/i);
  }
  assert.equal((await store.health()).ok, false);

  await redis.restart();
  await untilOk(store, 5000);
  const okAfter = ok;
  await sleep(200);
  running = false;
  await Promise.all(sessions);
  assert.ok(ok > okAfter, 'traffic flows again after the restart');
  assert.equal(wrongErrors, 0, 'every failure was a StoreUnavailableError');
  assert.ok(slowest < DEADLINE_MS, `slowest operation ${slowest} ms`);
  assert.equal((await store.health()).ok, true);

  assert.equal(cap.count('store unavailable'), 1);
  assert.equal(cap.count('store recovered'), 1);
  const down = cap.lines.findIndex((l) => l.msg === 'store unavailable');
  const up = cap.lines.findIndex((l) => l.msg === 'store recovered');
  assert.ok(down < up);
  assert.equal(cap.lines[down]?.store, 'redis');
  assert.equal(JSON.stringify(cap.lines).includes(redis.url), false, 'the URL (which may hold a password) is never logged');
});

test('a Redis that accepts but never answers: each operation rejects at the deadline', LIMIT, async (t) => {
  const redis = await startRedis(t);
  const cap = captureLog();
  const store = await createStore(redisOpts(redis.url, 300), cap.log);
  t.after(() => store.close());
  assert.equal(await store.incr('n'), 1);

  redis.pause();
  const results = await Promise.all(Array.from({ length: 5 }, () => timed(() => store.incr('n'))));
  redis.resume();
  for (const r of results) {
    assert.equal(r.unavailable, true);
    assert.ok(r.ms >= 250 && r.ms < DEADLINE_MS, `rejected after ${r.ms} ms`);
  }
  await untilOk(store, 3000);
  // The timed-out INCRs may have been applied once Redis woke up, but never twice each.
  const n = Number(await store.get('n'));
  assert.ok(n >= 1 && n <= 6, `counter ${n}`);
  assert.equal(cap.count('store unavailable'), 1);
  assert.equal(cap.count('store recovered'), 1);
});

test('Redis down at startup: createStore returns within the deadline, then recovers when Redis starts', LIMIT, async (t) => {
  const redis = await startRedis(t);
  await redis.kill();
  const cap = captureLog();
  const t0 = performance.now();
  const store = await createStore(redisOpts(redis.url, 500), cap.log);
  t.after(() => store.close());
  assert.ok(performance.now() - t0 < DEADLINE_MS);
  await assert.rejects(store.incr('n'), StoreUnavailableError);
  await assert.rejects(store.hit('r', 1000), StoreUnavailableError);
  assert.equal(cap.count('store unavailable'), 1);

  await redis.restart();
  await untilOk(store, 5000);
  assert.equal(await store.incr('n'), 1);
  assert.equal(cap.count('store unavailable'), 1);
  assert.equal(cap.count('store recovered'), 1);
});
