// Strict reading of the address fields a sender claims an identity with (From, Sender,
// Resent-From, Resent-Sender): RFC 5322 §3.4 mailbox-list, without the obsolete forms a reader
// may show differently from how we parse them. Everything a mail client displays next to the
// address — display names and comments, RFC 2047 encoded words decoded — is returned, and any
// other address written there is reported, so a check can refuse `"bob@bank.test" <eve@x>`.
// Pure, no I/O; no input makes it throw.
import { parseMailbox } from './address.ts';

export interface HeaderMailbox {
  /** Canonical `local@domain` as core/address.ts gives it (domain lower-cased, A-labels). */
  readonly address: string;
  /** The display name as a reader shows it: words joined by one space, encoded words decoded. */
  readonly display: string;
}

export type MailboxListResult =
  | { readonly ok: true; readonly mailboxes: readonly HeaderMailbox[] }
  | { readonly ok: false; readonly error: string };

type Token =
  | { readonly kind: 'word'; readonly text: string; readonly quoted: boolean; readonly start: number; readonly end: number }
  | { readonly kind: 'comment'; readonly text: string; readonly start: number; readonly end: number }
  | { readonly kind: 'special'; readonly text: string; readonly start: number; readonly end: number };

// RFC 5322 §3.2.3 atext, and the non-ASCII characters RFC 6532 §3.2 adds.
const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\uffff]/;
// Characters no displayed text may hold: controls (C0, DEL, C1), and the bidirectional controls
// that can show the parts of a field in another order than they are written (Unicode TR 9).
const HIDDEN = /[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
// Something that a reader takes for an address: text @ text, spaces around the @ included.
const ADDRESS_LIKE = /[^\s<>()[\]",;:@]+\s*@\s*[^\s<>()[\]",;:@]+/g;

class Unreadable extends Error {}

/** The tokens of a field value (already unfolded), or the reason it cannot be read. */
function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i]!;
    if (ch === ' ' || ch === '\t') {
      i++;
    } else if (ch === '"') {
      const start = i;
      let text = '';
      for (i++; ; i++) {
        if (i >= s.length) throw new Unreadable('unterminated quoted string');
        const c = s[i]!;
        if (c === '"') break;
        if (c === '\\') {
          i++;
          if (i >= s.length) throw new Unreadable('unterminated quoted string');
        }
        text += s[i];
      }
      i++;
      out.push({ kind: 'word', text, quoted: true, start, end: i });
    } else if (ch === '(') {
      const start = i;
      let depth = 0;
      let text = '';
      for (; ; i++) {
        if (i >= s.length) throw new Unreadable('unterminated comment');
        const c = s[i]!;
        if (c === '\\') {
          i++;
          if (i >= s.length) throw new Unreadable('unterminated comment');
          text += s[i];
          continue;
        }
        if (c === '(') depth++;
        else if (c === ')') depth--;
        if (depth === 0) break;
        if (depth > 1 || c !== '(') text += c;
      }
      i++;
      out.push({ kind: 'comment', text, start, end: i });
    } else if ('<>,:;@.[]'.includes(ch)) {
      out.push({ kind: 'special', text: ch, start: i, end: i + 1 });
      i++;
    } else if (ATEXT.test(ch)) {
      const start = i;
      while (i < s.length && ATEXT.test(s[i]!)) i++;
      out.push({ kind: 'word', text: s.slice(start, i), quoted: false, start, end: i });
    } else {
      throw new Unreadable(`character U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} outside a quoted string`);
    }
  }
  return out;
}

// RFC 2047 §2: =?charset?encoding?encoded-text?= (an RFC 2231 language suffix allowed).
const ENCODED_WORD = /=\?([^?*\s]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=/g;

/** Text with its encoded words decoded as a reader would (quoted or not); throws when one cannot be. */
export function decodeEncodedWords(text: string): string {
  // RFC 2047 §6.2: white space between two adjacent encoded words is not shown.
  const joined = text.replace(/(\?=)[ \t]+(?==\?)/g, '$1');
  return joined.replace(ENCODED_WORD, (_all, charset: string, enc: string, data: string) => {
    let bytes: Buffer;
    if (enc === 'b' || enc === 'B') {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) throw new Unreadable('bad base64 in an encoded word');
      bytes = Buffer.from(data, 'base64');
    } else {
      if (/=(?![0-9A-Fa-f]{2})/.test(data)) throw new Unreadable('bad quoted-printable in an encoded word');
      bytes = Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    }
    try {
      return new TextDecoder(charset, { fatal: true }).decode(bytes);
    } catch {
      throw new Unreadable(`encoded word in charset ${JSON.stringify(charset)} cannot be decoded`);
    }
  });
}

/** Every address a reader could see in displayed text (NFKC: full-width ＠ counts as @). */
export function addressesShownIn(text: string): string[] {
  return [...text.normalize('NFKC').matchAll(ADDRESS_LIKE)].map((m) => m[0].replace(/\s+/g, '').toLowerCase());
}

