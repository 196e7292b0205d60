// `mailward doctor`: each config below differs from a clean one by one mistake, and is paired
// with the exact finding (id, severity, setting, text, fix) the audit must report — and nothing
// else. The machine checks run for real: files, a loopback DNS server, statfs, the spool's mtimes.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statfsSync, utimesSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildConfig, type Config } from '../../src/config/load.ts';
import { LOCAL_TRUST_ACK } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { createSelfSignedCertificate } from '../../src/ingress/selfsigned.ts';
import { generateDkimKey } from '../../src/delivery/dkim-sign.ts';
import { runDoctor, runDoctorCli, type DoctorOptions } from '../../src/doctor/doctor.ts';
import { certFindings, diskFindings } from '../../src/doctor/audit-machine.ts';
import { formatFinding, type Finding } from '../../src/doctor/finding.ts';
import { startDns } from '../harness/dns.ts';
import { openDirectory } from '../../src/app/accounts.ts';
import { Directory } from '../../src/directory/directory.ts';

interface Setup {
  dir: string;
  dataDir: string;
  source: string;
  base: Record<string, unknown>;
}

const CERT = createSelfSignedCertificate('mx.example.org');
const DKIM = generateDkimKey('ed25519');

/** A folder with a certificate for mx.example.org, a DKIM key for example.org, and a directory
 * where postmaster@example.org (and @example.com, a second domain some tests add) is an alias. */
