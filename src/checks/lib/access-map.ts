// The access-map matcher shared by client-access, helo-access, sender-access and
// recipient-access: Postfix-like `key action [text]` entries from the config and/or a file that
// is re-read when it changes (a stat at most once a second), and the verdict each action gives.
import { z } from 'zod';
import type { Mailbox } from '../../core/address.ts';
import { perm, reply, temp } from '../../core/reply.ts';
import { PASS, defer, discard, permit, reject, type Verdict } from '../../core/verdict.ts';
import type { CheckEnv } from '../../pipeline/check.ts';
import { NetworkTable, parseIp, parseNetwork, type Ip } from '../../core/net.ts';
import { WatchedFile } from './watched-file.ts';

/** What an entry tells the check to do. */
export type AccessAction =
  /** Accept now, skip the rest of the stage's list (Postfix OK). */
  | { readonly kind: 'ok' }
  /** Stop looking in this map and let the next check decide (Postfix DUNNO). */
  | { readonly kind: 'dunno' }
  | { readonly kind: 'reject' | 'defer' | 'discard' | 'hold'; readonly text?: string }
  /** An explicit reply, e.g. `550 5.7.1 No mail from you` or `421 try later`. */
  | { readonly kind: 'code'; readonly code: number; readonly enhanced?: string; readonly text?: string };

export interface AccessRule {
  readonly key: string;
  readonly action: AccessAction;
  /** Where the entry was written: `config` or `file:LINE`. */
  readonly source: string;
}

/** What kind of keys a map holds. */
export type KeyKind =
  /** IP addresses and CIDR ranges (client-access). */
  | 'network'
  /** Host names, `.parent` domains and address literals (helo-access). */
  | 'domain'
  /** Addresses, `user@`, domains, `.parent` domains and `<>` for the null sender. */
  | 'address';

/** Options every access check takes. */
export const AccessOptions = z
  .object({
    /** Entries written in the config: key → "action [text]", e.g. `spam.example: reject No thanks`. */
    entries: z.record(z.string().min(1), z.string().min(1)).default({}),
    /** A file of `key action [text]` lines ('#' starts a comment line), re-read when it changes. */
    file: z.string().min(1).optional(),
  })
  .strict();
export type AccessOptions = z.output<typeof AccessOptions>;

// RFC 1035 §2.3.1 labels, with '_' tolerated (seen in real host names).
const DOMAIN_RE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** Parses the action part of an entry; a string is the reason it is not an action. */
export function parseAction(text: string): AccessAction | string {
  const t = text.trim().replace(/[\x00-\x1f\x7f]+/g, ' ');
  const word = /^(\S+)(?:\s+(.*))?$/.exec(t);
  if (!word) return 'the action is empty';
  const verb = word[1]!.toLowerCase();
  const rest = word[2]?.trim() || undefined;
  switch (verb) {
    case 'ok':
    case 'permit':
      return { kind: 'ok' };
    case 'dunno':
      return { kind: 'dunno' };
    case 'reject':
    case 'defer':
    case 'discard':
    case 'hold':
      return rest === undefined ? { kind: verb } : { kind: verb, text: rest };
  }
  const num = /^([45])\d\d$/.exec(verb);
  if (num) {
    const enh = rest ? /^([245])\.\d{1,3}\.\d{1,3}(?:\s+(.*))?$/.exec(rest) : null;
    if (enh && enh[1] !== num[1]) return `the enhanced code in "${t}" must start with ${num[1]} like its reply code`;
    const text = enh ? enh[2]?.trim() || undefined : rest;
    const enhanced = enh ? rest!.split(/\s+/)[0] : undefined;
    return { kind: 'code', code: Number(verb), ...(enhanced ? { enhanced } : {}), ...(text ? { text } : {}) };
  }
  return `"${word[1]}" is not an action; use ok, dunno, reject, defer, discard, hold or a 4xx/5xx reply code`;
}

