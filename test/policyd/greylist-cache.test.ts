// Greylisting behind the write-behind cache (docs/decisions/0041), over real TCP to policy
// services on port 0: a greylisted triplet passes after the delay, also when the service was
// restarted in between (the first sighting was flushed on close) and when a second service on the
// same SQLite file sees the retry; with Redis (no cache) two services share one greylist.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { createPolicyService } from '../../src/app/policyd.ts';
import { buildConfig } from '../../src/config/load.ts';
import { parsePolicyd } from '../../src/config/policyd-schema.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { policyServerSettings, startPolicyServer } from '../../src/shells/policyd.ts';
import { makeClock, type Clock } from '../checks/env.ts';
import { startRedis } from '../harness/redis.ts';
import { policyClient, rcptRequest } from './helpers.ts';

const GREYLISTED = 'DEFER_IF_PERMIT 4.2.0 Greylisted, please try again later';
const DELAY_MS = 5 * 60_000;

interface Running {
  ask(attrs: Record<string, string>): Promise<string>;
  stop(): Promise<void>;
}

/** A policy service with only greylisting at RCPT on `dir`, listening on 127.0.0.1:0. */
async function start(t: TestContext, dir: string, clock: Clock, store?: Record<string, unknown>): Promise<Running> {
  const config = buildConfig(
    { hostname: 'mx.example.org', domains: ['example.org'], dataDir: dir, dns: { servers: ['127.0.0.1:9'], timeout: 200, tries: 1 }, ...(store ? { store } : {}) },
    'test config',
    dir,
  );
  const policyd = parsePolicyd({ pipeline: { RCPT: ['greylist'] } }, 'test config');
  const service = await createPolicyService(config, policyd, { log: silentLogger(), clock });
  const server = await startPolicyServer({ listen: [{ kind: 'tcp', host: '127.0.0.1', port: 0 }], engine: service.engine, log: silentLogger(), ...policyServerSettings(policyd) });
  const addr = server.addresses[0]!;
  const client = await policyClient(addr.kind === 'tcp' ? addr.port : 0);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    client.close();
    await server.close();
    await service.close();
  };
  t.after(stop);
  return { ask: (a) => client.ask(a), stop };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-greycache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('greylist cache: too early is deferred, after the delay it passes, then at once', async (t) => {
  const clock = makeClock();
  const a = await start(t, tempDir(t), clock);
  assert.equal(await a.ask(rcptRequest()), GREYLISTED);
  clock.advance(DELAY_MS - 1000);
  assert.equal(await a.ask(rcptRequest()), GREYLISTED, 'retried too early');
  clock.advance(2000);
  assert.equal(await a.ask(rcptRequest()), 'DUNNO');
  assert.equal(await a.ask(rcptRequest()), 'DUNNO');
  // Another recipient is another triplet: greylisted on its own.
  assert.equal(await a.ask(rcptRequest({ recipient: 'carol@example.org' })), GREYLISTED);
});

test('greylist cache: a first sighting survives a restart of the service', async (t) => {
  const dir = tempDir(t);
  const clock = makeClock();
  const first = await start(t, dir, clock);
  assert.equal(await first.ask(rcptRequest()), GREYLISTED);
  await first.stop();
  const second = await start(t, dir, clock);
  assert.equal(await second.ask(rcptRequest()), GREYLISTED, 'the restart did not forget the first sighting nor invent a pass');
  clock.advance(DELAY_MS + 1000);
  assert.equal(await second.ask(rcptRequest()), 'DUNNO');
});

test('greylist cache: a second service on the same SQLite file sees the first sighting once flushed', async (t) => {
  const dir = tempDir(t);
  const clock = makeClock();
  const a = await start(t, dir, clock);
  const b = await start(t, dir, clock);
  assert.equal(await a.ask(rcptRequest()), GREYLISTED);
  // Written behind within the flush interval (200 ms); wait well past it on a busy machine.
  await new Promise((r) => setTimeout(r, 1500));
  clock.advance(DELAY_MS + 1000);
  assert.equal(await b.ask(rcptRequest()), 'DUNNO', 'the retry at the other service passes');
});

test('greylist on Redis (no cache): two services share one greylist', { timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t);
  const clock = makeClock();
  const store = { backend: 'redis', redis: { url: redis.url, keyPrefix: 'greycache:', timeout: 2000 } };
  const a = await start(t, tempDir(t), clock, store);
  const b = await start(t, tempDir(t), clock, store);
  assert.equal(await a.ask(rcptRequest()), GREYLISTED);
  assert.equal(await b.ask(rcptRequest()), GREYLISTED, 'seen at once by the other node, still too early');
  clock.advance(DELAY_MS + 1000);
  assert.equal(await b.ask(rcptRequest()), 'DUNNO');
});
