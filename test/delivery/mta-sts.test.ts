// MTA-STS (RFC 8461) on direct MX delivery, against real loopback programs: a DNS server, an
// HTTPS policy server with a certificate from a test CA, and SMTP sinks playing the MX hosts —
// with a valid certificate, a certificate for another name, an expired one, no STARTTLS, and
// behind a proxy that strips STARTTLS. Enforce mode refuses each failure (4xx, nothing handed
// over); testing mode reports it and delivers; every decision is counted for TLS-RPT. With no
// policy the stripping proxy gets the mail in clear (opportunistic), logged and counted as such.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MxTransport } from '../../src/delivery/mx.ts';
import { MtaStsPolicies } from '../../src/delivery/tls-policy/mta-sts.ts';
import { StoreTlsCounter } from '../../src/delivery/tls-policy/tls-rpt.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { policyText } from '../../src/core/mta-sts.ts';
import { startDns, type TestDns } from '../harness/dns.ts';
import { startCa, type TestCa } from '../harness/test-ca.ts';
import { captureLog } from '../queue/helpers.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { outboundMessage, startSink, startStrippingProxy, type Sink } from './sink.ts';
import { startPolicyServer, type PolicyServer } from './policy-server.ts';

const CLIENT = { heloName: 'mx.example.org', connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 5000 };

const DOMAINS = ['good.example', 'wrongname.example', 'expired.example', 'plain.example', 'strip.example', 'wild.example', 'testing.example', 'broken.example'];

interface Rig {
  ca: TestCa;
  dns: TestDns;
  policy: PolicyServer;
  store: SqliteStore;
  counter: StoreTlsCounter;
  policies: MtaStsPolicies;
  log: ReturnType<typeof captureLog>;
  /** A transport whose MX port is `port` (each case has its own sink). */
  transport(port: number): MxTransport;
}

async function rig(t: TestContext): Promise<Rig> {
  const ca = startCa(t);
  const zones: Record<string, object> = {};
  for (const d of DOMAINS) {
    zones[d] = { MX: [`10 mx.${d}.`], names: { mx: { A: ['127.0.0.1'] }, '_mta-sts': { TXT: ['v=STSv1; id=1'] }, 'a.b': { A: ['127.0.0.1'] } } };
  }
  const dns = await startDns(t, zones);
  const policy = await startPolicyServer(t, ca, DOMAINS);
  for (const d of DOMAINS) policy.policies.set(d, policyText({ mode: 'enforce', mx: [`mx.${d}`], maxAge: 86400 }));
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-sts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SqliteStore({ path: path.join(dir, 'state.sqlite') }, silentLogger());
  t.after(() => store.close());
  const log = captureLog();
  const addresses = Object.fromEntries(DOMAINS.map((d) => [`mta-sts.${d}`, `127.0.0.1:${policy.port}`]));
  const policies = new MtaStsPolicies({ dns: dns.resolver(), store, log: log.log, extraCa: ca.caPem, addresses, fetchTimeoutMs: 5000 });
  const counter = new StoreTlsCounter({ store, log: log.log });
  return {
    ca,
    dns,
    policy,
    store,
    counter,
    policies,
    log,
    transport: (port) => new MxTransport({ dns: dns.resolver(), port, client: CLIENT, concurrencyPerDomain: 5, ownNames: [], log: log.log, mtaSts: policies, tlsReports: counter }),
  };
}

const tlsSink = (t: TestContext, ca: TestCa, names: string[], expired = false, requireTls = false): Promise<Sink> => {
  const { certPem, keyPem } = ca.issue(names, { expired });
  return startSink(t, { tls: tls.createSecureContext({ cert: certPem, key: keyPem }), requireTls });
};

const deliver = async (r: Rig, sink: Sink | number, to: string): Promise<{ outcome: string; reply: string }> => {
  const [res] = await r.transport(typeof sink === 'number' ? sink : sink.port).deliver(outboundMessage(to), [0]);
  return { outcome: res!.outcome, reply: res!.reply };
};

