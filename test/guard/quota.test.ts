// The global outbound quota and the guarded transport, on a real SQLite store with a clock the
// test moves, around a transport that records what reaches it: the warning, then the hard stop
// that trips the global breaker and holds remote mail; release; the window sliding; refunds of
// what never left; held sources; a store that cannot be read; the RCPT side of the global breaker
// (it accepts: the mail is queued and then held at delivery).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { guardedTransport } from '../../src/delivery/guarded-transport.ts';
import { outboundGuard } from '../../src/checks/outbound-guard.ts';
import { build, ctx, mailbox, makeEnv } from '../checks/env.ts';
import { queued, recordingTransport, startWebhook } from './helpers.ts';

const HOUR = 3_600_000;

async function setup(t: TestContext, extra: Record<string, unknown> = {}) {
  const hook = await startWebhook(t);
  const te = await makeEnv(t);
  const options = { quota: { limit: 100, window: '24h', warnAt: '80%', stopAt: 0.95 }, alerts: { webhook: hook.url, postmaster: false }, ...extra };
  const guard = new OutboundGuard({ store: te.store, clock: te.clock, log: te.env.log, hostname: 'mx.example.org', settings: GuardSchema.parse(options) });
  const sink = recordingTransport();
  const remote = guardedTransport(sink, guard, te.env.log);
  const send = async (n: number, o: { from?: string; login?: string; client?: string } = {}) => {
    const msg = queued({ from: o.from ?? 'alice@example.org', to: Array.from({ length: n }, (_, i) => `r${i}@far${i}.example`), ...(o.login ? { login: o.login } : {}), ...(o.client ? { client: o.client } : {}) });
    const out = await remote.deliver(msg, msg.envelope.recipients.map((_, i) => i));
    const replies = [...new Set(out.map((x) => `${x.outcome} ${x.reply}${x.hold ? ` [hold ${x.hold.breaker}]` : ''}`))];
    assert.equal(replies.length, 1, 'one answer for all recipients of a message');
    return replies[0]!;
  };
  const check = build(outboundGuard, options as never, te.env);
  const rcpt = (to: string) => check.rcpt!(ctx({ login: 'bob@example.org', listener: 'submission' }, { from: 'bob@example.org' }), mailbox(to));
  return { ...te, hook, guard, sink, send, rcpt };
}

test('quota: a warning at 80%, then the hard stop holds remote mail and trips the global breaker; release; the window slides', async (t) => {
  const { send, sink, hook, guard, logs, clock, rcpt } = await setup(t);
  for (let i = 0; i < 7; i++) assert.equal(await send(10), 'ok 250 2.0.0 Ok');
  assert.equal(hook.received.length, 0);
  assert.equal(await send(10), 'ok 250 2.0.0 Ok'); // 80 of 100: the warning
  const [warning] = await hook.waitFor(1);
  assert.deepEqual([warning!.type, warning!.breaker, warning!.reason, warning!.figures], ['quota-warning', 'quota', '80 of 100 recipients sent in 24 h (warning at 80, stop at 95)', { used: 80, limit: 100, warn: 80, stop: 95 }]);
  assert.equal(await send(10), 'ok 250 2.0.0 Ok'); // 90: no second warning
  // 90 + 10 > 95: held, and the global breaker trips.
  assert.equal(await send(10), 'temporary 451 4.3.2 Held: outbound quota reached (90 of 100 in 24 h) [hold global]');
  const [, open] = await hook.waitFor(2);
  assert.deepEqual([open!.type, open!.breaker, open!.kind, open!.reason], ['breaker-open', 'global', 'quota', "the outbound quota's hard stop: 90 of 100 recipients sent in 24 h, stop at 95"]);
  // Now everything remote is held by the breaker, even what the quota would allow.
  assert.equal(await send(1), 'temporary 451 4.3.2 Held by the outbound breaker (global) [hold global]');
  assert.equal(sink.calls.length, 9);
  assert.equal(sink.calls.flatMap((c) => c.rcpts).length, 90);
  // At RCPT, new relayed mail is accepted (and counted): it is queued, and held at delivery.
  assert.equal((await rcpt('x@far.example')).kind, 'pass');
  assert.equal((await rcpt('alice@example.org')).kind, 'pass');
  assert.equal((await guard.status()).sources.find((x) => x.source === 'login:bob@example.org')?.reading.rate, 1);
  assert.deepEqual(logs.filter((l) => l.event === 'breaker').map((l) => [l.state, l.breaker]), [['warning', 'quota'], ['open', 'global']]);

  // Released by the operator: what fits under the stop goes; the quota holds the rest without tripping again.
  await guard.release('global');
  assert.equal(await send(5), 'ok 250 2.0.0 Ok'); // 95
  assert.equal(await send(1), 'temporary 451 4.3.2 Held: outbound quota reached (95 of 100 in 24 h) [hold global]');
  assert.deepEqual(await guard.breakers.list(), []);
  assert.equal(hook.received.length, 2);
  const status = await guard.status();
  assert.deepEqual(status.quota, { used: 95, limit: 100, warn: 80, stop: 95, windowMs: 24 * HOUR });
  // A day (and one slot of it) later the window is empty again.
  clock.advance(24 * HOUR + 25 * 60_000);
  assert.equal(await send(10), 'ok 250 2.0.0 Ok');
  assert.equal((await guard.status()).quota?.used, 10);
});

