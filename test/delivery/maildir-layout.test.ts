// Maildir delivery where Dovecot expects it: a path template (/var/vmail/%d/%n/Maildir) and the
// vmail owner and group on every folder and file. Owner changes need root: run as another user,
// the test checks the template alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { startServer, readMaildir } from '../harness/server.ts';
import { dial } from '../harness/dial.ts';
import { buildConfig } from '../../src/config/load.ts';
import { parseMaildirTemplate } from '../../src/core/maildir-template.ts';

const root = userInfo().uid === 0;

async function send(port: number, rcpt: string): Promise<void> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO sender.example.com').expect('250');
  await c.say('MAIL FROM:<someone@example.com>').expect('250');
  await c.say(`RCPT TO:<${rcpt}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(`From: <someone@example.com>\r\nSubject: vmail\r\n\r\nhello\r\n.\r\n`);
  await c.expect('250 2.0.0');
  await c.say('QUIT').expect('221');
}

test('maildir: the path template names the folder, lower-cased, owned by the vmail user when we can give it away', async (t) => {
  const vmail = mkdtempSync(path.join(tmpdir(), 'mailward-vmail-'));
  t.after(() => rmSync(vmail, { recursive: true, force: true }));
  const srv = await startServer(t, {
    users: [['alice@example.org', 'x']],
    config: { delivery: { local: { maildir: { path: `${vmail}/%d/%n/Maildir`, ...(root ? { owner: 'nobody', group: 'nogroup' } : {}) } } } },
  });
  await send(srv.port('mx'), 'Alice@Example.ORG');
  const dir = path.join(vmail, 'example.org', 'alice', 'Maildir');
  for (const deadline = Date.now() + 60_000; readMaildir(dir).length === 0; ) {
    if (Date.now() > deadline) throw new Error(`no mail in ${dir}`);
    await srv.waitForLog((l) => l.event === 'delivered', 60_000);
  }
  assert.equal(readMaildir(dir).length, 1);
  assert.equal(srv.mailbox('alice@example.org').length, 0, 'nothing under dataDir/mail');
  if (!root) {
    t.diagnostic('not root: owner change not tested');
    return;
  }
  const file = path.join(dir, 'new', readdirSync(path.join(dir, 'new'))[0]!);
  for (const p of [path.join(vmail, 'example.org'), path.dirname(dir), dir, path.join(dir, 'new'), path.join(dir, 'tmp'), path.join(dir, 'cur'), file]) {
    const st = statSync(p);
    assert.deepEqual([st.uid, st.gid], [65534, 65534], `${p} belongs to nobody:nogroup`);
  }
  assert.equal(statSync(file).mode & 0o777, 0o600);
});

test('maildir: lowercase "domain" keeps the local part as written', async (t) => {
  const vmail = mkdtempSync(path.join(tmpdir(), 'mailward-vmail-'));
  t.after(() => rmSync(vmail, { recursive: true, force: true }));
  const srv = await startServer(t, {
    users: [['alice@example.org', 'x']],
    config: { delivery: { local: { maildir: { path: `${vmail}/%u`, lowercase: 'domain' } } } },
  });
  await send(srv.port('mx'), 'Alice@Example.ORG');
  await srv.waitForLog((l) => l.event === 'delivered');
  // The directory gives the canonical mailbox (alice@example.org); its case is kept.
  assert.deepEqual(readdirSync(vmail), ['alice@example.org']);
  assert.equal(readMaildir(path.join(vmail, 'alice@example.org')).length, 1);
});

test('maildir: a template that cannot name one folder per mailbox is a config error naming the fix', () => {
  assert.match(parseMaildirTemplate('/var/vmail/%d/Maildir').error ?? '', /names no mailbox/);
  assert.match(parseMaildirTemplate('/var/vmail/%n.bak').error ?? '', /whole folder name/);
  assert.match(parseMaildirTemplate('/var/vmail/%x/%n').error ?? '', /not a template variable/);
  assert.throws(() => buildConfig({ delivery: { local: { maildir: { path: '/var/vmail/%d' } } } }, 'test.yaml', '/tmp'), /delivery\.local\.maildir\.path.*names no mailbox.*Fix: write a path such as/s);
  assert.throws(() => buildConfig({ delivery: { local: { transport: 'lmtp' } } }, 'test.yaml', '/tmp'), /delivery\.local\.lmtp.*no LMTP server.*Fix: set delivery\.local\.lmtp\.address/s);
  assert.throws(() => buildConfig({ delivery: { local: { transport: 'lmtp', lmtp: { address: 'lmtp:/run/x' } } } }, 'test.yaml', '/tmp'), /delivery\.local\.lmtp\.address.*not an LMTP address/s);
});
