// Parses the paths of MAIL FROM / RCPT TO (RFC 5321 §4.1.2) into one canonical mailbox, with flags
// for the tricks relays have been fooled by (%-hack, !-paths, source routes, address literals).
// Pure: no I/O, and no input makes it throw — a hostile client gets a 501/553 result instead.
import { isIP, SocketAddress } from 'node:net';
import { domainToASCII } from 'node:url';

export type AddressFlag =
  | 'percent-hack'
  | 'bang-path'
  | 'source-route'
  | 'quoted-local'
  | 'ip-literal'
  | 'trailing-dot'
  | 'no-brackets'
  | 'utf8';

// Flags are always reported in this order, so results compare exactly.
const FLAG_ORDER: readonly AddressFlag[] = [
  'percent-hack',
  'bang-path',
  'source-route',
  'quoted-local',
  'ip-literal',
  'trailing-dot',
  'no-brackets',
  'utf8',
];

export interface Mailbox {
  /**
   * The local part as written; a quoted local part whose content is a valid dot-string is given
   * unquoted (`"abc"` → `abc`), any other keeps minimal quoting (`"a b"`).
   */
  readonly local: string;
  /** Lower-cased, trailing dot removed, U-labels as A-labels; `[1.2.3.4]` / `[ipv6:::1]` for literals. */
  readonly domain: string;
  /** `local@domain`. */
  readonly address: string;
  /**
   * Facts for policy. 'quoted-local': the local part was written quoted (even if it needed no
   * quotes). 'percent-hack' also covers an `@` inside a quoted local part (`"u@other"@relay`), the
   * same routing-in-the-local-part trick spelled out.
   */
  readonly flags: readonly AddressFlag[];
  /** The address of an address literal, canonical (RFC 5952 form for IPv6). */
  readonly ipLiteral?: string;
}

export type Role = 'sender' | 'recipient';

export interface PathOptions {
  /** Accept the null reverse-path `<>` (MAIL FROM only, RFC 5321 §4.5.5). */
  readonly allowNull: boolean;
  /** The client gave the SMTPUTF8 parameter (RFC 6531 §3.4); without it, non-ASCII is refused. */
  readonly smtputf8: boolean;
  /** Accept a path without angle brackets, flagged 'no-brackets' (default true). */
  readonly allowNoBrackets?: boolean;
  /** Chooses the enhanced code of a syntax error: 5.1.7 for a sender, 5.1.3 for a recipient
   * (RFC 3463 §3.2). Defaults to 'sender' when allowNull is set, else 'recipient'. */
  readonly role?: Role;
  /** When set, `RCPT TO:<Postmaster>` without a domain means postmaster@<this domain>
   * (RFC 5321 §4.1.1.3 requires accepting it); without it the bare name is refused. */
  readonly postmasterDomain?: string;
}

export interface MailboxOptions {
  /** Allow non-ASCII (default true: addresses in config and on the command line are ours). */
  readonly smtputf8?: boolean;
  readonly role?: Role;
}

export interface ParseFailure {
  readonly ok: false;
  /** Short, for the log. */
  readonly error: string;
  readonly code: 501 | 553;
  readonly enhanced: string;
}
export type ParseResult = { readonly ok: true; readonly mailbox: Mailbox | null } | ParseFailure;
export type MailboxResult = { readonly ok: true; readonly mailbox: Mailbox } | ParseFailure;

// RFC 5321 §4.5.3.1: size limits, in octets.
const MAX_LOCAL = 64; // §4.5.3.1.1
const MAX_DOMAIN = 255; // §4.5.3.1.2
const MAX_PATH = 256; // §4.5.3.1.3, including the angle brackets
const MAX_MAILBOX = MAX_PATH - 2;
const MAX_LABEL = 63; // RFC 1035 §2.3.4