/** Normalises a key of the given kind; a string result is the reason it is not valid. */
function parseKey(raw: string, kind: KeyKind): { key: string } | string {
  const k = raw.trim().toLowerCase().replace(/\.$/, '');
  if (kind === 'network') {
    return parseNetwork(k) ? { key: k } : `"${raw}" is not an IP address or CIDR range`;
  }
  if (kind === 'address' && k === '<>') return { key: k };
  if (kind === 'domain' && /^\[.*\]$/.test(k)) return parseIp(k) ? { key: k } : `"${raw}" is not an address literal`;
  const at = k.lastIndexOf('@');
  if (kind === 'address' && at >= 0) {
    const domain = k.slice(at + 1);
    if (at === 0) return `"${raw}" has no local part`;
    if (domain === '' || DOMAIN_RE.test(domain) || /^\[.*\]$/.test(domain)) return { key: k };
    return `"${raw}" is not an address`;
  }
  const domain = k.startsWith('.') ? k.slice(1) : k;
  if (DOMAIN_RE.test(domain)) return { key: k };
  return `"${raw}" is not a ${kind === 'address' ? 'address or domain' : 'domain'}`;
}

interface Table {
  readonly exact: Map<string, AccessRule>;
  readonly networks: NetworkTable<AccessRule>;
}

interface ParseResult {
  readonly rules: AccessRule[];
  readonly problems: string[];
}

function parseEntries(entries: Iterable<readonly [string, string, string]>, kind: KeyKind): ParseResult {
  const rules: AccessRule[] = [];
  const problems: string[] = [];
  for (const [rawKey, rawAction, source] of entries) {
    const key = parseKey(rawKey, kind);
    const action = parseAction(rawAction);
    if (typeof key === 'string') problems.push(`${source}: ${key}`);
    else if (typeof action === 'string') problems.push(`${source}: ${action}`);
    else rules.push({ key: key.key, action, source });
  }
  return { rules, problems };
}

export function parseMapFile(text: string, kind: KeyKind): ParseResult {
  const lines: Array<[string, string, string]> = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = /^(\S+)\s+(\S.*)$/.exec(t);
    if (!m) problems.push(`line ${i + 1}: "${t}" has a key but no action`);
    else lines.push([m[1]!, m[2]!, `line ${i + 1}`]);
  });
  const parsed = parseEntries(lines, kind);
  return { rules: parsed.rules, problems: [...problems, ...parsed.problems] };
}

function buildTable(config: readonly AccessRule[], file: readonly AccessRule[], kind: KeyKind): { table: Table; duplicates: string[] } {
  const exact = new Map<string, AccessRule>();
  const networks = new NetworkTable<AccessRule>();
  const duplicates: string[] = [];
  // The config's entries come first: for a key in both, the config wins.
  for (const r of [...config, ...file]) {
    if (exact.has(r.key)) {
      duplicates.push(`${r.source}: "${r.key}" is already listed (${exact.get(r.key)!.source}); this entry is ignored`);
      continue;
    }
    exact.set(r.key, r);
    if (kind === 'network') networks.add(parseNetwork(r.key)!, r);
  }
  return { table: { exact, networks }, duplicates };
}

/** One compiled access map: the config's entries plus the file's, the file re-read when it changes. */
export class AccessMap {
  private table: Table;
  private readonly configRules: readonly AccessRule[];
  private readonly file: WatchedFile<readonly AccessRule[]> | undefined;
  private fileRules: readonly AccessRule[];

  constructor(
    private readonly check: string,
    private readonly kind: KeyKind,
    opts: AccessOptions,
    private readonly env: Pick<CheckEnv, 'clock' | 'log'>,
  ) {
    const cfg = parseEntries(
      Object.entries(opts.entries).map(([k, v]) => [k, v, `config`] as const),
      kind,
    );
    if (cfg.problems.length > 0) {
      throw new Error(`checks.${check}.entries: ${cfg.problems.map((p) => p.replace(/^config: /, '')).join('; ')}. Fix: ${fixText(kind)}`);
    }
    this.configRules = cfg.rules;
    this.file =
      opts.file === undefined
        ? undefined
        : new WatchedFile({
            setting: `checks.${check}.file`,
            check,
            path: opts.file,
            parse: (text) => {
              const r = parseMapFile(text, kind);
              return { value: r.rules, problems: r.problems };
            },
            fix: fixText(kind),
            env,
          });
    this.fileRules = [];
    this.table = this.rebuild(this.file?.peek() ?? []);
  }

