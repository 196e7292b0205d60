// The spool lock is an flock the kernel drops when its holders die: a server killed with -9 (even
// one left as an unreaped zombie) never keeps it, a live one is named in the error, and a process
// that inherited it (an acceptor) keeps it until it exits too.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { lockSpool, spoolOwner } from '../../src/queue/lock.ts';
import { tempDir } from './helpers.ts';

const CHILD = fileURLToPath(new URL('./lock-child.ts', import.meta.url));
const NODE = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(CHILD)}`;

/**
 * Runs `script` with bash in a process group of its own (killed after the test) and resolves to
 * the words of the first line that starts with "locked".
 */
async function runLocked(t: TestContext, script: string): Promise<number[]> {
  const sh = spawn('bash', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    try {
      process.kill(-sh.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  const rl = createInterface({ input: sh.stdout });
  const exited = new Promise<never>((_, reject) => sh.once('exit', (code) => reject(new Error(`lock child exited (${code}) before locking`))));
  const line = new Promise<string>((resolve) => rl.on('line', (l) => l.startsWith('locked ') && resolve(l)));
  return (await Promise.race([line, exited])).split(' ').slice(1).map(Number);
}

async function state(pid: number): Promise<string> {
  const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
}

test('a live holder in another process: a second lock fails at once naming its pid; spoolOwner names it', async (t) => {
  const dir = await tempDir(t);
  const [pid] = await runLocked(t, `exec ${NODE} ${JSON.stringify(dir)}`);
  await assert.rejects(lockSpool(dir), new RegExp(`in use by process ${pid} \\(lock file `));
  assert.equal(await spoolOwner(dir), pid);
});

test('kill -9 of a holder left as an unreaped zombie frees the lock at once', async (t) => {
  const dir = await tempDir(t);
  // bash starts the holder, then becomes `sleep`, which never reaps it: it stays a zombie.
  const [pid] = await runLocked(t, `${NODE} ${JSON.stringify(dir)} & exec sleep 600`);
  process.kill(pid!, 'SIGKILL');
  // The leader shows Z as soon as it has exited, but node's other threads share its descriptor
  // table until the last of them is gone: wait for those too (the kernel's order, not a timing).
  while ((await state(pid!)) !== 'Z' || (await readdir(`/proc/${pid}/task`).catch(() => [])).length > 1) await new Promise((r) => setTimeout(r, 20));
  // The pid still exists (kill(pid, 0) succeeds): a liveness test by pid would refuse here.
  process.kill(pid!, 0);
  assert.equal(await spoolOwner(dir), undefined);
  const release = await lockSpool(dir, { graceMs: 0 });
  assert.equal(await readFile(`${dir}/lock`, 'utf8'), `${process.pid}\n`);
  await release();
});

test('a process that inherited the lock keeps it after its parent dies (-9), until it exits too', async (t) => {
  const dir = await tempDir(t);
  const [pid, kid] = await runLocked(t, `exec ${NODE} ${JSON.stringify(dir)} inherit`);
  process.kill(pid!, 'SIGKILL');
  while ((await state(pid!)) !== 'Z' && (await state(pid!)) !== '') await new Promise((r) => setTimeout(r, 20));
  await assert.rejects(lockSpool(dir, { graceMs: 0 }), new RegExp(`in use by process ${kid}: it holds the lock on .* taken by process ${pid}, which is gone`));
  assert.equal(await spoolOwner(dir), pid);
  // A start waits for such a process (an acceptor on its way out) and gets the lock once it is gone.
  const taking = lockSpool(dir, { graceMs: 120_000 });
  process.kill(kid!, 'SIGKILL');
  const release = await taking;
  await release();
});
