// The start-up scan alone: `Queue.start()` on a spool of N queued messages, from its catalog
// snapshot (written by a first scan and a clean close), timing wall and CPU (user + system) of
// the scan itself. Reuses the spool in --dir if it is there (no new files written).
// `--no-snapshot` removes the snapshot before every run: each run then reads every file (the first
// start of a spool, or one whose snapshot is lost) — the case of docs/decisions/0037 and 0045.
// Run: node --import tsx bench/startup/scan.ts [--messages N] [--runs N] [--dir /tmp/x] [--no-snapshot] [--threads N]
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { populate } from '../queue/populate.ts';
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};
const MESSAGES = Number(arg('--messages') ?? 400_000);
const RUNS = Number(arg('--runs') ?? 3);
const given = arg('--dir');
const NO_SNAPSHOT = process.argv.includes('--no-snapshot');
// Reader threads for the files read (default: the queue's, one per CPU; 0: on the event loop).
const THREADS = arg('--threads');
const dir = given ?? mkdtempSync(path.join(tmpdir(), 'mailward-bench-scan-'));
const spoolDir = path.join(dir, 'spool');
const log = pino({ level: 'silent' });

if (!existsSync(path.join(spoolDir, 'queue'))) {
  mkdirSync(dir, { recursive: true });
  process.stderr.write(`writing ${MESSAGES} messages in ${spoolDir}\n`);
  populate(spoolDir, MESSAGES, { allDeferred: true });
}

async function once(): Promise<{ wall: number; cpu: number; fromSnapshot: number; read: number; lagP99: number; lagMax: number }> {
  const spool = await Spool.open(spoolDir, { log, fsync: false });
  if (NO_SNAPSHOT) rmSync(spool.snapshots.path, { force: true });
  const queue = new Queue(spool, { log, concurrency: 1 });
  // How long the event loop (the listeners) waits during the scan.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await queue.start(THREADS === undefined ? {} : { readerThreads: Number(THREADS) });
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  lag.disable();
  const p = queue.loadProgress;
  // A clean close writes the snapshot the next start reads.
  await queue.close();
  await spool.close();
  return { wall, cpu: (c.user + c.system) / 1000, fromSnapshot: p.fromSnapshot, read: p.read, lagP99: lag.percentile(99) / 1e6, lagMax: lag.max / 1e6 };
}

for (let i = 0; i < RUNS + 1; i++) {
  const r = await once();
  process.stdout.write(`${i === 0 ? 'first ' : 'run ' + i}: wall ${Math.round(r.wall)} ms, cpu ${Math.round(r.cpu)} ms, from snapshot ${r.fromSnapshot}, read ${r.read}, event-loop delay p99 ${Math.round(r.lagP99)} ms max ${Math.round(r.lagMax)} ms, load ${loadavg()[0]!.toFixed(1)}\n`);
}
if (!given) rmSync(dir, { recursive: true, force: true });
