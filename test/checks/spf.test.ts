// The spf check against real SPF records on a loopback DNS server: pass, fail, softfail,
// permerror, temperror (a zone that never answers), no policy, the Received-SPF header, logins
// left alone, and one evaluation per transaction.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { spf } from '../../src/checks/spf.ts';
import { greylist } from '../../src/checks/greylist.ts';
import { runStage } from '../../src/pipeline/runner.ts';
import { startDns } from '../harness/dns.ts';
import { build, ctx, mailbox, makeEnv, place } from './env.ts';

async function setup(t: TestContext) {
  const dns = await startDns(t, {
    'pass.example': { TXT: ['v=spf1 ip4:192.0.2.0/24 -all'] },
    'fail.example': { TXT: ['v=spf1 ip4:198.51.100.1 -all'] },
    'soft.example': { TXT: ['v=spf1 ~all'] },
    'perm.example': { TXT: ['v=spf1 frobnicate:x -all'] },
    'none.example': { MX: ['10 mx.none.example'], names: { mx: { A: ['198.51.100.7'] } } },
    'slow.example': { mode: 'timeout' },
  });
  return { dns, ...(await makeEnv(t, { dns })) };
}

const unfold = (h: string) => h.replace(/\r\n/g, '');
const session = { clientAddress: '192.0.2.10', helo: 'client.pass.example' };

test('spf: pass gives a Received-SPF header and no opinion', async (t) => {
  const { env } = await setup(t);
  const h = build(spf, {}, env);
  const v = await h.mail!(ctx(session), mailbox('a@pass.example'));
  assert.equal(v.kind, 'pass');
  const headers = v.kind === 'pass' ? v.headers ?? [] : [];
  assert.equal(headers.length, 1);
  assert.equal(
    unfold(headers[0]!),
    'Received-SPF: pass (mx.example.org: domain of a@pass.example designates 192.0.2.10 as permitted sender) client-ip=192.0.2.10; envelope-from="a@pass.example"; helo=client.pass.example; receiver=mx.example.org; identity=mailfrom;',
  );
  assert.ok(headers[0]!.split('\r\n').every((line) => line.length <= 78));
});

test('spf: fail rejects with 550 5.7.23 by default; score and ignore when configured', async (t) => {
  const { env } = await setup(t);
  const v = await build(spf, {}, env).mail!(ctx(session), mailbox('a@fail.example'));
  assert.deepEqual(v.kind === 'reject' && v.reply, { code: 550, enhanced: '5.7.23', text: 'SPF validation failed' });
  assert.match(v.kind === 'reject' ? v.reason : '', /^spf=fail for a@fail\.example from 192\.0\.2\.10/);
  const scored = await build(spf, { fail: 'score', failPoints: 7 }, env).mail!(ctx(session), mailbox('a@fail.example'));
  assert.equal(scored.kind === 'score' && `${scored.rule}=${scored.points}`, 'spf:fail=7');
  assert.match(unfold(scored.kind === 'score' ? scored.headers![0]! : ''), /^Received-SPF: fail \(/);
  const ignored = await build(spf, { fail: 'ignore' }, env).mail!(ctx(session), mailbox('a@fail.example'));
  assert.equal(ignored.kind, 'pass');
});

test('spf: softfail scores (points configurable); permerror is ignored unless asked', async (t) => {
  const { env } = await setup(t);
  const soft = await build(spf, { softfailPoints: 1.5 }, env).mail!(ctx(session), mailbox('a@soft.example'));
  assert.equal(soft.kind === 'score' && `${soft.rule}=${soft.points}`, 'spf:softfail=1.5');
  const perm = await build(spf, {}, env).mail!(ctx(session), mailbox('a@perm.example'));
  assert.equal(perm.kind, 'pass');
  assert.match(unfold(perm.kind === 'pass' ? perm.headers![0]! : ''), /^Received-SPF: permerror /);
  const strict = await build(spf, { permerror: 'reject' }, env).mail!(ctx(session), mailbox('a@perm.example'));
  assert.deepEqual(strict.kind === 'reject' && strict.reply, { code: 550, enhanced: '5.7.24', text: 'SPF validation error' });
});

test('spf: a DNS time-out is a temperror and defers with 451 4.4.3; the retry asks again', async (t) => {
  const { env, dns } = await setup(t);
  const h = build(spf, {}, env);
  const c = ctx(session);
  const v = await h.mail!(c, mailbox('a@slow.example'));
  assert.deepEqual(v.kind === 'defer' && v.reply, { code: 451, enhanced: '4.4.3', text: 'Temporary DNS failure checking SPF, please try again later' });
  await h.mail!(c, mailbox('a@slow.example'));
  assert.equal(dns.queries('slow.example', 'TXT'), 2);
  assert.equal((await build(spf, { temperror: 'ignore' }, env).mail!(ctx(session), mailbox('a@slow.example'))).kind, 'pass');
});

test('spf: a domain without a policy passes with spf=none', async (t) => {
  const { env } = await setup(t);
  const v = await build(spf, {}, env).mail!(ctx(session), mailbox('a@none.example'));
  assert.equal(v.kind, 'pass');
  assert.match(unfold(v.kind === 'pass' ? v.headers![0]! : ''), /^Received-SPF: none \(mx\.example\.org: none\.example does not designate permitted sender hosts\) client-ip=192\.0\.2\.10;/);
});

test('spf: the null sender is checked as postmaster@HELO (RFC 7208 §2.4)', async (t) => {
  const { env } = await setup(t);
  const v = await build(spf, {}, env).mail!(ctx({ clientAddress: '192.0.2.10', helo: 'fail.example' }), null);
  assert.equal(v.kind, 'reject');
  assert.match(v.kind === 'reject' ? v.reason : '', /postmaster@fail\.example/);
});

test('spf: never applied to a logged-in client', async (t) => {
  const { env, dns } = await setup(t);
  const v = await build(spf, {}, env).mail!(ctx({ ...session, login: 'a@fail.example' }), mailbox('a@fail.example'));
  assert.deepEqual(v, { kind: 'pass' });
  assert.equal(dns.queries('fail.example'), 0);
});

test('spf at RCPT: evaluated once per transaction; the header rides with the first recipient only', async (t) => {
  const { env, dns } = await setup(t);
  const h = build(spf, {}, env);
  const base = ctx(session);
  const first = await h.rcpt!({ ...base, tx: { mailFrom: mailbox('a@soft.example'), recipients: [] } }, mailbox('x@example.org'));
  const second = await h.rcpt!({ ...base, tx: { mailFrom: mailbox('a@soft.example'), recipients: [mailbox('x@example.org')] } }, mailbox('y@example.org'));
  assert.equal(first.kind === 'score' && first.headers?.length, 1);
  assert.deepEqual(second, { kind: 'score', points: 2, rule: 'spf:softfail', tags: ['auth-failed'] });
  assert.equal(dns.queries('soft.example', 'TXT'), 1);
});

test('spf in the runner after greylisting: a greylisted triplet is deferred before SPF is asked', async (t) => {
  const { env, dns } = await setup(t);
  const checks = [place('greylist', build(greylist, {}, env)), place('spf', build(spf, {}, env))];
  const c = ctx(session, { from: 'a@fail.example' });
  const out = await runStage('rcpt', checks, c, (h, cx) => h.rcpt?.(cx, mailbox('x@example.org')), env.log);
  assert.deepEqual([out.verdict.kind, out.check], ['defer', 'greylist']);
  assert.equal(dns.queries('fail.example'), 0);
});
