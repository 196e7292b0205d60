// docs/guide/backup.md, done as written: `mailward backup` of a running server's dataDir, the
// server stopped, dataDir replaced by the copy (cp -a), the server started again: the queued
// message and the user (with her password) are still there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dial } from '../harness/dial.ts';
import { startServer, TEST_LISTENERS } from '../harness/server.ts';
import { runMailward } from '../harness/cli.ts';
import { freePort } from '../harness/ports.ts';
import { runOwned } from '../harness/processes.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

test('backup: mailward backup of a running server, restored with cp -a, keeps queued mail and users', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'mailward-backup-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dataDir = path.join(root, 'data');
  const backup = path.join(root, 'backup-2026-12-07');
  // The relay is a closed loopback port: the message stays queued (deferred) across the restore.
  const config = {
    hostname: 'mx.example.org',
    domains: ['example.org'],
    dataDir,
    listeners: TEST_LISTENERS,
    queue: { minBackoff: '1h', maxBackoff: '2h' },
    delivery: { routes: { '*': 'smarthost:relay' }, smarthosts: { relay: { host: '127.0.0.1', port: await freePort(), tls: 'starttls' } } },
  };
  const configFile = path.join(root, 'mailward.yaml');
  writeFileSync(configFile, JSON.stringify(config));
  const first = await startServer(t, { dataDir, config, users: [['alice@example.org', 'alice pass 1']] });

  const c = await dial(first.port('submissions'), { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  await c.say('AUTH PLAIN ' + b64('\0alice@example.org\0alice pass 1')).expect('235');
  await c.say('MAIL FROM:<alice@example.org>').expect('250');
  await c.say('RCPT TO:<bob@example.net>').expect('250');
  await c.say('DATA').expect('354');
  c.send('From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: kept\r\n\r\nsurvives a restore\r\n.\r\n');
  const id = (await c.expect('250 2.0.0 Ok: queued as ')).text.split(' ').pop()!;
  await c.say('QUIT').expect('221');
  await first.waitForLog((l) => l.event === 'deferred' && l.queueId === id);

  // Held by the operator (a mark in spool/held.log): it must stay held after the restore.
  const hold = await runMailward(['--config', configFile, 'queue', 'hold', id]);
  assert.equal(hold.code, 0, hold.stderr);

  // 1. The backup, while the server runs.
  const b = await runMailward(['--config', configFile, 'backup', backup]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /2 SQLite files \(directory\.sqlite, state\.sqlite\)/);
  assert.equal(statSync(backup).mode & 0o777, statSync(dataDir).mode & 0o777, "the backup folder has dataDir's mode");
  assert.equal(statSync(backup).mode & 0o007, 0, 'nothing in it is world-readable');
  assert.equal(statSync(path.join(backup, 'directory.sqlite')).mode & 0o777, 0o600);
  const again = await runMailward(['--config', configFile, 'backup', backup]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /is not empty; give a new or empty folder/);
  assert.ok(existsSync(path.join(backup, 'spool', 'held.log')), 'the hold marks are in the copy');
  assert.deepEqual(
    readdirSync(path.join(backup, 'spool')).filter((n) => n.startsWith('catalog.')),
    [],
    'the catalog snapshot is left out (rebuilt from the files at start)',
  );

  // 2. Restore: stop, replace dataDir with the copy, start.
  await first.stop();
  rmSync(dataDir, { recursive: true, force: true });
  const cp = await runOwned(t, 'cp', ['-a', backup, dataDir]);
  assert.equal(cp.code, 0, cp.stderr);
  const second = await startServer(t, { dataDir, config });

  const users = await runMailward(['--config', configFile, 'user', 'list']);
  assert.match(users.stdout, /alice@example\.org/);
  const queue = await runMailward(['--config', configFile, 'queue', 'list']);
  assert.equal(queue.code, 0, queue.stderr);
  assert.ok(queue.stdout.includes(id), `the queued message ${id} survived:\n${queue.stdout}`);
  const held = await runMailward(['--config', configFile, 'queue', 'list', '--state', 'held']);
  assert.ok(held.stdout.includes(id), `the message ${id} is still on hold after the restore:\n${held.stdout}`);
  // The password hash came along: alice still logs in.
  const l = await dial(second.port('submissions'), { tls: true });
  await l.expect('220');
  await l.say('EHLO laptop').expect('250');
  await l.say('AUTH PLAIN ' + b64('\0alice@example.org\0alice pass 1')).expect('235');
  await l.say('QUIT').expect('221');
});
