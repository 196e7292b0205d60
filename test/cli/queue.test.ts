// `mailward queue ...` as an operator runs it (a real process) against a real spool: list with
// filters and a summary, show, hold/release/delete/requeue/flush on a stopped server's spool, the
// delete confirmation, and the same commands while a server runs and owns the spool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Spool } from '../../src/queue/spool.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { envelope, queueMessage } from '../queue/helpers.ts';
import { startServer } from '../harness/server.ts';
import { startDns } from '../harness/dns.ts';
import { runMailward } from '../harness/cli.ts';



async function setup(t: { after(fn: () => void): void }, dnsAddress = '127.0.0.1:9'): Promise<{ dataDir: string; config: string; spam: string[]; good: string[] }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-cliq-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'mailward.yaml');
  writeFileSync(
    config,
    [
      'hostname: mx.example.org',
      'domains: [example.org]',
      `dataDir: ${dataDir}`,
      'listeners:\n  mx: { kind: mx, port: 0 }',
      'log: { level: silent }',
      `dns: { servers: ["${dnsAddress}"], timeout: 500ms, tries: 1 }`,
      'queue: { minBackoff: 1h, maxBackoff: 1h }',
      '',
    ].join('\n'),
  );
  const spool = await Spool.open(path.join(dataDir, 'spool'), { log: silentLogger() });
  const spam: string[] = [];
  const good: string[] = [];
  try {
    for (let i = 0; i < 3; i++) spam.push(await queueMessage(spool, envelope({ mailFrom: 'spammer@bad.example', recipients: [{ address: `v${i}@victim.example`, transport: 'remote' }] }), 'Subject: buy\r\n\r\nx\r\n'));
    good.push(await queueMessage(spool, envelope({ mailFrom: 'alice@example.org', recipients: [{ address: 'bob@example.net', transport: 'remote' }] }), 'Subject: hi\r\n\r\nx\r\n'));
    good.push(await queueMessage(spool, envelope({ mailFrom: '', receivedAt: Date.now() - 3 * 3_600_000, recipients: [{ address: 'carol@example.net', transport: 'remote' }] }), 'Subject: dsn\r\n\r\nx\r\n'));
    await spool.markRecipient(good[1]!, 0, { status: 'deferred', attempts: 2, nextAttemptAt: Date.now() + 3_600_000, lastReply: '451 4.4.1 no answer' });
  } finally {
    await spool.close();
  }
  return { dataDir, config, spam, good };
}

test('cli queue: list, filters, summary, json and show on a stopped server\'s spool', async (t) => {
  const { config, spam, good } = await setup(t);
  // Read-only commands: run them side by side.
  const [all, bySender, old, summary, show, bad] = await Promise.all([
    runMailward(['queue', 'list', '--config', config]),
    runMailward(['queue', 'list', '--sender', '@BAD.example', '--config', config]),
    runMailward(['queue', 'list', '--older-than', '2h', '--json', '--config', config]),
    runMailward(['queue', 'list', '--summary', '--top', '2', '--config', config]),
    runMailward(['queue', 'show', good[1]!, '--config', config]),
    runMailward(['queue', 'list', '--older-than', 'soon', '--config', config]),
  ]);
  assert.equal(all.code, 0, all.stderr);
  const lines = all.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 7);
  assert.deepEqual(lines.slice(-2), ['held 0, deferred 1, pending 4; 5 recipient(s) to go; ' + /(\d+) bytes/.exec(lines.at(-2)!)![1] + ' bytes', '5 message(s) queued']);
  assert.match(all.stdout, new RegExp(`^${good[1]}  deferred\\s+\\d+\\s+3h  <>  1/1 to go$`, 'm'));

  assert.deepEqual(bySender.stdout.split('\n').filter((l) => /^[0-9a-v]{17} /.test(l)).map((l) => l.slice(0, 17)).sort(), [...spam].sort());
  const parsed = old.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { envelope: { id: string }; state: string; held: boolean });
  assert.deepEqual(parsed.map((p) => [p.envelope.id, p.state, p.held]), [[good[1], 'deferred', false]]);

  assert.equal(summary.code, 0, summary.stderr);
  assert.match(summary.stdout, /^top senders:\n\s+3 {2}spammer@bad\.example\n\s+1 {2}<>\ntop recipient domains \(messages\):\n\s+3 {2}victim\.example\n\s+2 {2}example\.net\nheld 0, deferred 1, pending 4; /);

  assert.match(show.stdout, new RegExp(`^id: ${good[1]}\nstate: deferred\n`));
  assert.match(show.stdout, /\n {2}carol@example\.net \[remote\] deferred attempts=2 next=\S+ last="451 4\.4\.1 no answer"\n$/);

  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'mailward: --older-than "soon" is not an age; write e.g. 30m, 6h or 2d\n');
});

