// A full disk: the server answers 452 4.3.1 (the client keeps the message and retries), keeps
// serving, and accepts again once there is space. Uses a small tmpfs (needs root to mount).
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
