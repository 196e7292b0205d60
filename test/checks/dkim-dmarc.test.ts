// The dkim-dmarc check: a message signed here with a key whose public half is in the loopback
// DNS verifies; a tampered copy fails; DMARC p=reject / p=quarantine act only with `enforce`; the
// Authentication-Results header names our host as authserv-id.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { dkimSign, dkimVerify } from 'mailauth';
import { dkimDmarc } from '../../src/checks/dkim-dmarc.ts';
import { spf } from '../../src/checks/spf.ts';
import type { MessageFacts } from '../../src/pipeline/check.ts';
import { runStage } from '../../src/pipeline/runner.ts';
import { startDns } from '../harness/dns.ts';
import { mailauthResolver } from '../../src/checks/lib/dns.ts';
import { build, ctx, makeEnv, place } from './env.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PRIVATE = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const PUBLIC = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

async function setup(t: TestContext) {
  const dns = await startDns(t, {
    // The sender's SPF fails for our test client, so DMARC can pass only through aligned DKIM.
    'signed.example': { TXT: ['v=spf1 -all'], names: { 'sel._domainkey': { TXT: [`v=DKIM1; k=rsa; p=${PUBLIC}`] }, _dmarc: { TXT: ['v=DMARC1; p=reject'] } } },
    'quar.example': { TXT: ['v=spf1 -all'], names: { _dmarc: { TXT: ['v=DMARC1; p=quarantine'] } } },
    'lax.example': { TXT: ['v=spf1 -all'] },
  });
  return { dns, ...(await makeEnv(t, { dns })) };
}

function message(from: string, body = 'Hello Bob,\r\nsee you at noon.\r\n'): string {
  return [`From: Alice <${from}>`, 'To: bob@example.org', 'Subject: Lunch', 'Date: Mon, 05 Jan 2026 12:00:00 +0000', `Message-ID: <1@${from.split('@')[1]}>`, '', body].join('\r\n');
}

async function signed(text: string, now: number, key = PRIVATE): Promise<string> {
  // mailauth reads the keys from signatureData; the top-level fields only satisfy its types.
  const sig = { signingDomain: 'signed.example', selector: 'sel', privateKey: key };
  const r = await dkimSign(text, { ...sig, signatureData: [sig], signTime: new Date(now) });
  assert.deepEqual(r.errors, []);
  assert.match(r.signatures, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=signed\.example;/);
  return r.signatures + text;
}

const facts = (raw: string): MessageFacts => ({ size: raw.length, headers: [], raw: async () => Buffer.from(raw) });
const smtp = (from: string, login?: string) => ctx({ clientAddress: '192.0.2.10', helo: 'client.example', ...(login ? { login } : {}) }, { from, rcpts: ['bob@example.org'] });
const unfold = (h: string) => h.replace(/\r\n/g, '');

