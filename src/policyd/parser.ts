// Frames the Postfix policy delegation protocol (SMTPD_POLICY_README): `name=value` lines ending
// with an empty line. Works on bytes, keeps at most one partial line, and never throws: whatever
// arrives becomes a request, a malformed request (answerable), or a fatal framing error (close).
import { isUtf8 } from 'node:buffer';

export interface ParserLimits {
  /** Longest line in bytes, without its LF; a longer one is fatal. */
  readonly maxLineLength: number;
  /** Most attribute lines in one request; one more is fatal. */
  readonly maxAttributes: number;
}

export type ParsedItem =
  /** A complete request. Unknown attributes are kept; the reader ignores them. */
  | { readonly kind: 'request'; readonly attributes: ReadonlyMap<string, string> }
  /** A request that ended with its empty line but cannot be read. The framing held, so it can be
   *  answered and the connection kept. */
  | { readonly kind: 'invalid'; readonly problem: string }
  /** The framing broke (a line or request too long, an empty request): answer once, then close.
   *  Nothing after it is parsed. */
  | { readonly kind: 'fatal'; readonly problem: string };

const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;
const EQUALS = 0x3d;
const MAX_NAME = 64;
// Postfix sends lower-case names with underscores (client_address, ccert_pubkey_fingerprint):
// A-Z a-z 0-9 _ . - are allowed in a name, by byte.
const NAME_BYTE = new Uint8Array(256);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-') NAME_BYTE[ch.charCodeAt(0)] = 1;

export class RequestParser {
  private partial: Buffer[] = [];
  private partialLength = 0;
  private attributes = new Map<string, string>();
  private lines = 0;
  private problem: string | undefined;
  private dead = false;

  constructor(private readonly limits: ParserLimits) {}

  /** Bytes held for an unfinished line (never more than maxLineLength). */
  get buffered(): number {
    return this.partialLength;
  }

  /** True once a fatal item was returned; the caller should close after answering. */
  get closed(): boolean {
    return this.dead;
  }

  /** Feeds bytes; appends the items they complete, in order, to `out` (a new array by default) and returns it. */
  push(chunk: Buffer, out: ParsedItem[] = []): ParsedItem[] {
    let start = 0;
    while (!this.dead && start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf < 0 ? chunk.length : lf;
      if (this.partialLength + (end - start) > this.limits.maxLineLength + 1) {
        // +1: a CR before the LF is tolerated and stripped below.
        out.push(this.fail(`a line is longer than ${this.limits.maxLineLength} bytes`));
        break;
      }
      if (lf < 0) {
        // A copy, so a few bytes left over never pin a whole socket chunk in memory.
        this.partial.push(Buffer.from(chunk.subarray(start)));
        this.partialLength += chunk.length - start;
        break;
      }
      // The line is read in place (offsets into the chunk), unless it began in an earlier chunk.
      let buf = chunk;
      let from = start;
      let to = lf;
      if (this.partial.length > 0) {
        buf = Buffer.concat([...this.partial, chunk.subarray(start, lf)]);
        from = 0;
        to = buf.length;
        this.partial = [];
        this.partialLength = 0;
      }
      start = lf + 1;
      if (to > from && buf[to - 1] === CR) to--;
      if (to - from > this.limits.maxLineLength) {
        out.push(this.fail(`a line is longer than ${this.limits.maxLineLength} bytes`));
        break;
      }
      const item = this.line(buf, from, to);
      if (item) out.push(item);
    }
    return out;
  }

  /** The peer closed. Returns what was cut off, if anything (for the log). */
  end(): string | undefined {
    if (this.dead) return undefined;
    this.dead = true;
    if (this.lines > 0 || this.partialLength > 0) return `the connection closed inside a request (${this.lines} attribute line(s) without the empty line that ends a request)`;
    return undefined;
  }

  private line(buf: Buffer, from: number, to: number): ParsedItem | undefined {
    if (to === from) {
      // An empty line with no request before it would be answered, and every later answer
      // would then belong to the request before it: never let answers slip out of step.
      if (this.lines === 0) return this.fail('an empty line where a request should start');
      const item: ParsedItem = this.problem === undefined ? { kind: 'request', attributes: this.attributes } : { kind: 'invalid', problem: this.problem };
      this.attributes = new Map();
      this.lines = 0;
      this.problem = undefined;
      return item;
    }
    this.lines++;
    if (this.lines > this.limits.maxAttributes) return this.fail(`a request has more than ${this.limits.maxAttributes} attribute lines`);
    if (this.problem !== undefined) return undefined; // keep reading to the empty line, storing nothing
    // One pass over the bytes instead of a decode and two regular expressions per line: Postfix
    // sends ASCII, so UTF-8 is decoded (and validated) only for a line that holds other bytes.
    let high = false;
    let control = false;
    let eq = -1;
    for (let i = from; i < to; i++) {
      const b = buf[i]!;
      if (b >= 0x80) high = true;
      else if ((b < 0x20 && b !== TAB) || b === 0x7f) control = true;
      else if (b === EQUALS && eq < 0) eq = i;
    }
    if (high && !isUtf8(buf.subarray(from, to))) {
      this.problem = `attribute line ${this.lines} is not valid UTF-8 (binary data?)`;
      return undefined;
    }
    // NUL and friends mean binary data on the socket; Postfix never sends control characters.
    if (control) {
      this.problem = `attribute line ${this.lines} holds control characters (binary data?)`;
      return undefined;
    }
    if (!this.isName(buf, from, eq)) {
      this.problem = `attribute line ${this.lines} is not name=value`;
      return undefined;
    }
    const name = buf.toString('latin1', from, eq);
    if (this.attributes.has(name)) {
      // Postfix sends each attribute once; a second copy (e.g. of sasl_username) is not ours to pick from.
      this.problem = `the attribute ${name} appears twice`;
      return undefined;
    }
    this.attributes.set(name, buf.toString(high ? 'utf8' : 'latin1', eq + 1, to));
    return undefined;
  }

  /** The bytes before the first '=' are a name: 1 to 64 of A-Z a-z 0-9 _ . - */
  private isName(buf: Buffer, from: number, eq: number): boolean {
    if (eq <= from || eq - from > MAX_NAME) return false;
    for (let i = from; i < eq; i++) if (NAME_BYTE[buf[i]!] !== 1) return false;
    return true;
  }

  private fail(problem: string): ParsedItem {
    this.dead = true;
    this.partial = [];
    this.partialLength = 0;
    this.attributes = new Map();
    return { kind: 'fatal', problem };
  }
}
