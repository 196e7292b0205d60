// SpamAssassin as the benchmark's yardstick: Debian's spamassassin + spamc packages, a private
// site configuration (Bayes on, auto-learn off, no network tests), its Bayes trained with sa-learn
// on the given messages, then spamd scoring through spamc. Used by the held-out comparison and by
// the cross-validation that sets the false-positive limits (cv.ts).
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { poolMap, type Message, type Scored } from './corpus.ts';
import { spawnTracked, stopChild } from '../smtp/procs.ts';

const run = promisify(execFile);

export interface ScorePass {
  readonly scored: Scored[];
  readonly seconds: number;
  /** CPU time (user + system) the scorer spent on the pass, all its threads or processes. */
  readonly cpuMs: number;
}

export interface Scorer {
  readonly name: string;
  readonly learnSeconds: number;
  /** Scores the messages once, timed. */
  pass(messages: readonly Message[]): Promise<ScorePass>;
  peakRssMb(): number;
  close(): Promise<void>;
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

/** Trains SpamAssassin on `train` in the folder `root` (created) and starts spamd on it; a string
 * says why it cannot (not installed). `work` is the bench's temporary folder (opened to spamd's
 * children, which run as nobody). */
export async function prepareSpamAssassin(dir: string, train: readonly Message[], work: string, root: string): Promise<Scorer | string> {
  const saLearn = which('sa-learn');
  const spamd = which('spamd');
  const spamc = which('spamc');
  if (!saLearn || !spamd || !spamc) return 'SpamAssassin not installed (apt-get install spamassassin spamc)';
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
  const daemon = spawnTracked(spamd, ['-L', '-x', `--siteconfigpath=${cfg}`, `--socketpath=${socket}`, '--socketmode=0666', '-m', String(children), '--min-children', String(children), '--min-spare', String(children), '-u', 'nobody', '-s', 'stderr'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let daemonLog = '';
  daemon.stderr?.on('data', (b: Buffer) => (daemonLog = (daemonLog + b.toString()).slice(-4000)));
  const stop = (): Promise<void> => stopChild(daemon);
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
    const p = spawnTracked(spamc, ['-U', socket, '-c', '-s', '20000000'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    p.on('error', reject);
    p.on('close', () => {
      const score = Number(/^(-?[\d.]+)\//.exec(out)?.[1]);
      if (Number.isFinite(score)) resolve(score);
      else reject(new Error(`spamc gave no score for ${file}: ${JSON.stringify(out)}`));
    });
    readFile(file).then((b) => p.stdin!.end(b), reject);
  });
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
