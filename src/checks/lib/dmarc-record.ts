// What DMARC aggregate reports (RFC 7489 §7.2) need from each inbound evaluation, kept in the
// shared store (SQLite or Redis, so acceptor processes and several nodes add to the same counts):
// one hash per reporting period whose fields are the report rows and whose values are the counts,
// and the policy each sender domain published. The report job (app/dmarc-aggregate.ts) reads and
// removes them. Recording never delays or fails a message beyond one store write.
import type { Store } from '../../store/store.ts';

export type Disposition = 'none' | 'quarantine' | 'reject';

/** The policy as published at `_dmarc.<domain>` (RFC 7489 §6.3), with its report URIs. */
export interface PublishedPolicy {
  readonly domain: string;
  readonly adkim: 'r' | 's';
  readonly aspf: 'r' | 's';
  readonly p: string;
  readonly sp: string;
  readonly pct: number;
  /** The `rua` URIs as written, e.g. "mailto:dmarc@example.net!10m". */
  readonly rua: readonly string[];
}

/** One evaluation: a row of the report (appendix C's RecordType) once counted. */
export interface DmarcEvaluation {
  readonly sourceIp: string;
  readonly headerFrom: string;
  /** The RFC5321.MailFrom domain; '' for a null sender. */
  readonly envelopeFrom: string;
  readonly disposition: Disposition;
  readonly dkimAligned: boolean;
  readonly spfAligned: boolean;
  readonly dkim: ReadonlyArray<{ readonly domain: string; readonly selector: string; readonly result: string }>;
  readonly spf?: { readonly domain: string; readonly result: string };
}

export const AGG_PREFIX = 'dmarc:agg:';
/** The rows of the period starting at `start` (ms) and lasting `intervalMs`. */
export const aggKey = (start: number, intervalMs: number): string => `${AGG_PREFIX}${start}:${intervalMs}`;
export const policyKey = (start: number, domain: string): string => `dmarc:pol:${start}:${domain}`;
export const sentKey = (start: number, domain: string): string => `dmarc:sent:${start}:${domain}`;

/** The period start and key for `now`: periods are aligned to multiples of the interval since the epoch. */
export const periodOf = (now: number, intervalMs: number): number => Math.floor(now / intervalMs) * intervalMs;

/** A row as a hash field: the policy domain first, so the job can split rows by domain. */
export function rowField(policyDomain: string, e: DmarcEvaluation): string {
  return JSON.stringify([policyDomain, e.sourceIp, e.headerFrom, e.envelopeFrom, e.disposition, e.dkimAligned, e.spfAligned, e.dkim.map((d) => [d.domain, d.selector, d.result]), e.spf ? [e.spf.domain, e.spf.result] : null]);
}

export function parseRowField(field: string): { policyDomain: string; row: DmarcEvaluation } | undefined {
  try {
    const [policyDomain, sourceIp, headerFrom, envelopeFrom, disposition, dkimAligned, spfAligned, dkim, spf] = JSON.parse(field) as [string, string, string, string, Disposition, boolean, boolean, Array<[string, string, string]>, [string, string] | null];
    return {
      policyDomain,
      row: { sourceIp, headerFrom, envelopeFrom, disposition, dkimAligned, spfAligned, dkim: dkim.map(([domain, selector, result]) => ({ domain, selector, result })), ...(spf ? { spf: { domain: spf[0], result: spf[1] } } : {}) },
    };
  } catch {
    return undefined;
  }
}

/** The tags of a DMARC record (RFC 7489 §6.3), defaults applied; undefined without a usable `rua`. */
export function publishedPolicy(domain: string, record: string): PublishedPolicy | undefined {
  const tags = new Map<string, string>();
  for (const part of record.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) tags.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  const rua = (tags.get('rua') ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => /^mailto:[^@\s]+@[^@\s!]+(![0-9]+[kmgt]?)?$/i.test(u));
  if (rua.length === 0) return undefined;
  const p = (tags.get('p') ?? 'none').toLowerCase();
  const pct = Number(tags.get('pct') ?? '100');
  return {
    domain: domain.toLowerCase(),
    adkim: tags.get('adkim')?.toLowerCase() === 's' ? 's' : 'r',
    aspf: tags.get('aspf')?.toLowerCase() === 's' ? 's' : 'r',
    p,
    sp: (tags.get('sp') ?? p).toLowerCase(),
    pct: Number.isInteger(pct) && pct >= 0 && pct <= 100 ? pct : 100,
    rua,
  };
}

export interface RecordOptions {
  readonly intervalMs: number;
  readonly now: number;
}

/** Counts one evaluation for the reporting period around `now`. Rejects when the store does. */
export async function recordEvaluation(store: Store, policy: PublishedPolicy, e: DmarcEvaluation, o: RecordOptions): Promise<void> {
  const start = periodOf(o.now, o.intervalMs);
  // Kept two more periods (and at least a day), so a late or restarted job still finds them.
  const keep = Math.max(3 * o.intervalMs, 86_400_000);
  await store.hincrMany(aggKey(start, o.intervalMs), [[rowField(policy.domain, e), 1]], keep);
  await store.set(policyKey(start, policy.domain), JSON.stringify(policy), keep);
}
