// Trusted networks end to end: an IPv4-mapped range is judged as the IPv4 range it means, and
// loopback trust (in any spelling) is refused unless acknowledged; acknowledged, it is warned
// about at every start and reload. Real SMTP over loopback, real config files for the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../src/config/errors.ts';
import { LOCAL_TRUST_ACK } from '../../src/config/schema.ts';
import { startServer, testConfig } from '../harness/server.ts';
import { dial } from '../harness/dial.ts';
import { runMailward } from '../harness/cli.ts';
import { proxyV1Header } from '../../src/ingress/proxy-header.ts';
import { auditConfig } from '../../src/doctor/audit-config.ts';
import { runDoctorCli } from '../../src/doctor/doctor.ts';

const LOOPBACK_FIX = `Fix: remove it and let local programs log in on the submission port; or set relay.allowLocalTrust: ${LOCAL_TRUST_ACK} to run with it anyway`;

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-nets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** RCPT of an unauthenticated relay attempt from 127.0.0.1 to a foreign domain. */
async function tryRelay(port: number): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO client.example.com').expect('250');
  await c.say('MAIL FROM:<someone@example.com>').expect('250');
  const r = await c.say('RCPT TO:<victim@example.net>').read();
  await c.say('QUIT').read();
  c.close();
  return r.raw.trim();
}

const refusal = (dir: string, relay: Record<string, unknown>): ConfigError => {
  try {
    testConfig(dir, { relay });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail(`config ${JSON.stringify(relay)} was accepted`);
};

test('trusted networks: ::ffff:0.0.0.0/96 is judged as 0.0.0.0/0 and refused; a mapped /120 trusts only its IPv4 /24, so 127.0.0.1 may not relay', async (t) => {
  const dir = tmp(t);
  const err = refusal(dir, { trustedNetworks: ['::ffff:0.0.0.0/96'], allowLocalTrust: LOCAL_TRUST_ACK });
  assert.deepEqual(err.problems, [
    { path: 'relay.trustedNetworks[0]', message: '"::ffff:0.0.0.0/96" (the range 0.0.0.0/0) trusts every address as a relay network', fix: 'list only your own hosts, e.g. 10.0.0.5/32' },
  ]);
  // Wider IPv6 ranges that hold the mapped block are refused as well, acknowledged or not.
  for (const wide of ['::/0', '::/64', '::ffff:0:0/95', '::ffff:127.0.0.1/80']) {
    assert.equal(refusal(dir, { trustedNetworks: [wide], allowLocalTrust: LOCAL_TRUST_ACK }).problems[0]?.path, 'relay.trustedNetworks[0]', wide);
  }
  // A mapped range is the IPv4 range it carries, for an IPv4 client too: 192.0.2.0/24, not loopback.
  const srv = await startServer(t, { config: { relay: { trustedNetworks: ['::ffff:192.0.2.0/120'], allowLocalTrust: undefined } } });
  assert.match(await tryRelay(srv.port('mx')), /^554 5\.7\.1/);
  assert.equal(srv.logs.some((l) => l.event === 'config-warning'), false);
});

test('trusted networks: loopback in any spelling is refused at load, naming the key, the value and the fix', (t) => {
  const dir = tmp(t);
  for (const spelling of ['127.0.0.1', '127.0.0.0/8', '127.0.0.1/8', '::1', '[::1]/128', '::ffff:127.0.0.1', '::ffff:7f00:1', '[::ffff:7f00:1]', '0:0:0:0:0:ffff:127.0.0.1', '[::ffff:127.0.0.0]/104', '127.255.0.0/16', '64.0.0.0/2']) {
    const err = refusal(dir, { trustedNetworks: ['192.0.2.7', spelling], allowLocalTrust: undefined });
    assert.equal(err.problems.length, 1, spelling);
    assert.equal(err.problems[0]?.path, 'relay.trustedNetworks[1]', spelling);
    if (spelling !== '64.0.0.0/2') assert.match(err.problems[0].message, /includes loopback/, spelling);
  }
  // Odd spellings are refused outright, with the key.
  for (const odd of ['127.1', '0127.0.0.1', '127.000.0.1', 'fe80::1%eth0', '::127.0.0.1']) {
    assert.equal(refusal(dir, { trustedNetworks: [odd], allowLocalTrust: LOCAL_TRUST_ACK }).problems[0]?.path, 'relay.trustedNetworks[0]', odd);
  }
});

test("trusted networks: a range holding a listener's PROXY sender or its own address is refused like loopback", (t) => {
  const dir = tmp(t);
  const listeners = { mx: { kind: 'mx', host: '192.0.2.25', port: 0, proxy: { trusted: ['::ffff:198.51.100.9'] } } };
  let err: ConfigError | undefined;
  try {
    testConfig(dir, { listeners, relay: { trustedNetworks: ['198.51.100.0/24', '::ffff:192.0.2.0/120'], allowLocalTrust: undefined } });
  } catch (e) {
    err = e as ConfigError;
  }
  assert.deepEqual(
    err?.problems.map((p) => [p.path, p.message.slice(0, p.message.indexOf('): ') + 1)]),
    [
      ['relay.trustedNetworks[0]', '"198.51.100.0/24" includes "::ffff:198.51.100.9", a PROXY protocol sender of listener "mx" (listeners.mx.proxy.trusted[0])'],
      ['relay.trustedNetworks[1]', '"::ffff:192.0.2.0/120" (the range 192.0.2.0/24) includes "192.0.2.25", the address listener "mx" listens on (listeners.mx.host)'],
    ],
  );
});

test('trusted networks: check-config refuses Postfix-style [::ffff:127.0.0.0]/104 with the exact text; acknowledged, it prints the warning', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'mailward.yaml');
  writeFileSync(file, 'domains: [example.org]\ndataDir: data\nlisteners:\n  mx: { kind: mx, port: 0 }\nrelay:\n  trustedNetworks: ["[::ffff:127.0.0.0]/104"]\n');
  const r = await runMailward(['check-config', '--config', file]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `config error at relay.trustedNetworks[0]: "[::ffff:127.0.0.0]/104" (the range 127.0.0.0/8) includes loopback (127.0.0.0/8 or ::1): every tunnel, port forward or proxy on this host connects from loopback, so each client it carries may relay without a login (an open relay) (in ${file}). ${LOOPBACK_FIX}\n`,
  );
  writeFileSync(file, `domains: [example.org]\ndataDir: data\nlisteners:\n  mx: { kind: mx, port: 0 }\nrelay:\n  trustedNetworks: ["[::ffff:127.0.0.0]/104"]\n  allowLocalTrust: ${LOCAL_TRUST_ACK}\n`);
  const ok = await runMailward(['check-config', '--config', file]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^warning at relay\.trustedNetworks\[0\] \(acknowledged by relay\.allowLocalTrust\): "\[::ffff:127\.0\.0\.0\]\/104" \(the range 127\.0\.0\.0\/8\) includes loopback/m);
});

