// DANE (RFC 7672) on direct MX delivery, against real loopback programs: unbound as the validating
// resolver over a zone signed in the test (its DS the trust anchor), an unsigned zone beside it,
// and SMTP sinks playing the MX hosts with a self-signed certificate whose key the TLSA records
// name, and a private CA for DANE-TA. A match delivers over TLS (a DANE-TA chain only for the MX
// host's name); a mismatch, a host without STARTTLS and a bogus signature
// defer with nothing handed over; an unsigned domain gets opportunistic TLS as before. MX host
// names that are CNAMEs: the TLSA records at the expanded name when the chain is secure, at the
// original name when a step is not; a TLSA RRset reached through a CNAME.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { X509Certificate, createHash } from 'node:crypto';
import { MxTransport } from '../../src/delivery/mx.ts';
import { DaneResolver } from '../../src/delivery/tls-policy/dane.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { captureLog } from '../queue/helpers.ts';
import { startUnbound } from '../harness/unbound.ts';
import { buildConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/errors.ts';
import tls from 'node:tls';
import { startCa } from '../harness/test-ca.ts';
import { localhostCert, outboundMessage, startSink, type Sink } from './sink.ts';

const CLIENT = { heloName: 'mx.example.org', connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 5000 };

const host = (label: string, tlsa: string): string[] => [`${label} IN MX 10 mx.${label}`, `mx.${label} IN A 127.0.0.1`, `_25._tcp.mx.${label} IN TLSA ${tlsa}`];

test('DANE: a TLSA match delivers over TLS; a mismatch, no STARTTLS or a bogus signature defers; an unsigned domain is opportunistic', async (t) => {
  const cert = localhostCert();
  const x = new X509Certificate(cert.certPem);
  const spki256 = createHash('sha256').update(x.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
  const full512 = createHash('sha512').update(x.raw).digest('hex');
  // DANE-TA: a private CA named by its certificate's SHA-256; the server sends it in its chain.
  const ca = startCa(t);
  const caDigest = createHash('sha256').update(new X509Certificate(ca.caPem).raw).digest('hex');
  const taSink = (name: string): Promise<Sink> => {
    const leaf = ca.issue([name]);
    return startSink(t, { tls: tls.createSecureContext({ cert: leaf.certPem + ca.caPem, key: leaf.keyPem }) });
  };
  const unbound = await startUnbound(t, [
    {
      name: 'dane.test',
      signed: true,
      records: [
        ...host('good', `3 1 1 ${spki256}`),
        ...host('full', `3 0 2 ${full512}`),
        ...host('bad', `3 1 1 ${'00'.repeat(32)}`),
        ...host('plain', `3 1 1 ${spki256}`),
        ...host('pkix', `1 1 1 ${spki256}`),
        ...host('bogus', `3 1 1 ${spki256}`),
        ...host('ta', `2 0 1 ${caDigest}`),
        ...host('taname', `2 0 1 ${caDigest}`),
      ],
      // A changed record under its old signature: bogus (RFC 4035 §5.5), SERVFAIL from unbound.
      tamper: (text) => text.replace(new RegExp(`(_25\\._tcp\\.mx\\.bogus\\.dane\\.test\\.\\s+\\d+\\s+IN\\s+TLSA\\s+3 1 1 )${spki256}`, 'i'), `$1${'11'.repeat(32)}`),
    },
    { name: 'insecure.test', signed: false, records: ['open IN MX 10 mx.open', 'mx.open IN A 127.0.0.1'] },
  ]);
  const dns = new Resolver({ timeout: 3000, tries: 1 });
  dns.setServers([unbound.server]);
  const log = captureLog();
  const metrics = new Metrics({ processMetrics: false });
  t.after(metrics.attach());
  const dane = new DaneResolver({ servers: [unbound.server], trustedResolvers: [], timeoutMs: 3000, log: log.log });
  assert.equal(dane.trusted, true, 'a resolver on loopback is trusted');
  const deliver = async (sink: Sink, to: string): Promise<{ outcome: string; reply: string }> => {
    const tr = new MxTransport({ dns, port: sink.port, client: CLIENT, concurrencyPerDomain: 5, ownNames: [], log: log.log, dane });
    const [res] = await tr.deliver(outboundMessage(to), [0]);
    return { outcome: res!.outcome, reply: res!.reply };
  };
  const tlsSink = (): Promise<Sink> => startSink(t, { tls: cert.context });

  for (const d of ['good', 'full', 'pkix']) {
    const s = await tlsSink();
    const ok = await deliver(s, `bob@${d}.dane.test`);
    assert.equal(ok.outcome, 'ok', `${d}: ${ok.reply}`);
    assert.equal(s.messages.length, 1);
    assert.equal(s.messages[0]!.secure, true, `${d}: delivered over TLS`);
  }

  const ta = await taSink('mx.ta.dane.test');
  const taOk = await deliver(ta, 'bob@ta.dane.test');
  assert.equal(taOk.outcome, 'ok', taOk.reply);
  assert.equal(ta.messages[0]!.secure, true);
  // DANE-TA checks the name (RFC 7672 §3.2.2): the CA's certificate for another host does not do.
  const taOther = await taSink('mx.elsewhere.example');
  const taName = await deliver(taOther, 'bob@taname.dane.test');
  assert.equal(taName.outcome, 'temporary', taName.reply);
  assert.match(taName.reply, /not issued for mx\.taname\.dane\.test/);
  assert.equal(taOther.messages.length, 0);

  const bad = await tlsSink();
  const mismatch = await deliver(bad, 'bob@bad.dane.test');
  assert.equal(mismatch.outcome, 'temporary', mismatch.reply);
  assert.match(mismatch.reply, /^451 4\.7\.5 DANE: mx\.bad\.dane\.test .*tlsa-invalid/);
  assert.equal(bad.messages.length, 0, 'nothing handed over to a server the TLSA records do not name');

  const plain = await startSink(t);
  const noTls = await deliver(plain, 'bob@plain.dane.test');
  assert.equal(noTls.outcome, 'temporary', noTls.reply);
  assert.match(noTls.reply, /starttls-not-supported/);
  assert.equal(plain.messages.length, 0, 'no clear-text fallback under DANE');

  const bogusSink = await tlsSink();
  const bogus = await deliver(bogusSink, 'bob@bogus.dane.test');
  assert.equal(bogus.outcome, 'temporary', bogus.reply);
  assert.match(bogus.reply, /^451 4\.7\.5 DNSSEC lookup for MX host mx\.bogus\.dane\.test failed/);
  assert.equal(bogusSink.connections, 0, 'a host with bogus TLSA records is not even connected to');

  const open = await startSink(t);
  const insecure = await deliver(open, 'bob@open.insecure.test');
  assert.equal(insecure.outcome, 'ok', insecure.reply);
  assert.equal(open.messages[0]!.secure, false, 'opportunistic: no STARTTLS offered, clear text as before');

  const results = log.events('tls-policy').map((l) => `${String(l.domain)} ${String(l.result)}`);
  assert.deepEqual(results, ['good.dane.test success', 'full.dane.test success', 'pkix.dane.test success', 'ta.dane.test success', 'taname.dane.test tlsa-invalid', 'bad.dane.test tlsa-invalid', 'plain.dane.test starttls-not-supported', 'bogus.dane.test dnssec-invalid', 'open.insecure.test skipped', 'open.insecure.test cleartext']);
  const exposed = await metrics.registry.getSingleMetricAsString('mailward_tls_policy_decisions_total');
  assert.match(exposed, /mailward_tls_policy_decisions_total\{policy="tlsa",mode="dane",result="success"\} 4$/m);
  assert.match(exposed, /mailward_tls_policy_decisions_total\{policy="tlsa",mode="dane",result="tlsa-invalid"\} 2$/m);
});

test('DANE: the AD bit of a resolver that is neither on loopback nor listed is not believed', () => {
  const log = captureLog();
  const far = new DaneResolver({ servers: ['192.0.2.53'], trustedResolvers: [], timeoutMs: 1000, log: log.log });
  assert.equal(far.trusted, false);
  const listed = new DaneResolver({ servers: ['192.0.2.53:53'], trustedResolvers: ['192.0.2.53'], timeoutMs: 1000, log: log.log });
  assert.equal(listed.trusted, true);
  assert.equal(new DaneResolver({ servers: ['[::1]:5353'], trustedResolvers: [], timeoutMs: 1000, log: log.log }).trusted, true);
});

test('DANE: a trusted resolver that does not validate (signatures passed on, no AD) is named once in the log, with the fix', async (t) => {
  const records = host('good', `3 1 1 ${'ab'.repeat(32)}`);
  const plain = await startUnbound(t, [{ name: 'dane.test', signed: true, records }], { validate: false });
  const log = captureLog();
  const dane = new DaneResolver({ servers: [plain.server], trustedResolvers: [], timeoutMs: 3000, log: log.log });
  for (let i = 0; i < 2; i++) {
    const h = await dane.host('mx.good.dane.test');
    assert.equal(h.kind, 'none', 'an unvalidated answer is not secure: DANE does not apply');
  }
  const warned = log.events('dane-resolver-not-validating');
  assert.equal(warned.length, 1, JSON.stringify(log.lines));
  assert.equal(warned[0]!.level, 40);
  assert.equal(warned[0]!.setting, 'dns.servers');
  assert.match(String(warned[0]!.msg), /does not validate.*DANE never applies; point dns\.servers at a validating resolver/);
  // The validating resolver over the same zone: secure, and nothing to warn about.
  const validating = await startUnbound(t, [{ name: 'dane.test', signed: true, records }]);
  const quiet = captureLog();
  const good = new DaneResolver({ servers: [validating.server], trustedResolvers: [], timeoutMs: 3000, log: quiet.log });
  assert.equal((await good.host('mx.good.dane.test')).kind, 'dane');
  assert.equal(quiet.events('dane-resolver-not-validating').length, 0);
});

test('DANE config: off by default; a trusted resolver must be an IP address', () => {
  assert.deepEqual(buildConfig({}, 'test.yaml', '/srv').delivery.dane, { enabled: false, trustedResolvers: [] });
  assert.throws(() => buildConfig({ delivery: { dane: { enabled: true, trustedResolvers: ['resolver.example'] } } }, 'test.yaml', '/srv'), (e: unknown) => e instanceof ConfigError && /delivery\.dane\.trustedResolvers\[0\]/.test(e.message) && /an IP address/.test(e.message));
});

test('DANE and CNAMEs (RFC 7672 §2.2.2): a secure chain uses the expanded name, an insecure step the original; a TLSA RRset may be a CNAME', async (t) => {
  const cert = localhostCert();
  const spki256 = createHash('sha256').update(new X509Certificate(cert.certPem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
  const wrong = `3 1 1 ${'00'.repeat(32)}`;
  const right = `3 1 1 ${spki256}`;
  const ca = startCa(t);
  const caDigest = createHash('sha256').update(new X509Certificate(ca.caPem).raw).digest('hex');
  // mx.<d> is a CNAME to real.<d>; the TLSA records at each name say which one was used.
  const aliased = (d: string, atOriginal: string | undefined, atExpanded: string, via = `real.${d}`): string[] => [
    `${d} IN MX 10 mx.${d}`,
    `mx.${d} IN CNAME ${via}`,
    `real.${d} IN A 127.0.0.1`,
    `_25._tcp.real.${d} IN TLSA ${atExpanded}`,
    ...(atOriginal ? [`_25._tcp.mx.${d} IN TLSA ${atOriginal}`] : []),
  ];
  const unbound = await startUnbound(t, [
    {
      name: 'cname.test',
      signed: true,
      records: [
        ...aliased('good', wrong, right),
        ...aliased('bad', right, wrong),
        ...aliased('plain', undefined, right),
        // One step through the unsigned zone: the expanded name is not to be believed.
        ...aliased('hop', right, wrong, 'relay.hop.plain.test.'),
        ...aliased('hopbad', wrong, right, 'relay.hopbad.plain.test.'),
        // DANE-TA: the certificate names the original host only; both names are reference identifiers (§3.2.2).
        ...aliased('ta', undefined, `2 0 1 ${caDigest}`),
        // The TLSA RRset itself through a CNAME, followed by the resolver.
        'alias IN MX 10 mx.alias',
        'mx.alias IN A 127.0.0.1',
        '_25._tcp.mx.alias IN CNAME tlsa.shared',
        `tlsa.shared IN TLSA ${right}`,
      ],
    },
    { name: 'plain.test', signed: false, records: ['relay.hop IN CNAME real.hop.cname.test.', 'relay.hopbad IN CNAME real.hopbad.cname.test.'] },
  ]);
  const dns = new Resolver({ timeout: 3000, tries: 1 });
  dns.setServers([unbound.server]);
  const log = captureLog();
  const dane = new DaneResolver({ servers: [unbound.server], trustedResolvers: [], timeoutMs: 3000, log: log.log });
  const deliver = async (sink: Sink, to: string): Promise<{ outcome: string; reply: string }> => {
    const tr = new MxTransport({ dns, port: sink.port, client: CLIENT, concurrencyPerDomain: 5, ownNames: [], log: log.log, dane });
    const [res] = await tr.deliver(outboundMessage(to), [0]);
    return { outcome: res!.outcome, reply: res!.reply };
  };

  for (const d of ['good', 'hop', 'alias']) {
    const s = await startSink(t, { tls: cert.context });
    const ok = await deliver(s, `bob@${d}.cname.test`);
    assert.equal(ok.outcome, 'ok', `${d}: ${ok.reply}`);
    assert.equal(s.messages[0]?.secure, true, `${d}: delivered over verified TLS`);
  }
  const leaf = ca.issue(['mx.ta.cname.test']);
  const taSink = await startSink(t, { tls: tls.createSecureContext({ cert: leaf.certPem + ca.caPem, key: leaf.keyPem }) });
  const ta = await deliver(taSink, 'bob@ta.cname.test');
  assert.equal(ta.outcome, 'ok', ta.reply);

  for (const d of ['bad', 'hopbad']) {
    const s = await startSink(t, { tls: cert.context });
    const r = await deliver(s, `bob@${d}.cname.test`);
    assert.equal(r.outcome, 'temporary', `${d}: ${r.reply}`);
    assert.match(r.reply, new RegExp(`^451 4\\.7\\.5 DANE: mx\\.${d}\\.cname\\.test .*tlsa-invalid`));
    assert.equal(s.messages.length, 0, `${d}: nothing handed over`);
    if (d === 'bad') assert.match(r.reply, /TLSA records \(at _25\._tcp\.real\.bad\.cname\.test, its CNAME target\)/);
    else assert.doesNotMatch(r.reply, /CNAME target/, 'an insecure chain: the original name decided');
  }
  const clear = await startSink(t);
  const noTls = await deliver(clear, 'bob@plain.cname.test');
  assert.equal(noTls.outcome, 'temporary', noTls.reply);
  assert.match(noTls.reply, /starttls-not-supported/);
  assert.equal(clear.messages.length, 0, 'no clear-text fallback when the expanded name has TLSA records');

  const results = log.events('tls-policy').map((l) => `${String(l.domain)} ${String(l.result)}`);
  assert.deepEqual(results, ['good.cname.test success', 'hop.cname.test success', 'alias.cname.test success', 'ta.cname.test success', 'bad.cname.test tlsa-invalid', 'hopbad.cname.test tlsa-invalid', 'plain.cname.test starttls-not-supported']);
});
