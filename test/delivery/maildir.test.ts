// Maildir delivery with real files: the file and its added header lines, Dovecot-style names,
// refused paths, and exactly-once after a crash between the rename and the state record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { MaildirTransport, maildirFileName, maildirPath, MailboxPathError } from '../../src/delivery/maildir.ts';
import type { DeliverableMessage } from '../../src/delivery/transport.ts';
import { captureLog, envelope, queueMessage, tempDir } from '../queue/helpers.ts';

async function setup(t: import('node:test').TestContext, recipients = envelope().recipients, mailFrom = 'alice@example.org', freshCacheBytes?: number) {
  const dir = await tempDir(t);
  const spool = await Spool.open(join(dir, 'spool'), { log: captureLog().log, ...(freshCacheBytes !== undefined ? { freshCacheBytes } : {}) });
  t.after(() => spool.close());
  const root = join(dir, 'mail');
  const id = await queueMessage(spool, envelope({ recipients, mailFrom, receivedAt: 1_700_000_123_456 }), 'Subject: hello\r\n\r\nHi Bob\r\n');
  const m = (await spool.get(id))!;
  const msg = (recovered: boolean): DeliverableMessage => ({ envelope: m.envelope, body: () => spool.openBody(id), recovered });
  return { dir, root, spool, id, env: m.envelope, msg };
}

test('delivery writes the message with Return-Path and Delivered-To into new/', async (t) => {
  const { root, id, env, msg } = await setup(t, [{ address: 'Bob@Example.NET', mailbox: 'Bob@Example.NET', transport: 'local' }]);
  const md = new MaildirTransport({ root, hostname: 'mx.example.net' });
  const out = await md.deliver(msg(false), [0]);
  assert.deepEqual(out, [{ index: 0, outcome: 'ok', reply: '250 2.0.0 Delivered to mailbox' }]);
  const box = join(root, 'example.net', 'bob', 'Maildir');
  assert.deepEqual((await readdir(box)).sort(), ['cur', 'new', 'tmp']);
  assert.deepEqual(await readdir(join(box, 'tmp')), []);
  assert.deepEqual(await readdir(join(box, 'cur')), []);
  const files = await readdir(join(box, 'new'));
  const head = 'Return-Path: <alice@example.org>\r\nDelivered-To: Bob@Example.NET\r\n';
  const expected = `${head}Received: from client.example.org by mx.example.net with ESMTP id ${id}\r\nSubject: hello\r\n\r\nHi Bob\r\n`;
  assert.deepEqual(files, [`1700000123.M456000Q${id}I0.mx.example.net,S=${Buffer.byteLength(expected)}`]);
  assert.equal(await readFile(join(box, 'new', files[0]!), 'utf8'), expected);
  assert.equal(maildirFileName(env, 0, 'mx.example.net', Buffer.byteLength(expected)), files[0]);
  // Dovecot-style: <time>.<unique>.<host>,S=<size>; "/" and ":" in the host are escaped.
  assert.match(files[0]!, /^\d+\.[^.]+\.mx\.example\.net,S=\d+$/);
  assert.equal(maildirFileName(env, 3, 'a/b:c', 10), `1700000123.M456000Q${id}I3.a\\057b\\072c,S=10`);
  assert.equal((await stat(join(box, 'new', files[0]!))).mode & 0o777, 0o600);
});

test('the null sender is written as Return-Path: <>', async (t) => {
  const { root, msg } = await setup(t, undefined, '');
  await new MaildirTransport({ root, hostname: 'h' }).deliver(msg(false), [0]);
  const box = join(root, 'example.net', 'bob', 'Maildir', 'new');
  const [name] = await readdir(box);
  assert.match(await readFile(join(box, name!), 'utf8'), /^Return-Path: <>\r\nDelivered-To: bob@example\.net\r\nReceived: /);
});

