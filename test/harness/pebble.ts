// Let's Encrypt's ACME test server (Debian package `pebble`) on loopback, for tests of the built-in
// ACME client: its HTTPS directory uses a certificate made here, its validation authority asks
// the test DNS server for the names and fetches http-01 answers from `httpPort` on loopback.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import https from 'node:https';
import type { ChildProcess } from 'node:child_process';
import { createSelfSignedCertificate } from '../../src/ingress/selfsigned.ts';
import { freePort } from './ports.ts';
import { spawnOwned, stopGroup, type ProcessOwner } from './processes.ts';

export const PEBBLE = '/usr/bin/pebble';

export const pebbleInstalled = (): boolean => existsSync(PEBBLE);

export interface TestPebble {
  /** The ACME directory URL (https://localhost:PORT/dir). */
  readonly directory: string;
  /** File with the certificate of pebble's own HTTPS listener: the CA to trust for `directory`. */
  readonly caFile: string;
  /** PEM of the root that signs the certificates pebble issues (management API /roots/0). */
  root(): Promise<string>;
  /** Stops pebble (the ACME server then fails every request: connection refused). */
  stop(): Promise<void>;
}

function get(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

/**
 * Starts pebble. `dns`: "127.0.0.1:PORT" of the test DNS server that resolves the names to
 * 127.0.0.1; `httpPort`/`tlsPort`: where our http-01/tls-alpn-01 listener answers. Killed in `t`'s after hook.
 */
export async function startPebble(t: ProcessOwner, o: { readonly dns: string; readonly httpPort: number; readonly tlsPort?: number }): Promise<TestPebble> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-pebble-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { certPem, keyPem } = createSelfSignedCertificate('localhost');
  const caFile = path.join(dir, 'cert.pem');
  writeFileSync(caFile, certPem);
  writeFileSync(path.join(dir, 'key.pem'), keyPem);
  const [port, mgmt] = [await freePort(), await freePort()];
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${mgmt}`,
        certificate: caFile,
        privateKey: path.join(dir, 'key.pem'),
        httpPort: o.httpPort,
        tlsPort: o.tlsPort ?? (await freePort()),
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  // No sleeps before validation, no random nonce rejections, never reuse an authorization: every
  // order validates against our listener again.
  const env = { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' };
  const child: ChildProcess = spawnOwned(t, PEBBLE, ['-config', path.join(dir, 'config.json'), '-dnsserver', o.dns], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString('utf8');
      if (out.includes('Listening on:') || out.includes('ACME directory available at')) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`pebble exited (${code}) before it listened:\n${out}`)));
  });
  // Keep draining its output so that it never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    directory: `https://localhost:${port}/dir`,
    caFile,
    root: () => get(`https://localhost:${mgmt}/roots/0`, certPem),
    stop: () => stopGroup(child, 'SIGKILL'),
  };
}
