// The outbound guard's checks through the policy service: messages counted at END-OF-MESSAGE with
// the direction of the recipients seen at RCPT (Postfix names no recipient there when there are
// several), and recipients counted at RCPT per login, over the protocol with a raw client.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { policyClient, rcptRequest, startPolicyd } from './helpers.ts';

const TOO_MANY_MESSAGES = '450 4.7.1 Rate limit exceeded: too many messages, try again later';

test('policyd: rate-limit counts outbound messages at END-OF-MESSAGE from the recipients seen at RCPT', async (t) => {
  const p = await startPolicyd(t, {
    config: { checks: { 'rate-limit': { rules: [{ name: 'login-msgs', count: 'messages', key: 'login', direction: 'outbound', window: '1h', limit: 2 }] } } },
    policyd: { pipeline: { RCPT: ['rate-limit'], 'END-OF-MESSAGE': ['rate-limit'] } },
  });
  const c = await policyClient(p.port);
  t.after(() => c.close());
  const login = { sasl_username: 'alice', sasl_method: 'PLAIN', sender: 'alice@example.org' };
  const message = async (instance: string, rcpts: string[]): Promise<string> => {
    for (const r of rcpts) assert.equal(await c.ask(rcptRequest({ ...login, instance, recipient: r })), 'DUNNO');
    // Postfix 3.x: at END-OF-MESSAGE the recipient is given only when there was exactly one.
    return c.ask(rcptRequest({ ...login, instance, protocol_state: 'END-OF-MESSAGE', recipient: rcpts.length === 1 ? rcpts[0]! : '', recipient_count: String(rcpts.length), size: '2048' }));
  };
  // Mail to our own domain is inbound: never counted against the outbound rule.
  assert.equal(await message('i1', ['bob@example.org', 'carol@example.org']), 'DUNNO');
  assert.equal(await message('i2', ['bob@example.org']), 'DUNNO');
  assert.equal(await message('i3', ['bob@example.org']), 'DUNNO');
  // Outbound (two foreign recipients, named only at RCPT): the third message is over the limit.
  assert.equal(await message('o1', ['x@other.example', 'y@another.example']), 'DUNNO');
  assert.equal(await message('o2', ['x@other.example', 'bob@example.org']), 'DUNNO');
  assert.equal(await message('o3', ['z@third.example', 'w@third.example']), TOO_MANY_MESSAGES);
  const refused = p.decisions().at(-1);
  assert.equal(refused?.event, 'deferred');
  assert.equal(refused?.stage, 'END-OF-MESSAGE');
  assert.equal(refused?.check, 'rate-limit');
  assert.match(String(refused?.reason), /^rule login-msgs: login alice at 3 messages in 1h, limit 2$/);
});

test('policyd: rate-limit counts relayed recipients per login at RCPT; outbound-guard sits in the same list', async (t) => {
  const p = await startPolicyd(t, {
    config: { checks: { 'rate-limit': { rules: [{ name: 'login-rcpts', key: 'login', direction: 'outbound', window: '1h', limit: 3 }] } } },
    policyd: { pipeline: { RCPT: ['outbound-guard', 'rate-limit'] } },
  });
  const c = await policyClient(p.port);
  t.after(() => c.close());
  const ask = (recipient: string, instance = 'i1') => c.ask(rcptRequest({ sasl_username: 'alice', sasl_method: 'PLAIN', sender: 'alice@example.org', recipient, instance }));
  assert.equal(await ask('a@one.example'), 'DUNNO');
  assert.equal(await ask('b@two.example'), 'DUNNO');
  assert.equal(await ask('bob@example.org'), 'DUNNO');
  assert.equal(await ask('c@three.example', 'i2'), 'DUNNO');
  assert.equal(await ask('d@four.example', 'i2'), '450 4.7.1 Rate limit exceeded: too many recipients, try again later');
  assert.deepEqual(
    p.decisions().map((l) => l.event),
    ['accepted', 'accepted', 'accepted', 'accepted', 'deferred'],
  );
});
