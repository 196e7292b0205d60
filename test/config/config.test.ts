// Bad configs each paired with the exact error an operator sees, and the defaults of a good one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildConfig, loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { compileChecks } from '../../src/app/compose.ts';

const errorOf = (input: unknown): string => {
  try {
    buildConfig(input, 'test.yaml', '/srv');
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e.message;
  }
  assert.fail('the config was accepted');
};

const cases: Array<[string, unknown, string]> = [
  ['unknown top-level key', { domain: ['x.org'] }, 'config error at domain: unknown key "domain" (in test.yaml). Fix: remove it or correct the spelling; the known keys are in examples/mailward.yaml'],
  ['unknown nested key', { limits: { maxSize: 1 } }, 'config error at limits.maxSize: unknown key "maxSize" (in test.yaml). Fix: remove it or correct the spelling; the known keys are in examples/mailward.yaml'],
  ['wrong type', { listeners: { mx: { kind: 'mx', port: 'twenty-five' } } }, 'config error at listeners.mx.port: expected number, got "twenty-five" (in test.yaml). Fix: write a number here'],
  ['port out of range', { listeners: { mx: { kind: 'mx', port: 70000 } } }, 'config error at listeners.mx.port: 70000 is too big (maximum 65535) (in test.yaml). Fix: use at most 65535'],
  ['bad enum', { listeners: { mx: { kind: 'smtp', port: 25 } } }, 'config error at listeners.mx.kind: "smtp" is not allowed (in test.yaml). Fix: use one of "mx", "submission", "submissions"'],
  ['bad duration', { queue: { maxAge: 'five days' } }, 'config error at queue.maxAge: "five days" is not a duration (in test.yaml). Fix: write e.g. "30s", "5m", "1h", "5d" or a number of milliseconds'],
  ['bad size', { limits: { maxMessageSize: '10 parsecs' } }, 'config error at limits.maxMessageSize: "10 parsecs" is not a size (in test.yaml). Fix: write e.g. "25MB", "64KB" or a number of bytes'],
  ['relay to the world', { relay: { trustedNetworks: ['0.0.0.0/0'] } }, 'config error at relay.trustedNetworks[0]: "0.0.0.0/0" trusts every address as a relay network (in test.yaml). Fix: list only your own hosts, e.g. 10.0.0.5/32'],
  ['relay to half the world', { relay: { trustedNetworks: ['::/1'] } }, 'config error at relay.trustedNetworks[0]: "::/1" trusts a vast number of addresses as a relay network (in test.yaml). Fix: list only your own hosts, e.g. 2001:db8::5/128'],
  ['not a network', { relay: { trustedNetworks: ['localhost'] } }, 'config error at relay.trustedNetworks[0]: "localhost" is not an IP address or CIDR range (in test.yaml). Fix: write an address such as 10.0.0.5 or a range such as 10.0.0.0/24 or 2001:db8::/64'],
  ['proxy trust too wide', { listeners: { mx: { kind: 'mx', port: 25, proxy: { trusted: ['10.0.0.0/4'] } } } }, 'config error at listeners.mx.proxy.trusted[0]: "10.0.0.0/4" (the range 0.0.0.0/4) trusts 268435456 addresses as a PROXY protocol sender (in test.yaml). Fix: list only your own hosts, e.g. 10.0.0.5/32'],
  ['cert without key', { tls: { cert: 'a.pem' } }, 'config error at tls.key: tls.cert is set but tls.key is not (in test.yaml). Fix: set both tls.cert and tls.key to PEM files, or neither (a self-signed pair is then made)'],
  ['auth required but off', { listeners: { sub: { kind: 'submission', port: 587, auth: false, requireAuth: true } } }, 'config error at listeners.sub.requireAuth: requireAuth is true but auth is false, so no client could ever send (in test.yaml). Fix: set listeners.sub.auth to true, or requireAuth to false'],
  ['same port twice', { listeners: { a: { kind: 'mx', port: 25 }, b: { kind: 'submission', port: 25 } } }, 'config error at listeners.b.port: 25 on 127.0.0.1 is also used by listener "a" (in test.yaml). Fix: give each listener its own port'],
  ['bad domain', { domains: ['exa mple.org'] }, 'config error at domains[0]: "exa mple.org" is not a domain name (in test.yaml). Fix: write a domain such as example.org'],
  ['redis without address', { store: { backend: 'redis' } }, 'config error at store.redis.url: store.backend is "redis" but no Redis address is given (in test.yaml). Fix: set store.redis.url, e.g. redis://127.0.0.1:6379'],
  ['acme without names', { tls: { acme: { hostnames: [] } } }, 'config error at tls.acme.hostnames: [] is too small (minimum 1) (in test.yaml). Fix: use at least 1'],
  ['acme wildcard', { tls: { acme: { hostnames: ['*.example.org'] } } }, 'config error at tls.acme.hostnames[0]: a fully qualified host name such as mx.example.org (no wildcards: http-01 cannot prove them) (got "*.example.org") (in test.yaml). Fix: see examples/mailward.yaml for the form this setting takes'],
  ['acme beside files', { tls: { cert: 'c.pem', key: 'k.pem', acme: { hostnames: ['mx.example.org'] } } }, 'config error at tls.acme: tls.acme is set together with tls.cert/tls.key: the certificate would have two sources (in test.yaml). Fix: remove tls.cert and tls.key to let the server obtain the certificate, or remove tls.acme to use your files (certbot)'],
  ['acme unknown challenge', { tls: { acme: { hostnames: ['mx.example.org'], challenge: 'dns-01' } } }, 'config error at tls.acme.challenge: "dns-01" is not allowed (in test.yaml). Fix: use one of "http-01", "tls-alpn-01"'],
  ['backoff upside down', { queue: { minBackoff: '2h', maxBackoff: '1h' } }, 'config error at queue.minBackoff: 7200000 ms is longer than queue.maxBackoff (3600000 ms) (in test.yaml). Fix: make minBackoff no longer than maxBackoff'],
];