test('mailbox paths are lower-cased and can never leave the root', () => {
  assert.equal(maildirPath('/srv/mail', 'Bob.Smith+tag@Example.ORG'), '/srv/mail/example.org/bob.smith+tag/Maildir');
  assert.equal(maildirPath('/srv/mail/', 'jürgen@bücher.example'), '/srv/mail/bücher.example/jürgen/Maildir');
  const refused = ['../x@example.org', 'a/b@example.org', '..@example.org', '.hidden@example.org', 'a..b@example.org', 'a\0b@example.org', 'a\\b@example.org', 'bob@../etc', 'bob@example.org/x', 'bob@.', 'bob@', '@example.org', 'nobody', '"a b"@example.org', 'a\r\nb@example.org', `${'x'.repeat(65)}@example.org`, 'bob@[127.0.0.1]', 'bob@exa mple.org'];
  for (const m of refused) assert.throws(() => maildirPath('/srv/mail', m), MailboxPathError, m);
});

test('a refused mailbox is a permanent failure and writes nothing', async (t) => {
  const { root, msg } = await setup(t, [{ address: 'ok@example.net', mailbox: '../../etc@example.net', transport: 'local' }]);
  const out = await new MaildirTransport({ root, hostname: 'h' }).deliver(msg(false), [0]);
  assert.deepEqual(out, [{ index: 0, outcome: 'permanent', reply: '550 5.1.3 Bad destination mailbox address' }]);
  await assert.rejects(stat(root), { code: 'ENOENT' });
});

test('exactly once: a recovered delivery finds the file it wrote before the crash', async (t) => {
  const { root, msg } = await setup(t, [
    { address: 'bob@example.net', transport: 'local' },
    { address: 'carol@example.net', transport: 'local' },
  ]);
  const md = new MaildirTransport({ root, hostname: 'mx' });
  // The crash came after the rename into new/ and before the state was recorded.
  assert.equal((await md.deliver(msg(false), [0]))[0]?.outcome, 'ok');
  // After the restart the message comes from disk, recovered, with both recipients still pending.
  const again = await new MaildirTransport({ root, hostname: 'mx' }).deliver(msg(true), [0, 1]);
  assert.deepEqual(again, [
    { index: 0, outcome: 'ok', reply: '250 2.0.0 Delivered to mailbox before a restart' },
    { index: 1, outcome: 'ok', reply: '250 2.0.0 Delivered to mailbox' },
  ]);
  assert.equal((await readdir(join(root, 'example.net', 'bob', 'Maildir', 'new'))).length, 1);
  assert.equal((await readdir(join(root, 'example.net', 'carol', 'Maildir', 'new'))).length, 1);
});

test('exactly once: a file the mail reader moved into cur/ with :2,S is recognised', async (t) => {
  const { root, msg } = await setup(t);
  const md = new MaildirTransport({ root, hostname: 'mx' });
  await md.deliver(msg(false), [0]);
  const box = join(root, 'example.net', 'bob', 'Maildir');
  const [name] = await readdir(join(box, 'new'));
  await rename(join(box, 'new', name!), join(box, 'cur', `${name!}:2,S`));
  const out = await md.deliver(msg(true), [0]);
  assert.equal(out[0]?.reply, '250 2.0.0 Delivered to mailbox before a restart');
  assert.deepEqual(await readdir(join(box, 'new')), []);
  assert.deepEqual(await readdir(join(box, 'cur')), [`${name!}:2,S`]);
  // The normal path does not look into cur/: it writes the (same-named) file again.
  await md.deliver(msg(false), [0]);
  assert.deepEqual(await readdir(join(box, 'new')), [name]);
});

test('a corrupt stored message is never completed into new/', async (t) => {
  // Read from the file, not from the copy kept in memory at commit (which is not corrupt).
  const { root, spool, id, msg } = await setup(t, undefined, undefined, 0);
  const raw = await readFile(spool.messagePath(id));
  raw[raw.length - 3] = 0x21;
  await writeFile(spool.messagePath(id), raw);
  const out = await new MaildirTransport({ root, hostname: 'mx' }).deliver(msg(false), [0]);
  assert.deepEqual(out, [{ index: 0, outcome: 'temporary', reply: '451 4.3.0 Local delivery failed, will retry' }]);
  const box = join(root, 'example.net', 'bob', 'Maildir');
  assert.deepEqual(await readdir(join(box, 'new')), []);
  assert.deepEqual(await readdir(join(box, 'tmp')), []);
});
