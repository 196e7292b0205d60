// The cells of one message in a catalog snapshot (snapshot.ts writes them, catalog.ts loads them
// into its columns without an object per message): held, receivedAt, sender, login, recipient
// count; then per recipient: address, mailbox, status, nextAttemptAt. Strings are indexes into
// the snapshot's string table.
import type { RecipientStatus } from './envelope.ts';

export const STATUS_CODE: Readonly<Record<RecipientStatus, number>> = { pending: 0, deferred: 1, delivered: 2, bounced: 3 };
export const STATUS_NAME: readonly RecipientStatus[] = ['pending', 'deferred', 'delivered', 'bounced'];
export const PENDING = 0;
export const DEFERRED = 1;
/** Cell offsets in a message's row. */
export const C_HELD = 0;
export const C_RECEIVED = 1;
export const C_SENDER = 2;
export const C_LOGIN = 3;
export const C_COUNT = 4;
/** Cells before the first recipient's, and per recipient. */
export const HEAD = 5;
export const PER_RECIPIENT = 4;
/** A mailbox cell: no mailbox, or the same as the address (else a string index). */
export const MAILBOX_NONE = -1;
export const MAILBOX_SAME = -2;
export const LOGIN_NONE = -1;

/** Cells of the message row starting at `at`. */
export const rowLength = (c: Float64Array, at: number): number => HEAD + PER_RECIPIENT * c[at + C_COUNT]!;

/** When the message row at `at` is due (schedule.ts messageDueAt on its cells); undefined: every recipient final. */
export function cellsDueAt(c: Float64Array, at: number, now: number): number | undefined {
  let due: number | undefined;
  for (let i = 0, p = at + HEAD, n = c[at + C_COUNT]!; i < n; i++, p += PER_RECIPIENT) {
    const status = c[p + 2]!;
    if (status === PENDING) return now;
    if (status === DEFERRED) {
      const next = c[p + 3]!;
      due = Math.min(due ?? Infinity, Number.isNaN(next) ? now : next);
    }
  }
  return due;
}