function setup(t: TestContext): Setup {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-doctor-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');
  mkdirSync(path.join(dataDir, 'dkim'), { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  writeFileSync(path.join(dataDir, 'dkim', 'example.org.sel.key'), DKIM, { mode: 0o600 });
  writeFileSync(path.join(dir, 'cert.pem'), CERT.certPem);
  writeFileSync(path.join(dir, 'key.pem'), CERT.keyPem, { mode: 0o600 });
  const directory = Directory.open(path.join(dataDir, 'directory.sqlite'), { domains: ['example.org', 'example.com'] });
  directory.addAlias('postmaster@example.org', ['ops@example.net']);
  directory.addAlias('postmaster@example.com', ['ops@example.net']);
  directory.close();
  const base = {
    hostname: 'mx.example.org',
    domains: ['example.org'],
    dataDir,
    tls: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') },
    listeners: {
      mx: { kind: 'mx', host: '0.0.0.0', port: 25 },
      submission: { kind: 'submission', host: '0.0.0.0', port: 587 },
      submissions: { kind: 'submissions', host: '0.0.0.0', port: 465 },
    },
  };
  return { dir, dataDir, source: path.join(dir, 'mailward.yaml'), base };
}

function config(s: Setup, extra: Record<string, unknown> = {}): Config {
  return buildConfig({ ...s.base, ...extra }, s.source, s.dir);
}

const QUIET: DoctorOptions = { interfaces: {}, timeSync: async () => ({ synchronized: true, detail: 'test' }), dnsTimeoutMs: 300, directory: openDirectory };

async function doctor(c: Config, opts: DoctorOptions = {}): Promise<Finding[]> {
  return runDoctor(c, { ...QUIET, ...opts });
}

/** Asserts that the audit finds exactly `expected`. */
async function expectOnly(c: Config, expected: Finding, opts: DoctorOptions = {}): Promise<void> {
  assert.deepEqual(await doctor(c, opts), [expected]);
}

test('doctor: a clean config has no findings, and the command exits 0', async (t) => {
  const s = setup(t);
  assert.deepEqual(await doctor(config(s)), []);
  writeFileSync(s.source, JSON.stringify(s.base)); // YAML is a superset of JSON
  const run = await runDoctorCli(s.source, true, QUIET);
  assert.equal(run.code, 0);
  assert.deepEqual(JSON.parse(run.output), { config: s.source, counts: { error: 0, warning: 0, info: 0 }, findings: [] });
});

test('doctor: loopback in relay.trustedNetworks (the incident) is an error; the command prints it and exits 1', async (t) => {
  const s = setup(t);
  const expected: Finding = {
    id: 'relay-trusts-loopback',
    severity: 'error',
    setting: 'relay.trustedNetworks[0]',
    message: '"127.0.0.1/32" includes loopback: a tunnel, proxy or port forwarder on this host connects from loopback, so every client it carries may relay — how a tunnelled Postfix became an open relay',
    fix: 'remove it; let local programs log in on the submission port instead',
  };
  await expectOnly(config(s, { relay: { trustedNetworks: ['127.0.0.1/32'], allowLocalTrust: LOCAL_TRUST_ACK } }), expected);
  // Any range that merely touches loopback counts: ::1 and a /8 around it.
  const both = await doctor(config(s, { relay: { trustedNetworks: ['::1', '127.0.0.0/8'], allowLocalTrust: LOCAL_TRUST_ACK } }));
  assert.deepEqual(
    both.map((f) => [f.id, f.setting]),
    [
      ['relay-trusts-loopback', 'relay.trustedNetworks[0]'],
      ['relay-trusts-loopback', 'relay.trustedNetworks[1]'],
    ],
  );
  writeFileSync(s.source, JSON.stringify({ ...s.base, relay: { trustedNetworks: ['127.0.0.1/32'], allowLocalTrust: LOCAL_TRUST_ACK } }));
  const run = await runDoctorCli(s.source, false, QUIET);
  assert.equal(run.code, 1);
  assert.equal(run.output, `${formatFinding(expected)}\n1 error(s), 0 warning(s), 0 note(s) for ${s.source}\n`);
  assert.equal(
    formatFinding(expected),
    'error relay-trusts-loopback at relay.trustedNetworks[0]: "127.0.0.1/32" includes loopback: a tunnel, proxy or port forwarder on this host connects from loopback, so every client it carries may relay — how a tunnelled Postfix became an open relay. Fix: remove it; let local programs log in on the submission port instead',
  );
});

test('doctor: a private range in relay.trustedNetworks is a warning', async (t) => {
  const s = setup(t);
  await expectOnly(config(s, { relay: { trustedNetworks: ['192.168.1.0/24'] } }), {
    id: 'relay-trusts-private',
    severity: 'warning',
    setting: 'relay.trustedNetworks[0]',
    message: '"192.168.1.0/24" is a private (RFC 1918) range: behind NAT, a VPN or a container network many clients can share one such address, and each of them may relay without a login',
    fix: 'list only the hosts that must send without a login, each as /32 (e.g. 192.168.1.10/32), or have them log in',
  });
});

test("doctor: the proxy's own address in relay.trustedNetworks is an error (PROXY LOCAL would relay)", async (t) => {
  const s = setup(t);
  const listeners = { ...(s.base.listeners as object), mx: { kind: 'mx', host: '0.0.0.0', port: 25, proxy: { trusted: ['203.0.113.9'] } } };
  await expectOnly(config(s, { listeners, relay: { trustedNetworks: ['203.0.113.0/24'], allowLocalTrust: LOCAL_TRUST_ACK } }), {
    id: 'relay-trusts-proxy',
    severity: 'error',
    setting: 'relay.trustedNetworks[0]',
    message: '"203.0.113.0/24" includes "203.0.113.9", a PROXY protocol sender of listener "mx" (listeners.mx.proxy.trusted[0]): its PROXY LOCAL or UNKNOWN connections carry no client address, keep the proxy\'s, and would relay',
    fix: "remove the proxy's address from relay.trustedNetworks; clients behind it are judged by the address in their PROXY header",
  });
});

test("doctor: a range holding this machine's own address (a container bridge) is an error", async (t) => {
  const s = setup(t);
  const interfaces = { docker0: [{ address: '172.17.0.1', internal: false }], lo: [{ address: '127.0.0.1', internal: true }] };
  await expectOnly(
    config(s, { relay: { trustedNetworks: ['172.17.0.0/16'] } }),
    {
      id: 'relay-trusts-own-host',
      severity: 'error',
      setting: 'relay.trustedNetworks[0]',
      message: '"172.17.0.0/16" includes 172.17.0.1, an address of this machine (docker0): a forwarder, container proxy or tunnel on this host connects from it, so every client it carries may relay',
      fix: "remove this machine's addresses; list only the hosts that send through you, each as /32",
    },
    { interfaces },
  );
});

test('doctor: a wide public range in relay.trustedNetworks is a warning', async (t) => {
  const s = setup(t);
  await expectOnly(config(s, { relay: { trustedNetworks: ['198.51.100.0/22'] } }), {
    id: 'relay-trusts-wide',
    severity: 'warning',
    setting: 'relay.trustedNetworks[0]',
    message: '"198.51.100.0/22" trusts 1024 addresses to relay without a login',
    fix: 'list only the hosts that must send without a login, each as /32, or have them log in',
  });
});

test('doctor: a PROXY trust list that is too wide is a warning', async (t) => {
  const s = setup(t);
  const listeners = { ...(s.base.listeners as object), mx: { kind: 'mx', host: '0.0.0.0', port: 25, proxy: { trusted: ['10.1.0.0/16'] } } };
  await expectOnly(config(s, { listeners }), {
    id: 'proxy-trust-wide',
    severity: 'warning',
    setting: 'listeners.mx.proxy.trusted[0]',
    message: '"10.1.0.0/16" lets 65536 addresses send a PROXY header, and so claim any client address they like',
    fix: 'list only the proxy hosts themselves, each as /32 (e.g. 10.0.0.5/32)',
  });
});

test('doctor: an mx listener on loopback or a private address without PROXY protocol is a warning (a forwarder collapses every client into one address)', async (t) => {
  const s = setup(t);
  const on = (host: string, port: number): Record<string, unknown> => ({ listeners: { ...(s.base.listeners as object), mx: { kind: 'mx', host, port } } });
  const fix = 'make the forwarder send a PROXY protocol header (e.g. HAProxy send-proxy-v2) and list its address in listeners.mx.proxy.trusted, or listen on the public address';
  await expectOnly(config(s, on('127.0.0.1', 2525)), {
    id: 'listener-behind-forwarder',
    severity: 'warning',
    setting: 'listeners.mx.host',
    message: 'the mx listener "mx" listens on 127.0.0.1:2525 without PROXY protocol: other servers can reach it only through a tunnel or forwarder, and then every client has the forwarder\'s address',
    fix,
  });
  await expectOnly(config(s, on('10.0.0.7', 25)), {
    id: 'listener-behind-forwarder',
    severity: 'warning',
    setting: 'listeners.mx.host',
    message: 'the mx listener "mx" listens on 10.0.0.7:25, a private address, without PROXY protocol: if a load balancer, port forward or tunnel delivers to it, every client has the forwarder\'s address',
    fix,
  });
  // Any port: a NAT port forward from the public 25 to 192.168.1.5:2525 is the same mistake.
  await expectOnly(config(s, on('192.168.1.5', 2525)), {
    id: 'listener-behind-forwarder',
    severity: 'warning',
    setting: 'listeners.mx.host',
    message: 'the mx listener "mx" listens on 192.168.1.5:2525, a private address, without PROXY protocol: if a load balancer, port forward or tunnel delivers to it, every client has the forwarder\'s address',
    fix,
  });
  // With the forwarder's address listed for PROXY protocol, the real client address is known.
  assert.deepEqual(await doctor(config(s, { listeners: { ...(s.base.listeners as object), mx: { kind: 'mx', host: '127.0.0.1', port: 2525, proxy: { trusted: ['127.0.0.1'] } } } })), []);
});

test('doctor: a submission listener on loopback or a private address without PROXY protocol is a note that says what to check (local webmail is legitimate)', async (t) => {
  const s = setup(t);
  const on = (host: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ listeners: { ...(s.base.listeners as object), submission: { kind: 'submission', host, port: 587, ...extra } } });
  await expectOnly(config(s, on('127.0.0.1')), {
    id: 'listener-behind-forwarder',
    severity: 'info',
    setting: 'listeners.submission.host',
    message: 'the submission listener "submission" listens on 127.0.0.1:587 without PROXY protocol: fine if only programs on this host (e.g. webmail) connect to it; but if a tunnel, port forward or proxy delivers remote clients to it, they all share the forwarder\'s address, so one password guesser blocks every user\'s login, rate limits count all users as one client, and the log never shows the real client',
    fix: 'check what connects to 127.0.0.1:587; if a forwarder does, make it send a PROXY protocol header (e.g. HAProxy send-proxy-v2) and list its address in listeners.submission.proxy.trusted',
  });
  await expectOnly(config(s, on('192.168.1.5')), {
    id: 'listener-behind-forwarder',
    severity: 'info',
    setting: 'listeners.submission.host',
    message: 'the submission listener "submission" listens on 192.168.1.5:587, a private address, without PROXY protocol: fine if clients on that network connect to it directly; but if a tunnel, port forward or proxy delivers remote clients to it, they all share the forwarder\'s address, so one password guesser blocks every user\'s login, rate limits count all users as one client, and the log never shows the real client',
    fix: 'check what connects to 192.168.1.5:587; if a forwarder does, make it send a PROXY protocol header (e.g. HAProxy send-proxy-v2) and list its address in listeners.submission.proxy.trusted',
  });
  // A note only: the command still exits 0.
  writeFileSync(s.source, JSON.stringify({ ...s.base, ...on('127.0.0.1') }));
  assert.equal((await runDoctorCli(s.source, true, QUIET)).code, 0);
  assert.deepEqual(await doctor(config(s, on('127.0.0.1', { proxy: { trusted: ['127.0.0.1'] } }))), []);
});

test('doctor: a submissions (implicit TLS) listener on loopback or a private address without PROXY protocol is a note too', async (t) => {
  const s = setup(t);
  const on = (host: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ listeners: { ...(s.base.listeners as object), submissions: { kind: 'submissions', host, port: 465, ...extra } } });
  await expectOnly(config(s, on('::1')), {
    id: 'listener-behind-forwarder',
    severity: 'info',
    setting: 'listeners.submissions.host',
    message: 'the submissions listener "submissions" listens on [::1]:465 without PROXY protocol: fine if only programs on this host (e.g. webmail) connect to it; but if a tunnel, port forward or proxy delivers remote clients to it, they all share the forwarder\'s address, so one password guesser blocks every user\'s login, rate limits count all users as one client, and the log never shows the real client',
    fix: 'check what connects to [::1]:465; if a forwarder does, make it send a PROXY protocol header (e.g. HAProxy send-proxy-v2) and list its address in listeners.submissions.proxy.trusted',
  });
  await expectOnly(config(s, on('10.0.0.7')), {
    id: 'listener-behind-forwarder',
    severity: 'info',
    setting: 'listeners.submissions.host',
    message: 'the submissions listener "submissions" listens on 10.0.0.7:465, a private address, without PROXY protocol: fine if clients on that network connect to it directly; but if a tunnel, port forward or proxy delivers remote clients to it, they all share the forwarder\'s address, so one password guesser blocks every user\'s login, rate limits count all users as one client, and the log never shows the real client',
    fix: 'check what connects to 10.0.0.7:465; if a forwarder does, make it send a PROXY protocol header (e.g. HAProxy send-proxy-v2) and list its address in listeners.submissions.proxy.trusted',
  });
  assert.deepEqual(await doctor(config(s, on('10.0.0.7', { proxy: { trusted: ['10.0.0.2'] } }))), []);
});

