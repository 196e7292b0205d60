// The development certificate: parsed by node's X.509 reader with the right names and dates,
// signature valid, accepted in a real TLS handshake over loopback, and reused from disk.
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { createSelfSignedCertificate, ensureSelfSignedCertificate } from '../../src/ingress/selfsigned.ts';

const HOST = 'mail.example.test';
const DAY = 86_400_000;

/** Serves `certPem` on 127.0.0.1 and connects with it as the only CA; resolves what the server sent. */
async function handshake(t: { after: (fn: () => void) => void }, certPem: string, keyPem: string, opts: tls.ConnectionOptions): Promise<string> {
  const server = tls.createServer({ key: keyPem, cert: certPem }, (s) => s.end('hello over tls'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: true, ...opts });
    let data = '';
    c.on('data', (b: Buffer) => (data += b.toString()));
    c.on('end', () => resolve(data));
    c.on('error', reject);
  });
}

void describe('createSelfSignedCertificate', () => {
  const madeAt = Date.now();
  const { certPem, keyPem } = createSelfSignedCertificate('Mail.Example.TEST');
  const cert = new X509Certificate(certPem);

  void test('is PEM that node parses, with the right names', () => {
    assert.match(certPem, /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/);
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(cert.subject, `CN=${HOST}`);
    assert.equal(cert.issuer, `CN=${HOST}`);
    assert.equal(cert.subjectAltName, `DNS:${HOST}, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1`);
    assert.equal(cert.checkHost(HOST), HOST);
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkHost('other.example.test'), undefined);
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  });

  void test('is a v3 end-entity server certificate on P-256', () => {
    const legacy = cert.toLegacyObject();
    assert.equal(cert.ca, false);
    assert.deepStrictEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']); // node reports extKeyUsage here
    assert.equal(legacy.asn1Curve, 'prime256v1');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(cert.serialNumber, /^[0-7][0-9A-F]{31}$/); // 16 octets, positive
    assert.equal(cert.checkPrivateKey(createPrivateKey(keyPem)), true);
  });

  void test('is valid from an hour ago for two years', () => {
    const from = new Date(cert.validFrom).getTime();
    const to = new Date(cert.validTo).getTime();
    assert.ok(Math.abs(from - (madeAt - 3_600_000)) < 60_000, cert.validFrom);
    assert.ok(Math.abs(to - (madeAt + 730 * DAY)) < 60_000, cert.validTo);
  });

  void test('carries a valid signature by its own key', () => {
    assert.equal(cert.verify(cert.publicKey), true);
    assert.equal(cert.verify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey), false);
  });

  void test('completes a verified TLS handshake over loopback', async (t) => {
    assert.equal(await handshake(t, certPem, keyPem, { ca: certPem, servername: HOST }), 'hello over tls');
    assert.equal(await handshake(t, certPem, keyPem, { ca: certPem, servername: 'localhost' }), 'hello over tls');
  });

  void test('is refused for another name or without being trusted', async (t) => {
    await assert.rejects(handshake(t, certPem, keyPem, { ca: certPem, servername: 'other.example.test' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    await assert.rejects(handshake(t, certPem, keyPem, { servername: HOST }), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  void test('an IP address as hostname becomes an IP name', () => {
    const c = new X509Certificate(createSelfSignedCertificate('192.0.2.7').certPem);
    assert.equal(c.subject, 'CN=192.0.2.7');
    assert.equal(c.subjectAltName, 'DNS:localhost, IP Address:192.0.2.7, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    const v6 = new X509Certificate(createSelfSignedCertificate('2001:db8::7').certPem);
    assert.equal(v6.subjectAltName, 'DNS:localhost, IP Address:2001:DB8:0:0:0:0:0:7, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  });

  void test('refuses a hostname that is no DNS name, naming the setting', () => {
    assert.throws(() => createSelfSignedCertificate('bad host/'), {
      message:
        'cannot make a self-signed certificate for hostname "bad host/": not a valid DNS name; set `hostname` in the config to this server\'s name, e.g. mail.example.org',
    });
  });
});

void describe('ensureSelfSignedCertificate', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailward-tls-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void test('creates the files once, with a private key file, then reuses them', async () => {
    const tlsDir = join(dir, 'a', 'tls');
    const first = await ensureSelfSignedCertificate(tlsDir, HOST);
    assert.deepStrictEqual(first, { certPath: join(tlsDir, 'selfsigned-cert.pem'), keyPath: join(tlsDir, 'selfsigned-key.pem'), created: true });
    assert.equal((await stat(first.keyPath)).mode & 0o777, 0o600);
    const certPem = await readFile(first.certPath, 'utf8');
    assert.equal(new X509Certificate(certPem).subject, `CN=${HOST}`);

    const second = await ensureSelfSignedCertificate(tlsDir, HOST);
    assert.deepStrictEqual(second, { ...first, created: false });
    assert.equal(await readFile(second.certPath, 'utf8'), certPem);
  });

  void test('makes a new one for another hostname or a key that does not match', async () => {
    const tlsDir = join(dir, 'b');
    const first = await ensureSelfSignedCertificate(tlsDir, HOST);
    const renamed = await ensureSelfSignedCertificate(tlsDir, 'mx.example.test');
    assert.equal(renamed.created, true);
    assert.equal(new X509Certificate(await readFile(renamed.certPath)).subject, 'CN=mx.example.test');

    const other = createSelfSignedCertificate('mx.example.test');
    await writeFile(first.keyPath, other.keyPem);
    const rekeyed = await ensureSelfSignedCertificate(tlsDir, 'mx.example.test');
    assert.equal(rekeyed.created, true);
    const cert = new X509Certificate(await readFile(rekeyed.certPath));
    assert.equal(cert.checkPrivateKey(createPrivateKey(await readFile(rekeyed.keyPath))), true);
  });

  void test('the files on disk serve a verified TLS handshake', async (t) => {
    const { certPath, keyPath } = await ensureSelfSignedCertificate(join(dir, 'c'), HOST);
    const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    assert.equal(await handshake(t, certPem, keyPem, { ca: certPem, servername: HOST }), 'hello over tls');
  });
});
