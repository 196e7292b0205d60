// The lookup tables a Postfix config names ("hash:/etc/postfix/virtual"), read from their text
// sources: for hash/btree/lmdb/cdb/dbm the file postmap(1) compiled the .db from (same path
// without .db), texthash and cidr as they are, regexp/pcre pattern by pattern. Tables on servers
// (mysql, ldap, ...) cannot be read here: they are reported, never guessed.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface MapEntry {
  readonly key: string;
  readonly value: string;
  /** "virtual:12". */
  readonly source: string;
}

export type MapRead =
  | { readonly kind: 'table'; readonly type: string; readonly file: string; readonly entries: MapEntry[] }
  /** regexp/pcre: keys are patterns ("/^a@b$/"); the caller translates what is literal. */
  | { readonly kind: 'patterns'; readonly type: string; readonly file: string; readonly entries: MapEntry[] }
  | { readonly kind: 'cidr'; readonly type: string; readonly file: string; readonly entries: MapEntry[] }
  | { readonly kind: 'passwd'; readonly type: string }
  | { readonly kind: 'unreadable'; readonly type: string; readonly why: string; readonly fix: string };

const TEXT_SOURCED = new Set(['hash', 'btree', 'lmdb', 'cdb', 'dbm', 'sdbm', 'texthash']);

/** Resolves an absolute path of the old server under `root` ("/" for this machine). */
export function underRoot(root: string, p: string): string {
  return root === '/' || !path.isAbsolute(p) ? p : path.join(root, p);
}

/** Reads "type:name" (proxy: is ignored: it only changes who opens the table). */
export function readMap(ref: string, root: string, format: 'table' | 'aliases' = 'table'): MapRead {
  let r = ref.trim();
  while (r.startsWith('proxy:')) r = r.slice('proxy:'.length);
  const colon = r.indexOf(':');
  const type = colon > 0 ? r.slice(0, colon) : 'hash';
  const name = colon > 0 ? r.slice(colon + 1) : r;
  if (type === 'unix' && name === 'passwd.byname') return { kind: 'passwd', type };
  if (type === 'inline') {
    const body = name.replace(/^\{\s*|\s*\}$/g, '');
    const entries = body
      .split(/,\s*|\s+(?=[^=\s]+=)/)
      .filter((s) => s.includes('='))
      .map((s) => ({ key: s.slice(0, s.indexOf('=')).trim(), value: s.slice(s.indexOf('=') + 1).trim(), source: `inline:${ref}` }));
    return { kind: 'table', type, file: 'inline', entries };
  }
  if (TEXT_SOURCED.has(type) || type === 'regexp' || type === 'pcre' || type === 'cidr') {
    const source = underRoot(root, name.replace(/\.(db|lmdb|cdb)$/, ''));
    if (!existsSync(source)) {
      return { kind: 'unreadable', type, why: `the text source ${name} of ${ref} is not there (only the compiled table?)`, fix: `run "postmap -s ${ref}" on the old server to print it, save it as ${name} and import again` };
    }
    const file = path.basename(source);
    const text = readFileSync(source, 'utf8');
    if (type === 'regexp' || type === 'pcre') return { kind: 'patterns', type, file, entries: parsePatterns(text, file) };
    if (format === 'aliases' && type !== 'cidr') return { kind: 'table', type, file, entries: parseAliases(text, file).map((a) => ({ key: a.name, value: a.targets.join(', '), source: a.source })) };
    return { kind: type === 'cidr' ? 'cidr' : 'table', type, file, entries: parseTable(text, file) };
  }
  return {
    kind: 'unreadable',
    type,
    why: `${type}: tables live in a server or program that the importer does not query`,
    fix: `export the table as "key value" lines (e.g. "postmap -s" or a query), point the setting at hash:<that file> and import again, or add the entries with mailward user add / alias add`,
  };
}