test('doctor: a PROXY trust list of every address (0.0.0.0/0, ::/0) is refused at load, naming the setting; doctor reports it as config-invalid', async (t) => {
  const s = setup(t);
  const refusal = (trusted: string[]): string => {
    try {
      config(s, { listeners: { ...(s.base.listeners as object), mx: { kind: 'mx', host: '0.0.0.0', port: 25, proxy: { trusted } } } });
    } catch (e) {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
      return e.message;
    }
    assert.fail('the config was accepted');
  };
  assert.equal(refusal(['0.0.0.0/0']), `config error at listeners.mx.proxy.trusted[0]: "0.0.0.0/0" trusts every address as a PROXY protocol sender (in ${s.source}). Fix: list only your own hosts, e.g. 10.0.0.5/32`);
  assert.equal(refusal(['10.0.0.5', '::/0']), `config error at listeners.mx.proxy.trusted[1]: "::/0" trusts every address as a PROXY protocol sender (in ${s.source}). Fix: list only your own hosts, e.g. 2001:db8::5/128`);
  writeFileSync(s.source, 'listeners:\n  submission:\n    kind: submission\n    port: 587\n    proxy:\n      trusted: ["0.0.0.0/0"]\n');
  const run = await runDoctorCli(s.source, true, QUIET);
  assert.equal(run.code, 2);
  assert.deepEqual(JSON.parse(run.output), {
    config: s.source,
    counts: { error: 1, warning: 0, info: 0 },
    findings: [{ id: 'config-invalid', severity: 'error', setting: 'listeners.submission.proxy.trusted[0]', message: '"0.0.0.0/0" trusts every address as a PROXY protocol sender', fix: 'list only your own hosts, e.g. 10.0.0.5/32' }],
  });
});

test('doctor: AUTH on a listener without TLS is an error', async (t) => {
  const s = setup(t);
  const listeners = { ...(s.base.listeners as object), mx: { kind: 'mx', host: '0.0.0.0', port: 25, auth: true, starttls: false } };
  await expectOnly(config(s, { listeners }), {
    id: 'auth-without-tls',
    severity: 'error',
    setting: 'listeners.mx.auth',
    message: 'listener "mx" offers AUTH but has no TLS (starttls is off and it is not a submissions listener): passwords would cross the network readable, so Mailward never offers AUTH here and no one can log in',
    fix: 'remove listeners.mx.starttls (it defaults to on), use kind: submissions, or set listeners.mx.auth to false',
  });
});

test('doctor: a submission listener that accepts mail without a login is an error', async (t) => {
  const s = setup(t);
  const listeners = { ...(s.base.listeners as object), submission: { kind: 'submission', host: '0.0.0.0', port: 587, requireAuth: false } };
  await expectOnly(config(s, { listeners }), {
    id: 'submission-without-auth',
    severity: 'error',
    setting: 'listeners.submission.requireAuth',
    message: 'listener "submission" (kind submission) accepts mail without a login; RFC 6409 §4.3 requires authentication for submission',
    fix: 'remove listeners.submission.requireAuth and listeners.submission.auth (both default to on for submission) or set them to true',
  });
});

