// Which mail a breaker stops, and when: a trip puts the source's already queued mail on hold at
// once (not at its next retry) and the alert says how many; a breaker on a client address does
// not stop the users who log in from behind it, and every refusal names the suspended source.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { dial, type Dialog } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { runMailward } from '../harness/cli.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { authPlain } from '../harness/auth.ts';

const ALICE = 'alice@example.org';
const BOB = 'bob@example.org';
const POSTMASTER = 'postmaster@example.org';
const users: Array<[string, string]> = [ALICE, BOB, POSTMASTER].map((u) => [u, `${u} password`]);

async function session(port: number, user?: string): Promise<Dialog> {
  const c = await dial(port, user ? { tls: true } : {});
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  if (user) await c.say(authPlain(user, `${user} password`)).expect('235');
  return c;
}

/** One message, one recipient: the RCPT reply, and the queue id when it was queued. */
async function sendOne(c: Dialog, from: string, to: string): Promise<{ reply: string; id?: string }> {
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  const r = await c.say(`RCPT TO:<${to}>`).read();
  if (r.code !== 250) {
    await c.say('RSET').expect('250');
    return { reply: r.raw };
  }
  await c.say('DATA').expect('354');
  c.send(`Subject: hello\r\n\r\nhello\r\n.\r\n`);
  const done = await c.expect('250 2.0.0 Ok: queued as ');
  return { reply: r.raw, id: done.text.split(' ').pop()! };
}

/** A server whose remote domain's DNS fails: accepted remote mail is deferred, its next retry an hour away. */
async function start(t: TestContext, config: Record<string, unknown>) {
  const dns = await startDns(t, { 'far.example': { mode: 'servfail' } });
  return startServer(t, { users, config: { dns: { servers: [dns.address], timeout: 500, tries: 1 }, queue: { fsync: false, minBackoff: '1h', maxBackoff: '1h' }, ...config } });
}

test('trip means held now: the login\'s queued mail moves to hold at the trip in one operation, and the postmaster alert says how many', async (t) => {
  const srv = await start(t, { checks: { 'outbound-guard': { baseline: { minimum: 3 }, earlyWarning: { enabled: false } } } });
  const c = await session(srv.port('submissions'), ALICE);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await sendOne(c, ALICE, `r${i}@far.example`)).id!);
  for (const id of ids) await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === id);
  // The fourth trips the login's breaker.
  assert.equal((await sendOne(c, ALICE, 'r3@far.example')).reply, '451 4.7.1 sending suspended for login alice@example.org (outbound guard)\r\n');
  c.close();

  const held = await srv.waitForLog((l) => l.event === 'breaker' && l.state === 'held');
  assert.deepEqual([held.breaker, held.held], [`login:${ALICE}`, 3]);
  const op = srv.logs.filter((l) => l.event === 'queue-admin' && l.op === 'hold' && l.queueId === undefined);
  assert.deepEqual(op.map((l) => [l.matched, l.changed]), [[3, 3]]);
  // Not one of them waited for its retry to be held.
  assert.deepEqual(srv.logs.filter((l) => l.event === 'held-by-guard'), []);

  const [alert] = (await srv.waitForMail(POSTMASTER, 1)).filter((m) => m.includes('outbound breaker open'));
  assert.ok(alert, 'the postmaster alert');
  assert.match(alert, /\r\n3 queued message\(s\) of login:alice@example\.org were put on hold at the trip\.\r\n/);
});

test('a breaker on a client address does not stop the logged-in users behind it; the reply names the suspended source', async (t) => {
  const srv = await start(t, {
    relay: { trustedNetworks: ['127.0.0.1'] },
    checks: { 'outbound-guard': { trustedNetwork: { limit: 2 }, earlyWarning: { enabled: false }, alerts: { postmaster: false } } },
  });
  // An application on 127.0.0.1 relays without a login and trips client:127.0.0.1.
  const app = await session(srv.port('mx'));
  for (let i = 0; i < 2; i++) assert.ok((await sendOne(app, 'app@shop.example', `a${i}@far.example`)).id);
  assert.equal((await sendOne(app, 'app@shop.example', 'a2@far.example')).reply, '451 4.7.1 sending suspended for client 127.0.0.1 (outbound guard)\r\n');
  app.close();
  assert.deepEqual(srv.logs.filter((l) => l.event === 'breaker' && l.state === 'open').map((l) => l.breaker), ['client:127.0.0.1']);

  // Bob logs in from the same address: his relayed mail is accepted and goes to delivery (here
  // deferred by the DNS), never held by the client's breaker.
  const b = await session(srv.port('submissions'), BOB);
  const sent = await sendOne(b, BOB, 'partner@far.example');
  assert.equal(sent.reply, '250 2.1.5 Recipient OK\r\n');
  b.close();
  await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === sent.id);
  assert.deepEqual(srv.logs.filter((l) => l.event === 'held-by-guard' && l.queueId === sent.id), []);
});