test('trusted networks: acknowledged loopback trust starts, relays from 127.0.0.1, and logs the warning at start and at every reload', async (t) => {
  const relay = { trustedNetworks: ['[::ffff:127.0.0.0]/104'], allowLocalTrust: LOCAL_TRUST_ACK };
  const srv = await startServer(t, { config: { relay } });
  const warnings = (): Array<Record<string, unknown>> => srv.logs.filter((l) => l.event === 'config-warning');
  await srv.waitForLog((l) => l.event === 'config-warning');
  assert.equal(warnings().length, 1);
  assert.equal(warnings()[0]!.setting, 'relay.trustedNetworks[0]');
  assert.match(String(warnings()[0]!.msg), /^acknowledged risk at relay\.trustedNetworks\[0\]: "\[::ffff:127\.0\.0\.0\]\/104" \(the range 127\.0\.0\.0\/8\) includes loopback/);
  assert.equal(warnings()[0]!.level, 40);
  // The mapped range is the loopback /8 for the IPv4 client, exactly as the config check judged it.
  assert.match(await tryRelay(srv.port('mx')), /^250/);
  srv.server.reload(testConfig(srv.dataDir, { relay }));
  await srv.waitForLog(() => warnings().length === 2);
  assert.deepEqual(srv.logs.filter((l) => l.event === 'reload').at(-1)?.restartNeeded, []);
  srv.server.reload(testConfig(srv.dataDir, { relay: { trustedNetworks: ['192.0.2.0/24'] } }));
  await srv.waitForLog((l) => l.event === 'reload' && l.applied === true && warnings().length === 2);
  assert.match(await tryRelay(srv.port('mx')), /^554 5\.7\.1/);
});

