// REQUIRETLS (RFC 8689) on the receiving side, over real SMTP on loopback: offered only once TLS
// protects the session, refused with 530 5.7.10 in clear, and passed on with the transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../harness/dial.ts';
import { localhostCert, startSink } from '../delivery/sink.ts';

test('REQUIRETLS: offered after STARTTLS only; MAIL FROM with it in clear is 530 5.7.10; over TLS it is accepted and recorded', async (t) => {
  const sink = await startSink(t, { tls: localhostCert().context, requireTls: true });
  const c = await dial(sink.port);
  t.after(() => c.close());
  await c.expect('220');
  const clear = await c.say('EHLO client.example').expect('250');
  assert.doesNotMatch(clear.text, /REQUIRETLS/);
  await c.say('MAIL FROM:<a@example.org> REQUIRETLS').expect('530 5.7.10');
  await c.say('STARTTLS').expect('220');
  await c.startTls();
  const secure = await c.say('EHLO client.example').expect('250');
  assert.match(secure.text, /^REQUIRETLS$/m);
  await c.say('MAIL FROM:<a@example.org> REQUIRETLS=yes').expect('501');
  await c.say('MAIL FROM:<a@example.org> REQUIRETLS').expect('250');
  await c.say('RCPT TO:<b@example.net>').expect('250');
  await c.say('DATA').expect('354');
  c.send('Subject: t\r\n\r\nhi\r\n.\r\n');
  await c.expect('250');
  const [m] = await sink.waitForMessages(1);
  assert.equal(m!.requireTls, true);
  await c.say('QUIT').expect('221');
});

test('REQUIRETLS: not offered when the listener turns it off', async (t) => {
  const sink = await startSink(t, { tls: localhostCert().context });
  const c = await dial(sink.port);
  t.after(() => c.close());
  await c.expect('220');
  await c.say('EHLO client.example').expect('250');
  await c.say('STARTTLS').expect('220');
  await c.startTls();
  const secure = await c.say('EHLO client.example').expect('250');
  assert.doesNotMatch(secure.text, /REQUIRETLS/);
  await c.say('MAIL FROM:<a@example.org> REQUIRETLS').expect('555');
});
