// A slow drip from one login: the early warning (webhook, log, dashboard API, /metrics) comes
// when the login reaches half its breaker's threshold — while its mail is still accepted — once
// per source and hour; the trip comes later, at the threshold itself.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dialog } from '../harness/dial.ts';
import { startDeferringServer } from './deferring-server.ts';
import { startWebhook } from '../guard/helpers.ts';
import { GuardSchema } from '../../src/config/guard-schema.ts';

const DRIP = 'drip@example.org';
const HOUR = 3_600_000;

async function sendOne(c: Dialog, to: string): Promise<number> {
  await c.say(`MAIL FROM:<${DRIP}>`).expect('250');
  const r = await c.say(`RCPT TO:<${to}>`).read();
  if (r.code !== 250) {
    await c.say('RSET').expect('250');
    return r.code;
  }
  await c.say('DATA').expect('354');
  c.send(`Subject: hello\r\n\r\nhello\r\n.\r\n`);
  await c.expect('250 2.0.0');
  return 250;
}

test('early warning: a login at half its breaker threshold is announced before the trip, once, on the webhook, the log, the dashboard API and /metrics', async (t) => {
  const hook = await startWebhook(t);
  const options = { baseline: { minimum: 10 }, alerts: { webhook: hook.url, postmaster: false } };
  const s = GuardSchema.parse(options);
  const limit = s.baseline.minimum;
  const warnAt = Math.ceil(s.earlyWarning.share * limit);
  const hourAtStart = Math.floor(Date.now() / HOUR);
  const { srv, c, base, auth } = await startDeferringServer(t, { users: [[DRIP, 'drip password 1']], guard: options });

  // Up to the mark: accepted, and no alert of any kind.
  for (let i = 1; i < warnAt; i++) assert.equal(await sendOne(c, `r${i}@d${i}.example`), 250);
  assert.equal(hook.received.length, 0);
  // The mark: still accepted, and the warning arrives while the login can still send.
  assert.equal(await sendOne(c, `r${warnAt}@d${warnAt}.example`), 250);
  const [warning] = await hook.waitFor(1);
  assert.deepEqual([warning!.type, warning!.breaker, warning!.kind], ['early-warning', `login:${DRIP}`, 'baseline']);
  if (Math.floor(Date.now() / HOUR) === hourAtStart) assert.deepEqual(warning!.figures, { rate: warnAt, baseline: 0, limit, warnAt: s.earlyWarning.share * limit });
  assert.equal(srv.logs.filter((l) => l.event === 'breaker' && l.state === 'open').length, 0, 'the warning came before any trip');

  // On to the limit: accepted, and no second warning in the same hour.
  for (let i = warnAt + 1; i <= limit; i++) assert.equal(await sendOne(c, `r${i}@d${i}.example`), 250);
  // One more: refused, and the breaker trips.
  assert.equal(await sendOne(c, 'over@dover.example'), 451);
  c.close();
  const [, open] = await hook.waitFor(2);
  assert.equal(open!.type, 'breaker-open');
  const states = srv.logs.filter((l) => l.event === 'breaker').map((l) => `${String(l.state)} ${String(l.breaker)}`);
  assert.ok(states.indexOf(`warning login:${DRIP}`) < states.indexOf(`open login:${DRIP}`), states.join(', '));
  assert.equal(hook.received.filter((a) => a.type === 'early-warning').length, 1);

  // The dashboard's data and the metric (counted by the server's watch on the shared store).
  const api = (await (await fetch(`${base}/api/breakers`, auth)).json()) as { warnings: Array<{ name: string; kind: string }> };
  assert.deepEqual(api.warnings.map((w) => [w.name, w.kind]), [[`login:${DRIP}`, 'baseline']]);
  // The watch looks at the store every 500 ms: wait for the count, within a bound.
  let metrics = '';
  for (const end = Date.now() + 10_000; !/^mailward_guard_warnings_total\{kind="baseline"\} 1$/m.test(metrics); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > end) assert.fail(`no warning counted in /metrics:\n${metrics}`);
    metrics = await (await fetch(`${base}/metrics`, auth)).text();
  }
});
