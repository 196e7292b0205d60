// Unit tests of the engine's pure parts: the DATA decoder (end marker, dot-unstuffing, bare
// line endings, any chunking), the BDAT line-ending tracker, MAIL/RCPT argument parsing and SASL.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DataDecoder, LineEndingTracker } from '../../src/ingress/smtp/framing.ts';
import { parseBdatArgs, parsePathAndParams, splitCommand } from '../../src/ingress/smtp/command.ts';
import { collectCredentials, decodeBase64, parsePlain } from '../../src/ingress/smtp/sasl.ts';
import type { SmtpReply } from '../../src/core/reply.ts';

/** Feeds `input` to a decoder in pieces cut at `cuts`; returns body, consumed total and flags. */
function decode(input: Buffer, cuts: number[] = []): { body: string; consumed: number; done: boolean; bareCr: boolean; bareLf: boolean } {
  const dec = new DataDecoder();
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of [...points, input.length]) {
    pieces.push(input.subarray(from, p));
    from = p;
  }
  const out: Buffer[] = [];
  let consumed = 0;
  for (const piece of pieces) {
    if (piece.length === 0) continue;
    const r = dec.decode(piece);
    out.push(...r.parts);
    consumed += r.consumed;
    if (r.done) return { body: Buffer.concat(out).toString('latin1'), consumed, done: true, bareCr: dec.bareCr, bareLf: dec.bareLf };
  }
  return { body: Buffer.concat(out).toString('latin1'), consumed, done: false, bareCr: dec.bareCr, bareLf: dec.bareLf };
}

