// The incident behind Mailward, reproduced: a tunnel (a plain TCP forwarder) makes every client
// look like 127.0.0.1, and the server must still refuse to relay — in every address form, on every
// listener, directly, through the tunnel, and behind trusted PROXY v1/v2 headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { dial } from '../harness/dial.ts';
import { startForwarder } from '../harness/forwarder.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { replyLine, runRelayTest, RelayTestError, type AttemptResult, type RelayTestOptions, type RelayTestReport, type TlsMode } from '../../src/app/relay-test.ts';
import { proxyV1Header, proxyV2Header } from '../../src/ingress/proxy-header.ts';
import { authPlain } from '../harness/auth.ts';

const ALICE = 'alice@example.org';
const ALICE_PW = 'correct horse battery';
const USERS: Array<[string, string]> = [[ALICE, ALICE_PW]];
const OUTSIDE = '203.0.113.9';
const OUTSIDE6 = '2001:db8::9';

type ListenerName = 'mx' | 'submission' | 'submissions';
const LISTENERS: readonly ListenerName[] = ['mx', 'submission', 'submissions'];
// Submission needs TLS before MAIL; submissions speaks it from the first byte.
const TLS_OF: Record<ListenerName, TlsMode> = { mx: 'none', submission: 'starttls', submissions: 'implicit' };

/** The three listeners, each trusting 127.0.0.1 (the forwarder) as a PROXY sender. */
const TRUSTING_PROXY = {
  listeners: Object.fromEntries(LISTENERS.map((n) => [n, { kind: n, port: 0, proxy: { trusted: ['127.0.0.1'] } }])),
};

// How Mailward's MX port answers each unauthenticated attempt: "verdict stage MAIL-code RCPT-reply".
// Foreign addresses meet the relay gate (554 5.7.1); paths through our own domain are unknown
// local users (550 5.1.1) or bad syntax (501 5.1.3); a local sender without a login is refused at
// MAIL (553), so RCPT finds no transaction (503). Nothing is ever 250.
const MX_ANSWERS: Record<string, string> = {
  plain: 'refused rcpt 250 554 5.7.1',
  'percent-hack': 'refused rcpt 250 550 5.1.1',
  'quoted-at': 'refused rcpt 250 550 5.1.1',
  'quoted-percent': 'refused rcpt 250 550 5.1.1',
  'bang-path': 'refused rcpt 250 550 5.1.1',
  'double-at': 'refused rcpt 250 501 5.1.3',
  'source-route': 'refused rcpt 250 554 5.7.1',
  'source-route-2': 'refused rcpt 250 554 5.7.1',
  'ipv4-literal': 'refused rcpt 250 554 5.7.1',
  'ipv6-literal': 'refused rcpt 250 554 5.7.1',
  'trailing-dot': 'refused rcpt 250 554 5.7.1',
  'upper-case': 'refused rcpt 250 554 5.7.1',
  'no-brackets': 'refused rcpt 250 554 5.7.1',
  'extra-spaces': 'refused rcpt 250 501 5.1.3',
  'local-then-foreign': 'refused rcpt 250 501 5.1.3',
  'quoted-local': 'refused rcpt 250 554 5.7.1',
  'spoofed-sender': 'refused mail 553 503 5.5.1',
};
const ATTEMPTS = Object.keys(MX_ANSWERS);
// The attempts that reach the relay gate, and the recipient each is logged with.
const RELAY_GATE_TO = [
  'victim@example.net', // plain
  'victim@example.net', // source-route
  'victim@example.net', // source-route-2
  'victim@[192.0.2.7]',
  'victim@[ipv6:2001:db8::7]',
  'victim@example.net', // trailing-dot
  'VICTIM@example.net',
  'victim@example.net', // no-brackets
  'victim@example.net', // quoted-local
];
// Submission ports refuse MAIL without a login (530 5.7.0), whatever the address.
const SUBMISSION_ANSWERS = Object.fromEntries(ATTEMPTS.map((n) => [n, 'refused mail 530 503 5.5.1']));

