// Rate-limit rules on a real SQLite store with a clock the test moves: each key (client, network,
// login, sender, recipient domain, server), connections at connect, messages at DATA, the
// direction, the window sliding, refused counts not kept, warnings, listeners, config errors;
// then a real server with the default check lists: connection and message rules work unplaced.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { rateLimit } from '../../src/checks/rate-limit.ts';
import { RateLimits } from '../../src/guard/limits.ts';
import { RateLimitSchema } from '../../src/config/guard-schema.ts';
import { buildConfig } from '../../src/config/load.ts';
import { compileChecks } from '../../src/app/compose.ts';
import type { Answer } from '../../src/pipeline/check.ts';
import { build, ctx, mailbox, makeEnv } from '../checks/env.ts';
import { startServer } from '../harness/server.ts';
import { dial, type Dialog } from '../harness/dial.ts';
import { authPlain } from '../harness/auth.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const RCPT_REPLY = { code: 450, enhanced: '4.7.1', text: 'Rate limit exceeded: too many recipients, try again later' };

async function setup(t: TestContext, rules: unknown[]) {
  const te = await makeEnv(t);
  const options = RateLimitSchema.parse({ rules });
  const h = build(rateLimit, { rules } as never, te.env);
  const rcpt = (to: string, s: { client?: string; login?: string; from?: string | null; listener?: string } = {}) =>
    h.rcpt!(ctx({ clientAddress: s.client ?? '192.0.2.10', listener: s.listener ?? 'submission', ...(s.login ? { login: s.login } : {}) }, { from: s.from === undefined ? 'a@sender.example' : s.from }), mailbox(to));
  const figures = async () => {
    const f = await new RateLimits(te.store, options.rules, te.env.log).figures(te.clock());
    return Object.fromEntries(f.map((x) => [x.rule.name, Object.fromEntries(x.top.map((s) => [s.subject, s.count]))]));
  };
  return { ...te, h, rcpt, figures };
}

const kinds = async (vs: Array<Answer>): Promise<string> => (await Promise.all(vs.map((v) => Promise.resolve(v)))).map((v) => (v.kind === 'pass' ? 'P' : v.kind === 'defer' ? 'D' : v.kind)).join('');

async function seq(n: number, f: (i: number) => Answer): Promise<string> {
  let out = '';
  for (let i = 0; i < n; i++) {
    const v = await f(i);
    out += v.kind === 'pass' ? 'P' : v.kind === 'defer' ? 'D' : v.kind;
  }
  return out;
}

test('rate-limit: per login, outbound only: the 4th relayed recipient in the hour gets 450 4.7.1, local ones are not counted', async (t) => {
  const { rcpt, clock, figures } = await setup(t, [{ name: 'login-hour', key: 'login', direction: 'outbound', window: '1h', limit: 3 }]);
  const alice = { login: 'alice@example.org', from: 'alice@example.org' };
  assert.equal(await seq(3, (i) => rcpt(`u${i}@far.example`, alice)), 'PPP');
  // Mail to our own domain is inbound: not counted, not limited.
  assert.equal(await seq(5, () => rcpt('bob@example.org', alice)), 'PPPPP');
  const over = await rcpt('u4@far.example', alice);
  assert.deepEqual(over, { kind: 'defer', reply: RCPT_REPLY, reason: 'rule login-hour: login alice@example.org at 4 recipients in 1h, limit 3' });
  // Another login has its own count; a session without a login is not judged by this rule.
  assert.equal(await seq(3, (i) => rcpt(`v${i}@far.example`, { login: 'Carol@Example.org' })), 'PPP');
  assert.equal(await seq(5, (i) => rcpt(`w${i}@far.example`, {})), 'PPPPP');
  // Refused recipients are not kept: the count stays at the limit however often the client tries.
  assert.equal(await seq(10, () => rcpt('again@far.example', alice)), 'DDDDDDDDDD');
  assert.deepEqual(await figures(), { 'login-hour': { 'alice@example.org': 3, 'carol@example.org': 3 } });
  // Still inside the window 59 minutes later; free again once the hour (and its oldest slot) has passed.
  clock.advance(59 * MIN);
  assert.equal((await rcpt('x@far.example', alice)).kind, 'defer');
  clock.advance(2 * MIN + 1);
  assert.equal(await seq(4, (i) => rcpt(`y${i}@far.example`, alice)), 'PPPD');
});

