// The event channel and the dashboard statistics on their own: every mailEvent reaches the
// subscribers (a throwing one harms nothing), hourly counts roll over 7 days, sources are
// bounded, and the counts flushed to a real SQLite store come back after a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { mailEvent } from '../../src/observe/maillog.ts';
import { MailEventBus, mailEvents, type PublishedEvent } from '../../src/observe/events.ts';
import { MailStats, OTHER } from '../../src/observe/stats.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { createStore } from '../../src/store/create.ts';

const HOUR = 3_600_000;

test('events: mailEvent logs the line and publishes the same event; a throwing subscriber harms nothing', () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }));
  const got: PublishedEvent[] = [];
  const offBad = mailEvents.subscribe(() => {
    throw new Error('broken subscriber');
  });
  const off = mailEvents.subscribe((e) => got.push(e));
  const errors = mailEvents.listenerErrors;
  mailEvent(log, 'rejected', { client: '192.0.2.1', check: 'relay', reason: 'not ours' });
  off();
  offBad();
  mailEvent(log, 'connect', { client: '192.0.2.2' });
  assert.equal(got.length, 1);
  assert.equal(got[0]!.event, 'rejected');
  assert.deepEqual(got[0]!.fields, { client: '192.0.2.1', check: 'relay', reason: 'not ours' });
  assert.ok(Math.abs(got[0]!.at - Date.now()) < 5000);
  assert.equal(mailEvents.listenerErrors, errors + 1);
  assert.deepEqual(lines.map((l) => [l.event, l.client]), [
    ['rejected', '192.0.2.1'],
    ['connect', '192.0.2.2'],
  ]);
  // Unsubscribing during a publish does not make another subscriber miss the event.
  const bus = new MailEventBus();
  const seen: string[] = [];
  const offA = bus.subscribe(() => offA());
  bus.subscribe((e) => seen.push(e.event));
  bus.publish('queued', {});
  assert.deepEqual([seen, bus.listenerCount], [['queued'], 1]);
});

test('stats: hourly counts by kind and check, over 24 h and 7 d; older hours fall away', () => {
  let now = Date.UTC(2025, 5, 10, 12, 30);
  const stats = new MailStats({ clock: () => now });
  const e = (event: PublishedEvent['event'], fields: Record<string, unknown>, at = now): void => stats.ingest({ event, fields, at });
  e('queued', { login: 'alice@example.org', client: '192.0.2.1', relay: 'login:alice@example.org', queueId: 'q1', from: 'alice@example.org', to: ['a@example.net'] });
  e('queued', { client: '192.0.2.9', queueId: 'q2', from: 'x@example.net', to: 'bob@example.org' });
  e('rejected', { client: '192.0.2.9', check: 'dnsbl' });
  e('rejected', { client: '192.0.2.9', check: 'dnsbl' }, now - 2 * HOUR);
  e('rejected', { client: '192.0.2.9', stage: 'mail' }, now - 30 * HOUR);
  e('deferred', { stage: 'rcpt', check: 'greylist' });
  e('deferred', { queueId: 'q1', rcpt: 'a@example.net' }); // a delivery retry: not a refusal
  e('delivered', { queueId: 'q2', rcpt: 'bob@example.org' });
  e('quarantined', { client: '192.0.2.9', queueId: 'q3', from: 'spam@example.net', to: ['bob@example.org'] });
  e('bounced', { queueId: 'q9', rcpt: 'z@example.net' }, now - 8 * 24 * HOUR); // beyond 7 days
  const last = stats.hourly(24).at(-1)!;
  assert.deepEqual(last, { hour: Date.UTC(2025, 5, 10, 12), accepted: 2, relayed: 1, rejected: 1, deferred: 1, discarded: 0, quarantined: 1, delivered: 1, bounced: 0, rejectedBy: { dnsbl: 1 } });
  assert.deepEqual(stats.totals(24).rejectedBy, { dnsbl: 2 });
  assert.deepEqual(stats.totals(168).rejectedBy, { dnsbl: 2, syntax: 1 });
  assert.equal(stats.totals(168).bounced, 0);
  assert.deepEqual(stats.top(24, 5).clients.map((c) => [c.key, c.messages, c.relayed, c.rejected]), [
    ['192.0.2.1', 1, 1, 0],
    ['192.0.2.9', 2, 0, 2], // its quarantined message counts as one it sent
  ]);
  assert.deepEqual(stats.relayed(5).map((r) => [r.queueId, r.relay, r.via]), [['q1', 'login:alice@example.org', ['login']]]);
  // A week later the counts are gone from the window.
  now += 7 * 24 * HOUR;
  assert.equal(stats.totals(168).accepted, 0);
  assert.equal(stats.hourly(500).length, 169);
});