  /** The first entry among `keys` (in order), after re-reading the file if it changed. */
  async lookup(keys: readonly string[]): Promise<AccessRule | undefined> {
    const t = await this.fresh();
    for (const k of keys) {
      const r = t.exact.get(k);
      if (r) return r;
    }
    return undefined;
  }

  /** The entry of the narrowest range that holds `ip`. */
  async lookupIp(ip: Ip): Promise<AccessRule | undefined> {
    return (await this.fresh()).networks.match(ip)?.value;
  }

  private async fresh(): Promise<Table> {
    if (!this.file) return this.table;
    const rules = await this.file.current();
    if (rules !== this.fileRules) this.table = this.rebuild(rules);
    return this.table;
  }

  private rebuild(fileRules: readonly AccessRule[]): Table {
    this.fileRules = fileRules;
    const { table, duplicates } = buildTable(this.configRules, fileRules, this.kind);
    for (const d of duplicates) this.env.log.warn({ check: this.check }, `access map: ${d}`);
    return table;
  }
}

function fixText(kind: KeyKind): string {
  const keys =
    kind === 'network'
      ? 'an IP address or CIDR range (192.0.2.7, 198.51.100.0/24, 2001:db8::/32)'
      : kind === 'domain'
        ? 'a host name (mail.example.com), a parent domain (.example.com) or an address literal ([192.0.2.7])'
        : 'an address (user@example.com), a local part (user@), a domain (example.com), a parent domain (.example.com) or <>';
  return `write each entry as "key action [text]" with key ${keys} and action ok, dunno, reject, defer, discard, hold or a 4xx/5xx code`;
}

/** Keys for an address, most specific first (Postfix's order): user@domain, domain, .parents, user@. */
export function addressKeys(m: Mailbox | null): string[] {
  if (m === null) return ['<>'];
  const domain = m.domain.toLowerCase();
  const local = m.local.toLowerCase();
  return [`${local}@${domain}`, ...domainKeys(domain), `${local}@`];
}

/** Keys for a domain: the name itself, then each parent with a leading dot (`.example.com`). */
export function domainKeys(name: string): string[] {
  const d = name.toLowerCase().replace(/\.$/, '');
  if (d.startsWith('[')) return [d];
  const keys = [d];
  const labels = d.split('.');
  for (let i = 1; i < labels.length; i++) keys.push(`.${labels.slice(i).join('.')}`);
  return keys;
}

/**
 * The verdict of an entry. `subject` names what was looked up as Postfix does (`<a@b.example>`),
 * `what` the restriction (`Sender address`), so a reject reads
 * `554 5.7.1 <a@b.example>: Sender address rejected: Access denied`.
 */
export function accessVerdict(check: string, rule: AccessRule, subject: string, what: string, log: CheckEnv['log']): Verdict {
  const a = rule.action;
  const reason = `${check}: ${subject} matched "${rule.key}" (${rule.source})`;
  const line = (text: string | undefined, fallback: string): string => `${subject}: ${what} rejected: ${text ?? fallback}`;
  switch (a.kind) {
    case 'ok':
      return permit(reason);
    case 'dunno':
      return PASS;
    case 'reject':
      return reject(perm('5.7.1', line(a.text, 'Access denied'), 554), reason);
    case 'defer':
      return defer(temp('4.7.1', line(a.text, 'Try again later')), reason);
    case 'discard':
      return discard(reason);
    case 'hold':
      // There is no hold queue yet. A defer keeps the message at the sender (nothing is lost)
      // while the operator decides; a discard would lose it. See docs/decisions/0004.
      log.warn({ check, key: rule.key, source: rule.source }, 'access map action "hold" is not supported yet; deferring instead');
      return defer(temp('4.7.1', line(a.text, 'Try again later')), `${reason}; hold deferred (no hold queue)`);
    case 'code': {
      const enhanced = a.enhanced ?? `${String(a.code)[0]}.7.1`;
      const r = reply(a.code, enhanced, line(a.text, 'Access denied'));
      return a.code >= 500 ? reject(r, reason) : defer(r, reason);
    }
  }
}
