// Queue tools against a running server at the incident's size: 400,000 queued (300,000 from one
// sender), each deferred message carrying the state records of several retries as in a queue
// stuck for days. Times the built `mailward` CLI (a process of its own, as an operator runs it):
// `queue list --summary` read from the spool (no server), then, with `mailward serve` running on
// the spool, `queue list --summary`, `queue hold --sender` and `queue release --sender` over the
// control socket, and counts the log lines the server wrote for them. Prints a markdown table;
// `--write` saves it into bench/results/queue.md (the section after the delete benchmark).
// Run: node --import tsx bench/queue/control.ts [--messages N] [--records N] [--write]
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { populate, SPAMMER } from './populate.ts';
import { buildMailward } from '../smtp/tools.ts';
import { freePort, onExitSync, stopChild } from '../smtp/procs.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};
const TOTAL = Number(arg('--messages') ?? 400_000);
const RECORDS = Number(arg('--records') ?? 6);
const ROOT = path.resolve(import.meta.dirname, '../..');
const say = (s: string): void => void process.stderr.write(`${s}\n`);

interface Timed {
  readonly ms: number;
  readonly cpuMs: number;
  readonly out: string;
}

/** Runs the CLI under /usr/bin/time: wall time from here, CPU (user + system) of the process. */
function cli(main: string, config: string, args: readonly string[]): Timed {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', process.execPath, main, ...args, '--config', config], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`mailward ${args.join(' ')} failed: ${r.stderr}`);
  const m = /CPU ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  return { ms, cpuMs: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN, out: r.stdout };
}

/** As measured in the incident report (issue 22) on the code before hold marks and server-side summaries. */
const BEFORE = { summary: '27 s (21.5 s CPU; the spool read)', hold: '53 s', release: '124 s', lines: '600,002 (one per message; 900,003 with the delete)' };

const fmtS = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const lastLine = (s: string): string => s.trim().split('\n').at(-1)!;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-bench-control-'));
  const dataDir = path.join(dir, 'data');
  const rows: string[][] = [];
  let server: ReturnType<typeof spawn> | undefined;
  try {
    say('building mailward...');
    const main = await buildMailward(ROOT, path.join(dir, 'build'), say);
    say(`writing ${TOTAL.toLocaleString('en')} messages with ${RECORDS} state records per deferred message...`);
    const { spam } = populate(path.join(dataDir, 'spool'), TOTAL, { records: RECORDS, allDeferred: true });
    spawnSync('sync');
    const port = await freePort();
    const config = path.join(dir, 'mailward.yaml');
    writeFileSync(config, [`hostname: mx.example.org`, `domains: [example.org]`, `dataDir: ${dataDir}`, `listeners:`, `  mx: { kind: mx, host: 127.0.0.1, port: ${port} }`, `log: { level: info, format: json }`, `dns: { servers: ['127.0.0.1:9'], timeout: 500ms, tries: 1 }`, ''].join('\n'));

    say('queue list --summary without a server (reads every file)...');
    const offline = cli(main, config, ['queue', 'list', '--summary']);
    rows.push(['`queue list --summary`, no server running: every file read, its state records replayed', BEFORE.summary, fmtS(offline.ms), fmtS(offline.cpuMs), lastLine(offline.out)]);

    say('starting mailward serve...');
    const logFile = path.join(dir, 'server.log');
    const logOut = createWriteStream(logFile);
    server = spawn(process.execPath, [main, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    const child = server;
    const forget = onExitSync(() => child.pid && process.kill(-child.pid, 'SIGKILL'));
    let loaded = false;
    const loadedAt = new Promise<void>((resolve) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        logOut.write(d);
        buf += d.toString();
        if (!loaded && buf.includes('"event":"queue-loaded"')) {
          loaded = true;
          resolve();
        }
        buf = buf.slice(buf.lastIndexOf('\n') + 1);
      });
    });
    await loadedAt;
    const lines = (): string[] => readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '');

    const summary = cli(main, config, ['queue', 'list', '--summary']);
    rows.push(['`queue list --summary`, server running: counted from its catalog', BEFORE.summary, fmtS(summary.ms), fmtS(summary.cpuMs), lastLine(summary.out)]);
    const before = lines().length;
    const hold = cli(main, config, ['queue', 'hold', '--sender', SPAMMER]);
    rows.push([`\`queue hold --sender\` (${spam.toLocaleString('en')} messages), server running`, BEFORE.hold, fmtS(hold.ms), fmtS(hold.cpuMs), lastLine(hold.out)]);
    const heldSummary = cli(main, config, ['queue', 'list', '--summary']);
    rows.push(['`queue list --summary` with them held', '', fmtS(heldSummary.ms), fmtS(heldSummary.cpuMs), heldSummary.out.trim().split('\n').at(-2)!]);
    const release = cli(main, config, ['queue', 'release', '--sender', SPAMMER]);
    rows.push([`\`queue release --sender\` (${spam.toLocaleString('en')} messages), server running`, BEFORE.release, fmtS(release.ms), fmtS(release.cpuMs), lastLine(release.out)]);
    // Let the log catch up with the commands' summary lines.
    for (let i = 0; i < 100 && lines().filter((l) => l.includes('"event":"queue-admin"')).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const during = lines().slice(before);
    const admin = during.filter((l) => l.includes('"event":"queue-admin"'));
    rows.push(['log lines the server wrote for the hold and the release', BEFORE.lines, '', '', `${during.length} lines, ${admin.length} of them \`queue-admin\` summaries`]);
    await stopChild(child, 'SIGTERM');
    forget();
    server = undefined;
    logOut.end();
  } finally {
    if (server) await stopChild(server, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  const table = [
    `Operator commands against a running server, ${TOTAL.toLocaleString('en')} queued (75% from one sender; every message deferred for an hour, with ${RECORDS} state records of earlier retries, so the server delivers nothing meanwhile), the built \`mailward\` CLI as its own process, ${cpus().length} CPUs, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}, load average ${loadavg()[0]!.toFixed(1)} at the end. Files written back (\`sync\`) before timing; fsync on in the server.`,
    '',
    '| command | before (issue 22, same queue shape) | time | CPU (the CLI process) | result |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  process.stdout.write(table);
  if (process.argv.includes('--write')) {
    const file = path.join(ROOT, 'bench/results/queue.md');
    const old = readFileSync(file, 'utf8');
    const marker = '\n## Against a running server (bench/queue/control.ts)\n';
    const head = old.includes(marker) ? old.slice(0, old.indexOf(marker)) : old.trimEnd() + '\n';
    const tail = old.includes(marker) ? old.slice(old.indexOf(marker) + marker.length).split('\n## ').slice(1) : [];
    writeFileSync(file, `${head}${marker}\n${table}${tail.length > 0 ? `\n## ${tail.join('\n## ')}` : ''}`);
  }
}

await main();
