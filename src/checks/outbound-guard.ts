// The outbound breaker at RCPT: a relayed recipient is refused with a 4xx while a breaker of the
// login, sender or client is open (while only the global one is, it is taken and then held in
// hold/ by the guarded transport), and is counted towards them (baseline, distinct domains,
// trusted-network burst, and the installation-wide aggregate); bounces to our addresses are
// counted too, and so is mail an alias forwards outside. At DATA a message with relayed
// recipients is refused while the aggregate breaker is open (it may have opened since RCPT).
import { defer, pass } from '../core/verdict.ts';
import { defineCheck, recipientOf } from '../pipeline/check.ts';
import { FORWARD_REASON } from '../core/relay-reason.ts';
import { GuardSchema } from '../config/guard-schema.ts';
import { OutboundGuard } from '../guard/guard.ts';

export const outboundGuard = defineCheck({
  name: 'outbound-guard',
  stages: ['rcpt', 'data'],
  options: GuardSchema,
  create: (opts, env) => {
    // Creating the guard touches nothing; the store is first used at the first recipient.
    const guard = new OutboundGuard({ store: env.store, clock: env.clock, log: env.log, hostname: env.hostname, settings: opts });
    return {
      rcpt: async (ctx, rcpt) => {
        const from = ctx.tx?.mailFrom ?? null;
        if (env.directory.isLocalDomain(rcpt.domain)) {
          // RFC 5321 §4.5.5: notifications come with the null reverse-path.
          if (from === null) await guard.bounceReceived(rcpt.address);
          // An alias that forwards outside sends outbound mail: counted per outside domain under
          // the source `forward:<alias>` and the client, so a flood through it trips a breaker.
          // The local copies are still taken: while a breaker is open, the guarded transport
          // holds the outside copy instead (hold/), so the refusal is not given here.
          const r = recipientOf(ctx, env, rcpt);
          if (r.kind !== 'local' || r.external.length === 0) return pass();
          const login = ctx.session.login;
          for (const domain of new Set(r.external.map((a) => a.slice(a.lastIndexOf('@') + 1).toLowerCase()))) {
            await guard.relayedRecipient({ ...(login ? { login } : {}), sender: `${FORWARD_REASON}${rcpt.address.toLowerCase()}`, client: ctx.session.clientAddress, domain });
          }
          return pass();
        }
        const login = ctx.session.login;
        const d = await guard.relayedRecipient({ ...(login ? { login } : {}), sender: from?.address ?? null, client: ctx.session.clientAddress, domain: rcpt.domain });
        return d.ok ? pass() : defer(d.reply, d.reason);
      },
      data: async (ctx) => {
        const relayed = (ctx.tx?.recipients ?? []).some((r) => !env.directory.isLocalDomain(r.domain));
        if (!relayed) return pass();
        const login = ctx.session.login;
        const d = await guard.relayedMessage({ ...(login ? { login } : {}), sender: ctx.tx?.mailFrom?.address ?? null, client: ctx.session.clientAddress });
        return d.ok ? pass() : defer(d.reply, d.reason);
      },
    };
  },
});
