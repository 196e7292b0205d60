// The built-in ACME client against a real ACME server on loopback (Let's Encrypt's Pebble, Debian
// package `pebble`): the certificate is obtained over http-01 from our own port-80 listener,
// served over STARTTLS, renewed and swapped in without a restart, reused after a restart, and a
// CA that keeps failing near expiry raises an alert through the guard's webhook.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { startServer, type TestServer } from '../harness/server.ts';
import { startDns } from '../harness/dns.ts';
import { freePort } from '../harness/ports.ts';
import { starttls } from './starttls.ts';
import { pebbleInstalled, startPebble } from '../harness/pebble.ts';

const skip = pebbleInstalled() ? false : 'pebble (Debian package) is not installed';

async function peerCertificate(srv: TestServer): Promise<{ fingerprint: string; issuer: string }> {
  const { c, fingerprint, issuer } = await starttls(srv.port('mx'));
  await c.say('QUIT').expect('221');
  return { fingerprint, issuer };
}

async function acmeSetup(t: { after(fn: () => unknown): void }) {
  const dns = await startDns(t, { 'example.org': { names: { mx: { A: ['127.0.0.1'] }, 'mta-sts': { A: ['127.0.0.1'] } } } });
  const [httpPort, tlsPort] = [await freePort(), await freePort()];
  const pebble = await startPebble(t, { dns: dns.address, httpPort, tlsPort });
  const acme = { directory: pebble.directory, directoryCa: pebble.caFile, email: 'postmaster@example.org', hostnames: ['mx.example.org'], http: { host: '127.0.0.1', port: httpPort }, alpn: { host: '127.0.0.1', port: tlsPort } };
  return { pebble, acme };
}

test('a certificate is obtained over http-01, served over STARTTLS, renewed and swapped in, and kept across a restart', { skip }, async (t) => {
  const { pebble, acme } = await acmeSetup(t);
  // Pebble's certificates last years: renew 1 s after issuance (renewAt: a tiny fraction), and
  // at most once a second (retry).
  const srv = await startServer(t, { config: { tls: { acme: { ...acme, renewAt: 1e-9, retry: '1s' } } } });
  const first = await srv.waitForLog((l) => l.event === 'tls-reloaded' && l.origin === 'acme').catch((e: unknown) => {
    // What the ACME client said instead (acme-failed lines), for the failure report.
    console.log(JSON.stringify(srv.logs.filter((l) => /acme|tls/.test(String(l.event)))));
    throw e;
  });
  const files = path.join(srv.dataDir, 'tls', 'acme');
  for (const f of ['account.key', 'key.pem', 'cert.pem']) assert.equal(statSync(path.join(files, f)).mode & 0o777, 0o600, `${f} is 0600`);
  assert.deepEqual(first.names, ['mx.example.org']);

  // The issued chain verifies up to Pebble's root.
  const chain = readFileSync(path.join(files, 'cert.pem'), 'utf8');
  const root = new X509Certificate(await pebble.root());
  const certs = chain.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((p) => p.includes('BEGIN')).map((p) => new X509Certificate(p));
  assert.ok(certs.at(-1)!.verify(root.publicKey) || certs.at(-1)!.checkIssued(root), 'the chain ends at Pebble\'s root');

  // A renewal: a different certificate is swapped in; new STARTTLS sessions get a certificate
  // issued by the ACME CA (the first or a later one), not the self-signed one.
  const renewed = await srv.waitForLog((l) => l.event === 'tls-reloaded' && l.origin === 'acme' && l.fingerprint !== first.fingerprint);
  assert.notEqual(renewed.fingerprint, first.fingerprint);
  const seen = await peerCertificate(srv);
  const issued = new Set(srv.logs.filter((l) => l.event === 'acme-issued').map((l) => l.fingerprint));
  assert.ok(issued.has(seen.fingerprint), 'STARTTLS offers an issued certificate');
  assert.ok(issued.size >= 2, 'renewed at least once');
  await srv.stop();

  // A restart with a certificate not yet due uses the stored one without asking the CA.
  const again = await startServer(t, { dataDir: srv.dataDir, config: { tls: { acme } } });
  const stored = await again.waitForLog((l) => l.event === 'acme-stored');
  const now = await peerCertificate(again);
  assert.equal(now.fingerprint, stored.fingerprint);
  assert.equal(new X509Certificate(readFileSync(path.join(files, 'cert.pem'))).fingerprint256, now.fingerprint);
});

test('renewal that keeps failing near expiry alerts through the guard\'s webhook', { skip }, async (t) => {
  const { pebble, acme } = await acmeSetup(t);
  const posts: Array<Record<string, unknown>> = [];
  let heard: (() => void) | undefined;
  const hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('utf8')));
    req.on('end', () => {
      posts.push(JSON.parse(body) as Record<string, unknown>);
      res.end('ok');
      heard?.();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => hook.close(() => r())));
  const webhook = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alert`;
  // alertBefore longer than Pebble's certificate lifetime: any failed renewal is "near expiry".
  const srv = await startServer(t, {
    config: { tls: { acme: { ...acme, renewAt: 1e-9, retry: '1s', maxRetry: '2s', alertBefore: '36500d' } }, checks: { 'outbound-guard': { alerts: { webhook, postmaster: false } } } },
  });
  await srv.waitForLog((l) => l.event === 'acme-issued');
  // The CA goes away: the next renewal fails, and the alert goes out.
  await pebble.stop();
  const failed = await srv.waitForLog((l) => l.event === 'acme-failed');
  assert.equal(failed.failures, 1);
  const alerted = await srv.waitForLog((l) => l.event === 'acme-alert');
  assert.deepEqual(alerted.names, ['mx.example.org']);
  if (posts.length === 0) await new Promise<void>((r) => (heard = r));
  assert.equal(posts[0]!.type, 'certificate-renewal');
  assert.match(String(posts[0]!.reason), /ACME renewal failed/);
  // The running (issued) certificate stays in force.
  const issued = new Set(srv.logs.filter((l) => l.event === 'acme-issued').map((l) => l.fingerprint));
  assert.ok(issued.has((await peerCertificate(srv)).fingerprint));
});

test('tls-alpn-01: the CA validates on our TLS listener (acme-tls/1), for every name on the certificate', { skip }, async (t) => {
  const { acme } = await acmeSetup(t);
  const srv = await startServer(t, { config: { tls: { acme: { ...acme, challenge: 'tls-alpn-01', hostnames: ['mx.example.org', 'mta-sts.example.org'] } } } });
  const issued = await srv.waitForLog((l) => l.event === 'acme-issued');
  assert.deepEqual([...(issued.names as string[])].sort(), ['mta-sts.example.org', 'mx.example.org']);
  assert.equal(srv.logs.filter((l) => l.event === 'acme-tls-alpn' && l.answered === true).length >= 2, true, 'both names were validated over tls-alpn-01');
  assert.equal(srv.logs.some((l) => l.event === 'acme-http' ), false, 'no http-01 request');
  assert.equal((await peerCertificate(srv)).fingerprint, issued.fingerprint);
});
