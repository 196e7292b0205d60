// A login sends only as itself: the envelope sender (and, by default, the header From) must be
// an address the login owns — its own, its aliases, or those listed under `sendAs` — the
// hand-written policy script of the incident, built in. Without a login, our own domains may
// not be used as envelope sender on the MX port (a forged "from us" is a phishing classic).
import { z } from 'zod';
import addressparser from 'nodemailer/lib/addressparser';
import { perm } from '../core/reply.ts';
import { pass, reject } from '../core/verdict.ts';
import { defineCheck } from '../pipeline/check.ts';
import { compileNetworks } from '../core/net.ts';

const notOwned = perm('5.7.1', 'Sender address rejected: not owned by user', 553);
const headerNotOwned = perm('5.7.1', 'From header address not owned by user', 550);
const ownDomain = perm('5.7.1', 'Sender address rejected: log in to send as a local address', 553);

const Options = z
  .object({
    /** Extra addresses a login may send as: { "alice@example.org": ["sales@example.org", "@example.net"] }. */
    sendAs: z.record(z.string(), z.array(z.string().min(1))).default({}),
    /** Check the header From addresses too, at end of DATA. */
    headerFrom: z.boolean().default(true),
    /** May a login send with the null sender <>? (Only mail robots such as vacation responders do.) */
    allowNullSender: z.boolean().default(false),
    /** Without a login, refuse our own domains as envelope sender on mx listeners. */
    unauthenticatedOwnDomain: z.enum(['reject', 'allow']).default('reject'),
    /** Client networks exempt from that rule (e.g. a scanner that mails from scanner@ours). */
    exceptions: z.array(z.string().min(1)).default([]),
  })
  .strict();

export const senderLogin = defineCheck({
  name: 'sender-login',
  stages: ['mail', 'data'],
  options: Options,
  create: (opts, env) => {
    // The one network parser: mapped ranges and client addresses are folded to IPv4 alike.
    const exceptions = compileNetworks(opts.exceptions, 'checks.sender-login.exceptions');
    const sendAs = new Map(Object.entries(opts.sendAs).map(([login, list]) => [login.toLowerCase(), list.map((a) => a.toLowerCase())]));
    const owns = (login: string, address: string): boolean => {
      const a = address.toLowerCase();
      if (env.directory.sendAsAllowed(login).includes(a)) return true;
      const extra = sendAs.get(login.toLowerCase()) ?? [];
      const domain = a.slice(a.lastIndexOf('@'));
      return extra.includes(a) || extra.includes(domain);
    };
    const exempt = (ip: string): boolean => exceptions.match(ip) !== undefined;
    return {
      mail: async (ctx, from) => {
        const login = ctx.session.login;
        if (login) {
          if (from === null) return opts.allowNullSender ? pass() : reject(notOwned, `login ${login} used the null sender`);
          return owns(login, from.address) ? pass() : reject(notOwned, `login ${login} may not send as ${from.address}`);
        }
        if (from && opts.unauthenticatedOwnDomain === 'reject' && ctx.session.listenerKind === 'mx' && env.directory.isLocalDomain(from.domain) && !exempt(ctx.session.clientAddress)) {
          return reject(ownDomain, `unauthenticated client used our domain in ${from.address}`);
        }
        return pass();
      },
      data: async (ctx, message) => {
        const login = ctx.session.login;
        if (!login || !opts.headerFrom) return pass();
        const froms = message.headers.filter(([name]) => name.toLowerCase() === 'from');
        // No From at all claims no identity (other checks may score it); two is always a trick.
        if (froms.length === 0) return pass();
        if (froms.length > 1) return reject(headerNotOwned, `login ${login} sent ${froms.length} From headers`);
        const addresses = addressparser(froms[0]![1], { flatten: true }).map((a) => a.address);
        if (addresses.length === 0) return reject(headerNotOwned, `login ${login} sent a From header without an address`);
        const foreign = addresses.filter((a) => !owns(login, a));
        return foreign.length === 0 ? pass() : reject(headerNotOwned, `login ${login} may not use From: ${foreign.join(', ')}`);
      },
    };
  },
});