// Internal failures carry a kind that maps to the reply code.
//  syntax  → 501 (RFC 5321 §4.2.2 "syntax error in parameters or arguments")
//  utf8    → 553 5.6.7 (RFC 6531 §3.5: non-ASCII address without SMTPUTF8)
//  refused → 553 (well-formed but not accepted, e.g. general address literals)
interface Failure {
  readonly failure: string;
  readonly kind: 'syntax' | 'utf8' | 'refused';
}
const fail = (failure: string, kind: Failure['kind'] = 'syntax'): Failure => ({ failure, kind });
const isFailure = (x: object): x is Failure => 'failure' in x;
const NON_ASCII_REFUSED = 'non-ASCII address without SMTPUTF8';

interface DomainPart {
  readonly domain: string;
  readonly utf8: boolean;
  readonly ipLiteral?: string;
  readonly trailingDot?: boolean;
}
interface LocalPart {
  readonly local: string;
  /** Index just after the local part in the text. */
  readonly end: number;
  readonly flags: readonly AddressFlag[];
}

// RFC 5322 §3.2.3 atext, minus ALPHA / DIGIT which are tested separately.
const ATEXT_SPECIALS = new Set("!#$%&'*+-/=?^_`{|}~");
const isAlnum = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isAsciiAtext = (ch: string): boolean => isAlnum(ch.charCodeAt(0)) || ATEXT_SPECIALS.has(ch);
// RFC 6531 §3.3 lets UTF8-non-ascii into atext, qtextSMTP and sub-domain. We still refuse
// controls, separators (look-alike spaces), lone surrogates (not encodable as UTF-8) and U+FFFD
// (the mark of bytes that were not valid UTF-8).
const BAD_NON_ASCII = /^[\p{Cc}\p{Z}\p{Cs}\uFFFD]$/u;
const isAcceptableNonAscii = (ch: string): boolean => !BAD_NON_ASCII.test(ch);
// The same refusals for a whole word of client text (a HELO name): every control character —
// C0 including TAB, DEL, C1 — plus the non-ASCII ones above. The ASCII space is left to the caller.
const BAD_IN_WORD = /[\p{Cc}\p{Cs}\uFFFD]|(?! )\p{Z}/u;

/** The first character no host name or address may hold (see above), as "U+XXXX"; undefined when none. */
export function forbiddenCharacter(s: string): string | undefined {
  const m = BAD_IN_WORD.exec(s);
  return m ? `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}` : undefined;
}

