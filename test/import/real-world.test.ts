// The real-world fixtures' reports: everything dangerous is an error with its file:line and a fix,
// and nothing the Postfix server did not trust is trusted in the result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planImport } from '../../src/import/postfix/translate.ts';
import { FIXTURES } from './helpers.ts';
import path from 'node:path';

const plan = (name: string): ReturnType<typeof planImport> => planImport({ root: path.join(FIXTURES, name), configDir: '/etc/postfix', postconf: false });
const item = (p: ReturnType<typeof planImport>, id: string, source: string): void => {
  const hit = p.report.items.find((i) => i.id === id && i.source === source);
  assert.ok(hit, `${id} at ${source}: ${JSON.stringify(p.report.items.filter((i) => i.id === id))}`);
  if (hit.level === 'error' || hit.level === 'warning') assert.ok((hit.fix ?? '').length > 10, `${id} has a fix`);
};
const trusted = (p: ReturnType<typeof planImport>): unknown => (p.config.relay as { trustedNetworks?: unknown } | undefined)?.trustedNetworks;

test('legacy open relay: no reject_unauth_destination, a permit, and OK for loopback are errors', () => {
  const p = plan('legacy-open-relay');
  item(p, 'no-relay-rule', 'default, main.cf:19');
  item(p, 'relay-permit', 'main.cf:19');
  item(p, 'access-ok-loopback', 'client_ok.cidr:5');
  item(p, 'access-ok-loopback', 'client_ok.cidr:6');
  item(p, 'mynetworks-default', 'main.cf:9');
  assert.equal(trusted(p), undefined);
});

test('cidr: mynetworks is read (loopback named), a class that permits in the relay list is an error', () => {
  const p = plan('cidr-classes');
  item(p, 'mynetworks-loopback', 'main.cf:8');
  item(p, 'access-class-relays', 'partners:2');
  item(p, 'access-class-relays', 'partners:3');
  assert.deepEqual(trusted(p), ['192.168.50.0/24', '10.0.0.0/8']);
});

test('IPv6 and mapped spellings: loopback and everything are not copied; a range after "!" is not trusted', () => {
  const p = plan('ipv6-mynetworks');
  item(p, 'mynetworks-loopback', 'main.cf:8');
  item(p, 'mynetworks-too-wide', 'main.cf:8');
  item(p, 'mynetworks-excluded-overlap', 'main.cf:8');
  item(p, 'mynetworks-own-address', 'main.cf:8');
  assert.deepEqual(trusted(p), ['10.1.0.0/16'], 'Postfix did not trust 192.168.7.66; the result does not trust its /24');
});

test('mynetworks file, submission -o, HAProxy and variables: traps named, delimiter reported', () => {
  const nt = plan('network-table');
  item(nt, 'mynetworks-loopback', 'main.cf:8');
  item(nt, 'mynetworks-own-address', 'main.cf:8');
  const sub = plan('submission-mynetworks');
  item(sub, 'mynetworks-loopback', 'main.cf:9');
  const hp = plan('haproxy-postscreen');
  item(hp, 'proxy-without-peers', 'main.cf:13');
  item(hp, 'proxy-without-peers', 'main.cf:12');
  const vl = plan('variables-lists');
  item(vl, 'delimiter-chars', 'main.cf:15');
  item(vl, 'mynetworks-default', 'main.cf:11');
  assert.deepEqual((vl.config.checks as { dnsbl: { zones: Array<{ zone: string }> } }).dnsbl.zones.map((z) => z.zone), ['zen.spamhaus.org', 'bl.spamcop.net'], '${use_rbl?...} expanded');
});
