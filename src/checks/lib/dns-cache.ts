// A DNS resolver that remembers answers, built once per server and handed to every check (and to
// delivery): the second message from a sender domain asks nothing, and concurrent identical
// questions share one query. Failures other than "no such name / no such record" are never kept.
import type { RecordWithTtl, ResolverOptions } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { TtlCache } from './ttl-cache.ts';

export interface DnsCacheOptions {
  /** Answers kept, at most; the least recently used goes first. 0 turns the cache off. */
  readonly maxEntries?: number;
  /**
   * How long an MX, TXT, CNAME, PTR or NS answer is kept. Node's resolver reports a TTL only for
   * A and AAAA, so these get this bounded default instead of their own TTL.
   */
  readonly defaultTtlMs?: number;
  /** Upper bound on how long any answer is kept, whatever its TTL says. */
  readonly maxTtlMs?: number;
  /**
   * How long NXDOMAIN and NODATA are kept. RFC 2308 §5 would use the SOA minimum, which node's
   * resolver does not show; a short fixed time stands in for it.
   */
  readonly negativeTtlMs?: number;
  /** Milliseconds since the epoch; tests inject their own. */
  readonly clock?: () => number;
}

export const DNS_CACHE_DEFAULTS = {
  maxEntries: 10_000,
  defaultTtlMs: 5 * 60_000,
  maxTtlMs: 60 * 60_000,
  negativeTtlMs: 30_000,
} as const;

/** The record types kept; any other type goes to the server every time. */
const CACHED = new Set(['A', 'AAAA', 'MX', 'TXT', 'CNAME', 'PTR', 'NS']);

type Entry =
  /** `at`: when the answer came, so A/AAAA callers asking for TTLs get what is left of them. */
  | { readonly ok: true; readonly value: readonly unknown[]; readonly at: number }
  /** NXDOMAIN (ENOTFOUND) or NODATA (ENODATA), kept so the error can be made again. */
  | { readonly ok: false; readonly code: string; readonly syscall: string };

type Positive = Extract<Entry, { ok: true }>;

const NEGATIVE = new Set(['ENOTFOUND', 'ENODATA']);

/** The error node's resolver gives for a negative answer, made anew for each caller. */
function negativeError(e: { code: string; syscall: string }, name: string): Error {
  return Object.assign(new Error(`${e.syscall} ${e.code} ${name}`), { code: e.code, syscall: e.syscall, hostname: name });
}

// The prototype's own methods, which send the question; the instance's shadow them.
const base = Resolver.prototype;

/**
 * A node `dns/promises` Resolver whose A, AAAA, MX, TXT, CNAME, PTR and NS answers (through the
 * typed methods or `resolve(name, type)`) come from memory while they are fresh. Each caller gets
 * its own copy of the answer's list.
 */
/**
 * A's query of `dns` past any answer cache: for a check that keeps its own (dnsbl caches per
 * client address and zone, with its own size and TTL bounds), so each client does not also push
 * one entry per zone into the shared cache, crowding out the MX, TXT and SPF answers it is for.
 */
export function uncachedResolve4(dns: Resolver): (name: string, options: { ttl: true }) => Promise<RecordWithTtl[]> {
  return (name, options) => Resolver.prototype.resolve4.call(dns, name, options) as Promise<RecordWithTtl[]>;
}

export class CachingResolver extends Resolver {
  readonly #cache: TtlCache<Entry>;
  readonly #inflight = new Map<string, Promise<Entry>>();
  readonly #clock: () => number;
  readonly #defaultTtlMs: number;
  readonly #maxTtlMs: number;
  readonly #negativeTtlMs: number;