test('doctor: TLS certificate — none (self-signed), unreadable, for another name, expired, expiring', async (t) => {
  const s = setup(t);
  await expectOnly(config(s, { tls: {} }), {
    id: 'tls-self-signed',
    severity: 'warning',
    setting: 'tls.cert',
    message: 'no tls.cert and tls.key are set, so "mx", "submission", "submissions" use a self-signed certificate that mail clients and other servers cannot verify',
    fix: "set tls.cert and tls.key to your certificate chain and key, e.g. from Let's Encrypt",
  });
  const missing = path.join(s.dir, 'nope.pem');
  await expectOnly(config(s, { tls: { cert: missing, key: path.join(s.dir, 'key.pem') } }), {
    id: 'tls-cert-unreadable',
    severity: 'error',
    setting: 'tls.cert',
    message: `cannot use ${missing}: ENOENT`,
    fix: 'point tls.cert at a readable PEM certificate chain',
  });
  const other = createSelfSignedCertificate('other.example.net');
  const otherFile = path.join(s.dir, 'other.pem');
  writeFileSync(otherFile, other.certPem);
  await expectOnly(config(s, { tls: { cert: otherFile, key: path.join(s.dir, 'key.pem') } }), {
    id: 'tls-cert-name-mismatch',
    severity: 'warning',
    setting: 'tls.cert',
    message: `the certificate ${otherFile} is not valid for the hostname "mx.example.org" (subject: CN=other.example.net)`,
    fix: 'use a certificate that names this server, or set hostname to a name the certificate covers',
  });
  const cert = new X509Certificate(CERT.certPem);
  const until = Date.parse(cert.validTo);
  assert.deepEqual(certFindings(cert, 'c.pem', 'mx.example.org', until + 86_400_000), [
    { id: 'tls-cert-expired', severity: 'error', setting: 'tls.cert', message: `the certificate c.pem expired on ${new Date(until).toISOString()}: clients and servers that verify refuse TLS, and submission clients cannot connect`, fix: 'renew it (e.g. certbot renew): Mailward reads the new files by itself (or on SIGHUP), no restart needed' },
  ]);
  assert.deepEqual(certFindings(cert, 'c.pem', 'mx.example.org', until - 3.5 * 86_400_000), [
    { id: 'tls-cert-expiring', severity: 'warning', setting: 'tls.cert', message: `the certificate c.pem expires on ${new Date(until).toISOString()}, in 3 day(s)`, fix: 'renew it (e.g. certbot renew): Mailward reads the new files by itself (or on SIGHUP), no restart needed' },
  ]);
});

test('doctor: ACME — no certificate yet, the hostname not listed, the http-01 port not 80, a stored certificate near expiry', async (t) => {
  const s = setup(t);
  const acme = { hostnames: ['mx.example.org'], http: { port: 80 } };
  const c = config(s, { tls: { acme } });
  await expectOnly(c, {
    id: 'tls-acme-pending',
    severity: 'info',
    setting: 'tls.acme',
    message: `no ACME certificate is stored yet (${path.join(c.paths.acme, 'cert.pem')}): the server orders one when it starts and uses a self-signed certificate until then`,
    fix: 'start the server and look for the acme-issued (or acme-failed) line in its log',
  });
  // A stored certificate: the machine audit reads it, with fixes that point at the ACME log.
  mkdirSync(c.paths.acme, { recursive: true });
  writeFileSync(path.join(c.paths.acme, 'cert.pem'), CERT.certPem);
  assert.deepEqual(await doctor(c), []);
  const findings = await doctor(config(s, { tls: { acme: { hostnames: ['other.example.org'], http: { port: 8080 } } } }));
  assert.deepEqual(
    findings.map((f) => [f.id, f.setting]),
    [
      ['acme-hostname-missing', 'tls.acme.hostnames'],
      ['acme-http-port', 'tls.acme.http.port'],
    ],
  );
  const cert = new X509Certificate(CERT.certPem);
  const until = Date.parse(cert.validTo);
  const [expiring] = certFindings(cert, 'cert.pem', 'mx.example.org', until - 3.5 * 86_400_000, { setting: 'tls.acme', renew: 'x' });
  assert.equal(expiring?.setting, 'tls.acme');
});

const SMARTHOST = { host: 'email-smtp.example.net', port: 587, tls: 'starttls', auth: { user: 'AKIA', passwordEnv: 'SES_PASSWORD' } };

test('doctor: a smarthost without any outbound guard is an error; with the guard but no quota, a warning', async (t) => {
  const s = setup(t);
  const delivery = { routes: { '*': 'smarthost:ses' }, smarthosts: { ses: SMARTHOST } };
  const noGuard: Finding = {
    id: 'smarthost-without-guard',
    severity: 'error',
    setting: 'pipeline.rcpt',
    message: 'smarthost "ses" is configured but the outbound-guard check is placed in no check list: no breaker or quota stops a stolen login or a trusted client sending through it until the provider suspends the account',
    fix: "place it after recipient (e.g. pipeline.rcpt: [recipient, outbound-guard, rate-limit]) and set checks.outbound-guard.quota.limit to the provider's quota",
  };
  await expectOnly(config(s, { delivery, pipeline: { rcpt: ['recipient'] } }), noGuard);
  // A rate limit alone has no breaker and no quota.
  await expectOnly(config(s, { delivery, pipeline: { rcpt: ['recipient', 'rate-limit'] } }), noGuard);
  // The built-in default places the guard: only the quota is missing then.
  const guarded = { delivery };
  await expectOnly(config(s, guarded), {
    id: 'outbound-quota-unset',
    severity: 'warning',
    setting: 'checks.outbound-guard.quota.limit',
    message: 'smarthost "ses" is configured but no outbound quota mirrors its sending limit: the breaker cannot hold mail before the provider\'s own limit is reached',
    fix: "set checks.outbound-guard.quota.limit to the provider's quota, e.g. 54000 (per quota.window, 24h by default)",
  });
  assert.deepEqual(await doctor(config(s, { ...guarded, checks: { 'outbound-guard': { quota: { limit: 54000 } } } })), []);
});

