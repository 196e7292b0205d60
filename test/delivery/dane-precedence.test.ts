// DANE (RFC 7672) together with REQUIRETLS (RFC 8689) and MTA-STS (RFC 8461), against real
// loopback programs: unbound validating a zone signed in the test, an HTTPS policy server for the
// MTA-STS policies published beside the TLSA records, SMTP sinks with a certificate from a test CA
// the client trusts (so MTA-STS alone would accept it), and a STARTTLS-stripping proxy. DANE
// decides for a host with secure TLSA records: a mismatch defers even where MTA-STS would pass,
// and a match delivers even where the MTA-STS policy does not list the host.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { MxTransport } from '../../src/delivery/mx.ts';
import { DaneResolver } from '../../src/delivery/tls-policy/dane.ts';
import { MtaStsPolicies } from '../../src/delivery/tls-policy/mta-sts.ts';
import { StoreTlsCounter } from '../../src/delivery/tls-policy/tls-rpt.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { policyText } from '../../src/core/mta-sts.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { captureLog } from '../queue/helpers.ts';
import { startUnbound } from '../harness/unbound.ts';
import { startCa } from '../harness/test-ca.ts';
import { localhostCert, outboundMessage, startSink, startStrippingProxy, type Sink } from './sink.ts';
import { startPolicyServer } from './policy-server.ts';

const CLIENT = { heloName: 'mx.example.org', connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 5000 };
const WRONG = `3 1 1 ${'00'.repeat(32)}`;

/** Domains under dane.test: which TLSA record mx.<d> gets, and the MX pattern of an enforce MTA-STS policy if any. */
const SIGNED: Record<string, { tlsa: 'right' | 'wrong' | 'pkix'; sts?: string }> = {
  rt: { tlsa: 'right' },
  rtbad: { tlsa: 'wrong' },
  rtnoext: { tlsa: 'right' },
  strip: { tlsa: 'right' },
  both: { tlsa: 'wrong', sts: 'mx.both.dane.test' },
  unlisted: { tlsa: 'right', sts: 'mx.elsewhere.example' },
  // Only a PKIX-EE record: unusable for SMTP (RFC 7672 §3.1.3), so DANE authenticates nothing.
  pkix: { tlsa: 'pkix', sts: 'mx.pkix.dane.test' },
};
const TLSA = (kind: 'right' | 'wrong' | 'pkix', spki: string): string => (kind === 'wrong' ? WRONG : `${kind === 'right' ? 3 : 1} 1 1 ${spki}`);

interface Rig {
  store: SqliteStore;
  counter: StoreTlsCounter;
  log: ReturnType<typeof captureLog>;
  metrics: Metrics;
  /** A sink playing every MX host, with a certificate valid for all their names under the test CA. */
  sink(o?: { requireTls?: boolean }): Promise<Sink>;
  send(port: number, to: string, requireTls?: boolean): Promise<{ outcome: string; reply: string }>;
}

