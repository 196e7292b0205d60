// Bare line endings in DATA (SMTP smuggling): every fake end marker, in one write and split byte
// by byte over TCP writes, is refused (554 5.5.2) under `reject`, and under `normalise` becomes
// CRLF inside the first message's body, never a second transaction. Also end to end: a client in
// relay.trustedNetworks gets the same refusal (no exemption for trusted networks).
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { dial, type Dialog } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';
import { LineEndingNormaliser } from '../../src/core/line-endings.ts';
import { FAKES, sendSmuggling, serve, SMUGGLED, type Served } from './fixture.ts';
import type { ProtocolOptions } from '../../src/ingress/smtp/types.ts';
import type { TestContext } from 'node:test';


async function session(t: TestContext, mode: ProtocolOptions['bareLineEndings']): Promise<{ srv: Served; d: Dialog }> {
  const srv = await serve(t, { protocol: { bareLineEndings: mode } });
  const d = await dial(srv.port);
  t.after(() => d.close());
  d.socket.setNoDelay(true);
  await d.expect('220 ');
  await d.say('EHLO client.example').expect('250-mx.test');
  await d.say('MAIL FROM:<s@sender.example>').expect('250 2.1.0');
  await d.say('RCPT TO:<u@test.example>').expect('250 2.1.5');
  await d.say('DATA').expect('354 ');
  return { srv, d };
}


/** True when every CR is followed by LF and every LF follows a CR. */
function crlfOnly(b: Buffer): boolean {
  const s = b.toString('latin1');
  return !/\r(?!\n)|(?<!\r)\n/.test(s);
}

describe('bareLineEndings: reject', () => {
  for (const fake of FAKES) {
    for (const split of [false, true]) {
      it(`${JSON.stringify(fake)}${split ? ' split byte by byte' : ' in one write'} → 554 5.5.2, no message`, async (t) => {
        const { srv, d } = await session(t, 'reject');
        await sendSmuggling(d, fake, split);
        await d.expect('554 5.5.2 Message contains bare CR or LF, refused\r\n');
        // In step: the smuggled commands were body bytes, so the next command is answered as such.
        await d.say('NOOP').expect('250 2.0.0 OK\r\n');
        await d.say('QUIT').expect('221 ');
        const h = srv.handlers[0]!;
        assert.equal(h.messages.length, 0);
        assert.deepEqual(h.aborts, ['bare CR or LF']);
        assert.equal(h.mail, undefined);
      });
    }
  }
});

describe('bareLineEndings: normalise', () => {
  // What the decoder keeps of each fake (RFC 5321 §4.5.2 drops a dot after a real CRLF), as CRLF.
  const normalised: Record<string, string> = { '\n.\n': '\r\n.\r\n', '\n.\r\n': '\r\n.\r\n', '\r\n.\n': '\r\n\r\n', '\r.\r\n': '\r\n.\r\n' };
  for (const fake of FAKES) {
    for (const split of [false, true]) {
      it(`${JSON.stringify(fake)}${split ? ' split byte by byte' : ' in one write'} → one message, CRLF only, smuggled text in its body`, async (t) => {
        const { srv, d } = await session(t, 'normalise');
        await sendSmuggling(d, fake, split);
        await d.expect('250 2.0.0 Ok: queued as Q1\r\n');
        await d.say('QUIT').expect('221 ');
        const h = srv.handlers[0]!;
        assert.equal(h.messages.length, 1);
        const m = h.messages[0]!;
        assert.equal(m.body.toString('latin1'), `Subject: real\r\n\r\nhello${normalised[fake]}${SMUGGLED}\r\n`);
        assert.equal(crlfOnly(m.body), true);
        assert.deepEqual(m.rcpts, ['<u@test.example>']);
        assert.equal(m.mail.path, '<s@sender.example>');
        assert.equal(m.facts.size, m.body.length);
        assert.equal(m.facts.bareCr || m.facts.bareLf, true, 'the facts still say what came');
      });
    }
  }

  it('normalises a non-binary BDAT body across chunks (a CR at the end of one, LF at the start of the next)', async (t) => {
    const { srv, d } = await session(t, 'normalise');
    // DATA was begun by session(): end it empty, then send a second transaction with BDAT.
    d.send('.\r\n');
    await d.expect('250 ');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await d.say('RCPT TO:<u@test.example>').expect('250 ');
    const c1 = 'a\nb\r';
    const c2 = '\nc\rd\r';
    d.send(`BDAT ${c1.length}\r\n${c1}`);
    await d.expect('250 ');
    d.send(`BDAT ${c2.length} LAST\r\n${c2}`);
    await d.expect('250 ');
    const m = srv.handlers[0]!.messages[1]!;
    assert.equal(m.body.toString('latin1'), 'a\r\nb\r\nc\r\nd\r\n');
    assert.equal(m.facts.size, 12);
  });
});

test('LineEndingNormaliser: any split of a mixed input gives the same CRLF-only bytes', () => {
  const input = Buffer.from('a\nb\r\nc\rd\r\r\n\n\re\r');
  const want = 'a\r\nb\r\nc\r\nd\r\n\r\n\r\n\r\ne\r\n';
  for (let cut = 0; cut <= input.length; cut++) {
    for (let cut2 = cut; cut2 <= input.length; cut2++) {
      const n = new LineEndingNormaliser();
      const out = [...n.push(input.subarray(0, cut)), ...n.push(input.subarray(cut, cut2)), ...n.push(input.subarray(cut2)), ...n.end()];
      assert.equal(Buffer.concat(out).toString('latin1'), want, `cuts at ${cut}, ${cut2}`);
    }
  }
});

async function smuggle(port: number): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO trusted.example').expect('250');
  await c.say('MAIL FROM:<a@example.net>').expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send(`Subject: real\r\n\r\nhello\n.\n${SMUGGLED.replace('victim@test.example', 'bob@example.org')}\r\n.\r\n`);
  const r = await c.read();
  await c.say('QUIT').expect('221');
  return r.raw;
}

test('end to end: a client in relay.trustedNetworks sending \\n.\\n is refused all the same', async (t) => {
  const srv = await startServer(t, { users: [['bob@example.org', 'bob password 1']], config: { relay: { trustedNetworks: ['127.0.0.1/32'] } } });
  // The client is trusted indeed: it may relay without a login.
  const probe = await dial(srv.port('mx'));
  await probe.expect('220');
  await probe.say('EHLO trusted.example').expect('250');
  await probe.say('MAIL FROM:<a@example.net>').expect('250');
  await probe.say('RCPT TO:<someone@far.example>').expect('250');
  await probe.say('RSET').expect('250');
  await probe.say('QUIT').expect('221');
  assert.equal(await smuggle(srv.port('mx')), '554 5.5.2 Message contains bare CR or LF, refused\r\n');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(srv.mailbox('bob@example.org'), []);
});

test('end to end under normalise: one message, CRLF only, the smuggled part inside it', async (t) => {
  const srv = await startServer(t, { users: [['bob@example.org', 'bob password 1']], config: { relay: { trustedNetworks: ['127.0.0.1/32'] }, limits: { bareLineEndings: 'normalise' } } });
  assert.match(await smuggle(srv.port('mx')), /^250 /);
  const [m] = await srv.waitForMail('bob@example.org');
  assert.ok(m!.includes('hello\r\n.\r\nMAIL FROM:<evil@attacker.example>\r\n'), 'the smuggled text is body text');
  assert.equal(crlfOnly(Buffer.from(m!, 'latin1')), true);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(srv.mailbox('bob@example.org').length, 1, 'no second message');
});
