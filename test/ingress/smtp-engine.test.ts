// The SMTP engine over real loopback sockets, driven by a scripted raw client and by nodemailer:
// dialogue, sequencing, pipelining, DATA/BDAT framing, smuggling, limits and time-outs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { dial, type Dialog } from '../harness/dial.ts';
import { FAKES, sendSmuggling, serve, sleep, SMUGGLED, type ServeOptions, type Served } from './fixture.ts';
import type { TestContext } from 'node:test';
import { authPlain } from '../harness/auth.ts';

async function session(t: TestContext, o: ServeOptions = {}): Promise<{ srv: Served; d: Dialog }> {
  const srv = await serve(t, o);
  const d = await dial(srv.port);
  t.after(() => d.close());
  await d.expect('220 mx.test ESMTP Mailward\r\n');
  return { srv, d };
}

/** EHLO, MAIL, one accepted RCPT; leaves the dialog ready for DATA or BDAT. */
async function envelope(d: Dialog, from = '<s@sender.example>'): Promise<void> {
  await d.say('EHLO client.example').expect('250-mx.test');
  await d.say(`MAIL FROM:${from}`).expect('250 2.1.0');
  await d.say('RCPT TO:<u@test.example>').expect('250 2.1.5');
}

describe('SMTP dialogue', () => {
  it('runs a full session: EHLO, MAIL, RCPT, DATA, RSET, NOOP, VRFY, HELP, QUIT', async (t) => {
    const { srv, d } = await session(t);
    const ehlo = await d.say('EHLO client.example').expect('250-mx.test\r\n');
    assert.equal(ehlo.raw, '250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 2.1.0 Sender OK\r\n');
    await d.say('RCPT TO:<nobody@elsewhere.example>').expect('550 5.1.1 User unknown\r\n');
    await d.say('RCPT TO:<u@test.example>').expect('250 2.1.5 Recipient OK\r\n');
    await d.say('DATA').expect('354 End data with <CR><LF>.<CR><LF>\r\n');
    d.send('Subject: test\r\n\r\nHello\r\n.\r\n');
    await d.expect('250 2.0.0 Ok: queued as Q1\r\n');
    await d.say('RSET').expect('250 2.0.0 OK\r\n');
    await d.say('NOOP').expect('250 2.0.0 OK\r\n');
    await d.say('VRFY postmaster').expect('252 2.5.2 Cannot VRFY user, but will accept message');
    await d.say('HELP').expect('214 2.0.0 ');
    await d.say('QUIT').expect('221 2.0.0 Bye\r\n');
    await d.closed();
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'quit');
    assert.equal(h.helo, 'client.example');
    assert.equal(h.messages.length, 1);
    assert.equal(h.messages[0]!.body.toString(), 'Subject: test\r\n\r\nHello\r\n');
    assert.deepEqual(h.messages[0]!.rcpts, ['<u@test.example>']);
    assert.deepEqual(h.messages[0]!.facts, { size: 24, bareCr: false, bareLf: false, chunked: false });
    assert.equal(h.lastState?.helo, 'client.example');
    assert.equal(h.lastState?.esmtp, true);
    assert.equal(h.lastState?.conn.remoteAddress, '127.0.0.1');
  });

  it('answers HELO without extensions', async (t) => {
    const { d } = await session(t);
    const r = await d.say('HELO client.example').expect('250 mx.test\r\n');
    assert.equal(r.raw, '250 mx.test\r\n');
    await d.say('HELO refused.example').expect('550 5.7.1 HELO refused\r\n');
    await d.say('HELO').expect('501 5.5.4');
  });

  it('enforces command sequencing', async (t) => {
    const { d } = await session(t);
    await d.say('MAIL FROM:<s@sender.example>').expect('503 5.5.1');
    await d.say('EHLO client.example').expect('250-');
    await d.say('RCPT TO:<u@test.example>').expect('503 5.5.1');
    await d.say('DATA').expect('503 5.5.1');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('MAIL FROM:<s@sender.example>').expect('503 5.5.1');
    await d.say('DATA').expect('503 5.5.1 Bad sequence of commands: need RCPT command');
    await d.say('RCPT TO:<x@elsewhere.example>').expect('550 ');
    await d.say('DATA').expect('554 5.5.1 No valid recipients\r\n');
    await d.say('MAIL FROM <s@sender.example>').expect('503 5.5.1'); // transaction still open
    await d.say('RSET').expect('250 ');
    await d.say('MAIL FROM <s@sender.example>').expect('501 5.5.4');
    await d.say('FOO bar').expect('500 5.5.2');
    await d.say('').expect('500 5.5.2');
    await d.say('RSET x').expect('501 5.5.4');
  });

  it('pipelines: all commands in one write, replies in order', async (t) => {
    const { srv, d } = await session(t);
    d.send('EHLO client.example\r\nMAIL FROM:<s@sender.example>\r\nRCPT TO:<a@test.example>\r\nRCPT TO:<b@elsewhere.example>\r\nRCPT TO:<c@test.example>\r\nNOOP\r\nDATA\r\n');
    await d.expect('250-mx.test');
    await d.expect('250 2.1.0');
    await d.expect('250 2.1.5');
    await d.expect('550 5.1.1');
    await d.expect('250 2.1.5');
    await d.expect('250 2.0.0 OK');
    await d.expect('354 ');
    d.send('Subject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<t@sender.example>\r\nRCPT TO:<d@test.example>\r\nDATA\r\n');
    await d.expect('250 2.0.0 Ok: queued as Q1');
    await d.expect('250 2.1.0');
    await d.expect('250 2.1.5');
    await d.expect('354 ');
    d.send('second\r\n.\r\nQUIT\r\n');
    await d.expect('250 2.0.0 Ok: queued as Q2');
    await d.expect('221 ');
    const h = srv.handlers[0]!;
    assert.deepEqual(h.messages.map((m) => [m.rcpts, m.body.toString()]), [
      [['<a@test.example>', '<c@test.example>'], 'Subject: p\r\n\r\nbody\r\n'],
      [['<d@test.example>'], 'second\r\n'],
    ]);
  });

  it('answers a flood of pipelined commands from a client that reads late, in order', async (t) => {
    const { d } = await session(t, { protocol: { maxCommands: 100_000 } });
    const n = 10_000;
    d.send('NOOP\r\n'.repeat(n) + 'HELP\r\n');
    await sleep(100); // let the server fill its socket buffers while we do not read
    for (let i = 0; i < n; i++) {
      const r = await d.read();
      if (r.raw !== '250 2.0.0 OK\r\n') assert.fail(`reply ${i}: ${JSON.stringify(r.raw)}`);
    }
    await d.expect('214 ');
  });

  it('processes commands the client sent before half-closing', async (t) => {
    const { d } = await session(t);
    d.socket.end('EHLO client.example\r\nNOOP\r\nQUIT\r\n');
    await d.expect('250-mx.test');
    await d.expect('250 2.0.0 OK');
    await d.expect('221 2.0.0 Bye');
  });

  it('dot-stuffing round trip', async (t) => {
    const { srv, d } = await session(t);
    await envelope(d);
    await d.say('DATA').expect('354 ');
    d.send('Subject: dots\r\n\r\n..\r\n...two\r\n.leading\r\nmid.dle\r\n..\r\n.\r\n');
    await d.expect('250 2.0.0');
    assert.equal(srv.handlers[0]!.messages[0]!.body.toString(), 'Subject: dots\r\n\r\n.\r\n..two\r\nleading\r\nmid.dle\r\n.\r\n');
  });

  it('takes a 3 MB message intact', async (t) => {
    const { srv, d } = await session(t);
    await envelope(d);
    await d.say('DATA').expect('354 ');
    const lines: string[] = ['Subject: big', ''];
    for (let i = 0; i < 40_000; i++) lines.push(`${i.toString().padStart(8, '0')} ${'x'.repeat(66)}`);
    const body = lines.join('\r\n') + '\r\n';
    assert.ok(body.length > 3_000_000);
    d.send(body + '.\r\n');
    await d.expect('250 2.0.0');
    const got = srv.handlers[0]!.messages[0]!;
    assert.equal(got.body.length, body.length);
    assert.ok(got.body.equals(Buffer.from(body)));
    assert.equal(got.facts.size, body.length);
  });

  it('advertises SIZE and enforces declared and actual size', async (t) => {
    const { srv, d } = await session(t, { protocol: { maxMessageSize: 1000 } });
    const ehlo = await d.say('EHLO client.example').expect('250-');
    assert.match(ehlo.text, /^SIZE 1000$/m);
    await d.say('MAIL FROM:<s@sender.example> SIZE=1001').expect('552 5.3.4 Message size exceeds fixed maximum message size\r\n');
    await d.say('MAIL FROM:<s@sender.example> SIZE=x').expect('501 5.5.4');
    await d.say('MAIL FROM:<s@sender.example> SIZE=1000').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('250 ');
    await d.say('DATA').expect('354 ');
    d.send(`${'y'.repeat(78)}\r\n`.repeat(20) + 'MAIL FROM:<smuggled@x>\r\n.\r\n');
    await d.expect('552 5.3.4 Message too big\r\n');
    await d.say('NOOP').expect('250 2.0.0 OK');
    const h = srv.handlers[0]!;
    assert.deepEqual(h.messages, []);
    assert.deepEqual(h.aborts, ['message too big']);
    assert.equal(h.mail, undefined);
  });

  it('8BITMIME bodies and SMTPUTF8 addresses', async (t) => {
    const { srv, d } = await session(t);
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<jörg@sender.example> BODY=8BITMIME').expect('553 5.6.7');
    await d.say('MAIL FROM:<jörg@sender.example> BODY=8BITMIME SMTPUTF8').expect('250 ');
    await d.say('RCPT TO:<用户@test.example>').expect('250 ');
    await d.say('DATA').expect('354 ');
    const body = 'Subject: =?utf-8?q?x?=\r\n\r\nGrüße, 你好\r\n';
    d.send(body + '.\r\n');
    await d.expect('250 ');
    const m = srv.handlers[0]!.messages[0]!;
    assert.equal(m.body.toString('utf8'), body);
    assert.equal(m.mail.path, '<jörg@sender.example>');
    assert.equal(m.mail.body, '8BITMIME');
    assert.equal(m.mail.smtputf8, true);
    assert.deepEqual(m.rcpts, ['<用户@test.example>']);
    await d.say('MAIL FROM:<a@sender.example>').expect('250 ');
    await d.say('RCPT TO:<用户@test.example>').expect('553 5.6.7');
  });

  it('refuses SMTPUTF8 when not offered, unknown parameters, and bad BODY values', async (t) => {
    const { d } = await session(t, { protocol: { smtputf8: false, chunking: false } });
    const ehlo = await d.say('EHLO client.example').expect('250-');
    assert.doesNotMatch(ehlo.text, /SMTPUTF8|CHUNKING/);
    await d.say('MAIL FROM:<a@sender.example> SMTPUTF8').expect('555 5.5.4 Unsupported parameter');
    await d.say('MAIL FROM:<a@sender.example> RET=HDRS').expect('555 5.5.4 Unsupported parameter');
    await d.say('MAIL FROM:<a@sender.example> BODY=BINARYMIME').expect('501 5.5.4');
    await d.say('MAIL FROM:<"a b>c"@sender.example> BODY=7BIT').expect('250 ');
    await d.say('RCPT TO:<u@test.example> NOTIFY=NEVER').expect('555 5.5.4');
  });

  it('passes quoted local parts through untouched', async (t) => {
    const { srv, d } = await session(t);
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM: <"a b>c"@sender.example> SIZE=10').expect('250 ');
    const mail = srv.handlers[0]!.mail!;
    assert.equal(mail.path, '<"a b>c"@sender.example>');
    assert.equal(mail.declaredSize, 10);
    assert.deepEqual([...mail.params], [['SIZE', '10']]);
  });

  it('limits recipients per transaction', async (t) => {
    const { d } = await session(t, { protocol: { maxRecipients: 2 } });
    await envelope(d);
    await d.say('RCPT TO:<v@test.example>').expect('250 ');
    await d.say('RCPT TO:<w@test.example>').expect('452 4.5.3 Too many recipients\r\n');
  });
});

