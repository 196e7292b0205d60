// A small, fast MIME reader for scoring (RFC 5322 header fields, RFC 2045/2046 bodies): header
// fields unfolded and decoded, multipart trees walked, text parts decoded from their transfer
// encoding and charset, HTML turned into text. Attachments are listed but never decoded.
import { base64Bytes, decodeBytes, decodeHeaderValue, latin1Bytes, quotedPrintableBytes } from './charset.ts';
import { htmlToText } from './html.ts';

export interface MimePart {
  /** Lower-case media type, e.g. "text/plain"; "text/plain" when the part has none. */
  readonly type: string;
  readonly charset?: string;
  /** Lower-case Content-Transfer-Encoding ("7bit" when absent). */
  readonly encoding: string;
  readonly filename?: string;
  /** Size of the part's body as transmitted, in bytes. */
  readonly size: number;
}

export interface ParsedMessage {
  /** Top-level header fields in order: name as written, value unfolded and decoded. */
  readonly headers: ReadonlyArray<readonly [name: string, value: string]>;
  /** Every part of the tree, multipart containers included, in document order. */
  readonly parts: readonly MimePart[];
  /** Decoded text of the text/plain parts. */
  readonly plain: string;
  /** Visible text of the text/html parts. */
  readonly html: string;
  readonly hasPlain: boolean;
  readonly hasHtml: boolean;
  /** Link targets found in HTML parts (URLs in plain text are found by the tokenizer). */
  readonly links: readonly string[];
  readonly images: number;
  /** The header block and body as binary strings (one char per byte), for hashing. */
  readonly rawHead: string;
  readonly rawBody: string;
}

export interface ParseOptions {
  /** Bytes of the message looked at; the rest (large attachments, mostly) is ignored. Default 512 KiB. */
  readonly maxBytes?: number;
}

const MAX_DEPTH = 8;
const MAX_PARTS = 64;
const MAX_TEXT = 256 * 1024;
const MAX_FIELD = 8 * 1024;

/** The first value of a header field, by case-insensitive name. */
export function header(msg: Pick<ParsedMessage, 'headers'>, name: string): string | undefined {
  const want = name.toLowerCase();
  for (const [n, v] of msg.headers) if (n.toLowerCase() === want) return v;
  return undefined;
}

export function headerAll(msg: Pick<ParsedMessage, 'headers'>, name: string): string[] {
  const want = name.toLowerCase();
  const out: string[] = [];
  for (const [n, v] of msg.headers) if (n.toLowerCase() === want) out.push(v);
  return out;
}

/** Splits a message into its header block and body (binary strings); drops an mbox "From " line. */
export function splitMessage(raw: Buffer | string, maxBytes = Infinity): { head: string; body: string } {
  let s = typeof raw === 'string' ? raw : raw.toString('latin1', 0, Math.min(raw.length, maxBytes));
  if (typeof raw === 'string' && s.length > maxBytes) s = s.slice(0, maxBytes);
  // An mbox separator line ("From sender date") is not a header field (RFC 4155).
  if (s.startsWith('From ')) {
    const nl = s.indexOf('\n');
    s = nl < 0 ? '' : s.slice(nl + 1);
  }
  return splitHeadBody(s);
}

function splitHeadBody(s: string): { head: string; body: string } {
  // RFC 5322 §2.1: the header ends at the first empty line (bare LF tolerated).
  if (s.startsWith('\r\n')) return { head: '', body: s.slice(2) };
  if (s.startsWith('\n')) return { head: '', body: s.slice(1) };
  const m = /\r?\n\r?\n/.exec(s);
  if (!m) return { head: s, body: '' };
  return { head: s.slice(0, m.index), body: s.slice(m.index + m[0].length) };
}

/** Header fields of a header block (binary string): RFC 5322 §2.2.3 unfolding, values raw. */
export function parseHeaderBlock(head: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of head.split(/\r?\n/)) {
    if (line.length === 0) continue;
    const c0 = line.charCodeAt(0);
    if (c0 === 32 || c0 === 9) {
      const last = out.at(-1);
      if (last) last[1] += line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // not a field; a damaged header is read as far as it goes
    out.push([line.slice(0, colon).trim(), line.slice(colon + 1)]);
  }
  return out;
}

