// The pipeline runner's rules: order decides, the first decisive verdict wins, scores add up,
// a throwing or slow check defers (never passes), warn-only placements decide nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runStage, type PlacedCheck } from '../../src/pipeline/runner.ts';
import type { Answer, StageHandlers } from '../../src/pipeline/check.ts';
import { pass, permit, reject, defer, discard, score, type Verdict } from '../../src/core/verdict.ts';
import { perm, temp } from '../../src/core/reply.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { Writable } from 'node:stream';
import { pino } from 'pino';

const session = { id: 's1', listener: 'mx', listenerKind: 'mx' as const, clientAddress: '192.0.2.1', clientPort: 1, tls: false };
const place = (name: string, connect: () => Answer, extra: Partial<PlacedCheck> = {}): PlacedCheck => ({
  name,
  mode: 'enforce',
  timeoutMs: 1000,
  canPermit: false,
  handlers: { connect } satisfies StageHandlers,
  ...extra,
});
const run = (checks: PlacedCheck[]) => runStage('connect', checks, { session }, (h, ctx) => h.connect?.(ctx), silentLogger());
const no = perm('5.7.1', 'no');

test('runner: no checks → pass', async () => {
  const out = await run([]);
  assert.equal(out.verdict.kind, 'pass');
  assert.equal(out.score, 0);
});

test('runner: the first decisive verdict wins, later checks are not asked', async () => {
  let asked = false;
  const out = await run([
    place('a', async () => pass()),
    place('b', async () => reject(no, 'b says no')),
    place('c', async () => {
      asked = true;
      return permit('c');
    }),
  ]);
  assert.deepEqual(out.verdict, { kind: 'reject', reply: no, reason: 'b says no' });
  assert.equal(out.check, 'b');
  assert.equal(asked, false);
});

test('runner: defer and discard are decisive too', async () => {
  const d = temp('4.7.1', 'later');
  assert.equal((await run([place('a', async () => defer(d, 'x')), place('b', async () => reject(no, 'y'))])).check, 'a');
  assert.equal((await run([place('a', async () => discard('x')), place('b', async () => reject(no, 'y'))])).verdict.kind, 'discard');
});

test('runner: scores add up and headers are collected; the list goes on', async () => {
  const out = await run([place('a', async () => score(2.5, 'R1', ['X-A: 1'])), place('b', async () => pass(['X-B: 2'])), place('c', async () => score(1, 'R2'))]);
  assert.equal(out.verdict.kind, 'pass');
  assert.equal(out.score, 3.5);
  assert.deepEqual(out.rules, ['R1=2.5', 'R2=1']);
  assert.deepEqual(out.headers, ['X-A: 1', 'X-B: 2']);
});

test('runner: a check that throws defers with 451, never passes', async () => {
  const out = await run([
    place('boom', async () => {
      throw new Error('database gone');
    }),
    place('after', async () => permit('should not matter'), { canPermit: true }),
  ]);
  assert.equal(out.verdict.kind, 'defer');
  assert.equal(out.check, 'boom');
  assert.ok(out.verdict.kind === 'defer' && out.verdict.reply.code === 451 && out.verdict.reply.enhanced === '4.7.1');
  assert.match(out.verdict.kind === 'defer' ? out.verdict.reason : '', /database gone/);
});

test('runner: a check past its deadline defers and is aborted', async () => {
  let aborted = false;
  const slow: PlacedCheck = {
    name: 'slow',
    mode: 'enforce',
    timeoutMs: 50,
    canPermit: false,
    handlers: {
      connect: (ctx) =>
        new Promise<Verdict>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = true;
          });
          setTimeout(() => resolve(pass()), 2000).unref();
        }),
    },
  };
  const out = await run([slow]);
  assert.equal(out.verdict.kind, 'defer');
  assert.equal(out.check, 'slow');
  assert.equal(aborted, true);
});

