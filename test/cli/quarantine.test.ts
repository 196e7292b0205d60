// `mailward quarantine ...` run in-process: list, show, release (learning ham) and delete on a
// stopped server's spool, then release and delete through a live server's control socket, where
// the released message is delivered to the Maildir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Spool, type NewEnvelope } from '../../src/queue/spool.ts';
import { parseControlRequest } from '../../src/queue/control.ts';
import { quarantinePath } from '../../src/queue/quarantine.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { SpamFilter } from '../../src/spam/filter.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { envelope } from '../queue/helpers.ts';
import { startServer } from '../harness/server.ts';
import { mailward, setupConfig } from './inprocess.ts';

const DAY = 86_400_000;

function spamBody(n: number, score = '12.3'): string {
  return [`X-Spam-Score: ${score}`, `X-Spam-Status: Yes, score=${score} required=5.0 tests=BAYES_999,HTML_ONLY autolearn=no`, 'X-Spam-Flag: YES', 'From: Deals <deals@bad.example>', 'To: bob@example.org', `Subject: cheap pills ${n}`, '', `Order now, message ${n}.`, ''].join('\r\n');
}

/** Commits a message the way a session does and moves it into quarantine/; returns its id and bytes. */
async function quarantine(spool: Spool, env: NewEnvelope, body: string): Promise<{ id: string; raw: Buffer }> {
  const w = spool.begin(env);
  const received = `Received: from client.example by mx.example.org with ESMTP id ${w.id}\r\n`;
  await w.write(Buffer.from(received));
  await w.write(Buffer.from(body));
  await w.commit();
  assert.equal(await spool.move(w.id, 'queue', 'quarantine'), true);
  return { id: w.id, raw: Buffer.from(received + body) };
}

const toBob = (over: Partial<NewEnvelope> = {}): NewEnvelope => envelope({ mailFrom: 'deals@bad.example', recipients: [{ address: 'bob@example.org', mailbox: 'bob@example.org', transport: 'local' }], ...over });

async function learned(storePath: string, raw: Buffer): Promise<{ totals: { nspam: number; nham: number }; seen: string | null }> {
  const store = new SqliteStore({ path: storePath }, silentLogger());
  try {
    const f = new SpamFilter({ store, ourDomains: ['example.org'] });
    await f.db.open();
    return { totals: await f.totals(), seen: await f.db.seen(f.analyze(raw).digest) };
  } finally {
    await store.close();
  }
}

