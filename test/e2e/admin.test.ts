// The admin API as the composed server runs it: off by default, on with a token file, fed by
// the same mail events as the log; /metrics counts what happened.
import { readHoldsSync } from '../../src/queue/holds.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { Spool } from '../../src/queue/spool.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { envelope, queueMessage } from '../queue/helpers.ts';
import { runMailward } from '../harness/cli.ts';



/** The spool folders ("queue" or "hold") that hold a file named `id`, as "area/bucket". */
/** The areas the message is in: a file in queue/ held by a mark in held.log counts as 'hold'. */
function whereOnDisk(spoolDir: string, id: string): string[] {
  const found: string[] = [];
  const marked = readHoldsSync(spoolDir);
  for (const area of ['queue', 'hold']) {
    const dir = path.join(spoolDir, area);
    if (!existsSync(dir)) continue;
    for (const bucket of readdirSync(dir)) if (existsSync(path.join(dir, bucket, id))) found.push(area === 'queue' && marked.has(id) ? 'hold' : area);
  }
  return found;
}

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

test('admin: with no admin.host it binds 127.0.0.1; hold and release over HTTP move a real queued message, as the spool and `queue list` show', async (t) => {
  // The remote domain's DNS fails (on loopback), so the message waits in the queue for an hour.
  const dns = await startDns(t, { 'example.net': { mode: 'servfail' } });
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-admin-q-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const token = 'a-long-random-admin-token-0123456789';
  writeFileSync(path.join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  const dataDir = path.join(dir, 'data');
  const spool = await Spool.open(path.join(dataDir, 'spool'), { log: silentLogger() });
  const id = await queueMessage(spool, envelope({ mailFrom: 'alice@example.org', recipients: [{ address: 'bob@example.net', transport: 'remote' }] }), 'Subject: hi\r\n\r\nx\r\n');
  await spool.close();
  const configFile = path.join(dir, 'mailward.yaml');
  const dnsConfig = { servers: [dns.address], timeout: '500ms', tries: 1 };
  const queueConfig = { minBackoff: '1h', maxBackoff: '1h' };
  // The same data folder for the CLI, which then talks to the running server over its control socket.
  writeFileSync(configFile, JSON.stringify({ hostname: 'mx.example.org', domains: ['example.org'], dataDir, listeners: { mx: { kind: 'mx', port: 0 } }, log: { level: 'silent' }, dns: dnsConfig, queue: queueConfig }));

  const srv = await startServer(t, { dataDir, config: { dns: dnsConfig, queue: queueConfig, admin: { enabled: true, port: 0, tokenFile: path.join(dir, 'token') } } });
  // No admin.host in the config: loopback, as the server reports it.
  assert.equal(srv.config.admin.host, '127.0.0.1');
  const bound = await srv.waitForLog((l) => l.event === 'admin-listening');
  assert.equal(bound.address, '127.0.0.1');
  assert.equal(bound.port, srv.server.adminPort());
  assert.equal(bound.msg, `admin API and dashboard on http://127.0.0.1:${srv.server.adminPort()}/`);

  const deferred = await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === id);
  assert.equal(deferred.to, 'bob@example.net');
  const spoolDir = srv.config.paths.spool;
  assert.deepEqual(whereOnDisk(spoolDir, id), ['queue']);

  const base = `http://127.0.0.1:${srv.server.adminPort()}`;
  const post = (p: string, auth = true): Promise<Response> => fetch(`${base}${p}`, { method: 'POST', ...(auth ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  assert.equal((await post(`/api/queue/${id}/hold`, false)).status, 401);
  assert.deepEqual(whereOnDisk(spoolDir, id), ['queue'], 'nothing moved without the token');

  const held = await post(`/api/queue/${id}/hold`);
  assert.equal(held.status, 200);
  assert.deepEqual(await held.json(), { result: { matched: 1, changed: 1, missing: 0 } });
  assert.deepEqual(whereOnDisk(spoolDir, id), ['hold']);
  const list = await runMailward(['queue', 'list', '--state', 'held', '--config', configFile]);
  assert.equal(list.code, 0, list.stderr);
  assert.ok(list.stdout.includes(id), list.stdout);
  assert.match(list.stdout, /\n1 message\(s\) queued\n$/);
  // Held already: a second hold finds nothing to hold.
  const again = await post(`/api/queue/${id}/hold`);
  assert.equal(again.status, 404);
  assert.deepEqual(await again.json(), { error: `no message ${id} where hold applies` });

  const released = await post(`/api/queue/${id}/release`);
  assert.equal(released.status, 200);
  assert.deepEqual(await released.json(), { result: { matched: 1, changed: 1, missing: 0 } });
  assert.deepEqual(whereOnDisk(spoolDir, id), ['queue']);
  const heldNow = await runMailward(['queue', 'list', '--state', 'held', '--config', configFile]);
  assert.equal(heldNow.stdout, '0 message(s) queued\n');
  const all = await runMailward(['queue', 'list', '--config', configFile]);
  assert.ok(all.stdout.includes(id), all.stdout);
  assert.match(all.stdout, /\n1 message\(s\) queued\n$/);
});
