// End to end over loopback: a real client speaks SMTP to a real server, and the message lands
// in a real Maildir with its trace headers. Also the basic refusals: unknown users, relaying.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { dial } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';
import { authPlain } from '../harness/auth.ts';

const users: Array<[string, string]> = [
  ['alice@example.org', 'correct horse battery'],
  ['bob@example.org', 'hunter2hunter2'],
];

test('e2e: a plain dialogue delivers to the Maildir with Return-Path, Delivered-To and Received', async (t) => {
  const srv = await startServer(t, { users });
  const c = await dial(srv.port('mx'));
  await c.expect('220 mx.example.org ESMTP');
  const ehlo = await c.say('EHLO client.example.net').expect('250-mx.example.org');
  for (const ext of ['PIPELINING', 'SIZE 26214400', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'CHUNKING', 'STARTTLS']) {
    assert.ok(ehlo.text.split('\n').includes(ext), `EHLO lists ${ext}: ${ehlo.text}`);
  }
  assert.ok(!/AUTH/.test(ehlo.text), 'no AUTH on the MX port');
  await c.say('MAIL FROM:<sender@example.net>').expect('250 2.1.0');
  await c.say('RCPT TO:<Alice@Example.ORG>').expect('250 2.1.5');
  await c.say('DATA').expect('354');
  c.send('Subject: hello\r\nFrom: sender@example.net\r\n\r\nHi Alice.\r\n..leading dot\r\n.\r\n');
  const done = await c.expect('250 2.0.0 Ok: queued as ');
  const queueId = done.text.split(' ').pop()!;
  await c.say('QUIT').expect('221');
  const [msg] = await srv.waitForMail('alice@example.org');
  assert.ok(msg);
  const lines = msg.split('\r\n');
  assert.equal(lines[0], 'Return-Path: <sender@example.net>');
  assert.equal(lines[1], 'Delivered-To: alice@example.org');
  // The content filter of the default pipeline tags the message above our Received header.
  assert.match(lines[2]!, /^X-Spam-Score: -?\d+\.\d$/);
  assert.match(lines[3]!, /^X-Spam-Status: No, score=/);
  const received = lines.findIndex((l) => l.startsWith('Received: '));
  assert.match(lines[received]!, /^Received: from client\.example\.net \(\[127\.0\.0\.1\]\)$/);
  assert.ok(lines.slice(2, received).every((l) => /^(X-Spam-|\t| )/.test(l)), 'only our X-Spam fields above Received');
  assert.match(msg, new RegExp(`by mx\\.example\\.org \\(Mailward\\) with ESMTP id ${queueId}\r\n\tfor <Alice@example\\.org>; `));
  assert.ok(msg.endsWith('Subject: hello\r\nFrom: sender@example.net\r\n\r\nHi Alice.\r\n.leading dot\r\n'), JSON.stringify(msg.slice(-80)));
  const queued = await srv.waitForLog((l) => l.event === 'queued');
  assert.equal(queued.queueId, queueId);
  assert.equal(queued.client, '127.0.0.1');
  await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === queueId);
});

test('e2e: unknown local recipient → 550 5.1.1; foreign domain from loopback → 554 5.7.1', async (t) => {
  const srv = await startServer(t, { users });
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO tunnel').expect('250');
  await c.say('MAIL FROM:<x@example.org>').expect('553 5.7.1');
  await c.say('MAIL FROM:<x@example.net>').expect('250');
  await c.say('RCPT TO:<nobody@example.org>').expect('550 5.1.1');
  await c.say('RCPT TO:<victim@example.net>').expect('554 5.7.1 Relay access denied');
  await c.say('RCPT TO:<alice%victim.example.net@example.org>').expect('550 5.1.1');
  await c.say('RCPT TO:<@example.org:victim@example.net>').expect('554 5.7.1');
  await c.say('RCPT TO:<victim@[192.0.2.7]>').expect('554 5.7.1');
  await c.say('DATA').expect('554 5.5.1');
  const r = await srv.waitForLog((l) => l.event === 'rejected' && l.check === 'relay');
  assert.equal(r.client, '127.0.0.1');
  assert.equal(r.to, 'victim@example.net');
  const u = await srv.waitForLog((l) => l.event === 'rejected' && l.check === 'recipient');
  assert.equal(u.to, 'nobody@example.org');
  c.close();
});

test('e2e: pipelined transaction in one write, RSET, NOOP, VRFY, HELP', async (t) => {
  const srv = await startServer(t, { users });
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  c.send('EHLO p.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n');
  await c.expect('250-');
  await c.expect('250 2.1.0');
  await c.expect('550 5.1.1');
  await c.expect('250 2.1.5');
  await c.expect('354');
  c.send('Subject: piped\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nVRFY bob\r\nHELP\r\nMAIL FROM:<a@example.net>\r\nRSET\r\nRCPT TO:<bob@example.org>\r\nQUIT\r\n');
  await c.expect('250 2.0.0 Ok: queued as');
  await c.expect('250');
  await c.expect('250');
  await c.expect('252');
  await c.expect('214');
  await c.expect('250');
  await c.expect('250');
  await c.expect('503');
  await c.expect('221');
  const [m] = await srv.waitForMail('bob@example.org');
  assert.match(m!, /Subject: piped\r\n\r\nbody\r\n$/);
});

