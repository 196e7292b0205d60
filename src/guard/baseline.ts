// Each source's own normal: relayed recipients per clock hour ("guard:n:<hour>:<source>") and an
// exponentially weighted hourly rate ("guard:base:<source>"), folded forward lazily, once per
// hour per source. A source is judged against max(factor × baseline, minimum).
import type { Store } from '../store/store.ts';

export const HOUR = 3_600_000;
// Hour counts are kept a day and an hour: older hours reach the baseline as zeros (a source idle
// that long has nothing else to fold), by the closed form of the decay.
const COUNT_TTL = 25 * HOUR;
const KEEP_HOURS = 24;
// An idle source's baseline is forgotten after this (it would have decayed to almost nothing).
const BASE_TTL = 30 * 24 * HOUR;

export interface BaselineOptions {
  readonly factor: number;
  readonly minimum: number;
  readonly halfLifeMs: number;
}

export interface BaselineReading {
  /** Relayed recipients in the last hour (this hour plus the part of the previous one still inside). */
  readonly rate: number;
  /** The source's weighted hourly rate up to the end of the previous hour. */
  readonly baseline: number;
  /** max(factor × baseline, minimum). */
  readonly limit: number;
}

interface Stored {
  /** Weighted rate. */
  readonly e: number;
  /** The last hour folded in. */
  readonly t: number;
}

export class Baselines {
  readonly #alpha: number;

  constructor(
    private readonly store: Store,
    private readonly opts: BaselineOptions,
  ) {
    // The weight of one hour such that a count's weight halves every halfLife.
    this.#alpha = 1 - 2 ** (-HOUR / opts.halfLifeMs);
  }

  #countKey(hour: number, source: string): string {
    return `guard:n:${hour}:${source}`;
  }

  /** Counts `by` relayed recipients for `source` at `now` and reads the figures after it. */
  async record(source: string, by: number, now: number): Promise<BaselineReading> {
    const hour = Math.floor(now / HOUR);
    const [cur, prev, baseline] = await Promise.all([
      this.store.incr(this.#countKey(hour, source), by, COUNT_TTL),
      this.#count(hour - 1, source),
      this.baseline(source, now),
    ]);
    return this.#reading(cur, prev, baseline, now, hour);
  }

  /** The figures without counting (for `guard status`). */
  async read(source: string, now: number): Promise<BaselineReading> {
    const hour = Math.floor(now / HOUR);
    const [cur, prev, baseline] = await Promise.all([this.#count(hour, source), this.#count(hour - 1, source), this.baseline(source, now)]);
    return this.#reading(cur, prev, baseline, now, hour);
  }

  #reading(cur: number, prev: number, baseline: number, now: number, hour: number): BaselineReading {
    const rate = cur + prev * (1 - (now - hour * HOUR) / HOUR);
    // Rounded so that float noise (7.500000000000001 × 4) cannot move a trip by one recipient.
    const round = (n: number): number => Math.round(n * 1e6) / 1e6;
    return { rate: round(rate), baseline: round(baseline), limit: round(Math.max(this.opts.factor * baseline, this.opts.minimum)) };
  }

  async #count(hour: number, source: string): Promise<number> {
    const v = await this.store.get(this.#countKey(hour, source));
    return v === null ? 0 : Number(v);
  }

  /**
   * The weighted rate through the end of the hour before `now`, folding in the hours since the
   * last fold. Two nodes folding at once compute the same value from the same final counts.
   */
  async baseline(source: string, now: number): Promise<number> {
    const hour = Math.floor(now / HOUR);
    const key = `guard:base:${source}`;
    const raw = await this.store.get(key);
    let stored: Stored | undefined;
    if (raw !== null) {
      try {
        stored = JSON.parse(raw) as Stored;
      } catch {
        stored = undefined;
      }
    }
    // A source never seen starts with no history: its baseline is 0, so `minimum` rules.
    let e = stored?.e ?? 0;
    const from = stored ? stored.t + 1 : hour - 1;
    if (from > hour - 1) return e;
    const firstKept = Math.max(from, hour - KEEP_HOURS);
    if (firstKept > from) e *= (1 - this.#alpha) ** (firstKept - from);
    const hours: number[] = [];
    for (let h = firstKept; h <= hour - 1; h++) hours.push(h);
    const counts = await Promise.all(hours.map((h) => this.#count(h, source)));
    for (const n of counts) e = this.#alpha * n + (1 - this.#alpha) * e;
    await this.store.set(key, JSON.stringify({ e, t: hour - 1 } satisfies Stored), BASE_TTL);
    return e;
  }

  /** Forgets the current and previous hour's counts (a released breaker starts from its baseline). */
  async clear(source: string, now: number): Promise<void> {
    const hour = Math.floor(now / HOUR);
    await Promise.all([this.store.del(this.#countKey(hour, source)), this.store.del(this.#countKey(hour - 1, source))]);
  }
}