test('stats: per-hour sources are bounded, the rest counted under (other); recent lists are bounded', () => {
  const now = Date.UTC(2025, 5, 10, 12, 30);
  const stats = new MailStats({ clock: () => now, recentRelayed: 3, recentDecisions: 4 });
  for (let i = 0; i < 600; i++) stats.ingest({ event: 'queued', fields: { client: `198.51.${i >> 8}.${i & 255}`, relay: 'trusted-network:198.51.0.0/16', queueId: `q${i}` }, at: now });
  const clients = stats.top(24, 1000).clients;
  assert.equal(clients.length, 501);
  assert.deepEqual(clients[0], { key: OTHER, messages: 100, relayed: 100, rejected: 0, relayedShare: 100 / 600, relayedPerHour: [...new Array<number>(23).fill(0), 100] });
  assert.deepEqual(stats.relayed(10).map((r) => r.queueId), ['q599', 'q598', 'q597']);
  assert.equal(stats.decisions(10).length, 4);
});

test('stats: hourly counts and top senders survive a restart through the store; metrics count the same events', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-stats-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const open = () => createStore({ backend: 'sqlite', sqlite: { path: path.join(dir, 'state.sqlite') }, redis: { keyPrefix: '', timeoutMs: 1000 } }, pino({ level: 'silent' }));
  const now = Date.UTC(2025, 5, 10, 12, 30);
  const store = await open();
  const bus = new MailEventBus();
  const before = new MailStats({ clock: () => now, store });
  const metrics = new Metrics({ processMetrics: false });
  const offs = [before.attach(bus), metrics.attach(bus)];
  bus.publish('queued', { login: 'alice@example.org', client: '192.0.2.1', relay: 'login:alice@example.org', listener: 'submission' }, now - 3 * HOUR);
  bus.publish('queued', { login: 'alice@example.org', client: '192.0.2.1', relay: 'login:alice@example.org', listener: 'submission' }, now);
  bus.publish('rejected', { client: '203.0.113.5', check: 'relay', stage: 'rcpt', listener: 'mx' }, now);
  bus.publish('breaker', { state: 'open', breaker: 'login:alice@example.org' }, now);
  offs.forEach((o) => o());
  await before.close();
  await store.close();

  const again = await open();
  t.after(() => again.close());
  const after = new MailStats({ clock: () => now, store: again });
  await after.load();
  assert.deepEqual(after.totals(24), { accepted: 2, relayed: 2, rejected: 1, deferred: 0, discarded: 0, quarantined: 0, delivered: 0, bounced: 0, rejectedBy: { relay: 1 } });
  assert.deepEqual(after.hourly(4).map((h) => h.relayed), [1, 0, 0, 1]);
  const top = after.top(24, 5);
  assert.deepEqual(top.logins.map((x) => [x.key, x.messages, x.relayed, x.relayedShare]), [['alice@example.org', 2, 2, 1]]);
  assert.deepEqual(top.clients.map((x) => [x.key, x.messages, x.relayed, x.rejected]), [
    ['192.0.2.1', 2, 2, 0],
    ['203.0.113.5', 0, 0, 1],
  ]);

  const text = await metrics.text();
  for (const line of [
    'mailward_events_total{event="queued",listener="submission"} 2',
    'mailward_decisions_total{decision="rejected",stage="rcpt",check="relay",listener="mx"} 1',
    'mailward_relayed_messages_total{via="login"} 2',
    'mailward_breaker_open{name="login:alice@example.org"} 1',
  ]) {
    assert.ok(text.split('\n').includes(line), line);
  }
  metrics.setBreakerState('login:alice@example.org', false);
  assert.ok((await metrics.text()).split('\n').includes('mailward_breaker_open{name="login:alice@example.org"} 0'));
});
