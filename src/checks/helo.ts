// HELO/EHLO name checks: the name must be a domain or an address literal (RFC 5321 §4.1.1.1),
// must not claim to be us (our host name, our mail domains, one of our listener addresses), and
// optionally must be fully qualified. Replies as Postfix's reject_invalid/non_fqdn_helo_hostname.
// MX listeners only: on the submission ports a client's name is no evidence (lib/helo-evidence.ts).
import { z } from 'zod';
import { perm } from '../core/reply.ts';
import { PASS, reject, type Verdict } from '../core/verdict.ts';
import { defineCheck } from '../pipeline/check.ts';
import { ipText, parseIp } from '../core/net.ts';
import { heloNameCounts } from './lib/helo-evidence.ts';

const NAME = 'helo';

const Options = z
  .object({
    /** The addresses our listeners answer on: a client saying [one of them] is lying. */
    ownAddresses: z.array(z.string().refine((s) => parseIp(s) !== undefined, { message: 'is not an IP address; write e.g. "192.0.2.25" or "2001:db8::25"' })).default([]),
    /** Refuse a name without a dot (Postfix's reject_non_fqdn_helo_hostname). */
    requireFqdn: z.boolean().default(false),
  })
  .strict();

// RFC 5321 §4.1.2 sub-domain = Let-dig [Ldh-str]; '_' is tolerated as Postfix does, since real
// hosts use it. One trailing dot is tolerated too.
const LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const DOMAIN = new RegExp(`^(?=.{1,253}\\.?$)${LABEL}(?:\\.${LABEL})*\\.?$`);
// RFC 5321 §4.1.3: IPv4 and IPv6 literals; other tags (General-address-literal) are not used.
const LITERAL = /^\[(?:IPv6:)?[0-9A-Fa-f:.]+\]$/i;
const ALL_NUMERIC = /^[0-9.]+$/;

/** Why a HELO argument is not a valid name, or undefined when it is one. */
export function heloSyntaxProblem(name: string): string | undefined {
  if (name.startsWith('[')) {
    if (!LITERAL.test(name)) return 'not an address literal';
    const inner = name.slice(1, -1);
    const v6 = /^ipv6:/i.test(inner);
    const ip = parseIp(v6 ? inner.slice(5) : inner);
    if (!ip) return 'not an address literal';
    // "[1.2.3.4]" is IPv4; an IPv6 address must carry the IPv6: tag.
    if (!v6 && inner.includes(':')) return 'IPv6 literal without the IPv6: tag';
    return undefined;
  }
  // A bare address is not a domain (RFC 5321 §4.1.3 asks for the bracketed form).
  if (ALL_NUMERIC.test(name) || parseIp(name)) return 'a bare IP address (write it as [address])';
  if (!DOMAIN.test(name)) return 'not a domain name';
  return undefined;
}

export const helo = defineCheck({
  name: NAME,
  stages: ['helo', 'mail'],
  options: Options,
  create: (opts, env) => {
    const ourNames = new Set([env.hostname, ...env.domains].map((n) => n.toLowerCase().replace(/\.$/, '')));
    const ourAddresses = new Set(opts.ownAddresses.map((a) => ipText(parseIp(a)!)));

    const check = (name: string): Verdict => {
      // A reply line may not pass 512 octets (RFC 5321 §4.5.3.1.5); a hostile HELO can be longer.
      const who = `<${name.length > 255 ? `${name.slice(0, 255)}...` : name}>: Helo command rejected`;
      const problem = heloSyntaxProblem(name);
      if (problem) return reject(perm('5.5.2', `${who}: Invalid name`, 501), `HELO ${JSON.stringify(name)}: ${problem}`);
      const lower = name.toLowerCase().replace(/\.$/, '');
      if (lower.startsWith('[')) {
        const ip = parseIp(lower);
        if (ip && ourAddresses.has(ipText(ip))) return reject(perm('5.7.1', `${who}: You are not me`), `HELO ${name} is one of our addresses`);
        return PASS;
      }
      if (ourNames.has(lower)) return reject(perm('5.7.1', `${who}: You are not me`), `HELO ${name} is our own name`);
      if (opts.requireFqdn && !lower.includes('.')) return reject(perm('5.5.2', `${who}: need fully-qualified hostname`, 504), `HELO ${name} is not fully qualified`);
      return PASS;
    };

    return {
      // Both answer at once (no I/O): the runner arms no deadline for them.
      helo: (ctx, name) => (heloNameCounts(ctx.session) ? check(name) : PASS),
      // At MAIL the client may have logged in since: a user's mail client is not judged by its HELO.
      mail: (ctx) => (!heloNameCounts(ctx.session) || ctx.session.login !== undefined || ctx.session.helo === undefined ? PASS : check(ctx.session.helo)),
    };
  },
});
