// A bounce to one of our SRS addresses goes back to the sender it stands for (docs/decisions/
// 0014-forwarding.md). Only a valid one: the hash verifies with one of our keys and the stamp is
// at most forwarding.srs.maxAge days old; anything else is 550 5.1.1 with the detail in the log, so
// an SRS-shaped address can never carry a stranger's mail to an address of their choosing. And
// only a notification: RFC 5321 §4.5.5 / RFC 3464 send them with the null reverse-path, and mail
// with a sender has no business at a return address.
import { parsePath, type Mailbox } from '../core/address.ts';
import { perm, type SmtpReply } from '../core/reply.ts';
import { isSrsLocal, type SrsReversal } from '../core/srs.ts';

export interface SrsReverser {
  /** The domain our SRS addresses are in (lower case). */
  readonly domain: string;
  reverse(address: string): SrsReversal;
}

export type SrsRecipient =
  /** Not an SRS address of ours: the recipient goes its normal way. */
  | { readonly kind: 'none' }
  | { readonly kind: 'refuse'; readonly reply: SmtpReply; readonly reason: string }
  /** A valid return address: the notification goes to `target`. */
  | { readonly kind: 'return'; readonly target: Mailbox };

const NONE: SrsRecipient = Object.freeze({ kind: 'none' });
const invalid = perm('5.1.1', 'Recipient address rejected');
const notABounce = perm('5.7.1', 'Recipient address rejected: return address accepts bounces only');

export function srsRecipient(srs: SrsReverser | undefined, to: Mailbox, from: Mailbox | null, smtputf8: boolean): SrsRecipient {
  if (!srs || to.domain.toLowerCase() !== srs.domain || !isSrsLocal(to.local)) return NONE;
  const r = srs.reverse(to.address);
  if (!r.ok) return { kind: 'refuse', reply: invalid, reason: r.reason };
  if (from !== null) return { kind: 'refuse', reply: notABounce, reason: `SRS address with sender ${from.address}: only the null sender may use it` };
  const back = parsePath(`<${r.address}>`, { allowNull: false, smtputf8, role: 'recipient' });
  if (!back.ok || !back.mailbox) return { kind: 'refuse', reply: invalid, reason: `SRS address decodes to a bad address ${JSON.stringify(r.address)}` };
  return { kind: 'return', target: back.mailbox };
}
