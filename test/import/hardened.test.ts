// A hardened server: access maps (hash, pcre, cidr), DNSBLs, postgrey and policyd-spf as policy
// services, HELO rules, submission/smtps for logins only. The built-in greylist and SPF checks
// take the policy services' place; the dialogues get the answers the Postfix server gave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDns } from '../harness/dns.ts';
import { dial } from '../harness/dial.ts';
import { forTest, ids, importFixture, obj, rcptCode, session, setPassword, start } from './helpers.ts';

test('import postfix: hardened — access maps, DNSBL, greylist and SPF answer as the policy services did; logins relay on smtps only', async (t) => {
  const imp = await importFixture(t, 'hardened');
  const r = imp.result;
  const rcpt = obj(imp.written.pipeline).rcpt as unknown[];
  assert.ok(rcpt.includes('greylist') && rcpt.includes('spf') && rcpt.includes('dnsbl'), `postgrey, policyd-spf and reject_rbl_client became checks: ${JSON.stringify(rcpt)}`);
  assert.deepEqual(obj(imp.written.relay).trustedNetworks, ['192.168.10.0/24']);
  // What could not be translated is listed with its line, never dropped.
  const untranslated = r.plan.report.items.filter((i) => i.level === 'warning');
  assert.ok(untranslated.some((i) => i.id === 'reject_rhsbl_sender' && i.source === 'main.cf:35'));
  assert.ok(untranslated.some((i) => i.id === 'access-key' && i.source === 'sender_access.pcre:2'), 'a real regular expression is listed');
  assert.ok(untranslated.some((i) => i.id === 'access-class' && i.source === 'sender_access:4'), 'an access entry naming a restriction class is listed');
  assert.ok(untranslated.some((i) => i.id === 'alias-command' && i.source === 'aliases:6'), 'a |command alias is listed');
  assert.ok(!ids(r).includes('mynetworks-loopback'));

  const dns = await startDns(t, {
    'sender.example': { MX: ['10 mx.sender.example'], TXT: ['v=spf1 ip4:127.0.0.1 -all'], names: { 'mx.sender.example': { A: ['192.0.2.10'] } } },
    'forger.example': { MX: ['10 mx.forger.example'], TXT: ['v=spf1 ip4:192.0.2.99 -all'], names: { 'mx.forger.example': { A: ['192.0.2.99'] } } },
    'spammer.example': { MX: ['10 mx.spammer.example'], names: { 'mx.spammer.example': { A: ['192.0.2.66'] } } },
    'zen.spamhaus.org': {},
    'bl.spamcop.net': {},
  });
  const srv = await start(
    t,
    imp,
    forTest(imp, (c) => {
      c.dns = { servers: [dns.address] };
      // postgrey accepts the retry after 5 minutes; the test retries at once.
      obj(c.checks).greylist = { delay: 0 };
    }),
  );
  const mx = srv.port('mx');
  // postgrey: the first try of a new triplet is 450; the retry is accepted.
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'alice@example.com'), 450);
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'alice@example.com'), 250);
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'sales@example.com'), 450, 'an alias is a recipient like any other');
  // check_sender_access hash:/etc/postfix/sender_access: REJECT and a 550 entry; pcre literal.
  assert.equal(await rcptCode(mx, 'x@spammer.example', 'alice@example.com'), 554);
  assert.equal(await rcptCode(mx, 'bad@evil.example', 'alice@example.com'), 554);
  // policyd-spf: -all from an address the record does not list.
  assert.equal(await rcptCode(mx, 'someone@forger.example', 'alice@example.com'), 550);
  // reject_unknown_sender_domain: no MX, no A (NXDOMAIN inside a zone the DNS server holds).
  assert.equal(await rcptCode(mx, 'someone@gone.sender.example', 'alice@example.com'), 550);
  // check_recipient_access and reject_unlisted_recipient.
  assert.ok((await rcptCode(mx, 'someone@sender.example', 'noreply@example.com')) >= 550);
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'nobody-here@example.com'), 550);
  // reject_unauth_destination.
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'victim@elsewhere.example'), 554);
  // reject_non_fqdn_helo_hostname.
  const c = await dial(mx);
  await c.expect('220');
  await c.say('EHLO localhost').expect('250');
  await c.say('MAIL FROM:<someone@sender.example>').expect(/^5/);
  c.close();

  // smtps (465, wrappermode): a login relays; the submission ports refuse mail without one.
  await setPassword(imp, srv, 'alice@example.com', 'correct horse battery');
  const smtps = srv.port('smtps');
  assert.equal(await rcptCode(smtps, 'alice@example.com', 'friend@elsewhere.example', { tls: true, login: ['alice@example.com', 'correct horse battery'] }), 250);
  const anon = await dial(smtps, { tls: true });
  await anon.expect('220');
  await anon.say('EHLO client.sender.example').expect('250');
  await anon.say('MAIL FROM:<someone@sender.example>').expect(/^5/);
  anon.close();
  void session;
});
