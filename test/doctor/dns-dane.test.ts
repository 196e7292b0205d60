// `doctor --dns` and the TLSA record (DANE, RFC 7672): published, DNSSEC-validated and matching
// the current certificate, asked of unbound on loopback as the validating resolver (as outbound
// DANE asks it) over zones signed in the test: a signed zone with the right record (no finding),
// a signed zone with a stale one, an unsigned zone (published but worthless to senders), a signed
// zone whose record was changed after signing (bogus: SERVFAIL), and one without a record.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildConfig, type Config } from '../../src/config/load.ts';
import { createSelfSignedCertificate } from '../../src/ingress/selfsigned.ts';
import { auditDns } from '../../src/doctor/audit-dns.ts';
import { tlsaValue } from '../../src/doctor/dns-records.ts';
import { startUnbound } from '../harness/unbound.ts';
import { runMailward } from '../harness/cli.ts';

const CERT = createSelfSignedCertificate('mx.example.org');
const RIGHT = tlsaValue(new X509Certificate(CERT.certPem));
const STALE = tlsaValue(new X509Certificate(createSelfSignedCertificate('mx.example.org').certPem));

function setup(t: TestContext, domain: string, server: string): { config: Config; file: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-dnsdane-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'cert.pem'), CERT.certPem);
  writeFileSync(path.join(dir, 'key.pem'), CERT.keyPem, { mode: 0o600 });
  const input = { hostname: `mx.${domain}`, domains: [domain], dataDir: path.join(dir, 'data'), tls: { cert: 'cert.pem', key: 'key.pem' }, listeners: { mx: { kind: 'mx', port: 0 } }, dns: { servers: [server], timeout: 3000, tries: 1 } };
  const file = path.join(dir, 'mailward.yaml');
  writeFileSync(file, JSON.stringify(input));
  return { config: buildConfig(input, file, dir), file };
}

const zone = (name: string, signed: boolean, tlsa: string | undefined, tamper?: (text: string) => string) => ({
  name,
  signed,
  records: [`@ IN MX 10 mx`, 'mx IN A 127.0.0.1', ...(tlsa ? [`_25._tcp.mx IN TLSA ${tlsa}`] : [])],
  ...(tamper ? { tamper } : {}),
});

test('doctor --dns: the TLSA record must be published, DNSSEC-signed (AD from a trusted validating resolver) and match the certificate', async (t) => {
  const unbound = await startUnbound(t, [
    zone('good.test', true, RIGHT),
    zone('stale.test', true, STALE),
    zone('bogus.test', true, RIGHT, (text) => text.replace(new RegExp(`(_25\\._tcp\\.mx\\.bogus\\.test\\.\\s+\\d+\\s+IN\\s+TLSA\\s+3 1 1 )${RIGHT.slice(6)}`, 'i'), `$1${'11'.repeat(32)}`)),
    zone('none.test', true, undefined),
    zone('plain.test', false, RIGHT),
  ]);
  const tlsaFindings = async (domain: string): Promise<string[]> => {
    const { config } = setup(t, domain, unbound.server);
    const all = await auditDns(config, undefined, { addresses: ['127.0.0.1'] });
    return all.filter((f) => f.setting.endsWith(' TLSA')).map((f) => `${f.severity} ${f.id}: ${f.message}. Fix: ${f.fix}`);
  };

  assert.deepEqual(await tlsaFindings('good.test'), [], 'signed, validated and matching: nothing to say');

  assert.deepEqual(await tlsaFindings('stale.test'), [
    `error dns-tlsa-mismatch: the TLSA records (${STALE}) match no key of the current certificate: senders using DANE refuse to deliver. Fix: replace them with _25._tcp.mx.stale.test. IN TLSA ${RIGHT} (and publish the next key before each renewal)`,
  ]);

  assert.deepEqual(await tlsaFindings('plain.test'), [
    `warning dns-tlsa-unsigned: the TLSA record is published but not DNSSEC-validated (${unbound.server} did not set the AD bit): senders ignore it (RFC 7672 §2.2), so DANE does not protect mail to mx.plain.test. Fix: sign the zone of mx.plain.test with DNSSEC and publish its DS record at the parent; if it is signed, set dns.servers to a validating resolver (e.g. unbound at 127.0.0.1)`,
  ]);

  const bogus = await tlsaFindings('bogus.test');
  assert.equal(bogus.length, 1, bogus.join('\n'));
  assert.match(bogus[0]!, /^warning dns-lookup-failed: TLSA lookup of _25\._tcp\.mx\.bogus\.test: SERVFAIL from .*signatures do not validate \(bogus\), and senders using DANE then defer all mail to mx\.bogus\.test/);

  assert.deepEqual(await tlsaFindings('none.test'), [
    `info dns-tlsa-missing: no TLSA record: senders cannot use DANE (RFC 7672) to authenticate mx.none.test. Fix: in a DNSSEC-signed zone, publish _25._tcp.mx.none.test. IN TLSA ${RIGHT}`,
  ]);

  // The command names the same findings.
  const { file } = setup(t, 'plain.test', unbound.server);
  const cli = await runMailward(['doctor', '--dns', '--json', '--config', file]);
  const ids = (JSON.parse(cli.stdout) as { findings: Array<{ id: string }> }).findings.map((f) => f.id);
  assert.ok(ids.includes('dns-tlsa-unsigned'), `${ids.join(', ')} (${cli.stderr})`);
});

