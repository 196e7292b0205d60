// Five stolen logins at once, each staying under its own limit: without the aggregate breaker
// the damage grows with the number of accounts (5 × the per-login budget). With it, all
// non-exempt sources together trip one breaker at the installation's floor, below what a single
// login may send; an exempt source and local mail carry on. Numbers come from the config.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dial, type Dialog } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { startWebhook } from '../guard/helpers.ts';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { authPlain } from '../harness/auth.ts';

const HOUR = 3_600_000;
const STOLEN = Array.from({ length: 5 }, (_, i) => `user${i}@example.org`);
const NEWS = 'news@example.org';
const BOB = 'bob@example.org';
const users: Array<[string, string]> = [...STOLEN, NEWS, BOB].map((u) => [u, `${u} password`]);
const plain = (user: string): string => authPlain(user, `${user} password`);

async function login(port: number, user: string): Promise<Dialog> {
  const c = await dial(port, { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  await c.say(plain(user)).expect('235');
  return c;
}

/** One message with one recipient: the RCPT code, and the DATA end's code when RCPT was 250. */
async function sendOne(c: Dialog, from: string, to: string): Promise<{ rcpt: number; data?: number; reply: string }> {
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  const r = await c.say(`RCPT TO:<${to}>`).read();
  if (r.code !== 250) {
    await c.say('RSET').expect('250');
    return { rcpt: r.code, reply: r.raw };
  }
  // The aggregate may trip (by another login's recipient) between this RCPT and DATA.
  const d = await c.say('DATA').read();
  if (d.code !== 354) {
    await c.say('RSET').expect('250');
    return { rcpt: 250, data: d.code, reply: d.raw };
  }
  c.send(`From: <${from}>\r\nTo: <${to}>\r\nSubject: hello\r\n\r\nhello\r\n.\r\n`);
  const end = await c.read();
  return { rcpt: 250, data: end.code, reply: end.raw };
}

test('aggregate: five stolen logins in parallel trip one installation-wide breaker below a single login\'s budget; an exempt login and local mail carry on', async (t) => {
  const hook = await startWebhook(t);
  const dns = await startDns(t, {}); // every remote domain is REFUSED on loopback: nothing leaves
  const options = {
    // A new login may relay `baseline.minimum` an hour; all sources together `aggregate.recipients`.
    baseline: { minimum: 20 },
    aggregate: { recipients: 15, newDomains: 10_000 },
    domains: { limit: 10_000 },
    exempt: [`login:${NEWS}`],
    alerts: { webhook: hook.url, postmaster: false },
  };
  const s = GuardSchema.parse(options);
  const single = s.baseline.minimum;
  const floor = s.aggregate.recipients;
  assert.ok(floor < single);
  const hourAtStart = Math.floor(Date.now() / HOUR);
  const srv = await startServer(t, {
    users,
    config: {
      dns: { servers: [dns.address], timeout: 500, tries: 1 },
      queue: { fsync: false, minBackoff: '1h', maxBackoff: '1h' },
      limits: { maxCommands: 10_000 },
      checks: { 'outbound-guard': options },
    },
  });
  const port = srv.port('submissions');

  // Each stolen login alone stays under its own limit: 5 × 12 would be 60 without the aggregate.
  const PER_LOGIN = 12;
  assert.ok(PER_LOGIN < single && STOLEN.length * PER_LOGIN > floor);
  const results = await Promise.all(
    STOLEN.map(async (user, n) => {
      const c = await login(port, user);
      const out = [];
      for (let i = 0; i < PER_LOGIN; i++) out.push(await sendOne(c, user, `v${n}-${i}@d${n}-${i}.example`));
      c.close();
      return out;
    }),
  );
  const all = results.flat();
  const rcptAccepted = all.filter((r) => r.rcpt === 250).length;
  const queued = all.filter((r) => r.data === 250).length;
  const sameHour = Math.floor(Date.now() / HOUR) === hourAtStart;

  // The floor lets exactly `floor` recipients through at RCPT; a few of them may still be refused
  // at DATA (the trip came from another login meanwhile). Far below one login's budget, and
  // a fraction of what five logins could send alone.
  if (sameHour) assert.equal(rcptAccepted, floor);
  assert.ok(queued <= floor && queued < single, `queued ${queued}, floor ${floor}, one login ${single}`);
  assert.equal(srv.logs.filter((l) => l.event === 'queued' && STOLEN.includes(l.login as string)).length, queued);
  const refused = all.filter((r) => r.rcpt !== 250 || r.data !== 250);
  assert.deepEqual(new Set(refused.map((r) => r.reply)), new Set(['451 4.7.1 outbound sending suspended on this server (outbound guard)\r\n']));

  // One breaker: the aggregate (no login reached its own limit), one alert.
  const opened = srv.logs.filter((l) => l.event === 'breaker' && l.state === 'open');
  assert.deepEqual(opened.map((l) => [l.breaker, l.kind]), [['aggregate', 'baseline']]);
  const alerts = await hook.waitFor(1);
  const open = alerts.find((a) => a.type === 'breaker-open')!;
  assert.equal(open.breaker, 'aggregate');
  if (sameHour) assert.deepEqual(open.figures, { value: floor + 1, baseline: 0, limit: floor });

  // Every new relayed recipient of a non-exempt source is refused, a new login's too; the exempt
  // login relays, and local mail flows for the stolen logins too.
  const b = await login(port, BOB);
  assert.equal((await sendOne(b, BOB, 'partner@customer.example')).reply, '451 4.7.1 outbound sending suspended on this server (outbound guard)\r\n');
  assert.equal((await sendOne(b, BOB, STOLEN[0]!)).data, 250);
  b.close();
  const news = await login(port, NEWS);
  assert.equal((await sendOne(news, NEWS, 'reader@customer.example')).data, 250);
  news.close();
  await srv.waitForMail(STOLEN[0]!, 1);
});
