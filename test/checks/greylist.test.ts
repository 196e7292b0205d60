// Greylisting on a real SQLite store with a clock the test moves: first sight, a retry too early,
// a retry after the delay, the client network, auto-whitelisting, expiry, whitelists, logins,
// and a store that is gone (defer, never pass).
import assert from 'node:assert/strict';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { greylist, normaliseSender } from '../../src/checks/greylist.ts';
import { build, ctx, mailbox, makeEnv } from './env.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const GREYLISTED = { code: 450, enhanced: '4.2.0', text: 'Greylisted, please try again later' };

async function setup(t: import('node:test').TestContext, options: Record<string, unknown> = {}) {
  const te = await makeEnv(t);
  const h = build(greylist, options, te.env);
  const rcpt = (client: string, from: string | null, to: string, extra: { login?: string } = {}) =>
    h.rcpt!(ctx({ clientAddress: client, ...extra }, { from }), mailbox(to));
  return { ...te, rcpt };
}

test('greylist: first sight → 450; too early → 450; after the delay → pass; then passes at once', async (t) => {
  const { rcpt, clock, logs } = await setup(t);
  const first = await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org');
  assert.deepEqual(first.kind === 'defer' && first.reply, GREYLISTED);
  clock.advance(4 * MIN);
  const early = await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org');
  assert.deepEqual(early.kind === 'defer' && early.reply, GREYLISTED);
  assert.match(early.kind === 'defer' ? early.reason : '', /retried too early \(60s left\)/);
  clock.advance(MIN);
  assert.deepEqual(await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org'), { kind: 'pass' });
  clock.advance(10 * DAY);
  assert.deepEqual(await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org'), { kind: 'pass' });
  assert.equal(logs.filter((l) => l.msg === 'greylisting passed').length, 1);
});

test('greylist: the triplet uses the client /24 (IPv4) and /64 (IPv6), the sender and the recipient', async (t) => {
  const { rcpt, clock } = await setup(t);
  await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org');
  await rcpt('2001:db8:1:2::5', 'a@sender.example', 'u@example.org');
  clock.advance(6 * MIN);
  // Another host of the same networks retries: the same triplets.
  assert.equal((await rcpt('192.0.2.99', 'a@sender.example', 'u@example.org')).kind, 'pass');
  assert.equal((await rcpt('2001:db8:1:2:ffff::1', 'A@Sender.example', 'U@example.org')).kind, 'pass');
  // Another network, sender or recipient is a new triplet.
  assert.equal((await rcpt('192.0.3.10', 'a@sender.example', 'u@example.org')).kind, 'defer');
  assert.equal((await rcpt('192.0.2.10', 'b@sender.example', 'u@example.org')).kind, 'defer');
  assert.equal((await rcpt('192.0.2.10', 'a@sender.example', 'v@example.org')).kind, 'defer');
  assert.equal((await rcpt('2001:db8:1:3::5', 'a@sender.example', 'u@example.org')).kind, 'defer');
});

test('greylist: VERP and BATV senders make one triplet (postgrey normalisation)', async (t) => {
  assert.equal(normaliseSender(mailbox('bounce-12345-67@lists.example')), 'bounce-#-#@lists.example');
  assert.equal(normaliseSender(mailbox('prvs=0123abcd=Alice@example.net')), 'alice@example.net');
  assert.equal(normaliseSender(null), '');
  const { rcpt, clock } = await setup(t);
  await rcpt('192.0.2.10', 'bounce-111@lists.example', 'u@example.org');
  clock.advance(6 * MIN);
  assert.equal((await rcpt('192.0.2.10', 'bounce-222@lists.example', 'u@example.org')).kind, 'pass');
});

test('greylist: a client network is whitelisted after N passes, counted at most once an hour', async (t) => {
  const { rcpt, clock } = await setup(t, { autoWhitelist: 3 });
  const pass = async (n: number) => {
    const to = `user${n}@example.org`;
    assert.equal((await rcpt('192.0.2.10', 'a@sender.example', to)).kind, 'defer');
    clock.advance(6 * MIN);
    assert.equal((await rcpt('192.0.2.10', 'a@sender.example', to)).kind, 'pass');
  };
  await pass(1);
  await pass(2); // within the hour: not counted
  clock.advance(HOUR);
  await pass(3);
  clock.advance(HOUR);
  // Two passes counted: a new triplet is still greylisted.
  assert.equal((await rcpt('192.0.2.77', 'new@sender.example', 'fresh@example.org')).kind, 'defer');
  await pass(4);
  // Three: the whole /24 skips greylisting now.
  assert.deepEqual(await rcpt('192.0.2.77', 'other@else.example', 'fresh2@example.org'), { kind: 'pass' });
  // …until unused for maxAge.
  clock.advance(36 * DAY);
  assert.equal((await rcpt('192.0.2.77', 'other@else.example', 'fresh3@example.org')).kind, 'defer');
});

test('greylist: a passed triplet\'s last use is written at most once a minute', async (t) => {
  const { rcpt, clock } = await setup(t, { maxAge: '10d', autoWhitelist: 0 });
  const pass = async (from: string) => (await rcpt('192.0.2.10', from, 'u@example.org')).kind;
  // Within the minute the second pass leaves the stored last use as it was…
  await pass('a@sender.example');
  clock.advance(6 * MIN);
  assert.equal(await pass('a@sender.example'), 'pass');
  clock.advance(30_000);
  assert.equal(await pass('a@sender.example'), 'pass');
  clock.advance(10 * DAY - 29_000);
  assert.equal(await pass('a@sender.example'), 'defer', 'unused for maxAge counted from the pass 30 s earlier');
  // …after a minute it is written again, and the expiry moves with it.
  await pass('b@sender.example');
  clock.advance(6 * MIN);
  assert.equal(await pass('b@sender.example'), 'pass');
  clock.advance(MIN + 1000);
  assert.equal(await pass('b@sender.example'), 'pass');
  clock.advance(10 * DAY);
  assert.equal(await pass('b@sender.example'), 'pass');
});

test('greylist: a passed triplet is forgotten after maxAge; an unretried one after the retry window', async (t) => {
  const { rcpt, clock } = await setup(t, { maxAge: '35d', retryWindow: '2d', autoWhitelist: 0 });
  await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org');
  clock.advance(6 * MIN);
  assert.equal((await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org')).kind, 'pass');
  clock.advance(34 * DAY);
  assert.equal((await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org')).kind, 'pass'); // used: lives on
  clock.advance(35 * DAY + MIN);
  assert.equal((await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org')).kind, 'defer');

  await rcpt('192.0.2.10', 'late@sender.example', 'u@example.org');
  clock.advance(2 * DAY + MIN);
  // First retry after the window: a new first sight, not a pass.
  assert.equal((await rcpt('192.0.2.10', 'late@sender.example', 'u@example.org')).kind, 'defer');
  clock.advance(6 * MIN);
  assert.equal((await rcpt('192.0.2.10', 'late@sender.example', 'u@example.org')).kind, 'pass');
});

test('greylist: logins and whitelisted clients or senders skip it', async (t) => {
  const { rcpt } = await setup(t, { whitelist: { clients: ['198.51.100.0/24', '2001:db8:ff::/48'], senders: ['.trusted.example', 'boss@partner.example'] } });
  assert.deepEqual(await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org', { login: 'alice@example.org' }), { kind: 'pass' });
  assert.deepEqual(await rcpt('198.51.100.7', 'a@sender.example', 'u@example.org'), { kind: 'pass' });
  assert.deepEqual(await rcpt('2001:db8:ff:1::1', 'a@sender.example', 'u@example.org'), { kind: 'pass' });
  assert.deepEqual(await rcpt('192.0.2.10', 'x@mail.trusted.example', 'u@example.org'), { kind: 'pass' });
  assert.deepEqual(await rcpt('192.0.2.10', 'boss@partner.example', 'u@example.org'), { kind: 'pass' });
  assert.equal((await rcpt('192.0.2.10', 'other@partner.example', 'u@example.org')).kind, 'defer');
});

test('greylist: a whitelist file is re-read after a change', async (t) => {
  const te = await makeEnv(t);
  const file = join(te.dir, 'greylist-whitelist');
  await writeFile(file, '# networks and senders\n203.0.113.0/24\n');
  const h = build(greylist, { whitelistFile: file }, te.env);
  const rcpt = (client: string, from: string) => h.rcpt!(ctx({ clientAddress: client }, { from }), mailbox('u@example.org'));
  assert.equal((await rcpt('203.0.113.5', 'a@x.example')).kind, 'pass');
  assert.equal((await rcpt('192.0.2.10', 'a@listed.example')).kind, 'defer');
  await writeFile(file, 'listed.example\n');
  await utimes(file, new Date(te.clock.now / 1000 + 10), new Date(te.clock.now / 1000 + 10));
  te.clock.advance(1000);
  assert.equal((await rcpt('192.0.2.10', 'a@listed.example')).kind, 'pass');
  assert.equal((await rcpt('203.0.113.5', 'b@x.example')).kind, 'defer');
  assert.throws(() => build(greylist, { whitelist: { clients: ['300.1.2.3/8'] } }, te.env), /^Error: checks\.greylist\.whitelist\.clients\[0\]: "300\.1\.2\.3\/8" is neither/);
});

test('greylist: with the store gone it defers with 451 4.3.0, never passes', async (t) => {
  const { rcpt, store, logs } = await setup(t);
  await store.close();
  const v = await rcpt('192.0.2.10', 'a@sender.example', 'u@example.org');
  assert.deepEqual(v.kind === 'defer' && v.reply, { code: 451, enhanced: '4.3.0', text: 'Temporary failure, please try again later' });
  assert.equal(logs.filter((l) => l.msg === 'greylisting store unavailable; deferring').length, 1);
});

test('greylist: the operator\'s relay.trustedNetworks are never greylisted', async (t) => {
  const te = await makeEnv(t);
  const h = build(greylist, {}, { ...te.env, trustedNetworks: ['198.51.100.0/24'] });
  const rcpt = (client: string) => h.rcpt!(ctx({ clientAddress: client }, { from: 'a@sender.example' }), mailbox('u@example.org'));
  assert.deepEqual(await rcpt('198.51.100.7'), { kind: 'pass' });
  assert.equal((await rcpt('198.51.101.7')).kind, 'defer');
});
