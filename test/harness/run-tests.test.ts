// The suite's runner (scripts/run-tests.ts, behind `npm test`): the files given replace the
// default list, a file that leaves a process running fails the run with that process's command
// line, and a file that hangs is ended by the per-file time limit with everything it owns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT } from './cli.ts';
import { alive, runOwned } from './processes.ts';

const fixture = (name: string): string => path.join('test/harness/fixtures', `${name}.fixture.ts`);

const runner = (t: Parameters<typeof runOwned>[0], files: string[], env: Record<string, string> = {}) =>
  runOwned(t, process.execPath, ['--import', 'tsx', 'scripts/run-tests.ts', ...files], { cwd: ROOT, env: { ...process.env, ...env }, timeoutMs: 240_000 });

test('run-tests: only the files given run; a clean pass exits 0', async (t) => {
  const r = await runner(t, [fixture('passes')]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /━━━ test\/harness\/fixtures\/passes\.fixture\.ts: ok/);
  assert.match(r.stdout, /^1 file\(s\) in [\d.]+ s: 1 passed, 0 failed$/m);
});

test('run-tests: a file that leaves a process behind fails the run, which names and kills it', async (t) => {
  const r = await runner(t, [fixture('leaves-orphan'), fixture('passes')]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const m = /^LEFT RUNNING after test\/harness\/fixtures\/leaves-orphan\.fixture\.ts: pid (\d+): sleep 1001$/m.exec(r.stdout);
  assert.ok(m, r.stdout);
  assert.equal(alive(Number(m[1])), false, 'the runner killed it');
  assert.match(r.stdout, /2 passed|1 passed, 1 failed/);
  assert.match(r.stdout, /FAILED test\/harness\/fixtures\/leaves-orphan\.fixture\.ts \(left 1 process\(es\) running\)/);
});

test('run-tests: a hanging file is ended by the per-file time limit, with the process it owns', async (t) => {
  const r = await runner(t, [fixture('hangs')], { MAILWARD_TEST_FILE_TIMEOUT_S: '20' });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /hangs\.fixture\.ts: TIMED OUT after 20 s/);
  // Its owned sleeper went with it: by the file's exit hook, or else named and killed by the sweep.
  const owned = /owned (\d+)/.exec(r.stdout);
  if (owned) assert.equal(alive(Number(owned[1])), false);
  assert.doesNotMatch(r.stdout, /LEFT RUNNING.*sleep 1002/, 'the exit hook of the file killed its own group');
});

test('run-tests: a file may lift the per-test limit with a `// test-timeout: N s` line; without it the default bounds the file', async (t) => {
  // The same slow test, once with the line and once without (the default lowered to 1 s here).
  const r = await runner(t, [fixture('slow-declared'), fixture('slow-undeclared')], { MAILWARD_TEST_TIMEOUT_MS: '1000' });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /━━━ test\/harness\/fixtures\/slow-declared\.fixture\.ts: ok/);
  assert.match(r.stdout, /━━━ test\/harness\/fixtures\/slow-undeclared\.fixture\.ts: FAILED/);
});
