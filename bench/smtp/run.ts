// SMTP acceptance benchmark: Mailward (full inbound pipeline, fsync before 250, Maildir delivery)
// side by side with Postfix (hardened, virtual(8) to Maildir), Haraka 3 (fsync'd queue plugin)
// and smtp-sink (the ceiling), all driven by smtp-source in the same run. Prints a markdown table
// and writes bench/results/smtp.md. Run: node --import tsx bench/smtp/run.ts   (about 5-7 min)
//
// Environment: BENCH_RUNS (3), BENCH_SECONDS per run (3), BENCH_ONLY=smtp-sink,mailward,mailward-acceptors,mailward-core,postfix,haraka,haraka-cpus,
// BENCH_PROFILE=1 (CPU profile of Mailward at 4 KB × 50, or at the BENCH_CELLS, written under bench/results/tmp/),
// BENCH_MAILWARD_MAIN=src/main.ts to run the sources through tsx instead of a build,
// BENCH_CELLS=4x50 (KB × sessions, comma-separated) to measure only some cells, BENCH_WARMUP=2000
// messages of warm-up per server and cell (default: 4 per session, at least 50),
// BENCH_MAILWARD_BASELINE=<folder>/dist/main.js to run a second build (e.g. the last commit's) with the
// full pipeline in the same run, taking turns with the others, to compare CPU per message.
import { chmodSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHaraka } from './haraka.ts';
import { startDnsProcess } from './dns-server.ts';
import { fullPipeline, startMailwardServer } from './mailward.ts';
import { startPostfix } from './postfix.ts';
import { children, loadAverage, machine, processTree, pssKb, statusKb, threadCpuMs, treeCpuMs } from './procs.ts';
import { startSink } from './sink.ts';
import { smtpSource } from './source.ts';
import { buildMailward, ensureHaraka, ensurePostfix } from './tools.ts';
import { summarizeProfile } from './profile.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TARGET_SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const SIZES = [4096, 65536];
const SESSIONS = [1, 10, 50];
const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
const PROFILE = process.env.BENCH_PROFILE === '1';
const BASELINE = process.env.BENCH_MAILWARD_BASELINE;
const WARMUP = process.env.BENCH_WARMUP === undefined ? undefined : Number(process.env.BENCH_WARMUP);
if (WARMUP !== undefined && !(Number.isInteger(WARMUP) && WARMUP > 0)) throw new Error(`BENCH_WARMUP=${process.env.BENCH_WARMUP ?? ''} is not a number of messages; write e.g. BENCH_WARMUP=2000`);
/** "4x50,64x1": only these cells (KB × sessions); all of them when unset. */
const CELLS = process.env.BENCH_CELLS?.split(',').map((s) => {
  const m = /^\s*(\d+)\s*(?:k|kb)?\s*[x×:]\s*(\d+)\s*$/i.exec(s);
  if (!m) throw new Error(`BENCH_CELLS: ${JSON.stringify(s)} is not a cell; write KB × sessions, e.g. BENCH_CELLS=4x50,64x50`);
  return { size: Number(m[1]) * 1024, sessions: Number(m[2]) };
});
const wantCell = (c: { size: number; sessions: number }): boolean => !CELLS || CELLS.some((x) => x.size === c.size && x.sessions === c.sessions);
/** The cell the bar is set at: 4 KB messages, 50 concurrent sessions. */
const BAR = { size: 4096, sessions: 50 };

interface Server {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  delivered(): number;
  stop(): Promise<void>;
}

interface Cell {
  readonly size: number;
  readonly sessions: number;
}
const cellKey = (c: Cell): string => `${c.size / 1024} KB × ${c.sessions}`;

interface Entry {
  /** Display name, the server it runs on, and the cells it is measured at. */
  readonly label: string;
  readonly server: Server;
  readonly cells: (c: Cell) => boolean;
  /** Messages accepted so far (for the drain check). */
  accepted: number;
  peakKb: number;
  peakPssKb: number;
  readonly rates: Map<string, number[]>;
  /** CPU ms of the server's processes per message, accepting and delivering it. */
  readonly cpu: Map<string, number[]>;
  /** CPU ms of the main thread per message (for Mailward, whose JavaScript runs there). */
  readonly mainCpu: Map<string, number[]>;
  readonly errors: Map<string, string>;
}

const log = (s: string): void => {
  process.stderr.write(`[bench/smtp] ${s}\n`);
};
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const push = (m: Map<string, number[]>, key: string, v: number): void => {
  const list = m.get(key) ?? [];
  list.push(v);
  m.set(key, list);
};
const want = (name: string): boolean => !ONLY || ONLY.includes(name);