test('runner: permit only from a check declared able to permit', async () => {
  const denied = await run([place('sneaky', async () => permit('I say so')), place('b', async () => reject(no, 'no'))]);
  assert.equal(denied.verdict.kind, 'reject');
  const allowed = await run([place('auth', async () => permit('login'), { canPermit: true }), place('b', async () => reject(no, 'no'))]);
  assert.deepEqual(allowed.verdict, { kind: 'permit', reason: 'login' });
});

test('runner: warn-only placements decide nothing, even when they fail', async () => {
  const out = await run([
    place('w1', async () => reject(no, 'would reject'), { mode: 'warn' }),
    place('w2', async () => {
      throw new Error('x');
    }, { mode: 'warn' }),
    place('real', async () => pass()),
  ]);
  assert.equal(out.verdict.kind, 'pass');
});

test('runner: checks without a handler for the stage are skipped', async () => {
  const out = await runStage('helo', [place('a', async () => reject(no, 'x'))], { session }, (h, ctx) => h.helo?.(ctx, 'x'), silentLogger());
  assert.equal(out.verdict.kind, 'pass');
});

// A check that answers `verdict` after `ms`, unless its signal aborts first (then it never answers).
const after = (ms: number, verdict: Verdict, seen?: (signal: AbortSignal) => void) => (ctx: { signal: AbortSignal }) =>
  new Promise<Verdict>((resolve) => {
    seen?.(ctx.signal);
    const t = setTimeout(() => resolve(verdict), ms);
    t.unref();
    ctx.signal.addEventListener('abort', () => clearTimeout(t), { once: true });
  });