for (const [name, input, expected] of cases) {
  test(`config: ${name}`, () => {
    assert.equal(errorOf(input), expected);
  });
}

test('config: several problems are all reported, one per line', () => {
  const msg = errorOf({ foo: 1, limits: { maxRecipients: 0 } });
  assert.equal(msg.split('\n').length, 2);
  assert.match(msg, /^config error at limits\.maxRecipients: 0 is too small \(minimum 1\)/m);
  assert.match(msg, /^config error at foo: unknown key "foo"/m);
});

test('config: the built-in default is safe and complete', () => {
  const c = buildConfig({}, 'built-in default', '/srv');
  assert.deepEqual(c.domains, ['localhost']);
  assert.equal(c.dataDir, '/srv/data');
  assert.deepEqual(c.relay.trustedNetworks, []);
  assert.deepEqual(
    c.listeners.map((l) => [l.name, l.kind, l.host, l.port, l.implicitTls, l.starttls, l.auth, l.requireAuth, l.requireTls, l.greetingDelayMs]),
    [
      ['mx', 'mx', '127.0.0.1', 2525, false, true, false, false, false, 0],
      ['submission', 'submission', '127.0.0.1', 5870, false, true, true, true, true, 0],
      ['submissions', 'submissions', '127.0.0.1', 4650, true, false, true, true, false, 0],
    ],
  );
  assert.equal(c.limits.maxMessageSize, 25 * 1024 * 1024);
  assert.equal(c.limits.bareLineEndings, 'reject');
  assert.equal(c.queue.fsync, true);
  assert.equal(c.queue.minBackoff, 300_000);
  assert.equal(c.store.backend, 'sqlite');
  assert.equal(c.paths.store, '/srv/data/state.sqlite');
  assert.deepEqual(c.listeners[0]!.pipeline.rcpt, ['recipient', 'outbound-guard', 'rate-limit']);
  assert.deepEqual(c.listeners[0]!.pipeline.mail, ['sender-login']);
  assert.deepEqual(c.listeners[0]!.pipeline.data, ['sender-login', 'outbound-guard', 'rate-limit', 'permit-login', 'spam']);
  assert.ok(Object.isFrozen(c.listeners[0]), 'the config is frozen');
});

