// `mailward guard status | release | trip` against the store a config file names: the figures of
// every breaker and limit, releasing and tripping by name, and the operator's errors.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Command } from 'commander';
import { pino } from 'pino';
import { registerGuard } from '../../src/shells/cli/guard.ts';
import { loadConfig } from '../../src/config/load.ts';
import { guardSettings, rateLimitSettings } from '../../src/config/guard-schema.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { RateLimits } from '../../src/guard/limits.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { makeClock } from '../checks/env.ts';
import { Spool } from '../../src/queue/spool.ts';
import { envelope, queueMessage } from '../queue/helpers.ts';

const YAML = `
hostname: mx.example.org
domains: [example.org]
dataDir: ./data
pipeline:
  rcpt: [recipient, rate-limit, outbound-guard]
checks:
  rate-limit:
    rules:
      - { name: login-hour, key: login, direction: outbound, window: 1h, limit: 200 }
      - { name: conn, count: connections, key: network, window: 1s, limit: 5 }
  outbound-guard:
    baseline: { factor: 10, minimum: 3 }
    quota: { limit: 54000, window: 24h, warnAt: 80%, stopAt: 95% }
    exempt: [login:newsletter@example.org]
`;

async function setup(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'mailward-guard-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'mailward.yaml');
  await writeFile(file, YAML);
  const config = loadConfig(file);
  const clock = makeClock();
  const out: string[] = [];
  const run = async (...args: string[]): Promise<string> => {
    out.length = 0;
    const program = new Command('mailward').option('-c, --config <file>').exitOverride();
    registerGuard(program, { out: (s) => void out.push(s), clock });
    await program.parseAsync(['-c', file, 'guard', ...args], { from: 'user' });
    return out.join('');
  };
  // Traffic as the server would count it, through the same store file.
  const store = new SqliteStore({ path: config.paths.store }, pino({ level: 'silent' }));
  t.after(() => store.close());
  const guard = new OutboundGuard({ store, clock, log: pino({ level: 'silent' }), hostname: 'mx.example.org', settings: guardSettings(config.checks) });
  const limits = new RateLimits(store, rateLimitSettings(config.checks).rules, pino({ level: 'silent' }));
  return { run, guard, limits, clock, config };
}

test('guard status: breakers, breaker rules, quota, sources and rate limits with their figures', async (t) => {
  const { run, guard, limits, clock } = await setup(t);
  const alice = { login: 'alice@example.org', sender: 'alice@example.org', client: '192.0.2.10' };
  for (let i = 0; i < 4; i++) {
    await guard.relayedRecipient({ ...alice, domain: `d${i}.example` });
    await limits.consume('recipients', { listener: 'submission', clientAddress: alice.client, login: alice.login, direction: 'outbound' }, clock());
  }
  await guard.admitDelivery({ mailFrom: 'bob@example.org', client: { address: '192.0.2.20', login: 'bob@example.org' } }, 1234);
  const text = await run('status');
  assert.equal(
    text,
    [
      'outbound guard at 2026-01-05T12:00:00Z',
      '',
      'breakers',
      '  global  closed (outbound mail flows)',
      '  login:alice@example.org  OPEN since 2026-01-05T12:00:00Z (baseline)',
      '      4 relayed recipients in the last hour, limit 3 (10 × baseline 0, at least 3)',
      '      reopen: mailward guard release login:alice@example.org',
      '',
      'breaker rules',
      '  baseline        trips a login/sender/client above 10 × its hourly baseline (half-life 1d), at least 3 recipients an hour',
      '  domains         trips a source above 50 distinct recipient domains in a clock hour',
      '  trusted-network trips a client relaying without a login above 300 recipients in 1h',
      '  bounces         trips a sender above 100 bounces in 1h',
      "  aggregate       trips for all non-exempt sources together above 5 × the installation's hourly baseline, at least 200 recipients or 150 new domains an hour, or 50% permanent failures of 100+ attempts",
      '  exempt          login:newsletter@example.org',
      '',
      'quota (global outbound)',
      '  1,234 of 54,000 recipients in 1d (2.3%); warning at 43,200, hard stop at 51,300',
      '',
      'sources relaying this hour (rate / limit, baseline, distinct domains)',
      '  login:alice@example.org  4 / 3, baseline 0.00/h, 4 domains',
      '',
      'all sources together (aggregate: rate / limit, baseline)',
      '  recipients   3 / 200, baseline 0.00/h',
      '  new domains  4 / 150, baseline 0.00/h',
      '  deliveries   0 permanent failures of 0 answered attempts',
      '',
      'queue growth',
      '  no sample yet (the running server samples every 1m); alarm above max(500/h, 5 × baseline) over 15m, or at 10,000 messages',
      '',
      'early warnings (this hour and the last)',
      "  2026-01-05T12:00:00Z  login:alice@example.org  2 of 3 (50% of the breaker's threshold, baseline) — 2 relayed recipients in the last hour, limit 3 (10 × baseline 0, at least 3)",
      '',
      'rate limits',
      '  login-hour  200 recipients per login in 1h, outbound',
      '      alice@example.org  4 / 200',
      '  conn  5 connections per network in 1s',
      '',
    ].join('\n'),
  );
  const json = JSON.parse(await run('status', '--json')) as { breakers: Array<{ name: string }>; quota: { used: number }; limits: Array<{ rule: { name: string }; top: unknown[] }> };
  assert.deepEqual(json.breakers.map((b) => b.name), ['login:alice@example.org']);
  assert.equal(json.quota.used, 1234);
  assert.deepEqual(json.limits.map((l) => [l.rule.name, l.top]), [['login-hour', [{ subject: 'alice@example.org', count: 4 }]], ['conn', []]]);
});

