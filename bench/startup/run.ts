// Start-up time: from spawning `node dist/main.js serve` to the first 220 greeting on the MX port,
// on an empty spool (one process and two acceptor workers) and with 400,000 queued messages (then
// also the time to the complete catalog, the `queue-loaded` line: first with no catalog snapshot,
// then after a clean shutdown wrote one, then after a kill -9 with files added, removed and
// appended to since the snapshot); Postfix's `postfix start` to its first 220 in the same run.
// Prints a markdown table; `--write` saves bench/results/startup.md.
// `--baseline <dist/main.js> --baseline-label <text>`: the empty-spool rows also for another build
// (an earlier commit's), interleaved run by run with this one so both see the same load.
// `--empty-only`: the empty-spool rows and Postfix only (no 400k spool).
// Run (as root, Postfix installed): node --import tsx bench/startup/run.ts [--messages N] [--runs N] [--write]
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { populate } from '../queue/populate.ts';
import { Spool } from '../../src/queue/spool.ts';
import { BUCKETS } from '../../src/queue/intake.ts';
import { readdirSync, unlinkSync } from 'node:fs';
import { pino } from 'pino';
import { buildMailward } from '../smtp/tools.ts';
import { startPostfix } from '../smtp/postfix.ts';
import { freePort, onExitSync, run, spawnTracked, stopChild } from '../smtp/procs.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};
const MESSAGES = Number(arg('--messages') ?? 400_000);
const RUNS = Number(arg('--runs') ?? 5);
const ROOT = path.resolve(import.meta.dirname, '../..');
const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** Resolves the ms from `t0` to the first 220 on `port`, trying every 5 ms. */
async function first220(port: number, t0: number, timeoutMs = 600_000): Promise<number> {
  for (;;) {
    const greeting = await new Promise<string | undefined>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('data', (d) => {
        s.destroy();
        resolve(String(d));
      });
      s.once('error', () => resolve(undefined));
    });
    if (greeting?.startsWith('220')) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`no 220 on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface MailwardRun {
  readonly greetingMs: number;
  /** From the `started` line: ms since the process began, and its CPU ms. */
  readonly startedMs: number;
  readonly cpuMs: number;
  /** Spawn to the `queue-loaded` line. */
  readonly catalogMs: number;
  readonly scanMs: number;
  /** From the `queue-loaded` line: messages taken from the catalog snapshot, files read. */
  readonly fromSnapshot: number;
  readonly read: number;
}

async function startMailward(main: string, dataDir: string, workers: number, stop: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<MailwardRun> {
  const port = await freePort();
  const config = path.join(dataDir, '..', `mailward-${workers}.yaml`);
  writeFileSync(config, [`hostname: mx.example.org`, `domains: [example.org]`, `dataDir: ${dataDir}`, `workers: ${workers}`, `listeners:`, `  mx: { kind: mx, host: 127.0.0.1, port: ${port} }`, `log: { level: info, format: json }`, ''].join('\n'));
  const t0 = performance.now();
  const child = spawn(process.execPath, [main, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const forget = onExitSync(() => child.pid && process.kill(-child.pid, 'SIGKILL'));
  let started: Record<string, number> | undefined;
  let loaded: { at: number; ms: number; fromSnapshot: number; read: number } | undefined;
  let buf = '';
  const onLoaded: Array<() => void> = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      const l = JSON.parse(line) as Record<string, unknown>;
      if (l.event === 'started') started = l as Record<string, number>;
      if (l.event === 'queue-loaded') {
        loaded = { at: performance.now() - t0, ms: Number(l.ms), fromSnapshot: Number(l.fromSnapshot), read: Number(l.read) };
        onLoaded.splice(0).forEach((f) => f());
      }
    }
  });
  try {
    const greetingMs = await first220(port, t0);
    if (!loaded) await new Promise<void>((r) => onLoaded.push(r));
    return { greetingMs, startedMs: started?.msSinceProcessStart ?? NaN, cpuMs: started?.cpuMs ?? NaN, catalogMs: loaded!.at, scanMs: loaded!.ms, fromSnapshot: loaded!.fromSnapshot, read: loaded!.read };
  } finally {
    // SIGTERM: a clean shutdown, which writes the catalog snapshot. SIGKILL: a crash.
    process.kill(-child.pid!, stop);
    await new Promise((r) => child.once('exit', r));
    forget();
  }
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number): string => (Number.isNaN(x) ? '' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`);

type Series = (label: string, dataDir: string, workers: number, runs: number, target: string, before?: () => Promise<void>) => Promise<void>;