function octets(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Dot-string (RFC 5321 §4.1.2): atoms of atext joined by single dots. */
function checkDotString(s: string, smtputf8: boolean): Failure | { utf8: boolean } {
  if (s === '') return fail('empty local part');
  let utf8 = false;
  let prevDot = true; // a leading dot counts as misplaced
  for (const ch of s) {
    if (ch === '.') {
      if (prevDot) return fail('misplaced dot in local part');
      prevDot = true;
      continue;
    }
    prevDot = false;
    if (ch.charCodeAt(0) < 0x80) {
      if (!isAsciiAtext(ch)) return fail('invalid character in local part');
    } else {
      if (!isAcceptableNonAscii(ch)) return fail('invalid character in local part');
      if (!smtputf8) return fail(NON_ASCII_REFUSED, 'utf8');
      utf8 = true;
    }
  }
  if (prevDot) return fail('misplaced dot in local part');
  return { utf8 };
}

function hackFlags(content: string): AddressFlag[] {
  const flags: AddressFlag[] = [];
  if (content.includes('%')) flags.push('percent-hack');
  if (content.includes('!')) flags.push('bang-path');
  return flags;
}

/** Local-part = Dot-string / Quoted-string (RFC 5321 §4.1.2), ending at the '@' before the domain. */
function parseLocal(s: string, smtputf8: boolean): Failure | LocalPart {
  if (s.startsWith('"')) return parseQuotedLocal(s, smtputf8);
  const at = s.indexOf('@');
  if (at < 0) return fail('missing @');
  const written = s.slice(0, at);
  const dot = checkDotString(written, smtputf8);
  if (isFailure(dot)) return dot;
  if (octets(written) > MAX_LOCAL) return fail('local part too long');
  const flags = hackFlags(written);
  if (dot.utf8) flags.push('utf8');
  return { local: written, end: at, flags };
}

/** Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE (RFC 5321 §4.1.2, RFC 6531 §3.3). */
function parseQuotedLocal(s: string, smtputf8: boolean): Failure | LocalPart {
  let content = '';
  let utf8 = false;
  let end = -1;
  const cps = Array.from(s); // code points; a lone surrogate comes out alone
  let pos = 1; // index into s, kept alongside the code point index
  for (let i = 1; i < cps.length; i++) {
    const ch = cps[i] ?? '';
    const c = ch.codePointAt(0) ?? 0;
    pos += ch.length;
    if (ch === '"') {
      end = pos;
      break;
    }
    if (ch === '\\') {
      // quoted-pairSMTP = %d92 %d32-126: only printable ASCII may be escaped.
      const next = cps[i + 1] ?? '';
      const n = next.codePointAt(0) ?? 0;
      if (n < 32 || n > 126) return fail('invalid quoted pair');
      content += next;
      pos += next.length;
      i++;
    } else if (c >= 32 && c <= 126) {
      content += ch; // qtextSMTP: %d32-33 / %d35-91 / %d93-126 ('"' and '\' handled above)
    } else if (c >= 0x80 && isAcceptableNonAscii(ch)) {
      if (!smtputf8) return fail(NON_ASCII_REFUSED, 'utf8');
      utf8 = true;
      content += ch;
    } else {
      return fail('invalid character in local part');
    }
  }
  if (end < 0) return fail('unterminated quoted string');
  if (content === '') return fail('empty local part');
  if (octets(s.slice(0, end)) > MAX_LOCAL) return fail('local part too long');
  if (s[end] !== '@') return fail('missing @');
  // Quotes that protect nothing are dropped so one mailbox has one spelling.
  const needsQuotes = isFailure(checkDotString(content, true));
  const local = needsQuotes ? `"${content.replace(/["\\]/g, '\\$&')}"` : content;
  const flags = hackFlags(content);
  if (content.includes('@') && !flags.includes('percent-hack')) flags.push('percent-hack');
  flags.push('quoted-local');
  if (utf8) flags.push('utf8');
  return { local, end, flags };
}

/**
 * Domain = sub-domain *("." sub-domain), each an LDH label (RFC 5321 §4.1.2, RFC 1035 §2.3.1),
 * or U-labels under SMTPUTF8 (RFC 6531 §3.3), returned as lower-case A-labels.
 */
function parseDomainName(d: string, smtputf8: boolean): Failure | DomainPart {
  if (d === '') return fail('empty domain');
  let ascii = true;
  for (const ch of d) {
    const c = ch.charCodeAt(0);
    if (c < 0x80) {
      if (!(isAlnum(c) || ch === '-' || ch === '.')) return fail('invalid character in domain');
    } else {
      if (!isAcceptableNonAscii(ch)) return fail('invalid character in domain');
      ascii = false;
    }
  }
  let name = d.toLowerCase();
  if (!ascii) {
    if (!smtputf8) return fail(NON_ASCII_REFUSED, 'utf8');
    // UTS #46 processing; returns '' when the name cannot be converted.
    name = domainToASCII(d);
    if (name === '') return fail('invalid internationalised domain');
  }
  if (octets(name) > MAX_DOMAIN) return fail('domain too long');
  const labels = name.split('.');
  for (const label of labels) {
    if (label === '') return fail('empty label in domain');
    if (label.length > MAX_LABEL) return fail('label too long in domain');
    if (!/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/.test(label)) return fail('invalid label in domain');
  }
  // RFC 1123 §2.1 / RFC 3696 §2: a top-level label is never all digits. Refusing it keeps
  // `u@127.0.0.1` (no brackets) from being taken as a name that a resolver turns into an IP.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return fail('numeric top-level label');
  return { domain: name, utf8: !ascii };
}

/** address-literal (RFC 5321 §4.1.3): IPv4 and IPv6 only; general literals are refused. */
function parseAddressLiteral(d: string): Failure | DomainPart {
  if (!d.endsWith(']')) return fail('unterminated address literal');
  const body = d.slice(1, -1);
  if (/^ipv6:/i.test(body)) {
    const addr = body.slice(5);
    // node's isIP accepts a zone id ("fe80::1%eth0"), which the RFC grammar does not.
    if (addr.includes('%') || isIP(addr) !== 6) return fail('invalid IPv6 address literal');
    const canonical = canonicalIPv6(addr);
    return { domain: `[ipv6:${canonical}]`, utf8: false, ipLiteral: canonical };
  }
  if (body.includes(':')) {
    // General-address-literal = Standardized-tag ":" 1*dcontent
    return /^[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+$/.test(body)
      ? fail('general address literal not supported', 'refused')
      : fail('invalid address literal');
  }
  // node's isIP refuses leading zeros ("010.0.0.1"), which some stacks read as octal.
  if (isIP(body) !== 4) return fail('invalid IPv4 address literal');
  return { domain: `[${body}]`, utf8: false, ipLiteral: body };
}

function canonicalIPv6(addr: string): string {
  try {
    return new SocketAddress({ address: addr, family: 'ipv6' }).address;
  } catch {
    return addr.toLowerCase();
  }
}

function parseDomainPart(d: string, smtputf8: boolean): Failure | DomainPart {
  if (d.startsWith('[')) return parseAddressLiteral(d);
  // A fully qualified name may end in the root's dot; one is removed and flagged.
  if (d.length > 1 && d.endsWith('.')) {
    const r = parseDomainName(d.slice(0, -1), smtputf8);
    return isFailure(r) ? r : { ...r, trailingDot: true };
  }
  return parseDomainName(d, smtputf8);
}

/** Mailbox = Local-part "@" ( Domain / address-literal ) (RFC 5321 §4.1.2). */
function parseMailboxText(s: string, smtputf8: boolean, extra: readonly AddressFlag[]): Failure | Mailbox {
  if (s === '') return fail('missing @');
  const local = parseLocal(s, smtputf8);
  if (isFailure(local)) return local;
  const domain = parseDomainPart(s.slice(local.end + 1), smtputf8);
  if (isFailure(domain)) return domain;
  const flags = new Set<AddressFlag>([...local.flags, ...extra]);
  if (domain.ipLiteral !== undefined) flags.add('ip-literal');
  if (domain.trailingDot) flags.add('trailing-dot');
  if (domain.utf8) flags.add('utf8');
  return makeMailbox(local.local, domain.domain, flags, domain.ipLiteral);
}

function makeMailbox(local: string, domain: string, flags: ReadonlySet<AddressFlag>, ipLiteral?: string): Mailbox {
  const mailbox: Mailbox = {
    local,
    domain,
    address: `${local}@${domain}`,
    flags: FLAG_ORDER.filter((f) => flags.has(f)),
  };
  return ipLiteral === undefined ? mailbox : { ...mailbox, ipLiteral };
}

/**
 * A-d-l = At-domain *( "," At-domain ), ended by ":" (RFC 5321 §4.1.2). Source routes are
 * accepted but ignored (RFC 5321 §4.1.1.3, Appendix C): returns the text after the route.
 */
function skipSourceRoute(s: string, smtputf8: boolean): Failure | { rest: string } {
  const colon = s.indexOf(':');
  if (colon < 0) return fail('malformed source route');
  for (const hop of s.slice(0, colon).split(',')) {
    if (!hop.startsWith('@')) return fail('malformed source route');
    const d = parseDomainName(hop.slice(1), smtputf8);
    if (isFailure(d)) return d.kind === 'syntax' ? fail('malformed source route') : d;
  }
  return { rest: s.slice(colon + 1) };
}

function toResult(f: Failure, role: Role): ParseFailure {
  // RFC 3463 §3.2: X.1.7 bad sender's mailbox syntax, X.1.3 bad destination mailbox syntax.
  const enhanced = role === 'sender' ? '5.1.7' : '5.1.3';
  if (f.kind === 'utf8') return { ok: false, error: f.failure, code: 553, enhanced: '5.6.7' };
  return { ok: false, error: f.failure, code: f.kind === 'refused' ? 553 : 501, enhanced };
}

/** Parses the path argument of MAIL FROM / RCPT TO, parameters already split off. */
export function parsePath(raw: string, opts: PathOptions): ParseResult {
  const role: Role = opts.role ?? (opts.allowNull ? 'sender' : 'recipient');
  const r = parsePathInner(raw, opts, role);
  return r === null || !isFailure(r) ? { ok: true, mailbox: r } : toResult(r, role);
}

function parsePathInner(raw: string, opts: PathOptions, role: Role): Failure | Mailbox | null {
  // Spaces around the whole path are tolerated (many clients send "MAIL FROM: <a@b>").
  const text = raw.replace(/^[ \t]+|[ \t]+$/g, '');
  if (text === '') return fail('empty path');
  const extra: AddressFlag[] = [];
  let inner: string;
  if (text.startsWith('<')) {
    if (!text.endsWith('>') || text.length < 2) {
      return fail(text.includes('>') ? 'text after path' : 'unbalanced angle brackets');
    }
    inner = text.slice(1, -1);
    if (inner === '') return opts.allowNull ? null : fail('null path not allowed');
  } else {
    if (opts.allowNoBrackets === false) return fail('angle brackets required');
    inner = text;
    extra.push('no-brackets');
  }
  if (octets(inner) > MAX_MAILBOX) return fail('path too long');
  if (role === 'recipient' && opts.postmasterDomain !== undefined && inner.toLowerCase() === 'postmaster') {
    return makeMailbox(inner, normaliseDomain(opts.postmasterDomain), new Set(extra));
  }
  if (inner.startsWith('@')) {
    const route = skipSourceRoute(inner, opts.smtputf8);
    if (isFailure(route)) return route;
    inner = route.rest;
    extra.push('source-route');
  }
  return parseMailboxText(inner, opts.smtputf8, extra);
}

/** Parses a bare mailbox (`local@domain`, no brackets, no route), e.g. from config or the CLI. */
export function parseMailbox(text: string, opts: MailboxOptions = {}): MailboxResult {
  const role = opts.role ?? 'recipient';
  const s = text.replace(/^[ \t]+|[ \t]+$/g, '');
  const r = octets(s) > MAX_MAILBOX ? fail('path too long') : parseMailboxText(s, opts.smtputf8 ?? true, []);
  return isFailure(r) ? toResult(r, role) : { ok: true, mailbox: r };
}

/**
 * Lower-cases, strips one trailing dot and turns U-labels into A-labels (also canonicalises an
 * address literal). It does not validate: text that is no valid domain comes back only
 * lower-cased, so it never equals a valid one; use isValidDomain to refuse it.
 */
export function normaliseDomain(d: string): string {
  const t = d.length > 1 && d.endsWith('.') ? d.slice(0, -1) : d;
  const r = t.startsWith('[') ? parseAddressLiteral(t) : parseDomainName(t, true);
  return isFailure(r) ? t.toLowerCase() : r.domain;
}

/** A host name we could receive mail for: LDH labels or U-labels, one trailing dot allowed, no literals. */
export function isValidDomain(d: string): boolean {
  const t = d.length > 1 && d.endsWith('.') ? d.slice(0, -1) : d;
  return !isFailure(parseDomainName(t, true));
}
