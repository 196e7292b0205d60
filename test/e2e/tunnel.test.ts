// Run-time tunnel detection end to end: a server whose relay.trustedNetworks holds 127.0.0.1 (the
// incident's mistake; it loads, and doctor reports it) first relays for 127.0.0.1, then sees five
// HELO names and five sender domains from it — a forwarder carrying many clients — and from then on
// refuses to relay for it without a login, still takes mail for its own domains, and lists it on
// the admin API. With acceptor processes the suspect reaches every one of them.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dial, type Dialog } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { auditConfig } from '../../src/doctor/audit-config.ts';

const TOKEN = 'a-long-random-admin-token-0123456789';
const ALICE = 'alice@example.org';
// The TunnelDetector's defaults (src/doctor/tunnel.ts): five distinct HELO names and five
// distinct sender domains within an hour; suspect for 24 hours after.
const THRESHOLD = 5;
const HOLD_MS = 86_400_000;
const DENIED_REASON = 'client 127.0.0.1 is in relay.trustedNetworks (127.0.0.1) but looks like a tunnel or proxy carrying many clients (many HELO names and sender domains); not trusted';

async function start(t: TestContext, extra: Record<string, unknown> = {}): Promise<TestServer> {
  // Every remote name is REFUSED by a DNS server on loopback: nothing leaves the host.
  const dns = await startDns(t, {});
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-tunnel-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  return startServer(t, {
    users: [[ALICE, 'alice password 1']],
    config: {
      dns: { servers: [dns.address], timeout: 500, tries: 1 },
      relay: { trustedNetworks: ['127.0.0.1'] },
      admin: { enabled: true, port: 0, tokenFile: path.join(dir, 'token') },
      ...extra,
    },
  });
}

async function greet(srv: TestServer, helo: string): Promise<Dialog> {
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say(`EHLO ${helo}`).expect('250');
  return c;
}

/** One client of the tunnel: its own HELO and sender domain, relaying to a foreign domain. */
async function relayAttempt(srv: TestServer, n: number): Promise<string> {
  const c = await greet(srv, `client${n}.example.com`);
  await c.say(`MAIL FROM:<user@sender${n}.example>`).expect('250 2.1.0');
  const r = await c.say(`RCPT TO:<victim${n}@example.net>`).read();
  await c.say('QUIT').expect('221');
  c.close();
  return r.raw.trimEnd();
}

