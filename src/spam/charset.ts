// Byte-level decoding for message text: transfer encodings (quoted-printable, base64), charsets
// (through the WHATWG TextDecoder, which covers ISO-2022-JP, Shift_JIS, EUC-JP, GB18030, Big5,
// KOI8 and the Windows code pages) and RFC 2047 encoded words in header fields.

import { TextDecoder } from 'node:util';

const decoders = new Map<string, TextDecoder | null>();

// Labels seen in real mail that the WHATWG encoding list does not know, mapped to one it does.
const ALIASES: Readonly<Record<string, string>> = {
  'cp932': 'shift_jis',
  'x-ms-cp932': 'shift_jis',
  'shift-jis-2004': 'shift_jis',
  'iso-2022-jp-2': 'iso-2022-jp',
  'iso-2022-jp-3': 'iso-2022-jp',
  'iso-2022-jp-1': 'iso-2022-jp',
  'cp936': 'gbk',
  'ms936': 'gbk',
  'cp949': 'euc-kr',
  'ks_c_5601': 'euc-kr',
  'big5-hkscs': 'big5',
  'cp1250': 'windows-1250',
  'cp1251': 'windows-1251',
  'cp1252': 'windows-1252',
  'cp850': 'windows-1252',
  'cp437': 'windows-1252',
  'ansi_x3.4-1968': 'windows-1252',
  'ascii': 'windows-1252',
  'utf8': 'utf-8',
};

// No real encoding label is near this long (the WHATWG list's longest has 19 characters).
const MAX_LABEL = 64;

function decoderFor(charset: string): TextDecoder | null {
  const label = charset.trim().toLowerCase().replace(/^["']|["']$/g, '');
  // A message can name any string as its charset: a long one is unknown, and is not cached (a
  // cache keyed by 100 KB names would hold 256 of them, for good).
  if (label.length > MAX_LABEL) return null;
  let d = decoders.get(label);
  if (d !== undefined) return d;
  try {
    d = new TextDecoder(ALIASES[label] ?? label);
  } catch {
    d = null;
  }
  // Bounded: a message can name any string as its charset.
  if (decoders.size < 256) decoders.set(label, d);
  return d;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const cp1252 = new TextDecoder('windows-1252');

/** Text from bytes in `charset`; an unknown or missing charset is read as UTF-8 when the bytes
 * are valid UTF-8, else as Windows-1252 (what unlabelled 8-bit mail nearly always is). */
export function decodeBytes(bytes: Uint8Array, charset?: string): string {
  const d = charset ? decoderFor(charset) : null;
  if (d) {
    // us-ascii / iso-8859-1 labels map to windows-1252, which would turn valid UTF-8 (sent
    // mislabelled, as is common) into mojibake; prefer UTF-8 when the bytes are valid UTF-8.
    if (d.encoding === 'windows-1252' && hasHighBytes(bytes)) return utf8OrLatin(bytes);
    return d.decode(bytes);
  }
  return utf8OrLatin(bytes);
}

function hasHighBytes(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) return true;
  return false;
}

function utf8OrLatin(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return cp1252.decode(bytes);
  }
}

/** Bytes of a "binary string" (one char per byte, as from Buffer#toString('latin1')). */
export function latin1Bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** RFC 2045 §6.7 quoted-printable into bytes, lenient: a bad escape is kept as written. The
 * input is a binary string. One pass, no regular expressions: HTML spam escapes every "=". */
export function quotedPrintableBytes(s: string): Buffer {
  const out = Buffer.allocUnsafe(s.length);
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c !== 61 /* = */) {
      out[n++] = c;
      continue;
    }
    const hi = hexValue(s.charCodeAt(i + 1));
    const lo = hexValue(s.charCodeAt(i + 2));
    if (hi >= 0 && lo >= 0) {
      out[n++] = (hi << 4) | lo;
      i += 2;
      continue;
    }
    // Rule 5: a soft line break, "=" then optional blanks then the line end.
    let j = i + 1;
    while (j < len && (s.charCodeAt(j) === 32 || s.charCodeAt(j) === 9)) j++;
    if (s.charCodeAt(j) === 13 && s.charCodeAt(j + 1) === 10) i = j + 1;
    else if (s.charCodeAt(j) === 10) i = j;
    else if (j >= len) i = j;
    else out[n++] = 61;
  }
  return out.subarray(0, n);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Quoted-printable, binary string in and out (for encoded words). */
export function decodeQuotedPrintable(s: string): string {
  return s.indexOf('=') < 0 ? s : quotedPrintableBytes(s).toString('latin1');
}

/** RFC 2045 §6.8 base64 into bytes; characters outside the alphabet are skipped (Node's decoder
 * ignores them), so line breaks and stray spaces do no harm. */
export function base64Bytes(s: string): Buffer {
  return Buffer.from(s, 'base64');
}

/** Base64 into a binary string (for encoded words). */
export function decodeBase64(s: string): string {
  return base64Bytes(s).toString('latin1');
}

// RFC 2047 §2: =?charset?encoding?encoded-text?= (an RFC 2231 *language suffix is allowed).
const ENCODED_WORD = /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=/g;

/** A header field value (binary string) as text: encoded words decoded, whitespace between two
 * adjacent encoded words dropped (RFC 2047 §6.2), raw 8-bit bytes read as UTF-8 or Windows-1252. */
export function decodeHeaderValue(raw: string): string {
  if (raw.indexOf('=?') < 0) return hasHighChars(raw) ? utf8OrLatin(latin1Bytes(raw)) : raw;
  let out = '';
  let last = 0;
  let prevWasWord = false;
  // Consecutive words of one charset are joined as bytes before decoding: a multi-byte
  // character (or an ISO-2022-JP escape sequence) may be split across two words.
  let pendingCharset = '';
  let pending = '';
  const flush = (): void => {
    if (pending) out += decodeBytes(latin1Bytes(pending), pendingCharset);
    pending = '';
  };
  for (const m of raw.matchAll(ENCODED_WORD)) {
    const between = raw.slice(last, m.index);
    const [, charset = '', enc = '', text = ''] = m;
    if (!(prevWasWord && /^[ \t\r\n]*$/.test(between))) {
      flush();
      out += hasHighChars(between) ? utf8OrLatin(latin1Bytes(between)) : between;
    }
    const bytes = enc === 'b' || enc === 'B' ? decodeBase64(text) : decodeQuotedPrintable(text.replace(/_/g, ' '));
    // Stateful ISO-2022 words each carry their own escapes; joined, the escapes would collide.
    if (pending && (pendingCharset.toLowerCase() !== charset.toLowerCase() || /^iso-2022/i.test(charset))) flush();
    pendingCharset = charset;
    pending += bytes;
    last = m.index + m[0].length;
    prevWasWord = true;
  }
  flush();
  const tail = raw.slice(last);
  return out + (hasHighChars(tail) ? utf8OrLatin(latin1Bytes(tail)) : tail);
}

function hasHighChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return true;
  return false;
}