interface ContentType {
  type: string;
  params: Map<string, string>;
}

/** RFC 2045 §5.1 Content-Type with its parameters (RFC 2231 continuations joined). */
export function parseContentType(value: string | undefined): ContentType {
  const params = new Map<string, string>();
  if (!value) return { type: 'text/plain', params };
  const semi = value.indexOf(';');
  const typePart = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const type = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(typePart) ? typePart : 'text/plain';
  if (semi >= 0) {
    const re = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
    for (const m of value.slice(semi).matchAll(re)) {
      const name = (m[1] ?? '').toLowerCase();
      let v = (m[2] ?? '').trim();
      if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
      // RFC 2231 §3/§4: name*0, name*1 … and name*=charset'lang'%XX.
      const base = name.replace(/\*(\d+)?\*?$/, '');
      if (name.endsWith('*') && /^[^']*'[^']*'/.test(v)) {
        const [cs = '', , enc = ''] = v.split("'");
        v = decodeBytes(latin1Bytes(enc.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))), cs || undefined);
      }
      params.set(base, (base !== name ? (params.get(base) ?? '') : '') + v);
    }
  }
  return { type, params };
}

class Collector {
  readonly parts: MimePart[] = [];
  plain: string[] = [];
  html: string[] = [];
  links: string[] = [];
  images = 0;
  hasPlain = false;
  hasHtml = false;
  textBudget = MAX_TEXT;
}

export function parseMessage(raw: Buffer | string, opts: ParseOptions = {}): ParsedMessage {
  const { head, body } = splitMessage(raw, opts.maxBytes ?? 512 * 1024);
  const rawFields = parseHeaderBlock(head);
  // No honest field is this long; the cap keeps every later pattern over a value cheap.
  const headers = rawFields.map(([n, v]) => [n, decodeHeaderValue(v.length > MAX_FIELD ? v.slice(0, MAX_FIELD) : v).trim()] as const);
  const c = new Collector();
  walk(rawFields, body, c, 0, 'text/plain');
  return {
    headers,
    parts: c.parts,
    plain: c.plain.join('\n'),
    html: c.html.join('\n'),
    hasPlain: c.hasPlain,
    hasHtml: c.hasHtml,
    links: c.links,
    images: c.images,
    rawHead: head,
    rawBody: body,
  };
}

function fieldOf(fields: ReadonlyArray<readonly [string, string]>, name: string): string | undefined {
  for (const [n, v] of fields) if (n.toLowerCase() === name) return v;
  return undefined;
}

function walk(fields: ReadonlyArray<readonly [string, string]>, body: string, c: Collector, depth: number, defaultType: string): void {
  if (c.parts.length >= MAX_PARTS) return;
  const ctRaw = fieldOf(fields, 'content-type');
  const ct = ctRaw === undefined ? { type: defaultType, params: new Map<string, string>() } : parseContentType(ctRaw);
  const encoding = (fieldOf(fields, 'content-transfer-encoding') ?? '7bit').trim().toLowerCase();
  const disposition = fieldOf(fields, 'content-disposition');
  const filename = ct.params.get('name') ?? (disposition === undefined ? undefined : dispositionParams(disposition).get('filename'));
  const charset = ct.params.get('charset');
  c.parts.push({
    type: ct.type,
    encoding,
    size: body.length,
    ...(charset ? { charset } : {}),
    ...(filename ? { filename: decodeHeaderValue(filename) } : {}),
  });

  if (ct.type.startsWith('multipart/')) {
    const boundary = ct.params.get('boundary');
    if (boundary && depth < MAX_DEPTH) {
      // RFC 2046 §5.1.1: in multipart/digest the default part type is message/rfc822.
      const childDefault = ct.type === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
      for (const part of splitMultipart(body, boundary)) {
        const { head, body: partBody } = splitHeadBody(part);
        walk(parseHeaderBlock(head), partBody, c, depth + 1, childDefault);
      }
      return;
    }
    // A multipart without a usable boundary: read it as text, as a mail client would show it.
  }
  if (ct.type === 'message/rfc822' || ct.type === 'message/global') {
    if (depth < MAX_DEPTH) {
      const { head, body: inner } = splitHeadBody(encoding === 'base64' || encoding === 'quoted-printable' ? decodeTransfer(body, encoding).toString('latin1') : body);
      const innerFields = parseHeaderBlock(head);
      // The forwarded message's subject is text the reader sees.
      const subject = fieldOf(innerFields, 'subject');
      if (subject) c.plain.push(decodeHeaderValue(subject).trim());
      walk(innerFields, inner, c, depth + 1, 'text/plain');
    }
    return;
  }
  const isText = ct.type.startsWith('text/') || ct.type.startsWith('multipart/');
  const isAttachment = disposition !== undefined && /^\s*attachment/i.test(disposition);
  if (!isText || (isAttachment && ct.type !== 'text/html' && ct.type !== 'text/plain') || c.textBudget <= 0) {
    if (ct.type.startsWith('image/')) c.images++;
    return;
  }
  let text = decodeText(body, encoding, charset);
  if (text.length > c.textBudget) text = text.slice(0, c.textBudget);
  c.textBudget -= text.length;
  // HTML sent as text/plain (or with no type at all) is still HTML to the reader's client.
  const isHtml = ct.type === 'text/html' || (ct.type === 'text/plain' && /^\s*<(?:!doctype\s+html|html|head|body)\b/i.test(text));
  if (isHtml) {
    const h = htmlToText(text);
    c.hasHtml = true;
    c.html.push(h.text);
    for (const l of h.links) if (c.links.length < 500) c.links.push(l);
    c.images += h.images;
  } else {
    c.hasPlain = true;
    c.plain.push(text);
  }
}

