// AUTH through Dovecot's auth socket (auth.backend: dovecot): a user of Dovecot's passdb logs in
// to submission with the IMAP password, PLAIN and LOGIN; a wrong one is 535; the failure
// counting (auth-guard.ts) stays in front; Dovecot gone is 454, never a success.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';
import { dovecotInstalled, startDovecot } from '../harness/dovecot.ts';

// Skipped where Dovecot is missing, except in CI (MAILWARD_REQUIRE_ALL_TESTS=1): there a skip would hide a lost test.
const skip = dovecotInstalled() || process.env.MAILWARD_REQUIRE_ALL_TESTS === '1' ? false : 'dovecot-core and dovecot-lmtpd are not installed';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const plain = (user: string, pass: string): string => 'AUTH PLAIN ' + b64(`\0${user}\0${pass}`);

test('dovecot sasl: the IMAP password logs in to submission; a wrong one is 535 and counted', { skip }, async (t) => {
  const dv = await startDovecot(t, [{ address: 'dana@example.org', password: 'imap pass 1' }]);
  const srv = await startServer(t, { config: { auth: { backend: 'dovecot', dovecot: { socket: dv.authSocket }, maxFailures: 2, delay: 0 } } });
  const c = await dial(srv.port('submissions'), { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  await c.say(plain('dana@example.org', 'imap pass 1')).expect('235');
  // Not in Mailward's own user list, yet she sends as herself (and only as herself).
  await c.say('MAIL FROM:<someone@example.org>').expect('553 5.7.1');
  await c.say('MAIL FROM:<dana@example.org>').expect('250');
  await c.say('QUIT').expect('221');

  const l = await dial(srv.port('submissions'), { tls: true });
  await l.expect('220');
  await l.say('EHLO laptop').expect('250');
  await l.say('AUTH LOGIN').expect('334');
  await l.say(b64('dana@example.org')).expect('334');
  await l.say(b64('imap pass 1')).expect('235');
  await l.say('QUIT').expect('221');

  const w = await dial(srv.port('submissions'), { tls: true });
  await w.expect('220');
  await w.say('EHLO laptop').expect('250');
  await w.say(plain('dana@example.org', 'guess')).expect('535 5.7.8');
  await w.say(plain('dana@example.org', 'guess 2')).expect('454 4.7.0');
  // Locked from this network by Mailward's guard: even the right password is not asked of Dovecot.
  await w.say(plain('dana@example.org', 'imap pass 1')).expect('454 4.7.0');
  await w.say('QUIT').expect('221');
  const results = srv.logs.filter((x) => x.event === 'auth').map((x) => x.result);
  assert.deepEqual(results, ['success', 'success', 'failure', 'failure', 'locked']);
  assert.ok(!JSON.stringify(srv.logs).includes('imap pass 1'), 'the password is never logged');
});

test('dovecot sasl: Dovecot not answering is 454 (try later)', { skip }, async (t) => {
  const srv = await startServer(t, { config: { auth: { backend: 'dovecot', dovecot: { socket: '/nonexistent/auth-client' } } } });
  const c = await dial(srv.port('submissions'), { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  await c.say(plain('dana@example.org', 'imap pass 1')).expect('454 4.7.0');
  await c.say('QUIT').expect('221');
  const line = await srv.waitForLog((l) => l.event === 'auth-backend-unavailable');
  assert.match(String(line.msg), /\/nonexistent\/auth-client.*auth\.dovecot\.socket/);
});
