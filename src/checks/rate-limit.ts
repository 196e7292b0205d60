// Rate limits as a list of rules (checks.rate-limit.rules): connections at connect, recipients at
// RCPT, messages at end of DATA, each per client, network, login, sender, recipient domain or the
// whole server, inbound or outbound, in a sliding window. Over a limit: a 4xx, logged by the session.
import { temp, type SmtpReply } from '../core/reply.ts';
import { defer, pass, type Verdict } from '../core/verdict.ts';
import { defineCheck, type StageHandlers } from '../pipeline/check.ts';
import { RateLimitSchema, windowText } from '../config/guard-schema.ts';
import { RateLimits, type LimitRefusal } from '../guard/limits.ts';

// RFC 5321 §3.8: 421 at connect closes the connection; 4.7.0 "other security or policy status".
const tooManyConnections = temp('4.7.0', 'Too many connections, try again later', 421);
// RFC 3463: 4.7.1 "delivery not authorized, message refused" — for now (Postfix policy servers' reply).
const tooManyRecipients = temp('4.7.1', 'Rate limit exceeded: too many recipients, try again later', 450);
const tooManyMessages = temp('4.7.1', 'Rate limit exceeded: too many messages, try again later', 450);

function refused(reply: SmtpReply, r: LimitRefusal): Verdict {
  return defer(reply, `rule ${r.rule.name}: ${r.rule.key} ${r.subject} at ${r.count} ${r.rule.count} in ${windowText(r.rule.window)}, limit ${r.rule.limit}`);
}

export const rateLimit = defineCheck({
  name: 'rate-limit',
  stages: ['connect', 'rcpt', 'data'],
  options: RateLimitSchema,
  create: (opts, env) => {
    const limits = new RateLimits(env.store, opts.rules, env.log);
    const counts = limits.counts();
    // The check sits in the default connect and data lists, so it runs for every connection and
    // message. A stage no rule counts at gets no handler at all: the runner then skips the check
    // with no deadline timer, no promise race and no store round trip.
    const handlers: StageHandlers = {};
    if (counts.has('connections')) {
      handlers.connect = async (ctx) => {
        const r = await limits.consume('connections', { listener: ctx.session.listener, clientAddress: ctx.session.clientAddress }, env.clock());
        return r ? refused(tooManyConnections, r) : pass();
      };
    }
    if (counts.has('recipients')) {
      handlers.rcpt = async (ctx, rcpt) => {
        const s = ctx.session;
        const r = await limits.consume(
          'recipients',
          {
            listener: s.listener,
            clientAddress: s.clientAddress,
            ...(s.login ? { login: s.login } : {}),
            sender: ctx.tx?.mailFrom?.address ?? null,
            recipientDomain: rcpt.domain,
            direction: env.directory.isLocalDomain(rcpt.domain) ? 'inbound' : 'outbound',
          },
          env.clock(),
        );
        return r ? refused(tooManyRecipients, r) : pass();
      };
    }
    if (counts.has('messages')) {
      handlers.data = async (ctx) => {
        const s = ctx.session;
        const rcpts = ctx.tx?.recipients ?? [];
        const local = rcpts.some((m) => env.directory.isLocalDomain(m.domain));
        const foreign = rcpts.some((m) => !env.directory.isLocalDomain(m.domain));
        const r = await limits.consume(
          'messages',
          {
            listener: s.listener,
            clientAddress: s.clientAddress,
            ...(s.login ? { login: s.login } : {}),
            sender: ctx.tx?.mailFrom?.address ?? null,
            direction: local && foreign ? 'both' : foreign ? 'outbound' : 'inbound',
          },
          env.clock(),
        );
        return r ? refused(tooManyMessages, r) : pass();
      };
    }
    return handlers;
  },
});