/** postmap(1) source: "key value", white space at a line's start continues the previous line. */
export function parseTable(text: string, file: string): MapEntry[] {
  const out: Array<{ key: string; value: string; source: string }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (/^\s*#/.test(raw) || raw.trim() === '') return;
    const last = out[out.length - 1];
    if (/^\s/.test(raw) && last) {
      last.value += ` ${raw.trim()}`;
      return;
    }
    const m = /^(\S+)\s*(.*)$/.exec(raw.trim())!;
    out.push({ key: m[1]!, value: m[2]!.trim(), source: `${file}:${i + 1}` });
  });
  return out;
}

/** regexp_table(5) / pcre_table(5): "/pattern/flags result"; if/endif blocks are kept as keys so they are reported. */
function parsePatterns(text: string, file: string): MapEntry[] {
  const out: MapEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = /^(!?\/(?:\\.|[^/])*\/[a-zA-Z]*)\s*(.*)$/.exec(t);
    out.push(m ? { key: m[1]!, value: m[2]!, source: `${file}:${i + 1}` } : { key: t, value: '', source: `${file}:${i + 1}` });
  });
  return out;
}

/**
 * The exact access-map key a regexp/pcre pattern means, when it is a plain literal: /^a@b\.c$/ is
 * a@b.c, /@b\.c$/ the domain b.c, /\.b\.c$/ its subdomains .b.c. Anything else is undefined:
 * translating a real regular expression into access keys could widen or narrow it.
 */
export function literalKey(pattern: string): string | undefined {
  const m = /^\/(.*)\/([a-zA-Z]*)$/.exec(pattern);
  if (!m || /[^i]/.test(m[2]!)) return undefined;
  const body = m[1]!;
  const lit = (s: string): string | undefined => (/^(?:\\[.+\-@]|[A-Za-z0-9_@-])+$/.test(s) ? s.replace(/\\(.)/g, '$1').toLowerCase() : undefined);
  let x: RegExpExecArray | null;
  if ((x = /^\^(.+)\$$/.exec(body))) return lit(x[1]!);
  if ((x = /^@(.+)\$$/.exec(body))) return lit(x[1]!);
  if ((x = /^\\\.(.+)\$$/.exec(body))) {
    const d = lit(x[1]!);
    return d && !d.includes('@') ? `.${d}` : undefined;
  }
  return undefined;
}

export interface AliasEntry {
  readonly name: string;
  readonly targets: readonly string[];
  readonly source: string;
}

/** aliases(5): "name: target, target", continuation lines start with white space. */
export function parseAliases(text: string, file: string): AliasEntry[] {
  const out: Array<{ name: string; value: string; source: string }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (/^\s*#/.test(raw) || raw.trim() === '') return;
    const last = out[out.length - 1];
    if (/^\s/.test(raw) && last) {
      last.value += `, ${raw.trim()}`;
      return;
    }
    const m = /^("[^"]+"|[^:\s]+)\s*:\s*(.*)$/.exec(raw.trim());
    if (m) out.push({ name: m[1]!.replace(/^"|"$/g, '').toLowerCase(), value: m[2]!, source: `${file}:${i + 1}` });
  });
  return out.map((e) => ({ name: e.name, targets: splitTargets(e.value), source: e.source }));
}

/** Comma-separated targets, where a quoted "|command, with commas" stays whole. */
export function splitTargets(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out.map((t) => t.replace(/^"(.*)"$/, '$1'));
}

export interface PasswdUser {
  readonly name: string;
  readonly uid: number;
  readonly home: string;
  readonly source: string;
}

/** /etc/passwd accounts that are people (uid 1000..59999, Debian's range), not system accounts. */
export function readPasswd(file: string): PasswdUser[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((line, i) => ({ f: line.split(':'), i }))
    .filter(({ f }) => f.length >= 7 && Number(f[2]) >= 1000 && Number(f[2]) < 60000)
    .map(({ f, i }) => ({ name: f[0]!.toLowerCase(), uid: Number(f[2]), home: f[5]!, source: `passwd:${i + 1}` }));
}
