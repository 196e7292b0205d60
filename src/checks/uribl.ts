// URI blocklists (SpamAssassin's URIBL rules; Spamhaus DBL, SURBL, URIBL): at end of DATA the web
// sites the message points to (src/spam/uris.ts: links and URLs, defanged ones too, bare domains;
// reduced to the registrable domain) are looked up as `<domain>.<zone>` A queries, and links to
// IP addresses as reversed addresses (RFC 5782 §2.1, §2.3). Each zone that lists one of them adds
// its points once. The lookups of one message share one deadline: a list that does not answer in
// time counts as "not listed" and is logged — it never refuses, defers or holds up the mail.
import { z } from 'zod';
import { Duration } from '../config/units.ts';
import { PASS, score, type Verdict } from '../core/verdict.ts';
import { parseIp, reverseName } from '../core/net.ts';
import { defineCheck } from '../pipeline/check.ts';
import { messageUriTargets } from '../spam/uris.ts';
import { errorCode } from './lib/dns.ts';
import { Code, DOMAIN, inRanges, listLookup, v4, ZoneName, type Query } from './lib/dns-list.ts';

const NAME = 'uribl';

// zod's own text says what is wrong, not what a mask is.
const MASK = { message: 'is a bit mask of the last octet of the answer, 1–255; write e.g. 8 (SURBL phishing) or 216 (8+16+64+128)' };

const Zone = z
  .object({
    /** The list's DNS zone, e.g. dbl.spamhaus.org, multi.surbl.org, multi.uribl.com. */
    zone: ZoneName('dbl.spamhaus.org'),
    /** Answers that count as listed (addresses or ranges). Default 127.0.0.2–127.0.1.254: the
     * lists' listing codes, without URIBL's 127.0.0.1 ("query refused"), Spamhaus's 127.0.1.255
     * ("IP queries not allowed") and 127.255.255.x (query errors). */
    codes: z.array(Code).min(1).optional(),
    /** For lists that answer a bit field in the last octet of 127.0.0.x (SURBL multi: 8 phishing,
     * 16 malware, 64 abuse, 128 cracked; URIBL multi: 2 black, 4 grey, 8 red): listed when the
     * answer has one of these bits. */
    mask: z.number().int().min(1, MASK).max(255, MASK).optional(),
    points: z.number().finite().default(3),
    /** Ask this zone about domains (DBL, SURBL, URIBL); false for an address list. */
    domains: z.boolean().default(true),
    /** Ask this zone about IP addresses that links point to (e.g. Spamhaus ZEN/SBL); DBL refuses them. */
    ips: z.boolean().default(false),
    /** The name every domain list must list (RFC 5782 §5: "test"); `mailward doctor` asks for it.
     * Some lists use their own: Spamhaus DBL "dbltest.com", SURBL "test.surbl.org", URIBL "test.uribl.com". */
    testName: z
      .string()
      .transform((s) => s.trim().toLowerCase().replace(/\.$/, ''))
      .refine((s) => s === 'test' || DOMAIN.test(s), { message: 'is not a domain name; write e.g. "test" or "dbltest.com"' })
      .default('test'),
  })
  .strict()
  .superRefine((z0, ctx) => {
    if (!z0.domains && !z0.ips) ctx.addIssue({ code: 'custom', path: ['domains'], message: `zone ${z0.zone} is asked about neither domains nor IPs; set domains: true or ips: true`, input: false });
  });

const Options = z
  .object({
    zones: z.array(Zone).default([]),
    /** Messages from logged-in users are not looked up (their links are their own business). */
    skipLogins: z.boolean().default(true),
    /** Registrable domains never asked about (our own domains are never asked either). */
    skipDomains: z.array(z.string().transform((s) => s.trim().toLowerCase().replace(/\.$/, ''))).default([]),
    /** Distinct domains and addresses looked up per message, at most (SpamAssassin: 20). The
     * links come first, then URLs in the text, then bare domains. */
    maxLookups: z.number().int().min(1).max(200).default(20),
    /** All lookups of one message give up after this long; keep it well below the check's timeout. */
    timeout: Duration.default(2000),
    /** Bytes of each message read for links. */
    maxBytes: z.number().int().min(16 * 1024).max(64 * 1024 * 1024).default(256 * 1024),
    cacheSize: z.number().int().min(0).default(10_000),
    negativeTtl: Duration.default(300_000),
    maxTtl: Duration.default(3_600_000),
  })
  .strict();

