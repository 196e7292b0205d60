// Refuses recipients in our domains that no mailbox or alias serves (550 5.1.1 at RCPT, so the
// sender's own server bounces, and we never send backscatter). Recipients in other domains pass
// through: whether they may be relayed is decided by the relay gate alone.
import { z } from 'zod';
import { perm } from '../core/reply.ts';
import { pass, reject } from '../core/verdict.ts';
import { defineCheck } from '../pipeline/check.ts';

const unknownUser = perm('5.1.1', 'User unknown in local recipient table');

export const recipient = defineCheck({
  name: 'recipient',
  stages: ['rcpt'],
  options: z.object({}).strict(),
  create: (_opts, env) => ({
    rcpt: async (_ctx, rcpt) => {
      if (!env.directory.isLocalDomain(rcpt.domain)) return pass();
      // Routing characters in a local part of ours are never a mailbox: `a%b@ours`, `b!a@ours`
      // and quoted `"a@b"@ours` are classic ways to make a server forward mail elsewhere.
      if (rcpt.flags.some((f) => f === 'percent-hack' || f === 'bang-path') || /[@%!]/.test(rcpt.local)) {
        return reject(unknownUser, `local part ${JSON.stringify(rcpt.local)} holds routing characters`);
      }
      const r = env.directory.resolveRecipient(rcpt.address);
      if (r.kind === 'local') return pass();
      return reject(unknownUser, `no mailbox or alias ${rcpt.address}`);
    },
  }),
});
