// The dnsbl check against a real DNS server on loopback: listed and not listed, return-code
// filters, IPv6 nibble names, a zone that never answers (skipped, logged, never a reject), the
// TTL cache, and its place in the pipeline runner's order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dnsbl } from '../../src/checks/dnsbl.ts';
import { clientAccess } from '../../src/checks/client-access.ts';
import { runStage } from '../../src/pipeline/runner.ts';
import { startDns } from '../harness/dns.ts';
import { build, ctx, makeEnv, place } from './env.ts';

// 2001:db8::1 reversed nibble by nibble (RFC 5782 §2.4).
const V6_NAME = '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2';

async function setup(t: import('node:test').TestContext) {
  const dns = await startDns(t, {
    'bl.example': {
      ttl: 60,
      names: {
        '2.2.0.192': { A: ['127.0.0.2'], TXT: ['listed'] },
        '3.2.0.192': { A: ['127.0.0.20'] },
        '4.2.0.192': { A: ['127.255.255.254'] },
        [V6_NAME]: { A: ['127.0.0.3'] },
      },
    },
    'score.example': { names: { '2.2.0.192': { A: ['127.0.0.4'] }, '5.2.0.192': { A: ['127.0.0.4'] } } },
    'slow.example': { mode: 'timeout' },
    'broken.example': { mode: 'servfail' },
  });
  const te = await makeEnv(t, { dns });
  return { dns, ...te };
}

test('dnsbl: a listed IPv4 client is rejected with the zone named', async (t) => {
  const { env } = await setup(t);
  const h = build(dnsbl, { zones: [{ zone: 'bl.example' }] }, env);
  const v = await h.connect!(ctx({ clientAddress: '192.0.2.2' }));
  assert.deepEqual(v, {
    kind: 'reject',
    reply: { code: 554, enhanced: '5.7.1', text: 'Service unavailable; client [192.0.2.2] blocked using bl.example' },
    reason: 'client 192.0.2.2 listed in bl.example (127.0.0.2)',
  });
});

test('dnsbl: a client not listed (NXDOMAIN) passes', async (t) => {
  const { env, dns } = await setup(t);
  const h = build(dnsbl, { zones: [{ zone: 'bl.example' }] }, env);
  assert.deepEqual(await h.connect!(ctx({ clientAddress: '192.0.2.10' })), { kind: 'pass' });
  assert.equal(dns.queries('10.2.0.192.bl.example', 'A'), 1);
});

test('dnsbl: only the configured return codes count; list error codes never do', async (t) => {
  const { env } = await setup(t);
  const narrow = build(dnsbl, { zones: [{ zone: 'bl.example', codes: ['127.0.0.2-127.0.0.11'] }] }, env);
  assert.equal((await narrow.connect!(ctx({ clientAddress: '192.0.2.3' }))).kind, 'pass'); // answers 127.0.0.20
  assert.equal((await narrow.connect!(ctx({ clientAddress: '192.0.2.2' }))).kind, 'reject');
  const exact = build(dnsbl, { zones: [{ zone: 'bl.example', codes: ['127.0.0.20'] }] }, env);
  assert.equal((await exact.connect!(ctx({ clientAddress: '192.0.2.3' }))).kind, 'reject');
  assert.equal((await exact.connect!(ctx({ clientAddress: '192.0.2.2' }))).kind, 'pass');
  // Without codes, 127.255.255.x (Spamhaus' "query refused" answers) is not a listing.
  const any = build(dnsbl, { zones: [{ zone: 'bl.example' }] }, env);
  assert.equal((await any.connect!(ctx({ clientAddress: '192.0.2.4' }))).kind, 'pass');
  assert.equal((await any.connect!(ctx({ clientAddress: '192.0.2.3' }))).kind, 'reject');
});

test('dnsbl: bad return codes are refused by the option schema', () => {
  const r = dnsbl.options.safeParse({ zones: [{ zone: 'bl.example', codes: ['127.0.0.11-127.0.0.2'] }] });
  assert.equal(r.success, false);
  assert.match(r.error?.issues[0]?.message ?? '', /is not a return code or range/);
  assert.equal(dnsbl.options.safeParse({ zones: [{ zone: 'not a zone' }] }).success, false);
});

test('dnsbl: IPv6 clients are looked up by reversed nibbles; IPv4-mapped clients as IPv4', async (t) => {
  const { env, dns } = await setup(t);
  const h = build(dnsbl, { zones: [{ zone: 'bl.example' }] }, env);
  const v = await h.rcpt!(ctx({ clientAddress: '2001:db8::1' }), undefined as never);
  assert.equal(v.kind, 'reject');
  assert.equal(v.kind === 'reject' && v.reply.text, 'Service unavailable; client [2001:db8::1] blocked using bl.example');
  assert.equal(dns.queries(`${V6_NAME}.bl.example`, 'A'), 1);
  const mapped = await h.connect!(ctx({ clientAddress: '::ffff:192.0.2.2' }));
  assert.equal(mapped.kind === 'reject' && mapped.reply.text, 'Service unavailable; client [192.0.2.2] blocked using bl.example');
});

