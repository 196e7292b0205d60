// The helo check: syntax (domain or address literal), a HELO that claims to be us (our host
// name, our domains, our listener addresses), requireFqdn, and the MAIL-stage recheck.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { helo, heloSyntaxProblem } from '../../src/checks/helo.ts';
import { build, ctx, makeEnv } from './env.ts';

test('helo: valid names and address literals pass', async (t) => {
  const { env } = await makeEnv(t);
  const h = build(helo, { ownAddresses: ['192.0.2.25', '2001:db8::25'] }, env);
  for (const name of ['mail.sender.example', 'MAIL.Sender.Example.', 'host_1.example', '[198.51.100.7]', '[IPv6:2001:db8::7]', 'localhost']) {
    assert.deepEqual(await h.helo!(ctx(), name), { kind: 'pass' }, name);
  }
});

test('helo: bad syntax is refused with 501 5.5.2 Invalid name', async (t) => {
  const { env } = await makeEnv(t);
  const h = build(helo, {}, env);
  for (const [name, why] of [
    ['192.0.2.7', 'a bare IP address (write it as [address])'],
    ['2001:db8::7', 'a bare IP address (write it as [address])'],
    ['[2001:db8::7]', 'IPv6 literal without the IPv6: tag'],
    ['[300.1.1.1]', 'not an address literal'],
    ['[x.example]', 'not an address literal'],
    ['-bad-.example', 'not a domain name'],
    ['a..example', 'not a domain name'],
    ['spa ce.example', 'not a domain name'],
    ['ünïcode.example', 'not a domain name'],
  ]) {
    assert.equal(heloSyntaxProblem(name!), why, name);
    const v = await h.helo!(ctx(), name!);
    assert.deepEqual(v.kind === 'reject' && v.reply, { code: 501, enhanced: '5.5.2', text: `<${name}>: Helo command rejected: Invalid name` }, name);
  }
});

test('helo: claiming to be us is refused with 550 5.7.1', async (t) => {
  const { env } = await makeEnv(t, { hostname: 'mx.example.org', domains: ['example.org', 'example.com'] });
  const h = build(helo, { ownAddresses: ['192.0.2.25', '2001:db8::25'] }, env);
  for (const name of ['mx.example.org', 'MX.EXAMPLE.ORG.', 'example.org', 'example.com', '[192.0.2.25]', '[IPv6:2001:DB8:0::25]']) {
    const v = await h.helo!(ctx(), name);
    assert.deepEqual(v.kind === 'reject' && v.reply, { code: 550, enhanced: '5.7.1', text: `<${name}>: Helo command rejected: You are not me` }, name);
  }
  assert.equal((await h.helo!(ctx(), '[192.0.2.26]')).kind, 'pass');
  assert.equal((await h.helo!(ctx(), 'sub.example.org')).kind, 'pass');
});

test('helo: requireFqdn refuses a name without a dot with 504 5.5.2', async (t) => {
  const { env } = await makeEnv(t);
  const h = build(helo, { requireFqdn: true }, env);
  const v = await h.helo!(ctx(), 'laptop');
  assert.deepEqual(v.kind === 'reject' && v.reply, { code: 504, enhanced: '5.5.2', text: '<laptop>: Helo command rejected: need fully-qualified hostname' });
  assert.equal((await h.helo!(ctx(), '[198.51.100.7]')).kind, 'pass');
  assert.equal((await build(helo, {}, env).helo!(ctx(), 'laptop')).kind, 'pass');
});

test('helo at MAIL: the earlier HELO is judged, except for a client that logged in', async (t) => {
  const { env } = await makeEnv(t);
  const h = build(helo, {}, env);
  assert.equal((await h.mail!(ctx({ helo: 'mx.example.org' }), null)).kind, 'reject');
  assert.equal((await h.mail!(ctx({ helo: 'mx.example.org', login: 'alice@example.org' }), null)).kind, 'pass');
  assert.equal(helo.options.safeParse({ ownAddresses: ['mx.example.org'] }).success, false);
});

test('helo: a very long HELO is cut in the reply so the line stays under 512 octets', async (t) => {
  const { env } = await makeEnv(t);
  const name = `${'a'.repeat(300)}.example`;
  const v = await build(helo, {}, env).helo!(ctx(), name);
  assert.deepEqual(v.kind === 'reject' && v.reply, { code: 501, enhanced: '5.5.2', text: `<${'a'.repeat(255)}...>: Helo command rejected: Invalid name` });
});
