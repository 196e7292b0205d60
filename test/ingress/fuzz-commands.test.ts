// Fuzzing the SMTP engine's command handling (fast-check) against a real listener on loopback:
// random and mutated command sequences, junk arguments, NUL bytes, bare CR/LF, over-long lines,
// pipelined batches split at random points, DATA/BDAT mid-state, AUTH with junk base64,
// STARTTLS after pipelined commands. The server must never crash, must answer only well-formed
// reply lines, must not grow its memory, and must serve a fresh client correctly afterwards.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import fc from 'fast-check';
import { dial } from '../harness/dial.ts';
import { selfSignedContext, serve, type ServeOptions, type Served } from './fixture.ts';
import { collector } from '../harness/gc.ts';

let dir: string;
let ctx: tls.SecureContext;

before(async () => {
  dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'mailward-fuzz-'));
  ctx = selfSignedContext(dir);
});
after(() => fs.promises.rm(dir, { recursive: true, force: true }));

const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64');
/** Scripts are binary strings (one char per byte); Unicode text goes in as its UTF-8 bytes. */
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

// ---- generators ---------------------------------------------------------------------------

/** Argument text (a binary string): printable, Unicode as UTF-8, raw bytes (NUL, CR, LF
 * included), fixed oddities, very long. */
const junk: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ maxLength: 40 }), weight: 4 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }).map(utf8), weight: 2 },
  { arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')), weight: 3 },
  {
    arbitrary: fc.constantFrom('', ' ', '\0', '\r', '\n', '\r\n', '\r\n.\r\n', '\n.\n', '<>', '<@a,@b:u@test.example>', '<"a b>c"@test.example>', '=', '*', '<u@test.example', 'u@[127.0.0.1]', '%00', '\x7f\xff'),
    weight: 3,
  },
  { arbitrary: fc.integer({ min: 500, max: 20_000 }).map((n) => 'A'.repeat(n)), weight: 1 },
);

const mailParam = fc.constantFrom('', ' SIZE=100', ' SIZE=99999999999999', ' SIZE=x', ' BODY=8BITMIME', ' BODY=BINARYMIME', ' BODY=7BIT', ' BODY=junk', ' SMTPUTF8', ' AUTH=<>', ' FOO=bar', ' RET=HDRS', '  ', ' =');
const address = fc.oneof(fc.constantFrom('<s@sender.example>', '<u@test.example>', '<x@elsewhere.example>', '<>', '<Gr\xc3\xbc\xc3\x9fe@test.example>', '<postmaster>'), junk.map((j) => `<${j}>`), junk);
const eol = fc.oneof({ arbitrary: fc.constant('\r\n'), weight: 12 }, { arbitrary: fc.constantFrom('\n', '\r', '', '\r\r\n', '\n\r'), weight: 1 });

/** A message body for DATA: random lines, smuggling look-alikes, with or without the real end. */
const dataBody = fc
  .tuple(fc.array(fc.oneof(junk, fc.constantFrom('.', '..', '.\r', 'Subject: x', '')), { maxLength: 8 }), fc.constantFrom('\r\n.\r\n', '\r\n.\r\n', '\n.\n', '\r\n.\n', '\n.\r\n', ''))
  .map(([lines, end]) => lines.join('\r\n') + end);

/** BDAT with a chunk of the declared size, or of the wrong size (the rest is read as commands). */
const bdat = fc
  .tuple(fc.nat({ max: 300 }), fc.boolean(), fc.integer({ min: -20, max: 20 }), fc.uint8Array({ maxLength: 320 }))
  .map(([size, last, skew, bytes]) => {
    const body = Buffer.from(bytes).toString('latin1').padEnd(size, 'b').slice(0, Math.max(0, size + skew));
    return `BDAT ${size}${last ? ' LAST' : ''}\r\n${body}`;
  });

/** A whole transaction that gets as far as the message (unless a step before broke the state). */
const transaction = fc
  .tuple(mailParam, fc.oneof(dataBody.map((b) => `DATA\r\n${b}`), bdat, fc.tuple(bdat, bdat).map(([a, b]) => a + b)))
  .map(([p, msg]) => `MAIL FROM:<s@sender.example>${p}\r\nRCPT TO:<u@test.example>\r\n${msg}`);

