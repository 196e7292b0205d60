// Hardening of the SMTP engine over real loopback sockets: a 421 from any session stage closes
// the connection (RFC 5321 §3.8), and slow clients (slowloris) cannot hold a session open by
// trickling bytes, in the command phase, in AUTH, in DATA or across BDAT chunks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { reply } from '../../src/core/reply.ts';
import { dial, type Dialog } from '../harness/dial.ts';
import { serve, sleep, type ServeOptions, type Served, type Stage } from './fixture.ts';

async function session(t: TestContext, o: ServeOptions = {}): Promise<{ srv: Served; d: Dialog }> {
  const srv = await serve(t, o);
  const d = await dial(srv.port, { timeoutMs: 5000 });
  t.after(() => d.close());
  await d.expect('220 mx.test ESMTP Mailward\r\n');
  return { srv, d };
}

const CLOSING = reply(421, '4.7.0', 'Service not available, closing transmission channel');
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** After the server's last reply: the connection is closed and nothing else was sent. */
async function assertClosedAfter(d: Dialog): Promise<void> {
  await d.closed();
  await assert.rejects(d.read(), /connection closed while waiting for a reply \(buffer: ""\)/);
}

/**
 * Sends `data` one byte every `everyMs` until the server closes or all is sent; returns how many
 * bytes went out. A server that restarts its clock per byte never closes, and all are sent.
 */
async function trickle(d: Dialog, data: string, everyMs: number): Promise<number> {
  let closed = false;
  void d.closed().then(() => (closed = true));
  let sent = 0;
  for (const ch of data) {
    if (closed) break;
    d.send(ch);
    sent++;
    await sleep(everyMs);
  }
  return sent;
}