function memoryLog(): { log: ReturnType<typeof silentLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

test('runner: each check keeps its own deadline, even when an earlier check had a longer one', async () => {
  const { log, lines } = memoryLog();
  // "short" answers after 400 ms but may take only 30: if the stage's timer kept the first
  // check's 5 s, "short" would pass.
  const out = await runStage(
    'connect',
    [place('long', async () => pass(), { timeoutMs: 5000 }), { ...place('short', async () => pass()), timeoutMs: 30, handlers: { connect: after(400, pass()) } }],
    { session },
    (h, ctx) => h.connect?.(ctx),
    log,
  );
  assert.equal(out.verdict.kind, 'defer');
  assert.equal(out.check, 'short');
  assert.equal(out.verdict.kind === 'defer' && out.verdict.reason, 'check short failed: no answer within 30 ms');
  const failed = lines.filter((l) => l.event === 'check-failed');
  assert.deepEqual(failed.map((l) => [l.check, l.stage, l.timeout, l.err]), [['short', 'connect', true, 'no answer within 30 ms']]);
});

test('runner: a later check with a longer deadline is not cut short by an earlier one', async () => {
  // "first" may take 30 ms and answers at once; "second" answers after 120 ms within its 2 s.
  const out = await run([place('first', async () => pass(), { timeoutMs: 30 }), { ...place('second', async () => pass()), timeoutMs: 2000, handlers: { connect: after(120, reject(no, 'second says no')) } }]);
  assert.deepEqual(out.verdict, { kind: 'reject', reply: no, reason: 'second says no' });
  assert.equal(out.check, 'second');
});

test('runner: after a warn-only check times out, the next check gets a signal that is not aborted', async () => {
  const signals: AbortSignal[] = [];
  const out = await run([
    { ...place('slow-warn', async () => pass()), mode: 'warn', timeoutMs: 30, handlers: { connect: after(2000, pass(), (s) => signals.push(s)) } },
    place('next', async () => reject(no, 'next says no')),
    { ...place('last', async () => pass()), handlers: { connect: after(0, score(1, 'R'), (s) => signals.push(s)) } },
  ]);
  assert.deepEqual([out.verdict.kind, out.check], ['reject', 'next']);
  const out2 = await run([
    { ...place('slow-warn', async () => pass()), mode: 'warn', timeoutMs: 30, handlers: { connect: after(2000, pass(), (s) => signals.push(s)) } },
    { ...place('last', async () => pass()), handlers: { connect: after(0, score(1, 'R'), (s) => signals.push(s)) } },
  ]);
  assert.deepEqual([out2.verdict.kind, out2.score], ['pass', 1]);
  assert.deepEqual(signals.map((s) => s.aborted), [true, true, false]);
  // The aborted signal says why, without a DOMException.
  const reason: unknown = signals[0]!.reason;
  assert.ok(reason instanceof Error && !(reason instanceof DOMException));
  assert.equal(reason.message, 'no answer within 30 ms');
});

test('runner: the client going away aborts the running check', async () => {
  const client = new AbortController();
  let seen: AbortSignal | undefined;
  const pending = runStage(
    'connect',
    [{ ...place('waits', async () => pass()), timeoutMs: 100, handlers: { connect: after(2000, pass(), (s) => (seen = s)) } }],
    { session },
    (h, ctx) => h.connect?.(ctx),
    silentLogger(),
    client.signal,
  );
  assert.equal(seen?.aborted, false);
  client.abort(new Error('client closed the connection'));
  assert.equal(seen?.aborted, true);
  assert.equal((seen?.reason as Error).message, 'client closed the connection');
  // The check never answers once aborted; its deadline still ends the stage, with a defer.
  const out = await pending;
  assert.deepEqual([out.verdict.kind, out.check], ['defer', 'waits']);
});

test('runner: a check that first looks at its signal after the client went away sees it aborted', async () => {
  const client = new AbortController();
  client.abort(new Error('client closed the connection'));
  let seen: AbortSignal | undefined;
  const out = await runStage(
    'connect',
    [place('looks-late', async () => pass()), { ...place('reads', async () => pass()), handlers: { connect: after(0, pass(), (s) => (seen = s)) } }],
    { session },
    (h, ctx) => h.connect?.(ctx),
    silentLogger(),
    client.signal,
  );
  assert.equal(out.verdict.kind, 'pass');
  assert.equal(seen?.aborted, true);
  assert.equal((seen?.reason as Error).message, 'client closed the connection');
});

test('runner: a check that keeps failing is logged at warn once, then at debug, and once more when it answers again', async () => {
  const { log, lines } = memoryLog();
  let broken = true;
  const flaky = place('flaky', async () => {
    if (broken) throw new Error('clamd is down');
    return pass();
  });
  const once = () => runStage('connect', [flaky], { session }, (h, ctx) => h.connect?.(ctx), log);
  for (let i = 0; i < 3; i++) assert.equal((await once()).verdict.kind, 'defer');
  const failed = lines.filter((l) => l.event === 'check-failed');
  assert.deepEqual(failed.map((l) => l.level), [40, 20, 20]);
  broken = false;
  assert.equal((await once()).verdict.kind, 'pass');
  assert.equal((await once()).verdict.kind, 'pass');
  const recovered = lines.filter((l) => l.event === 'check-recovered');
  assert.equal(recovered.length, 1);
  assert.equal(recovered[0]!.failures, 3);
  // A new failure after the recovery is news again.
  broken = true;
  await once();
  assert.deepEqual(lines.filter((l) => l.event === 'check-failed').map((l) => l.level), [40, 20, 20, 40]);
});

test('runner: checks that answer at once (no promise) follow the same rules, mixed with asynchronous ones', async () => {
  const order: string[] = [];
  const out = await run([
    place('a', () => (order.push('a'), score(1, 'R1'))),
    place('b', async () => (order.push('b'), pass(['X-B: 1']))),
    place('c', () => (order.push('c'), reject(no, 'c says no'))),
    place('d', () => (order.push('d'), pass())),
  ]);
  assert.deepEqual(order, ['a', 'b', 'c']);
  assert.equal(out.check, 'c');
  assert.equal(out.score, 1);
  assert.deepEqual(out.headers, ['X-B: 1']);
  // A synchronous throw defers as an asynchronous one does; a warn-only one decides nothing.
  const thrown = await run([
    place('w', () => {
      throw new Error('boom');
    }, { mode: 'warn' }),
    place('t', () => {
      throw new Error('bang');
    }),
  ]);
  assert.equal(thrown.verdict.kind, 'defer');
  assert.equal(thrown.check, 't');
  assert.match(thrown.verdict.kind === 'defer' ? thrown.verdict.reason : '', /check t failed: bang/);
});
