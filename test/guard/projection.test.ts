// The quota's projection: the last hour's rate carried over the window warns before the quota's
// warning mark (quota.project) or the budget (pricePer1000 + budget) is reached, once per window,
// on a real SQLite store with a clock the test moves, through the guarded transport.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { guardedTransport } from '../../src/delivery/guarded-transport.ts';
import { makeEnv } from '../checks/env.ts';
import { queued, recordingTransport, startWebhook } from './helpers.ts';

async function guarded(t: TestContext, quota: Record<string, unknown>) {
  const hook = await startWebhook(t);
  const te = await makeEnv(t);
  const guard = new OutboundGuard({ store: te.store, clock: te.clock, log: te.env.log, hostname: 'mx.example.org', settings: GuardSchema.parse({ quota, alerts: { webhook: hook.url, postmaster: false } }) });
  const remote = guardedTransport(recordingTransport(), guard, te.env.log);
  const send = async (n: number): Promise<void> => {
    const msg = queued({ from: 'alice@example.org', to: Array.from({ length: n }, (_, i) => `r${i}@far${i}.example`) });
    await remote.deliver(msg, msg.envelope.recipients.map((_, i) => i));
  };
  return { ...te, hook, send };
}

test('quota projection: the last hour at 40/h projects 960 a day, warned long before 800 of 1000 are sent', async (t) => {
  const { hook, send, logs } = await guarded(t, { limit: 1000, window: '24h', project: true });
  for (let i = 0; i < 3; i++) await send(10);
  assert.equal(hook.received.length, 0, '30 in the hour is 720 a day: under the warning mark of 800');
  await send(10);
  const [w] = await hook.waitFor(1);
  assert.equal(w!.kind, 'quota-projection');
  assert.equal(w!.reason, "at the last hour's rate (40 recipients) 960 of 1000 would be sent in 24 h: the quota's warning mark (800) would be passed");
  await send(10);
  assert.equal(logs.filter((l) => l.event === 'breaker' && l.kind === 'quota-projection').length, 1, 'once per window');
});

test('budget projection: at 0.10 per 1,000 and a budget of 10 a day, 4,000 an hour warns (9.60 projected, 80% is 8)', async (t) => {
  const { hook, send } = await guarded(t, { limit: 1_000_000, window: '24h', pricePer1000: 0.1, budget: 10 });
  await send(3000);
  assert.equal(hook.received.length, 0, '3,000 an hour is 7.20 a day: under 80% of the budget');
  await send(1000);
  const [w] = await hook.waitFor(1);
  assert.equal(w!.kind, 'budget-projection');
  assert.equal(w!.reason, "at the last hour's rate the smarthost would cost 9.60 in 24 h, over 80% of the budget 10 (spent so far 0.40)");
  assert.deepEqual(w!.figures, { lastHour: 4000, projected: 96000, limit: 1_000_000, used: 4000, cost: 9.6, budget: 10 });
});