test('dnsbl: a zone that times out or fails is skipped and logged, never a reject; the next zone still counts', async (t) => {
  const { env, logs } = await setup(t);
  const h = build(
    dnsbl,
    {
      zones: [
        { zone: 'slow.example', action: 'reject' },
        { zone: 'broken.example', action: 'reject' },
        { zone: 'score.example', action: 'score', points: 3 },
      ],
    },
    env,
  );
  const v = await h.connect!(ctx({ clientAddress: '192.0.2.2' }));
  assert.deepEqual(v, { kind: 'score', points: 3, rule: 'dnsbl:score.example' });
  const skipped = logs.filter((l) => l.msg === 'DNS list lookup failed; zone skipped');
  assert.deepEqual(
    skipped.map((l) => [l.zone, l.err]),
    [
      ['slow.example', 'ETIMEOUT'],
      ['broken.example', 'ESERVFAIL'],
    ],
  );
});

test('dnsbl: score zones add up; a reject zone listed later still rejects', async (t) => {
  const { env } = await setup(t);
  const h = build(
    dnsbl,
    {
      zones: [
        { zone: 'score.example', action: 'score', points: 2.5 },
        { zone: 'bl.example', action: 'score', points: 1 },
      ],
    },
    env,
  );
  assert.deepEqual(await h.connect!(ctx({ clientAddress: '192.0.2.2' })), { kind: 'score', points: 3.5, rule: 'dnsbl:score.example,bl.example' });
  const mixed = build(dnsbl, { zones: [{ zone: 'score.example', action: 'score' }, { zone: 'bl.example' }] }, env);
  assert.equal((await mixed.connect!(ctx({ clientAddress: '192.0.2.2' }))).kind, 'reject');
});

test('dnsbl: answers are cached for their TTL, then asked again', async (t) => {
  const { env, dns, clock } = await setup(t);
  const h = build(dnsbl, { zones: [{ zone: 'bl.example' }] }, env);
  const name = '2.2.0.192.bl.example';
  assert.equal((await h.connect!(ctx({ clientAddress: '192.0.2.2' }))).kind, 'reject');
  // The list drops the entry, but our copy is good for the record's TTL (60 s).
  dns.set(name, 'A', []);
  clock.advance(59_000);
  assert.equal((await h.rcpt!(ctx({ clientAddress: '192.0.2.2' }), undefined as never)).kind, 'reject');
  assert.equal(dns.queries(name, 'A'), 1);
  clock.advance(2_000);
  assert.equal((await h.connect!(ctx({ clientAddress: '192.0.2.2' }))).kind, 'pass');
  assert.equal(dns.queries(name, 'A'), 2);
  // "Not listed" is remembered for negativeTtl (default 1 minute).
  dns.set(name, 'A', ['127.0.0.2']);
  assert.equal((await h.connect!(ctx({ clientAddress: '192.0.2.2' }))).kind, 'pass');
  assert.equal(dns.queries(name, 'A'), 2);
  clock.advance(60_001);
  assert.equal((await h.connect!(ctx({ clientAddress: '192.0.2.2' }))).kind, 'reject');
  assert.equal(dns.queries(name, 'A'), 3);
});

test('dnsbl: the cache holds at most cacheSize answers', async (t) => {
  const { env, dns } = await setup(t);
  const h = build(dnsbl, { zones: [{ zone: 'bl.example' }], cacheSize: 1 }, env);
  await h.connect!(ctx({ clientAddress: '192.0.2.2' }));
  await h.connect!(ctx({ clientAddress: '192.0.2.3' })); // evicts 192.0.2.2
  await h.connect!(ctx({ clientAddress: '192.0.2.2' }));
  assert.equal(dns.queries('2.2.0.192.bl.example', 'A'), 2);
});

test('dnsbl: logged-in clients are not looked up unless asked', async (t) => {
  const { env, dns } = await setup(t);
  const h = build(dnsbl, { zones: [{ zone: 'bl.example' }] }, env);
  assert.equal((await h.rcpt!(ctx({ clientAddress: '192.0.2.2', login: 'alice@example.org' }), undefined as never)).kind, 'pass');
  assert.equal(dns.queries('2.2.0.192.bl.example'), 0);
  const strict = build(dnsbl, { zones: [{ zone: 'bl.example' }], skipLogins: false }, env);
  assert.equal((await strict.rcpt!(ctx({ clientAddress: '192.0.2.2', login: 'alice@example.org' }), undefined as never)).kind, 'reject');
});

test('dnsbl in the runner: a client-access OK placed first skips the list; placed after, the list rejects first', async (t) => {
  const { env, dns } = await setup(t);
  const list = place('dnsbl', build(dnsbl, { zones: [{ zone: 'bl.example' }] }, env));
  const access = place('client-access', build(clientAccess, { entries: { '192.0.2.0/24': 'ok' } }, env), true);
  const base = { session: ctx({ clientAddress: '192.0.2.2' }).session };
  const first = await runStage('connect', [access, list], base, (h, c) => h.connect?.(c), env.log);
  assert.equal(first.verdict.kind, 'permit');
  assert.equal(first.check, 'client-access');
  assert.equal(dns.queries('2.2.0.192.bl.example'), 0);
  const second = await runStage('connect', [list, access], base, (h, c) => h.connect?.(c), env.log);
  assert.equal(second.verdict.kind, 'reject');
  assert.equal(second.check, 'dnsbl');
});