test('MTA-STS enforce: verified TLS to a listed MX delivers; a wrong, expired or missing certificate, no STARTTLS, or a stripping proxy defers with nothing handed over', async (t) => {
  const r = await rig(t);
  const metrics = new Metrics({ processMetrics: false });
  t.after(metrics.attach());
  const good = await tlsSink(t, r.ca, ['mx.good.example']);
  const ok = await deliver(r, good, 'bob@good.example');
  assert.equal(ok.outcome, 'ok', ok.reply);
  assert.equal(good.messages.length, 1);
  assert.equal(good.messages[0]!.secure, true);

  const cases: Array<[string, Sink | number, RegExp]> = [
    ['wrongname.example', await tlsSink(t, r.ca, ['mx.other.example']), /certificate-host-mismatch/],
    ['expired.example', await tlsSink(t, r.ca, ['mx.expired.example'], true), /certificate-expired/],
    ['plain.example', await startSink(t), /starttls-not-supported/],
  ];
  const behindProxy = await tlsSink(t, r.ca, ['mx.strip.example']);
  cases.push(['strip.example', await startStrippingProxy(t, behindProxy.port), /starttls-not-supported/]);
  for (const [domain, sink, why] of cases) {
    const res = await deliver(r, sink, `bob@${domain}`);
    assert.equal(res.outcome, 'temporary', `${domain}: ${res.reply}`);
    assert.match(res.reply, new RegExp(`^451 4\\.7\\.5 MTA-STS policy of ${domain.replace('.', '\\.')} requires TLS with a valid certificate for mx\\.${domain.replace('.', '\\.')}: `));
    assert.match(res.reply, why);
    if (typeof sink !== 'number') assert.equal(sink.messages.length, 0, `${domain}: nothing may be handed over`);
  }
  assert.equal(behindProxy.messages.length, 0, 'the stripped session carried no mail in clear');

  // Every decision is a log line with its result, and is counted for TLS-RPT.
  const results = r.log.events('tls-policy').map((l) => `${String(l.domain)} ${String(l.mode)} ${String(l.result)}`);
  assert.deepEqual(results, ['good.example enforce success', 'wrongname.example enforce certificate-host-mismatch', 'expired.example enforce certificate-expired', 'plain.example enforce starttls-not-supported', 'strip.example enforce starttls-not-supported']);
  const exposed = await metrics.registry.getSingleMetricAsString('mailward_tls_policy_decisions_total');
  assert.match(exposed, /mailward_tls_policy_decisions_total\{policy="sts",mode="enforce",result="success"\} 1$/m);
  assert.match(exposed, /mailward_tls_policy_decisions_total\{policy="sts",mode="enforce",result="starttls-not-supported"\} 2$/m);
  await r.counter.flushed();
  const day = new Date().toISOString().slice(0, 10);
  assert.deepEqual(await r.store.hgetall(`tlsrpt:counts:${day}:good.example`), new Map([['success', 1]]));
  assert.deepEqual(await r.store.hgetall(`tlsrpt:counts:${day}:strip.example`), new Map([['failure\tstarttls-not-supported\tmx.strip.example\t127.0.0.1', 1]]));
});

