// The admin API as the composed server runs it: off by default, on with a token file, fed by
// the same mail events as the log; /metrics counts what happened.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dial } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';

test('admin: off by default; with a token it reports the traffic the server handled', async (t) => {
  const off = await startServer(t);
  assert.equal(off.server.adminPort(), undefined);

  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-admin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const token = 'a-long-random-admin-token-0123456789';
  writeFileSync(path.join(dir, 'token'), `${token}\n`);
  const srv = await startServer(t, { users: [['bob@example.org', 'bob password 1']], config: { admin: { enabled: true, port: 0, tokenFile: path.join(dir, 'token') } } });
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO x').expect('250');
  await c.say('MAIL FROM:<a@example.net>').expect('250');
  await c.say('RCPT TO:<nobody@example.org>').expect('550');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('Subject: x\r\n\r\nx\r\n.\r\n');
  await c.expect('250');
  c.close();
  await srv.waitForMail('bob@example.org');

  const base = `http://127.0.0.1:${srv.server.adminPort()}`;
  assert.equal((await fetch(`${base}/api/summary`)).status, 401);
  const auth = { headers: { authorization: `Bearer ${token}` } };
  const summary = (await (await fetch(`${base}/api/summary`, auth)).json()) as Record<string, unknown>;
  assert.ok(summary && typeof summary === 'object');
  const metrics = await (await fetch(`${base}/metrics`, auth)).text();
  assert.match(metrics, /^mailward_events_total\{event="queued",listener="mx"\} 1$/m);
  assert.match(metrics, /^mailward_decisions_total\{[^}]*check="recipient"[^}]*\} 1$/m);
});