/** Peak RSS of each server's process tree, from one scan of /proc (cheap: runs every 500 ms). */
function sampleRss(entries: Entry[]): void {
  const byParent = children();
  for (const e of entries) {
    let sum = 0;
    for (const pid of processTree(e.server.pid, byParent)) sum += statusKb(pid, 'VmRSS');
    e.peakKb = Math.max(e.peakKb, sum, statusKb(e.server.pid, 'VmHWM'));
  }
}

/** PSS of one server's tree; reading smaps_rollup is slow, so only right after a run, under load. */
function samplePss(e: Entry): void {
  let pss = 0;
  for (const pid of processTree(e.server.pid)) pss += pssKb(pid);
  e.peakPssKb = Math.max(e.peakPssKb, pss);
}

/** Waits until a server has delivered everything it accepted, so its backlog does not slow the next one. */
async function drain(e: Entry, timeoutMs = 180_000): Promise<void> {
  if (e.server.name === 'smtp-sink') return;
  const deadline = Date.now() + timeoutMs;
  while (e.server.delivered() < e.accepted) {
    if (Date.now() > deadline) {
      log(`warning: ${e.label} delivered ${e.server.delivered()} of ${e.accepted} accepted messages after ${timeoutMs / 1000}s`);
      return;
    }
    await sleep(50);
  }
}

