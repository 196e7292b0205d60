// Wraps the remote transport with the outbound guard: while the global breaker (or a breaker of
// the message's login, sender or client) is open, or the global quota is used up, recipients are
// answered "temporary" and stay queued. Only remote delivery is wrapped; local delivery never is.
import { replyText } from '../core/reply.ts';
import type { Logger } from '../observe/log.ts';
import type { OutboundGuard } from '../guard/guard.ts';
import type { Transport } from './transport.ts';

export function guardedTransport(inner: Transport, guard: OutboundGuard, log: Logger): Transport {
  return {
    async deliver(msg, indexes) {
      const env = msg.envelope;
      let admitted;
      try {
        admitted = await guard.admitDelivery(env, indexes.length);
      } catch (err) {
        // In doubt, hold: without the store we cannot tell whether the breaker is open.
        log.warn({ event: 'guard-unavailable', queueId: env.id, err: String(err) }, 'cannot read the outbound guard; holding remote delivery');
        const reply = '451 4.3.0 Held: the outbound guard cannot be read, will retry';
        return indexes.map((index) => ({ index, outcome: 'temporary' as const, reply }));
      }
      if (!admitted.ok) {
        log.debug({ event: 'guard-held', queueId: env.id, reason: admitted.reason, recipients: indexes.length }, 'remote delivery held');
        const reply = replyText(admitted.reply);
        return indexes.map((index) => ({ index, outcome: 'temporary' as const, reply }));
      }
      let outcomes;
      try {
        outcomes = await inner.deliver(msg, indexes);
      } catch (err) {
        if (admitted.reserved > 0) await guard.settle(admitted.reserved).catch(() => undefined);
        throw err;
      }
      // What did not reach the next hop does not count against the provider's quota.
      const unsent = indexes.length - outcomes.filter((o) => o.outcome !== 'temporary' && indexes.includes(o.index)).length;
      if (admitted.reserved > 0 && unsent > 0) await guard.settle(Math.min(unsent, admitted.reserved)).catch(() => undefined);
      return outcomes;
    },
  };
}
