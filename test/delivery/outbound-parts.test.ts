// The small pure parts of outbound delivery: CRLF normalisation across chunk boundaries, the
// routing table, the per-destination concurrency limit, queue filters and DSN status codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CrlfNormalizer } from '../../src/delivery/crlf.ts';
import { RouteTable } from '../../src/delivery/router.ts';
import { KeyedLimit } from '../../src/delivery/limit.ts';
import { dsnStatus } from '../../src/delivery/dsn.ts';
import { compileFilter, messageState } from '../../src/queue/filter.ts';
import type { Envelope } from '../../src/queue/envelope.ts';
import { hasBareLineEnding } from './sink.ts';

function normalize(chunks: string[]): string {
  const n = new CrlfNormalizer();
  return Buffer.concat([...chunks.map((c) => n.push(Buffer.from(c, 'latin1'))), n.end()]).toString('latin1');
}

test('crlf: bare LF and bare CR become CRLF, CRLF stays, a final line end is added', () => {
  assert.equal(normalize(['a\nb\r\nc\rd']), 'a\r\nb\r\nc\r\nd\r\n');
  assert.equal(normalize(['a\r', '\nb\r', 'c\r']), 'a\r\nb\r\nc\r\n');
  assert.equal(normalize(['\r\n\r\n']), '\r\n\r\n');
  assert.equal(normalize(['x\r\r\n']), 'x\r\n\r\n');
  assert.equal(normalize(['\n.\n']), '\r\n.\r\n');
  assert.equal(normalize([]), '');
  // Any split of any text gives the same bytes, and never a bare CR or LF.
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom('a', '.', '\r', '\n', 'é') }), fc.array(fc.nat(40), { maxLength: 6 }), (s, cuts) => {
      const points = [...new Set(cuts.map((c) => c % (s.length + 1)))].sort((a, b) => a - b);
      const chunks: string[] = [];
      let last = 0;
      for (const p of points) {
        chunks.push(s.slice(last, p));
        last = p;
      }
      chunks.push(s.slice(last));
      const out = normalize(chunks);
      assert.equal(out, normalize([s]));
      assert.equal(hasBareLineEnding(Buffer.from(out, 'latin1')), false);
      assert.equal(out.replace(/\r\n/g, '\n'), s.length === 0 ? '' : s.replace(/\r\n/g, '\n').replace(/\r/g, '\n').replace(/([^\n])$/, '$1\n'));
    }),
  );
});

test('routes: exact domain, then the nearest ".parent", then "*", else mx', () => {
  const r = new RouteTable({ 'example.com': 'smarthost:ses', '.example.com': 'local', '.mail.example.com': 'smarthost:office', '*': 'smarthost:ses', 'Partner.EXAMPLE': 'mx' });
  assert.equal(r.lookup('example.com'), 'smarthost:ses');
  assert.equal(r.lookup('a.example.com'), 'local');
  assert.equal(r.lookup('x.mail.example.com'), 'smarthost:office');
  assert.equal(r.lookup('mail.example.com'), 'local');
  assert.equal(r.lookup('partner.example.'), 'mx');
  assert.equal(r.lookup('elsewhere.org'), 'smarthost:ses');
  assert.equal(new RouteTable({}).lookup('elsewhere.org'), 'mx');
});

test('limit: at most n at once per key, keys independent, waiters served in order', async () => {
  const limit = new KeyedLimit(2);
  const running = new Map<string, number>();
  const peak = new Map<string, number>();
  const order: string[] = [];
  const job = (key: string, name: string) =>
    limit.run(key, async () => {
      running.set(key, (running.get(key) ?? 0) + 1);
      peak.set(key, Math.max(peak.get(key) ?? 0, running.get(key)!));
      await new Promise((r) => setTimeout(r, 10));
      order.push(name);
      running.set(key, running.get(key)! - 1);
    });
  await Promise.all([job('a', 'a1'), job('a', 'a2'), job('a', 'a3'), job('a', 'a4'), job('b', 'b1')]);
  assert.equal(peak.get('a'), 2);
  assert.equal(peak.get('b'), 1);
  assert.deepEqual(order.filter((n) => n.startsWith('a')).slice(2), ['a3', 'a4']);
  assert.equal(limit.active('a'), 0);
});

test('filters: sender, @domain, null sender, recipient, domain, age and state', () => {
  const env = (mailFrom: string, to: string, receivedAt: number): Envelope => ({
    id: '1k8fn2k50f5t0l8a1',
    receivedAt,
    mailFrom,
    recipients: [{ address: 'list@example.org', mailbox: to, transport: 'remote' }],
    client: { address: '192.0.2.1', listener: 'mx', sessionId: 's' },
    smtputf8: false,
    body: '7BIT',
    size: 10,
  });
  const now = 1_000_000;
  const a = env('Spammer@Bad.example', 'bob@far.example', now - 3_600_000);
  const b = env('', 'carol@near.example', now - 60_000);
  const deferred = [{ status: 'deferred' as const, attempts: 1, nextAttemptAt: now + 1 }];
  const pending = [{ status: 'pending' as const, attempts: 0 }];
  const m = (f: Parameters<typeof compileFilter>[0]) => [compileFilter(f, now)(a, deferred, false), compileFilter(f, now)(b, pending, true)];
  assert.deepEqual(m({ sender: 'spammer@bad.example' }), [true, false]);
  assert.deepEqual(m({ sender: '@BAD.example' }), [true, false]);
  assert.deepEqual(m({ sender: '<>' }), [false, true]);
  assert.deepEqual(m({ recipient: 'carol@near.example' }), [false, true]);
  assert.deepEqual(m({ recipient: 'list@example.org' }), [true, true]);
  assert.deepEqual(m({ domain: 'far.example' }), [true, false]);
  assert.deepEqual(m({ olderThanMs: 30 * 60_000 }), [true, false]);
  assert.deepEqual(m({ state: 'held' }), [false, true]);
  assert.deepEqual(m({ state: 'deferred', sender: '@bad.example' }), [true, false]);
  assert.deepEqual(m({}), [true, true]);
  assert.equal(messageState(pending, false), 'pending');
});

test('dsn status: the reply\'s enhanced code when of the right class; expiry is 5.4.7', () => {
  assert.equal(dsnStatus('failed', '550 5.1.1 No such user'), '5.1.1');
  assert.equal(dsnStatus('failed', '554 Message refused'), '5.0.0');
  assert.equal(dsnStatus('failed', '451 4.4.1 connect to x: ECONNREFUSED'), '5.4.7');
  // An unmet TLS requirement keeps its security status (RFC 8689 §6).
  assert.equal(dsnStatus('failed', '450 4.7.30 REQUIRETLS message not sent to x'), '5.7.30');
  assert.equal(dsnStatus('failed', '450 4.7.10 REQUIRETLS: no policy'), '5.7.10');
  assert.equal(dsnStatus('failed', '451 4.7.1 greylisted'), '5.4.7');
  assert.equal(dsnStatus('delayed', '451 4.4.1 connect to x: ECONNREFUSED'), '4.4.1');
  assert.equal(dsnStatus('delayed', '421 try later'), '4.0.0');
});