test('quarantine on a stopped server: list, show, release learns ham, delete by age and with --learn-spam', async (t) => {
  const { dataDir, config } = setupConfig(t);
  const spoolDir = path.join(dataDir, 'spool');
  const spool = await Spool.open(spoolDir, { log: silentLogger(), fsync: false });
  const fresh = await quarantine(spool, toBob(), spamBody(1));
  const old = await quarantine(spool, toBob({ receivedAt: Date.now() - 3 * DAY, recipients: [{ address: 'carol@example.org', mailbox: 'carol@example.org', transport: 'local' }, { address: 'dave@example.org', mailbox: 'dave@example.org', transport: 'local' }] }), spamBody(2, '15.0'));
  const third = await quarantine(spool, toBob(), spamBody(3).replace(/^X-Spam-Score: .*\r\n/, ''));
  await spool.close();
  const size = (raw: Buffer): string => String(raw.length).padStart(9);

  const list = await mailward(['quarantine', 'list', '--config', config]);
  assert.equal(list.code, 0, list.err);
  assert.deepEqual(
    list.out.trimEnd().split('\n').sort(),
    [
      `${fresh.id}    0m  ${size(fresh.raw)}   12.3  <deals@bad.example>  bob@example.org`,
      `${old.id}    3d  ${size(old.raw)}   15.0  <deals@bad.example>  carol@example.org, dave@example.org`,
      `${third.id}    0m  ${size(third.raw)}      -  <deals@bad.example>  bob@example.org`,
      `3 message(s) in quarantine, ${fresh.raw.length + old.raw.length + third.raw.length} bytes`,
    ].sort(),
  );
  const json = await mailward(['quarantine', 'list', '--json', '--config', config]);
  const rows = json.out.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(rows.find((r) => r.id === old.id), { id: old.id, receivedAt: rows.find((r) => r.id === old.id)!.receivedAt, size: old.raw.length, score: 15, from: 'deals@bad.example', recipients: ['carol@example.org', 'dave@example.org'], client: '192.0.2.7' });

  const show = await mailward(['quarantine', 'show', fresh.id, '--config', config]);
  assert.equal(show.code, 0, show.err);
  assert.match(show.out, new RegExp(`^id: ${fresh.id}\nreceived: \\d{4}-.*Z\nfrom: <deals@bad\\.example>\nsize: ${fresh.raw.length}\nclient: 192\\.0\\.2\\.7 helo=client\\.example\\.org login=- listener=mx\nrecipients:\n  bob@example\\.org \\[local\\]\n\nReceived: from client\\.example by mx\\.example\\.org with ESMTP id ${fresh.id}\nX-Spam-Score: 12\\.3\n`));
  assert.match(show.out, /\nSubject: cheap pills 1\n$/, 'the header block only');
  const body = await mailward(['quarantine', 'show', fresh.id, '--body', '--config', config]);
  assert.match(body.out, /\nSubject: cheap pills 1\n\nOrder now, message 1\.\n$/);
  assert.deepEqual(await mailward(['quarantine', 'show', '1k8fn2k50f5t0l8a1', '--config', config]), { code: 1, out: '', err: 'mailward: no quarantined message "1k8fn2k50f5t0l8a1"; see "mailward quarantine list"\n' });

  // Release: learned as ham first, then moved into queue/ (delivered when the server starts).
  const rel = await mailward(['quarantine', 'release', fresh.id, '--config', config]);
  assert.deepEqual(rel, { code: 0, out: '1 message(s) released in the spool (no server running; delivered when it starts)\nlearned as ham: 1\n', err: '' });
  assert.equal(existsSync(quarantinePath(spoolDir, fresh.id)), false);
  assert.equal(existsSync(path.join(spoolDir, 'queue', fresh.id[7]!, fresh.id)), true);
  assert.deepEqual(await learned(path.join(dataDir, 'state.sqlite'), fresh.raw), { totals: { nspam: 0, nham: 1 }, seen: 'ham' });
  const again = await mailward(['quarantine', 'release', fresh.id, '--config', config]);
  assert.equal(again.code, 1);
  assert.equal(again.out, '0 message(s) released in the spool (no server running; delivered when it starts); 1 id(s) not in the quarantine\nlearned as ham: 0\n');
  assert.equal(again.err, 'mailward: none of these ids is in the quarantine; see "mailward quarantine list"\n');

  // Delete by age: only the 3-day-old one.
  assert.deepEqual(await mailward(['quarantine', 'delete', '--older-than', '2d', '--yes', '--config', config]), { code: 0, out: '1 message(s) deleted in the spool (no server running)\n', err: '' });
  assert.equal(existsSync(quarantinePath(spoolDir, old.id)), false);
  assert.equal(existsSync(quarantinePath(spoolDir, third.id)), true);
  // Delete with --learn-spam.
  assert.deepEqual(await mailward(['quarantine', 'delete', third.id, '--learn-spam', '--yes', '--config', config]), { code: 0, out: '1 message(s) deleted in the spool (no server running)\nlearned as spam: 1\n', err: '' });
  assert.deepEqual(await learned(path.join(dataDir, 'state.sqlite'), third.raw), { totals: { nspam: 1, nham: 1 }, seen: 'spam' });
  assert.deepEqual(await mailward(['quarantine', 'list', '--config', config]), { code: 0, out: '0 message(s) in quarantine\n', err: '' });

  // Usage errors.
  assert.deepEqual(await mailward(['quarantine', 'delete', '--config', config]), { code: 2, out: '', err: 'mailward: say which messages: ids, --older-than AGE, or --all\n' });
  assert.deepEqual(await mailward(['quarantine', 'delete', third.id, '--all', '--config', config]), { code: 2, out: '', err: 'mailward: give ids, or --all / --older-than, not both\n' });
  assert.deepEqual(await mailward(['quarantine', 'delete', '--older-than', 'soon', '--config', config]), { code: 2, out: '', err: 'mailward: --older-than "soon" is not an age; write e.g. 12h, 7d or 30d\n' });
});

