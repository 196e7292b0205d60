// The outbound breakers through the outbound-guard check, on a real store with a clock the test
// moves: a source far above its own baseline, too many distinct domains, a trusted-network burst,
// a bounce storm; the alert (log line and webhook), release, reopenAfter, a restart, and Redis.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { outboundGuard } from '../../src/checks/outbound-guard.ts';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { RedisStore } from '../../src/store/redis.ts';
import type { Answer, CheckEnv } from '../../src/pipeline/check.ts';
import { build, ctx, mailbox, makeEnv } from '../checks/env.ts';
import { startRedis } from '../harness/redis.ts';
import { startWebhook } from './helpers.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const suspended = (kind: string, id: string) => ({ code: 451, enhanced: '4.7.1', text: `sending suspended for ${kind} ${id} (outbound guard)` });

type Sender = { login?: string; from?: string | null; client?: string };

function handlers(env: CheckEnv, options: Record<string, unknown>) {
  const h = build(outboundGuard, options as never, env);
  const guard = new OutboundGuard({ store: env.store, clock: env.clock, log: env.log, hostname: env.hostname, settings: GuardSchema.parse(options) });
  const rcpt = (to: string, s: Sender = {}) =>
    h.rcpt!(ctx({ clientAddress: s.client ?? '192.0.2.10', listener: 'submission', ...(s.login ? { login: s.login } : {}) }, { from: s.from === undefined ? (s.login ?? 'x@example.net') : s.from }), mailbox(to));
  return { rcpt, guard };
}

async function setup(t: TestContext, options: Record<string, unknown>) {
  const te = await makeEnv(t);
  return { ...te, ...handlers(te.env, options) };
}

async function seq(n: number, f: (i: number) => Answer): Promise<string> {
  let out = '';
  for (let i = 0; i < n; i++) out += (await f(i)).kind === 'pass' ? 'P' : 'D';
  return out;
}

const alice: Sender = { login: 'alice@example.org', client: '192.0.2.10' };
const bob: Sender = { login: 'bob@example.org', client: '198.51.100.20' };
// Only the breaker under test: the others off unless a test turns them on.
const ONLY = { domains: { enabled: false }, trustedNetwork: { enabled: false }, bounces: { enabled: false }, aggregate: { enabled: false }, earlyWarning: { enabled: false }, alerts: { postmaster: false } };

/** 48 hours of 10 relayed recipients an hour at the top of each hour: with a 24 h half-life the baseline is 10 × (1 − ¼) = 7.5. */
async function history(rcpt: (to: string, s: Sender) => Answer, clock: { advance(ms: number): void }, who: Sender): Promise<void> {
  for (let h = 0; h < 48; h++) {
    for (let i = 0; i < 10; i++) assert.equal((await rcpt(`friend${i}@d${i}.example`, who)).kind, 'pass');
    clock.advance(HOUR);
  }
}

test('baseline: a login far above its own hourly rate trips its breaker; the alert goes to the log and the webhook; others carry on', async (t) => {
  const hook = await startWebhook(t);
  const { rcpt, clock, logs, guard } = await setup(t, { ...ONLY, baseline: { factor: 4, minimum: 20, halfLife: '24h' }, alerts: { webhook: hook.url, postmaster: false } });
  await history(rcpt, clock, alice);
  assert.equal((await guard.baselines.read('login:alice@example.org', clock())).baseline, 7.5);
  // Limit max(4 × 7.5, 20) = 30; the previous hour's 10 still count in full at the top of the hour.
  assert.equal(await seq(20, (i) => rcpt(`victim${i}@spam${i}.example`, alice)), 'P'.repeat(20));
  const tripped = await rcpt('victim21@spam21.example', alice);
  assert.deepEqual(tripped, {
    kind: 'defer',
    reply: suspended('login', 'alice@example.org'),
    reason: 'breaker login:alice@example.org is open (baseline): 31 relayed recipients in the last hour, limit 30 (4 × baseline 7.5, at least 20)',
  });
  assert.equal(await seq(5, (i) => rcpt(`more${i}@spam.example`, alice)), 'DDDDD');
  // Local delivery carries on for the same login; another user is not affected.
  assert.equal((await rcpt('colleague@example.org', alice)).kind, 'pass');
  assert.equal(await seq(3, (i) => rcpt(`client${i}@customer.example`, bob)), 'PPP');

  const lines = logs.filter((l) => l.event === 'breaker');
  assert.equal(lines.length, 1);
  assert.deepEqual([lines[0]!.state, lines[0]!.breaker, lines[0]!.kind, lines[0]!.rate, lines[0]!.baseline, lines[0]!.limit, lines[0]!.level], ['open', 'login:alice@example.org', 'baseline', 31, 7.5, 30, 40]);
  const [alert] = await hook.waitFor(1);
  assert.deepEqual(alert, {
    type: 'breaker-open',
    server: 'mx.example.org',
    breaker: 'login:alice@example.org',
    kind: 'baseline',
    reason: '31 relayed recipients in the last hour, limit 30 (4 × baseline 7.5, at least 20)',
    figures: { rate: 31, baseline: 7.5, limit: 30 },
    at: new Date(clock()).toISOString(),
    release: 'mailward guard release login:alice@example.org',
    heldMail: { list: 'mailward queue list --state held', release: 'mailward queue release ID...', delete: 'mailward queue delete --state held --login alice@example.org' },
    text:
      '[mailward mx.example.org] outbound breaker open: login:alice@example.org — 31 relayed recipients in the last hour, limit 30 (4 × baseline 7.5, at least 20). ' +
      'New outbound mail from login:alice@example.org is refused with a 4xx, and its queued outbound mail is put on hold (the hold area) at once; local delivery carries on. ' +
      'Held mail: mailward queue list --state held',
    _method: 'POST',
    _type: 'application/json',
  });
  await guard.alerter.idle();
  assert.equal(hook.received.length, 1);
});

