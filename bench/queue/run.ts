// Queue tools at the size of the incident: 400,000 queued messages, 300,000 of them from one
// spammer. Writes them in the real spool format (fsync off for the set-up only), then measures the
// operator's reads (list, counts), the server's start-up scan and the memory of its schedule and
// catalog, and deleting every message of the spammer on a server-like set-up (spool with fsync,
// queue, worker retrying, operator commands) while a stream of commits measures how the server
// keeps accepting mail. Last, the pace of background removal against commit latency. Prints
// markdown tables; `--write` also saves them to bench/results/queue.md.
// Run: node --import tsx bench/queue/run.ts [--messages N] [--write]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { pino } from 'pino';
import { silentLogger } from '../../src/observe/log.ts';
import { body, populate, SPAM_SHARE, SPAMMER } from './populate.ts';
import { inspectSpool } from '../../src/queue/inspect.ts';
import { compileFilter } from '../../src/queue/filter.ts';
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { QueueAdmin } from '../../src/queue/admin.ts';
import { Worker } from '../../src/delivery/worker.ts';
import type { Transport } from '../../src/delivery/transport.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};
const TOTAL = Number(arg('--messages') ?? 400_000);
const ROOT = path.resolve(import.meta.dirname, '../..');
/** A commit of arriving mail every this many ms while the delete runs. */
const COMMIT_EVERY_MS = 10;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Peak RSS while `fn` runs, sampled every 20 ms. */
async function measure<T>(fn: () => Promise<T> | T): Promise<{ ms: number; cpuMs: number; peakMb: number; value: T }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    const c = process.cpuUsage(c0);
    return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, peakMb: peak / 1024 / 1024, value };
  } finally {
    clearInterval(timer);
  }
}

/** Heap and typed-array memory in use after a full collection. */
function liveBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** A spam-like message of ~1.6 KB with its Received header, as a session stores it. */
function cli(config: string, args: string[]): { ms: number; out: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), ...args, '--config', config], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`mailward ${args.join(' ')} failed: ${r.stderr}`);
  return { ms: performance.now() - t0, out: r.stdout };
}

/** Commits a ~2 KB message every `everyMs` until stopped; each commit's latency is recorded with the phase it started in. */
function commitStream(spool: Spool, everyMs: number): { phase: string; stop(): Promise<Map<string, number[]>> } {
  const latencies = new Map<string, number[]>();
  const pending = new Set<Promise<void>>();
  const text = Buffer.from(`Subject: order confirmation\r\n\r\n${'Thank you for your order. '.repeat(70)}\r\n`);
  const ctl = { phase: 'before' };
  let n = 0;
  const timer = setInterval(() => {
    const phase = ctl.phase;
    const t0 = performance.now();
    const w = spool.begin({ mailFrom: 'shop@customer.example', recipients: [{ address: `buyer${n++}@example.net`, transport: 'remote' }], client: { address: '192.0.2.10', listener: 'mx', sessionId: `c${n}` }, smtputf8: false, body: '8BITMIME' });
    const p = (async () => {
      await w.write(Buffer.from(`Received: from shop.customer.example by mx.example.org with ESMTP id ${w.id}\r\n`));
      await w.write(text);
      await w.commit();
      const list = latencies.get(phase) ?? [];
      list.push(performance.now() - t0);
      latencies.set(phase, list);
    })();
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }, everyMs);
  return {
    get phase() {
      return ctl.phase;
    },
    set phase(p: string) {
      ctl.phase = p;
    },
    async stop() {
      clearInterval(timer);
      await Promise.all([...pending]);
      return latencies;
    },
  };
}

const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const fmtS = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const fmtMs = (ms: number): string => `${ms.toFixed(1)} ms`;
const fmtMb = (mb: number): string => `${Math.round(mb)} MB`;

