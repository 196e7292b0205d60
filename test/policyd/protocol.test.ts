// The policy delegation protocol over real sockets (TCP and a unix socket) with a raw client:
// many requests per connection and pipelined ones, every action kind from real checks (access
// maps, SPF on the loopback DNS server, greylisting in SQLite), sender-login via sasl_username,
// a check past its deadline, and concurrent connections answered without cross-talk.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { startDns } from '../harness/dns.ts';
import { encode, policyClient, rcptRequest, startPolicyd } from './helpers.ts';

const MIN = 60_000;
const GREYLISTED = 'DEFER_IF_PERMIT 4.2.0 Greylisted, please try again later';

async function spfDns(t: TestContext) {
  return startDns(t, {
    'sender.example': { TXT: ['v=spf1 ip4:192.0.2.0/24 -all'] },
    'forged.example': { TXT: ['v=spf1 ip4:198.51.100.1 -all'] },
    'bl.example': { mode: 'timeout' },
  });
}

test('policyd: greylisting then SPF over one kept-open connection; PREPEND once per transaction', async (t) => {
  const dns = await spfDns(t);
  const p = await startPolicyd(t, { dns });
  const c = await policyClient(p.port);
  t.after(() => c.close());
  // Default lists: RCPT → spf, greylist. First sight: greylisted (SPF passed but one action only).
  assert.equal(await c.ask(rcptRequest()), GREYLISTED);
  p.clock.advance(2 * MIN);
  assert.equal(await c.ask(rcptRequest()), GREYLISTED);
  p.clock.advance(4 * MIN);
  const prepend = await c.ask(rcptRequest());
  assert.equal(
    prepend,
    'PREPEND Received-SPF: pass (mx.example.org: domain of alice@sender.example designates 192.0.2.10 as permitted sender) client-ip=192.0.2.10; envelope-from="alice@sender.example"; helo=mail.sender.example; receiver=mx.example.org; identity=mailfrom;',
  );
  // The same transaction's next RCPT (another triplet, greylisted) and a retry of the first: the
  // header was already prepended for this instance.
  assert.equal(await c.ask(rcptRequest({ recipient: 'carol@example.org' })), GREYLISTED);
  assert.equal(await c.ask(rcptRequest()), 'DUNNO');
  // A new transaction gets its own header.
  const again = await c.ask(rcptRequest({ instance: '7ca7.6b0a1e67.3f5bc.1' }));
  assert.equal(again, prepend);
  // SPF fail rejects with the check's own reply code and enhanced code.
  assert.equal(await c.ask(rcptRequest({ sender: 'ceo@forged.example' })), '550 5.7.23 SPF validation failed');
  // States without a list answer DUNNO.
  assert.equal(await c.ask(rcptRequest({ protocol_state: 'MAIL', recipient: '' })), 'DUNNO');
  const d = p.decisions();
  assert.deepEqual(
    d.map((l) => `${String(l.event)} ${String(l.stage)} ${(l.check as string | undefined) ?? '-'} ${String(l.action)}`),
    [
      `deferred RCPT greylist ${GREYLISTED}`,
      `deferred RCPT greylist ${GREYLISTED}`,
      `accepted RCPT - ${prepend}`,
      `deferred RCPT greylist ${GREYLISTED}`,
      'accepted RCPT - DUNNO',
      `accepted RCPT - ${prepend}`,
      'rejected RCPT spf 550 5.7.23 SPF validation failed',
      'accepted MAIL - DUNNO',
    ],
  );
  assert.equal(d[0]!.client, '192.0.2.10');
  assert.equal(d[0]!.from, 'alice@sender.example');
  assert.equal(d[0]!.to, 'bob@example.org');
  assert.equal(d[0]!.session, 'policyd:7ca7.6b0a1e67.3f5bc.0');
});

