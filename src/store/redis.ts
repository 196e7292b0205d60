// The shared state store for several nodes: Redis through ioredis (single server, Sentinel or
// Cluster). Tuned to fail fast: no offline queue, no retries of in-flight commands, a deadline on
// every operation; the client reconnects in the background and the outage is logged once.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../observe/log.ts';
import { OutageTracker } from './outage.ts';
import { HINCR_MANY, HIT, INCR, SADD, type Script } from './redis-scripts.ts';
import {
  StoreTypeError,
  StoreUnavailableError,
  checkInt,
  checkTtl,
  checkWindow,
  type RedisStoreOptions,
  type Store,
  type StoreHealth,
  type StoreKind,
} from './store.ts';

type Client = Redis | Cluster;
// ioredis honours `disconnectTimeout` (how long close() waits for the socket to end before
// destroying it; default 2 s, and its timer is left running even when the socket is already gone)
// but does not declare it.
type ClientOptions = RedisOptions & { disconnectTimeout?: number };

// Server error replies that mean "not now" (loading, failover in progress, out of memory...):
// the operation is deferred like a connection failure. Any other error reply is a bug.
const TRANSIENT_REPLY = /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|OOM|NOREPLICAS|MISCONF|NOAUTH|WRONGPASS)/;
// Also matched inside a script error, where Redis may wrap the original message.
const TYPE_REPLY = /WRONGTYPE|not an integer|overflow/;

function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

/** Back-off between reconnect attempts: quick at first, then once a second, for ever. */
function retryDelay(times: number): number {
  return Math.min(times * 100, 1000);
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

interface UrlCredentials {
  username?: string;
  password?: string;
  db?: number;
  tls?: object;
}

/** Validates the URL without ever echoing it (it may carry a password). */
function parseUrl(url: string): UrlCredentials {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error("store.redis.url: not a valid URL. Fix: use the form redis://[user:password@]host:port[/db] or rediss://... for TLS.");
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new Error(`store.redis.url: the scheme is '${u.protocol}', expected redis: or rediss:. Fix: use redis://host:port or rediss://host:port.`);
  }
  const creds: UrlCredentials = {};
  if (u.username) creds.username = decodeURIComponent(u.username);
  if (u.password) creds.password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, '');
  if (db !== '') creds.db = Number(db);
  if (u.protocol === 'rediss:') creds.tls = {};
  return creds;
}

function buildClient(opts: RedisStoreOptions): Client {
  const timeoutMs = opts.timeoutMs;
  const failFast: ClientOptions = {
    // Reject at once while disconnected instead of queueing until the connection returns
    // (a queued check would hold an SMTP session open for the whole outage).
    enableOfflineQueue: false,
    // Reject commands in flight when the connection drops; never resend them on reconnect, or an
    // INCR whose caller already saw an error would be counted twice.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(2 * timeoutMs, 2000),
    enableReadyCheck: true,
    disconnectTimeout: Math.min(timeoutMs, 200),
  };

  const urlCreds = opts.url !== undefined ? parseUrl(opts.url) : {};
  const { db: _db, ...clusterCreds } = urlCreds;

  if (opts.cluster !== undefined && opts.cluster.length > 0) {
    return new Cluster(
      opts.cluster.map((a) => ({ host: a.host, port: a.port })),
      {
        enableOfflineQueue: false,
        clusterRetryStrategy: retryDelay,
        redisOptions: { ...failFast, ...clusterCreds },
        slotsRefreshTimeout: Math.max(timeoutMs, 1000),
      },
    );
  }
  if (opts.sentinels !== undefined && opts.sentinels.length > 0) {
    if (opts.name === undefined || opts.name === '') {
      throw new Error(
        "store.redis.name: required with store.redis.sentinels. Fix: set it to the master group name from sentinel.conf (e.g. 'mymaster').",
      );
    }
    return new Redis({
      ...failFast,
      ...urlCreds,
      retryStrategy: retryDelay,
      sentinels: opts.sentinels.map((a) => ({ host: a.host, port: a.port })),
      name: opts.name,
    });
  }
  if (opts.url !== undefined) {
    return new Redis(opts.url, { ...failFast, retryStrategy: retryDelay });
  }
  throw new Error(
    'store.redis: no address set. Fix: set store.redis.url (e.g. redis://127.0.0.1:6379), or store.redis.sentinels with store.redis.name, or store.redis.cluster.',
  );
}