/**
 * A remote relay that answers 451 after a few ms: the worker keeps retrying, as during the
 * incident. Counts passes over the spammer's mail that start after the delete returned (must be 0).
 */
const deferring: Transport & { deletedAt: number; afterDelete: number } = {
  deletedAt: Infinity,
  afterDelete: 0,
  async deliver(msg, indexes) {
    if (msg.envelope.mailFrom === SPAMMER && performance.now() > deferring.deletedAt) deferring.afterDelete++;
    await new Promise((r) => setTimeout(r, 5));
    return indexes.map((index) => ({ index, outcome: 'temporary' as const, reply: '451 4.7.1 Try again later' }));
  },
};

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-bench-queue-'));
  const dataDir = path.join(dir, 'data');
  const spoolDir = path.join(dataDir, 'spool');
  const config = path.join(dir, 'mailward.yaml');
  writeFileSync(config, `domains: [example.org]\ndataDir: ${dataDir}\nlog: { level: silent }\n`);
  const rows: string[][] = [];
  const latencyRows: string[][] = [];
  const paceRows: string[][] = [];
  try {
    process.stderr.write(`writing ${TOTAL.toLocaleString('en')} messages (fsync off for the set-up)...\n`);
    const setup = await measure(() => populate(spoolDir, TOTAL));
    const spam = setup.value.spam;
    // Let the kernel write the set-up's dirty pages back now, or that writeback would be timed
    // as part of the operations below (unlinking a file under writeback waits for it).
    const flushed = await measure(() => spawnSync('sync'));
    rows.push(['set-up: write the messages, then `sync` (not queue operations)', `${fmtS(setup.ms)} + ${fmtS(flushed.ms)}`, '', '', `${(setup.value.bytes / 1024 / 1024).toFixed(0)} MB on disk`]);

    process.stderr.write('reading the spool as `queue list` does...\n');
    const list = await measure(() => {
      let n = 0;
      for (const e of inspectSpool(spoolDir)) if (e.ok) n++;
      return n;
    });
    rows.push(['list every message (stream, as `queue list`)', fmtS(list.ms), fmtS(list.cpuMs), fmtMb(list.peakMb), `${list.value.toLocaleString('en')} messages`]);

    const count = await measure(() => {
      const bySender = new Map<string, number>();
      for (const e of inspectSpool(spoolDir)) if (e.ok) bySender.set(e.message.envelope.mailFrom, (bySender.get(e.message.envelope.mailFrom) ?? 0) + 1);
      return bySender;
    });
    rows.push(['count by sender (as `queue list --summary`)', fmtS(count.ms), fmtS(count.cpuMs), fmtMb(count.peakMb), `${count.value.size.toLocaleString('en')} senders, top ${count.value.get(SPAMMER)?.toLocaleString('en')}`]);

    const filtered = await measure(() => {
      const match = compileFilter({ sender: SPAMMER });
      let n = 0;
      for (const e of inspectSpool(spoolDir)) if (e.ok && match(e.message.envelope, e.message.states, e.message.held)) n++;
      return n;
    });
    rows.push(["count one sender's messages on disk (the delete confirmation when no server runs; a running server counts from its catalog, below)", fmtS(filtered.ms), fmtS(filtered.cpuMs), fmtMb(filtered.peakMb), `${filtered.value.toLocaleString('en')} match`]);

    const summary = cli(config, ['queue', 'list', '--summary']);
    rows.push(['`mailward queue list --summary` (a whole CLI process)', fmtS(summary.ms), '', '', summary.out.trim().split('\n').at(-1)!]);

    // The server: spool with fsync as configured by default, the queue with its catalog, a
    // worker retrying against a relay that defers, and the command runner of the control socket.
    process.stderr.write('starting the server side (start-up scan)...\n');
    const log = silentLogger();
    const before = liveBytes();
    const spool = await Spool.open(spoolDir, { log, fsync: true });
    const queue = new Queue(spool, { log });
    const start = await measure(() => queue.start());
    const queueBytes = liveBytes() - before;
    rows.push(['server start-up scan (schedule and catalog rebuilt from the spool)', fmtS(start.ms), fmtS(start.cpuMs), fmtMb(start.peakMb), `${start.value.scheduled.toLocaleString('en')} scheduled`]);
    rows.push(['memory of the schedule + catalog (heap and typed arrays after GC, ids included)', '', '', '', `${fmtMb(queueBytes / 1024 / 1024)} for ${queue.catalogued.toLocaleString('en')} messages (${Math.round(queueBytes / queue.catalogued)} bytes each)`]);

    const select = await measure(async () => (await queue.select({ sender: SPAMMER }, ['queue', 'hold'])).length);
    rows.push(['select one sender from the catalog (the server side of a count; no file read)', fmtMs(select.ms), fmtMs(select.cpuMs), '', `${select.value.toLocaleString('en')} match`]);

    const worker = new Worker({ spool, queue, transports: { remote: deferring }, log });
    worker.start();
    // The audit trail is real JSON lines (to /dev/null), as the server writes them to its log.
    const auditLog = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }));
    const admin = new QueueAdmin(spool, queue, auditLog);

    process.stderr.write('deleting one sender while mail keeps arriving...\n');
    const stream = commitStream(spool, COMMIT_EVERY_MS);
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const loopMax = new Map<string, number>();
    const phaseEnd = (name: string): void => {
      loopMax.set(name, loop.max / 1e6);
      loop.reset();
    };
    await new Promise((r) => setTimeout(r, 3000));
    phaseEnd('before');
    stream.phase = 'command';
    const del = await measure(() => admin.run('delete', { filter: { sender: SPAMMER } }));
    deferring.deletedAt = performance.now();
    phaseEnd('command');
    stream.phase = 'background';
    const background = await measure(() => spool.whenRemoved());
    phaseEnd('background');
    stream.phase = 'after';
    await new Promise((r) => setTimeout(r, 2000));
    phaseEnd('after');
    loop.disable();
    const latencies = await stream.stop();
    await worker.stop();
    queue.stop();
    const r = del.value;
    if (r.changed !== spam) throw new Error(`deleted ${r.changed}, expected ${spam}`);
    if (deferring.afterDelete !== 0) throw new Error(`${deferring.afterDelete} delivery passes of deleted messages`);
    rows.push([
      "delete every message of one sender: the command (journaled, gone for readers and delivery; what `queue delete --sender --yes` waits for)",
      fmtS(del.ms),
      fmtS(del.cpuMs),
      fmtMb(del.peakMb),
      `${r.changed.toLocaleString('en')} of ${TOTAL.toLocaleString('en')} deleted, ${(r.removing ?? 0).toLocaleString('en')} files left to the background`,
    ]);
    rows.push([
      'the files removed in the background, 2 unlinks at a time, then the journal emptied',
      fmtS(background.ms),
      fmtS(background.cpuMs),
      fmtMb(background.peakMb),
      `${Math.round((spam / background.ms) * 1000).toLocaleString('en')} files/s; 0 delivery passes of deleted messages`,
    ]);
    const left = await measure(async () => {
      let n = 0;
      for await (const _m of spool.list()) n++;
      return n;
    });
    await spool.close();
    rows.push(['list the queue afterwards (server side, from disk)', fmtS(left.ms), fmtS(left.cpuMs), '', `${left.value.toLocaleString('en')} messages (${(TOTAL - spam).toLocaleString('en')} left + the commits during the run)`]);
    const afterCli = cli(config, ['queue', 'list', '--summary']);
    rows.push(['`mailward queue list --summary` afterwards', fmtS(afterCli.ms), '', '', afterCli.out.trim().split('\n').at(-1)!]);

    const phases: Array<[string, string]> = [
      ['before', 'before the delete (3 s; the worker retrying)'],
      ['command', 'during the delete command'],
      ['background', 'during the background removal'],
      ['after', 'after (2 s)'],
    ];
    for (const [key, label] of phases) {
      const xs = latencies.get(key) ?? [];
      latencyRows.push([label, String(xs.length), fmtMs(pct(xs, 50)), fmtMs(pct(xs, 99)), fmtMs(Math.max(...xs)), fmtMs(loopMax.get(key) ?? NaN)]);
    }

    // How fast removal may go before arriving mail feels it: unlink written-back files at several
    // concurrencies while commits (fsync'd) arrive every 5 ms on another spool.
    process.stderr.write('measuring removal pace against commit latency...\n');
    const paceSpool = await Spool.open(path.join(dir, 'pace-spool'), { log, fsync: true });
    const FILES = Math.min(20_000, spam);
    for (const conc of [1, 2, 4, 64]) {
      const floorDir = path.join(dir, `floor-${conc}`);
      mkdirSync(floorDir);
      for (let i = 0; i < FILES; i++) writeFileSync(path.join(floorDir, String(i)), body(i, SPAMMER, 'x@example.net'));
      spawnSync('sync');
      const s = commitStream(paceSpool, 5);
      s.phase = 'idle';
      await new Promise((res) => setTimeout(res, 1000));
      s.phase = 'unlinking';
      const t0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: conc }, async () => {
          while (next < FILES) await unlink(path.join(floorDir, String(next++)));
        }),
      );
      const ms = performance.now() - t0;
      const lat = await s.stop();
      const idle = lat.get('idle') ?? [];
      const busy = lat.get('unlinking') ?? [];
      paceRows.push([String(conc), `${((ms / FILES) * 1000).toFixed(0)} µs`, fmtS((ms / FILES) * spam), `${fmtMs(pct(idle, 99))} / ${fmtMs(Math.max(...idle))}`, `${fmtMs(pct(busy, 99))} / ${fmtMs(Math.max(...busy))}`]);
    }
    await paceSpool.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const table = [
    `Queue tools with ${TOTAL.toLocaleString('en')} queued messages (${Math.round(SPAM_SHARE * 100)}% from one sender), ${cpus().length} CPUs, ${Math.round(totalmem() / 1024 ** 3)} GB RAM, Node ${process.version}, libuv thread pool ${process.env.UV_THREADPOOL_SIZE ?? 4}, ${new Date().toISOString().slice(0, 10)}, load average ${loadavg()[0]!.toFixed(1)} at the end. The files are written back to disk (\`sync\`) before anything is timed, as in a queue that has sat for hours; the page cache is warm. Peak RSS is this process's (baseline included). The server side runs with fsync on, a worker retrying every due message against a relay that answers 451, and a commit of new mail every ${COMMIT_EVERY_MS} ms.`,
    '',
    '| operation | time | CPU time (all threads) | peak RSS | result |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Arriving mail during the delete: a ~2 KB message committed (file fsync, rename, folder fsync) every ${COMMIT_EVERY_MS} ms, latency from \`begin\` to \`commit\` resolved; the event loop's longest stall in each phase.`,
    '',
    '| phase | commits | p50 | p99 | max | longest event-loop stall |',
    '|---|---|---|---|---|---|',
    ...latencyRows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Removal pace: unlinking ${Math.min(20_000, TOTAL).toLocaleString('en')} written-back files at N at a time, while a commit arrives every 5 ms (p99 / max commit latency, idle second before vs while unlinking).`,
    '',
    '| unlinks at once | per file | for the whole spammer | commits idle p99 / max | commits while unlinking p99 / max |',
    '|---|---|---|---|---|',
    ...paceRows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  process.stdout.write(table);
  if (process.argv.includes('--write')) {
    mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(path.join(ROOT, 'bench/results/queue.md'), `# Queue benchmark (bench/queue/run.ts)\n\n${table}`);
  }
}

await main();