async function rig(t: TestContext): Promise<Rig> {
  const ca = startCa(t);
  const leaf = ca.issue(Object.keys(SIGNED).map((d) => `mx.${d}.dane.test`));
  const spki = createHash('sha256').update(new X509Certificate(leaf.certPem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
  const records = Object.entries(SIGNED).flatMap(([d, o]) => [
    `${d} IN MX 10 mx.${d}`,
    `mx.${d} IN A 127.0.0.1`,
    `_25._tcp.mx.${d} IN TLSA ${TLSA(o.tlsa, spki)}`,
    ...(o.sts ? [`_mta-sts.${d} IN TXT "v=STSv1; id=1"`] : []),
  ]);
  const unbound = await startUnbound(t, [
    { name: 'dane.test', signed: true, records },
    { name: 'plain.test', signed: false, records: ['open IN MX 10 mx.open', 'mx.open IN A 127.0.0.1'] },
  ]);
  const dns = new Resolver({ timeout: 3000, tries: 1 });
  dns.setServers([unbound.server]);
  const stsDomains = Object.entries(SIGNED).filter(([, o]) => o.sts).map(([d]) => `${d}.dane.test`);
  const policy = await startPolicyServer(t, ca, stsDomains);
  for (const d of stsDomains) policy.policies.set(d, policyText({ mode: 'enforce', mx: [SIGNED[d.split('.')[0]!]!.sts!], maxAge: 86400 }));
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-dane-sts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SqliteStore({ path: path.join(dir, 'state.sqlite') }, silentLogger());
  t.after(() => store.close());
  const log = captureLog();
  const metrics = new Metrics({ processMetrics: false });
  t.after(metrics.attach());
  const addresses = Object.fromEntries(stsDomains.map((d) => [`mta-sts.${d}`, `127.0.0.1:${policy.port}`]));
  const mtaSts = new MtaStsPolicies({ dns, store, log: log.log, extraCa: ca.caPem, addresses, fetchTimeoutMs: 5000 });
  const counter = new StoreTlsCounter({ store, log: log.log });
  const dane = new DaneResolver({ servers: [unbound.server], trustedResolvers: [], timeoutMs: 3000, log: log.log });
  const context = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
  return {
    store,
    counter,
    log,
    metrics,
    sink: (o = {}) => startSink(t, { tls: context, requireTls: o.requireTls === true }),
    async send(port, to, requireTls = false) {
      const tr = new MxTransport({ dns, port, client: CLIENT, concurrencyPerDomain: 5, ownNames: [], log: log.log, dane, mtaSts, tlsReports: counter });
      const [res] = await tr.deliver(outboundMessage(to, undefined, requireTls ? { requireTls } : {}), [0]);
      return { outcome: res!.outcome, reply: res!.reply };
    },
  };
}

const decisions = (r: Rig, policy: string): string[] =>
  r.log
    .events('tls-policy')
    .filter((l) => l.policy === policy)
    .map((l) => `${String(l.domain)} ${String(l.result)}`);

test('REQUIRETLS over DANE: a TLSA match to a host offering REQUIRETLS delivers; a mismatch, a host without REQUIRETLS or an unsigned domain defers with nothing handed over', async (t) => {
  const r = await rig(t);
  const good = await r.sink({ requireTls: true });
  const ok = await r.send(good.port, 'bob@rt.dane.test', true);
  assert.equal(ok.outcome, 'ok', ok.reply);
  assert.equal(good.messages[0]?.secure, true);
  assert.equal(good.messages[0]?.requireTls, true, 'MAIL FROM to the next hop carried REQUIRETLS');

  const bad = await r.sink({ requireTls: true });
  const mismatch = await r.send(bad.port, 'bob@rtbad.dane.test', true);
  assert.equal(mismatch.outcome, 'temporary', mismatch.reply);
  assert.match(mismatch.reply, /^451 4\.7\.5 DANE: mx\.rtbad\.dane\.test .*tlsa-invalid/);
  assert.equal(bad.rcpts.length, 0, 'not even the envelope went to a host the TLSA records do not name');

  // The TLSA records match, but the host cannot carry REQUIRETLS on (RFC 8689 §4.2.1).
  const noExt = await r.sink();
  const refused = await r.send(noExt.port, 'bob@rtnoext.dane.test', true);
  assert.equal(refused.outcome, 'temporary', refused.reply);
  assert.match(refused.reply, /^450 4\.7\.30 REQUIRETLS message not sent to mx\.rtnoext\.dane\.test/);
  assert.equal(noExt.rcpts.length, 0);
  // Ordinary mail goes there over DANE-verified TLS.
  assert.equal((await r.send(noExt.port, 'bob@rtnoext.dane.test')).outcome, 'ok');
  assert.equal(noExt.messages[0]?.requireTls, false);

  // Unsigned, no MTA-STS: nothing can verify the host, so it is not even connected to.
  const open = await r.sink({ requireTls: true });
  const none = await r.send(open.port, 'bob@open.plain.test', true);
  assert.deepEqual(none, { outcome: 'temporary', reply: '450 4.7.10 REQUIRETLS: open.plain.test has no MTA-STS policy or DANE TLSA records to verify MX host mx.open.plain.test' });
  assert.equal(open.connections, 0);

  assert.deepEqual(decisions(r, 'requiretls'), ['rt.dane.test success', 'rtnoext.dane.test not-offered', 'open.plain.test no-verified-tls']);
  // The TLSA check itself passed at rtnoext: a DANE success for TLS-RPT, twice (both messages).
  assert.deepEqual(decisions(r, 'tlsa'), ['rt.dane.test success', 'rtbad.dane.test tlsa-invalid', 'rtnoext.dane.test success', 'rtnoext.dane.test success', 'open.plain.test skipped']);
});

test('DANE behind a STARTTLS-stripping proxy: deferred with nothing handed over, counted and recorded for TLS-RPT', async (t) => {
  const r = await rig(t);
  const behind = await r.sink();
  const proxy = await startStrippingProxy(t, behind.port);
  const res = await r.send(proxy, 'bob@strip.dane.test');
  assert.equal(res.outcome, 'temporary', res.reply);
  assert.match(res.reply, /^451 4\.7\.5 DANE: mx\.strip\.dane\.test publishes TLSA records and failed TLS authentication: starttls-not-supported/);
  assert.equal(behind.connections, 1, 'the proxy did connect through');
  assert.equal(behind.rcpts.length, 0, 'no clear-text fallback: not even the envelope');
  assert.deepEqual(decisions(r, 'tlsa'), ['strip.dane.test starttls-not-supported']);
  const exposed = await r.metrics.registry.getSingleMetricAsString('mailward_tls_policy_decisions_total');
  assert.match(exposed, /mailward_tls_policy_decisions_total\{policy="tlsa",mode="dane",result="starttls-not-supported"\} 1$/m);
  await r.counter.flushed();
  const day = new Date().toISOString().slice(0, 10);
  assert.deepEqual(await r.store.hgetall(`tlsrpt:counts:${day}:strip.dane.test`), new Map([['failure\tstarttls-not-supported\tmx.strip.dane.test\t127.0.0.1', 1]]));
});

test('DANE takes precedence over MTA-STS (RFC 8461 §2): a TLSA mismatch defers though MTA-STS would pass; a TLSA match delivers to a host the policy does not list', async (t) => {
  const r = await rig(t);
  // The certificate is valid for mx.both.dane.test under a CA the client trusts, and the enforce
  // policy lists that host: only the TLSA mismatch stands in the way, and it must be enough.
  const both = await r.sink();
  const res = await r.send(both.port, 'bob@both.dane.test');
  assert.equal(res.outcome, 'temporary', res.reply);
  assert.match(res.reply, /^451 4\.7\.5 DANE: mx\.both\.dane\.test .*tlsa-invalid/);
  assert.equal(both.connections, 1, 'no second attempt under MTA-STS');
  assert.equal(both.rcpts.length, 0);

  const unlisted = await r.sink();
  const ok = await r.send(unlisted.port, 'bob@unlisted.dane.test');
  assert.equal(ok.outcome, 'ok', ok.reply);
  assert.equal(unlisted.messages[0]?.secure, true);
  const tlsa = r.log.events('tls-policy').filter((l) => l.policy === 'tlsa');
  assert.deepEqual(tlsa.map((l) => `${String(l.domain)} ${String(l.result)}`), ['both.dane.test tlsa-invalid', 'unlisted.dane.test success']);
  assert.match(String(tlsa[1]!.reason), /MTA-STS policy \(enforce\) of unlisted\.dane\.test not applied: DANE takes precedence/);
  assert.deepEqual(decisions(r, 'sts'), [], 'the MTA-STS policy decided nothing for hosts with TLSA records');
});

test('DANE with no usable TLSA record and an MTA-STS enforce policy: TLS is authenticated by MTA-STS', async (t) => {
  const r = await rig(t);
  // A self-signed certificate: unauthenticated TLS would take it; the enforce policy must not.
  const selfSigned = await startSink(t, { tls: localhostCert().context });
  const res = await r.send(selfSigned.port, 'bob@pkix.dane.test');
  assert.equal(res.outcome, 'temporary', res.reply);
  assert.match(res.reply, /^451 4\.7\.5 MTA-STS policy of pkix\.dane\.test requires TLS with a valid certificate for mx\.pkix\.dane\.test: certificate-not-trusted/);
  assert.equal(selfSigned.rcpts.length, 0);
  const valid = await r.sink();
  const ok = await r.send(valid.port, 'bob@pkix.dane.test');
  assert.equal(ok.outcome, 'ok', ok.reply);
  assert.equal(valid.messages[0]?.secure, true);
  assert.deepEqual(decisions(r, 'sts'), ['pkix.dane.test certificate-not-trusted', 'pkix.dane.test success']);
});
