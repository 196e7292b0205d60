// TLS in the SMTP engine over real loopback sockets: STARTTLS (RFC 3207) with state reset and
// the command-injection defence, AUTH over TLS, implicit TLS (RFC 8314), and nodemailer.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import nodemailer from 'nodemailer';
import { dial, type Dialog } from '../harness/dial.ts';
import { selfSignedContext, serve, type ServeOptions, type Served } from './fixture.ts';
import type { TestContext } from 'node:test';

let dir: string;
let ctx: tls.SecureContext;

before(async () => {
  dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'mailward-tls-'));
  ctx = selfSignedContext(dir);
});
after(() => fs.promises.rm(dir, { recursive: true, force: true }));

async function session(t: TestContext, o: ServeOptions = {}, implicit = false): Promise<{ srv: Served; d: Dialog }> {
  const srv = await serve(t, { ...o, protocol: { tls: ctx, implicitTls: implicit, ...o.protocol } });
  const d = await dial(srv.port, { tls: implicit });
  t.after(() => d.close());
  await d.expect('220 mx.test ESMTP Mailward\r\n');
  return { srv, d };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('STARTTLS', () => {
  it('upgrades, forgets the earlier state and requires EHLO again', async (t) => {
    const { srv, d } = await session(t, { protocol: { auth: true } });
    const before = await d.say('EHLO client.example').expect('250-');
    assert.match(before.text, /^STARTTLS$/m);
    assert.doesNotMatch(before.text, /AUTH/);
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('STARTTLS').expect('220 2.0.0 Ready to start TLS\r\n');
    await d.startTls();
    await d.say('RCPT TO:<u@test.example>').expect('503 5.5.1'); // the transaction is gone
    await d.say('MAIL FROM:<s@sender.example>').expect('503 5.5.1'); // and so is EHLO
    const afterTls = await d.say('EHLO client.example').expect('250-');
    assert.doesNotMatch(afterTls.text, /STARTTLS/);
    assert.match(afterTls.text, /^AUTH PLAIN LOGIN$/m);
    await d.say('STARTTLS').expect('503 5.5.1');
    const h = srv.handlers[0]!;
    assert.equal(h.lastState?.secure, true);
    assert.match(h.lastState?.tlsProtocol ?? '', /^TLSv1\.[23]$/);
    assert.ok(h.lastState?.tlsCipher);
    assert.ok(h.resets >= 1);
    assert.ok(h.events.some((e) => e.event === 'tls'));
  });

  it('discards commands pipelined after STARTTLS (CVE-2011-0411)', async (t) => {
    const { srv, d } = await session(t);
    await d.say('EHLO client.example').expect('250-');
    d.send('STARTTLS\r\nRSET\r\n');
    await d.expect('220 2.0.0 Ready to start TLS\r\n');
    await d.startTls();
    // The first reply over TLS must answer our EHLO, not the injected RSET.
    d.send('EHLO client.example\r\n');
    const r = await d.read();
    assert.ok(r.raw.startsWith('250-mx.test\r\n'), `got ${JSON.stringify(r.raw)}`);
    await d.say('NOOP').expect('250 2.0.0 OK');
    const ev = srv.handlers[0]!.events.find((e) => e.event === 'starttls-injection');
    assert.deepEqual(ev?.detail, { bytes: 6 });
  });

  it('refuses STARTTLS with arguments and ends the session on a failed handshake', async (t) => {
    const { srv, d } = await session(t);
    await d.say('EHLO client.example').expect('250-');
    await d.say('STARTTLS now').expect('501 5.5.4');
    await d.say('STARTTLS').expect('220 ');
    d.send('this is not a TLS ClientHello\r\n\r\n');
    await d.closed();
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'TLS handshake failed');
    assert.ok(h.events.some((e) => e.event === 'tls-error'));
  });

  // Found by fuzzing: a client that half-closed around STARTTLS held its connection until the
  // handshake time-out (30 s by default), as the listeners allow half-open TCP.
  for (const when of ['with the command', 'after the 220'] as const) {
    it(`lets go at once of a client that half-closes ${when}`, async (t) => {
      const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 60_000 } });
      await d.say('EHLO client.example').expect('250-');
      if (when === 'with the command') {
        d.socket.end('STARTTLS\r\n');
      } else {
        await d.say('STARTTLS').expect('220 2.0.0 Ready to start TLS\r\n');
        d.socket.end();
      }
      const h = srv.handlers[0]!;
      let timer: NodeJS.Timeout | undefined;
      const reason = await Promise.race([h.closed, new Promise<string>((r) => (timer = setTimeout(() => r('still open after 3 s'), 3000)))]);
      clearTimeout(timer);
      // With the command, the FIN may be seen before STARTTLS runs, or only during the handshake.
      assert.match(reason, when === 'with the command' ? /^(client closed before the TLS handshake|TLS handshake failed)$/ : /^TLS handshake failed$/);
      await d.closed();
    });
  }

  it('lets MAIL through under requireTls once TLS is up', async (t) => {
    const { d } = await session(t, { protocol: { requireTls: true } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('530 5.7.0 Must issue a STARTTLS command first');
    await d.say('STARTTLS').expect('220 ');
    await d.startTls();
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
  });
});