test('rate-limit: per client (IPv6: its /64) and per network (/24, /64); IPv4-mapped IPv6 is the IPv4 client', async (t) => {
  const { rcpt } = await setup(t, [
    { name: 'client', key: 'client', window: '1m', limit: 2 },
    { name: 'net', key: 'network', window: '1m', limit: 3 },
  ]);
  assert.equal(await seq(3, () => rcpt('a@far.example', { client: '198.51.100.7' })), 'PPD');
  assert.equal(await seq(1, () => rcpt('a@far.example', { client: '::ffff:198.51.100.7' })), 'D');
  // A neighbour in the same /24 has its own client count but shares the network's: 2 + 1 = 3.
  assert.equal(await seq(2, () => rcpt('a@far.example', { client: '198.51.100.200' })), 'PD');
  assert.equal(await seq(2, () => rcpt('a@far.example', { client: '198.51.101.1' })), 'PP');
  // IPv6: one /64 is one client (the unit one customer controls) and one network.
  assert.equal(await seq(2, () => rcpt('a@far.example', { client: '2001:db8:1:2::1' })), 'PP');
  assert.equal(await seq(1, () => rcpt('a@far.example', { client: '2001:db8:1:2:ffff::9' })), 'D');
  assert.equal(await seq(1, () => rcpt('a@far.example', { client: '2001:db8:1:3::1' })), 'P');
});

test('rate-limit: per envelope sender (the null sender is "<>"), per recipient domain inbound, and the whole server', async (t) => {
  const { rcpt, figures } = await setup(t, [
    { name: 'sender', key: 'sender', window: '10m', limit: 2 },
    { name: 'to-domain', key: 'recipient-domain', direction: 'inbound', window: '10m', limit: 100 },
    { name: 'server', key: 'server', direction: 'outbound', window: '1h', limit: 5 },
  ]);
  assert.equal(await seq(3, () => rcpt('x@example.org', { from: 'News@Shop.example' })), 'PPD');
  assert.equal(await seq(3, () => rcpt('x@example.org', { from: null })), 'PPD');
  const f = await figures();
  assert.deepEqual(f.sender, { 'news@shop.example': 2, '<>': 2 });
  assert.deepEqual(f['to-domain'], { 'example.org': 4 });
  // The server-wide outbound rule: five relayed recipients from anyone, then 450.
  const senders = ['a@x.example', 'b@x.example', 'c@x.example', 'd@x.example', 'e@x.example', 'f@x.example'];
  assert.equal(await seq(6, (i) => rcpt(`r${i}@far.example`, { from: senders[i]!, client: `203.0.113.${i}` })), 'PPPPPD');
});

test('rate-limit: connections per network at connect get 421 4.7.0; a rule can be kept to some listeners', async (t) => {
  const { h, clock } = await setup(t, [{ name: 'conn', count: 'connections', key: 'network', window: '1s', limit: 5, listeners: ['mx'] }]);
  const connect = (client: string, listener = 'mx') => h.connect!(ctx({ clientAddress: client, listener }));
  assert.equal(await kinds([1, 2, 3, 4, 5].map((i) => connect(`192.0.2.${i}`))), 'PPPPP');
  const over = await connect('192.0.2.77');
  assert.deepEqual(over, {
    kind: 'defer',
    reply: { code: 421, enhanced: '4.7.0', text: 'Too many connections, try again later' },
    reason: 'rule conn: network 192.0.2.0/24 at 6 connections in 1s, limit 5',
  });
  // Other listeners are not counted by this rule.
  assert.equal((await connect('192.0.2.8', 'submission')).kind, 'pass');
  // Two seconds later (past the window and its oldest slot) the network may connect again.
  clock.advance(1100);
  assert.equal((await connect('192.0.2.9')).kind, 'pass');
});

test('rate-limit: messages at end of DATA, counted by direction', async (t) => {
  const { h } = await setup(t, [{ name: 'msgs', count: 'messages', key: 'login', direction: 'outbound', window: '1h', limit: 2 }]);
  const data = (rcpts: string[]) =>
    h.data!(ctx({ login: 'alice@example.org', listener: 'submission' }, { from: 'alice@example.org', rcpts }), { size: 10, headers: [], raw: async () => Buffer.alloc(0) });
  // Inbound only: not counted. A message with a relayed recipient counts once however many it has.
  assert.equal(await seq(3, () => data(['bob@example.org'])), 'PPP');
  assert.equal(await seq(3, () => data(['bob@example.org', 'a@far.example', 'b@far.example'])), 'PPD');
  const v = await data(['c@far.example']);
  assert.deepEqual(v.kind === 'defer' && v.reply, { code: 450, enhanced: '4.7.1', text: 'Rate limit exceeded: too many messages, try again later' });
});

