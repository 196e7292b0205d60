// The admin HTTP API over a real socket, after real SMTP traffic: the token is required (and
// never logged), and each endpoint's JSON shows exactly what happened — counts, top senders, why
// each relayed message could leave, the queue, breakers of a real outbound guard, users, metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startAdmin, type QueueControl } from '../../src/shells/admin/server.ts';
import { guardControlFrom } from '../../src/shells/admin/controls.ts';
import { openDirectory } from '../../src/app/accounts.ts';
import { spoolQueueStats } from '../../src/shells/admin/queue-stats.ts';
import { createStore } from '../../src/store/create.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { MailStats } from '../../src/observe/stats.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { traffic, TOKEN } from './rig.ts';

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

function client(port: number) {
  return async (p: string, o: { method?: string; token?: string | null; auth?: string } = {}): Promise<Reply> => {
    const headers: Record<string, string> = {};
    if (o.auth !== undefined) headers.authorization = o.auth;
    else if (o.token !== null) headers.authorization = `Bearer ${o.token ?? TOKEN}`;
    const r = await fetch(`http://127.0.0.1:${port}${p}`, { method: o.method ?? 'GET', headers });
    const text = await r.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: r.status, headers: r.headers, body, text };
  };
}

test('admin API: token required, and every endpoint after real traffic', async (t) => {
  const tr = await traffic(t);
  const { srv, stats, metrics, ids } = tr;
  const directory = openDirectory(srv.config);
  t.after(() => directory.close());
  const store = await createStore({ backend: 'sqlite', sqlite: { path: path.join(tr.dir, 'guard.sqlite') }, redis: { keyPrefix: '', timeoutMs: 1000 } }, pino({ level: 'silent' }));
  t.after(() => store.close());
  const guard = new OutboundGuard({ store, clock: Date.now, log: pino({ level: 'silent' }), hostname: 'mx.example.org', settings: GuardSchema.parse({ alerts: { postmaster: false } }) });
  const trippedAt = Date.now() - 60_000;
  await guard.breakers.trip({ name: 'login:alice@example.org', kind: 'baseline', reason: '300 relayed recipients in the last hour, 10× the baseline', trippedAt, figures: { lastHour: 300 } });
  const queueCalls: string[] = [];
  const queueControl: QueueControl = {
    hold: async (id) => (queueCalls.push(`hold ${id}`), { matched: 1, changed: 1, missing: 0 }),
    release: async (id) => (queueCalls.push(`release ${id}`), { matched: 0, changed: 0, missing: 1 }),
    delete: async (id) => (queueCalls.push(`delete ${id}`), { matched: 1, changed: 1, missing: 0 }),
    flush: async () => (queueCalls.push('flush'), { matched: 1, changed: 1, missing: 0 }),
  };
  const admin = await startAdmin({
    config: { host: '127.0.0.1', port: 0, tokenFile: tr.tokenFile, metricsRequireToken: true },
    stats,
    metrics,
    directory,
    queueStats: spoolQueueStats(srv.config.paths.spool, { minAgeMs: 0 }),
    queueControl,
    guardControl: guardControlFrom(guard),
    log: tr.adminLog,
  });
  t.after(() => admin.close());
  const get = client(admin.port);

  // Without the token (or with a wrong one, another scheme, or in the URL): 401.
  for (const [p, o] of [
    ['/api/summary', { token: null }],
    ['/api/summary', { token: 'wrong-token-wrong-token' }],
    ['/api/summary', { auth: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }],
    [`/api/summary?token=${TOKEN}`, { token: null }],
    ['/metrics', { token: null }],
    ['/api/breakers/global/release', { token: null, method: 'POST' }],
  ] as const) {
    const r = await get(p, o);
    assert.equal(r.status, 401, p);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="mailward"');
    assert.deepEqual(r.body, { error: 'a valid bearer token is required (Authorization: Bearer <token from admin.tokenFile>)' });
  }
  const page = await get('/', { token: null });
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(page.headers.get('content-security-policy')!, /^default-src 'none'; script-src 'self';/);
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  assert.match(page.text, /<script src="\/dashboard\.js"><\/script>/);
  assert.doesNotMatch(page.text, /https?:\/\//i, 'the page loads nothing from elsewhere');
  assert.equal((await get('/dashboard.js', { token: null })).status, 200);
  assert.equal((await get('/', { method: 'POST', token: null })).status, 405);

  // Summary: the queue (the deferred trusted-network message), counts over 24 h and 7 d.
  const summary = (await get('/api/summary')).body as { queue: Record<string, unknown>; last24h: unknown; last7d: unknown; hours24: Array<Record<string, number>>; hours168: unknown[]; tunnels: unknown; actions: unknown };
  const queue = summary.queue;
  assert.deepEqual({ ...queue, oldestReceivedAt: typeof queue.oldestReceivedAt, oldestAgeSeconds: typeof queue.oldestAgeSeconds }, {
    depth: 1,
    held: 0,
    deferred: 1,
    corrupt: 0,
    oldestId: ids.trusted,
    oldestReceivedAt: 'number',
    oldestAgeSeconds: 'number',
  });
  const totals = { accepted: 5, relayed: 4, rejected: 2, deferred: 0, discarded: 0, quarantined: 0, delivered: 5, bounced: 0, rejectedBy: { 'sender-login': 1, recipient: 1 } };
  assert.deepEqual(summary.last24h, totals);
  assert.deepEqual(summary.last7d, totals);
  assert.equal(summary.hours24.length, 24);
  assert.equal(summary.hours168.length, 168);
  const sum = (k: string): number => summary.hours24.reduce((a, h) => a + h[k]!, 0);
  assert.deepEqual([sum('accepted'), sum('relayed'), sum('delivered')], [5, 4, 5]);
  const hour = summary.hours24.at(-1)!.hour!;
  assert.equal(hour % 3_600_000, 0);
  assert.ok(Date.now() - hour < 3_600_000);
  assert.deepEqual(summary.tunnels, []);
  assert.deepEqual(summary.actions, { queue: true, breakers: true, console: false, outbound: false });

  // Top senders: by login, and by client address (here everything came from 127.0.0.1).
  const top = (await get('/api/top?hours=24&limit=5')).body as Record<string, Array<Record<string, unknown>>>;
  const flat = (x: Record<string, unknown>) => ({ ...x, relayedPerHour: (x.relayedPerHour as number[]).reduce((a, b) => a + b, 0), hours: (x.relayedPerHour as number[]).length });
  assert.deepEqual(top.logins!.map(flat), [{ key: 'alice@example.org', messages: 3, relayed: 3, rejected: 0, relayedShare: 0.75, relayedPerHour: 3, hours: 24 }]);
  assert.deepEqual(top.clients!.map(flat), [{ key: '127.0.0.1', messages: 5, relayed: 4, rejected: 2, relayedShare: 1, relayedPerHour: 4, hours: 24 }]);

  // Why each relayed message was allowed to leave, newest first.
  const relayed = ((await get('/api/relayed?limit=10')).body as { relayed: Array<Record<string, unknown>> }).relayed;
  assert.deepEqual(
    relayed.map(({ at, ...r }) => (assert.equal(typeof at, 'number'), r)),
    [
      { queueId: ids.trusted, from: 'news@example.com', to: ['slow@example.net'], relay: 'trusted-network:127.0.0.1/32', via: ['trusted-network'], client: '127.0.0.1', listener: 'mx' },
      { queueId: ids.alice[2], from: 'alice@example.org', to: ['out3@example.net', 'bob@example.org'], relay: 'login:alice@example.org', via: ['login'], login: 'alice@example.org', client: '127.0.0.1', listener: 'submission' },
      { queueId: ids.alice[1], from: 'alice@example.org', to: ['out2@example.net'], relay: 'login:alice@example.org', via: ['login'], login: 'alice@example.org', client: '127.0.0.1', listener: 'submission' },
      { queueId: ids.alice[0], from: 'alice@example.org', to: ['out1@example.net'], relay: 'login:alice@example.org', via: ['login'], login: 'alice@example.org', client: '127.0.0.1', listener: 'submission' },
    ],
  );
  assert.equal(((await get('/api/relayed?limit=1')).body as { relayed: unknown[] }).relayed.length, 1);
  assert.deepEqual((await get('/api/relayed?limit=abc')).body, { error: 'limit must be a whole number' });

  // Recent decisions: the two refusals as logged, the acceptances and the delivery outcomes.
  const decisions = ((await get('/api/decisions?limit=100')).body as { decisions: Array<Record<string, unknown>> }).decisions;
  const count = (e: string): number => decisions.filter((d) => d.event === e).length;
  assert.deepEqual([count('queued'), count('rejected'), count('delivered'), count('deferred')], [5, 2, 5, 1]);
  const refused = decisions.find((d) => d.event === 'rejected' && d.check === 'recipient')!;
  const logged = srv.logs.find((l) => l.event === 'rejected' && l.check === 'recipient')!;
  assert.deepEqual(
    { ...refused, at: undefined },
    { at: undefined, event: 'rejected', session: logged.session, client: '127.0.0.1', listener: 'mx', from: 'news@example.com', to: 'nobody@example.org', stage: 'rcpt', check: 'recipient', reason: logged.reason, reply: logged.reply },
  );
  assert.match(String(refused.reply), /^550 5\.1\.1 /);
  assert.equal(decisions.filter((d) => d.event === 'rejected' && d.check === 'sender-login' && d.from === 'someone@example.org').length, 1);
  assert.ok((decisions[0]!.at as number) >= (decisions.at(-1)!.at as number), 'newest first');

  // Users.
  const users = ((await get('/api/users')).body as { users: Array<Record<string, unknown>> }).users;
  assert.deepEqual(users.map((u) => [u.address, u.disabled, typeof u.created === 'string' && !Number.isNaN(Date.parse(u.created))]), [
    ['alice@example.org', false, true],
    ['bob@example.org', false, true],
  ]);

  // The queue and its actions (through the QueueControl boundary).
  assert.deepEqual(((await get('/api/queue')).body as Record<string, unknown>).actions, true);
  assert.deepEqual((await get(`/api/queue/${ids.trusted}/hold`, { method: 'POST' })).body, { result: { matched: 1, changed: 1, missing: 0 } });
  assert.deepEqual(await get(`/api/queue/${ids.trusted}/release`, { method: 'POST' }).then((r) => [r.status, r.body]), [404, { error: `no message ${ids.trusted} where release applies` }]);
  assert.deepEqual(await get('/api/queue/not-an-id/delete', { method: 'POST' }).then((r) => [r.status, r.body]), [400, { error: 'not a queue id' }]);
  assert.deepEqual((await get('/api/queue/flush', { method: 'POST' })).body, { result: { matched: 1, changed: 1, missing: 0 } });
  assert.equal((await get(`/api/queue/${ids.trusted}/hold`)).status, 404, 'actions are POST only');
  assert.deepEqual(queueCalls, [`hold ${ids.trusted}`, `release ${ids.trusted}`, 'flush']);

  // Breakers of a real outbound guard: listed, released, gone; an unknown one is 404.
  assert.deepEqual((await get('/api/breakers')).body, {
    available: true,
    breakers: [{ name: 'login:alice@example.org', open: true, reason: '300 relayed recipients in the last hour, 10× the baseline', since: trippedAt, detail: { lastHour: 300 } }],
    warnings: [],
  });
  assert.deepEqual((await get(`/api/breakers/${encodeURIComponent('login:alice@example.org')}/release`, { method: 'POST' })).body, { released: 'login:alice@example.org' });
  assert.deepEqual((await get('/api/breakers')).body, { available: true, breakers: [], warnings: [] });
  assert.deepEqual(await get('/api/breakers/global/release', { method: 'POST' }).then((r) => [r.status, r.body]), [404, { error: 'no breaker named "global"' }]);
  // The release went out as a mail event: in the decisions and the breaker gauge.
  const released = ((await get('/api/decisions?limit=5')).body as { decisions: Array<Record<string, unknown>> }).decisions.find((d) => d.event === 'breaker' && d.breaker === 'login:alice@example.org');
  assert.deepEqual({ ...released, at: undefined }, { at: undefined, event: 'breaker', state: 'released', breaker: 'login:alice@example.org' });

  // Prometheus text.
  const m = await get('/metrics');
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
  for (const line of [
    'mailward_decisions_total{decision="queued",stage="data",check="none",listener="submission"} 3',
    'mailward_decisions_total{decision="queued",stage="data",check="none",listener="mx"} 2',
    'mailward_decisions_total{decision="rejected",stage="rcpt",check="recipient",listener="mx"} 1',
    'mailward_decisions_total{decision="rejected",stage="mail",check="sender-login",listener="mx"} 1',
    'mailward_relayed_messages_total{via="login"} 3',
    'mailward_relayed_messages_total{via="trusted-network"} 1',
    'mailward_auth_total{result="success",listener="submission"} 1',
    'mailward_queue_messages{state="queued"} 1',
    'mailward_queue_messages{state="deferred"} 1',
    'mailward_queue_messages{state="held"} 0',
    'mailward_breaker_open{name="login:alice@example.org"} 0',
    'mailward_delivery_latency_seconds_count{transport="local"} 2',
    'mailward_delivery_latency_seconds_count{transport="remote"} 3',
    'mailward_deliveries_total{result="delivered",transport="local"} 2',
    'mailward_deliveries_total{result="delivered",transport="remote"} 3',
    'mailward_deliveries_total{result="deferred",transport="remote"} 1',
  ]) {
    assert.ok(m.text.split('\n').includes(line), `metrics include ${line}`);
  }
  assert.match(m.text, /^mailward_queue_oldest_seconds \d+(\.\d+)?$/m);
  assert.match(m.text, /^process_cpu_user_seconds_total \d/m);
  assert.match(m.text, /^nodejs_eventloop_lag_seconds \d/m);

  assert.equal((await get('/api/nothing')).status, 404);
  // The token never reaches the admin log, not even from the refused ?token= request.
  assert.ok(tr.adminLines.length > 0);
  assert.ok(!tr.adminLines.some((l) => l.includes(TOKEN)), 'no token in the log');
  assert.ok(tr.adminLines.some((l) => l.includes('"event":"admin-auth-failed"')));
});

test('admin API: without queue and guard controls the actions answer 501; /metrics may be open', async (t) => {
  const tr = await traffic(t);
  const admin = await startAdmin({
    config: { host: '127.0.0.1', port: 0, tokenFile: tr.tokenFile, metricsRequireToken: false },
    stats: tr.stats,
    metrics: tr.metrics,
    directory: { listUsers: () => [] },
    log: tr.adminLog,
  });
  t.after(() => admin.close());
  const get = client(admin.port);
  assert.deepEqual((await get('/api/queue')).body, { queue: null, actions: false });
  assert.deepEqual(await get(`/api/queue/${tr.ids.trusted}/hold`, { method: 'POST' }).then((r) => [r.status, r.body]), [501, { error: 'queue actions are not available on this server' }]);
  assert.deepEqual((await get('/api/breakers')).body, { available: false, breakers: [] });
  assert.deepEqual(await get('/api/breakers/global/release', { method: 'POST' }).then((r) => [r.status, r.body]), [501, { error: 'the outbound guard is not connected to this server' }]);
  const m = await get('/metrics', { token: null });
  assert.equal(m.status, 200);
  assert.match(m.text, /^mailward_relayed_messages_total\{via="login"\} 3$/m);
  assert.equal((await get('/api/summary', { token: null })).status, 401, 'the API still needs the token');
});

test('admin API: a missing or short token file stops the start with the setting and the fix', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-admin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const base = { stats: new MailStats(), metrics: new Metrics({ processMetrics: false }), directory: { listUsers: () => [] }, log: pino({ level: 'silent' }) };
  const missing = path.join(dir, 'none.token');
  await assert.rejects(startAdmin({ ...base, config: { host: '127.0.0.1', port: 0, tokenFile: missing, metricsRequireToken: true } }), {
    message: `admin.tokenFile: cannot read "${missing}" (ENOENT). Fix: make it: head -c 32 /dev/urandom | base64 > ${missing}; chmod 600 ${missing}`,
  });
  const short = path.join(dir, 'short.token');
  writeFileSync(short, 'abc\n', { mode: 0o600 });
  await assert.rejects(startAdmin({ ...base, config: { host: '127.0.0.1', port: 0, tokenFile: short, metricsRequireToken: true } }), {
    message: `admin.tokenFile: "${short}" must hold one token of at least 16 characters without spaces. Fix: make one: head -c 32 /dev/urandom | base64 > ${short}`,
  });
});