// The host name a CNAME (mx.<domain> → host.<provider>): senders look for TLSA records at the
// target first when every step of the chain is signed, then at the host name (RFC 7672 §2.2.2),
// and skip DANE when the target's address records are unsigned.
test('doctor --dns: a CNAME at the mail host name — TLSA where senders look for it, and signed addresses', async (t) => {
  const alias = (name: string, target: string) => ({ name, signed: true, records: ['@ IN MX 10 mx', `mx IN CNAME ${target}.`, `_25._tcp.mx IN TLSA ${RIGHT}`] });
  const unbound = await startUnbound(t, [
    { name: 'quiet-provider.test', signed: true, records: ['host IN A 127.0.0.1'] },
    { name: 'tlsa-provider.test', signed: true, records: ['host IN A 127.0.0.1', `_25._tcp.host IN TLSA ${STALE}`] },
    { name: 'plain-provider.test', signed: false, records: ['host IN A 127.0.0.1'] },
    alias('fallback.test', 'host.quiet-provider.test'),
    alias('shadowed.test', 'host.tlsa-provider.test'),
    alias('unsigned-target.test', 'host.plain-provider.test'),
  ]);
  const tlsaFindings = async (domain: string): Promise<string[]> => {
    const { config } = setup(t, domain, unbound.server);
    const all = await auditDns(config, undefined, { addresses: ['127.0.0.1'] });
    return all.filter((f) => f.setting.endsWith(' TLSA')).map((f) => `${f.severity} ${f.id}: ${f.message}. Fix: ${f.fix}`);
  };

  // No TLSA at the target: senders fall back to the host name's own record, which matches.
  assert.deepEqual(await tlsaFindings('fallback.test'), []);

  assert.deepEqual(await tlsaFindings('shadowed.test'), [
    `error dns-tlsa-mismatch: mx.shadowed.test is a CNAME to host.tlsa-provider.test, so senders use the TLSA records at _25._tcp.host.tlsa-provider.test first (RFC 7672 §2.2.2), and they (${STALE}) match no key of the current certificate: senders using DANE refuse to deliver. Fix: have _25._tcp.host.tlsa-provider.test removed (senders then use _25._tcp.mx.shadowed.test. IN TLSA ${RIGHT}) or set to ${RIGHT}; or replace the CNAME mx.shadowed.test with its own address records`,
  ]);

  assert.deepEqual(await tlsaFindings('unsigned-target.test'), [
    'warning dns-tlsa-address-unsigned: the TLSA record is signed, but the address records of mx.unsigned-target.test (a CNAME to host.plain-provider.test) are not DNSSEC-validated: senders do not use DANE for a host whose addresses are unsigned (RFC 7672 §2.2.2). Fix: replace the CNAME mx.unsigned-target.test. IN CNAME host.plain-provider.test. with mx.unsigned-target.test\'s own A/AAAA records in its signed zone, or have host.plain-provider.test\'s zone signed',
  ]);
});

// A resolver that does not validate: unbound without its validator passes the signed zone's RRSIG
// records on but never sets AD. Doctor cannot tell whether the TLSA record is valid, says so,
// and names the fix — not "unsigned", which would send the operator to sign a signed zone.
test('doctor --dns: a non-validating resolver — TLSA not verifiable (dns-tlsa-dnssec-unknown), with the fix', async (t) => {
  const plain = await startUnbound(t, [zone('good.test', true, RIGHT)], { validate: false });
  const { config } = setup(t, 'good.test', plain.server);
  const all = await auditDns(config, undefined, { addresses: ['127.0.0.1'] });
  assert.deepEqual(all.filter((f) => f.setting.endsWith(' TLSA')).map((f) => `${f.severity} ${f.id}: ${f.message}. Fix: ${f.fix}`), [
    `warning dns-tlsa-dnssec-unknown: the DNS server ${plain.server} returned the TLSA record with its RRSIG signatures but without the AD bit: the zone is signed, but this resolver does not validate: whether the TLSA record is DNSSEC-valid could not be verified, and outbound DANE, which asks the same dns.servers, never applies. Fix: set dns.servers to a validating resolver on this machine (e.g. unbound at 127.0.0.1 with its DNSSEC validator and root trust anchor), then run doctor --dns again`,
  ]);
});
