// An alias that forwards outside sends outbound mail on a stranger's behalf: the queue entry says
// so (relay reason `forward:<alias>`), and when the next hop refuses it no bounce goes to the
// stranger's unverified — possibly forged — sender (backscatter through our smarthost).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import { reply } from '../../src/core/reply.ts';
import { startServer } from '../harness/server.ts';
import { startDns } from '../harness/dns.ts';
import { dial } from '../harness/dial.ts';
import { startSink } from '../delivery/sink.ts';

/** One message over SMTP; `refused` recipients are tried first and must be refused as relaying. Returns the queue id. */
async function sendMail(port: number, m: { helo: string; from: string; to: string[]; refused?: string[]; headers?: string }): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say(`EHLO ${m.helo}`).expect('250');
  await c.say(`MAIL FROM:<${m.from}>`).expect('250');
  for (const r of m.refused ?? []) await c.say(`RCPT TO:<${r}>`).expect('554 5.7.1');
  for (const r of m.to) await c.say(`RCPT TO:<${r}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(`From: <${m.from}>\r\nTo: <${m.to[0]}>\r\nSubject: forwarded\r\n${m.headers ?? ''}\r\nhello\r\n.\r\n`);
  const r = await c.expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
  return r.text.split(' ').pop()!;
}

test('forward: a stranger\'s mail to an alias that forwards outside carries forward:<alias>, and a refusal bounces to nobody', async (t) => {
  const sink = await startSink(t, { rcpt: () => reply(550, '5.7.1', 'Sender not verified') });
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const srv = await startServer(t, {
    users: [['alice@example.org', 'correct horse battery']],
    aliases: [['fwd@example.org', ['someone@example.net', 'alice@example.org']]],
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  // The stranger's direct attempt to relay is refused; through the alias it is taken.
  const id = await sendMail(srv.port('mx'), { helo: 'stranger.example.com', from: 'victim@example.com', to: ['fwd@example.org'], refused: ['someone@example.net'] });

  const queued = await srv.waitForLog((l) => l.event === 'queued' && l.queueId === id);
  assert.ok(queued, 'the message is queued');
  const suppressed = await srv.waitForLog((l) => l.event === 'bounce-suppressed' && l.queueId === id);
  assert.equal(suppressed.reason, 'forwarded mail from an unverified sender');
  assert.ok(sink.rcpts.some((x) => x.address === 'someone@example.net'), 'the forward was tried at the next hop');
  // The local copy was delivered; no notice was queued to the stranger's address.
  await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id && l.transport === 'local');
  await srv.waitForLog((l) => l.event === 'bounced' && l.queueId === id && l.transport === 'remote');
  assert.ok(!srv.logs.some((l) => l.event === 'bounce-queued' && l.original === id), 'no bounce was queued');
  assert.equal(queued.relay, 'forward:fwd@example.org', 'the queued line names the alias that sends it out');
});

test('forward: a refusal of forwarded mail bounces to a sender whose own domain passed SPF', async (t) => {
  // The next hop refuses only the forwarded copy; the notice to the verified sender is taken.
  const sink = await startSink(t, { rcpt: (a) => (a === 'someone@example.net' ? reply(550, '5.7.1', 'Sender not verified') : undefined) });
  const dns = await startDns(t, {
    'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } },
    // The sender's domain publishes SPF that names the loopback client.
    'example.com': { MX: ['10 mx.example.com.'], TXT: ['v=spf1 ip4:127.0.0.1 -all'], names: { mx: { A: ['127.0.0.1'] } } },
  });
  const srv = await startServer(t, {
    aliases: [['fwd@example.org', ['someone@example.net']]],
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      pipeline: { mail: ['sender-login', 'spf'] },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  const id = await sendMail(srv.port('mx'), { helo: 'mail.example.com', from: 'real@example.com', to: ['fwd@example.org'] });

  await srv.waitForLog((l) => l.event === 'bounced' && l.queueId === id && l.transport === 'remote');
  // The notice is queued with the null sender and reaches the sender's MX.
  const notice = await srv.waitForLog((l) => l.event === 'bounce-queued' && l.original === id);
  assert.equal(notice.to, 'real@example.com');
  const [sent] = await sink.waitForMessages(1);
  assert.equal(sent!.from, '');
  assert.deepEqual(sent!.rcpts, ['real@example.com']);
  assert.ok(!srv.logs.some((l) => l.event === 'bounce-suppressed' && l.queueId === id), 'the notice was not suppressed');
});

test('forward: the outside copy leaves with an SRS sender, a bounce to it goes back to the original sender, a forged one gets 550', async (t) => {
  const sink = await startSink(t);
  const dns = await startDns(t, {
    'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } },
    'example.com': { MX: ['10 mx.example.com.'], names: { mx: { A: ['127.0.0.1'] } } },
  });
  const srv = await startServer(t, {
    users: [['alice@example.org', 'correct horse battery']],
    aliases: [['fwd@example.org', ['someone@example.net', 'alice@example.org']]],
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  const id = await sendMail(srv.port('mx'), { helo: 'mail.example.com', from: 'real@example.com', to: ['fwd@example.org'] });
  const [out] = await sink.waitForMessages(1);
  assert.match(out!.from, /^SRS0=[A-Za-z0-9_-]{4}=[A-Z2-7]{2}=example\.com=real@example\.org$/, 'the next hop sees an SRS sender in our domain');
  assert.deepEqual(out!.rcpts, ['someone@example.net']);
  // The local copy keeps the original sender.
  const [local] = await srv.waitForMail('alice@example.org');
  assert.match(local!, /^Return-Path: <real@example\.com>/m);
  await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id && l.transport === 'local');
  // The key file was made on first use, readable by its owner only.
  assert.equal(statSync(path.join(srv.dataDir, 'srs-keys')).mode & 0o777, 0o600);

  // The next hop's later bounce, to the SRS address, goes back to the original sender's MX.
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO mx.example.net').expect('250');
  await c.say('MAIL FROM:<>').expect('250');
  await c.say(`RCPT TO:<${out!.from}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send('From: MAILER-DAEMON@mx.example.net\r\nTo: <real@example.com>\r\nSubject: Undelivered\r\n\r\nyour mail bounced\r\n.\r\n');
  const r = await c.expect('250 2.0.0 Ok: queued as ');
  const bounceId = r.text.split(' ').pop()!;
  // A forged SRS address (a hash we never made) is refused, with the detail in the log.
  const forged = out!.from.replace(/^SRS0=..../, 'SRS0=AAAA');
  await c.say('MAIL FROM:<>').expect('250');
  await c.say(`RCPT TO:<${forged}>`).expect('550 5.1.1');
  // A valid one with a sender is no bounce: refused too.
  await c.say('RSET').expect('250');
  await c.say('MAIL FROM:<spammer@example.net>').expect('250');
  await c.say(`RCPT TO:<${out!.from}>`).expect('550 5.7.1');
  await c.say('QUIT').expect('221');

  const queued = await srv.waitForLog((l) => l.event === 'queued' && l.queueId === bounceId);
  assert.equal(queued.relay, 'srs:example.org');
  const [back] = (await sink.waitForMessages(2)).slice(1);
  assert.equal(back!.from, '');
  assert.deepEqual(back!.rcpts, ['real@example.com'], 'the bounce reaches the original sender');
  const refused = srv.logs.find((l) => l.event === 'rejected' && l.check === 'srs' && l.to === forged);
  assert.equal(refused?.reason, 'SRS0 hash invalid');
  assert.ok(srv.logs.some((l) => l.event === 'rejected' && l.check === 'srs' && String(l.reason).includes('only the null sender')));
});