test('MTA-STS: MX patterns per RFC 8461 §4.1 (a wildcard covers one label); an unlisted MX is skipped in enforce mode', async (t) => {
  const r = await rig(t);
  r.dns.set('wild.example', 'MX', ['10 a.b.wild.example.', '20 mx.wild.example.']);
  r.policy.policies.set('wild.example', policyText({ mode: 'enforce', mx: ['*.wild.example'], maxAge: 86400 }));
  const sink = await tlsSink(t, r.ca, ['mx.wild.example', 'a.b.wild.example']);
  const res = await deliver(r, sink, 'bob@wild.example');
  assert.equal(res.outcome, 'ok', res.reply);
  assert.equal(sink.connections, 1, 'a.b.wild.example was never connected to');
  const skipped = r.log.events('tls-policy').find((l) => l.host === 'a.b.wild.example');
  assert.equal(skipped?.result, 'validation-failure');

  // Only unlisted hosts: nothing is tried.
  r.dns.set('wild.example', 'MX', ['10 a.b.wild.example.']);
  const none = await deliver(r, sink, 'bob@wild.example');
  assert.deepEqual(none, { outcome: 'temporary', reply: '451 4.7.5 MTA-STS policy of wild.example does not list MX host a.b.wild.example' });
  assert.equal(sink.connections, 1);
});

test('MTA-STS testing mode: a failure is reported and the mail still goes (RFC 8461 §5.2)', async (t) => {
  const r = await rig(t);
  r.policy.policies.set('testing.example', policyText({ mode: 'testing', mx: ['mx.testing.example'], maxAge: 86400 }));
  const plain = await startSink(t);
  const res = await deliver(r, plain, 'bob@testing.example');
  assert.equal(res.outcome, 'ok', res.reply);
  assert.equal(plain.messages.length, 1);
  assert.equal(plain.messages[0]!.secure, false);
  assert.deepEqual(
    r.log.events('tls-policy').map((l) => `${String(l.mode)} ${String(l.result)}`),
    // Reported as a failure, then the clear-text session itself is logged and counted.
    ['testing starttls-not-supported', 'testing cleartext'],
  );
});

test('MTA-STS policy cache: fetched once per id, refetched when the id changes; a failed fetch with nothing cached is no policy, and reported', async (t) => {
  const r = await rig(t);
  const good = await tlsSink(t, r.ca, ['mx.good.example']);
  for (let i = 0; i < 2; i++) assert.equal((await deliver(r, good, 'bob@good.example')).outcome, 'ok');
  const fetches = (): number => r.policy.requests.filter((q) => q.startsWith('mta-sts.good.example')).length;
  assert.equal(fetches(), 1);
  // A new id: the policy is fetched again, and its new mode applies at once.
  r.policy.policies.set('good.example', policyText({ mode: 'enforce', mx: ['mx2.good.example'], maxAge: 86400 }));
  r.dns.set('_mta-sts.good.example', 'TXT', ['v=STSv1; id=2']);
  const res = await deliver(r, good, 'bob@good.example');
  assert.equal(fetches(), 2);
  assert.equal(res.reply, '451 4.7.5 MTA-STS policy of good.example does not list MX host mx.good.example');
  // A day later, same id: fetched again, so the cache's max_age starts anew.
  const now = Date.now() + 86_400_000 + 60_000;
  const later = new MtaStsPolicies({ dns: r.dns.resolver(), store: r.store, log: r.log.log, extraCa: r.ca.caPem, addresses: { 'mta-sts.good.example': `127.0.0.1:${r.policy.port}` }, fetchTimeoutMs: 5000, clock: () => now });
  assert.equal((await later.policyFor('good.example')).kind, 'policy');
  assert.equal(fetches(), 3);
  // The TXT record gone: the cached (unexpired) policy still applies (RFC 8461 §5.1).
  r.dns.set('_mta-sts.good.example', 'TXT', []);
  assert.equal((await deliver(r, good, 'bob@good.example')).outcome, 'temporary');

  // Announced, but served as text/html: not a policy; with none cached, delivery is opportunistic.
  r.policy.contentType = 'text/html';
  const plain = await startSink(t);
  const broken = await deliver(r, plain, 'bob@broken.example');
  assert.equal(broken.outcome, 'ok', broken.reply);
  const ev = r.log.events('tls-policy').find((l) => l.domain === 'broken.example');
  assert.equal(ev?.result, 'sts-policy-invalid');
  assert.equal(ev?.policy, 'no-policy-found');
});