/** One step of a dialogue, as the bytes the client sends. */
const step: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: transaction, weight: 4 },
  { arbitrary: fc.tuple(fc.constantFrom('EHLO', 'HELO', 'ehlo'), fc.oneof(fc.constant('client.example'), junk), eol).map(([v, a, e]) => `${v} ${a}${e}`), weight: 4 },
  { arbitrary: fc.tuple(address, mailParam, eol).map(([a, p, e]) => `MAIL FROM:${a}${p}${e}`), weight: 4 },
  { arbitrary: fc.tuple(address, fc.constantFrom('', ' NOTIFY=NEVER', ' x'), eol).map(([a, p, e]) => `RCPT TO:${a}${p}${e}`), weight: 5 },
  { arbitrary: fc.tuple(fc.constantFrom('DATA\r\n', 'DATA x\r\n', 'data\n'), dataBody).map(([c, b]) => c + b), weight: 3 },
  { arbitrary: bdat, weight: 3 },
  { arbitrary: fc.constantFrom('BDAT\r\n', 'BDAT x\r\n', 'BDAT -1\r\n', 'BDAT 99999999\r\nshort', 'BDAT 0 LAST\r\n', 'BDAT 5 last\r\nhello'), weight: 1 },
  { arbitrary: fc.tuple(fc.constantFrom('RSET', 'NOOP', 'VRFY', 'EXPN', 'HELP', 'rset', 'noop'), fc.oneof(fc.constant(''), junk.map((j) => ` ${j}`)), eol).map(([v, a, e]) => v + a + e), weight: 4 },
  {
    arbitrary: fc.oneof(
      junk.map((j) => `AUTH PLAIN ${j}\r\n`),
      fc.constant(`AUTH PLAIN ${b64('\0alice\0correct horse')}\r\n`),
      fc.tuple(junk, junk).map(([u, p]) => `AUTH LOGIN\r\n${u}\r\n${p}\r\n`),
      fc.tuple(junk, junk).map(([u, p]) => `AUTH LOGIN\r\n${b64(u)}\r\n${b64(p)}\r\n`),
      junk.map((j) => `AUTH PLAIN\r\n${j}\r\n`),
      fc.constantFrom('AUTH\r\n', 'AUTH CRAM-MD5\r\n', 'AUTH PLAIN a b c\r\n', 'AUTH LOGIN\r\n*\r\n', `AUTH LOGIN ${b64('alice')}\r\n=\r\n`),
    ),
    weight: 3,
  },
  { arbitrary: fc.tuple(fc.constantFrom('STARTTLS', 'STARTTLS x', 'starttls'), eol).map(([v, e]) => v + e), weight: 1 },
  { arbitrary: fc.tuple(fc.stringMatching(/^[A-Z]{1,8}$/), junk, eol).map(([v, a, e]) => `X${v} ${a}${e}`), weight: 2 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('latin1')), weight: 2 },
  { arbitrary: fc.constantFrom('QUIT\r\n', 'GET / HTTP/1.1\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', '\r\n', '\0\r\n'), weight: 1 },
);

/** How a script starts: often with a greeting (and a login) so that later steps go deep. */
const opening = fc.constantFrom('', 'EHLO client.example\r\n', 'EHLO client.example\r\n', `EHLO client.example\r\nAUTH PLAIN ${b64('\0alice\0correct horse')}\r\n`);

/** A whole script: steps, and where its bytes are cut into separate writes. */
const script = fc.record({
  steps: fc.tuple(opening, fc.array(step, { minLength: 1, maxLength: 20 })).map(([o, rest]) => [o, ...rest]),
  cuts: fc.array(fc.nat(), { maxLength: 6 }),
});

// ---- the client ---------------------------------------------------------------------------

interface Run {
  /** Everything the server sent, as latin1 text. */
  readonly output: string;
  /** The server closed within the allowed time. */
  readonly closed: boolean;
}

const READY_TLS = '220 2.0.0 Ready to start TLS\r\n';

/**
 * Sends the bytes in pieces (giving the server a turn between them), half-closes, and reads
 * until the server closes. After "220 Ready to start TLS" the stream would be TLS's, so the
 * client hangs up there.
 */
async function play(port: number, data: Buffer, cuts: readonly number[]): Promise<Run> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined); // resets after the server closed are expected
  let output = '';
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  socket.on('data', (d: Buffer) => {
    output += d.toString('latin1');
    if (output.includes(READY_TLS)) socket.destroy();
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve).once('close', resolve));
  const points = [...new Set(cuts.map((c) => (data.length === 0 ? 0 : c % data.length)))].sort((a, b) => a - b);
  let from = 0;
  for (const p of [...points, data.length]) {
    if (socket.destroyed) break;
    if (p > from) socket.write(data.subarray(from, p));
    from = Math.max(from, p);
    await new Promise((r) => setImmediate(r));
  }
  if (!socket.destroyed) socket.end();
  const ok = await closed;
  socket.destroy();
  return { output, closed: ok };
}