describe('BDAT (RFC 3030)', () => {
  it('takes chunks, pipelined with their data, and LAST', async (t) => {
    const { srv, d } = await session(t, { protocol: { bareLineEndings: 'accept' } });
    await envelope(d);
    // The chunk holds CRLF.CRLF and commands: with BDAT they are message bytes, nothing else.
    const c1 = 'Subject: b\r\n\r\n.\r\nQUIT\r\n';
    const c2 = 'tail\n';
    d.send(`BDAT ${c1.length}\r\n${c1}BDAT ${c2.length} LAST\r\n${c2}`);
    await d.expect(`250 2.0.0 ${c1.length} octets received\r\n`);
    await d.expect('250 2.0.0 Ok: queued as Q1');
    const m = srv.handlers[0]!.messages[0]!;
    assert.equal(m.body.toString(), c1 + c2);
    assert.deepEqual(m.facts, { size: c1.length + c2.length, bareCr: false, bareLf: true, chunked: true });
    // BDAT 0 LAST on its own is an empty message.
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('250 ');
    await d.say('BDAT 0 LAST').expect('250 2.0.0 Ok: queued as Q2');
    assert.equal(srv.handlers[0]!.messages[1]!.body.length, 0);
  });

  it('refuses bare LF in a non-binary BDAT body under bareLineEndings=reject', async (t) => {
    const { srv, d } = await session(t);
    await envelope(d);
    d.send('BDAT 4\r\na\nb\nBDAT 3 LAST\r\nc\r\n');
    await d.expect('554 5.5.2 Message contains bare CR or LF, refused');
    await d.expect('503 5.5.1');
    await d.say('NOOP').expect('250 ');
    assert.deepEqual(srv.handlers[0]!.aborts, ['bare CR or LF']);
    assert.equal(srv.handlers[0]!.messages.length, 0);
  });

  it('takes bare line endings in BODY=BINARYMIME', async (t) => {
    const { srv, d } = await session(t);
    await envelope(d, '<s@sender.example> BODY=BINARYMIME');
    await d.say('DATA').expect('503 5.5.1 Bad sequence of commands: BODY=BINARYMIME requires BDAT');
    d.send(Buffer.concat([Buffer.from('BDAT 4 LAST\r\n'), Buffer.from([0x0a, 0x0d, 0x00, 0xff])]));
    await d.expect('250 2.0.0 Ok');
    await d.say('NOOP').expect('250 2.0.0 OK');
    const m = srv.handlers[0]!.messages[0]!;
    assert.equal(m.mail.body, 'BINARYMIME');
    assert.deepEqual(m.facts, { size: 4, bareCr: true, bareLf: true, chunked: true });
    assert.deepEqual([...m.body], [0x0a, 0x0d, 0x00, 0xff]);
  });

  it('ends a chunked message with BDAT 0 LAST', async (t) => {
    const { srv, d } = await session(t);
    await envelope(d);
    d.send('BDAT 5\r\nhelloBDAT 0 LAST\r\n');
    await d.expect('250 2.0.0 5 octets received');
    await d.expect('250 2.0.0 Ok: queued');
    assert.equal(srv.handlers[0]!.messages[0]!.body.toString(), 'hello');
  });

  it('refuses DATA after BDAT, and consumes refused chunks', async (t) => {
    const { srv, d } = await session(t);
    await d.say('EHLO client.example').expect('250-');
    // No transaction: the chunk is refused but its bytes are still swallowed, not executed.
    d.send('BDAT 6\r\nRSET\r\nNOOP\r\n');
    await d.expect('503 5.5.1');
    await d.expect('250 2.0.0 OK');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('250 ');
    d.send('BDAT 3\r\nabc');
    await d.expect('250 2.0.0 3 octets received');
    await d.say('DATA').expect('503 5.5.1 Bad sequence of commands: DATA and BDAT cannot be mixed');
    await d.say('RSET').expect('250 ');
    assert.deepEqual(srv.handlers[0]!.aborts, ['RSET']);
  });

  it('refuses BDAT after a failed BDAT in the same transaction', async (t) => {
    const { srv, d } = await session(t, { protocol: { maxMessageSize: 10 } });
    await envelope(d);
    d.send('BDAT 8\r\n12345678BDAT 8\r\n12345678BDAT 2 LAST\r\nab');
    await d.expect('250 2.0.0 8 octets received');
    await d.expect('552 5.3.4 Message too big');
    await d.expect('503 5.5.1');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 '); // LAST ended the transaction
    assert.deepEqual(srv.handlers[0]!.aborts, ['message too big']);
    assert.equal(srv.handlers[0]!.messages.length, 0);
  });

  it('answers 502 when CHUNKING is off, still consuming the chunk', async (t) => {
    const { d } = await session(t, { protocol: { chunking: false } });
    await envelope(d);
    d.send('BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n');
    await d.expect('502 5.5.1');
    await d.expect('250 2.0.0 OK');
  });

  it('closes on an unparsable BDAT size', async (t) => {
    const { d } = await session(t);
    await envelope(d);
    await d.say('BDAT lots').expect('501 5.5.4');
    await d.closed();
  });
});

