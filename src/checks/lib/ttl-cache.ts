// A small in-memory cache with a size bound (least recently used goes first) and expiry by the
// injected clock, so tests can step time. Used for DNS list answers and per-transaction results.

export class TtlCache<V> {
  private readonly map = new Map<string, { value: V; expires: number }>();

  constructor(
    private readonly max: number,
    private readonly clock: () => number,
  ) {}

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    this.map.delete(key);
    if (e.expires <= this.clock()) return undefined;
    this.map.set(key, e); // a Map keeps insertion order: most recently used last
    return e.value;
  }

  /** Keeps `value` for `ttlMs`; a TTL of 0 or less keeps nothing. */
  set(key: string, value: V, ttlMs: number): void {
    if (this.max <= 0 || !(ttlMs > 0)) return;
    this.map.delete(key);
    this.map.set(key, { value, expires: this.clock() + ttlMs });
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value;
      if (oldest === undefined) break;
      this.map.delete(oldest);
    }
  }

  get size(): number {
    return this.map.size;
  }
}