/**
 * Checks the server's output: every line "ddd" + space or hyphen + text + CRLF (RFC 5321 §4.2),
 * no longer than 512 octets (§4.5.3.1.5), continuation lines of one reply with one code, an
 * enhanced code in the class of the basic code (RFC 3463), the greeting first. Returns the replies.
 */
function checkReplies(output: string): string[] {
  const ready = output.indexOf(READY_TLS);
  const plain = ready === -1 ? output : output.slice(0, ready + READY_TLS.length);
  assert.ok(plain.length === 0 || plain.endsWith('\r\n'), `output does not end with CRLF: ${JSON.stringify(plain.slice(-80))}`);
  const lines = plain.length === 0 ? [] : plain.slice(0, -2).split('\r\n');
  const replies: string[] = [];
  let open: string | undefined;
  for (const line of lines) {
    assert.match(line, /^[2-5][0-9]{2}[ -][^\r\n]*$/, `malformed reply line ${JSON.stringify(line.slice(0, 120))}`);
    assert.ok(line.length + 2 <= 512, `reply line of ${line.length + 2} octets`);
    const code = line.slice(0, 3);
    if (open !== undefined) assert.equal(code, open, `multi-line reply changes its code: ${JSON.stringify(line)}`);
    const enhanced = /^[0-9]{3}[ -]([2-5])\.[0-9]{1,3}\.[0-9]{1,3} /.exec(line);
    if (enhanced) assert.equal(enhanced[1], code[0], `enhanced code of another class: ${JSON.stringify(line)}`);
    if (line[3] === '-') {
      open = code;
    } else {
      open = undefined;
      replies.push(code);
    }
  }
  assert.equal(open, undefined, 'the last reply is unfinished');
  if (replies.length > 0) assert.match(replies[0]!, /^(220|421|554)$/);
  return replies;
}

/** Checks the server side of every session so far and forgets them (bounded test memory). */
async function drainSessions(srv: Served): Promise<void> {
  for (const h of srv.handlers) {
    let timer: NodeJS.Timeout | undefined;
    const reason = await Promise.race([h.closed, new Promise<string>((r) => (timer = setTimeout(() => r('<still open>'), 5000)))]);
    clearTimeout(timer);
    assert.notEqual(reason, '<still open>', 'a session never ended');
    const broken = h.events.filter((e) => e.event === 'engine-error' || e.event === 'handler-error');
    assert.deepEqual(broken, [], `engine error in session closed with "${reason}"`);
  }
  srv.handlers.length = 0;
}

/** A full, correct dialogue, to show the server is still in order. */
async function freshClientWorks(srv: Served): Promise<void> {
  const d = await dial(srv.port, { timeoutMs: 5000 });
  try {
    await d.expect('220 mx.test ESMTP Mailward\r\n');
    await d.say('EHLO fresh.example').expect('250-mx.test\r\n');
    await d.say('MAIL FROM:<s@sender.example>').expect('250 2.1.0 Sender OK\r\n');
    await d.say('RCPT TO:<u@test.example>').expect('250 2.1.5 Recipient OK\r\n');
    await d.say('DATA').expect('354 ');
    d.send('Subject: fresh\r\n\r\nstill fine\r\n.\r\n');
    await d.expect(/^250 2\.0\.0 Ok: queued as Q1\r\n$/);
    await d.say('QUIT').expect('221 2.0.0 Bye\r\n');
    await d.closed();
  } finally {
    d.close();
  }
  const h = srv.handlers.at(-1)!;
  assert.equal(await h.closed, 'quit');
  assert.equal(h.messages[0]?.body.toString(), 'Subject: fresh\r\n\r\nstill fine\r\n');
}

// ---- the properties -----------------------------------------------------------------------

