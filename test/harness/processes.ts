// Every process a test (or a benchmark) starts goes through here. Each child leads its own
// process group (detached: true), so one kill(-pgid) also ends whatever it forked (acceptor
// workers, a shell's children). The owner kills the group when the test ends — passed, failed
// or timed out — and this process kills every group still alive when it exits, whatever the
// reason: a server left running after a timed-out test holds the runner's pipes and `npm test`
// never ends. scripts/run-tests.ts sweeps what is left after each file and fails the run.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** What spawnOwned needs of a TestContext: an after hook (a test, a suite, or the file's `after`). */
export interface ProcessOwner {
  after(fn: () => unknown): void;
}

/** Group leaders started here and not known to be gone. */
const groups = new Set<ChildProcess>();
const exitHooks = new Set<() => void>();
let hooked = false;

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  // A signal that ends us skips the 'exit' event: clean up, then die of the same signal.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      process.kill(process.pid, sig);
    });
  }
}

/** SIGKILL to every group started here (synchronous: it runs in the 'exit' handler too). */
export function killAll(): void {
  for (const fn of exitHooks) {
    try {
      fn();
    } catch {
      // best effort on the way out
    }
  }
  exitHooks.clear();
  for (const child of groups) killGroup(child);
  groups.clear();
}

/** Runs `fn` synchronously if this process exits before the returned function is called. */
export function onExitSync(fn: () => void): () => void {
  hook();
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

/** True once the child itself has exited (its group may still hold processes it forked). */
export const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

/** Whether `pid` runs: it exists and is not a zombie waiting for its (new) parent to reap it. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** Resolves when the child has exited. */
export function exited(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Sends `signal` to the child's whole process group (default SIGKILL). Quietly does nothing when
 * the group is gone.
 */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  const pid = child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing left in the group.
    if (!hasExited(child)) child.kill(signal);
  }
}

// scripts/run-tests.ts finds what a file left behind by these environment variables: they
// must survive a test that gives its child an environment of its own.
const MARKS = ['MAILWARD_TEST_RUN', 'MAILWARD_TEST_FILE'] as const;

function marked(env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv | undefined {
  if (env === undefined) return undefined;
  const out = { ...env };
  for (const k of MARKS) if (out[k] === undefined && process.env[k] !== undefined) out[k] = process.env[k];
  return out;
}

/**
 * spawn() in a new process group that `owner` owns: SIGKILLed to the last process in the
 * owner's after hook, and on exit of this process. `owner` undefined: only the exit hook (the
 * caller stops it itself — benchmarks, or a helper that hands the owner on later).
 */
export function spawnOwned(owner: ProcessOwner | undefined, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  hook();
  const child = spawn(cmd, args, { ...opts, env: marked(opts.env), detached: true });
  groups.add(child);
  child.once('error', () => groups.delete(child));
  // The leader's exit does not end the group (a test may be watching its workers die by
  // themselves): it stays in the set until the owner or the exit hook kills the rest.
  owner?.after(() => stopGroup(child, 'SIGKILL'));
  return child;
}

/**
 * Asks the leader to stop with `signal` (SIGTERM: its own clean shutdown, which it may run by
 * telling its workers) and waits up to `timeoutMs` for it to exit; then SIGKILL. Either way the
 * rest of the group is SIGKILLed after the leader has gone.
 */
export async function stopGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
  if (!hasExited(child)) {
    if (signal === 'SIGKILL') killGroup(child);
    else {
      child.kill(signal);
      killGroup(child, 'SIGCONT'); // a stopped (SIGSTOP) process cannot act on SIGTERM
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
      const late = await Promise.race([exited(child).then(() => false), deadline]);
      clearTimeout(timer);
      if (late) killGroup(child);
    }
    await exited(child);
  }
  killGroup(child);
  groups.delete(child);
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions extends SpawnOptions {
  /** Written to the child's standard input, which is then closed. */
  readonly input?: string;
  /** SIGKILL the group after this long (the result then has signal SIGKILL). */
  readonly timeoutMs?: number;
}

/** Runs a command to its end in an owned group and collects its output (never rejects on a non-zero exit). */
export function runOwned(owner: ProcessOwner | undefined, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const { input, timeoutMs, ...spawnOpts } = opts;
  return new Promise((resolve, reject) => {
    const child = spawnOwned(owner, cmd, args, { ...spawnOpts, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => killGroup(child), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A program that exits without reading its input must not crash us with EPIPE.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input ?? '');
  });
}
