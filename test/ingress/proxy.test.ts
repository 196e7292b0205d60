// PROXY protocol parser: v1 and v2 headers, incomplete input, malformed input, and a property
// test that arbitrary or mutated bytes only ever give a result or our own ProxyParseError.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseProxyHeader, ProxyParseError, V2_SIGNATURE, looksLikeProxyHeader } from '../../src/ingress/proxy.ts';
import { v2, v4block, v6block } from './fixture.ts';

function expectError(buf: Buffer, reason: RegExp): void {
  assert.throws(() => parseProxyHeader(buf), (err: unknown) => err instanceof ProxyParseError && reason.test(err.reason));
}

describe('PROXY v1', () => {
  it('parses TCP4 and reports the bytes it took', () => {
    const buf = Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 51000 25\r\nEHLO x\r\n');
    const r = parseProxyHeader(buf);
    assert.equal(r.status, 'done');
    assert.ok(r.status === 'done');
    assert.deepEqual(r.header, {
      version: 1,
      command: 'PROXY',
      family: 'TCP4',
      source: { address: '203.0.113.7', port: 51000 },
      destination: { address: '192.0.2.1', port: 25 },
    });
    assert.equal(buf.subarray(r.consumed).toString(), 'EHLO x\r\n');
  });

  it('parses TCP6 and canonicalises the addresses', () => {
    const r = parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0::7 ::1 65535 0\r\n'));
    assert.ok(r.status === 'done');
    assert.deepEqual(r.header.source, { address: '2001:db8::7', port: 65535 });
    assert.deepEqual(r.header.destination, { address: '::1', port: 0 });
  });

  it('accepts UNKNOWN with or without trailing fields', () => {
    for (const s of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n']) {
      const r = parseProxyHeader(Buffer.from(s));
      assert.ok(r.status === 'done');
      assert.equal(r.consumed, s.length);
      assert.deepEqual(r.header, { version: 1, command: 'PROXY', family: 'UNKNOWN' });
    }
  });

  it('waits for more bytes on every strict prefix', () => {
    const s = 'PROXY TCP4 203.0.113.7 192.0.2.1 51000 25\r\n';
    for (let i = 1; i < s.length; i++) assert.deepEqual(parseProxyHeader(Buffer.from(s.slice(0, i))), { status: 'incomplete' }, `prefix ${i}`);
  });

  it('refuses malformed lines', () => {
    expectError(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), /CRLF/);
    expectError(Buffer.from('PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n'), /5 fields|address/);
    expectError(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), /5 fields/);
    expectError(Buffer.from('PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n'), /IPv4/);
    expectError(Buffer.from('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'), /IPv4/);
    expectError(Buffer.from('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'), /IPv6/);
    expectError(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), /port/);
    expectError(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 025 2\r\n'), /port/);
    expectError(Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), /TCP4, TCP6 or UNKNOWN/);
    expectError(Buffer.from('PROXY TCP4 1.2.3.4\r5.6.7.8'), /CR not followed by LF/);
    expectError(Buffer.from('PROXZ TCP4'), /signature/);
    expectError(Buffer.from('EHLO x\r\n'), /signature/);
    expectError(Buffer.from(`PROXY UNKNOWN ${'x'.repeat(120)}`), /within 107 bytes/);
    expectError(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \u00e9\r\n'), /non-printable/);
  });
});

