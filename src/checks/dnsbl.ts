// DNS blocklists (Postfix's reject_rbl_client): the client's address is looked up in each
// configured zone (RFC 5782: reversed IPv4 octets, reversed IPv6 nibbles); a listed client is
// rejected or scored per zone. Answers are cached in memory for their TTL. A zone that fails or
// times out is skipped — a broken list must never refuse mail — and logged once per outage.
import type { RecordWithTtl } from 'node:dns';
import { z } from 'zod';
import { Duration } from '../config/units.ts';
import { perm } from '../core/reply.ts';
import { PASS, reject, score, type Verdict } from '../core/verdict.ts';
import { defineCheck, type CheckContext } from '../pipeline/check.ts';
import { classify, errorCode, withSignal } from './lib/dns.ts';
import { isNoAnswer, zoneWatch } from './lib/dns-outage.ts';
import { DeadlineError } from '../core/deadline.ts';
import { ipText, ipv4Number, parseIp, reverseName, type Ip } from '../core/net.ts';
import { TtlCache } from './lib/ttl-cache.ts';
import { uncachedResolve4 } from './lib/dns-cache.ts';

const NAME = 'dnsbl';

interface CodeRange {
  readonly lo: number;
  readonly hi: number;
}

const v4 = (text: string): number | undefined => {
  const ip = parseIp(text);
  return ip?.family === 4 && !text.includes(':') ? ipv4Number(ip) : undefined;
};