type ZoneOptions = z.output<typeof Zone>;

const DEFAULT_CODES = [{ lo: 0x7f000002, hi: 0x7f0001fe }];
const NET_127_0_0 = 0x7f000000;

function listedBy(zone: ZoneOptions, address: string): boolean {
  const n = v4(address);
  if (n === undefined) return false;
  if (zone.mask !== undefined && ((n & 0xffffff00) >>> 0 !== NET_127_0_0 || (n & zone.mask) === 0)) return false;
  if (zone.codes) return inRanges(zone.codes, n);
  return zone.mask !== undefined || inRanges(DEFAULT_CODES, n);
}

export const uribl = defineCheck({
  name: NAME,
  stages: ['data'],
  options: Options,
  create: (opts, env) => {
    const lists = listLookup(env, { check: NAME, cacheSize: opts.cacheSize, negativeTtl: opts.negativeTtl, maxTtl: opts.maxTtl, timeout: opts.timeout });
    const skip = new Set([...opts.skipDomains, ...env.domains]);
    const skipped = (d: string): boolean => {
      for (const s of skip) if (d === s || d.endsWith('.' + s)) return true;
      return false;
    };

    return {
      data: async (ctx, message): Promise<Verdict> => {
        if (opts.zones.length === 0 || (opts.skipLogins && ctx.session.login !== undefined)) return PASS;
        const found = messageUriTargets(await message.raw(), opts.maxBytes, opts.maxLookups * 2 + skip.size);
        const names = [...found.ips.map((ip) => ({ ip })), ...found.domains.filter((d) => !skipped(d)).map((domain) => ({ domain }))].slice(0, opts.maxLookups);
        const queries: Array<Query & { readonly target: string; readonly zi: number }> = [];
        for (const n of names) {
          for (const [zi, zone] of opts.zones.entries()) {
            if ('ip' in n) {
              const ip = parseIp(n.ip);
              if (zone.ips && ip) queries.push({ qname: reverseName(ip, zone.zone), zone: zone.zone, target: n.ip, zi });
            } else if (zone.domains) queries.push({ qname: `${n.domain}.${zone.zone}`, zone: zone.zone, target: n.domain, zi });
          }
        }
        if (queries.length === 0) return PASS;
        const known = queries.map((q) => lists.cached(q.qname));
        const answers = known.every((a) => a !== undefined) ? known.map((value) => ({ status: 'fulfilled' as const, value })) : await lists.askAll(queries, ctx.signal);
        const listed = new Map<number, string[]>();
        const failed: string[] = [];
        let failure: unknown;
        for (const [i, q] of queries.entries()) {
          const r = answers[i]!;
          if (r.status === 'rejected') {
            failed.push(q.qname);
            failure ??= r.reason;
            continue;
          }
          if (r.value.kind === 'clear') continue;
          const zone = opts.zones[q.zi]!;
          const hits = r.value.addresses.filter((a) => listedBy(zone, a));
          if (hits.length === 0) continue;
          listed.set(q.zi, [...(listed.get(q.zi) ?? []), q.target]);
          env.log.info({ check: NAME, session: ctx.session.id, zone: zone.zone, target: q.target, answers: hits }, 'message links to a listed site');
        }
        if (failed.length > 0) {
          // A list that did not answer adds nothing; the zone's watch reports an outage once.
          env.log.info({ check: NAME, session: ctx.session.id, unanswered: failed.length, of: queries.length, first: failed[0], err: errorCode(failure) }, 'URI list lookups without an answer in time; counted as not listed');
        }
        if (listed.size === 0) return PASS;
        let points = 0;
        const zones: string[] = [];
        for (const [zi] of [...listed].sort((a, b) => a[0] - b[0])) {
          points += opts.zones[zi]!.points;
          zones.push(opts.zones[zi]!.zone);
        }
        return score(points, `${NAME}:${zones.join(',')}`);
      },
    };
  },
});
