// A full disk or a read-only spool: the server answers 452 4.3.1 (the client keeps the message and
// retries), keeps serving, and accepts again once there is space or the file system is writable.
// Uses a small tmpfs (needs root to mount).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, unlinkSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dial } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';

function mountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function send(port: number, body: string): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO x').expect('250');
  await c.say('MAIL FROM:<a@example.net>').expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send(`Subject: big\r\n\r\n${body}\r\n.\r\n`);
  const r = await c.read();
  await c.say('QUIT').expect('221');
  return r.raw;
}

test('disk full: 452 4.3.1 while there is no space, 250 again when space returns', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-full-'));
  if (!mountTmpfs(dir, '8m')) {
    rmSync(dir, { recursive: true, force: true });
    // CI (MAILWARD_REQUIRE_ALL_TESTS=1, as root) must run this test, not skip it unnoticed.
    if (process.env.MAILWARD_REQUIRE_ALL_TESTS === '1') assert.fail('MAILWARD_REQUIRE_ALL_TESTS=1 but the disk-full test cannot mount a tmpfs: run the tests as root (mount -t tmpfs needs it; the mount command is in Debian\'s "mount" package)');
    t.skip('cannot mount a tmpfs here (needs root)');
    return;
  }
  const srv = await startServer(undefined, { dataDir: dir, users: [['bob@example.org', 'bob password 1']] });
  t.after(async () => {
    await srv.stop();
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const line = 'x'.repeat(998);
  const body = Array.from({ length: 1200 }, () => line).join('\r\n'); // about 1.2 MB
  assert.match(await send(srv.port('mx'), body), /^250 /);
  await srv.waitForMail('bob@example.org');
  // The delivered message leaves the spool just after it reaches the Maildir: wait for that, or
  // its space comes free after the disk was "filled".
  const queueDir = path.join(dir, 'spool', 'queue');
  while (readdirSync(queueDir).some((b) => readdirSync(path.join(queueDir, b)).length > 0)) await new Promise((r) => setTimeout(r, 20));

  // Fill the disk, leaving less than one message of room.
  const filler = path.join(dir, 'filler');
  const free = statfsSync(dir).bavail * statfsSync(dir).bsize;
  writeFileSync(filler, Buffer.alloc(Math.max(0, free - 200 * 1024)));
  assert.match(await send(srv.port('mx'), body), /^452 4\.3\.1 /);
  const logged = await srv.waitForLog((l) => /spool (write|commit) failed|cannot open a spool file/.test(String(l.msg)));
  assert.match(String(logged.err), /ENOSPC/);

  unlinkSync(filler);
  assert.match(await send(srv.port('mx'), body), /^250 /);
  await srv.waitForMail('bob@example.org', 2);
});

// `mount -o remount,ro` of the whole file system is refused (EBUSY) while the server holds files
// open for writing (the spool's deletion journal, the store), as a real server always does. So the
// spool folder is bind-mounted over itself once the server runs, and that mount is made read-only:
// every file the spool opens from then on is on a read-only mount, as after errors=remount-ro.
function bindSelf(dir: string): boolean {
  try {
    execFileSync('mount', ['--bind', dir, dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function remount(dir: string, mode: 'ro' | 'rw'): void {
  execFileSync('mount', ['-o', `remount,bind,${mode}`, dir], { stdio: 'ignore' });
}

test('read-only spool: 452 4.3.1 while it is read-only, 250 and delivered once it is writable again', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-ro-'));
  const srv = await startServer(undefined, { dataDir: dir, users: [['bob@example.org', 'bob password 1']] });
  const spoolDir = path.join(dir, 'spool');
  if (!bindSelf(spoolDir)) {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
    t.skip('cannot bind-mount here (needs root)');
    return;
  }
  t.after(async () => {
    await srv.stop();
    execFileSync('umount', ['-l', spoolDir]);
    rmSync(dir, { recursive: true, force: true });
  });
  assert.match(await send(srv.port('mx'), 'first'), /^250 /);
  await srv.waitForMail('bob@example.org');

  remount(spoolDir, 'ro');
  assert.match(await send(srv.port('mx'), 'while read-only'), /^452 4\.3\.1 /);
  const logged = await srv.waitForLog((l) => /spool (write|commit) failed|cannot open a spool file/.test(String(l.msg)));
  assert.match(String(logged.err), /EROFS/);
  // Still serving: the next client gets the same answer, not a dropped connection.
  assert.match(await send(srv.port('mx'), 'again while read-only'), /^452 4\.3\.1 /);

  remount(spoolDir, 'rw');
  assert.match(await send(srv.port('mx'), 'writable again'), /^250 /);
  const mail = await srv.waitForMail('bob@example.org', 2);
  assert.equal(mail.length, 2);
  assert.deepEqual(mail.map((m) => /\r\n\r\n(.*)\r\n$/.exec(m)?.[1]).sort(), ['first', 'writable again']);
});