test('policyd: each action kind, from real checks and the configured action mapping', async (t) => {
  const checks = {
    'client-access': { entries: { '192.0.2.66': 'defer Slow down' } },
    'sender-access': {
      entries: {
        'rej@x.example': 'reject',
        'code@x.example': '550 5.7.1 No mail from you',
        'later@x.example': 'defer',
        'drop@x.example': 'discard',
        'ok@x.example': 'ok',
      },
    },
    'recipient-access': { entries: { 'held@example.org': 'defer', 'strict@example.org': 'reject' } },
  };
  const pipeline = { RCPT: ['client-access', 'sender-access', 'recipient-access'] };
  const actions = { checks: { 'client-access': { defer: 'DEFER' as const }, 'recipient-access': { defer: 'HOLD' as const, reject: 'REJECT' as const } } };
  const p = await startPolicyd(t, { config: { checks }, policyd: { pipeline, actions } });
  const c = await policyClient(p.port);
  t.after(() => c.close());
  const ask = (over: Record<string, string>) => c.ask(rcptRequest(over));
  assert.equal(await ask({}), 'DUNNO');
  assert.equal(await ask({ sender: 'rej@x.example' }), '554 5.7.1 Access denied');
  assert.equal(await ask({ sender: 'code@x.example' }), '550 5.7.1 No mail from you');
  assert.equal(await ask({ sender: 'later@x.example' }), '450 4.7.1 Try again later');
  assert.equal(await ask({ client_address: '192.0.2.66' }), 'DEFER 4.7.1 Slow down');
  assert.equal(await ask({ sender: 'drop@x.example' }), 'DISCARD mailward sender-access: <drop@x.example> matched "drop@x.example" (config)');
  assert.equal(await ask({ recipient: 'held@example.org' }), 'HOLD mailward recipient-access: <held@example.org> matched "held@example.org" (config)');
  assert.equal(await ask({ recipient: 'strict@example.org' }), 'REJECT 5.7.1 Access denied');
  // A permit ends Mailward's list (recipient-access would have rejected) but is DUNNO for Postfix.
  assert.equal(await ask({ sender: 'ok@x.example', recipient: 'strict@example.org' }), 'DUNNO');

  const ok = await startPolicyd(t, { config: { checks }, policyd: { pipeline, actions: { permit: 'OK' } } });
  const c2 = await policyClient(ok.port);
  t.after(() => c2.close());
  assert.equal(await c2.ask(rcptRequest({ sender: 'ok@x.example', recipient: 'strict@example.org' })), 'OK');
  assert.equal(await c2.ask(rcptRequest({ recipient: 'held@example.org' })), '450 4.7.1 Try again later');
  const permitted = ok.decisions().find((l) => l.action === 'OK');
  assert.equal(permitted?.event, 'accepted');
  assert.equal(permitted?.check, 'sender-access');
});

test('policyd: sasl_username is the login — sender-login matches it against the sender', async (t) => {
  const p = await startPolicyd(t, {
    config: { checks: { 'sender-login': { sendAs: { alice: ['alice@example.org', '@alice.example'] } } } },
    policyd: { pipeline: { RCPT: ['sender-login'] }, serverPorts: { '587': 'submission' } },
  });
  const c = await policyClient(p.port);
  t.after(() => c.close());
  assert.equal(await c.ask(rcptRequest({ sasl_username: 'alice', sasl_method: 'PLAIN', sender: 'alice@example.org' })), 'DUNNO');
  assert.equal(await c.ask(rcptRequest({ sasl_username: 'Alice', sasl_method: 'PLAIN', sender: 'x@alice.example' })), 'DUNNO');
  assert.equal(await c.ask(rcptRequest({ sasl_username: 'alice', sasl_method: 'PLAIN', sender: 'ceo@example.org' })), '553 5.7.1 not owned by user');
  assert.equal(await c.ask(rcptRequest({ sasl_username: 'alice', sasl_method: 'PLAIN', sender: '' })), '553 5.7.1 not owned by user');
  // Without a login, our own domain as sender is refused on the MX port, not on port 587.
  assert.equal(await c.ask(rcptRequest({ sender: 'ceo@example.org' })), '553 5.7.1 log in to send as a local address');
  assert.equal(await c.ask(rcptRequest({ sender: 'ceo@example.org', server_port: '587' })), 'DUNNO');
  const rejected = p.decisions().find((l) => l.event === 'rejected');
  assert.equal(rejected?.login, 'alice');
  assert.equal(rejected?.reason, 'login alice may not send as ceo@example.org');
  // A sender Postfix let through that is no address: refused as the server would at MAIL FROM.
  assert.equal(await c.ask(rcptRequest({ sender: 'a b@x.example' })), '501 5.1.7 Bad sender address syntax');
});

test('policyd: a check past its deadline answers a defer, never DUNNO', async (t) => {
  const dns = await spfDns(t);
  const p = await startPolicyd(t, {
    dns,
    config: { checks: { dnsbl: { zones: [{ zone: 'bl.example' }] } } },
    policyd: { pipeline: { CONNECT: [{ check: 'dnsbl', timeout: '150ms' }] } },
  });
  const c = await policyClient(p.port);
  t.after(() => c.close());
  assert.equal(await c.ask(rcptRequest({ protocol_state: 'CONNECT', helo_name: '', sender: '', recipient: '' })), '451 4.7.1 Temporary policy failure, please try again later');
  const d = p.decisions().at(-1);
  assert.equal(d?.event, 'deferred');
  assert.equal(d?.reason, 'check dnsbl failed: no answer within 150 ms');
});

