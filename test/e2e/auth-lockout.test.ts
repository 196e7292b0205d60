// A login failure may slow or block AUTH only, and only where it failed (issue 18 item 6): the
// owner of a login locked from one network still logs in from another, the MX port on the locked
// address still takes mail from other servers, and a full password-hashing pool answers 454 at
// once instead of hanging or pretending the password was wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDirectory } from '../../src/app/accounts.ts';
import { dial, type Dialog } from '../harness/dial.ts';
import { startServer, TEST_LISTENERS } from '../harness/server.ts';
import { authPlain } from '../harness/auth.ts';

const ALICE = ['alice@example.org', 'alice password 1'] as const;
const users: Array<[string, string]> = [[...ALICE], ['bob@example.org', 'bob password 12']];
const plain = authPlain;
// Locks after three failures of one login from one network; the per-login delay stays out of it.
const LOCK_FAST = { auth: { maxFailures: 3, maxLoginFailures: 100, window: '1h', block: '1h' } };

async function ehloOverTls(port: number, host = '127.0.0.1'): Promise<Dialog> {
  const c = await dial(port, { tls: true, host });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  return c;
}

/** Three wrong passwords for alice: the third answers that the login is locked. */
async function lockAlice(c: Dialog): Promise<void> {
  await c.say(plain(ALICE[0], 'guess1')).expect('535 5.7.8');
  await c.say(plain(ALICE[0], 'guess2')).expect('535 5.7.8');
  await c.say(plain(ALICE[0], 'guess3')).expect('454 4.7.0 Too many failed logins');
}

test('auth lockout: alice locked by failures from 127.0.0.1 logs in from ::1 with her password; the MX port on 127.0.0.1 still takes mail', async (t) => {
  const srv = await startServer(t, {
    users,
    config: { ...LOCK_FAST, listeners: { ...TEST_LISTENERS, submissions6: { kind: 'submissions', host: '::1', port: 0 } } },
  });
  const guesser = await ehloOverTls(srv.port('submissions'));
  await lockAlice(guesser);
  // From the network that failed, even the right password is refused for the block time.
  await guesser.say(plain(...ALICE)).expect('454 4.7.0');
  guesser.close();
  const block = await srv.waitForLog((l) => l.event === 'auth-block' && l.scope === 'login');
  assert.equal(block.network, '127.0.0.0/24');

  // The owner, elsewhere (another /64), is not locked out and can send.
  const owner = await ehloOverTls(srv.port('submissions6'), '::1');
  await owner.say(plain(...ALICE)).expect('235');
  await owner.say(`MAIL FROM:<${ALICE[0]}>`).expect('250');
  await owner.say('RCPT TO:<bob@example.org>').expect('250');
  await owner.say('DATA').expect('354');
  owner.send(`From: <${ALICE[0]}>\r\nSubject: from elsewhere\r\n\r\nx\r\n.\r\n`);
  await owner.expect('250 2.0.0');
  await owner.say('QUIT').expect('221');
  const ok = await srv.waitForLog((l) => l.event === 'auth' && l.result === 'success');
  assert.equal(ok.login, ALICE[0]);
  assert.equal(ok.client, '::1');

  // Other servers on the locked address: greeted with 220 (never 421) and their mail taken.
  const mx = await dial(srv.port('mx'));
  const greeting = await mx.expect('220');
  assert.doesNotMatch(greeting.raw, /failed login/i);
  await mx.say('EHLO mx.example.net').expect('250');
  await mx.say('MAIL FROM:<someone@example.net>').expect('250');
  await mx.say(`RCPT TO:<${ALICE[0]}>`).expect('250');
  await mx.say('DATA').expect('354');
  mx.send('From: <someone@example.net>\r\nSubject: inbound while locked\r\n\r\nx\r\n.\r\n');
  await mx.expect('250 2.0.0');
  await mx.say('QUIT').expect('221');
  const box = await srv.waitForMail(ALICE[0]);
  assert.ok(box.some((m) => m.includes('Subject: inbound while locked')));
});