  constructor(options: ResolverOptions = {}, cache: DnsCacheOptions = {}) {
    super(options);
    this.#clock = cache.clock ?? Date.now;
    this.#cache = new TtlCache<Entry>(cache.maxEntries ?? DNS_CACHE_DEFAULTS.maxEntries, this.#clock);
    this.#maxTtlMs = cache.maxTtlMs ?? DNS_CACHE_DEFAULTS.maxTtlMs;
    this.#defaultTtlMs = Math.min(cache.defaultTtlMs ?? DNS_CACHE_DEFAULTS.defaultTtlMs, this.#maxTtlMs);
    this.#negativeTtlMs = Math.min(cache.negativeTtlMs ?? DNS_CACHE_DEFAULTS.negativeTtlMs, this.#maxTtlMs);

    // @types/node declares these as properties, so they are replaced as properties. Each keeps
    // node's signature; the casts only restate its overloads.
    const addresses = (type: 'A' | 'AAAA') => (name: string, options?: { ttl?: boolean }): Promise<string[] | RecordWithTtl[]> =>
      this.#answer<string[] | RecordWithTtl[]>(type, name, options?.ttl === true ? (e) => this.#withTtl(e) : plain);
    this.resolve4 = addresses('A') as Resolver['resolve4'];
    this.resolve6 = addresses('AAAA') as Resolver['resolve6'];
    this.resolveMx = ((name: string) => this.#answer('MX', name, copy)) as Resolver['resolveMx'];
    this.resolveTxt = ((name: string) => this.#answer('TXT', name, copy)) as Resolver['resolveTxt'];
    this.resolveCname = ((name: string) => this.#answer('CNAME', name, copy)) as Resolver['resolveCname'];
    this.resolvePtr = ((name: string) => this.#answer('PTR', name, copy)) as Resolver['resolvePtr'];
    this.resolveNs = ((name: string) => this.#answer('NS', name, copy)) as Resolver['resolveNs'];
    // resolve(name, type) as mailauth calls it; node's own resolve() would not reach the methods above.
    this.resolve = ((name: string, rrtype?: string): Promise<unknown> => {
      const type = rrtype === undefined ? 'A' : rrtype.toUpperCase();
      if (!CACHED.has(type)) return base.resolve.call(this, name, rrtype ?? 'A');
      if (type === 'A' || type === 'AAAA') return this.#answer(type, name, plain);
      return this.#answer(type, name, copy);
    }) as Resolver['resolve'];
  }

  /** Answers kept now (for tests and metrics). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  #answer<R>(type: string, name: string, out: (e: Positive) => R): Promise<R> {
    const key = `${type} ${name.toLowerCase()}`;
    const hit = this.#cache.get(key);
    if (hit) return this.#deliver(hit, name, out);
    // Recipients of one message and concurrent sessions from one sender ask at the same time.
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#ask(type, name, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return pending.then((e) => {
      if (e.ok) return out(e);
      throw negativeError(e, name);
    });
  }

  #deliver<R>(e: Entry, name: string, out: (e: Positive) => R): Promise<R> {
    return e.ok ? Promise.resolve(out(e)) : Promise.reject(negativeError(e, name));
  }

  async #ask(type: string, name: string, key: string): Promise<Entry> {
    try {
      const at = this.#clock();
      let entry: Entry;
      let ttlMs: number;
      if (type === 'A' || type === 'AAAA') {
        const records = (await (type === 'A' ? base.resolve4 : base.resolve6).call(this, name, { ttl: true })) as RecordWithTtl[];
        entry = { ok: true, value: records, at };
        ttlMs = records.length === 0 ? 0 : Math.min(...records.map((r) => r.ttl)) * 1000;
      } else {
        const value = (await base.resolve.call(this, name, type)) as unknown[];
        entry = { ok: true, value, at };
        ttlMs = this.#defaultTtlMs;
      }
      // A TTL of 0 means "use once" (RFC 1035 §3.2.1): the caller gets it, nobody keeps it.
      this.#cache.set(key, entry, Math.min(ttlMs, this.#maxTtlMs));
      return entry;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      // Only a definite "does not exist" is kept; a time-out, SERVFAIL or refusal must be asked
      // again, so the check that got it defers and the retry finds out.
      if (typeof code !== 'string' || !NEGATIVE.has(code)) throw err;
      const syscall = (err as { syscall?: unknown }).syscall;
      const entry: Entry = { ok: false, code, syscall: typeof syscall === 'string' ? syscall : `query${type}` };
      this.#cache.set(key, entry, this.#negativeTtlMs);
      return entry;
    }
  }

  /** A/AAAA records with what is left of their TTL, as a resolver that cached them would say. */
  #withTtl(e: Positive): RecordWithTtl[] {
    const aged = Math.floor((this.#clock() - e.at) / 1000);
    return (e.value as RecordWithTtl[]).map((r) => ({ address: r.address, ttl: Math.max(0, r.ttl - aged) }));
  }
}

/** A/AAAA answers without their TTLs, as node gives them by default. */
function plain(e: { readonly value: readonly unknown[] }): string[] {
  return (e.value as RecordWithTtl[]).map((r) => r.address);
}

function copy<T>(e: { readonly value: readonly unknown[] }): T {
  return e.value.slice() as T;
}
