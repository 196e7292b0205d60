// `mailward dns records` and `doctor --dns`: the records printed for a config with a certificate,
// a DKIM key and a served MTA-STS policy; then a loopback DNS server publishing exactly them (no
// finding), and one wrong record at a time, each named with its fix.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildConfig, type Config } from '../../src/config/load.ts';
import { createSelfSignedCertificate } from '../../src/ingress/selfsigned.ts';
import { dkimRecordValue, generateDkimKey } from '../../src/delivery/dkim-sign.ts';
import { expectedRecords, formatRecords } from '../../src/doctor/dns-records.ts';
import { auditDns } from '../../src/doctor/audit-dns.ts';
import { policyId } from '../../src/core/mta-sts.ts';
import { startDns, type TestDns } from '../harness/dns.ts';
import { runMailward } from '../harness/cli.ts';

const CERT = createSelfSignedCertificate('mx.example.org');
const OTHER = createSelfSignedCertificate('mx.example.org');
const DKIM = generateDkimKey('ed25519');
const IP = '203.0.113.25';

function setup(t: TestContext, dnsAddress = '127.0.0.1:1'): { config: Config; file: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-dnsrec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');
  mkdirSync(path.join(dataDir, 'dkim'), { recursive: true });
  writeFileSync(path.join(dataDir, 'dkim', 'example.org.s1.key'), DKIM, { mode: 0o600 });
  writeFileSync(path.join(dir, 'cert.pem'), CERT.certPem);
  writeFileSync(path.join(dir, 'key.pem'), CERT.keyPem, { mode: 0o600 });
  const input = {
    hostname: 'mx.example.org',
    domains: ['example.org'],
    dataDir,
    tls: { cert: 'cert.pem', key: 'key.pem' },
    listeners: { mx: { kind: 'mx', port: 0 } },
    dns: { servers: [dnsAddress], timeout: 1000, tries: 1 },
    mtaSts: { serve: { enabled: true, mode: 'enforce' } },
    reports: { address: 'reports@example.org' },
  };
  const file = path.join(dir, 'mailward.yaml');
  writeFileSync(file, JSON.stringify(input));
  return { config: buildConfig(input, file, dir), file };
}

const spki = (pem: string): string => createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

test('dns records: every record to publish, in zone-file form, from the config and its files', async (t) => {
  const { config, file } = setup(t);
  const text = formatRecords(expectedRecords(config, 'example.org', { addresses: [IP, '2001:db8::25'] }));
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('; ') || l.startsWith('; 25.'));
  const id = policyId({ mode: 'enforce', mx: ['mx.example.org'], maxAge: 604800 });
  assert.deepEqual(lines, [
    'example.org. IN MX 10 mx.example.org.',
    `mx.example.org. IN A ${IP}`,
    'mx.example.org. IN AAAA 2001:db8::25',
    'example.org. IN TXT "v=spf1 mx -all"',
    'mx.example.org. IN TXT "v=spf1 a -all"',
    `s1._domainkey.example.org. IN TXT "${dkimRecordValue(DKIM)}"`,
    '_dmarc.example.org. IN TXT "v=DMARC1; p=quarantine; rua=mailto:reports@example.org"',
    'mta-sts.example.org. IN CNAME mx.example.org.',
    `_mta-sts.example.org. IN TXT "v=STSv1; id=${id}"`,
    '_smtp._tls.example.org. IN TXT "v=TLSRPTv1; rua=mailto:reports@example.org"',
    `_25._tcp.mx.example.org. IN TLSA 3 1 1 ${spki(CERT.certPem)}`,
    `; 25.113.0.203.in-addr.arpa. IN PTR mx.example.org.`,
  ]);
  assert.match(text, /; 5\.2\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.0\.8\.b\.d\.0\.1\.0\.0\.2\.ip6\.arpa\. IN PTR mx\.example\.org\./);
  assert.match(text, /\[ask your hoster, not in your zone\]/);
  // The real command prints the same.
  const run = await runMailward(['dns', 'records', 'example.org', '--ip', IP, '2001:db8::25', '--config', file]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, `; ---- example.org ----\n${text}`);
  const bad = await runMailward(['dns', 'records', 'example.com', '--config', file]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /example\.com is not one of the configured domains \(example\.org\)/);
});