test('REQUIRETLS (RFC 8689): only MTA-STS-verified TLS to a host that offers REQUIRETLS; otherwise deferred with nothing handed over', async (t) => {
  const r = await rig(t);
  const send = async (port: number, to: string, o: { requireTls?: boolean; headers?: string } = { requireTls: true }): Promise<{ outcome: string; reply: string }> => {
    const [res] = await r.transport(port).deliver(outboundMessage(to, undefined, o), [0]);
    return { outcome: res!.outcome, reply: res!.reply };
  };
  const good = await tlsSink(t, r.ca, ['mx.good.example'], false, true);
  const ok = await send(good.port, 'bob@good.example');
  assert.equal(ok.outcome, 'ok', ok.reply);
  assert.equal(good.messages[0]!.secure, true);
  assert.equal(good.messages[0]!.requireTls, true, 'MAIL FROM to the next hop carried REQUIRETLS');

  // Verified TLS, but the host does not offer REQUIRETLS: not even the envelope goes.
  const noExt = await tlsSink(t, r.ca, ['mx.good.example']);
  const refused = await send(noExt.port, 'bob@good.example');
  assert.equal(refused.outcome, 'temporary');
  assert.match(refused.reply, /^450 4\.7\.30 REQUIRETLS message not sent to mx\.good\.example/);
  assert.equal(noExt.rcpts.length, 0);
  // Ordinary mail still goes there.
  assert.equal((await send(noExt.port, 'bob@good.example', {})).outcome, 'ok');

  // A testing-mode policy verifies the host as well as an enforce one (RFC 8689 §4.2.1 asks for
  // the MX check of RFC 8461 §4.1 and a valid certificate, whatever the mode) ...
  r.policy.policies.set('testing.example', policyText({ mode: 'testing', mx: ['mx.testing.example'], maxAge: 86400 }));
  const testingOk = await tlsSink(t, r.ca, ['mx.testing.example'], false, true);
  assert.equal((await send(testingOk.port, 'bob@testing.example')).outcome, 'ok');
  assert.equal(testingOk.messages[0]!.requireTls, true);
  // ... and is applied as enforced: no clear text, no expired certificate.
  const plain = await startSink(t);
  assert.equal((await send(plain.port, 'bob@testing.example')).outcome, 'temporary');
  assert.equal(plain.messages.length, 0);
  const expired = await tlsSink(t, r.ca, ['mx.expired.example'], true, true);
  assert.match((await send(expired.port, 'bob@expired.example')).reply, /certificate-expired/);
  assert.equal(expired.messages.length, 0);

  // A STARTTLS-stripping proxy in front of a REQUIRETLS-capable host.
  const behind = await tlsSink(t, r.ca, ['mx.strip.example'], false, true);
  const stripped = await send(await startStrippingProxy(t, behind.port), 'bob@strip.example');
  assert.equal(stripped.outcome, 'temporary');
  assert.match(stripped.reply, /starttls-not-supported/);
  assert.equal(behind.messages.length, 0);

  // No policy at all: nothing can verify the host, so it is not even connected to.
  r.dns.set('_mta-sts.broken.example', 'TXT', []);
  const open = await tlsSink(t, r.ca, ['mx.broken.example'], false, true);
  const none = await send(open.port, 'bob@broken.example');
  assert.deepEqual(none, { outcome: 'temporary', reply: '450 4.7.10 REQUIRETLS: broken.example has no MTA-STS policy or DANE TLSA records to verify MX host mx.broken.example' });
  assert.equal(open.connections, 0);

  // "TLS-Required: No" cannot weaken a REQUIRETLS message.
  assert.equal((await send(plain.port, 'bob@testing.example', { requireTls: true, headers: 'TLS-Required: No\r\n' })).outcome, 'temporary');
  assert.equal(plain.messages.length, 0);
  const decisions = r.log.events('tls-policy').filter((l) => l.policy === 'requiretls').map((l) => `${String(l.domain)} ${String(l.result)}`);
  assert.deepEqual(decisions, ['good.example success', 'good.example not-offered', 'testing.example success', 'broken.example no-verified-tls']);
});