function summary(a: AttemptResult): string {
  return `${a.verdict} ${a.stage} ${a.mail?.code ?? '-'} ${a.rcpt ? replyLine(a.rcpt).slice(0, 9) : '-'}`;
}

function assertNoRelay(r: RelayTestReport, listener: ListenerName): void {
  assert.deepEqual(Object.fromEntries(r.attempts.map((a) => [a.name, summary(a)])), listener === 'mx' ? MX_ANSWERS : SUBMISSION_ANSWERS, `${listener}: ${r.target}`);
  assert.deepEqual(r.counts, { refused: 17, relayed: 0, inconclusive: 0 });
  assert.equal(r.openRelay, false);
  assert.equal(r.exitCode, 0);
  assert.equal(r.result, 'RESULT: no relay possible (17 attempts refused, 0 inconclusive)');
  assert.equal(r.localDomain, 'example.org', 'taken from the greeting mx.example.org');
}

function probe(port: number, tls: TlsMode, extra: Partial<RelayTestOptions> = {}): Promise<RelayTestReport> {
  return runRelayTest({ host: '127.0.0.1', port, tls, timeoutMs: 5000, ...extra });
}

const relayRefusals = (srv: TestServer, listener: string): Array<Record<string, unknown>> =>
  srv.logs.filter((l) => l.event === 'rejected' && l.check === 'relay' && l.listener === listener);

function assertRelayLog(srv: TestServer, client: string, proxy: string | undefined): void {
  const lines = relayRefusals(srv, 'mx');
  assert.deepEqual(lines.map((l) => l.to), RELAY_GATE_TO);
  for (const l of lines) {
    assert.equal(l.client, client);
    assert.equal(l.proxy, proxy);
    assert.equal(l.reply, '554 5.7.1 Relay access denied');
    assert.equal(l.reason, `client ${client} is neither authenticated nor in relay.trustedNetworks`);
  }
}

test('incident: directly, every unauthenticated relay attempt is refused on every listener', async (t) => {
  const srv = await startServer(t, { users: USERS });
  for (const name of LISTENERS) assertNoRelay(await probe(srv.port(name), TLS_OF[name]), name);
  assertRelayLog(srv, '127.0.0.1', undefined);
});

test('incident: through a plain TCP forwarder (the tunnel) the server sees 127.0.0.1 and still refuses', async (t) => {
  const srv = await startServer(t, { users: USERS });
  for (const name of LISTENERS) {
    const tunnel = await startForwarder(t, srv.port(name));
    assertNoRelay(await probe(tunnel.port, TLS_OF[name]), name);
    // One look at the server, then one connection per attempt, all through the tunnel.
    assert.equal(tunnel.connections, 18);
  }
  assertRelayLog(srv, '127.0.0.1', undefined);
  const clients = new Set(srv.logs.filter((l) => l.event === 'connect').map((l) => l.client));
  assert.deepEqual([...clients], ['127.0.0.1']);
});

for (const version of [1, 2] as const) {
  test(`incident: PROXY v${version} from a trusted forwarder — the real client ${OUTSIDE} is judged and logged`, async (t) => {
    const srv = await startServer(t, { users: USERS, config: TRUSTING_PROXY });
    for (const name of LISTENERS) {
      const proxy = await startForwarder(t, srv.port(name), { proxy: { version, source: OUTSIDE } });
      assertNoRelay(await probe(proxy.port, TLS_OF[name]), name);
    }
    assertRelayLog(srv, OUTSIDE, '127.0.0.1');
    const connects = srv.logs.filter((l) => l.event === 'connect');
    assert.equal(connects.length, 3 * 18);
    for (const l of connects) assert.deepEqual([l.client, l.proxy], [OUTSIDE, '127.0.0.1']);
  });
}

