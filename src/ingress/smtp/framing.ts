// Message-body framing: the streaming DATA decoder (end marker detection and dot-unstuffing,
// RFC 5321 §4.1.1.4 and §4.5.2) and a line-ending tracker for BDAT bodies (RFC 3030); both work
// on chunks split at arbitrary byte boundaries (the normaliser is core/line-endings.ts).

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CR_BUF = Buffer.from([CR]);

// Decoder states. Only a real CRLF starts a new line, so that only <CRLF>.<CRLF> ends the
// message: <LF>.<LF>, <LF>.<CRLF>, <CRLF>.<LF> and <CR>.<CRLF> are body bytes (SMTP smuggling).
const START = 0; // at the start of a line (after CRLF, or at the start of the body)
const MID = 1; // inside a line
const AFTER_CR = 2; // the last byte was a CR (already emitted) inside a line
const DOT_AT_START = 3; // a '.' at the start of a line (withheld)
const DOT_CR = 4; // '.' then CR at the start of a line (both withheld)

export interface DecodeResult {
  /** Unstuffed body bytes from this chunk, as zero-copy slices where possible. */
  readonly parts: Buffer[];
  /** Bytes of the input chunk that belong to the body (incl. the end marker when `done`). */
  readonly consumed: number;
  /** The end marker was found; bytes after `consumed` are the next commands. */
  readonly done: boolean;
}

/** Streaming decoder for one DATA body. Feed it chunks until `done`. */
export class DataDecoder {
  private state = START;
  bareCr = false;
  bareLf = false;

  decode(c: Buffer): DecodeResult {
    const parts: Buffer[] = [];
    const len = c.length;
    let p = 0;
    let seg = 0; // start of the current run of bytes to emit
    let nextCr = -1;
    let nextLf = -1;
    let state = this.state;
    while (p < len) {
      switch (state) {
        case START:
          if (c[p] === DOT) {
            if (p > seg) parts.push(c.subarray(seg, p));
            p++;
            seg = p;
            state = DOT_AT_START;
          } else {
            state = MID;
          }
          break;
        case DOT_AT_START:
          if (c[p] === CR) {
            p++;
            seg = p; // withhold the CR until we know whether LF follows
            state = DOT_CR;
          } else {
            // RFC 5321 §4.5.2: a leading dot followed by other characters is deleted.
            state = MID;
          }
          break;
        case DOT_CR:
          if (c[p] === LF) {
            // The end marker. Body bytes before the '.' were emitted already.
            this.state = START;
            return { parts, consumed: p + 1, done: true };
          }
          // The withheld CR is a bare CR in the body; the dot stays deleted.
          parts.push(CR_BUF);
          this.bareCr = true;
          seg = p;
          state = MID;
          break;
        case AFTER_CR:
          if (c[p] === LF) {
            p++;
            state = START;
          } else {
            this.bareCr = true;
            state = MID;
          }
          break;
        default: {
          // MID: jump to the next CR or LF with indexOf instead of walking bytes.
          if (nextCr < p && nextCr !== len) {
            nextCr = c.indexOf(CR, p);
            if (nextCr === -1) nextCr = len;
          }
          if (nextLf < p && nextLf !== len) {
            nextLf = c.indexOf(LF, p);
            if (nextLf === -1) nextLf = len;
          }
          if (nextLf < nextCr) {
            // An LF with no CR before it (state MID means the previous byte was not a CR).
            this.bareLf = true;
            p = nextLf + 1;
          } else if (nextCr < len) {
            if (nextCr + 1 === len) {
              p = len;
              state = AFTER_CR;
            } else if (c[nextCr + 1] === LF) {
              p = nextCr + 2;
              state = START;
            } else {
              this.bareCr = true;
              p = nextCr + 1;
            }
          } else {
            p = len;
          }
        }
      }
    }
    if (seg < len && state !== DOT_AT_START && state !== DOT_CR) parts.push(c.subarray(seg, len));
    this.state = state;
    return { parts, consumed: len, done: false };
  }
}

/** Notes bare CR / bare LF in raw BDAT chunks, across chunk boundaries. */
export class LineEndingTracker {
  private lastWasCr = false;
  bareCr = false;
  bareLf = false;

  scan(c: Buffer): void {
    if (c.length === 0) return;
    if (this.lastWasCr && c[0] !== LF) this.bareCr = true;
    if (!this.bareLf) {
      for (let i = c.indexOf(LF); i !== -1; i = c.indexOf(LF, i + 1)) {
        const prevIsCr = i > 0 ? c[i - 1] === CR : this.lastWasCr;
        if (!prevIsCr) {
          this.bareLf = true;
          break;
        }
      }
    }
    if (!this.bareCr) {
      for (let i = c.indexOf(CR); i !== -1 && i + 1 < c.length; i = c.indexOf(CR, i + 1)) {
        if (c[i + 1] !== LF) {
          this.bareCr = true;
          break;
        }
      }
    }
    this.lastWasCr = c[c.length - 1] === CR;
  }

  /** At the end of the body a trailing CR is bare too. */
  finish(): void {
    if (this.lastWasCr) this.bareCr = true;
    this.lastWasCr = false;
  }
}