describe('a 421 from the session logic closes the connection (RFC 5321 §3.8)', () => {
  // Each case: the stage that answers 421, and the dialogue that reaches it. The client pipelines
  // a NOOP after the command that gets the 421: it must never be answered.
  const cases: Array<{ stage: Stage; protocol?: ServeOptions['protocol']; reach: (d: Dialog) => Promise<void>; last: string }> = [
    { stage: 'onHelo', reach: async () => undefined, last: 'EHLO client.example\r\n' },
    {
      stage: 'onMailFrom',
      reach: async (d) => void (await d.say('EHLO client.example').expect('250-')),
      last: 'MAIL FROM:<s@sender.example>\r\n',
    },
    {
      stage: 'onRcptTo',
      reach: async (d) => {
        await d.say('EHLO client.example').expect('250-');
        await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
      },
      last: 'RCPT TO:<u@test.example>\r\n',
    },
    {
      stage: 'onDataStart',
      reach: async (d) => {
        await d.say('EHLO client.example').expect('250-');
        await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
        await d.say('RCPT TO:<u@test.example>').expect('250 ');
      },
      last: 'DATA\r\n',
    },
    {
      stage: 'end',
      reach: async (d) => {
        await d.say('EHLO client.example').expect('250-');
        await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
        await d.say('RCPT TO:<u@test.example>').expect('250 ');
        await d.say('DATA').expect('354 ');
      },
      last: 'Subject: x\r\n\r\nbody\r\n.\r\n',
    },
    {
      stage: 'onAuth',
      protocol: { auth: true, authWithoutTls: true },
      reach: async (d) => void (await d.say('EHLO client.example').expect('250-')),
      last: `AUTH PLAIN ${b64('\0alice\0wrong')}\r\n`,
    },
  ];
  for (const c of cases) {
    it(`after ${c.stage}`, async (t) => {
      const { srv, d } = await session(t, { answers: { [c.stage]: CLOSING }, ...(c.protocol ? { protocol: c.protocol } : {}) });
      await c.reach(d);
      d.send(`${c.last}NOOP\r\n`);
      await d.expect('421 4.7.0 Service not available, closing transmission channel\r\n');
      await assertClosedAfter(d);
      const h = srv.handlers[0]!;
      assert.equal(await h.closed, `${c.stage === 'end' ? 'sink.end' : c.stage} answered 421`);
      assert.deepEqual(
        h.events.filter((e) => e.event === 'closing-reply').map((e) => e.detail),
        [{ stage: c.stage === 'end' ? 'sink.end' : c.stage, code: 421, enhanced: '4.7.0' }],
      );
      assert.equal(h.messages.length, 0);
    });
  }

  it('after onConnect, with no greeting', async (t) => {
    const srv = await serve(t, { answers: { onConnect: CLOSING } });
    const d = await dial(srv.port, { timeoutMs: 5000 });
    t.after(() => d.close());
    d.send('EHLO client.example\r\n');
    await d.expect('421 4.7.0 Service not available');
    await assertClosedAfter(d);
    assert.equal(await srv.handlers[0]!.closed, 'refused at connect');
  });

  for (const stage of ['onDataStart', 'end'] as const) {
    it(`after ${stage} for BDAT, the chunk consumed and never read as commands`, async (t) => {
      const { srv, d } = await session(t, { answers: { [stage]: CLOSING } });
      await d.say('EHLO client.example').expect('250-');
      await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
      await d.say('RCPT TO:<u@test.example>').expect('250 ');
      // The chunk holds a command line: it must be taken as message bytes, not executed.
      d.send('BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n');
      await d.expect('421 4.7.0 ');
      await assertClosedAfter(d);
      assert.equal(await srv.handlers[0]!.closed, `${stage === 'end' ? 'sink.end' : stage} answered 421`);
    });
  }

  it('other temporary replies (450, 451, 452) keep the session open', async (t) => {
    const { srv, d } = await session(t, { answers: { onRcptTo: reply(452, '4.5.3', 'Too many recipients'), end: reply(451, '4.3.0', 'Try later') } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('452 4.5.3 Too many recipients\r\n');
    await d.say('NOOP').expect('250 2.0.0 OK\r\n');
    await d.say('QUIT').expect('221 ');
    assert.equal(await srv.handlers[0]!.closed, 'quit');
  });
});

describe('slow clients (slowloris)', () => {
  it('a command line trickled one byte at a time must still complete within commandTimeout', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 300 } });
    // 200 bytes at one per 30 ms would take 6 s; each byte comes well within the time-out.
    const line = `NOOP ${'x'.repeat(195)}`;
    const sent = await trickle(d, line, 30);
    await d.expect('421 4.4.2 mx.test Error: timeout exceeded\r\n');
    await assertClosedAfter(d);
    assert.ok(sent < line.length, `the server waited for all ${sent} bytes`);
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'idle timeout');
    const ev = h.events.find((e) => e.event === 'timeout');
    assert.equal(ev?.detail.phase, 'command');
    assert.ok(typeof ev?.detail.buffered === 'number' && ev.detail.buffered > 0);
  });

  it('gives each line its own clock: slow but complete lines are answered', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 1000 } });
    // Three lines, each trickled over ~300 ms: together longer than the time-out.
    for (let i = 0; i < 3; i++) {
      await trickle(d, 'NOOP\r\n', 50);
      await d.expect('250 2.0.0 OK\r\n');
    }
    await d.say('QUIT').expect('221 ');
    assert.equal(await srv.handlers[0]!.closed, 'quit');
  });

  it('an AUTH response line has the same deadline', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 300, auth: true, authWithoutTls: true } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('AUTH LOGIN').expect('334 VXNlcm5hbWU6\r\n');
    const sent = await trickle(d, b64('a'.repeat(150)), 30);
    await d.expect('421 4.4.2 ');
    await assertClosedAfter(d);
    assert.ok(sent < 200);
    assert.equal(await srv.handlers[0]!.closed, 'idle timeout');
    assert.equal(srv.handlers[0]!.auths.length, 0);
  });

  it('the rest of an over-long line is discarded under the same deadline', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 300 } });
    d.send('x'.repeat(600));
    await d.expect('500 5.5.6 Line too long\r\n');
    const sent = await trickle(d, 'y'.repeat(200), 30);
    await d.expect('421 4.4.2 ');
    assert.ok(sent < 200);
    assert.equal(await srv.handlers[0]!.closed, 'idle timeout');
  });

  // In DATA the pause between packets is what commandTimeout limits; the whole is dataTimeout's.
  it('DATA trickled without pauses still ends at dataTimeout', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 2000, dataTimeoutMs: 600 } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('250 ');
    await d.say('DATA').expect('354 ');
    const body = 'z'.repeat(200);
    const sent = await trickle(d, body, 30);
    await d.expect('421 4.4.2 mx.test Error: timeout exceeded\r\n');
    assert.ok(sent < body.length);
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'data timeout');
    assert.deepEqual(h.aborts, ['data timeout']);
  });

  it('a pause longer than commandTimeout inside DATA ends the session', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 200 } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('250 ');
    await d.say('DATA').expect('354 ');
    d.send('Subject: x\r\n');
    await d.expect('421 4.4.2 ');
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'idle timeout');
    assert.equal(h.events.find((e) => e.event === 'timeout')?.detail.phase, 'data');
  });

  it('one BDAT chunk trickled in ends at dataTimeout', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 2000, dataTimeoutMs: 600 } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('250 ');
    d.send('BDAT 200 LAST\r\n');
    const sent = await trickle(d, 'z'.repeat(200), 30);
    await d.expect('421 4.4.2 ');
    assert.ok(sent < 200);
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'data timeout');
    assert.deepEqual(h.aborts, ['data timeout']);
  });

  it('many small BDAT chunks share one deadline for the message', async (t) => {
    const { srv, d } = await session(t, { protocol: { commandTimeoutMs: 2000, dataTimeoutMs: 700 } });
    await d.say('EHLO client.example').expect('250-');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('250 ');
    let chunks = 0;
    let timedOut = false;
    // Each chunk is prompt; the message as a whole is not. 40 chunks 100 ms apart take 4 s.
    // (commandTimeout is far longer, so only the message deadline can end the session.)
    for (; chunks < 40; chunks++) {
      d.send('BDAT 3\r\nabc');
      const r = await d.read();
      if (r.code === 421) {
        timedOut = true;
        break;
      }
      assert.equal(r.raw, '250 2.0.0 3 octets received\r\n');
      await sleep(100);
    }
    assert.equal(timedOut, true);
    assert.ok(chunks < 40);
    const h = srv.handlers[0]!;
    assert.equal(await h.closed, 'data timeout');
    assert.deepEqual(h.aborts, ['data timeout']);
  });

  it('counts over-long lines against maxCommands', async (t) => {
    const { srv, d } = await session(t, { protocol: { maxCommands: 3, maxBadCommands: 10 } });
    const long = `NOOP ${'a'.repeat(600)}\r\n`;
    d.send(long + long + long + 'NOOP\r\n');
    await d.expect('500 5.5.6 Line too long\r\n');
    await d.expect('500 5.5.6 Line too long\r\n');
    await d.expect('500 5.5.6 Line too long\r\n');
    await d.expect('421 4.7.0 Too many commands, closing connection\r\n');
    await assertClosedAfter(d);
    assert.equal(await srv.handlers[0]!.closed, 'too many commands');
  });
});
