// The `mailward` command as an operator runs it: a real process, real config files, real exit
// codes and messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command, CommanderError } from 'commander';
import { buildProgram } from '../../src/shells/cli/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

function mailward(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), ...args], { cwd: ROOT, input: input ?? '', encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function setup(t: { after(fn: () => void): void }, extra = ''): { dir: string; config: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'mailward.yaml');
  writeFileSync(config, `domains: [example.org]\ndataDir: data\nlisteners:\n  mx: { kind: mx, port: 0 }\n${extra}`);
  return { dir, config };
}

test('cli: --help on every command, found by walking the command tree', async () => {
  const paths: string[][] = [[]];
  const walk = (c: Command, prefix: string[]): void => {
    for (const sub of c.commands) {
      paths.push([...prefix, sub.name()]);
      walk(sub, [...prefix, sub.name()]);
    }
  };
  walk(buildProgram(), []);
  for (const name of ['serve', 'check-config', 'user add', 'alias add', 'queue list', 'store migrate', 'relay-test']) {
    assert.ok(paths.some((p) => p.join(' ') === name), `the CLI has "${name}"`);
  }
  for (const p of paths) {
    let out = '';
    const program = buildProgram({ writeOut: (x) => (out += x), writeErr: (x) => (out += x) });
    await assert.rejects(program.parseAsync(['node', 'mailward', ...p, '--help']), (e: CommanderError) => e.exitCode === 0, `${p.join(' ')} --help exits 0`);
    assert.match(out, new RegExp(`^Usage: mailward${p.length ? ' ' + p.join(' ') : ''} `), `${p.join(' ')} --help prints its usage`);
    assert.match(out, /\n {2}-h, --help +display help for command\n/);
  }
  // And once as a real process, as an operator runs it.
  const r = mailward(['user', 'add', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: mailward user add \[options\] <address>/);
  // The sendmail entry point is listed, and its own help is commander's, not a sendmail usage error.
  const top = mailward(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /\n {2}sendmail \[args\.\.\.\] +sendmail\(8\) for local programs/);
  const own = mailward(['sendmail', '--help']);
  assert.equal(own.code, 0, own.stderr);
  assert.match(own.stdout, /^Usage: mailward sendmail \[options\] \[args\.\.\.\]/);
});

test('cli: check-config names the key, the value and the fix, exit 2', (t) => {
  const { config } = setup(t, 'relay:\n  trustedNetworks: [127.0.0.0/1]\nlimits:\n  maxRecipent: 5\n');
  const r = mailward(['check-config', '--config', config]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `config error at limits.maxRecipent: unknown key "maxRecipent" (in ${config}). Fix: remove it or correct the spelling; the known keys are in examples/mailward.yaml\n`,
  );
  const { config: c2 } = setup(t, 'relay:\n  trustedNetworks: [0.0.0.0/0]\n');
  const r2 = mailward(['check-config', '--config', c2]);
  assert.equal(r2.code, 2);
  assert.equal(r2.stderr, `config error at relay.trustedNetworks[0]: "0.0.0.0/0" trusts every address as a relay network (in ${c2}). Fix: list only your own hosts, e.g. 10.0.0.5/32\n`);
  const { config: c3 } = setup(t, 'pipeline:\n  rcpt: [recipient, greylisting]\n');
  const r3 = mailward(['check-config', '--config', c3]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /^config error at pipeline\.rcpt\[1\] \(listener mx\): there is no check named "greylisting" \(in .*\)\. Fix: use one of: recipient, permit-login, .*greylist/);
  const { config: c4 } = setup(t, 'pipeline:\n  rcpt: [recipient, greylist]\nchecks:\n  greylist: { delay: soon }\n');
  const r4 = mailward(['check-config', '--config', c4]);
  assert.equal(r4.code, 2);
  assert.match(r4.stderr, /^config error at checks\.greylist\.delay: /);
});

test('cli: check-config on a good file, and config show', (t) => {
  const { dir, config } = setup(t);
  const r = mailward(['check-config', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `config OK: ${config}\n  domains: example.org\n  listeners: mx (mx) on 127.0.0.1:0\n  data: ${path.join(dir, 'data')}\n`);
  const s = mailward(['config', 'show', '--config', config]);
  assert.equal(s.code, 0);
  assert.match(s.stdout, /bareLineEndings: reject/);
  assert.match(s.stdout, /trustedNetworks: \[\]/);
});

test('cli: a missing config file is an error, not the default', () => {
  const r = mailward(['check-config', '--config', '/nonexistent/mailward.yaml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^config error at \(top level\): the file "\/nonexistent\/mailward\.yaml" does not exist/);
});

test('cli: users and aliases', (t) => {
  const { config } = setup(t);
  assert.deepEqual(mailward(['user', 'add', 'Alice@Example.org', '--config', config, '--password-stdin'], 'a long password\n'), { code: 0, stdout: 'added Alice@example.org\n', stderr: '' });
  const short = mailward(['user', 'add', 'bob@example.org', '--config', config, '--password-stdin'], 'short\n');
  assert.equal(short.code, 2);
  assert.equal(short.stderr, 'mailward: the password is 5 characters long; use at least 10\n');
  const foreign = mailward(['user', 'add', 'eve@example.net', '--config', config, '--password-stdin'], 'a long password\n');
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, /^mailward: .*example\.net.*domains/);
  const bad = mailward(['user', 'add', 'not an address', '--config', config, '--password-stdin'], 'a long password\n');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^mailward: address "not an address" is not a valid address/);
  assert.equal(mailward(['user', 'list', '--config', config]).stdout, 'alice@example.org\n');
  assert.equal(mailward(['user', 'passwd', 'alice@example.org', '--config', config, '--password-stdin'], 'another long one\n').code, 0);
  assert.equal(mailward(['alias', 'add', 'team@example.org', 'alice@example.org', 'friend@example.net', '--config', config]).code, 0);
  assert.equal(mailward(['alias', 'list', '--config', config]).stdout, 'team@example.org -> alice@example.org, friend@example.net\n');
  assert.equal(mailward(['alias', 'del', 'team@example.org', '--config', config]).code, 0);
  const gone = mailward(['alias', 'del', 'team@example.org', '--config', config]);
  assert.equal(gone.code, 1);
  assert.equal(gone.stderr, 'mailward: there is no alias team@example.org; see "mailward alias list"\n');
  assert.equal(mailward(['user', 'del', 'alice@example.org', '--config', config]).stdout, 'deleted alice@example.org\n');
  assert.equal(mailward(['user', 'list', '--config', config]).stdout, '');
});

test('cli: queue list on an empty queue, queue show of an unknown id', (t) => {
  const { config } = setup(t);
  const r = mailward(['queue', 'list', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /0 message\(s\) queued\n$/);
  const s = mailward(['queue', 'show', '1k8fn2k50f5t0l8a1', '--config', config]);
  assert.equal(s.code, 1);
  assert.equal(s.stderr, 'mailward: no queued message "1k8fn2k50f5t0l8a1"; see "mailward queue list"\n');
});

test('cli: an unknown command is a usage error', () => {
  const r = mailward(['frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});
