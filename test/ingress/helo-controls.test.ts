// HELO/EHLO arguments with control characters (NUL, TAB, ESC, DEL, C1), non-ASCII separators or
// bytes that are not UTF-8 are refused by the engine with 501 5.5.2 on every listener, even
// when no HELO check is listed (RFC 5321 §4.1.1.1: a Domain or an address-literal holds none).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../harness/dial.ts';
import { startServer } from '../harness/server.ts';

const BAD: Array<[string, Buffer]> = [
  ['NUL inside', Buffer.from('a\0b.example.net')],
  ['NUL at the end', Buffer.from('client.example.net\0')],
  ['SOH', Buffer.from('a\x01b.example.net')],
  ['bare CR inside', Buffer.from('a\rb.example.net')],
  ['CR before the CRLF', Buffer.from('client.example.net\r')],
  ['TAB inside', Buffer.from('a\tb.example.net')],
  ['ESC (terminal escape)', Buffer.from('\x1b[31mred.example.net')],
  ['vertical tab at the end', Buffer.from('client.example.net\x0b')],
  ['DEL', Buffer.from('a\x7fb.example.net')],
  ['C1 NEL (U+0085)', Buffer.from('a\u0085b.example.net', 'utf8')],
  ['no-break space (U+00A0)', Buffer.from('a\u00a0b.example.net', 'utf8')],
  ['a byte that is not UTF-8', Buffer.concat([Buffer.from('a'), Buffer.from([0xff]), Buffer.from('b.example.net')])],
];

test('HELO/EHLO with a control character get 501 5.5.2 on every listener, helo check listed or not', async (t) => {
  for (const helo of [[], ['helo']]) {
    const srv = await startServer(t, { config: { pipeline: { helo } } });
    for (const listener of ['mx', 'submission', 'submissions']) {
      for (const verb of ['EHLO', 'HELO']) {
        for (const [what, name] of BAD) {
          // One connection per case: refused commands count toward the bad-command limit.
          const c = await dial(srv.port(listener), { tls: listener === 'submissions' });
          await c.expect('220');
          c.send(Buffer.concat([Buffer.from(`${verb} `), name, Buffer.from('\r\n')]));
          const r = await c.read();
          assert.equal(r.raw, '501 5.5.2 Helo command rejected: Invalid name\r\n', `${listener} ${verb} ${what} (helo checks: ${JSON.stringify(helo)})`);
          // A refused name is no greeting: MAIL still needs one, and a clean name is taken after.
          await c.say('MAIL FROM:<x@example.net>').expect('503 5.5.1');
          await c.say(`${verb}  client.example.net\t`).expect('250');
          c.close();
        }
      }
    }
    const line = await srv.waitForLog((l) => l.event === 'protocol' && l.kind === 'bad-helo');
    assert.equal(line.character, 'U+0000');
  }
});