test('trusted networks: doctor explains a mapped loopback range (acknowledged) and names key, value and fix when it is refused', async (t) => {
  const dir = tmp(t);
  const config = testConfig(dir, { relay: { trustedNetworks: ['[::ffff:127.0.0.0]/104'], allowLocalTrust: LOCAL_TRUST_ACK } });
  const findings = auditConfig(config, { interfaces: {} }).filter((f) => f.setting.startsWith('relay.'));
  assert.deepEqual(
    findings.map((f) => [f.id, f.severity, f.setting]),
    [
      ['network-mapped-form', 'warning', 'relay.trustedNetworks[0]'],
      ['relay-trusts-loopback', 'error', 'relay.trustedNetworks[0]'],
    ],
  );
  assert.equal(findings[0]!.fix, 'write 127.0.0.0/8');
  const file = path.join(dir, 'mailward.yaml');
  writeFileSync(file, JSON.stringify({ domains: ['example.org'], dataDir: 'data', listeners: { mx: { kind: 'mx', port: 0 } }, relay: { trustedNetworks: ['::ffff:7f00:1'] } }));
  const run = await runDoctorCli(file, true, { interfaces: {} });
  assert.equal(run.code, 2);
  assert.deepEqual(run.findings.map((f) => [f.id, f.setting]), [['config-invalid', 'relay.trustedNetworks[0]']]);
  assert.match(run.findings[0]!.message, /^"::ffff:7f00:1" \(the range 127\.0\.0\.1\/32\) includes loopback/);
  assert.match(run.findings[0]!.fix, /relay\.allowLocalTrust: tunnels-make-this-an-open-relay/);
});

test('trusted networks: the dashboard summary lists acknowledged local trust, and a reload that drops it clears it', async (t) => {
  const dir = tmp(t);
  const tokenFile = path.join(dir, 'admin.token');
  writeFileSync(tokenFile, 'test-admin-token-0123456789abcdef\n', { mode: 0o600 });
  const admin = { enabled: true, port: 0, tokenFile };
  const srv = await startServer(t, { config: { admin, relay: { trustedNetworks: ['::1'], allowLocalTrust: LOCAL_TRUST_ACK } } });
  const summary = async (): Promise<{ warnings: Array<{ setting: string; message: string; fix: string }> }> => {
    const res = await fetch(`http://127.0.0.1:${srv.server.adminPort()}/api/summary`, { headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' } });
    assert.equal(res.status, 200);
    return (await res.json()) as { warnings: Array<{ setting: string; message: string; fix: string }> };
  };
  const before = await summary();
  assert.deepEqual(before.warnings.map((w) => w.setting), ['relay.trustedNetworks[0]']);
  assert.match(before.warnings[0]!.message, /^"::1" includes loopback/);
  srv.server.reload(testConfig(srv.dataDir, { admin, relay: { trustedNetworks: [] } }));
  assert.deepEqual((await summary()).warnings, []);
});

test('trusted networks: proxy.trusted in mapped spellings is the IPv4 peer; a claimed mapped client is logged as IPv4 and judged so', async (t) => {
  const srv = await startServer(t, {
    config: { relay: { trustedNetworks: ['203.0.113.0/24'] }, listeners: { mx: { kind: 'mx', port: 0, proxy: { trusted: ['[::ffff:7f00:1]', '0:0:0:0:0:ffff:127.0.0.2'] } } } },
  });
  // The client claims the hex mapped form of a trusted address: folded, it is 203.0.113.9 and may relay.
  const c = await dial(srv.port('mx'), { prelude: proxyV1Header({ address: '::ffff:cb00:7109', port: 40000 }, { address: '::1', port: 25 }) });
  await c.expect('220');
  await c.say('EHLO client.example.com').expect('250');
  await c.say('MAIL FROM:<someone@example.com>').expect('250');
  await c.say('RCPT TO:<victim@example.net>').expect('250');
  await c.say('QUIT').read();
  c.close();
  const connect = await srv.waitForLog((l) => l.event === 'connect');
  assert.deepEqual([connect.client, connect.proxy], ['203.0.113.9', '127.0.0.1']);
  // Without the header the trusted peer is cut off, never judged as 127.0.0.1 (which is not trusted anyway).
  assert.match(await tryRelay(srv.port('mx')).catch((e: unknown) => String(e)), /^(?!250)/);
});