test('forward: a stranger\'s spam is not forwarded outside (local copies kept); spam only for forwards is refused at DATA', async (t) => {
  const sink = await startSink(t);
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const srv = await startServer(t, {
    users: [['alice@example.org', 'correct horse battery']],
    aliases: [
      ['fwd@example.org', ['someone@example.net', 'alice@example.org']],
      ['out@example.org', ['someone@example.net']],
    ],
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      pipeline: { data: ['spam'] },
      // A message from a stranger with no Date or Message-ID scores about 1: spam at 0.5 here.
      checks: { spam: { spam: 0.5, kill: 50, autolearn: false, workers: 0 } },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  const id = await sendMail(srv.port('mx'), { helo: 'stranger.example.com', from: 'promo@example.com', to: ['fwd@example.org'] });
  const withheld = await srv.waitForLog((l) => l.event === 'forward-withheld' && l.queueId === id);
  assert.equal(withheld.reason, 'spam');
  assert.deepEqual(withheld.forwards, ['fwd@example.org->someone@example.net']);
  await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id && l.transport === 'local');
  assert.equal(srv.logs.some((l) => l.queueId === id && l.transport === 'remote'), false, 'no outside delivery was tried');

  // Every recipient a forward: refused before the 250, so nothing of ours can bounce.
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO stranger.example.com').expect('250');
  await c.say('MAIL FROM:<promo@example.com>').expect('250');
  await c.say('RCPT TO:<out@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('From: <promo@example.com>\r\nTo: <out@example.org>\r\nSubject: deals\r\n\r\nbuy now\r\n.\r\n');
  await c.expect('550 5.7.1');
  await c.say('QUIT').expect('221');
  const rejected = await srv.waitForLog((l) => l.event === 'rejected' && l.check === 'forwarding.junk');
  assert.equal(rejected.reason, 'spam');
  assert.equal(sink.rcpts.length, 0, 'the next hop saw nothing');
});

test('forward: the outbound guard counts a stranger\'s mail through a forwarding alias under forward:<alias>, and its breaker trips', async (t) => {
  const sink = await startSink(t);
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const srv = await startServer(t, {
    users: [['alice@example.org', 'correct horse battery']],
    aliases: [['fwd@example.org', ['someone@example.net']]],
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      // A new source's budget is `minimum` relayed recipients an hour: the fourth forward trips it.
      checks: { 'outbound-guard': { baseline: { sources: ['sender'], minimum: 3 }, domains: { enabled: false }, alerts: { postmaster: false } } },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  for (let i = 0; i < 4; i++) await sendMail(srv.port('mx'), { helo: 'stranger.example.com', from: `pump${i}@example.com`, to: ['fwd@example.org'] });
  const open = await srv.waitForLog((l) => l.event === 'breaker' && l.state === 'open');
  assert.equal(open.breaker, 'sender:forward:fwd@example.org', 'one breaker for the alias, whatever sender the strangers use');
});