/** A zone that publishes exactly what `dns records` prints. */
async function goodZone(t: TestContext, config: Config): Promise<TestDns> {
  const txt = (name: string): string[] =>
    expectedRecords(config, 'example.org', { addresses: [IP] })
      .filter((r) => r.type === 'TXT' && r.name === name)
      .map((r) => r.value!);
  const tlsa = expectedRecords(config, 'example.org').find((r) => r.type === 'TLSA')!.value!;
  return startDns(t, {
    'example.org': {
      MX: ['10 mx.example.org'],
      TXT: txt('example.org'),
      names: {
        mx: { A: [IP], TXT: txt('mx.example.org') },
        's1._domainkey': { TXT: txt('s1._domainkey.example.org') },
        _dmarc: { TXT: txt('_dmarc.example.org') },
        'mta-sts': { CNAME: 'mx.example.org.' },
        '_mta-sts': { TXT: txt('_mta-sts.example.org') },
        '_smtp._tls': { TXT: txt('_smtp._tls.example.org') },
        '_25._tcp.mx': { TLSA: [tlsa] },
      },
    },
    '113.0.203.in-addr.arpa': { names: { '25': { PTR: ['mx.example.org'] } } },
  });
}

test('doctor --dns: no finding when the zone publishes every record; each wrong one is named with its fix', async (t) => {
  const first = setup(t);
  const dns = await goodZone(t, first.config);
  const { config, file } = setup(t, dns.address);
  const all = async (): Promise<string[]> => (await auditDns(config, undefined, { addresses: [IP] })).map((f) => `${f.severity} ${f.id} at ${f.setting}: ${f.message}. Fix: ${f.fix}`);
  // This DNS server answers authoritatively and never validates (no AD bit): the TLSA record is
  // right, but whether it is signed cannot be told — said so, with the fix (not "unsigned").
  assert.deepEqual(await all(), [
    `warning dns-tlsa-dnssec-unknown at DNS _25._tcp.mx.example.org TLSA: the DNS server ${dns.address} answered authoritatively, as a name server and not a validating resolver, so it set no AD bit: whether the TLSA record is DNSSEC-valid could not be verified, and outbound DANE, which asks the same dns.servers, never applies. Fix: set dns.servers to a validating resolver on this machine (e.g. unbound at 127.0.0.1 with its DNSSEC validator and root trust anchor), then run doctor --dns again`,
  ]);
  const audit = async (): Promise<string[]> => (await all()).filter((f) => !f.includes(' dns-tlsa-dnssec-unknown '));

  dns.set('example.org', 'MX', ['10 mail.elsewhere.net']);
  dns.set('s1._domainkey.example.org', 'TXT', [dkimRecordValue(generateDkimKey('ed25519'))]);
  dns.set('_mta-sts.example.org', 'TXT', ['v=STSv1; id=old1']);
  dns.set('_25._tcp.mx.example.org', 'TLSA', [`3 1 1 ${spki(OTHER.certPem)}`]);
  dns.set('example.org', 'TXT', ['v=spf1 mx -all', 'v=spf1 a -all']);
  dns.set('25.113.0.203.in-addr.arpa', 'PTR', ['static-25.hoster.example']);
  dns.set('_dmarc.example.org', 'TXT', []);
  const id = policyId({ mode: 'enforce', mx: ['mx.example.org'], maxAge: 604800 });
  assert.deepEqual((await audit()).sort(), [
    `error dns-dkim-mismatch at DNS s1._domainkey.example.org TXT: the key published at s1._domainkey.example.org is not the key this server signs with. Fix: replace it with s1._domainkey.example.org. IN TXT "${dkimRecordValue(DKIM)}"`,
    'error dns-mta-sts-stale-id at DNS _mta-sts.example.org TXT: the published policy id old1 is not the id of the policy served (' + id + '): senders keep their cached copy and miss the change. Fix: publish _mta-sts.example.org. IN TXT "v=STSv1; id=' + id + '"',
    'error dns-mx-missing at DNS example.org MX: the MX records of example.org (10 mail.elsewhere.net) do not name mx.example.org. Fix: publish example.org. IN MX 10 mx.example.org.',
    'error dns-ptr-mismatch at DNS 25.113.0.203.in-addr.arpa PTR: the PTR of 203.0.113.25 names static-25.hoster.example, not mx.example.org: many receivers refuse or junk its mail. Fix: ask your hoster to set the PTR of 203.0.113.25 to mx.example.org.',
    'error dns-spf-multiple at DNS example.org TXT: example.org has 2 SPF records, which makes SPF fail everywhere (RFC 7208 §4.5). Fix: keep one: example.org. IN TXT "v=spf1 mx -all"',
    `error dns-tlsa-mismatch at DNS _25._tcp.mx.example.org TLSA: the TLSA records (3 1 1 ${spki(OTHER.certPem)}) match no key of the current certificate: senders using DANE refuse to deliver. Fix: replace them with _25._tcp.mx.example.org. IN TLSA 3 1 1 ${spki(CERT.certPem)} (and publish the next key before each renewal)`,
    'warning dns-dmarc-missing at DNS _dmarc.example.org TXT: no DMARC record: big receivers junk or refuse mail from domains without one. Fix: publish _dmarc.example.org. IN TXT "v=DMARC1; p=quarantine; rua=mailto:reports@example.org"',
  ]);

  // The command: `doctor --dns` adds the same findings to the report, and exits 1.
  const cli = await runMailward(['doctor', '--dns', '--json', '--config', file]);
  assert.equal(cli.code, 1, cli.stderr);
  const ids = (JSON.parse(cli.stdout) as { findings: Array<{ id: string }> }).findings.map((f) => f.id);
  for (const id of ['dns-mx-missing', 'dns-dkim-mismatch', 'dns-mta-sts-stale-id', 'dns-tlsa-mismatch']) assert.ok(ids.includes(id), `${id} in ${ids.join(', ')}`);

  // A server that does not answer: each record says it was not checked, never "fine".
  dns.setMode('example.org', 'servfail');
  const down = await auditDns(config, undefined, { addresses: [IP] });
  assert.ok(down.length > 0 && down.every((f) => f.id === 'dns-lookup-failed'), JSON.stringify(down));
  assert.ok(down.some((f) => f.id === 'dns-lookup-failed' && f.setting === 'DNS example.org MX'));
});