describe('SMTP smuggling defence', () => {
  const fakes = FAKES;
  const smuggled = SMUGGLED;

  for (const fake of fakes) {
    for (const split of [false, true]) {
      it(`${JSON.stringify(fake)} does not end DATA${split ? ' (split over writes)' : ''}`, async (t) => {
        const { srv, d } = await session(t, { protocol: { bareLineEndings: 'accept' } });
        d.socket.setNoDelay(true);
        await envelope(d);
        await d.say('DATA').expect('354 ');
        await sendSmuggling(d, fake, split);
        await d.expect('250 2.0.0 Ok: queued as Q1\r\n');
        await d.say('QUIT').expect('221 ');
        const h = srv.handlers[0]!;
        assert.equal(h.messages.length, 1);
        const visible = fake === '\r\n.\n' ? '\r\n\n' : fake; // RFC 5321 §4.5.2 drops the leading dot
        assert.equal(h.messages[0]!.body.toString(), `Subject: real\r\n\r\nhello${visible}${smuggled}\r\n`);
        assert.deepEqual(h.messages[0]!.rcpts, ['<u@test.example>']);
      });
    }

    it(`${JSON.stringify(fake)} is refused with 554 under bareLineEndings=reject, without desync`, async (t) => {
      const { srv, d } = await session(t);
      await envelope(d);
      await d.say('DATA').expect('354 ');
      d.send(`Subject: real\r\n\r\nhello${fake}${smuggled}\r\n.\r\n`);
      await d.expect('554 5.5.2 Message contains bare CR or LF, refused\r\n');
      await d.say('NOOP').expect('250 2.0.0 OK\r\n');
      const h = srv.handlers[0]!;
      assert.equal(h.messages.length, 0);
      assert.deepEqual(h.aborts, ['bare CR or LF']);
      assert.equal(h.mail, undefined);
    });
  }

  it('finds the real end marker split at every position', async (t) => {
    const { srv, d } = await session(t);
    d.socket.setNoDelay(true);
    await d.say('EHLO client.example').expect('250-');
    const marker = '\r\n.\r\n';
    for (let cut = 1; cut < marker.length; cut++) {
      await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
      await d.say('RCPT TO:<u@test.example>').expect('250 ');
      await d.say('DATA').expect('354 ');
      d.send(`m${cut}${marker.slice(0, cut)}`);
      await sleep(5);
      d.send(marker.slice(cut));
      await d.expect('250 2.0.0');
    }
    assert.deepEqual(srv.handlers[0]!.messages.map((m) => m.body.toString()), ['m1\r\n', 'm2\r\n', 'm3\r\n', 'm4\r\n']);
  });

  it('accepts bare LF when configured, and reports it', async (t) => {
    const { srv, d } = await session(t, { protocol: { bareLineEndings: 'accept' } });
    await envelope(d);
    await d.say('DATA').expect('354 ');
    d.send('a\nb\r\n.\r\n');
    await d.expect('250 ');
    assert.deepEqual(srv.handlers[0]!.messages[0]!.facts, { size: 5, bareCr: false, bareLf: true, chunked: false });
  });
});