test('e2e: nodemailer sends a 3 MB message with 8BITMIME and an SMTPUTF8 sender', async (t) => {
  const srv = await startServer(t, { users });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.port('mx'), secure: false, tls: { rejectUnauthorized: false } });
  t.after(() => transport.close());
  const big = 'Grüße aus Köln — ünïcödé. '.repeat(120_000);
  const info = await transport.sendMail({
    envelope: { from: 'jörg@exämple.net', to: ['alice@example.org'] },
    from: 'jörg@exämple.net',
    to: 'alice@example.org',
    subject: 'große Nachricht',
    text: big,
    textEncoding: 'base64',
  });
  assert.deepEqual(info.accepted, ['alice@example.org']);
  const [m] = await srv.waitForMail('alice@example.org', 1, 15_000);
  assert.ok(m!.length > 3_000_000, `size ${m!.length}`);
  assert.ok(m!.startsWith('Return-Path: <jörg@xn--exmple-cua.net>\r\n'), m!.slice(0, 80));
  const body64 = m!.split('\r\n\r\n').slice(1).join('\r\n\r\n').replace(/\r\n/g, '');
  assert.equal(Buffer.from(body64, 'base64').toString('utf8'), big);
  assert.match(m!, /with UTF8SMTPS id /, "nodemailer upgraded to TLS by itself");
});

test('e2e: 8-bit body passes through unchanged', async (t) => {
  const srv = await startServer(t, { users });
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO x').expect('250');
  await c.say('MAIL FROM:<a@example.net> BODY=8BITMIME').expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send(Buffer.from('Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄÖÜ 日本語\r\n.\r\n', 'utf8'));
  await c.expect('250');
  const [m] = await srv.waitForMail('bob@example.org');
  assert.ok(m!.endsWith('\r\n\r\nÄÖÜ 日本語\r\n'));
  c.close();
});

test('e2e: aliases fan out, subaddresses reach the mailbox, each mailbox gets one copy', async (t) => {
  const srv = await startServer(t, { users, aliases: [['team@example.org', ['alice@example.org', 'bob@example.org']]] });
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO x').expect('250');
  await c.say('MAIL FROM:<a@example.net>').expect('250');
  await c.say('RCPT TO:<team@example.org>').expect('250');
  await c.say('RCPT TO:<alice+lists@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('Subject: fan\r\n\r\nx\r\n.\r\n');
  await c.expect('250');
  await srv.waitForMail('alice@example.org');
  await srv.waitForMail('bob@example.org');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(srv.mailbox('alice@example.org').length, 1);
  assert.equal(srv.mailbox('bob@example.org').length, 1);
  c.close();
});

test('e2e: submission needs STARTTLS then AUTH; a login may relay, AUTH fails with a bad password', async (t) => {
  const srv = await startServer(t, { users });
  const c = await dial(srv.port('submission'));
  await c.expect('220');
  const plain = await c.say('EHLO laptop').expect('250');
  assert.ok(!/AUTH/.test(plain.text), 'AUTH is not offered before TLS');
  await c.say('MAIL FROM:<alice@example.org>').expect('530 5.7.0');
  await c.say(authPlain('alice@example.org', 'correct horse battery')).expect(/^5(03|38)/);
  await c.say('STARTTLS').expect('220');
  await c.startTls();
  const secure = await c.say('EHLO laptop').expect('250');
  assert.ok(/AUTH PLAIN LOGIN/.test(secure.text), secure.text);
  await c.say('MAIL FROM:<alice@example.org>').expect('530 5.7.0');
  await c.say(authPlain('alice@example.org', 'wrong')).expect('535 5.7.8');
  await c.say(authPlain('alice@example.org', 'correct horse battery')).expect('235');
  await c.say('MAIL FROM:<alice@example.org>').expect('250');
  await c.say('RCPT TO:<friend@example.net>').expect('250');
  await c.say('DATA').expect('354');
  c.send('Subject: out\r\n\r\nx\r\n.\r\n');
  const r = await c.expect('250');
  const id = r.text.split(' ').pop();
  const q = await srv.waitForLog((l) => l.event === 'queued' && l.queueId === id);
  assert.equal(q.relay, 'login:alice@example.org');
  assert.equal(q.login, 'alice@example.org');
  const fail = srv.logs.find((l) => l.event === 'auth' && l.result === 'failure');
  assert.ok(fail);
  assert.ok(!JSON.stringify(srv.logs).includes('correct horse battery'), 'passwords never reach the log');
  c.close();
});

test('e2e: submissions speaks TLS from the first byte', async (t) => {
  const srv = await startServer(t, { users });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.port('submissions'), secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'bob@example.org', pass: 'hunter2hunter2' } });
  t.after(() => transport.close());
  const info = await transport.sendMail({ from: 'bob@example.org', to: 'alice@example.org', subject: 'tls', text: 'over TLS' });
  assert.deepEqual(info.accepted, ['alice@example.org']);
  const [m] = await srv.waitForMail('alice@example.org');
  assert.match(m!, /with ESMTPSA id /);
  assert.match(m!, /\(using TLSv1\.3/);
});
