// The shipped systemd unit: `mailward systemd-unit` prints contrib/mailward.service exactly, it
// carries the hardening the install guide promises, and systemd's own `systemd-analyze verify`
// accepts it with no warning. systemd need not be PID 1 for verify; the program must be
// installed (Debian: systemd), and a missing one fails the test rather than skipping it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, runMailward } from '../harness/cli.ts';
import { runOwned } from '../harness/processes.ts';

async function verify(t: TestContext, unit: string): Promise<{ code: number | null; warnings: string[] }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'mailward.service');
  writeFileSync(file, unit);
  const run = await runOwned(t, 'systemd-analyze', ['verify', file], { timeoutMs: 120_000 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') assert.fail('systemd-analyze is not installed: apt-get install systemd (.ci/run does)');
    throw err;
  });
  // Only what it says about this unit: on a machine without systemd as PID 1 it may remark on others.
  const warnings = `${run.stdout}\n${run.stderr}`.split('\n').filter((l) => l.includes('mailward.service'));
  return { code: run.code, warnings };
}

/** A unit whose ExecStart and data folder exist here (verify checks that the program is executable). */
async function localUnit(t: TestContext): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-unit-bin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const exec = path.join(dir, 'mailward');
  writeFileSync(exec, '#!/bin/sh\nexit 0\n');
  chmodSync(exec, 0o755);
  const out = await runMailward(['systemd-unit', '--exec', exec, '--data-dir', path.join(dir, 'data'), '--config-file', path.join(dir, 'mailward.yaml')]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout;
}

test('systemd unit: the command prints contrib/mailward.service, with its hardening', async () => {
  const out = await runMailward(['systemd-unit']);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, readFileSync(path.join(ROOT, 'contrib/mailward.service'), 'utf8'), 'regenerate it: mailward systemd-unit > contrib/mailward.service');
  for (const line of [
    'User=mailward',
    'ExecStart=/usr/local/bin/mailward serve --config /etc/mailward/mailward.yaml',
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'ProtectSystem=strict',
    'ReadWritePaths=/var/lib/mailward',
    'StateDirectory=mailward',
    'NoNewPrivileges=yes',
    'PrivateTmp=yes',
    'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    'AmbientCapabilities=CAP_NET_BIND_SERVICE',
    'UMask=0027',
    // /run/mailward for the sendmail socket every local user reaches (sendmail.socket's default under the unit).
    'RuntimeDirectory=mailward',
    'RuntimeDirectoryMode=0755',
  ]) {
    assert.ok(out.stdout.split('\n').includes(line), `missing ${line}`);
  }
});

test('systemd unit: systemd-analyze verify accepts it without a warning, and does catch a broken one', async (t) => {
  const unit = await localUnit(t);
  const ok = await verify(t, unit);
  assert.deepEqual(ok, { code: 0, warnings: [] });
  // The same check on a unit with a mistyped key and a missing program: it must not pass.
  const broken = await verify(t, unit.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes').replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/mailward'));
  assert.notEqual(broken.code, 0);
  assert.ok(broken.warnings.some((w) => w.includes('NoNewPrivilege')), broken.warnings.join('\n'));
});

test('systemd unit: paths that systemd would split or expand are refused', async () => {
  const out = await runMailward(['systemd-unit', '--data-dir', '/srv/mail data']);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /--data-dir "\/srv\/mail data": give an absolute path without spaces/);
});
