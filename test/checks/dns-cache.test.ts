// The caching resolver against the loopback DNS server: answers kept for their TTL (A/AAAA) or
// the bounded default (MX, TXT), NXDOMAIN/NODATA kept briefly, SERVFAIL and time-outs never
// kept, concurrent questions sharing one query, a size bound, and mailauth's resolve(name, type).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { CachingResolver, uncachedResolve4, type DnsCacheOptions } from '../../src/checks/lib/dns-cache.ts';
import { startDns, type TestDns } from '../harness/dns.ts';
import { makeClock } from './env.ts';

const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'answered', (e: { code?: string }) => e.code ?? 'no code');

async function setup(t: TestContext, cache: Omit<DnsCacheOptions, 'clock'> = {}) {
  const dns: TestDns = await startDns(t, {
    'example.net': {
      MX: ['10 mx.example.net'],
      TXT: ['v=spf1 -all'],
      names: { mx: { A: ['192.0.2.5', '192.0.2.6'], AAAA: ['2001:db8::5'], ttl: 60 }, zero: { A: ['192.0.2.9'], ttl: 0 } },
    },
    'broken.example': { mode: 'servfail' },
    'slow.example': { mode: 'timeout' },
  });
  const clock = makeClock();
  const r = new CachingResolver({ timeout: 200, tries: 1 }, { ...cache, clock });
  r.setServers([dns.address]);
  return { dns, clock, r };
}

test('dns cache: an A answer is kept for its TTL, and callers asking for TTLs get what is left', async (t) => {
  const { dns, clock, r } = await setup(t);
  assert.deepEqual(await r.resolve4('mx.example.net'), ['192.0.2.5', '192.0.2.6']);
  clock.advance(20_000);
  assert.deepEqual(await r.resolve4('MX.Example.NET', { ttl: true }), [
    { address: '192.0.2.5', ttl: 40 },
    { address: '192.0.2.6', ttl: 40 },
  ]);
  assert.deepEqual(await r.resolve('mx.example.net', 'A'), ['192.0.2.5', '192.0.2.6']);
  assert.equal(dns.queries('mx.example.net', 'A'), 1);
  clock.advance(40_000);
  assert.deepEqual(await r.resolve4('mx.example.net', { ttl: true }), [
    { address: '192.0.2.5', ttl: 60 },
    { address: '192.0.2.6', ttl: 60 },
  ]);
  assert.equal(dns.queries('mx.example.net', 'A'), 2);
  assert.deepEqual(await r.resolve6('mx.example.net'), ['2001:db8::5']);
  assert.deepEqual(await r.resolve6('mx.example.net'), ['2001:db8::5']);
  assert.equal(dns.queries('mx.example.net', 'AAAA'), 1);
});

test('dns cache: uncachedResolve4 asks the server every time and leaves the shared cache alone (dnsbl keeps its own)', async (t) => {
  const { dns, r } = await setup(t);
  const resolve4 = uncachedResolve4(r);
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(await resolve4('mx.example.net', { ttl: true }), [
      { address: '192.0.2.5', ttl: 60 },
      { address: '192.0.2.6', ttl: 60 },
    ]);
  }
  assert.equal(dns.queries('mx.example.net', 'A'), 2);
  assert.equal(r.cacheSize, 0);
});

test('dns cache: a TTL of 0 is used once and not kept', async (t) => {
  const { dns, r } = await setup(t);
  assert.deepEqual(await r.resolve4('zero.example.net'), ['192.0.2.9']);
  assert.deepEqual(await r.resolve4('zero.example.net'), ['192.0.2.9']);
  assert.equal(dns.queries('zero.example.net', 'A'), 2);
});

test('dns cache: MX and TXT are kept for the default time, through resolveX and resolve(name, type) alike', async (t) => {
  const { dns, clock, r } = await setup(t, { defaultTtlMs: 120_000 });
  assert.deepEqual(await r.resolveMx('example.net'), [{ exchange: 'mx.example.net', priority: 10 }]);
  assert.deepEqual(await r.resolve('example.net', 'MX'), [{ exchange: 'mx.example.net', priority: 10 }]);
  assert.deepEqual(await r.resolve('example.net', 'TXT'), [['v=spf1 -all']]);
  assert.deepEqual(await r.resolveTxt('example.net'), [['v=spf1 -all']]);
  assert.deepEqual([dns.queries('example.net', 'MX'), dns.queries('example.net', 'TXT')], [1, 1]);
  clock.advance(119_000);
  await r.resolveMx('example.net');
  assert.equal(dns.queries('example.net', 'MX'), 1);
  clock.advance(1_000);
  await r.resolveMx('example.net');
  assert.equal(dns.queries('example.net', 'MX'), 2);
});

