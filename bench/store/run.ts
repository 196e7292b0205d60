// Store benchmark: operations per second and p50/p99 latency of the hot operations — a greylist
// check (setIfAbsent + get) and a rate-limit hit — on SQLite and on a local Redis, at concurrency
// 1 and 32. Run with `node --import tsx bench/store/run.ts`; prints a markdown table (~15 s).
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { pino } from 'pino';
import { RedisStore } from '../../src/store/redis.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedis } from '../../test/harness/redis.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1.5);
const WARMUP_MS = 200;
const CONCURRENCY = [1, 32];
const GREYLIST_TTL = 30 * 86_400_000;
const RATE_WINDOW = 60_000;

interface Op {
  readonly name: string;
  run(store: Store, i: number): Promise<unknown>;
}

// Key pools: 20,000 triplets (after the first pass every check finds its entry, the common path:
// setIfAbsent fails and get reads the first-seen time) and 1,000 client addresses.
const OPS: readonly Op[] = [
  {
    name: 'greylist check (setIfAbsent + get)',
    async run(store, i) {
      const n = i % 20_000;
      const key = `grey:198.51.100.${n % 250}|s${n}@example.org|r${n % 7}@example.net`;
      if (!(await store.setIfAbsent(key, String(Date.now()), GREYLIST_TTL))) await store.get(key);
    },
  },
  {
    name: 'rate-limit hit',
    run: (store, i) => store.hit(`rl:ip:203.0.113.${i % 1000}`, RATE_WINDOW),
  },
];

interface Result {
  readonly opsPerSec: number;
  readonly p50us: number;
  readonly p99us: number;
}

async function measure(store: Store, op: Op, concurrency: number): Promise<Result> {
  let counter = 0;
  let recording = false;
  const latencies: number[] = [];
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const i = counter++;
      const t0 = performance.now();
      await op.run(store, i);
      if (recording) latencies.push(performance.now() - t0);
      // SQLite calls settle as microtasks and never give the timers a turn: yield now and then.
      if (i % 64 === 0) await yieldToLoop();
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  recording = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  recording = false;
  const elapsed = performance.now() - t0;
  stop = true;
  await Promise.all(workers);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0) * 1000;
  return { opsPerSec: (latencies.length / elapsed) * 1000, p50us: pct(50), p99us: pct(99) };
}

function redisVersion(): string {
  try {
    return /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    return '?';
  }
}

async function main(): Promise<void> {
  const log = pino({ level: 'warn' });
  const dir = await mkdtemp(join(tmpdir(), 'mailward-bench-'));
  const redis = await startRedis();
  const stores: Store[] = [];
  try {
    const sqlite = new SqliteStore({ path: join(dir, 'state.db'), keyPrefix: 'bench:' }, log);
    const red = new RedisStore({ url: redis.url, keyPrefix: 'bench:', timeoutMs: 1000 }, log);
    stores.push(sqlite, red);
    if (!(await red.waitReady())) throw new Error('redis did not become ready');

    const rows: string[] = [];
    for (const store of stores) {
      for (const op of OPS) {
        for (const c of CONCURRENCY) {
          const r = await measure(store, op, c);
          rows.push(
            `| ${store.backend} | ${op.name} | ${c} | ${Math.round(r.opsPerSec).toLocaleString('en-US')} | ${r.p50us.toFixed(0)} | ${r.p99us.toFixed(0)} |`,
          );
        }
      }
    }
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    console.log(`Node ${process.version}, redis-server ${redisVersion()} on 127.0.0.1, SQLite file in ${tmpdir()}, ${cpu} (${cpus().length} cores)`);
    console.log(`${SECONDS} s per row after ${WARMUP_MS} ms warm-up\n`);
    console.log('| backend | operation | concurrency | ops/s | p50 µs | p99 µs |');
    console.log('|---|---|---:|---:|---:|---:|');
    for (const r of rows) console.log(r);
  } finally {
    for (const s of stores) await s.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