test('rate-limit: warnAt logs one warning per window and subject when the count reaches the mark', async (t) => {
  const { rcpt, logs, clock } = await setup(t, [{ name: 'day', key: 'login', direction: 'outbound', window: '1d', limit: 10, warnAt: '80%' }]);
  assert.equal(await seq(10, (i) => rcpt(`u${i}@far.example`, { login: 'alice@example.org' })), 'PPPPPPPPPP');
  const warnings = logs.filter((l) => l.event === 'limit-warning');
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.msg, 'login alice@example.org reached 8 of 10 recipients (rule day)');
  assert.equal(warnings[0]!.level, 40);
  clock.advance(2 * 24 * HOUR);
  assert.equal(await seq(8, (i) => rcpt(`u${i}@far.example`, { login: 'alice@example.org' })), 'PPPPPPPP');
  assert.equal(logs.filter((l) => l.event === 'limit-warning').length, 2);
});

test('rate-limit: the defaults limit each login to 200 relayed recipients an hour and 1000 a day', () => {
  const o = RateLimitSchema.parse({});
  assert.deepEqual(
    o.rules.map((r) => [r.name, r.key, r.direction, r.count, r.window, r.limit, r.warnAt]),
    [
      ['login-hour', 'login', 'outbound', 'recipients', HOUR, 200, undefined],
      ['login-day', 'login', 'outbound', 'recipients', 24 * HOUR, 1000, 0.8],
    ],
  );
});

test('rate-limit: bad rules are config errors naming the setting', () => {
  const config = (rules: unknown[]) =>
    buildConfig({ domains: ['example.org'], dataDir: '/tmp/none', pipeline: { rcpt: ['rate-limit'] }, checks: { 'rate-limit': { rules } } }, 'test.yaml', '/tmp');
  assert.throws(() => compileChecks(config([{ count: 'connections', key: 'login', window: '1s', limit: 5 }])), {
    message: 'config error at checks.rate-limit.rules[0].key: key "login" is not known when connections are counted (use one of: client, network, server) (got "login") (in test.yaml). Fix: see the "rate-limit" check in examples/mailward.yaml',
  });
  assert.throws(() => compileChecks(config([{ key: 'login', window: '1h', limit: 5 }, { key: 'login', window: '1h', limit: 9 }])), /checks\.rate-limit\.rules\[1\]\.name: two rules are named "login-any-recipients-1h"/);
  assert.throws(() => compileChecks(config([{ key: 'client', window: '500ms', limit: 5 }])), /rules\[0\]\.window: a window of 500 ms is too short/);
  assert.throws(() => compileChecks(config([{ key: 'client', window: '1h', limit: 5, warnAt: '180%' }])), /rules\[0\]\.warnAt: "180%" is not a share of the limit/);
  assert.throws(() => compileChecks(config([{ key: 'client', window: '1h', limit: 0 }])), /rules\[0\]\.limit/);
});

test('rate-limit: a rule counting only recipients gives the check no connect or data handler (nothing runs there)', async (t) => {
  const te = await makeEnv(t);
  const h = build(rateLimit, {}, te.env);
  assert.deepEqual(Object.keys(h), ['rcpt']);
  const all = build(rateLimit, { rules: [{ count: 'connections', key: 'client', window: '1s', limit: 1 }, { count: 'messages', key: 'client', window: '1h', limit: 1 }] }, te.env);
  assert.deepEqual(Object.keys(all), ['connect', 'data']);
});