test('guard release and trip: by name, with the state they had; bad names are usage errors', async (t) => {
  const { run, guard } = await setup(t);
  assert.equal(await run('trip', 'global', '--reason', 'holding everything while we look'), 'global is open; reopen it with: mailward guard release global\n');
  assert.equal(await run('trip', 'global'), 'global was open already\n');
  assert.equal((await guard.breakers.get('global'))?.reason, 'holding everything while we look');
  assert.equal(
    await run('release', 'global'),
    [
      'released global (open since 2026-01-05T12:00:00.000Z, manual: holding everything while we look)',
      "new outbound mail goes out again; mail held while the breaker was open stays on hold (it is probably the attack's):",
      '  0 message(s) on hold',
      '  look at it:     mailward queue list --state held',
      '  send some:      mailward queue release ID...   (or --sender ADDRESS, or --all)',
      '  delete it:      mailward queue delete --state held   (or ID...)',
      '',
    ].join('\n'),
  );
  assert.equal(await run('release', 'Login:Carol@Example.org'), 'login:carol@example.org was not open; its recent counts were cleared\n');
  await assert.rejects(run('release', 'alice'), { message: '"alice" is not a breaker name; write "global", "aggregate", login:<login>, sender:<address> or client:<address>, as guard status shows them', exitCode: 2 });
});

test('guard release: counts the mail on hold in the spool (no server running) and names the commands for the source', async (t) => {
  const { run, guard, config } = await setup(t);
  const spool = await Spool.open(config.paths.spool, { log: pino({ level: 'silent' }), fsync: false });
  const ids: string[] = [];
  for (const from of ['alice@example.org', 'alice@example.org', 'bob@example.org']) {
    const id = await queueMessage(spool, envelope({ mailFrom: from, recipients: [{ address: 'x@far.example', transport: 'remote' }] }), 'Subject: x\r\n\r\nx\r\n');
    ids.push(id);
  }
  // Two on hold, one still queued: only the held ones are counted.
  for (const id of ids.slice(0, 2)) assert.equal(await spool.move(id, 'queue', 'hold'), true);
  await spool.close();
  await guard.tripManually('login:alice@example.org', 'test');
  assert.equal(
    await run('release', 'login:alice@example.org'),
    [
      'released login:alice@example.org (open since 2026-01-05T12:00:00.000Z, manual: test)',
      "new outbound mail goes out again; mail held while the breaker was open stays on hold (it is probably the attack's):",
      '  2 message(s) on hold',
      '  look at it:     mailward queue list --state held',
      '  send some:      mailward queue release ID...   (or --sender ADDRESS, or --all)',
      '  delete it:      mailward queue delete --state held --login alice@example.org   (or ID...)',
      '',
    ].join('\n'),
  );
  // Not open, but mail is on hold: it is still said.
  assert.match(await run('release', 'global'), /^global was not open; its recent counts were cleared\nmail held earlier stays on hold:\n {2}2 message\(s\) on hold\n/);
});

test('guard status: says when the checks are in no pipeline', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mailward-guard-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'mailward.yaml');
  // The built-in pipeline places both checks; this config takes them out.
  await writeFile(file, 'domains: [example.org]\ndataDir: ./data\npipeline:\n  connect: []\n  rcpt: [recipient]\n  data: [sender-login, permit-login, spam]\n');
  const out: string[] = [];
  const program = new Command('mailward').option('-c, --config <file>').exitOverride();
  registerGuard(program, { out: (s) => void out.push(s), clock: makeClock() });
  await program.parseAsync(['-c', file, 'guard', 'status'], { from: 'user' });
  const text = out.join('');
  assert.match(text, /\n {2}none \(set checks\.outbound-guard\.quota\.limit to your smarthost's quota, e\.g\. 54000\)\n/);
  assert.match(text, /\n {2}login-hour {2}200 recipients per login in 1h, outbound\n {2}login-day {2}1000 recipients per login in 1d, outbound\n/);
  assert.match(text, /\nnote: the rate-limit check is in no pipeline, so its rules are not applied; add it to pipeline\.connect, pipeline\.rcpt and pipeline\.data \(where the defaults have it\)\n/);
  assert.match(text, /\nnote: the outbound-guard check is in no pipeline, so its breakers are not applied; add it to pipeline\.rcpt\n$/);
});

test('guard status: a bad guard setting is a config error naming it, even when the check is in no pipeline', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mailward-guard-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'mailward.yaml');
  await writeFile(file, 'domains: [example.org]\ndataDir: ./data\nchecks:\n  outbound-guard:\n    quota: { limit: 54000, stopAt: "120%" }\n');
  const program = new Command('mailward').option('-c, --config <file>').exitOverride();
  registerGuard(program, { out: () => undefined });
  await assert.rejects(program.parseAsync(['-c', file, 'guard', 'status'], { from: 'user' }), {
    name: 'ConfigError',
    message: `config error at checks.outbound-guard.quota.stopAt: "120%" is not a share of the limit (write a number above 0 and at most 1, or a percentage such as "80%") (got "120%") (in ${file}). Fix: see the "outbound-guard" check in examples/mailward.yaml`,
  });
});
