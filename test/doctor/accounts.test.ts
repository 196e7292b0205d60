// doctor names the incident's lessons: a login unused for hygiene.unusedLogin (its last login is
// recorded by a real SMTP AUTH), a password older than hygiene.passwordAge, a smarthost
// credential file older than hygiene.credentialAge. The directory's schema v2 migration counts
// an existing user's password from its creation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { runDoctor } from '../../src/doctor/doctor.ts';
import { openDirectory } from '../../src/app/accounts.ts';
import { dial } from '../harness/dial.ts';
import { startServer, testConfig } from '../harness/server.ts';
import { authPlain } from '../harness/auth.ts';

const DAY = 86_400_000;
const QUIET = { interfaces: {}, timeSync: async () => ({ synchronized: true, detail: 'test' }), dnsTimeoutMs: 300, directory: openDirectory };

test('doctor: unused logins, old passwords and old smarthost credentials are named; a login in use is not', async (t) => {
  const srv = await startServer(t, { users: [['alice@example.org', 'alice pass 1'], ['bob@example.org', 'bob pass 1']] });
  const c = await dial(srv.port('submissions'), { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  await c.say(authPlain('alice@example.org', 'alice pass 1')).expect('235');
  await c.say('QUIT').expect('221');
  await srv.stop();
  // Both made 100 days ago, bob's password set 400 days ago (the file's dates, as an old install has them).
  const db = new Database(srv.config.paths.directory);
  db.prepare('UPDATE users SET created = ?').run(Date.now() - 100 * DAY);
  db.prepare('UPDATE users SET password_set = ? WHERE address = ?').run(Date.now() - 400 * DAY, 'bob@example.org');
  db.close();
  const passFile = path.join(srv.dataDir, 'ses.pass');
  writeFileSync(passFile, 'secret\n', { mode: 0o600 });
  const old = new Date(Date.now() - 120 * DAY);
  utimesSync(passFile, old, old);
  const config = testConfig(srv.dataDir, {
    hygiene: { unusedLogin: '30d' },
    delivery: { routes: { '*': 'smarthost:ses' }, smarthosts: { ses: { host: 'email-smtp.eu-west-1.amazonaws.com', tls: 'starttls', auth: { user: 'AKIAEXAMPLE', passwordFile: passFile } } } },
  });
  const findings = await runDoctor(config, QUIET);
  const ours = findings.filter((f) => ['login-unused', 'password-old', 'smarthost-credential-old'].includes(f.id)).map((f) => `${f.id}: ${f.message}`);
  assert.deepEqual(ours, [
    'login-unused: bob@example.org has never logged in (created 100 days ago); an unused login\'s password can be stolen and used without anyone noticing',
    'password-old: the password of bob@example.org was set 400 days ago',
    `smarthost-credential-old: the credential of smarthost ses (email-smtp.eu-west-1.amazonaws.com, user AKIAEXAMPLE) in ${passFile} was last changed 120 days ago`,
  ]);
  assert.match(findings.find((f) => f.id === 'login-unused')!.fix, /^mailward user del bob@example\.org/);
});

test('directory schema v2: an older file gains password dates from its users\' creation', async (t) => {
  const srv = await startServer(t, {});
  await srv.stop();
  const file = srv.config.paths.directory;
  const db = new Database(file);
  db.exec('DROP TABLE users; CREATE TABLE users (address TEXT PRIMARY KEY, password TEXT NOT NULL, created INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0) STRICT;');
  db.prepare('INSERT INTO users (address, password, created) VALUES (?, ?, ?)').run('old@example.org', 'x', 1_600_000_000_000);
  db.pragma('user_version = 1');
  db.close();
  const dir = openDirectory(srv.config);
  t.after(() => dir.close());
  const [u] = dir.listUsers();
  assert.equal(u!.passwordSet.getTime(), 1_600_000_000_000);
  assert.equal(u!.lastLogin, undefined);
});

test('hygiene digest: the server sends doctor\'s account findings on the alert channels by itself', async (t) => {
  const first = await startServer(t, { users: [['carol@example.org', 'carol pass 1']] });
  await first.stop();
  const db = new Database(first.config.paths.directory);
  db.prepare('UPDATE users SET created = ?, password_set = ?').run(Date.now() - 200 * DAY, Date.now() - 200 * DAY);
  db.close();
  const srv = await startServer(t, { dataDir: first.dataDir, config: { hygiene: { digest: '1s' } } });
  const line = await srv.waitForLog((l) => l.event === 'hygiene-digest');
  assert.equal(line.reason, '1 account or credential finding(s): login-unused');
  assert.match(String(line['1. login-unused']), /carol@example\.org has never logged in \(created 200 days ago\).*Fix: mailward user del carol@example\.org/);
});
