// The listener over real loopback sockets: PROXY v1/v2 from trusted and untrusted peers,
// connection limits, shutdown, trust-list parsing and session ids.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { dial } from '../harness/dial.ts';
import { buildTrustList, newSessionId, normalizeAddress } from '../../src/ingress/listener.ts';
import { serve, sleep, v2, v4block, v6block } from './fixture.ts';

describe('PROXY from a trusted peer', () => {
  it('v1 sets the real client address', async (t) => {
    const srv = await serve(t, { proxy: { trusted: ['127.0.0.1'] } });
    const d = await dial(srv.port, { prelude: Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 51000 25\r\n') });
    t.after(() => d.close());
    await d.expect('220 mx.test');
    await d.say('QUIT').expect('221 ');
    const conn = (await srv.handler(0)).conn;
    assert.equal(conn.remoteAddress, '203.0.113.7');
    assert.equal(conn.remotePort, 51000);
    assert.equal(conn.localAddress, '192.0.2.1');
    assert.equal(conn.localPort, 25);
    assert.equal(conn.proxyPeer, '127.0.0.1');
    assert.equal(conn.proxyVersion, 1);
  });

  it('v2 TCP6 with TLVs, matched by CIDR, with commands in the same write', async (t) => {
    const srv = await serve(t, { proxy: { trusted: ['10.0.0.0/8', '127.0.0.0/8'] } });
    const header = v2(1, 0x21, v6block('20010db8000000000000000000000007', '20010db8000000000000000000000001', 40001, 465), Buffer.from([0x04, 0x00, 0x02, 0x00, 0x00]));
    const d = await dial(srv.port, { prelude: Buffer.concat([header, Buffer.from('EHLO client.example\r\n')]) });
    t.after(() => d.close());
    await d.expect('220 mx.test');
    await d.expect('250-mx.test'); // the bytes after the header were neither lost nor misparsed
    const conn = (await srv.handler(0)).conn;
    assert.equal(conn.remoteAddress, '2001:db8::7');
    assert.equal(conn.remotePort, 40001);
    assert.equal(conn.proxyVersion, 2);
  });

  it('v2 with an IPv4-mapped source reports plain IPv4; LOCAL keeps the real peer', async (t) => {
    const srv = await serve(t, { proxy: { trusted: ['127.0.0.1'] } });
    const mapped = v2(1, 0x21, v6block('00000000000000000000ffffc6336409', '00000000000000000000000000000001', 1234, 25));
    const d1 = await dial(srv.port, { prelude: mapped });
    t.after(() => d1.close());
    await d1.expect('220 ');
    assert.equal((await srv.handler(0)).conn.remoteAddress, '198.51.100.9');
    const d2 = await dial(srv.port, { prelude: v2(0, 0x00, Buffer.alloc(0)) });
    t.after(() => d2.close());
    await d2.expect('220 ');
    const local = (await srv.handler(1)).conn;
    assert.equal(local.remoteAddress, '127.0.0.1');
    assert.equal(local.proxyVersion, 2);
    const d3 = await dial(srv.port, { prelude: v2(1, 0x11, v4block([192, 0, 2, 50], [192, 0, 2, 1], 999, 25)) });
    t.after(() => d3.close());
    await d3.expect('220 ');
    assert.equal((await srv.handler(2)).conn.remoteAddress, '192.0.2.50');
  });

  it('closes a trusted connection without a header, or with a bad one', async (t) => {
    const srv = await serve(t, { proxy: { trusted: ['127.0.0.1'] } });
    const d = await dial(srv.port, { prelude: Buffer.from('EHLO client.example\r\n') });
    t.after(() => d.close());
    await d.closed();
    const d2 = await dial(srv.port, { prelude: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 99999 25\r\n') });
    t.after(() => d2.close());
    await d2.closed();
    assert.equal(srv.handlers.length, 0);
    const reasons = srv.listenerEvents.filter((e) => e.event === 'proxy-error').map((e) => e.detail.reason);
    assert.deepEqual(reasons, ['does not start with a PROXY v1 or v2 signature', 'v1: port out of range']);
  });

  it('times out a trusted peer that sends nothing', async (t) => {
    const srv = await serve(t, { proxy: { trusted: ['127.0.0.1'], timeoutMs: 150 } });
    const d = await dial(srv.port);
    t.after(() => d.close());
    await d.closed();
    assert.match(String(srv.listenerEvents.find((e) => e.event === 'proxy-error')?.detail.reason), /within 150 ms/);
  });
});

describe('PROXY from an untrusted peer', () => {
  for (const [name, header] of [
    ['v1', Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 51000 25\r\n')],
    ['v2', v2(1, 0x11, v4block([203, 0, 113, 7], [192, 0, 2, 1], 51000, 25))],
  ] as const) {
    it(`refuses a ${name} header and does not honour it`, async (t) => {
      const srv = await serve(t, { proxy: { trusted: ['10.0.0.0/8'] } });
      const d = await dial(srv.port, { prelude: header });
      t.after(() => d.close());
      await d.expect('220 ');
      await d.expect('554 5.7.0 PROXY header from untrusted peer\r\n');
      await d.closed();
      const h = await srv.handler(0);
      assert.equal(h.conn.remoteAddress, '127.0.0.1');
      assert.equal(h.conn.proxyPeer, undefined);
    });
  }

  it('serves an untrusted peer without a header normally', async (t) => {
    const srv = await serve(t, { proxy: { trusted: ['10.0.0.0/8'] } });
    const d = await dial(srv.port);
    t.after(() => d.close());
    await d.expect('220 ');
    await d.say('EHLO client.example').expect('250-');
    assert.equal((await srv.handler(0)).conn.remoteAddress, '127.0.0.1');
  });
});

describe('connection limits', () => {
  it('limits connections per client and counts them down on close', async (t) => {
    const srv = await serve(t, { maxConnectionsPerClient: 2 });
    const a = await dial(srv.port);
    const b = await dial(srv.port);
    t.after(() => a.close());
    t.after(() => b.close());
    await a.expect('220 ');
    await b.expect('220 ');
    const c = await dial(srv.port);
    t.after(() => c.close());
    await c.expect('421 4.7.0 Too many connections, try again later\r\n');
    await c.closed();
    assert.equal(srv.listener.connections(), 2);
    await a.say('QUIT').expect('221 ');
    await a.closed();
    await (await srv.handler(0)).closed;
    await sleep(10);
    assert.equal(srv.listener.connections(), 1);
    const e = await dial(srv.port);
    t.after(() => e.close());
    await e.expect('220 ');
    assert.ok(srv.listenerEvents.some((ev) => ev.event === 'connection-refused' && ev.detail.reason === 'maxConnectionsPerClient'));
  });

  it('limits connections per client by the address in the PROXY header', async (t) => {
    const srv = await serve(t, { maxConnectionsPerClient: 1, proxy: { trusted: ['127.0.0.1'] } });
    const a = await dial(srv.port, { prelude: Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 1 25\r\n') });
    const b = await dial(srv.port, { prelude: Buffer.from('PROXY TCP4 203.0.113.8 192.0.2.1 1 25\r\n') });
    const c = await dial(srv.port, { prelude: Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 2 25\r\n') });
    t.after(() => [a, b, c].forEach((x) => x.close()));
    await a.expect('220 ');
    await b.expect('220 ');
    await c.expect('421 4.7.0 Too many connections');
  });

  it('limits connections overall', async (t) => {
    const srv = await serve(t, { maxConnections: 1 });
    const a = await dial(srv.port);
    t.after(() => a.close());
    await a.expect('220 ');
    const b = await dial(srv.port);
    t.after(() => b.close());
    await b.expect('421 4.7.0 Too many connections, try again later');
  });
});

describe('shutdown', () => {
  it('ends idle sessions with 421 and lets a message in flight finish', async (t) => {
    const srv = await serve(t);
    const idle = await dial(srv.port);
    const busy = await dial(srv.port);
    t.after(() => idle.close());
    t.after(() => busy.close());
    await idle.expect('220 ');
    await busy.expect('220 ');
    await busy.say('EHLO client.example').expect('250-');
    await busy.say('MAIL FROM:<s@sender.example>').expect('250 ');
    await busy.say('RCPT TO:<u@test.example>').expect('250 ');
    await busy.say('DATA').expect('354 ');
    busy.send('Subject: in flight\r\n\r\n');
    await sleep(20);
    const closed = srv.listener.close();
    await idle.expect('421 4.3.2 Service shutting down\r\n');
    busy.send('last line\r\n.\r\n');
    await busy.expect('250 2.0.0 Ok: queued as Q1');
    await busy.expect('421 4.3.2 Service shutting down');
    await closed;
    const h = srv.handlers.find((x) => x.messages.length > 0)!;
    assert.equal(h.messages[0]!.body.toString(), 'Subject: in flight\r\n\r\nlast line\r\n');
    // No longer accepting.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = net.connect(srv.port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      }),
    );
  });
});

describe('helpers', () => {
  it('builds trust lists from addresses and CIDRs, IPv4 and IPv6', () => {
    const list = buildTrustList(['10.0.0.5', '192.168.0.0/16', 'fd00::/8', '::ffff:172.16.0.0/108'])!;
    const check = (a: string): boolean => list.match(a) !== undefined;
    assert.deepEqual(['10.0.0.5', '10.0.0.6', '192.168.4.4', '::ffff:192.168.1.1', 'fd12::1', 'fe80::1', '172.16.3.3', '172.32.0.1'].map(check), [true, false, true, true, true, false, true, false]);
    // A mapped client in any spelling is its IPv4 address; a mapped range never matches as IPv6.
    assert.deepEqual(['::ffff:a00:5', '0:0:0:0:0:ffff:10.0.0.5', '::ffff:ac10:303', '[::ffff:10.0.0.5]'].map(check), [true, true, true, true]);
    assert.equal(buildTrustList([]), undefined);
    for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0.0/x', '::/129', '127.1', '010.0.0.1', 'fe80::1%eth0', '::/64']) assert.throws(() => buildTrustList([bad]), /proxy\.trusted/);
  });

  it('unwraps IPv4-mapped addresses only', () => {
    assert.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(normalizeAddress('::1'), '::1');
    assert.equal(normalizeAddress('2001:db8::1'), '2001:db8::1');
    assert.equal(normalizeAddress('::ffff:7f00:1'), '127.0.0.1');
    assert.equal(normalizeAddress('0:0:0:0:0:FFFF:127.0.0.1'), '127.0.0.1');
    assert.equal(normalizeAddress('2001:DB8:0:0::1'), '2001:db8::1');
  });

  it('makes short unique session ids', () => {
    const ids = new Set(Array.from({ length: 5000 }, () => newSessionId()));
    assert.equal(ids.size, 5000);
    for (const id of ids) assert.match(id, /^[0-9a-z]{10,14}$/);
  });
});