test('dkim-dmarc: a message signed with the published key verifies; DMARC passes through DKIM', async (t) => {
  const { env, clock } = await setup(t);
  const h = build(dkimDmarc, {}, env);
  const raw = await signed(message('alice@signed.example'), clock.now);
  const v = await h.data!(smtp('alice@signed.example'), facts(raw));
  assert.equal(v.kind, 'pass');
  const header = unfold(v.kind === 'pass' ? v.headers![0]! : '');
  assert.match(header, /^Authentication-Results: mx\.example\.org; dkim=pass header\.i=@signed\.example header\.s=sel header\.a=rsa-sha256 header\.b=\S+; spf=fail \(/);
  assert.match(header, /; dmarc=pass \(p=REJECT arc=none\) header\.from=signed\.example header\.d=signed\.example$/);
});

test('dkim-dmarc: a tampered message fails DKIM; DMARC p=reject is only logged unless enforced', async (t) => {
  const { env, clock, logs } = await setup(t);
  const raw = (await signed(message('alice@signed.example'), clock.now)).replace('noon', 'midnight');
  const lenient = await build(dkimDmarc, {}, env).data!(smtp('alice@signed.example'), facts(raw));
  assert.equal(lenient.kind, 'pass');
  const header = unfold(lenient.kind === 'pass' ? lenient.headers![0]! : '');
  assert.match(header, /; dkim=neutral \(body hash did not verify\) header\.i=@signed\.example header\.s=sel /);
  assert.match(header, /; dmarc=fail \(p=REJECT arc=none\) header\.from=signed\.example header\.d=signed\.example$/);
  assert.equal(logs.filter((l) => l.msg === 'DMARC failed; not enforced (checks.dkim-dmarc.enforce is off)').length, 1);

  const enforced = await build(dkimDmarc, { enforce: true }, env).data!(smtp('alice@signed.example'), facts(raw));
  assert.deepEqual(enforced.kind === 'reject' && enforced.reply, { code: 550, enhanced: '5.7.1', text: 'Message rejected per DMARC policy of signed.example' });
});

test('dkim-dmarc: an unsigned message from a p=quarantine domain scores when enforced', async (t) => {
  const { env } = await setup(t);
  const raw = message('carol@quar.example');
  const v = await build(dkimDmarc, { enforce: true, quarantinePoints: 4 }, env).data!(smtp('carol@quar.example'), facts(raw));
  assert.equal(v.kind === 'score' && `${v.rule}=${v.points}`, 'dkim-dmarc:quarantine=4');
  assert.match(unfold(v.kind === 'score' ? v.headers![0]! : ''), /^Authentication-Results: mx\.example\.org; dkim=none \(message not signed\); spf=fail .*; dmarc=fail \(p=QUARANTINE arc=none\) header\.from=quar\.example header\.d=quar\.example$/);
  // No DMARC record: nothing to enforce.
  const none = await build(dkimDmarc, { enforce: true }, env).data!(smtp('dave@lax.example'), facts(message('dave@lax.example')));
  assert.equal(none.kind, 'pass');
  assert.match(unfold(none.kind === 'pass' ? none.headers![0]! : ''), /dmarc=none header\.from=lax\.example$/);
});

test('dkim-dmarc: a message signed by another key (forged) fails', async (t) => {
  const { env, clock } = await setup(t);
  const other = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forged = await signed(message('alice@signed.example'), clock.now, other);
  const v = await build(dkimDmarc, {}, env).data!(smtp('alice@signed.example'), facts(forged));
  const header = unfold(v.kind === 'pass' ? v.headers![0]! : '');
  assert.match(header, /; dkim=fail \(bad signature\) header\.i=@signed\.example header\.s=sel /);
  assert.match(header, /; dmarc=fail /);
  assert.equal((await build(dkimDmarc, { enforce: true }, env).data!(smtp('alice@signed.example'), facts(forged))).kind, 'reject');
});

test('dkim-dmarc: logins are left alone; an unreadable message defers', async (t) => {
  const { env, dns } = await setup(t);
  const h = build(dkimDmarc, { enforce: true }, env);
  assert.deepEqual(await h.data!(smtp('alice@signed.example', 'alice@signed.example'), facts(message('alice@signed.example'))), { kind: 'pass' });
  assert.equal(dns.queries('_dmarc.signed.example'), 0);
  const v = await h.data!(smtp('alice@signed.example'), { size: 0, headers: [], raw: () => Promise.reject(new Error('gone')) });
  assert.deepEqual(v.kind === 'defer' && v.reply, { code: 451, enhanced: '4.3.0', text: 'Temporary failure, please try again later' });
});

test('dkim-dmarc in the runner: the header reaches the stage outcome', async (t) => {
  const { env, clock } = await setup(t);
  const raw = await signed(message('alice@signed.example'), clock.now);
  const out = await runStage('data', [place('dkim-dmarc', build(dkimDmarc, { enforce: true }, env))], smtp('alice@signed.example'), (h, c) => h.data?.(c, facts(raw)), env.log);
  assert.equal(out.verdict.kind, 'pass');
  assert.equal(out.headers.length, 1);
  assert.match(out.headers[0]!, /^Authentication-Results: mx\.example\.org;/);
});

test('dkim-dmarc reuses the SPF result of the spf check: no second evaluation for 30 s, then a fresh one', async (t) => {
  const { env, dns, clock } = await setup(t);
  const raw = await signed(message('alice@signed.example'), clock.now);
  const c = smtp('alice@signed.example');
  const atRcpt = await build(spf, { fail: 'score' }, env).rcpt!({ ...c, tx: { mailFrom: c.tx!.mailFrom, recipients: [] } }, c.tx!.recipients[0]!);
  assert.equal(atRcpt.kind, 'score');
  assert.equal(dns.queries('signed.example', 'TXT'), 1);
  const v = await build(dkimDmarc, {}, env).data!(c, facts(raw));
  // The SPF record was not asked for again; the header reads as when dkim-dmarc evaluated it itself.
  assert.equal(dns.queries('signed.example', 'TXT'), 1);
  const header = unfold(v.kind === 'pass' ? v.headers![0]! : '');
  assert.match(header, /; spf=fail \(mx\.example\.org: domain of alice@signed\.example does not designate 192\.0\.2\.10 as permitted sender\) smtp\.mailfrom=alice@signed\.example smtp\.helo=client\.example; dmarc=pass /);
  // Another session with the same client, sender and HELO within 30 s reads the same result.
  await build(dkimDmarc, {}, env).data!(smtp('alice@signed.example'), facts(raw));
  assert.equal(dns.queries('signed.example', 'TXT'), 1);
  // Later it evaluates on its own (a DNS change is seen), with the same outcome in the header.
  clock.advance(30_001);
  const alone = await build(dkimDmarc, {}, env).data!(smtp('alice@signed.example'), facts(raw));
  assert.equal(dns.queries('signed.example', 'TXT'), 2);
  assert.equal(unfold(alone.kind === 'pass' ? alone.headers![0]! : '').replace(/header\.b=\S+/, ''), header.replace(/header\.b=\S+/, ''));
});

test('dkim-dmarc: for unsigned mail the header block alone gives mailauth the same results as the whole message', async (t) => {
  const { env } = await setup(t);
  const body = `${'a long body line that mailauth would otherwise stream through\r\n'.repeat(200)}`;
  for (const text of [message('carol@quar.example', body), message('dave@lax.example', body).replace('From: Alice <dave@lax.example>', 'From: a@lax.example, b@quar.example')]) {
    const head = text.slice(0, text.indexOf('\r\n\r\n') + 4);
    const opts = { resolver: mailauthResolver(env.dns, new AbortController().signal), curTime: new Date(env.clock()) };
    const [whole, headOnly] = await Promise.all([dkimVerify(Buffer.from(text), opts), dkimVerify(Buffer.from(head), opts)]);
    assert.deepEqual(headOnly.results, whole.results);
    assert.deepEqual(headOnly.headerFrom, whole.headerFrom);
    assert.equal(whole.results[0]?.status.result, 'none');
  }
  // A message whose signature is not the first field still counts as signed: read without its
  // body, its body hash could not verify.
  const raw = await signed(message('alice@signed.example'), env.clock());
  const sig = /^DKIM-Signature:[^]*?\r\n(?=[^ \t])/.exec(raw)![0];
  const moved = raw.slice(sig.length).replace('Subject: Lunch\r\n', `Subject: Lunch\r\n${sig}`);
  assert.ok(moved.indexOf('DKIM-Signature:') > 0);
  const v = await build(dkimDmarc, {}, env).data!(smtp('alice@signed.example'), facts(moved));
  assert.match(unfold(v.kind === 'pass' ? v.headers![0]! : ''), /dkim=pass .*header\.i=@signed\.example/);
});