test('auth lockout: behind a trusted PROXY (a tunnel, every client one address) the lock follows the client the proxy names', async (t) => {
  const srv = await startServer(t, {
    users,
    config: { ...LOCK_FAST, listeners: { ...TEST_LISTENERS, submission: { kind: 'submission', port: 0, proxy: { trusted: ['127.0.0.1/32'] } } } },
  });
  const via = async (client: string): Promise<Dialog> => {
    const c = await dial(srv.port('submission'), { prelude: Buffer.from(`PROXY TCP4 ${client} 198.51.100.1 40000 587\r\n`) });
    await c.expect('220');
    await c.say('EHLO laptop').expect('250');
    await c.say('STARTTLS').expect('220');
    await c.startTls();
    await c.say('EHLO laptop').expect('250');
    return c;
  };
  const guesser = await via('203.0.113.7');
  await lockAlice(guesser);
  guesser.close();
  const owner = await via('198.51.100.20');
  await owner.say(plain(...ALICE)).expect('235');
  owner.close();
  // The guesser's network stays locked for alice, through the same proxy.
  const again = await via('203.0.113.99');
  await again.say(plain(...ALICE)).expect('454 4.7.0');
  again.close();
  const block = await srv.waitForLog((l) => l.event === 'auth-block');
  assert.equal(block.network, '203.0.113.0/24');
});

test('auth: with every hashing thread busy and no queue, AUTH answers 454 4.7.0 at once (not 535, not a hang); a later login goes through', async (t) => {
  const srv = await startServer(t, { users, config: { auth: { hashThreads: 1, hashQueue: 0, maxFailures: 100, maxNetworkFailures: 100, maxLoginFailures: 100 } } });
  const clients = await Promise.all(Array.from({ length: 6 }, () => ehloOverTls(srv.port('submissions'))));
  // Written in one tick: the server reads them together, long before one scrypt (tens of ms)
  // is done, so one runs and the rest find the single thread busy.
  const replies = clients.map((c, i) => c.say(plain(`user${i}@example.org`, 'wrong')).read());
  const got = await Promise.all(replies);
  const busy = got.filter((r) => r.code === 454);
  assert.ok(busy.length >= 1, `some AUTH should find the pool full: ${got.map((r) => r.raw).join(' | ')}`);
  for (const r of busy) assert.match(r.raw, /^454 4\.7\.0 Temporary authentication failure/);
  for (const r of got) assert.ok(r.code === 454 || r.code === 535, `only 454 (busy) or 535 (ran, wrong): ${r.raw}`);
  assert.ok(got.some((r) => r.code === 535), 'the job that got the thread ran');
  const busyLogs = srv.logs.filter((l) => l.event === 'auth' && l.result === 'busy');
  assert.equal(busyLogs.length, busy.length);
  assert.ok(srv.logs.some((l) => l.event === 'auth-busy'), 'the operator is told which settings to raise');
  // A deferred try is not a failure: the same clients log in right after.
  for (const c of clients) c.close();
  const c = await ehloOverTls(srv.port('submissions'));
  await c.say(plain(...ALICE)).expect('235');
  c.close();
});

test('auth: an unknown, a disabled and a known login each cost one scrypt on the hashing pool (mailward_password_hashes_total), with the same reply', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-admin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const token = 'a-long-random-admin-token-0123456789';
  writeFileSync(path.join(dir, 'token'), `${token}\n`);
  const srv = await startServer(t, {
    users: [...users, ['carol@example.org', 'carol password 1']],
    config: { admin: { enabled: true, port: 0, tokenFile: path.join(dir, 'token') }, auth: { maxFailures: 100, maxNetworkFailures: 100, maxLoginFailures: 100 } },
  });
  const accounts = openDirectory(srv.config);
  accounts.setDisabled('carol@example.org', true);
  accounts.close();
  const hashed = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${srv.server.adminPort()}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    const m = /^mailward_password_hashes_total\{result="done"\} (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  };
  const c = await ehloOverTls(srv.port('submissions'));
  const cases: Array<[string, string, string]> = [
    ['bob@example.org', 'wrong', '535 5.7.8'],
    ['nobody@example.org', 'wrong', '535 5.7.8'],
    ['nobody@elsewhere.example', 'wrong', '535 5.7.8'],
    ['carol@example.org', 'carol password 1', '535 5.7.8'],
    ['bob@example.org', 'bob password 12', '235'],
  ];
  let before = await hashed();
  for (const [user, pass, expected] of cases) {
    const r = await c.say(plain(user, pass)).expect(expected);
    const after = await hashed();
    assert.equal(after - before, 1, `${user}: one hash on the pool (reply ${r.raw.trim()})`);
    before = after;
  }
  c.close();
  const replies = srv.logs.filter((l) => l.event === 'auth').map((l) => l.result);
  assert.deepEqual(replies, ['failure', 'failure', 'failure', 'failure', 'success']);
});