test('incident: the probe sends the PROXY header itself, v1 and v2, IPv4 and IPv6 claims', async (t) => {
  const srv = await startServer(t, { users: USERS, config: TRUSTING_PROXY });
  assertNoRelay(await probe(srv.port('mx'), 'none', { proxy: { version: 1, source: OUTSIDE } }), 'mx');
  assertRelayLog(srv, OUTSIDE, '127.0.0.1');
  srv.logs.length = 0;
  assertNoRelay(await probe(srv.port('mx'), 'none', { proxy: { version: 2, source: OUTSIDE6 } }), 'mx');
  assertRelayLog(srv, OUTSIDE6, '127.0.0.1');
  // The header comes before TLS on the implicit-TLS port, and before STARTTLS on submission.
  srv.logs.length = 0;
  assertNoRelay(await probe(srv.port('submissions'), 'implicit', { proxy: { version: 2, source: OUTSIDE6 } }), 'submissions');
  assertNoRelay(await probe(srv.port('submission'), 'starttls', { proxy: { version: 1, source: OUTSIDE6 } }), 'submission');
  const connects = srv.logs.filter((l) => l.event === 'connect');
  assert.equal(connects.length, 2 * 18);
  for (const l of connects) assert.deepEqual([l.client, l.proxy], [OUTSIDE6, '127.0.0.1']);
});

test('incident: a PROXY header from an untrusted peer is refused and its claim never used', async (t) => {
  const srv = await startServer(t, { users: USERS });
  const claim = { address: OUTSIDE, port: 40000 };
  const dest = { address: '127.0.0.1', port: srv.port('mx') };
  for (const header of [proxyV1Header(claim, dest), proxyV2Header(claim, dest)]) {
    for (const name of ['mx', 'submission'] as const) {
      const c = await dial(srv.port(name), { prelude: header });
      await c.expect('220 mx.example.org');
      await c.expect('554 5.7.0 PROXY header from untrusted peer');
      await c.closed();
    }
  }
  // On the implicit-TLS port the header is not TLS: the handshake fails, no SMTP reply at all.
  const raw = await rawExchange(srv.port('submissions'), proxyV1Header(claim, dest));
  assert.equal(raw.includes('220'), false, JSON.stringify(raw));
  // The battery with a header the server does not trust: every attempt ends at its first command.
  const r = await probe(srv.port('mx'), 'none', { proxy: { version: 1, source: OUTSIDE } });
  assert.deepEqual(new Set(r.attempts.map((a) => `${a.verdict} ${a.stage} ${a.early ? replyLine(a.early) : '-'}`)), new Set(['refused helo 554 5.7.0 PROXY header from untrusted peer']));
  assert.equal(r.exitCode, 0);
  const untrusted = srv.logs.filter((l) => l.event === 'protocol' && l.kind === 'proxy-untrusted');
  assert.equal(untrusted.length, 4 + 18);
  for (const l of untrusted) assert.equal(l.client, '127.0.0.1');
  assert.deepEqual(srv.logs.filter((l) => JSON.stringify(l).includes(OUTSIDE)), [], 'the claimed address appears in no log line');
});

test('incident: a trusted proxy peer that sends no header is cut off without a word', async (t) => {
  const srv = await startServer(t, { users: USERS, config: TRUSTING_PROXY });
  for (const name of ['mx', 'submission'] as const) {
    const c = await dial(srv.port(name));
    c.say('EHLO tunnel.example');
    await assert.rejects(c.read(), /connection closed while waiting for a reply \(buffer: ""\)/);
  }
  const errors = srv.logs.filter((l) => l.event === 'listener' && l.kind === 'proxy-error');
  assert.deepEqual(
    errors.map((l) => [l.listener, l.peer, l.reason]),
    [
      ['mx', '127.0.0.1', 'does not start with a PROXY v1 or v2 signature'],
      ['submission', '127.0.0.1', 'does not start with a PROXY v1 or v2 signature'],
    ],
  );
  assert.equal(srv.logs.filter((l) => l.event === 'connect').length, 0, 'no session was started');
  // A probe that waits for a greeting gets none: the server waits for the header.
  await assert.rejects(runRelayTest({ host: '127.0.0.1', port: srv.port('mx'), timeoutMs: 300 }), (err: unknown) => {
    assert.ok(err instanceof RelayTestError);
    assert.match(err.message, /^127\.0\.0\.1:\d+ sent no greeting \(no reply within 300 ms\); if the server expects a PROXY header, pass --proxy-v1 or --proxy-v2/);
    return true;
  });
});

