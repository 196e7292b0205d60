// The concurrency limit per destination, end to end: a real server queues many messages for one
// domain and its delivery worker (20 at once by default) meets a slow loopback receiver that
// counts its simultaneous sessions — never more than delivery.mx.concurrencyPerDomain for MX
// delivery, nor delivery.smarthosts.<name>.maxConnections for a smarthost; and every message arrives.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, type TestServer } from '../harness/server.ts';
import { startDns } from '../harness/dns.ts';
import { dial } from '../harness/dial.ts';
import { localhostCert } from './sink.ts';

const MESSAGES = 10;
// Long enough that the queue holds many messages while the first ones are still in flight.
const SLOW_MS = 150;

interface SlowSink {
  readonly port: number;
  /** Sessions with a message in flight (from connection until the message is answered), now and at most at once. */
  busy: number;
  peakBusy: number;
  /** Connections open (until closed, QUIT exchange included), now and at most at once. */
  open: number;
  peakOpen: number;
  /** Recipients of each message that arrived whole. */
  readonly received: string[][];
  waitFor(n: number, timeoutMs?: number): Promise<void>;
}

/**
 * A deliberately small SMTP receiver (RFC 5321 §4.1.1 commands only) that answers the end of DATA
 * only after `SLOW_MS`, so that sessions overlap when the sender opens them in parallel.
 */
