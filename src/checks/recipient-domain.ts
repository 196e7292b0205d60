// Postfix's reject_unknown_recipient_domain: refuse a recipient whose domain has no MX and no
// A/AAAA record (550 5.1.2 when DNS says so, 450 4.1.2 when DNS could not answer), or a null MX
// (RFC 7505 §4.3: 556 5.1.10). Our own domains pass without a lookup.
import { z } from 'zod';
import { perm, temp } from '../core/reply.ts';
import { PASS, defer, reject } from '../core/verdict.ts';
import { defineCheck } from '../pipeline/check.ts';
import { noteMailDomain, resolverWatch } from './lib/dns-outage.ts';
import { mailDomain } from './lib/mail-domain.ts';

const NAME = 'recipient-domain';

export const recipientDomain = defineCheck({
  name: NAME,
  stages: ['rcpt'],
  options: z.object({}).strict(),
  create: (_opts, env) => {
    const ours = new Set(env.domains.map((d) => d.toLowerCase()));
    const watch = resolverWatch(env.dns, env.log);
    return {
      rcpt: async (ctx, rcpt) => {
        const domain = rcpt.domain;
        if (ours.has(domain) || env.directory.isLocalDomain(domain) || domain.startsWith('[')) return PASS;
        const who = `<${rcpt.address}>: Recipient address rejected`;
        const generation = watch.generation;
        const r = await mailDomain(env.dns, domain, ctx.signal);
        noteMailDomain(watch, generation, r, { check: NAME, domain }, ctx.signal);
        switch (r.kind) {
          case 'ok':
            return PASS;
          case 'null-mx':
            return reject(perm('5.1.10', `${who}: Domain ${domain} does not accept mail (nullMX)`, 556), `recipient domain ${domain} has a null MX`);
          case 'unknown':
            return reject(perm('5.1.2', `${who}: Domain not found`), `recipient domain ${domain}: ${r.detail}`);
          case 'temporary':
            // Debug only: a resolver that stopped answering is logged once by its watch, not per message.
            env.log.debug({ check: NAME, domain, err: r.detail }, 'recipient domain lookup failed; deferring');
            return defer(temp('4.1.2', `${who}: Domain not found`), `recipient domain ${domain}: DNS failure ${r.detail}`);
        }
      },
    };
  },
});