test('baseline: a new source has no baseline, so `minimum` recipients an hour is its budget', async (t) => {
  const { rcpt } = await setup(t, { ...ONLY, baseline: { minimum: 25 } });
  assert.equal(await seq(26, (i) => rcpt(`u${i}@d${i}.example`, { login: 'new@example.org' })), 'P'.repeat(25) + 'D');
});

test('release: reopens the breaker and forgets the last hours, so the login may send again — and trips again after its budget', async (t) => {
  const { rcpt, clock, guard, logs } = await setup(t, { ...ONLY, baseline: { factor: 4, minimum: 20 } });
  await history(rcpt, clock, alice);
  assert.equal(await seq(21, (i) => rcpt(`v${i}@spam${i}.example`, alice)), 'P'.repeat(20) + 'D');
  const open = await guard.breakers.list();
  assert.deepEqual(open.map((b) => [b.name, b.kind]), [['login:alice@example.org', 'baseline']]);
  const was = await guard.release('login:alice@example.org');
  assert.equal(was?.kind, 'baseline');
  assert.deepEqual(await guard.breakers.list(), []);
  const released = logs.find((l) => l.event === 'breaker' && l.state === 'released');
  assert.deepEqual([released?.breaker, released?.kind], ['login:alice@example.org', 'baseline']);
  // The counts of this hour and the last are gone: 30 more before the limit of 30 is passed again.
  assert.equal(await seq(31, (i) => rcpt(`w${i}@again${i}.example`, alice)), 'P'.repeat(30) + 'D');
  assert.equal((await guard.release('login:nobody@example.org')), undefined);
});

test('domains: more distinct recipient domains in an hour than the limit trips the source', async (t) => {
  const { rcpt, clock } = await setup(t, { ...ONLY, baseline: { enabled: false }, domains: { limit: 5 } });
  // Many recipients in a few domains are fine.
  assert.equal(await seq(30, (i) => rcpt(`u${i}@d${i % 5}.example`, alice)), 'P'.repeat(30));
  const v = await rcpt('u@d6.example', alice);
  assert.equal(v.kind === 'defer' && v.reason, 'breaker login:alice@example.org is open (domains): 6 distinct recipient domains this hour, limit 5');
  // A sender without a login (sender and client sources) is judged the same way.
  const { rcpt: rcpt2 } = handlers((await makeEnv(t)).env, { ...ONLY, baseline: { enabled: false }, domains: { limit: 3 } });
  assert.equal(await seq(4, (i) => rcpt2(`u@x${i}.example`, { from: 'app@example.org', client: '10.0.0.5' })), 'PPPD');
  // The next clock hour starts a new count.
  clock.advance(HOUR);
  assert.equal((await rcpt('u@d7.example', bob)).kind, 'pass');
});

