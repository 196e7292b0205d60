// Postfix's reject_unknown_recipient_domain: refuse a recipient whose domain has no MX and no
// A/AAAA record (550 5.1.2 when DNS says so, 450 4.1.2 when DNS could not answer), or a null MX
// (RFC 7505 §4.3: 556 5.1.10). Our own domains pass without a lookup.
import { z } from 'zod';
import { defineCheck } from '../pipeline/check.ts';
import { mailDomainJudge } from './lib/mail-domain-check.ts';

const NAME = 'recipient-domain';

export const recipientDomain = defineCheck({
  name: NAME,
  stages: ['rcpt'],
  options: z.object({}).strict(),
  create: (_opts, env) => {
    const judge = mailDomainJudge(env, { check: NAME, role: 'recipient', nullMx: ['5.1.10', 556], unknown: '5.1.2', temporary: '4.1.2' });
    return { rcpt: (ctx, rcpt) => judge(ctx, rcpt) };
  },
});
