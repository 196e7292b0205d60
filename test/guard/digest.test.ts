// The daily digest of outbound volume per login: counted from the hourly counts the guard keeps
// over the 24 whole hours before now, sent as one alert-channel message (a real webhook here),
// by the server's daily job or by `mailward guard digest --send`, without waiting a day.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { pino } from 'pino';
import { registerGuard } from '../../src/shells/cli/guard.ts';
import { loadConfig } from '../../src/config/load.ts';
import { guardSettings } from '../../src/config/guard-schema.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { startDigestJob } from '../../src/guard/digest.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { makeClock } from '../checks/env.ts';
import { startWebhook } from './helpers.ts';

const HOUR = 3_600_000;

test('digest: the relayed recipients per login of the last 24 hours, one webhook message, from the CLI and from the daily job', async (t) => {
  const hook = await startWebhook(t);
  const dir = await mkdtemp(join(tmpdir(), 'mailward-digest-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'mailward.yaml');
  await writeFile(file, `hostname: mx.example.org\ndomains: [example.org]\ndataDir: ./data\nchecks:\n  outbound-guard:\n    alerts: { webhook: ${JSON.stringify(hook.url)}, postmaster: false }\n    digest: { hour: 7 }\n`);
  const config = loadConfig(file);
  const clock = makeClock();
  const store = new SqliteStore({ path: config.paths.store }, pino({ level: 'silent' }));
  t.after(() => store.close());
  const guard = new OutboundGuard({ store, clock, log: pino({ level: 'silent' }), hostname: 'mx.example.org', settings: guardSettings(config.checks) });

  // What the guard counted as mail was relayed: alice in three hours, bob in one, a sender
  // without a login (not a login: not in the digest), and alice 25 hours ago (outside).
  const now = clock();
  const hour = Math.floor(now / HOUR);
  await guard.baselines.record('login:alice@example.org', 5, (hour - 3) * HOUR);
  await guard.baselines.record('login:alice@example.org', 7, (hour - 1) * HOUR + 10);
  await guard.baselines.record('login:bob@example.org', 2, (hour - 24) * HOUR);
  await guard.baselines.record('sender:app@example.org', 40, (hour - 2) * HOUR);
  await guard.baselines.record('login:alice@example.org', 100, (hour - 25) * HOUR);
  // This hour is not finished: not counted yet.
  await guard.baselines.record('login:alice@example.org', 1, now);

  const out: string[] = [];
  const program = new Command('mailward').option('-c, --config <file>').exitOverride();
  registerGuard(program, { out: (s) => void out.push(s), clock });
  await program.parseAsync(['-c', file, 'guard', 'digest'], { from: 'user' });
  const to = new Date(hour * HOUR).toISOString();
  const shown = [`14 relayed recipient(s) from 2 login(s) in the 24 h to ${to}`, '  alice@example.org  12', '  bob@example.org  2', ''].join('\n');
  assert.equal(out.join(''), shown);
  assert.equal(hook.received.length, 0, 'showing sends nothing');

  out.length = 0;
  await program.parseAsync(['-c', file, 'guard', 'digest', '--send'], { from: 'user' });
  assert.equal(out.join(''), shown.replace(/\n$/, '\nsent on the alert channels\n'));
  const [sent] = await hook.waitFor(1);
  assert.equal(sent!.type, 'digest');
  assert.deepEqual(sent!.figures, { 'alice@example.org': 12, 'bob@example.org': 2 });
  assert.equal(sent!.reason, `14 relayed recipient(s) from 2 login(s) in the 24 h to ${to}`);

  // The daily job: nothing outside its hour; in it, once per day however often it checks.
  const job = startDigestJob({ store, alerter: guard.alerter, log: pino({ level: 'silent' }), hour: new Date(now).getUTCHours(), clock, intervalMs: 10 });
  t.after(() => job.stop());
  await hook.waitFor(2);
  await new Promise((r) => setTimeout(r, 200)); // twenty more checks in the same hour
  await guard.alerter.idle();
  assert.deepEqual(hook.received.map((a) => a.type), ['digest', 'digest']);
  assert.deepEqual(hook.received[1]!.figures, { 'alice@example.org': 12, 'bob@example.org': 2 });
});