async function startSlowSink(t: TestContext, secure?: { certPem: string; keyPem: string }): Promise<SlowSink> {
  const sink: SlowSink = {
    port: 0,
    busy: 0,
    peakBusy: 0,
    open: 0,
    peakOpen: 0,
    received: [],
    async waitFor(n, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      while (sink.received.length < n) {
        if (Date.now() > end) throw new Error(`slow sink: ${sink.received.length} of ${n} messages arrived`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  const sockets = new Set<net.Socket>();
  const session = (s: net.Socket): void => {
    sockets.add(s);
    let busy = true;
    const done = (): void => {
      if (busy) sink.busy--;
      busy = false;
    };
    sink.open++;
    sink.busy++;
    sink.peakOpen = Math.max(sink.peakOpen, sink.open);
    sink.peakBusy = Math.max(sink.peakBusy, sink.busy);
    let open = true;
    // Open until the 221 goes out (or the close): the close itself reaches this loop in its own
    // time, which may come after the next connection's accept even when the sender waited for it.
    const closed = (): void => {
      if (open) sink.open--;
      open = false;
    };
    s.on('close', () => {
      sockets.delete(s);
      closed();
      done();
    });
    s.on('error', () => undefined);
    let buffer = '';
    let inData = false;
    let rcpts: string[] = [];
    s.setEncoding('latin1');
    s.write('220 slow.test ESMTP\r\n');
    s.on('data', (d: string) => {
      buffer += d;
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buffer = buffer.slice(end + 5);
          inData = false;
          const to = rcpts;
          setTimeout(() => {
            sink.received.push(to);
            // Each session carries one message: answered, it is done (the sender may reuse its slot).
            done();
            if (!s.destroyed) s.write('250 2.0.0 Ok: queued\r\n');
          }, SLOW_MS);
          continue;
        }
        const nl = buffer.indexOf('\r\n');
        if (nl < 0) return;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') s.write('250-slow.test\r\n250 8BITMIME\r\n');
        else if (verb === 'HELO') s.write('250 slow.test\r\n');
        else if (verb === 'MAIL') {
          rcpts = [];
          s.write('250 2.1.0 Ok\r\n');
        } else if (verb === 'RCPT') {
          rcpts.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          s.write('250 2.1.5 Ok\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          s.write('354 End data with <CR><LF>.<CR><LF>\r\n');
        } else if (verb === 'RSET' || verb === 'NOOP') s.write('250 2.0.0 Ok\r\n');
        else if (verb === 'QUIT') {
          // A slow goodbye: a sender that gave its slot back before the connection ended would
          // open the next one meanwhile, and the count would pass the limit every time.
          setTimeout(() => {
            closed();
            if (!s.destroyed) s.end('221 2.0.0 Bye\r\n');
          }, SLOW_MS);
        }
        else s.write('502 5.5.2 Command not recognized\r\n');
      }
    });
  };
  const server = secure ? tls.createServer({ cert: secure.certPem, key: secure.keyPem }, session) : net.createServer(session);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (sink as { port: number }).port = (server.address() as net.AddressInfo).port;
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return sink;
}

/** Relays `MESSAGES` messages, one recipient each, from the trusted network in one session. */
async function relayMany(srv: TestServer, domain: string): Promise<string[]> {
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO app.example.com').expect('250');
  const to: string[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const rcpt = `r${i}@${domain}`;
    to.push(rcpt);
    await c.say('MAIL FROM:<app@example.com>').expect('250');
    await c.say(`RCPT TO:<${rcpt}>`).expect('250');
    await c.say('DATA').expect('354');
    c.send(`From: <app@example.com>\r\nTo: <${rcpt}>\r\nSubject: ${i}\r\n\r\nmessage ${i}\r\n.\r\n`);
    await c.expect('250 2.0.0 Ok: queued as ');
  }
  await c.say('QUIT').expect('221');
  return to;
}

const BASE = { relay: { trustedNetworks: ['127.0.0.1/32'] }, queue: { fsync: false } };

/** A server whose MX delivery to example.net goes to a slow sink, with concurrencyPerDomain 2. */
async function mxRun(t: TestContext): Promise<{ sink: SlowSink; sent: string[] }> {
  const sink = await startSlowSink(t);
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const srv = await startServer(t, {
    config: {
      ...BASE,
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      delivery: { mx: { port: sink.port, concurrencyPerDomain: 2 }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  assert.equal(srv.config.queue.concurrency, 20, 'the worker itself would run 20 deliveries at once');
  const sent = await relayMany(srv, 'example.net');
  await sink.waitFor(MESSAGES);
  return { sink, sent };
}

test('delivery: MX delivery of many messages to one domain runs at most concurrencyPerDomain (2) sessions and connections at once, and all arrive', async (t) => {
  const { sink, sent } = await mxRun(t);
  assert.deepEqual(sink.received.map((r) => r.join(',')).sort(), [...sent].sort());
  // The limit was reached (so it was tested) and never passed.
  assert.equal(sink.peakBusy, 2);
  // The slot is given back once the connection has ended, not when the message is answered: a
  // receiver that counts connections (a provider's "at most N connections") never sees more.
  assert.ok(sink.peakOpen <= 2, `${sink.peakOpen} connections were open at once`);
});

test('delivery: a smarthost with maxConnections 2 never runs more than 2 sessions at once, and all messages arrive', async (t) => {
  const cert = localhostCert();
  const sink = await startSlowSink(t, cert);
  const srv = await startServer(t, {
    config: {
      ...BASE,
      delivery: {
        routes: { '*': 'smarthost:relay' },
        smarthosts: { relay: { host: '127.0.0.1', port: sink.port, tls: 'implicit', ca: caFile(t, cert.certPem), maxConnections: 2 } },
        timeouts: { connect: '2s', greeting: '2s', idle: '5s' },
      },
    },
  });
  const sent = await relayMany(srv, 'example.com');
  await sink.waitFor(MESSAGES);
  assert.deepEqual(sink.received.map((r) => r.join(',')).sort(), [...sent].sort());
  assert.equal(sink.peakBusy, 2);
  assert.ok(sink.peakOpen <= 2, `${sink.peakOpen} connections were open at once`);
});

/** The sink's certificate as a file, for delivery.smarthosts.<name>.ca. */
function caFile(t: TestContext, pem: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-ca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ca.pem');
  writeFileSync(file, pem);
  return file;
}