test('doctor: a guard check after permit-login (which ends the list for logins) is an error, in the global list or a listener\'s own', async (t) => {
  const s = setup(t);
  const fix = 'pipeline.rcpt, e.g. pipeline.rcpt: [recipient, outbound-guard, rate-limit, permit-login]';
  assert.deepEqual(await doctor(config(s, { pipeline: { rcpt: ['recipient', 'permit-login', 'outbound-guard', 'rate-limit'] } })), [
    {
      id: 'guard-after-permit',
      severity: 'error',
      setting: 'pipeline.rcpt',
      message: 'outbound-guard stands after permit-login in the rcpt list of listeners "submission", "submissions": permit-login ends the list for every logged-in client, so the outbound breakers never count or stop their relayed recipients',
      fix: `move outbound-guard before permit-login in ${fix}`,
    },
    {
      id: 'guard-after-permit',
      severity: 'error',
      setting: 'pipeline.rcpt',
      message: 'rate-limit stands after permit-login in the rcpt list of listeners "submission", "submissions": permit-login ends the list for every logged-in client, so no rate limit counts their recipients',
      fix: `move rate-limit before permit-login in ${fix}`,
    },
  ]);
  // A listener's own list is named as such.
  const listeners = { ...(s.base.listeners as object), submission: { kind: 'submission', host: '0.0.0.0', port: 587, pipeline: { rcpt: ['recipient', 'permit-login', 'outbound-guard'] } } };
  await expectOnly(config(s, { listeners }), {
    id: 'guard-after-permit',
    severity: 'error',
    setting: 'listeners.submission.pipeline.rcpt',
    message: 'outbound-guard stands after permit-login in the rcpt list of listener "submission": permit-login ends the list for every logged-in client, so the outbound breakers never count or stop their relayed recipients',
    fix: 'move outbound-guard before permit-login in listeners.submission.pipeline.rcpt, e.g. listeners.submission.pipeline.rcpt: [recipient, outbound-guard, permit-login]',
  });
  // An access map that may answer ok skips them too, on every listener.
  const access = await doctor(config(s, { pipeline: { rcpt: ['recipient', 'sender-access', 'outbound-guard'] }, checks: { 'sender-access': { entries: { 'news@example.org': 'ok' } } } }));
  assert.deepEqual(access.map((f) => [f.id, f.setting, f.message.slice(f.message.indexOf(':') + 2)]), [
    ['guard-after-permit', 'pipeline.rcpt', 'sender-access ends the list for every sender checks.sender-access answers ok, so the outbound breakers never count or stop their relayed recipients'],
  ]);
  // Not a problem: the guard first; a warn-only permit; permit-login where no one logs in; an
  // access map without an ok entry; a rate limit with no rule for that stage.
  const harmless: Array<Record<string, unknown>> = [
    { pipeline: { rcpt: ['recipient', 'outbound-guard', 'rate-limit', 'permit-login'] } },
    { pipeline: { rcpt: ['recipient', { check: 'permit-login', mode: 'warn' }, 'outbound-guard', 'rate-limit'] } },
    { listeners: { ...(s.base.listeners as object), mx: { kind: 'mx', host: '0.0.0.0', port: 25, pipeline: { rcpt: ['recipient', 'permit-login', 'outbound-guard'] } } } },
    { pipeline: { rcpt: ['recipient', 'sender-access', 'outbound-guard'] }, checks: { 'sender-access': { entries: { 'spam@example.net': 'reject' } } } },
    { pipeline: { data: ['sender-login', 'permit-login', 'rate-limit'] } },
  ];
  for (const extra of harmless) assert.deepEqual(await doctor(config(s, extra)), [], JSON.stringify(extra));
});

test('doctor: no postmaster for a local domain is a warning (RFC 5321 §4.5.1; the guard mails its alerts there)', async (t) => {
  const s = setup(t);
  const file = path.join(s.dataDir, 'directory.sqlite');
  const dir = Directory.open(file, { domains: ['example.org'] });
  assert.equal(dir.deleteAlias('postmaster@example.org'), true);
  dir.close();
  const expected: Finding = {
    id: 'postmaster-missing',
    severity: 'warning',
    setting: 'domains[0]',
    message: "no mailbox or alias receives postmaster@example.org: RFC 5321 §4.5.1 requires it for every mail domain, and mail to it is refused; the outbound guard's alert mails go there and cannot be delivered",
    fix: 'mailward alias add postmaster@example.org you@example.org (or mailward user add postmaster@example.org)',
  };
  await expectOnly(config(s), expected);
  // The second domain is not where alerts go; with alert mails off, neither is the first.
  const second = (await doctor(config(s, { domains: ['example.com', 'example.org'] }))).filter((f) => f.id.startsWith('postmaster'));
  assert.deepEqual(second, [{ ...expected, setting: 'domains[1]', message: 'no mailbox or alias receives postmaster@example.org: RFC 5321 §4.5.1 requires it for every mail domain, and mail to it is refused' }]);
  await expectOnly(config(s, { checks: { 'outbound-guard': { alerts: { postmaster: false } } } }), { ...expected, message: 'no mailbox or alias receives postmaster@example.org: RFC 5321 §4.5.1 requires it for every mail domain, and mail to it is refused' });
  // A catch-all answers for postmaster too.
  const again = Directory.open(file, { domains: ['example.org'] });
  again.addAlias('@example.org', ['ops@example.net']);
  again.close();
  // (That catch-all forwards outside, which has a finding of its own.)
  assert.deepEqual((await doctor(config(s))).map((f) => f.id), ['forward-catch-all']);
  // No directory yet: nobody is there, and doctor does not create the file.
  rmSync(file);
  rmSync(`${file}-wal`, { force: true });
  rmSync(`${file}-shm`, { force: true });
  await expectOnly(config(s), { ...expected, message: `no mailbox or alias receives postmaster@example.org (there is no directory at ${file} yet): RFC 5321 §4.5.1 requires it for every mail domain, and mail to it is refused; the outbound guard's alert mails go there and cannot be delivered` });
  assert.equal(existsSync(file), false);
});

test('doctor: a smarthost without TLS is an error (the schema refuses it; older or hand-made shapes are still caught)', async (t) => {
  const s = setup(t);
  const c = config(s, { delivery: { smarthosts: { relay: SMARTHOST } }, pipeline: { rcpt: ['recipient', 'outbound-guard'] }, checks: { 'outbound-guard': { quota: { limit: 1000 } } } });
  const plain = { ...c, delivery: { ...c.delivery, smarthosts: { relay: { ...SMARTHOST, host: 'relay.example.net', port: 25, tls: 'none' } } } } as unknown as Config;
  await expectOnly(plain, {
    id: 'smarthost-without-tls',
    severity: 'error',
    setting: 'delivery.smarthosts.relay.tls',
    message: 'smarthost "relay" (relay.example.net:25) is used without TLS (tls is "none"): the login password and every message would cross the network readable',
    fix: 'set delivery.smarthosts.relay.tls to starttls (port 587) or implicit (port 465)',
  });
});