/** A displayed part (display name or comment): readable, decoded, and not hiding anything. */
function shown(raw: string): string {
  const text = decodeEncodedWords(raw);
  if (HIDDEN.test(raw) || HIDDEN.test(text)) throw new Unreadable('control or bidirectional characters in a display name or comment');
  return text;
}

/** The addr-spec written in `value` between `start` and `end` (no spaces or comments inside). */
function addrSpec(value: string, start: number, end: number): string {
  const r = parseMailbox(value.slice(start, end));
  if (!r.ok) throw new Unreadable(`bad address ${JSON.stringify(value.slice(start, end))}: ${r.error}`);
  const flags = r.mailbox.flags.filter((f) => f !== 'quoted-local' && f !== 'utf8');
  if (flags.length > 0) throw new Unreadable(`address ${r.mailbox.address} uses ${flags.join(', ')}`);
  return r.mailbox.address;
}

/** One mailbox from `toks` (no commas among them); `extra` collects what is displayed around it. */
function mailbox(value: string, toks: readonly Token[], extra: string[]): HeaderMailbox {
  const open = toks.findIndex((t) => t.kind === 'special' && t.text === '<');
  if (open >= 0) {
    const close = toks.findIndex((t, i) => i > open && t.kind === 'special' && t.text === '>');
    if (close < 0) throw new Unreadable('unbalanced angle brackets');
    const inside = toks.slice(open + 1, close);
    if (inside.length === 0) throw new Unreadable('empty angle address');
    if (inside.some((t) => t.kind === 'comment' || (t.kind === 'special' && '<:'.includes(t.text)))) throw new Unreadable('route, comment or bracket inside the angle address');
    // Only comments may follow the angle address: `<a@x> <b@y>` and `<a@x>b@y` are two addresses.
    const after = toks.slice(close + 1);
    if (after.some((t) => t.kind !== 'comment')) throw new Unreadable('text after the angle address');
    const before = toks.slice(0, open);
    // The words as written, one space where the source had white space (or a comment), so an
    // encoded word cut by a dot (`=?utf-8?q?bob=40evil.test?=`) is decoded whole, as readers do.
    let words = '';
    let prev: Token | undefined;
    for (const t of before) {
      if (t.kind === 'comment') {
        extra.push(shown(t.text));
        continue;
      }
      if (t.kind === 'special' && t.text !== '.') throw new Unreadable(`"${t.text}" in a display name (quote it)`);
      // obs-phrase dots ("John Q. Public") are common and harmless.
      if (prev && (prev.end !== t.start || before.indexOf(prev) !== before.indexOf(t) - 1)) words += ' ';
      words += t.text;
      prev = t;
    }
    for (const t of after) extra.push(shown(t.text));
    const address = addrSpec(value, inside[0]!.start, inside[inside.length - 1]!.end);
    return { address, display: shown(words) };
  }
  // A bare addr-spec, comments around it allowed: `alice@example.org (Alice)`.
  const body = toks.filter((t) => t.kind !== 'comment');
  for (const t of toks) if (t.kind === 'comment') extra.push(shown(t.text));
  if (body.length === 0) throw new Unreadable('no address');
  const first = toks.indexOf(body[0]!);
  const last = toks.indexOf(body[body.length - 1]!);
  if (toks.slice(first, last + 1).some((t) => t.kind === 'comment')) throw new Unreadable('comment inside an address');
  return { address: addrSpec(value, body[0]!.start, body[body.length - 1]!.end), display: '' };
}

/**
 * A mailbox-list (RFC 5322 §3.4), strictly: no group syntax (§3.6.2 allows none in From and
 * Sender), no empty members, one address per member, and no other address displayed in a
 * display name or comment than the member's own.
 */
export function parseMailboxList(value: string): MailboxListResult {
  try {
    const toks = tokenize(value);
    const members: Token[][] = [[]];
    for (const t of toks) {
      if (t.kind === 'special' && (t.text === ':' || t.text === ';')) throw new Unreadable('group syntax');
      if (t.kind === 'special' && t.text === ',') members.push([]);
      else members[members.length - 1]!.push(t);
    }
    const mailboxes: HeaderMailbox[] = [];
    for (const m of members) {
      if (m.every((t) => t.kind === 'comment')) throw new Unreadable(members.length > 1 ? 'empty member in the list' : 'no address');
      const extra: string[] = [];
      const mb = mailbox(value, m, extra);
      for (const text of [mb.display, ...extra]) {
        const other = addressesShownIn(text).find((a) => a !== mb.address.toLowerCase());
        if (other !== undefined) throw new Unreadable(`display name or comment shows another address (${other}) than ${mb.address}`);
      }
      mailboxes.push(mb);
    }
    return { ok: true, mailboxes };
  } catch (err) {
    if (err instanceof Unreadable) return { ok: false, error: err.message };
    throw err;
  }
}
