// recipients.dovecot: the recipient check asks a real Dovecot's auth-userdb socket whether a user
// exists, through real SMTP RCPT. A Dovecot user that Mailward's own table lacks is accepted and
// delivered by LMTP; nobody is 550 5.1.1 at RCPT; Dovecot gone, or silent, is 451 4.3.0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dial } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';
import { dovecotInstalled, startDovecot } from '../harness/dovecot.ts';

// Skipped where Dovecot is missing, except in CI (MAILWARD_REQUIRE_ALL_TESTS=1): there a skip would hide a lost test.
const skip = dovecotInstalled() || process.env.MAILWARD_REQUIRE_ALL_TESTS === '1' ? false : 'dovecot-core and dovecot-lmtpd are not installed';

async function rcpts(port: number, list: ReadonlyArray<readonly [string, string]>): Promise<void> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO sender.example.com').expect('250');
  await c.say('MAIL FROM:<someone@example.com>').expect('250');
  for (const [to, reply] of list) await c.say(`RCPT TO:<${to}>`).expect(reply);
  await c.say('QUIT').expect('221');
}

async function rcptReply(port: number, to: string): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO sender.example.com').expect('250');
  await c.say('MAIL FROM:<someone@example.com>').expect('250');
  const r = await c.say(`RCPT TO:<${to}>`).expect('');
  await c.say('QUIT').expect('221');
  return r.raw;
}

test('recipients.dovecot: a Dovecot user is accepted and delivered, nobody is 550 at RCPT, answers are cached', { skip }, async (t) => {
  const dv = await startDovecot(t, [{ address: 'dana@example.org', password: 'imap pass' }]);
  const srv = await startServer(t, {
    users: [['alice@example.org', 'x']],
    config: {
      recipientDelimiter: '+',
      recipients: { dovecot: { socket: dv.userdbSocket, positiveTtl: '1h', negativeTtl: 0 } },
      delivery: { local: { transport: 'lmtp', lmtp: { address: `unix:${dv.lmtpSocket}` } } },
    },
  });
  await rcpts(srv.port('mx'), [
    ['Dana@example.org', '250'],
    ['dana+news@example.org', '250'],
    ['nosuch@example.org', '550 5.1.1'],
    // Mailward's own mailbox is found without asking Dovecot.
    ['alice@example.org', '250'],
  ]);
  const refused = srv.logs.find((l) => l.event === 'rejected' && l.to === 'nosuch@example.org');
  assert.match(String(refused?.reason), /Dovecot's userdb has no nosuch@example\.org/);

  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO sender.example.com').expect('250');
  await c.say('MAIL FROM:<someone@example.com>').expect('250');
  await c.say('RCPT TO:<dana@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('From: <someone@example.com>\r\nTo: <dana@example.org>\r\nSubject: via userdb\r\n\r\nhello\r\n.\r\n');
  await c.expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
  await srv.waitForLog((l) => l.event === 'delivered' && l.rcpt === 'dana@example.org');
  assert.equal(dv.mailbox('dana@example.org').length, 1);

  // Dana leaves Dovecot and erin arrives. Once Dovecot answers for erin (it re-reads its
  // passwd-file on its own schedule; "no such user" is not remembered here: negativeTtl 0), dana
  // is still accepted: the remembered "exists" answers (positiveTtl 1h) and Dovecot is not asked.
  dv.setUsers([{ address: 'erin.newcomer@example.org', password: 'e' }]);
  for (let tries = 0, reply = ''; !reply.startsWith('250'); tries++) {
    assert.ok(tries < 500, `Dovecot never learned of erin: ${reply}`);
    reply = await rcptReply(srv.port('mx'), 'erin.newcomer@example.org');
  }
  await rcpts(srv.port('mx'), [['dana@example.org', '250']]);
});

test('recipients.dovecot: Dovecot gone, or not answering in time, is 451 4.3.0 (in doubt, the sender retries)', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-userdb-'));
  const silentSocket = path.join(dir, 'auth-userdb');
  // Accepts and never answers, as a Dovecot stuck on its userdb would.
  const held: import('node:net').Socket[] = [];
  const silent = createServer((s) => held.push(s));
  await new Promise<void>((r) => silent.listen(silentSocket, r));
  t.after(() => {
    held.forEach((s) => s.destroy());
    silent.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const down = await startServer(t, { config: { recipients: { dovecot: { socket: '/nonexistent/auth-userdb' } } } });
  await rcpts(down.port('mx'), [['dana@example.org', '451 4.3.0']]);
  const line = await down.waitForLog((l) => l.event === 'deferred' && l.to === 'dana@example.org');
  assert.match(String(line.reason), /\/nonexistent\/auth-userdb.*recipients\.dovecot\.socket/);

  const slow = await startServer(t, { config: { recipients: { dovecot: { socket: silentSocket, timeout: 200 } } } });
  await rcpts(slow.port('mx'), [['dana@example.org', '451 4.3.0']]);
  const late = await slow.waitForLog((l) => l.event === 'deferred' && l.to === 'dana@example.org');
  assert.match(String(late.reason), /within 200 ms/);
});