test('policyd: pipelined requests in one write are answered in order; states map to stages', async (t) => {
  const p = await startPolicyd(t, {
    config: { checks: { 'sender-access': { entries: { 'rej@x.example': 'reject' } }, 'helo-access': { entries: { 'bad.helo': 'reject' } } } },
    policyd: { pipeline: { HELO: ['helo-access'], MAIL: ['sender-access'], 'END-OF-MESSAGE': ['sender-access'] } },
  });
  const c = await policyClient(p.port);
  t.after(() => c.close());
  c.send(
    encode(rcptRequest({ protocol_state: 'EHLO', helo_name: 'bad.helo', sender: '', recipient: '' })) +
      encode(rcptRequest({ protocol_state: 'MAIL', sender: 'rej@x.example', recipient: '' })) +
      encode(rcptRequest({ protocol_state: 'MAIL', sender: 'fine@x.example', recipient: '' })) +
      encode(rcptRequest({ protocol_state: 'END-OF-MESSAGE', sender: 'rej@x.example', recipient: '', recipient_count: '2', size: '1234' })),
  );
  assert.equal(await c.answer(), '554 5.7.1 Access denied');
  assert.equal(await c.answer(), '554 5.7.1 Access denied');
  assert.equal(await c.answer(), 'DUNNO');
  assert.equal(await c.answer(), '554 5.7.1 Access denied');
  assert.deepEqual(
    p.decisions().map((l) => l.stage),
    ['EHLO', 'MAIL', 'MAIL', 'END-OF-MESSAGE'],
  );
});

test('policyd: 24 concurrent connections × 5 requests each get their own answers', async (t) => {
  const p = await startPolicyd(t, {
    config: { checks: { 'sender-access': { entries: { 'x.example': 'reject' } } } },
    policyd: { pipeline: { RCPT: ['sender-access'] } },
  });
  const clients = await Promise.all(Array.from({ length: 24 }, () => policyClient(p.port)));
  t.after(() => clients.forEach((c) => c.close()));
  const results = await Promise.all(
    clients.map(async (c, i) => {
      const got: string[] = [];
      for (let j = 0; j < 5; j++) {
        const bad = (i + j) % 2 === 0;
        got.push(await c.ask(rcptRequest({ sender: `u${i}-${j}@${bad ? 'x.example' : 'y.example'}` })));
      }
      return got;
    }),
  );
  results.forEach((got, i) => {
    got.forEach((action, j) => {
      const expected = (i + j) % 2 === 0 ? `554 5.7.1 Access denied` : 'DUNNO';
      assert.equal(action, expected, `client ${i} request ${j}`);
    });
  });
  assert.equal(p.decisions().length, 120);
});

test('policyd: TCP clients outside policyd.clients are closed without an answer', async (t) => {
  const p = await startPolicyd(t, { policyd: { clients: ['10.0.0.0/8'] } });
  const c = await policyClient(p.port);
  c.send(encode(rcptRequest()));
  assert.equal(await c.closed(), '');
  assert.equal(p.logs.find((l) => l.event === 'policyd-refused')?.listen, `tcp:127.0.0.1:${p.port}`);
});

test('policyd: a connection idle past limits.idleTimeout is closed (Postfix reconnects)', async (t) => {
  const p = await startPolicyd(t, { policyd: { pipeline: {}, limits: { idleTimeout: '300ms' } } });
  const c = await policyClient(p.port);
  assert.equal(await c.ask(rcptRequest()), 'DUNNO');
  const started = Date.now();
  assert.equal(await c.closed(), 'action=DUNNO\n\n');
  assert.ok(Date.now() - started >= 250, 'not closed before the idle time');
  assert.equal(p.logs.filter((l) => l.event === 'policyd-idle').length, 1);
});

test('policyd at info: a DUNNO is counted, not logged; other decisions are one line each; the counts come once a minute', async (t) => {
  const p = await startPolicyd(t, {
    logLevel: 'info',
    config: { checks: { 'sender-access': { entries: { 'rej@x.example': 'reject' } } } },
    policyd: { pipeline: { RCPT: ['sender-access'] } },
  });
  const c = await policyClient(p.port);
  t.after(() => c.close());
  assert.equal(await c.ask(rcptRequest()), 'DUNNO');
  assert.equal(await c.ask(rcptRequest({ sender: 'rej@x.example' })), '554 5.7.1 Access denied');
  assert.equal(await c.ask(rcptRequest()), 'DUNNO');
  assert.deepEqual(
    p.decisions().map((l) => `${String(l.event)} ${String(l.action)}`),
    ['rejected 554 5.7.1 Access denied'],
  );
  assert.equal(p.logs.filter((l) => l.event === 'policyd-decisions').length, 0, 'no summary before a minute has passed');
  p.clock.advance(MIN);
  assert.equal(await c.ask(rcptRequest()), 'DUNNO');
  const summary = p.logs.filter((l) => l.event === 'policyd-decisions');
  assert.equal(summary.length, 1);
  assert.equal(summary[0]?.dunno, 3);
  assert.equal(summary[0]?.rejected, 1);
});