async function tunnels(srv: TestServer): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${srv.server.adminPort()}/api/tunnels`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  return res.json();
}

/** Local mail from the suspect address is still taken and delivered. */
async function sendLocal(srv: TestServer, n: number): Promise<void> {
  const c = await greet(srv, `client${n}.example.com`);
  await c.say(`MAIL FROM:<user@sender${n}.example>`).expect('250 2.1.0');
  await c.say(`RCPT TO:<${ALICE}>`).expect('250');
  await c.say('DATA').expect('354');
  await c.say(`Subject: local ${n}\r\n\r\nstill welcome\r\n.`).expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
  c.close();
}

const suspectedLines = (srv: TestServer): Array<Record<string, unknown>> => srv.logs.filter((l) => l.event === 'tunnel-suspected');

test('tunnel: 127.0.0.1 in relay.trustedNetworks relays until it shows five HELO names and sender domains; then it is warned about, refused relay at RCPT, still gets local mail, and is listed on the admin API', async (t) => {
  // One process, so the fifth MAIL FROM is judged before its RCPT (acceptors: the next test).
  const srv = await start(t, { workers: 1 });
  // Loading the incident's config works; doctor is where it is reported.
  assert.deepEqual(srv.config.relay.trustedNetworks, ['127.0.0.1']);
  assert.deepEqual(
    auditConfig(srv.config, { interfaces: {} }).filter((f) => f.id === 'relay-trusts-loopback').map((f) => [f.severity, f.setting]),
    [['error', 'relay.trustedNetworks[0]']],
  );

  // Trusted: the first four clients of the tunnel may relay.
  for (let n = 1; n < THRESHOLD; n++) assert.equal(await relayAttempt(srv, n), '250 2.1.5 Recipient OK');
  assert.deepEqual(suspectedLines(srv), []);
  assert.deepEqual(await tunnels(srv), { tunnels: [] });

  // The fifth HELO name and sender domain (seen at MAIL FROM) make 127.0.0.1 a suspect; its own
  // RCPT is the first refused.
  assert.equal(await relayAttempt(srv, THRESHOLD), '554 5.7.1 Relay access denied');
  const warned = suspectedLines(srv);
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!.level, 40);
  assert.equal(warned[0]!.client, '127.0.0.1');
  assert.equal(warned[0]!.heloNames, 5);
  assert.equal(warned[0]!.senderDomains, 5);
  assert.equal(
    warned[0]!.msg,
    'client 127.0.0.1 used 5 HELO names and 5 sender domains within 60 min: probably a tunnel or proxy carrying many clients; relay.trustedNetworks no longer applies to it. Fix: send the real client address with PROXY protocol (listeners.<name>.proxy.trusted) and remove the address from relay.trustedNetworks',
  );

  // Later clients: refused at RCPT by the relay gate, with the reason in the log; warned once.
  assert.equal(await relayAttempt(srv, 6), '554 5.7.1 Relay access denied');
  const refused = srv.logs.filter((l) => l.event === 'rejected' && l.check === 'relay');
  assert.deepEqual(
    refused.map((l) => [l.client, l.stage, l.to, l.reason, l.reply]),
    [5, 6].map((n) => ['127.0.0.1', 'rcpt', `victim${n}@example.net`, DENIED_REASON, '554 5.7.1 Relay access denied']),
  );
  assert.equal(suspectedLines(srv).length, 1);

  // Mail for a local domain is inbound, not relay: still accepted and delivered.
  await sendLocal(srv, 7);
  const mail = await srv.waitForMail(ALICE);
  assert.equal(mail.length, 1);
  assert.match(mail[0]!, /\r?\nSubject: local 7\r?\n/);

  // The admin API lists the address with its figures and examples.
  const body = (await tunnels(srv)) as { tunnels: Array<Record<string, unknown>> };
  assert.equal(body.tunnels.length, 1);
  const s = body.tunnels[0]!;
  assert.equal(s.address, '127.0.0.1');
  // The figures as they were when it became suspect.
  assert.equal(s.heloNames, 5);
  assert.equal(s.senderDomains, 5);
  assert.equal(Number(s.until) - Number(s.since), HOLD_MS);
  assert.deepEqual(s.examples, {
    helo: [1, 2, 3, 4, 5].map((n) => `client${n}.example.com`),
    senderDomains: [1, 2, 3, 4, 5].map((n) => `sender${n}.example`),
  });
});

test('tunnel: with acceptor processes (workers: 2) the suspect found by the primary reaches every acceptor', async (t) => {
  const srv = await start(t, { workers: 2 });
  const pids = (await srv.waitForLog((l) => l.event === 'acceptors')).pids as number[];
  assert.equal(pids.length, 2);

  for (let n = 1; n < THRESHOLD; n++) assert.equal(await relayAttempt(srv, n), '250 2.1.5 Recipient OK');
  // The fifth client's MAIL FROM waits until the primary's detector has counted it (a trusted
  // network's client), so its own RCPT is refused as in one process.
  assert.equal(await relayAttempt(srv, THRESHOLD), '554 5.7.1 Relay access denied');
  const warned = await srv.waitForLog((l) => l.event === 'tunnel-suspected');
  assert.equal(warned.client, '127.0.0.1');
  assert.equal(warned.pid, process.pid, 'found by the primary, which sees every acceptor\'s sessions');
  assert.equal(suspectedLines(srv).length, 1);

  // Four clients at once: each new connection goes to the least busy acceptor, so both serve.
  const open = await Promise.all([6, 7, 8, 9].map((n) => greet(srv, `client${n}.example.com`)));
  t.after(() => open.forEach((c) => c.close()));
  const replies = await Promise.all(
    open.map(async (c, i) => {
      await c.say(`MAIL FROM:<user@sender${6 + i}.example>`).expect('250 2.1.0');
      return (await c.say(`RCPT TO:<victim${6 + i}@example.net>`).read()).raw.trimEnd();
    }),
  );
  assert.deepEqual(replies, Array(4).fill('554 5.7.1 Relay access denied'));
  // The acceptors' log lines reach the one log in their next batch.
  const isRefusal = (l: Record<string, unknown>): boolean => l.event === 'rejected' && l.check === 'relay' && [6, 7, 8, 9].some((n) => l.to === `victim${n}@example.net`);
  await srv.waitForLog(() => srv.logs.filter(isRefusal).length >= 4);
  const refused = srv.logs.filter(isRefusal);
  assert.equal(refused.length, 4);
  assert.ok(refused.every((l) => l.reason === DENIED_REASON));
  assert.deepEqual([...new Set(refused.map((l) => l.pid as number))].sort(), [...pids].sort(), 'refused in both acceptors');

  // Local mail through an acceptor is still taken.
  await sendLocal(srv, 10);
  assert.equal((await srv.waitForMail(ALICE)).length, 1);

  const body = (await tunnels(srv)) as { tunnels: Array<Record<string, unknown>> };
  assert.deepEqual(body.tunnels.map((s) => s.address), ['127.0.0.1']);
});
