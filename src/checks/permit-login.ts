// Postfix's permit_sasl_authenticated: an authenticated login skips the rest of the stage's list
// (greylisting, SPF, domain checks). It cannot open relaying: the relay gate is not in the list.
import { z } from 'zod';
import { pass, permit } from '../core/verdict.ts';
import { defineCheck } from '../pipeline/check.ts';

export const permitLogin = defineCheck({
  name: 'permit-login',
  stages: ['helo', 'mail', 'rcpt', 'data'],
  canPermit: true,
  options: z.object({}).strict(),
  create: () => {
    const decide = (ctx: { session: { login?: string } }) => (ctx.session.login ? permit(`login ${ctx.session.login}`) : pass());
    // Answered at once: no I/O, so no promise for the runner to wait on.
    return { helo: decide, mail: decide, rcpt: decide, data: decide };
  },
});
