// Command-line syntax: splits a line into verb and argument, and splits MAIL FROM / RCPT TO
// arguments into the raw path and ESMTP parameters (RFC 5321 §4.1.2). No address validation
// here: the session parses the path with its own RFC 5321 parser.

export interface CommandLine {
  /** Upper-cased verb. */
  readonly verb: string;
  /** Everything after the first space ('' when none). */
  readonly arg: string;
}

export function splitCommand(line: string): CommandLine {
  const sp = line.indexOf(' ');
  if (sp === -1) return { verb: line.toUpperCase(), arg: '' };
  return { verb: line.slice(0, sp).toUpperCase(), arg: line.slice(sp + 1) };
}

export interface PathAndParams {
  readonly path: string;
  readonly params: Map<string, string | true>;
}

export type PathParseResult = { readonly ok: true; readonly value: PathAndParams } | { readonly ok: false; readonly error: string };

// RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// esmtp-value = 1*(%d33-60 / %d62-126), widened by RFC 6531 §3.3 to UTF-8 (non-ASCII) characters.
const VALUE = /^[\x21-\x3c\x3e-\x7e\u0080-\uffff]+$/;

/**
 * Parses `FROM:<path> KEY=VALUE KEY` (keyword 'FROM') or `TO:<path> ...` (keyword 'TO').
 * One space after the colon is tolerated, as many clients send it.
 */
export function parsePathAndParams(arg: string, keyword: 'FROM' | 'TO'): PathParseResult {
  const prefix = `${keyword}:`;
  if (arg.length < prefix.length || arg.slice(0, prefix.length).toUpperCase() !== prefix) {
    return { ok: false, error: `Syntax: ${keyword === 'FROM' ? 'MAIL FROM' : 'RCPT TO'}:<address>` };
  }
  let i = prefix.length;
  if (arg[i] === ' ') i++;
  let end: number; // index just past the path
  if (arg[i] === '<') {
    end = findClosingBracket(arg, i + 1);
    if (end === -1) return { ok: false, error: 'Syntax: unterminated <path>' };
  } else {
    // A path without brackets (not RFC 5321, but sent by some old clients): up to the first space.
    const sp = arg.indexOf(' ', i);
    end = sp === -1 ? arg.length : sp;
  }
  const path = arg.slice(i, end);
  if (path.length === 0) return { ok: false, error: `Syntax: ${keyword === 'FROM' ? 'MAIL FROM' : 'RCPT TO'}:<address>` };
  const params = new Map<string, string | true>();
  const rest = arg.slice(end);
  if (rest.length > 0) {
    if (rest[0] !== ' ') return { ok: false, error: 'Syntax: expected a space after the address' };
    for (const item of rest.split(' ')) {
      if (item === '') continue; // tolerate repeated spaces between parameters
      const eq = item.indexOf('=');
      const key = (eq === -1 ? item : item.slice(0, eq)).toUpperCase();
      if (!KEYWORD.test(key)) return { ok: false, error: 'Syntax: bad parameter name' };
      if (params.has(key)) return { ok: false, error: `Syntax: duplicate parameter ${key}` };
      if (eq === -1) {
        params.set(key, true);
      } else {
        const value = item.slice(eq + 1);
        if (!VALUE.test(value)) return { ok: false, error: `Syntax: bad value for parameter ${key}` };
        params.set(key, value);
      }
    }
  }
  return { ok: true, value: { path, params } };
}

/**
 * Index just past the '>' that closes a path opened at `from - 1`, honouring quoted local parts
 * (which may hold spaces, '>' and backslash escapes), or -1. A linear scan: no regex backtracking.
 */
function findClosingBracket(s: string, from: number): number {
  let quoted = false;
  for (let i = from; i < s.length; i++) {
    const ch = s[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === '>') {
      return i + 1;
    }
  }
  return -1;
}

/** True when the string holds any non-ASCII character (RFC 6531 §3.4 needs SMTPUTF8 for those). */
export function hasNonAscii(s: string): boolean {
  return /[^\x00-\x7f]/.test(s);
}

/** RFC 3030 §2: `BDAT chunk-size [SP end-marker]`, chunk-size = 1*DIGIT. */
export function parseBdatArgs(arg: string): { size: number; last: boolean } | undefined {
  const m = /^([0-9]{1,15})(?: (LAST))?$/i.exec(arg);
  if (!m) return undefined;
  return { size: Number(m[1]), last: m[2] !== undefined };
}
