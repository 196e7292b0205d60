// Bare LF and bare CR made CRLF (RFC 5321 §2.3.8: lines end with CRLF only), on chunks split
// anywhere: for inbound mail under limits.bareLineEndings: normalise, and for every message on its
// way out (delivery/crlf.ts), so no ambiguous line ending reaches the spool or the next hop.
const CR = 0x0d;
const LF = 0x0a;
const CRLF_BUF = Buffer.from([CR, LF]);

/** Makes every bare LF and bare CR a CRLF; a CR at a chunk's end waits for the next byte. */
export class LineEndingNormaliser {
  // A CR at the end of the last chunk: bare or not depends on the next byte.
  private pendingCr = false;

  /** The normalised bytes of `c`, as slices of it where possible (a trailing CR is held back). */
  push(c: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (c.length === 0) return out;
    let seg = 0;
    let i = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      out.push(CRLF_BUF);
      // The LF of a CRLF split across chunks went out with the CR.
      if (c[0] === LF) seg = i = 1;
    }
    for (;;) {
      const cr = c.indexOf(CR, i);
      const lf = c.indexOf(LF, i);
      if (cr === -1 && lf === -1) break;
      if (lf !== -1 && (cr === -1 || lf < cr)) {
        // A bare LF (a CRLF's LF is passed over with its CR below).
        if (lf > seg) out.push(c.subarray(seg, lf));
        out.push(CRLF_BUF);
        seg = i = lf + 1;
      } else if (cr + 1 === c.length) {
        if (cr > seg) out.push(c.subarray(seg, cr));
        this.pendingCr = true;
        seg = i = c.length;
      } else if (c[cr + 1] === LF) {
        i = cr + 2; // a real CRLF stays in the run
      } else {
        if (cr > seg) out.push(c.subarray(seg, cr));
        out.push(CRLF_BUF);
        seg = i = cr + 1;
      }
    }
    if (seg < c.length) out.push(c.subarray(seg));
    return out;
  }

  /** At the end of the body: a held-back CR is a bare one. */
  end(): Buffer[] {
    if (!this.pendingCr) return [];
    this.pendingCr = false;
    return [CRLF_BUF];
  }
}