test('doctor: DKIM — a local domain without a key, an unusable key file, signing turned off', async (t) => {
  const s = setup(t);
  const dkimDir = path.join(s.dataDir, 'dkim');
  await expectOnly(config(s, { domains: ['example.org', 'example.com'] }), {
    id: 'dkim-key-missing',
    severity: 'warning',
    setting: 'delivery.dkim.keys.example.com',
    message: `no DKIM key for "example.com" (none configured, and no example.com.<selector>.key in ${dkimDir}): its mail leaves unsigned and fails DMARC where DKIM is required`,
    fix: 'run "mailward dkim keygen example.com" and publish the TXT record it prints',
  });
  writeFileSync(path.join(dkimDir, 'example.com.bad.key'), 'not a key\n', { mode: 0o600 });
  await expectOnly(config(s, { domains: ['example.org', 'example.com'] }), {
    id: 'dkim-key-unusable',
    severity: 'error',
    setting: 'dataDir/dkim',
    message: `the DKIM key ${path.join(dkimDir, 'example.com.bad.key')} is not a PEM private key`,
    fix: 'create one with "mailward dkim keygen example.com --selector bad"',
  });
  await expectOnly(config(s, { delivery: { dkim: { enabled: false } } }), {
    id: 'dkim-disabled',
    severity: 'info',
    setting: 'delivery.dkim.enabled',
    message: 'outgoing mail is not DKIM-signed: receivers that enforce DMARC may reject or junk it',
    fix: 'remove delivery.dkim.enabled (it defaults to true) and make a key with "mailward dkim keygen DOMAIN"',
  });
});

test('doctor: DNS blocklists are asked for their test entry through the configured resolver', async (t) => {
  const s = setup(t);
  const dns = await startDns(t, {
    'good.example': { names: { '2.0.0.127': { A: ['127.0.0.2'] } } },
    'silent.example': { mode: 'timeout' },
    'empty.example': {},
    'refusing.example': { names: { '2.0.0.127': { A: ['127.255.255.254'] } } },
    'hijacked.example': { names: { '2.0.0.127': { A: ['192.0.2.80'] } } },
  });
  const withZone = (zone: string): Config => config(s, { dns: { servers: [dns.address] }, pipeline: { mail: ['dnsbl', 'sender-login'] }, checks: { dnsbl: { zones: [{ zone }] } } });
  assert.deepEqual(await doctor(withZone('good.example')), []);
  assert.equal(dns.queries('2.0.0.127.good.example', 'A'), 1);
  await expectOnly(withZone('silent.example'), {
    id: 'dnsbl-zone-silent',
    severity: 'warning',
    setting: 'checks.dnsbl.zones[0]',
    message: 'zone "silent.example" did not answer the test query 2.0.0.127.silent.example within 300 ms (ETIMEOUT): each lookup waits for the time-out and then counts as not listed',
    fix: 'check dns.servers and that this host may reach them, or remove the zone from checks.dnsbl.zones',
  });
  await expectOnly(withZone('empty.example'), {
    id: 'dnsbl-zone-no-test-entry',
    severity: 'warning',
    setting: 'checks.dnsbl.zones[0]',
    message: 'zone "empty.example" does not list its test address 127.0.0.2 (2.0.0.127.empty.example: ENOTFOUND): the zone name is wrong or the list is gone, so it lists no one',
    fix: "check the zone name in the list's documentation, or remove it from checks.dnsbl.zones",
  });
  await expectOnly(withZone('refusing.example'), {
    id: 'dnsbl-zone-refused',
    severity: 'warning',
    setting: 'checks.dnsbl.zones[0]',
    message: 'zone "refusing.example" answered the test query with 127.255.255.254, an error code: the list refuses queries from your DNS resolver (public resolvers are often blocked), so it lists no one',
    fix: "use your own recursive resolver (e.g. unbound on this host) in dns.servers, or the list's registered data feed",
  });
  await expectOnly(withZone('hijacked.example'), {
    id: 'dnsbl-zone-wrong-answer',
    severity: 'warning',
    setting: 'checks.dnsbl.zones[0]',
    message: 'zone "hijacked.example" answered the test query with 192.0.2.80, not a 127.0.0.x code: your resolver rewrites answers, so listings cannot be trusted',
    fix: 'use a resolver that does not rewrite answers (e.g. unbound on this host) in dns.servers',
  });
  // Zones of a check that is not placed in any list are not asked.
  const unplaced = config(s, { dns: { servers: [dns.address] }, checks: { dnsbl: { zones: [{ zone: 'silent.example' }] } } });
  assert.deepEqual(await doctor(unplaced), []);
});

test('doctor: URI blocklists are asked for their test entry ("test" or their own), and 127.0.0.1 is a refusal', async (t) => {
  const s = setup(t);
  const dns = await startDns(t, {
    'dbl.example': { names: { 'dbltest.com': { A: ['127.0.1.2'] } } },
    'multi.example': { names: { test: { A: ['127.0.0.14'] } } },
    'refusing.example': { names: { test: { A: ['127.0.0.1'] } } },
    'empty.example': {},
  });
  const withZones = (zones: unknown[]): Config => config(s, { dns: { servers: [dns.address] }, pipeline: { data: ['uribl'] }, checks: { uribl: { zones } } });
  assert.deepEqual(await doctor(withZones([{ zone: 'dbl.example', testName: 'dbltest.com' }, { zone: 'multi.example', mask: 2 }])), []);
  assert.equal(dns.queries('dbltest.com.dbl.example', 'A'), 1);
  assert.equal(dns.queries('test.multi.example', 'A'), 1);
  await expectOnly(withZones([{ zone: 'empty.example' }]), {
    id: 'dnsbl-zone-no-test-entry',
    severity: 'warning',
    setting: 'checks.uribl.zones[0]',
    message: 'zone "empty.example" does not list its test entry "test" (test.empty.example: ENOTFOUND): the zone name is wrong or the list is gone, so it lists no one',
    fix: "check the zone name in the list's documentation, or remove it from checks.uribl.zones",
  });
  await expectOnly(withZones([{ zone: 'refusing.example' }]), {
    id: 'dnsbl-zone-refused',
    severity: 'warning',
    setting: 'checks.uribl.zones[0]',
    message: 'zone "refusing.example" answered the test query with 127.0.0.1, an error code: the list refuses queries from your DNS resolver (public resolvers are often blocked), so it lists no one',
    fix: "use your own recursive resolver (e.g. unbound on this host) in dns.servers, or the list's registered data feed",
  });
});

