// DNS blocklists (Postfix's reject_rbl_client): the client's address is looked up in each
// configured zone (RFC 5782: reversed IPv4 octets, reversed IPv6 nibbles); a listed client is
// rejected or scored per zone. Answers are cached in memory for their TTL. A zone that fails or
// times out is skipped — a broken list must never refuse mail — and logged once per outage.
import { z } from 'zod';
import { Duration } from '../config/units.ts';
import { perm } from '../core/reply.ts';
import { PASS, reject, score, type Verdict } from '../core/verdict.ts';
import { defineCheck, type CheckContext } from '../pipeline/check.ts';
import { errorCode } from './lib/dns.ts';
import { ipText, parseIp, reverseName, type Ip } from '../core/net.ts';
import { Code, inRanges, listLookup, v4, ZoneName } from './lib/dns-list.ts';

const NAME = 'dnsbl';

const Zone = z
  .object({
    /** The list's DNS zone, e.g. zen.spamhaus.org. */
    zone: ZoneName('zen.spamhaus.org'),
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

export const dnsbl = defineCheck({
  name: NAME,
  stages: ['connect', 'helo', 'mail', 'rcpt'],
  options: Options,
  create: (opts, env) => {
    const lists = listLookup(env, { check: NAME, cacheSize: opts.cacheSize, negativeTtl: opts.negativeTtl, maxTtl: opts.maxTtl, timeout: opts.timeout });

    const matches = (zone: z.output<typeof Zone>, address: string): boolean => {
      const n = v4(address);
      if (n === undefined) return false;
      if (zone.codes) return inRanges(zone.codes, n);
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
      const known = qnames.map((q) => lists.cached(q));
      const answers = known.every((a) => a !== undefined)
        ? known.map((value) => ({ status: 'fulfilled' as const, value }))
        : await lists.askAll(qnames.map((qname, i) => ({ qname, zone: opts.zones[i]!.zone })), ctx.signal);
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
