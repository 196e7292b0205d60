// sender-domain and recipient-domain against a loopback DNS server: NXDOMAIN and "no MX, no
// address" → 550, SERVFAIL and time-out → 450, an MX or only an A/AAAA record → pass, a null MX,
// the null sender, and our own domains without a query.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { recipientDomain } from '../../src/checks/recipient-domain.ts';
import { senderDomain } from '../../src/checks/sender-domain.ts';
import { runStage } from '../../src/pipeline/runner.ts';
import { senderAccess } from '../../src/checks/sender-access.ts';
import { startDns } from '../harness/dns.ts';
import { build, ctx, mailbox, makeEnv, place } from './env.ts';

async function setup(t: TestContext) {
  const dns = await startDns(t, {
    'mx.example': { MX: ['10 mail.mx.example'], names: { mail: { A: ['198.51.100.1'] } } },
    'a-only.example': { A: ['198.51.100.2'] },
    'aaaa-only.example': { AAAA: ['2001:db8::2'] },
    'txt-only.example': { TXT: ['hello'] },
    'nullmx.example': { MX: ['0 .'] },
    'known.example': {},
    'broken.example': { mode: 'servfail' },
    'slow.example': { mode: 'timeout' },
  });
  const te = await makeEnv(t, { dns, domains: ['example.org'] });
  return {
    dns,
    ...te,
    sender: build(senderDomain, {}, te.env),
    recipient: build(recipientDomain, {}, te.env),
  };
}

test('sender-domain: MX, or only A / AAAA, passes', async (t) => {
  const { sender } = await setup(t);
  for (const d of ['mx.example', 'a-only.example', 'aaaa-only.example']) {
    assert.deepEqual(await sender.mail!(ctx(), mailbox(`a@${d}`)), { kind: 'pass' }, d);
  }
});

test('sender-domain: NXDOMAIN and "no MX and no address" → 550 5.1.8; null MX → 550 5.7.27', async (t) => {
  const { sender } = await setup(t);
  const nx = await sender.mail!(ctx(), mailbox('a@nope.known.example'));
  assert.deepEqual(nx, { kind: 'reject', reply: { code: 550, enhanced: '5.1.8', text: '<a@nope.known.example>: Sender address rejected: Domain not found' }, reason: 'sender domain nope.known.example: nxdomain' });
  const empty = await sender.mail!(ctx(), mailbox('a@txt-only.example'));
  assert.equal(empty.kind === 'reject' && empty.reason, 'sender domain txt-only.example: no-mx-no-address');
  const nul = await sender.mail!(ctx(), mailbox('a@nullmx.example'));
  assert.deepEqual(nul.kind === 'reject' && nul.reply, { code: 550, enhanced: '5.7.27', text: '<a@nullmx.example>: Sender address rejected: Domain nullmx.example does not accept mail (nullMX)' });
});

test('sender-domain: SERVFAIL and time-out → 450 4.1.8', async (t) => {
  const { sender, logs } = await setup(t);
  for (const d of ['broken.example', 'slow.example']) {
    const v = await sender.mail!(ctx(), mailbox(`a@${d}`));
    assert.deepEqual(v.kind === 'defer' && v.reply, { code: 450, enhanced: '4.1.8', text: `<a@${d}>: Sender address rejected: Domain not found` }, d);
  }
  assert.deepEqual(
    logs.filter((l) => l.msg === 'sender domain lookup failed; deferring').map((l) => l.err),
    ['MX: ESERVFAIL', 'MX: ETIMEOUT'],
  );
});

test('sender-domain: the null sender and our own domains pass without a query', async (t) => {
  const { sender, dns } = await setup(t);
  assert.deepEqual(await sender.mail!(ctx(), null), { kind: 'pass' });
  assert.deepEqual(await sender.mail!(ctx(), mailbox('a@example.org')), { kind: 'pass' });
  assert.equal(dns.queries('example.org'), 0);
});

test('sender-domain: an aborted check (deadline) gives 450, not a pass', async (t) => {
  const { sender } = await setup(t);
  const ac = new AbortController();
  const pending = sender.mail!(ctx({}, undefined, ac.signal), mailbox('a@slow.example'));
  ac.abort(new Error('deadline'));
  const v = await pending;
  assert.equal(v.kind === 'defer' && v.reply.code, 450);
  assert.match(v.kind === 'defer' ? v.reason : '', /ECANCELLED/);
});

test('recipient-domain: pass / 550 5.1.2 / 556 5.1.10 / 450 4.1.2', async (t) => {
  const { recipient, dns } = await setup(t);
  assert.deepEqual(await recipient.rcpt!(ctx(), mailbox('b@mx.example')), { kind: 'pass' });
  assert.deepEqual(await recipient.rcpt!(ctx(), mailbox('b@a-only.example')), { kind: 'pass' });
  const nx = await recipient.rcpt!(ctx(), mailbox('b@gone.known.example'));
  assert.deepEqual(nx.kind === 'reject' && nx.reply, { code: 550, enhanced: '5.1.2', text: '<b@gone.known.example>: Recipient address rejected: Domain not found' });
  const nul = await recipient.rcpt!(ctx(), mailbox('b@nullmx.example'));
  assert.deepEqual(nul.kind === 'reject' && nul.reply, { code: 556, enhanced: '5.1.10', text: '<b@nullmx.example>: Recipient address rejected: Domain nullmx.example does not accept mail (nullMX)' });
  for (const d of ['broken.example', 'slow.example']) {
    const v = await recipient.rcpt!(ctx(), mailbox(`b@${d}`));
    assert.deepEqual(v.kind === 'defer' && v.reply, { code: 450, enhanced: '4.1.2', text: `<b@${d}>: Recipient address rejected: Domain not found` }, d);
  }
  assert.deepEqual(await recipient.rcpt!(ctx(), mailbox('b@example.org')), { kind: 'pass' });
  assert.equal(dns.queries('example.org'), 0);
});

test('sender-domain in the runner: a sender-access OK placed first lets an unknown domain through', async (t) => {
  const { sender, env } = await setup(t);
  const access = place('sender-access', build(senderAccess, { entries: { 'nope.known.example': 'ok' } }, env), true);
  const unknown = place('sender-domain', sender);
  const from = mailbox('a@nope.known.example');
  const a = await runStage('mail', [access, unknown], ctx(), (h, c) => h.mail?.(c, from), env.log);
  assert.deepEqual([a.verdict.kind, a.check], ['permit', 'sender-access']);
  const b = await runStage('mail', [unknown, access], ctx(), (h, c) => h.mail?.(c, from), env.log);
  assert.deepEqual([b.verdict.kind, b.check], ['reject', 'sender-domain']);
});