test('doctor: the virus check asks clamd for PONG; onError: pass with a scan time-out past the deadline is a warning', async (t) => {
  const s = setup(t);
  // Something on loopback that answers PING as clamd does (`man clamd`: zPING → "PONG\0").
  const clamd = net.createServer((c) => {
    c.on('data', (d) => {
      if (d.toString('latin1') === 'zPING\0') c.end('PONG\0');
    });
    c.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => clamd.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => clamd.close(() => resolve())));
  const up = `tcp:127.0.0.1:${(clamd.address() as net.AddressInfo).port}`;
  const down = `unix:${path.join(s.dir, 'clamd.ctl')}`;
  const withVirus = (virus: Record<string, unknown>, data: unknown[] = ['virus']): Config => config(s, { pipeline: { data }, checks: { virus } });
  assert.deepEqual(await doctor(withVirus({ clamd: up })), []);
  await expectOnly(withVirus({ clamd: down }), {
    id: 'virus-clamd-silent',
    severity: 'error',
    setting: 'checks.virus.clamd',
    message: `clamd at "${down}" did not answer PING (clamd at ${down}: connect ENOENT ${down.slice(5)}): every message is deferred with a 4xx until it does`,
    fix: 'start clamav-daemon (it needs a signature database: run freshclam once), or set checks.virus.clamd to where clamd listens (LocalSocket or TCPSocket in /etc/clamav/clamd.conf)',
  });
  await expectOnly(withVirus({ clamd: up, onError: 'pass' }), {
    id: 'virus-timeout-past-deadline',
    severity: 'warning',
    setting: 'checks.virus.timeout',
    message: "the scan may take 30000 ms but the check's deadline (checkTimeout) is 10000 ms: a silent clamd meets the deadline first and the message is deferred, not passed as checks.virus.onError says",
    fix: 'give the placement more time, e.g. pipeline.data: [{ check: virus, timeout: 40s }], or lower checks.virus.timeout below 10000 ms',
  });
  assert.deepEqual(await doctor(withVirus({ clamd: up, onError: 'pass' }, [{ check: 'virus', timeout: '40s' }])), []);
  // Options of a check that is not placed in any list are not acted on.
  assert.deepEqual(await doctor(config(s, { checks: { virus: { clamd: down } } })), []);
});

test('doctor: the spool disk nearly full — from real statfs figures', async (t) => {
  const s = setup(t);
  const real = statfsSync(s.dir);
  const full = { ...real, bsize: 4096, blocks: 1_000_000, bavail: 30_000, files: 1000, ffree: 500 };
  assert.deepEqual(diskFindings('/srv/spool', full), [
    {
      id: 'spool-disk-full',
      severity: 'error',
      setting: 'dataDir',
      message: 'the file system holding /srv/spool is 97% full (0.1 GB free of 4.1 GB): once it is full every message is deferred (452 4.3.1)',
      fix: 'free space, or move dataDir to a larger disk; look for a queue that grows (mailward queue list)',
    },
  ]);
  assert.deepEqual(diskFindings('/srv/spool', { ...full, bavail: 100_000, ffree: 100 }), [
    {
      id: 'spool-disk-filling',
      severity: 'warning',
      setting: 'dataDir',
      message: 'the file system holding /srv/spool is 90% full (0.4 GB free of 4.1 GB): once it is full every message is deferred (452 4.3.1)',
      fix: 'free space, or move dataDir to a larger disk; look for a queue that grows (mailward queue list)',
    },
    {
      id: 'spool-inodes-filling',
      severity: 'warning',
      setting: 'dataDir',
      message: 'the file system holding /srv/spool has used 90% of its inodes (100 free): each queued message and mailbox message takes one, and without them no mail can be accepted',
      fix: 'delete unwanted queued mail (mailward queue delete), or move dataDir to a file system with more inodes',
    },
  ]);
  // Through the real statfs of the spool's disk: any use at all crosses a threshold of 0.
  const found = await doctor(config(s), { disk: { warnAt: 0, errorAt: 1.01 } });
  assert.deepEqual(found.map((f) => [f.id, f.severity, f.setting]), [
    ['spool-disk-filling', 'warning', 'dataDir'],
    ['spool-inodes-filling', 'warning', 'dataDir'],
  ]);
  assert.match(found[0]!.message, new RegExp(`^the file system holding ${s.dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is \\d+% full \\(\\d+\\.\\d GB free of \\d+\\.\\d GB\\)`));
});

test('doctor: the clock — a spool file from the future, not synchronised, cannot tell', async (t) => {
  const s = setup(t);
  const now = Date.parse('2025-06-01T12:00:00.000Z');
  const bucket = path.join(s.dataDir, 'spool', 'queue', '0');
  mkdirSync(bucket, { recursive: true, mode: 0o750 });
  const file = path.join(bucket, 'message');
  writeFileSync(file, 'x');
  utimesSync(file, new Date(now + 3_600_000), new Date(now + 3_600_000));
  await expectOnly(
    config(s),
    {
      id: 'clock-behind',
      severity: 'warning',
      setting: 'clock',
      message: "the spool holds a file written at 2025-06-01T13:00:00.000Z, 60 minute(s) after this machine's clock (2025-06-01T12:00:00.000Z): the clock was set back or is wrong",
      fix: 'synchronise the clock (chrony, ntpd or systemd-timesyncd); greylisting, retries, DKIM and TLS all depend on it',
    },
    { now: () => now },
  );
  rmSync(file);
  await expectOnly(
    config(s),
    {
      id: 'clock-not-synchronized',
      severity: 'warning',
      setting: 'clock',
      message: 'the clock is not synchronised (timedatectl NTPSynchronized=no); it reads 2025-06-01T12:00:00.000Z',
      fix: 'turn on time synchronisation: timedatectl set-ntp true, or install chrony',
    },
    { now: () => now, timeSync: async () => ({ synchronized: false, detail: 'timedatectl NTPSynchronized=no' }) },
  );
  await expectOnly(
    config(s),
    {
      id: 'clock-sync-unknown',
      severity: 'info',
      setting: 'clock',
      message: 'cannot tell whether the clock is synchronised (timedatectl: not installed); it reads 2025-06-01T12:00:00.000Z',
      fix: 'make sure an NTP client (chrony, ntpd or systemd-timesyncd) runs on this host',
    },
    { now: () => now, timeSync: async () => ({ synchronized: undefined, detail: 'timedatectl: not installed' }) },
  );
});