export class RedisStore implements Store {
  readonly backend = 'redis' as const;
  readonly keyPrefix: string;
  private readonly client: Client;
  private readonly timeoutMs: number;
  private readonly outage: OutageTracker;
  private closed = false;

  constructor(opts: RedisStoreOptions, log: Logger) {
    if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) {
      throw new Error(`store.redis.timeoutMs: must be a positive number of milliseconds, got ${opts.timeoutMs}. Fix: remove it (default 1000) or set e.g. 1000.`);
    }
    this.keyPrefix = opts.keyPrefix;
    this.timeoutMs = opts.timeoutMs;
    this.outage = new OutageTracker(log, 'redis');
    this.client = buildClient(opts);
    // Without an 'error' listener ioredis prints every failed reconnect to the console.
    this.client.on('error', (err: Error) => log.debug({ store: 'redis', err: err.message }, 'store connection error'));
    this.client.on('close', () => {
      if (!this.closed) this.outage.markDown('connection closed');
    });
    this.client.on('ready', () => this.outage.markUp());
  }

  /** Waits until the first connection is ready, at most `ms`; false if it is not. */
  async waitReady(ms = this.timeoutMs): Promise<boolean> {
    if (this.client.status === 'ready') return true;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.client.once('ready', onReady);
    });
  }

  /** Records an outage found at startup (the connection has not been up yet). */
  markStartupOutage(): void {
    this.outage.markDown(`not reachable within ${this.timeoutMs} ms at startup`);
  }

  async incr(key: string, by = 1, ttlMs?: number): Promise<number> {
    checkInt('by', by);
    const ttl = checkTtl(ttlMs);
    return this.run(key, async () => Number(await this.script(INCR, key, [by, ttl])));
  }

  async hit(key: string, windowMs: number, by = 1): Promise<number> {
    checkWindow(windowMs, by);
    return this.run(key, async () => Number(await this.script(HIT, key, [windowMs, by])));
  }

  async get(key: string): Promise<string | null> {
    return this.run(key, () => this.client.get(this.full(key)));
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    const ttl = checkTtl(ttlMs);
    await this.run(key, () => (ttl > 0 ? this.client.set(this.full(key), value, 'PX', ttl) : this.client.set(this.full(key), value)));
  }

  async setMany(entries: ReadonlyArray<readonly [key: string, value: string, ttlMs?: number]>): Promise<void> {
    // One SET each, not MULTI: keys may live on different cluster slots, and each SET is atomic.
    await Promise.all(entries.map(([key, value, ttlMs]) => this.set(key, value, ttlMs)));
  }

  async setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    const ttl = checkTtl(ttlMs);
    const r = await this.run(key, () =>
      ttl > 0 ? this.client.set(this.full(key), value, 'PX', ttl, 'NX') : this.client.set(this.full(key), value, 'NX'),
    );
    return r === 'OK';
  }

  async del(key: string): Promise<boolean> {
    return (await this.run(key, () => this.client.del(this.full(key)))) > 0;
  }

  async ttl(key: string): Promise<number | null> {
    const ms = await this.run(key, () => this.client.pttl(this.full(key)));
    if (ms === -2) return null;
    return ms === -1 ? Infinity : ms;
  }

  async type(key: string): Promise<StoreKind | null> {
    const t = await this.run(key, () => this.client.type(this.full(key)));
    if (t === 'none') return null;
    if (t === 'string' || t === 'set' || t === 'hash') return t;
    throw new StoreTypeError(key, `key '${key}' holds a Redis ${t}, which this store never writes`);
  }

  async sadd(key: string, members: readonly string[], ttlMs?: number): Promise<number> {
    const ttl = checkTtl(ttlMs);
    if (members.length === 0) return 0;
    return this.run(key, async () => Number(await this.script(SADD, key, [ttl, ...members])));
  }

  async scard(key: string): Promise<number> {
    return this.run(key, () => this.client.scard(this.full(key)));
  }

  async sismember(key: string, member: string): Promise<boolean> {
    return (await this.run(key, () => this.client.sismember(this.full(key), member))) === 1;
  }

  async smembers(key: string): Promise<string[]> {
    return this.run(key, () => this.client.smembers(this.full(key)));
  }

  async hincrMany(key: string, entries: ReadonlyArray<readonly [string, number]>, ttlMs?: number): Promise<void> {
    const ttl = checkTtl(ttlMs);
    const args: (string | number)[] = [ttl];
    for (const [field, delta] of entries) args.push(field, checkInt('delta', delta));
    if (entries.length === 0) return;
    await this.run(key, () => this.script(HINCR_MANY, key, args));
  }

  async hmget(key: string, fields: readonly string[]): Promise<number[]> {
    if (fields.length === 0) return [];
    const values = await this.run(key, () => this.client.hmget(this.full(key), ...fields));
    return values.map((v) => (v === null ? 0 : Number(v)));
  }

  async hgetall(key: string): Promise<Map<string, number>> {
    const obj = await this.run(key, () => this.client.hgetall(this.full(key)));
    return new Map(Object.entries(obj).map(([f, v]) => [f, Number(v)]));
  }

  async *scan(prefix = ''): AsyncGenerator<string> {
    const pattern = escapeGlob(this.keyPrefix + prefix) + '*';
    // A cluster spreads keys over its masters; SCAN walks one server, so walk each. Before the
    // cluster is ready its node list is empty, which must not pass for "no keys".
    if (this.client instanceof Cluster && this.client.status !== 'ready') {
      throw this.classify(new Error(`cluster not ready (${this.client.status})`), prefix, this.outage.generation);
    }
    const nodes: Redis[] = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await this.run(prefix, () => node.scan(cursor, 'MATCH', pattern, 'COUNT', 500));
        cursor = next;
        for (const k of keys) yield k.slice(this.keyPrefix.length);
      } while (cursor !== '0');
    }
  }

  async health(): Promise<StoreHealth> {
    const t0 = performance.now();
    try {
      await this.run('', () => this.client.ping());
      return { backend: 'redis', ok: true, latencyMs: performance.now() - t0 };
    } catch (err) {
      return { backend: 'redis', ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.status === 'ready') {
      // QUIT lets Redis finish what was sent; bounded like everything else.
      await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, this.timeoutMs).unref())]);
    }
    this.client.disconnect();
  }

  private full(key: string): string {
    return this.keyPrefix + key;
  }

  /** EVALSHA, falling back to EVAL when the server has not seen the script (e.g. after a restart). */
  private async script(s: Script, key: string, args: readonly (string | number)[]): Promise<unknown> {
    const full = this.full(key);
    try {
      return await this.client.evalsha(s.sha, 1, full, ...args);
    } catch (err) {
      if (isReplyError(err) && err.message.startsWith('NOSCRIPT')) return this.client.eval(s.lua, 1, full, ...args);
      throw err;
    }
  }

  /** Runs one operation under the deadline and turns failures into the store's error types. */
  private async run<T>(key: string, op: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreUnavailableError('redis', 'the store is closed');
    const generation = this.outage.generation;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms (store.redis.timeoutMs)`)), this.timeoutMs);
    });
    try {
      const result = await Promise.race([op(), deadline]);
      this.outage.markUp();
      return result;
    } catch (err) {
      throw this.classify(err, key, generation);
    } finally {
      clearTimeout(timer);
    }
  }

  private classify(err: unknown, key: string, generation: number): Error {
    if (err instanceof StoreTypeError || err instanceof StoreUnavailableError) return err;
    const message = err instanceof Error ? err.message : String(err);
    if (isReplyError(err)) {
      if (TYPE_REPLY.test(message)) return new StoreTypeError(key, `key '${key}': ${message}`, { cause: err });
      if (!TRANSIENT_REPLY.test(message)) return err;
    }
    this.outage.markDown(message, generation);
    return new StoreUnavailableError('redis', `Redis unavailable: ${message}`, { cause: err });
  }
}