test('trusted network: a burst relayed without a login trips the client; logged-in users behind the same address are not held by it', async (t) => {
  const { rcpt, guard } = await setup(t, { ...ONLY, baseline: { enabled: false }, trustedNetwork: { limit: 5, window: '10m' } });
  const app: Sender = { client: '10.0.0.5', from: 'noreply@example.org' };
  assert.equal(await seq(5, (i) => rcpt(`c${i}@customers.example`, app)), 'PPPPP');
  const v = await rcpt('c6@customers.example', app);
  assert.equal(v.kind === 'defer' && v.reason, 'breaker client:10.0.0.5 is open (trusted-network): 6 relayed recipients in 10 min from a trusted network without a login, limit 5');
  assert.deepEqual(v.kind === 'defer' && v.reply, suspended('client', '10.0.0.5'));
  // Logins are not counted by this breaker, and a login is judged by its own breaker, not its
  // client's: other users log in from behind the same address (a NAT, a tunnel).
  assert.equal((await rcpt('x@far.example', { login: 'carol@example.org', client: '10.0.0.6' })).kind, 'pass');
  assert.equal((await rcpt('x@far.example', { login: 'carol@example.org', client: '10.0.0.5' })).kind, 'pass');
  assert.equal((await rcpt('c7@customers.example', app)).kind, 'defer');
  assert.deepEqual((await guard.breakers.list()).map((b) => b.name), ['client:10.0.0.5']);
});

test('bounce storm: bounces to one address hold mail sent as it; past the total the global breaker trips, and relayed mail is still accepted (delivery holds it)', async (t) => {
  const { rcpt, guard } = await setup(t, { ...ONLY, baseline: { enabled: false }, bounces: { perAddress: 3, total: 5, window: '1h' } });
  const dsn: Sender = { from: null, client: '203.0.113.50' };
  // Bounces are inbound mail: always accepted; they are only counted.
  assert.equal(await seq(4, () => rcpt('Alice@example.org', dsn)), 'PPPP');
  assert.deepEqual((await guard.breakers.list()).map((b) => [b.name, b.kind, b.reason]), [
    ['sender:alice@example.org', 'bounces', '4 bounces to alice@example.org in the last hour, limit 3: its outbound mail is bouncing'],
  ]);
  const v = await rcpt('x@far.example', { login: 'alice@example.org', from: 'alice@example.org' });
  assert.deepEqual(v.kind === 'defer' && v.reply, suspended('sender', 'alice@example.org'));
  assert.equal((await rcpt('x@far.example', bob)).kind, 'pass');
  // Two more bounces, to bob: 6 in the hour, over the total of 5.
  assert.equal(await seq(2, () => rcpt('bob@example.org', dsn)), 'PP');
  assert.deepEqual((await guard.breakers.list()).map((b) => [b.name, b.kind, b.reason]), [
    ['global', 'bounces', '6 bounces in the last hour, limit 5'],
    ['sender:alice@example.org', 'bounces', '4 bounces to alice@example.org in the last hour, limit 3: its outbound mail is bouncing'],
  ]);
  // The global breaker holds mail in the queue, at delivery: RCPT accepts it.
  assert.equal((await rcpt('y@far.example', bob)).kind, 'pass');
  // A source's own breaker still refuses at RCPT while the global one is open.
  const s = await rcpt('z@far.example', { login: 'alice@example.org', from: 'alice@example.org' });
  assert.deepEqual(s.kind === 'defer' && [s.reply, s.reason], [suspended('sender', 'alice@example.org'), 'breaker sender:alice@example.org is open (bounces): 4 bounces to alice@example.org in the last hour, limit 3: its outbound mail is bouncing']);
  assert.equal((await rcpt('alice@example.org', bob)).kind, 'pass');
});

test('reopenAfter: a breaker closes by itself after the configured time', async (t) => {
  const { rcpt, clock } = await setup(t, { ...ONLY, baseline: { minimum: 3 }, reopenAfter: '30m' });
  assert.equal(await seq(4, (i) => rcpt(`u${i}@d${i}.example`, alice)), 'PPPD');
  clock.advance(29 * MIN);
  assert.equal((await rcpt('x@far.example', alice)).kind, 'defer');
  clock.advance(2 * MIN);
  // Closed again; the hour's count is still there, so it trips again at once: the budget is per hour.
  const again = await rcpt('x@far.example', alice);
  assert.match(again.kind === 'defer' ? again.reason : '', /^breaker login:alice@example\.org is open \(baseline\): 5 relayed/);
});

test('restart: breakers, baselines and counts are in the store and survive new objects on the same file', async (t) => {
  const te = await makeEnv(t);
  const options = { ...ONLY, baseline: { factor: 4, minimum: 20 } };
  const first = handlers(te.env, options);
  await history(first.rcpt, te.clock, alice);
  assert.equal(await seq(21, (i) => first.rcpt(`v${i}@spam${i}.example`, alice)), 'P'.repeat(20) + 'D');
  await te.store.close();
  const store = new SqliteStore({ path: join(te.dir, 'state.db') }, pino({ level: 'silent' }));
  t.after(() => store.close());
  const second = handlers({ ...te.env, store }, options);
  assert.equal((await second.rcpt('x@far.example', alice)).kind, 'defer');
  assert.equal((await second.guard.baselines.read('login:alice@example.org', te.clock())).baseline, 7.5);
  await second.guard.release('login:alice@example.org');
  assert.equal((await second.rcpt('x@far.example', alice)).kind, 'pass');
});

