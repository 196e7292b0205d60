// What the session decides at end of DATA reaches the spool: the header block rewritten (fields
// stripped, Subject marked, ours on top) and the envelope amended at commit (noBounce, folder),
// in memory and for a message that spilled to disk; kill-level mail committed to quarantine/,
// where nothing schedules it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { envelopeProblem } from '../../src/queue/envelope.ts';
import { BodyStream } from '../../src/queue/reader.ts';
import { captureLog, envelope, readAll, tempDir } from './helpers.ts';

const MEMORY_LIMIT = 4096;

/** Drops X-Spam-* lines and puts "[SPAM] " in front of the Subject, on raw header text. */
const edit = (head: Buffer): Buffer =>
  Buffer.from(
    'X-Spam-Status: Yes\r\n' +
      head
        .toString('latin1')
        .replace(/^X-Spam-[^\n]*\n/gim, '')
        .replace(/^Subject: /m, 'Subject: [SPAM] '),
    'latin1',
  );

async function open(t: Parameters<typeof tempDir>[0]): Promise<{ dir: string; spool: Spool }> {
  const dir = await tempDir(t);
  const spool = await Spool.open(dir, { log: captureLog().log, memoryLimit: MEMORY_LIMIT });
  t.after(() => spool.close());
  return { dir, spool };
}

for (const [name, bodySize] of [
  ['in memory', 100],
  ['spilled to disk', 300_000],
] as const) {
  test(`writer: rewriteHead and commit with amendments, ${name}`, async (t) => {
    const { dir, spool } = await open(t);
    const w = spool.begin(envelope());
    const head = 'Received: from client by mx; Mon, 1 Jan 2024 00:00:00 +0000\r\nX-Spam-Flag: NO\r\nSubject: hello\r\nx-spam-status: No, score=-100\r\n\r\n';
    const body = Buffer.alloc(bodySize, 'b');
    await w.write(Buffer.from(head));
    for (let i = 0; i < body.length; i += 10_000) await w.write(body.subarray(i, i + 10_000));
    assert.equal(w.spilled, bodySize > MEMORY_LIMIT);
    await w.rewriteHead(edit);
    const expected = Buffer.concat([Buffer.from('X-Spam-Status: Yes\r\nReceived: from client by mx; Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: [SPAM] hello\r\n\r\n'), body]);
    assert.deepEqual(await w.readBack(), expected);
    assert.equal(w.size, expected.length);
    // An edit that changes nothing leaves the bytes alone (and copies nothing).
    await w.rewriteHead((h) => h);
    const inode = w.spilled ? statSync(join(dir, 'incoming', w.id)).ino : undefined;
    await w.commit({ noBounce: 'spam', folder: 'Junk' });

    const m = await spool.get(w.id);
    assert.equal(m?.envelope.noBounce, 'spam');
    assert.equal(m?.envelope.folder, 'Junk');
    assert.equal(m?.envelope.size, expected.length);
    assert.deepEqual(await readAll(spool.openBody(w.id)), expected, 'the body stream verifies the hash before it ends');
    assert.deepEqual(readdirSync(join(dir, 'incoming')), [], 'no copy left behind');
    if (inode !== undefined) {
      // The amended envelope fit the room kept after the JSON: written in place, not copied.
      assert.equal(statSync(spool.messagePath(w.id)).ino, inode);
      const raw = readFileSync(spool.messagePath(w.id));
      assert.match(raw.toString('latin1', 78, 78 + 600), /"noBounce":"spam","folder":"Junk"\} +\n/);
    }
  });
}

test('writer: an amended envelope larger than the reserve is copied into a new file, still readable', async (t) => {
  const { spool } = await open(t);
  const w = spool.begin(envelope());
  const body = Buffer.alloc(20_000, 'z');
  await w.write(Buffer.from('Subject: big\r\n\r\n'));
  await w.write(body);
  assert.equal(w.spilled, true);
  const reason = 'r'.repeat(400);
  await w.commit({ noBounce: reason });
  const m = await spool.get(w.id);
  assert.equal(m?.envelope.noBounce, reason);
  assert.deepEqual(await readAll(spool.openBody(w.id)), Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), body]));
});

