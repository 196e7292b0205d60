// Turns a parsed message into the set of tokens the Bayes classifier counts (after SpamBayes's
// tokenizer): body words, header tokens prefixed by the header's name, URL hosts and paths,
// sender and Received facts, MIME structure. Also reports the facts the rules look at, so a
// message is read once.
import { header, headerAll, type ParsedMessage } from './mime.ts';
import { normaliseText } from './normalise.ts';
import { baseDomain } from './received.ts';

export interface TextFacts {
  /** Words written with a separator between every letter ("v i a g r a"), joined. */
  readonly obfuscated: readonly string[];
  /** Hosts of every URL in the body (lower-case). */
  readonly urlHosts: readonly string[];
  /** Length of the visible body text. */
  readonly textLength: number;
  /** Subject and body text after normalise.ts (case kept), for the rules that read words. */
  readonly text: string;
  /** Invisible characters between letters, words mixing Latin with look-alike letters, and
   * words re-joined from space-split pieces (normalise.ts). */
  readonly invisibleInWords: number;
  readonly mixedScriptWords: number;
  readonly rejoined: readonly string[];
}

export interface Tokenized {
  readonly tokens: ReadonlySet<string>;
  readonly facts: TextFacts;
}

const MIN_WORD = 3;
const MAX_WORD = 12;
const MAX_TOKENS = 3000;
// Pairs of neighbouring words ("remove yourself", "click here") from the start of the text: a
// phrase says more than its words, and the opening of a message says the most. Measured on the
// training part of the public corpus, 60 pairs gain nearly all that pairs can give.
const MAX_PAIRS = 60;

