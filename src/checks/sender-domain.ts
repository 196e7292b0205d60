// Postfix's reject_unknown_sender_domain: refuse a sender whose domain has no MX and no A/AAAA
// record (550 5.1.8 when DNS says so, 450 4.1.8 when DNS could not answer), or a null MX
// (RFC 7505 §4.2: 550 5.7.27). The null sender and our own domains pass without a lookup.
import { z } from 'zod';
import type { Mailbox } from '../core/address.ts';
import { perm, temp } from '../core/reply.ts';
import { PASS, defer, reject, type Verdict } from '../core/verdict.ts';
import { defineCheck, type CheckContext } from '../pipeline/check.ts';
import { noteMailDomain, resolverWatch } from './lib/dns-outage.ts';
import { mailDomain } from './lib/mail-domain.ts';

const NAME = 'sender-domain';

export const senderDomain = defineCheck({
  name: NAME,
  stages: ['mail', 'rcpt'],
  options: z.object({}).strict(),
  create: (_opts, env) => {
    const ours = new Set(env.domains.map((d) => d.toLowerCase()));
    const watch = resolverWatch(env.dns, env.log);
    const check = async (ctx: CheckContext, from: Mailbox | null): Promise<Verdict> => {
      if (from === null) return PASS; // RFC 5321 §4.5.5: bounces must be accepted
      const domain = from.domain;
      if (ours.has(domain) || env.directory.isLocalDomain(domain) || domain.startsWith('[')) return PASS;
      const who = `<${from.address}>: Sender address rejected`;
      const generation = watch.generation;
      const r = await mailDomain(env.dns, domain, ctx.signal);
      noteMailDomain(watch, generation, r, { check: NAME, domain }, ctx.signal);
      switch (r.kind) {
        case 'ok':
          return PASS;
        case 'null-mx':
          return reject(perm('5.7.27', `${who}: Domain ${domain} does not accept mail (nullMX)`), `sender domain ${domain} has a null MX`);
        case 'unknown':
          return reject(perm('5.1.8', `${who}: Domain not found`), `sender domain ${domain}: ${r.detail}`);
        case 'temporary':
          // Debug only: a resolver that stopped answering is logged once by its watch, not per message.
          env.log.debug({ check: NAME, domain, err: r.detail }, 'sender domain lookup failed; deferring');
          return defer(temp('4.1.8', `${who}: Domain not found`), `sender domain ${domain}: DNS failure ${r.detail}`);
      }
    };
    return {
      mail: (ctx, from) => check(ctx, from),
      rcpt: async (ctx) => (ctx.tx ? check(ctx, ctx.tx.mailFrom) : PASS),
    };
  },
});
