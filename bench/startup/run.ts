// Start-up time: from spawning `node dist/main.js serve` to the first 220 greeting on the MX port,
// on an empty spool (one process and two acceptor workers) and with 400,000 queued messages (then
// also the time to the complete catalog, the `queue-loaded` line); Postfix's `postfix start` to
// its first 220 in the same run. Prints a markdown table; `--write` saves bench/results/startup.md.
// Run (as root, Postfix installed): node --import tsx bench/startup/run.ts [--messages N] [--runs N] [--write]
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { populate } from '../queue/populate.ts';
import { buildMailward } from '../smtp/tools.ts';
import { startPostfix } from '../smtp/postfix.ts';
import { freePort, onExitSync, run } from '../smtp/procs.ts';

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
}

async function startMailward(main: string, dataDir: string, workers: number): Promise<MailwardRun> {
  const port = await freePort();
  const config = path.join(dataDir, '..', `mailward-${workers}.yaml`);
  writeFileSync(config, [`hostname: mx.example.org`, `domains: [example.org]`, `dataDir: ${dataDir}`, `workers: ${workers}`, `listeners:`, `  mx: { kind: mx, host: 127.0.0.1, port: ${port} }`, `log: { level: info, format: json }`, ''].join('\n'));
  const t0 = performance.now();
  const child = spawn(process.execPath, [main, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const forget = onExitSync(() => child.pid && process.kill(-child.pid, 'SIGKILL'));
  let started: Record<string, number> | undefined;
  let loaded: { at: number; ms: number } | undefined;
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
        loaded = { at: performance.now() - t0, ms: Number(l.ms) };
        onLoaded.splice(0).forEach((f) => f());
      }
    }
  });
  try {
    const greetingMs = await first220(port, t0);
    if (!loaded) await new Promise<void>((r) => onLoaded.push(r));
    return { greetingMs, startedMs: started?.msSinceProcessStart ?? NaN, cpuMs: started?.cpuMs ?? NaN, catalogMs: loaded!.at, scanMs: loaded!.ms };
  } finally {
    process.kill(-child.pid!, 'SIGTERM');
    await new Promise((r) => child.once('exit', r));
    forget();
  }
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number): string => (Number.isNaN(x) ? '' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`);

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(tmpdir(), 'mailward-bench-startup-'));
  onExitSync(() => rmSync(tmp, { recursive: true, force: true }));
  log('building Mailward');
  const mw = await buildMailward(ROOT, path.join(tmp, 'build'), log);
  const rows: string[][] = [];
  const series = async (label: string, dataDir: string, workers: number, runs: number, target: string): Promise<void> => {
    const rs: MailwardRun[] = [];
    for (let i = 0; i < runs; i++) rs.push(await startMailward(mw, dataDir, workers));
    const g = rs.map((r) => r.greetingMs);
    log(`${label}: ${g.map(ms).join(', ')}`);
    rows.push([label, `${ms(median(g))} (${ms(Math.min(...g))}–${ms(Math.max(...g))})`, ms(median(rs.map((r) => r.startedMs))), ms(median(rs.map((r) => r.cpuMs))), ms(median(rs.map((r) => r.catalogMs))), ms(median(rs.map((r) => r.scanMs))), target]);
  };
  const empty = path.join(tmp, 'empty', 'data');
  mkdirSync(empty, { recursive: true });
  await series('Mailward, empty spool, 1 process', empty, 1, RUNS, '< 1.5 s');
  await series('Mailward, empty spool, 2 workers', empty, 2, RUNS, '< 1.5 s');

  const full = path.join(tmp, 'full', 'data');
  mkdirSync(full, { recursive: true });
  log(`writing ${MESSAGES} messages`);
  const w0 = performance.now();
  // Every message deferred for an hour: nothing is tried, so no traffic leaves the machine.
  const { bytes } = populate(path.join(full, 'spool'), MESSAGES, { allDeferred: true });
  spawnSync('sync');
  log(`written: ${(bytes / 1e6).toFixed(0)} MB in ${ms(performance.now() - w0)}`);
  await series(`Mailward, ${MESSAGES.toLocaleString('en')} queued, 1 process`, full, 1, Math.min(RUNS, 3), '< 2 s; catalog ≤ 6.5 s');

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
  rows.push(['Postfix, empty queue (`postfix start`)', `${ms(median(pfTimes))} (${ms(Math.min(...pfTimes))}–${ms(Math.max(...pfTimes))})`, '', '', '', '', '']);

  const table = [
    '| start-up | spawn → first 220 (median, min–max) | `started` line: ms since process start | CPU ms to listening | spawn → catalog complete | scan itself | target |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
  const text = `# Start-up benchmark (bench/startup/run.ts)\n\n${cpus().length} CPUs, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}, load average ${loadavg()[0]!.toFixed(1)} at the end, ${RUNS} runs each (the 400k spool: up to 3). The spool files are written back (\`sync\`) before timing; the page cache is warm. Mailward is the built \`dist/main.js\`; the listener opens before the spool scan, so "catalog complete" is when the \`queue-loaded\` line appears.\n\n${table}\n`;
  process.stdout.write(`${text}\n`);
  if (process.argv.includes('--write')) writeFileSync(path.join(ROOT, 'bench', 'results', 'startup.md'), text);
}

await main();
process.exit(0);