test('writer: rewriteHead finds the header block ending in bare LF, or the whole message when it has no body', async (t) => {
  const { spool } = await open(t);
  const lf = spool.begin(envelope());
  await lf.write(Buffer.from('Subject: a\nX-Spam-Flag: NO\n\nX-Spam-Flag: in the body\n'));
  await lf.rewriteHead(edit);
  assert.equal((await lf.readBack()).toString(), 'X-Spam-Status: Yes\r\nSubject: [SPAM] a\n\nX-Spam-Flag: in the body\n');
  await lf.abort();

  const only = spool.begin(envelope());
  await only.write(Buffer.from('X-Spam-Flag: NO\r\nSubject: b\r\n'));
  await only.rewriteHead(edit);
  await only.commit();
  assert.deepEqual((await readAll(spool.openBody(only.id))).toString(), 'X-Spam-Status: Yes\r\nSubject: [SPAM] b\r\n');
});

test('writer: commit to quarantine keeps the message out of the queue; nothing schedules it', async (t) => {
  const { dir, spool } = await open(t);
  const { log } = captureLog();
  const queue = new Queue(spool, { log });
  await queue.start();
  t.after(() => queue.stop());
  const commits: string[] = [];
  spool.onChange((c) => {
    if (c.kind === 'committed' && c.area === 'queue') commits.push(c.envelope.id);
  });

  for (const size of [50, 50_000]) {
    const w = spool.begin(envelope());
    await w.write(Buffer.from('Subject: kill\r\n\r\n'));
    await w.write(Buffer.alloc(size, 'k'));
    await w.commit({ area: 'quarantine', noBounce: 'spam', folder: 'Junk' });
    assert.equal(existsSync(spool.messagePath(w.id, 'quarantine')), true);
    assert.equal(existsSync(spool.messagePath(w.id)), false);
    assert.equal(await spool.get(w.id), undefined);
    const kept = await spool.get(w.id, 'quarantine');
    assert.equal(kept?.envelope.noBounce, 'spam');
    assert.equal(kept?.envelope.size, 17 + size);
    assert.equal(kept?.envelope.folder, 'Junk');
    // The body stream verifies the stored bytes against their length and hash.
    const stored = await readAll(new BodyStream(spool.messagePath(w.id, 'quarantine'), w.id, () => Promise.reject(new Error('corrupt'))));
    assert.deepEqual(stored, Buffer.concat([Buffer.from('Subject: kill\r\n\r\n'), Buffer.alloc(size, 'k')]));
  }
  assert.deepEqual(commits, []);
  assert.equal(queue.scheduled, 0);
  assert.deepEqual(readdirSync(join(dir, 'incoming')), []);

  // The same spool and queue schedule an ordinary commit at once.
  const w = spool.begin(envelope());
  await w.write(Buffer.from('Subject: fine\r\n\r\nx'));
  await w.commit({ noBounce: 'auth-failed' });
  assert.deepEqual(commits, [w.id]);
  assert.notEqual(queue.dueAt(w.id), undefined);
  assert.equal((await spool.get(w.id))?.envelope.noBounce, 'auth-failed');
});

test('writer: a folder that is not a plain name is refused at commit; envelopeProblem names it', async (t) => {
  const { spool } = await open(t);
  for (const folder of ['../x', '.Junk', 'a/b', 'Junk.Sub', '']) {
    const w = spool.begin(envelope());
    await w.write(Buffer.from('Subject: s\r\n\r\nx'));
    await assert.rejects(w.commit({ folder }), new RegExp(`cannot queue message ${w.id}: folder malformed`));
    await w.abort();
  }
  const base = { id: 'x', receivedAt: 1, mailFrom: '', recipients: [{ address: 'a@b', transport: 'local' }], client: { address: '1', listener: 'mx', sessionId: 's' }, smtputf8: false, body: '7BIT' };
  assert.equal(envelopeProblem({ ...base, folder: 'Junk' }), undefined);
  assert.equal(envelopeProblem(base), undefined, 'files written before the field existed stay readable');
  assert.equal(envelopeProblem({ ...base, folder: 7 }), 'folder malformed');
});
