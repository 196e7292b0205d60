// Finds and edits the header block at the top of a message as raw bytes: where it ends, removing
// fields, prefixing the Subject. Bytes are kept as they came (8-bit text, line endings, folding);
// only the edited fields change. Shared by the spool writer (where the block ends) and the
// session (what to change). Pure, no I/O.

/**
 * The offset just past the empty line that closes the header block (RFC 5322 §2.1), CRLF or bare
 * LF; undefined when `buf` holds no such line (yet).
 */
export function headerBlockEnd(buf: Buffer): number | undefined {
  if (buf[0] === 0x0a) return 1;
  if (buf[0] === 0x0d && buf[1] === 0x0a) return 2;
  for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) {
    if (buf[i + 1] === 0x0a) return i + 2;
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return i + 3;
  }
  return undefined;
}

interface Field {
  /** The field as written, folded lines and line ending included. */
  readonly raw: string;
  /** The name as written (before the colon); '' for stray lines that are no field. */
  readonly name: string;
}

/** Splits a header block (latin1 text, one char per byte) into fields and the closing empty line. */
function splitFields(text: string): { fields: Field[]; tail: string } {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const fields: Array<{ raw: string; name: string }> = [];
  let tail = '';
  for (const line of lines) {
    if (line === '\n' || line === '\r\n') {
      tail = line;
      break;
    }
    const last = fields[fields.length - 1];
    // RFC 5322 §2.2.3: a line starting with white space continues the field above it.
    if (/^[ \t]/.test(line) && last) {
      last.raw += line;
      continue;
    }
    const colon = line.indexOf(':');
    fields.push({ raw: line, name: colon > 0 ? line.slice(0, colon) : '' });
  }
  return { fields, tail };
}

/** The unfolded value of a field, trimmed. */
const valueOf = (f: Field): string => f.raw.slice(f.name.length + 1).replace(/\r?\n(?=[ \t])/g, '').trim();

/**
 * The header block without the fields `drop` picks (name as written, unfolded value). Returns
 * `head` itself when nothing is dropped.
 */
export function removeFields(head: Buffer, drop: (name: string, value: string) => boolean): Buffer {
  const { fields, tail } = splitFields(head.toString('latin1'));
  const kept = fields.filter((f) => f.name === '' || !drop(f.name.trim(), valueOf(f)));
  if (kept.length === fields.length) return head;
  return Buffer.from(kept.map((f) => f.raw).join('') + tail, 'latin1');
}

// RFC 5322 §2.1.1: lines are at most 998 characters.
const MAX_LINE = 998;

/**
 * The header block with `prefix` in front of the Subject, once: a Subject that starts with it
 * already is left as it is, and a message without one gets `Subject: <prefix>`. The rest of the
 * Subject stays byte for byte (encoded-words included: the space after the prefix keeps them
 * separate, RFC 2047 §5), and a prefix that is not plain ASCII is written as encoded-words.
 */
export function prefixSubject(head: Buffer, prefix: string): Buffer {
  if (prefix === '') return head;
  const mark = encodeWords(prefix);
  const { fields, tail } = splitFields(head.toString('latin1'));
  const eol = tail || (/\r?\n$/.exec(fields[0]?.raw ?? '')?.[0] ?? '\r\n');
  const at = fields.findIndex((f) => f.name.trim().toLowerCase() === 'subject');
  if (at === -1) {
    const last = fields[fields.length - 1];
    if (last && !last.raw.endsWith('\n')) fields[fields.length - 1] = { ...last, raw: last.raw + eol };
    fields.push({ raw: `Subject: ${mark}${eol}`, name: 'Subject' });
  } else {
    const f = fields[at]!;
    if (valueOf(f).startsWith(mark)) return head;
    const term = /\r?\n$/.exec(f.raw)?.[0] ?? '';
    const rest = f.raw.slice(f.name.length + 1, f.raw.length - term.length);
    const lead = `${f.name}: ${mark}`;
    let raw: string;
    if (rest.trim() === '') raw = lead;
    else if (/^\r?\n/.test(rest)) raw = lead + rest; // the value starts on a folded line
    else {
      const value = rest.replace(/^[ \t]*/, '');
      const firstLine = value.split(/\r?\n/)[0]!;
      // Fold after the prefix rather than make the first line too long.
      raw = lead.length + 1 + firstLine.length > MAX_LINE ? `${lead}${term || '\r\n'} ${value}` : `${lead} ${value}`;
    }
    fields[at] = { raw: raw + term, name: f.name };
  }
  return Buffer.from(fields.map((f) => f.raw).join('') + tail, 'latin1');
}

/**
 * `text` as it may stand in an unstructured field: as is when it is printable ASCII, else as
 * UTF-8 "B" encoded-words of at most 75 characters each (RFC 2047 §2, §5(1)).
 */
export function encodeWords(text: string): string {
  if (/^[\x20-\x7e]*$/.test(text)) return text;
  const words: string[] = [];
  let piece = '';
  // 45 bytes are 60 base64 characters: "=?UTF-8?B?" + 60 + "?=" is 72. Characters are never split.
  for (const ch of text) {
    if (Buffer.byteLength(piece + ch) > 45) {
      words.push(piece);
      piece = '';
    }
    piece += ch;
  }
  if (piece !== '') words.push(piece);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`).join(' ');
}
