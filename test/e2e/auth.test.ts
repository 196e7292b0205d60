// Logins: a login sends only as itself (envelope and header From), our domains cannot be used
// as sender without a login on the MX port, password guessing is blocked, system accounts
// receive nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial, type Dialog } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';
import { authPlain } from '../harness/auth.ts';

const users: Array<[string, string]> = [
  ['alice@example.org', 'alice password 1'],
  ['bob@example.org', 'bob password 12'],
];
const plain = authPlain;

async function login(port: number, user: string, pass: string): Promise<Dialog> {
  const c = await dial(port, { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  await c.say(plain(user, pass)).expect('235');
  return c;
}

test('sender-login: a login sends as itself, its aliases and sendAs, nothing else', async (t) => {
  const srv = await startServer(t, {
    users,
    aliases: [['sales@example.org', ['alice@example.org']]],
    config: { checks: { 'sender-login': { sendAs: { 'alice@example.org': ['@alice.example'] } } } },
  });
  const c = await login(srv.port('submissions'), 'alice@example.org', 'alice password 1');
  await c.say('MAIL FROM:<bob@example.org>').expect('553 5.7.1 Sender address rejected: not owned by user');
  await c.say('MAIL FROM:<ceo@bank.example>').expect('553 5.7.1');
  await c.say('MAIL FROM:<>').expect('553 5.7.1');
  await c.say('MAIL FROM:<Alice@Example.ORG>').expect('250');
  await c.say('RSET').expect('250');
  await c.say('MAIL FROM:<sales@example.org>').expect('250');
  await c.say('RSET').expect('250');
  await c.say('MAIL FROM:<anything@alice.example>').expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('From: Bob <bob@example.org>\r\nSubject: spoof\r\n\r\nx\r\n.\r\n');
  await c.expect('550 5.7.1 From header address not owned by user');
  await c.say('MAIL FROM:<alice@example.org>').expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('From: "Alice" <alice@example.org>\r\nSubject: fine\r\n\r\nx\r\n.\r\n');
  await c.expect('250 2.0.0');
  const rej = srv.logs.filter((l) => l.event === 'rejected' && l.check === 'sender-login');
  assert.equal(rej.length, 4);
  assert.equal(rej[0]!.reason, 'login alice@example.org may not send as bob@example.org');
  assert.equal(rej[3]!.reason, 'login alice@example.org may not use From: bob@example.org');
  c.close();
});

test('sender-login: without a login our domains are refused as sender on the MX port, unless exempted', async (t) => {
  const srv = await startServer(t, { users });
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO outside').expect('250');
  await c.say('MAIL FROM:<alice@example.org>').expect('553 5.7.1');
  await c.say('MAIL FROM:<someone@example.net>').expect('250');
  c.close();
  const srv2 = await startServer(t, { users, config: { checks: { 'sender-login': { exceptions: ['127.0.0.1/32'] } } } });
  const d = await dial(srv2.port('mx'));
  await d.expect('220');
  await d.say('EHLO scanner').expect('250');
  await d.say('MAIL FROM:<scanner@example.org>').expect('250');
  d.close();
});

test('auth guard: repeated failures lock that login from that network only; the MX port and other logins are unaffected', async (t) => {
  const srv = await startServer(t, { users, config: { auth: { maxFailures: 3, maxLoginFailures: 100, window: '1m', block: '1m' } } });
  const port = srv.port('submissions');
  await (await login(port, 'bob@example.org', 'bob password 12')).say('QUIT').expect('221');
  const c = await dial(port, { tls: true });
  await c.expect('220');
  await c.say('EHLO guesser').expect('250');
  await c.say(plain('alice@example.org', 'guess1')).expect('535 5.7.8');
  await c.say(plain('alice@example.org', 'guess2')).expect('535 5.7.8');
  await c.say(plain('alice@example.org', 'guess3')).expect('454 4.7.0 Too many failed logins');
  c.close();
  // A new connection is greeted (a failure never refuses the connection); alice stays locked
  // from this network even with her right password, bob is not.
  const d = await dial(port, { tls: true });
  await d.expect('220');
  await d.say('EHLO guesser').expect('250');
  await d.say(plain('alice@example.org', 'alice password 1')).expect('454 4.7.0');
  await d.say(plain('bob@example.org', 'bob password 12')).expect('235');
  d.close();
  // Mail from other servers on the MX port, from the same address, is taken as before.
  const m = await dial(srv.port('mx'));
  await m.expect('220');
  await m.say('EHLO mx.example.net').expect('250');
  await m.say('MAIL FROM:<someone@example.net>').expect('250');
  await m.say('RCPT TO:<alice@example.org>').expect('250');
  m.close();
  const block = await srv.waitForLog((l) => l.event === 'auth-block');
  assert.equal(block.login, 'alice@example.org');
  assert.equal(block.scope, 'login');
  assert.ok(!JSON.stringify(srv.logs).includes('guess1'), 'tried passwords never reach the log');
});

test('auth guard: one network failing many logins gets no AUTH for a while; unknown and known logins get the same replies', async (t) => {
  const srv = await startServer(t, { users, config: { auth: { maxFailures: 100, maxNetworkFailures: 3, maxLoginFailures: 100, window: '1m', block: '1m' } } });
  const c = await dial(srv.port('submissions'), { tls: true });
  await c.expect('220');
  await c.say('EHLO x').expect('250');
  await c.say(plain('bob@example.org', 'nope')).expect('535 5.7.8');
  await c.say(plain('nobody@example.org', 'nope')).expect('535 5.7.8');
  await c.say(plain('carol@example.org', 'nope')).expect('454 4.7.0');
  await c.say(plain('bob@example.org', 'bob password 12')).expect('454 4.7.0');
  c.close();
  const block = await srv.waitForLog((l) => l.event === 'auth-block');
  assert.equal(block.scope, 'network');
});

test('recipient: system accounts are refused by default, or discarded when configured', async (t) => {
  const srv = await startServer(t, { users, aliases: [['www-data@example.org', ['alice@example.org']]] });
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO x').expect('250');
  await c.say('MAIL FROM:<a@example.net>').expect('250');
  await c.say('RCPT TO:<www-data@example.org>').expect('550 5.1.1');
  await c.say('RCPT TO:<nobody@example.org>').expect('550 5.1.1');
  c.close();
  const srv2 = await startServer(t, { users, config: { checks: { recipient: { systemAccountAction: 'discard' } } } });
  const d = await dial(srv2.port('mx'));
  await d.expect('220');
  await d.say('EHLO x').expect('250');
  await d.say('MAIL FROM:<a@example.net>').expect('250');
  await d.say('RCPT TO:<daemon@example.org>').expect('250');
  await d.say('DATA').expect('354');
  d.send('Subject: x\r\n\r\nx\r\n.\r\n');
  await d.expect('250');
  await srv2.waitForLog((l) => l.event === 'discarded' && l.to === 'daemon@example.org');
  d.close();
});
