// /metrics of the composed server: the age of the oldest queued message is computed for the
// scrape that asks for it. prom-client runs a scrape's collectors together, so a gauge reading
// figures another collector was still awaiting showed 0 (first scrape) or the last scrape's age.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { Spool } from '../../src/queue/spool.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { envelope, queueMessage } from '../queue/helpers.ts';

const gauge = (text: string, name: string): number => {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in\n${text}`);
  return Number(m[1]);
};

/** Resolves once the wall clock has passed `at` (a fact to wait for, not a sleep to hope on). */
async function clockPast(at: number): Promise<void> {
  while (Date.now() <= at) await new Promise((r) => setTimeout(r, Math.max(1, at - Date.now() + 1)));
}

test('metrics: the first /metrics scrape after a message aged shows its age, and a later one its new age', async (t) => {
  const dns = await startDns(t, { 'example.net': { mode: 'servfail' } });
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-metrics-age-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const token = 'a-long-random-admin-token-0123456789';
  writeFileSync(path.join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  const dataDir = path.join(dir, 'data');
  const spool = await Spool.open(path.join(dataDir, 'spool'), { log: silentLogger() });
  await queueMessage(spool, envelope({ recipients: [{ address: 'bob@example.net', transport: 'remote' }] }), 'Subject: hi\r\n\r\nx\r\n');
  const queuedBy = Date.now(); // the message's receipt time is at most this
  await spool.close();

  const dnsConfig = { servers: [dns.address], timeout: '500ms', tries: 1 };
  const srv = await startServer(t, { dataDir, config: { dns: dnsConfig, queue: { minBackoff: '1h', maxBackoff: '1h' }, admin: { enabled: true, port: 0, tokenFile: path.join(dir, 'token') } } });
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${srv.server.adminPort()}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();

  await clockPast(queuedBy + 2000);
  const first = await scrape();
  assert.ok(gauge(first, 'mailward_queue_oldest_seconds') >= 2, first);
  assert.match(first, /^mailward_queue_messages\{state="queued"\} 1$/m);

  const firstAge = gauge(first, 'mailward_queue_oldest_seconds');
  await clockPast(queuedBy + (firstAge + 1) * 1000);
  const second = gauge(await scrape(), 'mailward_queue_oldest_seconds');
  assert.ok(second >= firstAge + 1, `second scrape ${second} s, first ${firstAge} s`);
});
