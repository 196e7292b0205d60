// `mailward relay-test --config FILE`: the config's trusted networks judged as the server reads
// them (mapped and loopback ranges are an open relay), and the battery run again from each
// loopback client form against a live server. Real process, real SMTP over loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LOCAL_TRUST_ACK } from '../../src/config/schema.ts';
import { startServer } from '../harness/server.ts';
import { runMailward } from '../harness/cli.ts';

function configFile(t: { after(fn: () => void): void }, networks: readonly string[]): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-relay-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'mailward.yaml');
  writeFileSync(file, `domains: [example.org]\ndataDir: data\nlisteners:\n  mx: { kind: mx, port: 0 }\nrelay:\n  trustedNetworks: ${JSON.stringify(networks)}\n  allowLocalTrust: ${LOCAL_TRUST_ACK}\n`);
  return file;
}

test('relay-test --config: a mapped loopback range is reported as an open relay, and the live loopback forms relay', async (t) => {
  const networks = ['[::ffff:127.0.0.0]/104'];
  const srv = await startServer(t, { config: { relay: { trustedNetworks: networks } } });
  const file = configFile(t, networks);
  const r = await runMailward(['relay-test', '--config', file, `127.0.0.1:${srv.port('mx')}`, '--timeout', '20000']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /^ {2}relay\.trustedNetworks\[0\] "\[::ffff:127\.0\.0\.0\]\/104": OPEN RELAY: "\[::ffff:127\.0\.0\.0\]\/104" is 127\.0\.0\.0\/8, which holds loopback/m);
  assert.match(r.stdout, /^ {2}from 127\.0\.0\.1: RESULT: OPEN RELAY/m);
  assert.match(r.stdout, /^ {2}from ::ffff:127\.0\.0\.1: RESULT: OPEN RELAY/m);
  assert.match(r.stdout, /^ {2}from ::1: /m);
  assert.match(r.stdout, /^CONFIG RESULT: OPEN RELAY/m);
});

test('relay-test --config: a mapped public range is an open relay for its IPv4 clients; a plain one is not', async (t) => {
  const srv = await startServer(t);
  const mapped = await runMailward(['relay-test', '--config', configFile(t, ['::ffff:192.0.2.0/120']), `127.0.0.1:${srv.port('mx')}`, '--timeout', '20000']);
  assert.equal(mapped.code, 1, mapped.stderr);
  assert.match(mapped.stdout, /OPEN RELAY for IPv4: "::ffff:192\.0\.2\.0\/120" is the IPv4 range 192\.0\.2\.0\/24 written in IPv4-mapped form/);
  const plain = await runMailward(['relay-test', '--config', configFile(t, ['192.0.2.0/24']), `127.0.0.1:${srv.port('mx')}`, '--timeout', '20000']);
  assert.equal(plain.code, 0, plain.stdout + plain.stderr);
  assert.match(plain.stdout, /^ {2}relay\.trustedNetworks\[0\] "192\.0\.2\.0\/24": trusts 192\.0\.2\.0\/24$/m);
  assert.match(plain.stdout, /^CONFIG RESULT: no trusted network/m);
});