test('rate-limit in the default lists: 5 connections a second per /24, the 6th gets 421 4.7.0 and one deferred line', async (t) => {
  const srv = await startServer(t, { config: { checks: { 'rate-limit': { rules: [{ name: 'net-conn', count: 'connections', key: 'network', window: '1s', limit: 5 }] } } } });
  // No pipeline in the config: every listener runs the default connect list.
  assert.deepEqual(srv.config.listeners.map((l) => [l.name, l.pipeline.connect]), [['mx', ['rate-limit']], ['submission', ['rate-limit']], ['submissions', ['rate-limit']]]);
  const open: Dialog[] = [];
  t.after(() => open.forEach((c) => c.close()));
  for (let i = 0; i < 5; i++) {
    const c = await dial(srv.port('mx'));
    open.push(c);
    await c.expect('220 ');
  }
  const sixth = await dial(srv.port('mx'));
  open.push(sixth);
  const r = await sixth.expect('421');
  assert.equal(r.raw, '421 4.7.0 Too many connections, try again later\r\n');
  await sixth.closed();
  await srv.waitForLog((l) => l.check === 'rate-limit');
  const refusals = srv.logs.filter((l) => l.check === 'rate-limit');
  assert.equal(refusals.length, 1);
  const { time: _time, pid: _pid, hostname: _host, session, ...line } = refusals[0]!;
  assert.equal(typeof session, 'string');
  assert.deepEqual(line, {
    level: 30,
    event: 'deferred',
    client: '127.0.0.1',
    listener: 'mx',
    stage: 'connect',
    check: 'rate-limit',
    reason: 'rule net-conn: network 127.0.0.0/24 at 6 connections in 1s, limit 5',
    reply: '421 4.7.0 Too many connections, try again later',
    msg: 'deferred',
  });
});

test('rate-limit in the default lists: messages per client are counted at end of DATA, a login\'s too (before permit-login)', async (t) => {
  const rules = [
    { name: 'client-messages', count: 'messages', key: 'client', window: '1h', limit: 2, listeners: ['mx'] },
    { name: 'login-messages', count: 'messages', key: 'login', window: '1h', limit: 1 },
  ];
  const srv = await startServer(t, { users: [['bob@example.org', 'hunter2hunter2']], config: { checks: { 'rate-limit': { rules } } } });
  assert.deepEqual(srv.config.listeners[0]!.pipeline.data, ['sender-login', 'outbound-guard', 'rate-limit', 'permit-login', 'spam']);
  const send = async (c: Dialog, from: string, to: string): Promise<string> => {
    await c.say(`MAIL FROM:<${from}>`).expect('250');
    await c.say(`RCPT TO:<${to}>`).expect('250');
    await c.say('DATA').expect('354');
    c.send(`From: <${from}>\r\nTo: <${to}>\r\nSubject: count me\r\n\r\nhello\r\n.\r\n`);
    return (await c.read()).raw;
  };
  const mx = await dial(srv.port('mx'));
  t.after(() => mx.close());
  await mx.expect('220 ');
  await mx.say('EHLO sender.example').expect('250');
  assert.match(await send(mx, 'a@sender.example', 'bob@example.org'), /^250 /);
  assert.match(await send(mx, 'a@sender.example', 'bob@example.org'), /^250 /);
  assert.equal(await send(mx, 'a@sender.example', 'bob@example.org'), '450 4.7.1 Rate limit exceeded: too many messages, try again later\r\n');
  await srv.waitForMail('bob@example.org', 2);
  const refusal = await srv.waitForLog((l) => l.event === 'deferred' && l.check === 'rate-limit');
  assert.deepEqual([refusal.stage, refusal.reason, refusal.reply], ['data', 'rule client-messages: client 127.0.0.1 at 3 messages in 1h, limit 2', '450 4.7.1 Rate limit exceeded: too many messages, try again later']);

  // A login's message is counted before permit-login ends the data list for it.
  const sub = await dial(srv.port('submission'));
  t.after(() => sub.close());
  await sub.expect('220 ');
  await sub.say('EHLO laptop').expect('250');
  await sub.say('STARTTLS').expect('220');
  await sub.startTls();
  await sub.say('EHLO laptop').expect('250');
  await sub.say(authPlain('bob@example.org', 'hunter2hunter2')).expect('235');
  assert.match(await send(sub, 'bob@example.org', 'bob@example.org'), /^250 /);
  assert.equal(await send(sub, 'bob@example.org', 'bob@example.org'), '450 4.7.1 Rate limit exceeded: too many messages, try again later\r\n');
  const login = await srv.waitForLog((l) => l.event === 'deferred' && l.check === 'rate-limit' && l.listener === 'submission');
  assert.deepEqual([login.stage, login.login, login.reason], ['data', 'bob@example.org', 'rule login-messages: login bob@example.org at 2 messages in 1h, limit 1']);
  await srv.waitForMail('bob@example.org', 3);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(srv.mailbox('bob@example.org').length, 3);
});
