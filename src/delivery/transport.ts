// The one contract every way of delivering implements (Maildir, smarthost, MX, and the router
// that picks among them): given a queued message and some of its recipients, say per recipient
// ok, temporary or permanent.
import type { Readable } from 'node:stream';
import type { Envelope } from '../queue/envelope.ts';
import type { DeliveryOutcome } from '../queue/schedule.ts';
import { replyText, temp } from '../core/reply.ts';

export type { DeliveryOutcome } from '../queue/schedule.ts';

export interface DeliverableMessage {
  readonly envelope: Envelope;
  /**
   * A fresh stream of the stored message bytes for each call. It errors instead of ending when
   * the stored bytes are corrupt: a transport must then not complete the delivery.
   */
  readonly body: () => Readable;
  /**
   * A delivery of this message may have been under way when the process died: a transport that
   * can tell whether a recipient already got it (Maildir) must check before delivering again.
   */
  readonly recovered: boolean;
  /**
   * A transport that hears a recipient's success before it returns (LMTP's reply per recipient)
   * tells it here, and the worker records it durably at once, so a crash later in the pass does
   * not deliver it again. The outcome must still be among those `deliver` resolves.
   */
  readonly accepted?: (outcomes: readonly RecipientOutcome[]) => void;
}

export interface RecipientOutcome {
  /** Index into envelope.recipients. */
  readonly index: number;
  readonly outcome: DeliveryOutcome;
  /** The reply as text, e.g. "250 2.0.0 Delivered" — logged and kept for the bounce. */
  readonly reply: string;
  /** The host that gave the reply, when it came from another server (the DSN's Remote-MTA). */
  readonly remoteMta?: string;
  /**
   * Put the whole message on hold instead of scheduling a retry (the outbound guard refused it):
   * not an attempt (the recipient keeps its status and attempts; it is never retried or bounced
   * while held), and the message moves to hold/ until an operator releases or deletes it.
   */
  readonly hold?: HoldRequest;
  /**
   * Not tried at all (all outbound mail is stopped, outbound-switch.ts): not an attempt, no
   * back-off; the recipient is looked at again after this many ms (or when outbound starts).
   */
  readonly pausedMs?: number;
}

/** Why a transport asks for the message to be put on hold. */
export interface HoldRequest {
  /** The breaker that refused: "global" (also for the quota's hard stop) or a source's name. */
  readonly breaker: string;
  readonly reason: string;
}

export interface Transport {
  deliver(msg: DeliverableMessage, recipientIndexes: readonly number[]): Promise<RecipientOutcome[]>;
}

/** A transport that defers everything, for a route nobody configured yet (e.g. remote delivery). */
export function unconfiguredTransport(what: string): Transport {
  // RFC 3463: X.3.5 "system incorrectly configured".
  const reply = replyText(temp('4.3.5', `${what} is not configured`, 451));
  return {
    deliver: async (_msg, indexes) => indexes.map((index) => ({ index, outcome: 'temporary', reply })),
  };
}

/** The transport for recipients whose transport is 'remote', until remote delivery exists. */
export const remoteNotConfigured: Transport = unconfiguredTransport('remote delivery');

/** RFC 5321 §4.5.3.1.8: a server must take at least 100 recipients per transaction. */
export const MAX_RECIPIENTS_PER_TRANSACTION = 100;

/** A reply per address of one SMTP transaction. */
export type BatchReplies = Map<string, Omit<RecipientOutcome, 'index'>>;

/**
 * Delivers to other servers one transaction per batch of distinct target addresses: duplicates
 * (two aliases forwarding to the same outside address) share one RCPT and its reply, which every
 * recipient index of that address gets. `send` must reply for every address of its batch.
 */
export async function deliverInBatches(
  msg: DeliverableMessage,
  indexes: readonly number[],
  send: (batch: readonly string[], accepted: (address: string, reply: string) => void) => Promise<BatchReplies>,
): Promise<RecipientOutcome[]> {
  const byAddress = new Map<string, number[]>();
  for (const i of indexes) {
    const r = msg.envelope.recipients[i];
    if (!r) continue;
    const a = r.mailbox ?? r.address;
    byAddress.set(a, [...(byAddress.get(a) ?? []), i]);
  }
  const addresses = [...byAddress.keys()];
  const out: RecipientOutcome[] = [];
  for (let start = 0; start < addresses.length; start += MAX_RECIPIENTS_PER_TRANSACTION) {
    const batch = addresses.slice(start, start + MAX_RECIPIENTS_PER_TRANSACTION);
    const replies = await send(batch, (a, reply) => msg.accepted?.((byAddress.get(a) ?? []).map((index) => ({ index, outcome: 'ok' as const, reply }))));
    for (const a of batch) for (const index of byAddress.get(a)!) out.push({ index, ...replies.get(a)! });
  }
  return out;
}
