// The header block of a stored message, read without the body: for the From domain that picks the
// DKIM key, and for the original headers a bounce quotes. Reading stops at the blank line.
import type { Readable } from 'node:stream';
import addressparser from 'nodemailer/lib/addressparser';

/** Header blocks longer than this are cut (at a line end): a bounce need not quote more. */
export const HEADER_LIMIT = 256 * 1024;

/**
 * The bytes up to and including the blank line that ends the header block (or up to `limit`,
 * cut at the last line end). Destroys `body` once it has read enough.
 */
export async function readHeaderBlock(body: Readable, limit = HEADER_LIMIT): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const b = chunk as Buffer;
      parts.push(b);
      size += b.length;
      const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      const end = headerEnd(all);
      if (end !== -1) return all.subarray(0, end);
      if (size >= limit) {
        const cut = all.subarray(0, limit);
        const nl = cut.lastIndexOf(0x0a);
        return nl === -1 ? cut : cut.subarray(0, nl + 1);
      }
      if (parts.length > 1) parts.splice(0, parts.length, all);
    }
  } finally {
    body.destroy();
  }
  // No blank line: the whole message is header.
  return Buffer.concat(parts);
}

/** Offset just after the blank line ending the header block (CRLF CRLF or LF LF), or -1. */
function headerEnd(b: Buffer): number {
  // A message that starts with the blank line has no header fields.
  if (b[0] === 0x0a) return 1;
  if (b[0] === 0x0d && b[1] === 0x0a) return 2;
  const crlf = b.indexOf('\r\n\r\n');
  const lf = b.indexOf('\n\n');
  const ends = [crlf === -1 ? -1 : crlf + 4, lf === -1 ? -1 : lf + 2].filter((x) => x !== -1);
  return ends.length === 0 ? -1 : Math.min(...ends);
}

export { parseHeaderFields } from '../core/headers.ts';

/** The domain of the (first) From header address, lower-case; undefined when there is none. */
export function fromDomain(fields: ReadonlyArray<readonly [string, string]>): string | undefined {
  const from = fields.find(([name]) => name.toLowerCase() === 'from');
  if (!from) return undefined;
  for (const a of addressparser(from[1], { flatten: true })) {
    const addr = a.address ?? '';
    const at = addr.lastIndexOf('@');
    if (at > 0 && at < addr.length - 1) return addr.slice(at + 1).toLowerCase().replace(/\.$/, '');
  }
  return undefined;
}