// Scripts written without spaces: their text is cut into overlapping character pairs.
const CJK_RUN = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}ー々]+/gu;
const URL = /\b(?:(?:https?|ftp):\/\/|www\.)[^\s<>"'`{}|\\^\])]+/gi;
// The lookbehind starts a match only at the start of a run, so a long word is scanned once.
const EMAIL = /(?<![a-z0-9._%+-])[a-z0-9._%+-]+@([a-z0-9-]+(?:\.[a-z0-9-]+)+)/gi;
// Four or more single letters with the same separator between each: "v i a g r a", "f.r.e.e",
// "c-a-s-h" (the same one, so "a V-I-A-G-R-A" does not take the article in).
const SPLIT_WORD = /(?<![\p{L}\p{N}])\p{L}([ .\-_*+~|])(?:\p{L}\1){2,}\p{L}(?![\p{L}\p{N}])/gu;
const EDGE_PUNCT = /^[^\p{L}\p{N}$€£¥]+|[^\p{L}\p{N}%!?$]+$/gu;
// The same two patterns for ASCII-only text, where they mean the same and run several times
// faster (a Unicode-aware expression pays for its generality on every character).
const SPLIT_WORD_ASCII = /(?<![A-Za-z0-9])[A-Za-z]([ .\-_*+~|])(?:[A-Za-z]\1){2,}[A-Za-z](?![A-Za-z0-9])/g;
const EDGE_PUNCT_ASCII = /^[^A-Za-z0-9$]+|[^A-Za-z0-9%!?$]+$/g;
const NON_ASCII = /[^\x00-\x7f]/;
// An address in a header field: a run of address characters holding an "@". The lookbehind
// starts a match only at the start of a run, so a long run without "@" is scanned once, not
// once per character (quadratic: 40 ms for one 8 KB From field, found by fuzzing).
const ADDRESS = /(?<![^\s<>"(),;:])[^\s<>"(),;:]+@[^\s<>"(),;:]+/;
const ADDRESSES = new RegExp(ADDRESS.source, 'g');
// "<local@domain>"; no "@" in the local part, so that only one split is tried per "<".
const ANGLE_ADDRESS = /<\s*([^<>\s@]+@[^<>\s]+?)\s*>/;

// Only fields the sender writes are read (below, by name). Fields added on the receiving side
// by filters, delivery agents and mail clients (X-Spam-*, Status, X-Keywords, Delivered-To …)
// say where a copy was kept, not what was sent — a Maildir copy has them while the same message
// at SMTP time does not — and our own X-Spam-* fields could be forged by the sender.
// Headers whose whole value is a useful token (mail software, list and priority markers).
const WHOLE_VALUE = new Set(['x-mailer', 'user-agent', 'x-priority', 'x-msmail-priority', 'importance', 'precedence', 'x-mimeole', 'content-transfer-encoding', 'mime-version', 'x-accept-language', 'organization', 'list-id']);

export function tokenize(msg: ParsedMessage): Tokenized {
  const out = new Set<string>();
  const add = (t: string): void => {
    if (out.size < MAX_TOKENS) out.add(t);
  };
  const urlHosts: string[] = [];
  const obfuscated: string[] = [];

  const subject = headerTokens(msg, add);

  const raw = msg.plain && msg.html ? `${msg.plain}\n${msg.html}` : msg.plain || msg.html;
  // The hiding undone first (look-alike letters, invisible characters, split words), so that
  // Bayes and the rules read the words a person sees.
  const norm = normaliseText(raw);
  // Hosts and paths of HTML links first (the visible text may not show them).
  for (const link of msg.links) urlTokens(link, add, urlHosts);
  const text = textTokens(norm.text, add, urlHosts, obfuscated);

  // MIME structure.
  for (const p of msg.parts) {
    add(`ct:${p.type}`);
    if (p.charset) add(`charset:${p.charset.toLowerCase().replace(/["']/g, '')}`);
    if (p.encoding !== '7bit') add(`cte:${p.encoding}`);
    if (p.filename) {
      const ext = /\.([a-z0-9]{1,8})$/i.exec(p.filename)?.[1];
      add(`filename-ext:${ext ? ext.toLowerCase() : 'none'}`);
    }
  }
  if (msg.hasHtml && !msg.hasPlain) add('mime:html-only');
  if (msg.images > 0) add(`mime:images:${bucket(msg.images)}`);
  add(`mime:parts:${bucket(msg.parts.length)}`);
  const facts = { obfuscated, urlHosts, textLength: text.length, text: `${subject}\n${norm.text}`, invisibleInWords: norm.invisibleInWords, mixedScriptWords: norm.mixedScriptWords, rejoined: norm.rejoined };
  return { tokens: out, facts };
}

/** Tokens of the body text, already through normaliseText (NFKC, invisible characters gone);
 * returns the text with URLs removed. */
function textTokens(normalised: string, add: (t: string) => void, urlHosts: string[], obfuscated: string[]): string {
  const ascii = !NON_ASCII.test(normalised);
  let text = normalised;
  text = text.replace(URL, (u) => {
    urlTokens(u, add, urlHosts);
    return ' ';
  });
  if (text.includes('@')) {
    text = text.replace(EMAIL, (_whole, domain: string) => {
      add(`email:${domain.toLowerCase()}`);
      return ' ';
    });
  }
  text = text.replace(ascii ? SPLIT_WORD_ASCII : SPLIT_WORD, (w, _sep: string, at: number, all: string) => {
    const joined = w.replace(/[ .\-_*+~|]/g, '').toLowerCase();
    add(joined);
    // A letter-spaced line is a heading ("N E W S L E T T E R"); a split word among ordinary
    // words is there to hide from word filters.
    const start = all.lastIndexOf('\n', at) + 1;
    let end = all.indexOf('\n', at + w.length);
    if (end < 0) end = all.length;
    const rest = all.slice(start, at) + ' ' + all.slice(at + w.length, end);
    // Dotted capitals are acronyms (A.L.I.C.E), not hiding.
    const acronym = !/[\p{Ll}]/u.test(w) && !/[^\p{L}.]/u.test(w);
    if (joined.length >= 5 && !acronym && /\p{L}{3,}/u.test(rest) && obfuscated.length < 50) obfuscated.push(joined);
    return ' ';
  });
  if (!ascii) {
    text = text.replace(CJK_RUN, (run) => {
      if (run.length === 1) add(run);
      for (let i = 0; i + 1 < run.length && i < 2000; i++) add(run.slice(i, i + 2));
      return ' ';
    });
  }
  wordTokens(text, add, ascii);
  return text;
}

function wordTokens(text: string, add: (t: string) => void, ascii: boolean): void {
  let prev = '';
  let pairs = 0;
  const edge = ascii ? EDGE_PUNCT_ASCII : EDGE_PUNCT;
  const letter = ascii ? /[A-Za-z]/ : /\p{L}/u;
  for (const raw of text.split(/\s+/)) {
    if (raw.length === 0) continue;
    if (raw.length > 60) {
      // Far too long for a word; also keeps the trim below linear (a run of punctuation as long
      // as the text would make its second alternative quadratic).
      add(`skip:${raw[0]!.toLowerCase()}${Math.min(100, Math.floor(raw.length / 10) * 10)}`);
      continue;
    }
    // Most words are plain letters and digits: skip the trim for them.
    const w = isAlnum(raw.charCodeAt(0)) && isAlnum(raw.charCodeAt(raw.length - 1)) ? raw : raw.replace(edge, '');
    const n = w.length;
    if (n < MIN_WORD) {
      // Runs of "!" or "$" say more than the letters around them.
      if (/^[!?$]{2,}$/.test(raw)) add(`punct:${raw.slice(0, 3)}`);
      continue;
    }
    if (n > MAX_WORD) {
      // SpamBayes's "skip" token: the shape of a long word, not the word.
      add(`skip:${w[0]!.toLowerCase()}${Math.floor(n / 10) * 10}`);
      // Long hyphenated or slashed compounds still carry their parts.
      if (/[-/]/.test(w)) for (const part of w.split(/[-/]+/)) if (part.length >= MIN_WORD && part.length <= MAX_WORD) add(part.toLowerCase());
      continue;
    }
    const lower = w.toLowerCase();
    add(lower);
    if (prev && pairs < MAX_PAIRS) {
      add(`${prev} ${lower}`);
      pairs++;
    }
    prev = lower;
    // Shouting is its own signal, kept beside the plain word.
    if (n >= 4 && lower !== w && w === w.toUpperCase() && letter.test(w)) add(`upper:${lower}`);
  }
}

function isAlnum(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57);
}

function urlTokens(url: string, add: (t: string) => void, urlHosts: string[]): void {
  const m = /^(?:([a-z][a-z0-9+.-]*):)?(?:\/\/)?([^/?#\s]*)([^?#\s]*)/i.exec(url.trim());
  if (!m) return;
  const scheme = (m[1] ?? (url.startsWith('www.') ? 'http' : '')).toLowerCase();
  if (scheme === 'mailto') {
    const domain = /@([^?&\s>]+)/.exec(url)?.[1];
    add(domain ? `mailto:${domain.toLowerCase()}` : 'mailto:');
    return;
  }
  if (scheme && scheme !== 'http' && scheme !== 'https' && scheme !== 'ftp') {
    add(`proto:${scheme.slice(0, 12)}`);
    return;
  }
  add(`proto:${scheme || 'none'}`);
  // user:pass@host hides the real host behind a harmless-looking name.
  let host = (m[2] ?? '').toLowerCase();
  const at = host.lastIndexOf('@');
  if (at >= 0) {
    add('url:userinfo');
    host = host.slice(at + 1);
  }
  host = host.replace(/:\d+$/, '').replace(/\.$/, '');
  if (!host) return;
  if (urlHosts.length < 200) urlHosts.push(host);
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host) || /^\d+$/.test(host)) {
    add('url:ip');
    const o = host.split('.');
    add(`url:${o.slice(0, 2).join('.')}`);
    return;
  }
  for (const d of domainSuffixes(host)) add(`url:${d}`);
  // The first few path pieces ("/cgi-bin/unsubscribe.php") name the kind of page.
  const path = (m[3] ?? '').toLowerCase();
  let n = 0;
  for (const piece of path.split(/[/.=&_-]+/)) {
    if (piece.length < 2 || piece.length > 20 || /^\d+$/.test(piece)) continue;
    add(`url-path:${piece}`);
    if (++n >= 4) break;
  }
}

/** "a.b.example.com" → "a.b.example.com", "b.example.com", "example.com", "com". */
function domainSuffixes(host: string): string[] {
  const labels = host.split('.').filter((l) => l.length > 0);
  const out: string[] = [];
  for (let i = Math.max(0, labels.length - 5); i < labels.length; i++) out.push(labels.slice(i).join('.'));
  return out;
}

/** Adds the header fields' tokens; returns the Subject, normalised. */
function headerTokens(msg: ParsedMessage, add: (t: string) => void): string {
  const subject = header(msg, 'subject');
  let normSubject = '';
  if (subject === undefined) add('subject:none');
  else {
    const s = (normSubject = normaliseText(subject).text);
    const sink: string[] = [];
    const words = new Set<string>();
    textTokensInto(s, (t) => words.add(t), sink);
    for (const w of words) add(`subject:${w}`);
    const letters = s.replace(/[^\p{L}]/gu, '');
    if (letters.length >= 6 && letters === letters.toUpperCase() && letters !== letters.toLowerCase()) add('subject:all-caps');
    // Only the end is looked at: the pattern is quadratic on a long run of blanks.
    if (/\s{3,}\S+$/.test(s.slice(-100))) add('subject:trailing-tag');
  }

  addressTokens('from', header(msg, 'from'), add);
  addressTokens('reply-to', header(msg, 'reply-to'), add);
  addressTokens('return-path', header(msg, 'return-path'), add, true);
  // Whether the sender's names agree with each other: a mailing house writes one domain
  // everywhere, a forger rarely bothers.
  const fromDomain = domainOf(header(msg, 'from'));
  const from2 = fromDomain && baseDomain(fromDomain);
  const align = (what: string, other: string | undefined): void => {
    if (!from2 || !other) return;
    add(`align:from-${what}:${baseDomain(other) === from2 ? 'same' : 'differs'}`);
  };
  align('reply-to', domainOf(header(msg, 'reply-to')));
  align('return-path', domainOf(header(msg, 'return-path')));
  align('message-id', /@([^<>@\s]+)>?\s*$/.exec(header(msg, 'message-id') ?? '')?.[1]?.toLowerCase());

  let rcpts = 0;
  for (const h of ['to', 'cc']) {
    for (const v of headerAll(msg, h)) {
      const addrs = v.match(ADDRESSES) ?? [];
      rcpts += addrs.length;
      for (const a of addrs.slice(0, 5)) add(`${h}:domain:${a.slice(a.lastIndexOf('@') + 1).toLowerCase()}`);
      if (addrs.length === 0) add(`${h}:no-address`);
    }
  }
  add(`rcpts:${bucket(rcpts)}`);

  const mid = header(msg, 'message-id');
  if (mid !== undefined) {
    const m = /^\s*<[^<>@\s]+@([^<>@\s]+)>\s*$/.exec(mid);
    if (m) add(`message-id:@${(m[1] ?? '').toLowerCase().replace(/\d+/g, '#')}`);
    else add('message-id:invalid');
  }

  const date = header(msg, 'date');
  if (date !== undefined) {
    const tz = /([+-]\d{4})\s*(?:\([^)]*\))?\s*$/.exec(date.slice(-80))?.[1];
    add(tz ? `date:tz:${tz}` : 'date:tz:none');
  }

  for (const [name, value] of msg.headers) {
    const n = name.toLowerCase();
    if (WHOLE_VALUE.has(n)) add(`${n}:${value.toLowerCase().replace(/\d+/g, '#').replace(/\s+/g, ' ').slice(0, 60)}`);
  }

  const received = headerAll(msg, 'received');
  add(`received:count:${bucket(received.length)}`);
  // Did the mail pass through a server named in the From domain? Legitimate senders mostly send
  // from their own (or their mailing house's) servers; forged senders do not.
  if (from2) {
    const via = received.some((r) => {
      const m = /\bfrom\s+([a-z0-9.-]+)(?:\s*\(([a-z0-9.-]+)?)?/i.exec(r);
      return [m?.[1], m?.[2]].some((h) => h !== undefined && h.includes('.') && baseDomain(h.toLowerCase()) === from2);
    });
    add(`align:from-received:${via ? 'same' : 'differs'}`);
  }
  for (const r of received.slice(0, 6)) receivedTokens(r, add);
  return normSubject;
}

function textTokensInto(text: string, add: (t: string) => void, hosts: string[]): void {
  // A subject is short: every word counts, down to two letters.
  const ascii = !NON_ASCII.test(text);
  let t = ascii
    ? text
    : text.normalize('NFKC').replace(CJK_RUN, (run) => {
        for (let i = 0; i + 1 < run.length; i++) add(run.slice(i, i + 2));
        if (run.length === 1) add(run);
        return ' ';
      });
  t = t.replace(URL, (u) => {
    hosts.push(u);
    add('url');
    return ' ';
  });
  for (const raw of t.split(/\s+/)) {
    if (/^[!?$]{2,}/.test(raw)) add(`punct:${raw.slice(0, 3)}`);
    if (raw.length > 60) {
      add('skip:60');
      continue;
    }
    const w = raw.replace(ascii ? EDGE_PUNCT_ASCII : EDGE_PUNCT, '');
    if (w.length < 2) continue;
    if (w.length > 20) {
      add(`skip:${Math.floor(w.length / 10) * 10}`);
      continue;
    }
    add(w.toLowerCase());
  }
}

function addressTokens(prefix: string, value: string | undefined, add: (t: string) => void, addressOnly = false): void {
  if (value === undefined) {
    add(`${prefix}:none`);
    return;
  }
  const addr = addressOf(value);
  if (!addr) {
    add(`${prefix}:no-address`);
    return;
  }
  add(`${prefix}:addr:${addr}`);
  const at = addr.lastIndexOf('@');
  const domain = addr.slice(at + 1);
  for (const d of domainSuffixes(domain)) add(`${prefix}:domain:${d}`);
  if (addressOnly) return;
  const name = value.replace(/<[^<>]*>/, '').replace(/["']/g, '').trim();
  if (!name || name === addr) add(`${prefix}:no-name`);
  else for (const w of name.toLowerCase().split(/[\s,.]+/).slice(0, 4)) if (w.length >= 2) add(`${prefix}:name:${w}`);
  if (/\d{3,}/.test(addr.slice(0, at))) add(`${prefix}:local-digits`);
}

/** The address in a From-like field (RFC 5322 §3.4), lower-case, or undefined. */
export function addressOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const angle = ANGLE_ADDRESS.exec(value)?.[1];
  const bare = angle ?? ADDRESS.exec(value)?.[0];
  return bare?.toLowerCase();
}

export function domainOf(value: string | undefined): string | undefined {
  const a = addressOf(value);
  return a === undefined ? undefined : a.slice(a.lastIndexOf('@') + 1).replace(/\.$/, '');
}

function receivedTokens(r: string, add: (t: string) => void): void {
  // RFC 5321 §4.4: "from <helo> (<rdns> [<ip>]) by <host> …"; only names and addresses are
  // kept, never the ids and dates that differ on every message.
  const lower = r.toLowerCase();
  for (const m of lower.matchAll(/\b(?:from|by)\s+([a-z0-9.-]+\.[a-z]{2,})\b/g)) {
    const labels = (m[1] ?? '').split('.');
    add(`received:${labels.slice(-2).join('.')}`);
  }
  for (const m of lower.matchAll(/\(([a-z0-9.-]+\.[a-z]{2,})\s*\[/g)) {
    const labels = (m[1] ?? '').split('.');
    add(`received:${labels.slice(-2).join('.')}`);
  }
  for (const m of lower.matchAll(/\[(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}\]/g)) {
    add(`received:ip:${m[1]}.${m[2]}`);
    add(`received:ip:${m[1]}.${m[2]}.${m[3]}`);
  }
  if (/\bwith\s+(e?smtps?a?)\b/.test(lower)) add(`received:with:${/\bwith\s+(e?smtps?a?)\b/.exec(lower)?.[1]}`);
  if (/unknown|may be forged/.test(lower)) add('received:unknown-or-forged');
  // Reverse names of home connections ("adsl-1-2-3-4.isp.net", "pool123.dyn.example"): mail
  // straight from one is nearly always from an infected machine.
  const rdns = /\(([a-z0-9.-]+)\s*\[\d/.exec(lower)?.[1];
  if (rdns && /(?:\d+[-.]\d+[-.]\d+|dsl|dyn|pool|dial|ppp|cable|dhcp|client|user)/.test(rdns)) add('received:dynamic-rdns');
}

/** 0, 1, 2, 3, 4-7, 8-15, … : counts by order of magnitude. */
function bucket(n: number): string {
  if (n < 4) return String(n);
  const lo = 2 ** Math.floor(Math.log2(n));
  return `${lo}+`;
}