/** "127.0.0.2" or "127.0.0.2-127.0.0.11": the answers that mean "listed". */
const Code = z.string().transform((text, ctx): CodeRange => {
  const [a = '', b, extra] = text.split('-').map((s) => s.trim());
  const lo = v4(a);
  const hi = b === undefined ? lo : v4(b);
  if (extra !== undefined || lo === undefined || hi === undefined || hi < lo) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not a return code or range; write e.g. "127.0.0.2" or "127.0.0.2-127.0.0.11"` });
    return z.NEVER;
  }
  return { lo, hi };
});

const DOMAIN = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)+$/i;

const Zone = z
  .object({
    /** The list's DNS zone, e.g. zen.spamhaus.org. */
    zone: z
      .string()
      .transform((s) => s.trim().toLowerCase().replace(/\.$/, ''))
      .refine((s) => DOMAIN.test(s), { message: 'is not a DNS zone name; write e.g. "zen.spamhaus.org"' }),
    /** Answers that count as listed. Default: any 127.0.0.0/8 answer except 127.255.255.0/24,
     *  which lists use to report query errors (e.g. Spamhaus' 127.255.255.254). */
    codes: z.array(Code).min(1).optional(),
    /** reject: refuse the client (554 5.7.1); score: add `points` and go on. */
    action: z.enum(['reject', 'score']).default('reject'),
    points: z.number().finite().default(5),
  })
  .strict();

const Options = z
  .object({
    zones: z.array(Zone).default([]),
    /** Do not ask the lists about clients that logged in (a user on a dial-up range may send). */
    skipLogins: z.boolean().default(true),
    /** Give up on one zone after this long and skip it (keep it below the check's timeout). */
    timeout: Duration.default(3000),
    /** Answers kept in memory, at most. */
    cacheSize: z.number().int().min(0).default(10_000),
    /** How long a "not listed" answer is remembered (NXDOMAIN carries no TTL we can read). */
    negativeTtl: Duration.default(60_000),
    /** Upper bound on how long any answer is remembered, whatever its TTL. */
    maxTtl: Duration.default(3_600_000),
  })
  .strict();

const DEFAULT_LO = 0x7f000000; // 127.0.0.0
const ERROR_LO = 0x7fffff00; // 127.255.255.0: list error codes, never "listed"
const LOOPBACK_HI = 0x7fffffff;

/** `listed`: the list's answers (possibly not matching the codes); `clear`: not listed. */
type Answer = { readonly kind: 'listed'; readonly addresses: readonly string[] } | { readonly kind: 'clear' };

export const dnsbl = defineCheck({
  name: NAME,
  stages: ['connect', 'helo', 'mail', 'rcpt'],
  options: Options,
  create: (opts, env) => {
    const cache = new TtlCache<Answer>(opts.cacheSize, env.clock);
    const inflight = new Map<string, Promise<Answer>>();
    const resolve4 = uncachedResolve4(env.dns);

    // The one place a list is asked (not the cache): its answers and failures tell whether it is up.
    const ask = async (qname: string, zone: string, signal: AbortSignal): Promise<Answer> => {
      const watch = zoneWatch(env.dns, env.log, zone, NAME);
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
      // Recipients of one message ask at nearly the same time: one query serves them all.
      let p = inflight.get(qname);
      if (!p) {
        p = ask(qname, zone, signal).finally(() => inflight.delete(qname));
        inflight.set(qname, p);
      }
      return p;
    };

    /** Asks every zone not yet known at once, giving up on each after `timeout`. */
    const askAll = async (qnames: readonly string[], known: ReadonlyArray<Answer | undefined>, outer: AbortSignal): Promise<Array<PromiseSettledResult<Answer>>> => {
      const giveUp = new AbortController();
      const timer = setTimeout(() => giveUp.abort(new DeadlineError(`no answer within ${opts.timeout} ms (checks.${NAME}.timeout)`)), opts.timeout);
      const onOuter = (): void => giveUp.abort(outer.reason);
      if (outer.aborted) onOuter();
      else outer.addEventListener('abort', onOuter, { once: true });
      try {
        return await Promise.allSettled(
          qnames.map((q, i) => {
            const k = known[i];
            return k ? Promise.resolve(k) : lookup(q, opts.zones[i]!.zone, giveUp.signal);
          }),
        );
      } finally {
        clearTimeout(timer);
        outer.removeEventListener('abort', onOuter);
      }
    };

    const matches = (zone: z.output<typeof Zone>, address: string): boolean => {
      const n = v4(address);
      if (n === undefined) return false;
      if (zone.codes) return zone.codes.some((c) => n >= c.lo && n <= c.hi);
      return n >= DEFAULT_LO && n < ERROR_LO;
    };

    const check = async (ctx: CheckContext): Promise<Verdict> => {
      if (opts.zones.length === 0) return PASS;
      if (opts.skipLogins && ctx.session.login !== undefined) return PASS;
      const ip: Ip | undefined = parseIp(ctx.session.clientAddress);
      if (!ip) {
        env.log.warn({ check: NAME, client: ctx.session.clientAddress }, 'client address is not an IP address; no lookup');
        return PASS;
      }
      const client = ipText(ip);
      const qnames = opts.zones.map((z) => reverseName(ip, z.zone));
      // A known client (the usual case) costs no signal, no timer and no promise per zone.
      const known = qnames.map((q) => cache.get(q));
      const answers = known.every((a) => a !== undefined) ? known.map((value) => ({ status: 'fulfilled' as const, value })) : await askAll(qnames, known, ctx.signal);
      let points = 0;
      const scored: string[] = [];
      for (const [i, zone] of opts.zones.entries()) {
        const r = answers[i]!;
        if (r.status === 'rejected') {
          // Debug only: a list that stopped answering is logged once by its watch, not per client.
          env.log.debug({ check: NAME, zone: zone.zone, client, err: errorCode(r.reason) }, 'DNS list lookup failed; zone skipped');
          continue;
        }
        if (r.value.kind === 'clear') continue;
        const hits = r.value.addresses.filter((a) => matches(zone, a));
        if (hits.length === 0) {
          const odd = r.value.addresses.filter((a) => {
            const n = v4(a);
            return n === undefined || n < DEFAULT_LO || n > LOOPBACK_HI || n >= ERROR_LO;
          });
          // Outside 127/8, or a list error code: a hijacking resolver or a refused query, not a listing.
          if (odd.length > 0) env.log.warn({ check: NAME, zone: zone.zone, client, answers: odd }, 'DNS list gave answers that are not listing codes; ignored');
          continue;
        }
        if (zone.action === 'reject') {
          return reject(perm('5.7.1', `Service unavailable; client [${client}] blocked using ${zone.zone}`, 554), `client ${client} listed in ${zone.zone} (${hits.join(', ')})`);
        }
        points += zone.points;
        scored.push(zone.zone);
        env.log.info({ check: NAME, zone: zone.zone, client, answers: hits, points: zone.points }, 'client listed; scored');
      }
      return scored.length > 0 ? score(points, `${NAME}:${scored.join(',')}`) : PASS;
    };

    return { connect: check, helo: check, mail: check, rcpt: check };
  },
});
