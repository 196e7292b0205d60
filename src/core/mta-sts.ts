// MTA-STS (RFC 8461) without I/O: the policy text this server serves and the id that names it,
// the `_mta-sts` TXT record, and the MX pattern match a sender applies. Shared by the policy
// server, `mailward dns records`, `doctor --dns` and outbound delivery.
import { createHash } from 'node:crypto';

export type MtaStsMode = 'enforce' | 'testing' | 'none';

export interface MtaStsPolicy {
  readonly mode: MtaStsMode;
  /** Patterns: "mx.example.org" or "*.example.org" (RFC 8461 §4.1). */
  readonly mx: readonly string[];
  /** Seconds. */
  readonly maxAge: number;
}

/** The policy file (RFC 8461 §3.2): "key: value" lines, CRLF, version first. */
export function policyText(p: MtaStsPolicy): string {
  return ['version: STSv1', `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`, ''].join('\r\n');
}

/**
 * The id to publish in `_mta-sts` TXT (RFC 8461 §3.1: 1-32 letters and digits, changed whenever
 * the policy changes). Derived from the policy text, so editing the policy changes the id by
 * itself and the record printed by `mailward dns records` always names what is served.
 */
export function policyId(p: MtaStsPolicy): string {
  return createHash('sha256').update(policyText(p)).digest('hex').slice(0, 20);
}

/** The `_mta-sts.<domain>` TXT value. */
export const stsRecordValue = (p: MtaStsPolicy): string => `v=STSv1; id=${policyId(p)}`;

/** "k=v; k2=v2" records (MTA-STS, TLS-RPT, DMARC): keys lower-cased, first occurrence kept. */
export function tagList(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const k = part.slice(0, eq).trim().toLowerCase();
    if (k !== '' && !out.has(k)) out.set(k, part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * The id of the one `v=STSv1` record among a name's TXT strings; undefined when there is none,
 * or more than one (RFC 8461 §3.1: then "no policy"), or it has no valid id.
 */
export function stsIdOf(txt: readonly string[]): string | undefined {
  const sts = txt.filter((t) => /^v=STSv1\s*(;|$)/.test(t));
  if (sts.length !== 1) return undefined;
  const id = tagList(sts[0]!).get('id');
  return id !== undefined && /^[A-Za-z0-9]{1,32}$/.test(id) ? id : undefined;
}

/**
 * Whether MX host `host` matches a policy pattern (RFC 8461 §4.1): exact, or "*.suffix" matching
 * exactly one leftmost label ("*.example.com" matches "mx.example.com", not "a.b.example.com"
 * nor "example.com"). Case-insensitive, trailing dots ignored.
 */
export function mxMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  const h = host.toLowerCase().replace(/\.$/, '');
  if (!p.startsWith('*.')) return p === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

/** The first pattern of `policy` that `host` matches. */
export const matchingPattern = (policy: Pick<MtaStsPolicy, 'mx'>, host: string): string | undefined => policy.mx.find((p) => mxMatches(p, host));