test('quota: recipients that did not reach the next hop (temporary) are given back', async (t) => {
  const { send, sink, guard } = await setup(t);
  sink.outcome = 'temporary';
  for (let i = 0; i < 20; i++) assert.equal(await send(10), 'temporary 451 4.4.1 try later');
  assert.equal((await guard.status()).quota?.used, 0);
  sink.outcome = 'permanent';
  assert.equal(await send(10), 'permanent 550 5.1.1 no');
  assert.equal((await guard.status()).quota?.used, 10);
  assert.deepEqual(await guard.breakers.list(), []);
});

test('guarded transport: queued mail of a source with an open breaker is held; others and our own notices are not', async (t) => {
  const { send, sink, guard } = await setup(t, { quota: {} });
  assert.equal(await guard.tripManually('login:alice@example.org', 'test'), true);
  assert.equal(await guard.tripManually('client:127.0.0.1', 'test'), true);
  assert.equal(await send(2, { login: 'Alice@example.org' }), 'temporary 451 4.3.2 Held by the outbound breaker (login:alice@example.org) [hold login:alice@example.org]');
  assert.equal(await send(2, { login: 'bob@example.org', from: 'bob@example.org', client: '192.0.2.99' }), 'ok 250 2.0.0 Ok');
  // A bounce we generate (null sender, from 127.0.0.1) is judged by the global breaker only.
  assert.equal(await send(1, { from: '', client: '127.0.0.1' }), 'ok 250 2.0.0 Ok');
  assert.equal(await send(1, { from: 'app@example.org', client: '127.0.0.1' }), 'temporary 451 4.3.2 Held by the outbound breaker (client:127.0.0.1) [hold client:127.0.0.1]');
  assert.deepEqual(sink.calls.map((c) => c.rcpts.length), [2, 1]);
  // Without a quota nothing is counted.
  assert.equal((await guard.status()).quota, undefined);
});

test('guarded transport: when the guard cannot be read, remote mail is deferred (not held: no operator needed), never sent', async (t) => {
  const { send, sink, store } = await setup(t);
  await store.close();
  assert.equal(await send(3), 'temporary 451 4.3.0 Held: the outbound guard cannot be read, will retry');
  assert.equal(sink.calls.length, 0);
});

test('quota: settings are checked: warnAt must be below stopAt', () => {
  const r = GuardSchema.safeParse({ quota: { limit: 54000, warnAt: '96%', stopAt: '95%' } });
  assert.equal(r.success, false);
  assert.equal(r.error?.issues[0]?.message, 'warnAt (0.96) is not below stopAt (0.95); warn before the stop, e.g. warnAt: 80%, stopAt: 95%');
  assert.deepEqual(GuardSchema.parse({ quota: { limit: 54000 } }).quota, { limit: 54000, window: 24 * HOUR, warnAt: 0.8, stopAt: 0.95, project: false });
});
