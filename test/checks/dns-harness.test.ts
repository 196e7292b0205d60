// The loopback DNS server the check tests stand on: every record type it serves, TTLs, CNAME
// chains, NXDOMAIN vs no data, long TXT over TCP, names outside its zones, and zone modes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startDns } from '../harness/dns.ts';

const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'answered', (e: { code?: string }) => e.code ?? 'no code');

test('dns harness: A, AAAA, MX, TXT, PTR and CNAME with their TTLs', async (t) => {
  const dns = await startDns(t, {
    'example.net': {
      ttl: 120,
      MX: ['10 mx.example.net', '20 mx2.example.net'],
      TXT: ['v=spf1 -all', ['two', 'strings']],
      names: { mx: { A: ['192.0.2.5'], AAAA: ['2001:db8::5'], ttl: 30 }, www: { CNAME: 'mx.example.net' } },
    },
    '2.0.192.in-addr.arpa': { names: { '5': { PTR: ['mx.example.net'] } } },
  });
  const r = dns.resolver();
  assert.deepEqual(await r.resolveMx('example.net'), [
    { exchange: 'mx.example.net', priority: 10 },
    { exchange: 'mx2.example.net', priority: 20 },
  ]);
  assert.deepEqual(await r.resolveTxt('example.net'), [['v=spf1 -all'], ['two', 'strings']]);
  assert.deepEqual(await r.resolve4('mx.example.net', { ttl: true }), [{ address: '192.0.2.5', ttl: 30 }]);
  assert.deepEqual(await r.resolve6('mx.example.net', { ttl: true }), [{ address: '2001:db8::5', ttl: 30 }]);
  assert.deepEqual(await r.resolve4('www.example.net'), ['192.0.2.5']);
  assert.deepEqual(await r.resolveCname('www.example.net'), ['mx.example.net']);
  assert.deepEqual(await r.reverse('192.0.2.5'), ['mx.example.net']);
});

test('dns harness: NXDOMAIN, no data, outside the zones, long TXT, set() and zone modes', async (t) => {
  const dns = await startDns(t, { 'example.net': { A: ['192.0.2.1'] }, 'slow.example': { mode: 'timeout' } });
  const r = dns.resolver(200);
  assert.equal(await code(r.resolve4('nope.example.net')), 'ENOTFOUND');
  assert.equal(await code(r.resolveMx('example.net')), 'ENODATA');
  assert.equal(await code(r.resolve4('elsewhere.invalid')), 'EREFUSED');
  assert.equal(await code(r.resolve4('slow.example')), 'ETIMEOUT');
  // 3000 octets do not fit a UDP answer: the client retries over TCP.
  dns.set('big.example.net', 'TXT', ['x'.repeat(3000)]);
  assert.equal((await r.resolveTxt('big.example.net'))[0]!.join('').length, 3000);
  dns.set('example.net', 'A', ['192.0.2.2'], 5);
  assert.deepEqual(await r.resolve4('example.net', { ttl: true }), [{ address: '192.0.2.2', ttl: 5 }]);
  dns.setMode('example.net', 'servfail');
  assert.equal(await code(r.resolve4('example.net')), 'ESERVFAIL');
  assert.equal(dns.queries('example.net', 'A'), 2);
  assert.throws(() => dns.set('x.other.example', 'A', ['192.0.2.9']), /lies in no zone/);
});
