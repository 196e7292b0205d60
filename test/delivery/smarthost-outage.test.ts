// A smarthost that is down is logged once: N messages to a closed loopback port are each deferred
// (temporary) with one warning naming the host, port and settings; once a relay listens there the
// next message is delivered and one info line says how long it was down and how much was deferred.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { Envelope } from '../../src/queue/envelope.ts';
import { SmarthostTransport } from '../../src/delivery/smarthost.ts';
import type { DeliverableMessage } from '../../src/delivery/transport.ts';
import { captureLog } from '../queue/helpers.ts';
import { deadPort, localhostCert, startSink } from './sink.ts';

const CLIENT = { heloName: 'mx.example.org', connectTimeoutMs: 2000, greetingTimeoutMs: 2000, socketTimeoutMs: 5000 };
const N = 4;

function message(n: number): DeliverableMessage {
  const bytes = Buffer.from(`From: a@example.org\r\nSubject: ${n}\r\n\r\nvia the smarthost\r\n`);
  const envelope: Envelope = {
    id: `1k8fn2k50f5t0l8a${n}`,
    receivedAt: Date.now(),
    mailFrom: 'a@example.org',
    recipients: [{ address: 'x@far.example', mailbox: 'x@far.example', transport: 'remote' as const }],
    client: { address: '192.0.2.1', listener: 'submission', sessionId: 's', login: 'a@example.org' },
    smtputf8: false,
    body: '7BIT',
    size: bytes.length,
  };
  return { envelope, body: () => Readable.from([bytes]), recovered: false };
}

test('smarthost down: N deferrals, one outage line; relay back: delivered, one recovery line', async (t) => {
  const port = await deadPort();
  const cert = localhostCert();
  const cap = captureLog();
  const sh = new SmarthostTransport({ name: 'relay', host: '127.0.0.1', port, tls: 'starttls', ca: Buffer.from(cert.certPem), maxConnections: 2, client: CLIENT, log: cap.log });
  for (let i = 0; i < N; i++) {
    const out = await sh.deliver(message(i), [0]);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.outcome, 'temporary');
    assert.match(out[0]!.reply, /^4\d\d /);
  }
  const down = cap.events('smarthost-unreachable');
  assert.equal(down.length, 1);
  assert.equal(down[0]!.level, 40);
  assert.equal(down[0]!.port, port);
  assert.match(String(down[0]!.msg), new RegExp(`^smarthost relay \\(127\\.0\\.0\\.1:${port}\\) not usable: .*delivery\\.smarthosts\\.relay\\.host and delivery\\.smarthosts\\.relay\\.port`));
  // Every attempt is still there, at debug.
  assert.deepEqual(cap.events('smarthost-attempt-failed').map((l) => l.level), Array<number>(N).fill(20));
  assert.equal(cap.events('smarthost-reachable').length, 0);

  // The relay comes up on that port (the certificate is for "localhost", which covers 127.0.0.1).
  const sink = await startSink(t, { port, tls: cert.context });
  const out = await sh.deliver(message(N), [0]);
  assert.equal(out[0]!.outcome, 'ok');
  assert.equal(sink.messages.length, 1);
  const up = cap.events('smarthost-reachable');
  assert.equal(up.length, 1);
  assert.equal(up[0]!.level, 30);
  assert.equal(up[0]!.deferred, N);
  assert.equal(typeof up[0]!.downMs, 'number');
  assert.equal((await sh.deliver(message(N + 1), [0]))[0]!.outcome, 'ok');
  assert.equal(cap.events('smarthost-unreachable').length, 1);
  assert.equal(cap.events('smarthost-reachable').length, 1);
});