/** The rows of a spool of MESSAGES deferred messages: first start, after a clean shutdown, after kill -9. */
async function fullSpool(mw: string, tmp: string, series: Series): Promise<void> {
  const full = path.join(tmp, 'full', 'data');
  mkdirSync(full, { recursive: true });
  log(`writing ${MESSAGES} messages`);
  const w0 = performance.now();
  // Every message deferred for an hour: nothing is tried, so no traffic leaves the machine.
  const { bytes } = populate(path.join(full, 'spool'), MESSAGES, { allDeferred: true });
  spawnSync('sync');
  log(`written: ${(bytes / 1e6).toFixed(0)} MB in ${ms(performance.now() - w0)}`);
  const queued = MESSAGES.toLocaleString('en');
  const spoolDir = path.join(full, 'spool');
  // The first start has no snapshot: every file is read. Its clean shutdown writes the snapshot.
  await series(`Mailward, ${queued} queued, 1 process, no catalog snapshot (first start)`, full, 1, 1, '< 2 s; catalog ≤ 6.5 s');
  await series(`Mailward, ${queued} queued, 1 process, after a clean shutdown (snapshot)`, full, 1, Math.min(RUNS, 3), '< 2 s; catalog ≤ 6.5 s');
  // A crash: the server is killed (after its scan, before its next snapshot), and then 5% of the
  // queue changes before it starts again: new files, removed files, and a state record appended to
  // files the snapshot has (through the spool, as delivery writes them).
  const share = Math.round(MESSAGES * 0.05);
  const staleBefore = async (): Promise<void> => {
    await startMailward(mw, full, 1, 'SIGKILL');
    const spool = await Spool.open(spoolDir, { log: pino({ level: 'silent' }), fsync: false });
    const names = BUCKETS.split('').flatMap((b) => readdirSync(path.join(spoolDir, 'queue', b)));
    for (let i = 0; i < share; i++) {
      await spool.markRecipient(names[i * 3]!, 0, { status: 'deferred', attempts: 4, nextAttemptAt: Date.now() + 3_600_000, lastReply: '451 4.7.1 Try again later', updatedAt: Date.now() });
      unlinkSync(path.join(spoolDir, 'queue', names[i * 3 + 1]![7]!, names[i * 3 + 1]!));
    }
    await spool.close();
    populate(spoolDir, share, { allDeferred: true });
    spawnSync('sync');
  };
  await series(`Mailward, ${queued} queued, 1 process, after kill -9 (stale snapshot; ${share.toLocaleString('en')} files added, removed and appended to each since)`, full, 1, Math.min(RUNS, 2), '< 2 s; catalog ≤ 6.5 s', staleBefore);
  // Under load: a CPU-bound process beside the server (one of the two cores), owned and killed
  // here. The no-snapshot start again: its snapshot (and change logs) are removed first.
  const busy = spawnTracked(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
  try {
    const noSnapshot = async (): Promise<void> => {
      for (const n of readdirSync(spoolDir)) if (n.startsWith('catalog.')) unlinkSync(path.join(spoolDir, n));
    };
    await series(`Mailward, ${queued} queued, 1 process, no catalog snapshot, under load (a busy loop beside it)`, full, 1, 1, '< 2 s; catalog ≤ 6.5 s', noSnapshot);
    await series(`Mailward, ${queued} queued, 1 process, after a clean shutdown, under load (a busy loop beside it)`, full, 1, Math.min(RUNS, 2), '< 2 s; catalog ≤ 6.5 s');
  } finally {
    await stopChild(busy, 'SIGKILL');
  }
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(tmpdir(), 'mailward-bench-startup-'));
  onExitSync(() => rmSync(tmp, { recursive: true, force: true }));
  log('building Mailward');
  const mw = await buildMailward(ROOT, path.join(tmp, 'build'), log);
  const rows: string[][] = [];
  const baseline = arg('--baseline');
  const series = async (label: string, dataDir: string, workers: number, runs: number, target: string, before?: () => Promise<void>, main = mw): Promise<void> => {
    const rs: MailwardRun[] = [];
    for (let i = 0; i < runs; i++) {
      await before?.();
      rs.push(await startMailward(main, dataDir, workers));
    }
    const g = rs.map((r) => r.greetingMs);
    const c = rs.map((r) => r.catalogMs);
    log(`${label}: 220 ${g.map(ms).join(', ')}; catalog ${c.map(ms).join(', ')}; snapshot/read ${rs.map((r) => `${r.fromSnapshot}/${r.read}`).join(', ')}`);
    const range = (xs: number[]): string => (xs.length > 1 ? ` (${ms(Math.min(...xs))}–${ms(Math.max(...xs))})` : '');
    const cat = rs[0]!.read + rs[0]!.fromSnapshot > 0 ? `${ms(median(c))}${range(c)}` : ms(median(c));
    const source = rs[0]!.read + rs[0]!.fromSnapshot > 0 ? `${median(rs.map((r) => r.fromSnapshot)).toLocaleString('en')} / ${median(rs.map((r) => r.read)).toLocaleString('en')}` : '';
    rows.push([label, `${ms(median(g))}${range(g)}`, ms(median(rs.map((r) => r.startedMs))), ms(median(rs.map((r) => r.cpuMs))), cat, ms(median(rs.map((r) => r.scanMs))), source, target]);
  };
  const empty = path.join(tmp, 'empty', 'data');
  mkdirSync(empty, { recursive: true });
  for (const workers of [1, 2]) {
    const what = workers === 1 ? '1 process' : `${workers} workers`;
    if (!baseline) {
      await series(`Mailward, empty spool, ${what}`, empty, workers, RUNS, '< 1.5 s');
      continue;
    }
    // Alternating single runs, merged per build afterwards, so a change of load hits both alike.
    const ours: string[][] = [];
    const theirs: string[][] = [];
    for (let i = 0; i < RUNS; i++) {
      await series('x', empty, workers, 1, '', undefined, baseline);
      theirs.push(rows.pop()!);
      await series('x', empty, workers, 1, '');
      ours.push(rows.pop()!);
    }
    rows.push(merged(`Mailward, empty spool, ${what}`, ours, '< 1.5 s'), merged(`  before (${arg('--baseline-label') ?? baseline}), empty spool, ${what}`, theirs, ''));
  }
  if (!process.argv.includes('--empty-only')) await fullSpool(mw, tmp, series);

  // Postfix: a private instance (bench/smtp/postfix.ts), set up once; then `postfix start` is timed.
  // The postfix user must be able to walk down to its queue.
  chmodSync(tmp, 0o755);
  const pfRoot = path.join(tmp, 'postfix');
  mkdirSync(pfRoot, { recursive: true });
  const pf = await startPostfix(pfRoot);
  await pf.stop();
  const pfTimes: number[] = [];
  const etc = path.join(pfRoot, 'etc');
  const pidFile = path.join(pfRoot, 'queue', 'pid', 'master.pid');
  const stopped = async (): Promise<void> => {
    // `postfix stop` returns before the master is gone; a start meanwhile fails.
    for (let i = 0; i < 200; i++) {
      const pid = existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim() : '';
      if (pid === '' || !existsSync(`/proc/${pid}`)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await stopped();
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    try {
      await run('postfix', ['-c', etc, 'start']);
    } catch (err) {
      log(`postfix start failed: ${String(err)}; its log: ${existsSync(path.join(pfRoot, 'maillog')) ? readFileSync(path.join(pfRoot, 'maillog'), 'utf8').slice(-800) : '(none)'}`);
      throw err;
    }
    const forget = onExitSync(() => spawnSync('postfix', ['-c', etc, 'abort'], { stdio: 'ignore' }));
    pfTimes.push(await first220(pf.port, t0));
    await run('postfix', ['-c', etc, 'stop']);
    await stopped();
    forget();
  }
  log(`postfix: ${pfTimes.map(ms).join(', ')}`);
  rows.push(['Postfix, empty queue (`postfix start`)', `${ms(median(pfTimes))} (${ms(Math.min(...pfTimes))}–${ms(Math.max(...pfTimes))})`, '', '', '', '', '', '']);

  finish(rows);
}

/** One row from single-run rows of one build: the median and range of the 220 times, medians of the rest. */
function merged(label: string, single: readonly string[][], target: string): string[] {
  const secs = (t: string): number => (t.endsWith(' ms') ? Number(t.slice(0, -3)) : Number(t.slice(0, -2)) * 1000);
  const col = (i: number): number[] => single.map((r) => secs(r[i]!.split(' (')[0]!));
  const g = col(1);
  return [label, `${ms(median(g))} (${ms(Math.min(...g))}–${ms(Math.max(...g))})`, ms(median(col(2))), ms(median(col(3))), ms(median(col(4))), ms(median(col(5))), '', target];
}

function finish(rows: readonly string[][]): void {
  const table = [
    '| start-up | spawn → first 220 (median, min–max) | `started` line: ms since process start | CPU ms to listening | spawn → catalog complete | scan itself | from snapshot / files read | target |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
  const text = `# Start-up benchmark (bench/startup/run.ts)\n\n${cpus().length} CPUs, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}, load average ${loadavg()[0]!.toFixed(1)} at the end, ${RUNS} runs each (the 400k spool: up to 3). The spool files are written back (\`sync\`) before timing; the page cache is warm. Mailward is the built \`dist/main.js\`; the listener opens before the spool scan, so "catalog complete" is when the \`queue-loaded\` line appears.\n\n${table}\n`;
  process.stdout.write(`${text}\n`);
  if (process.argv.includes('--write')) writeFileSync(path.join(ROOT, 'bench', 'results', 'startup.md'), text);
}

await main();
process.exit(0);
