// What the DNS list checks share (dnsbl asks about the client's address, uribl about the domains
// in the body): the zone and return-code settings, and the lookup itself — an A query with an
// in-memory TTL cache, one query in flight per name, the zone's outage watch, and a batch of
// queries that gives up after a time-out (RFC 5782 §2.1: NXDOMAIN or no A record = not listed).
import type { RecordWithTtl } from 'node:dns';
import { z } from 'zod';
import { DeadlineError } from '../../core/deadline.ts';
import { ipv4Number, parseIp } from '../../core/net.ts';
import type { CheckEnv } from '../../pipeline/check.ts';
import { classify, errorCode, withSignal } from './dns.ts';
import { isNoAnswer, zoneWatch } from './dns-outage.ts';
import { uncachedResolve4 } from './dns-cache.ts';
import { TtlCache } from './ttl-cache.ts';

export interface CodeRange {
  readonly lo: number;
  readonly hi: number;
}

/** An IPv4 address as a number, or undefined for anything else. */
export const v4 = (text: string): number | undefined => {
  const ip = parseIp(text);
  return ip?.family === 4 && !text.includes(':') ? ipv4Number(ip) : undefined;
};

/** "127.0.0.2" or "127.0.0.2-127.0.0.11": the answers that mean "listed". */
export const Code = z.string().transform((text, ctx): CodeRange => {
  const [a = '', b, extra] = text.split('-').map((s) => s.trim());
  const lo = v4(a);
  const hi = b === undefined ? lo : v4(b);
  if (extra !== undefined || lo === undefined || hi === undefined || hi < lo) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not a return code or range; write e.g. "127.0.0.2" or "127.0.0.2-127.0.0.11"` });
    return z.NEVER;
  }
  return { lo, hi };
});

export const DOMAIN = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)+$/i;

/** A list's DNS zone name, lower-case without the final dot. */
export const ZoneName = (example: string) =>
  z
    .string()
    .transform((s) => s.trim().toLowerCase().replace(/\.$/, ''))
    .refine((s) => DOMAIN.test(s), { message: `is not a DNS zone name; write e.g. "${example}"` });

export const inRanges = (ranges: readonly CodeRange[], n: number): boolean => ranges.some((c) => n >= c.lo && n <= c.hi);

/** `listed`: the list's answers (possibly not matching the codes); `clear`: not listed. */
export type Answer = { readonly kind: 'listed'; readonly addresses: readonly string[] } | { readonly kind: 'clear' };

export interface ListLookupOptions {
  /** The check's name, for its log lines and outage events. */
  readonly check: string;
  readonly cacheSize: number;
  /** How long a "not listed" answer is remembered (NXDOMAIN carries no TTL we can read). */
  readonly negativeTtl: number;
  readonly maxTtl: number;
  /** Give up on a batch of queries after this long (ms). */
  readonly timeout: number;
}

export interface Query {
  readonly qname: string;
  readonly zone: string;
}

export interface ListLookup {
  /** A cached answer, without asking. */
  cached(qname: string): Answer | undefined;
  /** Asks every query not cached at once, giving up on all after the time-out or when `outer` aborts. */
  askAll(queries: readonly Query[], outer: AbortSignal): Promise<Array<PromiseSettledResult<Answer>>>;
}

export function listLookup(env: Pick<CheckEnv, 'dns' | 'log' | 'clock'>, opts: ListLookupOptions): ListLookup {
  const cache = new TtlCache<Answer>(opts.cacheSize, env.clock);
  const inflight = new Map<string, Promise<Answer>>();
  const resolve4 = uncachedResolve4(env.dns);

  // The one place a list is asked (not the cache): its answers and failures tell whether it is up.
  const ask = async (qname: string, zone: string, signal: AbortSignal): Promise<Answer> => {
    const watch = zoneWatch(env.dns, env.log, zone, opts.check);
    const generation = watch.generation;
    try {
      const records: RecordWithTtl[] = await withSignal(resolve4(qname, { ttl: true }), signal);
      const ttl = Math.min(...records.map((r) => r.ttl)) * 1000;
      const answer: Answer = records.length > 0 ? { kind: 'listed', addresses: records.map((r) => r.address) } : { kind: 'clear' };
      cache.set(qname, answer, Math.min(ttl, opts.maxTtl));
      watch.answered();
      return answer;
    } catch (err) {
      const failure = classify(err);
      if (failure === 'temporary') {
        const code = errorCode(err);
        // An abandoned query says nothing about the list when the client went away.
        if (code !== 'ECANCELLED' || isNoAnswer(code, signal)) watch.failed(generation, code);
        throw err;
      }
      watch.answered();
      // RFC 5782 §2.1: a name that does not exist (or has no A record) means "not listed".
      const answer: Answer = { kind: 'clear' };
      cache.set(qname, answer, Math.min(opts.negativeTtl, opts.maxTtl));
      return answer;
    }
  };

  const lookup = (qname: string, zone: string, signal: AbortSignal): Promise<Answer> => {
    const hit = cache.get(qname);
    if (hit) return Promise.resolve(hit);
    // Recipients of one message (or messages of one campaign) ask at nearly the same time: one query serves them all.
    let p = inflight.get(qname);
    if (!p) {
      p = ask(qname, zone, signal).finally(() => inflight.delete(qname));
      inflight.set(qname, p);
    }
    return p;
  };

  const askAll = async (queries: readonly Query[], outer: AbortSignal): Promise<Array<PromiseSettledResult<Answer>>> => {
    const giveUp = new AbortController();
    const timer = setTimeout(() => giveUp.abort(new DeadlineError(`no answer within ${opts.timeout} ms (checks.${opts.check}.timeout)`)), opts.timeout);
    const onOuter = (): void => giveUp.abort(outer.reason);
    if (outer.aborted) onOuter();
    else outer.addEventListener('abort', onOuter, { once: true });
    try {
      return await Promise.allSettled(queries.map((q) => lookup(q.qname, q.zone, giveUp.signal)));
    } finally {
      clearTimeout(timer);
      outer.removeEventListener('abort', onOuter);
    }
  };

  return { cached: (qname) => cache.get(qname), askAll };
}
