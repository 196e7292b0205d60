// Refuses recipients in our domains that no mailbox or alias serves (550 5.1.1 at RCPT, so the
// sender's own server bounces, and we never send backscatter), and system/role accounts that
// must never receive mail from outside (refused, or silently discarded if the operator prefers).
// Recipients in other domains pass through: the relay gate alone decides about them.
import { z } from 'zod';
import { perm, temp } from '../core/reply.ts';
import { defer, discard, pass, reject, type Verdict } from '../core/verdict.ts';
import { defineCheck, recipientOf } from '../pipeline/check.ts';

const unknownUser = perm('5.1.1', 'User unknown in local recipient table');
// RFC 3463 §3.4 (X.3.0 other mail system status): the mailbox directory cannot answer now.
const inDoubt = temp('4.3.0', 'Recipient lookup failed, try again later', 451);

// Accounts of a Unix system that have no business receiving mail (Debian's base passwd, plus
// common daemons). root, postmaster and abuse are absent on purpose: RFC 2142 wants them reachable.
export const DEFAULT_SYSTEM_ACCOUNTS = [
  'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'news', 'uucp', 'proxy', 'www-data', 'backup', 'list', 'irc', 'gnats',
  'nobody', 'systemd-network', 'systemd-resolve', 'systemd-timesync', 'messagebus', 'sshd', '_apt', 'mysql', 'postgres', 'redis',
];

export const recipient = defineCheck({
  name: 'recipient',
  stages: ['rcpt'],
  options: z
    .object({
      /** Local parts refused (or discarded) in every local domain, even if an alias exists. */
      systemAccounts: z.array(z.string().min(1)).default(DEFAULT_SYSTEM_ACCOUNTS),
      systemAccountAction: z.enum(['reject', 'discard']).default('reject'),
    })
    .strict(),
  create: (opts, env) => {
    /** A mailbox kept outside (Dovecot's userdb): NOTFOUND is 550; no answer or FAIL is 451 (in doubt, defer). */
    const confirm = async (mailbox: string, signal: AbortSignal): Promise<Verdict | undefined> => {
      try {
        if (await (env.directory.confirmMailbox?.(mailbox, signal) ?? Promise.resolve(false))) return undefined;
        return reject(unknownUser, `Dovecot's userdb has no ${mailbox} (recipients.dovecot)`);
      } catch (err) {
        return defer(inDoubt, `${err instanceof Error ? err.message : String(err)}; check Dovecot and recipients.dovecot.socket`);
      }
    };
    const system = new Set(opts.systemAccounts.map((a) => a.toLowerCase()));
    return {
      // Answered at once unless a mailbox must be confirmed outside (the only I/O here).
      rcpt: (ctx, rcpt) => {
        if (!env.directory.isLocalDomain(rcpt.domain)) return pass();
        // Routing characters in a local part of ours are never a mailbox: `a%b@ours`, `b!a@ours`
        // and quoted `"a@b"@ours` are classic ways to make a server forward mail elsewhere.
        if (rcpt.flags.some((f) => f === 'percent-hack' || f === 'bang-path') || /[@%!]/.test(rcpt.local)) {
          return reject(unknownUser, `local part ${JSON.stringify(rcpt.local)} holds routing characters`);
        }
        if (system.has(rcpt.local.toLowerCase())) {
          const why = `${rcpt.address} is a system account (checks.recipient.systemAccounts)`;
          return opts.systemAccountAction === 'discard' ? discard(why) : reject(unknownUser, why);
        }
        const r = recipientOf(ctx, env, rcpt);
        if (r.kind !== 'local') return reject(unknownUser, `no mailbox or alias ${rcpt.address}`);
        if (!r.confirm || r.confirm.length === 0) return pass();
        const mailboxes = r.confirm;
        return (async () => {
          for (const m of mailboxes) {
            const v = await confirm(m, ctx.signal);
            if (v) return v;
          }
          return pass();
        })();
      },
    };
  },
});