describe('limits and time-outs', () => {
  it('refuses over-long lines and recovers at the next line', async (t) => {
    const { srv, d } = await session(t);
    await d.say(`EHLO ${'a'.repeat(600)}`).expect('500 5.5.6 Line too long\r\n');
    await d.say('NOOP').expect('250 2.0.0 OK');
    assert.ok(srv.handlers[0]!.events.some((e) => e.event === 'line-too-long'));
  });

  it('drops the client after too many bad commands', async (t) => {
    const { srv, d } = await session(t, { protocol: { maxBadCommands: 3 } });
    d.send('FOO\r\nBAR\r\nBAZ\r\nQUX\r\nNOOP\r\n');
    await d.expect('500 5.5.2');
    await d.expect('500 5.5.2');
    await d.expect('500 5.5.2');
    await d.expect('421 4.7.0 Too many errors, closing connection\r\n');
    await d.closed();
    assert.equal(await srv.handlers[0]!.closed, 'too many errors');
  });

  it('limits commands per connection', async (t) => {
    const { d } = await session(t, { protocol: { maxCommands: 2 } });
    d.send('NOOP\r\nNOOP\r\nNOOP\r\n');
    await d.expect('250 ');
    await d.expect('250 ');
    await d.expect('421 4.7.0 Too many commands');
    await d.closed();
  });

  it('times out an idle client', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 200 } });
    await d.say('EHLO client.example').expect('250-');
    await d.expect('421 4.4.2 mx.test Error: timeout exceeded\r\n');
    await d.closed();
    assert.equal(await srv.handlers[0]!.closed, 'idle timeout');
  });

  it('times out a DATA phase that takes too long, aborting the message', async (t) => {
    const { srv, d } = await session(t, { protocol: { dataTimeoutMs: 300 } });
    await envelope(d);
    await d.say('DATA').expect('354 ');
    for (let i = 0; i < 6; i++) {
      d.send('still sending\r\n');
      await sleep(80);
    }
    await d.expect('421 4.4.2 mx.test Error: timeout exceeded\r\n');
    await d.closed();
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'data timeout');
    assert.deepEqual(h.aborts, ['data timeout']);
  });

  it('aborts the message when the client disconnects mid-DATA', async (t) => {
    const { srv, d } = await session(t);
    await envelope(d);
    await d.say('DATA').expect('354 ');
    d.send('partial\r\n');
    await sleep(20);
    d.close();
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'client closed the connection');
    assert.deepEqual(h.aborts, ['client closed the connection']);
  });

  it('closes on HTTP verbs (cross-protocol attacks)', async (t) => {
    const { d } = await session(t);
    d.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await d.expect('421 4.7.0');
    await d.closed();
  });
});

