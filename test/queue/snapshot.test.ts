// The catalog snapshot against the files: after a snapshot, random commits, state records,
// holds, removals and deletions (some after a second change log was started, as when a crash
// comes while a snapshot is captured), and no clean shutdown — the start from the snapshot must
// give the catalog a full scan of the same files gives. A damaged snapshot is named in the log
// and the start reads every file.
import { test } from 'node:test';
import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import { cp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool, type RecipientState, type SpoolArea } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { captureLog, envelope, queueMessage, tempDir } from './helpers.ts';
import { seededRandom } from '../harness/seeded-random.ts';

const rng = seededRandom;

const DAY = 86_400_000;

interface Live {
  readonly id: string;
  area: SpoolArea;
  readonly n: number;
}

/** One random change to the spool, through the spool's own calls (as a running server makes them). */
async function change(spool: Spool, live: Live[], r: () => number, now: number, add = false): Promise<void> {
  const pick = (): Live | undefined => live[Math.floor(r() * live.length)];
  const x = r();
  if (add || x < 0.25 || live.length === 0) {
    const n = 1 + Math.floor(r() * 3);
    const recipients = Array.from({ length: n }, (_, i) => ({ address: `r${i}-${Math.floor(r() * 5)}@dest${Math.floor(r() * 3)}.example`, ...(r() < 0.5 ? { mailbox: `box${i}@example.org` } : {}), transport: 'remote' as const }));
    const id = await queueMessage(spool, envelope({ mailFrom: r() < 0.2 ? '' : `s${Math.floor(r() * 4)}@src.example`, recipients }), 'Subject: x\r\n\r\nbody\r\n');
    live.push({ id, area: 'queue', n });
    return;
  }
  const m = pick()!;
  if (x < 0.65) {
    // A delivery pass: some recipients delivered, bounced or deferred (to the past or the future).
    const updates = [];
    for (let i = 0; i < m.n; i++) {
      if (r() < 0.3) continue;
      const y = r();
      const state: RecipientState =
        y < 0.3 ? { status: 'delivered', attempts: 1 } : y < 0.45 ? { status: 'bounced', attempts: 1, lastReply: '550 no' } : { status: 'deferred', attempts: 1, nextAttemptAt: now + (r() < 0.2 ? -DAY : DAY + Math.floor(r() * DAY)) };
      updates.push({ index: i, state });
    }
    await spool.markRecipients(m.id, updates).catch(() => undefined);
  } else if (x < 0.75) {
    const to = m.area === 'queue' ? 'hold' : 'queue';
    if (await spool.move(m.id, m.area, to)) m.area = to;
  } else if (x < 0.85) {
    if (await spool.discard(m.id, m.area)) live.splice(live.indexOf(m), 1);
  } else if (x < 0.92) {
    if (m.area === 'queue') {
      await spool.removeDelivered(m.id).catch(() => undefined);
      live.splice(live.indexOf(m), 1);
    }
  } else {
    await spool.deleteMany([{ id: m.id, area: m.area }], { removeNow: true });
    live.splice(live.indexOf(m), 1);
  }
}