test('config: per-listener pipeline replaces the global list for that stage only', () => {
  const c = buildConfig({ pipeline: { mail: ['x'] }, listeners: { mx: { kind: 'mx', port: 25, pipeline: { rcpt: [] } }, sub: { kind: 'submission', port: 587 } } }, 't', '/');
  const [mx, sub] = c.listeners;
  assert.deepEqual(mx!.pipeline.rcpt, []);
  assert.deepEqual(mx!.pipeline.mail, ['x']);
  assert.deepEqual(sub!.pipeline.rcpt, ['recipient', 'outbound-guard', 'rate-limit']);
});

test('config: files — YAML errors, missing files, relative paths', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mw-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = path.join(dir, 'nope.yaml');
  assert.throws(() => loadConfig(missing), (e: Error) => e.message === `config error at (top level): the file ${JSON.stringify(missing)} does not exist (in ${missing}). Fix: give the path of your config file with --config, or run without --config to use ./mailward.yaml or the built-in default`);
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'domains: [example.org\nlimits: {');
  assert.throws(() => loadConfig(bad), (e: Error) => /^config error at \(top level\): YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a \] at line 2, column 1 \(in .*bad\.yaml\)\. Fix: correct the YAML at the line and column shown$/.test(e.message.split("\n")[0]!));
  const dup = path.join(dir, 'dup.yaml');
  writeFileSync(dup, 'domains: [a.org]\ndomains: [b.org]\n');
  assert.throws(() => loadConfig(dup), /YAML syntax error: Map keys must be unique/);
  const good = path.join(dir, 'good.yaml');
  writeFileSync(good, 'domains: [Example.ORG.]\ndataDir: state\ntls: { cert: c.pem, key: k.pem }\n');
  const c = loadConfig(good);
  assert.deepEqual(c.domains, ['example.org']);
  assert.equal(c.dataDir, path.join(dir, 'state'));
  assert.equal(c.tls.cert, path.join(dir, 'c.pem'));
  assert.equal(c.source, good);
});

test('config: examples/mailward.yaml is valid, checks and all', () => {
  const c = loadConfig(path.resolve(import.meta.dirname, '../../examples/mailward.yaml'));
  assert.deepEqual(c.domains, ['example.org']);
  assert.deepEqual(c.listeners.map((l) => [l.name, l.port]), [['mx', 25], ['submission', 587], ['submissions', 465]]);
  const pipeline = compileChecks(c);
  assert.deepEqual(pipeline.get('mx')!.rcpt.map((p) => p.name), ['recipient-access', 'recipient', 'outbound-guard', 'rate-limit', 'permit-login', 'greylist', 'spf', 'recipient-domain']);
});

test('config: a check that cannot use its options is a config error naming the setting', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mw-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const c = buildConfig({ pipeline: { mail: ['sender-access'] }, checks: { 'sender-access': { file: path.join(dir, 'missing') } } }, 'test.yaml', dir);
  assert.throws(() => compileChecks(c), (e: Error) => e instanceof ConfigError && e.message.startsWith('config error at checks.sender-access.file: cannot read ') && / Fix: create the file \(it may be empty\) or correct the path$/.test(e.message));
});

test('config: sendmail.socket defaults to dataDir, and to systemd\'s RuntimeDirectory under the shipped unit', () => {
  const saved = process.env.RUNTIME_DIRECTORY;
  try {
    delete process.env.RUNTIME_DIRECTORY;
    assert.equal(buildConfig({ dataDir: '/srv/data' }, 'test.yaml', '/srv').sendmail.socket, '/srv/data/submit.sock');
    // RuntimeDirectory=mailward in contrib/mailward.service: systemd sets RUNTIME_DIRECTORY=/run/mailward.
    process.env.RUNTIME_DIRECTORY = '/run/mailward';
    assert.equal(buildConfig({ dataDir: '/srv/data' }, 'test.yaml', '/srv').sendmail.socket, '/run/mailward/submit.sock');
    assert.equal(buildConfig({ dataDir: '/srv/data', sendmail: { socket: '/var/run/x.sock' } }, 'test.yaml', '/srv').sendmail.socket, '/var/run/x.sock');
  } finally {
    if (saved === undefined) delete process.env.RUNTIME_DIRECTORY;
    else process.env.RUNTIME_DIRECTORY = saved;
  }
});
