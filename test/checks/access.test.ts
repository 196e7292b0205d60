// The access-map checks (client, HELO, sender, recipient): entries from the config and from a
// file that is re-read after a change, Postfix's lookup order, every action, and bad entries
// refused with the setting named.
import assert from 'node:assert/strict';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { clientAccess } from '../../src/checks/client-access.ts';
import { heloAccess } from '../../src/checks/helo-access.ts';
import { recipientAccess } from '../../src/checks/recipient-access.ts';
import { senderAccess } from '../../src/checks/sender-access.ts';
import { runStage } from '../../src/pipeline/runner.ts';
import { build, ctx, mailbox, makeEnv, place } from './env.ts';

test('sender-access: exact address, domain, .parent, user@ and <> keys in Postfix order', async (t) => {
  const { env } = await makeEnv(t);
  const h = build(
    senderAccess,
    {
      entries: {
        'boss@spam.example': 'ok',
        'spam.example': 'reject No spam here',
        '.spam.example': '550 5.7.0 Subdomains are spam too',
        'mailer-daemon@': 'discard',
        '<>': 'defer Bounces later',
        'ham.spam.example': 'dunno',
      },
    },
    env,
  );
  const mail = (from: string | null) => h.mail!(ctx(), from === null ? null : mailbox(from));
  assert.deepEqual(await mail('boss@spam.example'), { kind: 'permit', reason: 'sender-access: <boss@spam.example> matched "boss@spam.example" (config)' });
  assert.deepEqual(await mail('Joe@SPAM.example'), {
    kind: 'reject',
    reply: { code: 554, enhanced: '5.7.1', text: '<Joe@spam.example>: Sender address rejected: No spam here' },
    reason: 'sender-access: <Joe@spam.example> matched "spam.example" (config)',
  });
  const sub = await mail('x@a.b.spam.example');
  assert.equal(sub.kind, 'reject');
  assert.deepEqual(sub.kind === 'reject' && sub.reply, { code: 550, enhanced: '5.7.0', text: '<x@a.b.spam.example>: Sender address rejected: Subdomains are spam too' });
  // "dunno" stops the search: the parent's entry does not apply.
  assert.deepEqual(await mail('x@ham.spam.example'), { kind: 'pass' });
  assert.equal((await mail('MAILER-DAEMON@anywhere.example')).kind, 'discard');
  const bounce = await mail(null);
  assert.deepEqual(bounce.kind === 'defer' && bounce.reply, { code: 450, enhanced: '4.7.1', text: '<>: Sender address rejected: Bounces later' });
  assert.deepEqual(await mail('someone@other.example'), { kind: 'pass' });
  // At RCPT the transaction's sender is looked up.
  assert.equal((await h.rcpt!(ctx({}, { from: 'a@spam.example' }), mailbox('x@example.org'))).kind, 'reject');
});

test('recipient-access: per recipient, with the Postfix reject wording', async (t) => {
  const { env } = await makeEnv(t);
  const h = build(recipientAccess, { entries: { 'noreply@example.org': 'reject', 'example.org': 'ok' } }, env);
  const v = await h.rcpt!(ctx(), mailbox('NoReply@example.org'));
  assert.deepEqual(v.kind === 'reject' && v.reply, { code: 554, enhanced: '5.7.1', text: '<NoReply@example.org>: Recipient address rejected: Access denied' });
  assert.equal((await h.rcpt!(ctx(), mailbox('alice@example.org'))).kind, 'permit');
  assert.equal((await h.rcpt!(ctx(), mailbox('alice@example.net'))).kind, 'pass');
});

test('client-access: the narrowest CIDR range wins; IPv6 too', async (t) => {
  const { env } = await makeEnv(t);
  const h = build(clientAccess, { entries: { '192.0.2.0/24': 'reject', '192.0.2.128/25': 'ok', '192.0.2.200': 'defer', '2001:db8::/32': '421 4.7.0 Go away' } }, env);
  const at = (ip: string) => h.connect!(ctx({ clientAddress: ip }));
  const r = await at('192.0.2.5');
  assert.deepEqual(r.kind === 'reject' && r.reply, { code: 554, enhanced: '5.7.1', text: '[192.0.2.5]: Client host rejected: Access denied' });
  assert.equal((await at('192.0.2.129')).kind, 'permit');
  const d = await at('192.0.2.200');
  assert.deepEqual(d.kind === 'defer' && d.reply, { code: 450, enhanced: '4.7.1', text: '[192.0.2.200]: Client host rejected: Try again later' });
  const six = await at('2001:db8:1::7');
  assert.deepEqual(six.kind === 'defer' && six.reply, { code: 421, enhanced: '4.7.0', text: '[2001:db8:1::7]: Client host rejected: Go away' });
  assert.deepEqual(await at('198.51.100.1'), { kind: 'pass' });
  assert.equal((await at('::ffff:192.0.2.6')).kind, 'reject');
});