test('TLS-Required: No (RFC 8689 §5): a failed MTA-STS policy does not stop the message; STARTTLS is still used', async (t) => {
  const r = await rig(t);
  const headers = 'TLS-Required: No\r\n';
  const expired = await tlsSink(t, r.ca, ['mx.expired.example'], true);
  const [res] = await r.transport(expired.port).deliver(outboundMessage('bob@expired.example', undefined, { headers }), [0]);
  assert.equal(res!.outcome, 'ok', res!.reply);
  assert.equal(expired.messages[0]!.secure, true, 'opportunistic STARTTLS, without the certificate check');
  const plain = await startSink(t);
  const [clear] = await r.transport(plain.port).deliver(outboundMessage('bob@plain.example', undefined, { headers }), [0]);
  assert.equal(clear!.outcome, 'ok', clear!.reply);
  assert.equal(plain.messages[0]!.secure, false);
  const ev = r.log.events('tls-policy').map((l) => `${String(l.domain)} ${String(l.policy)} ${String(l.result)}`);
  assert.deepEqual(ev, ['expired.example tls-required-no policy-ignored', 'plain.example tls-required-no policy-ignored', 'plain.example no-policy-found cleartext']);
});

test('MTA-STS testing mode: an expired certificate is reported and the mail still goes', async (t) => {
  const r = await rig(t);
  r.policy.policies.set('expired.example', policyText({ mode: 'testing', mx: ['mx.expired.example'], maxAge: 86400 }));
  const expired = await tlsSink(t, r.ca, ['mx.expired.example'], true);
  const res = await deliver(r, expired, 'bob@expired.example');
  assert.equal(res.outcome, 'ok', res.reply);
  assert.equal(expired.messages.length, 1);
  assert.deepEqual(r.log.events('tls-policy').map((l) => `${String(l.mode)} ${String(l.result)}`), ['testing certificate-expired']);
});

test('No policy (opportunistic TLS) behind a STARTTLS-stripping proxy: delivered in clear, and that is logged and counted', async (t) => {
  const r = await rig(t);
  const metrics = new Metrics({ processMetrics: false });
  t.after(metrics.attach());
  r.dns.set('_mta-sts.broken.example', 'TXT', []);
  const behind = await tlsSink(t, r.ca, ['mx.broken.example']);
  // Straight to the host: STARTTLS, no cleartext line.
  assert.equal((await deliver(r, behind, 'bob@broken.example')).outcome, 'ok');
  assert.equal(behind.messages[0]!.secure, true);
  assert.deepEqual(r.log.events('tls-policy'), []);
  // Through the proxy: opportunistic delivery goes in clear (RFC 7435), but not unseen.
  const res = await deliver(r, await startStrippingProxy(t, behind.port), 'bob@broken.example');
  assert.equal(res.outcome, 'ok', res.reply);
  assert.equal(behind.messages[1]!.secure, false);
  const [line] = r.log.events('tls-policy');
  assert.equal(`${String(line?.policy)} ${String(line?.mode)} ${String(line?.result)} ${String(line?.host)}`, 'no-policy-found none cleartext mx.broken.example');
  assert.match(String(line?.reason), /^no TLS with mx\.broken\.example .*sent in clear/);
  const exposed = await metrics.registry.getSingleMetricAsString('mailward_tls_policy_decisions_total');
  assert.match(exposed, /mailward_tls_policy_decisions_total\{policy="no-policy-found",mode="none",result="cleartext"\} 1$/m);
  await r.counter.flushed();
  const day = new Date().toISOString().slice(0, 10);
  assert.deepEqual(await r.store.hgetall(`tlsrpt:counts:${day}:broken.example`), new Map(), 'no policy failed: nothing for TLS-RPT');
});
