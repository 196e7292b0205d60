// Start-up with a full queue: the listeners answer, and new mail is accepted and delivered, while
// the spool scan is still under way; the scan then adds the old mail without delivering the new
// one twice; the control socket and queue commands report or wait for the scan. The scan is held
// at a known file by the test hook, so nothing here depends on timing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startMailward } from '../../src/app/compose.ts';
import { openDirectory } from '../../src/app/accounts.ts';
import { runQueueCommand, serverCatalog } from '../../src/app/delivery.ts';
import type { LoadProgress } from '../../src/queue/queue.ts';
import { catalogLine } from '../../src/shells/cli/queue.ts';
import { populate, SPAMMER } from '../../bench/queue/populate.ts';
import { dial } from '../harness/dial.ts';
import { maildirPath, readMaildir, testConfig } from '../harness/server.ts';
import { waitFor } from '../queue/helpers.ts';

const OLD = 3_000;
const HOLD_AT = 500;

test('start-up: 220 and a delivered new message before the catalog of 3,000 queued messages is complete; no double delivery; commands wait', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'mailward-startup-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = testConfig(dataDir);
  // Every old message is deferred for an hour: nothing of it is tried (no traffic leaves the machine).
  populate(config.paths.spool, OLD, { allDeferred: true });
  const dir = openDirectory(config);
  await dir.addUser('alice@example.org', 'correct horse battery');
  dir.close();

  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let reached!: () => void;
  const atHold = new Promise<void>((r) => (reached = r));
  const server = await startMailward(config, {
    log: pino({ level: 'debug' }, sink),
    queueScan: {
      progressEveryMs: 50,
      scanned: (n) => {
        if (n !== HOLD_AT) return;
        reached();
        return held;
      },
    },
  });
  t.after(async () => {
    release();
    await server.stop();
  });
  await atHold;

  // The control socket (what `mailward queue status` and `queue list` print) says it is loading.
  const during = await serverCatalog(config);
  assert.equal(during?.state, 'loading');
  assert.equal(during.scanned, HOLD_AT);
  assert.match(catalogLine(during), /^catalog loading: 500 message\(s\) scanned/);

  // A command that selects by filter waits for the catalog, telling the operator meanwhile.
  const notes: LoadProgress[] = [];
  const count = runQueueCommand(config, { op: 'delete', countOnly: true, filter: { sender: SPAMMER } }, undefined, (p) => notes.push(p));

  const c = await dial(server.port('mx'));
  await c.expect('220 mx.example.org ESMTP');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('MAIL FROM:<sender@example.net>').expect('250');
  await c.say('RCPT TO:<alice@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send('Subject: during the scan\r\n\r\nHello.\r\n.\r\n');
  const queueId = (await c.expect('250 2.0.0 Ok: queued as ')).text.split(' ').pop()!;
  await c.say('QUIT').expect('221');
  const box = maildirPath(config.paths.mail, 'alice@example.org');
  await waitFor('the new message delivered', () => readMaildir(box).length === 1, 60_000);
  await waitFor('a loading note for the waiting command', () => notes.length > 0, 60_000);
  assert.equal(notes[0]!.state, 'loading');
  // Still held: all of that happened before the catalog was complete.
  assert.equal((await serverCatalog(config))?.state, 'loading');
  assert.ok(logs.some((l) => l.event === 'queue-loading'), 'a progress line while the scan runs');
  assert.ok(!logs.some((l) => l.event === 'queue-loaded'));

  release();
  // The count is the whole catalog's, not the part scanned when it was asked.
  assert.equal((await count).matched, OLD * 0.75);
  const loaded = logs.find((l) => l.event === 'queue-loaded');
  assert.ok(loaded);
  assert.equal(loaded.scanned, OLD);
  const events = logs.map((l) => l.event);
  assert.ok(events.indexOf('started') < events.indexOf('queue-loaded'), 'the listeners opened before the catalog was complete');
  const after = await serverCatalog(config);
  assert.equal(after?.state, 'loaded');
  assert.equal(after.catalogued, OLD);
  assert.match(catalogLine(after), /^catalog loaded: 3,000 message\(s\) scanned/);
  // Delivered once: one file, one delivered line for its id.
  assert.equal(readMaildir(box).length, 1);
  assert.equal(logs.filter((l) => l.event === 'delivered' && l.queueId === queueId).length, 1);
});
