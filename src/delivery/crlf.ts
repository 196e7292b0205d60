// Outbound line endings: every bare LF and bare CR becomes CRLF (RFC 5321 §2.3.8: lines end with
// CRLF only), so no ambiguous line ending is passed on to the next hop (SMTP smuggling), and the
// bytes DKIM signs are the bytes that are sent. Works on chunks split anywhere.
const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export class CrlfNormalizer {
  // A CR at the end of the previous chunk: whether it is bare depends on the next byte.
  #pendingCr = false;
  // The last byte handed out was LF (or nothing was handed out yet).
  #atLineStart = true;
  #any = false;

  /** The normalised bytes of `chunk` (a trailing CR is held back until the next byte is known). */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const parts: Buffer[] = [];
    let start = 0;
    let i = 0;
    if (this.#pendingCr) {
      this.#pendingCr = false;
      parts.push(CRLF);
      // A CRLF split across chunks: its LF was already written above.
      if (chunk[0] === LF) start = i = 1;
    }
    for (; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === LF) {
        // A bare LF (a CRLF's LF is skipped below, together with its CR).
        if (i > start) parts.push(chunk.subarray(start, i));
        parts.push(CRLF);
        start = i + 1;
      } else if (c === CR) {
        if (i > start) parts.push(chunk.subarray(start, i));
        if (i + 1 === chunk.length) {
          this.#pendingCr = true;
          start = i + 1;
        } else {
          // CRLF stays as it is; a bare CR becomes CRLF.
          parts.push(CRLF);
          start = chunk[i + 1] === LF ? i + 2 : i + 1;
          if (chunk[i + 1] === LF) i++;
        }
      }
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (out.length > 0) {
      this.#any = true;
      this.#atLineStart = out[out.length - 1] === LF;
    }
    return out;
  }

  /** What is left at the end: a held-back CR, and a final CRLF if the message lacks one. */
  end(): Buffer {
    if (this.#pendingCr) {
      this.#pendingCr = false;
      this.#atLineStart = true;
      return CRLF;
    }
    // RFC 5322 §2.1: a message is lines, each ending in CRLF.
    if (this.#any && !this.#atLineStart) {
      this.#atLineStart = true;
      return CRLF;
    }
    return Buffer.alloc(0);
  }
}

/** Normalises a stream of message bytes; errors of `source` pass through. */
export async function* normalizeLineEndings(source: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  const n = new CrlfNormalizer();
  for await (const chunk of source) {
    const out = n.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    if (out.length > 0) yield out;
  }
  const tail = n.end();
  if (tail.length > 0) yield tail;
}
