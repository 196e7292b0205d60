// Connection benchmark: how many idle SMTP sessions (greeted, EHLO answered, then silent) one
// Mailward process holds, its RSS at 1,000 and 10,000 (and as many more as the fd limit allows),
// and whether 50 busy sessions sending mail while all are held — or the idle ones — are starved.
// Prints a table and writes bench/results/conns.md. Run: node --import tsx bench/conns/run.ts (~2 min)
//
// It raises its own fd limit (ulimit -n) by running itself again under bash when needed.
// Environment: BENCH_CONNS_MAX (20000) — the highest count tried after the 10,000 mark.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDnsProcess } from '../smtp/dns-server.ts';
import { startMailwardServer } from '../smtp/mailward.ts';
import { loadAverage, machine, statusKb, treeCpuMs, treeRssMb } from '../smtp/procs.ts';
import { smtpSource } from '../smtp/source.ts';
import { buildMailward, ensurePostfix } from '../smtp/tools.ts';
import { message, openIdle, sendOne, type ReplyReader } from './client.ts';

const SELF = fileURLToPath(import.meta.url);
const REPO = path.resolve(path.dirname(SELF), '..', '..');
const MAX = Number(process.env.BENCH_CONNS_MAX ?? 20_000);
/** Both ends hold every session: the server's fds plus ours, with room for files and the pipeline. */
const FD_NEEDED = MAX + 5_000;
const SENDERS = 50;
const MESSAGES_PER_SENDER = 10;
/**
 * Source addresses: all of 127.0.0.0/8 is loopback on Linux; several keep clear of per-address
 * port limits. Not 127.0.0.2, which the benchmark's blocklist lists (RFC 5782 §5 test entry).
 */
const SOURCES = Array.from({ length: 20 }, (_, i) => `127.0.10.${i + 1}`);

const log = (s: string): void => {
  process.stderr.write(`[bench/conns] ${s}\n`);
};

function openFileLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** Runs this script again under `ulimit -n`, which node cannot change for itself. */
function reexecWithMoreFds(): never {
  const r = spawnSync('bash', ['-c', `ulimit -n ${FD_NEEDED} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, 'bash', process.execPath, ...process.execArgv, SELF], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_CONNS_REEXEC: '1' },
  });
  process.exit(r.status ?? 1);
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 10 ? 1 : 0) : '–');

interface LoadFigures {
  readonly idle: number;
  readonly rate: number;
  readonly latencies: number[];
  readonly failures: number;
  readonly noop: number[];
  readonly noopFailures: number;
}

async function main(): Promise<void> {
  if (openFileLimit() < FD_NEEDED && !process.env.BENCH_CONNS_REEXEC) reexecWithMoreFds();
  const fdLimit = openFileLimit();
  const target = Math.min(MAX, fdLimit - 2_000);
  if (target < 10_000) log(`warning: the fd limit is ${fdLimit}; only ${target} sessions can be tried (run as root, or raise the hard limit)`);
  await ensurePostfix(log); // smtp-source, for the throughput figure under idle load

  const loadBefore = loadAverage();
  const started = new Date();
  const root = mkdtempSync(path.join(tmpdir(), 'mailward-bench-conns-'));
  chmodSync(root, 0o755);
  const idle: ReplyReader[] = [];
  const rss: Array<{ sessions: number; rssMb: number; hwmMb: number; openSeconds: number }> = [];
  const loads: LoadFigures[] = [];
  let idleCpuMsPerS = NaN;
  let held = 0;
  let openError: string | undefined;
  let finalNoop = { answered: 0, of: 0 };
  const dns = await startDnsProcess();
  const mailwardMain = process.env.BENCH_MAILWARD_MAIN ? path.resolve(REPO, process.env.BENCH_MAILWARD_MAIN) : await buildMailward(REPO, path.join(root, 'build'), log);
  const mw = await startMailwardServer({ main: mailwardMain, root: path.join(root, 'mailward'), dnsAddress: dns.address, maxConnections: target + 1_000 });
  const body = message(4096);

  /** 50 senders, each sending messages one after another, while every idle session is sent a NOOP. */
  const underLoad = async (): Promise<LoadFigures> => {
    const r = await smtpSource({ port: mw.port, size: 4096, sessions: SENDERS, count: 1_500 });
    const latencies: number[] = [];
    let failures = 0;
    let sendersDone = false;
    const senders = Promise.all(
      Array.from({ length: SENDERS }, async (_, i) => {
        for (let k = 0; k < MESSAGES_PER_SENDER; k++) {
          try {
            latencies.push(await sendOne(mw.port, SOURCES[i % SOURCES.length]!, body));
          } catch (err) {
            failures++;
            log(`sender ${i}: ${String(err)}`);
          }
        }
      }),
    ).finally(() => (sendersDone = true));
    // Meanwhile each idle session gets a NOOP, 200 at a time, as long as the senders run.
    const noop: number[] = [];
    let noopFailures = 0;
    for (let i = 0; i < idle.length && !sendersDone; i += 200) {
      await Promise.all(
        idle.slice(i, i + 200).map(async (c) => {
          const t0 = performance.now();
          try {
            await c.say('NOOP', '250', 10_000);
            noop.push(performance.now() - t0);
          } catch {
            noopFailures++;
          }
        }),
      );
    }
    await senders;
    return { idle: idle.length, rate: r.perSecond, latencies, failures, noop, noopFailures };
  };

  try {
    // A short warm-up; memory is read before any heavy load, so each row is the sessions' own cost.
    await smtpSource({ port: mw.port, size: 4096, sessions: 10, count: 100 });
    await sleep(2000);
    rss.push({ sessions: 0, rssMb: treeRssMb(mw.pid), hwmMb: statusKb(mw.pid, 'VmHWM') / 1024, openSeconds: 0 });

    const milestones = [1_000, 10_000, target].filter((m, i, all) => m <= target && all.indexOf(m) === i);
    for (const mark of milestones) {
      const t0 = performance.now();
      try {
        while (idle.length < mark) {
          const batch = Math.min(250, mark - idle.length);
          const base = idle.length;
          idle.push(...(await Promise.all(Array.from({ length: batch }, (_, i) => openIdle(mw.port, SOURCES[(base + i) % SOURCES.length]!)))));
        }
      } catch (err) {
        openError = `${String(err)} (after ${idle.length} sessions)`;
        log(`opening sessions stopped: ${openError}`);
      }
      held = idle.length;
      const openSeconds = (performance.now() - t0) / 1000;
      await sleep(2000);
      rss.push({ sessions: idle.length, rssMb: treeRssMb(mw.pid), hwmMb: statusKb(mw.pid, 'VmHWM') / 1024, openSeconds });
      log(`${idle.length} idle sessions: RSS ${treeRssMb(mw.pid).toFixed(0)} MB`);
      if (mark === 10_000 && idle.length === mark) {
        const c0 = treeCpuMs(mw.pid);
        await sleep(5000);
        idleCpuMsPerS = (treeCpuMs(mw.pid) - c0) / 5;
      }
      if (openError) break;
    }
    // The senders run with every idle session held.
    loads.push(await underLoad());
    // Every idle session still answers: none was dropped or starved.
    let answered = 0;
    for (let i = 0; i < idle.length; i += 500) {
      const ok = await Promise.all(idle.slice(i, i + 500).map((c) => c.say('NOOP', '250', 10_000).then(() => true, () => false)));
      answered += ok.filter(Boolean).length;
    }
    finalNoop = { answered, of: idle.length };
    // The same load with no idle sessions, for comparison.
    for (const c of idle.splice(0)) c.socket.destroy();
    await sleep(2000);
    loads.unshift(await underLoad());
  } finally {
    for (const c of idle) c.socket.destroy();
    await mw.stop();
    await dns.stop();
  }

  const report = render({ started, loadBefore, loadAfter: loadAverage(), fdLimit, rss, loads, idleCpuMsPerS, held, openError, finalNoop });
  process.stdout.write(`${report}\n`);
  const out = path.join(REPO, 'bench', 'results', 'conns.md');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, report);
  log(`written ${path.relative(REPO, out)}`);
  rmSync(root, { recursive: true, force: true });
}

interface Figures {
  readonly started: Date;
  readonly loadBefore: string;
  readonly loadAfter: string;
  readonly fdLimit: number;
  readonly rss: Array<{ sessions: number; rssMb: number; hwmMb: number; openSeconds: number }>;
  readonly loads: LoadFigures[];
  readonly idleCpuMsPerS: number;
  readonly held: number;
  readonly openError: string | undefined;
  readonly finalNoop: { answered: number; of: number };
}

function render(f: Figures): string {
  const m = machine();
  const base = f.rss[0]?.rssMb ?? 0;
  const lines: string[] = [];
  lines.push('# Idle SMTP sessions held by one Mailward process');
  lines.push('');
  lines.push(`- date: ${f.started.toISOString()}`);
  lines.push(`- machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGb.toFixed(1)} GB memory, Linux ${m.kernel}, Node.js ${m.node}; open-file limit ${f.fdLimit}`);
  lines.push(`- load average (1, 5, 15 min) before: ${f.loadBefore}; after: ${f.loadAfter}`);
  lines.push('- Mailward: built (`dist/main.js`), MX listener with the full pipeline of the SMTP benchmark, log level warn, connection limits raised; an idle session got the 220 greeting and a 250 to EHLO, then says nothing; they come from 127.0.10.1 … 127.0.10.20');
  lines.push('');
  lines.push('## Memory');
  lines.push('');
  lines.push('| idle sessions | RSS (MB) | VmHWM (MB) | per session above no sessions (KB) | per session added since the row above (KB) | seconds to open them |');
  lines.push('|---:|---:|---:|---:|---:|---:|');
  f.rss.forEach((r, i) => {
    const prev = f.rss[i - 1];
    const per = r.sessions > 0 ? (((r.rssMb - base) * 1024) / r.sessions).toFixed(1) : '–';
    const added = prev && r.sessions > prev.sessions ? (((r.rssMb - prev.rssMb) * 1024) / (r.sessions - prev.sessions)).toFixed(1) : '–';
    lines.push(`| ${r.sessions.toLocaleString('en')} | ${r.rssMb.toFixed(0)} | ${r.hwmMb.toFixed(0)} | ${per} | ${added} | ${r.sessions > 0 ? r.openSeconds.toFixed(1) : '–'} |`);
  });
  lines.push('');
  lines.push('Each row is read 2 s after the sessions were opened, after a warm-up of 100 messages and before the load runs (garbage from a load run would blur the figures).');
  lines.push('');
  lines.push(`Sessions held at most: ${f.held.toLocaleString('en')}${f.openError ? ` (stopped by: ${f.openError})` : ' (every session asked for was opened)'}.`);
  lines.push(`CPU while holding 10,000 idle sessions: ${Number.isFinite(f.idleCpuMsPerS) ? `${f.idleCpuMsPerS.toFixed(1)} ms per second` : 'not measured'}.`);
  lines.push(`At the end ${f.finalNoop.answered.toLocaleString('en')} of ${f.finalNoop.of.toLocaleString('en')} idle sessions answered a NOOP.`);
  lines.push('');
  lines.push(`## ${SENDERS} sessions sending while the idle ones are held`);
  lines.push('');
  lines.push(`smtp-source: ${SENDERS} sessions, 1,500 messages of 4 KB. Transactions: ${SENDERS} senders of our own each sending ${MESSAGES_PER_SENDER} messages, one connection each, timed from connect to 221; meanwhile every idle session is sent a NOOP, 200 at a time.`);
  lines.push('');
  lines.push('| idle sessions | smtp-source msgs/s | transaction p50 / p99 / max (ms) | failed transactions | NOOP to idle sessions p50 / p99 / max (ms) | NOOPs answered |');
  lines.push('|---:|---:|---:|---:|---:|---:|');
  for (const l of f.loads) {
    const noop = l.noop.length > 0 ? `${ms(pct(l.noop, 50))} / ${ms(pct(l.noop, 99))} / ${ms(Math.max(...l.noop))}` : '–';
    lines.push(
      `| ${l.idle.toLocaleString('en')} | ${l.rate.toFixed(0)} | ${ms(pct(l.latencies, 50))} / ${ms(pct(l.latencies, 99))} / ${ms(Math.max(...l.latencies))} | ${l.failures} | ${noop} | ${l.noop.length} of ${l.noop.length + l.noopFailures} |`,
    );
  }
  return lines.join('\n');
}

await main();
