// The installation-wide (aggregate) breaker: every non-exempt source's relayed recipients, the
// recipient domains never relayed to before, and the share of permanent delivery failures, each
// against the installation's own baseline with a floor. Five stolen logins, each under its own
// limit, add up here and trip one breaker, "aggregate" (docs/decisions/0024-aggregate-breaker.md).
import type { GuardSettings } from '../config/guard-schema.ts';
import type { Store } from '../store/store.ts';
import { Baselines, HOUR, type BaselineReading } from './baseline.ts';
import type { BreakerKind } from './breaker.ts';

import { AGGREGATE } from './sources.ts';

export { AGGREGATE };

// The installation's own counts, kept by the same hourly baseline as a source's (their names
// never collide with a source's: those always have a "kind:" prefix).
const RECIPIENTS = 'aggregate';
const NEW_DOMAINS = 'aggregate-new-domains';
const ATTEMPTS = 'aggregate-attempts';
const FAILURES = 'aggregate-failures';
/** Baseline names the aggregate keeps (not sources: `guard status` lists them apart). */
export const AGGREGATE_COUNTS: ReadonlySet<string> = new Set([RECIPIENTS, NEW_DOMAINS, ATTEMPTS, FAILURES]);

// Domains relayed to: a domain is "new" when absent. Refreshed at each addition, so it holds
// every domain relayed to while the installation relays at least once in 30 days.
const KNOWN = 'guard:known-domains';
const KNOWN_TTL = 30 * 24 * HOUR;

/** A figure the guard judges: it trips above `limit`, and warns early on the way (warnings.ts). */
export interface Measurement {
  /** The breaker it would trip: a source, or "aggregate". */
  readonly name: string;
  readonly kind: BreakerKind;
  readonly value: number;
  readonly limit: number;
  /** The hourly baseline behind the limit, when there is one. */
  readonly baseline?: number;
  /** For the operator, when it trips, e.g. "301 relayed recipients in the last hour, limit 300 (…)". */
  readonly reason: string;
  readonly figures: Readonly<Record<string, number>>;
}

const fmt = (n: number): string => String(Math.round(n * 10) / 10);
const r2 = (n: number): number => Number(n.toFixed(2));

export interface AggregateFigures {
  readonly recipients: BaselineReading;
  readonly newDomains: BaselineReading;
  readonly attempts: number;
  readonly failures: number;
}

export class Aggregate {
  readonly #store: Store;
  readonly #s: GuardSettings['aggregate'];
  readonly #recipients: Baselines;
  readonly #domains: Baselines;
  /** Attempts and failures: counts only (the failure limit is a share, see outcomes()). */
  readonly #counts: Baselines;

  constructor(store: Store, settings: GuardSettings) {
    const a = settings.aggregate;
    const halfLifeMs = settings.baseline.halfLife;
    this.#store = store;
    this.#s = a;
    this.#recipients = new Baselines(store, { factor: a.factor, minimum: a.recipients, halfLifeMs });
    this.#domains = new Baselines(store, { factor: a.factor, minimum: a.newDomains, halfLifeMs });
    this.#counts = new Baselines(store, { factor: a.factor, minimum: 1, halfLifeMs });
  }

  get enabled(): boolean {
    return this.#s.enabled;
  }

  /** Counts one relayed recipient to `domain`; the figures after it. */
  async recipient(domain: string, now: number): Promise<Measurement[]> {
    const [r, added] = await Promise.all([this.#recipients.record(RECIPIENTS, 1, now), this.#store.sadd(KNOWN, [domain.toLowerCase()], KNOWN_TTL)]);
    const out: Measurement[] = [this.#measure('baseline', r, `relayed recipients of all sources in the last hour`, this.#s.recipients)];
    // The new-domain figure only moves when this domain was new.
    if (added > 0) out.push(this.#measure('new-domains', await this.#domains.record(NEW_DOMAINS, 1, now), 'recipient domains never relayed to before, in the last hour', this.#s.newDomains));
    return out;
  }

  #measure(kind: BreakerKind, r: BaselineReading, what: string, floor: number): Measurement {
    return {
      name: AGGREGATE,
      kind,
      value: r.rate,
      limit: r.limit,
      baseline: r.baseline,
      reason: `${fmt(r.rate)} ${what}, limit ${fmt(r.limit)} (${this.#s.factor} × the installation's baseline ${fmt(r.baseline)}, at least ${floor})`,
      figures: { value: r2(r.rate), baseline: r2(r.baseline), limit: r2(r.limit) },
    };
  }

  /**
   * Counts delivery attempts that reached an answer from the next hop and, of them, permanent
   * failures (a temporary one is the next hop's trouble, not the mail's). The failure share of
   * the last hour against max(failureRate, factor × the installation's own share), once the hour
   * has failureMinimum attempts. Resolves the measurement when there is one to judge.
   */
  async outcomes(attempts: number, failures: number, now: number): Promise<Measurement | undefined> {
    if (attempts <= 0) return undefined;
    const [a, f] = await Promise.all([this.#counts.record(ATTEMPTS, attempts, now), failures > 0 ? this.#counts.record(FAILURES, failures, now) : this.#counts.read(FAILURES, now)]);
    if (a.rate < this.#s.failureMinimum) return undefined;
    const share = f.rate / a.rate;
    const own = a.baseline > 0 ? f.baseline / a.baseline : 0;
    const limit = Math.min(1, Math.max(this.#s.failureRate, this.#s.factor * own));
    const pct = (n: number): string => `${Math.round(n * 1000) / 10}%`;
    return {
      name: AGGREGATE,
      kind: 'failures',
      value: r2(share),
      limit: r2(limit),
      reason: `${pct(share)} of ${fmt(a.rate)} delivery attempts in the last hour failed permanently, limit ${pct(limit)} (${this.#s.factor} × the installation's share ${pct(own)}, at least ${pct(this.#s.failureRate)})`,
      figures: { failures: r2(f.rate), attempts: r2(a.rate), share: r2(share), limit: r2(limit) },
    };
  }

  /** The figures without counting (for `guard status` and the dashboard). */
  async read(now: number): Promise<AggregateFigures> {
    const [recipients, newDomains, a, f] = await Promise.all([this.#recipients.read(RECIPIENTS, now), this.#domains.read(NEW_DOMAINS, now), this.#counts.read(ATTEMPTS, now), this.#counts.read(FAILURES, now)]);
    return { recipients, newDomains, attempts: a.rate, failures: f.rate };
  }

  /** Forgets the last hours' evidence (a released aggregate breaker starts from its baseline). */
  async clear(now: number): Promise<void> {
    await Promise.all([this.#recipients.clear(RECIPIENTS, now), this.#domains.clear(NEW_DOMAINS, now), this.#counts.clear(ATTEMPTS, now), this.#counts.clear(FAILURES, now)]);
  }
}
