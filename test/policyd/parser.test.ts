// The request parser on its own: exact framing cases, and properties over random and mutated
// input (fast-check) — it never throws, holds at most one line of bytes, gives the same items
// however the bytes are split into chunks, and nothing after a fatal error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RequestParser, type ParsedItem, type ParserLimits } from '../../src/policyd/parser.ts';
import { encode, rcptRequest } from './helpers.ts';

const LIMITS: ParserLimits = { maxLineLength: 256, maxAttributes: 40 };

function parseChunks(chunks: readonly Uint8Array[], limits = LIMITS): { items: ParsedItem[]; maxBuffered: number; end: string | undefined } {
  const p = new RequestParser(limits);
  const items: ParsedItem[] = [];
  let maxBuffered = 0;
  for (const c of chunks) {
    items.push(...p.push(Buffer.from(c)));
    maxBuffered = Math.max(maxBuffered, p.buffered);
  }
  return { items, maxBuffered, end: p.end() };
}

/** Splits `bytes` at the given cut points. */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of points) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  out.push(bytes.subarray(last));
  return out;
}

const asJson = (items: ParsedItem[]) => items.map((i) => (i.kind === 'request' ? { kind: i.kind, attributes: [...i.attributes] } : i));

test('parser: a Postfix request, CRLF tolerated, attributes kept in order', () => {
  const req = rcptRequest();
  const { items, end } = parseChunks([Buffer.from(encode(req) + encode(req).replace(/\n/g, '\r\n'))], { maxLineLength: 256, maxAttributes: 40 });
  assert.equal(end, undefined);
  assert.deepEqual(asJson(items), [
    { kind: 'request', attributes: Object.entries(req) },
    { kind: 'request', attributes: Object.entries(req) },
  ]);
});

test('parser: a line of exactly maxLineLength bytes is read; one byte more is fatal', () => {
  const exact = `sender=${'a'.repeat(256 - 7)}`;
  assert.equal(exact.length, 256);
  assert.deepEqual(asJson(parseChunks([Buffer.from(`request=x\n${exact}\n\n`)]).items), [{ kind: 'request', attributes: [['request', 'x'], ['sender', 'a'.repeat(249)]] }]);
  // With CR: the CR does not count.
  assert.equal(parseChunks([Buffer.from(`request=x\r\n${exact}\r\n\r\n`)]).items[0]?.kind, 'request');
  assert.deepEqual(parseChunks([Buffer.from(`request=x\n${exact}a\n\n`)]).items, [{ kind: 'fatal', problem: 'a line is longer than 256 bytes' }]);
  // Without any LF at all the line is refused as soon as it passes the limit, not at the end.
  const p = new RequestParser(LIMITS);
  assert.deepEqual(p.push(Buffer.alloc(200, 0x61)), []);
  assert.equal(p.buffered, 200);
  assert.deepEqual(p.push(Buffer.alloc(200, 0x61)), [{ kind: 'fatal', problem: 'a line is longer than 256 bytes' }]);
  assert.equal(p.buffered, 0);
  assert.deepEqual(p.push(Buffer.from('request=x\n\n')), [], 'nothing is read after a fatal error');
});

test('parser: 40 attribute lines are read, 41 are fatal; EOF inside a request is reported', () => {
  const attrs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, String(i)]));
  assert.equal(parseChunks([Buffer.from(encode(attrs(40)))]).items[0]?.kind, 'request');
  assert.deepEqual(parseChunks([Buffer.from(encode(attrs(41)))]).items, [{ kind: 'fatal', problem: 'a request has more than 40 attribute lines' }]);
  assert.equal(parseChunks([Buffer.from('request=x\nsender=')]).end, 'the connection closed inside a request (1 attribute line(s) without the empty line that ends a request)');
  assert.equal(parseChunks([Buffer.from(encode({ request: 'x' }))]).end, undefined);
});

// Bytes that look like the protocol (names, '=', LFs) more often than uniform noise would.
const protocolish = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...'request=smtpd_access_policy\nsender=a@b\nprotocol_state=RCPT\n\n'.split('').map((ch) => ch.charCodeAt(0))) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
  ),
  { maxLength: 3000 },
).map((a) => Uint8Array.from(a));

test('property: random bytes in random chunks never throw; at most one line is held; nothing after fatal', () => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 3000 }), protocolish), fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
      const { items, maxBuffered } = parseChunks(split(bytes, cuts));
      assert.ok(maxBuffered <= LIMITS.maxLineLength + 1, `held ${maxBuffered} bytes`);
      const fatal = items.findIndex((i) => i.kind === 'fatal');
      assert.ok(fatal === -1 || fatal === items.length - 1, 'a fatal item is the last');
      for (const i of items) if (i.kind === 'request') assert.ok(i.attributes.size <= LIMITS.maxAttributes);
      // Every item stands for at least one LF of input, so output grows with input, not beyond.
      assert.ok(items.length <= bytes.filter((b) => b === 0x0a).length);
    }),
    { numRuns: 500 },
  );
});

test('property: how the bytes are split into chunks never changes the items', () => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), protocolish), fc.array(fc.nat(), { maxLength: 30 }), (bytes, cuts) => {
      const whole = parseChunks([bytes]);
      const chunked = parseChunks(split(bytes, cuts));
      assert.deepEqual(asJson(chunked.items), asJson(whole.items));
      assert.equal(chunked.end, whole.end);
    }),
    { numRuns: 500 },
  );
});

test('property: mutated Postfix requests never throw; unmutated ones read back exactly', () => {
  const base = Buffer.from(encode(rcptRequest()));
  const mutation = fc.record({ at: fc.nat(), kind: fc.constantFrom('replace', 'insert', 'delete'), byte: fc.integer({ min: 0, max: 255 }) });
  fc.assert(
    fc.property(fc.array(mutation, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 1, max: 4 }), (mutations, cuts, copies) => {
      let bytes = Array.from(Buffer.concat(Array.from({ length: copies }, () => base)));
      for (const m of mutations) {
        const at = m.at % (bytes.length + 1);
        if (m.kind === 'insert') bytes.splice(at, 0, m.byte);
        else if (m.kind === 'delete') bytes.splice(at, 1);
        else if (at < bytes.length) bytes[at] = m.byte;
      }
      bytes = bytes.slice(0, 50_000);
      const { items } = parseChunks(split(Uint8Array.from(bytes), cuts));
      if (mutations.length === 0) {
        assert.deepEqual(asJson(items), Array.from({ length: copies }, () => ({ kind: 'request', attributes: Object.entries(rcptRequest()) })));
      }
    }),
    { numRuns: 500 },
  );
});

test('property: an endless stream without LF stays within the line limit (memory is bounded)', () => {
  const p = new RequestParser({ maxLineLength: 8192, maxAttributes: 128 });
  let fatal = 0;
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  for (let i = 0; i < 160; i++) {
    // 10 MB in all
    fatal += p.push(chunk).filter((x) => x.kind === 'fatal').length;
    assert.ok(p.buffered <= 8193);
  }
  assert.equal(fatal, 1);
  // And an endless stream of short attribute lines ends at the attribute limit.
  const q = new RequestParser({ maxLineLength: 8192, maxAttributes: 128 });
  const lines = Buffer.from('x=y\n'.repeat(16_384));
  const items = [...q.push(lines), ...q.push(lines)];
  assert.deepEqual(items, [{ kind: 'fatal', problem: 'a request has more than 128 attribute lines' }]);
});
