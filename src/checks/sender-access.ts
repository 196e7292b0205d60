// Postfix's check_sender_access: the envelope sender is looked up in an access map (address,
// domain, parent domains, `user@`, and `<>` for the null sender) and the entry's action is the
// verdict. At the rcpt stage it looks up the transaction's sender.
import { defineCheck } from '../pipeline/check.ts';
import type { Mailbox } from '../core/address.ts';
import { PASS, type Verdict } from '../core/verdict.ts';
import { AccessMap, AccessOptions, accessVerdict, addressKeys } from './lib/access-map.ts';

const NAME = 'sender-access';

export const senderAccess = defineCheck({
  name: NAME,
  stages: ['mail', 'rcpt'],
  canPermit: true,
  options: AccessOptions,
  create: (opts, env) => {
    const map = new AccessMap(NAME, 'address', opts, env);
    const check = async (from: Mailbox | null): Promise<Verdict> => {
      const rule = await map.lookup(addressKeys(from));
      return rule ? accessVerdict(NAME, rule, `<${from?.address ?? ''}>`, 'Sender address', env.log) : PASS;
    };
    return {
      mail: (_ctx, from) => check(from),
      rcpt: async (ctx) => (ctx.tx ? check(ctx.tx.mailFrom) : PASS),
    };
  },
});