/** Starts a queue on `dir` and gives what its catalog holds, normalised for the time of the scan. */
async function catalogOf(dir: string): Promise<{ dump: string[]; fromSnapshot: number; read: number; lines: ReturnType<typeof captureLog> }> {
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log, fsync: false });
  const q = new Queue(spool, { log: cap.log });
  const t0 = Date.now();
  await q.start();
  const t1 = Date.now();
  const dump: string[] = [];
  for (const s of await q.select({}, ['queue', 'hold'])) {
    const due = q.dueAt(s.id);
    // A message due "now" is due at the scan's own clock: the same for both, but not the same number.
    const when = due === undefined ? 'unscheduled' : due >= t0 && due <= t1 ? 'now' : String(due);
    dump.push(`${s.id} ${s.area} ${when} ${JSON.stringify(q.facts(s.id))}`);
  }
  const { fromSnapshot, read } = q.loadProgress;
  await q.close();
  await spool.close();
  return { dump: dump.sort(), fromSnapshot, read, lines: cap };
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`catalog snapshot (seed ${seed}): changes after it and no clean shutdown; the start from it equals a full scan`, async (t) => {
    const r = rng(seed);
    const now = Date.now();
    const root = await tempDir(t, 'mailward-snapshot-');
    const dir = join(root, 'spool');
    const cap = captureLog();
    const spool = await Spool.open(dir, { log: cap.log, fsync: false });
    const live: Live[] = [];
    for (let i = 0; i < 80; i++) await change(spool, live, r, now, i < 50);
    const q = new Queue(spool, { log: cap.log });
    await q.start();
    await q.saveSnapshot();
    assert.equal(cap.events('catalog-snapshot').length, 1);
    // After the snapshot, as a running server goes on.
    for (let i = 0; i < 40; i++) await change(spool, live, r, now);
    // Sometimes a second change log is started (a snapshot being captured when the crash comes).
    if (seed % 2 === 0) {
      await spool.snapshots.rotate();
      for (let i = 0; i < 20; i++) await change(spool, live, r, now);
    }
    // The crash: no queue.close(), so no snapshot at the end. The spool's lock goes with the process.
    q.stop();
    await spool.close();
    // And while it is down, an operator removes a file by hand.
    const path = (m: Live): string => join(dir, m.area, m.id[7]!, m.id);
    const gone = live.find((m) => existsSync(path(m)));
    if (gone) await unlink(path(gone));

    const copy = join(root, 'copy');
    await cp(dir, copy, { recursive: true });
    await rm(join(copy, 'catalog.snap'));
    const full = await catalogOf(copy);
    const fromSnap = await catalogOf(dir);
    assert.equal(full.fromSnapshot, 0);
    assert.ok(fromSnap.fromSnapshot > 0, 'the snapshot was used');
    assert.ok(fromSnap.read > 0, 'the changed and new files were read');
    assert.deepEqual(fromSnap.dump, full.dump);
    assert.equal(fromSnap.lines.events('catalog-snapshot-invalid').length, 0);
  });
}

test('a truncated, corrupt or foreign catalog snapshot is named in the log and every file is read', async (t) => {
  const root = await tempDir(t, 'mailward-snapshot-');
  const dir = join(root, 'spool');
  const cap = captureLog();
  const spool = await Spool.open(dir, { log: cap.log, fsync: false });
  for (let i = 0; i < 20; i++) await queueMessage(spool, envelope(), `Subject: ${i}\r\n\r\nbody\r\n`);
  const q = new Queue(spool, { log: cap.log });
  await q.start();
  await q.close();
  await spool.close();
  const good = await readFile(join(dir, 'catalog.snap'));
  const pristine = join(root, 'pristine');
  await cp(dir, pristine, { recursive: true });
  assert.equal((await catalogOf(dir)).fromSnapshot, 20);

  let snap = '';
  const damage: Array<[string, () => Promise<void>, RegExp]> = [
    ['truncated', () => truncate(snap, good.length - 100), /truncated/],
    ['a flipped byte', () => writeFile(snap, Buffer.concat([good.subarray(0, good.length - 9), Buffer.from([good[good.length - 9]! ^ 1]), good.subarray(good.length - 8)])), /checksum/],
    ['not a snapshot', () => writeFile(snap, 'hello\n'), /magic/],
    ['cut in its meta line', () => truncate(snap, 30), /truncated|JSON/],
  ];
  for (const [i, [what, harm, reason]] of damage.entries()) {
    const at = join(root, `case${i}`);
    await cp(pristine, at, { recursive: true });
    snap = join(at, 'catalog.snap');
    await harm();
    const got = await catalogOf(at);
    const invalid = got.lines.events('catalog-snapshot-invalid');
    assert.equal(invalid.length, 1, what);
    assert.equal(invalid[0]!.path, snap, what);
    assert.match(String(invalid[0]!.reason), reason, what);
    assert.equal(got.fromSnapshot, 0, what);
    assert.equal(got.read, 20, what);
    assert.equal(got.dump.length, 20, what);
  }
});
