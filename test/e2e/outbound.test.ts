// Outbound end to end: a real server relays mail a user submits to "remote" hosts played
// by loopback sinks, found through a loopback DNS server (MX → 127.0.0.1, port override). The
// bytes that arrive (headers, DKIM, CRLF only), retries, bounces into the sender's Maildir, no
// bounce to <>, the smarthost with TLS and AUTH, and a restart in the middle of a retry schedule.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import { reply } from '../../src/core/reply.ts';
import { dkimRecordValue, generateDkimKey } from '../../src/delivery/dkim-sign.ts';
import { dial } from '../harness/dial.ts';
import { startDns, type TestDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { hasBareLineEnding, localhostCert, startSink, type Sink, type SinkOptions } from '../delivery/sink.ts';
import { authPlain } from '../harness/auth.ts';

const USERS: Array<[string, string]> = [['alice@example.org', 'alice password 1']];

interface Rig {
  srv: TestServer;
  sink: Sink;
  dns: TestDns;
  dataDir: string;
  config: Record<string, unknown>;
}

function tempData(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-out-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function rig(t: TestContext, o: { sink?: SinkOptions; delivery?: Record<string, unknown>; queue?: Record<string, unknown>; dkimRecord?: string; dataDir?: string } = {}): Promise<Rig> {
  const sink = await startSink(t, o.sink);
  const dns = await startDns(t, {
    'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } },
    'null.example': { MX: ['0 .'] },
    'example.org': { names: o.dkimRecord ? { 'sel._domainkey': { TXT: [o.dkimRecord] } } : {} },
  });
  const dataDir = o.dataDir ?? tempData(t);
  const config = {
    dns: { servers: [dns.address], timeout: '1s', tries: 1 },
    relay: { trustedNetworks: ['127.0.0.1/32'] },
    limits: { bareLineEndings: 'accept' },
    queue: { minBackoff: '100ms', maxBackoff: '500ms', ...o.queue },
    delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' }, ...o.delivery },
  };
  const srv = await startServer(t, { users: USERS, config, dataDir });
  return { srv, sink, dns, dataDir, config };
}

/**
 * Submits one message as alice (STARTTLS, AUTH) on the submission port, or with `viaMx` from the
 * trusted network on the MX port (for a null sender, which no login owns); returns its queue id.
 */
async function send(srv: TestServer, from: string, to: string[], body: string, bdat = false, viaMx = false): Promise<string> {
  const c = await dial(srv.port(viaMx ? 'mx' : 'submission'));
  await c.expect('220');
  await c.say('EHLO client.example.org').expect('250');
  if (!viaMx) {
    await c.say('STARTTLS').expect('220');
    await c.startTls();
    await c.say('EHLO client.example.org').expect('250');
    await c.say(authPlain(USERS[0]![0], USERS[0]![1])).expect('235');
  }
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  for (const r of to) await c.say(`RCPT TO:<${r}>`).expect('250');
  let done;
  if (bdat) {
    const bytes = Buffer.from(body);
    c.send(Buffer.concat([Buffer.from(`BDAT ${bytes.length} LAST\r\n`), bytes]));
    done = await c.expect('250 2.0.0 Ok: queued as ');
  } else {
    await c.say('DATA').expect('354');
    c.send(`${body.replace(/\r?\n/g, '\r\n')}\r\n.\r\n`);
    done = await c.expect('250 2.0.0 Ok: queued as ');
  }
  await c.say('QUIT').expect('221');
  return done.text.split(' ').pop()!;
}

async function spoolEmpty(srv: TestServer): Promise<void> {
  const { inspectSpool } = await import('../../src/queue/inspect.ts');
  for (let i = 0; i < 100; i++) {
    if ([...inspectSpool(srv.config.paths.spool)].length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('the spool did not empty');
}

test('outbound: MX delivery; the bytes that arrive carry our Received, a DKIM signature that verifies, and CRLF only', async (t) => {
  const dataDir = tempData(t);
  const pem = generateDkimKey('rsa');
  mkdirSync(path.join(dataDir, 'dkim'));
  writeFileSync(path.join(dataDir, 'dkim', 'example.org.sel.key'), pem, { mode: 0o600 });
  const { srv, sink, dns } = await rig(t, { dataDir, dkimRecord: dkimRecordValue(pem) });
  // Bare LFs, sent with BDAT (no dot-stuffing, accepted by limits.bareLineEndings: accept).
  const body = 'From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: bare lines\nDate: Tue, 1 Jul 2025 10:00:00 +0000\n\nline one\nline two\r\nlone CR\rend\n';
  const id = await send(srv, 'alice@example.org', ['bob@example.net'], body, true);
  const [m] = await sink.waitForMessages(1);
  assert.equal(m!.from, 'alice@example.org');
  assert.deepEqual(m!.rcpts, ['bob@example.net']);
  assert.equal(m!.helo, 'mx.example.org');
  const text = m!.body.toString();
  assert.equal(hasBareLineEnding(m!.body), false, `only CRLF: ${JSON.stringify(text.slice(-80))}`);
  assert.match(text, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.org;[^]*?\r\nReceived: from client\.example\.org \(\[127\.0\.0\.1\]\)\r\n/);
  assert.ok(text.includes(` id ${id}\r\n`), 'our Received header names the queue id');
  assert.ok(text.endsWith('\r\nFrom: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: bare lines\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\n\r\nline one\r\nline two\r\nlone CR\r\nend\r\n'));
  const resolver = dns.resolver();
  const v = await dkimVerify(m!.body, { resolver: (name: string, type: string) => resolver.resolve(name, type) as Promise<string[][]> });
  assert.deepEqual(v.results.map((r) => [r.signingDomain, r.selector, r.status.result]), [['example.org', 'sel', 'pass']]);
  const delivered = await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id);
  assert.equal(delivered.relay, 'mx.example.net');
  assert.equal(delivered.transport, 'remote');
  await spoolEmpty(srv);
});

test('outbound: a 4xx is retried with backoff and then delivered, once', async (t) => {
  const { srv, sink } = await rig(t, { sink: { rcpt: (_a, n) => (n === 1 ? reply(451, '4.7.1', 'Greylisted, try again') : undefined) } });
  const id = await send(srv, 'alice@example.org', ['bob@example.net'], 'Subject: later\n\nx');
  const deferred = await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === id);
  assert.equal(deferred.reply, '451 4.7.1 Greylisted, try again');
  const delivered = await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id);
  assert.equal(delivered.attempts, 2);
  assert.deepEqual(sink.rcpts, [
    { address: 'bob@example.net', code: 451 },
    { address: 'bob@example.net', code: 250 },
  ]);
  assert.equal(sink.messages.length, 1);
});

test('outbound: a 5xx bounces; the DSN from <> lands in the local sender\'s Maildir', async (t) => {
  const { srv, sink } = await rig(t, { sink: { rcpt: (a) => (a === 'nobody@example.net' ? reply(550, '5.1.1', 'No such user here') : undefined) } });
  const id = await send(srv, 'alice@example.org', ['nobody@example.net', 'bob@example.net'], 'From: alice@example.org\nSubject: doomed\n\nhello');
  const [dsn] = await srv.waitForMail('alice@example.org');
  assert.equal(sink.messages.length, 1, 'the other recipient got the message');
  assert.deepEqual(sink.messages[0]!.rcpts, ['bob@example.net']);
  const lines = dsn!.split('\r\n');
  assert.equal(lines[0], 'Return-Path: <>');
  assert.equal(lines[1], 'Delivered-To: alice@example.org');
  assert.match(dsn!, /\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx\.example\.org>\r\nTo: <alice@example\.org>\r\nSubject: Undelivered Mail Returned to Sender\r\n/);
  assert.match(dsn!, /Content-Type: multipart\/report; report-type=delivery-status; boundary="/);
  assert.match(dsn!, new RegExp(`Content-Type: message/delivery-status\\r\\n\\r\\nReporting-MTA: dns; mx\\.example\\.org\\r\\nX-Mailward-Queue-ID: ${id}\\r\\nArrival-Date: [^\\r]+\\r\\n\\r\\nFinal-Recipient: rfc822; nobody@example\\.net\\r\\nAction: failed\\r\\nStatus: 5\\.1\\.1\\r\\nRemote-MTA: dns; mx\\.example\\.net\\r\\nDiagnostic-Code: smtp; 550 5\\.1\\.1 No such user here\\r\\n`));
  assert.match(dsn!, /Content-Type: text\/rfc822-headers\r\n\r\nReceived: from client\.example\.org [^]*\r\nFrom: alice@example\.org\r\nSubject: doomed\r\n/);
  assert.ok(!dsn!.includes('hello'), 'the body is not returned');
  const bounced = await srv.waitForLog((l) => l.event === 'bounced' && l.queueId === id);
  assert.equal(bounced.rcpt, 'nobody@example.net');
  assert.equal(typeof bounced.dsn, 'string');
  await spoolEmpty(srv);
});

test('outbound: a null MX bounces at once with 5.1.10; a null-sender message never bounces', async (t) => {
  const { srv, sink } = await rig(t, { sink: { rcpt: () => reply(550, '5.1.1', 'No such user here') } });
  await send(srv, 'alice@example.org', ['x@null.example'], 'Subject: nowhere\n\nx');
  const [dsn] = await srv.waitForMail('alice@example.org');
  assert.match(dsn!, /Final-Recipient: rfc822; x@null\.example\r\nAction: failed\r\nStatus: 5\.1\.10\r\nDiagnostic-Code: smtp; 556 5\.1\.10 recipient domain null\.example has a null MX and accepts no mail\r\n/);

  const id = await send(srv, '', ['bob@example.net'], 'Subject: a bounce itself\n\nx', false, true);
  await srv.waitForLog((l) => l.event === 'bounced' && l.queueId === id);
  const suppressed = await srv.waitForLog((l) => l.event === 'bounce-suppressed' && l.queueId === id);
  assert.equal(suppressed.reason, 'null sender');
  assert.equal(srv.logs.filter((l) => l.event === 'bounce-queued').length, 1, 'only the null-MX bounce was queued');
  assert.equal(sink.rcpts.length, 1);
  await spoolEmpty(srv);
  assert.equal(srv.mailbox('alice@example.org').length, 1);
});

test('outbound: a route to a smarthost that requires TLS and AUTH, the password read from a file', async (t) => {
  const cert = localhostCert();
  const secret = 'smarthost pass\u00e9 9';
  const sink = await startSink(t, { tls: cert.context, auth: { user: 'mw-relay', pass: secret } });
  const dir = tempData(t);
  writeFileSync(path.join(dir, 'relay.pass'), `${secret}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'relay-ca.pem'), cert.certPem);
  const { srv } = await rig(t, {
    delivery: {
      routes: { '*': 'smarthost:relay', 'example.net': 'mx' },
      smarthosts: { relay: { host: 'localhost', port: sink.port, tls: 'starttls', ca: path.join(dir, 'relay-ca.pem'), auth: { user: 'mw-relay', passwordFile: path.join(dir, 'relay.pass') } } },
    },
  });
  const id = await send(srv, 'alice@example.org', ['someone@far-away.example'], 'Subject: via relay\n\nx');
  const [m] = await sink.waitForMessages(1);
  assert.equal(m!.secure, true);
  assert.equal(m!.login, 'mw-relay');
  assert.deepEqual(m!.rcpts, ['someone@far-away.example']);
  const delivered = await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === id);
  assert.equal(delivered.relay, 'localhost');
  assert.ok(!JSON.stringify(srv.logs).includes(secret), 'the password never reaches the log');
});

test('outbound: a restart in the middle of a retry schedule loses nothing and delivers each recipient once', async (t) => {
  let refuse = true;
  const first = await rig(t, {
    queue: { minBackoff: '1500ms', maxBackoff: '3s' },
    sink: { rcpt: (a) => (a === 'late@example.net' && refuse ? reply(451, '4.3.0', 'Not now') : undefined) },
  });
  const { srv, sink, dataDir, config } = first;
  const id = await send(srv, 'alice@example.org', ['early@example.net', 'late@example.net', 'alice@example.org'], 'Subject: three\n\nx');
  await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === id);
  await srv.waitForMail('alice@example.org');
  await srv.stop();
  refuse = false;

  const again = await startServer(t, { config, dataDir });
  const recovered = await again.waitForLog((l) => l.event === 'queue-loaded');
  assert.equal(recovered.scheduled, 1);
  const delivered = await again.waitForLog((l) => l.event === 'delivered' && l.queueId === id, 8000);
  assert.equal(delivered.rcpt, 'late@example.net');
  assert.equal(delivered.attempts, 2);
  await spoolEmpty(again);
  assert.deepEqual(
    sink.rcpts.map((r) => `${r.address} ${r.code}`),
    ['early@example.net 250', 'late@example.net 451', 'late@example.net 250'],
  );
  assert.equal(sink.messages.length, 2);
  assert.equal(again.mailbox('alice@example.org').length, 1, 'the local recipient was not delivered again');
  assert.equal(again.logs.filter((l) => l.event === 'delivered').length, 1, 'the second life delivered only the deferred recipient');
});
