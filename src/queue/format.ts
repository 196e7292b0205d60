// The bytes of one spool file, without any I/O: a fixed-length text prefix (lengths and hashes), the
// envelope as JSON, the message, then appended state records. docs/decisions/0002-spool-format.md
// explains the layout; everything here must stay readable by every later version.
import { hash } from 'node:crypto';
import { envelopeProblem, isFinal, isRecipientState, PENDING, type Envelope, type RecipientState } from './envelope.ts';

/**
 * "MWSPOOL1 h=<header bytes, 8 digits> b=<body bytes, 15 digits> hh=<header hash> bh=<body hash>\n".
 * Fixed length so a spilled file can get its final prefix written in place at commit. A file still
 * being written carries the magic "MWSPOOL-", which no loader accepts.
 */
export const PREFIX_LENGTH = 78;
const MAGIC = 'MWSPOOL1';
const MAGIC_UNFINISHED = 'MWSPOOL-';
const MAX_HEADER = 1_000_000;

/** A short content hash: the first 64 bits of SHA-256, hex. Detects corruption, not malice. */
export function shortHash(data: Buffer | string): string {
  // One-shot hash: no Hash object per call (the start-up scan hashes two strings per file).
  return hash('sha256', data, 'hex').slice(0, 16);
}

export interface Prefix {
  readonly headerLength: number;
  readonly bodyLength: number;
  readonly headerHash: string;
  readonly bodyHash: string;
}

export function encodePrefix(p: Prefix, unfinished = false): Buffer {
  const text = `${unfinished ? MAGIC_UNFINISHED : MAGIC} h=${String(p.headerLength).padStart(8, '0')} b=${String(p.bodyLength).padStart(15, '0')} hh=${p.headerHash} bh=${p.bodyHash}\n`;
  if (text.length !== PREFIX_LENGTH) throw new Error(`spool prefix has ${text.length} bytes, expected ${PREFIX_LENGTH}`);
  return Buffer.from(text, 'latin1');
}

// Byte positions in the prefix (checked byte by byte: the start-up scan parses one per file).
const LITERALS: ReadonlyArray<readonly [number, string]> = [
  [0, `${MAGIC} h=`],
  [19, ' b='],
  [37, ' hh='],
  [57, ' bh='],
  [77, '\n'],
];

/** The decimal number in buf[from, from + n), or -1 when a byte is not a digit. */
function digitsAt(buf: Buffer, from: number, n: number): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** Whether buf[from, from + n) is lower-case hex, as shortHash writes it. */
function isHexAt(buf: Buffer, from: number, n: number): boolean {
  for (let i = from; i < from + n; i++) {
    const b = buf[i]!;
    if (!((b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66))) return false;
  }
  return true;
}

function isPrefixShape(buf: Buffer): boolean {
  for (const [at, text] of LITERALS) for (let i = 0; i < text.length; i++) if (buf[at + i] !== text.charCodeAt(i)) return false;
  return isHexAt(buf, 41, 16) && isHexAt(buf, 61, 16);
}

/** Parses the prefix; returns a reason string when it is not a finished spool file. */
export function decodePrefix(buf: Buffer): Prefix | string {
  if (buf.length < PREFIX_LENGTH) return `file shorter than the ${PREFIX_LENGTH}-byte prefix`;
  const headerLength = isPrefixShape(buf) ? digitsAt(buf, 11, 8) : -1;
  const bodyLength = headerLength < 0 ? -1 : digitsAt(buf, 22, 15);
  if (bodyLength < 0) return buf.toString('latin1', 0, 8) === MAGIC_UNFINISHED ? 'unfinished file (never committed)' : 'bad prefix';
  if (headerLength === 0 || headerLength > MAX_HEADER) return `header length ${headerLength} out of range`;
  return { headerLength, bodyLength, headerHash: buf.toString('latin1', 41, 57), bodyHash: buf.toString('latin1', 61, 77) };
}

/** Offset of the first message byte: prefix, header, and the "\n" after the header. */
export const bodyOffset = (p: Prefix): number => PREFIX_LENGTH + p.headerLength + 1;

/**
 * The header as stored: the envelope without `size` (the prefix carries it). A reader must accept
 * white space after the JSON: a message that spilled to disk keeps room there for fields decided
 * at commit (see SpoolWriter).
 */
export function encodeHeader(env: Omit<Envelope, 'size'>): Buffer {
  const { id, receivedAt, mailFrom, recipients, client, relayReason, smtputf8, body, noBounce, senderVerified, folder, requireTls } = env;
  // requireTls only when set: files without it read the same in older versions (0038).
  return Buffer.from(JSON.stringify({ id, receivedAt, mailFrom, recipients, client, relayReason, smtputf8, body, noBounce, senderVerified, folder, ...(requireTls ? { requireTls } : {}) }), 'utf8');
}

