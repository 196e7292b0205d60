// Frames the Postfix policy delegation protocol (SMTPD_POLICY_README): `name=value` lines ending
// with an empty line. Works on bytes, keeps at most one partial line, and never throws: whatever
// arrives becomes a request, a malformed request (answerable), or a fatal framing error (close).

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
// Postfix sends lower-case names with underscores (client_address, ccert_pubkey_fingerprint).
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// Postfix never sends control characters; NUL and friends mean binary data on the socket.
const CONTROL_RE = /[\x00-\x08\x0a-\x1f\x7f]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

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

  /** Feeds bytes; returns the items they complete, in order. */
  push(chunk: Buffer): ParsedItem[] {
    const out: ParsedItem[] = [];
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
      let line = this.partial.length === 0 ? chunk.subarray(start, lf) : Buffer.concat([...this.partial, chunk.subarray(start, lf)]);
      this.partial = [];
      this.partialLength = 0;
      start = lf + 1;
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      if (line.length > this.limits.maxLineLength) {
        out.push(this.fail(`a line is longer than ${this.limits.maxLineLength} bytes`));
        break;
      }
      const item = this.line(line);
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

  private line(line: Buffer): ParsedItem | undefined {
    if (line.length === 0) {
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
    let text: string;
    try {
      text = utf8.decode(line);
    } catch {
      this.problem = `attribute line ${this.lines} is not valid UTF-8 (binary data?)`;
      return undefined;
    }
    if (CONTROL_RE.test(text)) {
      this.problem = `attribute line ${this.lines} holds control characters (binary data?)`;
      return undefined;
    }
    const eq = text.indexOf('=');
    const name = eq < 0 ? text : text.slice(0, eq);
    if (eq < 0 || !NAME_RE.test(name)) {
      this.problem = `attribute line ${this.lines} is not name=value`;
      return undefined;
    }
    if (this.attributes.has(name)) {
      // Postfix sends each attribute once; a second copy (e.g. of sasl_username) is not ours to pick from.
      this.problem = `the attribute ${name} appears twice`;
      return undefined;
    }
    this.attributes.set(name, text.slice(eq + 1));
    return undefined;
  }

  private fail(problem: string): ParsedItem {
    this.dead = true;
    this.partial = [];
    this.partialLength = 0;
    this.attributes = new Map();
    return { kind: 'fatal', problem };
  }
}
