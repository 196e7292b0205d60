// A bounded, short-lived in-process cache of token counts. Most of a message's tokens are
// common ones (header fields, everyday words) whose counts every message asks for again; keeping
// them for seconds saves most store reads. Counts learned on other nodes show after at most ttlMs.

export interface CacheOptions {
  /** Entries kept before the cache starts over. Default 200 000 (8 MB). */
  readonly entries?: number;
  /** No entry is older than this. Default 30 s. */
  readonly ttlMs?: number;
}

const EMPTY = -1;

/**
 * Token hash (an integer in [0, 2^50)) → packed count (a non-negative integer), in two typed
 * arrays with open addressing: a lookup reads two numbers and allocates nothing, where a Map of
 * such keys boxes every key and value (in the benchmark's profiles, cache lookups fell from about
 * 6 % of the scoring thread's samples to under 1 %). Emptied when it holds `entries` keys or its
 * first entry is ttlMs old — cruder than an LRU, and the common tokens are back after a few
 * messages. Token hashes are uniformly spread, so their low bits index the table directly.
 */
export class CountCache {
  private readonly keys: Float64Array;
  private readonly values: Float64Array;
  private readonly mask: number;
  private readonly max: number;
  private readonly ttlMs: number;
  private used = 0;
  private bornAt: number;

  constructor(
    opts: CacheOptions,
    private readonly clock: () => number,
  ) {
    this.max = Math.max(1, opts.entries ?? 200_000);
    this.ttlMs = opts.ttlMs ?? 30_000;
    // At most half full, so that probe runs stay short.
    let size = 16;
    while (size < this.max * 2) size *= 2;
    this.keys = new Float64Array(size).fill(EMPTY);
    this.values = new Float64Array(size);
    this.mask = size - 1;
    this.bornAt = clock();
  }

  /** Entries held. */
  get size(): number {
    return this.used;
  }

  /** The cached count, or undefined. */
  get(key: number): number | undefined {
    const keys = this.keys;
    // `>>> 0` keeps the low 32 bits of the integer key.
    for (let i = (key >>> 0) & this.mask; ; i = (i + 1) & this.mask) {
      const k = keys[i]!;
      if (k === key) {
        const v = this.values[i]!;
        // NaN marks an entry dropped by delete().
        return v === v ? v : undefined;
      }
      if (k === EMPTY) return undefined;
    }
  }

  set(key: number, value: number): void {
    const keys = this.keys;
    for (let i = (key >>> 0) & this.mask; ; i = (i + 1) & this.mask) {
      const k = keys[i]!;
      if (k === key) {
        this.values[i] = value;
        return;
      }
      if (k === EMPTY) {
        // A new key when full: start over (the slot found is empty in the cleared table too).
        if (this.used >= this.max) this.clear();
        keys[i] = key;
        this.values[i] = value;
        this.used++;
        return;
      }
    }
  }

  /** Forgets one key's count (its slot stays taken until the cache starts over). */
  delete(key: number): void {
    const keys = this.keys;
    for (let i = (key >>> 0) & this.mask; ; i = (i + 1) & this.mask) {
      const k = keys[i]!;
      if (k === key) {
        this.values[i] = NaN;
        return;
      }
      if (k === EMPTY) return;
    }
  }

  /** Starts over once the oldest entry has reached the TTL; call once per batch of lookups. */
  tick(): void {
    if (this.clock() - this.bornAt >= this.ttlMs) this.clear();
  }

  clear(): void {
    if (this.used > 0) this.keys.fill(EMPTY);
    this.used = 0;
    this.bornAt = this.clock();
  }
}