describe('DATA decoder', () => {
  it('ends at CRLF.CRLF, keeps the final CRLF and leaves what follows', () => {
    const r = decode(Buffer.from('Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n'));
    assert.deepEqual(r, { body: 'Subject: x\r\n\r\nhello\r\n', consumed: 24, done: true, bareCr: false, bareLf: false });
  });

  it('an empty body is just the end marker', () => {
    assert.deepEqual(decode(Buffer.from('.\r\n')), { body: '', consumed: 3, done: true, bareCr: false, bareLf: false });
  });

  it('removes one leading dot (RFC 5321 §4.5.2)', () => {
    assert.equal(decode(Buffer.from('..\r\n...x\r\n.y\r\nz.\r\n.\r\n')).body, '.\r\n..x\r\ny\r\nz.\r\n');
    assert.equal(decode(Buffer.from('.\rX\r\n.\r\n')).body, '\rX\r\n');
  });

  for (const fake of ['\n.\n', '\n.\r\n', '\r\n.\n', '\r.\r\n']) {
    it(`does not end at ${JSON.stringify(fake)} (SMTP smuggling)`, () => {
      const input = Buffer.from(`a${fake}MAIL FROM:<x@y>\r\n.\r\n`);
      const r = decode(input);
      assert.equal(r.done, true);
      assert.equal(r.consumed, input.length);
      const expected = `a${fake === '\r\n.\n' ? '\r\n\n' : fake}MAIL FROM:<x@y>\r\n`;
      assert.equal(r.body, expected);
      assert.equal(r.bareLf || r.bareCr, true);
    });
  }

  it('notes bare LF and bare CR separately', () => {
    assert.deepEqual([decode(Buffer.from('a\nb\r\n.\r\n')).bareLf, decode(Buffer.from('a\nb\r\n.\r\n')).bareCr], [true, false]);
    assert.deepEqual([decode(Buffer.from('a\rb\r\n.\r\n')).bareLf, decode(Buffer.from('a\rb\r\n.\r\n')).bareCr], [false, true]);
    const clean = decode(Buffer.from('a\r\nb\r\n.\r\n'));
    assert.deepEqual([clean.bareLf, clean.bareCr], [false, false]);
  });

  it('gives the same result however the input is split', () => {
    const alphabet = fc.constantFrom('a', '.', '\r', '\n', '\r\n', '.\r\n', '\r\n.\r\n', '\r\n..', 'é');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 8 }), (tokens, cuts) => {
        const input = Buffer.from(tokens.join(''), 'latin1');
        assert.deepEqual(decode(input, cuts), decode(input));
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips any body through dot-stuffing', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', '.', 'b', ' ', '..', '\r\n'), { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 6 }), (tokens, cuts) => {
        // Normalise to a CRLF-terminated body, as a client would send it.
        let body = tokens.join('').replace(/\r(?!\n)/g, '').replace(/(?<!\r)\n/g, '');
        if (!body.endsWith('\r\n')) body += '\r\n';
        const stuffed = body.replace(/(^|\r\n)\./g, '$1..');
        const r = decode(Buffer.from(`${stuffed}.\r\nNEXT`, 'latin1'), cuts);
        assert.equal(r.done, true);
        assert.equal(r.body, body);
        assert.equal(r.consumed, stuffed.length + 3);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('BDAT line-ending tracker', () => {
  const track = (...chunks: string[]): [boolean, boolean] => {
    const t = new LineEndingTracker();
    for (const c of chunks) t.scan(Buffer.from(c));
    t.finish();
    return [t.bareCr, t.bareLf];
  };
  it('sees CRLF split across chunks as clean', () => assert.deepEqual(track('a\r', '\nb\r\n'), [false, false]));
  it('sees a bare LF at a chunk start', () => assert.deepEqual(track('a', '\nb'), [false, true]));
  it('sees a bare CR before a chunk boundary', () => assert.deepEqual(track('a\r', 'b'), [true, false]));
  it('sees a trailing CR at the end of the body', () => assert.deepEqual(track('a\r'), [true, false]));
});

describe('MAIL/RCPT arguments', () => {
  const ok = (arg: string, kw: 'FROM' | 'TO' = 'FROM'): { path: string; params: Record<string, string | true> } => {
    const r = parsePathAndParams(arg, kw);
    assert.ok(r.ok, `expected ${JSON.stringify(arg)} to parse`);
    return { path: r.value.path, params: Object.fromEntries(r.value.params) };
  };
  it('splits path and parameters, upper-casing keys', () => {
    assert.deepEqual(ok('FROM:<a@b.example> size=100 Body=8BITMIME SMTPUTF8'), { path: '<a@b.example>', params: { SIZE: '100', BODY: '8BITMIME', SMTPUTF8: true } });
    assert.deepEqual(ok('from:<>'), { path: '<>', params: {} });
    assert.deepEqual(ok('TO:<u@test.example>', 'TO'), { path: '<u@test.example>', params: {} });
  });
  it('tolerates one space after the colon', () => assert.equal(ok('FROM: <a@b.example>').path, '<a@b.example>'));
  it('keeps quoted local parts with spaces and > intact', () => {
    assert.deepEqual(ok('FROM:<"a b>c"@x.org> SIZE=5'), { path: '<"a b>c"@x.org>', params: { SIZE: '5' } });
    assert.equal(ok('FROM:<"a\\"> b"@x.org>').path, '<"a\\"> b"@x.org>');
  });
  it('accepts a bare path without brackets', () => assert.equal(ok('FROM:a@b.example').path, 'a@b.example'));
  it('refuses malformed arguments', () => {
    for (const bad of ['', 'FROM', 'TO:<a@b>', 'FROM:<a@b', 'FROM:<a@b>x', 'FROM:<a@b> =x', 'FROM:<a@b> SIZE=', 'FROM:<a@b> SIZE=1 SIZE=2', 'FROM:  <a@b>', 'FROM:']) {
      assert.equal(parsePathAndParams(bad, 'FROM').ok, false, bad);
    }
  });
  it('splits commands', () => {
    assert.deepEqual(splitCommand('mail FROM:<a@b>'), { verb: 'MAIL', arg: 'FROM:<a@b>' });
    assert.deepEqual(splitCommand('QUIT'), { verb: 'QUIT', arg: '' });
  });
  it('parses BDAT arguments', () => {
    assert.deepEqual(parseBdatArgs('100'), { size: 100, last: false });
    assert.deepEqual(parseBdatArgs('0 last'), { size: 0, last: true });
    for (const bad of ['', '-1', '1 2', '1 LAST x', 'x', '1  LAST', '1234567890123456']) assert.equal(parseBdatArgs(bad), undefined, bad);
  });
});

describe('SASL', () => {
  it('decodes strict base64 only', () => {
    assert.equal(decodeBase64('YWJj')?.toString(), 'abc');
    assert.equal(decodeBase64('=')?.length, 0);
    for (const bad of ['YWJ', 'YW!j', 'YWJj\r', 'Y===']) assert.equal(decodeBase64(bad), undefined, bad);
  });
  it('parses PLAIN messages', () => {
    assert.deepEqual(parsePlain(Buffer.from('\0alice\0pw')), { authzid: '', username: 'alice', password: 'pw' });
    assert.deepEqual(parsePlain(Buffer.from('admin\0alice\0pw')), { authzid: 'admin', username: 'alice', password: 'pw' });
    for (const bad of ['alice\0pw', '\0\0pw', '\0alice\0', '\0a\0b\0c']) assert.equal(parsePlain(Buffer.from(bad)), undefined, JSON.stringify(bad));
  });
  it('runs the LOGIN exchange and honours "*"', async () => {
    const prompts: string[] = [];
    const io = (answers: Array<string | null>) => ({
      challenge: async (p: string): Promise<string | SmtpReply | null> => {
        prompts.push(p);
        return answers.shift() ?? null;
      },
    });
    const r = await collectCredentials(io([Buffer.from('alice').toString('base64'), Buffer.from('pw').toString('base64')]), 'LOGIN', undefined);
    assert.deepEqual(r, { kind: 'credentials', mechanism: 'LOGIN', username: 'alice', password: 'pw', authzid: '' });
    assert.deepEqual(prompts, ['VXNlcm5hbWU6', 'UGFzc3dvcmQ6']);
    const cancelled = await collectCredentials(io(['*']), 'PLAIN', undefined);
    assert.ok(cancelled.kind === 'reply');
    assert.equal(cancelled.reply.code, 501);
    const gone = await collectCredentials(io([null]), 'PLAIN', undefined);
    assert.deepEqual(gone, { kind: 'gone' });
  });
});