// Content-Disposition has the same parameter syntax as Content-Type (RFC 2183 §2).
function dispositionParams(value: string): Map<string, string> {
  const semi = value.indexOf(';');
  return semi < 0 ? new Map<string, string>() : parseContentType('x/x' + value.slice(semi)).params;
}

// Charsets in which plain ASCII bytes mean ASCII characters (everything but UTF-16/32, UTF-7
// and the stateful ISO-2022 family, whose escapes are themselves ASCII).
const ASCII_SAFE = /^(?:us-ascii|ascii|utf-8|utf8|iso-8859-\d+|windows-125\d|cp125\d|latin1|koi8-[ru]|gb2312|gbk|gb18030|big5|euc-[a-z]+|shift_jis|sjis)$/;

/** The text of a part: transfer encoding, then charset. A 7bit/8bit body that is pure ASCII in
 * an ASCII-compatible charset is already its own text, with no copy and no decoder. */
function decodeText(body: string, encoding: string, charset: string | undefined): string {
  if (encoding !== 'base64' && encoding !== 'quoted-printable' && (charset === undefined || ASCII_SAFE.test(charset.toLowerCase())) && !/[^\x00-\x7f]/.test(body)) return body;
  return decodeBytes(decodeTransfer(body, encoding), charset);
}

function decodeTransfer(body: string, encoding: string): Buffer {
  if (encoding === 'base64') return base64Bytes(body);
  if (encoding === 'quoted-printable') return quotedPrintableBytes(body);
  return latin1Bytes(body);
}

/** The parts of a multipart body between its delimiter lines (RFC 2046 §5.1.1); a missing close
 * delimiter ends the last part at the end of the body. */
export function splitMultipart(body: string, boundary: string): string[] {
  const delim = '--' + boundary;
  const parts: string[] = [];
  let pos = 0;
  let start = -1;
  for (;;) {
    const at = body.indexOf(delim, pos);
    if (at < 0) break;
    // A delimiter starts a line.
    if (at > 0 && body.charCodeAt(at - 1) !== 10) {
      pos = at + delim.length;
      continue;
    }
    const after = at + delim.length;
    const isClose = body.startsWith('--', after);
    if (start >= 0) {
      let end = at;
      if (end > 0 && body.charCodeAt(end - 1) === 10) end--;
      if (end > 0 && body.charCodeAt(end - 1) === 13) end--;
      parts.push(body.slice(start, Math.max(start, end)));
      if (parts.length >= MAX_PARTS) return parts;
    }
    if (isClose) return parts;
    const nl = body.indexOf('\n', after);
    if (nl < 0) return parts;
    start = nl + 1;
    pos = start;
  }
  if (start >= 0 && start < body.length) parts.push(body.slice(start));
  return parts;
}
