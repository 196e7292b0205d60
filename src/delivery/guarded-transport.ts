// Wraps the remote transport with the outbound guard: while the global breaker (or a breaker of
// the message's login, sender or client) is open, or the global quota is used up, the recipients
// are answered with a hold: the worker moves the message to hold/, where it waits for an operator
// (`mailward queue release|delete`). Only remote delivery is wrapped; local delivery never is.
import { replyText } from '../core/reply.ts';
import type { Logger } from '../observe/log.ts';
import type { OutboundGuard } from '../guard/guard.ts';
import type { RecipientOutcome, Transport } from './transport.ts';

export function guardedTransport(inner: Transport, guard: OutboundGuard, log: Logger): Transport {
  return {
    async deliver(msg, indexes) {
      const env = msg.envelope;
      let admitted;
      try {
        admitted = await guard.admitDelivery(env, indexes.length);
      } catch (err) {
        // In doubt, do not send: without the store we cannot tell whether the breaker is open.
        // Deferred, not held: a store outage passes by itself and needs no operator.
        log.warn({ event: 'guard-unavailable', queueId: env.id, err: String(err) }, 'cannot read the outbound guard; holding remote delivery');
        const reply = '451 4.3.0 Held: the outbound guard cannot be read, will retry';
        return indexes.map((index) => ({ index, outcome: 'temporary' as const, reply }));
      }
      if (!admitted.ok) {
        log.debug({ event: 'guard-held', queueId: env.id, reason: admitted.reason, recipients: indexes.length }, 'remote delivery held');
        const reply = replyText(admitted.reply);
        const hold = { breaker: admitted.breaker, reason: admitted.reason };
        // 'temporary' for any caller that knows nothing of holds: the mail did not leave.
        return indexes.map((index): RecipientOutcome => ({ index, outcome: 'temporary', reply, hold }));
      }
      let outcomes;
      try {
        outcomes = await inner.deliver(msg, indexes);
      } catch (err) {
        if (admitted.reserved > 0) await guard.settle(admitted.reserved).catch(() => undefined);
        throw err;
      }
      // What did not reach the next hop does not count against the provider's quota.
      const answered = outcomes.filter((o) => o.outcome !== 'temporary' && indexes.includes(o.index));
      const unsent = indexes.length - answered.length;
      if (admitted.reserved > 0 && unsent > 0) await guard.settle(Math.min(unsent, admitted.reserved)).catch(() => undefined);
      // The installation's failure share (the aggregate breaker): permanent refusals of the answered.
      const failed = answered.filter((o) => o.outcome === 'permanent').length;
      await guard.delivered(env, answered.length, failed).catch((err: unknown) => log.warn({ event: 'guard-unavailable', queueId: env.id, err: String(err) }, 'could not count the delivery for the outbound guard'));
      return outcomes;
    },
  };
}
