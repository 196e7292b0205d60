// Multi-domain virtual hosting with Dovecot (LMTP delivery and SASL) and a smarthost with a
// password: run against a real Dovecot, the imported config takes mail for the virtual
// mailboxes, aliases and catch-all, lets a Dovecot login relay, and keeps the relay password out
// of the config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { dovecotInstalled, startDovecot } from '../harness/dovecot.ts';
import { forTest, importFixture, obj, rcptCode, start } from './helpers.ts';

const skip = dovecotInstalled() || process.env.MAILWARD_REQUIRE_ALL_TESTS === '1' ? false : 'dovecot-core and dovecot-lmtpd are not installed';

test('import postfix: virtual domains with Dovecot SASL and LMTP, smarthost password in a 0600 file', { skip }, async (t) => {
  const imp = await importFixture(t, 'virtual-dovecot');
  const w = imp.written;
  assert.deepEqual(w.domains, ['example.net', 'example.com']);
  assert.deepEqual(obj(w.auth), { backend: 'dovecot', dovecot: { socket: '/var/spool/postfix/private/auth' } });
  assert.equal(obj(obj(obj(w.delivery).local).lmtp).address, 'unix:/var/spool/postfix/private/dovecot-lmtp');
  const relay = obj(obj(obj(w.delivery).smarthosts).relayhost);
  assert.deepEqual(relay, { host: 'smtp.provider.example', port: 587, tls: 'starttls', auth: { user: 'relayuser', passwordFile: 'smarthost-relayhost.password' } });
  assert.deepEqual(obj(w.delivery).routes, { '*': 'smarthost:relayhost' });
  const pwFile = path.join(imp.dir, 'smarthost-relayhost.password');
  assert.equal(readFileSync(pwFile, 'utf8'), 'S3cret-Relay-Pass\n');
  assert.equal(statSync(pwFile).mode & 0o777, 0o600);
  assert.ok(!readFileSync(imp.out, 'utf8').includes('S3cret'), 'the password is never in the config');
  assert.ok(!imp.result.text.includes('S3cret'), 'nor in the report');
  assert.deepEqual(obj(obj(w.checks)['sender-login']).sendAs, { 'alice@example.net': ['sales@example.net'], 'bob@example.net': ['sales@example.net'] });

  const dovecot = await startDovecot(t, [{ address: 'alice@example.net', password: 'alice-imap-pass' }]);
  const srv = await start(
    t,
    imp,
    forTest(imp, (c) => {
      const auth = obj(c.auth);
      obj(auth.dovecot).socket = dovecot.authSocket;
      obj(obj(obj(c.delivery).local).lmtp).address = `unix:${dovecot.lmtpSocket}`;
    }),
  );
  const mx = srv.port('mx');
  for (const to of ['alice@example.net', 'bob@example.net', 'carol@example.com', 'sales@example.net', 'anything@example.com']) {
    assert.equal(await rcptCode(mx, 'someone@sender.example', to), 250, to);
  }
  // No catch-all in example.net: unknown there (virtual_mailbox_maps), and relay refused.
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'nobody-here@example.net'), 550);
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'victim@elsewhere.example'), 554);
  // A Dovecot login relays on submissions (as permit_sasl_authenticated), as herself or an address in smtpd_sender_login_maps.
  const login = ['alice@example.net', 'alice-imap-pass'] as const;
  assert.equal(await rcptCode(srv.port('submissions'), 'alice@example.net', 'friend@elsewhere.example', { tls: true, login }), 250);
  assert.equal(await rcptCode(srv.port('submissions'), 'sales@example.net', 'friend@elsewhere.example', { tls: true, login }), 250);
});
