// Process and machine helpers shared by the SMTP and connection benchmarks: free loopback ports,
// waiting for a listener, the resident memory of a whole process tree (Postfix is many processes),
// the machine's description and load average, and child processes that are always cleaned up.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { cpus, loadavg, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnOwned, stopGroup } from '../../test/harness/processes.ts';

/** A port that was free on 127.0.0.1 a moment ago (for servers that cannot bind port 0 and tell us). */
export { freePort } from '../../test/harness/ports.ts';

/** Waits until something accepts TCP connections on 127.0.0.1:port and sends a 220 greeting. */
export async function waitForSmtp(port: number, timeoutMs = 30_000, what = `port ${port}`): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port });
      let buf = '';
      const done = (v: boolean): void => {
        s.destroy();
        resolve(v);
      };
      s.setTimeout(2000, () => done(false));
      s.on('error', () => done(false));
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        if (buf.includes('\n')) {
          s.end('QUIT\r\n');
          done(buf.startsWith('220'));
        }
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} gave no 220 greeting within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Child pids by parent pid, from one scan of /proc. */
export function children(): Map<number, number[]> {
  const byParent = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = byParent.get(ppid) ?? [];
      list.push(Number(name));
      byParent.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  return byParent;
}

/** The process and all its descendants (`byParent`: one scan of /proc shared by several calls). */
export function processTree(root: number, byParent: Map<number, number[]> = children()): number[] {
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    out.push(pid);
    todo.push(...(byParent.get(pid) ?? []));
  }
  return out;
}

/** A field of /proc/PID/status in kB (VmRSS, VmHWM), or 0 when the process is gone. */
export function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Proportional set size (shared pages split among their users) of one process in kB, or 0. */
export function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU time in ms of one thread (the main thread of a process: tid = pid), or 0 when gone. */
export function threadCpuMs(pid: number, tid: number = pid): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/**
 * CPU time in ms used by a process tree: user + system time of every live process, plus the
 * time of children already reaped (cutime + cstime), so the short-lived workers Postfix's master
 * restarts are counted too.
 */
export function treeCpuMs(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14-17 of proc(5) (utime stime cutime cstime) are 11-14 after the command name.
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // gone
    }
  }
  return (ticks * 1000) / CLOCK_TICKS;
}

/** Summed RSS of a process tree right now, in MB. */
export function treeRssMb(root: number): number {
  return processTree(root).reduce((a, pid) => a + statusKb(pid, 'VmRSS'), 0) / 1024;
}

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGb: number;
  readonly kernel: string;
  readonly node: string;
}

export function machine(): Machine {
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // not Linux
  }
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: totalmem() / 1024 ** 3, kernel, node: process.version };
}

export const loadAverage = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

/** Children in their own process groups, killed on exit whatever happens: test/harness/processes.ts. */
export { onExitSync } from '../../test/harness/processes.ts';

/** spawn() in a new process group, SIGKILLed when this process exits (a benchmark must not leave servers behind). */
export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  return spawnOwned(undefined, cmd, args, opts);
}

/** Sends `signal` to the child and waits (up to `timeoutMs`) for it to exit; then SIGKILL to its group. */
export const stopChild = (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> => stopGroup(child, signal, timeoutMs);

/** Runs a command to completion; rejects with its output when it fails. */
export function run(cmd: string, args: readonly string[], opts: SpawnOptions & { input?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${String(code)}: ${(stderr || stdout).trim().slice(-2000)}`));
    });
    if (opts.input !== undefined) {
      // A program that exits without reading its input must not crash us with EPIPE.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    }
  });
}
