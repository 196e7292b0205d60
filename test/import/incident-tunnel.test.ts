// The incident's config: a tunnel on the mail host delivered every client from 127.0.0.1, and
// permit_mynetworks with loopback in mynetworks let each relay; a second port took PROXY headers
// from anyone. The import names both as errors and the result relays for neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../harness/dial.ts';
import { buildConfig } from '../../src/config/load.ts';
import { forTest, importFixture, obj, rcptCode, start } from './helpers.ts';

test('import postfix: the incident — loopback in mynetworks and PROXY without peers are named, not copied; tunnelled clients cannot relay', async (t) => {
  const imp = await importFixture(t, 'incident-tunnel');
  const r = imp.result;
  const errors = r.plan.report.items.filter((i) => i.level === 'error');
  const trap = errors.find((i) => i.id === 'mynetworks-loopback');
  assert.ok(trap, r.text);
  assert.equal(trap.source, 'main.cf:7');
  assert.match(trap.fix ?? '', /tunnel/);
  assert.match(trap.fix ?? '', /PROXY/);
  assert.match(r.text, /ERRORS \(unsafe in the Postfix config; not copied\)/);
  const proxy = errors.find((i) => i.id === 'proxy-without-peers');
  assert.ok(proxy && proxy.source === 'master.cf:4 (-o)', 'smtpd_upstream_proxy_protocol without a peer list is an error');
  assert.deepEqual(obj(imp.written.relay).trustedNetworks, ['192.168.1.0/24'], 'only the LAN range is kept');
  // The written config loads as the server loads it, without the loopback acknowledgement.
  assert.doesNotThrow(() => buildConfig(imp.written, imp.out, imp.dir));
  assert.equal(obj(obj(imp.written.listeners)['mx-10025']).proxy, undefined, 'no PROXY sender is trusted');

  const srv = await start(t, imp, forTest(imp));
  // Every tunnelled client is 127.0.0.1: local mail still arrives, relay is refused (Postfix relayed it).
  assert.equal(await rcptCode(srv.port('mx'), 'spammer@bulk.example', 'orders@shop.example'), 250);
  assert.equal(await rcptCode(srv.port('mx'), 'spammer@bulk.example', 'shopkeeper@shop.example'), 250);
  assert.equal(await rcptCode(srv.port('mx'), 'spammer@bulk.example', 'victim@elsewhere.example'), 554);
  assert.equal(await rcptCode(srv.port('mx-10025'), 'spammer@bulk.example', 'victim@elsewhere.example'), 554);
  // A forged PROXY header claiming the trusted LAN is not believed.
  const c = await dial(srv.port('mx-10025'), { prelude: Buffer.from('PROXY TCP4 192.168.1.5 127.0.0.1 40000 10025\r\n') });
  const replies: number[] = [];
  try {
    replies.push((await c.read()).code);
    replies.push((await c.read()).code);
    replies.push((await c.say('EHLO client.bulk.example').read()).code);
    replies.push((await c.say('MAIL FROM:<spammer@bulk.example>').read()).code);
    replies.push((await c.say('RCPT TO:<victim@elsewhere.example>').read()).code);
  } catch {
    // the server may close the connection: that refuses the relay too
  } finally {
    c.close();
  }
  assert.ok(!(replies.length === 5 && replies[4] === 250), `relay refused: ${replies.join(' ')}`);
});