test('incident: listing 127.0.0.1 in relay.trustedNetworks by hand opens the tunnel — and only the tunnel', async (t) => {
  const srv = await startServer(t, {
    users: USERS,
    config: {
      relay: { trustedNetworks: ['127.0.0.1'] },
      listeners: { mx: { kind: 'mx', port: 0 }, 'mx-proxied': { kind: 'mx', port: 0, proxy: { trusted: ['127.0.0.1'] } } },
    },
  });
  const tunnel = await startForwarder(t, srv.port('mx'));
  const open = await probe(tunnel.port, 'none');
  const relayed = open.attempts.filter((a) => a.verdict === 'relayed').map((a) => a.name);
  assert.deepEqual(relayed, ['plain', 'source-route', 'source-route-2', 'ipv4-literal', 'ipv6-literal', 'trailing-dot', 'upper-case', 'no-brackets', 'quoted-local']);
  for (const a of open.attempts.filter((x) => x.verdict === 'relayed')) assert.equal(replyLine(a.rcpt!), '250 2.1.5 Recipient OK');
  assert.equal(open.exitCode, 1);
  assert.equal(open.result, 'RESULT: OPEN RELAY — 9 attempt(s) accepted');
  assert.equal(relayRefusals(srv, 'mx').length, 0);
  // The same server behind a trusted proxy judges the real client, which is not in the list.
  const proxy = await startForwarder(t, srv.port('mx-proxied'), { proxy: { version: 2, source: OUTSIDE } });
  assertNoRelay(await probe(proxy.port, 'none'), 'mx');
  const refusals = relayRefusals(srv, 'mx-proxied');
  assert.equal(refusals.length, 9);
  for (const l of refusals) assert.deepEqual([l.client, l.proxy], [OUTSIDE, '127.0.0.1']);
});

test('incident: an authenticated login relays, and relay-test --auth calls that allowed, not open', async (t) => {
  const srv = await startServer(t, { users: USERS });
  const c = await dial(srv.port('submission'));
  await c.expect('220');
  await c.say('EHLO laptop.example').expect('250');
  await c.say('STARTTLS').expect('220');
  await c.startTls();
  await c.say('EHLO laptop.example').expect(/AUTH PLAIN LOGIN/);
  await c.say(authPlain(ALICE, ALICE_PW)).expect('235 2.7.0');
  await c.say(`MAIL FROM:<${ALICE}>`).expect('250 2.1.0');
  await c.say('RCPT TO:<friend@example.net>').expect('250 2.1.5');
  await c.say('RSET').expect('250');
  await c.say('QUIT').expect('221');
  for (const name of ['submission', 'submissions'] as const) {
    const r = await probe(srv.port(name), name === 'submission' ? 'none' : 'implicit', { auth: { user: ALICE, password: ALICE_PW }, verifyTls: false });
    assertNoRelay({ ...r, attempts: r.attempts.filter((a) => !a.authenticated) }, name);
    const auth = Object.fromEntries(r.attempts.filter((a) => a.authenticated).map((a) => [a.name, `${a.verdict} ${a.mailFrom} ${replyLine(a.mail!)}`]));
    assert.deepEqual(auth, {
      'auth-relay': `allowed <${ALICE}> 250 2.1.0 Sender OK`,
      'auth-spoofed-sender': 'sender-refused <someone-else@example.org> 553 5.7.1 Sender address rejected: not owned by user',
    });
    assert.equal(r.attempts.find((a) => a.name === 'auth-relay')?.rcpt?.code, 250);
    assert.equal(r.login, ALICE);
    assert.equal(r.authProblem, undefined);
  }
  const logins = srv.logs.filter((l) => l.event === 'auth');
  assert.equal(logins.length, 1 + 2 * 2);
  for (const l of logins) assert.deepEqual([l.login, l.result], [ALICE, 'success']);
  // The MX port has no AUTH at all, not even after STARTTLS: the authenticated part cannot run.
  const mx = await probe(srv.port('mx'), 'none', { auth: { user: ALICE, password: ALICE_PW }, verifyTls: false });
  assert.equal(mx.authProblem, 'authenticated attempts could not run: the server does not offer AUTH here');
  assert.equal(mx.exitCode, 2);
  assert.equal(mx.counts.relayed, 0);
});

