// Two Mailward nodes pointed at one Redis share one view: one greylist, one global outbound
// limit. And when Redis goes away mid-traffic the checks that need it defer (4xx, never an
// accept), then recover by themselves when it is back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../harness/dial.ts';
import { startRedis } from '../harness/redis.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { authPlain } from '../harness/auth.ts';

async function rcpt(srv: TestServer, opts: { from: string; to: string; login?: [string, string] }): Promise<string> {
  const c = opts.login ? await dial(srv.port('submissions'), { tls: true }) : await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO node-test').expect('250');
  if (opts.login) await c.say(authPlain(opts.login[0], opts.login[1])).expect('235');
  await c.say(`MAIL FROM:<${opts.from}>`).expect('250');
  const r = await c.say(`RCPT TO:<${opts.to}>`).read();
  c.close();
  return r.raw;
}

/** Once the store is back, a new triplet is greylisted normally (a 450 from the check, not a failure). */
async function untilGreylisted(srv: TestServer): Promise<void> {
  const deadline = Date.now() + 20_000;
  let answer = '';
  while (Date.now() < deadline) {
    answer = await rcpt(srv, { from: 'z@sender.example', to: 'bob@example.org' });
    if (answer.startsWith('450 4.2.0')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.match(answer, /^450 4\.2\.0 Greylisted/);
}

test('two nodes, one Redis: one greylist, one global outbound limit; Redis down defers, then recovers', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t);
  const users: Array<[string, string]> = [['bob@example.org', 'bob password 1']];
  const config = {
    // A generous timeout: the start-up check pings Redis, and a busy 2-core machine can take over 300 ms to answer; a
    // killed Redis still refuses the connection at once, so the deferral below does not wait for it.
    store: { backend: 'redis', redis: { url: redis.url, keyPrefix: 'two-nodes:', timeout: 2000 } },
    // The limit goes before permit-login: a permit ends the list, and logins are what it counts.
    pipeline: { rcpt: ['recipient', 'rate-limit', 'permit-login', 'greylist'] },
    checks: {
      greylist: { delay: '1s' },
      'rate-limit': { rules: [{ name: 'global', key: 'server', direction: 'outbound', window: '1h', limit: 3 }] },
    },
  };
  const a = await startServer(t, { users, config });
  const b = await startServer(t, { users, config });

  // Greylisted on node A; the retry lands on node B after the delay and passes there.
  assert.match(await rcpt(a, { from: 'x@sender.example', to: 'bob@example.org' }), /^450 4\.2\.0/);
  assert.match(await rcpt(b, { from: 'x@sender.example', to: 'bob@example.org' }), /^450 4\.2\.0/, 'too early on B as well');
  await new Promise((r) => setTimeout(r, 1100));
  assert.match(await rcpt(b, { from: 'x@sender.example', to: 'bob@example.org' }), /^250/);

  // The global outbound limit of 3 relayed recipients an hour is counted across both nodes.
  const login: [string, string] = ['bob@example.org', 'bob password 1'];
  assert.match(await rcpt(a, { from: 'bob@example.org', to: 'one@example.net', login }), /^250/);
  assert.match(await rcpt(b, { from: 'bob@example.org', to: 'two@example.net', login }), /^250/);
  assert.match(await rcpt(a, { from: 'bob@example.org', to: 'three@example.net', login }), /^250/);
  assert.match(await rcpt(b, { from: 'bob@example.org', to: 'four@example.net', login }), /^4\d\d 4\.7\.1/);

  // Redis dies mid-traffic: greylisting cannot decide, so it defers; nothing is accepted blind.
  await redis.kill();
  assert.match(await rcpt(a, { from: 'y@sender.example', to: 'bob@example.org' }), /^4\d\d /);
  await a.waitForLog((l) => /unavailable/i.test(String(l.msg)));
  await redis.restart();
  // Back by itself: the next new triplet is greylisted normally (a 450 from the check, not a failure).
  await untilGreylisted(a);
});

test('Redis down when the server starts: it starts anyway, defers what needs Redis, and recovers when Redis is back', { timeout: 60_000 }, async (t) => {
  // After a power cut the mail server may come up before Redis: it must not exit (a server that
  // needs a human after a reboot) nor accept blind.
  const redis = await startRedis(t);
  await redis.kill();
  const srv = await startServer(t, {
    users: [['bob@example.org', 'bob password 1']],
    config: {
      store: { backend: 'redis', redis: { url: redis.url, keyPrefix: 'redis-late:', timeout: 2000 } },
      pipeline: { rcpt: ['recipient', 'greylist'] },
      checks: { greylist: { delay: '1s' } },
    },
  });
  assert.match(await rcpt(srv, { from: 'y@sender.example', to: 'bob@example.org' }), /^4\d\d /, 'greylisting cannot decide: defer');
  await srv.waitForLog((l) => l.event === 'stats-load-deferred');
  await redis.restart();
  await untilGreylisted(srv);
});
