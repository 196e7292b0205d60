// Relaying through a smarthost that demands TLS and AUTH (a loopback sink with its own
// certificate): STARTTLS and implicit TLS with the certificate checked against the configured CA,
// a wrong password and an untrusted certificate defer without sending the password or the mail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { Envelope } from '../../src/queue/envelope.ts';
import { SmarthostTransport } from '../../src/delivery/smarthost.ts';
import type { DeliverableMessage } from '../../src/delivery/transport.ts';
import { captureLog } from '../queue/helpers.ts';
import { localhostCert, startSink } from './sink.ts';

const CLIENT = { heloName: 'mx.example.org', connectTimeoutMs: 3000, greetingTimeoutMs: 3000, socketTimeoutMs: 5000 };
const PASSWORD = 'sm@rt-host secret 42';

function message(to: string[]): DeliverableMessage {
  const bytes = Buffer.from('From: a@example.org\r\nSubject: relay\r\n\r\nvia the smarthost\r\n');
  const envelope: Envelope = {
    id: '1k8fn2k50f5t0l8a2',
    receivedAt: Date.now(),
    mailFrom: 'a@example.org',
    recipients: to.map((address) => ({ address, mailbox: address, transport: 'remote' as const })),
    client: { address: '192.0.2.1', listener: 'submission', sessionId: 's', login: 'a@example.org' },
    smtputf8: false,
    body: '7BIT',
    size: bytes.length,
  };
  return { envelope, body: () => Readable.from([bytes]), recovered: false };
}

test('smarthost: STARTTLS (required), certificate checked against the CA, AUTH, then the mail', async (t) => {
  const cert = localhostCert();
  const sink = await startSink(t, { tls: cert.context, auth: { user: 'relay-user', pass: PASSWORD } });
  const cap = captureLog();
  const sh = new SmarthostTransport({ name: 'relay', host: 'localhost', port: sink.port, tls: 'starttls', auth: { user: 'relay-user', pass: PASSWORD }, ca: Buffer.from(cert.certPem), maxConnections: 2, client: CLIENT, log: cap.log });
  const out = await sh.deliver(message(['x@far.example', 'y@other.example']), [0, 1]);
  assert.deepEqual(out, [
    { index: 0, outcome: 'ok', reply: '250 2.0.0 Ok: queued as sink1', remoteMta: 'localhost' },
    { index: 1, outcome: 'ok', reply: '250 2.0.0 Ok: queued as sink1', remoteMta: 'localhost' },
  ]);
  const [m] = sink.messages;
  assert.equal(m!.secure, true);
  assert.equal(m!.login, 'relay-user');
  assert.deepEqual(m!.rcpts, ['x@far.example', 'y@other.example']);
  assert.ok(m!.body.toString().endsWith('Subject: relay\r\n\r\nvia the smarthost\r\n'));
  assert.ok(!JSON.stringify(cap.lines).includes(PASSWORD), 'the password never reaches the log');
});

test('smarthost: implicit TLS works too', async (t) => {
  const cert = localhostCert();
  const sink = await startSink(t, { tls: cert.context, implicitTls: true, auth: { user: 'u', pass: PASSWORD } });
  const sh = new SmarthostTransport({ name: 'relay', host: 'localhost', port: sink.port, tls: 'implicit', auth: { user: 'u', pass: PASSWORD }, ca: Buffer.from(cert.certPem), maxConnections: 1, client: CLIENT, log: captureLog().log });
  const out = await sh.deliver(message(['x@far.example']), [0]);
  assert.equal(out[0]!.outcome, 'ok');
  assert.equal(sink.messages[0]!.secure, true);
});

test('smarthost: a wrong password defers; an untrusted certificate defers before any password is sent', async (t) => {
  const cert = localhostCert();
  const sink = await startSink(t, { tls: cert.context, auth: { user: 'u', pass: PASSWORD } });
  const cap = captureLog();
  const wrong = new SmarthostTransport({ name: 'relay', host: 'localhost', port: sink.port, tls: 'starttls', auth: { user: 'u', pass: 'not it' }, ca: Buffer.from(cert.certPem), maxConnections: 1, client: CLIENT, log: cap.log });
  const out = await wrong.deliver(message(['x@far.example']), [0]);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.outcome, 'temporary');
  assert.match(out[0]!.reply, /^454 4\.7\.0 authentication failed at localhost\[127\.0\.0\.1\]:\d+: 535 5\.7\.8 Authentication credentials invalid$/);
  assert.deepEqual(sink.auths, [{ user: 'u', pass: 'not it' }]);
  assert.equal(cap.events('smarthost-unreachable')[0]!.level, 50, 'a refused login is logged as an error');

  // No CA given: the sink's self-signed certificate is not trusted, so nothing is sent to it.
  const untrusting = new SmarthostTransport({ name: 'relay', host: 'localhost', port: sink.port, tls: 'starttls', auth: { user: 'u', pass: PASSWORD }, maxConnections: 1, client: CLIENT, log: cap.log });
  const out2 = await untrusting.deliver(message(['x@far.example']), [0]);
  assert.equal(out2[0]!.outcome, 'temporary');
  assert.match(out2[0]!.reply, /^454 4\.7\.5 TLS failed with localhost\[127\.0\.0\.1\]:\d+/);
  assert.equal(sink.auths.length, 1, 'no password went to an unverified server');
  assert.equal(sink.messages.length, 0);
});

test('smarthost: a server without STARTTLS is refused when TLS is required', async (t) => {
  const sink = await startSink(t, {});
  const sh = new SmarthostTransport({ name: 'relay', host: '127.0.0.1', port: sink.port, tls: 'starttls', maxConnections: 1, client: CLIENT, log: captureLog().log });
  const out = await sh.deliver(message(['x@far.example']), [0]);
  assert.equal(out[0]!.outcome, 'temporary');
  assert.match(out[0]!.reply, /^454 4\.7\.5 TLS failed with 127\.0\.0\.1\[127\.0\.0\.1\]:\d+/);
  assert.equal(sink.messages.length, 0);
});
