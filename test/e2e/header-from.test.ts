// A login's header From (and Sender, Resent-From, Resent-Sender) is read strictly and must be
// the login's own: table-driven, each case a real message through submissions (implicit TLS,
// AUTH PLAIN) on loopback with the reply code it must get. RFC 5322 §3.6.2, RFC 2047.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial, type Dialog } from '../harness/dial.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { authPlain } from '../harness/auth.ts';

const USERS: Array<[string, string]> = [
  ['alice@example.org', 'alice password 1'],
  ['bob@example.org', 'bob password 12'],
];
const plain = authPlain;

interface Case {
  readonly name: string;
  /** Header lines (CRLF-joined) put before Subject. */
  readonly head: string;
  readonly code: 250 | 550 | 553;
  readonly mailFrom?: string;
}

// 70 KB of harmless fields: more than the head the session keeps for checks.
const FILLER = Array.from({ length: 1000 }, (_, i) => `X-Filler-${i}: ${'x'.repeat(60)}`).join('\r\n');

const CASES: Case[] = [
  // What mail clients send.
  { name: 'bare address', head: 'From: alice@example.org', code: 250 },
  { name: 'display name', head: 'From: Alice <alice@example.org>', code: 250 },
  { name: 'quoted display name', head: 'From: "Alice A., Sales" <alice@example.org>', code: 250 },
  { name: 'old-style comment name', head: 'From: alice@example.org (Alice)', code: 250 },
  { name: 'unquoted dot in the name (obs-phrase)', head: 'From: John Q. Public <alice@example.org>', code: 250 },
  { name: 'encoded-word name', head: 'From: =?utf-8?q?Al=C3=AFce?= <alice@example.org>', code: 250 },
  { name: 'folded field', head: 'From: "Alice"\r\n <alice@example.org>', code: 250 },
  { name: 'name that is the same address', head: 'From: "alice@example.org" <alice@example.org>', code: 250 },
  { name: 'other case', head: 'From: Alice <ALICE@Example.ORG>', code: 250 },
  { name: 'name that is the same address in other case', head: 'From: "ALICE@example.org" <alice@Example.org>', code: 250 },
  { name: 'own alias', head: 'From: Sales <sales@example.org>', code: 250 },
  { name: 'own +tag', head: 'From: <alice+lists@example.org>', code: 250, mailFrom: 'alice+lists@example.org' },
  { name: "own alias's +tag", head: 'From: <sales+x@example.org>', code: 250 },
  { name: 'several own mailboxes with Sender', head: 'From: Alice <alice@example.org>, Sales <sales@example.org>\r\nSender: alice@example.org', code: 250 },
  { name: 'own Sender', head: 'From: alice@example.org\r\nSender: Alice <alice@example.org>', code: 250 },
  { name: 'own Resent-From', head: 'From: alice@example.org\r\nResent-From: alice@example.org', code: 250 },
  // Two addresses made to look like one.
  { name: 'two angle addresses', head: 'From: <alice@example.org> <bob@evil.test>', code: 550 },
  { name: 'address after the angle address', head: 'From: "x" <alice@example.org>bob@evil.test', code: 550 },
  { name: 'address before the angle address', head: 'From: bob@evil.test <alice@example.org>', code: 550 },
  { name: 'angle address then own', head: 'From: <bob@evil.test>alice@example.org', code: 550 },
  { name: 'list with a foreign member', head: 'From: alice@example.org, bob@evil.test\r\nSender: alice@example.org', code: 550 },
  { name: "list with another user's", head: 'From: Alice <alice@example.org>, Bob <bob@example.org>\r\nSender: alice@example.org', code: 550 },
  { name: 'several mailboxes without Sender', head: 'From: Alice <alice@example.org>, Sales <sales@example.org>', code: 550 },
  { name: 'several mailboxes, Sender not the login', head: 'From: alice@example.org, sales@example.org\r\nSender: bob@example.org', code: 550 },
  { name: 'Sender with two mailboxes', head: 'From: alice@example.org, sales@example.org\r\nSender: alice@example.org, sales@example.org', code: 550 },
  { name: 'two From fields', head: 'From: alice@example.org\r\nFrom: bob@evil.test', code: 550 },
  { name: 'foreign Sender', head: 'From: alice@example.org\r\nSender: bob@evil.test', code: 550 },
  { name: 'empty list member', head: 'From: alice@example.org,', code: 550 },
  { name: 'empty From', head: 'From: ', code: 550 },
  // Group syntax (not allowed in From at all).
  { name: 'group of own address', head: 'From: friends: alice@example.org;', code: 550 },
  { name: 'empty group', head: 'From: undisclosed-recipients:;', code: 550 },
  { name: 'group named like own address', head: 'From: alice@example.org: bob@evil.test;', code: 550 },
  { name: 'source route', head: 'From: <@evil.test:alice@example.org>', code: 550 },
  // Addresses hidden in what a reader displays.
  { name: 'comment with a foreign address', head: 'From: alice@example.org (bob@evil.test)', code: 550 },
  { name: 'comment with spaced address', head: 'From: Alice <alice@example.org> (bob @ evil.test)', code: 550 },
  { name: 'display name is a foreign address', head: 'From: "bob@evil.test" <alice@example.org>', code: 550 },
  { name: "display name is another user's address", head: 'From: "bob@example.org" <alice@example.org>', code: 550 },
  { name: 'display name is an own alias but not the mailbox', head: 'From: "sales@example.org" <alice@example.org>', code: 550 },
  { name: 'encoded word (Q) decoding to an address', head: 'From: =?utf-8?q?bob=40evil.test?= <alice@example.org>', code: 550 },
  { name: 'encoded word (B) in quotes decoding to an address', head: 'From: "=?utf-8?b?Ym9iQGV2aWwudGVzdA==?=" <alice@example.org>', code: 550 },
  { name: 'encoded word in a comment', head: 'From: alice@example.org (=?utf-8?q?bob=40evil.test?=)', code: 550 },
  { name: 'full-width at sign', head: 'From: "bob\uff20evil.test" <alice@example.org>', code: 550 },
  { name: 'bidi override in the name', head: 'From: "\u202etset.live@bob" <alice@example.org>', code: 550 },
  { name: 'control character in the name', head: 'From: "a\x01b" <alice@example.org>', code: 550 },
  { name: 'unknown charset (cannot be checked)', head: 'From: =?x-unknown?q?bob?= <alice@example.org>', code: 550 },
  { name: 'quoted local part holding an @', head: 'From: <"bob@evil.test"@example.org>', code: 550 },
  { name: 'percent hack', head: 'From: <bob%evil.test@example.org>', code: 550 },
  // Plainly foreign or another user's.
  { name: 'foreign address', head: 'From: Bob <bob@evil.test>', code: 550 },
  { name: "another user's address", head: 'From: bob@example.org', code: 550 },
  { name: "another user's +tag", head: 'From: <bob+x@example.org>', code: 550 },
  { name: 'look-alike with delimiter at the start', head: 'From: <+alice@example.org>', code: 550 },
  { name: 'foreign Resent-From', head: 'From: alice@example.org\r\nResent-From: bob@evil.test', code: 550 },
  { name: 'Resent-From list without Resent-Sender', head: 'From: alice@example.org\r\nResent-From: alice@example.org, sales@example.org', code: 550 },
  { name: 'foreign Resent-Sender', head: 'From: alice@example.org\r\nResent-From: alice@example.org\r\nResent-Sender: bob@evil.test', code: 550 },
  // Past the head kept for checks.
  { name: 'second From after 70 KB of fields', head: `From: alice@example.org\r\n${FILLER}\r\nFrom: bob@evil.test`, code: 550 },
  { name: 'only From after 70 KB of fields', head: `${FILLER}\r\nFrom: bob@evil.test`, code: 550 },
  { name: 'own From after 70 KB of fields', head: `${FILLER}\r\nFrom: alice@example.org`, code: 250 },
  // The envelope sender.
  { name: 'envelope: own +tag', head: 'From: alice@example.org', code: 250, mailFrom: 'alice+tag@example.org' },
  { name: "envelope: another user's +tag", head: 'From: alice@example.org', code: 553, mailFrom: 'bob+tag@example.org' },
];