test('incident: AUTH without TLS is impossible on every listener', async (t) => {
  const srv = await startServer(t, { users: USERS });
  const plain = authPlain(ALICE, ALICE_PW);
  const mx = await dial(srv.port('mx'));
  await mx.expect('220');
  const ehlo = await mx.say('EHLO x.example').expect('250');
  assert.equal(/AUTH/.test(ehlo.text), false);
  await mx.say(plain).expect('503 5.5.1 Error: authentication not enabled');
  await mx.say('MAIL FROM:<x@example.net>').expect('250');
  await mx.say('RCPT TO:<victim@example.net>').expect('554 5.7.1');
  mx.close();
  const sub = await dial(srv.port('submission'));
  await sub.expect('220');
  const subEhlo = await sub.say('EHLO x.example').expect('250');
  assert.equal(/AUTH/.test(subEhlo.text), false);
  await sub.say(plain).expect('538 5.7.11 Encryption required');
  await sub.say('AUTH LOGIN').expect('538 5.7.11');
  await sub.say('MAIL FROM:<alice@example.org>').expect('530 5.7.0 Must issue a STARTTLS command first');
  sub.close();
  // The implicit-TLS port answers plain text with nothing SMTP at all.
  const raw = await rawExchange(srv.port('submissions'), Buffer.from(`EHLO x.example\r\n${plain}\r\n`));
  assert.equal(/^2\d\d|\r\n2\d\d/.test(raw), false, JSON.stringify(raw));
  assert.equal(srv.logs.filter((l) => l.event === 'auth').length, 0, 'no AUTH got as far as a password check');
  // What the probe saw before TLS agrees.
  for (const [name, tls] of [['mx', 'none'], ['submission', 'starttls']] as const) {
    const r = await probe(srv.port(name), tls);
    assert.equal(r.server.authWithoutTls, false);
    assert.equal(r.server.extensions.includes('STARTTLS'), true);
  }
});

test('incident: with requireAuth turned off on submission the relay gate still refuses at RCPT', async (t) => {
  const srv = await startServer(t, { users: USERS, config: { listeners: { submission: { kind: 'submission', port: 0, requireAuth: false } } } });
  const r = await probe(srv.port('submission'), 'starttls');
  // Same answers as the MX port, except that a local sender is fine here (not an MX listener).
  assert.deepEqual(Object.fromEntries(r.attempts.map((a) => [a.name, summary(a)])), { ...MX_ANSWERS, 'spoofed-sender': 'refused rcpt 250 554 5.7.1' });
  assert.equal(r.exitCode, 0);
  assert.equal(relayRefusals(srv, 'submission').length, RELAY_GATE_TO.length + 1);
});

/** Writes bytes to a port and collects whatever comes back until the server closes. */
async function rawExchange(port: number, data: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(data));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('the server did not close the connection'));
    }, 5000);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}
