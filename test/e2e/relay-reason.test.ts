// Every relayed message records in its queue entry why it was allowed to leave: a login, a
// trusted network, or a trusted network reached through a PROXY header (the real client and the
// forwarder both kept). The remote MX answers 4xx so the entries stay queued to be read, by the
// queue's own reader and by `mailward queue show` as an operator runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { reply } from '../../src/core/reply.ts';
import { proxyV1Header } from '../../src/ingress/proxy-header.ts';
import { inspectMessage } from '../../src/queue/inspect.ts';
import type { InspectedMessage } from '../../src/queue/inspect.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { startDns } from '../harness/dns.ts';
import { dial, type Dialog } from '../harness/dial.ts';
import { startSink } from '../delivery/sink.ts';
import { runMailward } from '../harness/cli.ts';
import { authPlain } from '../harness/auth.ts';

const USER = ['alice@example.org', 'correct horse battery'] as const;
// The client a proxy in front of us reports (TEST-NET-3, RFC 5737).
const OUTSIDE = '203.0.113.7';


/** Sends one message to `to` on an open session (after EHLO, and AUTH where needed); returns its queue id. */
async function send(c: Dialog, from: string, to: string): Promise<string> {
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  await c.say(`RCPT TO:<${to}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(`From: <${from}>\r\nTo: <${to}>\r\nSubject: who sent this?\r\n\r\nhello\r\n.\r\n`);
  const r = await c.expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
  return r.text.split(' ').pop()!;
}

function entry(srv: TestServer, id: string): InspectedMessage {
  const e = inspectMessage(srv.config.paths.spool, id);
  assert.ok(e?.ok, `message ${id} is in the queue`);
  return e.message;
}

test('relay reason: login, trusted network and trusted network behind a PROXY header are kept in the queue entry and shown by queue show', async (t) => {
  // The remote MX defers every recipient, so the messages stay queued (next try in minutes).
  const sink = await startSink(t, { rcpt: () => reply(451, '4.3.0', 'Try again later') });
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const srv = await startServer(t, {
    users: [USER],
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      relay: { trustedNetworks: ['127.0.0.1/32', '203.0.113.0/24'] },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
      listeners: {
        mx: { kind: 'mx', port: 0 },
        submission: { kind: 'submission', port: 0 },
        proxied: { kind: 'mx', port: 0, proxy: { trusted: ['127.0.0.1/32'] } },
      },
    },
  });

  // 1. A login on the submission port (also from a trusted address: the login is the reason given).
  const sub = await dial(srv.port('submission'));
  await sub.expect('220');
  await sub.say('EHLO laptop.example.org').expect('250');
  await sub.say('STARTTLS').expect('220');
  await sub.startTls();
  await sub.say('EHLO laptop.example.org').expect('250');
  await sub.say(authPlain(USER[0], USER[1])).expect('235');
  const byLogin = await send(sub, 'alice@example.org', 'one@example.net');

  // 2. A host in relay.trustedNetworks, without a login.
  const mx = await dial(srv.port('mx'));
  await mx.expect('220');
  await mx.say('EHLO app.example.org').expect('250');
  const byNetwork = await send(mx, 'app@example.com', 'two@example.net');

  // 3. The same, but the connection comes from a trusted proxy that names the real client.
  const header = proxyV1Header({ address: OUTSIDE, port: 40000 }, { address: '127.0.0.1', port: 25 });
  const proxied = await dial(srv.port('proxied'), { prelude: header });
  await proxied.expect('220');
  await proxied.say('EHLO web.example.com').expect('250');
  const byProxy = await send(proxied, 'web@example.com', 'three@example.net');

  // Each was tried once and deferred; they stay queued.
  for (let i = 0; i < 250 && sink.rcpts.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(sink.rcpts.map((r) => [r.address, r.code]).sort(), [['one@example.net', 451], ['three@example.net', 451], ['two@example.net', 451]]);

  const login = entry(srv, byLogin).envelope;
  assert.equal(login.relayReason, 'login:alice@example.org');
  assert.deepEqual([login.client.address, login.client.login, login.client.listener, login.client.proxyPeer], ['127.0.0.1', 'alice@example.org', 'submission', undefined]);

  const network = entry(srv, byNetwork).envelope;
  assert.equal(network.relayReason, 'trusted-network:127.0.0.1/32');
  assert.deepEqual([network.client.address, network.client.login, network.client.listener, network.client.proxyPeer], ['127.0.0.1', undefined, 'mx', undefined]);

  // Behind the proxy: the client is the one the PROXY header named, judged by its own network,
  // and the forwarder that carried it is recorded.
  const proxy = entry(srv, byProxy).envelope;
  assert.equal(proxy.relayReason, 'trusted-network:203.0.113.0/24');
  assert.deepEqual([proxy.client.address, proxy.client.listener, proxy.client.proxyPeer, proxy.client.helo], [OUTSIDE, 'proxied', '127.0.0.1', 'web.example.com']);

  // The operator's view: `mailward queue show ID` on a config naming the same data folder.
  const config = path.join(srv.dataDir, 'cli.yaml');
  writeFileSync(config, ['hostname: mx.example.org', 'domains: [example.org]', `dataDir: ${srv.dataDir}`, 'listeners:\n  mx: { kind: mx, port: 0 }', 'log: { level: silent }', ''].join('\n'));
  const [a, b, c] = await Promise.all([byLogin, byNetwork, byProxy].map((id) => runMailward(['queue', 'show', id, '--config', config])));
  for (const run of [a, b, c]) assert.equal(run!.code, 0, run!.stderr);
  const pick = (out: string): string[] => out.split('\n').filter((l) => /^(client|relayed because): /.test(l));
  assert.deepEqual(pick(a!.stdout), ['client: 127.0.0.1 helo=laptop.example.org login=alice@example.org listener=submission', 'relayed because: login:alice@example.org']);
  assert.deepEqual(pick(b!.stdout), ['client: 127.0.0.1 helo=app.example.org login=- listener=mx', 'relayed because: trusted-network:127.0.0.1/32']);
  assert.deepEqual(pick(c!.stdout), [`client: ${OUTSIDE} (via proxy 127.0.0.1) helo=web.example.com login=- listener=proxied`, 'relayed because: trusted-network:203.0.113.0/24']);
  assert.match(c!.stdout, /\n {2}three@example\.net \[remote\] deferred attempts=1 next=\S+ last="451 4\.3\.0 Try again later"\n$/);
});