describe('greeting', () => {
  it('greets at once with greetingDelayMs 0, even if the client already talked', async (t) => {
    const srv = await serve(t);
    const d = await dial(srv.port, { prelude: Buffer.from('EHLO early.example\r\n') });
    t.after(() => d.close());
    await d.expect('220 mx.test ESMTP Mailward\r\n');
    await d.expect('250-mx.test');
  });

  it('drops an early talker when a greeting delay is set', async (t) => {
    const srv = await serve(t, { protocol: { greetingDelayMs: 300 } });
    const d = await dial(srv.port, { prelude: Buffer.from('EHLO early.example\r\n') });
    t.after(() => d.close());
    await d.expect('554 5.5.1 Protocol error: talking before the greeting\r\n');
    await d.closed();
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'early-talker');
    assert.ok(h.events.some((e) => e.event === 'early-talker'));
    // A patient client is greeted after the delay.
    const d2 = await dial(srv.port);
    t.after(() => d2.close());
    await d2.expect('220 mx.test ESMTP Mailward');
  });

  it('lets onConnect refuse the connection', async (t) => {
    const srv = await serve(t, { connectReply: { code: 554, enhanced: '5.7.1', text: 'Go away' } });
    const d = await dial(srv.port);
    t.after(() => d.close());
    await d.expect('554 5.7.1 Go away\r\n');
    await d.closed();
  });
});