describe('fuzzing the SMTP command handling', () => {
  const uncaught: unknown[] = [];
  const record = (err: unknown): void => void uncaught.push(err);
  before(() => {
    process.on('uncaughtException', record);
    process.on('unhandledRejection', record);
  });
  after(() => {
    process.off('uncaughtException', record);
    process.off('unhandledRejection', record);
  });

  // Deep sessions (many bad commands allowed), AUTH and STARTTLS on, small messages.
  const fuzzProtocol = (): ServeOptions['protocol'] => ({ tls: ctx, auth: true, authWithoutTls: true, maxBadCommands: 50, commandTimeoutMs: 2000, dataTimeoutMs: 3000, maxMessageSize: 4096 });

  it('random and mutated sessions: no crash, only well-formed replies, every session ends', async (t) => {
    const srv = await serve(t, { protocol: fuzzProtocol() });
    let sessions = 0;
    await fc.assert(
      fc.asyncProperty(script, async ({ steps, cuts }) => {
        const run = await play(srv.port, Buffer.from(steps.join(''), 'latin1'), cuts);
        assert.ok(run.closed, 'the server did not close after the client half-closed');
        const replies = checkReplies(run.output);
        assert.ok(replies.length >= 1, 'not even a greeting');
        sessions++;
        await drainSessions(srv);
      }),
      { numRuns: 1500, endOnFailure: true },
    );
    assert.equal(sessions, 1500);
    assert.deepEqual(uncaught, []);
    await freshClientWorks(srv);
    await drainSessions(srv);
    for (let i = 0; i < 100 && srv.listener.connections() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(srv.listener.connections(), 0);
  });

  it('pipelined batches of simple commands: exactly one reply each, in order', async (t) => {
    const srv = await serve(t, { protocol: { maxBadCommands: 1000 } });
    // Commands whose reply does not depend on state, with what they must get.
    const simple = fc.oneof(
      fc.tuple(fc.constant('NOOP'), fc.oneof(fc.constant(''), junk.map((j) => ` ${j.replace(/[\r\n]/g, '')}`))).map(([v, a]) => [v + a, '250'] as const),
      fc.constant(['RSET', '250'] as const),
      fc.constant(['HELP', '214'] as const),
      fc.constant(['EXPN x', '502'] as const),
      junk.filter((j) => j.replace(/[\r\n]/g, '').length > 0).map((j) => [`VRFY ${j.replace(/[\r\n]/g, '')}`, '252'] as const),
      fc.tuple(fc.stringMatching(/^[A-Z]{1,8}$/), junk).map(([v, a]) => [`X${v} ${a.replace(/[\r\n]/g, '')}`, '500'] as const),
      fc.constant(['RCPT TO:<u@test.example>', '503'] as const),
      fc.constant(['DATA', '503'] as const),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(simple, { minLength: 1, maxLength: 40 }), fc.array(fc.nat(), { maxLength: 5 }), async (cmds, cuts) => {
        // Over-long lines get 500 5.5.6, which is what an unknown command gets too.
        const expected = cmds.map(([line, code]) => (Buffer.byteLength(line, 'latin1') + 2 > 512 ? '500' : code));
        const data = Buffer.from(cmds.map(([line]) => `${line}\r\n`).join('') + 'QUIT\r\n', 'latin1');
        const run = await play(srv.port, data, cuts);
        assert.ok(run.closed);
        assert.deepEqual(checkReplies(run.output), ['220', ...expected, '221']);
        await drainSessions(srv);
      }),
      { numRuns: 300, endOnFailure: true },
    );
    await freshClientWorks(srv);
  });

  it('keeps at most one line of input: a 16 MB line without LF gets one 500 and the session goes on', async (t) => {
    const srv = await serve(t, { protocol: { maxLineLength: 512 } });
    const d = await dial(srv.port, { timeoutMs: 5000 });
    t.after(() => d.close());
    await d.expect('220 ');
    const piece = Buffer.alloc(1024 * 1024, 0x41);
    for (let i = 0; i < 16; i++) d.send(piece);
    await d.expect('500 5.5.6 Line too long\r\n');
    d.send('\r\nNOOP\r\n');
    await d.expect('250 2.0.0 OK\r\n');
    await d.say('QUIT').expect('221 ');
    await drainSessions(srv);
  });

  it('does not grow the heap over many fuzzed sessions', async (t) => {
    const gc = collector();
    if (!gc) return t.skip('no garbage collector available to measure the heap');
    const srv = await serve(t, { protocol: fuzzProtocol() });
    const runs = async (n: number, seed: number): Promise<void> => {
      await fc.assert(
        fc.asyncProperty(script, async ({ steps, cuts }) => {
          const run = await play(srv.port, Buffer.from(steps.join(''), 'latin1'), cuts);
          assert.ok(run.closed);
          await drainSessions(srv);
        }),
        { numRuns: n, seed, endOnFailure: true },
      );
    };
    const heap = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    await runs(60, 1); // warm up: code compiled, pools filled
    const before = heap();
    await runs(300, 2);
    const grown = heap() - before;
    // 200 sessions that each held a few KB would show as a few MB; a leak of buffered input or
    // of whole sessions (sockets, timers, handlers) would be far more.
    assert.ok(grown < 8 * 1024 * 1024, `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB over 300 sessions`);
    await freshClientWorks(srv);
  });
});
