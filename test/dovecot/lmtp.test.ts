// Delivery by LMTP (RFC 2033) to a real Dovecot started by the test: one reply per recipient
// after DATA, so a full mailbox (452) defers that recipient alone; the retry delivers it without
// a second copy for the others. An unknown user (550) bounces only that recipient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../harness/server.ts';
import { dial } from '../harness/dial.ts';
import { dovecotInstalled, startDovecot } from '../harness/dovecot.ts';

// Skipped where Dovecot is missing, except in CI (MAILWARD_REQUIRE_ALL_TESTS=1): there a skip would hide a lost test.
const skip = dovecotInstalled() || process.env.MAILWARD_REQUIRE_ALL_TESTS === '1' ? false : 'dovecot-core and dovecot-lmtpd are not installed';

async function send(port: number, rcpts: readonly string[], subject: string): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO sender.example.com').expect('250');
  await c.say('MAIL FROM:<someone@example.com>').expect('250');
  for (const r of rcpts) await c.say(`RCPT TO:<${r}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(`From: <someone@example.com>\r\nTo: <${rcpts[0]}>\r\nSubject: ${subject}\r\n\r\nhello\r\n..line starting with a dot\r\n.\r\n`);
  const r = await c.expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
  return r.text.split(' ').pop()!;
}

test('lmtp: a full mailbox defers only its recipient; the retry delivers it and nobody gets a second copy', { skip }, async (t) => {
  const dv = await startDovecot(t, [
    { address: 'alice@example.org', password: 'a-pass' },
    { address: 'bob@example.org', password: 'b-pass', quotaRule: '*:storage=1B' },
  ]);
  const srv = await startServer(t, {
    users: [['alice@example.org', 'x'], ['bob@example.org', 'y'], ['carol@example.org', 'z']],
    config: { queue: { minBackoff: 300, maxBackoff: 1000 }, delivery: { local: { transport: 'lmtp', lmtp: { address: `unix:${dv.lmtpSocket}` } } } },
  });
  const id = await send(srv.port('mx'), ['alice@example.org', 'bob@example.org', 'carol@example.org'], 'by lmtp');

  const deferred = await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === id && l.rcpt === 'bob@example.org');
  assert.match(String(deferred.reply), /^452 4\.2\.2 /, 'Dovecot says the mailbox is full, temporarily');
  // carol exists here but not in Dovecot: its 550 is permanent for carol alone.
  const bounced = await srv.waitForLog((l) => l.event === 'bounced' && l.queueId === id && l.rcpt === 'carol@example.org');
  assert.match(String(bounced.reply), /^550 5\.1\.1 /);
  await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id && l.rcpt === 'alice@example.org');
  const alice = dv.mailbox('alice@example.org');
  assert.equal(alice.length, 1);
  assert.match(alice[0]!, /^Return-Path: <someone@example\.com>/m);
  assert.match(alice[0]!, /\n\.line starting with a dot\r?\n/, 'dot-stuffing is undone by Dovecot');

  // Room in bob's mailbox: the retry delivers to bob alone.
  dv.setUsers([
    { address: 'alice@example.org', password: 'a-pass' },
    { address: 'bob@example.org', password: 'b-pass', quotaRule: '*:storage=100M' },
  ]);
  await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id && l.rcpt === 'bob@example.org');
  assert.equal(dv.mailbox('bob@example.org').length, 1);
  assert.equal(dv.mailbox('alice@example.org').length, 1, 'alice got her copy once');
  assert.equal(srv.logs.filter((l) => l.event === 'delivered' && l.queueId === id && l.rcpt === 'alice@example.org').length, 1);
});

test('lmtp: over a loopback TCP port, and per domain beside Maildir', { skip }, async (t) => {
  const dv = await startDovecot(t, [{ address: 'alice@example.org', password: 'a-pass' }]);
  const srv = await startServer(t, {
    users: [['alice@example.org', 'x'], ['dave@example.net', 'y']],
    config: {
      domains: ['example.org', 'example.net'],
      delivery: { local: { transport: 'maildir', domains: { 'example.org': 'lmtp' }, lmtp: { address: `inet:127.0.0.1:${dv.lmtpPort}` } } },
    },
  });
  const id = await send(srv.port('mx'), ['alice@example.org', 'dave@example.net'], 'two ways');
  const viaLmtp = await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id && l.rcpt === 'alice@example.org');
  assert.match(String(viaLmtp.reply), /^250 /);
  await srv.waitForMail('dave@example.net');
  assert.equal(dv.mailbox('alice@example.org').length, 1);
  assert.equal(srv.mailbox('alice@example.org').length, 0, 'example.org goes to Dovecot, not to our Maildir');
});

test('lmtp: Dovecot down defers the mail and says which setting to check', { skip }, async (t) => {
  const srv = await startServer(t, {
    users: [['alice@example.org', 'x']],
    config: { delivery: { local: { transport: 'lmtp', lmtp: { address: 'unix:/nonexistent/lmtp' } } } },
  });
  const id = await send(srv.port('mx'), ['alice@example.org'], 'nobody home');
  const line = await srv.waitForLog((l) => l.event === 'lmtp-unreachable');
  assert.match(String(line.msg), /delivery\.local\.lmtp\.address/);
  await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === id);
});
