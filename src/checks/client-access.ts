// Postfix's check_client_access: the client's address is looked up in an access map of
// addresses and CIDR ranges (the narrowest range wins), and the entry's action is the verdict.
// May permit (OK), so an operator can let a known host skip the rest of a stage's list.
import { defineCheck, type CheckContext } from '../pipeline/check.ts';
import { PASS, type Verdict } from '../core/verdict.ts';
import { AccessMap, AccessOptions, accessVerdict } from './lib/access-map.ts';
import { ipText, parseIp } from '../core/net.ts';

const NAME = 'client-access';

export const clientAccess = defineCheck({
  name: NAME,
  stages: ['connect', 'helo', 'mail', 'rcpt'],
  canPermit: true,
  options: AccessOptions,
  create: (opts, env) => {
    const map = new AccessMap(NAME, 'network', opts, env);
    const check = async (ctx: CheckContext): Promise<Verdict> => {
      const ip = parseIp(ctx.session.clientAddress);
      if (!ip) {
        env.log.warn({ check: NAME, client: ctx.session.clientAddress }, 'client address is not an IP address; no lookup');
        return PASS;
      }
      const rule = await map.lookupIp(ip);
      return rule ? accessVerdict(NAME, rule, `[${ipText(ip)}]`, 'Client host', env.log) : PASS;
    };
    return { connect: check, helo: check, mail: check, rcpt: check };
  },
});