describe('handler failures', () => {
  for (const [method, at] of [
    ['onMailFrom', 'mail'],
    ['onRcptTo', 'rcpt'],
    ['onDataStart', 'data'],
    ['write', 'body'],
    ['end', 'body'],
  ] as const) {
    it(`a throwing ${method} gives 451 4.3.0`, async (t) => {
      const { srv, d } = await session(t, { throwing: [method] });
      await d.say('EHLO client.example').expect('250-');
      if (at === 'mail') {
        await d.say('MAIL FROM:<s@sender.example>').expect('451 4.3.0');
      } else {
        await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
        if (at === 'rcpt') {
          await d.say('RCPT TO:<u@test.example>').expect('451 4.3.0');
        } else {
          await d.say('RCPT TO:<u@test.example>').expect('250 ');
          if (at === 'data') {
            await d.say('DATA').expect('451 4.3.0');
          } else {
            await d.say('DATA').expect('354 ');
            d.send('x\r\n.\r\n');
            await d.expect('451 4.3.0');
          }
        }
      }
      await d.say('NOOP').expect('250 ');
      const h = srv.handlers[0]!;
      const ev = h.events.find((e) => e.event === 'handler-error');
      assert.equal(ev?.detail.method, method === 'write' ? 'sink.write' : method === 'end' ? 'sink.end' : method);
      assert.equal(h.messages.length, 0);
    });
  }
});

