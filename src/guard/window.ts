// Sliding-window counters for limits, quotas and bursts, timed by the caller's clock (so a test
// can step through a day) and never under-counting: a window is cut into 60 slots, one hash
// field each, and a count covers every slot that overlaps the window (docs/decisions/0007).
import type { Store } from '../store/store.ts';

/** Slots per window: the count may include up to 1/60 of a window more than the window itself. */
export const SLOTS = 60;

export class SlidingCounter {
  readonly #slotMs: number;
  readonly #ttlMs: number;

  /**
   * @param prefix key prefix, e.g. "guard:rl:login-hour"; keys are `${prefix}:${period}:${subject}`,
   *   so `scan(`${prefix}:${period}:`)` lists the subjects counted in a period.
   */
  constructor(
    private readonly store: Store,
    readonly prefix: string,
    readonly windowMs: number,
  ) {
    this.#slotMs = windowMs / SLOTS;
    // A period's hash is read until the end of the next period; a minute more for clock skew.
    this.#ttlMs = 2 * windowMs + 60_000;
  }

  /** The period (one window's worth of slots, one hash) that holds `now`. */
  period(now: number): number {
    return Math.floor(Math.floor(now / this.#slotMs) / SLOTS);
  }

  key(period: number, subject: string): string {
    return `${this.prefix}:${period}:${subject}`;
  }

  /** Adds `by` (may be negative, to take back an addition) at `now`. */
  async add(subject: string, by: number, now: number): Promise<void> {
    const slot = Math.floor(now / this.#slotMs);
    const period = Math.floor(slot / SLOTS);
    await this.store.hincrMany(this.key(period, subject), [[String(slot - period * SLOTS), by]], this.#ttlMs);
  }

  /** The count in the window ending at `now`, including the whole of the oldest, partly covered slot. */
  async sum(subject: string, now: number): Promise<number> {
    const slot = Math.floor(now / this.#slotMs);
    const period = Math.floor(slot / SLOTS);
    const oldest = slot - SLOTS;
    const [cur, prev] = await Promise.all([this.store.hgetall(this.key(period, subject)), this.store.hgetall(this.key(period - 1, subject))]);
    let total = 0;
    for (const [field, n] of cur) if (period * SLOTS + Number(field) <= slot) total += n;
    for (const [field, n] of prev) if ((period - 1) * SLOTS + Number(field) >= oldest) total += n;
    return total;
  }

  /** Adds and returns the new count. */
  async addAndSum(subject: string, by: number, now: number): Promise<number> {
    await this.add(subject, by, now);
    return this.sum(subject, now);
  }

  /** Forgets a subject's counts in the current and the previous period (a released breaker's evidence). */
  async clear(subject: string, now: number): Promise<void> {
    const period = this.period(now);
    await Promise.all([this.store.del(this.key(period, subject)), this.store.del(this.key(period - 1, subject))]);
  }

  /** The subjects with counts in the window ending at `now`, with their counts (for `guard status`). */
  async subjects(now: number): Promise<Map<string, number>> {
    const period = this.period(now);
    const names = new Set<string>();
    for (const p of [period, period - 1]) {
      const head = `${this.prefix}:${p}:`;
      for await (const k of this.store.scan(head)) names.add(k.slice(head.length));
    }
    const out = new Map<string, number>();
    for (const s of names) {
      const n = await this.sum(s, now);
      if (n > 0) out.set(s, n);
    }
    return out;
  }
}
