// Reads the header fields at the top of a message: shared by the session (content checks at
// end of DATA) and delivery (DKIM signing domain, bounces). Pure, no I/O.

/** Unfolded header fields (RFC 5322 §2.2.3) as [name, value], in order. */
export function parseHeaderFields(block: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of block.toString('utf8').split(/\r?\n/)) {
    if (line === '') break;
    if (/^[ \t]/.test(line) && out.length > 0) {
      const last = out[out.length - 1]!;
      last[1] += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return out;
}
