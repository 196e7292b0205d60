// DNS outages are logged once: a resolver that never answers defers every message (4xx) with one
// warning when the outage starts, and one info line with its length and the number of deferrals
// when answers resume. The same for a DNS list's zone, which is skipped instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { dnsbl } from '../../src/checks/dnsbl.ts';
import { build, ctx, makeEnv } from './env.ts';

const N = 4;

async function mailFrom(port: number, from: string): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO client.example').expect('250');
  const r = await c.say(`MAIL FROM:<${from}>`).read();
  c.close();
  return r.raw.trimEnd();
}

test('a resolver that never answers: N deferrals, one outage line; answers again: one recovery line', async (t) => {
  const dns = await startDns(t, { 'far.example': { MX: ['10 mx.far.example'], names: { mx: { A: ['198.51.100.7'] } }, mode: 'timeout' } });
  const srv = await startServer(t, {
    config: {
      dns: { servers: [dns.address], timeout: 200, tries: 1 },
      pipeline: { mail: ['sender-domain'] },
    },
  });
  const port = srv.port('mx');
  for (let i = 0; i < N; i++) {
    assert.equal(await mailFrom(port, `a${i}@far.example`), `450 4.1.8 <a${i}@far.example>: Sender address rejected: Domain not found`);
  }
  const outage = srv.logs.filter((l) => l.event === 'dns-outage');
  assert.equal(outage.length, 1);
  assert.equal(outage[0]!.level, 40);
  assert.equal(outage[0]!.servers, dns.address);
  assert.equal(outage[0]!.domain, 'far.example');
  assert.match(String(outage[0]!.msg), new RegExp(`^DNS resolver ${dns.address} is not answering \\(MX: ETIMEOUT looking up far\\.example\\);.*dns\\.servers.*dns\\.timeout`));
  // Each deferral is still there, at debug.
  assert.equal(srv.logs.filter((l) => l.msg === 'sender domain lookup failed; deferring' && l.level === 20).length, N);
  assert.equal(srv.logs.filter((l) => l.msg === 'sender domain lookup failed; deferring' && l.level !== 20).length, 0);
  assert.equal(srv.logs.filter((l) => l.event === 'dns-recovered').length, 0);

  dns.setMode('far.example', 'answer');
  assert.match(await mailFrom(port, 'back@far.example'), /^250 /);
  const recovered = await srv.waitForLog((l) => l.event === 'dns-recovered');
  assert.equal(recovered.level, 30);
  assert.equal(recovered.failures, N);
  assert.equal(typeof recovered.downMs, 'number');
  assert.match(await mailFrom(port, 'again@far.example'), /^250 /);
  assert.equal(srv.logs.filter((l) => l.event === 'dns-outage').length, 1);
  assert.equal(srv.logs.filter((l) => l.event === 'dns-recovered').length, 1);
});

test('answers from the cache during an outage do not end it', async (t) => {
  const dns = await startDns(t, {
    'cached.example': { MX: ['10 mx.cached.example'] },
    'far.example': { MX: ['10 mx.far.example'] },
  });
  const srv = await startServer(t, { config: { dns: { servers: [dns.address], timeout: 200, tries: 1 }, pipeline: { mail: ['sender-domain'] } } });
  const port = srv.port('mx');
  assert.match(await mailFrom(port, 'a@cached.example'), /^250 /); // now in the answer cache
  dns.setMode('cached.example', 'timeout');
  dns.setMode('far.example', 'timeout');
  assert.match(await mailFrom(port, 'a@far.example'), /^450 4\.1\.8 /);
  assert.match(await mailFrom(port, 'b@cached.example'), /^250 /); // from the cache
  assert.match(await mailFrom(port, 'b@far.example'), /^450 4\.1\.8 /);
  // The cached answer made the watch ask the server itself; that question timed out too.
  await new Promise((r) => setTimeout(r, 400)); // past the probe's 200 ms time-out
  assert.equal(dns.queries('cached.example', 'MX'), 2, 'the first lookup, then the probe');
  assert.equal(srv.logs.filter((l) => l.event === 'dns-recovered').length, 0);
  assert.equal(srv.logs.filter((l) => l.event === 'dns-outage').length, 1);
});

test('dnsbl: a zone that never answers is skipped with one line per outage, not one per client', async (t) => {
  const dns = await startDns(t, { 'list.example': { mode: 'timeout', names: { '2.0.0.127': { A: ['127.0.0.2'] } } } });
  const { env, logs } = await makeEnv(t, { dns, dnsTimeoutMs: 150 });
  const h = build(dnsbl, { zones: [{ zone: 'list.example', action: 'reject' }], timeout: 100, negativeTtl: 1 }, env);
  for (let i = 1; i <= N; i++) assert.deepEqual(await h.connect!(ctx({ clientAddress: `192.0.2.${i}` })), { kind: 'pass' });
  const outage = logs.filter((l) => l.event === 'dnsbl-outage');
  assert.equal(outage.length, 1);
  assert.equal(outage[0]!.zone, 'list.example');
  assert.equal(outage[0]!.level, 40);
  assert.match(outage[0]!.msg, /^DNS list list\.example is not answering through 127\.0\.0\.1:\d+ .*checks\.dnsbl\.zones/);
  assert.equal(logs.filter((l) => l.msg === 'DNS list lookup failed; zone skipped' && l.level === 20).length, N);

  dns.setMode('list.example', 'answer');
  const v = await h.connect!(ctx({ clientAddress: '127.0.0.2' }));
  assert.equal(v.kind, 'reject');
  const recovered = logs.filter((l) => l.event === 'dnsbl-recovered');
  assert.equal(recovered.length, 1);
  assert.equal(recovered[0]!.failures, N);
  assert.equal(recovered[0]!.level, 30);
  assert.equal(logs.filter((l) => l.event === 'dnsbl-outage').length, 1);
});
