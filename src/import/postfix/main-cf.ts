// Reads Postfix's main.cf as Postfix does (postconf(5)): "name = value" lines, a line that starts
// with white space continues the one before, '#' lines are comments. Each value keeps the line it
// came from, so every report item can point at main.cf:LINE. $name and ${name} are expanded here.
import { readFileSync } from 'node:fs';

export interface Param {
  readonly name: string;
  readonly value: string;
  /** "main.cf:12", "master.cf:17 (-o)", or "default" / "postconf -d". */
  readonly source: string;
}

/** Parses main.cf text; later definitions of a name replace earlier ones (as postconf does). */
export function parseMainCf(text: string, file = 'main.cf'): Map<string, Param> {
  return new Map(parseMainCfLines(text, file).map((p) => [p.name, p]));
}

/** Every definition in main.cf, in order, a name defined twice included (postconf warns about those); lines that are none go to `bad`. */
export function parseMainCfLines(text: string, file = 'main.cf', bad: Array<{ source: string; text: string }> = []): Param[] {
  const params: Param[] = [];
  let current: { name: string; value: string; line: number } | undefined;
  const flush = (): void => {
    if (current) params.push({ name: current.name, value: current.value.trim().replace(/\s+/g, ' '), source: `${file}:${current.line}` }); // runs of white space read as one, as postconf prints them
    current = undefined;
  };
  text.split(/\r?\n/).forEach((raw, i) => {
    if (/^\s*#/.test(raw) || raw.trim() === '') return; // comments and blank lines do not end a continuation
    if (/^\s/.test(raw)) {
      if (current) current.value += ` ${raw.trim()}`;
      return;
    }
    flush();
    const m = /^([A-Za-z0-9_.-]+)\s*=\s*(.*)$/.exec(raw);
    if (m) current = { name: m[1]!, value: m[2]!, line: i + 1 };
    else bad.push({ source: `${file}:${i + 1}`, text: raw.trim() }); // postconf: fatal: missing '=' after attribute name
  });
  flush();
  return params;
}

export function readMainCf(path: string): Map<string, Param> {
  return parseMainCf(readFileSync(path, 'utf8'));
}

/**
 * Expands $name, ${name} and $(name) with `lookup`, recursively (postconf -x). Postfix's
 * conditional forms ${name?text} and ${name:text} are honoured; `${{$compatibility_level} <level
 * {2} ? {a} : {b}}` (postconf -d of Postfix 3.6+) is evaluated against compatibility_level.
 */
export function expand(value: string, lookup: (name: string) => string | undefined, depth = 0): string {
  if (depth > 20) return value; // a loop of $a = $b, $b = $a: Postfix refuses it too
  const again = (v: string): string => expand(v, lookup, depth + 1);
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c !== '$') {
      out += c;
      continue;
    }
    const next = value[i + 1];
    if (next === '$') {
      out += '$';
      i++;
      continue;
    }
    if (next === '{' || next === '(') {
      const close = matching(value, i + 1);
      if (close < 0) {
        out += value.slice(i);
        break;
      }
      const inner = value.slice(i + 2, close);
      i = close;
      out += expandBraced(inner, lookup, again);
      continue;
    }
    const m = /^[A-Za-z0-9_]+/.exec(value.slice(i + 1));
    if (!m) {
      out += c;
      continue;
    }
    out += again(lookup(m[0]) ?? '');
    i += m[0].length;
  }
  return out;
}

function matching(s: string, open: number): number {
  const o = s[open]!;
  const c = o === '{' ? '}' : ')';
  let depth = 0;
  for (let j = open; j < s.length; j++) {
    if (s[j] === o) depth++;
    else if (s[j] === c && --depth === 0) return j;
  }
  return -1;
}

function expandBraced(inner: string, lookup: (name: string) => string | undefined, again: (v: string) => string): string {
  // ${{$compatibility_level} <level {2} ? {subnet} : {host}}
  const cmp = /^\{([^}]*)\}\s*(<level|<=level|>level|>=level|==|!=|<|<=|>|>=)\s*\{([^}]*)\}\s*\?\s*\{([^}]*)\}\s*:\s*\{([^}]*)\}$/.exec(inner.trim());
  if (cmp) {
    const a = again(cmp[1]!).trim();
    const b = again(cmp[3]!).trim();
    return again(compare(a, cmp[2]!, b) ? cmp[4]! : cmp[5]!);
  }
  const cond = /^([A-Za-z0-9_]+)([?:])(.*)$/s.exec(inner);
  if (cond) {
    const v = lookup(cond[1]!) ?? '';
    const set = again(v).trim() !== '' && !/^(no|false|0)$/i.test(again(v).trim());
    const text = cond[3]!.replace(/^\{(.*)\}$/s, '$1');
    if (cond[2] === '?') return set ? again(text) : '';
    return set ? '' : again(text);
  }
  return again(lookup(inner) ?? '');
}

/** Postfix's compatibility levels compare as dotted numbers ("3.6" > "2"). */
function compare(a: string, op: string, b: string): boolean {
  const num = (s: string): number[] => s.split('.').map((p) => Number(p) || 0);
  const x = num(a);
  const y = num(b);
  let d = 0;
  for (let i = 0; i < Math.max(x.length, y.length) && d === 0; i++) d = (x[i] ?? 0) - (y[i] ?? 0);
  switch (op.replace('level', '')) {
    case '<':
      return d < 0;
    case '<=':
      return d <= 0;
    case '>':
      return d > 0;
    case '>=':
      return d >= 0;
    case '==':
      return a === b;
    default:
      return a !== b;
  }
}

/** A Postfix list value split into its elements (commas and/or white space separate them). */
export function listOf(value: string): string[] {
  // "check_policy_service { inet:127.0.0.1:10023, timeout=10s }" keeps its braces together.
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of value) {
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (depth === 0 && (ch === ',' || /\s/.test(ch))) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}
