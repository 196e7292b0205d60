// A small reader of .zip archives held in memory, enough for the one-file archives DMARC
// reporters attach (RFC 7489 §7.2.1.1): the central directory (APPNOTE.TXT §4.3.12, §4.3.16) names
// each entry, stored (method 0) or deflated (method 8) data is returned, and everything else —
// encryption, ZIP64, other methods, data past the limit — is refused with a reason. The output
// limit is given to zlib itself, so a decompression bomb stops at `maxBytes`, not after it.
// Chosen over a dependency in docs/decisions/0035-dmarc-report-reading.md.
import { crc32, inflateRawSync } from 'node:zlib';

export class ZipError extends Error {
  override readonly name = 'ZipError';
}

export interface ZipEntry {
  readonly name: string;
  readonly data: Buffer;
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function eocdOffset(buf: Buffer): number {
  // The end record is 22 bytes plus a comment of at most 65535.
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === EOCD) return i;
  }
  throw new ZipError('not a zip archive (no end of central directory record)');
}

/** The entries of a zip archive, at most `maxEntries` of them and `maxBytes` of data in all. */
export function readZip(buf: Buffer, limits: { readonly maxBytes: number; readonly maxEntries?: number }): ZipEntry[] {
  const maxEntries = limits.maxEntries ?? 16;
  if (buf.length < 22) throw new ZipError('not a zip archive (too short)');
  const end = eocdOffset(buf);
  const count = buf.readUInt16LE(end + 10);
  const cdOffset = buf.readUInt32LE(end + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new ZipError('ZIP64 archives are not read');
  if (count > maxEntries) throw new ZipError(`${count} entries (at most ${maxEntries} are read)`);
  const out: ZipEntry[] = [];
  let total = 0;
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== CENTRAL) throw new ZipError('the central directory is damaged');
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    const compSize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    p += 46 + nameLen + extraLen + commentLen;
    if (name.endsWith('/')) continue;
    if (flags & 1) throw new ZipError(`${name}: encrypted entries are not read`);
    if (size > limits.maxBytes - total) throw new ZipError(`${name}: ${size} bytes uncompressed, over the limit of ${limits.maxBytes - total}`);
    if (local + 30 > buf.length || buf.readUInt32LE(local) !== LOCAL) throw new ZipError(`${name}: the local header is damaged`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    if (start + compSize > buf.length) throw new ZipError(`${name}: the data runs past the end of the archive`);
    const raw = buf.subarray(start, start + compSize);
    let data: Buffer;
    if (method === 0) data = Buffer.from(raw);
    else if (method === 8) {
      try {
        // The declared size may lie: zlib stops at the real budget whatever the header says.
        data = inflateRawSync(raw, { maxOutputLength: Math.max(1, limits.maxBytes - total) });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new ZipError(code === 'ERR_BUFFER_TOO_LARGE' ? `${name}: inflates past the limit of ${limits.maxBytes - total} bytes` : `${name}: cannot inflate (${code ?? String(err)})`);
      }
    } else throw new ZipError(`${name}: compression method ${method} is not read (only stored and deflate)`);
    if (data.length !== size) throw new ZipError(`${name}: ${data.length} bytes, the directory says ${size}`);
    if (crc32(data) !== crc) throw new ZipError(`${name}: the CRC-32 does not match (damaged)`);
    total += data.length;
    out.push({ name, data });
  }
  return out;
}