describe('AUTH without TLS', () => {
  it('is neither offered nor accepted on a plain connection', async (t) => {
    const { d } = await session(t, { protocol: { auth: true } });
    const ehlo = await d.say('EHLO client.example').expect('250-');
    assert.doesNotMatch(ehlo.text, /AUTH/);
    await d.say(authPlain('alice', 'correct horse')).expect('538 5.7.11');
  });

  it('answers 503 when AUTH is off on the listener', async (t) => {
    const { d } = await session(t);
    await d.say('EHLO client.example').expect('250-');
    await d.say('AUTH PLAIN').expect('503 5.5.1');
  });

  it('works where authWithoutTls allows it: PLAIN, LOGIN and their errors', async (t) => {
    const { srv, d } = await session(t, { protocol: { auth: true, authWithoutTls: true, requireAuth: true } });
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    await d.say('AUTH PLAIN').expect('503 5.5.1'); // before EHLO
    const ehlo = await d.say('EHLO client.example').expect('250-');
    assert.match(ehlo.text, /^AUTH PLAIN LOGIN$/m);
    await d.say('MAIL FROM:<alice@sender.example>').expect('530 5.7.0 Authentication required\r\n');
    await d.say('AUTH CRAM-MD5').expect('504 5.5.4');
    await d.say('AUTH PLAIN').expect('334 \r\n');
    await d.say('*').expect('501 ');
    await d.say('AUTH PLAIN !!!').expect('501 5.5.2');
    await d.say(`AUTH PLAIN ${b64('\0alice\0wrong')}`).expect('535 5.7.8');
    await d.say('AUTH LOGIN').expect('334 VXNlcm5hbWU6\r\n');
    await d.say(b64('alice')).expect('334 UGFzc3dvcmQ6\r\n');
    await d.say(b64('correct horse')).expect('235 2.7.0 Authentication successful\r\n');
    await d.say('AUTH PLAIN').expect('503 5.5.1');
    await d.say('MAIL FROM:<alice@sender.example>').expect('250 ');
    const h = srv.handlers[0]!;
    assert.equal(h.lastState?.login, 'alice');
    assert.deepEqual(
      h.auths.map((a) => [a.mechanism, a.username, a.password]),
      [
        ['PLAIN', 'alice', 'wrong'],
        ['LOGIN', 'alice', 'correct horse'],
      ],
    );
  });

  it('refuses AUTH during a transaction', async (t) => {
    const { d } = await session(t, { protocol: { auth: true, authWithoutTls: true } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('AUTH LOGIN').expect('503 5.5.1');
  });

  it('requireTls refuses MAIL before STARTTLS', async (t) => {
    const { d } = await session(t, { protocol: { requireTls: true } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('530 5.7.0 Must issue a STARTTLS command first\r\n');
    await d.say('STARTTLS').expect('502 5.5.1'); // no certificate on this listener
  });
});

describe('nodemailer as a client', () => {
  it('delivers a message with dots, 8-bit text and several recipients', async (t) => {
    const srv = await serve(t);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.port, secure: false, tls: { rejectUnauthorized: false } });
    t.after(() => transport.close());
    const text = '.starts with a dot\n..two dots\nGrüße\n.\nend';
    const info = await transport.sendMail({ from: 'sender@sender.example', to: ['a@test.example', 'b@test.example'], subject: 'Test', text });
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as Q1/);
    const h = await srv.handler(0);
    const m = h.messages[0]!;
    assert.deepEqual(m.rcpts, ['<a@test.example>', '<b@test.example>']);
    assert.equal(m.mail.path, '<sender@sender.example>');
    const body = m.body.toString('utf8');
    assert.match(body, /\r\nSubject: Test\r\n/);
    assert.equal(m.facts.bareLf, false);
    assert.equal(m.facts.bareCr, false);
    assert.ok(body.endsWith('\r\n'));
  });

  it('delivers a 3 MB attachment', async (t) => {
    const srv = await serve(t);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.port, secure: false });
    t.after(() => transport.close());
    const content = Buffer.alloc(3 * 1024 * 1024, 0x41);
    await transport.sendMail({ from: 's@sender.example', to: 'u@test.example', subject: 'big', text: 'see attachment', attachments: [{ filename: 'a.bin', content }] });
    const m = (await srv.handler(0)).messages[0]!;
    assert.ok(m.body.length > content.length);
    assert.equal(m.body.includes(content.subarray(0, 57).toString('base64')), true);
  });
});
