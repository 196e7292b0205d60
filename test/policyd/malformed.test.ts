// Malformed policy requests over a real socket: each gets a DEFER answer or a closed connection
// (never DUNNO, never a crash), is logged as a protocol event, and the service keeps answering
// well-formed requests on other connections (and on the same one when the framing held).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FATAL_ACTION } from '../../src/shells/policyd.ts';
import { TEMPFAIL_ACTION } from '../../src/policyd/engine.ts';
import { encode, policyClient, rcptRequest, startPolicyd, type TestPolicyd } from './helpers.ts';

const setup = (t: import('node:test').TestContext) =>
  startPolicyd(t, {
    config: { checks: { 'sender-access': { entries: { 'rej@x.example': 'reject' } } } },
    policyd: { pipeline: { RCPT: ['sender-access'] } },
  });

const REJECTED = '554 5.7.1 Access denied';

/** The service still answers a fresh connection correctly. */
async function stillServes(p: TestPolicyd): Promise<void> {
  const c = await policyClient(p.port);
  try {
    assert.equal(await c.ask(rcptRequest({ sender: 'rej@x.example' })), REJECTED);
  } finally {
    c.close();
  }
}

const protocolReasons = (p: TestPolicyd) => p.logs.filter((l) => l.event === 'protocol').map((l) => l.reason);

test('policyd: a request cut off by EOF (no empty line) is logged, not answered', async (t) => {
  const p = await setup(t);
  const c = await policyClient(p.port);
  c.send('request=smtpd_access_policy\nprotocol_state=RCPT\nsender=rej@x.example\n');
  c.socket.end();
  assert.equal(await c.closed(), '');
  await stillServes(p);
  assert.deepEqual(protocolReasons(p), ['the connection closed inside a request (3 attribute line(s) without the empty line that ends a request)']);
  assert.equal(p.decisions().filter((l) => l.event !== 'protocol').length, 1, 'only the request of stillServes was decided');
});

test('policyd: a 100 KB attribute gets DEFER and the connection is closed', async (t) => {
  const p = await setup(t);
  const c = await policyClient(p.port);
  c.send(`request=smtpd_access_policy\nsender=${'a'.repeat(100 * 1024)}@x.example\n\n`);
  assert.equal(await c.closed(), `action=${FATAL_ACTION}\n\n`);
  await stillServes(p);
  assert.deepEqual(protocolReasons(p), ['a line is longer than 8192 bytes']);
});

test('policyd: binary bytes, unknown or missing request types get DEFER; the connection stays usable', async (t) => {
  const p = await setup(t);
  const c = await policyClient(p.port);
  t.after(() => c.close());
  c.send(Buffer.from([...Buffer.from('request=smtpd_access_policy\nsender='), 0x00, 0x01, 0x1b, 0x7f, ...Buffer.from('\n\n')]));
  assert.equal(await c.answer(), TEMPFAIL_ACTION);
  assert.equal(await c.ask({ request: 'junk', protocol_state: 'RCPT', client_address: '192.0.2.1' }), TEMPFAIL_ACTION);
  assert.equal(await c.ask({ protocol_state: 'RCPT', client_address: '192.0.2.1' }), TEMPFAIL_ACTION);
  assert.equal(await c.ask(rcptRequest({ protocol_state: 'BDAT' })), TEMPFAIL_ACTION);
  assert.equal(await c.ask(rcptRequest({ client_address: 'unknown' })), TEMPFAIL_ACTION);
  c.send('request=smtpd_access_policy\nno equals sign here\n\n');
  assert.equal(await c.answer(), TEMPFAIL_ACTION);
  c.send('request=smtpd_access_policy\nsasl_username=a\nsasl_username=b\n\n');
  assert.equal(await c.answer(), TEMPFAIL_ACTION);
  // The same connection still answers a good request, in order.
  assert.equal(await c.ask(rcptRequest({ sender: 'rej@x.example' })), REJECTED);
  assert.deepEqual(protocolReasons(p), [
    'attribute line 2 holds control characters (binary data?)',
    'unsupported request type "junk" (only smtpd_access_policy)',
    'the request has no "request" attribute',
    'unknown protocol_state "BDAT"',
    'client_address "unknown" is not an IP address',
    'attribute line 2 is not name=value',
    'the attribute sasl_username appears twice',
  ]);
});

test('policyd: invalid UTF-8 and too many attributes; an empty line where a request should start', async (t) => {
  const p = await setup(t);
  const c = await policyClient(p.port);
  c.send(Buffer.concat([Buffer.from('request=smtpd_access_policy\nhelo_name='), Buffer.from([0xc3, 0x28]), Buffer.from('\n\n')]));
  assert.equal(await c.answer(), TEMPFAIL_ACTION);
  c.send(encode(Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`x${i}`, 'y']))));
  assert.equal(await c.closed(), `action=${TEMPFAIL_ACTION}\n\naction=${FATAL_ACTION}\n\n`);
  const c2 = await policyClient(p.port);
  c2.send('\n');
  assert.equal(await c2.closed(), `action=${FATAL_ACTION}\n\n`);
  await stillServes(p);
  assert.deepEqual(protocolReasons(p), ['attribute line 2 is not valid UTF-8 (binary data?)', 'a request has more than 128 attribute lines', 'an empty line where a request should start']);
});

test('policyd: random garbage on many connections never stops the service', async (t) => {
  const p = await setup(t);
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      const c = await policyClient(p.port);
      const bytes = Buffer.alloc(20_000, 0);
      for (let i = 0; i < bytes.length; i++) bytes[i] = rand() < 0.1 ? 0x0a : Math.floor(rand() * 256);
      c.send(bytes);
      c.socket.end();
      const got = await c.closed();
      // Whatever came back is whole answers, none of them DUNNO.
      for (const block of got.split('\n\n').filter((b) => b !== '')) assert.match(block, /^action=DEFER 4\.3\.5 /);
    }),
  );
  await stillServes(p);
});