test('doctor: fsync off, a data folder open to all users', async (t) => {
  const s = setup(t);
  await expectOnly(config(s, { queue: { fsync: false } }), {
    id: 'queue-fsync-off',
    severity: 'warning',
    setting: 'queue.fsync',
    message: 'queue.fsync is false: a 250 no longer means the message is on disk, and a crash or power cut loses mail already accepted',
    fix: 'remove queue.fsync (it defaults to true); it is meant only for throw-away test setups',
  });
  chmodSync(s.dataDir, 0o755);
  await expectOnly(config(s), {
    id: 'data-dir-open',
    severity: 'warning',
    setting: 'dataDir',
    message: `${s.dataDir} has mode 755: every user of this machine can read the queue and the mailboxes`,
    fix: `chmod 750 ${s.dataDir}`,
  });
});

test('doctor: the admin section — beyond loopback, a token file missing, weak or readable by others', async (t) => {
  const s = setup(t);
  const c = config(s);
  const tokenFile = path.join(s.dir, 'admin.token');
  const withAdmin = (admin: Record<string, unknown>): Config => ({ ...c, admin: { enabled: true, host: '127.0.0.1', port: 8025, tokenFile, ...admin } }) as unknown as Config;
  await expectOnly(withAdmin({}), {
    id: 'admin-token-missing',
    severity: 'error',
    setting: 'admin.tokenFile',
    message: `cannot read ${tokenFile}: ENOENT; the admin API will not start`,
    fix: `make one: head -c 32 /dev/urandom | base64 > ${tokenFile}; chmod 600 ${tokenFile}`,
  });
  writeFileSync(tokenFile, 'short\n', { mode: 0o600 });
  await expectOnly(withAdmin({}), {
    id: 'admin-token-weak',
    severity: 'error',
    setting: 'admin.tokenFile',
    message: `${tokenFile} holds a token of 5 characters: it can be guessed`,
    fix: `make a new one: head -c 32 /dev/urandom | base64 > ${tokenFile}`,
  });
  writeFileSync(tokenFile, 'a-long-enough-admin-token-0123456789\n');
  chmodSync(tokenFile, 0o644);
  await expectOnly(withAdmin({}), {
    id: 'admin-token-readable',
    severity: 'warning',
    setting: 'admin.tokenFile',
    message: `${tokenFile} has mode 644: other users of this machine can read the admin token`,
    fix: `chmod 600 ${tokenFile}`,
  });
  chmodSync(tokenFile, 0o600);
  await expectOnly(withAdmin({ host: '0.0.0.0' }), {
    id: 'admin-not-loopback',
    severity: 'warning',
    setting: 'admin.host',
    message: 'the admin API and dashboard listen on 0.0.0.0:8025, beyond this host, protected only by the token and without TLS',
    fix: 'set admin.host to 127.0.0.1 and reach it through an SSH tunnel or a reverse proxy with TLS',
  });
});

test('doctor: a config that does not load is reported as config-invalid, exit 2, also as JSON', async (t) => {
  const s = setup(t);
  writeFileSync(s.source, 'relay:\n  trustedNetworks: [0.0.0.0/0]\n');
  const run = await runDoctorCli(s.source, true, QUIET);
  assert.equal(run.code, 2);
  assert.deepEqual(JSON.parse(run.output), {
    config: s.source,
    counts: { error: 1, warning: 0, info: 0 },
    findings: [{ id: 'config-invalid', severity: 'error', setting: 'relay.trustedNetworks[0]', message: '"0.0.0.0/0" trusts every address as a relay network', fix: 'list only your own hosts, e.g. 10.0.0.5/32' }],
  });
});

test('doctor: `mailward doctor --config FILE` as a command: prints the finding and exits 1 on an error', async (t) => {
  const s = setup(t);
  writeFileSync(s.source, JSON.stringify({ ...s.base, relay: { trustedNetworks: ['127.0.0.1/32'], allowLocalTrust: LOCAL_TRUST_ACK } }));
  // The command as registered (the program's own --config is global), in a real process.
  const script = [
    "import { Command } from 'commander';",
    "import { registerDoctor } from './src/shells/cli/doctor.ts';",
    "const p = new Command('mailward').option('-c, --config <file>');",
    'registerDoctor(p);',
    'await p.parseAsync(process.argv);',
  ].join('\n');
  const root = path.resolve(import.meta.dirname, '../..');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, 'mailward', 'doctor', '--config', s.source], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], 'error relay-trusts-loopback at relay.trustedNetworks[0]: "127.0.0.1/32" includes loopback: a tunnel, proxy or port forwarder on this host connects from loopback, so every client it carries may relay — how a tunnelled Postfix became an open relay. Fix: remove it; let local programs log in on the submission port instead');
  assert.match(lines.at(-1)!, new RegExp(`^1 error\\(s\\), \\d+ warning\\(s\\), \\d+ note\\(s\\) for ${s.source.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
});

test('doctor: a catch-all that forwards outside is a warning; a named forward only when SRS is off', async (t) => {
  const s = setup(t);
  // The setup's postmaster aliases forward to ops@example.net: with SRS on (the default), nothing.
  assert.deepEqual((await doctor(config(s))).filter((f) => f.id.startsWith('forward')), []);
  const noSrs = (await doctor(config(s, { forwarding: { srs: { enabled: false } } }))).filter((f) => f.id.startsWith('forward'));
  const org = noSrs.find((f) => f.message.includes('postmaster@example.org → ops@example.net'));
  assert.equal(org?.id, 'forward-without-srs');
  assert.equal(org?.setting, 'forwarding.srs.enabled');
  assert.match(org.fix, /forwarding\.srs\.enabled: true/);
  const dir = Directory.open(path.join(s.dataDir, 'directory.sqlite'), { domains: ['example.org'] });
  dir.addAlias('@example.org', ['someone@example.net']);
  dir.close();
  const found = (await doctor(config(s))).filter((f) => f.id.startsWith('forward'));
  assert.deepEqual(found, [
    {
      id: 'forward-catch-all',
      severity: 'warning',
      setting: 'alias @example.org',
      message: 'the catch-all @example.org → someone@example.net forwards mail to any address of example.org outside: every stranger can send through this server with any local part, and the guard counts it all as one source',
      fix: 'forward named addresses only (mailward alias add name@example.org someone@example.net) or point the catch-all at a local mailbox; keep forwarding.srs.enabled on and checks.outbound-guard limits in place',
    },
  ]);
});