describe('AUTH over TLS', () => {
  it('PLAIN with an initial response, then mail under requireAuth', async (t) => {
    const { srv, d } = await session(t, { protocol: { auth: true, requireAuth: true } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('AUTH PLAIN').expect('538 5.7.11'); // not yet encrypted
    await d.say('STARTTLS').expect('220 ');
    await d.startTls();
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<alice@sender.example>').expect('530 5.7.0 Authentication required');
    await d.say(`AUTH PLAIN ${b64('alice\0alice\0correct horse')}`).expect('235 2.7.0');
    await d.say('MAIL FROM:<alice@sender.example>').expect('250 ');
    const h = srv.handlers[0]!;
    assert.equal(h.lastState?.login, 'alice');
    assert.deepEqual(h.auths, [{ mechanism: 'PLAIN', username: 'alice', password: 'correct horse', authzid: 'alice' }]);
  });

  it('LOGIN with the username as initial response; wrong password refused', async (t) => {
    const { srv, d } = await session(t, { protocol: { auth: true } }, true);
    await d.say('EHLO client.example').expect('250-');
    await d.say(`AUTH LOGIN ${b64('alice')}`).expect('334 UGFzc3dvcmQ6\r\n');
    await d.say(b64('nope')).expect('535 5.7.8');
    await d.say('AUTH LOGIN').expect('334 VXNlcm5hbWU6');
    await d.say('not base64!').expect('501 5.5.2');
    await d.say('AUTH LOGIN').expect('334 ');
    await d.say(b64('alice')).expect('334 ');
    await d.say(b64('correct horse')).expect('235 ');
    assert.equal(srv.handlers[0]!.lastState?.login, 'alice');
  });
});

describe('implicit TLS', () => {
  it('greets over TLS and offers AUTH but not STARTTLS', async (t) => {
    const { srv, d } = await session(t, { protocol: { auth: true } }, true);
    const ehlo = await d.say('EHLO client.example').expect('250-');
    assert.doesNotMatch(ehlo.text, /STARTTLS/);
    assert.match(ehlo.text, /^AUTH PLAIN LOGIN$/m);
    assert.equal(srv.handlers[0]!.lastState?.secure, true);
  });

  it('reads a PROXY header before the TLS handshake', { timeout: 5000 }, async (t) => {
    const srv = await serve(t, { protocol: { tls: ctx, implicitTls: true }, proxy: { trusted: ['127.0.0.1'] } });
    const plain = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(srv.port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
    t.after(() => plain.destroy());
    plain.setNoDelay(true);
    plain.write('PROXY TCP4 203.0.113.9 192.0.2.1 4000 465\r\n');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
    secure.setEncoding('utf8');
    let got = '';
    await new Promise<void>((resolve, reject) => {
      secure.on('data', (d: string) => {
        got += d;
        if (got.includes('\r\n')) resolve();
      });
      secure.once('error', reject);
    });
    assert.equal(got, '220 mx.test ESMTP Mailward\r\n');
    secure.end('QUIT\r\n');
    const h = await srv.handler(0);
    assert.equal(h.conn.remoteAddress, '203.0.113.9');
    assert.equal(h.lastState?.secure, true);
  });

  it('hands TLS bytes that arrived with the PROXY header on to the handshake', { timeout: 5000 }, async (t) => {
    const srv = await serve(t, { protocol: { tls: ctx, implicitTls: true }, proxy: { trusted: ['127.0.0.1'] } });
    const plain = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(srv.port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
    t.after(() => plain.destroy());
    // A bridge that glues the header onto the ClientHello, so both arrive in one TCP write.
    let first = true;
    const bridge = new Duplex({
      write(chunk: Buffer, _enc, cb) {
        plain.write(first ? Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.10 192.0.2.1 4000 465\r\n'), chunk]) : chunk, cb);
        first = false;
      },
      read() {
        plain.resume();
      },
    });
    plain.on('data', (d: Buffer) => {
      if (!bridge.push(d)) plain.pause();
    });
    plain.on('end', () => bridge.push(null));
    const secure = tls.connect({ socket: bridge, rejectUnauthorized: false });
    secure.setEncoding('utf8');
    const greeting = await new Promise<string>((resolve, reject) => {
      let got = '';
      secure.on('data', (d: string) => {
        got += d;
        if (got.includes('\r\n')) resolve(got);
      });
      secure.once('error', reject);
    });
    assert.equal(greeting, '220 mx.test ESMTP Mailward\r\n');
    assert.equal((await srv.handler(0)).conn.remoteAddress, '203.0.113.10');
    secure.destroy();
  });

  it('refuses a client that does not speak TLS', async (t) => {
    const srv = await serve(t, { protocol: { tls: ctx, implicitTls: true } });
    const d = await dial(srv.port);
    t.after(() => d.close());
    d.send('EHLO client.example\r\n');
    await d.closed();
    assert.equal(srv.handlers.length, 0);
    assert.ok(srv.listenerEvents.some((e) => e.event === 'tls-error'));
    assert.equal(srv.listener.connections(), 0);
  });
});

describe('nodemailer over TLS', () => {
  it('STARTTLS + AUTH on a submission-style listener', async (t) => {
    const srv = await serve(t, { protocol: { tls: ctx, auth: true, requireAuth: true, requireTls: true } });
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: srv.port,
      secure: false,
      requireTLS: true,
      auth: { user: 'alice', pass: 'correct horse' },
      tls: { rejectUnauthorized: false },
    });
    t.after(() => transport.close());
    const info = await transport.sendMail({ from: 'alice@sender.example', to: 'u@test.example', subject: 'Hi', text: 'over TLS' });
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as Q1/);
    const h = await srv.handler(0);
    assert.equal(h.lastState?.secure, true);
    assert.equal(h.lastState?.login, 'alice');
    assert.match(h.messages[0]!.body.toString(), /\r\n\r\nover TLS\r\n$/);
  });

  it('implicit TLS (secure: true)', async (t) => {
    const srv = await serve(t, { protocol: { tls: ctx, implicitTls: true, auth: true } });
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.port, secure: true, auth: { user: 'alice', pass: 'correct horse' }, tls: { rejectUnauthorized: false } });
    t.after(() => transport.close());
    await transport.sendMail({ from: 'alice@sender.example', to: 'u@test.example', subject: 'Hi', text: 'implicit' });
    const h = await srv.handler(0);
    assert.equal(h.messages.length, 1);
    assert.equal(h.lastState?.login, 'alice');
  });
});
