// The test runner behind `npm test` (scripts/test): node's test runner, one file per process
// group, at most MAILWARD_TEST_CONCURRENCY files at a time. It adds what node --test lacks:
//  - a time limit per file (MAILWARD_TEST_FILE_TIMEOUT_S, default 900): a file that hangs is
//    killed with everything it started, reported, and the run goes on;
//  - a sweep after each file and after the run: every process started under this run carries
//    MAILWARD_TEST_RUN/MAILWARD_TEST_FILE in its environment (test/harness/processes.ts adds
//    them even when a test passes its own env), so whatever a file left behind — even detached
//    and reparented to init — is found, named with its command line, killed, and fails the run.
// Arguments: test files or folders (they replace the default list, test/**/*.test.ts), and
// options starting with "-" handed to every `node --test` (e.g. --test-name-pattern=crash).
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { alive, killGroup, onExitSync, spawnOwned } from '../test/harness/processes.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const CONCURRENCY = Math.max(1, Number(process.env.MAILWARD_TEST_CONCURRENCY ?? 2));
const FILE_TIMEOUT_S = Number(process.env.MAILWARD_TEST_FILE_TIMEOUT_S ?? 900);
const TEST_TIMEOUT_MS = Number(process.env.MAILWARD_TEST_TIMEOUT_MS ?? 180_000);

/**
 * A file's own time limit per test, from a line `// test-timeout: N s` near its top. Under
 * `node --test` the --test-timeout also bounds the whole file, so a test's own { timeout } cannot
 * exceed it: a file whose single test legitimately takes long (npm install -g on a loaded machine)
 * says so here instead. Never more than the file limit, which still kills a hung file.
 */
function fileTestTimeoutMs(file: string): number {
  const m = /^\/\/ test-timeout: (\d+) s$/m.exec(readFileSync(file, 'utf8').slice(0, 8192));
  return m ? Math.min(Number(m[1]) * 1000, FILE_TIMEOUT_S * 1000) : TEST_TIMEOUT_MS;
}
// Once a file's process has gone, processes it SIGKILLed on its way out may need a moment to
// die (uninterruptible I/O); only what is still there after this counts as left behind.
const GRACE_MS = 3000;

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

function parseArgs(argv: readonly string[]): { files: string[]; flags: string[] } {
  const flags = argv.filter((a) => a.startsWith('-'));
  const named = argv.filter((a) => !a.startsWith('-'));
  const files = (named.length > 0 ? named : ['test']).flatMap((a) => {
    const p = path.resolve(a);
    return statSync(p).isDirectory() ? testFiles(p) : [p];
  });
  return { files: [...new Set(files)].map((f) => path.relative(ROOT, f)).sort(), flags };
}

export interface Stray {
  readonly pid: number;
  readonly file: string;
  readonly command: string;
}

/** Live processes (not zombies) whose environment marks them as started by this run (and `file`, if given). */
export function strays(run: string, file?: string): Stray[] {
  const found: Stray[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, 'latin1').split('\0');
      if (!env.includes(`MAILWARD_TEST_RUN=${run}`)) continue;
      const owner = env.find((e) => e.startsWith('MAILWARD_TEST_FILE='))?.slice('MAILWARD_TEST_FILE='.length) ?? '?';
      if (file !== undefined && owner !== file) continue;
      if (!alive(Number(name))) continue;
      const command = readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').join(' ').trim();
      found.push({ pid: Number(name), file: owner, command });
    } catch {
      // gone while we looked, or not ours to read
    }
  }
  return found;
}

function killStrays(list: readonly Stray[]): void {
  for (const s of list) {
    for (const target of [-s.pid, s.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // not a group leader, or gone
      }
    }
  }
}

/** Strays still alive after the grace period, then killed. */
async function sweep(run: string, file?: string): Promise<Stray[]> {
  const deadline = Date.now() + GRACE_MS;
  let left = strays(run, file);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = strays(run, file);
  }
  killStrays(left);
  return left;
}

interface FileResult {
  readonly file: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly timedOut: boolean;
  readonly left: Stray[];
  readonly output: string;
}

