// The URI blocklist check over real SMTP, its lists answered by a real DNS server on loopback: a
// message linking to a listed domain scores the zone's points, one linking only to unlisted sites
// does not, a defanged URL in a quoted-printable HTML part is found, bit-mask zones count only
// their bits, links to IP addresses are asked as reversed addresses, answers are cached, and a
// list that never answers adds nothing while the message is still accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/server.ts';

async function setup(t: import('node:test').TestContext, zones: unknown[]) {
  const dns = await startDns(t, {
    'dbl.test': {
      names: {
        'evil-shop.com': { A: ['127.0.1.2'] },
        'phish-login.net': { A: ['127.0.1.4'] },
        // Spamhaus's "IP queries are not allowed" and a query error: never a listing.
        'refused.com': { A: ['127.0.1.255'] },
        'error.com': { A: ['127.255.255.254'] },
      },
    },
    'multi.test': { names: { 'grey-sender.com': { A: ['127.0.0.4'] }, 'phish-login.net': { A: ['127.0.0.8'] } } },
    'sbl.test': { names: { '9.2.0.192': { A: ['127.0.0.2'] } } },
    'slow.test': { mode: 'timeout' },
  });
  const srv = await startServer(t, {
    users: [['bob@example.org', 'bob password 1']],
    config: {
      dns: { servers: [dns.address], timeout: 20_000, tries: 1 },
      pipeline: { data: ['uribl'] },
      checks: { uribl: { zones, timeout: 400 } },
    },
  });
  return { dns, srv };
}

let n = 0;
async function send(srv: TestServer, body: string, headers = 'Content-Type: text/plain; charset=utf-8'): Promise<Record<string, unknown>> {
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO client.sender.example').expect('250');
  await c.say('MAIL FROM:<x@sender.example>').expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  const msg = `From: x@sender.example\r\nTo: bob@example.org\r\nSubject: test ${++n}\r\nMessage-ID: <${n}.${Date.now()}@sender.example>\r\nMIME-Version: 1.0\r\n${headers}\r\n\r\n${body}`;
  c.send(msg.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..') + '\r\n.\r\n');
  const done = await c.expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
  const id = done.text.split(' ').pop()!;
  return srv.waitForLog((l) => l.event === 'queued' && l.queueId === id);
}

const rulesOf = (q: Record<string, unknown>): string => JSON.stringify(q.rules ?? []);

test('uribl: a listed domain scores the zone, an unlisted one does not; answers are cached', async (t) => {
  const { dns, srv } = await setup(t, [{ zone: 'dbl.test', points: 4 }]);
  const listed = await send(srv, 'Your parcel is waiting: https://track.evil-shop.com/p?id=7 — see also https://www.wikipedia.org/\r\n');
  assert.equal(listed.score, 4);
  assert.match(rulesOf(listed), /uribl:dbl\.test/);
  // The registrable domain is asked, not the host name.
  assert.equal(dns.queries('evil-shop.com.dbl.test', 'A'), 1);
  assert.equal(dns.queries('track.evil-shop.com.dbl.test', 'A'), 0);
  const l = await srv.waitForLog((x) => x.check === 'uribl' && x.target === 'evil-shop.com');
  assert.deepEqual(l.answers, ['127.0.1.2']);

  const clean = await send(srv, 'Minutes of the meeting: https://www.wikipedia.org/wiki/Minutes and docs.example-clean.com\r\n');
  assert.ok(!rulesOf(clean).includes('uribl'), rulesOf(clean));
  assert.equal(dns.queries('wikipedia.org.dbl.test', 'A'), 1, 'the second message used the cached answer');
  assert.equal(dns.queries('example-clean.com.dbl.test', 'A'), 1, 'bare domains are looked up too');

  // List error codes are not listings.
  const odd = await send(srv, 'http://refused.com/ http://error.com/\r\n');
  assert.ok(!rulesOf(odd).includes('uribl'), rulesOf(odd));
});

test('uribl: a defanged URL in quoted-printable HTML is found; bit masks count only their bits', async (t) => {
  const { srv } = await setup(t, [
    { zone: 'dbl.test', points: 3 },
    { zone: 'multi.test', mask: 8, points: 2 },
  ]);
  const html = '<p>Verify your account at <b>hxxps://secure.phish-login[.]net/verify</b> within 24 hours.</p><p>=\r\nFrom grey-sender(.)com</p>\r\n';
  const q = await send(srv, html, 'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable');
  assert.equal(q.score, 5);
  assert.match(rulesOf(q), /uribl:dbl\.test,multi\.test/);
  // grey-sender.com answers 127.0.0.4 in multi.test: bit 4, not the configured 8.
  await srv.waitForLog((x) => x.check === 'uribl' && x.zone === 'multi.test' && x.target === 'phish-login.net');
  assert.equal(
    srv.logs.some((x) => x.check === 'uribl' && x.target === 'grey-sender.com'),
    false,
  );
});

test('uribl: links to IP addresses are asked as reversed addresses of IP zones only', async (t) => {
  const { dns, srv } = await setup(t, [
    { zone: 'dbl.test', points: 3 },
    { zone: 'sbl.test', domains: false, ips: true, points: 2.5 },
  ]);
  const q = await send(srv, 'Log in at http://192.0.2.9/login.php now\r\n');
  assert.equal(q.score, 2.5);
  assert.equal(dns.queries('9.2.0.192.sbl.test', 'A'), 1);
  assert.equal(dns.queries('192.0.2.9.dbl.test', 'A'), 0);
});

test('uribl: a list that never answers adds nothing and the message is accepted, with a log line', async (t) => {
  const { srv } = await setup(t, [
    { zone: 'slow.test', points: 10 },
    { zone: 'dbl.test', points: 3 },
  ]);
  const q = await send(srv, 'Pay at https://evil-shop.com/pay\r\n');
  // The answering list still counts; the silent one neither scores nor defers the message.
  assert.equal(q.score, 3);
  const l = await srv.waitForLog((x) => x.check === 'uribl' && typeof x.unanswered === 'number');
  assert.equal(l.unanswered, 1);
  assert.equal(l.first, 'evil-shop.com.slow.test');
});
