// The process harness: what a test spawns is gone after the test, grandchildren included, and
// a test process that exits (a timed-out file, a crash) takes its groups with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { alive, runOwned, spawnOwned, stopGroup } from './processes.ts';

/** Waits until `pid` is gone: SIGKILL is delivered at once, but reaping an orphan takes init a moment. */
async function gone(pid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (alive(pid)) {
    if (Date.now() > deadline) assert.fail(`process ${pid} still runs 30 s after its group was killed`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A shell that starts a background sleeper (a grandchild of ours) and prints its pid. */
function shellWithGrandchild(owner: Parameters<typeof spawnOwned>[0]): { child: ReturnType<typeof spawnOwned>; grandchild: Promise<number> } {
  const child = spawnOwned(owner, 'sh', ['-c', 'sleep 1000 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const grandchild = new Promise<number>((resolve) => createInterface({ input: child.stdout! }).once('line', (l) => resolve(Number(l))));
  return { child, grandchild };
}

test('processes: the owner kills the whole group in its after hook, grandchildren too', async (t) => {
  let pids: number[] = [];
  await t.test('a test that leaves a shell and its background job running', async (t2) => {
    const { child, grandchild } = shellWithGrandchild(t2);
    pids = [child.pid!, await grandchild];
    assert.ok(pids.every(alive));
  });
  for (const pid of pids) await gone(pid);
});

test('processes: stopGroup asks the leader with SIGTERM, then SIGKILLs what the leader left behind', async () => {
  const { child, grandchild } = shellWithGrandchild(undefined);
  const orphan = await grandchild;
  await stopGroup(child, 'SIGTERM', 30_000);
  assert.equal(child.signalCode, 'SIGTERM');
  await gone(orphan);
});

test('processes: a test process that exits without its after hooks (killed by a time-out) takes its groups along', async (t) => {
  // The child owns a shell with a background job, prints both pids, and exits at once.
  const script = `
    import { spawnOwned } from ${JSON.stringify(new URL('./processes.ts', import.meta.url).href)};
    import { createInterface } from 'node:readline';
    const c = spawnOwned(undefined, 'sh', ['-c', 'sleep 1000 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: c.stdout }).once('line', (l) => { console.log(c.pid + ' ' + l); process.exit(3); });
  `;
  const r = await runOwned(t, process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeoutMs: 120_000 });
  assert.equal(r.code, 3, r.stderr);
  const pids = r.stdout.trim().split(' ').map(Number);
  assert.equal(pids.length, 2);
  for (const pid of pids) await gone(pid);
});

test('processes: runOwned collects output and exit code, and its time-out kills the group', async (t) => {
  const ok = await runOwned(t, 'sh', ['-c', 'cat; echo err >&2; exit 4'], { input: 'in' });
  assert.deepEqual([ok.code, ok.stdout, ok.stderr], [4, 'in', 'err\n']);
  const r = await runOwned(t, 'sh', ['-c', 'sleep 1000 & echo $!; wait'], { timeoutMs: 2000 });
  assert.equal(r.signal, 'SIGKILL');
  // On a very busy machine the shell may not have got to its echo before the time-out.
  if (r.stdout.trim() !== '') await gone(Number(r.stdout.trim()));
});