async function login(srv: TestServer): Promise<Dialog> {
  const c = await dial(srv.port('submissions'), { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop.example.org').expect('250');
  await c.say(plain(USERS[0]![0], USERS[0]![1])).expect('235');
  return c;
}

/** Sends one message; returns the reply code of MAIL (when refused) or of the end of DATA. */
async function send(c: Dialog, head: string, mailFrom = 'alice@example.org', subject = 'case'): Promise<number> {
  const m = await c.say(`MAIL FROM:<${mailFrom}> BODY=8BITMIME`).read();
  if (m.code !== 250) return m.code;
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send(Buffer.from(`${head}${head ? '\r\n' : ''}Subject: ${subject}\r\n\r\nbody\r\n.\r\n`, 'utf8'));
  return (await c.read()).code;
}

test('sender-login: header From, Sender and Resent-* are read strictly; each case gets its reply', async (t) => {
  const srv = await startServer(t, { users: USERS, aliases: [['sales@example.org', ['alice@example.org']]] });
  const c = await login(srv);
  const wrong: string[] = [];
  for (const k of CASES) {
    const code = await send(c, k.head, k.mailFrom);
    if (code !== k.code) wrong.push(`${k.name}: got ${code}, expected ${k.code}`);
  }
  c.close();
  assert.deepEqual(wrong, []);
  // Every refusal names the login and why, in the log.
  const refused = srv.logs.filter((l) => l.event === 'rejected' && l.check === 'sender-login' && l.stage === 'data');
  assert.equal(refused.length, CASES.filter((k) => k.code === 550).length);
  assert.ok(refused.every((l) => String(l.reason).startsWith('login alice@example.org ')));
  assert.ok(refused.some((l) => /shows another address \(bob@evil\.test\)/.test(String(l.reason))));
});

test("sender-login: a login's message without From gets From: <login>; a stranger's is not touched", async (t) => {
  const srv = await startServer(t, { users: USERS });
  const c = await login(srv);
  assert.equal(await send(c, '', 'alice@example.org', 'no from'), 250);
  c.close();
  const [msg] = await srv.waitForMail('bob@example.org');
  const head = msg!.slice(0, msg!.indexOf('\r\n\r\n'));
  assert.deepEqual(head.split('\r\n').filter((l) => /^from:/i.test(l)), ['From: alice@example.org']);
  // Mail from another server on the MX port is delivered as it came.
  const mx = await dial(srv.port('mx'));
  await mx.expect('220');
  await mx.say('EHLO mta.example.net').expect('250');
  assert.equal(await send(mx, '', 'someone@example.net', 'stranger'), 250);
  mx.close();
  const box = await srv.waitForMail('bob@example.org', 2);
  const stranger = box.find((m) => m.includes('\r\nSubject: stranger\r\n'))!;
  assert.equal(/^from:/im.test(stranger.slice(0, stranger.indexOf('\r\n\r\n'))), false);
});

test('sender-login: the same rule over BDAT (RFC 3030), the field split across chunks', async (t) => {
  const srv = await startServer(t, { users: USERS });
  const c = await login(srv);
  for (const [head, code] of [['From: <alice@example.org> <bob@evil.test>', '550'], ['From: "Alice" <alice@example.org>', '250']] as const) {
    await c.say('MAIL FROM:<alice@example.org>').expect('250');
    await c.say('RCPT TO:<bob@example.org>').expect('250');
    const msg = `${head}\r\nSubject: bdat\r\n\r\nbody\r\n`;
    const cut = 12;
    c.send(`BDAT ${cut}\r\n${msg.slice(0, cut)}`);
    await c.expect('250');
    c.send(`BDAT ${Buffer.byteLength(msg) - cut} LAST\r\n${msg.slice(cut)}`);
    await c.expect(code);
  }
  c.close();
});

test('sender-login: without recipientDelimiter a +tag is a different address', async (t) => {
  const srv = await startServer(t, { users: USERS, config: { recipientDelimiter: '' } });
  const c = await login(srv);
  assert.equal(await send(c, 'From: alice@example.org', 'alice+tag@example.org'), 553);
  assert.equal(await send(c, 'From: <alice+tag@example.org>'), 550);
  assert.equal(await send(c, 'From: alice@example.org'), 250);
  c.close();
});
