// The queue-growth alarm on a real server: logged-in mail to a domain that cannot be resolved
// stays queued (deferred), the queue grows faster than the floor, and the alarm goes out on the
// guard's channels — webhook, log, postmaster mail — once for the episode, however many more
// messages follow; when the growth stops, one recovery line. The dashboard API, /metrics and
// `guard status` show the figures.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dialog } from '../harness/dial.ts';
import { startDeferringServer } from './deferring-server.ts';
import { startWebhook } from '../guard/helpers.ts';
import { openStore } from '../../src/app/store.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { guardSettings } from '../../src/config/guard-schema.ts';
import { queueGrowthLine } from '../../src/shells/cli/guard.ts';

const USER = 'alice@example.org';

async function sendOne(c: Dialog, to: string): Promise<void> {
  await c.say(`MAIL FROM:<${USER}>`).expect('250');
  await c.say(`RCPT TO:<${to}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(`Subject: hello\r\n\r\nhello\r\n.\r\n`);
  await c.expect('250 2.0.0');
}

test('queue growth: a queue growing past the floor raises one alarm per episode (webhook, log, postmaster, dashboard, metrics, guard status) and one recovery line', async (t) => {
  const hook = await startWebhook(t);
  // Sampled every 100 ms over 40 s: three messages within the window (270/h) pass the floor; the
  // alert mail to the postmaster (one message, 90/h, delivered at once) does not, and a window with
  // at most two messages (180/h) ends the episode — 40 s after the first message unless more
  // follow. The window is what a loaded 2-core machine needs to send six messages (seen: over 20 s
  // at load 15 with a busy loop beside); the dashboard is read as soon as the alarm is out.
  const queueGrowth = { interval: '100ms', window: '40s', floor: 250, ceiling: 1000 };
  const options = { queueGrowth, alerts: { webhook: hook.url } };
  // Remote recipients are deferred and stay queued for an hour.
  const { srv, c, base, auth } = await startDeferringServer(t, {
    users: [
      [USER, 'alice password 1'],
      ['postmaster@example.org', 'pm password 1'],
    ],
    guard: options,
  });

  const growthAlerts = (): Array<Record<string, unknown>> => hook.received.filter((a) => a.breaker === 'queue-growth');
  const waitForGrowthAlerts = async (n: number): Promise<Array<Record<string, unknown>>> => {
    while (growthAlerts().length < n) await hook.waitFor(hook.received.length + 1, 60_000);
    return growthAlerts();
  };

  for (let i = 1; i <= 3; i++) await sendOne(c, `r${i}@nowhere${i}.example`);
  const [alarm] = await waitForGrowthAlerts(1);
  assert.equal(alarm!.type, 'alarm');
  assert.equal(alarm!.kind, 'growth');
  assert.match(String(alarm!.reason), /^QUEUE GROWING: the queue grew by [\d,]+ messages an hour over the last 40s \(usually 0\/h; alarm above 250\/h\), to \d+ messages$/);
  assert.match(String(alarm!.text), /ALARM queue-growth: QUEUE GROWING/);
  const line = await srv.waitForLog((l) => l.event === 'breaker' && l.state === 'alarm' && l.breaker === 'queue-growth');
  assert.match(String(line.see), /mailward queue list --summary/);

  // While it lasts: the dashboard's summary and /metrics show the alarm.
  const summary = (await (await fetch(`${base}/api/summary`, auth)).json()) as { queueGrowth: { alarm?: { kind: string } } | null; queue: { depth: number } };
  assert.equal(summary.queueGrowth?.alarm?.kind, 'growth');
  assert.ok(summary.queue.depth >= 3, JSON.stringify(summary.queue));
  assert.match(await (await fetch(`${base}/metrics`, auth)).text(), /^mailward_queue_growth\{figure="alarm"\} 1$/m);

  // The episode goes on: more mail, no second alarm.
  for (let i = 4; i <= 6; i++) await sendOne(c, `r${i}@nowhere${i}.example`);
  c.close();

  // The growth stops: one recovery line, and still only the one alarm.
  const [, recovered] = await waitForGrowthAlerts(2);
  assert.equal(recovered!.type, 'recovered');
  assert.match(String(recovered!.reason), /^the queue is back to normal after [\d,]+ (s|min): \d+ messages, growing /);
  // One alarm for the episode, then its recovery. (What comes after is a new episode: on a slow
  // machine the recovery's own postmaster mail, queued for a moment, can tip a 40 s window again.)
  assert.deepEqual(growthAlerts().slice(0, 2).map((a) => a.type), ['alarm', 'recovered']);
  const growthLines = srv.logs.filter((l) => l.event === 'breaker' && l.breaker === 'queue-growth');
  const recoveredAt = growthLines.findIndex((l) => l.state === 'recovered');
  assert.ok(recoveredAt > 0, 'a recovery line');
  assert.equal(growthLines.slice(0, recoveredAt).filter((l) => l.state === 'alarm').length, 1, 'one alarm line for the episode');
  const mails = await srv.waitForMail('postmaster@example.org', 2);
  assert.ok(mails.some((m) => /^Subject: \[mailward mx\.example\.org\] ALARM queue-growth: QUEUE GROWING/m.test(m)), mails.join('\n---\n'));
  assert.ok(mails.some((m) => /^Subject: \[mailward mx\.example\.org\] recovered queue-growth: /m.test(m)), mails.join('\n---\n'));

  // `guard status` reads the server's last sample from the store.
  const store = await openStore(srv.config, silentLogger());
  t.after(() => store.close());
  const guard = new OutboundGuard({ store, clock: Date.now, log: silentLogger(), hostname: srv.config.hostname, settings: guardSettings(srv.config.checks) });
  const status = await guard.status();
  assert.ok(status.queueGrowth && status.queueGrowth.messages >= 6, JSON.stringify(status.queueGrowth));
  assert.match(queueGrowthLine(status, guard.settings), /^\d+ messages \(0 held\) at \S+, [+-]?[\d,]+\/h, baseline \d+\/h, alarm above 250\/h or at 1,000 messages( {2}— ALARM since \S+: .+)?$/);
});