function versions(haraka: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const tryRun = (f: () => string): string => {
    try {
      return f();
    } catch {
      return 'unknown';
    }
  };
  out.mailward = tryRun(() => {
    const head = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== '';
    return `${head}${dirty ? ' + uncommitted changes in src/' : ''}`;
  });
  out.postfix = tryRun(() => execFileSync('postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8' }).trim());
  if (haraka) out.haraka = tryRun(() => (JSON.parse(readFileSync(path.join(haraka, 'package.json'), 'utf8')) as { version: string }).version);
  out.node = process.version;
  return out;
}

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  const started = new Date();
  const root = mkdtempSync(path.join(tmpdir(), 'mailward-bench-smtp-'));
  // Postfix's daemons run as the postfix user and must reach their folders below this one.
  chmodSync(root, 0o755);
  const entries: Entry[] = [];
  const stops: Array<() => Promise<void>> = [];
  let harakaDir: string | undefined;
  let profileDir: string | undefined;
  try {
    await ensurePostfix(log);
    if (want('haraka') || want('haraka-cpus')) harakaDir = await ensureHaraka(log);

    const mailwardMain = process.env.BENCH_MAILWARD_MAIN ? path.resolve(REPO, process.env.BENCH_MAILWARD_MAIN) : await buildMailward(REPO, path.join(root, 'build'), log);
    const dns = await startDnsProcess();
    stops.push(() => dns.stop());

    const add = (label: string, server: Server, cells: (c: Cell) => boolean = () => true): void => {
      entries.push({ label, server, cells, accepted: 0, peakKb: 0, peakPssKb: 0, rates: new Map(), cpu: new Map(), mainCpu: new Map(), errors: new Map() });
      stops.push(() => server.stop());
    };
    const dir = (name: string): string => {
      const d = path.join(root, name);
      mkdirSync(d, { recursive: true });
      return d;
    };
    if (want('smtp-sink')) add('smtp-sink (ceiling)', await startSink());
    if (want('mailward')) {
      const nodeArgs: string[] = [];
      if (PROFILE) {
        profileDir = path.join(REPO, 'bench', 'results', 'tmp', `profile-${Date.now()}`);
        mkdirSync(profileDir, { recursive: true });
        nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
      }
      add('Mailward (full pipeline)', await startMailwardServer({ main: mailwardMain, root: dir('mailward'), dnsAddress: dns.address, nodeArgs }), PROFILE && !CELLS ? (c) => c.size === BAR.size && c.sessions === BAR.sessions : undefined);
    }
    // The same server with one acceptor process per core (docs/decisions/0012), to show what they bring;
    // a number, because "auto" means one process on 2 cores or fewer.
    if (want('mailward-acceptors') && !PROFILE) {
      const many = await startMailwardServer({ main: mailwardMain, root: dir('mailward-acceptors'), dnsAddress: dns.address, extraConfig: { workers: Math.max(2, availableParallelism()) } });
      add('Mailward (full pipeline, one acceptor per core)', { ...many, name: 'mailward-acceptors' });
    }
    if (BASELINE && want('mailward') && !PROFILE) {
      const base = await startMailwardServer({ main: path.resolve(REPO, BASELINE), root: dir('mailward-baseline'), dnsAddress: dns.address });
      add('Mailward (full pipeline, baseline build)', { ...base, name: 'mailward-baseline' });
    }
    // The same restrictions as the Postfix instance, to split the cost of the core from the checks'.
    if (want('mailward-core') && !PROFILE) {
      add('Mailward (relay gate + recipient only)', await startMailwardServer({ main: mailwardMain, root: dir('mailward-core'), dnsAddress: dns.address, pipeline: 'recipient-only' }));
    }
    if (want('postfix')) add('Postfix (hardened)', await startPostfix(dir('postfix')));
    if (harakaDir && want('haraka')) add('Haraka (default: 1 worker)', await startHaraka(harakaDir, dir('haraka')));
    if (harakaDir && want('haraka-cpus')) add('Haraka (nodes=cpus)', await startHaraka(harakaDir, dir('haraka-cpus'), 'cpus'), (c) => c.size === BAR.size);
    log(`servers up: ${entries.map((e) => `${e.label} :${e.server.port}`).join(', ')}`);

    const rssTimer = setInterval(() => sampleRss(entries), 500);
    try {
      for (const size of SIZES) {
        for (const sessions of SESSIONS) {
          const cell = { size, sessions };
          if (!wantCell(cell)) continue;
          const key = cellKey(cell);
          const active = entries.filter((e) => e.cells(cell));
          // A short warm-up per server (JIT, process pools, caches) that also sizes the runs.
          const counts = new Map<Entry, number>();
          for (const e of active) {
            const warm = WARMUP ?? Math.max(sessions * 4, 50);
            try {
              const r = await smtpSource({ port: e.server.port, size, sessions, count: warm });
              e.accepted += warm;
              counts.set(e, Math.min(60_000, Math.max(sessions * 10, Math.round(r.perSecond * TARGET_SECONDS))));
            } catch (err) {
              e.errors.set(key, String(err));
              log(`${e.label} ${key}: ${String(err)}`);
            }
            await drain(e);
          }
          // Runs interleave the servers, so a change in the machine's load hits all of them alike.
          for (let run = 0; run < RUNS; run++) {
            for (const e of active) {
              const count = counts.get(e);
              if (count === undefined || e.errors.has(key)) continue;
              try {
                const cpu0 = treeCpuMs(e.server.pid);
                const main0 = threadCpuMs(e.server.pid);
                const r = await smtpSource({ port: e.server.port, size, sessions, count });
                e.accepted += count;
                samplePss(e);
                await drain(e);
                const cpuPerMsg = (treeCpuMs(e.server.pid) - cpu0) / count;
                push(e.rates, key, r.perSecond);
                push(e.cpu, key, cpuPerMsg);
                push(e.mainCpu, key, (threadCpuMs(e.server.pid) - main0) / count);
                log(`${e.label} ${key} run ${run + 1}: ${count} msgs in ${r.seconds.toFixed(2)} s = ${r.perSecond.toFixed(0)}/s, ${cpuPerMsg.toFixed(2)} CPU ms/msg`);
              } catch (err) {
                e.errors.set(key, String(err));
                log(`${e.label} ${key}: ${String(err)}`);
                await drain(e);
              }
            }
          }
        }
      }
    } finally {
      clearInterval(rssTimer);
      sampleRss(entries);
    }
    for (const e of entries) {
      const got = e.server.delivered();
      if (e.server.name !== 'smtp-sink' && got !== e.accepted) log(`warning: ${e.label} accepted ${e.accepted} but ${got} are on disk`);
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log(`stop: ${String(err)}`));
  }

  const loadAfter = loadAverage();
  const report = render(entries, { started, loadBefore, loadAfter, versions: versions(harakaDir) });
  process.stdout.write(`${report}\n`);
  if (!ONLY && !PROFILE && !CELLS && !BASELINE) {
    const out = path.join(REPO, 'bench', 'results', 'smtp.md');
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, report);
    log(`written ${path.relative(REPO, out)}`);
  }
  if (profileDir) process.stdout.write(`\n${summarizeProfile(profileDir)}\n`);
  if (barsMissed.length > 0) {
    log(`bar missed: ${barsMissed.join('; ')}`);
    process.exitCode = 1;
  }
  rmSync(root, { recursive: true, force: true });
}

/** Bars the last render found missed: `npm run bench` exits non-zero when there is one. */
const barsMissed: string[] = [];

/**
 * The bars of issue #25 item 2, all at 4 KB: what Mailward (`ours`) must reach against a peer
 * in the same run, in messages per second (`rate`) or CPU per message (`cpu`, at most `factor` ×).
 */
