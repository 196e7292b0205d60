// Spool commit latency alone: 4 KB messages committed one at a time (what a single session
// waits for before its 250) and 50 at once, by this tree's spool and, taking turns round by
// round, by a baseline build's (BENCH_BASELINE=<folder>/dist). Prints ms per commit (wall) and
// the main thread's CPU ms per commit. Run: node --import tsx bench/queue/commit.ts
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { threadCpuMs } from '../smtp/procs.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { Spool } from '../../src/queue/spool.ts';

type SpoolClass = typeof Spool;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const COUNT = Number(process.env.BENCH_COUNT ?? 200);
const BODY = Buffer.alloc(4096, 0x61);
const env = {
  mailFrom: 'a@example.net',
  recipients: [{ address: 'u@example.org', mailbox: 'u@example.org', transport: 'local' as const }],
  client: { address: '192.0.2.7', helo: 'client.example.net', listener: 'mx', sessionId: 's1' },
  smtputf8: false,
  body: '8BITMIME' as const,
};

async function commitOne(spool: Spool): Promise<void> {
  const w = spool.begin(env);
  await w.write(Buffer.from(`Received: from client.example.net by mx.example.org id ${w.id}\r\n`));
  await w.write(BODY);
  await w.commit();
}

/** ms per commit (wall) and main-thread CPU ms per commit, `parallel` commits in flight. */
async function measure(S: SpoolClass, parallel: number): Promise<{ wall: number; cpu: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-bench-commit-'));
  const spool = await S.open(dir, { log: silentLogger() });
  try {
    for (let i = 0; i < 20; i++) await commitOne(spool);
    const cpu0 = threadCpuMs(process.pid);
    const t0 = performance.now();
    let left = COUNT;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (left-- > 0) await commitOne(spool);
      }),
    );
    return { wall: (performance.now() - t0) / COUNT, cpu: (threadCpuMs(process.pid) - cpu0) / COUNT };
  } finally {
    await spool.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const variants: Array<[string, SpoolClass]> = [['this tree', Spool]];
if (process.env.BENCH_BASELINE) {
  const mod = (await import(pathToFileURL(path.join(path.resolve(process.env.BENCH_BASELINE), 'queue', 'spool.js')).href)) as { Spool: SpoolClass };
  variants.push([`baseline ${process.env.BENCH_BASELINE}`, mod.Spool]);
}
const results = new Map<string, Array<{ wall: number; cpu: number }>>();
const load = (): string => {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
};
process.stdout.write(`load average before: ${load()}\n`);
for (let r = 0; r < ROUNDS; r++) {
  for (const parallel of [1, 50]) {
    for (const [name, S] of variants) {
      const m = await measure(S, parallel);
      const key = `${name} × ${parallel}`;
      results.set(key, [...(results.get(key) ?? []), m]);
      process.stderr.write(`round ${r + 1} ${key}: ${m.wall.toFixed(3)} ms/commit, main thread ${m.cpu.toFixed(3)} CPU ms/commit\n`);
    }
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
process.stdout.write(`load average after: ${load()}\n\n| spool × commits in flight | ms per commit (runs) | median | main-thread CPU ms per commit (median) |\n|---|---|---:|---:|\n`);
for (const [key, ms] of results) {
  process.stdout.write(`| ${key} | ${ms.map((m) => m.wall.toFixed(2)).join(', ')} | ${median(ms.map((m) => m.wall)).toFixed(2)} | ${median(ms.map((m) => m.cpu)).toFixed(3)} |\n`);
}
