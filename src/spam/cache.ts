// A bounded, short-lived in-process cache of token counts. Most of a message's tokens are
// common ones (header fields, everyday words) whose counts every message asks for again; keeping
// them for seconds saves most store reads. Counts learned on other nodes show after at most ttlMs.

export interface CacheOptions {
  /** Entries kept before the cache starts over. Default 100 000 (~15 MB). */
  readonly entries?: number;
  /** No entry is older than this. Default 30 s. */
  readonly ttlMs?: number;
}

/**
 * One Map, emptied when it is full or its first entry is ttlMs old. Cruder than an LRU, and
 * faster: a lookup is a single Map read, and the common tokens are back after a few messages.
 * (A two-generation design with promotion cost twice as much per lookup, measured in profiles.)
 */
export class TtlCache<K, V> {
  private map = new Map<K, V>();
  private bornAt: number;
  private readonly max: number;
  private readonly ttlMs: number;

  constructor(
    opts: CacheOptions,
    private readonly clock: () => number,
  ) {
    this.max = Math.max(1, opts.entries ?? 100_000);
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.bornAt = clock();
  }

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  set(key: K, value: V): void {
    if (this.map.size >= this.max) this.clear();
    this.map.set(key, value);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  /** Starts over once the oldest entry has reached the TTL; call once per batch of lookups. */
  tick(): void {
    if (this.clock() - this.bornAt >= this.ttlMs) this.clear();
  }

  clear(): void {
    this.map = new Map();
    this.bornAt = this.clock();
  }
}
