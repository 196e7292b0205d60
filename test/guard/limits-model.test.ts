// The numbers of the default model, as documented (docs/decisions/0024-aggregate-breaker.md):
// a limit of N lets exactly N recipients through and refuses the next. A new login may relay
// baseline.minimum (100) recipients in its first hour; all non-exempt sources together
// aggregate.recipients (200); the rate-limit rule login-hour (200) caps an established login.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { GuardSchema, RateLimitSchema } from '../../src/config/guard-schema.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { RateLimits } from '../../src/guard/limits.ts';
import { makeEnv } from '../checks/env.ts';

const quiet = pino({ level: 'silent' });

test('model: with the defaults a new login relays exactly baseline.minimum, the installation exactly aggregate.recipients, and the next is refused', async (t) => {
  const { store, clock } = await makeEnv(t);
  const settings = GuardSchema.parse({ alerts: { postmaster: false } });
  const guard = new OutboundGuard({ store, clock, log: quiet, hostname: 'mx.example.org', settings });
  const perLogin = settings.baseline.minimum;
  const all = settings.aggregate.recipients;
  assert.deepEqual([perLogin, all], [100, 200]);

  // Ten domains per login: the distinct-domain breaker (50 an hour) is not the one under test.
  const send = async (login: string, n: number): Promise<number> => {
    let ok = 0;
    for (let i = 0; i < n; i++) if ((await guard.relayedRecipient({ login, sender: login, client: '192.0.2.10', domain: `d${i % 10}.${login.split('@')[0]}.example` })).ok) ok++;
    return ok;
  };
  // One new login: exactly its budget; the next is refused (its breaker trips).
  assert.equal(await send('new1@example.org', perLogin + 5), perLogin);
  assert.equal((await guard.breakers.get('login:new1@example.org'))?.kind, 'baseline');
  // A second new login takes the installation to exactly the aggregate floor…
  assert.equal(await send('new2@example.org', perLogin), all - perLogin);
  assert.equal(await guard.breakers.get('login:new2@example.org'), undefined);
  // … and the next recipient of any non-exempt source is refused: the aggregate tripped.
  assert.equal(await send('new3@example.org', 1), 0);
  const agg = await guard.breakers.get('aggregate');
  assert.equal(agg?.reason, `${all + 1} relayed recipients of all sources in the last hour, limit ${all} (5 × the installation's baseline 0, at least ${all})`);
});

test('model: the rate-limit rule login-hour lets exactly its limit through', async (t) => {
  const { store, clock } = await makeEnv(t);
  const rules = RateLimitSchema.parse({}).rules;
  const hourRule = rules.find((r) => r.name === 'login-hour')!;
  assert.equal(hourRule.limit, 200);
  const limits = new RateLimits(store, rules, quiet);
  let ok = 0;
  for (let i = 0; i < hourRule.limit + 3; i++) {
    if (!(await limits.consume('recipients', { listener: 'submission', clientAddress: '192.0.2.10', login: 'old@example.org', direction: 'outbound' }, clock()))) ok++;
  }
  assert.equal(ok, hourRule.limit);
});
