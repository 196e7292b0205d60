// Each RCPT asks the mailbox directory once: the recipient check, the outbound guard and the
// session's routing share the answer (bench/results/profile.md found each recipient looked up
// twice). Counted on the real SQLite directory through /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../harness/server.ts';
import { dial } from '../harness/dial.ts';

const counter = (text: string, name: string): number => {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in\n${text}`);
  return Number(m[1]);
};

test('recipient lookup: one directory lookup per RCPT, shared by the checks and routing; mail still reaches the mailbox', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-rcpt-lookup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const token = 'a-long-random-admin-token-0123456789';
  writeFileSync(path.join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  const srv = await startServer(t, {
    users: [['alice@example.org', 'correct horse battery']],
    aliases: [['team@example.org', ['alice@example.org']]],
    config: { admin: { enabled: true, port: 0, tokenFile: path.join(dir, 'token') } },
  });
  const lookups = async (): Promise<number> =>
    counter(await (await fetch(`http://127.0.0.1:${srv.server.adminPort()}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text(), 'mailward_directory_lookups_total');

  const before = await lookups();
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('MAIL FROM:<someone@example.net>').expect('250');
  await c.say('RCPT TO:<alice@example.org>').expect('250');
  await c.say('RCPT TO:<team@example.org>').expect('250');
  await c.say('RCPT TO:<ghost@example.org>').expect('550 5.1.1');
  // Three RCPTs of a local domain, three lookups (the recipient check, the outbound guard and
  // routing each asked their own before).
  assert.equal((await lookups()) - before, 3);
  await c.say('DATA').expect('354');
  c.send('From: <someone@example.net>\r\nTo: <team@example.org>\r\nSubject: once\r\n\r\nhello\r\n.\r\n');
  await c.expect('250 2.0.0');
  await c.say('QUIT').expect('221');
  const mail = await srv.waitForMail('alice@example.org', 1);
  assert.equal(mail.length, 1, 'alice and team@ are one mailbox: one copy');
  assert.match(mail[0] ?? '', /Subject: once/);
});
