// The one network parser (core/net.ts readNetwork): every spelling of an address range either
// means one canonical range or is refused with a reason, and client addresses are folded the
// same way before they are matched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileNetworks, isNetworkProblem, readNetwork } from '../../src/core/net.ts';

const read = (t: string): string => {
  const r = readNetwork(t);
  return isNetworkProblem(r) ? 'refused' : r.text;
};

test('net: spellings of one range mean that range; IPv4-mapped forms fold to IPv4 (prefix - 96)', () => {
  const table: Array<[string, string]> = [
    ['127.0.0.1', '127.0.0.1/32'],
    ['127.0.0.1/8', '127.0.0.0/8'],
    ['::ffff:127.0.0.1', '127.0.0.1/32'],
    ['::FFFF:127.0.0.1', '127.0.0.1/32'],
    ['::ffff:7f00:1', '127.0.0.1/32'],
    ['[::ffff:7f00:1]', '127.0.0.1/32'],
    ['0:0:0:0:0:ffff:127.0.0.1', '127.0.0.1/32'],
    ['0:0:0:0:0:ffff:7f00:0001', '127.0.0.1/32'],
    ['0000:0000:0000:0000:0000:ffff:7f00:0001/128', '127.0.0.1/32'],
    ['[::ffff:127.0.0.0]/104', '127.0.0.0/8'],
    ['::ffff:127.0.0.0/104', '127.0.0.0/8'],
    ['::ffff:0.0.0.0/96', '0.0.0.0/0'],
    ['::ffff:0:0/96', '0.0.0.0/0'],
    ['::ffff:192.0.2.7/120', '192.0.2.0/24'],
    ['[IPv6:::ffff:10.0.0.1]', '10.0.0.1/32'],
    ['[192.0.2.7]/24', '192.0.2.0/24'],
    [' 10.0.0.5 ', '10.0.0.5/32'],
    ['::1', '::1/128'],
    ['[::1]', '::1/128'],
    ['0:0:0:0:0:0:0:1', '::1/128'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['[2001:db8::]/32', '2001:db8::/32'],
    ['2001:db8::5/64', '2001:db8::/64'],
  ];
  for (const [text, want] of table) assert.equal(read(text), want, text);
});

test('net: ambiguous and odd spellings are refused, each with a reason and a fix', () => {
  const refused = [
    '127.1', '127.0.1', '127.000.0.1', '0127.0.0.1', '127.0.0.01', '0x7f.0.0.1', '0x7f000001', '2130706433', '017700000001',
    '300.1.2.3', '1.2.3.4.5', '::ffff:127.000.0.1', '::ffff:127.1',
    'fe80::1%eth0', '[fe80::1%25eth0]', '::ffff:127.0.0.1%lo',
    // Wider than the mapped block, or in the deprecated IPv4-compatible block: IPv4 in disguise.
    '::/0', '::/64', '::/80', '::ffff:0:0/95', '::ffff:127.0.0.1/64', '::127.0.0.1', '::7f00:1', '::/96', '::',
    '10.0.0.0/33', '::1/129', '10.0.0.0/08', '10.0.0.0/+8', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0 /8',
    'localhost', 'example.org', '', '[]', '[10.0.0.1', '*',
  ];
  for (const text of refused) {
    const r = readNetwork(text);
    assert.ok(isNetworkProblem(r), `${JSON.stringify(text)} is refused, not read as ${isNetworkProblem(r) ? '' : r.text}`);
    assert.ok(r.problem.includes(JSON.stringify(text)), `the reason names the value: ${r.problem}`);
    assert.ok(r.fix.length > 0);
  }
  assert.match((readNetwork('0127.0.0.1') as { problem: string }).problem, /octal/);
  assert.match((readNetwork('fe80::1%eth0') as { fix: string }).fix, /fe80::1/);
});

test('net: a client ::ffff:a.b.c.d matches the IPv4 range; a mapped range never matches as IPv6', () => {
  const list = compileNetworks(['192.0.2.0/24', '::ffff:198.51.100.0/120', '2001:db8::/32'], 'test');
  const hit = (a: string): string | undefined => list.match(a)?.text;
  assert.equal(hit('192.0.2.9'), '192.0.2.0/24');
  assert.equal(hit('::ffff:192.0.2.9'), '192.0.2.0/24');
  assert.equal(hit('::ffff:c000:209'), '192.0.2.0/24');
  assert.equal(hit('198.51.100.7'), '::ffff:198.51.100.0/120');
  assert.equal(hit('::ffff:198.51.100.7'), '::ffff:198.51.100.0/120');
  assert.equal(hit('2001:db8::1'), '2001:db8::/32');
  // Not IPv4 in IPv6 clothing: an IPv4-compatible or NAT64 address is a different client.
  assert.equal(hit('::198.51.100.7'), undefined);
  assert.equal(hit('64:ff9b::c633:6407'), undefined);
  assert.equal(hit('203.0.113.1'), undefined);
  assert.throws(() => compileNetworks(['10.0.0.1', '127.1'], 'relay.trustedNetworks'), /^Error: relay\.trustedNetworks\[1\]: "127\.1" is not a full dotted-quad IPv4 address.*\. Fix: write all four parts/);
});