test('cli queue: hold, release, delete (asks first), requeue and flush without a server', async (t) => {
  const { config, spam, good } = await setup(t);
  const hold = await runMailward(['queue', 'hold', '--sender', 'spammer@bad.example', '--config', config]);
  assert.equal(hold.stdout, '3 message(s) put on hold in the spool (no server running)\n');
  const held = await runMailward(['queue', 'list', '--state', 'held', '--config', config]);
  assert.match(held.stdout, /\n3 message\(s\) queued\n$/);
  const rel = await runMailward(['queue', 'release', spam[0]!, '--config', config]);
  assert.equal(rel.stdout, '1 message(s) released in the spool (no server running)\n');

  const none = await runMailward(['queue', 'delete', '--config', config]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /say which messages: queue ids, a filter/);
  const no = await runMailward(['queue', 'delete', '--sender', 'spammer@bad.example', '--config', config], 'n\n');
  assert.equal(no.stderr, 'delete 3 message(s)? [y/N] ');
  assert.equal(no.stdout, 'nothing deleted\n');
  const yes = await runMailward(['queue', 'delete', '--sender', 'spammer@bad.example', '--config', config], 'y\n');
  assert.equal(yes.stdout, '3 message(s) deleted in the spool (no server running)\n');

  const req = await runMailward(['queue', 'requeue', '--all', '--config', config]);
  assert.equal(req.stdout, '1 message(s) requeued in the spool (no server running)\n', 'only the deferred one changes');
  const flush = await runMailward(['queue', 'flush', '--config', config]);
  assert.equal(flush.code, 0, flush.stderr);
  assert.equal(flush.stdout, '0 message(s) flushed in the spool (no server running)\nthey are tried when the server starts\n');
  const left = await runMailward(['queue', 'list', '--config', config]);
  assert.match(left.stdout, /held 0, deferred 0, pending 2; 2 recipient\(s\) to go; \d+ bytes\n2 message\(s\) queued\n$/);
  assert.ok(left.stdout.includes(good[0]!) && left.stdout.includes(good[1]!));
  const missing = await runMailward(['queue', 'hold', '1k8fn2k50f5t0l8zz', '--config', config]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '0 message(s) put on hold in the spool (no server running); 1 id(s) not found\n');
});

test('cli queue: the same commands reach a running server over its control socket', async (t) => {
  const dns = await startDns(t, { 'victim.example': { mode: 'servfail' }, 'example.net': { mode: 'servfail' } });
  const { dataDir, config, spam, good } = await setup(t, dns.address);
  const srv = await startServer(t, { dataDir, config: { dns: { servers: [dns.address], timeout: '500ms', tries: 1 }, queue: { minBackoff: '1h', maxBackoff: '1h' } } });
  // The server tried the four pending messages once (the DNS fails, so they are deferred); the
  // one deferred already waits an hour.
  for (let i = 0; i < 200 && srv.logs.filter((l) => l.event === 'deferred').length < 4; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(srv.logs.filter((l) => l.event === 'deferred').length, 4);

  const hold = await runMailward(['queue', 'hold', spam[0]!, spam[1]!, '--config', config]);
  assert.equal(hold.stdout, '2 message(s) put on hold by the running server\n', hold.stderr);
  const list = await runMailward(['queue', 'list', '--state', 'held', '--config', config]);
  assert.match(list.stdout, /\n2 message\(s\) queued\n$/);
  const flushed = await runMailward(['queue', 'flush', '--config', config]);
  assert.equal(flushed.stdout, '3 message(s) flushed by the running server\n');
  const retried = await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === good[1]);
  assert.equal(retried.attempts, 3, 'tried at once after the flush, not in an hour');
  // The summary comes from the server's catalog, with no file read.
  const summary = await runMailward(['queue', 'list', '--summary', '--config', config]);
  assert.match(summary.stdout, /\n {10}3 {2}spammer@bad\.example\n/);
  assert.match(summary.stdout, /\nheld 2, deferred 3, pending 0; \d+ recipient\(s\) to go\n5 message\(s\) queued \(counted by the running server\)\n$/);
  // The confirmation's count comes from the server's catalog (held messages included).
  const no = await runMailward(['queue', 'delete', '--sender', 'spammer@bad.example', '--config', config], 'n\n');
  assert.equal(no.stderr, 'delete 3 message(s)? [y/N] ');
  assert.equal(no.stdout, 'nothing deleted\n');
  assert.ok(srv.logs.some((l) => l.event === 'queue-admin-request' && l.op === 'delete' && l.countOnly === true), 'the count was asked of the server');
  const del = await runMailward(['queue', 'delete', '--all', '--yes', '--config', config]);
  assert.equal(del.stdout, '5 message(s) deleted by the running server\n');
  const empty = await runMailward(['queue', 'list', '--config', config]);
  assert.equal(empty.stdout, '0 message(s) queued\n');
  // One summary line per command, naming the operator; none per message.
  const audit = srv.logs.filter((l) => l.event === 'queue-admin' && l.op === 'delete');
  assert.deepEqual(audit.map((l) => [l.changed, l.selector]), [[5, { all: true }]]);
  assert.match(String(audit[0]!.operator), /\(uid \d+, cli\)$/);
  assert.equal(srv.logs.filter((l) => l.event === 'queue-admin' && l.queueId !== undefined).length, 0);
});
