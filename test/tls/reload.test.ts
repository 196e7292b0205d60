// The certificate is swapped while the server runs: files replaced the way certbot does it
// (new files in archive/, the symlinks in live/ re-pointed) are picked up by the watch, a new
// STARTTLS session gets the new certificate and a session under way goes on; a bad pair is
// refused with the file named; SIGHUP's reload reads the files too; acceptors follow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { startServer, testConfig, type TestServer } from '../harness/server.ts';
import type { Dialog } from '../harness/dial.ts';
import { starttls } from './starttls.ts';
import { createSelfSignedCertificate } from '../../src/ingress/selfsigned.ts';

interface Live {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  /** Writes archive/<name>N.pem and re-points live/ at them, as certbot renew does. */
  install(n: number, pair: { certPem: string; keyPem: string }): void;
}

function certbotLayout(t: { after(fn: () => void): void }): Live {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-le-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'archive'));
  mkdirSync(path.join(dir, 'live'));
  const link = (target: string, name: string): void => {
    const tmp = path.join(dir, 'live', `.${name}.tmp`);
    symlinkSync(target, tmp);
    renameSync(tmp, path.join(dir, 'live', name));
  };
  return {
    dir,
    cert: path.join(dir, 'live', 'fullchain.pem'),
    key: path.join(dir, 'live', 'privkey.pem'),
    install(n, pair) {
      writeFileSync(path.join(dir, 'archive', `fullchain${n}.pem`), pair.certPem);
      writeFileSync(path.join(dir, 'archive', `privkey${n}.pem`), pair.keyPem, { mode: 0o600 });
      link(`../archive/fullchain${n}.pem`, 'fullchain.pem');
      link(`../archive/privkey${n}.pem`, 'privkey.pem');
    },
  };
}

const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

/** A STARTTLS session on the MX listener and the fingerprint of the certificate it got. */
async function upgrade(srv: TestServer): Promise<{ c: Dialog; seen: string }> {
  const { c, fingerprint } = await starttls(srv.port('mx'));
  return { c, seen: fingerprint };
}

for (const workers of [1, 2]) {
  test(`a replaced certificate is used by new sessions while the old session goes on (workers: ${workers})`, async (t) => {
    const a = createSelfSignedCertificate('mx.example.org');
    const b = createSelfSignedCertificate('mx.example.org');
    const le = certbotLayout(t);
    le.install(1, a);
    const srv = await startServer(t, { config: { workers, tls: { cert: le.cert, key: le.key } } });
    if (workers > 1) await srv.waitForLog((l) => l.event === 'acceptors');

    const first = await upgrade(srv);
    assert.equal(first.seen, fingerprint(a.certPem));

    le.install(2, b);
    await srv.waitForLog((l) => l.event === 'tls-reloaded' && l.fingerprint === fingerprint(b.certPem));
    const second = await upgrade(srv);
    assert.equal(second.seen, fingerprint(b.certPem), 'a new STARTTLS session gets the new certificate');

    // The session begun before the swap still speaks SMTP over its old TLS session.
    await first.c.say('MAIL FROM:<someone@example.net>').expect('250');
    await first.c.say('RSET').expect('250');
    assert.equal((first.c.socket as TLSSocket).getPeerCertificate().fingerprint256, fingerprint(a.certPem));
    await first.c.say('QUIT').expect('221');
    await second.c.say('QUIT').expect('221');
  });
}

test('a certificate that does not match its key is refused, naming the file, and the running one stays', async (t) => {
  const a = createSelfSignedCertificate('mx.example.org');
  const b = createSelfSignedCertificate('mx.example.org');
  const le = certbotLayout(t);
  le.install(1, a);
  const srv = await startServer(t, { config: { tls: { cert: le.cert, key: le.key } } });

  le.install(2, { certPem: b.certPem, keyPem: a.keyPem });
  const refused = await srv.waitForLog((l) => l.event === 'tls-reload' && l.applied === false);
  assert.equal(refused.file, le.key, 'the key file is named');
  assert.match(String(refused.err), /does not belong to the certificate/);
  const { c, seen } = await upgrade(srv);
  assert.equal(seen, fingerprint(a.certPem), 'the running certificate stays in force');
  await c.say('QUIT').expect('221');
});

test('SIGHUP (reload) reads the certificate files again', async (t) => {
  const a = createSelfSignedCertificate('mx.example.org');
  const b = createSelfSignedCertificate('mx.example.org');
  // Files overwritten in place in a folder of their own; the reload reads them without waiting for the watch.
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-cert-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  writeFileSync(cert, a.certPem);
  writeFileSync(key, a.keyPem);
  const srv = await startServer(t, { config: { tls: { cert, key } } });
  writeFileSync(cert, b.certPem);
  writeFileSync(key, b.keyPem);
  srv.server.reload(testConfig(srv.dataDir, { tls: { cert, key } }));
  const swapped = await srv.waitForLog((l) => l.event === 'tls-reloaded' && l.fingerprint === fingerprint(b.certPem));
  assert.ok(swapped.origin === 'SIGHUP' || swapped.origin === 'file change');
  const { c, seen } = await upgrade(srv);
  assert.equal(seen, fingerprint(b.certPem));
  await c.say('QUIT').expect('221');
});
