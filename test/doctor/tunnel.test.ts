// The run-time tunnel detector: one client address with many HELO names and many sender domains
// is a forwarder carrying many clients. It is logged once, reported, and the relay gate stops
// treating it as a trusted network, while logins keep working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { TunnelDetector, withTunnelGuard, type TunnelSuspect } from '../../src/doctor/tunnel.ts';
import { createRelayPolicy } from '../../src/checks/relay.ts';

function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

test('tunnel: five HELO names and five sender domains from one address make it suspect, once', () => {
  let now = 1_000_000;
  const { log, lines } = capture();
  const seen: TunnelSuspect[] = [];
  const d = new TunnelDetector({ clock: () => now, log, onSuspect: (s) => seen.push(s) });
  for (let i = 1; i <= 4; i++) d.observe('127.0.0.1', `bot${i}.example`, `spam${i}.example`);
  assert.equal(d.isSuspect('127.0.0.1'), false);
  now += 1000;
  d.observe('127.0.0.1', 'BOT5.example', 'Spam5.Example.');
  assert.equal(d.isSuspect('127.0.0.1'), true);
  assert.equal(d.isSuspect('127.0.0.2'), false);
  d.observe('127.0.0.1', 'bot6.example', 'spam6.example');
  assert.equal(seen.length, 1);
  assert.deepEqual(seen[0], {
    address: '127.0.0.1',
    since: 1_001_000,
    until: 1_001_000 + 86_400_000,
    heloNames: 5,
    senderDomains: 5,
    examples: { helo: ['bot1.example', 'bot2.example', 'bot3.example', 'bot4.example', 'bot5.example'], senderDomains: ['spam1.example', 'spam2.example', 'spam3.example', 'spam4.example', 'spam5.example'] },
  });
  const warned = lines.filter((l) => l.event === 'tunnel-suspected');
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!.level, 40);
  assert.equal(warned[0]!.client, '127.0.0.1');
  assert.equal(
    warned[0]!.msg,
    'client 127.0.0.1 used 5 HELO names and 5 sender domains within 60 min: probably a tunnel or proxy carrying many clients; relay.trustedNetworks no longer applies to it. Fix: send the real client address with PROXY protocol (listeners.<name>.proxy.trusted) and remove the address from relay.trustedNetworks',
  );
  assert.deepEqual(d.suspects().map((s) => [s.address, s.heloNames, s.senderDomains]), [['127.0.0.1', 6, 6]]);
});

test('tunnel: one host sending for many domains, or many HELOs for one domain, is not a tunnel', () => {
  const d = new TunnelDetector({ clock: () => 5000 });
  // A web host relaying for its sites: one HELO, many sender domains.
  for (let i = 0; i < 50; i++) d.observe('192.0.2.10', 'web.example.org', `site${i}.example`);
  // A misconfigured fleet giving random HELOs, all for one domain.
  for (let i = 0; i < 50; i++) d.observe('192.0.2.11', `host${i}`, 'example.org');
  // No HELO or null sender counts for nothing.
  for (let i = 0; i < 50; i++) d.observe('192.0.2.12', undefined, undefined);
  assert.deepEqual(d.suspects(), []);
});

test('tunnel: names older than the window are forgotten, and a suspect expires after the hold time', () => {
  let now = 0;
  const d = new TunnelDetector({ clock: () => now, windowMs: 60_000, holdMs: 600_000 });
  for (let i = 0; i < 4; i++) d.observe('10.0.0.1', `h${i}`, `d${i}.example`);
  now = 61_000; // the first four fall out of the window
  d.observe('10.0.0.1', 'h4', 'd4.example');
  assert.equal(d.isSuspect('10.0.0.1'), false);
  for (let i = 5; i < 9; i++) d.observe('10.0.0.1', `h${i}`, `d${i}.example`);
  assert.equal(d.isSuspect('10.0.0.1'), true);
  now += 600_000;
  assert.equal(d.isSuspect('10.0.0.1'), false);
  assert.deepEqual(d.suspects(), []);
  // Traffic from thousands of other addresses cannot push a live suspect out of memory.
  now = 2_000_000;
  for (let i = 0; i < 5; i++) d.observe('10.0.0.1', `x${i}`, `y${i}.example`);
  const small = new TunnelDetector({ clock: () => now, maxAddresses: 10 });
  for (let i = 0; i < 5; i++) small.observe('10.0.0.1', `x${i}`, `y${i}.example`);
  for (let i = 0; i < 1000; i++) small.observe(`198.51.100.${i % 250}`, 'a', 'b.example');
  assert.equal(small.isSuspect('10.0.0.1'), true);
  assert.equal(small.clear('10.0.0.1'), true);
  assert.equal(small.isSuspect('10.0.0.1'), false);
});

test('tunnel: the guarded relay policy withdraws trusted-network permission from a suspect, not a login', () => {
  const d = new TunnelDetector({ clock: () => 0 });
  const relay = withTunnelGuard(createRelayPolicy(['127.0.0.1/32']), d);
  const facts = { localDomain: false, clientAddress: '127.0.0.1' };
  assert.deepEqual(relay.decide(facts), { allowed: true, reason: 'trusted-network:127.0.0.1/32', network: '127.0.0.1/32' });
  for (let i = 0; i < 5; i++) d.observe('127.0.0.1', `bot${i}.example`, `spam${i}.example`);
  assert.deepEqual(relay.decide(facts), {
    allowed: false,
    reason: 'client 127.0.0.1 is in relay.trustedNetworks (127.0.0.1/32) but looks like a tunnel or proxy carrying many clients (many HELO names and sender domains); not trusted',
  });
  assert.deepEqual(relay.decide({ ...facts, login: 'alice@example.org' }), { allowed: true, reason: 'login:alice@example.org' });
  assert.deepEqual(relay.decide({ ...facts, localDomain: true }), { allowed: true, reason: 'local-domain' });
  assert.deepEqual(relay.decide({ localDomain: false, clientAddress: '192.0.2.1' }), { allowed: false, reason: 'client 192.0.2.1 is neither authenticated nor in relay.trustedNetworks' });
});
