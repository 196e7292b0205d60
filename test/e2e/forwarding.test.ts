// An alias that forwards outside sends outbound mail on a stranger's behalf: the queue entry says
// so (relay reason `forward:<alias>`), and when the next hop refuses it no bounce goes to the
// stranger's unverified — possibly forged — sender (backscatter through our smarthost).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reply } from '../../src/core/reply.ts';
import { startServer } from '../harness/server.ts';
import { startDns } from '../harness/dns.ts';
import { dial } from '../harness/dial.ts';
import { startSink } from '../delivery/sink.ts';

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
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO stranger.example.com').expect('250');
  // The stranger's direct attempt to relay is refused; through the alias it is taken.
  await c.say('MAIL FROM:<victim@example.com>').expect('250');
  await c.say('RCPT TO:<someone@example.net>').expect('554 5.7.1');
  await c.say('RCPT TO:<fwd@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('From: <victim@example.com>\r\nTo: <fwd@example.org>\r\nSubject: forwarded\r\n\r\nhello\r\n.\r\n');
  const r = await c.expect('250 2.0.0 Ok: queued as ');
  const id = r.text.split(' ').pop()!;
  await c.say('QUIT').expect('221');

  const queued = await srv.waitForLog((l) => l.event === 'queued' && l.queueId === id);
  assert.ok(queued, 'the message is queued');
  const suppressed = await srv.waitForLog((l) => l.event === 'bounce-suppressed' && l.queueId === id);
  assert.equal(suppressed.reason, 'forwarded mail from an unverified sender');
  assert.ok(sink.rcpts.some((x) => x.address === 'someone@example.net'), 'the forward was tried at the next hop');
  // The local copy was delivered; no notice was queued to the stranger's address.
  await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id && l.transport === 'local');
  await srv.waitForLog((l) => l.event === 'bounced' && l.queueId === id && l.transport === 'remote');
  assert.ok(!srv.logs.some((l) => l.event === 'queued' && l.from === ''), 'no bounce was queued');
  assert.equal(queued.relay, 'forward:fwd@example.org', 'the queued line names the alias that sends it out');
});
