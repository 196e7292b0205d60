// The shared state interface: counters, sliding-window rates, key/value with TTL, sets and
// integer hashes. Nothing mail-specific lives here; greylisting, rate limits, quotas, breakers
// and Bayes counts are built on top. Two implementations: SQLite (one node) and Redis (several).

export type StoreBackend = 'sqlite' | 'redis';

/** What a key holds. A sliding-window rate key (see `hit`) is a hash. */
export type StoreKind = 'string' | 'set' | 'hash';

export interface StoreHealth {
  readonly backend: StoreBackend;
  readonly ok: boolean;
  /** Round-trip time of the probe, when it succeeded. */
  readonly latencyMs?: number;
  /** Why the probe failed (no secrets: never the URL). */
  readonly error?: string;
}

/**
 * All operations are async (Redis is remote) and reject with `StoreUnavailableError` when the
 * backend cannot answer in time; callers turn that into a 4xx defer. `ttlMs` of undefined or 0
 * means "no expiry". Keys are relative to the store's key prefix.
 */
export interface Store {
  readonly backend: StoreBackend;
  readonly keyPrefix: string;

  /** Adds `by` (an integer, default 1) to a counter and returns the new value. The TTL is set only
   * when the key is created, so a counter with a TTL is a fixed window that starts at first use. */
  incr(key: string, by?: number, ttlMs?: number): Promise<number>;

  /** Records `by` (default 1; 0 only reads) hits and returns the estimated number of hits in the
   * last `windowMs`: two fixed buckets, the previous one weighted by how much of it still lies
   * inside the sliding window (docs/decisions/0003-state-store.md). The result may be fractional.
   * Always use the same `windowMs` for a given key. The key is a hash with fields b, c, p. */
  hit(key: string, windowMs: number, by?: number): Promise<number>;

  get(key: string): Promise<string | null>;
  /** Replaces whatever the key held; the TTL is replaced too (none when omitted). */
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Several `set`s in one transaction (SQLite) or one round trip (Redis): for write-behind
   * caches that flush many keys at once. Each entry replaces its key and TTL as `set` does. */
  setMany(entries: ReadonlyArray<readonly [key: string, value: string, ttlMs?: number]>): Promise<void>;
  /** Sets the key only if it does not exist; true when this call created it. Atomic across nodes. */
  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean>;
  /** Deletes a key of any kind; true when it existed. */
  del(key: string): Promise<boolean>;
  /** Remaining lifetime in ms; `Infinity` for a key without expiry; null when the key is absent. */
  ttl(key: string): Promise<number | null>;
  type(key: string): Promise<StoreKind | null>;

  /** Adds members; returns how many were new. The TTL is set only when the set is created. */
  sadd(key: string, members: readonly string[], ttlMs?: number): Promise<number>;
  scard(key: string): Promise<number>;
  sismember(key: string, member: string): Promise<boolean>;
  smembers(key: string): Promise<string[]>;

  /** Adds integer deltas to hash fields in one round trip / one transaction (Bayes token counts).
   * The TTL is set only when the hash is created. */
  hincrMany(key: string, entries: ReadonlyArray<readonly [field: string, delta: number]>, ttlMs?: number): Promise<void>;
  /** Field values in the order asked; an absent field (or hash) reads as 0. */
  hmget(key: string, fields: readonly string[]): Promise<number[]>;
  hgetall(key: string): Promise<Map<string, number>>;

  /** Keys starting with `prefix` (relative to the key prefix). On Redis a key may be yielded
   * twice if the keyspace changes during the scan (SCAN's guarantee); dedupe if it matters. */
  scan(prefix?: string): AsyncIterable<string>;
  /** Never rejects. */
  health(): Promise<StoreHealth>;
  close(): Promise<void>;
}

/** The backend did not answer (down, timed out, locked, disk full). Callers defer with a 4xx. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(
    readonly backend: StoreBackend,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The key holds another kind of value than the operation needs (a caller bug, not an outage). */
export class StoreTypeError extends Error {
  override readonly name = 'StoreTypeError';
  constructor(
    readonly key: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isStoreUnavailable(err: unknown): err is StoreUnavailableError {
  return err instanceof StoreUnavailableError;
}

// Options, matching the `store` section of the config file.

export interface SqliteStoreOptions {
  /** The database file (created with its folder if missing). */
  readonly path: string;
  /** Namespace for keys (default ''). */
  readonly keyPrefix?: string;
  /** How long a write waits for another process's lock before failing (default 1000 ms). */
  readonly busyTimeoutMs?: number;
}

export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL (may carry a password; never logged). */
  readonly url?: string;
  /** Sentinel addresses; needs `name` (the master group name). */
  readonly sentinels?: readonly RedisAddress[];
  readonly name?: string;
  /** Cluster seed nodes. */
  readonly cluster?: readonly RedisAddress[];
  /** Prepended to every key (default 'mailward:'). */
  readonly keyPrefix: string;
  /** Deadline for each operation (default 1000 ms). */
  readonly timeoutMs: number;
}

export interface StoreOptions {
  readonly backend: StoreBackend;
  readonly sqlite: SqliteStoreOptions;
  readonly redis: RedisStoreOptions;
}

// Argument checks shared by both implementations, so both reject the same bad input the same way.

export function checkTtl(ttlMs: number | undefined): number {
  if (ttlMs === undefined || ttlMs === 0) return 0;
  if (!Number.isFinite(ttlMs) || ttlMs < 0) throw new RangeError(`ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
  return Math.ceil(ttlMs);
}

export function checkInt(name: string, n: number): number {
  if (!Number.isSafeInteger(n)) throw new RangeError(`${name} must be an integer, got ${n}`);
  return n;
}

export function checkWindow(windowMs: number, by: number): void {
  if (!Number.isSafeInteger(windowMs) || windowMs <= 0) throw new RangeError(`windowMs must be a positive integer, got ${windowMs}`);
  if (!Number.isSafeInteger(by) || by < 0) throw new RangeError(`by must be a non-negative integer, got ${by}`);
}
