// Postfix's check_recipient_access: each recipient is looked up in an access map (address,
// domain, parent domains, `user@`) and the entry's action is the verdict for that recipient.
import { defineCheck } from '../pipeline/check.ts';
import { PASS } from '../core/verdict.ts';
import { AccessMap, AccessOptions, accessVerdict, addressKeys } from './lib/access-map.ts';

const NAME = 'recipient-access';

export const recipientAccess = defineCheck({
  name: NAME,
  stages: ['rcpt'],
  canPermit: true,
  options: AccessOptions,
  create: (opts, env) => {
    const map = new AccessMap(NAME, 'address', opts, env);
    return {
      rcpt: async (_ctx, rcpt) => {
        const rule = await map.lookup(addressKeys(rcpt));
        return rule ? accessVerdict(NAME, rule, `<${rcpt.address}>`, 'Recipient address', env.log) : PASS;
      },
    };
  },
});
