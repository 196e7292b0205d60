// Postfix's check_helo_access: the HELO/EHLO name is looked up in an access map (the name, then
// each parent domain written `.example.com`), and the entry's action is the verdict. At the
// mail and rcpt stages it looks up the name the client gave earlier.
import { defineCheck, type CheckContext } from '../pipeline/check.ts';
import { PASS, type Verdict } from '../core/verdict.ts';
import { heloNameCounts } from './lib/helo-evidence.ts';
import { AccessMap, AccessOptions, accessVerdict, domainKeys } from './lib/access-map.ts';

const NAME = 'helo-access';

export const heloAccess = defineCheck({
  name: NAME,
  stages: ['helo', 'mail', 'rcpt'],
  canPermit: true,
  options: AccessOptions,
  create: (opts, env) => {
    const map = new AccessMap(NAME, 'domain', opts, env);
    const check = async (name: string | undefined): Promise<Verdict> => {
      if (name === undefined || name === '') return PASS;
      const rule = await map.lookup(domainKeys(name));
      // Keep the reply line under 512 octets (RFC 5321 §4.5.3.1.5) whatever the client sent.
      const shown = name.length > 255 ? `${name.slice(0, 255)}...` : name;
      return rule ? accessVerdict(NAME, rule, `<${shown}>`, 'Helo command', env.log) : PASS;
    };
    // MX listeners only: on the submission ports a client's name is no evidence (lib/helo-evidence.ts).
    const later = (ctx: CheckContext): Promise<Verdict> => check(heloNameCounts(ctx.session) ? ctx.session.helo : undefined);
    return { helo: (ctx, name) => check(heloNameCounts(ctx.session) ? name : undefined), mail: later, rcpt: later };
  },
});