const BARS: ReadonlyArray<{ readonly ours: string; readonly peer: string; readonly sessions: number; readonly factor: number; readonly measure: 'rate' | 'cpu' }> = [
  ...[1, 10, 50].flatMap((sessions) => [
    { ours: 'mailward-core', peer: 'postfix', sessions, factor: 1.5, measure: 'rate' as const },
    { ours: 'mailward-core', peer: 'haraka', sessions, factor: 1.0, measure: 'rate' as const },
    { ours: 'mailward', peer: 'postfix', sessions, factor: sessions === 50 ? 1.5 : 1.0, measure: 'rate' as const },
  ]),
  { ours: 'mailward', peer: 'postfix', sessions: 50, factor: 0.7, measure: 'cpu' },
  { ours: 'mailward', peer: 'postfix', sessions: 1, factor: 1.0, measure: 'cpu' },
];

/** The bars' table; a bar whose servers or cell were not measured is listed as such, not missed. */
function renderBars(entries: Entry[], rate: (e: Entry, c: Cell) => number | undefined, cpu: (e: Entry, c: Cell) => number | undefined): string[] {
  const byName = (n: string): Entry | undefined => entries.find((e) => e.server.name === n);
  const rows: string[] = [];
  for (const b of BARS) {
    const ours = byName(b.ours);
    const peer = byName(b.peer);
    const cell = { size: 4096, sessions: b.sessions };
    const what = `${ours?.label ?? b.ours} ÷ ${peer?.label ?? b.peer}, ${b.measure === 'rate' ? 'msgs/s' : 'CPU ms per message'}, ${cellKey(cell)}`;
    const get = b.measure === 'rate' ? rate : cpu;
    const a = ours && get(ours, cell);
    const p = peer && get(peer, cell);
    if (a === undefined || p === undefined) {
      rows.push(`| ${what} | – | ${b.measure === 'rate' ? '≥' : '≤'} ${b.factor}× | not measured |`);
      continue;
    }
    const ratio = a / p;
    const met = b.measure === 'rate' ? ratio >= b.factor : ratio <= b.factor;
    if (!met) barsMissed.push(`${what}: ${ratio.toFixed(2)}× (bar ${b.measure === 'rate' ? '≥' : '≤'} ${b.factor}×)`);
    const fmt = (x: number): string => (b.measure === 'rate' ? x.toFixed(0) : x.toFixed(2));
    rows.push(`| ${what} | ${fmt(a)} vs ${fmt(p)} = ${ratio.toFixed(2)}× | ${b.measure === 'rate' ? '≥' : '≤'} ${b.factor}× | **${met ? 'met' : 'missed'}** |`);
  }
  return ['## The bars (issue #25 item 2; medians of the runs below)', '', '| bar | measured | needs | |', '|---|---|---|---|', ...rows, ''];
}

interface Meta {
  readonly started: Date;
  readonly loadBefore: string;
  readonly loadAfter: string;
  readonly versions: Record<string, string>;
}

