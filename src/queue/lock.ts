// One process per spool: two would deliver the same message twice and clean each other's
// unfinished files. The lock is an flock(2) on <spool>/lock, which the kernel drops the moment
// no process holds the open file any more: a server killed with -9, an unreaped zombie or a pid
// reused by another program can never keep it (docs/decisions/0017-spool-lock.md). Node has no
// flock call, so util-linux's `flock` takes it on our descriptor: a lock belongs to the open
// file description, which the helper shares with us and which stays locked after it exits.
// The file holds the owner's pid, for error messages and operator tools only.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readdir, readFile, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** Locks this process holds, by lock file path. */
const held = new Map<string, FileHandle>();

/** How long a start waits when the process named in the file is gone but the lock is still held. */
const DEFAULT_GRACE_MS = 10_000;
const BUSY = 75;
const FLOCK = existsSync('/usr/bin/flock') ? '/usr/bin/flock' : 'flock';

export interface LockOptions {
  /**
   * When the lock is held but the pid in the file is not among its holders (it died; what is
   * left are processes that inherited the lock, acceptors still exiting), wait this long for
   * them before giving up. A live holder named in the file is reported at once.
   */
  readonly graceMs?: number;
}

/**
 * flock(2) on `fh` through the helper: 'locked', or 'busy' when another open file holds a
 * conflicting lock (after `waitMs`, 0 = do not wait).
 */
function flock(fh: FileHandle, mode: 'exclusive' | 'shared', waitMs: number): Promise<'locked' | 'busy'> {
  const wait = waitMs > 0 ? ['--timeout', String(waitMs / 1000)] : ['--nonblock'];
  return new Promise((resolve, reject) => {
    // The descriptor becomes the helper's fd 3: the same open file description as ours.
    const child = spawn(FLOCK, [`--${mode}`, ...wait, '--conflict-exit-code', String(BUSY), '3'], { stdio: ['ignore', 'ignore', 'pipe', fh.fd] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new Error(`cannot lock the spool: the flock program (${FLOCK}) is missing; install util-linux (Debian/Ubuntu: apt-get install util-linux)`)
          : err,
      );
    });
    child.once('close', (code) => {
      if (code === 0) resolve('locked');
      else if (code === BUSY) resolve('busy');
      else reject(new Error(`cannot lock the spool: ${FLOCK} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/** The pid written in the lock file, if any. */
async function pidInFile(fh: FileHandle): Promise<number | undefined> {
  const buf = Buffer.alloc(64);
  const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
  const pid = Number.parseInt(buf.subarray(0, bytesRead).toString('utf8').trim().split(' ')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * The processes (of those we may inspect) that have the lock file open, but for our own `except`
 * descriptor. Only read when the lock is busy, to tell a live server from a reused pid.
 */
async function openers(path: string, except: number): Promise<number[]> {
  const real = await realpath(path);
  const target = await stat(real);
  const found: number[] = [];
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
  for (const p of pids) {
    const fds = await readdir(`/proc/${p}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if (Number(p) === process.pid && Number(fd) === except) continue;
      const link = await readlink(`/proc/${p}/fd/${fd}`).catch(() => '');
      if (link !== real) continue;
      const s = await stat(`/proc/${p}/fd/${fd}`).catch(() => undefined);
      if (s && s.ino === target.ino && s.dev === target.dev) {
        found.push(Number(p));
        break;
      }
    }
  }
  return found;
}

/** Runs and is not a zombie; EPERM: it exists but belongs to another user (we cannot see its files). */
async function liveProcess(pid: number): Promise<'yes' | 'no' | 'other-user'> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? 'other-user' : 'no';
  }
  const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return / Z /.test(st.slice(st.lastIndexOf(')'))) ? 'no' : 'yes';
}

function inUse(dir: string, path: string, pid: number | undefined, holders: number[]): Error {
  if (pid !== undefined && (holders.length === 0 || holders.includes(pid))) {
    return new Error(`spool ${dir} is in use by process ${pid} (lock file ${path}); stop that process first`);
  }
  const who = holders.length > 0 ? holders.join(', ') : 'unknown (not visible to this user)';
  return new Error(
    `spool ${dir} is in use by process ${who}: it holds the lock on ${path}${pid !== undefined ? ` taken by process ${pid}, which is gone` : ''}; stop that process first (\`fuser -v ${path}\` lists them)`,
  );
}

/** Takes the lock on `dir`; resolves to the function that releases it. */
export async function lockSpool(dir: string, opts: LockOptions = {}): Promise<() => Promise<void>> {
  const path = join(dir, 'lock');
  const fh = await open(path, 'a+', 0o600);
  try {
    if ((await flock(fh, 'exclusive', 0)) === 'busy') {
      const pid = await pidInFile(fh);
      const live = pid === undefined ? 'no' : await liveProcess(pid);
      const holders = live === 'other-user' ? [] : await openers(path, fh.fd);
      // The process that wrote its pid still has the file open: a running server.
      if (pid !== undefined && (live === 'other-user' || (live === 'yes' && holders.includes(pid)))) throw inUse(dir, path, pid, holders);
      // It is gone (or its pid is another program's now); what holds the lock inherited it.
      if ((await flock(fh, 'exclusive', opts.graceMs ?? DEFAULT_GRACE_MS)) === 'busy') throw inUse(dir, path, pid, await openers(path, fh.fd));
    }
    await fh.truncate(0);
    await fh.write(`${process.pid}\n`, 0);
  } catch (err) {
    await fh.close();
    throw err;
  }
  held.set(path, fh);
  return async () => {
    if (held.get(path) !== fh) return;
    held.delete(path);
    await fh.truncate(0).catch(() => undefined);
    // Released by the kernel once no other process (an acceptor still exiting) holds it too.
    await fh.close();
  };
}

/**
 * The descriptor of the lock this process holds on `dir` (none: []), for child processes that
 * write into the spool (acceptors): they hold the lock with us, so no new server can open the
 * spool while one of them still runs, and they cannot keep it once they exit.
 */
export function heldLockFds(dir: string): number[] {
  const fh = held.get(join(resolve(dir), 'lock'));
  return fh ? [fh.fd] : [];
}

/**
 * The pid of the process that holds the lock on `dir`, or undefined when nobody does. Operator
 * tools use it to choose between asking the running server and opening the spool themselves.
 */
export async function spoolOwner(dir: string): Promise<number | undefined> {
  const path = join(resolve(dir), 'lock');
  const mine = held.get(path);
  if (mine) return process.pid;
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    // A shared lock is refused only while an exclusive one is held; ours goes with the close.
    if ((await flock(fh, 'shared', 0)) === 'locked') return undefined;
    return (await pidInFile(fh)) ?? (await openers(path, fh.fd))[0];
  } finally {
    await fh.close();
  }
}