describe('PROXY v2', () => {
  it('parses TCP4 and skips TLVs', () => {
    const tlvs = Buffer.from([0x04, 0x00, 0x03, 0x61, 0x62, 0x63]); // PP2_TYPE_NOOP "abc"
    const buf = Buffer.concat([v2(1, 0x11, v4block([198, 51, 100, 9], [10, 0, 0, 1], 40000, 587), tlvs), Buffer.from('EHLO')]);
    const r = parseProxyHeader(buf);
    assert.ok(r.status === 'done');
    assert.deepEqual(r.header, {
      version: 2,
      command: 'PROXY',
      family: 'TCP4',
      source: { address: '198.51.100.9', port: 40000 },
      destination: { address: '10.0.0.1', port: 587 },
    });
    assert.equal(buf.subarray(r.consumed).toString(), 'EHLO');
  });

  it('parses TCP6, including IPv4-mapped sources', () => {
    const r = parseProxyHeader(v2(1, 0x21, v6block('2001:0db8:0000:0000:0000:0000:0000:0007', '0000:0000:0000:0000:0000:ffff:0102:0304', 1, 2)));
    assert.ok(r.status === 'done');
    assert.deepEqual(r.header.source, { address: '2001:db8::7', port: 1 });
    assert.deepEqual(r.header.destination, { address: '::ffff:1.2.3.4', port: 2 });
  });

  it('LOCAL carries no address, whatever the block holds', () => {
    const r = parseProxyHeader(v2(0, 0x00, Buffer.alloc(0)));
    assert.ok(r.status === 'done');
    assert.deepEqual(r.header, { version: 2, command: 'LOCAL', family: 'UNKNOWN' });
    const r2 = parseProxyHeader(v2(0, 0x11, v4block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)));
    assert.ok(r2.status === 'done');
    assert.equal(r2.header.command, 'LOCAL');
    assert.equal(r2.consumed, 28);
  });

  it('UNSPEC and UNIX families give no client address', () => {
    const r = parseProxyHeader(v2(1, 0x31, Buffer.alloc(216)));
    assert.ok(r.status === 'done');
    assert.equal(r.header.family, 'UNKNOWN');
    assert.equal(r.header.source, undefined);
  });

  it('waits for more bytes on every strict prefix', () => {
    const full = v2(1, 0x11, v4block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    for (let i = 1; i < full.length; i++) assert.deepEqual(parseProxyHeader(full.subarray(0, i)), { status: 'incomplete' }, `prefix ${i}`);
  });

  it('refuses malformed headers', () => {
    const good = v2(1, 0x11, v4block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    const bad = (i: number, value: number): Buffer => {
      const b = Buffer.from(good);
      b[i] = value;
      return b;
    };
    expectError(bad(5, 0x01), /signature/);
    expectError(bad(12, 0x11), /version 1/);
    expectError(bad(12, 0x22), /command 2/);
    expectError(bad(13, 0x41), /address family 4/);
    expectError(bad(13, 0x13), /transport 3/);
    expectError(bad(13, 0x12), /STREAM/);
    expectError(bad(15, 0x05), /too short/);
    expectError(v2(1, 0x21, Buffer.alloc(20)), /too short/);
  });

  it('caps the header length', () => {
    const head = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    expectError(head, /exceeds the limit/);
    assert.equal(parseProxyHeader(v2(1, 0x11, Buffer.alloc(2000)), 4096).status, 'done');
    assert.throws(() => parseProxyHeader(v2(1, 0x11, Buffer.alloc(2000)), 1024), ProxyParseError);
  });
});

describe('looksLikeProxyHeader', () => {
  it('recognises both signatures and nothing else', () => {
    assert.equal(looksLikeProxyHeader(Buffer.from('PROXY TCP4 ')), true);
    assert.equal(looksLikeProxyHeader(V2_SIGNATURE), true);
    assert.equal(looksLikeProxyHeader(Buffer.from('\r\n')), false);
    assert.equal(looksLikeProxyHeader(Buffer.from('EHLO x\r\n')), false);
    assert.equal(looksLikeProxyHeader(Buffer.alloc(0)), false);
  });
});

describe('PROXY parser properties', () => {
  const onlyOurError = (buf: Buffer): void => {
    try {
      const r = parseProxyHeader(buf);
      if (r.status === 'done') {
        assert.ok(r.consumed > 0 && r.consumed <= buf.length);
      }
    } catch (err) {
      if (!(err instanceof ProxyParseError)) throw err;
    }
  };

  it('random bytes give a result or a ProxyParseError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => onlyOurError(Buffer.from(bytes))), { numRuns: 3000 });
  });

  it('mutated valid headers give a result or a ProxyParseError', () => {
    const seeds = [
      Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 51000 25\r\n'),
      Buffer.from('PROXY TCP6 2001:db8::7 ::1 1 2\r\n'),
      v2(1, 0x11, v4block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), Buffer.from([4, 0, 1, 0])),
      v2(1, 0x21, v6block('20010db8000000000000000000000007', '00000000000000000000000000000001', 1, 2)),
    ];
    const mutation = fc.record({
      seed: fc.integer({ min: 0, max: seeds.length - 1 }),
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      cut: fc.nat(),
    });
    fc.assert(
      fc.property(mutation, ({ seed, edits, cut }) => {
        const b = Buffer.from(seeds[seed]!);
        for (const [at, value] of edits) b[at % b.length] = value;
        onlyOurError(b.subarray(0, b.length - (cut % 4)));
      }),
      { numRuns: 3000 },
    );
  });

  it('a complete header parses the same whatever follows it', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
        const head = Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 51000 25\r\n');
        const r = parseProxyHeader(Buffer.concat([head, tail]));
        assert.ok(r.status === 'done');
        assert.equal(r.consumed, head.length);
      }),
    );
  });
});
