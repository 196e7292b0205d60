// log.format: postfix. A real server delivers mail to an alias; its delivery log line, in the
// postfix format, names the mailbox (to=) and the address the sender wrote (orig_to=). The
// logger configured with format postfix writes such lines to its file descriptor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../harness/server.ts';
import { dial } from '../harness/dial.ts';
import { formatPostfixLine } from '../../src/observe/postfix-format.ts';
import { createLogger } from '../../src/observe/log.ts';
import { mailEvent } from '../../src/observe/maillog.ts';
import { buildConfig } from '../../src/config/load.ts';

test('postfix format: a delivery through an alias shows to=, orig_to=, relay, delay and status', async (t) => {
  const s = await startServer(t, { users: [['bob@example.org', 'correct horse battery']], aliases: [['info@example.org', ['bob@example.org']]] });
  const c = await dial(s.port('mx'));
  t.after(() => c.close());
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('MAIL FROM:<alice@example.net>').expect('250');
  await c.say('RCPT TO:<info@example.org>').expect('250');
  await c.say('RCPT TO:<ghost@example.org>').expect('550');
  await c.say('DATA').expect('354');
  const queued = await c.say('Subject: hi\r\n\r\nbody\r\n.').expect('250');
  const delivered = await s.waitForLog((l) => l.event === 'delivered');
  const line = formatPostfixLine(delivered);
  const id = delivered.queueId as string;
  assert.ok(queued.text.includes(id), `${queued.text} names ${id}`);
  assert.match(line, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\S+ mailward\\[\\d+\\]: ${id}: to=<bob@example\\.org>, orig_to=<info@example\\.org>, relay=local, delay=\\d+\\.\\d, dsn=2\\.\\d\\.\\d, status=sent \\(250 .*\\)$`));
  const rejected = formatPostfixLine(s.logs.find((l) => l.event === 'rejected')!);
  assert.match(rejected, /: rejected client=127\.0\.0\.1, listener=mx, from=<alice@example\.net>, to=<ghost@example\.org>, stage=rcpt, check=recipient/);
});

test('postfix format: log.format postfix writes human lines, not JSON', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = buildConfig({ log: { format: 'postfix' } }, 'test', dir);
  const file = path.join(dir, 'mail.log');
  const fd = openSync(file, 'w');
  const log = createLogger({ ...config.log, fd });
  mailEvent(log, 'deferred', { queueId: 'Q1', to: 'carol@example.com', transport: 'remote', relay: 'mx.example.com[192.0.2.1]:25', reply: '451 4.7.1 Try again later' });
  log.info({ event: 'started' }, 'mailward started');
  // The destination writes asynchronously: read until both lines are there (the test's own timeout bounds it).
  let lines: string[] = [];
  while (lines.length < 2) {
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    await new Promise((r) => setImmediate(r));
    lines = readFileSync(file, 'utf8').trim().split('\n');
  }
  closeSync(fd);
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0]!, /mailward\[\d+\]: Q1: to=<carol@example\.com>, relay=mx\.example\.com\[192\.0\.2\.1\]:25, dsn=4\.7\.1, status=deferred \(451 4\.7\.1 Try again later\)$/);
  assert.match(lines[1]!, /mailward\[\d+\]: started: mailward started$/);
});