test("a login's trip holds the mail that login submitted, whatever its sender, and not another login's", async (t) => {
  // Alice may also send as sales@: mail chosen by envelope sender would leave that one queued.
  const srv = await start(t, {
    checks: {
      'sender-login': { sendAs: { [ALICE]: ['sales@example.org'] } },
      'outbound-guard': { baseline: { minimum: 3 }, earlyWarning: { enabled: false }, alerts: { postmaster: false } },
    },
  });
  const a = await session(srv.port('submissions'), ALICE);
  const b = await session(srv.port('submissions'), BOB);
  const bobIds = [(await sendOne(b, BOB, 'b0@far.example')).id!, (await sendOne(b, BOB, 'b1@far.example')).id!];
  const aliceIds = [(await sendOne(a, ALICE, 'r0@far.example')).id!, (await sendOne(a, 'sales@example.org', 'r1@far.example')).id!, (await sendOne(a, 'sales@example.org', 'r2@far.example')).id!];
  for (const id of [...bobIds, ...aliceIds]) await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === id);
  // The fourth of Alice's trips her login's breaker; Bob's stays closed.
  assert.equal((await sendOne(a, ALICE, 'r3@far.example')).reply, '451 4.7.1 sending suspended for login alice@example.org (outbound guard)\r\n');
  a.close();
  b.close();

  const held = await srv.waitForLog((l) => l.event === 'breaker' && l.state === 'held');
  assert.deepEqual([held.breaker, held.held, held.login], [`login:${ALICE}`, 3, ALICE]);
  const list = await queueList(srv.dataDir, '--state', 'held');
  assert.deepEqual(heldIdsOf(list.stdout).sort(), [...aliceIds].sort(), list.stdout);
  const bobs = await queueList(srv.dataDir, '--login', BOB);
  assert.match(bobs.stdout, new RegExp(`^${bobIds[0]}  deferred`, 'm'));
  assert.match(bobs.stdout, new RegExp(`^${bobIds[1]}  deferred`, 'm'));
});

/** `mailward ARGS` as an operator runs it against the running server's dataDir; must succeed. */
async function mailward(dataDir: string, ...args: string[]): Promise<{ stdout: string }> {
  const file = path.join(dataDir, 'cli.yaml');
  writeFileSync(file, `hostname: mx.example.org\ndomains: [example.org]\ndataDir: ${JSON.stringify(dataDir)}\nlog: { level: silent }\n`);
  const r = await runMailward(['-c', file, ...args]);
  assert.equal(r.code, 0, `mailward ${args.join(' ')}: ${r.stderr}`);
  return r;
}

const queueList = (dataDir: string, ...args: string[]): Promise<{ stdout: string }> => mailward(dataDir, 'queue', 'list', ...args);

const heldIdsOf = (out: string): string[] => [...out.matchAll(/^(\S+) {2}held /gm)].map((m) => m[1]!);

test('held at delivery is held as `queue hold` holds: listed by `queue list --state held`, sent on by `queue release`', async (t) => {
  const srv = await start(t, { checks: { 'outbound-guard': { earlyWarning: { enabled: false }, alerts: { postmaster: false } } } });
  // The global breaker holds queued outbound mail when its delivery comes up (not at the trip).
  await mailward(srv.dataDir, 'guard', 'trip', 'global', '--reason', 'looking into a complaint');
  const c = await session(srv.port('submissions'), ALICE);
  const { id } = await sendOne(c, ALICE, 'partner@far.example');
  c.close();
  await srv.waitForLog((l) => l.event === 'held-by-guard' && l.queueId === id);

  assert.deepEqual(heldIdsOf((await queueList(srv.dataDir, '--state', 'held')).stdout), [id]);
  // One way to hold: a mark in held.log, the file left in queue/ (no move into hold/).
  assert.match(readFileSync(path.join(srv.dataDir, 'spool', 'held.log'), 'latin1'), new RegExp(`^\\+${id}$`, 'm'));
  // Released by the operator (the breaker reopened first): delivery is tried again at once
  // (deferred here by the DNS), and it is no longer on hold.
  await mailward(srv.dataDir, 'guard', 'release', 'global');
  const released = await mailward(srv.dataDir, 'queue', 'release', id!);
  assert.match(released.stdout, /1/);
  await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === id);
  assert.deepEqual(heldIdsOf((await queueList(srv.dataDir, '--state', 'held')).stdout), []);
});
