// Postfix's reject_unknown_sender_domain: refuse a sender whose domain has no MX and no A/AAAA
// record (550 5.1.8 when DNS says so, 450 4.1.8 when DNS could not answer), or a null MX
// (RFC 7505 §4.2: 550 5.7.27). The null sender and our own domains pass without a lookup.
import { z } from 'zod';
import type { Mailbox } from '../core/address.ts';
import { PASS, type Verdict } from '../core/verdict.ts';
import { defineCheck, type CheckContext } from '../pipeline/check.ts';
import { mailDomainJudge } from './lib/mail-domain-check.ts';

const NAME = 'sender-domain';

export const senderDomain = defineCheck({
  name: NAME,
  stages: ['mail', 'rcpt'],
  options: z.object({}).strict(),
  create: (_opts, env) => {
    const judge = mailDomainJudge(env, { check: NAME, role: 'sender', nullMx: ['5.7.27', 550], unknown: '5.1.8', temporary: '4.1.8' });
    // RFC 5321 §4.5.5: bounces (the null sender) must be accepted.
    const check = (ctx: CheckContext, from: Mailbox | null): Promise<Verdict> => (from === null ? Promise.resolve(PASS) : judge(ctx, from));
    return {
      mail: (ctx, from) => check(ctx, from),
      rcpt: async (ctx) => (ctx.tx ? check(ctx, ctx.tx.mailFrom) : PASS),
    };
  },
});