async function runFile(run: string, file: string, flags: readonly string[]): Promise<FileResult> {
  const t0 = Date.now();
  const args = ['--import', 'tsx', '--test', '--test-force-exit', '--test-reporter=spec', `--test-timeout=${Math.max(TEST_TIMEOUT_MS, fileTestTimeoutMs(file))}`, ...flags, file];
  const env: NodeJS.ProcessEnv = { ...process.env, MAILWARD_TEST_RUN: run, MAILWARD_TEST_FILE: file, FORCE_COLOR: '0' };
  // Set when this runner itself runs under node --test (its own test): the file's runner would
  // then report to a parent that is not there instead of running the file.
  delete env.NODE_TEST_CONTEXT;
  const child = spawnOwned(undefined, process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  let timedOut = false;
  // Out of time: SIGTERM first, so the file's exit hooks kill the groups it owns; SIGKILL if
  // that does not end it.
  let hardKill: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child, 'SIGTERM');
    hardKill = setTimeout(() => killGroup(child), 10_000);
  }, FILE_TIMEOUT_S * 1000);
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      output += `\n${String(err)}\n`;
      resolve(null);
    });
    child.once('exit', (c) => resolve(c));
  });
  clearTimeout(timer);
  clearTimeout(hardKill);
  // The file's own group (node --test and the file's process); then whatever escaped it.
  killGroup(child);
  // A process left holding the pipes must not keep us waiting for their end.
  child.stdout!.destroy();
  child.stderr!.destroy();
  const left = await sweep(run, file);
  return { file, ok: code === 0 && !timedOut && left.length === 0, seconds: (Date.now() - t0) / 1000, timedOut, left, output };
}

/** node --test's closing counts (spec reporter: "ℹ pass 3"). */
function count(output: string, what: 'tests' | 'pass' | 'fail' | 'skipped'): number {
  return Number(new RegExp(`^ℹ ${what} (\\d+)$`, 'm').exec(output)?.[1] ?? 0);
}

function report(r: FileResult): string {
  const verdict = r.timedOut ? `TIMED OUT after ${FILE_TIMEOUT_S} s (killed with its process group)` : r.ok ? 'ok' : 'FAILED';
  const skipped = count(r.output, 'skipped');
  const lines = [`━━━ ${r.file}: ${verdict} (${count(r.output, 'pass')}/${count(r.output, 'tests')} tests passed${skipped > 0 ? `, ${skipped} skipped` : ''}, ${r.seconds.toFixed(1)} s)`];
  // Passing files print one line; failing ones everything node --test said.
  if (!r.ok) lines.push(r.output.trimEnd());
  for (const s of r.left) lines.push(`LEFT RUNNING after ${r.file}: pid ${s.pid}: ${s.command}`);
  return lines.join('\n') + '\n';
}

async function main(): Promise<number> {
  const { files, flags } = parseArgs(process.argv.slice(2));
  if (files.length === 0) {
    process.stderr.write('error: no test files found under test/\n');
    return 1;
  }
  const run = randomBytes(6).toString('hex');
  // Interrupted (Ctrl-C, CI cancel): nothing of this run may outlive us.
  onExitSync(() => killStrays(strays(run)));
  const t0 = Date.now();
  const results: FileResult[] = [];
  const queue = [...files];
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, files.length) }, async () => {
      for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
        const r = await runFile(run, f, flags);
        results.push(r);
        process.stdout.write(report(r));
      }
    }),
  );
  const left = await sweep(run);
  const failed = results.filter((r) => !r.ok);
  const total = (what: 'tests' | 'pass' | 'fail' | 'skipped'): number => results.reduce((n, r) => n + count(r.output, what), 0);
  const lines = [
    '',
    `${files.length} file(s) in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${files.length - failed.length} passed, ${failed.length} failed`,
    `tests: ${total('tests')}, passed ${total('pass')}, failed ${total('fail')}, skipped ${total('skipped')}`,
  ];
  for (const r of failed) lines.push(`  FAILED ${r.file}${r.timedOut ? ' (timed out)' : ''}${r.left.length > 0 ? ` (left ${r.left.length} process(es) running)` : ''}`);
  for (const s of left) lines.push(`  LEFT RUNNING after the run (started by ${s.file}): pid ${s.pid}: ${s.command}`);
  process.stdout.write(lines.join('\n') + '\n');
  return failed.length > 0 || left.length > 0 ? 1 : 0;
}

process.exitCode = await main();
