// One process per spool: two would deliver the same message twice and clean each other's
// unfinished files. The lock is a file holding the owner's pid and the kernel's boot id; a lock
// whose process is gone (kill -9) or that predates a reboot (the pid may be reused) is taken over.
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const heldHere = new Set<string>();

/** Changes at every boot (Linux); '' where there is no such file. */
async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock on `dir`; resolves to the function that releases it. */
export async function lockSpool(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'lock');
  const boot = await bootId();
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid} ${boot}\n`);
      } finally {
        await fh.close();
      }
      heldHere.add(path);
      return async () => {
        heldHere.delete(path);
        await unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const [pidText = '', lockBoot = ''] = (await readFile(path, 'utf8').catch(() => '')).trim().split(' ');
    const pid = Number.parseInt(pidText, 10);
    const sameBoot = lockBoot === '' || boot === '' || lockBoot === boot;
    // Our own pid in a lock we do not hold is a leftover from an earlier life under the same pid.
    const busy = sameBoot && Number.isInteger(pid) && pid > 0 && (pid === process.pid ? heldHere.has(path) : alive(pid));
    if (busy) {
      throw new Error(`spool ${dir} is in use by process ${pid} (lock file ${path}); stop that process first, or if no mailward process uses this spool, delete ${path}`);
    }
    await unlink(path).catch(() => undefined);
  }
}

/**
 * The pid of the live process that holds the lock on `dir`, or undefined when nobody does (no
 * lock file, or one left by a dead process or an earlier boot). Operator tools use it to choose
 * between asking the running server and opening the spool themselves.
 */
export async function spoolOwner(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, 'lock'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const [pidText = '', lockBoot = ''] = text.trim().split(' ');
  const pid = Number.parseInt(pidText, 10);
  const boot = await bootId();
  const sameBoot = lockBoot === '' || boot === '' || lockBoot === boot;
  if (!sameBoot || !Number.isInteger(pid) || pid <= 0) return undefined;
  if (pid === process.pid) return heldHere.has(join(dir, 'lock')) ? pid : undefined;
  return alive(pid) ? pid : undefined;
}
