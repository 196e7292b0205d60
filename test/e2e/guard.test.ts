// The incident at small scale: a login's password is stolen and used to send 2,000 messages to
// 1,000 domains as fast as eight connections can, while a normal user keeps sending. The
// baseline breaker must stop the login within its budget, alert the webhook at once, leave the
// normal user and local mail alone, and `mailward guard release` must let the login send again
// and say how much of its mail waits on hold.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { pino } from 'pino';
import { dial, type Dialog } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { startWebhook } from '../guard/helpers.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { registerGuard } from '../../src/shells/cli/guard.ts';
import { authPlain } from '../harness/auth.ts';

const HOUR = 3_600_000;
const ALICE = 'alice@example.org';
const BOB = 'bob@example.org';
const users: Array<[string, string]> = [
  [ALICE, 'alice password 1'],
  [BOB, 'bob password 12'],
];
const plain = authPlain;

async function login(port: number, user: string, pass: string): Promise<Dialog> {
  const c = await dial(port, { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  await c.say(plain(user, pass)).expect('235');
  return c;
}

/** One message with one recipient; resolves the RCPT reply code (the message is sent when it is 250). */
async function sendOne(c: Dialog, from: string, to: string): Promise<number> {
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  const r = await c.say(`RCPT TO:<${to}>`).read();
  if (r.code !== 250) {
    await c.say('RSET').expect('250');
    return r.code;
  }
  await c.say('DATA').expect('354');
  c.send(`From: <${from}>\r\nTo: <${to}>\r\nSubject: hello\r\n\r\nhello\r\n.\r\n`);
  await c.expect('250 2.0.0');
  return 250;
}

test('incident: a stolen login sending 2,000 messages to 1,000 domains is stopped by its baseline within budget; release lets it send again', async (t) => {
  const hourAtStart = Math.floor(Date.now() / HOUR);
  const hook = await startWebhook(t);
  const dns = await startDns(t, {}); // every remote domain: REFUSED, on loopback; nothing leaves the host
  const dataDir = mkdtempSync(path.join(tmpdir(), 'mailward-guard-e2e-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const guardOptions = { baseline: { factor: 4, minimum: 20, halfLife: '24h' }, domains: { limit: 500 }, alerts: { webhook: hook.url, postmaster: false } };

  // Alice's normal life before today: 10 relayed recipients an hour for 48 hours, then an idle
  // hour. Her baseline is 7.5 × 2^(-1/24) = 7.29 an hour, so the limit is 4 × 7.29 = 29.1.
  const seed = new SqliteStore({ path: path.join(dataDir, 'state.sqlite') }, pino({ level: 'silent' }));
  const seedGuard = new OutboundGuard({ store: seed, clock: Date.now, log: pino({ level: 'silent' }), hostname: 'mx.example.org', settings: GuardSchema.parse(guardOptions) });
  for (let h = hourAtStart - 49; h <= hourAtStart - 2; h++) await seedGuard.baselines.record(`login:${ALICE}`, 10, h * HOUR);
  await seed.close();

  const srv = await startServer(t, {
    users,
    dataDir,
    config: {
      dns: { servers: [dns.address], timeout: 500, tries: 1 },
      queue: { fsync: false },
      limits: { maxCommands: 10_000 },
      pipeline: { rcpt: ['recipient', 'outbound-guard', 'rate-limit'] },
      checks: { 'outbound-guard': guardOptions },
    },
  });
  const port = srv.port('submissions');

  // The attack: eight connections, 250 messages each, every message to another domain.
  const attack = Array.from({ length: 8 }, async (_, conn) => {
    const c = await login(port, ALICE, 'alice password 1');
    const codes: number[] = [];
    for (let i = 0; i < 250; i++) {
      const k = conn * 250 + i;
      codes.push(await sendOne(c, ALICE, `user${k}@d${k % 1000}.example`));
    }
    c.close();
    return codes;
  });
  // Meanwhile Bob sends his few messages, out and in.
  const normal = (async () => {
    const c = await login(port, BOB, 'bob password 12');
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) {
      codes.push(await sendOne(c, BOB, `partner${i}@customer.example`));
      codes.push(await sendOne(c, BOB, ALICE));
      await new Promise((r) => setTimeout(r, 20));
    }
    c.close();
    return codes;
  })();
  const results = await Promise.all(attack);
  const bobCodes = await normal;
  const all = results.flat();
  const accepted = all.filter((code) => code === 250).length;
  assert.equal(all.length, 2000);
  assert.deepEqual([...new Set(all)].sort(), [250, 451]);

  // The budget: the 30th relayed recipient trips the breaker, so 29 are accepted (a few more only
  // if the clock hour turned during the test and moved the baseline).
  const sameHour = Math.floor(Date.now() / HOUR) === hourAtStart;
  if (sameHour) assert.equal(accepted, 29);
  else assert.ok(accepted >= 29 && accepted <= 40, `accepted ${accepted}`);
  const queuedFromAlice = srv.logs.filter((l) => l.event === 'queued' && l.login === ALICE);
  assert.equal(queuedFromAlice.length, accepted);
  assert.ok(queuedFromAlice.every((l) => l.relay === `login:${ALICE}`));

  // The early warning at half the limit (15 of 29.1), then the alert at the trip, then the count
  // of queued mail put on hold at once: one webhook POST and one log line each.
  const [warning, alert, heldNow] = await hook.waitFor(3);
  assert.deepEqual([warning!.type, warning!.breaker, warning!.kind], ['early-warning', `login:${ALICE}`, 'baseline']);
  assert.deepEqual([heldNow!.type, heldNow!.breaker], ['breaker-held', `login:${ALICE}`]);
  assert.equal(alert!.type, 'breaker-open');
  assert.equal(alert!.breaker, `login:${ALICE}`);
  assert.equal(alert!.kind, 'baseline');
  assert.equal(alert!.release, `mailward guard release login:${ALICE}`);
  if (sameHour) assert.deepEqual(alert!.figures, { rate: 30, baseline: 7.29, limit: 29.1 });
  const breakerLines = srv.logs.filter((l) => l.event === 'breaker');
  assert.deepEqual(breakerLines.map((l) => [l.state, l.breaker, l.kind]), [
    ['warning', `login:${ALICE}`, 'baseline'],
    ['open', `login:${ALICE}`, 'baseline'],
    ['held', `login:${ALICE}`, 'baseline'],
  ]);
  const refusals = srv.logs.filter((l) => l.event === 'deferred' && l.check === 'outbound-guard');
  assert.equal(refusals.length, 2000 - accepted);
  assert.equal(refusals[0]!.reply, '451 4.7.1 sending suspended for login alice@example.org (outbound guard)');

  // The normal user was never touched, and local mail flows for everyone, Alice included.
  assert.deepEqual(bobCodes, Array<number>(10).fill(250));
  const a = await login(port, ALICE, 'alice password 1');
  assert.equal(await sendOne(a, ALICE, BOB), 250);
  assert.equal(await sendOne(a, ALICE, 'someone@elsewhere.example'), 451);
  await srv.waitForMail(ALICE, 5);
  await srv.waitForMail(BOB, 1);

  // The trip put Alice's queued mail on hold at once (one queue operation, one summary line),
  // without waiting for its next retry; a message still between DATA and the queue at the trip
  // was held when its delivery came up. Each is in hold/ now, and nothing was sent.
  const aliceIds = queuedFromAlice.map((l) => l.queueId as string);
  const heldLine = await srv.waitForLog((l) => l.event === 'breaker' && l.state === 'held');
  assert.equal(heldLine.breaker, `login:${ALICE}`);
  const atDelivery = () => new Set(srv.logs.filter((l) => l.event === 'held-by-guard' && aliceIds.includes(l.queueId as string)).map((l) => l.queueId)).size;
  await srv.waitForLog(() => (heldLine.held as number) + atDelivery() === accepted);
  assert.equal(srv.logs.filter((l) => l.event === 'queue-admin' && l.op === 'hold' && l.queueId === undefined).length, 1, 'one queue operation');
  const held = { length: accepted };
  // The operator releases the login (the CLI on the same store, the server still running).
  const yaml = path.join(dataDir, 'mailward.yaml');
  writeFileSync(yaml, `hostname: mx.example.org\ndomains: [example.org]\ndataDir: ${JSON.stringify(dataDir)}\n`);
  const out: string[] = [];
  const program = new Command('mailward').option('-c, --config <file>').exitOverride();
  registerGuard(program, { out: (s) => void out.push(s) });
  await program.parseAsync(['-c', yaml, 'guard', 'release', `login:${ALICE}`], { from: 'user' });
  assert.match(out.join(''), /^released login:alice@example\.org \(open since .*, baseline: /);
  // It counts the held mail through the running server and names the commands for it.
  assert.ok(out.join('').includes(`\n  ${held.length} message(s) on hold\n  look at it:     mailward queue list --state held\n`), out.join(''));
  assert.ok(out.join('').includes(`\n  delete it:      mailward queue delete --state held --login ${ALICE}   (or ID...)\n`));
  assert.equal(await sendOne(a, ALICE, 'someone@elsewhere.example'), 250);
  a.close();
});
