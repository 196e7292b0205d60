// Outbound line endings: every bare LF and bare CR becomes CRLF (RFC 5321 §2.3.8: lines end with
// CRLF only), so no ambiguous line ending is passed on to the next hop (SMTP smuggling), and the
// bytes DKIM signs are the bytes that are sent. Works on chunks split anywhere.
import { LineEndingNormaliser } from '../core/line-endings.ts';

const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export class CrlfNormalizer {
  readonly #n = new LineEndingNormaliser();
  // The last byte handed out was LF (or nothing was handed out yet).
  #atLineStart = true;
  #any = false;

  /** The normalised bytes of `chunk` (a trailing CR is held back until the next byte is known). */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const parts = this.#n.push(chunk);
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (out.length > 0) {
      this.#any = true;
      this.#atLineStart = out[out.length - 1] === LF;
    }
    return out;
  }

  /** What is left at the end: a held-back CR, and a final CRLF if the message lacks one. */
  end(): Buffer {
    if (this.#n.end().length > 0) {
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