// mx.example.org a CNAME to the hoster's name, which holds the address and the PTR names.
test('doctor --dns: a CNAME at the mail host name — addresses and PTR through it, and the MX that names an alias', async (t) => {
  const dns = await startDns(t, {
    'example.org': { MX: ['10 mx.example.org'], names: { mx: { CNAME: 'host.provider.test.' } } },
    'provider.test': { names: { host: { A: [IP] } } },
    '113.0.203.in-addr.arpa': { names: { '25': { PTR: ['host.provider.test'] }, '99': { PTR: ['host.provider.test'] } } },
  });
  const { config } = setup(t, dns.address);
  const audit = async (): Promise<string[]> =>
    (await auditDns(config, undefined, { addresses: [IP] })).filter((f) => / (MX|A|AAAA|PTR)$/.test(f.setting)).map((f) => `${f.severity} ${f.id} at ${f.setting}: ${f.message}. Fix: ${f.fix}`);
  const mxCname = `warning dns-mx-cname at DNS example.org MX: the MX of example.org names mx.example.org (a CNAME to host.provider.test): an MX must name a host with its own address records, not an alias (RFC 2181 §10.3), and some senders refuse such mail. Fix: replace the CNAME mx.example.org. IN CNAME host.provider.test. with`;
  // The address and the PTR (naming the CNAME's target, which resolves back) are right.
  assert.deepEqual(await audit(), [`${mxCname} mx.example.org. IN A ${IP}`]);

  dns.set('host.provider.test', 'A', ['203.0.113.99']);
  assert.deepEqual(await audit(), [
    `${mxCname} mx.example.org. IN A 203.0.113.99`,
    `error dns-address-wrong at DNS mx.example.org A: mx.example.org (a CNAME to host.provider.test) points to 203.0.113.99, not to this server's ${IP}. Fix: replace the CNAME mx.example.org. IN CNAME host.provider.test. with mx.example.org. IN A ${IP}`,
  ]);

  dns.set('host.provider.test', 'A', [IP]);
  dns.set('25.113.0.203.in-addr.arpa', 'PTR', ['static-25.hoster.example']);
  assert.deepEqual((await audit()).slice(1), [
    `error dns-ptr-mismatch at DNS 25.113.0.203.in-addr.arpa PTR: the PTR of ${IP} names static-25.hoster.example, not mx.example.org or host.provider.test: many receivers refuse or junk its mail. Fix: ask your hoster to set the PTR of ${IP} to mx.example.org.`,
  ]);
});