test('quarantine with a live server: release is delivered to the Maildir and learned as ham; delete --all', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'mailward-qlive-'));
  const { config } = setupConfig(t);
  // The CLI's config file points at the server's data folder.
  writeFileSync(config, ['hostname: mx.example.org', 'domains: [example.org]', `dataDir: ${dataDir}`, 'listeners:\n  mx: { kind: mx, port: 0 }', ''].join('\n'));
  const spool = await Spool.open(path.join(dataDir, 'spool'), { log: silentLogger(), fsync: false });
  const a = await quarantine(spool, toBob(), spamBody(1));
  const b = await quarantine(spool, toBob(), spamBody(2));
  const c = await quarantine(spool, toBob(), spamBody(3));
  await spool.close();
  const srv = await startServer(undefined, { dataDir });
  t.after(async () => {
    await srv.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const list = await mailward(['quarantine', 'list', '--config', config]);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /\n3 message\(s\) in quarantine, \d+ bytes\n$/);
  const rel = await mailward(['quarantine', 'release', a.id, '--config', config]);
  assert.deepEqual(rel, { code: 0, out: '1 message(s) released by the running server\nlearned as ham: 1\n', err: '' });
  const mail = await srv.waitForMail('bob@example.org');
  assert.equal(mail.length, 1);
  assert.match(mail[0]!, /\r?\nSubject: cheap pills 1\r?\n/);
  await srv.waitForLog((l) => l.event === 'quarantine-admin' && l.queueId === a.id);
  assert.deepEqual(await learned(path.join(dataDir, 'state.sqlite'), a.raw), { totals: { nspam: 0, nham: 1 }, seen: 'ham' });

  const del = await mailward(['quarantine', 'delete', '--all', '--yes', '--config', config]);
  assert.deepEqual(del, { code: 0, out: '2 message(s) deleted by the running server\n', err: '' });
  assert.equal(existsSync(quarantinePath(srv.config.paths.spool, b.id)), false);
  assert.equal(existsSync(quarantinePath(srv.config.paths.spool, c.id)), false);
  assert.equal(srv.mailbox('bob@example.org').length, 1, 'deleted messages are not delivered');
});

test('control protocol: quarantine requests are checked; queue requests stay as they were', () => {
  assert.deepEqual(parseControlRequest({ op: 'quarantine-release', ids: ['x'] }), { op: 'quarantine-release', ids: ['x'] });
  assert.deepEqual(parseControlRequest({ op: 'quarantine-delete', receivedBefore: 5 }), { op: 'quarantine-delete', receivedBefore: 5 });
  assert.equal(parseControlRequest({ op: 'quarantine-delete' }), 'no messages selected: give ids, all, or receivedBefore');
  assert.equal(parseControlRequest({ op: 'quarantine-hold', all: true }), 'unknown op "quarantine-hold"');
  assert.equal(parseControlRequest({ op: 'quarantine-delete', receivedBefore: 'yesterday' }), 'receivedBefore must be a time in milliseconds since the epoch');
  assert.deepEqual(parseControlRequest({ op: 'hold', all: true }), { op: 'hold', all: true });
  assert.deepEqual(parseControlRequest({ op: 'delete', filter: { sender: 'a@b' } }), { op: 'delete', filter: { sender: 'a@b' } });
  assert.deepEqual(parseControlRequest({ op: 'delete', all: true, countOnly: true }), { op: 'delete', all: true, countOnly: true });
  for (const op of ['delete', 'quarantine-delete']) {
    assert.equal(parseControlRequest({ op, ids: [1] }), 'ids must be a list of strings');
    assert.equal(parseControlRequest({ op, all: 'yes' }), 'all must be true or false');
  }
  assert.equal(parseControlRequest({ op: 'delete', all: true, countOnly: 1 }), 'countOnly must be true or false');
});