test('redis: the same breaker on the Redis store', async (t) => {
  const redis = await startRedis(t);
  const te = await makeEnv(t);
  const store = new RedisStore({ url: redis.url, keyPrefix: 'guardtest:', timeoutMs: 2000 }, pino({ level: 'silent' }));
  assert.equal(await store.waitReady(), true);
  t.after(() => store.close());
  const { rcpt, guard } = handlers({ ...te.env, store }, { ...ONLY, baseline: { factor: 4, minimum: 20 }, domains: { limit: 200 } });
  await history(rcpt, te.clock, alice);
  assert.equal(await seq(21, (i) => rcpt(`v${i}@spam${i}.example`, alice)), 'P'.repeat(20) + 'D');
  const status = await guard.status();
  assert.deepEqual(status.breakers.map((b) => [b.name, b.kind]), [['login:alice@example.org', 'baseline']]);
  const a = status.sources.find((s) => s.source === 'login:alice@example.org');
  assert.deepEqual(a && [a.reading.rate, a.reading.limit, a.domains], [31, 30, 21]);
  await guard.release('login:alice@example.org');
  assert.equal((await rcpt('x@far.example', alice)).kind, 'pass');
});

test('defaults: every breaker is on with safe figures; no quota and no webhook until configured', () => {
  const s = GuardSchema.parse({});
  assert.deepEqual(s, {
    baseline: { enabled: true, sources: ['login', 'sender', 'client'], factor: 10, minimum: 100, halfLife: 24 * HOUR },
    domains: { enabled: true, limit: 50 },
    trustedNetwork: { enabled: true, limit: 300, window: HOUR },
    bounces: { enabled: true, perAddress: 100, window: HOUR },
    aggregate: { enabled: true, factor: 5, recipients: 200, newDomains: 150, failureRate: 0.5, failureMinimum: 100 },
    earlyWarning: { enabled: true, share: 0.5, baselineFactor: 3, minimum: 20 },
    digest: { enabled: true, hour: 7 },
    quota: { window: 24 * HOUR, warnAt: 0.8, stopAt: 0.95, project: false },
    exempt: [],
    // The queue-growth alarm (decision 0034): on, a floor of 500/h and 5x its own baseline, or 10,000 queued.
    queueGrowth: { enabled: true, interval: 60_000, window: 900_000, floor: 500, factor: 5, halfLife: 24 * HOUR, ceiling: 10_000 },
    alerts: { webhookTimeout: 5000, postmaster: true },
  });
  assert.equal(GuardSchema.safeParse({ exempt: ['alice@example.org'] }).error?.issues[0]?.message, 'a source: login:<login>, sender:<address> or client:<address>');
  assert.equal(GuardSchema.safeParse({ alerts: { webhook: 'ftp://x' } }).success, false);
});

test('exempt client: read by the network parser — a mapped spelling exempts the IPv4 client; ranges and odd spellings are refused', async (t) => {
  for (const bad of ['client:127.1', 'client:010.0.0.5', 'client:10.0.0.0/8', 'client:fe80::1%eth0', 'client:::ffff:0.0.0.0/96']) {
    const r = GuardSchema.safeParse({ exempt: [bad] });
    assert.equal(r.success, false, `${bad} is refused`);
    assert.match(r.error?.issues[0]?.message ?? "", /client exemption is one address/);
  }
  assert.equal(GuardSchema.safeParse({ exempt: ['client:::ffff:192.0.2.10', 'client:2001:db8::5', 'login:a@example.org'] }).success, true);
  // The budget of a new source is `minimum`; the exempt client (written in mapped form) passes past it, another is held.
  const { rcpt } = await setup(t, { ...ONLY, baseline: { sources: ['client'], minimum: 3 }, exempt: ['client:::ffff:192.0.2.10'] });
  const stranger: Sender = { from: 'x@example.net', client: '192.0.2.10' };
  const other: Sender = { from: 'y@example.net', client: '198.51.100.7' };
  assert.equal(await seq(6, (i) => rcpt(`r${i}@d${i}.example`, stranger)), 'PPPPPP');
  assert.equal(await seq(6, (i) => rcpt(`r${i}@d${i}.example`, other)), 'PPPDDD');
});