function render(entries: Entry[], meta: Meta): string {
  const m = machine();
  const cells = SIZES.flatMap((size) => SESSIONS.map((sessions) => ({ size, sessions })));
  const med = (m: Map<string, number[]>, c: Cell): number | undefined => {
    const xs = m.get(cellKey(c));
    return xs && xs.length > 0 ? median(xs) : undefined;
  };
  const rate = (e: Entry, c: Cell): number | undefined => med(e.rates, c);
  const show = (e: Entry, c: Cell): string => {
    if (e.errors.has(cellKey(c))) return 'error';
    const r = rate(e, c);
    return r === undefined ? '–' : r.toFixed(0);
  };
  const lines: string[] = [];
  lines.push('# SMTP acceptance: Mailward and its peers, same machine, same run');
  lines.push('');
  lines.push(`- date: ${meta.started.toISOString()}`);
  lines.push(`- machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGb.toFixed(1)} GB memory, Linux ${m.kernel}, Node.js ${m.node}`);
  lines.push(`- load average (1, 5, 15 min) before: ${meta.loadBefore}; after: ${meta.loadAfter}`);
  if (BASELINE) lines.push(`- baseline build: ${BASELINE}`);
  lines.push(`- versions: ${Object.entries(meta.versions).map(([k, v]) => `${k} ${v}`).join('; ')}`);
  lines.push(`- load: smtp-source, one message per connection, ${RUNS} runs per cell of about ${TARGET_SECONDS} s each after a warm-up (${WARMUP === undefined ? '4 messages per session, at least 50' : `${WARMUP} messages`}); the servers take turns run by run`);
  const p = fullPipeline();
  lines.push(`- Mailward pipeline: helo [${p.helo!.join(', ')}]; mail [${p.mail!.join(', ')}]; rcpt [relay gate, ${p.rcpt!.join(', ')}]; data [${p.data!.join(', ')}]; spool fsync (file + directory) before every 250; delivery to Maildir; log level warn; DNS answered by a server on loopback`);
  lines.push('- Mailward (relay gate + recipient only): the same server with only the restrictions the Postfix instance has — the cost of the core without the DNS-based checks');
  lines.push('- Postfix: a private instance (`postfix -c`), smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_unlisted_recipient, reject_unauth_destination; mynetworks trusts nothing; virtual(8) to Maildir; its usual fsync of the queue file; log to a file through postlogd');
  lines.push('- Haraka: `haraka -i` defaults with rcpt_to.in_host_list and a queue plugin that writes each message to a file and fsyncs it (no directory fsync) before 250; log level warn');
  lines.push('- every server allows all 50 sessions from 127.0.0.1 (per-client connection limits raised)');
  lines.push('');
  lines.push('## Messages accepted per second (median)');
  lines.push('');
  lines.push(`| server | ${cells.map(cellKey).join(' | ')} | peak RSS (MB) | peak PSS (MB) |`);
  lines.push(`|---|${cells.map(() => '---:').join('|')}|---:|---:|`);
  for (const e of entries) lines.push(`| ${e.label} | ${cells.map((c) => show(e, c)).join(' | ')} | ${(e.peakKb / 1024).toFixed(0)} | ${(e.peakPssKb / 1024).toFixed(0)} |`);
  lines.push('');
  lines.push('## CPU time per message (ms, median; all the server\'s processes, accepting and delivering)');
  lines.push('');
  lines.push('The machine is shared, so messages per second move with its load; CPU time per message moves much less and says what each message costs.');
  lines.push('');
  lines.push(`| server | ${cells.map(cellKey).join(' | ')} |`);
  lines.push(`|---|${cells.map(() => '---:').join('|')}|`);
  for (const e of entries) lines.push(`| ${e.label} | ${cells.map((c) => med(e.cpu, c)?.toFixed(2) ?? '–').join(' | ')} |`);
  for (const e of entries.filter((x) => x.server.name.startsWith('mailward'))) {
    lines.push(`| ${e.label}: its main (JavaScript) thread alone | ${cells.map((c) => med(e.mainCpu, c)?.toFixed(2) ?? '–').join(' | ')} |`);
  }
  lines.push('');
  const ours = entries.filter((e) => e.server.name.startsWith('mailward'));
  const peers = entries.filter((e) => !e.server.name.startsWith('mailward'));
  if (ours.length > 0 && peers.length > 0) {
    lines.push('## Mailward ÷ peer (above 1: Mailward accepts more per second)');
    lines.push('');
    lines.push(`| | ${cells.map(cellKey).join(' | ')} |`);
    lines.push(`|---|${cells.map(() => '---:').join('|')}|`);
    for (const mw of ours) {
      for (const e of peers) {
        const ratios = cells.map((c) => {
          const a = rate(mw, c);
          const b = rate(e, c);
          return a === undefined || b === undefined ? '–' : `${(a / b).toFixed(2)}`;
        });
        lines.push(`| ${mw.label} ÷ ${e.label} | ${ratios.join(' | ')} |`);
      }
    }
    lines.push('');
  }
  lines.push(...renderBars(entries, rate, (e, c) => med(e.cpu, c)));
  lines.push('## Every run (messages per second)');
  lines.push('');
  lines.push('| server | cell | runs |');
  lines.push('|---|---|---|');
  for (const e of entries) {
    for (const c of cells) {
      const xs = e.rates.get(cellKey(c));
      if (xs) lines.push(`| ${e.label} | ${cellKey(c)} | ${xs.map((x) => x.toFixed(0)).join(', ')} |`);
      const err = e.errors.get(cellKey(c));
      if (err) lines.push(`| ${e.label} | ${cellKey(c)} | error: ${err.replace(/\|/g, '/').slice(0, 300)} |`);
    }
  }
  lines.push('');
  lines.push('Peak RSS: the largest sum of VmRSS over the server\'s process tree, sampled every 500 ms over the whole run (and at least the main process\'s VmHWM); for Postfix\'s many processes this counts shared pages once per process, so it overstates — peak PSS (shared pages split among their users, from smaps_rollup, read at the end of each run) is the fairer figure there.');
  return lines.join('\n');
}

await main();