test('dns cache: each caller gets its own list, so sorting one answer changes no other', async (t) => {
  const { r } = await setup(t);
  const first = await r.resolve4('mx.example.net');
  first.reverse();
  first.push('203.0.113.1');
  assert.deepEqual(await r.resolve4('mx.example.net'), ['192.0.2.5', '192.0.2.6']);
});

test('dns cache: NXDOMAIN and NODATA are kept for the negative time, with the codes node gives', async (t) => {
  const { dns, clock, r } = await setup(t, { negativeTtlMs: 10_000 });
  assert.equal(await code(r.resolve4('nope.example.net')), 'ENOTFOUND');
  const again = await r.resolveTxt('nope.example.net').then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.equal(await code(r.resolveTxt('nope.example.net')), 'ENOTFOUND');
  assert.equal(await code(r.resolveMx('mx.example.net')), 'ENODATA');
  assert.equal(await code(r.resolve('mx.example.net', 'MX')), 'ENODATA');
  assert.deepEqual([dns.queries('nope.example.net', 'A'), dns.queries('nope.example.net', 'TXT'), dns.queries('mx.example.net', 'MX')], [1, 1, 1]);
  // The error a kept answer gives looks like the resolver's own.
  assert.ok(again instanceof Error);
  assert.deepEqual([again.message, (again as Error & { hostname?: string }).hostname], ['queryTxt ENOTFOUND nope.example.net', 'nope.example.net']);
  clock.advance(10_000);
  assert.equal(await code(r.resolve4('nope.example.net')), 'ENOTFOUND');
  assert.equal(dns.queries('nope.example.net', 'A'), 2);
});

test('dns cache: SERVFAIL and time-outs are never kept: the next question asks again', async (t) => {
  const { dns, r } = await setup(t);
  assert.equal(await code(r.resolveTxt('broken.example')), 'ESERVFAIL');
  const servfails = dns.queries('broken.example', 'TXT');
  assert.equal(await code(r.resolveTxt('broken.example')), 'ESERVFAIL');
  assert.equal(dns.queries('broken.example', 'TXT'), 2 * servfails);
  assert.equal(await code(r.resolve4('slow.example')), 'ETIMEOUT');
  dns.setMode('slow.example', 'answer');
  dns.set('slow.example', 'A', ['192.0.2.77']);
  assert.deepEqual(await r.resolve4('slow.example'), ['192.0.2.77']);
  // Only the answer is kept; neither failure is.
  assert.equal(r.cacheSize, 1);
});

test('dns cache: concurrent identical questions share one query', async (t) => {
  const { dns, r } = await setup(t);
  const answers = await Promise.all([r.resolveTxt('example.net'), r.resolve('example.net', 'TXT'), r.resolveTxt('EXAMPLE.net'), r.resolve4('mx.example.net'), r.resolve4('mx.example.net', { ttl: true })]);
  assert.deepEqual(answers.slice(0, 3), [[['v=spf1 -all']], [['v=spf1 -all']], [['v=spf1 -all']]]);
  assert.deepEqual(answers[3], ['192.0.2.5', '192.0.2.6']);
  assert.deepEqual(answers[4], [
    { address: '192.0.2.5', ttl: 60 },
    { address: '192.0.2.6', ttl: 60 },
  ]);
  assert.deepEqual([dns.queries('example.net', 'TXT'), dns.queries('mx.example.net', 'A')], [1, 1]);
  // Negative answers are shared too, each caller with an error of its own.
  const errors = await Promise.all([r.resolveMx('mx.example.net'), r.resolveMx('mx.example.net')].map((p) => p.catch((e: unknown) => e)));
  assert.equal(dns.queries('mx.example.net', 'MX'), 1);
  assert.ok(errors[0] instanceof Error && errors[1] instanceof Error && errors[0] !== errors[1]);
});

test('dns cache: the size bound drops the least recently used answer', async (t) => {
  const { dns, r } = await setup(t, { maxEntries: 2 });
  await r.resolveMx('example.net');
  await r.resolveTxt('example.net');
  await r.resolveMx('example.net'); // now the TXT answer is the oldest used
  await r.resolve4('mx.example.net');
  assert.equal(r.cacheSize, 2);
  await r.resolveMx('example.net');
  await r.resolveTxt('example.net');
  assert.deepEqual([dns.queries('example.net', 'MX'), dns.queries('example.net', 'TXT')], [1, 2]);
});

test('dns cache: types it does not keep go to the server every time', async (t) => {
  const { dns, r } = await setup(t);
  // The test server has no SRV records: NODATA, asked twice.
  assert.equal(await code(r.resolve('example.net', 'SRV')), 'ENODATA');
  assert.equal(await code(r.resolve('example.net', 'SRV')), 'ENODATA');
  assert.equal(dns.queries('example.net'), 2);
  assert.equal(r.cacheSize, 0);
});