test('helo-access: host name and parent domains; at MAIL the earlier HELO is looked up', async (t) => {
  const { env } = await makeEnv(t);
  const h = build(heloAccess, { entries: { '.dynamic.example': 'reject Dynamic hosts must use a relay', '[192.0.2.9]': 'reject' } }, env);
  const v = await h.helo!(ctx(), 'host-1.Dynamic.example');
  assert.deepEqual(v.kind === 'reject' && v.reply, { code: 554, enhanced: '5.7.1', text: '<host-1.Dynamic.example>: Helo command rejected: Dynamic hosts must use a relay' });
  assert.equal((await h.helo!(ctx(), 'dynamic.example')).kind, 'pass');
  assert.equal((await h.helo!(ctx(), '[192.0.2.9]')).kind, 'reject');
  assert.equal((await h.mail!(ctx({ helo: 'a.dynamic.example' }), null)).kind, 'reject');
});

test('access: "hold" defers (no hold queue yet) and says so in the log', async (t) => {
  const { env, logs } = await makeEnv(t);
  const h = build(senderAccess, { entries: { 'quarantine.example': 'hold' } }, env);
  const v = await h.mail!(ctx(), mailbox('a@quarantine.example'));
  assert.deepEqual(v.kind === 'defer' && v.reply, { code: 450, enhanced: '4.7.1', text: '<a@quarantine.example>: Sender address rejected: Try again later' });
  assert.equal(logs.filter((l) => l.msg === 'access map action "hold" is not supported yet; deferring instead').length, 1);
});

test('access: entries from a file are re-read after a change, at most once a second', async (t) => {
  const { env, dir, clock } = await makeEnv(t);
  const file = join(dir, 'sender-access');
  await writeFile(file, '# blocked senders\nspam.example   REJECT   Go away\n\nfriend.example OK\n');
  const h = build(senderAccess, { file, entries: { 'config.example': 'reject' } }, env);
  const mail = (from: string) => h.mail!(ctx(), mailbox(from));
  const first = await mail('a@spam.example');
  assert.deepEqual(first.kind === 'reject' && first.reply.text, '<a@spam.example>: Sender address rejected: Go away');
  assert.equal((await mail('a@friend.example')).kind, 'permit');
  assert.equal((await mail('a@config.example')).kind, 'reject');

  await writeFile(file, 'spam.example DISCARD\n');
  await utimes(file, new Date(clock.now / 1000 + 10), new Date(clock.now / 1000 + 10));
  // Within the second: the file is not looked at yet.
  clock.advance(500);
  assert.equal((await mail('a@spam.example')).kind, 'reject');
  clock.advance(600);
  assert.equal((await mail('a@spam.example')).kind, 'discard');
  assert.equal((await mail('a@friend.example')).kind, 'pass');
  assert.equal((await mail('a@config.example')).kind, 'reject');

  // A broken edit is not applied: the entries last read stay.
  await writeFile(file, 'spam.example FROBNICATE\nfriend.example\n');
  await utimes(file, new Date(clock.now / 1000 + 20), new Date(clock.now / 1000 + 20));
  clock.advance(1000);
  assert.equal((await mail('a@spam.example')).kind, 'discard');
});

test('access: bad entries stop the start with the setting, the value and the fix', async (t) => {
  const { env, dir } = await makeEnv(t);
  assert.throws(() => build(clientAccess, { entries: { 'not-an-ip': 'reject' } }, env), /^Error: checks\.client-access\.entries: "not-an-ip" is not an IP address or CIDR range\. Fix: write each entry as "key action \[text\]"/);
  assert.throws(() => build(senderAccess, { entries: { 'a.example': 'frobnicate' } }, env), /checks\.sender-access\.entries: "frobnicate" is not an action; use ok, dunno, reject, defer, discard, hold or a 4xx\/5xx reply code/);
  assert.throws(() => build(senderAccess, { entries: { 'a.example': '550 4.7.1 mixed' } }, env), /must start with 5 like its reply code/);
  const file = join(dir, 'bad');
  await writeFile(file, 'ok.example ok\nlonely.example\n');
  assert.throws(() => build(recipientAccess, { file }, env), /checks\.recipient-access\.file: '.*bad' line 2: "lonely\.example" has a key but no action/);
  assert.throws(() => build(recipientAccess, { file: join(dir, 'missing') }, env), /checks\.recipient-access\.file: cannot read '.*missing': ENOENT.*Fix: create the file/);
});

test('access in the runner: a recipient-access OK skips a later reject; order decides', async (t) => {
  const { env } = await makeEnv(t);
  const ok = place('recipient-access', build(recipientAccess, { entries: { 'postmaster@example.org': 'ok' } }, env), true);
  const no = place('sender-access', build(senderAccess, { entries: { 'spam.example': 'reject' } }, env), true);
  const c = ctx({}, { from: 'x@spam.example' });
  const rcpt = mailbox('postmaster@example.org');
  const a = await runStage('rcpt', [ok, no], c, (h, cx) => h.rcpt?.(cx, rcpt), env.log);
  assert.deepEqual([a.verdict.kind, a.check], ['permit', 'recipient-access']);
  const b = await runStage('rcpt', [no, ok], c, (h, cx) => h.rcpt?.(cx, rcpt), env.log);
  assert.deepEqual([b.verdict.kind, b.check], ['reject', 'sender-access']);
});