/** Parses and checks the header bytes against the prefix; returns the envelope or a reason. */
export function decodeHeader(p: Prefix, header: Buffer, separator: number | undefined, expectedId: string): Envelope | string {
  if (shortHash(header) !== p.headerHash) return 'header checksum mismatch';
  if (separator !== 0x0a) return 'no newline after the header';
  let v: unknown;
  try {
    v = JSON.parse(header.toString('utf8'));
  } catch {
    return 'header is not JSON';
  }
  const problem = envelopeProblem(v);
  if (problem) return problem;
  const env = { ...(v as Omit<Envelope, 'size'>), size: p.bodyLength };
  if (env.id !== expectedId) return `header id ${env.id} does not match the file name`;
  return env;
}

// State records follow the message: "\nS1 <hash> <json>\n", appended with one write each. The
// leading newline ends any torn record a crash left behind, so later records stay readable.

export interface StateUpdate {
  readonly index: number;
  readonly state: RecipientState;
}

interface RecordEntry {
  readonly i: number[];
  readonly s: RecipientState;
}

export function encodeStateRecord(updates: readonly StateUpdate[]): Buffer {
  // Recipients with the same new state share one entry (a deferral of 500 remote recipients is
  // one entry, not 500).
  const byState = new Map<string, RecordEntry>();
  for (const u of updates) {
    const key = JSON.stringify(u.state);
    const e = byState.get(key);
    if (e) e.i.push(u.index);
    else byState.set(key, { i: [u.index], s: u.state });
  }
  const json = JSON.stringify({ u: [...byState.values()] });
  return Buffer.from(`\nS1 ${shortHash(json)} ${json}\n`, 'utf8');
}

export interface TailResult {
  readonly states: RecipientState[];
  /** Records ignored as torn (a crash during an append that was never acknowledged). */
  readonly torn: number;
  /** Records that tried to change a final state (kept final). */
  readonly ignored: number;
}

/** "S1 " + 16 hex digits + " ": the bytes before a record's JSON. */
const RECORD_HEAD = 20;

/** Whether line [from, end) is a torn record: the start of "S1 ", or zero bytes (some file systems). */
function isTornLine(tail: Buffer, from: number, end: number): boolean {
  if (end - from <= 3 && tail.toString('latin1', from, end) === 'S1 '.slice(0, end - from)) return true;
  for (let i = from; i < end; i++) if (tail[i] !== 0) return false;
  return true;
}

/**
 * Replays the state records after the message; returns the states or the reason it is corrupt.
 * Works on the bytes, a line at a time (no string of the whole tail): the start-up scan replays
 * every file's tail.
 */
export function decodeTail(tail: Buffer, recipientCount: number): TailResult | string {
  const states: RecipientState[] = Array.from({ length: recipientCount }, () => PENDING);
  let torn = 0;
  let ignored = 0;
  for (let from = 0; from < tail.length; ) {
    let end = tail.indexOf(0x0a, from);
    if (end < 0) end = tail.length;
    const line = from;
    from = end + 1;
    if (end === line) continue;
    // A crash may leave the start of a record, or (on some file systems) a zero-filled tail.
    if (isTornLine(tail, line, end)) {
      torn++;
      continue;
    }
    if (end - line < RECORD_HEAD || tail[line] !== 0x53 || tail[line + 1] !== 0x31 || tail[line + 2] !== 0x20 || !isHexAt(tail, line + 3, 16) || tail[line + 19] !== 0x20) {
      return 'unexpected bytes after the message (body longer than recorded)';
    }
    const json = tail.subarray(line + RECORD_HEAD, end);
    if (shortHash(json) !== tail.toString('latin1', line + 3, line + 19)) {
      torn++;
      continue;
    }
    let rec: unknown;
    try {
      rec = JSON.parse(json.toString('utf8'));
    } catch {
      return 'state record is not JSON';
    }
    const entries = (rec as { u?: unknown }).u;
    if (!Array.isArray(entries)) return 'state record malformed';
    for (const e of entries as unknown[]) {
      const { i, s } = (e ?? {}) as { i?: unknown; s?: unknown };
      if (!Array.isArray(i) || !isRecipientState(s)) return 'state record malformed';
      for (const idx of i as unknown[]) {
        if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0 || idx >= recipientCount) return `state record names recipient ${String(idx)} of ${recipientCount}`;
        // Once final, always final: no record can make a delivered recipient due again.
        if (isFinal(states[idx]!)) ignored++;
        else states[idx] = s;
      }
    }
  }
  return { states, torn, ignored };
}
